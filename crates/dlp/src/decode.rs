//! Decoders used to build the views the detectors run on.
//!
//! All decoders are lenient (never fail), allocation-bounded (output is never
//! longer than the input) and keep enough position information to map a
//! finding in the decoded view back to the input.

/// Value of a base64 character in either alphabet (`+`/`-` = 62, `/`/`_` = 63), or 255.
pub(crate) static B64: [u8; 256] = {
    let mut t = [255u8; 256];
    let mut i = 0;
    while i < 26 {
        t[b'A' as usize + i] = i as u8;
        t[b'a' as usize + i] = 26 + i as u8;
        i += 1;
    }
    let mut d = 0;
    while d < 10 {
        t[b'0' as usize + d] = 52 + d as u8;
        d += 1;
    }
    t[b'+' as usize] = 62;
    t[b'-' as usize] = 62;
    t[b'/' as usize] = 63;
    t[b'_' as usize] = 63;
    t
};

/// Character classes for the single pass that finds encoded segments.
pub(crate) const C_B64: u8 = 1;
pub(crate) const C_HEX: u8 = 2;
/// `%`, `\` and UTF-8 lead bytes: possible start of something to normalise.
pub(crate) const C_TRIG: u8 = 4;
pub(crate) const C_URLSAFE: u8 = 8;
pub(crate) const C_STD: u8 = 16;
pub(crate) const C_DIGIT: u8 = 32;
/// `-` alone (a run holding one may hold `-`-separated hex).
pub(crate) const C_DASH: u8 = 64;

pub(crate) static CLASS: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut i = 0;
    while i < 256 {
        let b = i as u8;
        let mut c = 0;
        if B64[i] != 255 {
            c |= C_B64;
        }
        if b.is_ascii_hexdigit() {
            c |= C_HEX;
        }
        if b == b'%' || b == b'\\' || b >= 0xC0 {
            c |= C_TRIG;
        }
        if b == b'-' || b == b'_' {
            c |= C_URLSAFE;
        }
        if b == b'-' {
            c |= C_DASH;
        }
        if b == b'+' || b == b'/' {
            c |= C_STD;
        }
        if b.is_ascii_digit() {
            c |= C_DIGIT;
        }
        t[i] = c;
        i += 1;
    }
    t
};

/// Decode base64 (either alphabet, no padding, no whitespace). Trailing bits
/// that do not make a whole byte are dropped. Decoded byte `j` comes from
/// input characters `8j/6 ..= (8j+7)/6`.
pub(crate) fn b64_decode(run: &[u8], out: &mut Vec<u8>) {
    out.clear();
    out.reserve(run.len() * 3 / 4 + 3);
    let mut acc: u32 = 0;
    let mut bits = 0u32;
    for &c in run {
        let v = B64[c as usize];
        if v == 255 {
            break;
        }
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
}

/// Map a decoded byte range back to the base64 characters it came from.
pub(crate) fn b64_span(start: usize, end: usize) -> (usize, usize) {
    (start * 8 / 6, (end * 8).div_ceil(6))
}

/// Value of each hex digit, 0xFF for any other byte (one lookup per digit:
/// hex views of ids and hashes decode every pair).
static HEXVAL: [u8; 256] = {
    let mut t = [0xFFu8; 256];
    let mut i = 0;
    while i < 256 {
        let b = i as u8;
        t[i] = match b {
            b'0'..=b'9' => b - b'0',
            b'a'..=b'f' => b - b'a' + 10,
            b'A'..=b'F' => b - b'A' + 10,
            _ => 0xFF,
        };
        i += 1;
    }
    t
};

fn hexval(b: u8) -> Option<u8> {
    let v = HEXVAL[b as usize];
    (v != 0xFF).then_some(v)
}

/// Decode pairs of hex digits; stops at the first non-hex character.
pub(crate) fn hex_decode(run: &[u8], out: &mut Vec<u8>) {
    out.clear();
    out.reserve(run.len() / 2);
    for pair in run.chunks_exact(2) {
        let (h, l) = (HEXVAL[pair[0] as usize], HEXVAL[pair[1] as usize]);
        // either is 0xFF: not a hex digit
        if (h | l) > 0x0F {
            break;
        }
        out.push(h << 4 | l);
    }
}

/// Fewest `HH` pairs in a separated-hex run that is decoded (8 bytes: shorter
/// than any token, longer than a MAC address or a date).
pub(crate) const SEP_HEX_MIN_PAIRS: usize = 8;

#[inline]
pub(crate) fn is_hex_sep(b: u8) -> bool {
    matches!(b, b':' | b',' | b' ' | b'-')
}

/// 1 for a hex digit, 2 for a separator of [`find_sep_hex`], else 0.
static SEP_HEX: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut i = 0;
    while i < 256 {
        let b = i as u8;
        if b.is_ascii_hexdigit() {
            t[i] = 1;
        } else if matches!(b, b':' | b',' | b' ' | b'-') {
            t[i] = 2;
        }
        i += 1;
    }
    t
};

