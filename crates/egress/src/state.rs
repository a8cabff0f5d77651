//! Shared state of a running egress: what every request handler needs, and the one place a
//! refusal is carried out (metrics, audit line, response).

use std::sync::Arc;

use bottle_core::audit::AuditLog;
use bottle_core::body::BoxBody;
use bottle_core::reload::Reloadable;
use bottle_core::upstream::CappedClient;
use bottle_core::{Refusal, RefusalKind, RequestContext, Resolver, SuperviseUrl};
use http::Response;
use tokio_util::task::TaskTracker;

use crate::config::EgressConfig;
use crate::metrics::EgressMetrics;
use crate::origin::{Connector, Timeouts};
use bottle_core::peer::PeerKey;

/// Name used in refusals, audit lines and `X-Bottle-Blocked`.
pub const COMPONENT: &str = "egress";

/// Everything a request handler needs.
pub struct State {
    pub cfg: Arc<Reloadable<EgressConfig>>,
    pub resolver: Arc<Resolver>,
    pub audit: AuditLog,
    pub metrics: EgressMetrics,
    /// ALPN h2 + http/1.1.
    pub client: CappedClient<Connector>,
    /// ALPN http/1.1 only: protocol upgrades (WebSocket).
    pub client_h1: CappedClient<Connector>,
    pub timeouts: Timeouts,
    pub tracker: TaskTracker,
    /// `--client-key-env`: when set, every request must carry it (only our pipelock has it).
    pub client_key: Option<PeerKey>,
    /// `--supervise-url`: refusals the agent may ask about say how, at this URL.
    pub supervise_url: Option<SuperviseUrl>,
}

/// The route label of `ctx` for metrics.
pub(crate) fn route_of(ctx: &RequestContext) -> &str {
    ctx.route.as_deref().unwrap_or("none")
}

/// The `egress_requests` outcome a refusal of `kind` counts as.
fn outcome(kind: RefusalKind) -> &'static str {
    match kind {
        RefusalKind::Unauthenticated => "unauthenticated",
        RefusalKind::UpstreamError
        | RefusalKind::UpstreamTimeout
        | RefusalKind::UpstreamUnreachable
        | RefusalKind::UndecodableResponse
        | RefusalKind::Resolve => "upstream_error",
        _ => "refused",
    }
}

impl State {
    /// Every refusal goes through here: the metrics, the audit line and the response all
    /// come from the one `Refusal`.
    pub(crate) fn refuse(&self, ctx: &RequestContext, r: Refusal) -> Response<BoxBody> {
        self.metrics.request(route_of(ctx), outcome(r.kind));
        self.metrics.refusal(r.kind.label());
        self.audit.record(ctx.refusal_event(&r));
        tracing::info!(status = r.status.as_u16(), kind = r.kind.label(), reason = %r.reason, host = %ctx.host, "refused");
        r.response_for(COMPONENT, self.supervise_url.as_ref())
    }
}
