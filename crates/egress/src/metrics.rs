//! egress's own metric families, registered in the shared registry.

use bottle_core::Metrics;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteOutcome {
    /// route index, `allowlist`, or `none`
    pub route: String,
    /// `forwarded`, `refused`, `upstream_error`, `tunnel`
    pub outcome: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteScheme {
    pub route: String,
    pub scheme: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabel {
    pub route: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ErrorKind {
    pub kind: String,
}

/// Counters of egress.
#[derive(Debug, Clone, Default)]
pub struct EgressMetrics {
    pub requests: Family<RouteOutcome, Counter>,
    pub injections: Family<RouteScheme, Counter>,
    pub scrubs: Family<RouteLabel, Counter>,
    pub upstream_errors: Family<ErrorKind, Counter>,
    /// Refusals by kind (`bottle_core::RefusalKind::label`).
    pub refusals: Family<ErrorKind, Counter>,
}

impl EgressMetrics {
    pub fn register(metrics: &Metrics) -> EgressMetrics {
        let m = EgressMetrics::default();
        metrics.register(
            "egress_requests",
            "Requests by route and outcome",
            m.requests.clone(),
        );
        metrics.register(
            "egress_injections",
            "Credentials injected, by route and scheme",
            m.injections.clone(),
        );
        metrics.register(
            "egress_scrubs",
            "Occurrences of an injected credential removed from responses, by route",
            m.scrubs.clone(),
        );
        metrics.register(
            "egress_upstream_errors",
            "Upstream failures by kind",
            m.upstream_errors.clone(),
        );
        metrics.register("egress_refusals", "Refusals by kind", m.refusals.clone());
        m
    }

    pub fn refusal(&self, kind: &'static str) {
        self.refusals
            .get_or_create(&ErrorKind {
                kind: kind.to_string(),
            })
            .inc();
    }

    pub fn request(&self, route: &str, outcome: &str) {
        self.requests
            .get_or_create(&RouteOutcome {
                route: route.to_string(),
                outcome: outcome.to_string(),
            })
            .inc();
    }

    pub fn injection(&self, route: &str, scheme: &str) {
        self.injections
            .get_or_create(&RouteScheme {
                route: route.to_string(),
                scheme: scheme.to_string(),
            })
            .inc();
    }

    pub fn scrubbed(&self, route: &str, n: u64) {
        if n > 0 {
            self.scrubs
                .get_or_create(&RouteLabel {
                    route: route.to_string(),
                })
                .inc_by(n);
        }
    }

    pub fn upstream_error(&self, kind: &str) {
        self.upstream_errors
            .get_or_create(&ErrorKind {
                kind: kind.to_string(),
            })
            .inc();
    }
}