/// Runs of hex pairs joined by one repeated separator (`41:4b:..`, `41-4b-..`,
/// `41 4b ..`, `41,4b,..`), at least [`SEP_HEX_MIN_PAIRS`] pairs: (start, end,
/// separator). Pair `j` of a run is at `start + 3j`. A UUID or a date is not
/// such a run (its groups are not all two digits long). The scanner finds
/// them while probing for base64 runs (`engine::find_segments`); this is the
/// reference it is tested against.
#[cfg(test)]
pub(crate) fn find_sep_hex(hay: &[u8]) -> Vec<(usize, usize, u8)> {
    let n = hay.len();
    let mut out = Vec::new();
    // A qualifying run is at least 23 bytes long: any probe in its first 19
    // bytes sees a separator within 3 bytes with a pair on each side, so a
    // probe every 16 bytes cannot miss it. Most probes end at one table
    // lookup (in any 3 bytes of a run every byte is a digit or separator).
    let mut i = 2;
    while i + 3 < n {
        if SEP_HEX[hay[i] as usize] == 0
            || SEP_HEX[hay[i + 1] as usize] == 0
            || SEP_HEX[hay[i + 2] as usize] == 0
        {
            i += 16;
            continue;
        }
        let Some(p) = (i..(i + 3).min(n - 2)).find(|&p| sep_hex_seed(hay, p)) else {
            i += 16;
            continue;
        };
        let (start, end, sep) = sep_hex_extend(hay, p);
        if (end - start + 1) / 3 >= SEP_HEX_MIN_PAIRS {
            out.push((start, end, sep));
        }
        i = end.max(i + 1) + 1;
    }
    out
}

/// A separator of [`find_sep_hex`] at `p` with a hex pair on each side.
#[inline]
pub(crate) fn sep_hex_seed(hay: &[u8], p: usize) -> bool {
    let hx = |i: usize| SEP_HEX[hay[i] as usize] == 1;
    p >= 2
        && p + 2 < hay.len()
        && is_hex_sep(hay[p])
        && hx(p - 2)
        && hx(p - 1)
        && hx(p + 1)
        && hx(p + 2)
}

/// The whole run around the seed `p` (see [`sep_hex_seed`]): `start` is its
/// first pair, `end` one past its last pair, and its separator.
pub(crate) fn sep_hex_extend(hay: &[u8], p: usize) -> (usize, usize, u8) {
    let n = hay.len();
    let hx = |i: usize| SEP_HEX[hay[i] as usize] == 1;
    let sep = hay[p];
    let mut start = p - 2;
    while start >= 3 && hay[start - 1] == sep && hx(start - 3) && hx(start - 2) {
        start -= 3;
    }
    let mut end = p + 3;
    while end + 2 < n && hay[end] == sep && hx(end + 1) && hx(end + 2) {
        end += 3;
    }
    (start, end, sep)
}

