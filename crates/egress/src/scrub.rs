//! Streaming scrubber: replaces every encoded form of an injected secret with
//! [`REDACTED`] in a byte stream, also when a form is split across chunks.
//!
//! Forms of each secret `S` (see [`forms`]): raw, standard base64 and base64url
//! at all three byte alignments (so `S` embedded anywhere in a larger encoded
//! blob is found), percent-encoded (reserved bytes only, and every byte as
//! `%XX`; upper and lower hex digits), and hex (lower and upper case).
//!
//! Hold-back is bounded: at most `max_len - 1` bytes are held between chunks,
//! and only bytes that are a proper prefix of some form (so a server-sent event
//! ending in `\n\n` is never delayed).

use std::sync::Arc;

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, MatchKind};
use base64::engine::general_purpose::{STANDARD_NO_PAD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use bytes::{Bytes, BytesMut};
use zeroize::Zeroizing;

/// What every occurrence of a secret form is replaced with.
pub const REDACTED: &[u8] = b"[REDACTED by egress]";

/// Forms shorter than this are not searched for (they would match innocent text).
pub const MIN_FORM_LEN: usize = 4;

/// A body (or header value) that *starts* with the last this-many-or-more bytes of a
/// form, or *ends* with its first this-many-or-more bytes, has that fragment redacted
/// too: it is what a `Range` request or a truncating origin would return.
pub const MIN_FRAGMENT: usize = 8;

/// Errors building a pattern set.
#[derive(Debug, thiserror::Error)]
pub enum ScrubError {
    #[error("secret is empty")]
    Empty,
    #[error("could not build the scrub automaton: {0}")]
    Build(String),
}

/// The compiled set of forms of one or more secrets.
pub struct Patterns {
    ac: AhoCorasick,
    pats: Vec<Zeroizing<Vec<u8>>>,
    first: [bool; 256],
    /// bytes that occur anywhere in a form after its first byte
    inner: [bool; 256],
    max_len: usize,
}

impl std::fmt::Debug for Patterns {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Patterns([REDACTED]; {} forms)", self.pats.len())
    }
}

const UNRESERVED: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~";

