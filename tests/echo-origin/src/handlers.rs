//! The endpoints.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use http::header::{self, HeaderValue};
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Empty, StreamBody};
use hyper::body::{Frame, Incoming};
use serde_json::json;
use tokio::sync::watch;

pub(crate) use crate::http_parts::{full, param, pattern, query_params, Body, BoxError, FRAME};
use crate::{RecordedRequest, State};

/// What a handler knows about the connection a request came on.
#[derive(Clone, Debug)]
pub(crate) struct ConnInfo {
    pub tls: bool,
    pub sni: Option<String>,
    pub alpn: Option<String>,
    pub peer: SocketAddr,
    pub conn_id: u64,
}

/// The default echo endpoint keeps at most this much of a body for the JSON answer.
const ECHO_BODY_LIMIT: usize = 16 * 1024 * 1024;

fn empty() -> Body {
    Empty::<Bytes>::new().map_err(|e| match e {}).boxed()
}

fn response(status: StatusCode, content_type: &str, body: Body) -> Response<Body> {
    let mut r = Response::new(body);
    *r.status_mut() = status;
    if let Ok(v) = HeaderValue::from_str(content_type) {
        r.headers_mut().insert(header::CONTENT_TYPE, v);
    }
    r
}

fn text(status: StatusCode, s: impl Into<String>) -> Response<Body> {
    response(status, "text/plain; charset=utf-8", full(s.into()))
}

fn json_response(status: StatusCode, v: &serde_json::Value) -> Response<Body> {
    let mut s = v.to_string();
    s.push('\n');
    response(status, "application/json", full(s))
}

/// A numeric query parameter: `default` when absent; 400 when not a number or above `max`.
fn num_param(
    params: &[(String, String)],
    name: &str,
    default: u64,
    max: u64,
) -> Result<u64, BadParam> {
    match param(params, name) {
        None => Ok(default),
        Some(v) => match v.trim().parse::<u64>() {
            Ok(n) if n <= max => Ok(n),
            _ => Err(BadParam(format!(
                "bad ?{name}= (want an integer 0..={max})\n"
            ))),
        },
    }
}

/// A rejected query parameter: answered with 400 and this text.
struct BadParam(String);

impl BadParam {
    fn response(self) -> Response<Body> {
        text(StatusCode::BAD_REQUEST, self.0)
    }
}

type Answer = Result<Response<Body>, BadParam>;