/// Decode a run found by [`find_sep_hex`].
pub(crate) fn sep_hex_decode(run: &[u8], out: &mut Vec<u8>) {
    out.clear();
    for pair in run.chunks(3) {
        if pair.len() < 2 {
            break;
        }
        match (hexval(pair[0]), hexval(pair[1])) {
            (Some(h), Some(l)) => out.push(h << 4 | l),
            _ => break,
        }
    }
}

/// Characters removed outright: zero-width, bidi controls, invisible
/// separators, variation selectors, tag characters, combining marks.
pub(crate) fn invisible(cp: u32) -> bool {
    matches!(cp,
        0x00AD | 0x034F | 0x061C | 0x115F | 0x1160 | 0x17B4 | 0x17B5 | 0x180B..=0x180F
        | 0x200B..=0x200F | 0x202A..=0x202E | 0x2060..=0x2064 | 0x2066..=0x206F
        | 0x3164 | 0xFE00..=0xFE0F | 0xFEFF | 0xFFA0 | 0x1D173..=0x1D17A
        | 0xE0000..=0xE007F | 0xE0100..=0xE01EF
        // combining marks
        | 0x0300..=0x036F | 0x1AB0..=0x1AFF | 0x1DC0..=0x1DFF | 0x20D0..=0x20FF | 0xFE20..=0xFE2F)
}

/// NFKC-ish folding of compatibility and confusable characters to ASCII.
pub(crate) fn fold(cp: u32) -> Option<u8> {
    let c = match cp {
        // fullwidth ASCII
        0xFF01..=0xFF5E => cp - 0xFEE0,
        // ideographic space
        0x3000 => 0x20,
        // mathematical alphanumeric letters (bold, italic, script, ...)
        0x1D400..=0x1D6A3 => {
            let i = (cp - 0x1D400) % 52;
            if i < 26 {
                u32::from(b'A') + i
            } else {
                u32::from(b'a') + i - 26
            }
        }
        0x1D7CE..=0x1D7FF => u32::from(b'0') + (cp - 0x1D7CE) % 10,
        // circled letters and digits
        0x24B6..=0x24CF => u32::from(b'A') + cp - 0x24B6,
        0x24D0..=0x24E9 => u32::from(b'a') + cp - 0x24D0,
        0x2460..=0x2468 => u32::from(b'1') + cp - 0x2460,
        0x24EA => u32::from(b'0'),
        // Cyrillic and Greek look-alikes
        0x0430 => 'a' as u32,
        0x0435 => 'e' as u32,
        0x043E => 'o' as u32,
        0x0440 => 'p' as u32,
        0x0441 => 'c' as u32,
        0x0443 => 'y' as u32,
        0x0445 => 'x' as u32,
        0x0455 => 's' as u32,
        0x0456 => 'i' as u32,
        0x0458 => 'j' as u32,
        0x04BB => 'h' as u32,
        0x0501 => 'd' as u32,
        0x051B => 'q' as u32,
        0x051D => 'w' as u32,
        0x0405 => 'S' as u32,
        0x0406 => 'I' as u32,
        0x0408 => 'J' as u32,
        0x0410 => 'A' as u32,
        0x0412 => 'B' as u32,
        0x0415 => 'E' as u32,
        0x041A => 'K' as u32,
        0x041C => 'M' as u32,
        0x041D => 'H' as u32,
        0x041E => 'O' as u32,
        0x0420 => 'P' as u32,
        0x0421 => 'C' as u32,
        0x0422 => 'T' as u32,
        0x0425 => 'X' as u32,
        0x0391 => 'A' as u32,
        0x0392 => 'B' as u32,
        0x0395 => 'E' as u32,
        0x0396 => 'Z' as u32,
        0x0397 => 'H' as u32,
        0x0399 => 'I' as u32,
        0x039A => 'K' as u32,
        0x039C => 'M' as u32,
        0x039D => 'N' as u32,
        0x039F => 'O' as u32,
        0x03A1 => 'P' as u32,
        0x03A4 => 'T' as u32,
        0x03A5 => 'Y' as u32,
        0x03A7 => 'X' as u32,
        0x03B9 => 'i' as u32,
        0x03BA => 'k' as u32,
        0x03BD => 'v' as u32,
        0x03BF => 'o' as u32,
        0x03C1 => 'p' as u32,
        0x0131 => 'i' as u32,
        // dashes and low lines that look like '-' / '_'
        0x2010..=0x2015 | 0x2212 | 0xFE63 => '-' as u32,
        0xFE4D..=0xFE4F => '_' as u32,
        _ => return None,
    };
    u8::try_from(c).ok()
}

