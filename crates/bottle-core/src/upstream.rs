//! The next-hop layer both proxies share (egress's `origin` dials origins, pipelock's
//! `next_hop` dials egress or an origin). The connection type a sidecar's pooled hyper client
//! uses towards its next hop: a plain or TLS TCP stream, with HTTP/2 chosen when TLS ALPN
//! negotiated `h2`, and (plain only) marked as a connection to an HTTP proxy so hyper sends
//! absolute-form request targets.
//! Also the steps every connector shares (TCP connect and TLS handshake, each with a timeout)
//! and the pooled HTTP/1+HTTP/2 client pair built over a sidecar's connector.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use http::{Request, Response, StatusCode, Uri};
use http_body_util::BodyExt;
use hyper_util::client::legacy::connect::{Connect, Connected, Connection};
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

use crate::pool_cap::{mark_upgraded, ConnCap, InFlightBody, PoolKey, Registration, ServedBy};
use crate::{BoxBody, Host};

/// Why a TCP connect or a TLS handshake failed (the connectors turn it into their refusals).
#[derive(Debug, thiserror::Error)]
pub enum DialError {
    #[error("{0}")]
    Io(io::Error),
    #[error("timed out")]
    Timeout,
    #[error("invalid TLS server name {0}")]
    BadName(String),
    #[error("no addresses")]
    NoAddress,
}

/// TCP to the first of `addrs` (already checked by the caller) that answers, each attempt
/// bounded by `timeout`; `TCP_NODELAY` set. The last failure is returned.
pub async fn connect_tcp(addrs: &[SocketAddr], timeout: Duration) -> Result<TcpStream, DialError> {
    let mut last = DialError::NoAddress;
    for a in addrs {
        match tokio::time::timeout(timeout, TcpStream::connect(a)).await {
            Ok(Ok(s)) => {
                let _ = s.set_nodelay(true);
                return Ok(s);
            }
            Ok(Err(e)) => last = DialError::Io(e),
            Err(_) => last = DialError::Timeout,
        }
    }
    Err(last)
}

/// The TLS client handshake to `host` (SNI for a name; an IP is checked against IP SANs),
/// bounded by `timeout`.
pub async fn tls_handshake(
    tls: &TlsConnector,
    host: &Host,
    tcp: TcpStream,
    timeout: Duration,
) -> Result<TlsStream<TcpStream>, DialError> {
    let name = match host {
        Host::Ip(ip) => ServerName::IpAddress((*ip).into()),
        Host::Name(n) => {
            ServerName::try_from(n.clone()).map_err(|_| DialError::BadName(n.clone()))?
        }
    };
    match tokio::time::timeout(timeout, tls.connect(name, tcp)).await {
        Ok(Ok(s)) => Ok(s),
        Ok(Err(e)) => Err(DialError::Io(e)),
        Err(_) => Err(DialError::Timeout),
    }
}

/// Pool settings of a sidecar's upstream clients.
#[derive(Debug, Clone, Copy)]
pub struct PoolSettings {
    /// Idle pooled connections are closed after this.
    pub idle_timeout: Duration,
    pub max_idle_per_host: usize,
    /// Connections across all hosts above which idle ones are closed ([`ConnCap`]).
    pub max_conns: usize,
}

/// A sidecar's pooled clients over one connector: `main` offers `h2` and `http/1.1` in
/// TLS ALPN; `h1` offers only `http/1.1` (upgrades, which this stack does not carry over h2);
/// `h2` speaks HTTP/2 whatever the connection (by prior knowledge over plain TCP: pipelock's
/// hop to egress for requests that need trailers).
pub struct ClientPair<C> {
    pub main: CappedClient<C>,
    pub h1: CappedClient<C>,
    pub h2: CappedClient<C>,
}

/// Builds the pair; `connector` makes the sidecar's connector around a TLS connector whose
/// roots are the web PKI plus `upstream_ca`.
pub fn client_pair<C>(
    upstream_ca: Option<&Path>,
    pool: PoolSettings,
    connector: impl Fn(TlsConnector) -> C,
) -> Result<ClientPair<C>, crate::tls::TlsError>
where
    C: tower_service::Service<Uri, Response = UpstreamConn> + Clone + Send + Sync + 'static,
    C::Future: Send + 'static,
    C::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    // one cap over the three pools: a host's request in flight in any keeps its connections
    let cap = ConnCap::new(pool.max_conns);
    let build = |alpn: &[&[u8]], h2_only: bool| -> Result<CappedClient<C>, crate::tls::TlsError> {
        let tls = crate::tls::upstream_client_config(upstream_ca, alpn)?;
        let client = Client::builder(TokioExecutor::new())
            .timer(TokioTimer::new())
            .pool_timer(TokioTimer::new())
            .pool_idle_timeout(pool.idle_timeout)
            .pool_max_idle_per_host(pool.max_idle_per_host)
            .http2_adaptive_window(true)
            .http2_only(h2_only)
            .build(Capped {
                inner: connector(TlsConnector::from(tls)),
                cap: Arc::clone(&cap),
            });
        Ok(CappedClient {
            client,
            cap: Arc::clone(&cap),
        })
    };
    Ok(ClientPair {
        main: build(&[b"h2", b"http/1.1"], false)?,
        h1: build(&[b"http/1.1"], false)?,
        h2: build(&[b"h2"], true)?,
    })
}

