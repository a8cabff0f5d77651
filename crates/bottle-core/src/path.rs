//! URL path normalisation for path rules (egress `paths:` globs).
//!
//! A path rule is only as good as the agreement between the path we match and the path
//! the origin serves. Origins decode `%2e%2e`, treat `\` as `/`, strip Tomcat/Spring
//! `;param` matrix segments, merge `//` runs or truncate at NUL, each in its own way. So
//! [`normalise`] does one decoding that every origin agrees on (unreserved characters,
//! RFC 3986 section 6.2.2.2), merges `//` runs, and calls everything else *ambiguous*: the
//! caller refuses it instead of guessing which reading the origin will pick, and forwards
//! the normalised path (never the raw one) when it judged the normalised path.

use std::fmt;

/// Why a path cannot be judged safely.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ambiguity {
    /// Does not start with `/`.
    NotAbsolute,
    /// `%2F`: one segment to us, two to an origin that decodes before routing.
    EncodedSlash,
    /// `\` or `%5C`: a separator to some origins (IIS, Windows, some frameworks).
    Backslash,
    /// `;` or `%3B`: Tomcat/Spring drop `;params`, so `/a/..;/b` is `/b` to them.
    Semicolon,
    /// `.` or `..` segment (also `%2e`, `%2E.`, `.%2e`): the origin resolves it.
    DotSegment,
    /// `%00`: some origins truncate the path there.
    Nul,
    /// `%` not followed by two hex digits.
    BadPercent,
    /// `%25`: an origin (or proxy) that decodes twice sees a different path.
    DoubleEncoding,
    /// Percent-encoded bytes that are not UTF-8 (e.g. overlong `%C0%AE` = `.` to old servers).
    NotUtf8,
}

impl fmt::Display for Ambiguity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Ambiguity::NotAbsolute => "path does not start with /",
            Ambiguity::EncodedSlash => "encoded slash (%2F)",
            Ambiguity::Backslash => "backslash (\\ or %5C)",
            Ambiguity::Semicolon => "`;` in a segment (matrix parameter, e.g. `..;`)",
            Ambiguity::DotSegment => "dot segment (`.` or `..`, possibly percent-encoded)",
            Ambiguity::Nul => "NUL (%00)",
            Ambiguity::BadPercent => "invalid percent-encoding",
            Ambiguity::DoubleEncoding => "double percent-encoding (%25)",
            Ambiguity::NotUtf8 => "percent-encoded bytes that are not UTF-8",
        })
    }
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

fn unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

const HEX_UPPER: &[u8; 16] = b"0123456789ABCDEF";

/// The path (no query) as an origin would route it: unreserved characters decoded, other
/// percent-escapes kept with upper-case hex, `//` runs merged. Err for anything an origin
/// could read differently (see [`Ambiguity`]).
pub fn normalise(raw: &str) -> Result<String, Ambiguity> {
    let b = raw.as_bytes();
    if b.first() != Some(&b'/') {
        return Err(Ambiguity::NotAbsolute);
    }
    let mut out: Vec<u8> = Vec::with_capacity(b.len());
    // every escape fully decoded: only used to check that the escapes form UTF-8
    let mut decoded: Vec<u8> = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        let byte = if c == b'%' {
            let (Some(h), Some(l)) = (
                b.get(i + 1).copied().and_then(hex),
                b.get(i + 2).copied().and_then(hex),
            ) else {
                return Err(Ambiguity::BadPercent);
            };
            i += 3;
            let v = h * 16 + l;
            check_byte(v)?;
            match v {
                b'/' => return Err(Ambiguity::EncodedSlash),
                b'%' => return Err(Ambiguity::DoubleEncoding),
                _ => {}
            }
            decoded.push(v);
            if unreserved(v) {
                out.push(v);
            } else {
                out.extend_from_slice(&[
                    b'%',
                    HEX_UPPER[usize::from(v >> 4)],
                    HEX_UPPER[usize::from(v & 15)],
                ]);
            }
            continue;
        } else {
            c
        };
        i += 1;
        check_byte(byte)?;
        decoded.push(byte);
        // merge `//` runs: the glob sees one separator, and so will the origin
        if byte == b'/' && out.last() == Some(&b'/') {
            continue;
        }
        out.push(byte);
    }
    if std::str::from_utf8(&decoded).is_err() {
        return Err(Ambiguity::NotUtf8);
    }
    let out = String::from_utf8(out).map_err(|_| Ambiguity::NotUtf8)?;
    if out.split('/').any(|seg| seg == "." || seg == "..") {
        return Err(Ambiguity::DotSegment);
    }
    Ok(out)
}

