//! `/reflect`: sends a credential back in many spellings, for credential-scrub tests.

use std::time::Duration;

use base64::Engine;
use bytes::Bytes;
use http::header::{self, HeaderName, HeaderValue};
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, StreamBody};
use hyper::body::{Frame, Incoming};
use ring::rand::{SecureRandom, SystemRandom};
use tokio::io::AsyncWriteExt;

use crate::http_parts::{full, param, Body, BoxError};

/// Percent-encodes every byte outside the RFC 3986 unreserved set (`A-Z a-z 0-9 - . _ ~`)
/// as `%XX` (uppercase hex).
pub fn percent_encode_unreserved(b: &[u8]) -> String {
    let mut s = String::with_capacity(b.len() * 3);
    for &c in b {
        if c.is_ascii_alphanumeric() || matches!(c, b'-' | b'.' | b'_' | b'~') {
            s.push(c as char);
        } else {
            s.push_str(&format!("%{c:02X}"));
        }
    }
    s
}

/// Encodes every byte as `%XX` (uppercase hex).
pub fn fully_percent_encode(b: &[u8]) -> String {
    b.iter().map(|c| format!("%{c:02X}")).collect()
}

/// The token part of a credential value: what follows the first space (`Bearer X` -> `X`),
/// or the whole value if it has no space.
pub fn token_part(value: &str) -> &str {
    match value.split_once(' ') {
        Some((_, rest)) => rest,
        None => value,
    }
}

/// The lines `/reflect` sends for one credential value `t`, in order: `t` raw, the token
/// part raw, base64(token), base64url-no-pad(token), percent-encoded(token) (non-unreserved
/// bytes as `%XX`), fully `%XX`-encoded(token), lowercase hex(token), uppercase hex(token).
pub fn reflect_lines(t: &str) -> Vec<String> {
    let tok = token_part(t).as_bytes();
    vec![
        t.to_string(),
        token_part(t).to_string(),
        base64::engine::general_purpose::STANDARD.encode(tok),
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(tok),
        percent_encode_unreserved(tok),
        fully_percent_encode(tok),
        hex::encode(tok),
        hex::encode_upper(tok),
    ]
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Encoding {
    Gzip,
    Br,
    Deflate,
    Zstd,
    Unknown,
}

impl Encoding {
    fn parse(s: &str) -> Option<Option<Encoding>> {
        Some(match s {
            "" | "identity" => None,
            "gzip" => Some(Encoding::Gzip),
            "br" => Some(Encoding::Br),
            "deflate" => Some(Encoding::Deflate),
            "zstd" => Some(Encoding::Zstd),
            "x-unknown" => Some(Encoding::Unknown),
            _ => return None,
        })
    }

    fn label(self) -> &'static str {
        match self {
            Encoding::Gzip => "gzip",
            Encoding::Br => "br",
            Encoding::Deflate => "deflate",
            Encoding::Zstd => "zstd",
            Encoding::Unknown => "x-unknown",
        }
    }
}

async fn encode(enc: Encoding, data: &[u8]) -> std::io::Result<Vec<u8>> {
    use async_compression::tokio::write::{BrotliEncoder, GzipEncoder, ZlibEncoder, ZstdEncoder};
    Ok(match enc {
        Encoding::Gzip => {
            let mut e = GzipEncoder::new(Vec::new());
            e.write_all(data).await?;
            e.shutdown().await?;
            e.into_inner()
        }
        Encoding::Br => {
            let mut e = BrotliEncoder::new(Vec::new());
            e.write_all(data).await?;
            e.shutdown().await?;
            e.into_inner()
        }
        // HTTP "deflate" is the zlib format (RFC 9110 8.4.1.2).
        Encoding::Deflate => {
            let mut e = ZlibEncoder::new(Vec::new());
            e.write_all(data).await?;
            e.shutdown().await?;
            e.into_inner()
        }
        Encoding::Zstd => {
            let mut e = ZstdEncoder::new(Vec::new());
            e.write_all(data).await?;
            e.shutdown().await?;
            e.into_inner()
        }
        Encoding::Unknown => {
            let mut b = vec![0u8; 64];
            SystemRandom::new()
                .fill(&mut b)
                .map_err(|_| std::io::Error::other("system random generator failed"))?;
            b
        }
    })
}

fn header_str(req: &Request<Incoming>, name: &str) -> Option<String> {
    let name = HeaderName::from_bytes(name.as_bytes()).ok()?;
    req.headers()
        .get(name)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
}