/// A pooled client whose connections count against a [`ConnCap`]: each request is in
/// flight from its send to the end of its response body, and an upgraded connection is never
/// closed by the cap.
pub struct CappedClient<C> {
    client: Client<Capped<C>, BoxBody>,
    cap: Arc<ConnCap>,
}

impl<C> CappedClient<C>
where
    Capped<C>: Connect + Clone + Send + Sync + 'static,
{
    /// Sends `req`; the response body is boxed with the request's in-flight mark.
    pub async fn request(
        &self,
        req: Request<BoxBody>,
    ) -> Result<Response<BoxBody>, hyper_util::client::legacy::Error> {
        let in_flight = self.cap.begin(PoolKey::of(req.uri()));
        let resp = self.client.request(req).await?;
        if resp.status() == StatusCode::SWITCHING_PROTOCOLS {
            mark_upgraded(&resp);
        }
        Ok(resp.map(|b| {
            InFlightBody::new(b, in_flight)
                .map_err(crate::BoxError::from)
                .boxed()
        }))
    }
}

/// A sidecar's connector whose connections register with a [`ConnCap`].
#[derive(Clone)]
pub struct Capped<C> {
    inner: C,
    cap: Arc<ConnCap>,
}

impl<C> tower_service::Service<Uri> for Capped<C>
where
    C: tower_service::Service<Uri, Response = UpstreamConn>,
    C::Future: Send + 'static,
{
    type Response = UpstreamConn;
    type Error = C::Error;
    type Future = Pin<Box<dyn Future<Output = Result<UpstreamConn, C::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, dst: Uri) -> Self::Future {
        let key = PoolKey::of(&dst);
        let cap = Arc::clone(&self.cap);
        let connecting = self.inner.call(dst);
        Box::pin(async move {
            let mut conn = connecting.await?;
            conn.registration = Some(cap.register(key));
            Ok(conn)
        })
    }
}

/// A plain or TLS upstream stream (tokio I/O).
pub enum UpstreamIo {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

impl AsyncRead for UpstreamIo {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            UpstreamIo::Plain(s) => Pin::new(s).poll_read(cx, buf),
            UpstreamIo::Tls(s) => Pin::new(s).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for UpstreamIo {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            UpstreamIo::Plain(s) => Pin::new(s).poll_write(cx, buf),
            UpstreamIo::Tls(s) => Pin::new(s).poll_write(cx, buf),
        }
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            UpstreamIo::Plain(s) => Pin::new(s).poll_flush(cx),
            UpstreamIo::Tls(s) => Pin::new(s).poll_flush(cx),
        }
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            UpstreamIo::Plain(s) => Pin::new(s).poll_shutdown(cx),
            UpstreamIo::Tls(s) => Pin::new(s).poll_shutdown(cx),
        }
    }
    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            UpstreamIo::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            UpstreamIo::Tls(s) => Pin::new(s).poll_write_vectored(cx, bufs),
        }
    }
    fn is_write_vectored(&self) -> bool {
        match self {
            UpstreamIo::Plain(s) => s.is_write_vectored(),
            UpstreamIo::Tls(s) => s.is_write_vectored(),
        }
    }
}

/// The connection handed to hyper (`hyper::rt::Read`/`Write` + hyper-util `Connection`).
pub struct UpstreamConn {
    io: TokioIo<UpstreamIo>,
    h2: bool,
    proxied: bool,
    /// Set when the connection is pooled under a [`ConnCap`], which may close it.
    registration: Option<Registration>,
}

impl UpstreamConn {
    /// A plain TCP connection to an origin.
    pub fn plain(tcp: TcpStream) -> Self {
        UpstreamConn {
            io: TokioIo::new(UpstreamIo::Plain(tcp)),
            h2: false,
            proxied: false,
            registration: None,
        }
    }

    /// A plain TCP connection to an HTTP proxy: hyper sends absolute-form targets.
    pub fn to_proxy(tcp: TcpStream) -> Self {
        UpstreamConn {
            proxied: true,
            ..Self::plain(tcp)
        }
    }

