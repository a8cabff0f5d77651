//! Streaming anomaly checks over a request body (any body: MCP `tools/call`
//! arguments and A2A messages are JSON request bodies like any other).
//!
//! Each chunk is examined together with the last [`CARRY`] bytes before it,
//! after undoing JSON string escapes (`\n`, `\"`, `\uXXXX`) and
//! percent-escapes, so a dump inside a JSON string or a form field reads as
//! the text it stands for. Memory: the carry plus one chunk.

use std::borrow::Cow;

use super::exfil::{ExfilState, ENV_DUMP_PAIRS};
use super::layers::{layers, printable, MAX_LAYER_INPUT};
use super::ENCODING_LAYERS;
use crate::{Encoding, Finding};
use base64::Engine as _;

/// Raw bytes re-examined in front of each chunk (escapes, names and tokens
/// cut by a chunk boundary).
pub const CARRY: usize = 2048;
/// Shortest token examined for encoding layers in a body.
const MIN_BODY_TOKEN: usize = 24;
/// Decoded bytes examined per body for dumps hidden in one base64 layer
/// (strict): bounds the work a body full of base64 can cause.
const DECODE_BUDGET: usize = 1 << 20;

/// Undoes JSON string escapes and percent-escapes; borrowed when there are none.
pub fn unescape(b: &[u8]) -> Cow<'_, [u8]> {
    if memchr::memchr2(b'\\', b'%', b).is_none() {
        return Cow::Borrowed(b);
    }
    let hexv = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    // Copy the plain stretches whole; decode at each backslash or `%`.
    while let Some(k) = memchr::memchr2(b'\\', b'%', &b[i..]) {
        let j = i + k;
        out.extend_from_slice(&b[i..j]);
        i = j + 1;
        if b[j] == b'%' {
            if let (Some(h), Some(l)) = (
                b.get(j + 1).copied().and_then(hexv),
                b.get(j + 2).copied().and_then(hexv),
            ) {
                out.push(h << 4 | l);
                i = j + 3;
                continue;
            }
            out.push(b'%');
            continue;
        }
        let mapped = match b.get(j + 1) {
            Some(b'n' | b'r') => Some(b'\n'),
            Some(b't') => Some(b' '),
            Some(&c @ (b'"' | b'\'' | b'/' | b'\\')) => Some(c),
            _ => None,
        };
        if let Some(m) = mapped {
            out.push(m);
            i = j + 2;
            continue;
        }
        if b.get(j + 1) == Some(&b'u') {
            let v = b.get(j + 2..j + 6).and_then(|hex4| {
                hex4.iter()
                    .try_fold(0u32, |acc, &x| hexv(x).map(|d| acc << 4 | u32::from(d)))
            });
            if let Some(v) = v {
                out.push(if v < 0x80 { v as u8 } else { b'?' });
                i = j + 6;
                continue;
            }
        }
        out.push(b'\\');
    }
    out.extend_from_slice(&b[i..]);
    Cow::Owned(out)
}

fn token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'=' | b'-' | b'_')
}

/// The anomaly checks of one request body, fed chunk by chunk.
pub struct BodyWatch {
    strict: bool,
    carry: Vec<u8>,
    /// Stream offset of `carry[0]`.
    base: usize,
    exfil: ExfilState,
    decode_budget: usize,
    found: Option<Finding>,
}

impl BodyWatch {
    /// `strict` adds encoding layers, a single credential pair, and dumps
    /// hidden in one base64 layer.
    pub fn new(strict: bool) -> BodyWatch {
        BodyWatch {
            strict,
            carry: Vec::new(),
            base: 0,
            exfil: ExfilState::default(),
            decode_budget: DECODE_BUDGET,
            found: None,
        }
    }

    fn pairs_needed(&self) -> usize {
        if self.strict {
            1
        } else {
            ENV_DUMP_PAIRS
        }
    }

    /// The next chunk; the first finding (then the same one on every call).
    pub fn push(&mut self, chunk: &[u8]) -> Option<Finding> {
        if self.found.is_some() {
            return self.found.clone();
        }
        let fresh_from = self.carry.len();
        let mut buf = std::mem::take(&mut self.carry);
        buf.extend_from_slice(chunk);
        let f = self.examine(&buf, fresh_from, false);
        let keep = buf.len().min(CARRY);
        self.base += buf.len() - keep;
        buf.drain(..buf.len() - keep);
        self.carry = buf;
        self.found = f;
        self.found.clone()
    }

    /// End of body: examines what was held for context.
    pub fn finish(&mut self) -> Option<Finding> {
        if self.found.is_some() {
            return self.found.clone();
        }
        let buf = std::mem::take(&mut self.carry);
        self.found = self.examine(&buf, 0, true);
        self.found.clone()
    }

