//! The audit log: one JSON line per decision.
//!
//! Hostile input must not be able to fill the disk through it: every string field is capped
//! (with a visible `…[truncated N bytes]` marker) and a file log rotates
//! (`audit.log` -> `audit.log.1` -> ... -> `audit.log.N`, the oldest dropped).

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use serde_json::{Map, Value};

use crate::status::now_rfc3339;

/// Longest `path` written, in bytes (before the truncation marker).
pub const MAX_PATH_BYTES: usize = 1024;
/// Longest other string field written (host, method, reason, strings in `extra`), in bytes.
pub const MAX_FIELD_BYTES: usize = 512;
/// Most elements of an array in `extra` written; the rest are counted in a marker element.
pub const MAX_ARRAY_ITEMS: usize = 32;
/// A line still longer than this after capping (many `extra` keys) loses its `extra` fields.
pub const MAX_LINE_BYTES: usize = 16 * 1024;
/// Default size at which a file log rotates (`--audit-max-bytes`).
pub const DEFAULT_MAX_BYTES: u64 = 16 * 1024 * 1024;
/// Default number of rotated files kept (`--audit-keep`).
pub const DEFAULT_KEEP: usize = 4;
/// The `decision` of an audit line. Serialised as the strings audit files have always held
/// (supervise's `/v1/blocks` and the tests read them).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AuditDecision {
    /// Let through.
    Allow,
    /// Refused by policy.
    Deny,
    /// Failed (upstream, malformed request, body error).
    Error,
    /// Waiting for the operator (supervise: an access request recorded).
    Pending,
}

impl AuditDecision {
    /// `allow`, `deny`, `error`, `pending`.
    pub fn as_str(self) -> &'static str {
        match self {
            AuditDecision::Allow => "allow",
            AuditDecision::Deny => "deny",
            AuditDecision::Error => "error",
            AuditDecision::Pending => "pending",
        }
    }
}

impl From<AuditDecision> for String {
    fn from(d: AuditDecision) -> String {
        d.as_str().to_string()
    }
}

impl std::fmt::Display for AuditDecision {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One decision. The caller must pass an already-redacted `path`.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditEvent {
    /// `pipelock`, `egress`, `git-gate`.
    pub component: String,
    /// What happened: `request`, `connect`, `push`, `reload`, ...
    pub event: String,
    /// `allow`, `deny`, `error` or `pending`.
    pub decision: AuditDecision,
    /// Why (for deny/error).
    pub reason: Option<String>,
    /// HTTP method.
    pub method: String,
    /// `http` / `https`.
    pub scheme: String,
    /// Target host.
    pub host: String,
    /// Target port.
    pub port: Option<u16>,
    /// Path and query, already redacted.
    pub path: String,
    /// Response status.
    pub status: Option<u16>,
    /// Bytes sent upstream.
    pub bytes_up: u64,
    /// Bytes received from upstream.
    pub bytes_down: u64,
    /// Duration.
    pub duration_ms: u64,
    /// More fields, flattened into the line (never overriding the fields above).
    pub extra: Map<String, Value>,
}

impl AuditEvent {
    /// An event with the three always-present fields set.
    pub fn new(
        component: impl Into<String>,
        event: impl Into<String>,
        decision: AuditDecision,
    ) -> Self {
        AuditEvent {
            component: component.into(),
            event: event.into(),
            decision,
            reason: None,
            method: String::new(),
            scheme: String::new(),
            host: String::new(),
            port: None,
            path: String::new(),
            status: None,
            bytes_up: 0,
            bytes_down: 0,
            duration_ms: 0,
            extra: Map::new(),
        }
    }

    /// The JSON object written for this event, with `ts`.
    pub fn to_json(&self, ts: &str) -> Map<String, Value> {
        let mut m = Map::new();
        m.insert("ts".into(), ts.into());
        m.insert("component".into(), self.component.clone().into());
        m.insert("event".into(), self.event.clone().into());
        m.insert("decision".into(), self.decision.as_str().into());
        m.insert(
            "reason".into(),
            self.reason.clone().map(Value::from).unwrap_or(Value::Null),
        );
        m.insert("method".into(), self.method.clone().into());
        m.insert("scheme".into(), self.scheme.clone().into());
        m.insert("host".into(), self.host.clone().into());
        m.insert(
            "port".into(),
            self.port.map(Value::from).unwrap_or(Value::Null),
        );
        m.insert("path".into(), self.path.clone().into());
        m.insert(
            "status".into(),
            self.status.map(Value::from).unwrap_or(Value::Null),
        );
        m.insert("bytes_up".into(), self.bytes_up.into());
        m.insert("bytes_down".into(), self.bytes_down.into());
        m.insert("duration_ms".into(), self.duration_ms.into());
        for (k, v) in &self.extra {
            if !m.contains_key(k) {
                m.insert(k.clone(), v.clone());
            }
        }
        m
    }
}

/// When a file log rotates. `max_bytes == 0` never rotates; `keep == 0` keeps no old file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rotation {
    /// Rotate before a line would take the file past this many bytes.
    pub max_bytes: u64,
    /// How many rotated files (`.1` newest ... `.keep` oldest) are kept.
    pub keep: usize,
}

