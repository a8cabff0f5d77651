//! The normalised view the scrubber matches on: `%XX` and JSON `\u00XX` (either hex
//! case, any subset of bytes) become the byte they stand for, `\/` `\"` `\\` the
//! character; every other byte is itself. Mixed spellings of a secret then all read
//! as the secret, so they are matched without enumerating them, and the record of
//! each escape maps a match back to the original bytes that produced it.
//!
//! The view is ASCII-lowercased (the forms are too), so hex in any mix of cases and
//! a secret whose case changed (a lowercased header name) match; a case-sensitive
//! automaton over a lowercased copy is many times faster than a case-insensitive one.
//! Only escapes of *relevant* bytes (bytes some form contains) are decoded: any other
//! byte would break a match whether decoded or not, so its escape stays as text.

use std::io::BufRead as _;

/// One escape: original bytes `orig..orig + len` became the view byte at `view`.
#[derive(Debug, Clone, Copy)]
pub(super) struct Esc {
    pub view: usize,
    pub orig: usize,
    pub len: usize,
}

/// The decoded, lowercased view of a buffer. Not zeroized: it is a copy of response
/// bytes, like the chunks themselves, and any form in it is redacted.
pub(super) struct View {
    pub bytes: Vec<u8>,
    pub escs: Vec<Esc>,
    /// Original bytes covered; less than the buffer's length when it ends in an
    /// unfinished escape (`%4`, `\u00`) that more bytes may complete.
    pub end: usize,
}

fn hexval(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

enum Step {
    /// the escape decodes to this byte, consuming this many original bytes
    Byte(u8, usize),
    /// not an escape: the `%` or `\` is literal
    Literal,
    /// could still become an escape once more bytes arrive
    Unfinished,
}

/// Every hex digit present is valid, but fewer than `need` are present.
fn short_hex(rest: &[u8], need: usize) -> bool {
    rest.len() < need && rest.iter().all(|&c| hexval(c).is_some())
}

fn step(b: &[u8]) -> Step {
    match b[0] {
        b'%' => {
            let rest = &b[1..];
            if short_hex(rest, 2) {
                return Step::Unfinished;
            }
            match (hexval(rest[0]), rest.get(1).copied().and_then(hexval)) {
                (Some(h), Some(l)) => Step::Byte((h << 4) | l, 3),
                _ => Step::Literal,
            }
        }
        _ => match b.get(1) {
            None => Step::Unfinished,
            Some(&c @ (b'/' | b'"' | b'\\')) => Step::Byte(c, 2),
            Some(b'u') => {
                let rest = &b[2..];
                if short_hex(rest, 4) {
                    return Step::Unfinished;
                }
                // short but not all hex: a non-digit is within the first four
                let mut v: u32 = 0;
                for &c in rest.iter().take(4) {
                    match hexval(c) {
                        Some(d) => v = (v << 4) | u32::from(d),
                        None => return Step::Literal,
                    }
                }
                // only ASCII: a secret's other code points are not covered
                match u8::try_from(v) {
                    Ok(x) if x < 0x80 => Step::Byte(x, 6),
                    _ => Step::Literal,
                }
            }
            Some(_) => Step::Literal,
        },
    }
}

/// First `b` in `hay`. `BufRead::skip_until` on a slice is std's memchr: vectorised,
/// and already optimised in debug builds.
fn find_byte(hay: &[u8], b: u8) -> Option<usize> {
    let mut r = hay;
    match r.skip_until(b) {
        Ok(n) if n > 0 && hay[n - 1] == b => Some(n - 1),
        _ => None,
    }
}

/// How far [`Escapes`] looks byte by byte before calling memchr: escapes often come
/// in runs (`\"x\"`, `%20`), where a memchr call per escape costs more than a scan.
const NEAR: usize = 32;

/// Positions of `%` and `\` at or after a moving start.
struct Escapes<'a> {
    buf: &'a [u8],
    pct: Option<usize>,
    bs: Option<usize>,
}

