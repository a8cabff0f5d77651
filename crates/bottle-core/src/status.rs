//! The status file, rewritten atomically after every load attempt, and again when a
//! time-limited allowlist entry lapses (so the file shows what is in force).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use time::OffsetDateTime;

/// `{"component","generation","config_sha256","loaded_at","attempted_at","last_error"}` at `path`,
/// plus `"allowlist"` for sidecars that load one. `loaded_at` is when the config in use was
/// loaded (null before a first good load); `attempted_at` is when this load attempt happened.
#[derive(Debug)]
pub struct StatusFile {
    path: PathBuf,
    component: String,
    counter: AtomicU64,
    // Time the config in use was loaded (kept across failed attempts).
    loaded_at: std::sync::Mutex<Option<String>>,
    // The last attempt written, and the `until` of each allowlist entry in use. Held while
    // writing, so a re-publish never lands after (and hides) a newer attempt.
    last: std::sync::Mutex<Published>,
}

#[derive(Debug, Default)]
struct Published {
    attempt: Option<(u64, String, Option<String>, String)>,
    allowlist_untils: Option<Vec<Option<u64>>>,
}

/// The allowlist in use as the status file reports it (at the time of writing).
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct AllowlistStatus {
    /// Entries in force.
    pub active: usize,
    /// Time-limited entries past their end (ignored by matching).
    pub expired: usize,
    /// The earliest end of an entry in force (RFC 3339 UTC), if any.
    #[serde(default)]
    pub next_expiry: Option<String>,
    /// The same, in unix seconds.
    #[serde(default)]
    pub next_expiry_unix: Option<u64>,
}

impl AllowlistStatus {
    /// The report for entries ending at `untils` (`None`: no end), at `now`.
    pub fn at(untils: &[Option<u64>], now: u64) -> AllowlistStatus {
        let active = untils.iter().filter(|u| u.is_none_or(|u| now < u)).count();
        let next = untils.iter().flatten().filter(|u| **u > now).min().copied();
        AllowlistStatus {
            active,
            expired: untils.len() - active,
            next_expiry: next.map(crate::allowlist::format_utc),
            next_expiry_unix: next,
        }
    }
}

/// RFC 3339 UTC timestamp with milliseconds: `2026-11-22T14:43:58.120Z` (always 3 digits).
pub fn now_rfc3339() -> String {
    const FMT: &[time::format_description::FormatItem<'static>] = time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
    );
    let now = OffsetDateTime::now_utc();
    now.format(FMT)
        .unwrap_or_else(|_| now.unix_timestamp().to_string())
}

/// What a status file holds: the JSON [`StatusFile::write`] writes, for readers (the launcher
/// confirms a reload by a new `generation`, or a new attempt with `last_error`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Status {
    /// The sidecar that wrote it.
    #[serde(default)]
    pub component: String,
    /// Generation of the config in use.
    #[serde(default)]
    pub generation: u64,
    /// sha256 of the config in use.
    #[serde(default)]
    pub config_sha256: String,
    /// When the config in use was loaded (`None` before a first good load).
    #[serde(default)]
    pub loaded_at: Option<String>,
    /// When the last load attempt happened (absent in files of older sidecars).
    #[serde(default)]
    pub attempted_at: Option<String>,
    /// Error of the last attempt, if it failed.
    #[serde(default)]
    pub last_error: Option<String>,
    /// The allowlist in use (sidecars that load one; absent in files of older sidecars).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allowlist: Option<AllowlistStatus>,
}

impl Status {
    /// Read and parse a status file.
    pub fn read(path: &Path) -> std::io::Result<Status> {
        let text = std::fs::read_to_string(path)?;
        serde_json::from_str(&text)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
    }
}

impl StatusFile {
    /// A status file for `component` at `path`.
    pub fn new(path: impl Into<PathBuf>, component: impl Into<String>) -> StatusFile {
        StatusFile {
            path: path.into(),
            component: component.into(),
            counter: AtomicU64::new(0),
            loaded_at: std::sync::Mutex::new(None),
            last: std::sync::Mutex::new(Published::default()),
        }
    }

    /// Records the `until` of each entry of the allowlist now in use (`None` for a sidecar
    /// without one); the next write reports it.
    pub fn set_allowlist(&self, untils: Option<Vec<Option<u64>>>) {
        self.published().allowlist_untils = untils;
    }

