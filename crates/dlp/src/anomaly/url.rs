//! Request targets: encoded-looking path segments and query values, layered
//! encodings (strict), and environment dumps or credential URLs (both profiles).

use super::body::unescape;
use super::exfil::{ExfilState, ENV_DUMP_PAIRS};
use super::layers::{layers, percent_decode};
use super::shape::{
    data_shaped, digest_sized, is_cursor, is_digest, is_jwt, is_uuid, DigestSized, MIN_SHAPED_LEN,
};
use super::{ENCODING_LAYERS, PATH_ENTROPY};
use crate::{Encoding, Finding};

/// Hash-sized values (digests, UUIDs, signatures; whole components or their
/// dotted parts) one URL may carry before the count itself is the anomaly
/// (data cut into digest-sized chunks). Registry and git URLs carry one or
/// two, REST paths a few ids.
pub const MAX_DIGESTS_PER_URL: usize = 4;
/// Shortest run of joined short components judged as one token.
const MIN_JOINED_LEN: usize = 32;

/// (start, end) of each path segment and query value of `pq`.
fn components(pq: &str) -> Vec<(usize, usize)> {
    let b = pq.as_bytes();
    let q = pq.find('?').unwrap_or(b.len());
    let mut out = Vec::new();
    let mut start = 0;
    for i in 0..=q {
        if b.get(i).is_none_or(|&c| i == q || c == b'/' || c == b';') {
            if i > start {
                out.push((start, i));
            }
            start = i + 1;
        }
    }
    let mut start = q + 1;
    for i in q + 1..=b.len() {
        if i == b.len() || b[i] == b'&' {
            if i > start {
                // The value of `name=value` (the name too, if it is long).
                let pair = &b[start..i];
                match pair.iter().position(|&c| c == b'=') {
                    Some(eq) => {
                        if eq >= 20 {
                            out.push((start, start + eq));
                        }
                        if i > start + eq + 1 {
                            out.push((start + eq + 1, i));
                        }
                    }
                    None => out.push((start, i)),
                }
            }
            start = i + 1;
        }
    }
    out
}

fn ordinary_whole(t: &[u8]) -> bool {
    is_digest(t) || is_uuid(t) || is_jwt(t) || is_cursor(t)
}

/// Separators inside one component (`name.<hash>.js`, `sha256:<hex>`, `a@b`).
fn is_part_separator(c: &u8) -> bool {
    matches!(c, b'.' | b',' | b':' | b'@' | b'~' | b' ')
}

/// The hash-sized values of one (percent-decoded) component: the component
/// whole, or else each of its parts between separators. Counted one by one,
/// so `/<hash>.<hash>.<hash>...` is as many values as `/<hash>/<hash>/...`.
fn digest_tokens(t: &[u8]) -> Vec<(&[u8], DigestSized)> {
    if let Some(d) = counted_whole(t) {
        return vec![(t, d)];
    }
    t.split(is_part_separator)
        .filter_map(|p| counted_whole(p).map(|d| (p, d)))
        .collect()
}

/// A value passed without judging its shape, and the bytes it can carry:
/// hash-sized values, and JWTs and pagination cursors (an agent can mint
/// either; charged only to the larger budget, as one can be hundreds of bytes).
fn counted_whole(t: &[u8]) -> Option<DigestSized> {
    digest_sized(t).or_else(|| {
        (is_jwt(t) || is_cursor(t)).then_some(DigestSized {
            bytes: t.len() * 3 / 4,
            content_address: true,
        })
    })
}

/// The hash-sized values of a request target (path segments, query values
/// and their dotted parts, percent-decoded), each with the bytes it can
/// carry: what pipelock's per-parent [`super::DigestBudget`] counts.
pub fn digest_values(path_and_query: &str) -> Vec<(Vec<u8>, DigestSized)> {
    let raw = path_and_query.as_bytes();
    let mut out = Vec::new();
    for (s, e) in components(path_and_query) {
        let comp = &raw[s..e];
        let decoded = percent_decode(comp);
        let t: &[u8] = decoded.as_deref().unwrap_or(comp);
        out.extend(digest_tokens(t).into_iter().map(|(v, d)| (v.to_vec(), d)));
    }
    out
}

