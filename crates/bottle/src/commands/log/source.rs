//! One sidecar's audit as a stream of lines: its rotated files oldest first, then the live
//! file, which `poll` keeps following across rotation (`x.jsonl` -> `x.jsonl.1`) and truncation.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use bottle_core::audit_read::{rotation_chain, MAX_READ_LINE_BYTES};

/// Bytes read from a file in one go.
const CHUNK: usize = 64 * 1024;

/// Splits a byte stream into complete lines, skipping lines longer than the cap without
/// holding them in memory (the audit writer never makes one; a damaged file might).
#[derive(Debug, Default)]
pub(crate) struct LineSplitter {
    partial: Vec<u8>,
    overlong: bool,
}

impl LineSplitter {
    /// Append `chunk`; complete, valid UTF-8 lines go to `out`.
    pub(crate) fn feed(&mut self, chunk: &[u8], out: &mut VecDeque<String>) {
        let mut rest = chunk;
        while let Some(nl) = rest.iter().position(|&b| b == b'\n') {
            let (head, tail) = rest.split_at(nl);
            if !self.overlong && self.partial.len() + head.len() <= MAX_READ_LINE_BYTES {
                self.partial.extend_from_slice(head);
                if let Ok(s) = std::str::from_utf8(&self.partial) {
                    if !s.is_empty() {
                        out.push_back(s.to_owned());
                    }
                }
            }
            self.partial.clear();
            self.overlong = false;
            rest = &tail[1..];
        }
        if self.overlong || self.partial.len() + rest.len() > MAX_READ_LINE_BYTES {
            self.partial.clear();
            self.overlong = true;
        } else {
            self.partial.extend_from_slice(rest);
        }
    }

    /// Forget an unfinished line (its file was rotated away or truncated).
    pub(crate) fn reset(&mut self) {
        self.partial.clear();
        self.overlong = false;
    }
}

/// The open file being read and which file it is.
struct Open {
    file: File,
    identity: (u64, u64),
    pos: u64,
}

impl Open {
    fn at(path: &Path) -> std::io::Result<Open> {
        let file = File::open(path)?;
        let meta = file.metadata()?;
        Ok(Open {
            file,
            identity: (meta.dev(), meta.ino()),
            pos: 0,
        })
    }
}

/// One sidecar's audit files, read in order and then followed.
pub(crate) struct Source {
    live: PathBuf,
    /// Rotated files not read yet, oldest first.
    older: VecDeque<PathBuf>,
    /// The live file, once reached.
    open: Option<Open>,
    splitter: LineSplitter,
    lines: VecDeque<String>,
}

impl Source {
    /// A source over `live` and its rotated files.
    pub(crate) fn new(live: &Path) -> Source {
        let mut older: VecDeque<PathBuf> = rotation_chain(live).into();
        // The chain ends with the live file itself when it exists; that one is followed.
        if older.back().is_some_and(|p| p == live) {
            older.pop_back();
        }
        Source {
            live: live.to_path_buf(),
            older,
            open: None,
            splitter: LineSplitter::default(),
            lines: VecDeque::new(),
        }
    }

    /// The next line already on disk, reading rotated files first; `None` when caught up
    /// with the live file.
    pub(crate) fn next_line(&mut self) -> Option<String> {
        loop {
            if let Some(l) = self.lines.pop_front() {
                return Some(l);
            }
            if let Some(old) = self.older.pop_front() {
                self.read_whole(&old);
                continue;
            }
            if !self.read_live() {
                return None;
            }
        }
    }

    /// Every complete line appended since the last call, following rotation.
    pub(crate) fn poll(&mut self) -> Vec<String> {
        let mut out = Vec::new();
        while let Some(l) = self.next_line() {
            out.push(l);
        }
        out
    }

