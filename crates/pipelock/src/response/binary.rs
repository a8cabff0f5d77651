//! The printable runs of a binary body, judged like text (what `strings` shows): a body that
//! fails the text sniff (a NUL, invalid UTF-8 or a media signature first) still reaches a
//! model that reads it, so one binary byte in front must not turn judging off.
//!
//! [`Printable`] maps the body to bytes of the same length: runs of printable characters
//! (ASCII or whole UTF-8 sequences) stay when at least [`MIN_RUN`] bytes long, or
//! [`MIN_UNICODE_RUN`] when they hold a multi-byte character; every other byte becomes
//! [`FILLER`]. [`BinaryJudge`] feeds the injection stream the runs, each stretch of filler as
//! one newline (media is mostly filler: judging it byte by byte would cost the detector's
//! text rate on every download), and maps what the stream releases back to original bytes,
//! which go out unchanged. Memory: the stream's hold, the map of its held part, and a short
//! run not yet decided ([`MIN_UNICODE_RUN`] + 3 bytes).

use std::collections::VecDeque;

use bytes::BytesMut;

use bottle_core::routes::ScanAction;
use bottle_dlp::injection::{ContentKind, InjectionStream};

use super::sse::Pushed;

/// What a byte outside the kept runs projects to (runs never hold a NUL).
pub const FILLER: u8 = 0;

/// Shorter printable runs are noise in real binaries (and carry no sentence).
pub const MIN_RUN: usize = 4;

/// A run holding a multi-byte character must be this long (bytes). Random bytes (any
/// compressed download) hold a valid 2-byte sequence every ~35 bytes, and the injection
/// judge reads a look-alike letter inside a short run as an obfuscated word: with 4-byte
/// runs a 64 MiB random download was refused as `injection-obfuscated` after ~15 MB
/// (found by the benchmark suite, issue 17). In random bytes about 40 % of positions are
/// printable, so a run of 24 is ~0.4^20 (10^-8) times as likely as a run of 4; an
/// instruction is a sentence.
pub const MIN_UNICODE_RUN: usize = 24;

/// Same-length text projection of a byte stream (see the module doc).
#[derive(Default)]
pub struct Printable {
    /// Bytes read but not projected yet: a run shorter than [`MIN_UNICODE_RUN`], or a UTF-8
    /// sequence cut by the chunk's end.
    pending: Vec<u8>,
    /// Length of the printable run in progress (projected part included).
    run: usize,
    /// The run in progress holds a multi-byte character (it stays only if [`MIN_UNICODE_RUN`]
    /// bytes long).
    unicode: bool,
}

enum Class {
    Printable(usize),
    Other,
    /// A UTF-8 sequence that may complete in the next chunk.
    Cut,
}

fn classify(b: &[u8]) -> Class {
    let c = b[0];
    if (0x20..0x7f).contains(&c) || matches!(c, b'\t' | b'\n' | b'\r') {
        return Class::Printable(1);
    }
    let n = match c {
        0xC2..=0xDF => 2,
        0xE0..=0xEF => 3,
        0xF0..=0xF4 => 4,
        _ => return Class::Other,
    };
    // The second byte's range excludes overlong forms, surrogates and code points past
    // U+10FFFF; the others are plain continuation bytes.
    let second = match c {
        0xE0 => 0xA0..=0xBF,
        0xED => 0x80..=0x9F,
        0xF0 => 0x90..=0xBF,
        0xF4 => 0x80..=0x8F,
        _ => 0x80..=0xBF,
    };
    let have = b.len().min(n);
    let valid = b[1..have].iter().enumerate().all(|(k, &x)| {
        if k == 0 {
            second.contains(&x)
        } else {
            (0x80..=0xBF).contains(&x)
        }
    });
    match (valid, have == n) {
        (false, _) => Class::Other,
        (true, true) => Class::Printable(n),
        (true, false) => Class::Cut,
    }
}