/// Whether one (percent-decoded) component looks like encoded data: the
/// component whole, or any part of it between `.`, `,`, `:`, `@`, `~`.
fn shaped_component(t: &[u8]) -> bool {
    if ordinary_whole(t) {
        return false;
    }
    if shaped_token(t) {
        return true;
    }
    t.split(is_part_separator)
        .any(|p| !ordinary_whole(p) && shaped_token(p))
}

/// A token that looks like data as written, or with its `-` / `_` removed:
/// data cut by separators into pieces too short to judge (`6f05-f0bb-…`) is
/// too separator-heavy for [`data_shaped`] as written, while a slug joined
/// still reads as words.
fn shaped_token(t: &[u8]) -> bool {
    if data_shaped(t) {
        return true;
    }
    if !t.iter().any(|&b| b == b'-' || b == b'_') {
        return false;
    }
    let joined: Vec<u8> = t
        .iter()
        .copied()
        .filter(|&b| b != b'-' && b != b'_')
        .collect();
    data_shaped(&joined)
}

fn finding(detector: &'static str, (s, e): (usize, usize)) -> Finding {
    Finding {
        detector,
        offset: s,
        len: e - s,
        encoding: Encoding::Raw,
    }
}

/// Anomaly checks of a request target (`/path?query`). Offsets refer to
/// `path_and_query`, so [`crate::redact_url`] can hide what was found.
pub fn scan_url(path_and_query: &str, strict: bool) -> Vec<Finding> {
    let mut out = Vec::new();
    let raw = path_and_query.as_bytes();
    let pairs = if strict { 1 } else { ENV_DUMP_PAIRS };
    if let Some(f) = ExfilState::default().scan(&unescape(raw), 0, pairs) {
        // Offsets shift when unescaping: hide everything from the query on.
        let from = path_and_query.find('?').unwrap_or(0).min(f.offset);
        out.push(finding(f.detector, (from, raw.len())));
    }
    if !strict {
        return out;
    }
    let mut digests = 0;
    // Short components, joined: data cut into pieces below the length that
    // is judged alone (`/ab12/cd34/...`, `?k1=ab12&k2=cd34`).
    let mut joined: Vec<u8> = Vec::new();
    let mut joined_range: Option<(usize, usize)> = None;
    for (s, e) in components(path_and_query) {
        let comp = &raw[s..e];
        let decoded = percent_decode(comp);
        let t: &[u8] = decoded.as_deref().unwrap_or(comp);
        digests += digest_tokens(t).len();
        if digests > MAX_DIGESTS_PER_URL {
            out.push(finding(PATH_ENTROPY, (s, e)));
            break;
        }
        if is_digest(t) {
            continue;
        }
        if layers(t) >= 2 {
            out.push(finding(ENCODING_LAYERS, (s, e)));
        } else if shaped_component(t) {
            out.push(finding(PATH_ENTROPY, (s, e)));
        } else if t.len() < MIN_SHAPED_LEN && !is_uuid(t) {
            // Lower-cased: joining hides word boundaries, so case switches
            // (`en-US/docs/Web/API`) would look like base64.
            joined.extend(
                t.iter()
                    .filter(|b| b.is_ascii_alphanumeric())
                    .map(u8::to_ascii_lowercase),
            );
            joined_range = Some((joined_range.map_or(s, |r| r.0), e));
        }
    }
    if out.is_empty() && joined.len() >= MIN_JOINED_LEN && data_shaped(&joined) {
        if let Some(r) = joined_range {
            out.push(finding(PATH_ENTROPY, r));
        }
    }
    out
}

