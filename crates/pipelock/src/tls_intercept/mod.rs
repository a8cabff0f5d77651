//! TLS interception: the bottle CA, the leaf cache and the one shared rustls `ServerConfig`.

pub mod ca;
pub mod cert_cache;

use std::sync::Arc;
use std::time::Duration;

use rustls::server::{Acceptor, ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::ServerConfig;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_rustls::server::TlsStream;
use tokio_rustls::LazyConfigAcceptor;

use crate::error::PipelockError;
use cert_cache::CertCache;

tokio::task_local! {
    /// The leaf chosen for the connection being accepted (the CONNECT target's).
    static CURRENT_LEAF: Arc<CertifiedKey>;
}

/// Serves the leaf of the CONNECT target being accepted; falls back to a cached leaf by SNI.
#[derive(Debug)]
struct LeafResolver {
    cache: Arc<CertCache>,
}

impl std::fmt::Debug for CertCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertCache")
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

impl ResolvesServerCert for LeafResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        CURRENT_LEAF
            .try_with(|k| k.clone())
            .ok()
            .or_else(|| hello.server_name().and_then(|n| self.cache.peek(n)))
    }
}

/// The interceptor: one `ServerConfig` for every tunnel.
pub struct Interceptor {
    pub cache: Arc<CertCache>,
    config: Arc<ServerConfig>,
    handshake_timeout: Duration,
}

/// Why an interception did not produce a TLS stream.
#[derive(Debug, thiserror::Error)]
pub enum InterceptError {
    #[error("TLS ClientHello timed out")]
    Timeout,
    #[error("TLS handshake failed: {0}")]
    Handshake(std::io::Error),
    #[error("SNI {sni:?} does not match the CONNECT target {target}")]
    SniMismatch { sni: String, target: String },
    #[error("no SNI for CONNECT target {0}")]
    SniMissing(String),
    #[error("{0}")]
    Mint(#[from] PipelockError),
}

impl InterceptError {
    /// Short reason for metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            InterceptError::Timeout => "tls_timeout",
            InterceptError::Handshake(_) => "tls_handshake",
            InterceptError::SniMismatch { .. } | InterceptError::SniMissing(_) => "sni_mismatch",
            InterceptError::Mint(_) => "mint",
        }
    }
}

impl Interceptor {
    pub fn new(
        cache: Arc<CertCache>,
        handshake_timeout: Duration,
    ) -> Result<Interceptor, PipelockError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| PipelockError::Tls(e.to_string()))?
            .with_no_client_auth()
            .with_cert_resolver(Arc::new(LeafResolver {
                cache: cache.clone(),
            }));
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(Interceptor {
            cache,
            config: Arc::new(config),
            handshake_timeout,
        })
    }

    /// Reads the ClientHello, checks its SNI against `target` (normalised host text;
    /// `target_is_ip` allows a missing SNI), mints/fetches the leaf and completes the handshake.
    pub async fn accept<IO>(
        &self,
        io: IO,
        target: &str,
        target_is_ip: bool,
    ) -> Result<TlsStream<IO>, InterceptError>
    where
        IO: AsyncRead + AsyncWrite + Unpin,
    {
        let acceptor = LazyConfigAcceptor::new(Acceptor::default(), io);
        let start = tokio::time::timeout(self.handshake_timeout, acceptor)
            .await
            .map_err(|_| InterceptError::Timeout)?
            .map_err(InterceptError::Handshake)?;
        match start.client_hello().server_name() {
            Some(sni) => {
                let norm = bottle_core::parse_host(sni)
                    .map(|h| h.to_string())
                    .unwrap_or_default();
                if norm != target {
                    return Err(InterceptError::SniMismatch {
                        sni: sni.to_string(),
                        target: target.to_string(),
                    });
                }
            }
            None if target_is_ip => {}
            None => return Err(InterceptError::SniMissing(target.to_string())),
        }
        let leaf = self.cache.get(target).await?;
        let config = self.config.clone();
        let accept = CURRENT_LEAF.sync_scope(leaf, || start.into_stream(config));
        tokio::time::timeout(self.handshake_timeout, accept)
            .await
            .map_err(|_| InterceptError::Timeout)?
            .map_err(InterceptError::Handshake)
    }
}
