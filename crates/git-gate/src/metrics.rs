//! git-gate's Prometheus families (registered in the shared bottle-core registry).

use bottle_core::Metrics;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct EndpointLabels {
    pub endpoint: String,
    pub result: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabels {
    pub result: String,
}

#[derive(Debug, Default)]
pub struct GateMetrics {
    requests: Family<EndpointLabels, Counter>,
    ref_decisions: Family<ResultLabels, Counter>,
    refreshes: Family<ResultLabels, Counter>,
    upstream_pushes: Family<ResultLabels, Counter>,
    secrets: Counter,
    pushes_in_flight: Gauge,
}

fn ok(b: bool, yes: &str, no: &str) -> ResultLabels {
    ResultLabels {
        result: if b { yes } else { no }.to_string(),
    }
}

impl GateMetrics {
    pub fn register(metrics: &Metrics) -> GateMetrics {
        let m = GateMetrics::default();
        metrics.register(
            "git_gate_requests",
            "HTTP requests by endpoint and result",
            m.requests.clone(),
        );
        metrics.register(
            "git_gate_ref_decisions",
            "Pushed refs by decision (accepted, refused)",
            m.ref_decisions.clone(),
        );
        metrics.register(
            "git_gate_mirror_refreshes",
            "Mirror refreshes from upstream by result",
            m.refreshes.clone(),
        );
        metrics.register(
            "git_gate_upstream_pushes",
            "Pushes to upstream by result",
            m.upstream_pushes.clone(),
        );
        metrics.register(
            "git_gate_secrets_found",
            "Secret findings in pushed objects",
            m.secrets.clone(),
        );
        metrics.register(
            "git_gate_pushes_in_flight",
            "Pushes holding a slot (see --max-concurrent-pushes)",
            m.pushes_in_flight.clone(),
        );
        m
    }

    pub fn request(&self, endpoint: &str, result: &str) {
        self.requests
            .get_or_create(&EndpointLabels {
                endpoint: endpoint.into(),
                result: result.into(),
            })
            .inc();
    }

    pub fn ref_decision(&self, accepted: bool) {
        self.ref_decisions
            .get_or_create(&ok(accepted, "accepted", "refused"))
            .inc();
    }

    pub fn refresh(&self, success: bool) {
        self.refreshes
            .get_or_create(&ok(success, "ok", "error"))
            .inc();
    }

    pub fn upstream_push(&self, success: bool) {
        self.upstream_pushes
            .get_or_create(&ok(success, "ok", "error"))
            .inc();
    }

    pub fn secrets(&self, n: u64) {
        self.secrets.inc_by(n);
    }

    pub fn push_started(&self) {
        self.pushes_in_flight.inc();
    }

    pub fn push_done(&self) {
        self.pushes_in_flight.dec();
    }
}
