//! A gRPC-like endpoint: any request with `Content-Type: application/grpc*` (HTTP/2). Each
//! length-prefixed message received is answered at once with one message (bidirectional
//! streaming: no answer waits for the end of the request), then the stream ends with
//! `grpc-status` / `grpc-message` trailers. Methods (the path's last segment):
//!
//! - `Reflect`: one message holding the request's `authorization` value, then trailers with
//!   `x-reflect: <that value>` and `grpc-message: <that value>` (what a careless server
//!   does with a credential). With `x-reflect-where: trailers`, the trailers only.
//! - anything else: echo, each message back as received.
//!
//! Metadata knobs: `x-grpc-status: N` and `x-grpc-message: text` pick the final status.
//! The request body (first 1 MiB, prefixes included) and trailers are recorded.

use std::sync::Arc;

use bytes::{BufMut, Bytes, BytesMut};
use http::header::{self, HeaderMap, HeaderValue};
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, StreamBody};
use hyper::body::{Frame, Incoming};

use crate::http_parts::{Body, BoxError};
use crate::State;

/// Kept of a gRPC request body for [`crate::RecordedRequest::body`].
const KEEP: usize = 1024 * 1024;

/// Whether the request is gRPC (content type `application/grpc` or `application/grpc+...`).
pub(crate) fn is_grpc(req: &Request<Incoming>) -> bool {
    req.headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        })
        .is_some_and(|m| m == "application/grpc" || m.starts_with("application/grpc+"))
}

/// One length-prefixed, uncompressed message.
pub fn frame(payload: &[u8]) -> Bytes {
    let mut b = BytesMut::with_capacity(5 + payload.len());
    b.put_u8(0);
    b.put_u32(payload.len() as u32);
    b.put_slice(payload);
    b.freeze()
}

/// Splits whole messages off `buf` (payloads; a compressed message is answered as is).
fn take_messages(buf: &mut BytesMut) -> Vec<Bytes> {
    let mut out = Vec::new();
    while buf.len() >= 5 {
        let len = u32::from_be_bytes([buf[1], buf[2], buf[3], buf[4]]) as usize;
        if buf.len() < 5 + len {
            break;
        }
        let m = buf.split_to(5 + len).freeze();
        out.push(m.slice(5..));
    }
    out
}

fn trailers(status: &str, message: Option<&str>, extra: Option<(&str, &str)>) -> HeaderMap {
    let mut t = HeaderMap::new();
    if let Ok(v) = HeaderValue::from_str(status) {
        t.insert("grpc-status", v);
    }
    if let Some(v) = message.and_then(|m| HeaderValue::from_str(m).ok()) {
        t.insert("grpc-message", v);
    }
    if let Some((n, v)) = extra {
        if let (Ok(n), Ok(v)) = (
            header::HeaderName::from_bytes(n.as_bytes()),
            HeaderValue::from_str(v),
        ) {
            t.insert(n, v);
        }
    }
    t
}

/// Serves one gRPC call; `idx` is the recorded request's index (its body is kept there).
pub(crate) fn serve(req: Request<Incoming>, state: Arc<State>, idx: usize) -> Response<Body> {
    let (parts, mut body) = req.into_parts();
    let header = |n: &str| {
        parts
            .headers
            .get(n)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let status = header("x-grpc-status").unwrap_or_else(|| "0".into());
    let message = header("x-grpc-message");
    let auth = header("authorization").unwrap_or_default();
    let reflect = parts.uri.path().rsplit('/').next() == Some("Reflect");
    let reflect_message = reflect && header("x-reflect-where").as_deref() != Some("trailers");
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Frame<Bytes>, BoxError>>(16);
    tokio::spawn(async move {
        let mut buf = BytesMut::new();
        let mut kept: Vec<u8> = Vec::new();
        let mut total = 0u64;
        let mut request_trailers = HeaderMap::new();
        if reflect_message {
            let _ = tx.send(Ok(Frame::data(frame(auth.as_bytes())))).await;
        }
        while let Some(f) = body.frame().await {
            let Ok(f) = f else { break };
            match f.into_data() {
                Ok(d) => {
                    total += d.len() as u64;
                    let room = KEEP.saturating_sub(kept.len());
                    kept.extend_from_slice(&d[..d.len().min(room)]);
                    buf.extend_from_slice(&d);
                    for m in take_messages(&mut buf) {
                        if !reflect && tx.send(Ok(Frame::data(frame(&m)))).await.is_err() {
                            return;
                        }
                    }
                }
                Err(f) => {
                    if let Ok(t) = f.into_trailers() {
                        request_trailers = t;
                    }
                }
            }
        }
        state.set_body_len(idx, total);
        state.set_body(idx, kept);
        state.set_trailers(idx, &request_trailers);
        let t = if reflect {
            trailers(&status, Some(&auth), Some(("x-reflect", &auth)))
        } else {
            trailers(&status, message.as_deref(), None)
        };
        let _ = tx.send(Ok(Frame::trailers(t))).await;
    });
    let stream =
        futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|f| (f, rx)) });
    let mut r = Response::new(BodyExt::boxed(StreamBody::new(stream)));
    *r.status_mut() = StatusCode::OK;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/grpc"),
    );
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_split_whole() {
        let mut b = BytesMut::new();
        b.extend_from_slice(&frame(b"ab"));
        b.extend_from_slice(&frame(b""));
        b.extend_from_slice(&frame(b"xyz")[..4]);
        let got = take_messages(&mut b);
        assert_eq!(got, vec![Bytes::from_static(b"ab"), Bytes::new()]);
        assert_eq!(b.len(), 4);
    }
}