    /// Read one rotated file whole; an unfinished last line is dropped with it.
    fn read_whole(&mut self, path: &Path) {
        if let Ok(mut f) = File::open(path) {
            let mut buf = vec![0u8; CHUNK];
            while let Ok(n) = f.read(&mut buf) {
                if n == 0 {
                    break;
                }
                self.splitter.feed(&buf[..n], &mut self.lines);
            }
        }
        self.splitter.reset();
    }

    /// Read what the live file gained; `true` if any bytes came (lines may be queued).
    fn read_live(&mut self) -> bool {
        if self.open.is_none() {
            match Open::at(&self.live) {
                Ok(o) => self.open = Some(o),
                Err(_) => return false,
            }
        }
        let Some(open) = self.open.as_mut() else {
            return false;
        };
        let mut buf = vec![0u8; CHUNK];
        match open.file.read(&mut buf) {
            Ok(n) if n > 0 => {
                open.pos += n as u64;
                self.splitter.feed(&buf[..n], &mut self.lines);
                return true;
            }
            _ => {}
        }
        // At the end of what this handle sees: has the path moved on to a new file?
        match std::fs::metadata(&self.live) {
            Ok(meta) if (meta.dev(), meta.ino()) != open.identity => {
                // Rotated: the old handle is drained, the new live file starts at 0.
                self.splitter.reset();
                self.open = Open::at(&self.live).ok();
                self.open.is_some()
            }
            Ok(meta) if meta.len() < open.pos => {
                // Truncated in place (`--audit-keep 0`).
                self.splitter.reset();
                open.pos = 0;
                open.file.seek(SeekFrom::Start(0)).is_ok()
            }
            _ => false,
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use std::io::Write;

    fn append(p: &Path, s: &str) {
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(p)
            .unwrap();
        f.write_all(s.as_bytes()).unwrap();
    }

    #[test]
    fn splitter_keeps_partial_lines_and_skips_overlong_ones() {
        let mut s = LineSplitter::default();
        let mut out = VecDeque::new();
        s.feed(b"one\ntw", &mut out);
        s.feed(b"o\n\n", &mut out);
        assert_eq!(out, ["one", "two"]);
        out.clear();
        let big = vec![b'x'; MAX_READ_LINE_BYTES + 1];
        s.feed(&big[..10], &mut out);
        s.feed(&big[10..], &mut out);
        s.feed(b"still the long line\nnext\n\xff\xfe\n", &mut out);
        assert_eq!(out, ["next"], "long line and invalid UTF-8 skipped");
    }

    #[test]
    fn reads_rotated_files_then_follows_across_rotation_and_truncation() {
        let dir = tempfile::tempdir().unwrap();
        let live = dir.path().join("egress.jsonl");
        append(&dir.path().join("egress.jsonl.2"), "a\n");
        append(&dir.path().join("egress.jsonl.1"), "b\ncut-off");
        append(&live, "c\nd");
        let mut src = Source::new(&live);
        assert_eq!(src.poll(), ["a", "b", "c"]);
        append(&live, "\ne\n");
        assert_eq!(src.poll(), ["d", "e"]);
        assert!(src.poll().is_empty());

        // Rotation: a last line lands in the old file just before the rename.
        append(&live, "f\n");
        std::fs::rename(&live, dir.path().join("egress.jsonl.1x")).unwrap();
        append(&live, "g\n");
        assert_eq!(src.poll(), ["f", "g"]);

        // Truncation in place, then a shorter file.
        std::fs::write(&live, "").unwrap();
        assert!(src.poll().is_empty());
        append(&live, "h\n");
        assert_eq!(src.poll(), ["h"]);
    }

    #[test]
    fn a_file_that_appears_later_is_read_from_its_start() {
        let dir = tempfile::tempdir().unwrap();
        let live = dir.path().join("git-gate.jsonl");
        let mut src = Source::new(&live);
        assert!(src.poll().is_empty());
        append(&live, "x\n");
        assert_eq!(src.poll(), ["x"]);
    }
}