/// Bytes that are ambiguous whether they came raw or percent-encoded (an encoded `/` is
/// checked by the caller: a raw `/` is the separator).
fn check_byte(v: u8) -> Result<(), Ambiguity> {
    match v {
        0 => Err(Ambiguity::Nul),
        b'\\' => Err(Ambiguity::Backslash),
        b';' => Err(Ambiguity::Semicolon),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn legit_paths_normalise_to_themselves_or_their_decoding() {
        for (raw, want) in [
            ("/", "/"),
            ("/repos/acme/x", "/repos/acme/x"),
            ("/repos/acme/x/", "/repos/acme/x/"),
            ("/repos/%61cme/x", "/repos/acme/x"),
            ("/repos/acme/%7Euser", "/repos/acme/~user"),
            ("/a/b%20c", "/a/b%20c"),
            ("/a/b%3a", "/a/b%3A"),
            ("/a/%C3%A9", "/a/%C3%A9"),
            ("/a/.well-known/x", "/a/.well-known/x"),
            ("/a/..x/x..", "/a/..x/x.."),
            ("/a/file.tar.gz", "/a/file.tar.gz"),
            ("//repos///acme//x", "/repos/acme/x"),
            ("/a/%2e%2ejson", "/a/..json"),
        ] {
            assert_eq!(normalise(raw).as_deref(), Ok(want), "{raw}");
        }
    }

    #[test]
    fn every_dodge_spelling_is_ambiguous() {
        use Ambiguity::*;
        for (raw, want) in [
            ("repos/acme", NotAbsolute),
            ("", NotAbsolute),
            ("/repos/acme/../other", DotSegment),
            ("/repos/acme/./x", DotSegment),
            ("/repos/acme/..", DotSegment),
            ("/repos/acme/%2e%2e/other", DotSegment),
            ("/repos/acme/%2E%2E/other", DotSegment),
            ("/repos/acme/%2E./other", DotSegment),
            ("/repos/acme/.%2e/other", DotSegment),
            ("/repos/acme/%2e/x", DotSegment),
            ("/repos/acme//..//other", DotSegment),
            ("/repos/acme/..;/other", Semicolon),
            ("/repos/acme;x=1/y", Semicolon),
            ("/repos/acme/%3b/x", Semicolon),
            ("/repos/acme/..%2fother", EncodedSlash),
            ("/repos/acme%2F..%2Fother", EncodedSlash),
            ("/repos/acme/..\\other", Backslash),
            ("/repos/acme/..%5cother", Backslash),
            ("/repos/acme/%5C", Backslash),
            ("/repos/acme/x%00/../../admin", Nul),
            ("/repos/acme/%zz", BadPercent),
            ("/repos/acme/%2", BadPercent),
            ("/repos/acme/%", BadPercent),
            ("/repos/acme/%252e%252e/other", DoubleEncoding),
            ("/repos/acme/%c0%ae%c0%ae/other", NotUtf8),
            ("/repos/acme/%ff", NotUtf8),
        ] {
            assert_eq!(normalise(raw), Err(want), "{raw}");
        }
    }

    #[test]
    fn never_panics_and_output_is_stable() {
        let alphabet = [
            "/", "%", "2", "e", "E", "f", "5", "c", ".", ";", "\\", "a", "%2e", "%2F", "%00", "~",
        ];
        let mut seed = 0x9e37_79b9_u32;
        for _ in 0..20_000 {
            let mut s = String::new();
            for _ in 0..(seed % 12) {
                seed ^= seed << 13;
                seed ^= seed >> 17;
                seed ^= seed << 5;
                s.push_str(alphabet[(seed as usize) % alphabet.len()]);
            }
            if let Ok(n) = normalise(&s) {
                // judged once: normalising the forwarded path changes nothing
                assert_eq!(normalise(&n).as_deref(), Ok(n.as_str()), "{s}");
                assert!(!n.contains("//") && !n.contains('\\') && !n.contains(';'));
            }
        }
    }
}
