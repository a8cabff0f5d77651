//! Forwarding one request: plain absolute-form HTTP from the agent, or a request decrypted
//! inside an intercepted tunnel. Streams both bodies; handles WebSocket upgrades.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use bottle_core::routes::ScanAction;
use bottle_core::{BoxBody, Host};
use http::header::{self, HeaderValue};
use http::{Request, Response, StatusCode, Uri, Version};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::io::AsyncWriteExt;

use crate::body::{ByteCounter, CountingBody};
use crate::filter::{self, Denied};
use crate::state::{State, Subject};
use crate::upstream::find_connect_error;
use bottle_core::hop;

/// The CONNECT target of an intercepted tunnel.
#[derive(Clone, Debug)]
pub struct Target {
    pub host: Host,
    pub port: u16,
}

fn subject_of(
    event: &'static str,
    scheme: &'static str,
    method: &str,
    host: &str,
    port: Option<u16>,
) -> Subject {
    Subject {
        event,
        method: method.to_string(),
        scheme,
        host: host.to_string(),
        port,
        path: String::new(),
    }
}

/// A request decrypted inside a tunnel: Host / :authority must equal the CONNECT target.
pub async fn handle_inner(
    state: Arc<State>,
    target: Target,
    req: Request<Incoming>,
) -> Response<BoxBody> {
    let started = Instant::now();
    let mut subject = subject_of(
        "request",
        "https",
        req.method().as_str(),
        &target.host.to_string(),
        Some(target.port),
    );
    subject.path = "/".into();
    if req.method() == http::Method::CONNECT {
        let d = Denied::status(
            "nested_connect",
            StatusCode::METHOD_NOT_ALLOWED,
            "CONNECT inside an intercepted tunnel is not allowed",
        );
        return state.refuse("inner", &subject, d, started);
    }
    let uri_auth = req.uri().authority().map(|a| a.as_str().to_string());
    let host_hdr = match req.headers().get_all(header::HOST).iter().count() {
        0 => None,
        1 => req
            .headers()
            .get(header::HOST)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string),
        _ => {
            let d = Denied::status(
                "bad_request",
                StatusCode::BAD_REQUEST,
                "several Host headers",
            );
            return state.refuse("inner", &subject, d, started);
        }
    };
    let mut seen = Vec::new();
    for a in [uri_auth, host_hdr].into_iter().flatten() {
        match bottle_core::split_host_port(&a, 443) {
            Ok((h, p)) if h == target.host && p == target.port => seen.push(a),
            _ => {
                let d = Denied::forbidden(
                    "authority_mismatch",
                    format!(
                        "request authority {a:?} does not match the CONNECT target {}",
                        target.host.to_authority(target.port)
                    ),
                );
                return state.refuse("inner", &subject, d, started);
            }
        }
    }
    if seen.is_empty() {
        let d = Denied::status(
            "bad_request",
            StatusCode::BAD_REQUEST,
            "request has no Host",
        );
        return state.refuse("inner", &subject, d, started);
    }
    proceed(
        state,
        "inner",
        "https",
        target.host,
        target.port,
        req,
        started,
    )
    .await
}

/// An absolute-form request from the agent (`GET http://host/path`).
pub async fn handle_plain(state: Arc<State>, req: Request<Incoming>) -> Response<BoxBody> {
    let started = Instant::now();
    let uri = req.uri().clone();
    let mut subject = subject_of("request", "http", req.method().as_str(), "", None);
    let (scheme, default_port): (&'static str, u16) = match uri.scheme_str() {
        Some("http") => ("http", 80),
        Some("https") => ("https", 443),
        None => {
            let d = Denied::status(
                "bad_request",
                StatusCode::BAD_REQUEST,
                "pipelock is a forward proxy: send absolute-form requests (http://host/path) or CONNECT",
            );
            return state.refuse("http", &subject, d, started);
        }
        Some(other) => {
            let d = Denied::status(
                "bad_request",
                StatusCode::BAD_REQUEST,
                format!("unsupported scheme {other:?}"),
            );
            return state.refuse("http", &subject, d, started);
        }
    };
    subject.scheme = scheme;
    let auth = uri.authority().map(|a| a.as_str()).unwrap_or("");
    subject.host = auth.to_string();
    if let Err(d) = state.dlp.check_host(&state, auth, &mut subject) {
        return state.refuse("http", &subject, d, started);
    }
    let (host, port) = match bottle_core::split_host_port(auth, default_port) {
        Ok(hp) => hp,
        Err(e) => {
            let d = Denied::forbidden("bad_target", format!("bad host {auth:?}: {e}"));
            return state.refuse("http", &subject, d, started);
        }
    };
    subject.host = host.to_string();
    subject.port = Some(port);
    // A Host header that names another host than the absolute URI is a fronting attempt.
    let hosts: Vec<_> = req.headers().get_all(header::HOST).iter().collect();
    if hosts.len() > 1 {
        let d = Denied::status(
            "bad_request",
            StatusCode::BAD_REQUEST,
            "several Host headers",
        );
        return state.refuse("http", &subject, d, started);
    }
    if let Some(h) = hosts.first() {
        let ok = h
            .to_str()
            .ok()
            .and_then(|h| bottle_core::split_host_port(h, default_port).ok())
            .is_some_and(|(hh, hp)| hh == host && hp == port);
        if !ok {
            let d = Denied::forbidden(
                "authority_mismatch",
                format!(
                    "Host header does not match the request target {}",
                    host.to_authority(port)
                ),
            );
            return state.refuse("http", &subject, d, started);
        }
    }
    proceed(state, "http", scheme, host, port, req, started).await
}