fn pct(s: &[u8], all: bool, upper: bool) -> Vec<u8> {
    let digits: &[u8; 16] = if upper {
        b"0123456789ABCDEF"
    } else {
        b"0123456789abcdef"
    };
    let mut out = Vec::with_capacity(s.len() * 3);
    for &b in s {
        if !all && UNRESERVED.contains(&b) {
            out.push(b);
        } else {
            out.push(b'%');
            out.push(digits[usize::from(b >> 4)]);
            out.push(digits[usize::from(b & 0x0f)]);
        }
    }
    out
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Json {
    Plain,
    Slash,
    Html,
}

fn json_escape(s: &[u8], style: Json) -> Vec<u8> {
    let mut out = Vec::with_capacity(s.len() + 8);
    for &b in s {
        match b {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'/' if style == Json::Slash => out.extend_from_slice(b"\\/"),
            b'&' | b'<' | b'>' if style == Json::Html => {
                out.extend_from_slice(format!("\\u{:04x}", b).as_bytes())
            }
            _ => out.push(b),
        }
    }
    out
}

/// Every form of `secret` that is searched for (deduplicated, each at least
/// [`MIN_FORM_LEN`] bytes).
pub fn forms(secret: &[u8]) -> Vec<Zeroizing<Vec<u8>>> {
    let n = secret.len();
    let mut out: Vec<Zeroizing<Vec<u8>>> = Vec::new();
    let mut push = |v: Vec<u8>| {
        let v = Zeroizing::new(v);
        if v.len() >= MIN_FORM_LEN && !out.iter().any(|o| **o == *v) {
            out.push(v);
        }
    };
    push(secret.to_vec());
    for engine in [&STANDARD_NO_PAD, &URL_SAFE_NO_PAD] {
        for k in 0..3usize {
            let mut padded = Zeroizing::new(vec![0u8; k]);
            padded.extend_from_slice(secret);
            let enc = Zeroizing::new(engine.encode(&*padded).into_bytes());
            // characters whose six bits come only from `secret`
            let start = (8 * k).div_ceil(6);
            let end = (8 * (k + n)) / 6;
            if end > start {
                push(enc[start..end].to_vec());
            }
        }
    }
    push(pct(secret, false, true));
    push(pct(secret, false, false));
    push(pct(secret, true, true));
    push(pct(secret, true, false));
    push(hex::encode(secret).into_bytes());
    push(hex::encode_upper(secret).into_bytes());
    // form encoding (space as `+`)
    if secret.contains(&b' ') {
        let f = String::from_utf8_lossy(&pct(secret, false, true)).replace("%20", "+");
        push(f.into_bytes());
    }
    // JSON string escapes: plain (`"` and `\`), PHP-style (`/` as `\/`),
    // Go-style HTML-safe (`&`, `<`, `>` as `\u00XX`)
    for style in [Json::Plain, Json::Slash, Json::Html] {
        push(json_escape(secret, style));
    }
    out
}

impl Patterns {
    /// Compile the forms of every secret in `secrets`.
    pub fn new<S: AsRef<[u8]>>(secrets: &[S]) -> Result<Patterns, ScrubError> {
        let mut pats: Vec<Zeroizing<Vec<u8>>> = Vec::new();
        for s in secrets {
            let s = s.as_ref();
            if s.is_empty() {
                return Err(ScrubError::Empty);
            }
            for f in forms(s) {
                if !pats.iter().any(|p| **p == *f) {
                    pats.push(f);
                }
            }
        }
        let ac = AhoCorasickBuilder::new()
            .match_kind(MatchKind::LeftmostLongest)
            .build(pats.iter().map(|p| p.as_slice()))
            .map_err(|e| ScrubError::Build(e.to_string()))?;
        let mut first = [false; 256];
        for p in &pats {
            if let Some(&b) = p.first() {
                first[usize::from(b)] = true;
            }
        }
        let mut inner = [false; 256];
        for p in &pats {
            for &b in p.iter().skip(1) {
                inner[usize::from(b)] = true;
            }
        }
        let max_len = pats.iter().map(|p| p.len()).max().unwrap_or(0);
        Ok(Patterns {
            ac,
            pats,
            first,
            inner,
            max_len,
        })
    }

    /// Number of forms searched for.
    pub fn len(&self) -> usize {
        self.pats.len()
    }

    /// True when no form is searched for.
    pub fn is_empty(&self) -> bool {
        self.pats.is_empty()
    }

    /// Longest form, in bytes (the hold-back bound is one less).
    pub fn max_len(&self) -> usize {
        self.max_len
    }

    /// Does `hay` contain any form?
    pub fn contains(&self, hay: &[u8]) -> bool {
        self.ac.is_match(hay)
    }

    /// Replace every form in a complete buffer; returns the count of replacements.
    pub fn scrub_all(&self, data: &[u8]) -> (Vec<u8>, u64) {
        let mut out = Vec::with_capacity(data.len());
        let mut pos = 0;
        let mut n = 0;
        for m in self.ac.find_iter(data) {
            out.extend_from_slice(&data[pos..m.start()]);
            out.extend_from_slice(REDACTED);
            pos = m.end();
            n += 1;
        }
        out.extend_from_slice(&data[pos..]);
        (out, n)
    }

    /// Length of the longest `k >= MIN_FRAGMENT` such that `buf[..k]` is a proper
    /// suffix of some form (a fragment cut at the start of a body).
    pub fn leading_fragment(&self, buf: &[u8]) -> Option<usize> {
        let first = *buf.first()?;
        if !self.inner[usize::from(first)] {
            return None;
        }
        let mut best: Option<usize> = None;
        for p in &self.pats {
            // smallest start j >= 1 (longest suffix) whose bytes begin `buf`
            let last_start = p.len().saturating_sub(MIN_FRAGMENT);
            let mut from = 1;
            while from <= last_start {
                let Some(off) = p[from..=last_start].iter().position(|&b| b == first) else {
                    break;
                };
                let j = from + off;
                from = j + 1;
                let k = p.len() - j;
                if best.is_some_and(|b| k <= b) {
                    break;
                }
                if k <= buf.len() && p[j..] == buf[..k] {
                    best = Some(k);
                    break;
                }
            }
        }
        best
    }

    /// Length of the longest `k >= MIN_FRAGMENT` such that the last `k` bytes of
    /// `buf` are a proper prefix of some form (a fragment cut at the end).
    pub fn trailing_fragment(&self, buf: &[u8]) -> Option<usize> {
        let last = *buf.last()?;
        let mut best: Option<usize> = None;
        for p in &self.pats {
            let top = buf.len().min(p.len().saturating_sub(1));
            let mut k = top;
            while k >= MIN_FRAGMENT && best.is_none_or(|b| k > b) {
                if p[k - 1] == last && buf[buf.len() - k..] == p[..k] {
                    best = Some(k);
                    break;
                }
                k -= 1;
            }
        }
        best
    }

    /// A form, or a fragment of one at either end (see [`MIN_FRAGMENT`]).
    pub fn contains_or_edge(&self, hay: &[u8]) -> bool {
        self.contains(hay)
            || self.leading_fragment(hay).is_some()
            || self.trailing_fragment(hay).is_some()
    }

    /// Is `tail` a proper prefix of some form (so more bytes could complete it)?
    fn could_extend(&self, tail: &[u8]) -> bool {
        match tail.first() {
            Some(&b) if self.first[usize::from(b)] => self
                .pats
                .iter()
                .any(|p| p.len() > tail.len() && p.starts_with(tail)),
            _ => false,
        }
    }
}

/// Streaming state for one body.
pub struct StreamScrubber {
    pats: Arc<Patterns>,
    held: Zeroizing<Vec<u8>>,
    count: u64,
    started: bool,
}

impl std::fmt::Debug for StreamScrubber {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "StreamScrubber {{ held: {} bytes, count: {} }}",
            self.held.len(),
            self.count
        )
    }
}