    /// The earliest end after `now` of an allowlist entry in use.
    pub fn next_allowlist_expiry(&self, now: u64) -> Option<u64> {
        let p = self.published();
        p.allowlist_untils
            .as_ref()
            .and_then(|u| u.iter().flatten().filter(|u| **u > now).min().copied())
    }

    /// Rewrites the last attempt as it was (same generation, times and error), with the
    /// allowlist report as of now: what the sidecar shows when an entry lapses. Nothing is
    /// written before a first attempt.
    pub fn republish(&self) -> std::io::Result<()> {
        let p = self.published();
        let Some((generation, sha, err, attempted_at)) = p.attempt.clone() else {
            return Ok(());
        };
        self.write_locked(&p, generation, &sha, err.as_deref(), &attempted_at)
    }

    fn published(&self) -> std::sync::MutexGuard<'_, Published> {
        self.last.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Write the status (temp file in the same directory, then rename).
    pub fn write(
        &self,
        generation: u64,
        sha256: &str,
        last_error: Option<&str>,
    ) -> std::io::Result<()> {
        let now = now_rfc3339();
        let mut p = self.published();
        {
            let mut l = self.loaded_at.lock().unwrap_or_else(|p| p.into_inner());
            if last_error.is_none() {
                *l = Some(now.clone());
            }
        }
        p.attempt = Some((
            generation,
            sha256.to_owned(),
            last_error.map(str::to_owned),
            now.clone(),
        ));
        self.write_locked(&p, generation, sha256, last_error, &now)
    }

