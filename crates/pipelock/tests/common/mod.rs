//! Shared helpers of pipelock's integration tests: fixtures, a raw CONNECT client, TLS, curl.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use echo_origin::{EchoOptions, EchoOrigin};
use http_body_util::{BodyExt, Empty, Full};
use hyper_util::rt::TokioIo;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

pub const T: Duration = Duration::from_secs(20);

pub trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<X: AsyncRead + AsyncWrite + Unpin + Send> Io for X {}

/// A config dir + CA + echo origin.
pub struct Env {
    pub dir: tempfile::TempDir,
    pub origin: EchoOrigin,
}

impl Env {
    pub async fn new(allowlist: &str, routes: &str) -> Env {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("cfg")).unwrap();
        std::fs::write(dir.path().join("cfg/allowlist"), allowlist).unwrap();
        std::fs::write(dir.path().join("cfg/routes.yaml"), routes).unwrap();
        pipelock::tls_intercept::ca::init_ca(&dir.path().join("ca")).unwrap();
        let mut names = echo_origin::default_names();
        for n in [
            "a.wild.test",
            "b.c.wild.test",
            "wild.test",
            "port.test",
            "other.test",
            "xn--bcher-kva.test",
            "pass.test",
            "private.test",
            "new.test",
        ] {
            names.push(n.to_string());
        }
        let origin = EchoOrigin::start(EchoOptions { names, ca: None })
            .await
            .unwrap();
        Env { dir, origin }
    }
    pub fn cfg_dir(&self) -> PathBuf {
        self.dir.path().join("cfg")
    }
    pub fn ca_cert(&self) -> PathBuf {
        self.dir.path().join("ca/ca.crt")
    }
    pub fn ca_key(&self) -> PathBuf {
        self.dir.path().join("ca/ca.key")
    }
    pub fn tls_port(&self) -> u16 {
        self.origin.https_addr.port()
    }
    pub fn http_port(&self) -> u16 {
        self.origin.http_addr.port()
    }
    /// Rewrites the allowlist atomically (temp file + rename, as editors and `bottle allow` do).
    pub fn write_allowlist(&self, text: &str) {
        let tmp = self.cfg_dir().join(".allowlist.tmp");
        std::fs::write(&tmp, text).unwrap();
        std::fs::rename(&tmp, self.cfg_dir().join("allowlist")).unwrap();
    }
    /// Base argv (without argv[0]).
    pub fn argv(&self, extra: &[&str]) -> Vec<String> {
        let mut v: Vec<String> = vec![
            "--listen".into(),
            "127.0.0.1:0".into(),
            "--config-dir".into(),
            self.cfg_dir().display().to_string(),
            "--ca-cert".into(),
            self.ca_cert().display().to_string(),
            "--ca-key".into(),
            self.ca_key().display().to_string(),
            "--upstream-ca".into(),
            self.origin.ca_path.display().to_string(),
        ];
        for n in [
            "echo.test",
            "a.wild.test",
            "b.c.wild.test",
            "wild.test",
            "port.test",
            "other.test",
            "xn--bcher-kva.test",
            "pass.test",
            "new.test",
        ] {
            v.push("--resolve".into());
            v.push(format!("{n}=127.0.0.1"));
        }
        v.push("--resolve".into());
        v.push("private.test=10.0.0.1".into());
        v.extend(extra.iter().map(|s| s.to_string()));
        v
    }
    /// Starts pipelock in-process.
    pub async fn spawn(&self, extra: &[&str]) -> pipelock::Running {
        let mut argv = vec!["pipelock".to_string()];
        argv.extend(self.argv(extra));
        let args = <pipelock::Args as clap::Parser>::try_parse_from(argv).unwrap();
        pipelock::spawn(args).await.unwrap()
    }
}

/// pipelock as a child process (signals, RSS).
pub struct Proc {
    pub child: Child,
    pub addr: SocketAddr,
}

impl Proc {
    /// Starts target/debug/pipelock with `--listen` on a free port and waits for it.
    pub fn start(env: &Env, extra: &[&str]) -> Proc {
        Self::start_with(env, extra, "warn", Stdio::inherit())
    }

