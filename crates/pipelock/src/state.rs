//! Shared state of a running pipelock.

use std::sync::Arc;
use std::time::Instant;

use bottle_core::reload::Reloadable;
use bottle_core::serve::{TaskTracker, TaskTrackerToken};
use bottle_core::{AuditDecision, AuditEvent, AuditLog, BoxBody, LiveConfig};
use http::Response;
use tokio::sync::Semaphore;

use crate::cli::Limits;
use crate::dlp_scan::DlpScanner;
use crate::metrics::PipelockMetrics;
use crate::next_hop::Upstream;
use crate::policy::{Denied, PolicyView};
use crate::tls_intercept::Interceptor;

pub use crate::policy::COMPONENT;

pub struct State {
    pub live: Arc<Reloadable<LiveConfig>>,
    pub interceptor: Interceptor,
    pub upstream: Upstream,
    pub audit: Option<AuditLog>,
    pub metrics: PipelockMetrics,
    pub limits: Limits,
    pub tunnels: Arc<Semaphore>,
    pub dlp: DlpScanner,
    /// Tool definitions pinned per MCP session (responses judged in `response`).
    pub mcp_sessions: Arc<crate::mcp::Sessions>,
    pub tasks: TaskCount,
    pub shutdown: tokio::sync::watch::Receiver<bool>,
    /// supervise's URL as the agent reaches it: refusals the agent may ask about say how.
    pub supervise_url: Option<bottle_core::refusal::SuperviseUrl>,
}

/// Counts live connection tasks so SIGTERM can wait for them: the listener's connections run
/// on this tracker (bottle-core `serve`), tunnels and upgrades hold a token of it.
#[derive(Clone, Default)]
pub struct TaskCount(TaskTracker);

/// Keeps the drain waiting while it lives.
pub struct TaskGuard(#[allow(dead_code)] TaskTrackerToken);

impl TaskCount {
    pub fn enter(&self) -> TaskGuard {
        TaskGuard(self.0.token())
    }
    pub fn count(&self) -> usize {
        self.0.len()
    }
    pub fn tracker(&self) -> TaskTracker {
        self.0.clone()
    }
}

pub use crate::policy::Subject;

impl State {
    /// The decisions' view of `live` (a snapshot of the live config) and the detector.
    pub fn policy_view<'a>(&'a self, live: &'a LiveConfig) -> PolicyView<'a> {
        PolicyView {
            live,
            detector: self.dlp.detector(),
        }
    }

    /// Counts findings a decision let through in `log` mode.
    pub fn count_logged(&self, logged: &[&'static str]) {
        for d in logged {
            self.metrics.dlp(d, "log");
        }
    }

    #[allow(clippy::too_many_arguments)]
    pub fn audit(
        &self,
        subject: &Subject,
        decision: AuditDecision,
        reason: Option<String>,
        status: Option<u16>,
        bytes_up: u64,
        bytes_down: u64,
        started: Instant,
        extra: serde_json::Map<String, serde_json::Value>,
    ) {
        let Some(log) = &self.audit else { return };
        log.record(AuditEvent {
            component: COMPONENT.to_string(),
            event: subject.event.to_string(),
            decision,
            reason: reason.map(|r| self.dlp.scrub(r)),
            method: self.dlp.scrub(subject.method.clone()),
            scheme: subject.scheme.to_string(),
            host: self.dlp.scrub(subject.host.clone()),
            port: subject.port,
            path: self.dlp.scrub(subject.path.clone()),
            status,
            bytes_up,
            bytes_down,
            duration_ms: started.elapsed().as_millis() as u64,
            extra,
        });
    }

    /// Records a refusal (metrics + audit) and renders it.
    pub fn refuse(
        &self,
        kind: &str,
        subject: &Subject,
        denied: Denied,
        started: Instant,
    ) -> Response<BoxBody> {
        self.refuse_with(kind, subject, denied, started, serde_json::Map::new())
    }

    /// [`State::refuse`] with extra audit fields.
    pub fn refuse_with(
        &self,
        kind: &str,
        subject: &Subject,
        denied: Denied,
        started: Instant,
        mut extra: serde_json::Map<String, serde_json::Value>,
    ) -> Response<BoxBody> {
        // The metric label, the audit's `refusal` and `rule` all come from the refusal.
        extra.insert("refusal".into(), denied.kind().into());
        if let Some(rule) = &denied.refusal.rule {
            extra.insert("rule".into(), self.dlp.scrub(rule.clone()).into());
        }
        self.metrics.refusal(denied.refusal.kind);
        for d in &denied.blocked_by {
            self.metrics.dlp(d, "block");
        }
        self.metrics.request(kind, AuditDecision::Deny);
        self.audit(
            subject,
            AuditDecision::Deny,
            Some(format!("{}: {}", denied.kind(), denied.refusal.reason)),
            Some(denied.refusal.status.as_u16()),
            0,
            0,
            started,
            extra,
        );
        denied
            .refusal
            .response_for(COMPONENT, self.supervise_url.as_ref())
    }
}
