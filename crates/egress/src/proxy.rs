//! The request handler: route decision, credential injection, forwarding,
//! response scrubbing, CONNECT tunnels for `tls_passthrough` routes.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use bottle_core::audit::AuditDecision;
use bottle_core::body::{empty, BoxBody};
use bottle_core::error_chain::error_chain;
use bottle_core::routes::AuthScheme;
use bottle_core::{split_host_port, Refusal, RefusalKind, RequestContext};
use http::header::{
    ACCEPT_ENCODING, CONTENT_ENCODING, CONTENT_LENGTH, HOST, IF_RANGE, RANGE,
    SEC_WEBSOCKET_EXTENSIONS,
};
use http::{Method, Request, Response, StatusCode, Version};
use http_body_util::BodyExt as _;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;

use crate::body::{
    decode, parse_codings, parse_transfer_codings, scrub_headers, BodyStats, Coding, ScrubBody,
    ACCEPT_ENCODING as ACCEPT,
};
use crate::inject::{audit_path, inject};
use crate::origin::{connect_tcp, resolve, ConnectError};
use crate::policy::short;
pub use crate::policy::{decide, Decision, Matched, Target};
use crate::state::{route_of, State, COMPONENT};
use bottle_core::{grpc, hop};

fn scheme_name(s: AuthScheme) -> &'static str {
    match s {
        AuthScheme::Bearer => "bearer",
        AuthScheme::Basic => "basic",
        AuthScheme::Header => "header",
        AuthScheme::Query => "query",
    }
}

/// A request's audit context, with egress's `route` (`none` until one matches).
fn context(event: &'static str) -> RequestContext {
    let mut ctx = RequestContext::new(COMPONENT, event);
    ctx.route = Some("none".into());
    ctx
}

/// Entry point for every request from pipelock.
pub async fn handle(
    shared: Arc<State>,
    req: Request<Incoming>,
) -> Result<Response<BoxBody>, std::convert::Infallible> {
    // Before anything else: a request without our pipelock's key (the host, a container on an
    // upstream network) gets no route decision, no credential and no upstream connection.
    if let Some(key) = &shared.client_key {
        if !key.verify(req.headers()) {
            return Ok(refuse_unkeyed(&shared, &req));
        }
    }
    if req.method() == Method::CONNECT {
        return Ok(connect(shared, req).await);
    }
    Ok(forward(shared, req).await)
}

/// 407 for a request without the key; audited without the presented value.
fn refuse_unkeyed(shared: &State, req: &Request<Incoming>) -> Response<BoxBody> {
    let uri = req.uri();
    let mut ctx = context("request");
    ctx.method = short(req.method().as_str());
    if req.method() == Method::CONNECT {
        ctx.scheme = "connect";
    }
    ctx.host = short(uri.authority().map(|a| a.as_str()).unwrap_or_default());
    ctx.path = audit_path(uri.path(), uri.query());
    let mut resp = shared.refuse(
        &ctx,
        Refusal::of(
            RefusalKind::Unauthenticated,
            "only this bottle's pipelock may use egress (missing or wrong proxy key)",
        )
        .with_hint("send requests through pipelock: HTTPS_PROXY=http://pipelock:8888"),
    );
    resp.headers_mut().insert(
        http::header::PROXY_AUTHENTICATE,
        http::HeaderValue::from_static("Bottle realm=\"egress\""),
    );
    resp
}

async fn connect(shared: Arc<State>, req: Request<Incoming>) -> Response<BoxBody> {
    let mut ctx = context("request");
    ctx.method = "CONNECT".into();
    ctx.scheme = "connect";
    let authority = req.uri().authority().map(|a| a.as_str().to_string());
    let Some(authority) = authority else {
        return shared.refuse(
            &ctx,
            Refusal::of(RefusalKind::BadTarget, "CONNECT needs host:port"),
        );
    };
    let (host, port) = match split_host_port(&authority, 443) {
        Ok(hp) => hp,
        Err(e) => {
            ctx.host = short(&authority);
            return shared.refuse(
                &ctx,
                Refusal::of(RefusalKind::BadTarget, format!("bad CONNECT target: {e}")),
            );
        }
    };
    ctx.host = host.to_string();
    ctx.port = Some(port);
    let cfg = shared.cfg.current();
    let Some(idx) = cfg
        .live
        .routes
        .routes
        .iter()
        .position(|r| r.tls_passthrough && r.host.matches(&host, port))
    else {
        return shared.refuse(
            &ctx,
            Refusal::of(
                RefusalKind::ConnectNotPassthrough,
                format!("CONNECT is only for tls_passthrough routes; {host}:{port} is not one"),
            )
            .with_rule("routes.yaml: no tls_passthrough route matches"),
        );
    };
    ctx.route = Some(idx.to_string());
    drop(cfg);
    let what = format!("{host}:{port}");
    let addrs = match resolve(&shared.cfg, &shared.resolver, &host, port).await {
        Ok(a) => a,
        Err(e) => {
            shared.metrics.upstream_error(e.1);
            return shared.refuse(&ctx, e.0);
        }
    };
    let mut tcp = match connect_tcp(&addrs, &what, shared.timeouts.connect).await {
        Ok(s) => s,
        Err(e) => {
            shared.metrics.upstream_error(e.1);
            return shared.refuse(&ctx, e.0);
        }
    };
    shared.metrics.request(route_of(&ctx), "tunnel");
    let sh = Arc::clone(&shared);
    shared.tracker.spawn(async move {
        match hyper::upgrade::on(req).await {
            Ok(up) => {
                let mut up = TokioIo::new(up);
                let (a, b) = tokio::io::copy_bidirectional(&mut up, &mut tcp)
                    .await
                    .unwrap_or((0, 0));
                let mut ev = ctx.event(AuditDecision::Allow, None, Some(200));
                ev.event = "tunnel".into();
                ev.bytes_up = a;
                ev.bytes_down = b;
                sh.audit.record(ev);
            }
            Err(e) => tracing::warn!(error = %e, "CONNECT upgrade failed"),
        }
    });
    Response::new(empty())
}