/// A byte as judged: the characters that open a construct for the reader (markup, entity,
/// code span, escape, JSON) read as a space. Binary content is not rendered, and a stray
/// `<` or backtick in media bytes must not put the reader in a state (an open tag, a code
/// span, JSON) that hides the text after it.
fn neutral(b: u8) -> u8 {
    match b {
        b'<' | b'>' | b'&' | b'`' | b'\\' | b'{' | b'[' | b'"' => b' ',
        _ => b,
    }
}

/// Bytes that are never part of a printable run: not printable ASCII, not a UTF-8 lead byte,
/// not a continuation byte. After one, whatever came before is settled.
const HARD: u8 = 0;
/// Printable ASCII (with tab, newline, carriage return).
const ASCII: u8 = 1;
/// A continuation byte, or a lead byte: part of a run only inside a valid UTF-8 sequence.
const HIGH: u8 = 2;
const CLASS: [u8; 256] = {
    let mut t = [HARD; 256];
    let mut b = 0;
    while b < 256 {
        t[b] = match b as u8 {
            0x20..=0x7e | b'\t' | b'\n' | b'\r' => ASCII,
            0x80..=0xBF | 0xC2..=0xF4 => HIGH,
            _ => HARD,
        };
        b += 1;
    }
    t
};

fn copy_neutral(run: &[u8], to: &mut [u8]) {
    for (t, &b) in to.iter_mut().zip(run) {
        *t = neutral(b);
    }
}

/// One projection pass over `data` (pending bytes, then the chunk) into `out` (as long as
/// `data`, all filler to begin with).
struct Pass<'a> {
    data: &'a [u8],
    out: &'a mut [u8],
    run: usize,
    unicode: bool,
    /// Where the run in progress starts in `data`.
    run_start: usize,
}

impl Pass<'_> {
    /// Reads `data[from..to]` character by character (a character may look past `to`), copying
    /// each kept run over its place; stops early before a character cut by the data's end.
    /// Returns where it stopped.
    fn exact(&mut self, from: usize, to: usize) -> usize {
        let mut i = from;
        while i < to {
            let b = self.data[i];
            if CLASS[usize::from(b)] == ASCII {
                self.run += 1;
                i += 1;
                continue;
            }
            // A continuation byte cannot start a character: no need to ask `classify`.
            let class = if b & 0xC0 == 0x80 {
                Class::Other
            } else {
                classify(&self.data[i..])
            };
            match class {
                Class::Printable(n) => {
                    self.unicode |= n > 1;
                    self.run += n;
                    i += n;
                }
                Class::Cut => break,
                Class::Other => {
                    if self.kept() {
                        self.copy(i);
                    }
                    self.run = 0;
                    self.unicode = false;
                    i += 1;
                    self.run_start = i;
                }
            }
        }
        i
    }

    /// The run in progress is long enough to stay if it ends here.
    fn kept(&self) -> bool {
        let min = if self.unicode {
            MIN_UNICODE_RUN
        } else {
            MIN_RUN
        };
        self.run >= min
    }

    /// The run in progress, up to `end`, is kept.
    fn copy(&mut self, end: usize) {
        let s = self.run_start;
        copy_neutral(&self.data[s..end], &mut self.out[s..end]);
    }

    /// Skips, from `from` (just after a [`HARD`] byte), every stretch between hard bytes that
    /// cannot hold a kept run, and reads the others with [`Pass::exact`]. Returns the start of
    /// the last stretch (it runs to the data's end and is not read).
    ///
    /// A kept run lies inside one stretch, and is either 4 printable ASCII bytes in a row or
    /// [`MIN_UNICODE_RUN`] bytes long; a stretch with neither is all filler. Random bytes (any
    /// compressed download) flip between printable and not at almost every byte, so a branch
    /// per byte would be mispredicted half the time: the loop computes its state without
    /// branches and takes one only at the end of a stretch worth reading (a few percent).
    fn skim(&mut self, from: usize) -> usize {
        let mut from = from;
        loop {
            match next_candidate(self.data, from) {
                Ok((stretch, hard)) => {
                    // After a hard byte the reading state is reset: the stretch is read alone.
                    self.run_start = stretch;
                    self.exact(stretch, hard + 1);
                    from = hard + 1;
                }
                Err(last) => return last,
            }
        }
    }
}