/// Words in a header name that say its value is a token, an id or a
/// signature by design (credentials, tracing, caching, cloud SDKs).
const TOKEN_HEADER_WORDS: [&str; 24] = [
    "token",
    "key",
    "auth",
    "sig",
    "session",
    "id",
    "trace",
    "span",
    "request",
    "csrf",
    "xsrf",
    "nonce",
    "amz",
    "goog",
    "ms-",
    "github",
    "hub",
    "stainless",
    "hash",
    "digest",
    "checksum",
    "etag",
    "secret",
    "correlation",
];

/// Headers whose values are credentials or cookies by design (a cookie jar
/// holds `SESSION_TOKEN=…` pairs legitimately); the secret detectors judge them.
const CREDENTIAL_HEADERS: [&str; 4] = [
    "cookie",
    "set-cookie",
    "authorization",
    "proxy-authorization",
];

/// A request's header block: environment dumps and credential-file shapes in
/// any header but the credential ones (the pairs of a dump may be spread over
/// several headers), and in strict, invented `X-` headers holding encoded
/// data. Returns the index of the field and a finding with offsets into its
/// value.
pub fn scan_header_block(fields: &[(&str, &[u8])], strict: bool) -> Option<(usize, Finding)> {
    let pairs = if strict { 1 } else { ENV_DUMP_PAIRS };
    let mut exfil = ExfilState::default();
    let mut base = 0;
    for (i, (name, value)) in fields.iter().enumerate() {
        if CREDENTIAL_HEADERS
            .iter()
            .any(|c| name.eq_ignore_ascii_case(c))
        {
            continue;
        }
        if let Some(f) = exfil.scan(&unescape(value), base, pairs) {
            let whole = finding(f.detector, (0, value.len()));
            return Some((i, whole));
        }
        // Far apart in the stream offsets: pairs of one dump are counted
        // across headers, but never glued into one value.
        base += value.len() + 1;
        if strict {
            if let Some(f) = scan_header(name, value) {
                return Some((i, f));
            }
        }
    }
    None
}

