//! Streaming scan with a bounded overlap window.

use crate::form_join::FormJoin;
use crate::json_join::JsonJoin;
use crate::{Detector, Encoding, Finding};
use bytes::{Bytes, BytesMut};

/// Bytes re-scanned across a chunk boundary: a secret (in its encoded form)
/// up to this long is found wherever the chunks are cut.
pub const STREAM_OVERLAP: usize = 4096;
/// Most bytes a [`StreamScanner`] keeps between calls.
pub const STREAM_WINDOW: usize = 2 * STREAM_OVERLAP;

/// Scans a body chunk by chunk. Bytes returned by [`push`](Self::push) have
/// been scanned together with everything around them that could complete a
/// secret; the last [`STREAM_OVERLAP`]..[`STREAM_WINDOW`] bytes are held back
/// until more data arrives or [`finish`](Self::finish) is called.
///
/// After a finding every further call returns the same finding.
#[derive(Debug)]
pub struct StreamScanner {
    det: Detector,
    /// Held-back bytes; `tail.len() <= STREAM_WINDOW` between calls.
    tail: BytesMut,
    /// Stream offset of `tail[0]`.
    base: usize,
    /// Whether `tail` has already been scanned in context (all but the last
    /// push's new bytes). Only used to skip rescans on `finish`.
    failed: Option<Finding>,
    finished: bool,
    /// Sibling string values of a JSON body, joined (see `json_join`).
    json: JsonJoin,
    /// The same for JSON values of a form body (see `form_join`).
    form: FormJoin,
}

impl StreamScanner {
    pub(crate) fn new(det: Detector) -> Self {
        StreamScanner {
            det,
            tail: BytesMut::new(),
            base: 0,
            failed: None,
            finished: false,
            json: JsonJoin::new(),
            form: FormJoin::new(),
        }
    }

    /// Feed `chunk` to the JSON sibling view; findings in its joins (all of
    /// them, or only the first when `all` is false), reported as split from
    /// the first value of the container to the end of the chunk. The joins
    /// of one chunk are scanned together, one per line, for raw tokens and
    /// known secrets (a split *encoded* secret is not looked for).
    fn json_joins(&mut self, chunk: &[u8], all: bool) -> Vec<Finding> {
        self.joins(chunk, false, all)
    }

    /// `json_joins`, and at the end of the body (`last`) the joins of a
    /// form's last value.
    fn joins(&mut self, chunk: &[u8], last: bool, all: bool) -> Vec<Finding> {
        let end = self.position() + chunk.len();
        let mut batch = Vec::new();
        let mut first = usize::MAX;
        let mut add = |join: &[u8], start: usize| {
            first = first.min(start);
            batch.extend_from_slice(join);
            batch.push(b'\n');
            true
        };
        self.json.feed(chunk, &mut add);
        self.form.feed(chunk, &mut add);
        if last {
            self.form.finish(&mut add);
        }
        if batch.is_empty() {
            return Vec::new();
        }
        // Raw tokens and known secrets only (no decoded views): the values
        // were already decoded on their own, and decoding every junction
        // again would cost more than the body scan itself.
        let engine = &self.det.inner.engine;
        let mut out = Vec::new();
        engine.scan_joins(&batch, &mut out);
        let hits = crate::engine::dedup(out);
        let n = if all { hits.len() } else { 1 };
        hits.into_iter()
            .take(n)
            .map(|h| Finding {
                detector: h.det,
                offset: first,
                len: end.saturating_sub(first),
                encoding: Encoding::Split,
            })
            .collect()
    }

    /// Bytes currently held back (never more than [`STREAM_WINDOW`]).
    pub fn buffered(&self) -> usize {
        self.tail.len()
    }

    /// Total bytes accepted so far.
    pub fn position(&self) -> usize {
        self.base + self.tail.len()
    }

    fn scan(&mut self, data: &[u8]) -> Result<(), Finding> {
        let hits = self.det.inner.engine.scan(data, self.base > 0);
        if let Some(h) = hits.into_iter().next() {
            let f = Finding::from_hit(h, self.base);
            self.failed = Some(f.clone());
            return Err(f);
        }
        Ok(())
    }

