//! [`InjectionStream`]: the scanner plus the held-back tail of the input.

use super::scanner::{Scanner, LOOKAHEAD};
use super::{ContentKind, InjectionFinding};

/// Bytes held back at most by [`InjectionStream`] (and the context a finding may span).
pub const INJECTION_HOLD: usize = 8 * 1024;

/// A streamed body judged with bounded memory.
pub struct InjectionStream {
    scanner: Scanner,
    /// Input not released yet (only with `push`); `held[0]` is at input offset `released`.
    held: Vec<u8>,
    released: usize,
    failed: Option<InjectionFinding>,
}

impl InjectionStream {
    /// A stream of `kind` content.
    pub fn new(kind: ContentKind) -> Self {
        InjectionStream {
            scanner: Scanner::new(kind, false, 0),
            held: Vec::new(),
            released: 0,
            failed: None,
        }
    }

    /// Feeds the next chunk; returns the bytes that may now be released to the agent, or the
    /// first finding (then nothing more may be released).
    pub fn push(&mut self, chunk: &[u8]) -> Result<Vec<u8>, InjectionFinding> {
        self.held.extend_from_slice(chunk);
        let n = self.push_counted(chunk)?;
        Ok(self.take(n))
    }

    /// The body ended: the held-back rest, or a finding.
    pub fn finish(&mut self) -> Result<Vec<u8>, InjectionFinding> {
        let n = self.finish_counted()?;
        Ok(self.take(n))
    }

    /// [`InjectionStream::push`] for a caller that keeps the bytes itself: how many more
    /// bytes of the input (after those counted before) may be released. The stream then
    /// keeps no copy of the input; do not mix with `push` on one stream.
    pub fn push_counted(&mut self, chunk: &[u8]) -> Result<usize, InjectionFinding> {
        self.check()?;
        self.scanner.feed(chunk);
        self.check()?;
        let end = self.scanner.pos;
        if end - self.released > INJECTION_HOLD / 2 {
            // Judge what is read so far (but the rest of a sentence) rather than hold more.
            let to = self.scanner.norm.end().saturating_sub(LOOKAHEAD);
            self.scanner.judge_to(to);
            self.check()?;
        }
        let mut upto = self.scanner.safe_offset().max(self.released);
        if end - upto > INJECTION_HOLD {
            // Markup-dense input: judge to the end, then cap the hold whatever it costs.
            let to = self.scanner.norm.end();
            self.scanner.judge_to(to);
            self.check()?;
            upto = self.scanner.safe_offset().max(self.released);
            if end - upto > INJECTION_HOLD {
                upto = end - INJECTION_HOLD;
            }
        }
        Ok(self.release(upto))
    }

    /// [`InjectionStream::finish`] for a caller that keeps the bytes itself: how many bytes
    /// are left to release (all of them), or a finding.
    pub fn finish_counted(&mut self) -> Result<usize, InjectionFinding> {
        self.check()?;
        self.scanner.finish();
        self.check()?;
        let end = self.scanner.pos;
        Ok(self.release(end))
    }

    fn check(&mut self) -> Result<(), InjectionFinding> {
        if self.failed.is_none() {
            self.failed = self.scanner.findings.first().cloned();
        }
        match &self.failed {
            Some(f) => Err(f.clone()),
            None => Ok(()),
        }
    }

    /// Counts input up to offset `upto` as released.
    fn release(&mut self, upto: usize) -> usize {
        let n = upto.saturating_sub(self.released);
        self.released += n;
        n
    }

    /// The first `n` held bytes. When they are most of what is held (large chunks), the
    /// buffer itself is handed over and only the rest copied; otherwise they are copied out
    /// and the buffer kept (small chunks would reallocate it every time).
    fn take(&mut self, n: usize) -> Vec<u8> {
        let n = n.min(self.held.len());
        if n * 2 >= self.held.len() {
            let rest = self.held.split_off(n);
            std::mem::replace(&mut self.held, rest)
        } else {
            self.held.drain(..n).collect()
        }
    }
}