    fn write_locked(
        &self,
        published: &Published,
        generation: u64,
        sha256: &str,
        last_error: Option<&str>,
        attempted_at: &str,
    ) -> std::io::Result<()> {
        let loaded_at = self
            .loaded_at
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let mut v = serde_json::json!({
            "component": self.component,
            "generation": generation,
            "config_sha256": sha256,
            "loaded_at": loaded_at,
            "attempted_at": attempted_at,
            "last_error": last_error,
        });
        if let Some(untils) = &published.allowlist_untils {
            let report = AllowlistStatus::at(untils, crate::allowlist::now_unix());
            v["allowlist"] = serde_json::to_value(report).map_err(std::io::Error::other)?;
        }
        let mut text = serde_json::to_string_pretty(&v).map_err(std::io::Error::other)?;
        text.push('\n');
        let dir = match self.path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let name = self
            .path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "status".into());
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        let tmp = dir.join(format!(".{name}.tmp.{}.{n}", std::process::id()));
        let res = (|| {
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(text.as_bytes())?;
            // No fsync: readers see the whole file through the rename either way, and after a
            // crash the sidecar rewrites it at start. An fsync made every reload wait for the
            // disk (p50 7.8 ms, max 220 ms under load in the benchmark's W8, issue 17).
            std::fs::rename(&tmp, &self.path)
        })();
        if res.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        res
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_json_atomically() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("pipelock.json");
        let s = StatusFile::new(&p, "pipelock");
        s.write(1, "abc", None).unwrap();
        let v: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap();
        assert_eq!(v["component"], "pipelock");
        assert_eq!(v["generation"], 1);
        assert_eq!(v["config_sha256"], "abc");
        assert!(v["last_error"].is_null());
        let ts = v["loaded_at"].as_str().unwrap();
        assert!(
            ts.len() == 24 && ts.ends_with('Z') && ts.as_bytes()[10] == b'T',
            "{ts}"
        );
        std::thread::sleep(std::time::Duration::from_millis(5));
        s.write(1, "abc", Some("allowlist:3: bad")).unwrap();
        let v2: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap();
        assert_eq!(v2["last_error"], "allowlist:3: bad");
        assert_eq!(
            v2["loaded_at"], v["loaded_at"],
            "a failed attempt keeps loaded_at"
        );
        assert_ne!(v2["attempted_at"], v["attempted_at"]);
        let fresh = StatusFile::new(dir.path().join("other.json"), "x");
        fresh.write(0, "", Some("bad")).unwrap();
        let v3: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(dir.path().join("other.json")).unwrap())
                .unwrap();
        assert!(v3["loaded_at"].is_null());
        std::fs::remove_file(dir.path().join("other.json")).unwrap();
        // No temp files left behind.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
        assert!(StatusFile::new(dir.path().join("missing/dir/x"), "c")
            .write(1, "", None)
            .is_err());
    }

    /// The reader's type is the writer's format: every field round-trips, including the
    /// null `loaded_at` of a sidecar whose first load failed.
    #[test]
    fn status_reads_what_write_wrote() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("egress.json");
        let s = StatusFile::new(&p, "egress");
        s.write(0, "", Some("routes.yaml:2: bad")).unwrap();
        let first = Status::read(&p).unwrap();
        assert_eq!(first.component, "egress");
        assert_eq!(first.generation, 0);
        assert_eq!(first.loaded_at, None);
        assert_eq!(first.last_error.as_deref(), Some("routes.yaml:2: bad"));
        assert!(first.attempted_at.is_some());
        s.write(3, "f00d", None).unwrap();
        let good = Status::read(&p).unwrap();
        assert_eq!(good.generation, 3);
        assert_eq!(good.config_sha256, "f00d");
        assert_eq!(good.last_error, None);
        assert_eq!(good.loaded_at, good.attempted_at);
        assert_ne!(good, first);
        // An older file without `attempted_at` still reads; garbage is an error, not a default.
        std::fs::write(&p, r#"{"component":"x","generation":2,"config_sha256":"a","loaded_at":"t","last_error":null}"#).unwrap();
        assert_eq!(Status::read(&p).unwrap().attempted_at, None);
        std::fs::write(&p, "{\"generation\": \"two\"}").unwrap();
        assert_eq!(
            Status::read(&p).unwrap_err().kind(),
            std::io::ErrorKind::InvalidData
        );
        assert!(Status::read(&dir.path().join("missing.json")).is_err());
    }

    /// The allowlist report counts what is in force now; a re-publish keeps the attempt
    /// (generation, times, error) and only updates the report.
    #[test]
    fn allowlist_report_and_republish() {
        let r = AllowlistStatus::at(&[None, Some(100), Some(200), Some(50)], 100);
        assert_eq!(r.active, 2);
        assert_eq!(r.expired, 2);
        assert_eq!(r.next_expiry_unix, Some(200));
        assert_eq!(r.next_expiry.as_deref(), Some("1970-01-01T00:03:20Z"));
        assert_eq!(AllowlistStatus::at(&[None], 0).next_expiry, None);

        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("pipelock.json");
        let s = StatusFile::new(&p, "pipelock");
        s.republish().unwrap();
        assert!(!p.exists(), "nothing to re-publish before a first attempt");
        let now = crate::allowlist::now_unix();
        s.set_allowlist(Some(vec![None, Some(now + 3600), Some(now - 1)]));
        s.write(4, "abc", Some("allowlist:2: bad")).unwrap();
        let first = Status::read(&p).unwrap();
        let report = first.allowlist.clone().unwrap();
        assert_eq!((report.active, report.expired), (2, 1));
        assert_eq!(report.next_expiry_unix, Some(now + 3600));
        assert_eq!(s.next_allowlist_expiry(now), Some(now + 3600));
        assert_eq!(s.next_allowlist_expiry(now + 3600), None);
        std::thread::sleep(std::time::Duration::from_millis(5));
        s.set_allowlist(Some(vec![None]));
        s.republish().unwrap();
        let again = Status::read(&p).unwrap();
        assert_eq!(again.allowlist.as_ref().map(|a| a.active), Some(1));
        assert_eq!(
            (again.generation, &again.attempted_at, &again.last_error),
            (first.generation, &first.attempted_at, &first.last_error)
        );
        // A sidecar without an allowlist writes no report (and old readers ignore it).
        let plain = StatusFile::new(dir.path().join("git-gate.json"), "git-gate");
        plain.write(1, "x", None).unwrap();
        assert_eq!(
            Status::read(&dir.path().join("git-gate.json"))
                .unwrap()
                .allowlist,
            None
        );
    }

    #[test]
    fn timestamp_has_millis() {
        for _ in 0..50 {
            let t = now_rfc3339();
            assert_eq!(t.len(), 24, "{t}");
            std::thread::sleep(std::time::Duration::from_micros(300));
        }
        let t = now_rfc3339();
        // 2026-11-22T14:43:58.123Z
        assert_eq!(t.len(), 24, "{t}");
        assert!(t.ends_with('Z'));
    }
}
