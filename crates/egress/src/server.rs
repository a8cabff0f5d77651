//! Startup, the accept loop, drain on shutdown; also the in-process API other
//! crates' tests use ([`spawn`]).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bottle_core::audit::AuditLog;
use bottle_core::cli::CommonArgs;
use bottle_core::peer::{self, PeerKey};
use bottle_core::reload::{self, Reloadable};
use bottle_core::serve::{serve, ServeLimits, ServeOptions};
use bottle_core::status::StatusFile;
use bottle_core::upstream::{client_pair, PoolSettings};
use bottle_core::{ConfigError, Metrics, Resolver};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::task::TaskTracker;

use crate::config::{EgressConfig, EnvSource};
use crate::metrics::EgressMetrics;
use crate::origin::{Connector, Timeouts};
use crate::proxy::handle;
use crate::state::{State, COMPONENT};

/// Pooled connections to origins above which idle ones are closed, least recently used
/// origin first: without it an agent reaching many names (a wildcard entry) grows the pool
/// by one TLS connection per name until the idle timeout.
pub const MAX_ORIGIN_CONNS: usize = 64;

/// How long `--listen-via` waits for its peer's name (compose starts pipelock right before).
const LISTEN_VIA_WAIT: Duration = Duration::from_secs(120);

/// Flags of egress (the shared ones plus timeouts).
#[derive(clap::Args, Debug, Clone)]
pub struct EgressArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    /// Upstream TCP connect timeout, seconds.
    #[arg(long, value_name = "SECS", default_value_t = 10.0)]
    pub connect_timeout: f64,
    /// Upstream TLS handshake timeout, seconds.
    #[arg(long, value_name = "SECS", default_value_t = 10.0)]
    pub handshake_timeout: f64,
    /// Time allowed from sending a request upstream to its response headers, seconds.
    #[arg(long, value_name = "SECS", default_value_t = 120.0)]
    pub response_timeout: f64,
    /// Idle pooled upstream connections are closed after this many seconds.
    #[arg(long, value_name = "SECS", default_value_t = 90.0)]
    pub idle_timeout: f64,
    /// Listener limits shared by every sidecar (connection cap, idle and header timeouts,
    /// head caps, drain time on SIGTERM).
    #[command(flatten)]
    pub limits: ServeLimits,
    /// Require `Proxy-Authorization: Bottle <key>` on every request and CONNECT, the key being
    /// the value of this environment variable (given by name; at least 32 characters).
    /// Anything without it gets 407 and nothing is injected or forwarded.
    #[arg(long, value_name = "NAME")]
    pub client_key_env: Option<String>,
    /// Bind `--listen`'s port on the local address that reaches HOST:PORT (e.g. pipelock:8888:
    /// egress then listens on the network it shares with pipelock only). Retried until the
    /// name resolves (up to 120 s).
    #[arg(long, value_name = "HOST:PORT")]
    pub listen_via: Option<String>,
}

impl EgressArgs {
    /// Defaults for in-process use: listen on 127.0.0.1:0, no admin, no audit.
    pub fn new(config_dir: impl Into<PathBuf>) -> EgressArgs {
        EgressArgs {
            common: CommonArgs {
                listen: SocketAddr::from(([127, 0, 0, 1], 0)),
                config_dir: config_dir.into(),
                upstream_ca: None,
                resolve: Vec::new(),
                admin_listen: None,
                audit_log: None,
                audit_max_bytes: bottle_core::audit::DEFAULT_MAX_BYTES,
                audit_keep: bottle_core::audit::DEFAULT_KEEP,
                status_file: None,
                supervise_url: None,
            },
            connect_timeout: 10.0,
            handshake_timeout: 10.0,
            response_timeout: 120.0,
            idle_timeout: 90.0,
            limits: ServeLimits::default(),
            client_key_env: None,
            listen_via: None,
        }
    }

    fn timeouts(&self) -> Timeouts {
        let d = |s: f64| Duration::from_secs_f64(s.clamp(0.001, 86_400.0));
        Timeouts {
            connect: d(self.connect_timeout),
            handshake: d(self.handshake_timeout),
            response: d(self.response_timeout),
            idle: d(self.idle_timeout),
        }
    }
}