/// Decode one UTF-8 scalar at the start of `s`: (code point, length).
pub(crate) fn utf8_at(s: &[u8]) -> Option<(u32, usize)> {
    let b0 = *s.first()?;
    let (len, init) = match b0 {
        0xC2..=0xDF => (2, u32::from(b0 & 0x1F)),
        0xE0..=0xEF => (3, u32::from(b0 & 0x0F)),
        0xF0..=0xF4 => (4, u32::from(b0 & 0x07)),
        _ => return None,
    };
    if s.len() < len {
        return None;
    }
    let mut cp = init;
    for &b in &s[1..len] {
        if b & 0xC0 != 0x80 {
            return None;
        }
        cp = (cp << 6) | u32::from(b & 0x3F);
    }
    Some((cp, len))
}

/// Is the character at `s` (starting with `%`, `\` or a UTF-8 lead byte)
/// something the normaliser would change in a way that matters?
pub(crate) fn is_trigger(s: &[u8]) -> bool {
    match s.first() {
        Some(b'%') => s.len() >= 3 && hexval(s[1]).is_some() && hexval(s[2]).is_some(),
        Some(b'\\') => match s.get(1) {
            Some(b'x') => s.len() >= 4 && hexval(s[2]).is_some() && hexval(s[3]).is_some(),
            Some(b'u') => match parse_u4(s.get(2..6)) {
                Some(cp) => {
                    // Go escapes `<`, `>` and `&` in every JSON string; they
                    // never occur in tokens, so they do not trigger.
                    (cp < 0x80 && !matches!(cp, 0x22 | 0x26 | 0x27 | 0x3C | 0x3E))
                        || surrogate_trigger(cp, s)
                        || invisible(cp)
                        || fold(cp).is_some()
                }
                None => false,
            },
            _ => false,
        },
        Some(_) => match utf8_at(s) {
            Some((cp, _)) => invisible(cp) || fold(cp).is_some(),
            None => false,
        },
        None => false,
    }
}

/// A lone surrogate is dropped by the normaliser (so it can hide inside a
/// token); a valid pair only matters if the character it encodes does.
fn surrogate_trigger(cp: u32, s: &[u8]) -> bool {
    if !(0xD800..0xE000).contains(&cp) {
        return false;
    }
    if cp >= 0xDC00 {
        return true;
    }
    match (s.get(6..8), parse_u4(s.get(8..12))) {
        (Some(b"\\u"), Some(lo)) if (0xDC00..0xE000).contains(&lo) => {
            let full = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
            invisible(full) || fold(full).is_some()
        }
        _ => true,
    }
}

fn parse_u4(s: Option<&[u8]>) -> Option<u32> {
    let s = s?;
    if s.len() != 4 {
        return None;
    }
    let mut v = 0u32;
    for &b in s {
        v = v << 4 | u32::from(hexval(b)?);
    }
    Some(v)
}

fn push_cp(out: &mut Vec<u8>, map: &mut Vec<u32>, cp: u32, src: u32) {
    if invisible(cp) {
        return;
    }
    if let Some(a) = fold(cp) {
        out.push(a);
        map.push(src);
        return;
    }
    let mut buf = [0u8; 4];
    if let Some(ch) = char::from_u32(cp) {
        for &b in ch.encode_utf8(&mut buf).as_bytes() {
            out.push(b);
            map.push(src);
        }
    }
}

