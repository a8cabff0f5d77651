//! The JSON HTTP API and the `/mcp` mount, on one listener.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{header, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use serde_json::{json, Value};

use bottle_core::BoxBody;

use crate::limits::{MAX_BODY_BYTES, MAX_MCP_BODY_BYTES};
use crate::mcp::McpService;
use crate::state::{state_json, State, Submitted};

/// Why a body was not read.
enum BodyError {
    TooLarge,
    TooSlow,
    Broken,
}

/// The whole body, if it is at most `max` bytes and arrives within `deadline`: a body sent a
/// byte at a time stays under the idle timeout forever and would hold its connection.
async fn read_body(body: Incoming, max: usize, deadline: Duration) -> Result<Bytes, BodyError> {
    match tokio::time::timeout(deadline, Limited::new(body, max).collect()).await {
        Err(_) => Err(BodyError::TooSlow),
        Ok(Ok(c)) => Ok(c.to_bytes()),
        Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => Err(BodyError::TooLarge),
        Ok(Err(_)) => Err(BodyError::Broken),
    }
}

/// The answer to a body that was not read; the connection is closed after it (what is left
/// of the body is never read).
fn body_refusal(e: &BodyError, max: usize) -> Response<BoxBody> {
    let mut r = match e {
        BodyError::TooLarge => error(
            StatusCode::PAYLOAD_TOO_LARGE,
            &format!("request body over {max} bytes"),
        ),
        BodyError::TooSlow => error(
            StatusCode::REQUEST_TIMEOUT,
            "the request body did not arrive in time",
        ),
        BodyError::Broken => error(StatusCode::BAD_REQUEST, "the request body broke off"),
    };
    r.headers_mut().insert(
        header::CONNECTION,
        header::HeaderValue::from_static("close"),
    );
    r
}

/// Routes one request.
pub async fn handle(app: Arc<State>, mcp: McpService, req: Request<Incoming>) -> Response<BoxBody> {
    let path = req.uri().path().to_owned();
    let body_deadline = Duration::from_secs(app.settings.body_timeout_secs.max(1));
    if path == "/mcp" || path.starts_with("/mcp/") {
        // Read here, under the same deadline as the JSON API, rather than by rmcp with none.
        let (parts, body) = req.into_parts();
        let bytes = match read_body(body, MAX_MCP_BODY_BYTES, body_deadline).await {
            Ok(b) => b,
            Err(e) => return body_refusal(&e, MAX_MCP_BODY_BYTES),
        };
        // A key named twice is read differently by different parsers; no client sends one.
        let is_json = serde_json::from_slice::<serde::de::IgnoredAny>(&bytes).is_ok();
        if is_json {
            if let Err(why) = crate::request::check_unique_keys(&bytes) {
                return error(StatusCode::BAD_REQUEST, &why);
            }
        }
        let resp = mcp
            .handle(Request::from_parts(parts, Full::new(bytes)))
            .await;
        return resp.map(|b| b.map_err(|never| match never {}).boxed());
    }
    let query = req.uri().query().unwrap_or("").to_owned();
    match (req.method().clone(), path.as_str()) {
        (Method::POST, "/v1/requests") => post_request(app, req, &query, body_deadline).await,
        (Method::GET, "/v1/blocks") => {
            let limit = param(&query, "limit")
                .and_then(|l| l.parse().ok())
                .unwrap_or(50);
            reply(StatusCode::OK, json!({"blocks": app.blocks(limit).await}))
        }
        (Method::GET, "/v1/check") => {
            let Some(url) = param(&query, "url") else {
                return error(StatusCode::BAD_REQUEST, "`url` is required");
            };
            let method = param(&query, "method");
            match app.check(&url, method.as_deref()) {
                Ok(v) => reply(StatusCode::OK, json!(v)),
                Err(why) => error(StatusCode::BAD_REQUEST, &why),
            }
        }
        (Method::GET, p) if p.starts_with("/v1/requests/") => {
            let id = &p["/v1/requests/".len()..];
            match app.state(id) {
                Some((id, st)) => reply(StatusCode::OK, state_json(&id, &st)),
                None => error(StatusCode::NOT_FOUND, "no such request"),
            }
        }
        (_, "/v1/requests" | "/v1/blocks" | "/v1/check") => {
            error(StatusCode::METHOD_NOT_ALLOWED, "method not allowed")
        }
        _ => error(StatusCode::NOT_FOUND, "not found"),
    }
}