async fn forward(shared: Arc<State>, mut req: Request<Incoming>) -> Response<BoxBody> {
    let uri = req.uri().clone();
    let mut ctx = context("request");
    ctx.method = req.method().as_str().to_string();
    ctx.path = audit_path(uri.path(), uri.query());
    let https = match uri.scheme_str() {
        Some("https") => true,
        Some("http") => false,
        _ => {
            return shared.refuse(
                &ctx,
                Refusal::of(
                    RefusalKind::BadTarget,
                    "egress expects absolute-form requests (GET https://host/path)",
                ),
            )
        }
    };
    ctx.scheme = if https { "https" } else { "http" };
    let authority = uri.authority().map(|a| a.as_str()).unwrap_or("");
    let (host, port) = match split_host_port(authority, if https { 443 } else { 80 }) {
        Ok(hp) => hp,
        Err(e) => {
            ctx.host = short(authority);
            return shared.refuse(
                &ctx,
                Refusal::of(RefusalKind::BadTarget, format!("bad host: {e}")),
            );
        }
    };
    ctx.host = host.to_string();
    ctx.port = Some(port);
    let cfg = shared.cfg.current();
    let target = Target {
        https,
        host: &host,
        port,
        method: req.method(),
        path: uri.path(),
        query: uri.query(),
        headers: req.headers(),
    };
    let Decision {
        matched,
        path,
        check_body,
    } = match decide(&cfg, &target) {
        Ok(d) => d,
        Err(r) => return shared.refuse(&ctx, r),
    };
    ctx.route = Some(matched.label());
    // forward the path the route's globs judged, not the agent's spelling of it
    if let Some(p) = path {
        match crate::policy::with_path(&uri, &p) {
            Ok(u) => {
                ctx.path = audit_path(u.path(), u.query());
                *req.uri_mut() = u;
            }
            Err(_) => {
                return shared.refuse(
                    &ctx,
                    Refusal::of(RefusalKind::BadRequest, "cannot rebuild the request target"),
                )
            }
        }
    }
    let (auth, cred) = match matched {
        Matched::Route(i) => (
            cfg.live.routes.routes[i].auth.clone(),
            cfg.creds.get(i).cloned().flatten(),
        ),
        Matched::Allowlist => (None, None),
    };
    // every response is scrubbed for every injected secret (not only on the
    // route that injected it)
    let pats = cfg.all_patterns.clone();
    let upgrade = hop::wants_upgrade(req.headers());
    if upgrade && pats.is_some() {
        // decide() let only a WebSocket upgrade through; no permessage-deflate, so egress
        // scrubs the server's frames as they pass
        req.headers_mut().remove(SEC_WEBSOCKET_EXTENSIONS);
    }
    let client_upgrade = upgrade.then(|| hyper::upgrade::on(&mut req));
    let is_head = req.method() == Method::HEAD;
    let (mut parts, body) = req.into_parts();
    // a `_method` field in a POST body on a route with method rules is judged
    // before anything is sent
    let body: BoxBody = if check_body && crate::policy::body_in_scope(&parts.headers) {
        match crate::policy::read_checked_body(body, shared.timeouts.response).await {
            Ok(b) => b,
            Err(r) => return shared.refuse(&ctx, r),
        }
    } else {
        body.map_err(Into::into).boxed()
    };
    hop::strip(&mut parts.headers, upgrade);
    parts.headers.remove(HOST);
    parts.version = Version::HTTP_11;
    if let (Some(auth), Some(cred)) = (&auth, &cred) {
        match inject(&mut parts.headers, &mut parts.uri, auth, cred) {
            Ok(p) => ctx.path = p,
            Err(_) => {
                return shared.refuse(
                    &ctx,
                    Refusal::of(RefusalKind::BadRequest, "cannot rebuild the request target"),
                )
            }
        }
        let name = scheme_name(auth.scheme);
        ctx.auth_scheme = Some(name);
        shared.metrics.injection(route_of(&ctx), name);
    }
    if pats.is_some() {
        // a partial response could carry a fragment of a secret that no longer
        // matches any form: always ask for whole representations. On every route,
        // not only injecting ones: a secret stored upstream through one route
        // could otherwise be read back in slices through another (red_team.rs)
        parts.headers.remove(RANGE);
        parts.headers.remove(IF_RANGE);
    }
    if pats.is_some() && parts.headers.contains_key(ACCEPT_ENCODING) {
        parts
            .headers
            .insert(ACCEPT_ENCODING, http::HeaderValue::from_static(ACCEPT));
    }
    if pats.is_some() && grpc::is_grpc(&parts.headers) {
        // compressed gRPC messages cannot be scrubbed: ask for plain ones (crate::grpc)
        parts.headers.insert(
            grpc::ACCEPT_ENCODING,
            http::HeaderValue::from_static("identity"),
        );
    }
    drop(cfg);
    let up_bytes = Arc::new(AtomicU64::new(0));
    let ub = Arc::clone(&up_bytes);
    let body = ScrubBody::new(body, None, move |st| ub.store(st.bytes, Ordering::Relaxed));
    let up_req = Request::from_parts(parts, body.boxed());
    let client = if upgrade {
        &shared.client_h1
    } else {
        &shared.client
    };
    let resp = match tokio::time::timeout(shared.timeouts.response, client.request(up_req)).await {
        Err(_) => {
            shared.metrics.upstream_error("response_timeout");
            return shared.refuse(
                &ctx,
                Refusal::of(
                    RefusalKind::UpstreamTimeout,
                    format!(
                        "upstream {host}:{port} sent no response headers within {}s",
                        shared.timeouts.response.as_secs_f32()
                    ),
                ),
            );
        }
        Ok(Err(e)) => {
            if let Some(ce) = bottle_core::error::find_source::<ConnectError>(&e) {
                shared.metrics.upstream_error(ce.1);
                return shared.refuse(&ctx, ce.0.clone());
            }
            shared.metrics.upstream_error("request");
            return shared.refuse(
                &ctx,
                Refusal::of(
                    RefusalKind::UpstreamError,
                    format!("upstream {host}:{port} failed: {}", error_chain(&e)),
                ),
            );
        }
        Ok(Ok(r)) => r,
    };
    let mut resp = resp;
    let status = resp.status();
    if status == StatusCode::SWITCHING_PROTOCOLS {
        if let Some(cu) = client_upgrade {
            let su = hyper::upgrade::on(&mut resp);
            let sh = Arc::clone(&shared);
            let tctx = ctx.clone();
            let ws_pats = pats.clone();
            shared.tracker.spawn(async move {
                if let (Ok(c), Ok(s)) = tokio::join!(cu, su) {
                    let (mut c, mut s) = (TokioIo::new(c), TokioIo::new(s));
                    let (a, b, scrubs) = match ws_pats {
                        None => {
                            let (a, b) = tokio::io::copy_bidirectional(&mut c, &mut s)
                                .await
                                .unwrap_or((0, 0));
                            (a, b, 0)
                        }
                        Some(p) => {
                            let (cr, mut cw) = tokio::io::split(c);
                            let (sr, mut sw) = tokio::io::split(s);
                            let up = async {
                                let mut cr = cr;
                                let n = tokio::io::copy(&mut cr, &mut sw).await.unwrap_or(0);
                                let _ = tokio::io::AsyncWriteExt::shutdown(&mut sw).await;
                                n
                            };
                            let down = crate::ws::pump(sr, &mut cw, p);
                            let (a, (b, n)) = tokio::join!(up, down);
                            (a, b, n)
                        }
                    };
                    sh.metrics.scrubbed(route_of(&tctx), scrubs);
                    let mut ev = tctx.event(AuditDecision::Allow, None, Some(101));
                    ev.event = "upgrade".into();
                    ev.bytes_up = a;
                    ev.bytes_down = b;
                    if scrubs > 0 {
                        ev.extra.insert("scrubbed".into(), scrubs.into());
                    }
                    sh.audit.record(ev);
                }
            });
            shared.metrics.request(route_of(&ctx), "forwarded");
            let (mut rparts, _) = resp.into_parts();
            hop::strip(&mut rparts.headers, true);
            if let Some(p) = &pats {
                // hyper writes a non-canonical reason phrase back out: it could carry a form
                rparts.extensions.remove::<hyper::ext::ReasonPhrase>();
                rparts.headers.remove(SEC_WEBSOCKET_EXTENSIONS);
                let n = scrub_headers(&mut rparts.headers, p);
                shared.metrics.scrubbed(route_of(&ctx), n);
            }
            rparts.version = Version::HTTP_11;
            return Response::from_parts(rparts, empty());
        }
    }
    let (mut rparts, rbody) = resp.into_parts();
    // read before hop-by-hop stripping: hyper leaves a compressed transfer coding
    // (`gzip`, `gzip, chunked`) in the body
    let transfer = parse_transfer_codings(&rparts.headers);
    hop::strip(&mut rparts.headers, false);
    rparts.version = Version::HTTP_11;
    let mut header_scrubs = 0;
    if let Some(p) = &pats {
        // hyper writes a non-canonical reason phrase back out: it could carry a form
        rparts.extensions.remove::<hyper::ext::ReasonPhrase>();
        header_scrubs = scrub_headers(&mut rparts.headers, p);
    }
    let bodyless = is_head
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED
        || status.is_informational();
    let (rbody, body_pats) = match &pats {
        Some(p) if !bodyless => match codings(&rparts.headers, transfer) {
            Err(name) => {
                shared.metrics.upstream_error("undecodable_encoding");
                return shared.refuse(
                    &ctx,
                    Refusal::of(
                        RefusalKind::UndecodableResponse,
                        format!(
                            "response from {host}:{port} uses {name}, which egress cannot decode to scrub injected credentials"
                        ),
                    ),
                );
            }
            Ok(codings) => {
                if !codings.is_empty() {
                    rparts.headers.remove(CONTENT_ENCODING);
                }
                rparts.headers.remove(CONTENT_LENGTH);
                (decode(rbody, &codings).await, Some(Arc::clone(p)))
            }
        },
        _ => (rbody, None),
    };
    shared.metrics.request(route_of(&ctx), "forwarded");
    let sh = Arc::clone(&shared);
    let status_u16 = status.as_u16();
    let done = move |st: BodyStats| {
        let scrubs = st.scrubs + header_scrubs;
        if let Some(w) = st.withheld {
            sh.metrics.upstream_error(match w {
                crate::grpc::Withheld::Secret => "grpc_withheld_secret",
                crate::grpc::Withheld::Compressed => "grpc_compressed",
                crate::grpc::Withheld::Framing => "grpc_framing",
            });
        }
        sh.metrics.scrubbed(route_of(&ctx), scrubs);
        let mut ev = ctx.event(
            if st.errored {
                AuditDecision::Error
            } else {
                AuditDecision::Allow
            },
            st.errored.then(|| "response body failed".to_string()),
            Some(status_u16),
        );
        ev.bytes_up = up_bytes.load(Ordering::Relaxed);
        ev.bytes_down = st.bytes;
        if scrubs > 0 {
            ev.extra.insert("scrubbed".into(), scrubs.into());
        }
        if !st.complete && !st.errored {
            ev.extra.insert("aborted".into(), true.into());
        }
        if let Some(w) = st.withheld {
            ev.extra
                .insert("grpc_withheld".into(), format!("{w:?}").into());
        }
        sh.audit.record(ev);
    };
    let body = ScrubBody::new(rbody, body_pats, done);
    let body = if grpc::is_grpc(&rparts.headers) {
        body.grpc()
    } else {
        body
    };
    Response::from_parts(rparts, body.boxed())
}

/// Every coding to undo, in the order applied (content codings, then transfer
/// codings); Err names the header and the coding egress cannot decode.
fn codings(
    headers: &http::HeaderMap,
    transfer: Result<Vec<Coding>, String>,
) -> Result<Vec<Coding>, String> {
    let mut c = parse_codings(headers).map_err(|n| format!("Content-Encoding {}", known(&n)))?;
    c.extend(transfer.map_err(|n| format!("Transfer-Encoding {}", known(&n)))?);
    Ok(c)
}

/// A coding name for a refusal: only registered names are echoed. The name is the
/// origin's text, reaching the agent and the audit log without the scrubber: an origin
/// reflecting a credential into the header would otherwise get it out.
fn known(name: &str) -> &'static str {
    const NAMES: &[&str] = &[
        "compress",
        "x-compress",
        "exi",
        "pack200-gzip",
        "aes128gcm",
        "dcb",
        "dcz",
        "chunked",
    ];
    NAMES
        .iter()
        .find(|k| k.eq_ignore_ascii_case(name))
        .copied()
        .unwrap_or("an unknown coding")
}
