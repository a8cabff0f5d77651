//! The real `pipelock` binary in front of egress (`--upstream-proxy`), for the chain tests.
//! Needs `target/debug/pipelock`: run `cargo build -p pipelock` first.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::resolve_args;

pub fn pipelock_bin() -> PathBuf {
    // target/debug/deps/chain-HASH -> target/debug/pipelock
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().and_then(Path::parent).unwrap();
    let p = dir.join("pipelock");
    assert!(
        p.exists(),
        "{} is missing: build it first with `cargo build -p pipelock`",
        p.display()
    );
    p
}

pub struct Pipelock {
    pub child: Option<Child>,
    pub addr: std::net::SocketAddr,
    pub ca: PathBuf,
}

impl Drop for Pipelock {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub async fn start_pipelock(dir: &Path, cfg_dir: &Path, egress: std::net::SocketAddr) -> Pipelock {
    start_pipelock_with(dir, cfg_dir, egress, &[], &[]).await
}

pub async fn start_pipelock_with(
    dir: &Path,
    cfg_dir: &Path,
    egress: std::net::SocketAddr,
    extra: &[&str],
    env: &[(&str, &str)],
) -> Pipelock {
    let bin = pipelock_bin();
    let ca_dir = dir.join("pipelock-ca");
    let st = Command::new(&bin)
        .args(["ca", "init", "--out"])
        .arg(&ca_dir)
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(st.success(), "pipelock ca init failed");
    for attempt in 0..5 {
        let port = free_port();
        let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let log = std::fs::File::create(dir.join(format!("pipelock-{attempt}.log"))).unwrap();
        let child = Command::new(&bin)
            .arg("--listen")
            .arg(addr.to_string())
            .arg("--config-dir")
            .arg(cfg_dir)
            .arg("--ca-cert")
            .arg(ca_dir.join("ca.crt"))
            .arg("--ca-key")
            .arg(ca_dir.join("ca.key"))
            .arg("--upstream-proxy")
            .arg(format!("http://{egress}"))
            .arg("--audit-log")
            .arg(dir.join("pipelock-audit.jsonl"))
            .arg("--status-file")
            .arg(dir.join("pipelock-status.json"))
            .args(resolve_args())
            .args(extra)
            .env_clear()
            .env("RUST_LOG", "debug")
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        let mut p = Pipelock {
            child: Some(child),
            addr,
            ca: ca_dir.join("ca.crt"),
        };
        let end = Instant::now() + Duration::from_secs(30);
        while Instant::now() < end {
            if tokio::net::TcpStream::connect(addr).await.is_ok() {
                return p;
            }
            if let Some(c) = p.child.as_mut() {
                if let Ok(Some(_)) = c.try_wait() {
                    break; // port taken, or a start error: retry
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    panic!("pipelock did not start; see its logs in {}", dir.display());
}

/// A request body an agent streams.
pub type ReqBody = http_body_util::combinators::BoxBody<bytes::Bytes, std::convert::Infallible>;

/// The agent's HTTP/2 connection to `host:port` through pipelock: CONNECT, TLS with the
/// bottle CA, ALPN h2.
pub async fn agent_h2(
    pl: &Pipelock,
    host: &str,
    port: u16,
) -> hyper::client::conn::http2::SendRequest<ReqBody> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut tcp = tokio::net::TcpStream::connect(pl.addr).await.unwrap();
    tcp.write_all(
        format!("CONNECT {host}:{port} HTTP/1.1\r\nHost: {host}:{port}\r\n\r\n").as_bytes(),
    )
    .await
    .unwrap();
    let mut head = Vec::new();
    let mut b = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        assert_eq!(tcp.read(&mut b).await.unwrap(), 1);
        head.push(b[0]);
    }
    assert!(String::from_utf8_lossy(&head).contains(" 200"));
    let pem = std::fs::read(&pl.ca).unwrap();
    let mut roots = rustls::RootCertStore::empty();
    use rustls::pki_types::pem::PemObject;
    for c in rustls::pki_types::CertificateDer::pem_slice_iter(&pem) {
        roots.add(c.unwrap()).unwrap();
    }
    let mut cfg = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    cfg.alpn_protocols = vec![b"h2".to_vec()];
    let tls = tokio_rustls::TlsConnector::from(std::sync::Arc::new(cfg))
        .connect(
            rustls::pki_types::ServerName::try_from(host.to_string()).unwrap(),
            tcp,
        )
        .await
        .unwrap();
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    let (send, conn) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(tls),
    )
    .await
    .unwrap();
    tokio::spawn(conn);
    send
}