impl Default for Rotation {
    fn default() -> Self {
        Rotation {
            max_bytes: DEFAULT_MAX_BYTES,
            keep: DEFAULT_KEEP,
        }
    }
}

/// `s` cut to at most `max` bytes on a char boundary, with a marker naming what was cut.
pub fn truncate_field(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut cut = max;
    while !s.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}…[truncated {} bytes]", &s[..cut], s.len() - cut)
}

/// Cap every string in `v` (recursively) and every array's length.
fn cap_value(v: &Value) -> Value {
    match v {
        Value::String(s) => Value::String(truncate_field(s, MAX_FIELD_BYTES)),
        Value::Array(a) => {
            let mut out: Vec<Value> = a.iter().take(MAX_ARRAY_ITEMS).map(cap_value).collect();
            if a.len() > MAX_ARRAY_ITEMS {
                out.push(format!("…[truncated {} items]", a.len() - MAX_ARRAY_ITEMS).into());
            }
            Value::Array(out)
        }
        Value::Object(o) => Value::Object(
            o.iter()
                .take(MAX_ARRAY_ITEMS)
                .map(|(k, v)| (truncate_field(k, MAX_FIELD_BYTES), cap_value(v)))
                .collect(),
        ),
        other => other.clone(),
    }
}

/// The line written for `ev` (no newline): fields capped, `extra` dropped if still too long.
fn encode_line(ev: &AuditEvent, ts: &str) -> serde_json::Result<String> {
    let mut m = ev.to_json(ts);
    for (k, v) in m.iter_mut() {
        if let Value::String(s) = v {
            let max = if k == "path" {
                MAX_PATH_BYTES
            } else {
                MAX_FIELD_BYTES
            };
            *s = truncate_field(s, max);
        } else {
            *v = cap_value(v);
        }
    }
    let line = serde_json::to_string(&Value::Object(m.clone()))?;
    if line.len() <= MAX_LINE_BYTES {
        return Ok(line);
    }
    // Only `extra` can be this large: keep the fixed fields, say what was dropped.
    let fixed = AuditEvent {
        extra: Map::new(),
        ..ev.clone()
    }
    .to_json(ts);
    m.retain(|k, _| fixed.contains_key(k));
    m.insert("extra_truncated_bytes".into(), (line.len() as u64).into());
    serde_json::to_string(&Value::Object(m))
}

/// An open audit file and what rotation needs to know about it.
struct FileSink {
    path: PathBuf,
    file: File,
    /// Bytes in the current file (its size at open plus what we appended).
    size: u64,
    rotation: Rotation,
}

impl FileSink {
    fn open(path: &Path, rotation: Rotation) -> std::io::Result<FileSink> {
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        let size = file.metadata()?.len();
        Ok(FileSink {
            path: path.to_path_buf(),
            file,
            size,
            rotation,
        })
    }

    fn numbered(&self, n: usize) -> PathBuf {
        let mut s = self.path.clone().into_os_string();
        s.push(format!(".{n}"));
        PathBuf::from(s)
    }

    /// Shift `.1..keep-1` up by one, the live file to `.1`, and start a new live file.
    fn rotate(&mut self) -> std::io::Result<()> {
        let keep = self.rotation.keep;
        if keep == 0 {
            self.file = OpenOptions::new()
                .create(true)
                .write(true)
                .truncate(true)
                .open(&self.path)?;
        } else {
            for n in (1..keep).rev() {
                let from = self.numbered(n);
                if from.exists() {
                    std::fs::rename(&from, self.numbered(n + 1))?;
                }
            }
            std::fs::rename(&self.path, self.numbered(1))?;
            self.file = OpenOptions::new()
                .create(true)
                .append(true)
                .open(&self.path)?;
        }
        self.size = 0;
        Ok(())
    }

