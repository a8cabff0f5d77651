//! Known secrets: every configured value is turned into literal needles for
//! each encoding an exfiltration would plausibly use, and all needles are
//! searched at once.

use crate::prefilter::Prefilter;
use crate::Encoding;
use base64::Engine as _;
use zeroize::Zeroizing;

pub(crate) struct KnownSet {
    pre: Prefilter,
    /// Encoding and length of each needle, by needle id.
    enc: Vec<Encoding>,
    lens: Vec<usize>,
    pub(crate) count: usize,
}

impl std::fmt::Debug for KnownSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "KnownSet({} secrets, {} needles)",
            self.count,
            self.enc.len()
        )
    }
}

/// The part of `encode(prefix_k ++ secret)` that depends only on the secret, for each of the
/// three byte alignments `k` (standard base64, or base64url with `url`), without padding:
/// what any base64 text carrying `secret` contains, wherever it starts. Empty cores (a secret
/// too short for an alignment) are left out. egress scrubs these same forms from responses.
pub fn base64_cores(secret: &[u8], url: bool) -> Vec<Zeroizing<String>> {
    let mut out = Vec::new();
    for k in 0..3usize {
        let mut buf = Zeroizing::new(vec![0u8; k]);
        buf.extend_from_slice(secret);
        let enc = Zeroizing::new(if url {
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&buf[..])
        } else {
            base64::engine::general_purpose::STANDARD_NO_PAD.encode(&buf[..])
        });
        let c_start = (8 * k).div_ceil(6);
        let c_end = (8 * (k + secret.len())) / 6;
        if c_end > c_start {
            out.push(Zeroizing::new(enc[c_start..c_end].to_string()));
        }
    }
    out
}

/// [`base64_cores`] long enough to be searched for (8 characters or more).
fn base64_needles(secret: &[u8], url: bool) -> Vec<Zeroizing<String>> {
    let mut out = base64_cores(secret, url);
    out.retain(|n| n.len() >= 8);
    out
}

const B32: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

fn base32(data: &[u8]) -> Zeroizing<String> {
    let mut out = Zeroizing::new(String::with_capacity(data.len() * 8 / 5 + 1));
    let mut acc: u64 = 0;
    let mut bits = 0;
    for &b in data {
        acc = (acc << 8) | u64::from(b);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(char::from(B32[((acc >> bits) & 31) as usize]));
        }
    }
    if bits > 0 {
        out.push(char::from(B32[((acc << (5 - bits)) & 31) as usize]));
    }
    out
}

/// Stable base32 needles for the five byte alignments.
fn base32_needles(secret: &[u8]) -> Vec<Zeroizing<String>> {
    let mut out = Vec::new();
    for k in 0..5usize {
        let mut buf = Zeroizing::new(vec![0u8; k]);
        buf.extend_from_slice(secret);
        let enc = base32(&buf);
        let c_start = (8 * k).div_ceil(5);
        let c_end = (8 * (k + secret.len())) / 5;
        if c_end > c_start && c_end - c_start >= 8 {
            out.push(Zeroizing::new(enc[c_start..c_end].to_string()));
        }
    }
    out
}

impl KnownSet {
    pub(crate) fn build(secrets: &[Zeroizing<String>], min_len: usize) -> Option<KnownSet> {
        let mut needles: Vec<Zeroizing<Vec<u8>>> = Vec::new();
        let mut enc = Vec::new();
        let mut count = 0;
        let push = |n: &[u8],
                    e: Encoding,
                    needles: &mut Vec<Zeroizing<Vec<u8>>>,
                    enc: &mut Vec<Encoding>| {
            if !needles.iter().any(|x| x.as_slice() == n) {
                needles.push(Zeroizing::new(n.to_vec()));
                enc.push(e);
            }
        };
        for s in secrets {
            let s = s.as_bytes();
            if s.len() < min_len.max(1) {
                continue;
            }
            count += 1;
            push(s, Encoding::Raw, &mut needles, &mut enc);
            // Hex and percent forms are not needles: hex runs and percent
            // escapes are decoded into views where the raw needle matches.
            for n in base64_needles(s, false) {
                push(n.as_bytes(), Encoding::Base64, &mut needles, &mut enc);
            }
            for n in base64_needles(s, true) {
                push(n.as_bytes(), Encoding::Base64Url, &mut needles, &mut enc);
            }
            for n in base32_needles(s) {
                push(n.as_bytes(), Encoding::Base32, &mut needles, &mut enc);
            }
        }
        if needles.is_empty() {
            return None;
        }
        let pre = Prefilter::new(&needles);
        let lens = needles.iter().map(|n| n.len()).collect();
        Some(KnownSet {
            pre,
            enc,
            lens,
            count,
        })
    }

    /// Every needle occurrence: (start, end, encoding).
    pub(crate) fn find(&self, hay: &[u8], mut f: impl FnMut(usize, usize, Encoding)) {
        self.pre.for_each(hay, |start, id| {
            f(start, start + self.lens[id], self.enc[id])
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base32_alignments() {
        assert_eq!(base32(b"foobar").as_str(), "MZXW6YTBOI");
        let secret = b"s3cr3t-Value-42!";
        let needles = base32_needles(secret);
        assert_eq!(needles.len(), 5);
        for prefix in 0..7usize {
            let mut data = vec![b'x'; prefix];
            data.extend_from_slice(secret);
            data.extend_from_slice(b"tail");
            let enc = base32(&data);
            assert!(
                needles.iter().any(|n| enc.contains(n.as_str())),
                "prefix {prefix}"
            );
        }
    }

    #[test]
    fn base64_alignments_found_in_any_context() {
        let secret = b"s3cr3t-Value-42!";
        let needles = base64_needles(secret, false);
        assert_eq!(needles.len(), 3);
        for prefix in 0..6usize {
            for suffix in 0..4usize {
                let mut data = vec![b'x'; prefix];
                data.extend_from_slice(secret);
                data.extend(std::iter::repeat_n(b'y', suffix));
                let enc = base64::engine::general_purpose::STANDARD.encode(&data);
                assert!(
                    needles.iter().any(|n| enc.contains(n.as_str())),
                    "prefix {prefix} suffix {suffix}"
                );
            }
        }
    }
}
