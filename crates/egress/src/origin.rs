//! egress's connections to the origins (its only next hop): SSRF-checked resolution, connect
//! and TLS handshake with timeouts, ALPN h2/http1.1, and a pooled hyper client (pool keyed on
//! scheme + authority; the SNI is the authority's host, so also on SNI). The connection type
//! and dial steps are bottle-core's `upstream`.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bottle_core::reload::Reloadable;
use bottle_core::upstream::{self as dial, DialError};
use bottle_core::{resolve_checked, split_host_port, Host, Refusal, RefusalKind, Resolver};
use http::Uri;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use crate::config::EgressConfig;

/// Timeouts for upstream work.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    pub connect: Duration,
    pub handshake: Duration,
    /// From request sent to response headers received.
    pub response: Duration,
    /// Idle pooled connections are closed after this.
    pub idle: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            connect: Duration::from_secs(10),
            handshake: Duration::from_secs(10),
            response: Duration::from_secs(120),
            idle: Duration::from_secs(90),
        }
    }
}

/// A failure to open an upstream connection, carrying the refusal to send back.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConnectError(pub Refusal, pub &'static str);

/// The connection type handed to hyper.
pub use bottle_core::upstream::UpstreamConn as Conn;

/// Connects to upstreams: resolve (SSRF-checked), TCP, TLS.
#[derive(Clone)]
pub struct Connector {
    pub cfg: Arc<Reloadable<EgressConfig>>,
    pub resolver: Arc<Resolver>,
    pub tls: TlsConnector,
    pub timeouts: Timeouts,
}

/// Open a TCP connection to the first checked address that answers (each attempt bounded
/// by `timeout`).
pub async fn connect_tcp(
    addrs: &[SocketAddr],
    what: &str,
    timeout: Duration,
) -> Result<TcpStream, ConnectError> {
    dial::connect_tcp(addrs, timeout)
        .await
        .map_err(|e| match e {
            DialError::Timeout => ConnectError(
                Refusal::of(
                    RefusalKind::UpstreamTimeout,
                    format!(
                        "connecting to {what} timed out after {}s",
                        timeout.as_secs_f32()
                    ),
                ),
                "connect_timeout",
            ),
            e => ConnectError(
                Refusal::of(
                    RefusalKind::UpstreamUnreachable,
                    format!("connecting to {what} failed: {e}"),
                ),
                "connect",
            ),
        })
}

/// Resolve with the SSRF check against the current config.
pub async fn resolve(
    cfg: &Reloadable<EgressConfig>,
    resolver: &Resolver,
    host: &Host,
    port: u16,
) -> Result<Vec<SocketAddr>, ConnectError> {
    let current = cfg.current();
    resolve_checked(resolver, &current.live, host, port)
        .await
        .map_err(|r| ConnectError(r, "resolve"))
}

impl Connector {
    async fn open(self, uri: Uri) -> Result<Conn, ConnectError> {
        let https = match uri.scheme_str() {
            Some("https") => true,
            Some("http") => false,
            _ => {
                return Err(ConnectError(
                    Refusal::of(RefusalKind::UpstreamError, "unsupported upstream scheme"),
                    "scheme",
                ))
            }
        };
        let authority = uri.authority().map(|a| a.as_str()).unwrap_or("");
        let (host, port) =
            split_host_port(authority, if https { 443 } else { 80 }).map_err(|e| {
                ConnectError(
                    Refusal::of(
                        RefusalKind::UpstreamError,
                        format!("bad upstream host: {e}"),
                    ),
                    "host",
                )
            })?;
        let what = format!("{host}:{port}");
        let addrs = resolve(&self.cfg, &self.resolver, &host, port).await?;
        let tcp = connect_tcp(&addrs, &what, self.timeouts.connect).await?;
        if !https {
            return Ok(Conn::plain(tcp));
        }
        let handshake = self.timeouts.handshake;
        let tls = dial::tls_handshake(&self.tls, &host, tcp, handshake)
            .await
            .map_err(|e| match e {
                DialError::Timeout => ConnectError(
                    Refusal::of(
                        RefusalKind::UpstreamTimeout,
                        format!(
                            "TLS handshake with {what} timed out after {}s",
                            handshake.as_secs_f32()
                        ),
                    ),
                    "tls_timeout",
                ),
                DialError::BadName(n) => ConnectError(
                    Refusal::of(
                        RefusalKind::UpstreamError,
                        format!("invalid TLS server name {n}"),
                    ),
                    "tls",
                ),
                e => ConnectError(
                    Refusal::of(
                        RefusalKind::UpstreamError,
                        format!("TLS handshake with {what} failed: {e}"),
                    ),
                    "tls",
                ),
            })?;
        Ok(Conn::tls(tls))
    }
}

impl tower_service::Service<Uri> for Connector {
    type Response = Conn;
    type Error = ConnectError;
    type Future = Pin<Box<dyn Future<Output = Result<Conn, ConnectError>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        Box::pin(self.clone().open(uri))
    }
}
