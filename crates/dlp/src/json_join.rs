//! The JSON sibling view of a streamed body: a secret split over sibling
//! string values (`{"a": "AKIA…", "b": "…"}`, `["ghp_…", "…"]`) is found by
//! scanning consecutive values joined, with relaxed token boundaries.
//!
//! A lexer sees every byte of the stream once (no re-lexing of the overlap
//! window). For each open object or array it keeps the last [`JOIN_TAIL`]
//! bytes of its string values so far, glued in order (keys are not part of
//! it; a number or nested container between two values does not break the
//! chain). When a value string has [`JOIN_TAIL`] bytes, or ends, that tail
//! followed by the value's first [`JOIN_TAIL`] bytes is scanned once. Since
//! `JOIN_TAIL` is far below [`crate::STREAM_OVERLAP`], the bytes completing a
//! secret are still held back when the join is scanned.
//!
//! Bounds: memory is `2 * JOIN_TAIL` per open container, at most
//! [`MAX_NESTING`] containers (deeper ones are not joined); a secret is found
//! if its encoded form is at most `2 * JOIN_TAIL` bytes around a junction.
//! Only streams whose first non-blank byte is `{` or `[` are lexed.

/// Bytes of the glued sibling values kept per container, and of the new
/// value's head joined to them.
pub(crate) const JOIN_TAIL: usize = 256;
/// A token split over up to this many earlier values (plus the current one)
/// is joined with clean boundaries; longer chains are joined as a whole.
pub(crate) const JOIN_PIECES: usize = 3;
/// Containers deeper than this are not joined (bounded memory).
pub(crate) const MAX_NESTING: usize = 64;

#[derive(Debug)]
struct Frame {
    object: bool,
    expect_key: bool,
    /// Glued tail of the string values so far, and the stream offset where
    /// the first value contributing to it started.
    chain: Vec<u8>,
    chain_start: usize,
    /// Tails of the last `JOIN_PIECES` values, newest last.
    pieces: std::collections::VecDeque<Vec<u8>>,
    /// Values in the chain so far.
    count: usize,
}

#[derive(Debug, PartialEq, Eq)]
enum Mode {
    Undecided,
    Json,
    Off,
}

/// Streaming lexer producing the joins to scan.
#[derive(Debug)]
pub(crate) struct JsonJoin {
    mode: Mode,
    stack: Vec<Frame>,
    /// Containers opened past `MAX_NESTING` (not tracked).
    overflow: usize,
    in_string: bool,
    escape: bool,
    /// The current string is a value (not a key) in a tracked container.
    joinable: bool,
    head: Vec<u8>,
    tail: Vec<u8>,
    cur_start: usize,
    head_scanned: bool,
    pos: usize,
}

fn push_tail(buf: &mut Vec<u8>, data: &[u8]) {
    buf.extend_from_slice(data);
    if buf.len() > 2 * JOIN_TAIL {
        let cut = buf.len() - JOIN_TAIL;
        buf.drain(..cut);
    }
}

fn last(buf: &[u8]) -> &[u8] {
    &buf[buf.len().saturating_sub(JOIN_TAIL)..]
}

impl JsonJoin {
    pub(crate) fn new() -> Self {
        JsonJoin {
            mode: Mode::Undecided,
            stack: Vec::new(),
            overflow: 0,
            in_string: false,
            escape: false,
            joinable: false,
            head: Vec::new(),
            tail: Vec::new(),
            cur_start: 0,
            head_scanned: false,
            pos: 0,
        }
    }

    /// Lex `chunk`; `scan(join, start)` is called for each join (`start`: the
    /// stream offset where its first piece began) and stops the lexing when
    /// it returns false.
    pub(crate) fn feed(&mut self, chunk: &[u8], scan: &mut dyn FnMut(&[u8], usize) -> bool) {
        let mut i = 0;
        if self.mode == Mode::Undecided {
            while i < chunk.len() && chunk[i].is_ascii_whitespace() {
                i += 1;
            }
            match chunk.get(i) {
                None => {
                    self.pos += chunk.len();
                    return;
                }
                Some(b'{' | b'[') => self.mode = Mode::Json,
                Some(_) => self.mode = Mode::Off,
            }
        }
        if self.mode == Mode::Off {
            self.pos += chunk.len();
            return;
        }
        let base = self.pos;
        self.pos += chunk.len();
        while i < chunk.len() {
            if self.in_string {
                if self.escape {
                    self.escape = false;
                    if !self.take(&chunk[i..i + 1], scan) {
                        return;
                    }
                    i += 1;
                    continue;
                }
                match memchr::memchr2(b'"', b'\\', &chunk[i..]) {
                    None => {
                        if !self.take(&chunk[i..], scan) {
                            return;
                        }
                        i = chunk.len();
                    }
                    Some(k) => {
                        if !self.take(&chunk[i..i + k], scan) {
                            return;
                        }
                        if chunk[i + k] == b'\\' {
                            self.escape = true;
                            if !self.take(b"\\", scan) {
                                return;
                            }
                        } else {
                            self.in_string = false;
                            if !self.close(scan) {
                                return;
                            }
                        }
                        i += k + 1;
                    }
                }
                continue;
            }
            match chunk[i] {
                b'"' => {
                    self.in_string = true;
                    self.joinable = self.overflow == 0
                        && self
                            .stack
                            .last()
                            .is_some_and(|f| !(f.object && f.expect_key));
                    self.head.clear();
                    self.tail.clear();
                    self.head_scanned = false;
                    self.cur_start = base + i + 1;
                }
                c @ (b'{' | b'[') => {
                    if self.stack.len() >= MAX_NESTING || self.overflow > 0 {
                        self.overflow += 1;
                    } else {
                        self.stack.push(Frame {
                            object: c == b'{',
                            expect_key: c == b'{',
                            chain: Vec::new(),
                            chain_start: 0,
                            pieces: Default::default(),
                            count: 0,
                        });
                    }
                }
                b'}' | b']' => {
                    if self.overflow > 0 {
                        self.overflow -= 1;
                    } else {
                        self.stack.pop();
                    }
                }
                b':' => {
                    if let Some(f) = self.stack.last_mut() {
                        f.expect_key = false;
                    }
                }
                b',' => {
                    if let Some(f) = self.stack.last_mut() {
                        f.expect_key = f.object;
                    }
                }
                _ => {}
            }
            i += 1;
        }
    }