/// The next stretch from `from` (just after a hard byte) that may hold a kept run, as (its
/// start, the hard byte that ends it); or the start of the last stretch. A function of its
/// own so that the loop keeps its few variables in registers.
fn next_candidate(data: &[u8], from: usize) -> Result<(usize, usize), usize> {
    let mut stretch = from;
    let mut ascii_in_a_row = 0usize;
    let mut candidate = false;
    for (i, &b) in data.iter().enumerate().skip(from) {
        let class = CLASS[usize::from(b)];
        let hard = class == HARD;
        if hard & (candidate | (i - stretch >= MIN_UNICODE_RUN)) {
            return Ok((stretch, i));
        }
        // selects, not a multiply: this is the loop's critical path
        ascii_in_a_row = if class == ASCII {
            ascii_in_a_row + 1
        } else {
            0
        };
        candidate = (candidate | (ascii_in_a_row >= MIN_RUN)) & !hard;
        stretch = if hard { i + 1 } else { stretch };
    }
    Err(stretch)
}

impl Printable {
    /// Projects `chunk` (after what is pending) into `out`.
    pub fn project(&mut self, chunk: &[u8], out: &mut Vec<u8>) {
        let mut data = std::mem::take(&mut self.pending);
        if !self.decided() {
            // The undecided run is all pending: it is counted again below.
            self.run = 0;
            self.unicode = false;
        }
        data.extend_from_slice(chunk);
        // Every byte starts as filler; a kept run is copied over its place when it ends.
        let base = out.len();
        out.resize(base + data.len(), FILLER);
        let mut pass = Pass {
            data: &data,
            out: &mut out[base..],
            run: self.run,
            unicode: self.unicode,
            run_start: 0,
        };
        // The first stretch continues the run in progress, so it is read with its state; the
        // last one may end in a cut character or an undecided run.
        let last = match data.iter().position(|&b| CLASS[usize::from(b)] == HARD) {
            Some(hard) => {
                pass.exact(0, hard + 1);
                pass.skim(hard + 1)
            }
            None => 0,
        };
        if last > 0 {
            pass.run_start = last;
        }
        let end = pass.exact(last, data.len());
        (self.run, self.unicode) = (pass.run, pass.unicode);
        let projected = if self.decided() {
            pass.copy(end);
            end
        } else {
            pass.run_start
        };
        out.truncate(base + projected);
        self.pending = data.split_off(projected);
    }

    /// The run in progress stays whatever follows: long enough for any rule.
    fn decided(&self) -> bool {
        self.run >= MIN_UNICODE_RUN
    }

    /// The body ended: the run in progress ends here (a character cut by the end is filler).
    pub fn finish(&mut self, out: &mut Vec<u8>) {
        let data = std::mem::take(&mut self.pending);
        let base = out.len();
        out.resize(base + data.len(), FILLER);
        if !self.decided() {
            // What is pending is the whole run, and perhaps a cut character after it.
            let mut pass = Pass {
                data: &data,
                out: &mut out[base..],
                run: 0,
                unicode: false,
                run_start: 0,
            };
            let end = pass.exact(0, data.len());
            if pass.kept() {
                pass.copy(end);
            }
        }
        self.run = 0;
        self.unicode = false;
    }
}

/// A stretch of projected bytes: `fed` bytes given to the stream for `orig` bytes of the body
/// (a run: as many; a stretch of filler: one newline, or none when it continues a stretch
/// whose newline is already out).
struct Segment {
    fed: usize,
    orig: usize,
    filler: bool,
}

