//! The form view of a streamed body: in an `application/x-www-form-urlencoded`
//! body (`k=v&k2=v2`) each value is percent-decoded as it streams, and a value
//! that is a JSON document goes through the JSON sibling view
//! ([`crate::json_join`]), so `payload={"a":"AKIA…","b":"…"}` (encoded or
//! not) is joined as a JSON body would be.
//!
//! Plain values are siblings too: `a=ghp_…&b=…` is a token split over two
//! fields. Every decoded value is also fed, as one string element, to a
//! second JSON view that reads the form as the array `["v1","v2",…]` (a
//! quote or backslash in a value is read as a space), so consecutive values are
//! joined with the same bounds. The last value has no `&` after it:
//! [`FormJoin::finish`] closes it.
//!
//! The body is taken for a form by its shape, since the scanner does not see
//! headers: it starts with a key of URL-safe characters (at most
//! [`MAX_KEY`] bytes) and `=`. Bounds: those of the JSON view, per value (its
//! state is reused from one value to the next); values that do not start
//! with `{` or `[` once decoded are skipped with `memchr`.

use crate::json_join::JsonJoin;

/// Longest first key for a body to be taken for a form.
const MAX_KEY: usize = 256;

#[derive(Debug, PartialEq, Eq)]
enum Mode {
    /// Still reading the first key (this many bytes so far).
    Undecided(usize),
    Form,
    Off,
}

/// Streaming form lexer producing the joins of its JSON values.
#[derive(Debug)]
pub(crate) struct FormJoin {
    mode: Mode,
    in_value: bool,
    /// Bytes of a percent escape seen so far (`%`, `%H`), cut by a chunk end.
    escape: Vec<u8>,
    json: JsonJoin,
    /// The values as elements of one array (see the module doc).
    plain: JsonJoin,
    /// Stream offset of the form's first value.
    form_start: usize,
    /// Decoded bytes of the current value in this chunk (reused).
    decoded: Vec<u8>,
    /// Stream offset where the current value starts.
    value_start: usize,
    pos: usize,
}

fn key_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric()
        || matches!(
            b,
            b'_' | b'-' | b'.' | b'~' | b'%' | b'[' | b']' | b'*' | b'+'
        )
}

fn hex(b: u8) -> Option<u8> {
    (b as char).to_digit(16).map(|d| d as u8)
}

impl FormJoin {
    pub(crate) fn new() -> Self {
        FormJoin {
            mode: Mode::Undecided(0),
            in_value: false,
            escape: Vec::new(),
            json: JsonJoin::new(),
            plain: JsonJoin::new(),
            form_start: 0,
            decoded: Vec::new(),
            value_start: 0,
            pos: 0,
        }
    }

    /// Lex `chunk`; `scan(join, start)` is called for each join (`start`: the
    /// stream offset of the value it is in) and stops the lexing when it
    /// returns false.
    pub(crate) fn feed(&mut self, chunk: &[u8], scan: &mut dyn FnMut(&[u8], usize) -> bool) {
        let base = self.pos;
        self.pos += chunk.len();
        let mut i = 0;
        while let Mode::Undecided(len) = self.mode {
            let Some(&b) = chunk.get(i) else {
                return;
            };
            self.mode = match b {
                b'=' if len > 0 => {
                    self.form_start = base + i + 1;
                    self.plain.feed(b"[", &mut |_, _| true);
                    if !self.start_value(base + i + 1, scan) {
                        return;
                    }
                    Mode::Form
                }
                _ if key_byte(b) && len < MAX_KEY => Mode::Undecided(len + 1),
                _ => Mode::Off,
            };
            i += 1;
        }
        if self.mode == Mode::Off {
            return;
        }
        while i < chunk.len() {
            if !self.in_value {
                // A key: up to `=` (a value follows) or `&` (none does).
                match memchr::memchr2(b'=', b'&', &chunk[i..]) {
                    None => return,
                    Some(k) => {
                        i += k + 1;
                        if chunk[i - 1] == b'=' && !self.start_value(base + i, scan) {
                            return;
                        }
                    }
                }
                continue;
            }
            let end = memchr::memchr(b'&', &chunk[i..]).map_or(chunk.len(), |k| i + k);
            if !self.decode_into_json(&chunk[i..end], scan) {
                return;
            }
            i = end;
            if i < chunk.len() {
                // `&`: the value ends (a cut escape is dropped with it).
                if !self.end_value(scan) {
                    return;
                }
                i += 1;
            }
        }
    }

    fn start_value(&mut self, at: usize, scan: &mut dyn FnMut(&[u8], usize) -> bool) -> bool {
        self.in_value = true;
        self.value_start = at;
        self.escape.clear();
        self.json.reset();
        self.feed_plain(b"\"", scan)
    }

    fn end_value(&mut self, scan: &mut dyn FnMut(&[u8], usize) -> bool) -> bool {
        self.in_value = false;
        self.escape.clear();
        self.feed_plain(b"\",", scan)
    }

    /// End of the body: the last value ends too, and is joined with the ones
    /// before it.
    pub(crate) fn finish(&mut self, scan: &mut dyn FnMut(&[u8], usize) -> bool) {
        if self.mode == Mode::Form && self.in_value {
            self.end_value(scan);
        }
    }

