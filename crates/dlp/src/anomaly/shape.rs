//! Does a token look like encoded data? Shared by the host-label and URL checks.
//!
//! The question is about the *class* of a string: random bytes written in hex,
//! base32, base36 or base64 have a flat character distribution, mix letters and
//! digits (or cases) at random, and carry few vowels; names people choose
//! (words, slugs, identifiers, version strings) do not.

use std::sync::OnceLock;

use crate::entropy::shannon;

/// Shortest token judged by its shape; shorter ones carry too little data to
/// matter on their own (the per-host volume and burst checks count them).
pub const MIN_SHAPED_LEN: usize = 20;

#[derive(Default)]
struct Counts {
    lower: usize,
    upper: usize,
    digit: usize,
    /// `+`, `/`, `=`, `-`, `_` (base64 / base64url alphabet).
    b64_punct: usize,
    /// Anything else: not an encoding alphabet.
    other: usize,
    /// Adjacent pairs that switch between letter and digit.
    letter_digit_switches: usize,
    /// Adjacent letter pairs that switch case.
    case_switches: usize,
}

fn count(t: &[u8]) -> Counts {
    let mut c = Counts::default();
    let mut prev: Option<u8> = None;
    for &b in t {
        match b {
            b'a'..=b'z' => c.lower += 1,
            b'A'..=b'Z' => c.upper += 1,
            b'0'..=b'9' => c.digit += 1,
            b'+' | b'/' | b'=' | b'-' | b'_' => c.b64_punct += 1,
            _ => c.other += 1,
        }
        if let Some(p) = prev {
            if p.is_ascii_alphabetic() && b.is_ascii_digit()
                || p.is_ascii_digit() && b.is_ascii_alphabetic()
            {
                c.letter_digit_switches += 1;
            }
            if p.is_ascii_lowercase() && b.is_ascii_uppercase()
                || p.is_ascii_uppercase() && b.is_ascii_lowercase()
            {
                c.case_switches += 1;
            }
        }
        prev = Some(b);
    }
    c
}

/// Hex digest lengths that ordinary URLs carry (MD5, SHA-1, SHA-224, PyPI's
/// 60-hex blake2b path tail, SHA-256, SHA-384, SHA-512).
const DIGEST_HEX_LENS: [usize; 7] = [32, 40, 56, 60, 64, 96, 128];
/// Base64 lengths of 16-, 20- and 32-byte digests and MACs, with or without
/// padding (signatures, PKCE challenges, `Sec-WebSocket-Key`-sized nonces).
const DIGEST_B64_LENS: [usize; 6] = [22, 24, 27, 28, 43, 44];

/// A hash-sized value, as [`digest_sized`] reads it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DigestSized {
    /// Bytes of data the value can carry (its decoded size).
    pub bytes: usize,
    /// Written the way content addresses are: lower-case hex of a digest
    /// length, or an algorithm prefix with hex or standard base64 of that
    /// algorithm's digest length. Other hash-sized values (UUIDs, bare
    /// base64, upper-case hex, `0x` hex, Base58Check) are ids an agent can
    /// invent as easily, and get a smaller budget.
    pub content_address: bool,
}

pub fn is_hex(t: &[u8]) -> bool {
    !t.is_empty() && t.iter().all(u8::is_ascii_hexdigit)
}

