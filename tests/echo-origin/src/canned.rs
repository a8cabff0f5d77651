//! Canned content: pages and JSON-RPC (MCP / A2A) endpoints that tests install at an exact
//! path with [`crate::EchoOrigin::set_page`] and [`crate::EchoOrigin::set_jsonrpc`].

use std::collections::HashMap;
use std::time::Duration;

use bytes::Bytes;
use http::header::{self, HeaderName, HeaderValue};
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, StreamBody};
use hyper::body::{Frame, Incoming};
use serde_json::{json, Value};
use tokio::io::AsyncWriteExt;

use crate::http_parts::{full, Body, BoxError};

/// Request bodies of canned paths are read and kept (for `RecordedRequest::body`) up to this.
pub(crate) const KEPT_BODY_LIMIT: usize = 1024 * 1024;

/// A compression applied to a [`Page`] body, labelled with `Content-Encoding`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PageEncoding {
    /// `gzip`
    Gzip,
    /// `deflate` (the zlib format, as HTTP means it)
    Deflate,
    /// `br`
    Br,
    /// `zstd`
    Zstd,
}

impl PageEncoding {
    fn label(self) -> &'static str {
        match self {
            PageEncoding::Gzip => "gzip",
            PageEncoding::Deflate => "deflate",
            PageEncoding::Br => "br",
            PageEncoding::Zstd => "zstd",
        }
    }
}

/// A canned response served for any method at one exact path.
#[derive(Clone, Debug)]
pub struct Page {
    /// Status code (default 200).
    pub status: u16,
    /// `Content-Type`; `None` sends none (for sniffing tests).
    pub content_type: Option<String>,
    /// Extra response headers, appended in order.
    pub headers: Vec<(String, String)>,
    /// The body, one HTTP data frame per chunk (before compression).
    pub body_chunks: Vec<Bytes>,
    /// Pause before every chunk but the first (use a long pause to prove a proxy releases
    /// the first chunk without waiting for the rest).
    pub chunk_delay: Duration,
    /// Compress the body: each chunk is compressed and flushed on its own, so a client
    /// can decode every frame as it arrives.
    pub content_encoding: Option<PageEncoding>,
    /// Send no `Content-Length` (HTTP/1.1 chunked). Default: the length is sent.
    pub chunked: bool,
}

impl Default for Page {
    fn default() -> Self {
        Page {
            status: 200,
            content_type: Some("text/plain; charset=utf-8".into()),
            headers: Vec::new(),
            body_chunks: Vec::new(),
            chunk_delay: Duration::ZERO,
            content_encoding: None,
            chunked: false,
        }
    }
}

impl Page {
    /// A 200 page of `content_type` with `body` in one frame.
    pub fn new(content_type: &str, body: impl Into<Bytes>) -> Page {
        Page {
            content_type: Some(content_type.to_string()),
            body_chunks: vec![body.into()],
            ..Page::default()
        }
    }

    /// A 200 page of `content_type` sent as `chunks`, `delay` apart, without
    /// `Content-Length`.
    pub fn streamed(content_type: &str, chunks: Vec<Bytes>, delay: Duration) -> Page {
        Page {
            content_type: Some(content_type.to_string()),
            body_chunks: chunks,
            chunk_delay: delay,
            chunked: true,
            ..Page::default()
        }
    }

    /// `text/html; charset=utf-8`, one frame.
    pub fn html(body: impl Into<Bytes>) -> Page {
        Page::new("text/html; charset=utf-8", body)
    }

    /// A `text/event-stream` of `events` (each sent as written: include the blank line
    /// that ends an event), one frame per event, `delay` apart.
    pub fn sse(events: &[&str], delay: Duration) -> Page {
        let chunks = events
            .iter()
            .map(|e| Bytes::copy_from_slice(e.as_bytes()))
            .collect();
        let mut p = Page::streamed("text/event-stream", chunks, delay);
        p.headers.push(("cache-control".into(), "no-cache".into()));
        p
    }

    /// The same page compressed with `enc`.
    pub fn encoded(mut self, enc: PageEncoding) -> Page {
        self.content_encoding = Some(enc);
        self
    }

    /// The same page with header `name: value` added.
    pub fn header(mut self, name: &str, value: &str) -> Page {
        self.headers.push((name.to_string(), value.to_string()));
        self
    }
}

