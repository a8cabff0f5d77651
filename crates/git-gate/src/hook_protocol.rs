//! What the pre-receive hook (`pre_receive.rs`, run by git) and git-gate's hook server
//! (`hook_server.rs`) say to each other: one JSON line each way over `<data-dir>/hook.sock`.

use serde::{Deserialize, Serialize};

/// The hook socket's path, handed to receive-pack (and so to its hook) in the environment.
pub const ENV_SOCKET: &str = "GIT_GATE_HOOK_SOCKET";
/// The push's id, handed to receive-pack the same way.
pub const ENV_PUSH_ID: &str = "GIT_GATE_PUSH_ID";

/// What the hook sends: the updates as git parsed them, the quarantine, the push options.
#[derive(Debug, Serialize, Deserialize)]
pub struct HookRequest {
    pub push_id: String,
    /// `(old, new, ref)` as git read them.
    pub updates: Vec<(String, String, String)>,
    /// The quarantine object directory; empty when the push brought no objects.
    pub object_dir: String,
    pub push_options: Vec<String>,
}

/// What the hook server answers.
#[derive(Debug, Serialize, Deserialize)]
pub struct HookReply {
    /// Printed by the hook; git shows them to the client as `remote:` lines.
    pub messages: Vec<String>,
    pub accept: bool,
}
