//! Shared fixtures for egress's integration tests: an echo origin with one
//! hostname per scenario, the real `egress` binary with its logs, audit and
//! status files in a temp dir, a raw absolute-form HTTP client, and the canary
//! grep run over every file a test produced.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

pub mod pipelock;
#[allow(unused_imports)]
pub use pipelock::*;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use echo_origin::{EchoOptions, EchoOrigin};
use http::{HeaderMap, Method, Request, Response};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

pub const EGRESS: &str = env!("CARGO_BIN_EXE_egress");
pub const REDACTED: &str = "[REDACTED by egress]";

/// Hostnames the origin's leaf covers; tests map them to 127.0.0.1 with --resolve.
pub const NAMES: &[&str] = &[
    "bearer.test",
    "basic.test",
    "header.test",
    "query.test",
    "open.test",
    "paths.test",
    "pass.test",
    "cookie.test",
    "evil.test",
    "late.test",
    "plain.test",
    "dodge.test",
];

/// One secret per scheme, all sharing a per-run canary prefix.
#[derive(Clone, Debug)]
pub struct Secrets {
    pub prefix: String,
    pub bearer: String,
    pub basic: String,
    pub header: String,
    pub query: String,
    pub cookie: String,
}

impl Secrets {
    pub fn new() -> Secrets {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        // odd characters on purpose: they make the percent-encoded forms differ
        let prefix = format!("cnry{:x}{:x}", std::process::id(), nanos % 0xffff_ffff);
        Secrets {
            bearer: format!("{prefix}-bearer/Tok+en=="),
            basic: format!("{prefix}-basic_pw~x"),
            header: format!("{prefix}-header.key"),
            query: format!("{prefix}-query&x=y/z%"),
            cookie: format!("{prefix}-cookie"),
            prefix,
        }
    }

    pub fn env(&self) -> Vec<(String, String)> {
        vec![
            ("TOK_BEARER".into(), self.bearer.clone()),
            ("TOK_BASIC".into(), self.basic.clone()),
            ("TOK_HEADER".into(), self.header.clone()),
            ("TOK_QUERY".into(), self.query.clone()),
            ("TOK_COOKIE".into(), self.cookie.clone()),
        ]
    }

    pub fn all(&self) -> Vec<String> {
        vec![
            self.bearer.clone(),
            self.basic.clone(),
            self.header.clone(),
            self.query.clone(),
            self.cookie.clone(),
        ]
    }
}

/// routes.yaml used by most tests (route indices are stable: 0..=7).
pub fn routes_yaml() -> String {
    r#"routes:
  - host: "bearer.test:*"
    auth: {scheme: bearer, token_env: TOK_BEARER}
  - host: "basic.test:*"
    auth: {scheme: basic, username: x-access-token, token_env: TOK_BASIC}
  - host: "header.test:*"
    auth: {scheme: header, header: X-Api-Key, prefix: "key ", token_env: TOK_HEADER}
  - host: "query.test:*"
    auth: {scheme: query, param: api_key, token_env: TOK_QUERY}
  - host: "paths.test:*"
    paths: ["/allowed/**", "/reflect"]
    methods: [GET, HEAD]
  - host: "pass.test:*"
    tls_passthrough: true
  - host: "cookie.test:*"
    auth: {scheme: bearer, token_env: TOK_COOKIE, strip_cookies: true}
"#
    .to_string()
}

pub const ALLOWLIST: &str = "open.test:*\n127.0.0.1/32\n";

pub async fn origin() -> EchoOrigin {
    let mut names: Vec<String> = NAMES.iter().map(|s| s.to_string()).collect();
    names.extend(echo_origin::default_names());
    EchoOrigin::start(EchoOptions { names, ca: None })
        .await
        .expect("echo origin")
}

/// A running `egress` binary and the files it writes.
pub struct Egress {
    pub child: Option<Child>,
    pub addr: SocketAddr,
    pub admin: SocketAddr,
    pub dir: PathBuf,
    pub cfg_dir: PathBuf,
    pub audit: PathBuf,
    pub status: PathBuf,
    pub log: PathBuf,
}

