//! The JSON sibling view of a streamed body: a secret split over sibling
//! string values (`{"a": "AKIA…", "b": "…"}`, `["ghp_…", "…"]`) is found by
//! scanning consecutive values joined, with relaxed token boundaries.
//!
//! A lexer sees every byte of the stream once (no re-lexing of the overlap
//! window). For each open object or array it keeps the last [`JOIN_TAIL`]
//! bytes of its last [`JOIN_PIECES`] string values (keys are not part of it;
//! a number or nested container between two values does not break the
//! chain). When a value string has [`JOIN_TAIL`] bytes, or ends, the token
//! run across the junction (token characters on both sides, at least
//! [`MIN_JOIN`] bytes) is queued, once from the start of the run and once
//! from each value boundary inside it; the stream scanner scans a chunk's
//! joins together. Since `JOIN_TAIL` is far below [`crate::STREAM_OVERLAP`],
//! the bytes completing a secret are still held back when the join is scanned.
//!
//! Bounds: memory is `(JOIN_PIECES + 2) * JOIN_TAIL` per open container, at
//! most [`MAX_NESTING`] containers (deeper ones are not joined); a secret is
//! found if at most `JOIN_TAIL` bytes of it lie on each side of a junction.
//! Only streams whose first non-blank byte is `{` or `[` are lexed.
//!
//! Documents one after another (NDJSON, JSON lines, concatenated JSON) are
//! siblings too: the chain of a top-level container that closed is carried
//! into the next top-level container, so `{"a":"ghp_…"}\n{"b":"…"}` is
//! joined (one chain kept: no more memory).

/// Bytes of the glued sibling values kept per container, and of the new
/// value's head joined to them.
pub(crate) const JOIN_TAIL: usize = 128;
/// A token split over up to this many earlier values (plus the current one)
/// is joined with clean boundaries; longer chains are joined as a whole.
pub(crate) const JOIN_PIECES: usize = 3;
/// Shortest token run across a junction that is scanned (shorter split
/// secrets are not looked for).
pub(crate) const MIN_JOIN: usize = 16;
/// Containers deeper than this are not joined (bounded memory).
pub(crate) const MAX_NESTING: usize = 64;

#[derive(Debug)]
struct Frame {
    object: bool,
    expect_key: bool,
    /// Stream offset where the first value of the container started.
    chain_start: usize,
    /// Tails of the last `JOIN_PIECES` values: a ring, `len` used, `next`
    /// the slot written next (buffers kept when the frame is reused).
    ring: [Vec<u8>; JOIN_PIECES],
    len: usize,
    next: usize,
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
    /// Popped frames kept for reuse (no allocation per object).
    spare: Vec<Frame>,
    /// The chain of the last top-level container, continued by the next one.
    carry: Option<Frame>,
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
    /// Scratch buffers of `scan_join`.
    glued: Vec<u8>,
    join: Vec<u8>,
}

