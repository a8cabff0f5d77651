//! pipelock's next hop: the dialler and pooled clients towards egress (`--upstream-proxy`)
//! or, standalone, the origins themselves (SSRF-checked resolution). The connection type and
//! dial steps are bottle-core's `upstream`.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bottle_core::peer::PeerKey;
use bottle_core::reload::Reloadable;
use bottle_core::upstream::{self as dial, client_pair, CappedClient, DialError, PoolSettings};
use bottle_core::{Host, LiveConfig, Refusal, RefusalKind, Resolver};
use http::Uri;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

/// Where decrypted requests go.
#[derive(Clone, Debug)]
pub enum Mode {
    /// `--upstream-proxy http://HOST:PORT`.
    Proxy {
        host: Host,
        port: u16,
        authority: String,
        /// `--upstream-proxy-key-env`: sent as `Proxy-Authorization` on everything to egress.
        key: Option<PeerKey>,
    },
    /// Standalone: connect to origins.
    Direct,
}

impl Mode {
    pub fn parse(upstream_proxy: Option<&str>) -> Result<Mode, String> {
        let Some(s) = upstream_proxy else {
            return Ok(Mode::Direct);
        };
        let uri: Uri = s
            .parse()
            .map_err(|e| format!("--upstream-proxy {s:?}: {e}"))?;
        if uri.scheme_str() != Some("http") {
            return Err(format!(
                "--upstream-proxy {s:?}: only http:// proxies are supported"
            ));
        }
        let auth = uri
            .authority()
            .ok_or_else(|| format!("--upstream-proxy {s:?}: no host"))?;
        let (host, port) = bottle_core::split_host_port(auth.as_str(), 80)
            .map_err(|e| format!("--upstream-proxy {s:?}: {e}"))?;
        Ok(Mode::Proxy {
            authority: host.to_authority(port),
            host,
            port,
            key: None,
        })
    }

    /// With `--upstream-proxy-key-env NAME`: the key from the environment variable NAME
    /// (an error without `--upstream-proxy`, or when the variable is unset or too short).
    pub fn with_key_env(self, name: Option<&str>) -> Result<Mode, String> {
        let Some(name) = name else { return Ok(self) };
        match self {
            Mode::Direct => Err("--upstream-proxy-key-env needs --upstream-proxy".into()),
            Mode::Proxy {
                host,
                port,
                authority,
                ..
            } => Ok(Mode::Proxy {
                host,
                port,
                authority,
                key: Some(
                    PeerKey::from_env(name)
                        .map_err(|e| format!("--upstream-proxy-key-env: {e}"))?,
                ),
            }),
        }
    }

    /// Headers going to the upstream proxy: whatever `Proxy-Authorization` they carry (the
    /// agent's was stripped already) is replaced by the key.
    pub fn authorize(&self, headers: &mut http::HeaderMap) {
        if let Mode::Proxy { key: Some(k), .. } = self {
            k.set(headers);
        }
    }
}

/// Why a connection to the next hop failed.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("{}", .0.reason)]
    Refused(Refusal),
    #[error("cannot resolve {0}: {1}")]
    Resolve(String, String),
    #[error("connect to {0}: {1}")]
    Io(String, std::io::Error),
    #[error("connect to {0}: timed out")]
    Timeout(String),
    #[error("TLS to {0}: {1}")]
    Tls(String, std::io::Error),
    #[error("bad upstream URI: {0}")]
    BadUri(String),
}

impl ConnectError {
    /// The refusal the agent gets when the next hop could not be reached: the address
    /// decision's refusal as it is (SSRF, or DNS), 504 for a timeout, 502 for anything else
    /// (the same for CONNECT tunnels and forwarded requests).
    pub fn denial(&self) -> crate::policy::Denied {
        use crate::policy::Denied;
        match self {
            ConnectError::Refused(r) => Denied::from(r.clone()),
            ConnectError::Timeout(_) => Denied::of(RefusalKind::UpstreamTimeout, self.to_string()),
            other => Denied::of(RefusalKind::UpstreamUnreachable, other.to_string()),
        }
    }
}

/// One upstream transport.
pub use bottle_core::upstream::UpstreamConn as UpConn;

/// Shared pieces of the connectors.
pub struct Dialer {
    pub mode: Mode,
    pub resolver: Arc<Resolver>,
    pub live: Arc<Reloadable<LiveConfig>>,
    pub connect_timeout: Duration,
}

impl Dialer {
    /// TCP to the upstream proxy (its name resolved without SSRF checks: it is ours).
    pub async fn dial_proxy(&self) -> Result<TcpStream, ConnectError> {
        let Mode::Proxy {
            host,
            port,
            authority,
            ..
        } = &self.mode
        else {
            return Err(ConnectError::BadUri("no upstream proxy".into()));
        };
        let ips = self
            .resolver
            .lookup(host)
            .await
            .map_err(|e| ConnectError::Resolve(authority.clone(), e.to_string()))?;
        let addrs: Vec<SocketAddr> = ips
            .into_iter()
            .map(|ip| SocketAddr::new(ip, *port))
            .collect();
        self.dial_addrs(authority, &addrs).await
    }