pub fn write_config(cfg_dir: &Path, routes: &str, allowlist: &str) {
    std::fs::create_dir_all(cfg_dir).unwrap();
    // save-by-rename, like the launcher
    let tmp = cfg_dir.join(".routes.tmp");
    std::fs::write(&tmp, routes).unwrap();
    std::fs::rename(&tmp, cfg_dir.join("routes.yaml")).unwrap();
    let tmp = cfg_dir.join(".allow.tmp");
    std::fs::write(&tmp, allowlist).unwrap();
    std::fs::rename(&tmp, cfg_dir.join("allowlist")).unwrap();
}

pub fn resolve_args() -> Vec<String> {
    NAMES
        .iter()
        .flat_map(|n| ["--resolve".to_string(), format!("{n}=127.0.0.1")])
        .collect()
}

/// Start the binary; Err(stderr text, exit status) if it exits instead of listening.
pub fn start_egress(
    dir: &Path,
    env: &[(String, String)],
    upstream_ca: Option<&Path>,
    extra: &[&str],
) -> Result<Egress, (String, Option<ExitStatus>)> {
    let cfg_dir = dir.join("live-config");
    let audit = dir.join("audit.jsonl");
    let status = dir.join("status.json");
    let log = dir.join(format!(
        "egress-{}.log",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    ));
    let mut cmd = Command::new(EGRESS);
    cmd.arg("--listen")
        .arg("127.0.0.1:0")
        .arg("--admin-listen")
        .arg("127.0.0.1:0")
        .arg("--config-dir")
        .arg(&cfg_dir)
        .arg("--audit-log")
        .arg(&audit)
        .arg("--status-file")
        .arg(&status)
        .args(resolve_args())
        .args(extra);
    if let Some(ca) = upstream_ca {
        cmd.arg("--upstream-ca").arg(ca);
    }
    cmd.env_clear()
        .env("RUST_LOG", "debug")
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&log).unwrap());
    let mut child = cmd.spawn().expect("spawn egress");
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = BufReader::new(stdout).read_line(&mut line);
        let _ = tx.send(line);
    });
    let line = rx.recv_timeout(Duration::from_secs(60)).unwrap_or_default();
    if !line.starts_with("listening=") {
        let st = wait_timeout(&mut child, Duration::from_secs(20));
        let err = std::fs::read_to_string(&log).unwrap_or_default();
        return Err((err, st));
    }
    let mut addr = None;
    let mut admin = None;
    for part in line.split_whitespace() {
        if let Some(a) = part.strip_prefix("listening=") {
            addr = a.parse().ok();
        }
        if let Some(a) = part.strip_prefix("admin=") {
            admin = a.parse().ok();
        }
    }
    Ok(Egress {
        child: Some(child),
        addr: addr.unwrap(),
        admin: admin.unwrap(),
        dir: dir.to_path_buf(),
        cfg_dir,
        audit,
        status,
        log,
    })
}