/// A binary body judged through its projection; the original bytes are released.
pub struct BinaryJudge {
    projection: Printable,
    stream: InjectionStream,
    /// Original bytes read and not released yet.
    held: BytesMut,
    /// The projected part of `held`, in order.
    segments: VecDeque<Segment>,
    scratch: Vec<u8>,
    fed: Vec<u8>,
}

impl Default for BinaryJudge {
    fn default() -> Self {
        BinaryJudge {
            projection: Printable::default(),
            stream: InjectionStream::new(ContentKind::Text),
            held: BytesMut::new(),
            segments: VecDeque::new(),
            scratch: Vec::new(),
            fed: Vec::new(),
        }
    }
}

impl BinaryJudge {
    pub fn push(&mut self, chunk: &[u8], action: ScanAction) -> Pushed {
        self.held.extend_from_slice(chunk);
        self.scratch.clear();
        self.projection.project(chunk, &mut self.scratch);
        self.condense();
        // Only how much the stream released matters: the original bytes go out, not these.
        let judged = self.stream.push_counted(&self.fed);
        self.settle(judged, action)
    }

    /// `scratch` (projected) into `fed` (what the stream reads), extending the segment map.
    fn condense(&mut self) {
        self.fed.clear();
        let mut rest = &self.scratch[..];
        while let Some(&first) = rest.first() {
            let filler = first == FILLER;
            let len = rest
                .iter()
                .position(|&b| (b == FILLER) != filler)
                .unwrap_or(rest.len());
            let (stretch, tail) = rest.split_at(len);
            rest = tail;
            match self.segments.back_mut() {
                Some(last) if last.filler == filler && (filler || last.fed == last.orig) => {
                    last.orig += len;
                    if !filler {
                        last.fed += len;
                        self.fed.extend_from_slice(stretch);
                    }
                }
                _ => {
                    self.segments.push_back(Segment {
                        fed: if filler { 1 } else { len },
                        orig: len,
                        filler,
                    });
                    if filler {
                        self.fed.push(b'\n');
                    } else {
                        self.fed.extend_from_slice(stretch);
                    }
                }
            }
        }
    }

    /// Original bytes covered by `released` more bytes of what the stream read.
    fn map_release(&mut self, mut released: usize) -> usize {
        let mut out = 0;
        while let Some(seg) = self.segments.front_mut() {
            if seg.fed == 0 {
                // Filler whose newline went out already: nothing in it to judge.
                out += seg.orig;
                self.segments.pop_front();
                continue;
            }
            if released == 0 {
                break;
            }
            if seg.filler {
                released -= 1;
                out += seg.orig;
                self.segments.pop_front();
            } else {
                let k = released.min(seg.fed);
                released -= k;
                out += k;
                seg.fed -= k;
                seg.orig -= k;
                if seg.fed == 0 {
                    self.segments.pop_front();
                }
            }
        }
        out
    }

    pub fn finish(&mut self, action: ScanAction) -> Pushed {
        self.scratch.clear();
        self.projection.finish(&mut self.scratch);
        self.condense();
        let judged = self
            .stream
            .push_counted(&self.fed)
            .and_then(|n| Ok(n + self.stream.finish_counted()?));
        let mut p = self.settle(judged, action);
        if p.blocked.is_none() {
            p.release.extend_from_slice(&self.held.split());
            self.segments.clear();
        }
        p
    }

    fn settle(
        &mut self,
        judged: Result<usize, bottle_dlp::injection::InjectionFinding>,
        action: ScanAction,
    ) -> Pushed {
        match judged {
            Ok(released) => {
                let n = self.map_release(released).min(self.held.len());
                Pushed {
                    release: self.held.split_to(n).to_vec(),
                    ..Pushed::default()
                }
            }
            Err(f) => super::stream::found(f.detector, action),
        }
    }
}

#[cfg(test)]
mod tests;