fn push_tail(buf: &mut Vec<u8>, data: &[u8]) {
    // Only the last JOIN_TAIL bytes can matter: never copy a long value whole.
    let data = &data[data.len().saturating_sub(JOIN_TAIL)..];
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
            spare: Vec::new(),
            carry: None,
            overflow: 0,
            in_string: false,
            escape: false,
            joinable: false,
            head: Vec::new(),
            tail: Vec::new(),
            cur_start: 0,
            head_scanned: false,
            pos: 0,
            glued: Vec::new(),
            join: Vec::new(),
        }
    }

    /// Start over for a new document (a form or query value), keeping the
    /// buffers.
    pub(crate) fn reset(&mut self) {
        self.mode = Mode::Undecided;
        self.spare.append(&mut self.stack);
        self.spare.extend(self.carry.take());
        self.overflow = 0;
        self.in_string = false;
        self.escape = false;
        self.joinable = false;
        self.pos = 0;
    }

    /// The document is known not to be JSON (its first byte was not `{`/`[`).
    pub(crate) fn is_off(&self) -> bool {
        self.mode == Mode::Off
    }

    /// The joins of one whole JSON document (empty if `doc` does not start
    /// with `{` or `[`), one per line.
    pub(crate) fn joins_of(doc: &[u8]) -> Vec<u8> {
        // Most URL and form values are not JSON: decide as `feed` does
        // before building (and dropping) a lexer.
        if !matches!(
            doc.iter().find(|b| !b.is_ascii_whitespace()),
            Some(b'{' | b'[')
        ) {
            return Vec::new();
        }
        let mut batch = Vec::new();
        JsonJoin::new().feed(doc, &mut |join, _| {
            batch.extend_from_slice(join);
            batch.push(b'\n');
            true
        });
        batch
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
                // Find the closing quote with one memchr per quote (not per
                // escape): a quote after an odd run of backslashes is escaped.
                let mut j = i;
                if self.escape {
                    self.escape = false;
                    j += 1;
                }
                let close = loop {
                    match memchr::memchr(b'"', &chunk[j.min(chunk.len())..]) {
                        None => break None,
                        Some(k) => {
                            let q = j + k;
                            let bs = chunk[j..q]
                                .iter()
                                .rev()
                                .take_while(|&&b| b == b'\\')
                                .count();
                            if bs % 2 == 0 {
                                break Some(q);
                            }
                            j = q + 1;
                        }
                    }
                };
                match close {
                    None => {
                        let from = j.min(chunk.len());
                        let bs = chunk[from..]
                            .iter()
                            .rev()
                            .take_while(|&&b| b == b'\\')
                            .count();
                        self.escape = bs % 2 == 1;
                        if !self.take(&chunk[i..], scan) {
                            return;
                        }
                        i = chunk.len();
                    }
                    Some(q) => {
                        if !self.take(&chunk[i..q], scan) {
                            return;
                        }
                        self.in_string = false;
                        if !self.close(scan) {
                            return;
                        }
                        i = q + 1;
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
                    } else if let Some(mut f) =
                        self.stack.is_empty().then(|| self.carry.take()).flatten()
                    {
                        // The next document: its values continue the chain.
                        f.object = c == b'{';
                        f.expect_key = f.object;
                        self.stack.push(f);
                    } else {
                        let mut f = self.spare.pop().unwrap_or_else(|| Frame {
                            object: false,
                            expect_key: false,
                            chain_start: 0,
                            ring: Default::default(),
                            len: 0,
                            next: 0,
                            count: 0,
                        });
                        f.object = c == b'{';
                        f.expect_key = f.object;
                        f.len = 0;
                        f.count = 0;
                        self.stack.push(f);
                    }
                }
                b'}' | b']' => {
                    if self.overflow > 0 {
                        self.overflow -= 1;
                    } else {
                        if let Some(f) = self.stack.pop() {
                            if self.stack.is_empty() && f.count > 0 {
                                self.spare.extend(self.carry.replace(f));
                            } else {
                                self.spare.push(f);
                            }
                        }
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
        if self.head.is_empty() {
            // An empty value (`"b": ""`, `b=&`) holds nothing to join: like a
            // number, it does not break the chain.
            return true;
        }
        let cur_start = self.cur_start;
        let tail = std::mem::take(&mut self.tail);
        if let Some(f) = self.stack.last_mut() {
            if f.count == 0 {
                f.chain_start = cur_start;
            }
            f.count += 1;
            let slot = &mut f.ring[f.next];
            slot.clear();
            slot.extend_from_slice(last(&tail));
            f.next = (f.next + 1) % JOIN_PIECES;
            f.len = (f.len + 1).min(JOIN_PIECES);
        }
        self.tail = tail;
        true
    }

    /// Queue the joins of the current value's head with the values before
    /// it: only the token run across the junction (token characters on both
    /// sides, at least [`MIN_JOIN`] bytes), starting at each of the last
    /// `JOIN_PIECES` value boundaries inside that run, so a token starting
    /// at a value boundary has a clean left boundary.
    fn scan_join(&mut self, scan: &mut dyn FnMut(&[u8], usize) -> bool) -> bool {
        let Some(f) = self.stack.last() else {
            return true;
        };
        let h = self.head.iter().take_while(|&&b| token_byte(b)).count();
        if f.len == 0 || h == 0 {
            return true;
        }
        // A previous value ending in a non-token byte (space, `.`, `)`)
        // cannot hold the start of a split token: skip the copying.
        let newest = &f.ring[(f.next + JOIN_PIECES - 1) % JOIN_PIECES];
        if !newest.last().is_some_and(|&b| token_byte(b)) {
            return true;
        }
        // Scratch buffers kept across calls (no allocation per value).
        let glued = &mut self.glued;
        glued.clear();
        let mut bounds = [usize::MAX; JOIN_PIECES];
        for (k, b) in bounds.iter_mut().enumerate().take(f.len) {
            *b = glued.len();
            glued.extend_from_slice(&f.ring[(f.next + JOIN_PIECES - f.len + k) % JOIN_PIECES]);
        }
        let run = glued.len() - glued.iter().rev().take_while(|&&b| token_byte(b)).count();
        if run == glued.len() {
            return true;
        }
        let join = &mut self.join;
        for start in
            std::iter::once(run).chain(bounds.into_iter().filter(|&b| b > run && b != usize::MAX))
        {
            let left = &glued[start..];
            let left = &left[left.len().saturating_sub(JOIN_TAIL)..];
            if left.len() + h < MIN_JOIN {
                continue;
            }
            join.clear();
            join.extend_from_slice(left);
            join.extend_from_slice(&self.head[..h]);
            if !scan(join, f.chain_start) {
                return false;
            }
        }
        true
    }
}

/// Characters a token (or its base64/hex/percent form) is made of.
fn token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'+' | b'/' | b'=' | b'%')
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
            joins(&[
                r#"{"kkkkkkkkkkkk": "xxxxxxxx", "n": 1, "b": "yyyyyyyy", "c": {"d": "q"}, "e": "zzzzzzzz"}"#
            ]),
            vec![
                "xxxxxxxxyyyyyyyy",
                "xxxxxxxxyyyyyyyyzzzzzzzz",
                "yyyyyyyyzzzzzzzz"
            ]
        );
        // Only the token run across the junction; short runs are skipped.
        assert_eq!(
            joins(&[r#"["a b cccccccc", "dddddddd e", "ff", "g"]"#]),
            vec!["ccccccccdddddddd"]
        );
        // Cut anywhere, including inside an escape.
        assert_eq!(
            joins(&[
                r#"{"a": "xxxxxxxx\"#,
                r#""yyyyyyyy", "b"#,
                r#"": "zzzzzzzz"}"#
            ]),
            vec!["yyyyyyyyzzzzzzzz"]
        );
        assert_eq!(
            joins(&[
                r#"{"a": "xxxxxx\"#,
                r#"nyyyyyyyy", "b"#,
                r#"": "zzzzzzzz"}"#
            ]),
            vec![r#"nyyyyyyyyzzzzzzzz"#]
        );
        assert!(joins(&[r#"not json {"a": "xxxxxxxxxx", "b": "yyyyyyyyyy"}"#]).is_empty());
    }

    /// A whole document is lexed only when its first non-blank byte opens
    /// JSON (as `feed` decides), leading blanks included.
    #[test]
    fn joins_of_a_document_only_for_json() {
        let doc = br#"{"a": "xxxxxxxx", "b": "yyyyyyyy"}"#;
        assert_eq!(JsonJoin::joins_of(doc), b"xxxxxxxxyyyyyyyy\n");
        let padded = [b" \n\t".as_slice(), doc].concat();
        assert_eq!(JsonJoin::joins_of(&padded), b"xxxxxxxxyyyyyyyy\n");
        let list = br#"["xxxxxxxx", "yyyyyyyy"]"#;
        assert_eq!(JsonJoin::joins_of(list), b"xxxxxxxxyyyyyyyy\n");
        for not in [
            &b"x"[..],
            b"",
            b"   ",
            br#"a{"a": "xxxxxxxx", "b": "yyyyyyyy"}"#,
        ] {
            assert!(JsonJoin::joins_of(not).is_empty());
        }
    }

    #[test]
    fn documents_in_a_row_are_siblings() {
        // NDJSON: the first value of a line joins the last ones of the line before.
        assert_eq!(
            joins(&[
                "{\"a\": \"xxxxxxxx\"}\n",
                "{\"b\": \"yyyyyyyy\", \"c\": 1}\n"
            ]),
            vec!["xxxxxxxxyyyyyyyy"]
        );
        assert_eq!(
            joins(&["[\"xxxxxxxx\"]", " [\"yyyyyyyy\"]"]),
            vec!["xxxxxxxxyyyyyyyy"]
        );
        // A line with no string value does not break the chain; nesting is not carried.
        assert_eq!(
            joins(&["{\"a\":\"xxxxxxxx\"}\n{\"n\":1}\n{\"b\":\"yyyyyyyy\"}"]),
            vec!["xxxxxxxxyyyyyyyy"]
        );
        assert!(joins(&["{\"a\":{\"b\":\"xxxxxxxx\"}}\n{\"a\":{\"b\":\"yyyyyyyy\"}}"]).is_empty());
    }

    #[test]
    fn long_values_join_at_their_edges() {
        let a = "a".repeat(1000) + "TAIL";
        let b = "HEAD".to_string() + &"b".repeat(1000);
        let j = joins(&[&format!(r#"{{"a": "{a}", "b": "{b}"}}"#)]);
        assert_eq!(j.len(), 1);
        assert_eq!(j[0].len(), 2 * JOIN_TAIL);
        assert!(j[0].contains("TAILHEAD"));
        let j = joins(&[&format!(r#"{{"a": "{a} x", "b": "{b}"}}"#)]);
        assert_eq!(j, vec!["x".to_string() + &b[..JOIN_TAIL]]);
    }
}
