//! Repeated encodings: a token that needs two or more decoding layers
//! (base64 of hex of base64, base32 of base64, ...) before it reads as text.
//! Ordinary traffic encodes once (a base64 attachment, a hex digest); layering
//! only serves to hide what is inside, so it is flagged whatever the content.
//!
//! Percent-encoding is the URL's own transport: it is undone first and not
//! counted (a percent-encoded base64 query value is one layer, not two).

use base64::Engine as _;

/// Shortest token (before decoding, and for every intermediate layer) that
/// counts as an encoded layer.
pub const MIN_LAYER_LEN: usize = 16;
/// Longest token examined (a longer one is judged on its first bytes).
pub const MAX_LAYER_INPUT: usize = 16 * 1024;
/// Deepest chain followed.
const MAX_DEPTH: usize = 4;

/// Printable text: at least 4 bytes, nearly all printable ASCII or whitespace.
pub fn printable(b: &[u8]) -> bool {
    if b.len() < 4 {
        return false;
    }
    let good = b
        .iter()
        .filter(|&&c| (0x20..0x7f).contains(&c) || matches!(c, b'\t' | b'\n' | b'\r'))
        .count();
    good * 100 >= b.len() * 97
}

fn trim(b: &[u8]) -> &[u8] {
    let s = b
        .iter()
        .position(|c| !c.is_ascii_whitespace() && *c != b'"')
        .unwrap_or(b.len());
    let e = b
        .iter()
        .rposition(|c| !c.is_ascii_whitespace() && *c != b'"')
        .map_or(s, |i| i + 1);
    &b[s..e.max(s)]
}

fn decode_hex(t: &[u8]) -> Option<Vec<u8>> {
    if !t.len().is_multiple_of(2) || !t.iter().all(u8::is_ascii_hexdigit) {
        return None;
    }
    hex::decode(t).ok()
}

pub(super) fn decode_b64(t: &[u8]) -> Option<Vec<u8>> {
    let body = t.strip_suffix(b"==").or(t.strip_suffix(b"=")).unwrap_or(t);
    if body.len() % 4 == 1 || body.contains(&b'=') {
        return None;
    }
    let std = body
        .iter()
        .all(|&b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/');
    let url = body
        .iter()
        .all(|&b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    let eng = if std {
        &base64::engine::general_purpose::STANDARD_NO_PAD
    } else if url {
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
    } else {
        return None;
    };
    eng.decode(body).ok()
}

/// RFC 4648 base32 (either case, padding optional).
fn decode_b32(t: &[u8]) -> Option<Vec<u8>> {
    let body = {
        let mut e = t.len();
        while e > 0 && t[e - 1] == b'=' {
            e -= 1;
        }
        &t[..e]
    };
    if !matches!(body.len() % 8, 0 | 2 | 4 | 5 | 7) {
        return None;
    }
    let upper = body.iter().all(|&b| matches!(b, b'A'..=b'Z' | b'2'..=b'7'));
    let lower = body.iter().all(|&b| matches!(b, b'a'..=b'z' | b'2'..=b'7'));
    if !upper && !lower {
        return None;
    }
    let mut out = Vec::with_capacity(body.len() * 5 / 8);
    let (mut acc, mut bits) = (0u32, 0u32);
    for &b in body {
        let v = match b.to_ascii_uppercase() {
            c @ b'A'..=b'Z' => c - b'A',
            c @ b'2'..=b'7' => c - b'2' + 26,
            _ => return None,
        };
        acc = (acc << 5) | u32::from(v);
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}

/// Undoes percent-escapes (only if there are any); `None` if nothing changed.
pub fn percent_decode(t: &[u8]) -> Option<Vec<u8>> {
    if !t.contains(&b'%') {
        return None;
    }
    let mut out = Vec::with_capacity(t.len());
    let mut i = 0;
    let mut changed = false;
    while i < t.len() {
        if t[i] == b'%' && i + 2 < t.len() {
            if let (Some(h), Some(l)) = (hexval(t[i + 1]), hexval(t[i + 2])) {
                out.push(h << 4 | l);
                i += 3;
                changed = true;
                continue;
            }
        }
        out.push(t[i]);
        i += 1;
    }
    changed.then_some(out)
}

fn hexval(b: u8) -> Option<u8> {
    (b as char).to_digit(16).map(|d| d as u8)
}

/// The longest chain of decodings from `token` that ends in printable text
/// (0 when no decoding of it reads as text). Every layer but the last must be
/// one whole token of at least [`MIN_LAYER_LEN`] bytes.
pub fn layers(token: &[u8]) -> usize {
    let mut t = trim(&token[..token.len().min(MAX_LAYER_INPUT)]);
    let undone;
    if let Some(p) = percent_decode(t) {
        undone = p;
        t = trim(&undone);
    }
    depth(t, 0)
}

fn depth(t: &[u8], level: usize) -> usize {
    if level >= MAX_DEPTH || t.len() < MIN_LAYER_LEN {
        return 0;
    }
    let mut best = 0;
    for dec in [decode_hex, decode_b32, decode_b64] {
        let Some(d) = dec(t) else { continue };
        if !printable(&d) {
            continue;
        }
        let inner = trim(&d);
        let inner = match percent_decode(inner) {
            Some(p) => 1 + depth(trim(&p), level + 1),
            None => 1 + depth(inner, level + 1),
        };
        best = best.max(inner);
        if best >= 2 {
            break;
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};

    fn b32(b: &[u8]) -> String {
        const A: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
        let mut out = String::new();
        let (mut acc, mut bits) = (0u32, 0u32);
        for &x in b {
            acc = (acc << 8) | u32::from(x);
            bits += 8;
            while bits >= 5 {
                bits -= 5;
                out.push(A[((acc >> bits) & 31) as usize] as char);
            }
            acc &= (1 << bits) - 1;
        }
        if bits > 0 {
            out.push(A[((acc << (5 - bits)) & 31) as usize] as char);
        }
        out
    }

    #[test]
    fn layer_table() {
        let text = b"the build log of project seven";
        let b64 = STANDARD.encode(text);
        let hex_b64 = hex::encode(&b64);
        let b64_hex_b64 = STANDARD.encode(&hex_b64);
        let cases: Vec<(String, usize)> = vec![
            (b64.clone(), 1),
            (hex::encode(text), 1),
            (hex_b64.clone(), 2),
            (b64_hex_b64.clone(), 3),
            (b32(b64.as_bytes()), 2),
            (URL_SAFE_NO_PAD.encode(STANDARD.encode(text)), 2),
            // percent is transport, not a layer
            (b64.replace('=', "%3D"), 1),
            (STANDARD.encode(&b64).replace('=', "%3D"), 2),
            // ordinary one-layer or binary data
            (
                "2202109512a0599270bc34e7d0dd96bd680f120b6a3e37eca942c2b2164e6e95".into(),
                0,
            ),
            (STANDARD.encode("deadbeefcafe0123deadbeefcafe0123"), 1),
            ("Y3Vyc29yOnYyOpHOAAw3xA==".into(), 0),
            ("internationalization".into(), 0),
        ];
        for (t, want) in cases {
            assert_eq!(layers(t.as_bytes()), want, "{t}");
        }
    }

    #[test]
    fn base32_decoder() {
        assert_eq!(decode_b32(b"MZXW6YTBOI======").unwrap(), b"foobar");
        assert_eq!(decode_b32(b"mzxw6ytboi").unwrap(), b"foobar");
        assert!(decode_b32(b"MZXW6YTBO1").is_none());
    }
}