fn is_lower_hex(t: &[u8]) -> bool {
    !t.is_empty() && t.iter().all(|&b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// A hash-sized value: not judged by its shape, but it still carries its
/// bytes, so the caller counts it ([`MAX_DIGESTS_PER_URL`] per URL, and
/// pipelock's per-parent [`super::DigestBudget`]).
///
/// [`MAX_DIGESTS_PER_URL`]: super::MAX_DIGESTS_PER_URL
pub fn is_digest(t: &[u8]) -> bool {
    digest_sized(t).is_some()
}

/// Reads `t` as a hash-sized value. Only alphabets digests are written in
/// count: hex in one case, base64 that uses both letter cases (random bytes
/// in base64 always do; base32 and hex never do, so a base32 blob of a
/// digest's length is not mistaken for one), UUIDs, Base58Check.
pub fn digest_sized(t: &[u8]) -> Option<DigestSized> {
    let weak = |bytes| {
        Some(DigestSized {
            bytes,
            content_address: false,
        })
    };
    if is_uuid(t) {
        return weak(16);
    }
    if is_base58check(t) {
        return weak(25);
    }
    if let Some(body) = t.strip_prefix(b"0x").or(t.strip_prefix(b"0X")) {
        // Ethereum-style addresses and transaction hashes (EIP-55 mixes case).
        return (is_hex(body) && matches!(body.len(), 40 | 64)).then_some(DigestSized {
            bytes: body.len() / 2,
            content_address: false,
        });
    }
    if let Some((algo_len, body)) = algorithm_prefixed(t) {
        let hex_ok = is_lower_hex(body) && body.len() == algo_len * 2;
        let b64_ok = std_base64_of(body, algo_len);
        return (hex_ok || b64_ok).then_some(DigestSized {
            bytes: algo_len,
            content_address: true,
        });
    }
    // Hex in one case: mixed case would carry bits of its own.
    let upper_hex = t.iter().all(|&b| matches!(b, b'0'..=b'9' | b'A'..=b'F'));
    if (is_lower_hex(t) || upper_hex) && DIGEST_HEX_LENS.contains(&t.len()) {
        return Some(DigestSized {
            bytes: t.len() / 2,
            content_address: is_lower_hex(t),
        });
    }
    if DIGEST_B64_LENS.contains(&t.len()) && base64_shaped(t) {
        return weak(t.len() * 3 / 4);
    }
    None
}

/// Base64 (standard or URL-safe, not mixed) that uses both letter cases,
/// padded (if at all) only at the end.
fn base64_shaped(t: &[u8]) -> bool {
    let body = t.strip_suffix(b"==").or(t.strip_suffix(b"=")).unwrap_or(t);
    let std = body.iter().any(|&b| b == b'+' || b == b'/');
    let url = body.iter().any(|&b| b == b'-' || b == b'_');
    let alphabet = body
        .iter()
        .all(|&b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'-' | b'_'));
    let upper = body.iter().any(u8::is_ascii_uppercase);
    let lower = body.iter().any(u8::is_ascii_lowercase);
    alphabet && !(std && url) && upper && lower
}

/// Standard base64 (with or without padding) of exactly `bytes` bytes.
fn std_base64_of(body: &[u8], bytes: usize) -> bool {
    let bare = body
        .strip_suffix(b"==")
        .or(body.strip_suffix(b"="))
        .unwrap_or(body);
    let unpadded = (bytes * 4).div_ceil(3);
    let padded = bytes.div_ceil(3) * 4;
    (body.len() == unpadded && bare.len() == unpadded
        || body.len() == padded && bare.len() == unpadded)
        && bare
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/')
        && base64_shaped(body)
}

/// A Base58Check string of 25 bytes with a valid checksum (a Bitcoin-style
/// address): hash-sized like a digest, and as ordinary in explorer URLs.
pub fn is_base58check(t: &[u8]) -> bool {
    use sha2::{Digest, Sha256};
    const ALPHABET: &[u8] = b"123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz";
    if !(25..=35).contains(&t.len()) {
        return false;
    }
    // Big-endian base-58 to base-256, 25 bytes.
    let mut out = [0u8; 25];
    for &c in t {
        let Some(mut carry) = ALPHABET.iter().position(|&a| a == c) else {
            return false;
        };
        for b in out.iter_mut().rev() {
            carry += usize::from(*b) * 58;
            *b = (carry & 0xff) as u8;
            carry >>= 8;
        }
        if carry != 0 {
            return false;
        }
    }
    let (payload, check) = out.split_at(21);
    let sum = Sha256::digest(Sha256::digest(payload));
    sum[..4] == *check
}

/// Digest algorithms URLs name, with their digest sizes in bytes.
const ALGORITHMS: [(&[u8], usize); 7] = [
    (b"sha256", 32),
    (b"sha512", 64),
    (b"sha384", 48),
    (b"sha224", 28),
    (b"sha1", 20),
    (b"md5", 16),
    (b"blake2b", 64),
];

/// `sha256:`, `sha512-` (SRI), `md5=` ... prefixes of a digest: the
/// algorithm's digest size and the rest of `t`.
fn algorithm_prefixed(t: &[u8]) -> Option<(usize, &[u8])> {
    ALGORITHMS.iter().find_map(|&(name, size)| {
        let sep = *t.get(name.len())?;
        (t.len() > name.len() + 1
            && t[..name.len()].eq_ignore_ascii_case(name)
            && matches!(sep, b':' | b'-' | b'=' | b'_'))
        .then(|| (size, &t[name.len() + 1..]))
    })
}

/// `8-4-4-4-12` hex with dashes.
pub fn is_uuid(t: &[u8]) -> bool {
    t.len() == 36
        && t.iter().enumerate().all(|(i, &b)| match i {
            8 | 13 | 18 | 23 => b == b'-',
            _ => b.is_ascii_hexdigit(),
        })
}

/// Longest JWT signature part: RS512 / PS512 with a 4096-bit key.
const JWT_MAX_SIGNATURE: usize = 683;

/// Three base64url parts separated by dots, the first two encoded JSON objects
/// (the header naming its `alg`), the last no longer than a signature: a JWT,
/// which sign-in flows and signed downloads put in URLs. Not any `eyJ…` blob:
/// the parts must decode, so random bytes after an `eyJ` are not a JWT.
pub fn is_jwt(t: &[u8]) -> bool {
    let mut parts = t.split(|&b| b == b'.');
    let ok_part = |p: &[u8]| {
        !p.is_empty()
            && p.iter()
                .all(|&b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    };
    let json_object = |p: &[u8]| {
        super::layers::decode_b64(p).is_some_and(|d| {
            let d = d.trim_ascii();
            d.starts_with(b"{") && d.ends_with(b"}") && super::layers::printable(d)
        })
    };
    match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some(h), Some(p), Some(s), None) => {
            h.starts_with(b"eyJ")
                && p.starts_with(b"eyJ")
                && ok_part(h)
                && ok_part(p)
                && ok_part(s)
                && s.len() <= JWT_MAX_SIGNATURE
                && json_object(h)
                && json_object(p)
                && super::layers::decode_b64(h)
                    .is_some_and(|d| d.windows(5).any(|w| w == b"\"alg\""))
        }
        _ => false,
    }
}