    /// Resolves `host` with the SSRF check and connects only to the checked addresses.
    pub async fn dial_checked(&self, host: &Host, port: u16) -> Result<TcpStream, ConnectError> {
        let cfg = self.live.current();
        let addrs: Vec<SocketAddr> = self
            .resolve_decided(&cfg, host)
            .await
            .map_err(|d| ConnectError::Refused(d.refusal))?
            .into_iter()
            .map(|ip| SocketAddr::new(ip, port))
            .collect();
        self.dial_addrs(&host.to_authority(port), &addrs).await
    }

    /// Resolves `host` and carries out [`crate::policy::decide_addresses`] on what came
    /// back: the SSRF refusal, or the DNS failure (`resolve`: 504 on a timeout, else 502).
    pub async fn resolve_decided(
        &self,
        live: &LiveConfig,
        host: &Host,
    ) -> Result<Vec<std::net::IpAddr>, crate::policy::Denied> {
        use crate::policy::Denied;
        use bottle_core::resolve::ResolveError;
        let addrs = match self.resolver.lookup(host).await {
            Ok(a) => a,
            Err(ResolveError::Timeout(h)) => {
                // 504, not the kind's 502: a lookup that timed out has always said so.
                return Err(
                    Denied::of(RefusalKind::Resolve, format!("resolving {h} timed out"))
                        .with_status(http::StatusCode::GATEWAY_TIMEOUT),
                );
            }
            Err(e) => return Err(Denied::of(RefusalKind::Resolve, format!("dns: {e}"))),
        };
        let pinned = matches!(host, Host::Name(n) if self.resolver.pinned_private_ok(n));
        crate::policy::decide_addresses(host, &addrs, live, pinned)?;
        Ok(addrs)
    }

    async fn dial_addrs(
        &self,
        what: &str,
        addrs: &[SocketAddr],
    ) -> Result<TcpStream, ConnectError> {
        dial::connect_tcp(addrs, self.connect_timeout)
            .await
            .map_err(|e| match e {
                DialError::Io(e) => ConnectError::Io(what.to_string(), e),
                DialError::Timeout => ConnectError::Timeout(what.to_string()),
                DialError::NoAddress | DialError::BadName(_) => {
                    ConnectError::Resolve(what.to_string(), "no addresses".into())
                }
            })
    }
}

/// The connector handed to the pooled client.
#[derive(Clone)]
pub struct Connector {
    dialer: Arc<Dialer>,
    tls: TlsConnector,
}

impl tower_service::Service<Uri> for Connector {
    type Response = UpConn;
    type Error = ConnectError;
    type Future = Pin<Box<dyn Future<Output = Result<UpConn, ConnectError>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let this = self.clone();
        Box::pin(async move {
            if matches!(this.dialer.mode, Mode::Proxy { .. }) {
                let s = this.dialer.dial_proxy().await?;
                return Ok(UpConn::to_proxy(s));
            }
            let https = match uri.scheme_str() {
                Some("https") => true,
                Some("http") => false,
                _ => return Err(ConnectError::BadUri(uri.to_string())),
            };
            let auth = uri
                .authority()
                .ok_or_else(|| ConnectError::BadUri(uri.to_string()))?;
            let (host, port) =
                bottle_core::split_host_port(auth.as_str(), if https { 443 } else { 80 })
                    .map_err(|e| ConnectError::BadUri(e.to_string()))?;
            let tcp = this.dialer.dial_checked(&host, port).await?;
            if !https {
                return Ok(UpConn::plain(tcp));
            }
            let what = host.to_authority(port);
            let tls = dial::tls_handshake(&this.tls, &host, tcp, this.dialer.connect_timeout)
                .await
                .map_err(|e| match e {
                    DialError::Timeout => ConnectError::Timeout(what.clone()),
                    DialError::Io(e) => ConnectError::Tls(what.clone(), e),
                    DialError::BadName(n) => ConnectError::BadUri(format!("{n}: invalid DNS name")),
                    DialError::NoAddress => ConnectError::BadUri(what.clone()),
                })?;
            Ok(UpConn::tls(tls))
        })
    }
}

pub type HttpClient = CappedClient<Connector>;

/// Pooled connections (to egress or to origins) above which idle ones are closed, least
/// recently used host first: without it an agent reaching many names (a wildcard entry)
/// grows the pool by one connection per name until the idle timeout.
pub const MAX_UPSTREAM_CONNS: usize = 64;

