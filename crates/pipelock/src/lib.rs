//! pipelock: bottle's TLS-intercepting forward proxy.
//!
//! The agent's HTTP(S) proxy: absolute-form HTTP and CONNECT on `--listen`; allowed CONNECTs
//! are decrypted with leaves minted from the bottle CA (or tunnelled byte for byte for
//! `tls_passthrough` routes); every request is checked against the live allowlist, SSRF and
//! DLP, then sent to `--upstream-proxy` (egress) or, standalone, to the origin itself.
#![forbid(unsafe_code)]
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]
// A refusal carries its reason, hint and rule (a few hundred bytes); it is built once per
// refused request, on the cold path, so boxing it would buy nothing.
#![allow(clippy::result_large_err)]

pub mod body;
pub mod cli;
pub mod connect;
pub mod dlp_scan;
pub mod error;
pub mod filter;
pub mod forward;
pub mod idle;
pub mod mcp;
pub mod metrics;
pub mod next_hop;
pub mod policy;
pub mod response;
pub mod server;
pub mod state;
pub mod tls_intercept;
pub mod ws_down;
pub mod ws_h2;
pub mod ws_scan;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bottle_core::reload::Reloadable;
use bottle_core::{LiveConfig, Resolver};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;

pub use cli::Args;
pub use error::PipelockError;

use next_hop::{Dialer, Mode, Upstream};
use state::{State, TaskCount};
use tls_intercept::ca::Ca;
use tls_intercept::cert_cache::CertCache;
use tls_intercept::Interceptor;

/// A pipelock started in-process.
pub struct Running {
    /// The proxy listener's address (useful with `--listen 127.0.0.1:0`).
    pub addr: SocketAddr,
    /// The admin listener's address, when `--admin-listen` was given.
    pub admin_addr: Option<SocketAddr>,
    /// The live configuration (tests may call `reload_now`).
    pub live: Arc<Reloadable<LiveConfig>>,
    /// Resolves when the proxy has drained and stopped.
    pub handle: JoinHandle<()>,
    shutdown: tokio::sync::watch::Sender<bool>,
    state: Arc<State>,
}

impl Running {
    /// Stops accepting, lets in-flight requests finish (up to the drain time), then returns.
    pub async fn stop(self) {
        let _ = self.shutdown.send(true);
        let _ = self.handle.await;
    }

    /// Leaf-cache statistics.
    pub fn cert_cache_stats(&self) -> tls_intercept::cert_cache::CacheStats {
        self.state.interceptor.cache.stats()
    }
}

/// Loads everything, binds `--listen` and starts serving in the background.
pub async fn spawn(args: Args) -> Result<Running, PipelockError> {
    let common = &args.common;
    let mode = Mode::parse(args.upstream_proxy.as_deref())
        .and_then(|m| m.with_key_env(args.upstream_proxy_key_env.as_deref()))
        .map_err(PipelockError::Usage)?;
    let ca = Ca::load(&args.ca_cert, &args.ca_key)?;
    let cache = Arc::new(CertCache::new(Arc::new(ca), args.limits.cert_cache_size));
    let interceptor = Interceptor::new(cache, Duration::from_secs(10))?;

    let core_metrics = Arc::new(bottle_core::Metrics::new());
    let metrics = metrics::PipelockMetrics::register(&core_metrics);
    let status = common
        .status_file
        .as_ref()
        .map(|p| bottle_core::StatusFile::new(p.clone(), state::COMPONENT));
    let live = bottle_core::reload::start(
        state::COMPONENT,
        LiveConfig::loader(common.config_dir.clone()),
        status,
        &core_metrics,
    )?;
    let resolver = Arc::new(
        Resolver::new(&common.resolve)
            .map_err(|e| PipelockError::Usage(format!("--resolve: {e}")))?,
    );
    let dialer = Dialer {
        mode,
        resolver,
        live: live.clone(),
        connect_timeout: Duration::from_secs(10),
    };
    let upstream =
        Upstream::new(dialer, common.upstream_ca.as_deref()).map_err(PipelockError::Tls)?;
    let audit = match &common.audit_log {
        Some(p) => Some(
            bottle_core::AuditLog::open_rotating(p, common.audit_rotation()).map_err(|e| {
                PipelockError::Io {
                    path: p.into(),
                    source: e,
                }
            })?,
        ),
        None => None,
    };
    let known = match &args.dlp_known_secrets {
        Some(p) => {
            bottle_dlp::load_known_secrets(p).map_err(|e| PipelockError::Usage(e.to_string()))?
        }
        None => Vec::new(),
    };
    let dlp = dlp_scan::DlpScanner::new(known);
    let listener = TcpListener::bind(common.listen)
        .await
        .map_err(|e| PipelockError::Listen {
            addr: common.listen,
            source: e,
        })?;
    let addr = listener.local_addr().map_err(|e| PipelockError::Listen {
        addr: common.listen,
        source: e,
    })?;
    let (tx, rx) = tokio::sync::watch::channel(false);
    let state = Arc::new(State {
        live: live.clone(),
        interceptor,
        upstream,
        audit,
        metrics,
        tunnels: Arc::new(Semaphore::new(args.limits.max_tunnels.max(1))),
        limits: args.limits.clone(),
        dlp,
        mcp_sessions: Arc::default(),
        tasks: TaskCount::default(),
        shutdown: rx,
        supervise_url: common.supervise_url.clone(),
    });
    let mut admin_addr = None;
    if let Some(admin) = common.admin_listen {
        let l = TcpListener::bind(admin)
            .await
            .map_err(|e| PipelockError::Listen {
                addr: admin,
                source: e,
            })?;
        admin_addr = Some(l.local_addr().map_err(|e| PipelockError::Listen {
            addr: admin,
            source: e,
        })?);
        let m = core_metrics.clone();
        let mut stop = state.shutdown.clone();
        tokio::spawn(async move {
            tokio::select! {
                r = bottle_core::admin::serve_admin_on(l, || true, m) => {
                    if let Err(e) = r { tracing::error!("admin listener {admin}: {e}"); }
                }
                _ = stop.changed() => {}
            }
        });
    }
    tracing::info!(%addr, "pipelock listening");
    let st = state.clone();
    // serve() drains the shared tracker (connections and tunnels) within --drain-secs.
    let handle = tokio::spawn(async move {
        server::accept_loop(listener, st).await;
    });
    Ok(Running {
        addr,
        admin_addr,
        live,
        handle,
        shutdown: tx,
        state,
    })
}

/// Runs until `shutdown` resolves, then drains.
pub async fn run(args: Args, shutdown: impl Future<Output = ()>) -> Result<(), PipelockError> {
    let running = spawn(args).await?;
    shutdown.await;
    running.stop().await;
    Ok(())
}