impl StreamScrubber {
    pub fn new(pats: Arc<Patterns>) -> StreamScrubber {
        StreamScrubber {
            pats,
            held: Zeroizing::new(Vec::new()),
            count: 0,
            started: false,
        }
    }

    /// Replacements made so far.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// Bytes currently held back.
    pub fn held(&self) -> usize {
        self.held.len()
    }

    /// Feed one chunk; returns what may be released now (possibly empty).
    pub fn push(&mut self, chunk: Bytes) -> Bytes {
        if !self.started && !chunk.is_empty() {
            self.started = true;
            if let Some(k) = self.pats.leading_fragment(&chunk) {
                self.count += 1;
                let rest = self.push(chunk.slice(k..));
                let mut out = BytesMut::with_capacity(REDACTED.len() + rest.len());
                out.extend_from_slice(REDACTED);
                out.extend_from_slice(&rest);
                return out.freeze();
            }
        }
        if self.held.is_empty() {
            let (out, hold) = self.process(&chunk);
            return match out {
                // nothing replaced: release a zero-copy slice
                None => {
                    self.held.extend_from_slice(&chunk[hold..]);
                    chunk.slice(..hold)
                }
                Some(out) => {
                    self.held.extend_from_slice(&chunk[hold..]);
                    out.freeze()
                }
            };
        }
        let mut buf = Zeroizing::new(std::mem::take(&mut *self.held));
        buf.extend_from_slice(&chunk);
        let (out, hold) = self.process(&buf);
        let out = match out {
            None => Bytes::copy_from_slice(&buf[..hold]),
            Some(out) => out.freeze(),
        };
        self.held.extend_from_slice(&buf[hold..]);
        out
    }

