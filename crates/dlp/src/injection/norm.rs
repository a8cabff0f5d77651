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
    /// Normalised position after the last byte that is not ASCII (0: none yet).
    non_ascii_end: usize,
    /// Normalised position after the last byte marked [`OBFUSCATED`] (0: none yet).
    obfuscated_end: usize,
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
            non_ascii_end: 0,
            obfuscated_end: 0,
            // A body starts at a line start (line-start rules see a `\n` before it).
            pending_space: Some((true, 0, 0)),
            pending_obfuscation: false,
        }
    }

    /// Normalised position after the last byte.
    pub(crate) fn end(&self) -> usize {
        self.base + self.lower.len()
    }

    /// Whether a byte from normalised position `pos` on is not ASCII (only such text can
    /// hold CJK, which has rules of its own).
    pub(crate) fn non_ascii_from(&self, pos: usize) -> bool {
        self.non_ascii_end > pos
    }

    /// Whether a byte from normalised position `pos` on is marked [`OBFUSCATED`].
    pub(crate) fn obfuscated_from(&self, pos: usize) -> bool {
        self.obfuscated_end > pos
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
        let blank = |b: u8| b == b' ' || b == b'\t';
        // (Spaces never carry the obfuscation mark, so marked text takes the slow path.)
        let marked = flags & OBFUSCATED != 0;
        let mut i = 0;
        while i < bytes.len() {
            let b = bytes[i];
            if blank(b) || marked || self.pending_space.is_some() || self.pending_obfuscation {
                // Collapsing blanks and pending marks: one byte at a time.
                if blank(b) {
                    self.space(false, at + i, flags);
                } else {
                    self.byte(b, at + i, flags);
                }
                i += 1;
                continue;
            }
            // Words with single blanks between them, ending on a word: what one byte at a
            // time would write is the text itself, lower-cased, blanks as spaces, each byte
            // at its own offset; so it is written at once (most text is read here).
            let mut j = i;
            while j < bytes.len() {
                if !blank(bytes[j]) {
                    j += 1;
                } else if bytes.get(j + 1).is_some_and(|&c| !blank(c)) {
                    j += 2;
                } else {
                    break;
                }
            }
            self.plain(&bytes[i..j], at + i, flags);
            i = j;
        }
    }

    /// Writes `text` (printable ASCII, blanks single and between words, the first byte not
    /// a blank) at input offset `at`: no space is pending, no mark is waiting and `flags`
    /// has no obfuscation mark.
    fn plain(&mut self, text: &[u8], at: usize, flags: u8) {
        self.lower.extend(text.iter().map(|&b| match b {
            b'\t' => b' ',
            b => b.to_ascii_lowercase(),
        }));
        self.cased
            .extend(text.iter().map(|&b| if b == b'\t' { b' ' } else { b }));
        self.orig.extend(at..at + text.len());
        self.flags.resize(self.flags.len() + text.len(), flags);
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
        if !lower.is_ascii() {
            self.non_ascii_end = self.end() + 1;
        }
        if flags & OBFUSCATED != 0 {
            self.obfuscated_end = self.end() + 1;
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

#[cfg(test)]
mod tests {
    use super::*;

    /// `push_ascii` as it was: one byte at a time.
    fn push_bytewise(n: &mut Norm, bytes: &[u8], at: usize, flags: u8) {
        for (i, &b) in bytes.iter().enumerate() {
            if b == b' ' || b == b'\t' {
                n.space(false, at + i, flags);
            } else {
                n.byte(b, at + i, flags);
            }
        }
    }

    /// Runs of letters, blanks (single, double, tabs) and punctuation, between line
    /// breaks, obfuscation marks and look-alike letters, read both ways: the same text,
    /// offsets and flags.
    #[test]
    fn ascii_runs_read_at_once_as_byte_by_byte() {
        let mut x = 7u32;
        let mut rand = |n: u32| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x % n
        };
        const ALPHABET: &[u8] = b"aZ q\t  .Ig\t9-";
        for _ in 0..3000 {
            let (mut fast, mut slow) = (Norm::new(), Norm::new());
            let mut at = 0;
            for _ in 0..1 + rand(6) {
                let run: Vec<u8> = (0..rand(40))
                    .map(|_| ALPHABET[rand(ALPHABET.len() as u32) as usize])
                    .collect();
                let flags = [0, HIDDEN, CODE | QUOTE, OBFUSCATED][rand(4) as usize];
                fast.push_ascii(&run, at, flags);
                push_bytewise(&mut slow, &run, at, flags);
                at += run.len();
                // Something between runs: a line break, an invisible control, a look-alike.
                let c = ['\n', '\u{200b}', 'о', 'é'][rand(4) as usize];
                if rand(2) == 0 {
                    fast.push_char(c, at, 0);
                    slow.push_char(c, at, 0);
                    at += c.len_utf8();
                }
            }
            fast.finish(at);
            slow.finish(at);
            assert_eq!(fast.lower, slow.lower);
            assert_eq!(fast.cased, slow.cased);
            assert_eq!(fast.orig, slow.orig);
            assert_eq!(fast.flags, slow.flags);
            assert_eq!(fast.non_ascii_end, slow.non_ascii_end);
            assert_eq!(fast.obfuscated_end, slow.obfuscated_end);
        }
    }
}