pub(crate) async fn reflect(
    req: &Request<Incoming>,
    params: &[(String, String)],
) -> Response<Body> {
    // Collect the credential values: Authorization, then ?from_header=, then ?from_query=.
    let mut values: Vec<String> = Vec::new();
    if let Some(v) = header_str(req, "authorization") {
        values.push(v);
    }
    if let Some(name) = param(params, "from_header") {
        if !name.eq_ignore_ascii_case("authorization") {
            if let Some(v) = header_str(req, name) {
                values.push(v);
            }
        }
    }
    if let Some(name) = param(params, "from_query") {
        if let Some(v) = param(params, name) {
            values.push(v.to_string());
        }
    }

    let mut body = String::new();
    for v in &values {
        for line in reflect_lines(v) {
            body.push_str(&line);
            body.push('\n');
        }
    }
    if values.is_empty() {
        body.push_str("no credential\n");
    }
    let plain = body.into_bytes();

    let encoding = if param(params, "gzip").is_some_and(|v| v == "1") {
        Some(Encoding::Gzip)
    } else {
        match Encoding::parse(param(params, "encoding").unwrap_or("")) {
            Some(e) => e,
            None => {
                let mut r = Response::new(full(
                    "unknown ?encoding= (gzip|br|deflate|zstd|x-unknown)\n",
                ));
                *r.status_mut() = StatusCode::BAD_REQUEST;
                return r;
            }
        }
    };
    let split = param(params, "split").is_some_and(|v| v == "1");

    // Where to split: in the middle of the first raw token in the plain body; for an
    // encoded body, in its middle.
    let (payload, split_at) = match encoding {
        None => {
            let at = values
                .first()
                .map(|v| token_part(v))
                .filter(|t| !t.is_empty())
                .and_then(|t| find(&plain, t.as_bytes()).map(|p| p + t.len() / 2))
                .unwrap_or(plain.len() / 2);
            (plain, at)
        }
        Some(e) => match encode(e, &plain).await {
            Ok(b) => {
                let at = b.len() / 2;
                (b, at)
            }
            Err(err) => {
                let mut r = Response::new(full(format!("encoding failed: {err}\n")));
                *r.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
                return r;
            }
        },
    };

    // ?chunk=N[&chunk_ms=M]: the (possibly encoded) body in N-byte frames, M ms apart.
    let chunk = param(params, "chunk").and_then(|v| v.parse::<usize>().ok());
    let chunk_ms = param(params, "chunk_ms")
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(0)
        .min(60_000);
    let body = if let Some(n) = chunk.filter(|n| *n > 0) {
        let payload = Bytes::from(payload);
        let pause = Duration::from_millis(chunk_ms);
        let stream = futures_util::stream::unfold(0usize, move |pos| {
            let payload = payload.clone();
            async move {
                if pos >= payload.len() {
                    return None;
                }
                if pos > 0 && !pause.is_zero() {
                    tokio::time::sleep(pause).await;
                }
                let end = (pos + n).min(payload.len());
                Some((Ok::<_, BoxError>(Frame::data(payload.slice(pos..end))), end))
            }
        });
        StreamBody::new(stream).boxed()
    } else if split {
        let payload = Bytes::from(payload);
        let first = payload.slice(..split_at);
        let second = payload.slice(split_at..);
        let stream = futures_util::stream::unfold(0u8, move |i| {
            let first = first.clone();
            let second = second.clone();
            async move {
                match i {
                    0 => Some((Ok::<_, BoxError>(Frame::data(first)), 1)),
                    1 => {
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        Some((Ok(Frame::data(second)), 2))
                    }
                    _ => None,
                }
            }
        });
        StreamBody::new(stream).boxed()
    } else {
        full(payload)
    };

    let mut r = Response::new(body);
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    h.insert("x-reflect-count", HeaderValue::from(values.len()));
    for v in &values {
        if let Ok(hv) = HeaderValue::from_str(v) {
            h.append("x-reflect", hv);
        }
        if let Ok(hv) = HeaderValue::from_str(token_part(v)) {
            h.append("x-reflect-token", hv);
        }
    }
    if let Some(e) = encoding {
        h.insert(
            header::CONTENT_ENCODING,
            HeaderValue::from_static(e.label()),
        );
    }
    r
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() || needle.len() > hay.len() {
        return None;
    }
    hay.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_for_bearer() {
        let l = reflect_lines("Bearer ab+/c d");
        assert_eq!(l[0], "Bearer ab+/c d");
        assert_eq!(l[1], "ab+/c d");
        assert_eq!(l[2], "YWIrL2MgZA==");
        assert_eq!(l[3], "YWIrL2MgZA");
        assert_eq!(l[4], "ab%2B%2Fc%20d");
        assert_eq!(l[5], "%61%62%2B%2F%63%20%64");
        assert_eq!(l[6], "61622b2f632064");
        assert_eq!(l[7], "61622B2F632064");
    }

    #[test]
    fn token_without_space_is_whole() {
        assert_eq!(token_part("abc"), "abc");
        assert_eq!(token_part("Basic  x"), " x");
    }
}