    /// Like `start`, with RUST_LOG and stderr chosen by the caller.
    pub fn start_with(env: &Env, extra: &[&str], log: &str, stderr: Stdio) -> Proc {
        let port = free_port();
        let mut argv = env.argv(extra);
        argv[1] = format!("127.0.0.1:{port}");
        let child = Command::new(env!("CARGO_BIN_EXE_pipelock"))
            .args(&argv)
            .env("RUST_LOG", log)
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .unwrap();
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let deadline = Instant::now() + T;
        while std::net::TcpStream::connect(addr).is_err() {
            assert!(Instant::now() < deadline, "pipelock did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        Proc { child, addr }
    }
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
    pub fn signal(&self, sig: &str) {
        let st = Command::new("kill")
            .args([format!("-{sig}"), self.pid().to_string()])
            .status()
            .unwrap();
        assert!(st.success());
    }
    /// VmRSS in KiB.
    pub fn rss_kib(&self) -> u64 {
        let s = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap();
        s.lines()
            .find(|l| l.starts_with("VmRSS:"))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|n| n.parse().ok())
            .unwrap()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Sends a raw request head to the proxy and returns (status, head text, stream).
pub async fn raw_head(proxy: SocketAddr, head: &str) -> (u16, String, TcpStream) {
    let mut s = TcpStream::connect(proxy).await.unwrap();
    s.write_all(head.as_bytes()).await.unwrap();
    let (status, text) = read_head(&mut s).await;
    (status, text, s)
}

/// Reads a response head byte by byte (so nothing after it is consumed).
pub async fn read_head(s: &mut (impl AsyncRead + Unpin)) -> (u16, String) {
    let mut head = Vec::new();
    let mut b = [0u8; 1];
    let fut = async {
        while !head.ends_with(b"\r\n\r\n") {
            let n = s.read(&mut b).await.unwrap_or(0);
            if n == 0 {
                break;
            }
            head.push(b[0]);
        }
    };
    tokio::time::timeout(T, fut)
        .await
        .expect("response head timed out");
    let text = String::from_utf8_lossy(&head).to_string();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, text)
}

/// Reads the rest of a `Connection: close`/Content-Length body after a head (best effort).
pub async fn read_body(s: &mut TcpStream, head: &str) -> String {
    let len = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("content-length:")
                .map(|v| v.trim().to_string())
        })
        .and_then(|v| v.parse::<usize>().ok());
    let mut buf = Vec::new();
    match len {
        Some(n) => {
            buf.resize(n, 0);
            let _ = tokio::time::timeout(T, s.read_exact(&mut buf)).await;
        }
        None => {
            let _ = tokio::time::timeout(Duration::from_secs(2), s.read_to_end(&mut buf)).await;
        }
    }
    String::from_utf8_lossy(&buf).to_string()
}

/// CONNECT through the proxy; panics unless 200.
pub async fn connect(proxy: SocketAddr, authority: &str) -> TcpStream {
    let (status, head, s) = raw_head(
        proxy,
        &format!("CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n\r\n"),
    )
    .await;
    assert_eq!(status, 200, "CONNECT {authority}: {head}");
    s
}

pub fn roots_from_pem(path: &Path) -> rustls::RootCertStore {
    let pem = std::fs::read(path).unwrap();
    let mut roots = rustls::RootCertStore::empty();
    for c in rustls_pemfile::certs(&mut pem.as_slice()) {
        roots.add(c.unwrap()).unwrap();
    }
    roots
}

pub fn client_config(roots: rustls::RootCertStore, alpn: &[&[u8]]) -> Arc<rustls::ClientConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut cfg = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    cfg.alpn_protocols = alpn.iter().map(|a| a.to_vec()).collect();
    Arc::new(cfg)
}

pub async fn tls<S: Io + 'static>(
    s: S,
    sni: &str,
    cfg: Arc<rustls::ClientConfig>,
) -> std::io::Result<tokio_rustls::client::TlsStream<S>> {
    let name = ServerName::try_from(sni.to_string()).unwrap();
    tokio::time::timeout(T, tokio_rustls::TlsConnector::from(cfg).connect(name, s))
        .await
        .unwrap_or_else(|_| Err(std::io::Error::other("TLS timeout")))
}

