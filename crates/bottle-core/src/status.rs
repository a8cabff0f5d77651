//! The status file, rewritten atomically after every load attempt.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use time::OffsetDateTime;

/// `{"component","generation","config_sha256","loaded_at","attempted_at","last_error"}` at `path`.
/// `loaded_at` is when the config in use was loaded (null before a first good load);
/// `attempted_at` is when this load attempt happened.
#[derive(Debug)]
pub struct StatusFile {
    path: PathBuf,
    component: String,
    counter: AtomicU64,
    // Time the config in use was loaded (kept across failed attempts).
    loaded_at: std::sync::Mutex<Option<String>>,
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
        }
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
        let loaded_at = {
            let mut l = self.loaded_at.lock().unwrap_or_else(|p| p.into_inner());
            if last_error.is_none() {
                *l = Some(now.clone());
            }
            l.clone()
        };
        let v = serde_json::json!({
            "component": self.component,
            "generation": generation,
            "config_sha256": sha256,
            "loaded_at": loaded_at,
            "attempted_at": now,
            "last_error": last_error,
        });
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
            f.sync_all()?;
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
