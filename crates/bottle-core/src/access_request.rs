//! The on-disk contract of access requests, one copy for both sides: supervise (the agent's
//! side) writes pending requests, the launcher (the operator's side) writes decisions.
//!
//! Under a bottle's state directory `STATE`:
//!
//! - `STATE/requests/<id>.json`: a [`PendingRequest`], written by supervise once.
//! - `STATE/requests/<id>.decision.json`: the operator's [`Decision`], written by the launcher
//!   ([`write_decision`]). **The first decision wins**: both files are written as a private
//!   temp file, synced, then hard-linked to the final name; `link` never replaces a file, so a
//!   second writer gets `AlreadyExists` and nothing changes.
//!
//! Every id from the outside is a [`RequestId`], checked against exactly the shape
//! [`RequestId::random`] makes before any path is built. Files that are not regular files,
//! larger than their cap, or not the expected JSON are treated as absent, and the reader says
//! why ([`ReadError`]) so the launcher can report them.

use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub use crate::allowlist::now_unix;

/// Largest decision file read (the launcher writes small ones).
pub const MAX_DECISION_BYTES: u64 = 16 * 1024;
/// Largest pending file read.
pub const MAX_PENDING_BYTES: u64 = 64 * 1024;
/// The directory under the state directory.
pub const REQUESTS_DIR: &str = "requests";

/// Characters of an id (RFC 4648 base32, lowercase).
const ALPHABET: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";
/// 128 bits in 5-bit characters: 26 (the first one carries 3 bits).
pub const ID_LEN: usize = 26;

/// A validated request id: 128 random bits in lowercase base32. Only ever built by
/// [`RequestId::random`] or [`RequestId::parse`], so `../`, separators, long or non-ASCII ids
/// never reach the file system.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RequestId(String);

impl RequestId {
    /// A fresh id from the thread-local CSPRNG (seeded from the OS).
    pub fn random() -> RequestId {
        let bytes: [u8; 16] = rand::random();
        let mut bits = u128::from_be_bytes(bytes);
        let mut out = vec![0u8; ID_LEN];
        for slot in out.iter_mut().rev() {
            *slot = ALPHABET[(bits & 31) as usize];
            bits >>= 5;
        }
        RequestId(out.into_iter().map(char::from).collect())
    }

    /// `s` as an id, if it has exactly the shape [`random`](Self::random) makes.
    pub fn parse(s: &str) -> Option<RequestId> {
        let ok = s.len() == ID_LEN && s.bytes().all(|b| ALPHABET.contains(&b));
        ok.then(|| RequestId(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// One pending request as written to `<id>.json`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct PendingRequest {
    pub id: String,
    /// `host`, `route` or `git-ref`.
    pub kind: String,
    /// The validated, normalised request fields (without `kind` and `reason`).
    pub ask: serde_json::Value,
    /// The agent's justification (validated by supervise; still the agent's text).
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

impl Decision {
    pub fn is_approval(&self) -> bool {
        self.decision == "approved"
    }
}

/// What a request is at some time.
#[derive(Debug, Clone, PartialEq)]
pub enum RequestState {
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

impl RequestState {
    /// The JSON supervise answers with (`id` added by the caller).
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::json;
        match self {
            RequestState::Pending { expires_unix } => {
                json!({"status": "pending", "expires_unix": expires_unix})
            }
            RequestState::Approved { for_, until_unix } => {
                json!({"status": "approved", "for": for_, "until_unix": until_unix})
            }
            RequestState::Denied { reason } => json!({"status": "denied", "reason": reason}),
            RequestState::Expired => json!({"status": "expired"}),
        }
    }

    pub fn is_pending(&self) -> bool {
        matches!(self, RequestState::Pending { .. })
    }

    /// The state of `req` with `decision` (already validated) at `now`.
    pub fn of(req: &PendingRequest, decision: Option<&Decision>, now: u64) -> RequestState {
        match decision {
            None if now >= req.expires_unix => RequestState::Expired,
            None => RequestState::Pending {
                expires_unix: req.expires_unix,
            },
            Some(d) if d.is_approval() => match d.until_unix {
                Some(until) if now >= until => RequestState::Expired,
                until_unix => RequestState::Approved {
                    for_: d.for_.clone(),
                    until_unix,
                },
            },
            Some(d) => RequestState::Denied {
                reason: d.reason.clone(),
            },
        }
    }
}

/// Why a file that exists was not read (it counts as absent).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReadError {
    /// A symlink, directory or other non-regular file.
    NotRegular,
    /// Larger than the cap.
    TooLarge(u64),
    /// Not the expected JSON (or a decision other than `approved`/`denied`).
    Garbled(String),
    /// The file could not be read.
    Io(String),
}

impl fmt::Display for ReadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReadError::NotRegular => f.write_str("not a regular file"),
            ReadError::TooLarge(n) => write!(f, "too large ({n} bytes)"),
            ReadError::Garbled(e) => write!(f, "not a valid request file: {e}"),
            ReadError::Io(e) => write!(f, "unreadable: {e}"),
        }
    }
}