/// CONNECT through `proxy` to `authority`, TLS inside the tunnel (SNI `sni`, trusting only
/// `ca`, ALPN http/1.1), and an HTTP/1.1 connection on it: returns its request sender.
pub async fn tunnel_h1<B>(
    proxy: SocketAddr,
    authority: &str,
    sni: &str,
    ca: &Path,
) -> hyper::client::conn::http1::SendRequest<B>
where
    B: hyper::body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let s = connect(proxy, authority).await;
    let t = tls(s, sni, client_config(roots_from_pem(ca), &[b"http/1.1"]))
        .await
        .unwrap();
    let (send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(t))
        .await
        .unwrap();
    tokio::spawn(conn);
    send
}

/// The same with ALPN h2 and an HTTP/2 connection (its driver spawned).
pub async fn tunnel_h2<B>(
    proxy: SocketAddr,
    authority: &str,
    sni: &str,
    ca: &Path,
) -> hyper::client::conn::http2::SendRequest<B>
where
    B: hyper::body::Body + Unpin + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let s = connect(proxy, authority).await;
    let t = tls(s, sni, client_config(roots_from_pem(ca), &[b"h2"]))
        .await
        .unwrap();
    let (send, conn) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        TokioIo::new(t),
    )
    .await
    .unwrap();
    tokio::spawn(conn);
    send
}

/// The leaf certificate a TLS stream got.
pub fn peer_leaf<S>(s: &tokio_rustls::client::TlsStream<S>) -> CertificateDer<'static> {
    s.get_ref().1.peer_certificates().unwrap()[0]
        .clone()
        .into_owned()
}

pub struct Resp {
    pub status: u16,
    pub headers: http::HeaderMap,
    pub body: Bytes,
}

impl Resp {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).to_string()
    }
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }
}

/// One HTTP/1.1 request over an established stream.
pub async fn h1<S: Io + 'static>(s: S, req: http::Request<Full<Bytes>>) -> Resp {
    let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(s))
        .await
        .unwrap();
    tokio::spawn(conn);
    let resp = tokio::time::timeout(T, send.send_request(req))
        .await
        .unwrap()
        .unwrap();
    let (p, b) = resp.into_parts();
    let body = tokio::time::timeout(T, b.collect())
        .await
        .unwrap()
        .unwrap()
        .to_bytes();
    Resp {
        status: p.status.as_u16(),
        headers: p.headers,
        body,
    }
}

/// HTTPS GET `path` to `authority` through the proxy, trusting `roots`.
pub async fn https_get(
    proxy: SocketAddr,
    authority: &str,
    path: &str,
    roots: rustls::RootCertStore,
) -> Resp {
    let s = connect(proxy, authority).await;
    let host = authority
        .rsplit_once(':')
        .map(|(h, _)| h)
        .unwrap_or(authority);
    let t = tls(s, host, client_config(roots, &[b"http/1.1"]))
        .await
        .unwrap();
    let req = http::Request::get(path)
        .header("host", authority)
        .body(Full::new(Bytes::new()))
        .unwrap();
    h1(t, req).await
}

/// Plain HTTP absolute-form GET through the proxy.
pub async fn http_get(proxy: SocketAddr, url: &str) -> Resp {
    let s = TcpStream::connect(proxy).await.unwrap();
    let uri: http::Uri = url.parse().unwrap();
    let req = http::Request::get(url)
        .header("host", uri.authority().unwrap().as_str())
        .body(Full::new(Bytes::new()))
        .unwrap();
    h1(s, req).await
}

pub fn empty() -> Empty<Bytes> {
    Empty::new()
}

/// `curl -sS -x PROXY --cacert CA URL`: (http status, stdout body, stderr).
pub fn curl(proxy: SocketAddr, cacert: &Path, url: &str, extra: &[&str]) -> (u16, String, String) {
    let out = Command::new("curl")
        .args([
            "-sS",
            "--max-time",
            "20",
            "-x",
            &format!("http://{proxy}"),
            "--cacert",
        ])
        .arg(cacert)
        .args(["-w", "\n%{http_code}"])
        .args(extra)
        .arg(url)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let (body, code) = stdout.rsplit_once('\n').unwrap_or(("", stdout.as_str()));
    (
        code.trim().parse().unwrap_or(0),
        body.to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

/// Polls `f` until true or the timeout.
pub async fn eventually(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if f() {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