    /// Append string bytes; scan the join once the head is full.
    fn take(&mut self, data: &[u8], scan: &mut dyn FnMut(&[u8], usize) -> bool) -> bool {
        if !self.joinable || data.is_empty() {
            return true;
        }
        let room = JOIN_TAIL - self.head.len();
        self.head.extend_from_slice(&data[..data.len().min(room)]);
        push_tail(&mut self.tail, data);
        if self.head.len() == JOIN_TAIL && !self.head_scanned {
            self.head_scanned = true;
            return self.scan_join(scan);
        }
        true
    }

    /// End of a string: scan the join (if not done) and extend the chain.
    fn close(&mut self, scan: &mut dyn FnMut(&[u8], usize) -> bool) -> bool {
        if !self.joinable {
            return true;
        }
        if !self.head_scanned && !self.scan_join(scan) {
            return false;
        }
        let cur_start = self.cur_start;
        let tail = std::mem::take(&mut self.tail);
        if let Some(f) = self.stack.last_mut() {
            if f.chain.is_empty() {
                f.chain_start = cur_start;
            }
            push_tail(&mut f.chain, &tail);
            f.count += 1;
            if f.pieces.len() == JOIN_PIECES {
                f.pieces.pop_front();
            }
            f.pieces.push_back(last(&tail).to_vec());
        }
        self.tail = tail;
        true
    }

    /// Scan the head of the current value after the last 1..=`JOIN_PIECES`
    /// values (so a token starting at a value boundary has a clean left
    /// boundary), and after the whole chain if it has more values.
    fn scan_join(&mut self, scan: &mut dyn FnMut(&[u8], usize) -> bool) -> bool {
        let Some(f) = self.stack.last() else {
            return true;
        };
        if f.count == 0 || self.head.is_empty() {
            return true;
        }
        let mut join = Vec::with_capacity(JOIN_TAIL * 2);
        for k in 1..=f.pieces.len() {
            join.clear();
            for p in f.pieces.iter().skip(f.pieces.len() - k) {
                join.extend_from_slice(p);
            }
            let from = join.len().saturating_sub(JOIN_TAIL);
            join.drain(..from);
            join.extend_from_slice(&self.head);
            if !scan(&join, f.chain_start) {
                return false;
            }
        }
        if f.count > f.pieces.len() {
            join.clear();
            join.extend_from_slice(last(&f.chain));
            join.extend_from_slice(&self.head);
            return scan(&join, f.chain_start);
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn joins(chunks: &[&str]) -> Vec<String> {
        let mut j = JsonJoin::new();
        let mut out = Vec::new();
        for c in chunks {
            j.feed(c.as_bytes(), &mut |b, _| {
                out.push(String::from_utf8_lossy(b).into_owned());
                true
            });
        }
        out
    }

    #[test]
    fn siblings_are_joined_keys_are_not() {
        assert_eq!(
            joins(&[r#"{"a": "xy", "n": 1, "b": "zw", "c": {"d": "q"}, "e": "v"}"#]),
            vec!["xyzw", "zwv", "xyzwv"]
        );
        assert_eq!(
            joins(&[r#"["ab",  "cd" ,"ef", "gh", "ij"]"#]),
            vec![
                "abcd",
                "cdef",
                "abcdef",
                "efgh",
                "cdefgh",
                "abcdefgh",
                "ghij",
                "efghij",
                "cdefghij",
                "abcdefghij"
            ]
        );
        // Cut anywhere, including inside an escape.
        assert_eq!(
            joins(&[r#"{"a": "x\"#, r#""y", "b"#, r#"": "z"}"#]),
            vec![r#"x\"yz"#]
        );
        assert!(joins(&[r#"not json {"a": "x", "b": "y"}"#]).is_empty());
    }

    #[test]
    fn long_values_join_at_their_edges() {
        let a = "a".repeat(1000) + "TAIL";
        let b = "HEAD".to_string() + &"b".repeat(1000);
        let j = joins(&[&format!(r#"{{"a": "{a}", "b": "{b}"}}"#)]);
        assert_eq!(j.len(), 1);
        assert_eq!(j[0].len(), 2 * JOIN_TAIL);
        assert!(j[0].contains("TAILHEAD"));
    }
}
