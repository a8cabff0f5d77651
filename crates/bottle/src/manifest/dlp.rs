//! The manifest's `dlp:` section: pipelock's detector settings, each key optional, with the
//! same defaults as routes.yaml so the live config and the policy record agree.

use super::Manifest;

/// The setting types are bottle-core's: one table of words for routes.yaml and the manifest.
pub use bottle_core::routes::{DlpAction, DlpProfile, ScanAction};

/// DLP settings of pipelock; every key is optional (defaults: `block`, `default`, `block`,
/// `block`, the same as routes.yaml's).
#[derive(Debug, Clone, Default)]
pub struct DlpSpec {
    /// What to do on a secret found in a request.
    pub action: Option<DlpAction>,
    /// `strict` adds the anomaly heuristics.
    pub profile: Option<DlpProfile>,
    /// Prompt injection in responses (pages, API bodies, SSE).
    pub responses: Option<ScanAction>,
    /// MCP and A2A traffic (poisoned tool lists, injected tool results, changed tools).
    pub mcp: Option<ScanAction>,
}

/// The DLP settings in effect, defaults applied: what routes.yaml states and the policy
/// record compares.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DlpEffective {
    /// Requests: block or log.
    pub action: DlpAction,
    /// Detector set.
    pub profile: DlpProfile,
    /// Responses.
    pub responses: ScanAction,
    /// MCP/A2A.
    pub mcp: ScanAction,
}

impl Manifest {
    /// The DLP settings in effect (a missing `dlp:` or key takes the default).
    pub fn dlp_effective(&self) -> DlpEffective {
        let d = self.dlp.clone().unwrap_or_default();
        DlpEffective {
            action: d.action.unwrap_or_default(),
            profile: d.profile.unwrap_or_default(),
            responses: d.responses.unwrap_or_default(),
            mcp: d.mcp.unwrap_or_default(),
        }
    }
}
