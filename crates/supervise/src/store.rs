//! The on-disk contract between supervise (the agent's side) and the launcher (the
//! operator's side), in the bottle's state directory `STATE`:
//!
//! - `STATE/requests/<id>.json`: a pending request ([`PendingRequest`]), written by supervise
//!   once, atomically and never replaced (temp file `.<id>.tmp` mode 0600, then `link` to the
//!   final name, which fails if it exists; the temp file is then removed).
//! - `STATE/requests/<id>.decision.json`: the operator's decision ([`Decision`]), written by
//!   the launcher the same way ([`write_decision`] is the reference implementation). Supervise
//!   only reads it. **The first decision wins**: a second writer's `link` fails with
//!   `AlreadyExists`, and supervise remembers the first decision it read for an id, so a
//!   decision file replaced later (by anyone) changes nothing it reports.
//!
//! Supervise holds no credential and cannot write the allowlist: an approval takes effect only
//! when the launcher applies it (as `bottle allow` does). `<id>` is a [`RequestId`], checked
//! before every path is built.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::ids::RequestId;

/// Largest decision file read (a bigger one is treated as absent: the launcher writes small ones).
const MAX_DECISION_BYTES: u64 = 16 * 1024;
/// Largest pending file read back.
const MAX_PENDING_BYTES: u64 = 64 * 1024;

/// One pending request as written to `<id>.json`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct PendingRequest {
    pub id: String,
    /// `host`, `route` or `git-ref`.
    pub kind: String,
    /// The validated, normalised request fields (without `kind` and `reason`).
    pub ask: serde_json::Value,
    /// The agent's justification (validated: at most 1 KiB, no control characters).
    pub reason: String,
    /// RFC 3339, UTC.
    pub created_at: String,
    pub created_unix: u64,
    /// After this (unix seconds) an undecided request is `expired`.
    pub expires_unix: u64,
}

/// The operator's decision, `<id>.decision.json`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Decision {
    /// `approved` or `denied`.
    pub decision: String,
    /// For an approval: `session` or a duration as the operator typed it (`1h`).
    #[serde(rename = "for", default, skip_serializing_if = "Option::is_none")]
    pub for_: Option<String>,
    /// For a time-limited approval: when it ends (unix seconds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until_unix: Option<u64>,
    /// For a denial: why, shown to the agent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// RFC 3339, UTC.
    #[serde(default)]
    pub decided_at: String,
}

/// What a request is now.
#[derive(Debug, Clone, PartialEq)]
pub enum State {
    Pending {
        expires_unix: u64,
    },
    Approved {
        for_: Option<String>,
        until_unix: Option<u64>,
    },
    Denied {
        reason: Option<String>,
    },
    /// Undecided past its time, or an approval whose `until` has passed.
    Expired,
}

impl State {
    /// The JSON the API answers with (`id` added by the caller).
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::json;
        match self {
            State::Pending { expires_unix } => {
                json!({"status": "pending", "expires_unix": expires_unix})
            }
            State::Approved { for_, until_unix } => {
                json!({"status": "approved", "for": for_, "until_unix": until_unix})
            }
            State::Denied { reason } => json!({"status": "denied", "reason": reason}),
            State::Expired => json!({"status": "expired"}),
        }
    }

    pub fn is_pending(&self) -> bool {
        matches!(self, State::Pending { .. })
    }
}

/// Unix time in seconds.
pub fn now_unix() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// `STATE/requests`, with the first decision seen for each id.
pub struct Store {
    dir: PathBuf,
    decided: Mutex<HashMap<RequestId, Decision>>,
}

