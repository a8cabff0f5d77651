//! Forwarding one request: plain absolute-form HTTP from the agent, or a request decrypted
//! inside an intercepted tunnel. The decision is [`policy::decide_request`]; this carries it
//! out: streams both bodies, handles WebSocket upgrades.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use bottle_core::routes::{DlpAction, ScanAction};
use bottle_core::{AuditDecision, BoxBody, RefusalKind};
use http::header;
use http::{Request, Response, StatusCode, Version};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::io::AsyncWriteExt;

use crate::body::{ByteCounter, CountingBody};
use crate::next_hop::ConnectError;
use crate::policy::{self, Denied, RequestHead, Subject, Target, Via};
use crate::state::State;
use bottle_core::hop;

/// A request decrypted inside a tunnel: Host / :authority must equal the CONNECT target.
pub async fn handle_inner(
    state: Arc<State>,
    target: Target,
    req: Request<Incoming>,
) -> Response<BoxBody> {
    proceed(state, "inner", Via::Tunnel(&target), req).await
}

/// An absolute-form request from the agent (`GET http://host/path`).
pub async fn handle_plain(state: Arc<State>, req: Request<Incoming>) -> Response<BoxBody> {
    proceed(state, "http", Via::Plain, req).await
}

/// [`carry_out`], with a refusal of a gRPC request (pipelock's or egress's) as a gRPC
/// status the client library shows ([`bottle_core::grpc::refusal_as_grpc`]).
async fn proceed(
    state: Arc<State>,
    kind: &'static str,
    via: Via<'_>,
    req: Request<Incoming>,
) -> Response<BoxBody> {
    let grpc = bottle_core::grpc::is_grpc(req.headers());
    let resp = carry_out(state, kind, via, req).await;
    if grpc {
        bottle_core::grpc::refusal_as_grpc(resp).await
    } else {
        resp
    }
}

/// Carries out [`policy::decide_request`]: refuse, or send the request upstream as the
/// plan says (its Host, its URL, its body scanned as planned), then judge the answer.
async fn carry_out(
    state: Arc<State>,
    kind: &'static str,
    via: Via<'_>,
    mut req: Request<Incoming>,
) -> Response<BoxBody> {
    let started = Instant::now();
    // RFC 8441: judged and carried on as the HTTP/1.1 handshake (crate::ws_h2)
    let h2_websocket = crate::ws_h2::is_extended_connect(
        req.method(),
        req.version(),
        req.extensions().get::<hyper::ext::Protocol>(),
    );
    if h2_websocket {
        let mut method = req.method().clone();
        crate::ws_h2::as_upgrade(&mut method, req.headers_mut(), rand::random());
        *req.method_mut() = method;
    }
    let cfg = state.live.current();
    let head = RequestHead {
        method: req.method(),
        uri: req.uri(),
        headers: req.headers(),
    };
    let decision = policy::decide_request(head, via, state.policy_view(&cfg), &state.dlp, started);
    state.count_logged(&decision.logged);
    let subject = decision.subject;
    let plan = match decision.verdict {
        Ok(p) => p,
        Err(d) => return state.refuse(kind, &subject, d, started),
    };
    drop(cfg);
    let Target { host, port } = plan.target;
    // The path alone (no query): what names an MCP server and an agent card.
    let path_only = req.uri().path().to_string();
    let head_verdict = plan.head_logged;
    let authority = plan.authority;

    let upgrade = (req.version() == Version::HTTP_11 || h2_websocket)
        && hop::is_websocket_upgrade(req.headers());
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
    headers.insert(header::HOST, plan.host_header);
    let plan_grpc = plan.body.grpc;
    if plan_grpc {
        // compressed answers cannot be judged (crate::response::grpc)
        headers.insert(
            bottle_core::grpc::ACCEPT_ENCODING,
            http::HeaderValue::from_static("identity"),
        );
    }
    let up_bytes = Arc::new(AtomicU64::new(0));
    let body_finding = crate::dlp_scan::FindingSlot::default();
    let body = state
        .dlp
        .wrap_body(
            body,
            &mut headers,
            &plan.body,
            state.metrics.clone(),
            body_finding.clone(),
        )
        .await;
    let body: BoxBody = CountingBody::new(body, ByteCounter(up_bytes.clone())).boxed();
    // A JSON POST may be JSON-RPC (MCP, A2A): its first bytes tell what the answer is.
    let peeked =
        (parts.method == http::Method::POST && is_json(&headers)).then(crate::mcp::Peeked::default);
    let body: BoxBody = match &peeked {
        Some(p) => crate::mcp::PeekBody::new(body, p.clone()).boxed(),
        None => body,
    };
    let req_method = parts.method.clone();
    let mut up_req = Request::new(body);
    *up_req.method_mut() = parts.method;
    *up_req.uri_mut() = plan.url;
    *up_req.headers_mut() = headers;
    let hop = crate::next_hop::hop_for(upgrade, state.upstream.proxied(), up_req.headers());
    let result = state.upstream.client(hop).request(up_req).await;
    let mut resp = match result {
        Ok(r) => r,
        Err(e) => {
            if let Some(d) = body_finding.take_denied() {
                return state.refuse(kind, &subject, d, started);
            }
            let d = match bottle_core::error::find_source::<ConnectError>(&e) {
                Some(ce) => ce.denial(),
                None => Denied::of(
                    RefusalKind::UpstreamError,
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
            let d = Denied::of(
                RefusalKind::WebsocketExtension,
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
        if h2_websocket {
            // the agent's stream is open: 200, without the HTTP/1.1 handshake's headers
            let mut r = Response::new(bottle_core::body::empty());
            *r.headers_mut() = crate::ws_h2::answer_headers(&p.headers);
            return r;
        }
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
    let body = if plan_grpc {
        crate::response::grpc::RefusedRequest::new(body, body_finding.clone()).boxed()
    } else {
        body
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
    .refused_in_stream(plan_grpc)
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
        st.metrics.request(kind, AuditDecision::Allow);
        return;
    };
    let Ok(down) = client_upgrade.await else {
        st.metrics.request(kind, AuditDecision::Allow);
        return;
    };
    let a = crate::idle::IdleIo::new(TokioIo::new(down), st.limits.idle());
    let b = TokioIo::new(up);
    let (mut ar, aw) = tokio::io::split(a);
    let mut aw = crate::ws_scan::FrameTracking::new(aw);
    let (mut br, bw) = tokio::io::split(b);
    let block = st.live.current().routes.dlp.action == DlpAction::Block;
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
            st.metrics.refusal(RefusalKind::Dlp);
            (AuditDecision::Deny, Some(format!("dlp: {e}")))
        }
        Some(e @ WsScanError::Injection(det)) => {
            st.metrics.injection(det, "block");
            st.metrics.refusal(RefusalKind::Injection);
            found.push(format!("{det} ({}, block)", crate::ws_down::PLACE));
            (AuditDecision::Deny, Some(format!("injection: {e}")))
        }
        Some(e @ WsScanError::Reserved) => {
            st.metrics.refusal(RefusalKind::DlpEncoding);
            (AuditDecision::Deny, Some(format!("dlp: {e}")))
        }
        Some(e) => (AuditDecision::Allow, Some(format!("websocket ended: {e}"))),
        None => (AuditDecision::Allow, None),
    };
    if !found.is_empty() {
        extra.insert("injection".into(), found.join(", ").into());
    }
    st.metrics.request(kind, decision);
    st.audit(&subj, decision, reason, Some(101), u, d, started, extra);
}
