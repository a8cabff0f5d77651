//! Streaming scrubber: replaces every encoded form of an injected secret with
//! [`REDACTED`] in a byte stream, also when a form is split across chunks.
//!
//! Two automata run over each buffer:
//! - the *view* automaton over the normalised, lowercased view (see
//!   [`view`]: `%XX` and `\u00XX` decoded, `\/` `\"` `\\` unescaped). Its forms
//!   ([`view_forms`]) are the secret, its base64 and base64url at all three byte
//!   alignments, its hex, its form encoding and its fully percent-encoded
//!   spellings (for double encoding). Any subset of bytes percent- or
//!   `\u`-escaped, in either hex case, and hex in any mix of cases, is found
//!   without enumerating the spellings; the match is mapped back to the original
//!   bytes that produced it, which are what gets redacted.
//! - the *raw* automaton, case-sensitive, over the original bytes, with the
//!   literal forms of [`forms`]. It matters only where decoding would swallow the
//!   start of a literal secret (a stray `%4` before a secret starting with `1`),
//!   so it runs only on buffers where some escape was decoded.
//!
//! Hold-back is bounded (see [`Patterns::max_hold`]) and covers only bytes that
//! could still start a form (or an unfinished escape), so a server-sent event
//! ending in `\n\n` is never delayed.

mod view;

use std::sync::Arc;

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, MatchKind};
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
    /// literal forms, on the original bytes
    ac: AhoCorasick,
    pats: Vec<Zeroizing<Vec<u8>>>,
    first: [bool; 256],
    /// bytes that occur anywhere in a form after its first byte
    inner: [bool; 256],
    max_len: usize,
    /// view forms (lowercase), on the normalised, lowercased view
    vac: AhoCorasick,
    vpats: Vec<Zeroizing<Vec<u8>>>,
    vfirst: [bool; 256],
    /// bytes (either case) some view form contains: only their escapes are decoded
    relevant: [bool; 256],
    vmax: usize,
}

/// Longest escape in original bytes (an HTML reference like `&equals;`; `\u00XX` is 6).
const MAX_ESCAPE: usize = view::MAX_ENTITY;