/// `state_dir/requests`.
pub fn requests_dir(state_dir: &Path) -> PathBuf {
    state_dir.join(REQUESTS_DIR)
}

fn pending_name(id: &RequestId) -> String {
    format!("{id}.json")
}

fn decision_name(id: &RequestId) -> String {
    format!("{id}.decision.json")
}

/// The pending request `id` in `dir` (a `requests` directory): `Ok(None)` when there is no
/// file, an error when one exists but is not a request file (or names another id).
pub fn read_pending(dir: &Path, id: &RequestId) -> Result<Option<PendingRequest>, ReadError> {
    let Some(bytes) = read_capped(&dir.join(pending_name(id)), MAX_PENDING_BYTES)? else {
        return Ok(None);
    };
    let req: PendingRequest =
        serde_json::from_slice(&bytes).map_err(|e| ReadError::Garbled(e.to_string()))?;
    if req.id != id.as_str() {
        return Err(ReadError::Garbled("its id is not its file name".into()));
    }
    Ok(Some(req))
}

/// The decision for `id` in `dir`: `Ok(None)` when none is written, an error for a file that
/// is not a valid decision (supervise then keeps the request pending).
pub fn read_decision(dir: &Path, id: &RequestId) -> Result<Option<Decision>, ReadError> {
    let Some(bytes) = read_capped(&dir.join(decision_name(id)), MAX_DECISION_BYTES)? else {
        return Ok(None);
    };
    let d: Decision =
        serde_json::from_slice(&bytes).map_err(|e| ReadError::Garbled(e.to_string()))?;
    if d.decision != "approved" && d.decision != "denied" {
        return Err(ReadError::Garbled(
            "`decision` is neither `approved` nor `denied`".into(),
        ));
    }
    Ok(Some(d))
}

/// The ids of the request files (`<id>.json`) in `dir`, sorted; names of another shape
/// (decisions, temp files, anything planted) are not ids and are skipped.
pub fn list_ids(dir: &Path) -> Vec<RequestId> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut ids: Vec<RequestId> = entries
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = e.file_name();
            RequestId::parse(name.to_str()?.strip_suffix(".json")?)
        })
        .collect();
    ids.sort();
    ids
}

/// Writes a new pending request into `dir` (a `requests` directory); never replaces a file.
pub fn write_pending(dir: &Path, id: &RequestId, req: &PendingRequest) -> std::io::Result<()> {
    let body = serde_json::to_vec_pretty(req).map_err(std::io::Error::other)?;
    write_new_file(dir, &pending_name(id), &body)
}

/// The launcher's side: record `decision` for `id` under `state_dir`, unless one is already
/// recorded (then `AlreadyExists`: the first decision wins), or no request `id` was ever
/// written (`NotFound`: a decision for an id supervise never wrote is refused).
pub fn write_decision(
    state_dir: &Path,
    id: &RequestId,
    decision: &Decision,
) -> std::io::Result<()> {
    let dir = requests_dir(state_dir);
    let pending = std::fs::symlink_metadata(dir.join(pending_name(id)));
    if !pending.is_ok_and(|m| m.is_file()) {
        return Err(std::io::Error::new(
            std::io::ErrorKind::NotFound,
            format!("no request {id}"),
        ));
    }
    let body = serde_json::to_vec_pretty(decision).map_err(std::io::Error::other)?;
    write_new_file(&dir, &decision_name(id), &body)
}