async fn proceed(
    state: Arc<State>,
    kind: &'static str,
    scheme: &'static str,
    host: Host,
    port: u16,
    mut req: Request<Incoming>,
    started: Instant,
) -> Response<BoxBody> {
    let mut subject = subject_of(
        "request",
        scheme,
        req.method().as_str(),
        &host.to_string(),
        Some(port),
    );
    subject.path = crate::dlp_scan::path_only(req.uri());
    let cfg = state.live.current();
    if let Err(d) = filter::check(&cfg, &host, port) {
        return state.refuse(kind, &subject, d, started);
    }
    drop(cfg);
    let authority = host.to_authority_default(scheme, port);
    let path_q = req
        .uri()
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "/".into());
    let url = format!("{scheme}://{authority}{path_q}");
    // The path alone (no query): what names an MCP server and an agent card.
    let path_only = req.uri().path().to_string();

    // DLP on the request head; the body is scanned as it streams.
    let head_verdict = match state.dlp.check_head(
        &state,
        req.method().as_str(),
        &path_q,
        req.headers(),
        &mut subject,
    ) {
        Ok(v) => v,
        Err(d) => return state.refuse(kind, &subject, d, started),
    };

    let upgrade = req.version() == Version::HTTP_11 && hop::is_websocket_upgrade(req.headers());
    let client_upgrade = if upgrade {
        Some(hyper::upgrade::on(&mut req))
    } else {
        None
    };
    let (parts, body) = req.into_parts();
    let mut headers = parts.headers;
    hop::strip(&mut headers, upgrade);
    // the agent's Proxy-Authorization went with the hop headers; egress gets ours
    state.upstream.dialer.mode.authorize(&mut headers);
    if upgrade {
        // No permessage-deflate: WebSocket payloads are scanned as sent.
        headers.remove("sec-websocket-extensions");
    }
    match HeaderValue::from_str(&authority) {
        Ok(v) => {
            headers.insert(header::HOST, v);
        }
        Err(_) => {
            let d = Denied::status("bad_target", StatusCode::BAD_REQUEST, "bad authority");
            return state.refuse(kind, &subject, d, started);
        }
    }
    let up_bytes = Arc::new(AtomicU64::new(0));
    let body_finding = crate::dlp_scan::FindingSlot::default();
    let body = match state
        .dlp
        .wrap_body(&state, body, &mut headers, body_finding.clone())
        .await
    {
        Ok(b) => b,
        Err(d) => return state.refuse(kind, &subject, d, started),
    };
    let body: BoxBody = CountingBody::new(body, ByteCounter(up_bytes.clone())).boxed();
    // A JSON POST may be JSON-RPC (MCP, A2A): its first bytes tell what the answer is.
    let peeked =
        (parts.method == http::Method::POST && is_json(&headers)).then(crate::mcp::Peeked::default);
    let body: BoxBody = match &peeked {
        Some(p) => crate::mcp::PeekBody::new(body, p.clone()).boxed(),
        None => body,
    };
    let req_method = parts.method.clone();
    let uri: Uri = match url.parse() {
        Ok(u) => u,
        Err(e) => {
            let d = Denied::status(
                "bad_target",
                StatusCode::BAD_REQUEST,
                format!("bad URL: {e}"),
            );
            return state.refuse(kind, &subject, d, started);
        }
    };
    let mut up_req = Request::new(body);
    *up_req.method_mut() = parts.method;
    *up_req.uri_mut() = uri;
    *up_req.headers_mut() = headers;
    let client = if upgrade {
        &state.upstream.h1
    } else {
        &state.upstream.main
    };
    let result = client.request(up_req).await;
    let mut resp = match result {
        Ok(r) => r,
        Err(e) => {
            if let Some(d) = body_finding.take_denied() {
                return state.refuse(kind, &subject, d, started);
            }
            let d = match find_connect_error(&e) {
                Some(ce) => ce.denial(),
                None => Denied::status(
                    "upstream_error",
                    StatusCode::BAD_GATEWAY,
                    format!(
                        "upstream error for {authority}: {}",
                        bottle_core::error_chain::error_chain(&e)
                    ),
                ),
            };
            return state.refuse(kind, &subject, d, started);
        }
    };
    if let Some(d) = body_finding.take_denied() {
        return state.refuse(kind, &subject, d, started);
    }
    let status = resp.status();
    let mut extra = serde_json::Map::new();
    if let Some(v) = head_verdict {
        extra.insert("dlp".into(), v.into());
    }
    if upgrade && status == StatusCode::SWITCHING_PROTOCOLS {
        // pipelock offers no extension (it strips the agent's offer): an origin naming one
        // anyway (permessage-deflate) would send frames that cannot be read.
        if resp.headers().contains_key("sec-websocket-extensions") {
            let d = Denied::status(
                "websocket_extension",
                StatusCode::BAD_GATEWAY,
                "the origin accepted a WebSocket extension pipelock did not offer",
            );
            return state.refuse(kind, &subject, d, started);
        }
        let server_upgrade = hyper::upgrade::on(&mut resp);
        tokio::spawn(websocket_session(
            state.clone(),
            kind,
            subject.clone(),
            client_upgrade,
            server_upgrade,
            started,
        ));
        let (mut p, _b) = resp.into_parts();
        p.version = Version::HTTP_11;
        return Response::from_parts(p, bottle_core::body::empty());
    }
    let (mut p, body) = resp.into_parts();
    hop::strip(&mut p.headers, false);
    p.version = Version::HTTP_11;
    let jsonrpc_method = peeked.and_then(|p| p.jsonrpc_method());
    if let Some(m) = &jsonrpc_method {
        extra.insert("mcp_method".into(), m.clone().into());
    }
    let info = crate::response::RequestInfo {
        method: req_method,
        authority: host.to_authority(port),
        path: path_only,
        jsonrpc_method,
    };
    let injection = crate::response::InjectionSlot::default();
    let body =
        match crate::response::inspect(&state, &info, status, &mut p.headers, body, &injection)
            .await
        {
            Ok(b) => b,
            Err(d) => {
                if let Some(found) = injection.summary() {
                    extra.insert("injection".into(), found.into());
                }
                return state.refuse_with(kind, &subject, d, started, extra);
            }
        };
    let audit = crate::body::AuditOnEnd::new(
        state.clone(),
        subject,
        status.as_u16(),
        up_bytes,
        started,
        extra,
    )
    .with_dlp(body_finding)
    .with_injection(injection)
    .counted_as(kind);
    let body = crate::body::ResponseBody::new(body, audit).boxed();
    Response::from_parts(p, body)
}