    fn feed_plain(&mut self, bytes: &[u8], scan: &mut dyn FnMut(&[u8], usize) -> bool) -> bool {
        let start = self.form_start;
        let mut go = true;
        self.plain.feed(bytes, &mut |join, _| {
            go = scan(join, start);
            go
        });
        go
    }

    /// Percent-decode `part` of the current value (`+` is a space) and feed
    /// it to the JSON view.
    fn decode_into_json(
        &mut self,
        part: &[u8],
        scan: &mut dyn FnMut(&[u8], usize) -> bool,
    ) -> bool {
        let mut out = std::mem::take(&mut self.decoded);
        out.clear();
        for &b in part {
            if !self.escape.is_empty() {
                self.escape.push(b);
                match (self.escape.len(), hex(b)) {
                    (2, Some(_)) => continue,
                    (3, Some(lo)) => {
                        // Both digits were checked as they came in.
                        let hi = hex(self.escape[1]).unwrap_or(0);
                        out.push(hi << 4 | lo);
                    }
                    // Not an escape: the bytes stand for themselves.
                    _ => out.extend_from_slice(&self.escape),
                }
                self.escape.clear();
                continue;
            }
            match b {
                b'%' => self.escape.push(b),
                b'+' => out.push(b' '),
                _ => out.push(b),
            }
        }
        let start = self.value_start;
        let mut go = true;
        if !self.json.is_off() {
            self.json.feed(&out, &mut |join, _| {
                go = scan(join, start);
                go
            });
        }
        if go {
            // As one string element of the plain view: a quote or backslash
            // would end it or escape the next byte; neither is a token byte.
            for b in out.iter_mut() {
                if matches!(*b, b'"' | b'\\') {
                    *b = b' ';
                }
            }
            go = self.feed_plain(&out, scan);
        }
        self.decoded = out;
        go
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn joins(chunks: &[&str]) -> Vec<(String, usize)> {
        let mut f = FormJoin::new();
        let mut out = Vec::new();
        for c in chunks {
            f.feed(c.as_bytes(), &mut |b, at| {
                out.push((String::from_utf8_lossy(b).into_owned(), at));
                true
            });
        }
        out
    }

    #[test]
    fn json_values_of_a_form_are_joined_wherever_cut() {
        let body = "a=1&q=%7B%22x%22%3A%22xxxxxxxx%22%2C%22y%22%3A%22yyyyyyyy%22%7D&z=2";
        let want = vec![("xxxxxxxxyyyyyyyy".to_string(), 6)];
        assert_eq!(joins(&[body]), want);
        for cut in 1..body.len() {
            assert_eq!(joins(&[&body[..cut], &body[cut..]]), want, "cut {cut}");
        }
        // Unencoded, and `+` for spaces.
        assert_eq!(
            joins(&[r#"q={"x":+"xxxxxxxx",+"y":+"yyyyyyyy"}"#]),
            vec![("xxxxxxxxyyyyyyyy".to_string(), 2)]
        );
    }

    fn joins_to_the_end(body: &str, cut: usize) -> Vec<String> {
        let mut f = FormJoin::new();
        let mut out = Vec::new();
        let mut add = |b: &[u8], _: usize| {
            out.push(String::from_utf8_lossy(b).into_owned());
            true
        };
        f.feed(&body.as_bytes()[..cut], &mut add);
        f.feed(&body.as_bytes()[cut..], &mut add);
        f.finish(&mut add);
        out
    }

    #[test]
    fn plain_values_are_joined_with_the_ones_before_them_wherever_cut() {
        for (body, want) in [
            ("a=xxxxxxxx&b=yyyyyyyy", vec!["xxxxxxxxyyyyyyyy"]),
            (
                "a=xxxxxxxx&b=yyyy%79yyy&c=zzzz+q",
                vec!["xxxxxxxxyyyyyyyy", "xxxxxxxxyyyyyyyyzzzz"],
            ),
            // A quote cannot end the element early; keys are not joined.
            (
                "a=x%22xxxxxxxx&bbbbbbbbbbbbbbbbbbbb=yyyyyyyy",
                vec!["xxxxxxxxyyyyyyyy"],
            ),
            ("a=x+y&b=z", vec![]),
        ] {
            for cut in 0..=body.len() {
                assert_eq!(joins_to_the_end(body, cut), want, "{body} cut {cut}");
            }
        }
    }

    #[test]
    fn not_a_form_or_not_json_is_left_alone() {
        assert!(joins(&[r#"{"q": "a=1"}"#]).is_empty());
        assert!(joins(&[r#"say x = {"x":"xxxxxxxx","y":"yyyyyyyy"}"#]).is_empty());
        assert!(joins(&["q=xxxxxxxx&r=yyyyyyyy"]).is_empty());
        let long_key = "k".repeat(MAX_KEY + 1) + r#"={"x":"xxxxxxxx","y":"yyyyyyyy"}"#;
        assert!(joins(&[&long_key]).is_empty());
        // Values are separate documents: no join across `&`.
        assert!(joins(&[r#"a=["xxxxxxxx"]&b=["yyyyyyyy"]"#]).is_empty());
    }
}