impl<'a> Escapes<'a> {
    fn new(buf: &'a [u8]) -> Escapes<'a> {
        Escapes {
            buf,
            pct: find_byte(buf, b'%'),
            bs: find_byte(buf, b'\\'),
        }
    }

    fn next_from(&mut self, pos: usize) -> Option<usize> {
        let buf = self.buf;
        let near = buf.len().min(pos + NEAR);
        if let Some(i) = buf
            .get(pos..near)?
            .iter()
            .position(|&b| b == b'%' || b == b'\\')
        {
            return Some(pos + i);
        }
        let from = near;
        let refresh = |cur: &mut Option<usize>, b: u8| {
            if cur.is_some_and(|i| i < from) {
                *cur = find_byte(&buf[from..], b).map(|i| i + from);
            }
        };
        refresh(&mut self.pct, b'%');
        refresh(&mut self.bs, b'\\');
        match (self.pct, self.bs) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}

/// Decode `buf`, decoding only escapes of bytes marked in `relevant`. With `fin`,
/// an unfinished escape at the end is taken literally.
pub(super) fn decode(buf: &[u8], relevant: &[bool; 256], fin: bool) -> View {
    let mut v = View {
        bytes: Vec::with_capacity(buf.len()),
        escs: Vec::new(),
        end: buf.len(),
    };
    // start of the bytes not yet copied into `v.bytes`, and of the next step
    let mut copied = 0;
    let mut pos = 0;
    let mut escapes = Escapes::new(buf);
    while let Some(i) = escapes.next_from(pos) {
        match step(&buf[i..]) {
            Step::Byte(x, len) if relevant[usize::from(x)] => {
                v.bytes.extend_from_slice(&buf[copied..i]);
                v.escs.push(Esc {
                    view: v.bytes.len(),
                    orig: i,
                    len,
                });
                v.bytes.push(x);
                copied = i + len;
                pos = i + len;
            }
            // decoded or not, an irrelevant byte breaks any match: keep the text
            Step::Byte(_, len) => pos = i + len,
            Step::Unfinished if !fin => {
                v.end = i;
                break;
            }
            Step::Literal | Step::Unfinished => pos = i + 1,
        }
    }
    v.bytes.extend_from_slice(&buf[copied..v.end]);
    v.bytes.make_ascii_lowercase();
    v
}

impl View {
    /// Did any escape decode (so the view differs from the buffer)?
    pub fn decoded(&self) -> bool {
        !self.escs.is_empty()
    }

    /// Original offset where view byte `v` starts.
    pub fn orig_start(&self, v: usize) -> usize {
        let i = self.escs.partition_point(|e| e.view <= v);
        match i.checked_sub(1).map(|j| self.escs[j]) {
            None => v,
            Some(e) if e.view == v => e.orig,
            Some(e) => e.orig + e.len + (v - e.view - 1),
        }
    }

    /// Original offset just past view byte `v_end - 1` (`v_end >= 1`).
    pub fn orig_end(&self, v_end: usize) -> usize {
        let v = v_end.saturating_sub(1);
        let i = self.escs.partition_point(|e| e.view <= v);
        match i.checked_sub(1).map(|j| self.escs[j]) {
            None => v + 1,
            Some(e) => e.orig + e.len + (v - e.view),
        }
    }

    /// If original offset `p` falls inside an escape, that escape: (start, end).
    pub fn enclosing(&self, p: usize) -> Option<(usize, usize)> {
        let i = self.escs.partition_point(|e| e.orig < p);
        let e = self.escs.get(i.checked_sub(1)?)?;
        (e.orig + e.len > p).then_some((e.orig, e.orig + e.len))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    const ALL: [bool; 256] = [true; 256];

    #[test]
    fn decodes_escapes_and_maps_back() {
        let buf = br#"a%41b\u0043\/%zz\"%4"#;
        let v = decode(buf, &ALL, false);
        assert_eq!(&v.bytes[..], br#"aabc/%zz""#);
        // the trailing `%4` is unfinished
        assert_eq!(v.end, buf.len() - 2);
        // view "A" (1) <- orig 1..4; view "C" (3) <- orig 5..11
        assert_eq!((v.orig_start(1), v.orig_end(2)), (1, 4));
        assert_eq!((v.orig_start(3), v.orig_end(4)), (5, 11));
        assert_eq!(v.orig_start(2), 4);
        assert_eq!(v.enclosing(6), Some((5, 11)));
        assert_eq!(v.enclosing(5), None);
        let v = decode(buf, &ALL, true);
        assert_eq!(v.end, buf.len());
        assert!(&v.bytes[..].ends_with(b"%4"));
        let v = decode(b"PLain", &ALL, false);
        assert!(!v.decoded());
        assert_eq!(&v.bytes[..], b"plain");
        // non-ASCII `\u` and `\n` stay literal; a lone `\` at the end waits
        let buf = br"\u00e9\n\";
        let v = decode(buf, &ALL, false);
        assert_eq!(&v.bytes[..], br"\u00e9\n");
        assert_eq!(v.end, 8);
        // a short `\u` or `%` run with a non-digit is literal (and never read past the end)
        for short in [&br"ab\u0z"[..], br"\uz", br"%z", br"x\u00", br"\u0g1"] {
            for fin in [false, true] {
                let v = decode(short, &ALL, fin);
                assert!(!v.decoded(), "{short:?}");
            }
        }
        // empty input, escapes at both ends, runs of escapes near and far apart
        assert!(decode(b"", &ALL, false).bytes.is_empty());
        let far = format!("%41{}%42\\u0043", "x".repeat(100));
        let v = decode(far.as_bytes(), &ALL, true);
        assert_eq!(v.bytes, format!("a{}bc", "x".repeat(100)).into_bytes());
        assert_eq!(v.escs.len(), 3);
        // escapes of irrelevant bytes stay as text
        let mut rel = [false; 256];
        rel[usize::from(b'a')] = true;
        let buf = br#"x \"q\" %20 %61"#;
        let v = decode(buf, &rel, false);
        assert_eq!(&v.bytes[..], br#"x \"q\" %20 a"#);
        assert_eq!(v.escs.len(), 1);
        let v = decode(&buf[..12], &rel, false);
        assert!(!v.decoded());
        assert_eq!(&v.bytes[..], &buf[..12]);
    }
}
