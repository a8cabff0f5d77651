//! The normalised view the scrubber matches on: `%XX` and JSON `\u00XX` (either hex
//! case, any subset of bytes) become the byte they stand for, `\/` `\"` `\\` the
//! character; every other byte is itself. Mixed spellings of a secret then all read
//! as the secret, so they are matched without enumerating them, and the record of
//! each escape maps a match back to the original bytes that produced it.

use aho_corasick::AhoCorasick;
use zeroize::Zeroizing;

/// One escape: original bytes `orig..orig + len` became the view byte at `view`.
#[derive(Debug, Clone, Copy)]
pub(super) struct Esc {
    pub view: usize,
    pub orig: usize,
    pub len: usize,
}

/// The decoded view of a buffer (only built when the buffer holds `%` or `\`).
pub(super) struct View {
    pub bytes: Zeroizing<Vec<u8>>,
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
                let mut v: u32 = 0;
                for &c in &rest[..4] {
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

/// Decode `buf`; None when it holds no `%` or `\` (the view is `buf` itself). With
/// `fin`, an unfinished escape at the end is taken literally.
pub(super) fn decode(buf: &[u8], finder: &AhoCorasick, fin: bool) -> Option<View> {
    let first = finder.find(buf)?.start();
    let mut bytes = Zeroizing::new(Vec::with_capacity(buf.len()));
    let mut escs = Vec::new();
    bytes.extend_from_slice(&buf[..first]);
    let mut pos = first;
    let mut end = buf.len();
    loop {
        // `pos` is at a `%` or `\`
        match step(&buf[pos..]) {
            Step::Byte(x, len) => {
                escs.push(Esc {
                    view: bytes.len(),
                    orig: pos,
                    len,
                });
                bytes.push(x);
                pos += len;
            }
            Step::Unfinished if !fin => {
                end = pos;
                break;
            }
            Step::Literal | Step::Unfinished => {
                bytes.push(buf[pos]);
                pos += 1;
            }
        }
        match finder.find(&buf[pos..]) {
            Some(m) => {
                bytes.extend_from_slice(&buf[pos..pos + m.start()]);
                pos += m.start();
            }
            None => {
                bytes.extend_from_slice(&buf[pos..]);
                break;
            }
        }
    }
    Some(View { bytes, escs, end })
}

impl View {
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

    fn finder() -> AhoCorasick {
        AhoCorasick::new(["%", "\\"]).unwrap()
    }

    #[test]
    fn decodes_escapes_and_maps_back() {
        let f = finder();
        let buf = br#"a%41b\u0043\/%zz\"%4"#;
        let v = decode(buf, &f, false).unwrap();
        assert_eq!(&v.bytes[..], br#"aAbC/%zz""#);
        // the trailing `%4` is unfinished
        assert_eq!(v.end, buf.len() - 2);
        // view "A" (1) <- orig 1..4; view "C" (3) <- orig 5..11
        assert_eq!((v.orig_start(1), v.orig_end(2)), (1, 4));
        assert_eq!((v.orig_start(3), v.orig_end(4)), (5, 11));
        assert_eq!(v.orig_start(2), 4);
        assert_eq!(v.enclosing(6), Some((5, 11)));
        assert_eq!(v.enclosing(5), None);
        let v = decode(buf, &f, true).unwrap();
        assert_eq!(v.end, buf.len());
        assert!(v.bytes.ends_with(b"%4"));
        assert!(decode(b"plain", &f, false).is_none());
        // non-ASCII `\u` and `\n` stay literal; a lone `\` at the end waits
        let v = decode(br"\u00e9\n\", &f, false).unwrap();
        assert_eq!(&v.bytes[..], br"\u00e9\n");
        assert_eq!(v.end, 8);
    }
}