    /// Add a chunk; returns the bytes that are now safe to forward (possibly
    /// empty), or the first finding.
    pub fn push(&mut self, chunk: Bytes) -> Result<Bytes, Finding> {
        if let Some(f) = &self.failed {
            return Err(f.clone());
        }
        if let Some(f) = self.json_joins(&chunk, false).into_iter().next() {
            self.failed = Some(f.clone());
            return Err(f);
        }
        if self.tail.len() + chunk.len() <= STREAM_WINDOW {
            self.tail.extend_from_slice(&chunk);
            return Ok(Bytes::new());
        }
        let mut data = std::mem::take(&mut self.tail);
        data.reserve(chunk.len());
        data.extend_from_slice(&chunk);
        drop(chunk);
        self.scan(&data)?;
        let release = data.len() - STREAM_OVERLAP;
        let out = data.split_to(release).freeze();
        self.base += release;
        // Keep the tail in a fresh small allocation so the big one is freed.
        self.tail = BytesMut::from(&data[..]);
        Ok(out)
    }

    /// Like [`push`](Self::push) but never stops: always returns the bytes
    /// that are safe to forward together with every finding that starts in
    /// them (for a log-only policy). Do not mix with `push` on one scanner.
    pub fn push_report(&mut self, chunk: Bytes) -> (Bytes, Vec<Finding>) {
        let joined = self.json_joins(&chunk, true);
        if self.tail.len() + chunk.len() <= STREAM_WINDOW {
            self.tail.extend_from_slice(&chunk);
            return (Bytes::new(), joined);
        }
        let mut data = std::mem::take(&mut self.tail);
        data.reserve(chunk.len());
        data.extend_from_slice(&chunk);
        drop(chunk);
        let release = data.len() - STREAM_OVERLAP;
        let mut found = self.collect(&data, Some(release));
        found.extend(joined);
        let out = data.split_to(release).freeze();
        self.base += release;
        self.tail = BytesMut::from(&data[..]);
        (out, found)
    }

    /// End of stream for [`push_report`](Self::push_report).
    pub fn finish_report(&mut self) -> (Bytes, Vec<Finding>) {
        if self.finished {
            return (Bytes::new(), Vec::new());
        }
        let mut found = self.joins(&[], true, true);
        let data = std::mem::take(&mut self.tail);
        found.extend(self.collect(&data, None));
        self.finished = true;
        self.base += data.len();
        (data.freeze(), found)
    }

    /// Findings in `data` that start before `limit` (all if None), with
    /// stream offsets.
    fn collect(&self, data: &[u8], limit: Option<usize>) -> Vec<Finding> {
        self.det
            .inner
            .engine
            .scan(data, self.base > 0)
            .into_iter()
            .filter(|h| limit.is_none_or(|l| h.start < l))
            .map(|h| Finding::from_hit(h, self.base))
            .collect()
    }

    /// Eager mode, for protocols that must forward whole frames (WebSocket): scans
    /// `chunk` together with up to [`STREAM_OVERLAP`] bytes of what came before it
    /// and holds nothing back, so everything passed so far has been scanned in
    /// context. Returns every finding in that window (one found in the overlap may
    /// be reported again by the next call). Memory: the overlap plus one chunk.
    /// Do not mix with `push`/`push_report` on one scanner.
    pub fn check(&mut self, chunk: &[u8]) -> Vec<Finding> {
        let mut data = std::mem::take(&mut self.tail);
        data.extend_from_slice(chunk);
        let found = self.collect(&data, None);
        let keep = data.len().min(STREAM_OVERLAP);
        let drop_n = data.len() - keep;
        self.base += drop_n;
        self.tail = BytesMut::from(&data[drop_n..]);
        found
    }

    /// End of stream: scan and release what is held back.
    pub fn finish(&mut self) -> Result<Bytes, Finding> {
        if let Some(f) = &self.failed {
            return Err(f.clone());
        }
        if self.finished {
            return Ok(Bytes::new());
        }
        if let Some(f) = self.joins(&[], true, false).into_iter().next() {
            self.failed = Some(f.clone());
            return Err(f);
        }
        let data = std::mem::take(&mut self.tail);
        self.scan(&data)?;
        self.finished = true;
        self.base += data.len();
        Ok(data.freeze())
    }
}
