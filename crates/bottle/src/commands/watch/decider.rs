//! What `bottle watch` asks of the outside world: pending requests, decisions on them, and
//! refusals. A trait so the view's state machine is tested with a fake.

use serde_json::{Map, Value};

use crate::commands::requests;
use crate::error::Result;

pub(crate) use crate::commands::requests::parse_duration;
pub use crate::commands::requests::{Grant, PendingView};

/// One refusal from a bottle's audit (the shown fields of its line).
#[derive(Debug, Clone, PartialEq)]
pub struct RefusalRow {
    /// The bottle whose sidecar refused.
    pub slug: String,
    /// The line's shown fields (`bottle_core::audit_read::SHOWN_FIELDS`).
    pub fields: Map<String, Value>,
}

/// Pending requests and the decisions on them.
pub trait Decider: Send + Sync {
    /// Pending requests of `slug`, or of every running bottle.
    fn pending(&self, slug: Option<&str>) -> Result<Vec<PendingView>>;
    /// Approve; the one-line confirmation.
    fn approve(&self, slug: &str, id: &str, grant: Grant) -> Result<String>;
    /// Deny; the one-line confirmation.
    fn deny(&self, slug: &str, id: &str, reason: Option<&str>) -> Result<String>;
}

/// The real decider: `crate::commands::requests`, the code `bottle requests`, `bottle approve`
/// and `bottle deny` run.
pub struct RequestsApi;

impl Decider for RequestsApi {
    fn pending(&self, slug: Option<&str>) -> Result<Vec<PendingView>> {
        requests::pending(slug)
    }

    fn approve(&self, slug: &str, id: &str, grant: Grant) -> Result<String> {
        requests::approve_request(Some(slug), id, grant)
    }

    fn deny(&self, slug: &str, id: &str, reason: Option<&str>) -> Result<String> {
        requests::deny_request(Some(slug), id, reason)
    }
}
