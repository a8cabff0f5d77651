#![forbid(unsafe_code)]
//! loadgen: HTTPS (or HTTP) keep-alive GETs, optionally through a CONNECT proxy.
//!
//! `loadgen --url https://host:port/path [--proxy http://ADDR] [--cacert PEM] -c 8 -d 5 [--download]`
//! prints requests/s, p50/p99 latency and MB/s.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use http::{Request, Uri};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use rustls_pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

#[derive(Parser, Debug)]
#[command(name = "loadgen", about = "HTTP(S) keep-alive load generator")]
struct Args {
    /// Target URL (http:// or https://).
    #[arg(long)]
    url: String,
    /// Forward proxy (http://HOST:PORT): CONNECT for https, absolute-form for http.
    #[arg(long)]
    proxy: Option<String>,
    /// Extra trust anchor(s) for the target's TLS (PEM). Without it: web roots.
    #[arg(long)]
    cacert: Option<PathBuf>,
    /// Concurrent connections.
    #[arg(short = 'c', long, default_value_t = 8)]
    concurrency: usize,
    /// Duration in seconds.
    #[arg(short = 'd', long, default_value_t = 5)]
    duration: u64,
    /// Report download throughput (read whole bodies; use a large-body URL).
    #[arg(long)]
    download: bool,
    /// POST a body of this many bytes of ordinary text with each request (MB/s then counts
    /// uploaded bytes). Use with an upload endpoint (echo-origin `/upload`).
    #[arg(long, default_value_t = 0)]
    upload: usize,
}