/// Writes `dir/name` atomically and only if it does not exist: a private temp file, synced,
/// then hard-linked to its name (`link` refuses to replace), then the temp name removed.
pub fn write_new_file(dir: &Path, name: &str, body: &[u8]) -> std::io::Result<()> {
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

/// The file's bytes if it is a regular file no larger than `max`; `Ok(None)` when absent. A
/// symlink is not followed: nobody but the two writers should put anything here, and a link
/// could point anywhere (for the launcher, into the operator's home).
fn read_capped(path: &Path, max: u64) -> Result<Option<Vec<u8>>, ReadError> {
    let meta = match std::fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(ReadError::Io(e.to_string())),
    };
    if !meta.is_file() {
        return Err(ReadError::NotRegular);
    }
    if meta.len() > max {
        return Err(ReadError::TooLarge(meta.len()));
    }
    read_same_file(path, &meta, max).map(Some)
}

/// Reads `path` only if the file opened is the one `seen` describes. `open` follows a
/// symlink, so a file swapped for a link between the `lstat` and the `open` (the requests
/// directory is writable from the supervise container) would otherwise be read wherever it
/// points: the opened file's own metadata must be a regular file with the same device and
/// inode.
fn read_same_file(path: &Path, seen: &std::fs::Metadata, max: u64) -> Result<Vec<u8>, ReadError> {
    use std::io::Read;
    let f = open_nonblocking(path).map_err(|e| ReadError::Io(e.to_string()))?;
    let opened = f.metadata().map_err(|e| ReadError::Io(e.to_string()))?;
    if !opened.is_file() {
        return Err(ReadError::NotRegular);
    }
    if !same_file(seen, &opened) {
        return Err(ReadError::Io("replaced while being read".into()));
    }
    let mut bytes = Vec::new();
    f.take(max + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| ReadError::Io(e.to_string()))?;
    if bytes.len() as u64 > max {
        // Grown between the check and the read.
        return Err(ReadError::TooLarge(bytes.len() as u64));
    }
    Ok(bytes)
}

/// `O_NONBLOCK`: a FIFO swapped in between the check and the open would otherwise block the
/// `open` (and the launcher's `bottle requests`) until a writer came; with it the open returns
/// and the type check refuses the FIFO. On regular files it changes nothing. The values are
/// the kernels' ABI (Linux's asm-generic and its older exceptions; BSD and Apple): std has no
/// constant and bottle-core no libc. Elsewhere 0: only that stall is then not covered.
#[cfg(any(target_os = "linux", target_os = "android"))]
const O_NONBLOCK: i32 = if cfg!(any(target_arch = "mips", target_arch = "mips64")) {
    0x80
} else if cfg!(any(target_arch = "sparc", target_arch = "sparc64")) {
    0x4000
} else {
    0o4000
};
#[cfg(any(
    target_vendor = "apple",
    target_os = "freebsd",
    target_os = "openbsd",
    target_os = "netbsd",
    target_os = "dragonfly"
))]
const O_NONBLOCK: i32 = 0x0004;
#[cfg(all(
    unix,
    not(any(
        target_os = "linux",
        target_os = "android",
        target_vendor = "apple",
        target_os = "freebsd",
        target_os = "openbsd",
        target_os = "netbsd",
        target_os = "dragonfly"
    ))
))]
const O_NONBLOCK: i32 = 0;

#[cfg(unix)]
fn open_nonblocking(path: &Path) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(O_NONBLOCK)
        .open(path)
}

#[cfg(not(unix))]
fn open_nonblocking(path: &Path) -> std::io::Result<std::fs::File> {
    std::fs::File::open(path)
}

#[cfg(unix)]
fn same_file(a: &std::fs::Metadata, b: &std::fs::Metadata) -> bool {
    use std::os::unix::fs::MetadataExt;
    a.dev() == b.dev() && a.ino() == b.ino()
}

/// Without inode numbers only the type check above holds.
#[cfg(not(unix))]
fn same_file(_: &std::fs::Metadata, _: &std::fs::Metadata) -> bool {
    true
}

#[cfg(test)]
#[path = "access_request_tests.rs"]
mod tests;
