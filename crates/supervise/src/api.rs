//! The JSON HTTP API and the `/mcp` mount, on one listener.

use std::sync::Arc;

use bytes::Bytes;
use http::{header, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use serde_json::{json, Value};

use bottle_core::BoxBody;

use crate::app::{state_json, App, Submitted};
use crate::mcp::McpService;

/// Largest request body accepted (a request is a few hundred bytes).
pub const MAX_BODY_BYTES: usize = 16 * 1024;

/// Routes one request.
pub async fn handle(app: Arc<App>, mcp: McpService, req: Request<Incoming>) -> Response<BoxBody> {
    let path = req.uri().path().to_owned();
    if path == "/mcp" || path.starts_with("/mcp/") {
        let resp = mcp.handle(req).await;
        return resp.map(|b| b.map_err(|never| match never {}).boxed());
    }
    let query = req.uri().query().unwrap_or("").to_owned();
    match (req.method().clone(), path.as_str()) {
        (Method::POST, "/v1/requests") => post_request(app, req, &query).await,
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

async fn post_request(app: Arc<App>, req: Request<Incoming>, query: &str) -> Response<BoxBody> {
    let wait: u64 = match param(query, "wait").map(|w| w.parse()) {
        None => 0,
        Some(Ok(w)) => w,
        Some(Err(_)) => return error(StatusCode::BAD_REQUEST, "`wait` must be seconds"),
    };
    let bytes: Bytes = match Limited::new(req.into_body(), MAX_BODY_BYTES)
        .collect()
        .await
    {
        Ok(c) => c.to_bytes(),
        Err(_) => {
            let why = format!("request body over {MAX_BODY_BYTES} bytes");
            return malformed(&app, StatusCode::PAYLOAD_TOO_LARGE, &why);
        }
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

/// Audits (and rate-limits) a body that never became a request.
fn malformed(app: &App, status: StatusCode, why: &str) -> Response<BoxBody> {
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