#[derive(Debug, thiserror::Error)]
enum LoadError {
    #[error("{0}")]
    Msg(String),
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
    #[error("http: {0}")]
    Hyper(#[from] hyper::Error),
}

trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

struct Target {
    https: bool,
    host: String,
    port: u16,
    uri: Uri,
    proxy: Option<String>,
    tls: Arc<rustls::ClientConfig>,
    upload: bytes::Bytes,
}

fn tls_config(cacert: Option<&PathBuf>) -> Result<Arc<rustls::ClientConfig>, LoadError> {
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    if let Some(p) = cacert {
        let pem = std::fs::read(p)?;
        for c in rustls_pemfile::certs(&mut pem.as_slice()) {
            roots
                .add(c?)
                .map_err(|e| LoadError::Msg(format!("cacert: {e}")))?;
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut cfg = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| LoadError::Msg(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(cfg))
}

async fn connect(t: &Target) -> Result<Box<dyn Io>, LoadError> {
    let authority = format!("{}:{}", t.host, t.port);
    let tcp = match &t.proxy {
        Some(p) => TcpStream::connect(p).await?,
        None => TcpStream::connect(&authority).await?,
    };
    tcp.set_nodelay(true)?;
    if !t.https {
        return Ok(Box::new(tcp));
    }
    let mut tcp = tcp;
    if t.proxy.is_some() {
        tcp.write_all(
            format!("CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n\r\n").as_bytes(),
        )
        .await?;
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            if tcp.read(&mut byte).await? == 0 || head.len() > 16384 {
                return Err(LoadError::Msg("proxy closed during CONNECT".into()));
            }
            head.push(byte[0]);
        }
        let line = String::from_utf8_lossy(&head);
        if !line.starts_with("HTTP/1.1 200") && !line.starts_with("HTTP/1.0 200") {
            return Err(LoadError::Msg(format!(
                "CONNECT refused: {}",
                line.lines().next().unwrap_or("")
            )));
        }
    }
    let name = ServerName::try_from(t.host.clone()).map_err(|e| LoadError::Msg(e.to_string()))?;
    let tls = tokio_rustls::TlsConnector::from(t.tls.clone())
        .connect(name, tcp)
        .await?;
    Ok(Box::new(tls))
}

async fn worker(t: Arc<Target>, deadline: Instant) -> (Vec<u32>, u64, u64) {
    let mut lat = Vec::new();
    let mut bytes = 0u64;
    let mut errors = 0u64;
    while Instant::now() < deadline {
        let io = match connect(&t).await {
            Ok(io) => io,
            Err(e) => {
                errors += 1;
                if errors < 3 {
                    eprintln!("loadgen: connect: {e}");
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Ok((mut send, conn)) =
            hyper::client::conn::http1::handshake::<_, Full<bytes::Bytes>>(TokioIo::new(io)).await
        else {
            errors += 1;
            continue;
        };
        tokio::spawn(conn);
        while Instant::now() < deadline {
            let uri = if t.proxy.is_some() && !t.https {
                t.uri.clone()
            } else {
                t.uri
                    .path_and_query()
                    .map(|p| p.as_str())
                    .unwrap_or("/")
                    .parse()
                    .unwrap_or_default()
            };
            let host = format!("{}:{}", t.host, t.port);
            let method = if t.upload.is_empty() {
                http::Method::GET
            } else {
                http::Method::POST
            };
            let Ok(req) = Request::builder()
                .method(method)
                .uri(uri)
                .header("host", host)
                .body(Full::new(t.upload.clone()))
            else {
                break;
            };
            let start = Instant::now();
            let ok = async {
                let resp = send.send_request(req).await?;
                let status = resp.status();
                let mut body = resp.into_body();
                let mut n = 0u64;
                while let Some(f) = body.frame().await {
                    if let Some(d) = f?.data_ref() {
                        n += d.len() as u64;
                    }
                }
                Ok::<_, LoadError>((status, n))
            }
            .await;
            match ok {
                Ok((s, n)) if s.is_success() => {
                    lat.push(start.elapsed().as_micros().min(u32::MAX as u128) as u32);
                    bytes += if t.upload.is_empty() {
                        n
                    } else {
                        t.upload.len() as u64
                    };
                }
                Ok((s, _)) => {
                    errors += 1;
                    if errors < 3 {
                        eprintln!("loadgen: status {s}");
                    }
                }
                Err(e) => {
                    errors += 1;
                    if errors < 3 {
                        eprintln!("loadgen: {e}");
                    }
                    break;
                }
            }
        }
    }
    (lat, bytes, errors)
}

fn percentile(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx.min(sorted.len() - 1)] as f64 / 1000.0
}

async fn main_async(args: Args) -> Result<(), LoadError> {
    let uri: Uri = args
        .url
        .parse()
        .map_err(|e| LoadError::Msg(format!("--url: {e}")))?;
    let https = match uri.scheme_str() {
        Some("https") => true,
        Some("http") => false,
        _ => return Err(LoadError::Msg("--url must be http:// or https://".into())),
    };
    let host = uri
        .host()
        .ok_or_else(|| LoadError::Msg("--url has no host".into()))?
        .to_string();
    let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
    let proxy = match &args.proxy {
        Some(p) => {
            let pu: Uri = p
                .parse()
                .map_err(|e| LoadError::Msg(format!("--proxy: {e}")))?;
            Some(
                pu.authority()
                    .map(|a| a.as_str().to_string())
                    .ok_or_else(|| LoadError::Msg("--proxy has no host".into()))?,
            )
        }
        None => None,
    };
    let line = b"the quick brown fox jumps over the lazy dog 0123456789\n";
    let upload = bytes::Bytes::from(
        line.iter()
            .cycle()
            .take(args.upload)
            .copied()
            .collect::<Vec<u8>>(),
    );
    let t = Arc::new(Target {
        https,
        host,
        port,
        uri,
        proxy,
        tls: tls_config(args.cacert.as_ref())?,
        upload,
    });
    let started = Instant::now();
    let deadline = started + Duration::from_secs(args.duration.max(1));
    let mut tasks = Vec::new();
    for _ in 0..args.concurrency.max(1) {
        tasks.push(tokio::spawn(worker(t.clone(), deadline)));
    }
    let mut lat = Vec::new();
    let (mut bytes, mut errors) = (0u64, 0u64);
    for task in tasks {
        let (l, b, e) = task.await.map_err(|e| LoadError::Msg(e.to_string()))?;
        lat.extend(l);
        bytes += b;
        errors += e;
    }
    let secs = started.elapsed().as_secs_f64();
    lat.sort_unstable();
    println!(
        "requests={} errors={} secs={:.2} rps={:.0} p50_ms={:.2} p99_ms={:.2} mb_per_s={:.1}{}",
        lat.len(),
        errors,
        secs,
        lat.len() as f64 / secs,
        percentile(&lat, 0.50),
        percentile(&lat, 0.99),
        bytes as f64 / secs / 1_000_000.0,
        if args.upload > 0 {
            " (upload)"
        } else if args.download {
            " (download)"
        } else {
            ""
        }
    );
    if lat.is_empty() {
        return Err(LoadError::Msg("no request succeeded".into()));
    }
    Ok(())
}

fn main() -> ExitCode {
    let args = Args::parse();
    let rt = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("loadgen: {e}");
            return ExitCode::from(1);
        }
    };
    match rt.block_on(main_async(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("loadgen: {e}");
            ExitCode::from(1)
        }
    }
}
