//! Body wrappers: byte counting, and an audit line written when a response body ends.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use bottle_core::body::{BodyObserver, ObservedBody};
use bottle_core::{AuditDecision, BoxError};

use crate::state::{State, Subject};

/// Counts data bytes into a shared counter.
pub struct ByteCounter(pub Arc<AtomicU64>);

impl BodyObserver for ByteCounter {
    fn on_data(&mut self, len: usize) {
        self.0.fetch_add(len as u64, Ordering::Relaxed);
    }
}

/// A body whose data bytes are counted into a shared counter.
pub type CountingBody<B> = ObservedBody<B, ByteCounter>;

/// Writes the request's audit line once the response body is done (or dropped).
pub struct AuditOnEnd {
    state: Arc<State>,
    subject: Subject,
    status: u16,
    up: Arc<AtomicU64>,
    down: u64,
    started: Instant,
    extra: serde_json::Map<String, serde_json::Value>,
    error: Option<String>,
    dlp: Option<crate::dlp_scan::FindingSlot>,
    injection: Option<crate::response::InjectionSlot>,
    /// The request kind counted in `pipelock_requests_total` with the audit line's decision
    /// (a body cut later is a `deny` in both).
    counted_as: Option<&'static str>,
    /// A refusal of the request body after the answer's head (a gRPC stream) makes the line
    /// a `deny` with the refusal's reason, counted as that refusal.
    refused_in_stream: bool,
}

impl AuditOnEnd {
    pub fn new(
        state: Arc<State>,
        subject: Subject,
        status: u16,
        up: Arc<AtomicU64>,
        started: Instant,
        extra: serde_json::Map<String, serde_json::Value>,
    ) -> Self {
        AuditOnEnd {
            state,
            subject,
            status,
            up,
            down: 0,
            started,
            extra,
            error: None,
            dlp: None,
            injection: None,
            counted_as: None,
            refused_in_stream: false,
        }
    }

    /// Counts the request (as `kind`) when the line is written, with its decision.
    pub fn counted_as(mut self, kind: &'static str) -> Self {
        self.counted_as = Some(kind);
        self
    }

    /// Adds the response's prompt-injection findings (and a cut: decision `deny`).
    pub fn with_injection(mut self, slot: crate::response::InjectionSlot) -> Self {
        self.injection = Some(slot);
        self
    }

    /// See the field: for gRPC requests, whose refusal may come after the answer's head.
    pub fn refused_in_stream(mut self, on: bool) -> Self {
        self.refused_in_stream = on;
        self
    }

    /// Adds body findings let through in `log` mode to the audit line.
    pub fn with_dlp(mut self, slot: crate::dlp_scan::FindingSlot) -> Self {
        self.dlp = Some(slot);
        self
    }
}

impl Drop for AuditOnEnd {
    fn drop(&mut self) {
        let mut reason = self.error.take();
        let mut decision = AuditDecision::Allow;
        let mut extra = std::mem::take(&mut self.extra);
        if let Some(slot) = &self.injection {
            if let Some(found) = slot.summary() {
                extra.insert("injection".into(), found.into());
            }
            if let Some(why) = slot.blocked_reason() {
                decision = AuditDecision::Deny;
                reason = Some(why);
            }
        }
        if let Some(slot) = &self.dlp {
            if let Some(d) = slot.denied().filter(|_| self.refused_in_stream) {
                decision = AuditDecision::Deny;
                reason = Some(d.refusal.reason.clone());
                extra.insert("refusal".into(), d.kind().into());
                self.state.metrics.refusal(d.refusal.kind);
            }
            let logged = slot.logged();
            if !logged.is_empty() {
                extra.insert(
                    "dlp_body".into(),
                    format!("logged: {}", logged.join(", ")).into(),
                );
            }
        }
        if let Some(kind) = self.counted_as {
            self.state.metrics.request(kind, decision);
        }
        self.state.audit(
            &self.subject,
            decision,
            reason,
            Some(self.status),
            self.up.load(Ordering::Relaxed),
            self.down,
            self.started,
            extra,
        );
    }
}

impl BodyObserver for AuditOnEnd {
    fn on_data(&mut self, len: usize) {
        self.down += len as u64;
    }
    fn on_error(&mut self, e: &BoxError) {
        self.error = Some(format!("response body: {e}"));
    }
}

/// The response body towards the agent: counts bytes, writes the audit line when it ends.
pub type ResponseBody<B> = ObservedBody<B, AuditOnEnd>;