impl Store {
    /// Opens (creating, mode 0700) `state_dir/requests`.
    pub fn open(state_dir: &Path) -> std::io::Result<Store> {
        let dir = state_dir.join("requests");
        std::fs::create_dir_all(&dir)?;
        set_mode(&dir, 0o700)?;
        Ok(Store {
            dir,
            decided: Mutex::new(HashMap::new()),
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn pending_path(&self, id: &RequestId) -> PathBuf {
        self.dir.join(format!("{id}.json"))
    }

    /// Writes a new pending request; never replaces a file (an id collision is an error).
    pub fn create(&self, req: &PendingRequest, id: &RequestId) -> std::io::Result<()> {
        let body = serde_json::to_vec_pretty(req).map_err(std::io::Error::other)?;
        write_new_file(&self.dir, &format!("{id}.json"), &body)
    }

    /// The request, if `id` names one.
    pub fn pending(&self, id: &RequestId) -> Option<PendingRequest> {
        let text = read_capped(&self.pending_path(id), MAX_PENDING_BYTES)?;
        serde_json::from_slice(&text).ok()
    }

    /// The state of `id`, or `None` when there is no such request.
    pub fn state(&self, id: &RequestId, now: u64) -> Option<State> {
        let req = self.pending(id)?;
        let decision = self.decision(id);
        Some(match decision {
            None if now >= req.expires_unix => State::Expired,
            None => State::Pending {
                expires_unix: req.expires_unix,
            },
            Some(d) if d.decision == "approved" => match d.until_unix {
                Some(until) if now >= until => State::Expired,
                until_unix => State::Approved {
                    for_: d.for_,
                    until_unix,
                },
            },
            Some(d) => State::Denied { reason: d.reason },
        })
    }

    /// The first valid decision read for `id` (remembered: later files change nothing).
    fn decision(&self, id: &RequestId) -> Option<Decision> {
        let mut decided = self.decided.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(d) = decided.get(id) {
            return Some(d.clone());
        }
        let text = read_capped(
            &self.dir.join(format!("{id}.decision.json")),
            MAX_DECISION_BYTES,
        )?;
        let d: Decision = serde_json::from_slice(&text).ok()?;
        if d.decision != "approved" && d.decision != "denied" {
            return None;
        }
        decided.insert(id.clone(), d.clone());
        Some(d)
    }

    /// How many requests are still waiting for the operator.
    pub fn count_pending(&self, now: u64) -> usize {
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return 0;
        };
        entries
            .filter_map(|e| e.ok())
            .filter_map(|e| {
                let name = e.file_name();
                let stem = name.to_str()?.strip_suffix(".json")?.to_owned();
                RequestId::parse(&stem)
            })
            .filter(|id| self.state(id, now).is_some_and(|s| s.is_pending()))
            .count()
    }
}

/// The launcher's side of the contract: record `decision` for `id` under `state_dir`, unless
/// one is already recorded (then `AlreadyExists`: the first decision wins), or the request
/// does not exist (`NotFound`).
pub fn write_decision(
    state_dir: &Path,
    id: &RequestId,
    decision: &Decision,
) -> std::io::Result<()> {
    let dir = state_dir.join("requests");
    if !dir.join(format!("{id}.json")).is_file() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::NotFound,
            format!("no request {id}"),
        ));
    }
    let body = serde_json::to_vec_pretty(decision).map_err(std::io::Error::other)?;
    write_new_file(&dir, &format!("{id}.decision.json"), &body)
}

/// Writes `dir/name` atomically and only if it does not exist: a private temp file, synced,
/// then hard-linked to its name (`link` refuses to replace), then the temp name removed.
fn write_new_file(dir: &Path, name: &str, body: &[u8]) -> std::io::Result<()> {
    let tmp = dir.join(format!(".{name}.{}.tmp", RequestId::random()));
    let result = (|| {
        let mut f = open_private_new(&tmp)?;
        f.write_all(body)?;
        f.sync_all()?;
        std::fs::hard_link(&tmp, dir.join(name))
    })();
    let _ = std::fs::remove_file(&tmp);
    result
}

#[cfg(unix)]
fn open_private_new(path: &Path) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
}

#[cfg(not(unix))]
fn open_private_new(path: &Path) -> std::io::Result<std::fs::File> {
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
}

#[cfg(unix)]
fn set_mode(path: &Path, mode: u32) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
}

#[cfg(not(unix))]
fn set_mode(_: &Path, _: u32) -> std::io::Result<()> {
    Ok(())
}

/// The file's bytes if it is a regular file no larger than `max` (a symlink is not followed:
/// nobody but the launcher should put anything here, and a link could point anywhere).
fn read_capped(path: &Path, max: u64) -> Option<Vec<u8>> {
    let meta = std::fs::symlink_metadata(path).ok()?;
    if !meta.is_file() || meta.len() > max {
        return None;
    }
    std::fs::read(path).ok()
}