    /// Append one whole line, rotating first if it would take the file past the limit.
    fn write_line(&mut self, line: &[u8]) -> std::io::Result<()> {
        let len = line.len() as u64;
        let max = self.rotation.max_bytes;
        if max > 0 && self.size > 0 && self.size.saturating_add(len) > max {
            if let Err(e) = self.rotate() {
                // Fail closed on disk use: past twice the limit, lines are dropped.
                if self.size >= max.saturating_mul(2) {
                    return Err(e);
                }
                tracing::warn!(error = %e, path = %self.path.display(), "audit: cannot rotate");
            }
        }
        self.file.write_all(line)?;
        self.file.flush()?;
        self.size = self.size.saturating_add(len);
        Ok(())
    }
}

enum Sink {
    Disabled,
    Stderr,
    File(Mutex<FileSink>),
}

/// Where audit lines go. Cheap to clone; lines from many threads never interleave.
#[derive(Clone)]
pub struct AuditLog {
    sink: Arc<Sink>,
}

impl std::fmt::Debug for AuditLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match *self.sink {
            Sink::Disabled => "disabled",
            Sink::Stderr => "stderr",
            Sink::File(_) => "file",
        };
        f.debug_struct("AuditLog").field("sink", &kind).finish()
    }
}

impl AuditLog {
    /// Open `path` for appending (created if missing), default rotation; `-` is stderr.
    pub fn open(path: &str) -> std::io::Result<AuditLog> {
        AuditLog::open_rotating(path, Rotation::default())
    }

    /// Open `path` for appending with `rotation`; `-` is stderr (never rotated).
    pub fn open_rotating(path: &str, rotation: Rotation) -> std::io::Result<AuditLog> {
        if path == "-" {
            return Ok(AuditLog {
                sink: Arc::new(Sink::Stderr),
            });
        }
        let f = FileSink::open(Path::new(path), rotation)?;
        Ok(AuditLog {
            sink: Arc::new(Sink::File(Mutex::new(f))),
        })
    }

    /// `open` when `Some`, otherwise a log that drops everything.
    pub fn open_optional(path: Option<&str>) -> std::io::Result<AuditLog> {
        AuditLog::open_optional_rotating(path, Rotation::default())
    }

    /// `open_rotating` when `Some`, otherwise a log that drops everything.
    pub fn open_optional_rotating(
        path: Option<&str>,
        rotation: Rotation,
    ) -> std::io::Result<AuditLog> {
        match path {
            Some(p) => AuditLog::open_rotating(p, rotation),
            None => Ok(AuditLog::disabled()),
        }
    }

    // `AuditLog::from_args(&CommonArgs)` lives in cli.rs, beside the flags it reads, so this
    // module does not depend on the command line.

    /// A log that drops everything.
    pub fn disabled() -> AuditLog {
        AuditLog {
            sink: Arc::new(Sink::Disabled),
        }
    }