    /// End of stream: release whatever is held, scrubbed.
    pub fn finish(&mut self) -> Bytes {
        if self.held.is_empty() {
            return Bytes::new();
        }
        let held = Zeroizing::new(std::mem::take(&mut *self.held));
        let (out, n) = self.pats.scrub_all(&held);
        self.count += n;
        if n == 0 && held.len() >= MIN_FRAGMENT {
            // what is held is a proper prefix of a form: the body was cut inside it
            self.count += 1;
            return Bytes::from_static(REDACTED);
        }
        Bytes::from(out)
    }

    /// Scan `buf`: returns (output up to the hold point if anything was replaced,
    /// else None meaning `buf[..hold]` verbatim; hold point).
    fn process(&mut self, buf: &[u8]) -> (Option<BytesMut>, usize) {
        let pats = Arc::clone(&self.pats);
        let mut out: Option<BytesMut> = None;
        let mut pos = 0;
        for m in pats.ac.find_iter(buf) {
            if pats.could_extend(&buf[m.start()..]) {
                break;
            }
            let o = out.get_or_insert_with(|| BytesMut::with_capacity(buf.len()));
            o.extend_from_slice(&buf[pos..m.start()]);
            o.extend_from_slice(REDACTED);
            pos = m.end();
            self.count += 1;
        }
        let lo = pos.max(buf.len().saturating_sub(pats.max_len.saturating_sub(1)));
        let mut hold = buf.len();
        for s in lo..buf.len() {
            if pats.could_extend(&buf[s..]) {
                hold = s;
                break;
            }
        }
        match out {
            Some(mut o) => {
                o.extend_from_slice(&buf[pos..hold]);
                (Some(o), hold)
            }
            None => (None, hold),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    const SECRET: &str = "ghp_CanaryT0ken/with+odd=chars_1234567890";

    fn pats() -> Arc<Patterns> {
        Arc::new(Patterns::new(&[SECRET]).unwrap())
    }

    fn every_encoding(secret: &str) -> Vec<Vec<u8>> {
        let s = secret.as_bytes();
        let mut v = vec![s.to_vec()];
        for pre in ["", "x", "xy", "xyz"] {
            let mut p = pre.as_bytes().to_vec();
            p.extend_from_slice(s);
            p.extend_from_slice(b"trailing");
            v.push(
                base64::engine::general_purpose::STANDARD
                    .encode(&p)
                    .into_bytes(),
            );
            v.push(
                base64::engine::general_purpose::URL_SAFE
                    .encode(&p)
                    .into_bytes(),
            );
        }
        v.push(pct(s, false, true));
        v.push(pct(s, false, false));
        v.push(pct(s, true, true));
        v.push(pct(s, true, false));
        v.push(hex::encode(s).into_bytes());
        v.push(hex::encode_upper(s).into_bytes());
        v.push(secret.replace('/', "\\/").into_bytes());
        v
    }

    fn run_stream(p: &Arc<Patterns>, input: &[u8], splits: &[usize]) -> (Vec<u8>, u64) {
        let mut sc = StreamScrubber::new(Arc::clone(p));
        let mut out = Vec::new();
        let mut last = 0;
        for &s in splits {
            out.extend_from_slice(&sc.push(Bytes::copy_from_slice(&input[last..s])));
            assert!(sc.held() < p.max_len());
            last = s;
        }
        out.extend_from_slice(&sc.push(Bytes::copy_from_slice(&input[last..])));
        out.extend_from_slice(&sc.finish());
        (out, sc.count())
    }

    #[test]
    fn every_form_is_found_whole() {
        let p = pats();
        for enc in every_encoding(SECRET) {
            let mut input = b"prefix ".to_vec();
            input.extend_from_slice(&enc);
            input.extend_from_slice(b" suffix");
            let (out, n) = p.scrub_all(&input);
            assert!(n >= 1, "not found: {}", String::from_utf8_lossy(&enc));
            let s = String::from_utf8_lossy(&out);
            assert!(s.contains("[REDACTED by egress]"));
            assert!(!s.contains("Canary"), "{s}");
        }
    }

    #[test]
    fn every_form_is_found_at_every_split_point() {
        let p = pats();
        for enc in every_encoding(SECRET) {
            let mut input = b"data: ".to_vec();
            input.extend_from_slice(&enc);
            input.extend_from_slice(b"\n\n");
            for cut in 1..input.len() {
                let (out, n) = run_stream(&p, &input, &[cut]);
                assert!(n >= 1);
                let s = String::from_utf8_lossy(&out);
                assert!(s.starts_with("data: "), "{s}");
                assert!(s.ends_with("\n\n"), "{s}");
                for other in every_encoding(SECRET) {
                    // no 12-byte window of any full form survives
                    for w in other.windows(24) {
                        assert!(
                            !out.windows(w.len()).any(|x| x == w),
                            "leak at cut {cut}: {s}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn byte_at_a_time_and_three_way_split() {
        let p = pats();
        let mut input = b"{\"token\":\"".to_vec();
        input.extend_from_slice(SECRET.as_bytes());
        input.extend_from_slice(b"\",\"again\":\"");
        input.extend_from_slice(hex::encode(SECRET).as_bytes());
        input.extend_from_slice(b"\"}");
        let splits: Vec<usize> = (1..input.len()).collect();
        let (out, n) = run_stream(&p, &input, &splits);
        assert_eq!(n, 2);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "{\"token\":\"[REDACTED by egress]\",\"again\":\"[REDACTED by egress]\"}"
        );
        let (out, n) = run_stream(&p, &input, &[5, 30, 31]);
        assert_eq!(n, 2);
        assert!(!String::from_utf8_lossy(&out).contains("Canary"));
    }

    #[test]
    fn clean_stream_passes_unchanged_and_sse_is_not_delayed() {
        let p = pats();
        let mut sc = StreamScrubber::new(Arc::clone(&p));
        let ev = Bytes::from_static(b"data: hello world\n\n");
        assert_eq!(sc.push(ev.clone()), ev);
        assert_eq!(sc.held(), 0);
        // a partial prefix of the secret is held, then released when it diverges
        let out = sc.push(Bytes::from_static(b"data: ghp_Can"));
        assert_eq!(&out[..], b"data: ");
        assert_eq!(sc.held(), 7);
        let out = sc.push(Bytes::from_static(b"dy\n\n"));
        assert_eq!(&out[..], b"ghp_Candy\n\n");
        assert_eq!(sc.finish(), Bytes::new());
        assert_eq!(sc.count(), 0);
    }

    #[test]
    fn truncated_stream_flushes_short_partial_prefix() {
        let p = pats();
        let (out, n) = run_stream(&p, b"abc ghp_Can", &[]);
        assert_eq!(n, 0);
        assert_eq!(out, b"abc ghp_Can");
    }

    #[test]
    fn fragments_at_body_edges_are_redacted() {
        let p = pats();
        // a body cut inside the secret at its end (e.g. Range: bytes=0-N)
        for splits in [vec![], vec![3], vec![9]] {
            let (out, n) = run_stream(&p, b"abc ghp_CanaryT0", &splits);
            assert_eq!(n, 1);
            assert_eq!(out, b"abc [REDACTED by egress]");
        }
        // a body starting inside the secret (e.g. Range: bytes=N-)
        let (out, n) = run_stream(&p, b"ryT0ken/with+odd=chars_1234567890\nrest", &[]);
        assert_eq!(n, 1);
        assert_eq!(out, b"[REDACTED by egress]\nrest");
        // also inside an encoding
        let hex = hex::encode(SECRET);
        let (out, n) = run_stream(&p, format!("{} tail", &hex[10..]).as_bytes(), &[]);
        assert_eq!(n, 1);
        assert_eq!(out, b"[REDACTED by egress] tail");
        // short or unrelated edges are untouched
        let (out, n) = run_stream(&p, b"7890 data: ok", &[]);
        assert_eq!((out.as_slice(), n), (&b"7890 data: ok"[..], 0));
        assert!(p.contains_or_edge(b"x: ghp_CanaryT0"));
        assert!(!p.contains_or_edge(b"plain header value"));
    }

    #[test]
    fn forms_are_deduplicated_and_long_enough() {
        let f = forms(b"abcdefgh");
        for x in &f {
            assert!(x.len() >= MIN_FORM_LEN);
        }
        let mut seen = f.iter().map(|x| x.to_vec()).collect::<Vec<_>>();
        seen.sort();
        seen.dedup();
        assert_eq!(seen.len(), f.len());
        assert!(Patterns::new(&[""]).is_err());
        assert!(!format!("{:?}", pats()).contains("Canary"));
    }

    /// Streaming over random chunkings of random text salted with every form
    /// gives exactly what one pass over the whole buffer gives.
    #[test]
    fn streaming_equals_one_shot_on_random_input() {
        let p = pats();
        let encs = every_encoding(SECRET);
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut rnd = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let alphabet = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789+/=%_-\n ";
        for _ in 0..300 {
            let mut input = Vec::new();
            for _ in 0..(rnd() % 12) {
                for _ in 0..(rnd() % 40) {
                    input.push(alphabet[(rnd() % alphabet.len() as u64) as usize]);
                }
                let e = &encs[(rnd() % encs.len() as u64) as usize];
                // sometimes only a prefix of a form (must not be redacted nor lost)
                let cut = if rnd() % 4 == 0 {
                    (rnd() as usize) % e.len()
                } else {
                    e.len()
                };
                input.extend_from_slice(&e[..cut]);
            }
            // the leading-fragment check looks at the first chunk only: keep it long
            let lo = p.max_len();
            let mut splits: Vec<usize> = (0..(rnd() % 6))
                .map(|_| (rnd() as usize) % (input.len() + 1))
                .filter(|&s| s >= lo && s < input.len())
                .collect();
            splits.sort_unstable();
            splits.dedup();
            let (streamed, n1) = run_stream(&p, &input, &splits);
            let (whole, n2) = run_stream(&p, &input, &[]);
            // and without edge fragments, one pass over the buffer agrees too
            if p.leading_fragment(&input).is_none() && p.trailing_fragment(&input).is_none() {
                let (one, _) = p.scrub_all(&input);
                assert_eq!(
                    String::from_utf8_lossy(&one),
                    String::from_utf8_lossy(&whole)
                );
            }
            assert_eq!(
                String::from_utf8_lossy(&streamed),
                String::from_utf8_lossy(&whole),
                "splits {splits:?}"
            );
            assert_eq!(n1, n2);
        }
    }

    #[test]
    fn json_and_form_escapes() {
        let secret = r#"tok&<en> "q"\s/x y"#;
        let p = Patterns::new(&[secret]).unwrap();
        for enc in [
            r#"tok\u0026\u003cen\u003e \"q\"\\s/x y"#.to_string(),
            r#"tok&<en> \"q\"\\s\/x y"#.to_string(),
            r#"tok&<en> \"q\"\\s/x y"#.to_string(),
            "tok%26%3Cen%3E+%22q%22%5Cs%2Fx+y".to_string(),
        ] {
            let (out, n) = p.scrub_all(format!("{{\"a\":\"{enc}\"}}").as_bytes());
            assert_eq!(n, 1, "{enc}");
            assert_eq!(out, b"{\"a\":\"[REDACTED by egress]\"}");
        }
    }

    #[test]
    fn several_secrets_in_one_set() {
        let p = Arc::new(
            Patterns::new(&["first-secret-value", "x-access-token:second-secret"]).unwrap(),
        );
        let basic =
            base64::engine::general_purpose::STANDARD.encode("x-access-token:second-secret");
        let input = format!("a first-secret-value b Basic {basic} c");
        let (out, n) = run_stream(&p, input.as_bytes(), &[9, 40]);
        assert_eq!(n, 2);
        let s = String::from_utf8(out).unwrap();
        assert!(!s.contains("first-secret"));
        assert!(!s.contains(&basic[..20]), "{s}");
    }
}