/// A JSON-RPC 2.0 endpoint (MCP streamable HTTP, A2A): a POSTed request is answered with
/// the result configured for its `method`.
#[derive(Clone, Debug, Default)]
pub struct JsonRpcEndpoint {
    /// `method` -> results. JSON mode answers with the first; SSE mode sends one
    /// `event: message` per result (each a JSON-RPC response with the request's id).
    /// An unknown method gets the JSON-RPC error -32601.
    pub methods: HashMap<String, Vec<Value>>,
    /// Answer as `text/event-stream` instead of `application/json`.
    pub as_sse: bool,
    /// SSE mode: pause between events.
    pub event_delay: Duration,
    /// Sent as `Mcp-Session-Id` on every answer, when set.
    pub session_id: Option<String>,
}

impl JsonRpcEndpoint {
    /// An endpoint answering each `(method, result)` pair with one result.
    pub fn new(methods: impl IntoIterator<Item = (String, Value)>, as_sse: bool) -> Self {
        JsonRpcEndpoint {
            methods: methods.into_iter().map(|(m, r)| (m, vec![r])).collect(),
            as_sse,
            ..JsonRpcEndpoint::default()
        }
    }
}

/// What is installed at one path.
#[derive(Clone, Debug)]
pub(crate) enum Canned {
    Page(Page),
    JsonRpc(JsonRpcEndpoint),
}

/// Reads a request body, keeping at most [`KEPT_BODY_LIMIT`] bytes; returns (kept, total).
pub(crate) async fn read_body(req: Request<Incoming>) -> (Request<()>, Vec<u8>, u64) {
    let (parts, mut body) = req.into_parts();
    let mut kept = Vec::new();
    let mut total = 0u64;
    while let Some(Ok(frame)) = body.frame().await {
        if let Ok(data) = frame.into_data() {
            total += data.len() as u64;
            let room = KEPT_BODY_LIMIT.saturating_sub(kept.len());
            kept.extend_from_slice(&data[..data.len().min(room)]);
        }
    }
    (Request::from_parts(parts, ()), kept, total)
}

pub(crate) async fn serve_page(page: &Page) -> Response<Body> {
    let chunks = match page.content_encoding {
        None => page.body_chunks.clone(),
        Some(enc) => match encode_chunks(enc, &page.body_chunks).await {
            Ok(c) => c,
            Err(e) => return plain_error(&format!("encoding failed: {e}")),
        },
    };
    let total: u64 = chunks.iter().map(|c| c.len() as u64).sum();
    let delay = page.chunk_delay;
    let stream = futures_util::stream::unfold((0usize, chunks), move |(i, chunks)| async move {
        let chunk = chunks.get(i)?.clone();
        if i > 0 && !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        Some((Ok::<_, BoxError>(Frame::data(chunk)), (i + 1, chunks)))
    });
    let mut r = Response::new(BodyExt::boxed(StreamBody::new(stream)));
    *r.status_mut() = StatusCode::from_u16(page.status).unwrap_or(StatusCode::OK);
    let h = r.headers_mut();
    if let Some(ct) = page.content_type.as_deref().and_then(hv) {
        h.insert(header::CONTENT_TYPE, ct);
    }
    if let Some(enc) = page.content_encoding {
        h.insert(
            header::CONTENT_ENCODING,
            HeaderValue::from_static(enc.label()),
        );
    }
    if !page.chunked {
        h.insert(header::CONTENT_LENGTH, HeaderValue::from(total));
    }
    for (n, v) in &page.headers {
        if let (Ok(n), Some(v)) = (HeaderName::from_bytes(n.as_bytes()), hv(v)) {
            h.append(n, v);
        }
    }
    r
}

fn hv(s: &str) -> Option<HeaderValue> {
    HeaderValue::from_str(s).ok()
}

fn plain_error(msg: &str) -> Response<Body> {
    let mut r = Response::new(full(format!("{msg}\n")));
    *r.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
    r
}

