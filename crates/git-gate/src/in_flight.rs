//! A push between its receive-pack request and the judge: what the request handler
//! registered (the commands it parsed, under the config snapshot it started with), and what
//! the judge decided, per ref, for the report and the audit log.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::config::RepoConfig;
use crate::mirror::Mirror;
use crate::policy::Action;
use crate::request::Command;

/// One push in flight, as the hook server sees it.
pub struct PushCtx {
    pub repo: Arc<RepoConfig>,
    pub mirror: Arc<Mirror>,
    pub commands: Vec<Command>,
    pub push_options: Vec<String>,
    /// Set by the hook server once the judge has decided.
    pub verdict: Mutex<Option<PushVerdict>>,
}

/// Per-ref outcome, for the audit log.
#[derive(Debug, Clone)]
pub struct RefOutcome {
    pub name: String,
    pub old: String,
    pub new: String,
    pub class: Option<Action>,
    pub rule: String,
    pub ok: bool,
    pub reason: String,
}

/// The judge's answer for a whole push.
#[derive(Debug, Clone, Default)]
pub struct PushVerdict {
    pub accept: bool,
    /// Lines the client sees as `remote: ...`.
    pub messages: Vec<String>,
    pub outcomes: Vec<RefOutcome>,
    /// The upstream has the new refs (so the mirror must follow, or be refreshed).
    pub upstream_updated: bool,
    /// The upstream refused or failed: the mirror may be behind it, refresh next time.
    pub upstream_failed: bool,
}

/// How the audit log names a classification.
pub fn class_str(c: Option<Action>) -> &'static str {
    c.map(Action::as_str).unwrap_or("unknown")
}

/// The pushes in flight, by the random id handed to their receive-pack (and its hook).
#[derive(Default)]
pub struct InFlightPushes(Mutex<HashMap<String, Arc<PushCtx>>>);

impl InFlightPushes {
    pub fn register(&self, id: &str, ctx: Arc<PushCtx>) {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id.to_string(), ctx);
    }

    pub fn unregister(&self, id: &str) -> Option<Arc<PushCtx>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).remove(id)
    }

    /// The push `id`, unless it was never registered or was abandoned (timed out).
    pub fn get(&self, id: &str) -> Option<Arc<PushCtx>> {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(id)
            .cloned()
    }
}
