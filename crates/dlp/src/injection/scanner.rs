//! The reading pipeline, one byte at a time with bounded state: UTF-8, then JSON string
//! values (or bare `\uXXXX` escapes), then markup, then normalisation; the normalised text
//! is judged every [`STEP`] bytes, [`LOOKAHEAD`] bytes behind its end (a rule may need the
//! rest of a sentence).

use super::judge;
use super::markup::Markup;
use super::norm::Norm;
use super::rules::MAX_MATCH;
use super::{ContentKind, InjectionFinding};

/// Normalised bytes judged at a time.
pub(crate) const STEP: usize = 2048;
/// Normalised bytes after a judged position read as the rest of its sentence.
pub(crate) const LOOKAHEAD: usize = 128;
/// Normalised text kept before what was judged: the next judgement looks back
/// [`MAX_MATCH`] into it.
const KEPT_BEFORE: usize = 1024;
const _: () = assert!(MAX_MATCH < KEPT_BEFORE);
/// Longest run read at once by the fast path (keeps judging frequent on huge chunks).
const FAST_RUN: usize = 1024;

/// Printable ASCII that starts no construct of any layer (no markup, reference, escape,
/// code span or line break).
fn plain_byte(b: u8) -> bool {
    (0x20..0x7f).contains(&b) && !matches!(b, b'<' | b'&' | b'`' | b'\\') || b == b'\t'
}