/// Whether the request body is JSON (`application/json`, `*+json`).
fn is_json(headers: &http::HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|ct| {
            ct.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        })
        .is_some_and(|m| m == "application/json" || m.ends_with("+json"))
}

trait AuthorityExt {
    fn to_authority_default(&self, scheme: &str, port: u16) -> String;
}

impl AuthorityExt for Host {
    /// `host` for the scheme's default port, else `host:port` (IPv6 in brackets).
    fn to_authority_default(&self, scheme: &str, port: u16) -> String {
        let default = matches!((scheme, port), ("https", 443) | ("http", 80));
        if default {
            self.to_url_host()
        } else {
            self.to_authority(port)
        }
    }
}

#[allow(dead_code)]
fn status_only(s: StatusCode) -> Response<BoxBody> {
    let mut r = Response::new(bottle_core::body::empty());
    *r.status_mut() = s;
    r
}

/// Bytes counted so far.
pub fn load(c: &AtomicU64) -> u64 {
    c.load(Ordering::Relaxed)
}

/// One WebSocket session after the 101: agent -> origin frames scanned for secrets
/// ([`crate::ws_scan::pump`]), origin -> agent messages judged for prompt injection
/// ([`crate::ws_down::pump_down`], `dlp.responses`). The request is counted and audited
/// when the session ends, with the decision it ended with.
async fn websocket_session(
    st: Arc<State>,
    kind: &'static str,
    subj: Subject,
    client_upgrade: Option<hyper::upgrade::OnUpgrade>,
    server_upgrade: hyper::upgrade::OnUpgrade,
    started: Instant,
) {
    use crate::ws_scan::WsScanError;
    let _task = st.tasks.enter();
    let (Some(client_upgrade), Ok(up)) = (client_upgrade, server_upgrade.await) else {
        st.metrics.request(kind, "allow");
        return;
    };
    let Ok(down) = client_upgrade.await else {
        st.metrics.request(kind, "allow");
        return;
    };
    let a = crate::idle::IdleIo::new(TokioIo::new(down), st.limits.idle());
    let b = TokioIo::new(up);
    let (mut ar, aw) = tokio::io::split(a);
    let mut aw = crate::ws_scan::FrameTracking::new(aw);
    let (mut br, bw) = tokio::io::split(b);
    let block = crate::dlp_scan::DlpScanner::blocks(&st);
    let down_action = st.live.current().routes.dlp.responses;
    let mut logged: Vec<&'static str> = Vec::new();
    let mut warned: Vec<&'static str> = Vec::new();
    let up_dir = crate::ws_scan::pump(&mut ar, bw, st.dlp.detector(), block, |d| logged.push(d));
    let down_dir = async {
        if down_action == ScanAction::Off {
            tokio::io::copy(&mut br, &mut aw)
                .await
                .map_err(WsScanError::from)
        } else {
            crate::ws_down::pump_down(&mut br, &mut aw, down_action, |d| warned.push(d)).await
        }
    };
    // Either direction ending (or a refusal) ends the session.
    let (u, d, reason) = tokio::select! {
        r = up_dir => match r {
            Ok(n) => (n, 0, None),
            Err(e) => (0, 0, Some(e)),
        },
        r = down_dir => match r {
            Ok(n) => (0, n, None),
            Err(e) => (0, 0, Some(e)),
        },
    };
    if let Some(close) = reason.as_ref().and_then(|e| e.close_for_agent()) {
        // The agent learns why (1008 naming the detector, or 1009), unless the
        // origin -> agent copy was cut inside a frame: then the connection just ends.
        if aw.at_boundary() {
            let _ = aw.write_all(&close).await;
        }
        let _ = aw.shutdown().await;
    }
    for det in &logged {
        st.metrics.dlp(det, "log");
    }
    let mut extra = serde_json::Map::new();
    extra.insert("upgrade".into(), "websocket".into());
    if !logged.is_empty() {
        extra.insert(
            "dlp_ws".into(),
            format!("logged: {}", logged.join(", ")).into(),
        );
    }
    let mut found: Vec<String> = Vec::new();
    for det in &warned {
        st.metrics.injection(det, "warn");
        found.push(format!("{det} ({}, warn)", crate::ws_down::PLACE));
    }
    let (decision, reason) = match reason {
        Some(e @ WsScanError::Secret(det)) => {
            st.metrics.dlp(det, "block");
            st.metrics.refusal("dlp");
            ("deny", Some(format!("dlp: {e}")))
        }
        Some(e @ WsScanError::Injection(det)) => {
            st.metrics.injection(det, "block");
            st.metrics.refusal("injection");
            found.push(format!("{det} ({}, block)", crate::ws_down::PLACE));
            ("deny", Some(format!("injection: {e}")))
        }
        Some(e @ WsScanError::Reserved) => {
            st.metrics.refusal("dlp_encoding");
            ("deny", Some(format!("dlp: {e}")))
        }
        Some(e) => ("allow", Some(format!("websocket ended: {e}"))),
        None => ("allow", None),
    };
    if !found.is_empty() {
        extra.insert("injection".into(), found.join(", ").into());
    }
    st.metrics.request(kind, decision);
    st.audit(&subj, decision, reason, Some(101), u, d, started, extra);
}