    /// Write one line (with `ts`). Errors are logged, never returned.
    pub fn record(&self, ev: AuditEvent) {
        if matches!(*self.sink, Sink::Disabled) {
            return;
        }
        let mut line = match encode_line(&ev, &now_rfc3339()) {
            Ok(l) => l,
            Err(e) => {
                tracing::warn!(error = %e, "audit: cannot encode event");
                return;
            }
        };
        line.push('\n');
        // One write_all of the whole line under a lock (rotation included): no interleaving,
        // and no line is split across two files.
        let res = match &*self.sink {
            Sink::Disabled => Ok(()),
            Sink::Stderr => {
                let mut e = std::io::stderr().lock();
                e.write_all(line.as_bytes()).and_then(|_| e.flush())
            }
            Sink::File(f) => match f.lock() {
                Ok(mut f) => f.write_line(line.as_bytes()),
                Err(poisoned) => poisoned.into_inner().write_line(line.as_bytes()),
            },
        };
        if let Err(e) = res {
            tracing::warn!(error = %e, "audit: write failed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_json_with_all_fields() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("audit.jsonl");
        let log = AuditLog::open(p.to_str().unwrap()).unwrap();
        let mut ev = AuditEvent::new("pipelock", "request", AuditDecision::Deny);
        ev.reason = Some("host not allowed".into());
        ev.host = "evil.example".into();
        ev.port = Some(443);
        ev.extra.insert("rule".into(), "x".into());
        ev.extra.insert("ts".into(), "spoofed".into());
        log.record(ev);
        log.record(AuditEvent::new("pipelock", "request", AuditDecision::Allow));
        let text = std::fs::read_to_string(&p).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2);
        let v: Value = serde_json::from_str(lines[0]).unwrap();
        for k in [
            "ts",
            "component",
            "event",
            "decision",
            "reason",
            "method",
            "scheme",
            "host",
            "port",
            "path",
            "status",
            "bytes_up",
            "bytes_down",
            "duration_ms",
        ] {
            assert!(v.get(k).is_some(), "missing {k}");
        }
        assert_eq!(v["decision"], "deny");
        assert_eq!(v["port"], 443);
        assert_eq!(v["rule"], "x");
        assert_ne!(v["ts"], "spoofed");
        assert!(v["ts"].as_str().unwrap().ends_with('Z'));
    }

    fn read_lines(p: &std::path::Path) -> Vec<Value> {
        std::fs::read_to_string(p)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    #[test]
    fn threads_do_not_interleave() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("audit.jsonl");
        // Small limit: the threads race through many rotations too.
        let rot = Rotation {
            max_bytes: 64 * 1024,
            keep: 1000,
        };
        let log = AuditLog::open_rotating(p.to_str().unwrap(), rot).unwrap();
        let big = "x".repeat(20_000);
        let handles: Vec<_> = (0..8)
            .map(|t| {
                let log = log.clone();
                let big = big.clone();
                std::thread::spawn(move || {
                    for i in 0..50 {
                        let mut ev = AuditEvent::new("c", "e", AuditDecision::Allow);
                        ev.path = format!("/{t}/{i}/{big}");
                        ev.host = format!("{t}.{i}.{big}");
                        log.record(ev);
                    }
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
        let mut seen = std::collections::BTreeSet::new();
        let mut files = 0;
        for entry in std::fs::read_dir(dir.path()).unwrap() {
            let f = entry.unwrap().path();
            files += 1;
            assert!(std::fs::metadata(&f).unwrap().len() <= rot.max_bytes);
            for v in read_lines(&f) {
                let path = v["path"].as_str().unwrap();
                let mut parts = path.split('/');
                parts.next();
                let id = (
                    parts.next().unwrap().to_string(),
                    parts.next().unwrap().to_string(),
                );
                let full = 20_000 + id.0.len() + id.1.len() + 3;
                let marker = format!("…[truncated {} bytes]", full - MAX_PATH_BYTES);
                assert!(path.ends_with(&marker), "{path}");
                assert!(seen.insert(id), "duplicate line");
            }
        }
        assert_eq!(seen.len(), 400, "every line written exactly once");
        assert!(files > 2, "rotated: {files} files");
    }

    #[test]
    fn long_fields_are_capped_with_a_marker() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("audit.jsonl");
        let log = AuditLog::open(p.to_str().unwrap()).unwrap();
        let mut ev = AuditEvent::new("egress", "request", AuditDecision::Deny);
        ev.path = format!("/{}", "a".repeat(60_000));
        ev.host = "h".repeat(60_000);
        ev.method = "M".repeat(60_000);
        ev.reason = Some("r".repeat(60_000));
        ev.extra.insert("s".into(), "e".repeat(60_000).into());
        ev.extra.insert(
            "list".into(),
            Value::Array(
                (0..1000)
                    .map(|i| format!("{i}{}", "z".repeat(5000)).into())
                    .collect(),
            ),
        );
        log.record(ev);
        let text = std::fs::read_to_string(&p).unwrap();
        assert_eq!(text.lines().count(), 1);
        assert!(
            text.len() < MAX_LINE_BYTES + 1024,
            "line of {} bytes",
            text.len()
        );
        let v: Value = serde_json::from_str(text.trim_end()).unwrap();
        assert_eq!(
            v["path"].as_str().unwrap(),
            format!("/{}…[truncated 58977 bytes]", "a".repeat(1023))
        );
        assert!(v["host"]
            .as_str()
            .unwrap()
            .ends_with("…[truncated 59488 bytes]"));
        assert!(v["method"]
            .as_str()
            .unwrap()
            .ends_with("…[truncated 59488 bytes]"));
        assert!(v["reason"]
            .as_str()
            .unwrap()
            .ends_with("…[truncated 59488 bytes]"));
        // The array made the line too long: `extra` is dropped, and says so.
        assert!(v.get("s").is_none() && v.get("list").is_none());
        assert!(v["extra_truncated_bytes"].as_u64().unwrap() > MAX_LINE_BYTES as u64);
        assert_eq!(v["decision"], "deny");

        // A 60 KB path alone: the line stays under 4 KB with the marker.
        let mut ev = AuditEvent::new("egress", "request", AuditDecision::Deny);
        ev.path = format!("/{}", "p".repeat(60_000));
        ev.extra.insert("s".into(), "e".repeat(60_000).into());
        let line = encode_line(&ev, "t").unwrap();
        assert!(line.len() < 4096, "{}", line.len());
        let v: Value = serde_json::from_str(&line).unwrap();
        assert!(v["path"].as_str().unwrap().contains("…[truncated "));
        assert!(v["s"]
            .as_str()
            .unwrap()
            .ends_with("…[truncated 59488 bytes]"));
    }

    #[test]
    fn truncation_respects_char_boundaries() {
        // 'é' is two bytes: a cut at an odd byte must move back to a boundary.
        let s = "é".repeat(600);
        let t = truncate_field(&s, 511);
        assert!(t.starts_with(&"é".repeat(255)));
        assert!(t.ends_with("…[truncated 690 bytes]"), "{t}");
        assert_eq!(truncate_field("short", 511), "short");
        assert_eq!(truncate_field("", 0), "");
    }

    #[test]
    fn rotation_keeps_exactly_keep_files_and_loses_no_line() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("audit.log");
        let rot = Rotation {
            max_bytes: 2000,
            keep: 3,
        };
        let log = AuditLog::open_rotating(p.to_str().unwrap(), rot).unwrap();
        let line_of = |i: usize| {
            let mut ev = AuditEvent::new("c", "e", AuditDecision::Allow);
            ev.path = format!("/{i}");
            ev
        };
        // Each line is ~230 bytes: 8 per file; 80 lines is 10 files, 4 kept.
        for i in 0..80 {
            log.record(line_of(i));
        }
        let mut names: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(
            names,
            ["audit.log", "audit.log.1", "audit.log.2", "audit.log.3"]
        );
        // Oldest first: .3, .2, .1, live; the paths must be consecutive up to the last one.
        let mut paths = Vec::new();
        for n in ["audit.log.3", "audit.log.2", "audit.log.1", "audit.log"] {
            let f = dir.path().join(n);
            assert!(std::fs::metadata(&f).unwrap().len() <= rot.max_bytes);
            for v in read_lines(&f) {
                paths.push(v["path"].as_str().unwrap()[1..].parse::<usize>().unwrap());
            }
        }
        let first = paths[0];
        assert_eq!(
            paths,
            (first..80).collect::<Vec<_>>(),
            "no line lost or reordered"
        );
        assert!(
            paths.len() > 20,
            "three full old files kept: {}",
            paths.len()
        );

        // Reopening continues the live file's size: the next lines rotate again in time.
        drop(log);
        let log = AuditLog::open_rotating(p.to_str().unwrap(), rot).unwrap();
        for i in 80..100 {
            log.record(line_of(i));
        }
        for n in ["audit.log.3", "audit.log.2", "audit.log.1", "audit.log"] {
            assert!(std::fs::metadata(dir.path().join(n)).unwrap().len() <= rot.max_bytes);
        }
        assert!(!dir.path().join("audit.log.4").exists());
    }

    #[test]
    fn keep_zero_truncates_and_zero_max_never_rotates() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.log");
        let log = AuditLog::open_rotating(
            p.to_str().unwrap(),
            Rotation {
                max_bytes: 1000,
                keep: 0,
            },
        )
        .unwrap();
        for _ in 0..50 {
            log.record(AuditEvent::new("c", "e", AuditDecision::Allow));
        }
        assert!(std::fs::metadata(&p).unwrap().len() <= 1000);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);

        let q = dir.path().join("b.log");
        let log = AuditLog::open_rotating(
            q.to_str().unwrap(),
            Rotation {
                max_bytes: 0,
                keep: 2,
            },
        )
        .unwrap();
        for _ in 0..50 {
            log.record(AuditEvent::new("c", "e", AuditDecision::Allow));
        }
        assert_eq!(read_lines(&q).len(), 50);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 2);
    }

    #[test]
    fn disabled_and_stderr() {
        AuditLog::disabled().record(AuditEvent::new("c", "e", AuditDecision::Allow));
        AuditLog::open("-")
            .unwrap()
            .record(AuditEvent::new("c", "e", AuditDecision::Allow));
        assert!(AuditLog::open("/nonexistent/dir/x").is_err());
    }
}
