//! A supervise server on a loopback port over temp dirs, and a raw HTTP/1.1 client.
#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::Arc;

use bottle_core::serve::{serve, ServeLimits, ServeOptions};
use bottle_core::AuditLog;
use supervise::state::{Settings, State};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

pub struct Server {
    pub addr: std::net::SocketAddr,
    pub dir: tempfile::TempDir,
    pub app: Arc<State>,
}

impl Server {
    pub fn state(&self) -> PathBuf {
        self.dir.path().join("state")
    }
    pub fn audit_dir(&self) -> PathBuf {
        self.dir.path().join("audit")
    }
    pub fn config_dir(&self) -> PathBuf {
        self.dir.path().join("config")
    }
    pub fn requests_dir(&self) -> PathBuf {
        self.state().join("requests")
    }
    pub fn own_audit(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("supervise-audit.log")).unwrap_or_default()
    }
    /// `(name, bytes)` of every file in the requests directory, sorted.
    pub fn request_files(&self) -> Vec<(String, Vec<u8>)> {
        let mut v: Vec<_> = std::fs::read_dir(self.requests_dir())
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                (
                    e.file_name().to_string_lossy().into_owned(),
                    std::fs::read(e.path()).unwrap(),
                )
            })
            .collect();
        v.sort();
        v
    }
}

pub async fn start(per_minute: u32, burst: u32, max_pending: usize) -> Server {
    let dir = tempfile::tempdir().unwrap();
    for d in ["state", "audit", "config"] {
        std::fs::create_dir_all(dir.path().join(d)).unwrap();
    }
    let settings = Settings {
        state_dir: dir.path().join("state"),
        audit_dir: Some(dir.path().join("audit")),
        config_dir: dir.path().join("config"),
        request_ttl_secs: 3600,
        max_pending,
        max_wait_secs: 20,
        per_minute,
        burst,
        body_timeout_secs: 3,
    };
    let audit = AuditLog::open(dir.path().join("supervise-audit.log").to_str().unwrap()).unwrap();
    let app = Arc::new(State::new(settings, audit).unwrap());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let mcp = supervise::mcp::service(app.clone(), vec!["127.0.0.1".into(), "localhost".into()]);
    let a = app.clone();
    tokio::spawn(serve(
        listener,
        ServeOptions::new("supervise", ServeLimits::default()),
        move |req| supervise::api::handle(a.clone(), mcp.clone(), req),
        std::future::pending(),
    ));
    Server { addr, dir, app }
}

pub struct Reply {
    pub status: u16,
    pub head: String,
    pub json: serde_json::Value,
}

/// One request on a fresh connection; the whole answer.
pub async fn call(addr: std::net::SocketAddr, method: &str, target: &str, body: &[u8]) -> Reply {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "{method} {target} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).await.unwrap();
    // A refused oversized body may be answered before it is all sent.
    let _ = s.write_all(body).await;
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf).await;
    let text = String::from_utf8_lossy(&buf).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    Reply {
        status,
        head: head.to_owned(),
        json: serde_json::from_str(body.trim()).unwrap_or(serde_json::Value::Null),
    }
}

pub async fn post(addr: std::net::SocketAddr, target: &str, v: serde_json::Value) -> Reply {
    call(addr, "POST", target, v.to_string().as_bytes()).await
}