/// Which pooled client carries a request to the next hop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hop {
    /// Standalone: ALPN `h2`/`http/1.1` to the origin. Through egress: HTTP/1.1.
    Main,
    /// HTTP/1.1 only: WebSocket upgrades.
    H1,
    /// Through egress, HTTP/2 by prior knowledge: the request wants trailers (`TE: trailers`,
    /// which gRPC always sends), and HTTP/1.1 would drop them: its trailers must be
    /// announced in the head, which a proxy cannot know for an HTTP/2 origin's answer.
    H2,
}

/// The client for a request: `upgrade` for a WebSocket handshake, `proxied` when egress is
/// the next hop, `headers` as they go upstream.
pub fn hop_for(upgrade: bool, proxied: bool, headers: &http::HeaderMap) -> Hop {
    if upgrade {
        return Hop::H1;
    }
    let wants_trailers = headers
        .get_all(http::header::TE)
        .iter()
        .any(|v| v.as_bytes().trim_ascii().eq_ignore_ascii_case(b"trailers"));
    if proxied && wants_trailers {
        Hop::H2
    } else {
        Hop::Main
    }
}

/// Pooled clients: `main` may use h2 to origins; `h1` is HTTP/1.1 only (upgrades); `h2` is
/// HTTP/2 by prior knowledge to egress (see [`Hop::H2`]).
pub struct Upstream {
    pub dialer: Arc<Dialer>,
    pub main: HttpClient,
    pub h1: HttpClient,
    pub h2: HttpClient,
}

impl Upstream {
    pub fn new(dialer: Dialer, upstream_ca: Option<&std::path::Path>) -> Result<Upstream, String> {
        let dialer = Arc::new(dialer);
        let pair = client_pair(
            upstream_ca,
            PoolSettings {
                // under egress's 30 s header-read timeout (bottle-core serve), which also closes
                // kept-alive connections waiting for a request: a pooled connection is dropped
                // here before egress closes it, never reused at the moment it does
                idle_timeout: Duration::from_secs(25),
                max_idle_per_host: 64,
                max_conns: MAX_UPSTREAM_CONNS,
            },
            |tls| Connector {
                dialer: dialer.clone(),
                tls,
            },
        )
        .map_err(|e| e.to_string())?;
        Ok(Upstream {
            main: pair.main,
            h1: pair.h1,
            h2: pair.h2,
            dialer,
        })
    }

    /// The client for `hop` (see [`hop_for`]).
    pub fn client(&self, hop: Hop) -> &HttpClient {
        match hop {
            Hop::Main => &self.main,
            Hop::H1 => &self.h1,
            Hop::H2 => &self.h2,
        }
    }

    /// Whether egress is the next hop.
    pub fn proxied(&self) -> bool {
        matches!(self.dialer.mode, Mode::Proxy { .. })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::StatusCode;

    #[test]
    fn trailers_go_over_h2_to_egress_only() {
        let mut te = http::HeaderMap::new();
        te.insert(http::header::TE, "trailers".parse().unwrap());
        let none = http::HeaderMap::new();
        let rows = [
            (false, true, &te, Hop::H2),
            (false, false, &te, Hop::Main),
            (false, true, &none, Hop::Main),
            (true, true, &te, Hop::H1),
            (true, false, &none, Hop::H1),
        ];
        for (upgrade, proxied, h, want) in rows {
            assert_eq!(
                hop_for(upgrade, proxied, h),
                want,
                "{upgrade} {proxied} {h:?}"
            );
        }
    }

    /// One mapping from a failed dial to what the agent is told, for every kind of failure.
    #[test]
    fn every_connect_error_has_its_refusal() {
        let ssrf = Refusal::of(RefusalKind::PrivateAddress, "10.0.0.1 is a private address");
        let dns = Refusal::of(RefusalKind::Resolve, "dns: no such host");
        let rows = [
            (
                ConnectError::Refused(ssrf),
                "private_address",
                StatusCode::FORBIDDEN,
            ),
            (
                ConnectError::Refused(dns),
                "resolve",
                StatusCode::BAD_GATEWAY,
            ),
            (
                ConnectError::Timeout("h:443".into()),
                "upstream_timeout",
                StatusCode::GATEWAY_TIMEOUT,
            ),
            (
                ConnectError::Resolve("h".into(), "no such host".into()),
                "upstream_unreachable",
                StatusCode::BAD_GATEWAY,
            ),
            (
                ConnectError::Io(
                    "h:443".into(),
                    std::io::Error::from(std::io::ErrorKind::ConnectionRefused),
                ),
                "upstream_unreachable",
                StatusCode::BAD_GATEWAY,
            ),
            (
                ConnectError::BadUri("x".into()),
                "upstream_unreachable",
                StatusCode::BAD_GATEWAY,
            ),
        ];
        for (e, kind, status) in rows {
            let d = e.denial();
            assert_eq!((d.kind(), d.refusal.status), (kind, status), "{e}");
            assert_eq!(
                d.refusal.reason,
                e.to_string(),
                "the reason is the error's own text"
            );
        }
    }
}
