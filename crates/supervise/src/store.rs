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
        // A directory the launcher made and owns keeps the mode it chose.
        if let Err(e) = set_mode(&dir, 0o700) {
            tracing::warn!(error = %e, dir = %dir.display(), "cannot set the requests directory to 0700");
        }
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

    /// Ids of the requests still waiting for the operator.
    fn pending_ids(&self, now: u64) -> Vec<RequestId> {
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return Vec::new();
        };
        entries
            .filter_map(|e| e.ok())
            .filter_map(|e| {
                let name = e.file_name();
                let stem = name.to_str()?.strip_suffix(".json")?.to_owned();
                RequestId::parse(&stem)
            })
            .filter(|id| self.state(id, now).is_some_and(|s| s.is_pending()))
            .collect()
    }

    /// How many requests are still waiting for the operator.
    pub fn count_pending(&self, now: u64) -> usize {
        self.pending_ids(now).len()
    }

    /// A pending request asking for exactly `kind` and `ask`, if there is one.
    pub fn find_pending(&self, kind: &str, ask: &serde_json::Value, now: u64) -> Option<RequestId> {
        self.pending_ids(now).into_iter().find(|id| {
            self.pending(id)
                .is_some_and(|p| p.kind == kind && &p.ask == ask)
        })
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

#[cfg(test)]
mod tests {
    use super::*;

    fn pending(store: &Store, now: u64, ttl: u64) -> RequestId {
        let id = RequestId::random();
        let req = PendingRequest {
            id: id.to_string(),
            kind: "host".into(),
            ask: serde_json::json!({"host": "example.com"}),
            reason: "r".into(),
            created_at: String::new(),
            created_unix: now,
            expires_unix: now + ttl,
        };
        store.create(&req, &id).unwrap();
        id
    }

    fn decision(d: &str, until_unix: Option<u64>) -> Decision {
        Decision {
            decision: d.into(),
            for_: until_unix.map(|_| "1h".into()),
            until_unix,
            reason: Some("because".into()),
            decided_at: String::new(),
        }
    }

    #[test]
    fn states_over_time() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let id = pending(&store, 1000, 60);
        assert!(store.state(&id, 1059).unwrap().is_pending());
        assert_eq!(store.state(&id, 1060), Some(State::Expired));
        // A time-limited approval is approved until its end, expired after.
        write_decision(dir.path(), &id, &decision("approved", Some(5000))).unwrap();
        assert!(matches!(
            store.state(&id, 4999),
            Some(State::Approved {
                until_unix: Some(5000),
                ..
            })
        ));
        assert_eq!(store.state(&id, 5000), Some(State::Expired));
        let denied = pending(&store, 1000, 60);
        write_decision(dir.path(), &denied, &decision("denied", None)).unwrap();
        assert_eq!(
            store.state(&denied, 1001),
            Some(State::Denied {
                reason: Some("because".into())
            })
        );
    }

    #[test]
    fn bad_decision_files_are_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let req_dir = dir.path().join("requests");
        // Not a decision value, oversized, and a symlink to somewhere else: all still pending.
        let a = pending(&store, 1000, 600);
        std::fs::write(
            req_dir.join(format!("{a}.decision.json")),
            br#"{"decision":"APPROVED!"}"#,
        )
        .unwrap();
        let b = pending(&store, 1000, 600);
        let mut big = serde_json::to_vec(&decision("approved", None)).unwrap();
        big.extend(std::iter::repeat_n(b' ', 20_000));
        std::fs::write(req_dir.join(format!("{b}.decision.json")), big).unwrap();
        let c = pending(&store, 1000, 600);
        let elsewhere = dir.path().join("elsewhere.json");
        std::fs::write(
            &elsewhere,
            serde_json::to_vec(&decision("approved", None)).unwrap(),
        )
        .unwrap();
        #[cfg(unix)]
        std::os::unix::fs::symlink(&elsewhere, req_dir.join(format!("{c}.decision.json"))).unwrap();
        for id in [a, b, c] {
            assert!(store.state(&id, 1001).unwrap().is_pending(), "{id}");
        }
        assert_eq!(store.count_pending(1001), 3);
        assert_eq!(store.count_pending(1600), 0, "expired ones no longer count");
    }

    #[test]
    fn a_request_file_is_never_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let id = pending(&store, 1000, 60);
        let before = store.pending(&id).unwrap();
        let mut other = before.clone();
        other.reason = "overwritten".into();
        assert_eq!(
            store.create(&other, &id).unwrap_err().kind(),
            std::io::ErrorKind::AlreadyExists
        );
        assert_eq!(store.pending(&id).unwrap(), before);
        let leftovers: Vec<_> = std::fs::read_dir(store.dir())
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
            .collect();
        assert!(leftovers.is_empty(), "temp files are removed");
    }
}
