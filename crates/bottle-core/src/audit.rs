//! The audit log: one JSON line per decision.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::Path;
use std::sync::{Arc, Mutex};

use serde_json::{Map, Value};

use crate::status::now_rfc3339;

/// One decision. The caller must pass an already-redacted `path`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AuditEvent {
    /// `pipelock`, `egress`, `git-gate`.
    pub component: String,
    /// What happened: `request`, `connect`, `push`, `reload`, ...
    pub event: String,
    /// `allow`, `deny` or `error`.
    pub decision: String,
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
        decision: impl Into<String>,
    ) -> Self {
        AuditEvent {
            component: component.into(),
            event: event.into(),
            decision: decision.into(),
            ..Default::default()
        }
    }

    /// The JSON object written for this event, with `ts`.
    pub fn to_json(&self, ts: &str) -> Map<String, Value> {
        let mut m = Map::new();
        m.insert("ts".into(), ts.into());
        m.insert("component".into(), self.component.clone().into());
        m.insert("event".into(), self.event.clone().into());
        m.insert("decision".into(), self.decision.clone().into());
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

enum Sink {
    Disabled,
    Stderr,
    File(Mutex<std::fs::File>),
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
    /// Open `path` for appending (created if missing); `-` is stderr.
    pub fn open(path: &str) -> std::io::Result<AuditLog> {
        if path == "-" {
            return Ok(AuditLog {
                sink: Arc::new(Sink::Stderr),
            });
        }
        let f = OpenOptions::new()
            .create(true)
            .append(true)
            .open(Path::new(path))?;
        Ok(AuditLog {
            sink: Arc::new(Sink::File(Mutex::new(f))),
        })
    }

    /// `open` when `Some`, otherwise a log that drops everything.
    pub fn open_optional(path: Option<&str>) -> std::io::Result<AuditLog> {
        match path {
            Some(p) => AuditLog::open(p),
            None => Ok(AuditLog::disabled()),
        }
    }

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
        let mut line = match serde_json::to_string(&Value::Object(ev.to_json(&now_rfc3339()))) {
            Ok(l) => l,
            Err(e) => {
                tracing::warn!(error = %e, "audit: cannot encode event");
                return;
            }
        };
        line.push('\n');
        // One write_all of the whole line under a lock: no interleaving.
        let res = match &*self.sink {
            Sink::Disabled => Ok(()),
            Sink::Stderr => {
                let mut e = std::io::stderr().lock();
                e.write_all(line.as_bytes()).and_then(|_| e.flush())
            }
            Sink::File(f) => match f.lock() {
                Ok(mut f) => f.write_all(line.as_bytes()).and_then(|_| f.flush()),
                Err(poisoned) => {
                    let mut f = poisoned.into_inner();
                    f.write_all(line.as_bytes()).and_then(|_| f.flush())
                }
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
        let mut ev = AuditEvent::new("pipelock", "request", "deny");
        ev.reason = Some("host not allowed".into());
        ev.host = "evil.example".into();
        ev.port = Some(443);
        ev.extra.insert("rule".into(), "x".into());
        ev.extra.insert("ts".into(), "spoofed".into());
        log.record(ev);
        log.record(AuditEvent::new("pipelock", "request", "allow"));
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

    #[test]
    fn threads_do_not_interleave() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("audit.jsonl");
        let log = AuditLog::open(p.to_str().unwrap()).unwrap();
        let big = "x".repeat(20_000);
        let handles: Vec<_> = (0..8)
            .map(|t| {
                let log = log.clone();
                let big = big.clone();
                std::thread::spawn(move || {
                    for i in 0..50 {
                        let mut ev = AuditEvent::new("c", "e", "allow");
                        ev.path = format!("/{t}/{i}/{big}");
                        log.record(ev);
                    }
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
        let text = std::fs::read_to_string(&p).unwrap();
        let mut n = 0;
        for line in text.lines() {
            let v: Value = serde_json::from_str(line).unwrap();
            assert!(v["path"].as_str().unwrap().ends_with(&big));
            n += 1;
        }
        assert_eq!(n, 400);
    }

    #[test]
    fn disabled_and_stderr() {
        AuditLog::disabled().record(AuditEvent::new("c", "e", "allow"));
        AuditLog::open("-")
            .unwrap()
            .record(AuditEvent::new("c", "e", "allow"));
        assert!(AuditLog::open("/nonexistent/dir/x").is_err());
    }
}