/// Strict: an invented `X-` header (one whose name does not say it carries a
/// token or an id) with a value that looks like encoded data. Offsets refer to
/// `value`.
pub fn scan_header(name: &str, value: &[u8]) -> Option<Finding> {
    let lower = name.to_ascii_lowercase();
    if !lower.starts_with("x-") || TOKEN_HEADER_WORDS.iter().any(|w| lower.contains(w)) {
        return None;
    }
    let mut at = 0;
    for piece in value.split(|&b| matches!(b, b' ' | b',' | b';' | b'"' | b'\'' | b':')) {
        let start = at;
        at += piece.len() + 1;
        let t = match piece.iter().position(|&b| b == b'=') {
            Some(eq) if eq + 1 < piece.len() && piece[eq + 1] != b'=' => &piece[eq + 1..],
            _ => piece,
        };
        if layers(t) >= 2 {
            return Some(finding(ENCODING_LAYERS, (start, start + piece.len())));
        }
        if shaped_component(t) {
            return Some(finding(PATH_ENTROPY, (start, start + piece.len())));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::engine::general_purpose::STANDARD;
    use base64::Engine as _;

    #[test]
    fn dumps_spread_over_headers() {
        let a = b"Zq8Lr3Tx6Wv1Np9Ks4Hb7Jd2Mf5Gc0Ye";
        let b = b"Hb7Jd2Mf5Gc0YeZq8Lr3Tx6Wv1Np9Ks4";
        let v1 = [&b"GITHUB_TOKEN="[..], a].concat();
        let v2 = [&b"OPENAI_API_KEY="[..], b].concat();
        let fields: Vec<(&str, &[u8])> = vec![("x-a", &v1), ("accept", b"*/*"), ("x-b", &v2)];
        let (i, f) = scan_header_block(&fields, false).expect("dump over two headers");
        assert_eq!((i, f.detector), (2, super::super::ENV_DUMP));
        // A cookie jar of session tokens is not a dump.
        let jar = [&b"SESSION_TOKEN="[..], a, b"; CSRF_TOKEN=", b].concat();
        assert!(scan_header_block(&[("cookie", &jar)], false).is_none());
        assert!(scan_header_block(&[("x-a", &v1)], false).is_none());
        assert!(scan_header_block(&[("x-a", &v1)], true).is_some());
    }

    #[test]
    fn invented_headers_with_data() {
        let blob = "aGVsbG8gd29ybGQgdGhpcyBpcyBzZWNyZXQgZGF0YQ";
        assert!(scan_header("X-Debug-State", blob.as_bytes()).is_some());
        assert!(scan_header("X-Debug-State", format!("v=1; s={blob}").as_bytes()).is_some());
        // Names that carry tokens by design, and ordinary values, pass.
        assert!(scan_header("X-Amz-Security-Token", blob.as_bytes()).is_none());
        assert!(scan_header("X-Request-Id", blob.as_bytes()).is_none());
        assert!(scan_header("Accept", blob.as_bytes()).is_none());
        assert!(scan_header("X-Forwarded-Proto", b"https").is_none());
        assert!(scan_header("X-Client-Version", b"cli/1.2.3 (linux; x86_64)").is_none());
    }

    #[test]
    fn component_ranges() {
        let pq = "/a/bb/c;x?q=1&long_parameter_name_here=v&flag";
        let got: Vec<&str> = components(pq).iter().map(|&(s, e)| &pq[s..e]).collect();
        assert_eq!(
            got,
            [
                "a",
                "bb",
                "c",
                "x",
                "1",
                "long_parameter_name_here",
                "v",
                "flag"
            ]
        );
    }

    #[test]
    fn url_table() {
        let layered = STANDARD.encode(hex::encode("the quarterly numbers"));
        let cases: Vec<(String, Option<&str>)> = vec![
            (format!("/upload?d={}", layered.replace('=', "%3D")), Some(ENCODING_LAYERS)),
            ("/c/aGVsbG8gd29ybGQgdGhpcyBpcyBzZWNyZXQ".into(), Some(PATH_ENTROPY)),
            ("/x?id=mfrggzdfmztwq2lknnwg23tpobyxe43u".into(), Some(PATH_ENTROPY)),
            ("/v2/library/react/blobs/sha256:91cbd46d668719c5afc8f24401d82e26575bb54499e33c7a4ef80e5cfe302bdc".into(), None),
            ("/packages/27/59/76081ce1abf67779eb3c388b5e14531082e52137502e264776e1a6a11595/react-1.8.0-py3-none-any.whl".into(), None),
            ("/react/-/react-1.8.0.tgz".into(), None),
            ("/v1/objects/830ad5b6-908f-443e-b0b0-29cd31ae33b8?expand=metadata".into(), None),
            ("/left-pad/index.lef.f1dfa1f8.js".into(), None),
            ("/search?q=left-pad+rust+async&ie=UTF-8".into(), None),
        ];
        for (u, want) in cases {
            let got = scan_url(&u, true);
            match want {
                Some(id) => assert!(got.iter().any(|f| f.detector == id), "{u}: {got:?}"),
                None => assert!(got.is_empty(), "{u}: {got:?}"),
            }
            // Nothing of these fires in the default profile.
            assert!(scan_url(&u, false).is_empty(), "{u}");
        }
        let chopped = "/ab3k/9xq2/mz7p/w4vn/8rtj/q2lc/5hyd/k8ew";
        assert_eq!(
            scan_url(chopped, true).first().map(|f| f.detector),
            Some(PATH_ENTROPY)
        );
        let q = "/s?a=k3j5&b=h7g9&c=f2d4&d=s6a8&e=q1w3&f=e5r7&g=t9y2&h=x8c4";
        assert_eq!(
            scan_url(q, true).first().map(|f| f.detector),
            Some(PATH_ENTROPY)
        );
        let h = "6b810c90aa9a99858230c3d5ed479096a190fa4b";
        let many = format!("/x/{h}/{h}/{h}/{h}/{h}");
        assert_eq!(scan_url(&many, true).len(), 1);
    }
}
