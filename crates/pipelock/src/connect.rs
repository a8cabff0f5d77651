//! CONNECT: the decision ([`policy::decide_connect`]), the tunnel limit, then interception
//! or byte-for-byte passthrough.

use std::sync::Arc;
use std::time::Instant;

use bottle_core::{AuditDecision, BoxBody, Host, RefusalKind};
use http::{Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::OwnedSemaphorePermit;

use crate::forward;
use crate::idle::IdleIo;
use crate::next_hop::Mode;
use crate::policy::{self, Denied, Subject, Target, Tunnel};
use crate::state::State;

/// Any bidirectional byte stream.
pub trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// Carries out [`policy::decide_connect`]: refuse, or take a tunnel slot and open the
/// passthrough or intercepted tunnel it chose.
pub async fn handle(state: Arc<State>, req: Request<Incoming>) -> Response<BoxBody> {
    let started = Instant::now();
    let authority = req
        .uri()
        .authority()
        .map(|a| a.as_str().to_string())
        .unwrap_or_default();
    let cfg = state.live.current();
    let decision = policy::decide_connect(
        &authority,
        req.headers(),
        state.policy_view(&cfg),
        &state.dlp,
        started,
    );
    state.count_logged(&decision.logged);
    let subject = decision.subject;
    let plan = match decision.verdict {
        Ok(p) => p,
        Err(d) => return state.refuse("connect", &subject, d, started),
    };
    let permit = match state.tunnels.clone().try_acquire_owned() {
        Ok(p) => p,
        Err(_) => {
            let d = Denied::of(
                RefusalKind::TunnelLimit,
                format!(
                    "too many open tunnels (limit {}); retry later",
                    state.limits.max_tunnels
                ),
            );
            return state.refuse("connect", &subject, d, started);
        }
    };
    let Target { host, port } = plan.target;
    match plan.tunnel {
        Tunnel::Passthrough => {
            let upstream = match open_passthrough(&state, &host, port).await {
                Ok(io) => io,
                Err(PassFail::Denied(d)) => return state.refuse("connect", &subject, d, started),
                Err(PassFail::Upstream(r)) => {
                    state.metrics.request("connect", AuditDecision::Deny);
                    state.metrics.refusal(RefusalKind::UpstreamRefused);
                    state.audit(
                        &subject,
                        AuditDecision::Deny,
                        Some("upstream proxy refused the tunnel".into()),
                        Some(r.status().as_u16()),
                        0,
                        0,
                        started,
                        serde_json::Map::new(),
                    );
                    return r;
                }
            };
            state.metrics.request("connect", AuditDecision::Allow);
            state.metrics.tunnel("passthrough");
            let st = state.clone();
            tokio::spawn(async move {
                let _task = st.tasks.enter();
                passthrough_tunnel(st, req, upstream, subject, permit, started).await;
            });
        }
        Tunnel::Intercept => {
            // Standalone, a name that resolves to a private address is refused before the
            // tunnel opens (through egress, egress judges what it dials).
            if matches!(state.upstream.dialer.mode, Mode::Direct) && host.ip().is_none() {
                if let Err(d) = state.upstream.dialer.resolve_decided(&cfg, &host).await {
                    return state.refuse("connect", &subject, d, started);
                }
            }
            state.metrics.request("connect", AuditDecision::Allow);
            state.metrics.tunnel("intercept");
            let st = state.clone();
            tokio::spawn(async move {
                let _task = st.tasks.enter();
                intercept_tunnel(st, req, host, port, subject, permit, started).await;
            });
        }
    }
    let mut resp = Response::new(bottle_core::body::empty());
    *resp.status_mut() = StatusCode::OK;
    resp
}

enum PassFail {
    Denied(Denied),
    Upstream(Response<BoxBody>),
}

async fn open_passthrough(state: &State, host: &Host, port: u16) -> Result<Box<dyn Io>, PassFail> {
    let dialer = &state.upstream.dialer;
    match &dialer.mode {
        Mode::Direct => {
            let s = dialer
                .dial_checked(host, port)
                .await
                .map_err(|e| PassFail::Denied(e.denial()))?;
            Ok(Box::new(s))
        }
        Mode::Proxy { .. } => {
            let tcp = dialer
                .dial_proxy()
                .await
                .map_err(|e| PassFail::Denied(e.denial()))?;
            let (mut send, conn) =
                hyper::client::conn::http1::handshake::<_, BoxBody>(TokioIo::new(tcp))
                    .await
                    .map_err(|e| {
                        PassFail::Denied(Denied::of(
                            RefusalKind::UpstreamUnreachable,
                            format!("upstream proxy: {e}"),
                        ))
                    })?;
            tokio::spawn(async move {
                let _ = conn.with_upgrades().await;
            });
            let target = host.to_authority(port);
            let mut req = Request::builder()
                .method(Method::CONNECT)
                .uri(target.as_str())
                .header(http::header::HOST, target.as_str())
                .body(bottle_core::body::empty())
                .map_err(|e| PassFail::Denied(Denied::of(RefusalKind::BadTarget, e.to_string())))?;
            dialer.mode.authorize(req.headers_mut());
            let mut resp = send.send_request(req).await.map_err(|e| {
                PassFail::Denied(Denied::of(
                    RefusalKind::UpstreamUnreachable,
                    format!("upstream proxy: {e}"),
                ))
            })?;
            if resp.status() != StatusCode::OK {
                use http_body_util::BodyExt;
                let (parts, body) = resp.into_parts();
                let body = body
                    .map_err(|e| -> bottle_core::BoxError { Box::new(e) })
                    .boxed();
                return Err(PassFail::Upstream(Response::from_parts(parts, body)));
            }
            let up = hyper::upgrade::on(&mut resp).await.map_err(|e| {
                PassFail::Denied(Denied::of(
                    RefusalKind::UpstreamUnreachable,
                    format!("upstream proxy: {e}"),
                ))
            })?;
            Ok(Box::new(TokioIo::new(up)))
        }
    }
}

async fn passthrough_tunnel(
    state: Arc<State>,
    req: Request<Incoming>,
    mut upstream: Box<dyn Io>,
    subject: Subject,
    _permit: OwnedSemaphorePermit,
    started: Instant,
) {
    state.metrics.tunnels_active.inc();
    let result = match hyper::upgrade::on(req).await {
        Ok(up) => {
            let mut client = IdleIo::new(TokioIo::new(up), state.limits.idle());
            tokio::io::copy_bidirectional(&mut client, &mut upstream).await
        }
        Err(e) => Err(std::io::Error::other(e)),
    };
    state.metrics.tunnels_active.dec();
    let (up, down, reason) = match result {
        Ok((u, d)) => (u, d, None),
        Err(e) => (0, 0, Some(format!("tunnel ended: {e}"))),
    };
    let mut extra = serde_json::Map::new();
    extra.insert("tunnel".into(), "passthrough".into());
    state.audit(
        &subject,
        AuditDecision::Allow,
        reason,
        Some(200),
        up,
        down,
        started,
        extra,
    );
}

async fn intercept_tunnel(
    state: Arc<State>,
    req: Request<Incoming>,
    host: Host,
    port: u16,
    subject: Subject,
    _permit: OwnedSemaphorePermit,
    started: Instant,
) {
    let upgraded = match hyper::upgrade::on(req).await {
        Ok(u) => u,
        Err(e) => {
            tracing::debug!("CONNECT upgrade failed: {e}");
            return;
        }
    };
    state.metrics.tunnels_active.inc();
    let _active = ActiveGuard(&state);
    let io = IdleIo::new(TokioIo::new(upgraded), state.limits.idle());
    let target_text = host.to_string();
    let tls = match state
        .interceptor
        .accept(io, &target_text, host.ip().is_some())
        .await
    {
        Ok(t) => t,
        Err(e) => {
            state.metrics.cache(state.interceptor.cache.stats());
            state.metrics.refusal_label(e.kind());
            let mut extra = serde_json::Map::new();
            extra.insert("tunnel".into(), "intercept".into());
            state.audit(
                &subject,
                AuditDecision::Deny,
                Some(format!("{}: {e}", e.kind())),
                None,
                0,
                0,
                started,
                extra,
            );
            return;
        }
    };
    state.metrics.cache(state.interceptor.cache.stats());
    let target = Target { host, port };
    let st = state.clone();
    let svc = hyper::service::service_fn(move |r| {
        let st = st.clone();
        let target = target.clone();
        async move { Ok::<_, std::convert::Infallible>(forward::handle_inner(st, target, r).await) }
    });
    let mut b = auto::Builder::new(TokioExecutor::new());
    b.http1()
        .timer(TokioTimer::new())
        .header_read_timeout(state.limits.header_timeout())
        .max_buf_size(state.limits.max_header_bytes.max(8192))
        .max_headers(state.limits.max_headers);
    b.http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(100)
        .max_pending_accept_reset_streams(Some(20))
        .max_local_error_reset_streams(Some(64))
        .max_header_list_size(state.limits.max_header_bytes as u32)
        // RFC 8441 WebSocket streams (crate::ws_h2)
        .enable_connect_protocol();
    let conn = b.serve_connection_with_upgrades(TokioIo::new(tls), svc);
    tokio::pin!(conn);
    let mut shutdown = state.shutdown.clone();
    let mut reason = None;
    tokio::select! {
        r = conn.as_mut() => { if let Err(e) = r { reason = Some(format!("tunnel ended: {e}")); } }
        _ = shutdown.changed() => {
            conn.as_mut().graceful_shutdown();
            let _ = conn.await;
        }
    }
    let mut extra = serde_json::Map::new();
    extra.insert("tunnel".into(), "intercept".into());
    state.audit(
        &subject,
        AuditDecision::Allow,
        reason,
        Some(200),
        0,
        0,
        started,
        extra,
    );
}

struct ActiveGuard<'a>(&'a State);
impl Drop for ActiveGuard<'_> {
    fn drop(&mut self) {
        self.0.metrics.tunnels_active.dec();
    }
}
