//! Prometheus metrics shared by every sidecar. Each binary registers its own families in
//! `registry`; the reload counter and config generation gauge are registered here.

use std::sync::Mutex;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::{Metric, Registry};

/// Label set of `bottle_reloads_total`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReloadLabels {
    /// `ok` or `error`.
    pub result: String,
}

/// The metric registry plus the shared families.
#[derive(Debug)]
pub struct Metrics {
    /// Register your own families here.
    pub registry: Mutex<Registry>,
    /// `bottle_reloads_total{result="ok"|"error"}`: reload attempts after the first load.
    pub reloads: Family<ReloadLabels, Counter>,
    /// `bottle_config_generation`: generation of the config in use.
    pub config_generation: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    /// A registry with the shared families registered.
    pub fn new() -> Metrics {
        let mut registry = Registry::default();
        let reloads = Family::<ReloadLabels, Counter>::default();
        let config_generation = Gauge::default();
        registry.register(
            "bottle_reloads",
            "Config reloads by result (ok, error)",
            reloads.clone(),
        );
        registry.register(
            "bottle_config_generation",
            "Generation of the config in use",
            config_generation.clone(),
        );
        Metrics {
            registry: Mutex::new(registry),
            reloads,
            config_generation,
        }
    }

    /// Register a metric (convenience for `registry.lock().register(...)`).
    pub fn register(&self, name: &str, help: &str, metric: impl Metric) {
        match self.registry.lock() {
            Ok(mut r) => r.register(name, help, metric),
            Err(p) => p.into_inner().register(name, help, metric),
        }
    }

    /// Count one reload.
    pub fn count_reload(&self, ok: bool) {
        self.reloads
            .get_or_create(&ReloadLabels {
                result: if ok { "ok" } else { "error" }.into(),
            })
            .inc();
    }

    /// The Prometheus text exposition.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        let res = match self.registry.lock() {
            Ok(r) => prometheus_client::encoding::text::encode(&mut out, &r),
            Err(p) => prometheus_client::encoding::text::encode(&mut out, &p.into_inner()),
        };
        if let Err(e) = res {
            tracing::warn!(error = %e, "metrics encoding failed");
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_shared_and_custom_families() {
        let m = Metrics::new();
        let c = Counter::<u64>::default();
        m.register("pipelock_requests", "Requests", c.clone());
        c.inc();
        m.count_reload(true);
        m.count_reload(false);
        m.count_reload(false);
        m.config_generation.set(3);
        let text = m.encode();
        assert!(
            text.contains("bottle_reloads_total{result=\"ok\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("bottle_reloads_total{result=\"error\"} 2"),
            "{text}"
        );
        assert!(text.contains("bottle_config_generation 3"), "{text}");
        assert!(text.contains("pipelock_requests_total 1"), "{text}");
        assert!(text.trim_end().ends_with("# EOF"));
    }
}