/// Nested decodings (base64 in base64 in base64) judged at most; each layer reads only
/// printable islands of the one above, so the work stays bounded.
pub(crate) const MAX_DEPTH: u8 = 3;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Json {
    /// Not decided yet (waiting for the first non-blank byte).
    Undecided,
    /// Began with `{` or `[` (at that offset): JSON if the next non-blank byte fits.
    Opened(char, usize),
    /// Not JSON: only bare `\uXXXX` escapes are decoded.
    No,
    Outside,
    String,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Escape {
    None,
    /// After `\` (at that offset).
    Backslash(usize),
    /// After `\u`: offset, digits read, value.
    Hex(usize, u8, u32),
    /// After `\x` outside JSON (JavaScript, Python, C strings): offset, digits read, value.
    Byte(usize, u8, u32),
}

pub(crate) struct Scanner {
    pub(crate) kind: ContentKind,
    /// Decoded payloads: everything read is hidden from a human.
    pub(crate) all_hidden: bool,
    /// The page has said it is about prompt injection (its code and quotations are examples).
    pub(crate) doc_page: bool,
    pub(crate) depth: u8,
    utf8: [u8; 4],
    utf8_len: usize,
    utf8_at: usize,
    /// Input offset of the next byte.
    pub(crate) pos: usize,
    json: Json,
    escape: Escape,
    high_surrogate: Option<u32>,
    markup: Markup,
    pub(crate) norm: Norm,
    /// Normalised position up to which every rule match has been judged.
    pub(crate) judged: usize,
    pub(crate) findings: Vec<InjectionFinding>,
}

impl Scanner {
    pub(crate) fn new(kind: ContentKind, all_hidden: bool, depth: u8) -> Scanner {
        let json = match kind {
            ContentKind::Json => Json::Outside,
            ContentKind::Html | ContentKind::Markdown => Json::No,
            ContentKind::Text | ContentKind::ToolDescription => Json::Undecided,
        };
        Scanner {
            kind,
            all_hidden,
            doc_page: false,
            depth,
            utf8: [0; 4],
            utf8_len: 0,
            utf8_at: 0,
            pos: 0,
            json,
            escape: Escape::None,
            high_surrogate: None,
            markup: Markup::new(kind != ContentKind::Html),
            norm: Norm::new(),
            judged: 0,
            findings: Vec::new(),
        }
    }

    /// Reads more input.
    pub(crate) fn feed(&mut self, bytes: &[u8]) {
        let mut i = 0;
        while i < bytes.len() {
            let fast = self.fast_run(&bytes[i..]);
            if fast > 0 {
                i += fast;
            } else {
                let b = bytes[i];
                let at = self.pos;
                self.pos += 1;
                i += 1;
                if self.utf8_len == 0 && b < 0x80 {
                    self.char_in(b as char, at);
                } else {
                    self.utf8_byte(b, at);
                }
            }
            if self.norm.end() >= self.judged + STEP + LOOKAHEAD {
                let to = self.norm.end() - LOOKAHEAD;
                self.judge_to(to);
            }
        }
    }

    /// Reads a run of plain ASCII text (or JSON structure) at once, when no construct is
    /// open; returns the bytes read (0: take the byte-at-a-time path).
    fn fast_run(&mut self, bytes: &[u8]) -> usize {
        if self.utf8_len != 0 || self.escape != Escape::None {
            return 0;
        }
        let bytes = &bytes[..bytes.len().min(FAST_RUN)];
        if self.json == Json::Outside {
            // Between JSON strings nothing is read.
            let n = memchr::memchr(b'"', bytes).unwrap_or(bytes.len());
            self.pos += n;
            return n;
        }
        let in_string = self.json == Json::String;
        if !(in_string || self.json == Json::No) {
            return 0;
        }
        let Some(flags) = self.markup.plain_flags() else {
            return 0;
        };
        let n = bytes
            .iter()
            .position(|&b| !plain_byte(b) || (in_string && b == b'"'))
            .unwrap_or(bytes.len());
        if n > 0 {
            self.norm.push_ascii(&bytes[..n], self.pos, flags);
            self.pos += n;
        }
        n
    }

    /// The input ended: everything is read and judged.
    pub(crate) fn finish(&mut self) {
        if self.utf8_len > 0 {
            self.utf8_len = 0;
            self.char_in('\u{fffd}', self.utf8_at);
        }
        self.flush_escape();
        let at = self.pos;
        self.markup.finish(at, &mut self.norm);
        self.norm.finish(at);
        self.judge_to(self.norm.end());
    }

    /// Judges every match ending before normalised position `to`.
    pub(crate) fn judge_to(&mut self, to: usize) {
        if to <= self.judged {
            return;
        }
        let from = self.judged;
        judge::judge(self, from, to);
        self.judged = to;
        self.norm.trim(to.saturating_sub(KEPT_BEFORE));
    }

    /// Input offset before which every byte may be released: no finding can start there.
    pub(crate) fn safe_offset(&self) -> usize {
        let open = self.judged.saturating_sub(MAX_MATCH);
        let mut safe = self.norm.orig_at(open).unwrap_or(self.pos);
        if open < self.norm.base {
            // Trimmed already (only after a forced judgement): nothing before the kept text.
            safe = self.norm.orig_at(self.norm.base).unwrap_or(self.pos);
        }
        if self.utf8_len > 0 {
            safe = safe.min(self.utf8_at);
        }
        if let Escape::Backslash(at) | Escape::Hex(at, _, _) | Escape::Byte(at, _, _) = self.escape
        {
            safe = safe.min(at);
        }
        if let Some(at) = self.markup.pending_from() {
            safe = safe.min(at);
        }
        safe
    }

    fn utf8_byte(&mut self, b: u8, at: usize) {
        if self.utf8_len == 0 {
            self.utf8_at = at;
        }
        self.utf8[self.utf8_len] = b;
        self.utf8_len += 1;
        let need = match self.utf8[0] {
            0xC0..=0xDF => 2,
            0xE0..=0xEF => 3,
            0xF0..=0xF7 => 4,
            _ => 1,
        };
        if self.utf8_len < need && (self.utf8_len == 1 || b & 0xC0 == 0x80) {
            return;
        }
        let len = self.utf8_len;
        self.utf8_len = 0;
        let start = self.utf8_at;
        match std::str::from_utf8(&self.utf8[..len]) {
            Ok(s) => {
                if let Some(c) = s.chars().next() {
                    self.char_in(c, start);
                }
            }
            Err(_) => {
                self.char_in('\u{fffd}', start);
                // A broken sequence: a following lead or ASCII byte starts afresh.
                if len > 1 && b & 0xC0 != 0x80 {
                    self.utf8_byte(b, at);
                }
            }
        }
    }

    fn char_in(&mut self, c: char, at: usize) {
        match self.json {
            Json::Undecided => {
                if c.is_whitespace() {
                    return;
                }
                if c == '{' || c == '[' {
                    self.json = Json::Opened(c, at);
                } else {
                    self.json = Json::No;
                    self.char_in(c, at);
                }
            }
            Json::Opened(first, first_at) => {
                if c.is_whitespace() {
                    return;
                }
                let json = matches!(c, '"' | '{' | '[' | '}' | ']' | '-') || c.is_ascii_digit();
                if json {
                    self.json = Json::Outside;
                } else {
                    // `[note] text`: not JSON; the opening bracket is text.
                    self.json = Json::No;
                    self.char_in(first, first_at);
                }
                self.char_in(c, at);
            }
            Json::Outside => {
                if c == '"' {
                    self.json = Json::String;
                }
            }
            Json::String if self.escape == Escape::None && c == '"' => {
                self.high_surrogate = None;
                self.json = Json::Outside;
                self.markup.end_value(at, &mut self.norm);
            }
            Json::String | Json::No => self.escaped(c, at),
        }
    }

    /// Backslash escapes: all of JSON's inside a JSON string, `\uXXXX` elsewhere.
    fn escaped(&mut self, c: char, at: usize) {
        let in_json = self.json == Json::String;
        match self.escape {
            Escape::None => {
                if c == '\\' {
                    self.escape = Escape::Backslash(at);
                } else {
                    self.text(c, at);
                }
            }
            Escape::Backslash(start) => {
                self.escape = Escape::None;
                match c {
                    'u' => self.escape = Escape::Hex(start, 0, 0),
                    'x' if !in_json => self.escape = Escape::Byte(start, 0, 0),
                    _ if !in_json => {
                        self.text('\\', start);
                        self.escaped(c, at);
                    }
                    'n' | 'r' => self.text('\n', start),
                    't' => self.text(' ', start),
                    'b' | 'f' => {}
                    _ => self.text(c, start),
                }
            }
            Escape::Hex(start, n, v) => match c.to_digit(16) {
                Some(d) => {
                    let v = v * 16 + d;
                    if n + 1 < 4 {
                        self.escape = Escape::Hex(start, n + 1, v);
                        return;
                    }
                    self.escape = Escape::None;
                    match v {
                        0xD800..=0xDBFF => self.high_surrogate = Some(v),
                        0xDC00..=0xDFFF => {
                            if let Some(hi) = self.high_surrogate.take() {
                                let cp = 0x10000 + ((hi - 0xD800) << 10) + (v - 0xDC00);
                                if let Some(ch) = char::from_u32(cp) {
                                    self.text(ch, start);
                                }
                            }
                        }
                        _ => {
                            if let Some(ch) = char::from_u32(v) {
                                self.text(ch, start);
                            }
                        }
                    }
                }
                None => {
                    self.flush_escape();
                    self.escaped(c, at);
                }
            },
            Escape::Byte(start, n, v) => match c.to_digit(16) {
                Some(d) if n == 0 => self.escape = Escape::Byte(start, 1, d),
                Some(d) => {
                    self.escape = Escape::None;
                    if let Some(ch) = char::from_u32(v * 16 + d) {
                        self.text(ch, start);
                    }
                }
                None => {
                    self.flush_escape();
                    self.escaped(c, at);
                }
            },
        }
    }

    /// An unfinished escape is read as the text it is.
    fn flush_escape(&mut self) {
        match std::mem::replace(&mut self.escape, Escape::None) {
            Escape::None => {}
            Escape::Backslash(start) => self.text('\\', start),
            Escape::Byte(start, n, v) => {
                self.text('\\', start);
                self.text('x', start);
                if n == 1 {
                    if let Some(ch) = char::from_digit(v, 16) {
                        self.text(ch, start);
                    }
                }
            }
            Escape::Hex(start, n, v) => {
                self.text('\\', start);
                self.text('u', start);
                for i in (0..n).rev() {
                    let digit = (v >> (4 * u32::from(i))) & 0xF;
                    if let Some(ch) = char::from_digit(digit, 16) {
                        self.text(ch, start);
                    }
                }
            }
        }
    }

    fn text(&mut self, c: char, at: usize) {
        self.markup.push(c, at, &mut self.norm);
    }
}