/// One normalisation round: percent-decoding, `\xHH` and `\uXXXX` escapes
/// (with surrogate pairs), removal of invisible characters and folding of
/// compatibility/confusable characters. Returns `None` when nothing changed.
/// `map[i]` is the input offset output byte `i` came from.
pub(crate) fn normalize_once(input: &[u8]) -> Option<(Vec<u8>, Vec<u32>)> {
    let mut out = Vec::with_capacity(input.len());
    let mut map = Vec::with_capacity(input.len());
    let mut changed = false;
    let mut i = 0;
    while i < input.len() {
        let b = input[i];
        let src = i as u32;
        if b == b'%' && i + 2 < input.len() {
            if let (Some(h), Some(l)) = (hexval(input[i + 1]), hexval(input[i + 2])) {
                out.push(h << 4 | l);
                map.push(src);
                i += 3;
                changed = true;
                continue;
            }
        }
        if b == b'\\' && i + 1 < input.len() {
            match input[i + 1] {
                b'x' if i + 3 < input.len() => {
                    if let (Some(h), Some(l)) = (hexval(input[i + 2]), hexval(input[i + 3])) {
                        out.push(h << 4 | l);
                        map.push(src);
                        i += 4;
                        changed = true;
                        continue;
                    }
                }
                b'u' => {
                    if let Some(mut cp) = parse_u4(input.get(i + 2..i + 6)) {
                        let mut used = 6;
                        if (0xD800..0xDC00).contains(&cp)
                            && input.get(i + 6) == Some(&b'\\')
                            && input.get(i + 7) == Some(&b'u')
                        {
                            if let Some(lo) = parse_u4(input.get(i + 8..i + 12)) {
                                if (0xDC00..0xE000).contains(&lo) {
                                    cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                                    used = 12;
                                }
                            }
                        }
                        push_cp(&mut out, &mut map, cp, src);
                        i += used;
                        changed = true;
                        continue;
                    }
                }
                _ => {}
            }
        }
        if b >= 0xC0 {
            if let Some((cp, len)) = utf8_at(&input[i..]) {
                if invisible(cp) || fold(cp).is_some() {
                    push_cp(&mut out, &mut map, cp, src);
                    i += len;
                    changed = true;
                    continue;
                }
            }
        }
        out.push(b);
        map.push(src);
        i += 1;
    }
    changed.then_some((out, map))
}

/// Normalise repeatedly (double/triple encodings) up to `rounds` times.
#[cfg(any(test, feature = "fuzzing"))]
pub(crate) fn normalize(input: &[u8], rounds: usize) -> Option<(Vec<u8>, Vec<u32>)> {
    let (mut cur, mut map) = normalize_once(input)?;
    for _ in 1..rounds {
        match normalize_once(&cur) {
            Some((next, m2)) => {
                map = m2.iter().map(|&j| map[j as usize]).collect();
                cur = next;
            }
            None => break,
        }
    }
    Some((cur, map))
}