/// Why egress could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("{0}")]
    Config(#[from] ConfigError),
    #[error("upstream TLS: {0}")]
    Tls(String),
    #[error("resolver: {0}")]
    Resolver(String),
    #[error("cannot open audit log {path}: {source}")]
    Audit {
        path: String,
        source: std::io::Error,
    },
    #[error("{0}")]
    Usage(String),
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

/// A running egress.
pub struct Running {
    /// Where it listens for pipelock.
    pub addr: SocketAddr,
    /// Where the admin endpoints are, if enabled.
    pub admin_addr: Option<SocketAddr>,
    /// The live config (call `reload_now` to reload in-process).
    pub config: Arc<Reloadable<EgressConfig>>,
    pub metrics: Arc<Metrics>,
    shutdown: watch::Sender<bool>,
    task: JoinHandle<()>,
    admin_task: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for Running {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Running")
            .field("addr", &self.addr)
            .field("admin_addr", &self.admin_addr)
            .finish_non_exhaustive()
    }
}

impl Running {
    /// Reload the config now (what SIGHUP does).
    pub async fn reload(&self) -> Result<(), ConfigError> {
        self.config.reload_now().await
    }

    /// Stop accepting, drain in-flight requests (bounded), stop.
    pub async fn shutdown(self) {
        let _ = self.shutdown.send(true);
        let _ = self.task.await;
        if let Some(a) = self.admin_task {
            a.abort();
        }
    }

    /// Wait until the server stops (after a shutdown signal).
    pub async fn wait(self) {
        let _ = self.task.await;
        if let Some(a) = self.admin_task {
            a.abort();
        }
    }

    /// A handle that triggers shutdown.
    pub fn shutdown_handle(&self) -> watch::Sender<bool> {
        self.shutdown.clone()
    }
}

/// Start egress in-process on `args` (use `EgressArgs::new(dir)` for port 0),
/// reading `token_env` values from `env` (not from the process environment).
/// Reload with [`Running::reload`]; no SIGHUP handler is installed.
pub async fn spawn(args: EgressArgs, env: HashMap<String, String>) -> Result<Running, StartError> {
    start(args, EnvSource::from_map(env), false).await
}

/// Start egress. `sighup`: install the SIGHUP reload task (the binary does).
pub async fn start(args: EgressArgs, env: EnvSource, sighup: bool) -> Result<Running, StartError> {
    bottle_core::tls::install_default_provider();
    let timeouts = args.timeouts();
    let common = &args.common;
    let metrics = Arc::new(Metrics::new());
    let em = EgressMetrics::register(&metrics);
    let status = common
        .status_file
        .as_ref()
        .map(|p| StatusFile::new(p.clone(), COMPONENT));
    let dir = common.config_dir.clone();
    let loader = move || {
        let c = EgressConfig::load(&dir, &env)?;
        let sha = c.live.sha256.clone();
        Ok((c, sha))
    };
    let cfg = if sighup {
        reload::start(COMPONENT, loader, status, &metrics)?
    } else {
        reload::build(COMPONENT, loader, status, &metrics)?
    };
    let resolver =
        Arc::new(Resolver::new(&common.resolve).map_err(|e| StartError::Resolver(e.to_string()))?);
    let audit = AuditLog::from_args(common).map_err(|source| StartError::Audit {
        path: common.audit_log.clone().unwrap_or_default(),
        source,
    })?;
    let clients = client_pair(
        common.upstream_ca.as_deref(),
        PoolSettings {
            idle_timeout: timeouts.idle,
            max_idle_per_host: 256,
            max_conns: MAX_ORIGIN_CONNS,
        },
        |tls| Connector {
            cfg: Arc::clone(&cfg),
            resolver: Arc::clone(&resolver),
            tls,
            timeouts,
        },
    )
    .map_err(|e| StartError::Tls(e.to_string()))?;
    let client_key = match &args.client_key_env {
        Some(name) => Some(
            PeerKey::from_env(name)
                .map_err(|e| StartError::Usage(format!("--client-key-env: {e}")))?,
        ),
        None => None,
    };
    let tracker = TaskTracker::new();
    let shared = Arc::new(State {
        cfg: Arc::clone(&cfg),
        resolver: Arc::clone(&resolver),
        audit,
        metrics: em,
        client: clients.main,
        client_h1: clients.h1,
        timeouts,
        tracker: tracker.clone(),
        client_key,
        supervise_url: common.supervise_url.clone(),
    });
    let listen = peer::listen_addr(common.listen, args.listen_via.as_deref(), LISTEN_VIA_WAIT)
        .await
        .map_err(StartError::Usage)?;
    let listener = TcpListener::bind(listen)
        .await
        .map_err(|source| StartError::Listen {
            addr: listen,
            source,
        })?;
    let addr = listener.local_addr().map_err(|source| StartError::Listen {
        addr: listen,
        source,
    })?;
    let mut admin_addr = None;
    let mut admin_task = None;
    if let Some(a) = common.admin_listen {
        let l = TcpListener::bind(a)
            .await
            .map_err(|source| StartError::Listen { addr: a, source })?;
        admin_addr = l.local_addr().ok();
        let m = Arc::clone(&metrics);
        admin_task = Some(tokio::spawn(async move {
            if let Err(e) = bottle_core::admin::serve_admin_on(l, || true, m).await {
                tracing::error!(error = %e, "admin listener failed");
            }
        }));
    }
    let (tx, mut rx) = watch::channel(false);
    let refusals = shared.metrics.clone();
    let opts = ServeOptions::new(COMPONENT, args.limits.clone())
        .on_refusal(move |kind| refusals.request("none", kind))
        .tracker(tracker)
        // pipelock sends requests that need trailers (gRPC) over HTTP/2
        .http2(true);
    let task = tokio::spawn(serve(
        listener,
        opts,
        move |req| {
            let sh = Arc::clone(&shared);
            async move {
                match handle(sh, req).await {
                    Ok(r) => r,
                    Err(never) => match never {},
                }
            }
        },
        async move {
            let _ = rx.wait_for(|s| *s).await;
        },
    ));
    tracing::info!(%addr, "egress listening");
    Ok(Running {
        addr,
        admin_addr,
        config: cfg,
        metrics,
        shutdown: tx,
        task,
        admin_task,
    })
}
