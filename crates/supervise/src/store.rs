//! The on-disk contract between supervise (the agent's side) and the launcher (the
//! operator's side), in the bottle's state directory `STATE`:
//!
//! - `STATE/requests/<id>.json`: a pending request ([`PendingRequest`]), written by supervise
//!   once, atomically and never replaced (temp file `.<id>.tmp` mode 0600, then `link` to the
//!   final name, which fails if it exists; the temp file is then removed).
//! - `STATE/requests/<id>.decision.json`: the operator's decision ([`Decision`]), written by
//!   the launcher the same way ([`write_decision`], from `bottle_core::access_request`, the one
//!   copy of the file formats and helpers both sides use). Supervise
//!   only reads it. **The first decision wins**: a second writer's `link` fails with
//!   `AlreadyExists`, and supervise remembers the first decision it read for an id, so a
//!   decision file replaced later (by anyone) changes nothing it reports.
//!
//! Supervise holds no credential and cannot write the allowlist: an approval takes effect only
//! when the launcher applies it (as `bottle allow` does). `<id>` is a [`RequestId`], checked
//! before every path is built.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use bottle_core::access_request::{self as contract, ReadError};
pub use bottle_core::access_request::{
    now_unix, write_decision, Decision, PendingRequest, RequestState,
};

use crate::ids::RequestId;

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

    /// Writes a new pending request; never replaces a file (an id collision is an error).
    pub fn create(&self, req: &PendingRequest, id: &RequestId) -> std::io::Result<()> {
        contract::write_pending(&self.dir, id, req)
    }

    /// The request, if `id` names one (a file that is not a valid request counts as none).
    pub fn pending(&self, id: &RequestId) -> Option<PendingRequest> {
        contract::read_pending(&self.dir, id).unwrap_or_else(|e| {
            report_bad_file(id, "request", &e);
            None
        })
    }

    /// The state of `id`, or `None` when there is no such request.
    pub fn state(&self, id: &RequestId, now: u64) -> Option<RequestState> {
        let req = self.pending(id)?;
        let decision = self.decision(id);
        Some(RequestState::of(&req, decision.as_ref(), now))
    }

    /// The first valid decision read for `id` (remembered: later files change nothing).
    fn decision(&self, id: &RequestId) -> Option<Decision> {
        let mut decided = self.decided.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(d) = decided.get(id) {
            return Some(d.clone());
        }
        let d = contract::read_decision(&self.dir, id).unwrap_or_else(|e| {
            report_bad_file(id, "decision", &e);
            None
        })?;
        decided.insert(id.clone(), d.clone());
        Some(d)
    }

    /// Ids of the requests still waiting for the operator.
    fn pending_ids(&self, now: u64) -> Vec<RequestId> {
        contract::list_ids(&self.dir)
            .into_iter()
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

/// A file in `requests/` that is not what it should be: treated as absent, and logged (the
/// operator's `bottle requests` reports it too).
fn report_bad_file(id: &RequestId, what: &str, e: &ReadError) {
    tracing::warn!(%id, file = what, error = %e, "ignoring an invalid file in requests/");
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
        assert_eq!(store.state(&id, 1060), Some(RequestState::Expired));
        // A time-limited approval is approved until its end, expired after.
        write_decision(dir.path(), &id, &decision("approved", Some(5000))).unwrap();
        assert!(matches!(
            store.state(&id, 4999),
            Some(RequestState::Approved {
                until_unix: Some(5000),
                ..
            })
        ));
        assert_eq!(store.state(&id, 5000), Some(RequestState::Expired));
        let denied = pending(&store, 1000, 60);
        write_decision(dir.path(), &denied, &decision("denied", None)).unwrap();
        assert_eq!(
            store.state(&denied, 1001),
            Some(RequestState::Denied {
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