/// Compresses `chunks` as one stream, flushing after each, so every output chunk can be
/// decoded as soon as it arrives.
async fn encode_chunks(enc: PageEncoding, chunks: &[Bytes]) -> std::io::Result<Vec<Bytes>> {
    use async_compression::tokio::write::{BrotliEncoder, GzipEncoder, ZlibEncoder, ZstdEncoder};
    macro_rules! run {
        ($e:expr) => {{
            let mut e = $e;
            let mut out = Vec::with_capacity(chunks.len());
            for (i, c) in chunks.iter().enumerate() {
                e.write_all(c).await?;
                if i + 1 == chunks.len() {
                    e.shutdown().await?;
                } else {
                    e.flush().await?;
                }
                out.push(Bytes::from(std::mem::take(e.get_mut())));
            }
            if chunks.is_empty() {
                e.shutdown().await?;
                out.push(Bytes::from(std::mem::take(e.get_mut())));
            }
            out
        }};
    }
    Ok(match enc {
        PageEncoding::Gzip => run!(GzipEncoder::new(Vec::new())),
        PageEncoding::Deflate => run!(ZlibEncoder::new(Vec::new())),
        PageEncoding::Br => run!(BrotliEncoder::new(Vec::new())),
        PageEncoding::Zstd => run!(ZstdEncoder::new(Vec::new())),
    })
}

/// Answers one POSTed JSON-RPC request (or batch) from `ep`.
pub(crate) fn serve_jsonrpc(
    ep: &JsonRpcEndpoint,
    method: &http::Method,
    body: &[u8],
) -> Response<Body> {
    if method != http::Method::POST {
        let mut r = Response::new(full("JSON-RPC endpoint: POST only\n"));
        *r.status_mut() = StatusCode::METHOD_NOT_ALLOWED;
        return with_session(r, ep);
    }
    let request: Value = match serde_json::from_slice(body) {
        Ok(v) => v,
        Err(_) => {
            let v = json!({"jsonrpc": "2.0", "id": null,
                "error": {"code": -32700, "message": "parse error"}});
            return with_session(json_answer(&v), ep);
        }
    };
    let batch = request.is_array();
    let requests: Vec<Value> = match request {
        Value::Array(a) => a,
        one => vec![one],
    };
    // Notifications (no id) get no answer.
    let answers: Vec<Vec<Value>> = requests
        .iter()
        .filter(|r| r.get("id").is_some())
        .map(|r| answers_for(ep, r))
        .collect();
    if answers.is_empty() {
        let mut r = Response::new(full(Bytes::new()));
        *r.status_mut() = StatusCode::ACCEPTED;
        return with_session(r, ep);
    }
    if ep.as_sse {
        let events: Vec<Bytes> = answers
            .into_iter()
            .flatten()
            .map(|v| Bytes::from(format!("event: message\ndata: {v}\n\n")))
            .collect();
        let delay = ep.event_delay;
        let stream = futures_util::stream::unfold((0usize, events), move |(i, ev)| async move {
            let chunk = ev.get(i)?.clone();
            if i > 0 && !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            Some((Ok::<_, BoxError>(Frame::data(chunk)), (i + 1, ev)))
        });
        let mut r = Response::new(BodyExt::boxed(StreamBody::new(stream)));
        r.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/event-stream"),
        );
        r.headers_mut()
            .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
        return with_session(r, ep);
    }
    let firsts: Vec<Value> = answers
        .into_iter()
        .filter_map(|a| a.into_iter().next())
        .collect();
    let v = if batch {
        Value::Array(firsts)
    } else {
        firsts.into_iter().next().unwrap_or(Value::Null)
    };
    with_session(json_answer(&v), ep)
}

/// The JSON-RPC responses for one request (several in SSE mode).
fn answers_for(ep: &JsonRpcEndpoint, request: &Value) -> Vec<Value> {
    let id = request.get("id").cloned().unwrap_or(Value::Null);
    let method = request.get("method").and_then(Value::as_str).unwrap_or("");
    match ep.methods.get(method) {
        Some(results) if !results.is_empty() => results
            .iter()
            .map(|r| json!({"jsonrpc": "2.0", "id": id, "result": r}))
            .collect(),
        _ => vec![json!({"jsonrpc": "2.0", "id": id,
            "error": {"code": -32601, "message": "method not found"}})],
    }
}

fn json_answer(v: &Value) -> Response<Body> {
    let mut r = Response::new(full(format!("{v}\n")));
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

fn with_session(mut r: Response<Body>, ep: &JsonRpcEndpoint) -> Response<Body> {
    if let Some(v) = ep.session_id.as_deref().and_then(hv) {
        r.headers_mut().insert("mcp-session-id", v);
    }
    r
}