pub fn wait_timeout(child: &mut Child, t: Duration) -> Option<ExitStatus> {
    let end = Instant::now() + t;
    while Instant::now() < end {
        if let Ok(Some(st)) = child.try_wait() {
            return Some(st);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    child.wait().ok()
}

pub fn signal(pid: u32, sig: &str) {
    let st = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .status()
        .expect("kill");
    assert!(st.success());
}

impl Egress {
    pub fn pid(&self) -> u32 {
        self.child.as_ref().unwrap().id()
    }

    pub fn sighup(&self) {
        signal(self.pid(), "HUP");
    }

    /// SIGTERM and wait for the exit status.
    pub fn stop(&mut self) -> Option<ExitStatus> {
        let mut child = self.child.take()?;
        signal(child.id(), "TERM");
        wait_timeout(&mut child, Duration::from_secs(20))
    }

    pub fn status_json(&self) -> serde_json::Value {
        let s = std::fs::read_to_string(&self.status).unwrap_or_default();
        serde_json::from_str(&s).unwrap_or(serde_json::Value::Null)
    }

    /// Wait until the status file satisfies `f`.
    pub async fn wait_status(&self, f: impl Fn(&serde_json::Value) -> bool) -> serde_json::Value {
        let end = Instant::now() + Duration::from_secs(20);
        loop {
            let v = self.status_json();
            if f(&v) {
                return v;
            }
            assert!(Instant::now() < end, "status file never matched: {v}");
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    pub fn audit_lines(&self) -> Vec<serde_json::Value> {
        std::fs::read_to_string(&self.audit)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    /// Wait for an audit line satisfying `f`.
    pub async fn wait_audit(&self, f: impl Fn(&serde_json::Value) -> bool) -> serde_json::Value {
        let end = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(v) = self.audit_lines().into_iter().find(|v| f(v)) {
                return v;
            }
            assert!(
                Instant::now() < end,
                "no matching audit line in {:?}",
                self.audit_lines()
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    pub async fn metrics(&self) -> String {
        let r = send(
            self.admin,
            Request::get("/metrics")
                .header("host", "admin")
                .body(Full::new(Bytes::new()))
                .unwrap(),
        )
        .await;
        String::from_utf8(collect(r).await.2).unwrap()
    }
}

impl Drop for Egress {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Send one request on a fresh connection (absolute-form if the URI is absolute).
pub async fn send(addr: SocketAddr, req: Request<Full<Bytes>>) -> Response<Incoming> {
    let tcp = TcpStream::connect(addr).await.expect("connect");
    let (mut s, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
        .await
        .expect("handshake");
    tokio::spawn(conn.with_upgrades());
    s.send_request(req).await.expect("send")
}

/// A WebSocket handshake request for `uri` (more headers and the body are the caller's).
pub fn websocket_request(uri: &str) -> http::request::Builder {
    Request::get(uri)
        .header("connection", "Upgrade")
        .header("upgrade", "websocket")
        .header("sec-websocket-version", "13")
        .header("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==")
}

/// The client end of the WebSocket that the `101` answer `r` opened.
pub async fn websocket_client(
    r: Response<Incoming>,
) -> tokio_tungstenite::WebSocketStream<TokioIo<hyper::upgrade::Upgraded>> {
    let up = hyper::upgrade::on(r).await.expect("upgrade");
    tokio_tungstenite::WebSocketStream::from_raw_socket(
        TokioIo::new(up),
        tokio_tungstenite::tungstenite::protocol::Role::Client,
        None,
    )
    .await
}

pub async fn collect(r: Response<Incoming>) -> (http::StatusCode, HeaderMap, Vec<u8>) {
    let (parts, body) = r.into_parts();
    let b = body.collect().await.expect("body").to_bytes().to_vec();
    (parts.status, parts.headers, b)
}

/// GET `uri` through egress with extra headers; collects the response.
pub async fn get(
    addr: SocketAddr,
    method: Method,
    uri: &str,
    headers: &[(&str, &str)],
) -> (http::StatusCode, HeaderMap, Vec<u8>) {
    let mut b = Request::builder().method(method).uri(uri);
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    let r = send(addr, b.body(Full::new(Bytes::new())).unwrap()).await;
    collect(r).await
}

/// Every form of every secret that must never be written anywhere.
pub fn forbidden_forms(secrets: &[String]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for s in secrets {
        for f in egress::scrub::forms(s.as_bytes()) {
            if f.len() >= 8 {
                out.push(f.to_vec());
            }
        }
    }
    out
}

/// Assert that no file under `dir` contains a secret in any form.
pub fn assert_no_secret_in_files(dir: &Path, secrets: &[String]) {
    let forms = forbidden_forms(secrets);
    let mut files = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                files.push(p);
            }
        }
    }
    assert!(!files.is_empty());
    for f in &files {
        let data = std::fs::read(f).unwrap();
        for form in &forms {
            assert!(
                !data.windows(form.len()).any(|w| w == form.as_slice()),
                "a secret form was written to {}",
                f.display()
            );
        }
    }
}

/// Assert the bytes hold no form of any secret (responses the agent sees).
pub fn assert_clean(what: &str, data: &[u8], secrets: &[String]) {
    for form in forbidden_forms(secrets) {
        assert!(
            !data.windows(form.len()).any(|w| w == form.as_slice()),
            "{what} leaks a secret form: {}",
            String::from_utf8_lossy(data)
        );
    }
}

pub fn headers_text(h: &HeaderMap) -> Vec<u8> {
    let mut v = Vec::new();
    for (k, val) in h {
        v.extend_from_slice(k.as_str().as_bytes());
        v.extend_from_slice(b": ");
        v.extend_from_slice(val.as_bytes());
        v.push(b'\n');
    }
    v
}

/// Standard fixture: origin + config + egress.
pub struct Fixture {
    pub tmp: tempfile::TempDir,
    pub origin: EchoOrigin,
    pub eg: Egress,
    pub secrets: Secrets,
}

impl Fixture {
    pub async fn new() -> Fixture {
        Fixture::with(&routes_yaml(), ALLOWLIST, &[]).await
    }

    pub async fn with(routes: &str, allow: &str, extra: &[&str]) -> Fixture {
        let tmp = tempfile::tempdir().unwrap();
        let origin = origin().await;
        let secrets = Secrets::new();
        write_config(&tmp.path().join("live-config"), routes, allow);
        let eg = start_egress(tmp.path(), &secrets.env(), Some(&origin.ca_path), extra)
            .unwrap_or_else(|(e, st)| panic!("egress did not start ({st:?}): {e}"));
        Fixture {
            tmp,
            origin,
            eg,
            secrets,
        }
    }

    /// Egress that serves only requests carrying the pipelock key (`--client-key-env
    /// key_var`); returns the fixture and the key.
    pub async fn with_client_key(key_var: &str) -> (Fixture, String) {
        let tmp = tempfile::tempdir().unwrap();
        let origin = origin().await;
        let secrets = Secrets::new();
        let key = format!("{}-pipelock-key-0123456789abcdef", secrets.prefix);
        write_config(&tmp.path().join("live-config"), &routes_yaml(), ALLOWLIST);
        let mut env = secrets.env();
        env.push((key_var.into(), key.clone()));
        let eg = start_egress(
            tmp.path(),
            &env,
            Some(&origin.ca_path),
            &["--client-key-env", key_var],
        )
        .unwrap_or_else(|(e, st)| panic!("egress did not start ({st:?}): {e}"));
        let fx = Fixture {
            tmp,
            origin,
            eg,
            secrets,
        };
        (fx, key)
    }

    /// A pipelock in front of this egress that sends `key` (`--upstream-proxy-key-env`).
    pub async fn keyed_pipelock(&self, key: &str) -> Pipelock {
        let dir = self.tmp.path().join("keyed");
        std::fs::create_dir_all(&dir).unwrap();
        start_pipelock_with(
            &dir,
            &self.eg.cfg_dir,
            self.eg.addr,
            &["--upstream-proxy-key-env", "PL_KEY"],
            &[("PL_KEY", key)],
        )
        .await
    }

    pub fn url(&self, host: &str, path: &str) -> String {
        format!("https://{host}:{}{path}", self.origin.https_addr.port())
    }

    /// GET `https://host:<origin port>path` through egress with the agent's `headers`.
    pub async fn get(
        &self,
        host: &str,
        path: &str,
        headers: &[(&str, &str)],
    ) -> (http::StatusCode, HeaderMap, Vec<u8>) {
        get(self.eg.addr, Method::GET, &self.url(host, path), headers).await
    }

    pub fn http_url(&self, host: &str, path: &str) -> String {
        format!("http://{host}:{}{path}", self.origin.http_addr.port())
    }

    /// Stop egress and grep every file the test produced for every secret form.
    pub fn finish(mut self) {
        let st = self.eg.stop();
        assert!(st.is_some_and(|s| s.success()), "egress exit: {st:?}");
        assert_no_secret_in_files(self.tmp.path(), &self.secrets.all());
    }
}

/// Bound every test in time.
pub async fn bounded<F: std::future::Future<Output = ()>>(f: F) {
    tokio::time::timeout(Duration::from_secs(120), f)
        .await
        .expect("test timed out");
}