    /// `raw[fresh_from..]` is new; tokens ending before it were judged already,
    /// and a token touching the end waits for more (unless `last`).
    fn examine(&mut self, raw: &[u8], fresh_from: usize, last: bool) -> Option<Finding> {
        let text = unescape(raw);
        let needed = self.pairs_needed();
        if let Some(f) = self.exfil.scan(&text, self.base, needed) {
            return Some(f);
        }
        if !self.strict {
            return None;
        }
        // Offsets in `text` shift a little after unescaping; judge tokens that
        // end in the new part (approximately) and report raw-ish offsets.
        let fresh = fresh_from.min(text.len());
        let mut i = 0;
        while i < text.len() {
            if !token_byte(text[i]) {
                i += 1;
                continue;
            }
            let start = i;
            while i < text.len() && token_byte(text[i]) {
                i += 1;
            }
            let end = i;
            if end <= fresh && fresh_from > 0 || end == text.len() && !last {
                continue;
            }
            // `name=value` glued into one run (form bodies): judge the value.
            let mut tok = &text[start..end];
            if let Some(eq) = tok.windows(2).rposition(|w| w[0] == b'=' && w[1] != b'=') {
                tok = &tok[eq + 1..];
            }
            if tok.len() < MIN_BODY_TOKEN {
                continue;
            }
            let tok = &tok[..tok.len().min(MAX_LAYER_INPUT)];
            if layers(tok) >= 2 {
                return Some(Finding {
                    detector: ENCODING_LAYERS,
                    offset: self.base + start,
                    len: end - start,
                    encoding: Encoding::Raw,
                });
            }
            if let Some(f) = self.dump_in_base64(tok, self.base + start) {
                return Some(f);
            }
        }
        None
    }

    /// Strict: an environment dump or credential file sent as one base64 layer.
    fn dump_in_base64(&mut self, tok: &[u8], at: usize) -> Option<Finding> {
        if tok.len() < 32 || self.decode_budget == 0 {
            return None;
        }
        let body = tok
            .strip_suffix(b"==")
            .or(tok.strip_suffix(b"="))
            .unwrap_or(tok);
        let n = body.len().min(self.decode_budget) / 4 * 4;
        let eng = if body.iter().any(|&b| b == b'-' || b == b'_') {
            &base64::engine::general_purpose::URL_SAFE_NO_PAD
        } else {
            &base64::engine::general_purpose::STANDARD_NO_PAD
        };
        let decoded = eng.decode(&body[..n]).ok()?;
        self.decode_budget = self.decode_budget.saturating_sub(n);
        if !printable(&decoded) {
            return None;
        }
        let mut inner = ExfilState::default();
        inner
            .scan(&unescape(&decoded), 0, self.pairs_needed())
            .map(|f| Finding {
                detector: f.detector,
                offset: at,
                len: tok.len(),
                encoding: Encoding::Base64,
            })
    }
}

/// [`BodyWatch`] over a whole body at once.
pub fn scan_body(body: &[u8], strict: bool) -> Option<Finding> {
    let mut w = BodyWatch::new(strict);
    w.push(body).or_else(|| w.finish())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::anomaly::{CREDENTIAL_FILE, ENV_DUMP};
    use base64::engine::general_purpose::STANDARD;

    fn val(seed: usize) -> String {
        let a = b"Q7mZp2Lx9Vt4Kc8Rw1Hn6Jd3Fs5Gb0Ye";
        (0..32)
            .map(|i| a[(i * 7 + seed * 5) % a.len()] as char)
            .collect()
    }

    #[test]
    fn unescapes_json_and_percent() {
        assert_eq!(&*unescape(br#"a\nb\"c\u0041%3D"#), b"a\nb\"cA=");
        assert!(matches!(unescape(b"plain"), Cow::Borrowed(_)));
    }

    #[test]
    fn env_dump_in_a_json_rpc_body_whatever_the_chunking() {
        let dump = format!(
            "GITHUB_TOKEN={}\nAWS_SECRET_ACCESS_KEY={}\n",
            val(1),
            val(2)
        );
        let body = serde_json::json!({
            "jsonrpc": "2.0", "id": 7, "method": "tools/call",
            "params": {"name": "post_note", "arguments": {"text": dump}}
        })
        .to_string();
        for cut in [1, 7, 50, 4096] {
            let mut w = BodyWatch::new(false);
            let mut got = None;
            for c in body.as_bytes().chunks(cut) {
                got = got.or(w.push(c));
            }
            let got = got.or(w.finish());
            assert_eq!(got.map(|f| f.detector), Some(ENV_DUMP), "cut {cut}");
        }
    }

    #[test]
    fn layered_and_base64_wrapped_only_in_strict() {
        let layered = STANDARD.encode(hex::encode(STANDARD.encode("db password list")));
        let body = format!(r#"{{"note": "{layered}"}}"#);
        assert_eq!(scan_body(body.as_bytes(), false), None);
        assert_eq!(
            scan_body(body.as_bytes(), true).map(|f| f.detector),
            Some(ENCODING_LAYERS)
        );
        let creds = format!("[default]\naws_secret_access_key = {}\n", val(4));
        let wrapped = format!(r#"{{"file": "{}"}}"#, STANDARD.encode(&creds));
        assert_eq!(scan_body(wrapped.as_bytes(), false), None);
        assert_eq!(
            scan_body(wrapped.as_bytes(), true).map(|f| f.detector),
            Some(CREDENTIAL_FILE)
        );
    }
}
