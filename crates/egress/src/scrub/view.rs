//! The normalised view the scrubber matches on: `%XX` and JSON `\u00XX` (either hex
//! case, any subset of bytes) become the byte they stand for, `\/` `\"` `\\` the
//! character, and so do HTML character references of ASCII (`&#43;`, `&#x2B;`, `&sol;`:
//! Go's html/template writes `+` as `&#43;`, OWASP-style escapers every
//! non-alphanumeric); every other byte is itself. Mixed spellings of a secret then all read
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

/// Longest HTML character reference decoded (`&equals;`, `&#x002B;`): also the
/// longest escape of any kind, which bounds the scrubber's hold-back.
pub(super) const MAX_ENTITY: usize = 8;

/// The HTML5 named references of ASCII punctuation a secret may hold.
const NAMED: &[(&[u8], u8)] = &[
    (b"amp", b'&'),
    (b"quot", b'"'),
    (b"apos", b'\''),
    (b"lt", b'<'),
    (b"gt", b'>'),
    (b"sol", b'/'),
    (b"bsol", b'\\'),
    (b"plus", b'+'),
    (b"equals", b'='),
    (b"lowbar", b'_'),
    (b"period", b'.'),
    (b"colon", b':'),
    (b"semi", b';'),
    (b"comma", b','),
    (b"num", b'#'),
    (b"percnt", b'%'),
    (b"dollar", b'$'),
    (b"ast", b'*'),
    (b"excl", b'!'),
    (b"quest", b'?'),
    (b"commat", b'@'),
    (b"Hat", b'^'),
    (b"grave", b'`'),
    (b"verbar", b'|'),
];

/// The byte a complete reference body (between `&` and `;`) stands for.
fn entity_value(body: &[u8]) -> Option<u8> {
    let v = match body {
        [b'#', b'x' | b'X', hex @ ..] if !hex.is_empty() => hex
            .iter()
            .try_fold(0u32, |v, &c| Some((v << 4) | u32::from(hexval(c)?)))?,
        [b'#', dec @ ..] if !dec.is_empty() => dec.iter().try_fold(0u32, |v, &c| {
            c.is_ascii_digit().then(|| v * 10 + u32::from(c - b'0'))
        })?,
        name => return NAMED.iter().find(|(n, _)| *n == name).map(|(_, b)| *b),
    };
    u8::try_from(v).ok().filter(|x| *x < 0x80)
}

/// Could `body` (what follows `&`, no `;` yet) still become a reference?
fn entity_prefix(body: &[u8]) -> bool {
    match body {
        [] | [b'#'] | [b'#', b'x' | b'X'] => true,
        [b'#', b'x' | b'X', hex @ ..] => hex.iter().all(|&c| hexval(c).is_some()),
        [b'#', dec @ ..] => dec.iter().all(u8::is_ascii_digit),
        name => NAMED.iter().any(|(n, _)| n.starts_with(name)),
    }
}

/// `b` starts with `&`.
fn entity(b: &[u8]) -> Step {
    let window = &b[..b.len().min(MAX_ENTITY)];
    match window.iter().position(|&c| c == b';') {
        Some(semi) => match entity_value(&b[1..semi]) {
            Some(x) => Step::Byte(x, semi + 1),
            None => Step::Literal,
        },
        None if b.len() < MAX_ENTITY && entity_prefix(&b[1..]) => Step::Unfinished,
        None => Step::Literal,
    }
}

fn step(b: &[u8]) -> Step {
    match b[0] {
        b'&' => entity(b),
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

/// Positions of `%`, `\` and `&` at or after a moving start.
struct Escapes<'a> {
    buf: &'a [u8],
    pct: Option<usize>,
    bs: Option<usize>,
    amp: Option<usize>,
}

impl<'a> Escapes<'a> {
    fn new(buf: &'a [u8]) -> Escapes<'a> {
        Escapes {
            buf,
            pct: find_byte(buf, b'%'),
            bs: find_byte(buf, b'\\'),
            amp: find_byte(buf, b'&'),
        }
    }

    fn next_from(&mut self, pos: usize) -> Option<usize> {
        let buf = self.buf;
        let near = buf.len().min(pos + NEAR);
        if let Some(i) = buf
            .get(pos..near)?
            .iter()
            .position(|&b| b == b'%' || b == b'\\' || b == b'&')
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
        refresh(&mut self.amp, b'&');
        [self.pct, self.bs, self.amp].into_iter().flatten().min()
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

    #[test]
    fn html_references_of_ascii_decode() {
        let buf = b"a&#43;b&#x2F;c&#X2b;d&sol;e&equals;f&#0043;g";
        let v = decode(buf, &ALL, true);
        assert_eq!(&v.bytes[..], b"a+b/c+d/e=f+g");
        // view "+" (1) <- orig 1..6; "=" (9) <- orig 27..35
        assert_eq!((v.orig_start(1), v.orig_end(2)), (1, 6));
        assert_eq!((v.orig_start(9), v.orig_end(10)), (27, 35));
        // not references: unknown names, non-ASCII, too long, no `;`, `&` alone
        for lit in [
            &b"&nbsp;"[..],
            b"&#233;",
            b"&#x00002B;",
            b"&#43 x",
            b"a=1&b=2",
            b"&;",
            b"&#;",
            b"&#x;",
            b"&SOL;",
        ] {
            assert!(!decode(lit, &ALL, true).decoded(), "{lit:?}");
            assert!(!decode(lit, &ALL, false).decoded(), "{lit:?}");
        }
        // an unfinished reference at the end waits for more bytes, unless final
        for tail in [&b"x&"[..], b"x&#", b"x&#x2", b"x&#04", b"x&equ", b"x&so"] {
            let v = decode(tail, &ALL, false);
            assert_eq!(v.end, 1, "{tail:?}");
            assert_eq!(decode(tail, &ALL, true).end, tail.len(), "{tail:?}");
        }
        // `&a=` cannot become a reference: nothing held
        assert_eq!(decode(b"x&a=", &ALL, false).end, 4);
    }
}