async fn post_request(
    app: Arc<State>,
    req: Request<Incoming>,
    query: &str,
    body_deadline: Duration,
) -> Response<BoxBody> {
    let wait: u64 = match param(query, "wait").map(|w| w.parse()) {
        None => 0,
        Some(Ok(w)) => w,
        Some(Err(_)) => return error(StatusCode::BAD_REQUEST, "`wait` must be seconds"),
    };
    // A page in a browser inside the bottle could POST here as a "simple" cross-origin request
    // (`text/plain`, no preflight) and file requests in the agent's name; a JSON content type
    // makes the browser ask first, and no CORS answer ever says yes.
    if !is_json(&req) {
        return malformed(
            &app,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "send the request as `Content-Type: application/json`",
        );
    }
    let bytes: Bytes = match read_body(req.into_body(), MAX_BODY_BYTES, body_deadline).await {
        Ok(b) => b,
        Err(BodyError::TooLarge) => {
            let why = format!("request body over {MAX_BODY_BYTES} bytes");
            let mut r = malformed(&app, StatusCode::PAYLOAD_TOO_LARGE, &why);
            r.headers_mut().insert(
                header::CONNECTION,
                header::HeaderValue::from_static("close"),
            );
            return r;
        }
        Err(e) => return body_refusal(&e, MAX_BODY_BYTES),
    };
    let body: Value = match serde_json::from_slice(&bytes) {
        Ok(v) => v,
        Err(e) => return malformed(&app, StatusCode::BAD_REQUEST, &format!("invalid JSON: {e}")),
    };
    if let Err(why) = crate::request::check_unique_keys(&bytes) {
        return malformed(&app, StatusCode::BAD_REQUEST, &why);
    }
    match app.submit(&body, "http") {
        Submitted::Created { id } => {
            if wait == 0 {
                return reply(
                    StatusCode::CREATED,
                    json!({"id": id.as_str(), "status": "pending"}),
                );
            }
            match app.wait(&id, wait).await {
                Some(st) => reply(StatusCode::CREATED, state_json(&id, &st)),
                None => error(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "the request file vanished",
                ),
            }
        }
        Submitted::Duplicate { id } => {
            let st = if wait == 0 {
                app.state(id.as_str()).map(|(_, st)| st)
            } else {
                app.wait(&id, wait).await
            };
            match st {
                Some(st) => reply(StatusCode::OK, state_json(&id, &st)),
                None => error(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "the request file vanished",
                ),
            }
        }
        Submitted::Invalid(why) => error(StatusCode::UNPROCESSABLE_ENTITY, &why),
        Submitted::RateLimited(after) => too_many(
            after.as_secs().max(1),
            "rate limited: too many access requests",
        ),
        Submitted::TooManyPending => {
            too_many(60, "too many requests pending: wait for the operator")
        }
        Submitted::Failed(why) => error(StatusCode::INTERNAL_SERVER_ERROR, &why),
    }
}

/// Whether the request says its body is JSON (`application/json`, parameters allowed).
fn is_json(req: &Request<Incoming>) -> bool {
    req.headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|t| t.trim().eq_ignore_ascii_case("application/json"))
}

/// Audits (and rate-limits) a body that never became a request.
fn malformed(app: &State, status: StatusCode, why: &str) -> Response<BoxBody> {
    match app.refuse_malformed(why, "http") {
        Submitted::RateLimited(after) => too_many(
            after.as_secs().max(1),
            "rate limited: too many access requests",
        ),
        _ => error(status, why),
    }
}

/// The value of `name` in a query string (percent-decoded), first occurrence.
pub fn param(query: &str, name: &str) -> Option<String> {
    query.split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
        (k == name).then(|| percent_decode(v))
    })
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() => {
                let hex = std::str::from_utf8(&b[i + 1..i + 3]).ok();
                match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(v) => {
                        out.push(v);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn reply(status: StatusCode, v: Value) -> Response<BoxBody> {
    let mut r = Response::new(bottle_core::body::full(format!("{v}\n")));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    r
}

fn error(status: StatusCode, msg: &str) -> Response<BoxBody> {
    reply(status, json!({"error": msg}))
}

fn too_many(retry_after: u64, msg: &str) -> Response<BoxBody> {
    let mut r = error(StatusCode::TOO_MANY_REQUESTS, msg);
    r.headers_mut()
        .insert(header::RETRY_AFTER, header::HeaderValue::from(retry_after));
    r
}
