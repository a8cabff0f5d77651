//! pipelock's Prometheus metrics (registered into bottle-core's registry).

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;

type Labels = Vec<(String, String)>;

/// Counters and gauges of the proxy.
#[derive(Clone, Default)]
pub struct PipelockMetrics {
    /// pipelock_requests_total{kind="http|connect|inner", decision="allow|deny|error"}
    pub requests: Family<Labels, Counter>,
    /// pipelock_refusals_total{reason}
    pub refusals: Family<Labels, Counter>,
    /// pipelock_tunnels_active / pipelock_tunnels_total{kind="intercept|passthrough"}
    pub tunnels_active: Gauge,
    pub tunnels: Family<Labels, Counter>,
    pub cert_cache_hits: Gauge,
    pub cert_cache_misses: Gauge,
    pub cert_cache_size: Gauge,
    pub cert_mints: Gauge,
    /// pipelock_dlp_findings_total{detector, action}
    pub dlp_findings: Family<Labels, Counter>,
    /// pipelock_injection_total{detector, action}: prompt injection in responses, MCP, A2A
    pub injection: Family<Labels, Counter>,
}

impl PipelockMetrics {
    pub fn register(core: &bottle_core::Metrics) -> PipelockMetrics {
        let m = PipelockMetrics::default();
        let mut reg = core.registry.lock().unwrap_or_else(|p| p.into_inner());
        reg.register(
            "pipelock_requests",
            "Requests handled, by kind and decision",
            m.requests.clone(),
        );
        reg.register(
            "pipelock_refusals",
            "Refusals by reason",
            m.refusals.clone(),
        );
        reg.register(
            "pipelock_tunnels_active",
            "CONNECT tunnels open now",
            m.tunnels_active.clone(),
        );
        reg.register(
            "pipelock_tunnels",
            "CONNECT tunnels opened, by kind",
            m.tunnels.clone(),
        );
        reg.register(
            "pipelock_cert_cache_hits",
            "Leaf cache hits",
            m.cert_cache_hits.clone(),
        );
        reg.register(
            "pipelock_cert_cache_misses",
            "Leaf cache misses",
            m.cert_cache_misses.clone(),
        );
        reg.register(
            "pipelock_cert_cache_size",
            "Leaves cached",
            m.cert_cache_size.clone(),
        );
        reg.register("pipelock_cert_mints", "Leaves minted", m.cert_mints.clone());
        reg.register(
            "pipelock_dlp_findings",
            "DLP findings by detector and action",
            m.dlp_findings.clone(),
        );
        reg.register(
            "pipelock_injection",
            "Prompt-injection findings in responses, MCP and A2A, by detector and action",
            m.injection.clone(),
        );
        m
    }

    pub fn injection(&self, detector: &str, action: &str) {
        self.injection
            .get_or_create(&vec![
                ("detector".into(), detector.into()),
                ("action".into(), action.into()),
            ])
            .inc();
    }

    pub fn request(&self, kind: &str, decision: bottle_core::AuditDecision) {
        self.requests
            .get_or_create(&vec![
                ("kind".into(), kind.into()),
                ("decision".into(), decision.as_str().into()),
            ])
            .inc();
    }

    /// Counts a refusal under its kind's label.
    pub fn refusal(&self, kind: bottle_core::RefusalKind) {
        self.refusal_label(kind.label());
    }

    /// Counts what is refused before any request exists, so has no [`bottle_core::RefusalKind`]:
    /// the listener's `connection_limit`, a failed TLS interception (`tls_handshake`, ...).
    pub fn refusal_label(&self, reason: &'static str) {
        self.refusals
            .get_or_create(&vec![("reason".into(), reason.into())])
            .inc();
    }

    pub fn tunnel(&self, kind: &str) {
        self.tunnels
            .get_or_create(&vec![("kind".into(), kind.into())])
            .inc();
    }

    pub fn dlp(&self, detector: &str, action: &str) {
        self.dlp_findings
            .get_or_create(&vec![
                ("detector".into(), detector.into()),
                ("action".into(), action.into()),
            ])
            .inc();
    }

    pub fn cache(&self, s: crate::tls_intercept::cert_cache::CacheStats) {
        self.cert_cache_hits.set(s.hits as i64);
        self.cert_cache_misses.set(s.misses as i64);
        self.cert_cache_size.set(s.size as i64);
        self.cert_mints.set(s.mints as i64);
    }
}