/// Letter pairs common in English words: those that occur at least twice in
/// the BIP-39 English word list (2048 everyday words, already a dependency),
/// as one bit per pair.
fn common_pairs() -> &'static [u32; 26] {
    static T: OnceLock<[u32; 26]> = OnceLock::new();
    T.get_or_init(|| {
        let mut counts = [[0u8; 26]; 26];
        for w in bip39::Language::English.word_list() {
            for p in w.as_bytes().windows(2) {
                if let (Some(a), Some(b)) = (letter_index(p[0]), letter_index(p[1])) {
                    counts[a][b] = counts[a][b].saturating_add(1);
                }
            }
        }
        let mut bits = [0u32; 26];
        for (a, row) in counts.iter().enumerate() {
            for (b, &n) in row.iter().enumerate() {
                if n >= 2 {
                    bits[a] |= 1 << b;
                }
            }
        }
        bits
    })
}

fn letter_index(b: u8) -> Option<usize> {
    b.is_ascii_alphabetic()
        .then(|| usize::from(b.to_ascii_lowercase() - b'a'))
}

/// Share of adjacent pairs that read like words: common letter pairs, out of
/// all letter pairs and letter/digit switches (digit runs are neutral, so a
/// version number or a year does not make a name look random).
pub fn word_score(t: &[u8]) -> f64 {
    let table = common_pairs();
    let (mut good, mut total) = (0usize, 0usize);
    for p in t.windows(2) {
        match (letter_index(p[0]), letter_index(p[1])) {
            (Some(a), Some(b)) => {
                total += 1;
                if table[a] & (1 << b) != 0 {
                    good += 1;
                }
            }
            (Some(_), None) | (None, Some(_)) => {
                if p[0].is_ascii_alphanumeric() && p[1].is_ascii_alphanumeric() {
                    total += 1;
                }
            }
            (None, None) => {}
        }
    }
    if total == 0 {
        1.0
    } else {
        good as f64 / total as f64
    }
}

/// Whether a short token reads like words (or a number) rather than data.
pub fn reads_as_words(t: &str) -> bool {
    word_score(t.as_bytes()) >= WORD_SCORE_CUT
}

/// Below this [`word_score`], a long token reads as encoded data.
pub const WORD_SCORE_CUT: f64 = 0.55;

/// Longest string value a pagination cursor may hold.
const CURSOR_MAX_STRING: usize = 24;

/// base64 of a small JSON object whose strings are all short: the shape of
/// an API pagination cursor (`eyJpZCI6MTIzfQ` = `{"id":123}`). Bounded so
/// that a cursor cannot carry more than a few short values.
pub fn is_cursor(t: &[u8]) -> bool {
    if !t.starts_with(b"eyJ") || t.len() > 256 {
        return false;
    }
    let Some(d) = super::layers::decode_b64(t) else {
        return false;
    };
    let d = d.trim_ascii();
    d.starts_with(b"{")
        && d.ends_with(b"}")
        && super::layers::printable(d)
        && d.split(|&b| b == b'"')
            .skip(1)
            .step_by(2)
            .all(|s| s.len() <= CURSOR_MAX_STRING)
}