    /// A TLS connection; HTTP/2 when ALPN negotiated `h2`.
    pub fn tls(tls: TlsStream<TcpStream>) -> Self {
        let h2 = tls.get_ref().1.alpn_protocol() == Some(b"h2");
        UpstreamConn {
            io: TokioIo::new(UpstreamIo::Tls(Box::new(tls))),
            h2,
            proxied: false,
            registration: None,
        }
    }

    /// True when ALPN negotiated HTTP/2.
    pub fn is_h2(&self) -> bool {
        self.h2
    }

    fn closed_by_cap(&self) -> Option<io::Error> {
        self.registration
            .as_ref()
            .filter(|r| r.slot.is_closed())
            .map(|_| io::Error::new(io::ErrorKind::BrokenPipe, "closed: idle over the cap"))
    }
}

impl Connection for UpstreamConn {
    fn connected(&self) -> Connected {
        let mut c = Connected::new().proxy(self.proxied);
        if let Some(r) = &self.registration {
            c = c.extra(ServedBy(Arc::clone(&r.slot)));
        }
        if self.h2 {
            c.negotiated_h2()
        } else {
            c
        }
    }
}

impl hyper::rt::Read for UpstreamConn {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if let Some(r) = &this.registration {
            // registered before the check: a close after it wakes this read
            r.slot.wait_read(cx);
            if r.slot.is_closed() {
                // the end of the stream, as when the peer closes a kept-alive connection
                return Poll::Ready(Ok(()));
            }
        }
        Pin::new(&mut this.io).poll_read(cx, buf)
    }
}

impl hyper::rt::Write for UpstreamConn {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if let Some(e) = this.closed_by_cap() {
            return Poll::Ready(Err(e));
        }
        Pin::new(&mut this.io).poll_write(cx, buf)
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if let Some(e) = this.closed_by_cap() {
            return Poll::Ready(Err(e));
        }
        Pin::new(&mut this.io).poll_write_vectored(cx, bufs)
    }
    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn plain_and_proxied_bytes_flow_and_flags() {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let echo = tokio::spawn(async move {
            for _ in 0..2 {
                let (mut s, _) = l.accept().await.unwrap();
                let mut b = [0u8; 4];
                s.read_exact(&mut b).await.unwrap();
                s.write_all(&b).await.unwrap();
            }
        });
        for proxied in [false, true] {
            let tcp = TcpStream::connect(addr).await.unwrap();
            let conn = if proxied {
                UpstreamConn::to_proxy(tcp)
            } else {
                UpstreamConn::plain(tcp)
            };
            let c = conn.connected();
            assert_eq!(c.is_proxied(), proxied);
            assert!(!c.is_negotiated_h2());
            assert!(!conn.is_h2());
            // through the hyper::rt traits (TokioIo turns them back into tokio I/O)
            let mut io = TokioIo::new(conn);
            io.write_all(b"ping").await.unwrap();
            let mut b = [0u8; 4];
            tokio::time::timeout(std::time::Duration::from_secs(20), io.read_exact(&mut b))
                .await
                .unwrap()
                .unwrap();
            assert_eq!(&b, b"ping");
        }
        echo.await.unwrap();
    }

    #[tokio::test]
    async fn connect_tcp_skips_a_dead_address_and_reports_the_last_failure() {
        let live = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let live_addr = live.local_addr().unwrap();
        // a port nothing listens on: bind, learn the port, close
        let dead = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let dead_addr = dead.local_addr().unwrap();
        drop(dead);
        let t = std::time::Duration::from_secs(20);
        let s = connect_tcp(&[dead_addr, live_addr], t).await.unwrap();
        assert_eq!(s.peer_addr().unwrap(), live_addr);
        assert!(s.nodelay().unwrap());
        assert!(matches!(
            connect_tcp(&[dead_addr], t).await,
            Err(DialError::Io(_))
        ));
        assert!(matches!(
            connect_tcp(&[], t).await,
            Err(DialError::NoAddress)
        ));
    }

    #[tokio::test]
    async fn tls_handshake_times_out_against_a_silent_server() {
        crate::tls::install_default_provider();
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        // accepts and never answers the ClientHello
        let hold = tokio::spawn(async move {
            let (s, _) = l.accept().await.unwrap();
            tokio::time::sleep(std::time::Duration::from_secs(30)).await;
            drop(s);
        });
        let cfg = crate::tls::upstream_client_config(None, &[b"http/1.1"]).unwrap();
        let tcp = TcpStream::connect(addr).await.unwrap();
        let host = crate::parse_host("silent.test").unwrap();
        let r = tls_handshake(
            &TlsConnector::from(cfg),
            &host,
            tcp,
            std::time::Duration::from_millis(300),
        )
        .await;
        assert!(matches!(r, Err(DialError::Timeout)), "{r:?}");
        hold.abort();
    }
}