/// A buffer's scan: redaction spans (original offsets, sorted, disjoint) and the
/// offset from which bytes must be held for more input.
struct Scan {
    spans: Vec<(usize, usize)>,
    hold: usize,
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

/// Standard base64 and base64url of `secret` at all three byte alignments: the characters
/// whose six bits come only from `secret` (the same cores pipelock's DLP searches for).
fn base64_forms(secret: &[u8]) -> Vec<Vec<u8>> {
    [false, true]
        .into_iter()
        .flat_map(|url| bottle_dlp::base64_cores(secret, url))
        .map(|core| core.as_bytes().to_vec())
        .collect()
}

/// Every literal form of `secret` that is searched for (deduplicated, each at
/// least [`MIN_FORM_LEN`] bytes).
pub fn forms(secret: &[u8]) -> Vec<Zeroizing<Vec<u8>>> {
    let mut out: Vec<Zeroizing<Vec<u8>>> = Vec::new();
    let mut push = |v: Vec<u8>| {
        let v = Zeroizing::new(v);
        if v.len() >= MIN_FORM_LEN && !out.iter().any(|o| **o == *v) {
            out.push(v);
        }
    };
    push(secret.to_vec());
    for f in base64_forms(secret) {
        push(f);
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

/// The forms of `secret` searched for in the normalised view, lowercase like the
/// view (so any case matches; deduplicated, each at least [`MIN_FORM_LEN`] bytes).
pub fn view_forms(secret: &[u8]) -> Vec<Zeroizing<Vec<u8>>> {
    let mut out: Vec<Zeroizing<Vec<u8>>> = Vec::new();
    let mut push = |mut v: Vec<u8>| {
        v.make_ascii_lowercase();
        let v = Zeroizing::new(v);
        if v.len() >= MIN_FORM_LEN && !out.iter().any(|o| **o == *v) {
            out.push(v);
        }
    };
    // the view decodes every escape, so percent-encoded and JSON-escaped
    // spellings read as the secret itself
    push(secret.to_vec());
    for f in base64_forms(secret) {
        push(f);
    }
    push(hex::encode(secret).into_bytes());
    if secret.contains(&b' ') {
        let mut f = secret.to_vec();
        for b in f.iter_mut().filter(|b| **b == b' ') {
            *b = b'+';
        }
        push(f);
    }
    // percent-encoded twice (`%2541`) reads as percent-encoded once
    push(pct(secret, true, false));
    push(pct(secret, false, false));
    // UTF-16 (a .NET or Windows origin answering in `charset=utf-16`): a NUL beside
    // every ASCII byte matched no other form
    if let Ok(text) = std::str::from_utf8(secret) {
        push(text.encode_utf16().flat_map(u16::to_le_bytes).collect());
        push(text.encode_utf16().flat_map(u16::to_be_bytes).collect());
    }
    out
}

/// Which bytes start a pattern (`inner == false`) or occur after its first byte.
/// Is `tail` a proper prefix of one of `pats` (`first`: which bytes start one)?
fn proper_prefix_of_any(first: &[bool; 256], pats: &[Zeroizing<Vec<u8>>], tail: &[u8]) -> bool {
    match tail.first() {
        Some(&b) if first[usize::from(b)] => pats
            .iter()
            .any(|p| p.len() > tail.len() && p.starts_with(tail)),
        _ => false,
    }
}

fn table<'a>(pats: impl Iterator<Item = &'a [u8]>, inner: bool) -> [bool; 256] {
    let mut t = [false; 256];
    for p in pats {
        let part = if inner { p.get(1..) } else { p.get(..1) };
        for &b in part.unwrap_or_default() {
            t[usize::from(b)] = true;
        }
    }
    t
}

impl Patterns {
    /// Compile the forms of every secret in `secrets`.
    pub fn new<S: AsRef<[u8]>>(secrets: &[S]) -> Result<Patterns, ScrubError> {
        let mut pats: Vec<Zeroizing<Vec<u8>>> = Vec::new();
        let mut vpats: Vec<Zeroizing<Vec<u8>>> = Vec::new();
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
            for f in view_forms(s) {
                if !vpats.iter().any(|p| **p == *f) {
                    vpats.push(f);
                }
            }
        }
        let build = |ps: &[Zeroizing<Vec<u8>>]| {
            AhoCorasickBuilder::new()
                .match_kind(MatchKind::LeftmostLongest)
                .build(ps.iter().map(|p| p.as_slice()))
                .map_err(|e| ScrubError::Build(e.to_string()))
        };
        let ac = build(&pats)?;
        // the view is lowercased like the view forms: a case-sensitive automaton on
        // it is many times faster than an ASCII case-insensitive one
        let vac = build(&vpats)?;
        let first = table(pats.iter().map(|p| p.as_slice()), false);
        let inner = table(pats.iter().map(|p| p.as_slice()), true);
        let vfirst = table(vpats.iter().map(|p| p.as_slice()), false);
        let mut relevant = [false; 256];
        for &b in vpats.iter().flat_map(|p| p.iter()) {
            relevant[usize::from(b.to_ascii_lowercase())] = true;
            relevant[usize::from(b.to_ascii_uppercase())] = true;
        }
        let max_len = pats.iter().map(|p| p.len()).max().unwrap_or(0);
        let vmax = vpats.iter().map(|p| p.len()).max().unwrap_or(0);
        Ok(Patterns {
            ac,
            pats,
            first,
            inner,
            max_len,
            vac,
            vpats,
            vfirst,
            relevant,
            vmax,
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

    /// Longest literal form, in bytes.
    pub fn max_len(&self) -> usize {
        self.max_len
    }

    /// Most bytes a [`StreamScrubber`] ever holds between chunks: a proper prefix of
    /// a literal form, or of a view form spelled entirely in the longest escapes
    /// followed by an unfinished escape.
    pub fn max_hold(&self) -> usize {
        let view = (self.vmax.saturating_sub(1) * MAX_ESCAPE) + MAX_ESCAPE - 1;
        self.max_len.saturating_sub(1).max(view)
    }

    /// Does `hay` contain any form (in any spelling the view decodes, any case)?
    pub fn contains(&self, hay: &[u8]) -> bool {
        let v = view::decode(hay, &self.relevant, true);
        self.vac.is_match(&v.bytes) || (v.decoded() && self.ac.is_match(hay))
    }

    /// Replace every form in a complete buffer; returns the count of replacements.
    pub fn scrub_all(&self, data: &[u8]) -> (Vec<u8>, u64) {
        let sc = self.scan(data, true);
        let mut out = Vec::with_capacity(data.len());
        let mut pos = 0;
        for &(s, e) in &sc.spans {
            out.extend_from_slice(&data[pos..s]);
            out.extend_from_slice(REDACTED);
            pos = e;
        }
        out.extend_from_slice(&data[pos..]);
        (out, sc.spans.len() as u64)
    }

    /// Find what to redact in `buf`, and (unless `fin`) from where to hold bytes
    /// that more input could turn into a form. Matches starting at or after the
    /// hold point are left for the next scan.
    fn scan(&self, buf: &[u8], fin: bool) -> Scan {
        let view = view::decode(buf, &self.relevant, fin);
        let vbytes = &view.bytes[..];
        let mut hold = buf.len();
        if !fin {
            hold = view.end;
            let lo = vbytes.len().saturating_sub(self.vmax.saturating_sub(1));
            if let Some(q) = (lo..vbytes.len()).find(|&q| self.view_could_extend(&vbytes[q..])) {
                hold = hold.min(view.orig_start(q));
            }
            let lo = buf.len().saturating_sub(self.max_len.saturating_sub(1));
            if let Some(s) = (lo..hold).find(|&s| self.could_extend(&buf[s..])) {
                hold = s;
            }
            // never split an escape: the next scan must decode it whole
            if let Some((s, _)) = view.enclosing(hold) {
                hold = s;
            }
        }
        let mut spans: Vec<(usize, usize)> = Vec::new();
        for m in self.vac.find_iter(vbytes) {
            let s = view.orig_start(m.start());
            if s >= hold {
                break;
            }
            spans.push((s, view.orig_end(m.end())));
        }
        // where escapes were decoded, the literal forms too (a decoded escape can
        // swallow the start of a literal secret)
        if view.decoded() {
            let v = &view;
            for m in self.ac.find_iter(buf) {
                if m.start() >= hold {
                    break;
                }
                // widen to whole escapes at both ends
                let s = v.enclosing(m.start()).map_or(m.start(), |e| e.0);
                let e = v.enclosing(m.end()).map_or(m.end(), |e| e.1);
                spans.push((s, e));
            }
            spans.sort_unstable();
            let mut merged: Vec<(usize, usize)> = Vec::with_capacity(spans.len());
            for (s, e) in spans {
                match merged.last_mut() {
                    Some(last) if s < last.1 => last.1 = last.1.max(e),
                    _ => merged.push((s, e)),
                }
            }
            spans = merged;
        }
        Scan { spans, hold }
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

    /// Could `head` (the start of a body) still grow into a leading fragment: is it a
    /// proper prefix of a proper suffix, at least [`MIN_FRAGMENT`] long, of some form?
    fn could_lead(&self, head: &[u8]) -> bool {
        let Some(&first) = head.first() else {
            return false;
        };
        if !self.inner[usize::from(first)] {
            return false;
        }
        self.pats.iter().any(|p| {
            let last_start = p.len().saturating_sub(MIN_FRAGMENT);
            (1..=last_start).any(|j| p.len() - j > head.len() && p[j..].starts_with(head))
        })
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

    /// Does `buf` end in the start of a form, [`MIN_FRAGMENT`] or more bytes of it in any
    /// spelling the view decodes? What [`StreamScrubber::finish`] redacts when a body is cut
    /// there; a gRPC message is released whole, so its end is judged the same way.
    pub fn ends_in_fragment(&self, buf: &[u8]) -> bool {
        let sc = self.scan(buf, false);
        sc.hold < buf.len() && self.is_fragment(&buf[sc.hold..])
    }

    /// A form, or a fragment of one at either end (see [`MIN_FRAGMENT`]).
    pub fn contains_or_edge(&self, hay: &[u8]) -> bool {
        self.contains(hay)
            || self.leading_fragment(hay).is_some()
            || self.trailing_fragment(hay).is_some()
    }

    /// Is `tail` a proper prefix of some literal form (more bytes could complete it)?
    fn could_extend(&self, tail: &[u8]) -> bool {
        proper_prefix_of_any(&self.first, &self.pats, tail)
    }

    /// Is the (lowercased) view `tail` a proper prefix of some view form?
    fn view_could_extend(&self, tail: &[u8]) -> bool {
        proper_prefix_of_any(&self.vfirst, &self.vpats, tail)
    }

    /// Is `held` (what a stream ended on) a fragment worth redacting: at least
    /// [`MIN_FRAGMENT`] bytes of the start of a form, literal or in the view?
    fn is_fragment(&self, held: &[u8]) -> bool {
        if held.len() >= MIN_FRAGMENT && self.could_extend(held) {
            return true;
        }
        let v = view::decode(held, &self.relevant, true);
        let vb = &v.bytes[..];
        vb.len() >= MIN_FRAGMENT && self.view_could_extend(vb)
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
        // nothing new: nothing more can be released (an empty HTTP/2 DATA frame must
        // not release a held body start unchecked)
        if chunk.is_empty() {
            return Bytes::new();
        }
        if !self.started {
            // The leading-fragment check needs the whole fragment: while the start of
            // the body could still grow into one, hold it (an origin that sends the
            // first bytes of a fragment on their own must not get the rest past).
            let head = if self.held.is_empty() {
                chunk
            } else {
                let mut h = BytesMut::from(&self.held[..]);
                h.extend_from_slice(&chunk);
                self.held.clear();
                h.freeze()
            };
            if let Some(k) = self.pats.leading_fragment(&head) {
                self.started = true;
                self.count += 1;
                let rest = self.push(head.slice(k..));
                let mut out = BytesMut::with_capacity(REDACTED.len() + rest.len());
                out.extend_from_slice(REDACTED);
                out.extend_from_slice(&rest);
                return out.freeze();
            }
            if self.pats.could_lead(&head) {
                self.held.extend_from_slice(&head);
                return Bytes::new();
            }
            self.started = true;
            return self.push(head);
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
        if n == 0 && self.pats.is_fragment(&held) {
            // the body was cut inside a form
            self.count += 1;
            return Bytes::from_static(REDACTED);
        }
        Bytes::from(out)
    }

    /// Scan `buf`: returns (output up to the release point if anything was
    /// replaced, else None meaning `buf[..release]` verbatim; release point).
    fn process(&mut self, buf: &[u8]) -> (Option<BytesMut>, usize) {
        let sc = self.pats.scan(buf, false);
        if sc.spans.is_empty() {
            return (None, sc.hold);
        }
        let mut o = BytesMut::with_capacity(buf.len());
        let mut pos = 0;
        for &(s, e) in &sc.spans {
            o.extend_from_slice(&buf[pos..s]);
            o.extend_from_slice(REDACTED);
            pos = e;
            self.count += 1;
        }
        // a redaction may run past the hold point: release up to its end
        let release = sc.hold.max(pos);
        o.extend_from_slice(&buf[pos..release]);
        (Some(o), release)
    }
}

#[cfg(test)]
mod tests;
