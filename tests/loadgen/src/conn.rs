//! Connections: TCP (direct or to the proxy), `CONNECT host:port`, TLS (SNI = host, ALPN
//! http/1.1), and an HTTP/1.1 client handshake on top. Shared by every mode.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use http::Uri;
use http_body_util::BodyExt;
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use rustls_pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::task::JoinHandle;

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("{0}")]
    Msg(String),
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
    #[error("http: {0}")]
    Hyper(#[from] hyper::Error),
    #[error("timeout ({0})")]
    Timeout(&'static str),
    #[error("too many open files: run `ulimit -n 4096` (or more) before loadgen --hold")]
    TooManyFiles,
}

/// Linux errno values for "too many open files" (per process / system-wide). std has no
/// `ErrorKind` for them and the workspace has no `libc` dependency.
const EMFILE: i32 = 24;
const ENFILE: i32 = 23;

/// An I/O error, with "too many open files" turned into its own variant.
pub fn io_error(e: std::io::Error) -> LoadError {
    match e.raw_os_error() {
        Some(EMFILE) | Some(ENFILE) => LoadError::TooManyFiles,
        _ => LoadError::Io(e),
    }
}

/// `fut`, or `LoadError::Timeout(what)` after `limit`.
pub async fn within<T>(
    limit: Duration,
    what: &'static str,
    fut: impl std::future::Future<Output = Result<T, LoadError>>,
) -> Result<T, LoadError> {
    tokio::time::timeout(limit, fut)
        .await
        .map_err(|_| LoadError::Timeout(what))?
}

pub trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// Where one request goes: scheme, host, port and the full URL.
#[derive(Debug, Clone)]
pub struct Endpoint {
    pub https: bool,
    /// As written in the URL (an IPv6 literal keeps its brackets).
    pub host: String,
    pub port: u16,
    pub uri: Uri,
}

impl Endpoint {
    pub fn parse(url: &str) -> Result<Self, String> {
        let uri: Uri = url.parse().map_err(|e| format!("{e}"))?;
        let https = match uri.scheme_str() {
            Some("https") => true,
            Some("http") => false,
            _ => return Err("must be http:// or https://".into()),
        };
        let host = uri.host().ok_or("has no host")?.to_string();
        let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
        Ok(Endpoint {
            https,
            host,
            port,
            uri,
        })
    }

    /// `host:port`, for CONNECT and the Host header.
    pub fn authority(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }

    /// Request target: absolute-form for plain HTTP through a proxy, else origin-form.
    pub fn request_uri(&self, via_proxy: bool) -> Uri {
        if via_proxy && !self.https {
            return self.uri.clone();
        }
        self.uri
            .path_and_query()
            .map(|p| p.as_str())
            .unwrap_or("/")
            .parse()
            .unwrap_or_default()
    }

    /// A GET of this URL (Host = `host:port`).
    pub fn get(
        &self,
        via_proxy: bool,
    ) -> Result<http::Request<http_body_util::Empty<bytes::Bytes>>, LoadError> {
        http::Request::get(self.request_uri(via_proxy))
            .header("host", self.authority())
            .body(http_body_util::Empty::new())
            .map_err(|e| LoadError::Msg(e.to_string()))
    }
}

/// `--proxy http://HOST:PORT` -> `HOST:PORT`.
pub fn parse_proxy(p: &str) -> Result<String, LoadError> {
    let pu: Uri = p
        .parse()
        .map_err(|e| LoadError::Msg(format!("--proxy: {e}")))?;
    pu.authority()
        .map(|a| a.as_str().to_string())
        .ok_or_else(|| LoadError::Msg("--proxy has no host".into()))
}

pub fn tls_config(cacert: Option<&PathBuf>) -> Result<Arc<rustls::ClientConfig>, LoadError> {
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

/// Opens connections to endpoints, through `proxy` (`HOST:PORT`) when set.
pub struct Dialer {
    pub proxy: Option<String>,
    pub tls: Arc<rustls::ClientConfig>,
}

impl Dialer {
    /// TCP, then CONNECT (https through a proxy), then TLS (https).
    pub async fn connect(&self, ep: &Endpoint) -> Result<Box<dyn Io>, LoadError> {
        let authority = ep.authority();
        let tcp = match &self.proxy {
            Some(p) => TcpStream::connect(p).await,
            None => TcpStream::connect(&authority).await,
        };
        let mut tcp = tcp.map_err(io_error)?;
        tcp.set_nodelay(true)?;
        if !ep.https {
            return Ok(Box::new(tcp));
        }
        if self.proxy.is_some() {
            connect_tunnel(&mut tcp, &authority).await?;
        }
        let sni = ep.host.trim_start_matches('[').trim_end_matches(']');
        let name =
            ServerName::try_from(sni.to_string()).map_err(|e| LoadError::Msg(e.to_string()))?;
        let tls = tokio_rustls::TlsConnector::from(self.tls.clone())
            .connect(name, tcp)
            .await?;
        Ok(Box::new(tls))
    }

    /// `connect`, then an HTTP/1.1 client handshake; the connection is driven by a task
    /// (it ends when the peer closes or every `SendRequest` is gone).
    pub async fn http1<B>(
        &self,
        ep: &Endpoint,
    ) -> Result<(SendRequest<B>, JoinHandle<()>), LoadError>
    where
        B: hyper::body::Body + Send + 'static,
        B::Data: Send,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let io = self.connect(ep).await?;
        let (send, conn) = hyper::client::conn::http1::handshake::<_, B>(TokioIo::new(io)).await?;
        let task = tokio::spawn(async move {
            let _ = conn.await;
        });
        Ok((send, task))
    }
}

/// Sends `CONNECT authority` and reads the answer byte by byte, never past the end of its
/// header (what follows belongs to the tunnel).
async fn connect_tunnel(tcp: &mut TcpStream, authority: &str) -> Result<(), LoadError> {
    tcp.write_all(format!("CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n\r\n").as_bytes())
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
    Ok(())
}

/// Sends `req` and reads the whole response body. Returns the status and the body length.
pub async fn fetch<B>(
    send: &mut SendRequest<B>,
    req: http::Request<B>,
) -> Result<(http::StatusCode, u64), LoadError>
where
    B: hyper::body::Body + 'static,
{
    let resp = send.send_request(req).await?;
    let status = resp.status();
    let mut body = resp.into_body();
    let mut n = 0u64;
    while let Some(f) = body.frame().await {
        if let Some(d) = f?.data_ref() {
            n += d.len() as u64;
        }
    }
    Ok((status, n))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoint_forms() {
        let ep = Endpoint::parse("https://a.test/x?y=1").unwrap();
        assert!(ep.https);
        assert_eq!(ep.authority(), "a.test:443");
        assert_eq!(ep.request_uri(true), "/x?y=1");
        let ep = Endpoint::parse("http://a.test:8080").unwrap();
        assert_eq!(ep.authority(), "a.test:8080");
        assert_eq!(ep.request_uri(false), "/");
        assert_eq!(ep.request_uri(true), "http://a.test:8080/");
        assert!(Endpoint::parse("ftp://a.test/").is_err());
        assert!(Endpoint::parse("/just/a/path").is_err());
    }

    #[test]
    fn emfile_is_named() {
        let e = io_error(std::io::Error::from_raw_os_error(EMFILE));
        assert!(matches!(e, LoadError::TooManyFiles));
        assert!(e.to_string().contains("ulimit -n"));
        let e = io_error(std::io::Error::from_raw_os_error(111));
        assert!(matches!(e, LoadError::Io(_)));
    }
}