fn recorded(req: &Request<Incoming>, info: &ConnInfo) -> RecordedRequest {
    let uri = req.uri();
    let authority = uri.authority().map(|a| a.to_string()).or_else(|| {
        req.headers()
            .get(header::HOST)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
    });
    RecordedRequest {
        method: req.method().to_string(),
        uri: uri.to_string(),
        path: uri.path().to_string(),
        query: uri.query().map(str::to_string),
        version: format!("{:?}", req.version()),
        authority,
        headers: req
            .headers()
            .iter()
            .map(|(n, v)| {
                (
                    n.as_str().to_string(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect(),
        body_len: 0,
        body: Vec::new(),
        trailers: Vec::new(),
        tls: info.tls,
        sni: info.sni.clone(),
        alpn: info.alpn.clone(),
        peer: info.peer,
        conn_id: info.conn_id,
    }
}

pub(crate) async fn handle(
    req: Request<Incoming>,
    info: Arc<ConnInfo>,
    state: Arc<State>,
    shutdown: watch::Receiver<bool>,
) -> Response<Body> {
    let rec = recorded(&req, &info);
    let log = state.log_requests();
    let (idx, rec) = if log {
        (state.record(rec.clone()), Some(rec))
    } else {
        (state.record(rec), None)
    };
    if crate::grpc::is_grpc(&req) {
        let response = crate::grpc::serve(req, state, idx);
        if let Some(rec) = rec {
            log_line(&rec, response.status());
        }
        return response;
    }
    let path = req.uri().path().to_string();
    let params = query_params(req.uri().query());
    let mut body_len: u64 = 0;
    if let Some(canned) = state.canned(&path) {
        let (head, kept, total) = crate::canned::read_body(req).await;
        let response = match &canned {
            crate::canned::Canned::Page(p) => crate::canned::serve_page(p).await,
            crate::canned::Canned::JsonRpc(ep) => {
                crate::canned::serve_jsonrpc(ep, head.method(), &kept)
            }
        };
        state.set_body_len(idx, total);
        if let Some(mut rec) = rec {
            rec.body_len = total;
            log_line(&rec, response.status());
        }
        state.set_body(idx, kept);
        return response;
    }
    let response = match path.as_str() {
        "/sse" => sse(&params).unwrap_or_else(BadParam::response),
        "/download" => download(&params).unwrap_or_else(BadParam::response),
        "/upload" => upload(req, &mut body_len).await,
        "/ws" => websocket(req, shutdown, (state.clone(), idx)),
        "/slow" => slow(&params).await.unwrap_or_else(BadParam::response),
        "/slow-body" => slow_body(&params).unwrap_or_else(BadParam::response),
        "/reflect" => crate::reflect::reflect(&req, &params).await,
        "/redirect" => redirect(&params),
        "/healthz" => text(StatusCode::OK, "ok\n"),
        "/response-headers" => response_headers(&params),
        "/trailers" => trailers(&params),
        "/abort" => abort(&params).unwrap_or_else(BadParam::response),
        p if p.starts_with("/status/") => status(&p["/status/".len()..], req.method()),
        _ => echo(req, &info, &mut body_len).await,
    };
    if body_len > 0 {
        state.set_body_len(idx, body_len);
    }
    if let Some(mut rec) = rec {
        rec.body_len = body_len;
        log_line(&rec, response.status());
    }
    response
}

/// One JSON line on stdout: the recorded request plus the response status.
fn log_line(rec: &RecordedRequest, status: StatusCode) {
    use std::io::Write;
    let mut v = serde_json::to_value(rec).unwrap_or_default();
    v["status"] = json!(status.as_u16());
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{v}");
    let _ = out.flush();
}

async fn echo(req: Request<Incoming>, info: &ConnInfo, body_len: &mut u64) -> Response<Body> {
    let (parts, mut body) = req.into_parts();
    let mut kept: Vec<u8> = Vec::new();
    let mut total: u64 = 0;
    let mut body_error: Option<String> = None;
    while let Some(frame) = body.frame().await {
        match frame {
            Ok(f) => {
                if let Ok(data) = f.into_data() {
                    total += data.len() as u64;
                    let room = ECHO_BODY_LIMIT.saturating_sub(kept.len());
                    kept.extend_from_slice(&data[..data.len().min(room)]);
                }
            }
            Err(e) => {
                body_error = Some(e.to_string());
                break;
            }
        }
    }
    *body_len = total;
    let headers: Vec<[String; 2]> = parts
        .headers
        .iter()
        .map(|(n, v)| {
            [
                n.as_str().to_string(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            ]
        })
        .collect();
    let authority = parts.uri.authority().map(|a| a.to_string()).or_else(|| {
        parts
            .headers
            .get(header::HOST)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
    });
    let mut v = json!({
        "method": parts.method.as_str(),
        "path": parts.uri.path(),
        "query": parts.uri.query(),
        "uri": parts.uri.to_string(),
        "version": format!("{:?}", parts.version),
        "authority": authority,
        "tls": info.tls,
        "sni": info.sni,
        "alpn": info.alpn,
        "conn_id": info.conn_id,
        "headers": headers,
        "body_len": total,
    });
    match String::from_utf8(kept) {
        Ok(s) => v["body"] = json!(s),
        Err(e) => {
            use base64::Engine;
            v["body_base64"] = json!(base64::engine::general_purpose::STANDARD.encode(e.as_bytes()))
        }
    }
    if total > ECHO_BODY_LIMIT as u64 {
        v["body_truncated"] = json!(true);
    }
    if let Some(e) = body_error {
        v["body_error"] = json!(e);
    }
    json_response(StatusCode::OK, &v)
}

fn sse(params: &[(String, String)]) -> Answer {
    let n = num_param(params, "n", 3, 10_000_000)?;
    let interval = Duration::from_millis(num_param(params, "interval_ms", 300, 3_600_000)?);
    let stream = futures_util::stream::unfold(0u64, move |i| async move {
        if i >= n {
            return None;
        }
        if i > 0 {
            tokio::time::sleep(interval).await;
        }
        let frame = Frame::data(Bytes::from(format!("data: event-{i}\n\n")));
        Some((Ok::<_, BoxError>(frame), i + 1))
    });
    let mut r = response(
        StatusCode::OK,
        "text/event-stream",
        BodyExt::boxed(StreamBody::new(stream)),
    );
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    Ok(r)
}

fn download(params: &[(String, String)]) -> Answer {
    let n = num_param(params, "bytes", 1024 * 1024, u64::MAX)?;
    let chunked = param(params, "chunked").is_some_and(|v| v == "1");
    let stream = futures_util::stream::unfold(0u64, move |pos| async move {
        if pos >= n {
            return None;
        }
        let len = (n - pos).min(FRAME as u64) as usize;
        let off = (pos % 251) as usize;
        let data = pattern().slice(off..off + len);
        Some((Ok::<_, BoxError>(Frame::data(data)), pos + len as u64))
    });
    let mut r = response(
        StatusCode::OK,
        "application/octet-stream",
        BodyExt::boxed(StreamBody::new(stream)),
    );
    if !chunked {
        r.headers_mut()
            .insert(header::CONTENT_LENGTH, HeaderValue::from(n));
    }
    Ok(r)
}

async fn upload(req: Request<Incoming>, body_len: &mut u64) -> Response<Body> {
    let mut body = req.into_body();
    let mut hasher = ring::digest::Context::new(&ring::digest::SHA256);
    let mut total: u64 = 0;
    while let Some(frame) = body.frame().await {
        match frame {
            Ok(f) => {
                if let Ok(data) = f.into_data() {
                    total += data.len() as u64;
                    hasher.update(&data);
                }
            }
            Err(e) => {
                *body_len = total;
                return text(
                    StatusCode::BAD_REQUEST,
                    format!("body error after {total} bytes: {e}\n"),
                );
            }
        }
    }
    *body_len = total;
    json_response(
        StatusCode::OK,
        &json!({"bytes": total, "sha256": hex::encode(hasher.finish().as_ref())}),
    )
}

fn header_has_token(req: &Request<Incoming>, name: header::HeaderName, token: &str) -> bool {
    req.headers().get_all(name).iter().any(|v| {
        v.to_str()
            .map(|s| s.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
            .unwrap_or(false)
    })
}

/// Where a WebSocket session records what it received (the request's index).
type WsRecord = (Arc<State>, usize);

fn websocket(
    mut req: Request<Incoming>,
    shutdown: watch::Receiver<bool>,
    record: WsRecord,
) -> Response<Body> {
    use tokio_tungstenite::tungstenite::handshake::derive_accept_key;

    let protocol = req
        .headers()
        .get(header::SEC_WEBSOCKET_PROTOCOL)
        .and_then(|v| v.to_str().ok())
        .and_then(|s| s.split(',').next())
        .map(|s| s.trim().to_string())
        .and_then(|p| HeaderValue::from_str(&p).ok());

    // What each logged message line names (`--log-requests`), None when not logging.
    let session = record.0.log_requests().then(|| {
        let authority = req.uri().authority().map(|a| a.to_string()).or_else(|| {
            req.headers()
                .get(header::HOST)
                .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        });
        json!({"authority": authority, "path": req.uri().path(), "query": req.uri().query()})
    });

    // RFC 8441: WebSocket over HTTP/2 (extended CONNECT with :protocol = websocket).
    let extended_connect = req.method() == http::Method::CONNECT
        && req
            .extensions()
            .get::<hyper::ext::Protocol>()
            .is_some_and(|p| p.as_str().eq_ignore_ascii_case("websocket"));
    if extended_connect {
        spawn_ws_echo(hyper::upgrade::on(&mut req), shutdown, record, session);
        let mut r = Response::new(empty());
        if let Some(p) = protocol {
            r.headers_mut().insert(header::SEC_WEBSOCKET_PROTOCOL, p);
        }
        return r;
    }

    // RFC 6455: HTTP/1.1 Upgrade.
    let key = req.headers().get(header::SEC_WEBSOCKET_KEY).cloned();
    let is_upgrade = header_has_token(&req, header::CONNECTION, "upgrade")
        && header_has_token(&req, header::UPGRADE, "websocket");
    let Some(key) = key.filter(|_| is_upgrade) else {
        return text(
            StatusCode::BAD_REQUEST,
            "expected a WebSocket upgrade (HTTP/1.1 Upgrade: websocket, or HTTP/2 extended CONNECT)\n",
        );
    };
    spawn_ws_echo(hyper::upgrade::on(&mut req), shutdown, record, session);
    let mut r = Response::new(empty());
    *r.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let h = r.headers_mut();
    h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    h.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    if let Ok(v) = HeaderValue::from_str(&derive_accept_key(key.as_bytes())) {
        h.insert(header::SEC_WEBSOCKET_ACCEPT, v);
    }
    if let Some(p) = protocol {
        h.insert(header::SEC_WEBSOCKET_PROTOCOL, p);
    }
    r
}

/// Echoes text and binary messages on the upgraded connection until close or shutdown. The
/// payloads received (first 1 MiB, one after another) are the request's recorded body.
fn spawn_ws_echo(
    on_upgrade: hyper::upgrade::OnUpgrade,
    mut shutdown: watch::Receiver<bool>,
    (state, idx): WsRecord,
    session: Option<serde_json::Value>,
) {
    use tokio_tungstenite::tungstenite::protocol::{Message, Role};
    tokio::spawn(async move {
        let Ok(upgraded) = on_upgrade.await else {
            return;
        };
        let io = hyper_util::rt::TokioIo::new(upgraded);
        let mut ws =
            tokio_tungstenite::WebSocketStream::from_raw_socket(io, Role::Server, None).await;
        let mut received: Vec<u8> = Vec::new();
        loop {
            let msg = tokio::select! {
                _ = shutdown.changed() => break,
                m = ws.next() => m,
            };
            let reply = match msg {
                Some(Ok(Message::Text(t))) => {
                    log_ws_message(&session, t.as_bytes());
                    received.extend_from_slice(t.as_bytes());
                    Message::Text(t)
                }
                Some(Ok(Message::Binary(b))) => {
                    log_ws_message(&session, &b);
                    received.extend_from_slice(&b);
                    Message::Binary(b)
                }
                Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => continue,
                Some(Ok(Message::Close(_))) | Some(Err(_)) | None => break,
            };
            received.truncate(1024 * 1024);
            state.set_body(idx, received.clone());
            if ws.send(reply).await.is_err() {
                break;
            }
        }
        let _ = ws.close(None).await;
    });
}

/// With `--log-requests`: one JSON line per WebSocket message received, before its echo:
/// `{"ws_message": {authority, path, query, len, payload | payload_base64}}` (the first
/// 64 KiB; the session's request line came before). `session`: None when not logging.
fn log_ws_message(session: &Option<serde_json::Value>, payload: &[u8]) {
    use base64::Engine;
    use std::io::Write;
    let Some(mut m) = session.clone() else {
        return;
    };
    let kept = &payload[..payload.len().min(64 * 1024)];
    m["len"] = json!(payload.len());
    match std::str::from_utf8(kept) {
        Ok(s) => m["payload"] = json!(s),
        Err(_) => {
            m["payload_base64"] = json!(base64::engine::general_purpose::STANDARD.encode(kept))
        }
    }
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{}", json!({ "ws_message": m }));
    let _ = out.flush();
}

async fn slow(params: &[(String, String)]) -> Answer {
    let ms = num_param(params, "ms", 2000, 3_600_000)?;
    tokio::time::sleep(Duration::from_millis(ms)).await;
    Ok(json_response(StatusCode::OK, &json!({"slept_ms": ms})))
}

fn slow_body(params: &[(String, String)]) -> Answer {
    let chunks = num_param(params, "chunks", 5, 10_000_000)?;
    let ms = Duration::from_millis(num_param(params, "ms", 200, 3_600_000)?);
    let stream = futures_util::stream::unfold(0u64, move |i| async move {
        if i >= chunks {
            return None;
        }
        tokio::time::sleep(ms).await;
        let frame = Frame::data(Bytes::from(format!("chunk-{i}\n")));
        Some((Ok::<_, BoxError>(frame), i + 1))
    });
    Ok(response(
        StatusCode::OK,
        "text/plain; charset=utf-8",
        BodyExt::boxed(StreamBody::new(stream)),
    ))
}

fn status(code: &str, method: &http::Method) -> Response<Body> {
    let code = match code
        .parse::<u16>()
        .ok()
        .and_then(|c| StatusCode::from_u16(c).ok())
    {
        Some(c) if c.as_u16() >= 200 => c,
        _ => {
            return text(
                StatusCode::BAD_REQUEST,
                format!("bad status code {code:?} (want 200-999)\n"),
            )
        }
    };
    let no_body = code == StatusCode::NO_CONTENT
        || code == StatusCode::NOT_MODIFIED
        || method == http::Method::HEAD;
    let mut r = if no_body {
        let mut r = Response::new(empty());
        *r.status_mut() = code;
        r
    } else {
        text(code, format!("status {}\n", code.as_u16()))
    };
    if code.is_redirection() {
        r.headers_mut()
            .insert(header::LOCATION, HeaderValue::from_static("/"));
    }
    r
}

fn redirect(params: &[(String, String)]) -> Response<Body> {
    let to = param(params, "to").unwrap_or("/");
    let code = param(params, "status")
        .and_then(|s| s.parse::<u16>().ok())
        .and_then(|c| StatusCode::from_u16(c).ok())
        .filter(StatusCode::is_redirection)
        .unwrap_or(StatusCode::FOUND);
    let Ok(loc) = HeaderValue::from_str(to) else {
        return text(StatusCode::BAD_REQUEST, "bad redirect target\n");
    };
    let mut r = text(code, format!("redirecting to {to}\n"));
    r.headers_mut().insert(header::LOCATION, loc);
    r
}

/// `/response-headers?Name=Value&...`: 200 with each pair appended as a response header.
fn response_headers(params: &[(String, String)]) -> Response<Body> {
    let mut set = Vec::new();
    let mut r = Response::new(empty());
    for (k, v) in params {
        let (Ok(name), Ok(value)) = (
            header::HeaderName::from_bytes(k.as_bytes()),
            HeaderValue::from_str(v),
        ) else {
            return text(StatusCode::BAD_REQUEST, format!("bad header {k:?}\n"));
        };
        r.headers_mut().append(name, value);
        set.push([k.clone(), v.clone()]);
    }
    let mut body = json!({ "set": set }).to_string();
    body.push('\n');
    *r.body_mut() = full(body);
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

/// `/trailers?name=x-checksum&value=abc`: a body `trailers follow\n` then one trailer field
/// (default `x-trailer: done`).
fn trailers(params: &[(String, String)]) -> Response<Body> {
    let name = param(params, "name").unwrap_or("x-trailer");
    let value = param(params, "value").unwrap_or("done");
    let (Ok(name), Ok(value)) = (
        header::HeaderName::from_bytes(name.as_bytes()),
        HeaderValue::from_str(value),
    ) else {
        return text(StatusCode::BAD_REQUEST, "bad trailer\n");
    };
    let announce = HeaderValue::from_str(name.as_str()).ok();
    let mut map = http::HeaderMap::new();
    map.insert(name, value);
    let frames: Vec<Result<Frame<Bytes>, BoxError>> = vec![
        Ok(Frame::data(Bytes::from_static(b"trailers follow\n"))),
        Ok(Frame::trailers(map)),
    ];
    let mut r = response(
        StatusCode::OK,
        "text/plain; charset=utf-8",
        BodyExt::boxed(StreamBody::new(futures_util::stream::iter(frames))),
    );
    if let Some(a) = announce {
        r.headers_mut().insert(header::TRAILER, a);
    }
    r
}

/// `/abort?after_bytes=N`: announces `Content-Length: 2N+1` (at least 1), sends N pattern
/// bytes, then fails the body: HTTP/1.1 closes the connection mid-body, HTTP/2 resets the
/// stream. For testing that truncated upstream bodies are not passed off as complete.
fn abort(params: &[(String, String)]) -> Answer {
    let n = num_param(params, "after_bytes", 1024, 1 << 40)?;
    let stream = futures_util::stream::unfold(0u64, move |pos| async move {
        if pos > n {
            return None;
        }
        if pos == n {
            // Give the client a moment to receive the bytes before the failure.
            tokio::time::sleep(Duration::from_millis(50)).await;
            let e: BoxError = "aborted by /abort".into();
            return Some((Err(e), n + 1));
        }
        let len = (n - pos).min(FRAME as u64) as usize;
        let off = (pos % 251) as usize;
        let data = pattern().slice(off..off + len);
        Some((Ok(Frame::data(data)), pos + len as u64))
    });
    let mut r = response(
        StatusCode::OK,
        "application/octet-stream",
        BodyExt::boxed(StreamBody::new(stream)),
    );
    r.headers_mut()
        .insert(header::CONTENT_LENGTH, HeaderValue::from(2 * n + 1));
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http_parts::percent_decode;

    #[test]
    fn percent_decoding() {
        assert_eq!(percent_decode("a%2Bb+c"), "a+b+c");
        assert_eq!(percent_decode("%41%4a%4A"), "AJJ");
        assert_eq!(percent_decode("100%"), "100%");
        assert_eq!(percent_decode("%4"), "%4");
        assert_eq!(percent_decode("%zz%"), "%zz%");
        assert_eq!(percent_decode("%E2%82%AC"), "\u{20ac}");
    }

    #[test]
    fn query_parsing_keeps_order_and_empty_values() {
        let q = query_params(Some("a=1&b&&a=2&c=x%3Dy"));
        assert_eq!(
            q,
            vec![
                ("a".to_string(), "1".to_string()),
                ("b".to_string(), String::new()),
                ("a".to_string(), "2".to_string()),
                ("c".to_string(), "x=y".to_string()),
            ]
        );
        assert_eq!(param(&q, "a"), Some("1"));
        assert_eq!(param(&q, "zz"), None);
        assert!(query_params(None).is_empty());
    }

    #[test]
    fn numeric_params_bounds() {
        let q = query_params(Some("n=5&big=11&neg=-1"));
        assert_eq!(num_param(&q, "n", 1, 10).ok(), Some(5));
        assert_eq!(num_param(&q, "missing", 7, 10).ok(), Some(7));
        assert!(num_param(&q, "big", 1, 10).is_err());
        assert!(num_param(&q, "neg", 1, 10).is_err());
    }

    #[test]
    fn download_pattern_frames_line_up() {
        let p = pattern();
        for off in [0u64, 1, 250, 251, 65_536, 1 << 33] {
            let o = (off % 251) as usize;
            assert_eq!(p[o], crate::download_byte(off));
            assert_eq!(
                p[o + FRAME - 1],
                crate::download_byte(off + FRAME as u64 - 1)
            );
        }
    }
}
