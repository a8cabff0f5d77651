//! A request's header block scanned as a whole: each header on its own (with the
//! per-header decoders of `scan_header`), then joined views, because the receiving
//! server (an origin the agent may control) can reassemble a secret the agent split
//! over several fields: consecutive values, a name and its value, lines of a PEM block.
//! A BEGIN split over two fields is not looked for; a split over fields whose pieces
//! need token boundaries to match (short or no anchor) can be missed when glued to
//! neighbours.

use crate::{Detector, Finding};

/// A finding in a header block and the fields it touches (indexes into the input).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HeaderFinding {
    pub finding: Finding,
    /// Indexes of the fields holding part of the (encoded) secret, ascending.
    pub fields: Vec<usize>,
}

/// The joined views, one after another: bytes and, per segment, (start offset,
/// field index or `None` for a separator).
struct View {
    bytes: Vec<u8>,
    segments: Vec<(usize, Option<usize>)>,
}

impl View {
    fn push(&mut self, field: usize, part: &[u8]) {
        self.segments.push((self.bytes.len(), Some(field)));
        self.bytes.extend_from_slice(part);
    }

    /// A line break: a boundary for every detector except multi-line ones (PEM).
    fn newline(&mut self) {
        self.segments.push((self.bytes.len(), None));
        self.bytes.push(b'\n');
    }

    /// Fields overlapping `[offset, offset + len)` (a zero length means "to the end").
    fn fields(&self, f: &Finding) -> Vec<usize> {
        let end = if f.len == 0 {
            self.bytes.len()
        } else {
            f.offset.saturating_add(f.len)
        };
        let mut out: Vec<usize> = Vec::new();
        for (i, &(start, field)) in self.segments.iter().enumerate() {
            let seg_end = self
                .segments
                .get(i + 1)
                .map_or(self.bytes.len(), |&(s, _)| s);
            if let Some(field) = field {
                if start < end && f.offset < seg_end && !out.contains(&field) {
                    out.push(field);
                }
            }
        }
        out.sort_unstable();
        out
    }
}

/// How a receiving server could reassemble fields: all values back to back (repeated or
/// consecutive fields concatenated), then all names and values back to back (a secret
/// split between a name and its value, or around a name). Scanned with token boundaries
/// relaxed, since neighbouring fields touch in these joins.
fn flat(fields: &[(&str, &[u8])]) -> View {
    let mut v = View {
        bytes: Vec::new(),
        segments: Vec::new(),
    };
    if fields.len() > 1 {
        for (i, (_, value)) in fields.iter().enumerate() {
            v.push(i, value);
        }
        v.newline();
    }
    for (i, (name, value)) in fields.iter().enumerate() {
        v.push(i, name.as_bytes());
        v.push(i, value);
    }
    v
}

/// Multi-line secrets (a PEM block split into lines, one per field): every value on its
/// own line, when the block holds a `BEGIN` at all.
fn lines(fields: &[(&str, &[u8])]) -> Option<View> {
    if fields.len() < 2
        || !fields
            .iter()
            .any(|(_, v)| memchr::memmem::find(v, b"BEGIN").is_some())
    {
        return None;
    }
    let mut v = View {
        bytes: Vec::new(),
        segments: Vec::new(),
    };
    for (i, (_, value)) in fields.iter().enumerate() {
        v.push(i, value);
        v.newline();
    }
    Some(v)
}

pub(crate) fn scan_header_block(det: &Detector, fields: &[(&str, &[u8])]) -> Vec<HeaderFinding> {
    let mut out: Vec<HeaderFinding> = Vec::new();
    let mut add = |finding: Finding, fields: Vec<usize>| {
        let dup = out
            .iter()
            .any(|h| h.finding.detector == finding.detector && h.fields == fields);
        if !dup {
            out.push(HeaderFinding { finding, fields });
        }
    };
    // Each field with the per-header decoders (Basic credentials, cookie values).
    for (i, (name, value)) in fields.iter().enumerate() {
        for f in det.scan_header(name, value) {
            add(f, vec![i]);
        }
    }
    let flat = flat(fields);
    for f in det.detect_joined(&flat.bytes) {
        let touched = flat.fields(&f);
        add(f, touched);
    }
    if let Some(lines) = lines(fields) {
        for f in det.detect(&lines.bytes) {
            let touched = lines.fields(&f);
            add(f, touched);
        }
    }
    out
}