/// Whether `t` (one token: no dots, slashes or spaces expected) looks like
/// encoded data rather than a name. Case is significant (base64); host labels
/// are passed lower-cased, which only removes the mixed-case rule.
pub fn data_shaped(t: &[u8]) -> bool {
    let n = t.len();
    if n < MIN_SHAPED_LEN {
        return false;
    }
    let c = count(t);
    if c.other > 0 {
        return false;
    }
    let letters = c.lower + c.upper;
    let alnum = letters + c.digit;
    if alnum < MIN_SHAPED_LEN || alnum * 10 < n * 9 {
        // Short, or mostly punctuation: a separator-heavy slug.
        return false;
    }
    // Digits only: decimal-encoded data (numeric ids are shorter).
    if c.digit == alnum {
        return alnum >= 24;
    }
    let h = shannon(t);
    // Mixed case (base64): case switches everywhere, not once per word.
    if c.upper * 6 >= letters
        && c.lower * 6 >= letters
        && c.case_switches * 4 >= letters
        && h >= 4.0
    {
        return true;
    }
    // Few word-like letter pairs, and not a repetitive string (hex has a
    // 16-letter alphabet, so its entropy ceiling is lower).
    let hex_only = t.iter().all(u8::is_ascii_hexdigit);
    let floor = if hex_only { 3.0 } else { 3.3 };
    h >= floor && word_score(t) < WORD_SCORE_CUT
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes_table() {
        let cases: &[(&str, bool)] = &[
            // encoded data
            ("6b810c90aa9a99858230c3d5ed", true),
            ("mfrggzdfmztwq2lknnwg23tpobyxe43u", true),
            ("k3j5h7g9f2d4s6a8q1w3e5r7t9y2", true),
            ("aGVsbG8gd29ybGQgdGhpcyBpcyBzZWNyZXQ", true),
            ("481502390412349812039481230498", true),
            ("xqzvbnmkrtplwhgfdsjcxzvbnqwrtp", true),
            // names
            ("my-app-git-feature-x-team", false),
            ("internationalization-service", false),
            ("production-cloudflare-docker", false),
            ("getUserAccountSettingsById", false),
            ("release-notes-2024-v1-2-3", false),
            ("d1a2b3c4d5e6f7", false),
            ("o4504123456789012", false),
            ("left-pad-1.9.0-py3-none-any", false),
        ];
        for (t, want) in cases {
            assert_eq!(data_shaped(t.as_bytes()), *want, "{t}");
        }
    }

    #[test]
    fn digests_uuids_jwts() {
        let h64 = "2202109512a0599270bc34e7d0dd96bd680f120b6a3e37eca942c2b2164e6e95";
        assert!(is_digest(h64.as_bytes()));
        assert!(is_digest(format!("sha256:{h64}").as_bytes()));
        assert!(!is_digest(&h64.as_bytes()[..50]));
        assert!(is_digest(b"1BoatSLRHtKNngkdXEeobR76b53LETtpyT"));
        assert!(is_digest(format!("0x{h64}").as_bytes()));
        assert!(!is_digest(b"1BoatSLRHtKNngkdXEeobR76b53LETtpyU"));
        assert!(is_uuid(b"123e4567-e89b-12d3-a456-426614174000"));
        assert!(!is_uuid(b"123e4567-e89b-12d3-a456-42661417400z"));
        assert!(is_jwt(b"eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.abc_DEF-123"));
        let sized = |t: &str| digest_sized(t.as_bytes()).map(|d| (d.bytes, d.content_address));
        assert_eq!(sized(h64), Some((32, true)));
        assert_eq!(sized(&h64.to_ascii_uppercase()), Some((32, false)));
        assert_eq!(sized(&format!("sha256:{h64}")), Some((32, true)));
        // The prefix names the size: SHA-512 is not 32 bytes.
        assert_eq!(sized(&format!("sha512:{h64}")), None);
        let sri = "sha384-oqVuAfXRKap7fdgcCY5uykM6+R9GqQ8K/uxy9rx7HNQlGYl1kPzQho1wx4JwY8wC";
        assert_eq!(sized(sri), Some((48, true)));
        assert_eq!(
            sized("123e4567-e89b-12d3-a456-426614174000"),
            Some((16, false))
        );
        assert_eq!(
            sized("E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuEG3bbi0Ik"),
            Some((32, false))
        );
        // Base32 and one-case letters are not base64; mixed-case hex is not hex.
        assert_eq!(sized("MFRGGZDFMZTWQ2LKNNWG23TPOBYXE43UOJ2HK5TXPA2"), None);
        assert_eq!(sized("mfrggzdfmztwq2lknnwg23tp"), None);
        assert_eq!(sized(&h64.replacen('a', "A", 1)), None);
        assert_eq!(sized("abc-DEF_ghi+JKL/mnoPQR0"), None);
        assert!(!is_jwt(b"eyJhbGciOiJIUzI1NiJ9.abc"));
    }
}
