//! The normalised text judged by the rules: folded, lower-cased, whitespace collapsed, each
//! byte mapped back to the input offset it came from and tagged with the context it was
//! read in (hidden, code, quote, obfuscated).
//!
//! Only a bounded tail is kept: the rules look back at most [`KEEP`] bytes.

use super::fold::{fold, Folded};

/// Text read inside hidden markup (comment, hidden element, attribute, tag characters).
pub(crate) const HIDDEN: u8 = 1;
/// Text read inside code (`<pre>`, `<code>`, markdown fences and backticks).
pub(crate) const CODE: u8 = 2;
/// Text read inside a quotation (`<blockquote>`, `<q>`, markdown `>`).
pub(crate) const QUOTE: u8 = 4;
/// An invisible control was dropped just before this byte, or it is a folded look-alike.
pub(crate) const OBFUSCATED: u8 = 8;
/// Text of an attribute (alt, title, meta content): hidden, but often mirrors visible text.
pub(crate) const ATTRIBUTE: u8 = 16;

/// Normalised bytes kept behind the judged position (context for the rules).
pub(crate) const KEEP: usize = 2048;

pub(crate) struct Norm {
    /// Lower-cased text (what the rules read).
    pub(crate) lower: Vec<u8>,
    /// The same text with its case (base64 and hex are case-sensitive).
    pub(crate) cased: Vec<u8>,
    /// Input offset of each byte.
    pub(crate) orig: Vec<usize>,
    /// Context flags of each byte.
    pub(crate) flags: Vec<u8>,
    /// Normalised position of `lower[0]`.
    pub(crate) base: usize,
    pending_space: Option<(bool, usize, u8)>,
    pending_obfuscation: bool,
}

impl Norm {
    pub(crate) fn new() -> Norm {
        Norm {
            lower: Vec::new(),
            cased: Vec::new(),
            orig: Vec::new(),
            flags: Vec::new(),
            base: 0,
            // A body starts at a line start (line-start rules see a `\n` before it).
            pending_space: Some((true, 0, 0)),
            pending_obfuscation: false,
        }
    }

    /// Normalised position after the last byte.
    pub(crate) fn end(&self) -> usize {
        self.base + self.lower.len()
    }

    /// Input offset of the normalised byte at position `pos`, if still kept.
    pub(crate) fn orig_at(&self, pos: usize) -> Option<usize> {
        pos.checked_sub(self.base)
            .and_then(|i| self.orig.get(i).copied())
    }

    /// Reads one character at input offset `at` in context `flags`.
    pub(crate) fn push_char(&mut self, c: char, at: usize, flags: u8) {
        match fold(c) {
            Folded::Drop { obfuscation } => self.pending_obfuscation |= obfuscation,
            Folded::Space { line } => self.space(line, at, flags),
            Folded::Ascii { byte, obfuscation } => {
                let f = flags | if obfuscation { OBFUSCATED } else { 0 };
                self.byte(byte, at, f);
            }
            Folded::Tag(byte) => self.byte(byte, at, flags | HIDDEN | OBFUSCATED),
            Folded::Other(c) => {
                let lower = c.to_lowercase().next().unwrap_or(c);
                let mut a = [0u8; 4];
                let mut b = [0u8; 4];
                let cased = c.encode_utf8(&mut a).as_bytes();
                let low = lower.encode_utf8(&mut b).as_bytes();
                // The two forms may differ in length: keep them aligned byte for byte.
                let n = cased.len().max(low.len());
                self.flush_space();
                for i in 0..n {
                    self.raw(
                        low.get(i).copied().unwrap_or(b'_'),
                        cased.get(i).copied().unwrap_or(b'_'),
                        at,
                        flags,
                    );
                }
            }
        }
    }

    /// Reads a run of printable ASCII and tabs starting at input offset `at`.
    pub(crate) fn push_ascii(&mut self, bytes: &[u8], at: usize, flags: u8) {
        for (i, &b) in bytes.iter().enumerate() {
            if b == b' ' || b == b'\t' {
                self.space(false, at + i, flags);
            } else {
                self.byte(b, at + i, flags);
            }
        }
    }

    /// Words joined by inline markup where a small letter meets a capital
    /// (`text<b>Ignore`): a reader sees two words.
    pub(crate) fn word_break(&mut self, at: usize) {
        if self.cased.last().is_some_and(|c| c.is_ascii_lowercase()) {
            self.space(false, at, 0);
        }
    }

    /// A block boundary (paragraph, list item, table cell, JSON value): a line break.
    pub(crate) fn boundary(&mut self, at: usize) {
        self.space(true, at, 0);
    }

    fn space(&mut self, line: bool, at: usize, flags: u8) {
        match &mut self.pending_space {
            Some((l, _, _)) => *l |= line,
            None => {
                match self.lower.last_mut() {
                    Some(last) if *last == b' ' && line => {
                        *last = b'\n';
                        if let Some(c) = self.cased.last_mut() {
                            *c = b'\n';
                        }
                        return;
                    }
                    Some(b' ' | b'\n') => return,
                    _ => {}
                }
                self.pending_space = Some((line, at, flags));
            }
        }
    }

    fn flush_space(&mut self) {
        if let Some((line, at, flags)) = self.pending_space.take() {
            let b = if line { b'\n' } else { b' ' };
            self.raw(b, b, at, flags & !OBFUSCATED);
        }
    }

    fn byte(&mut self, cased: u8, at: usize, flags: u8) {
        self.flush_space();
        self.raw(cased.to_ascii_lowercase(), cased, at, flags);
    }

    fn raw(&mut self, lower: u8, cased: u8, at: usize, mut flags: u8) {
        if self.pending_obfuscation {
            flags |= OBFUSCATED;
            self.pending_obfuscation = false;
        }
        self.lower.push(lower);
        self.cased.push(cased);
        self.orig.push(at);
        self.flags.push(flags);
    }

    /// Ends the text: a pending space is written so the last word is terminated.
    pub(crate) fn finish(&mut self, at: usize) {
        self.space(true, at, 0);
        self.flush_space();
    }

    /// Forgets bytes before normalised position `keep_from` (bounded memory).
    pub(crate) fn trim(&mut self, keep_from: usize) {
        let n = keep_from.saturating_sub(self.base).min(self.lower.len());
        // Trim in batches so that many small pushes do not move the buffer each time.
        if n >= KEEP {
            self.lower.drain(..n);
            self.cased.drain(..n);
            self.orig.drain(..n);
            self.flags.drain(..n);
            self.base += n;
        }
    }
}