/// Percent-decode (`+` as space when `plus` is set), repeatedly while `%XX` remain.
pub(crate) fn percent_decode(input: &[u8], plus: bool) -> Vec<u8> {
    let mut cur: Vec<u8> = input.to_vec();
    for round in 0..4 {
        let mut out = Vec::with_capacity(cur.len());
        let mut changed = false;
        let mut i = 0;
        while i < cur.len() {
            let b = cur[i];
            if b == b'%' && i + 2 < cur.len() {
                if let (Some(h), Some(l)) = (hexval(cur[i + 1]), hexval(cur[i + 2])) {
                    out.push(h << 4 | l);
                    i += 3;
                    changed = true;
                    continue;
                }
            }
            if plus && round == 0 && b == b'+' {
                out.push(b' ');
                i += 1;
                continue;
            }
            out.push(b);
            i += 1;
        }
        cur = out;
        if !changed {
            break;
        }
    }
    cur
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine as _;

    /// The table decodes every pair of bytes as the per-digit match did:
    /// a value for hex digits of either case, a stop at anything else.
    #[test]
    fn hex_table_decodes_every_pair() {
        let digit = |b: u8| match b {
            b'0'..=b'9' => Some(b - b'0'),
            b'a'..=b'f' => Some(b - b'a' + 10),
            b'A'..=b'F' => Some(b - b'A' + 10),
            _ => None,
        };
        let mut out = Vec::new();
        let mut decoded = 0;
        for a in 0..=255u8 {
            assert_eq!(hexval(a), digit(a), "{a}");
            for b in 0..=255u8 {
                hex_decode(&[a, b, b'4', b'1'], &mut out);
                let want: Vec<u8> = match (digit(a), digit(b)) {
                    (Some(h), Some(l)) => vec![h << 4 | l, 0x41],
                    _ => Vec::new(),
                };
                assert_eq!(out, want, "{a} {b}");
                decoded += want.len();
            }
        }
        assert_eq!(decoded, 2 * 22 * 22);
    }

    #[test]
    fn base64_roundtrip_and_span() {
        let data = b"hello world, this is data!";
        let enc = base64::engine::general_purpose::STANDARD_NO_PAD.encode(data);
        let mut out = Vec::new();
        b64_decode(enc.as_bytes(), &mut out);
        assert_eq!(out, data);
        let enc =
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode([0xfbu8, 0xff, 0xfe, 1, 2]);
        b64_decode(enc.as_bytes(), &mut out);
        assert_eq!(out, [0xfb, 0xff, 0xfe, 1, 2]);
        assert_eq!(b64_span(0, 3), (0, 4));
        assert_eq!(b64_span(3, 6), (4, 8));
        assert_eq!(b64_span(1, 2), (1, 3));
    }

    #[test]
    fn hex_decoding() {
        let mut out = Vec::new();
        hex_decode(b"4142zz", &mut out);
        assert_eq!(out, b"AB");
        hex_decode(b"414", &mut out);
        assert_eq!(out, b"A");
    }

    #[test]
    fn normalisation() {
        let (v, map) = normalize(b"a%2567b", 4).unwrap();
        assert_eq!(v, b"agb");
        assert_eq!(map, [0, 1, 6]);
        let zw = "gh\u{200B}p_\u{FEFF}x".as_bytes();
        assert_eq!(normalize(zw, 4).unwrap().0, b"ghp_x");
        let fw = "\u{FF47}\u{FF48}\u{FF50}\u{FF3F}".as_bytes();
        assert_eq!(normalize(fw, 4).unwrap().0, b"ghp_");
        assert_eq!(normalize(br"\u0067\u0068p\x5f", 4).unwrap().0, b"ghp_");
        assert_eq!(normalize(b"%E2%80%8Bab", 4).unwrap().0, b"ab");
        assert_eq!(
            normalize(br"\ud83d\ude00", 4).unwrap().0,
            "\u{1F600}".as_bytes()
        );
        assert!(normalize(b"plain text", 4).is_none());
        assert!(normalize("caf\u{e9} \u{201c}q\u{201d}".as_bytes(), 4).is_none());
        // truncated escapes are left alone
        assert!(normalize(b"%4", 4).is_none());
        assert!(normalize(b"\\u12", 4).is_none());
    }

    #[test]
    fn triggers() {
        assert!(is_trigger(b"%41"));
        assert!(!is_trigger(b"%4"));
        assert!(is_trigger(b"\\u0041"));
        assert!(!is_trigger(b"\\u2019"));
        assert!(!is_trigger(b"\\n"));
        assert!(!is_trigger(b"\\u003c"));
        assert!(!is_trigger(br"\ud83d\ude00"));
        assert!(is_trigger(br"\udb40\udc41"));
        assert!(is_trigger(br"\ud800x"));
        assert!(is_trigger("\u{200B}".as_bytes()));
        assert!(!is_trigger("\u{201C}".as_bytes()));
        assert!(is_trigger("\u{FF41}".as_bytes()));
    }

    #[test]
    fn percent() {
        assert_eq!(percent_decode(b"a+b%2Bc%252F", true), b"a b+c/");
        assert_eq!(percent_decode(b"%zz%", false), b"%zz%");
    }
}
