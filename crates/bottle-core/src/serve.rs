//! The one HTTP/1.1 accept loop every sidecar runs: a connection cap (over it a one-line 503),
//! `TCP_NODELAY`, an idle timeout on every connection ([`IdleIo`]), a header-read timeout,
//! head size and header count caps, upgrades, and a graceful drain bounded by the drain time.
//! The limits are flags ([`ServeLimits`]) flattened into each sidecar's arguments, so they hold
//! for every listener by construction. A listener may also take HTTP/2 by prior knowledge
//! ([`ServeOptions::http2`]: egress, for pipelock's hop of requests that need trailers).

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use http::{Request, Response};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};

pub use tokio_util::task::task_tracker::TaskTrackerToken;
pub use tokio_util::task::TaskTracker;

use crate::idle::IdleIo;
use crate::BoxBody;

/// Listener limits (hidden flags: the defaults are the product; tests lower them).
#[derive(clap::Args, Debug, Clone, PartialEq, Eq)]
pub struct ServeLimits {
    /// Maximum concurrent client connections; more get a 503 and are closed.
    #[arg(long, value_name = "N", default_value_t = 4096, hide = true)]
    pub max_connections: usize,
    /// Seconds a connection may stay silent (both directions) before it is closed.
    #[arg(long, value_name = "SECS", default_value_t = 120, hide = true)]
    pub idle_timeout_secs: u64,
    /// Seconds to receive a complete request head (also while a kept-alive connection waits).
    #[arg(long, value_name = "SECS", default_value_t = 30, hide = true)]
    pub header_timeout_secs: u64,
    /// Maximum request head size in bytes (at least 8192); larger heads get 431.
    #[arg(long, value_name = "BYTES", default_value_t = 64 * 1024, hide = true)]
    pub max_header_bytes: usize,
    /// Maximum number of request header fields; more get 431.
    #[arg(long, value_name = "N", default_value_t = 100, hide = true)]
    pub max_headers: usize,
    /// Seconds SIGTERM waits for in-flight requests before closing what is left.
    #[arg(
        long,
        value_name = "SECS",
        default_value_t = 5,
        hide = true,
        alias = "drain-timeout"
    )]
    pub drain_secs: u64,
}

impl Default for ServeLimits {
    fn default() -> Self {
        ServeLimits {
            max_connections: 4096,
            idle_timeout_secs: 120,
            header_timeout_secs: 30,
            max_header_bytes: 64 * 1024,
            max_headers: 100,
            drain_secs: 5,
        }
    }
}

impl ServeLimits {
    pub fn idle(&self) -> Duration {
        Duration::from_secs(self.idle_timeout_secs.max(1))
    }
    pub fn header_timeout(&self) -> Duration {
        Duration::from_secs(self.header_timeout_secs.max(1))
    }
    pub fn drain(&self) -> Duration {
        Duration::from_secs(self.drain_secs)
    }
    /// hyper's read buffer cap; hyper refuses anything under 8 KiB.
    pub fn max_buf_size(&self) -> usize {
        self.max_header_bytes.max(8192)
    }
}

/// Called with the refusal kind (`connection_limit`) so the sidecar can count it.
pub type RefusalHook = Arc<dyn Fn(&'static str) + Send + Sync>;

/// Everything about a listener except its handler.
#[derive(Clone)]
pub struct ServeOptions {
    /// Names the refusals (`X-Bottle-Blocked`, `blocked by <component>: ...`).
    pub component: &'static str,
    pub limits: ServeLimits,
    pub on_refusal: RefusalHook,
    /// Connection tasks run here; the drain waits for everything in it (sidecars spawn
    /// their own long-lived work, e.g. tunnels, on the same tracker to have it drained too).
    pub tracker: TaskTracker,
    /// Also serve HTTP/2 by prior knowledge (told apart by its connection preface).
    pub http2: bool,
}

impl ServeOptions {
    pub fn new(component: &'static str, limits: ServeLimits) -> ServeOptions {
        ServeOptions {
            component,
            limits,
            on_refusal: Arc::new(|_| {}),
            tracker: TaskTracker::new(),
            http2: false,
        }
    }
    /// Serve HTTP/2 by prior knowledge beside HTTP/1.1.
    pub fn http2(mut self, on: bool) -> Self {
        self.http2 = on;
        self
    }
    pub fn on_refusal(mut self, hook: impl Fn(&'static str) + Send + Sync + 'static) -> Self {
        self.on_refusal = Arc::new(hook);
        self
    }
    pub fn tracker(mut self, tracker: TaskTracker) -> Self {
        self.tracker = tracker;
        self
    }
}

/// At most this many over-the-cap refusals are written at once; beyond it a connection is
/// just closed (a flood must not cost more than the cap it is refused by).
const MAX_REFUSALS_IN_FLIGHT: usize = 64;
/// Accept errors (EMFILE and friends) back off from this up to `ACCEPT_BACKOFF_MAX`.
const ACCEPT_BACKOFF_MIN: Duration = Duration::from_millis(10);
const ACCEPT_BACKOFF_MAX: Duration = Duration::from_secs(1);
/// Concurrent HTTP/2 streams on one connection (a gRPC stream or long poll holds one).
pub const MAX_H2_STREAMS: u32 = 1024;

/// Serves `listener` with `handler` until `shutdown` resolves; then stops accepting, lets
/// requests in flight finish (keep-alive connections close after their current request) for up
/// to the drain time, closes what is left and returns.
pub async fn serve<H, F>(
    listener: TcpListener,
    opts: ServeOptions,
    handler: H,
    shutdown: impl Future<Output = ()>,
) where
    H: Fn(Request<Incoming>) -> F + Send + Sync + 'static,
    F: Future<Output = Response<BoxBody>> + Send + 'static,
{
    let handler = Arc::new(handler);
    let limits = Arc::new(opts.limits.clone());
    let permits = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let refusals = Arc::new(Semaphore::new(MAX_REFUSALS_IN_FLIGHT));
    // `drain`: finish the current request then close; `close`: the drain time is over.
    let (drain_tx, drain_rx) = watch::channel(false);
    let (close_tx, close_rx) = watch::channel(false);
    let tracker = opts.tracker.clone();
    let mut backoff = ACCEPT_BACKOFF_MIN;
    tokio::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            () = &mut shutdown => break,
        };
        let stream = match accepted {
            Ok((s, _)) => {
                backoff = ACCEPT_BACKOFF_MIN;
                s
            }
            Err(e) => {
                tracing::warn!(error = %e, component = opts.component, "accept failed");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(ACCEPT_BACKOFF_MAX);
                continue;
            }
        };
        match permits.clone().try_acquire_owned() {
            Ok(permit) => {
                tracker.spawn(connection(
                    stream,
                    permit,
                    Arc::clone(&handler),
                    Arc::clone(&limits),
                    opts.http2,
                    drain_rx.clone(),
                    close_rx.clone(),
                ));
            }
            Err(_) => {
                (opts.on_refusal)("connection_limit");
                if let Ok(slot) = refusals.clone().try_acquire_owned() {
                    tokio::spawn(too_busy(
                        stream,
                        opts.component,
                        limits.max_connections,
                        slot,
                    ));
                }
            }
        }
    }
    drop(listener);
    let _ = drain_tx.send(true);
    tracker.close();
    tracing::info!(
        component = opts.component,
        connections = tracker.len(),
        "draining"
    );
    if tokio::time::timeout(limits.drain(), tracker.wait())
        .await
        .is_err()
    {
        tracing::warn!(
            component = opts.component,
            "drain time over: closing remaining connections"
        );
        let _ = close_tx.send(true);
    }
}

async fn wait_true(rx: &mut watch::Receiver<bool>) {
    // A dropped sender means the server is gone: treat it as set.
    let _ = rx.wait_for(|v| *v).await;
}

async fn connection<H, F>(
    stream: TcpStream,
    _permit: OwnedSemaphorePermit,
    handler: Arc<H>,
    limits: Arc<ServeLimits>,
    http2: bool,
    mut drain: watch::Receiver<bool>,
    mut close: watch::Receiver<bool>,
) where
    H: Fn(Request<Incoming>) -> F + Send + Sync + 'static,
    F: Future<Output = Response<BoxBody>> + Send + 'static,
{
    let _ = stream.set_nodelay(true);
    let io = TokioIo::new(IdleIo::new(stream, limits.idle()));
    let svc = hyper::service::service_fn(move |req| {
        let fut = handler(req);
        async move { Ok::<_, Infallible>(fut.await) }
    });
    if http2 {
        let mut b = auto::Builder::new(TokioExecutor::new());
        b.http1()
            .timer(TokioTimer::new())
            .header_read_timeout(limits.header_timeout())
            .max_buf_size(limits.max_buf_size())
            .max_headers(limits.max_headers);
        // The head caps of HTTP/1.1 hold for HTTP/2 too; streams are bounded like tunnels.
        b.http2()
            .timer(TokioTimer::new())
            .max_concurrent_streams(MAX_H2_STREAMS)
            .max_pending_accept_reset_streams(Some(20))
            .max_local_error_reset_streams(Some(64))
            .max_header_list_size(u32::try_from(limits.max_buf_size()).unwrap_or(u32::MAX))
            .adaptive_window(true);
        let conn = b.serve_connection_with_upgrades(io, svc);
        until_drained(conn, |c| c.graceful_shutdown(), &mut drain, &mut close).await;
        return;
    }
    let conn = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout())
        .max_buf_size(limits.max_buf_size())
        .max_headers(limits.max_headers)
        .serve_connection(io, svc)
        .with_upgrades();
    until_drained(conn, |c| c.graceful_shutdown(), &mut drain, &mut close).await;
}

/// Drives a connection until it ends; once `drain` is set, asks it to finish what it has
/// (`graceful`) and waits for that, or for `close`.
async fn until_drained<C, E>(
    conn: C,
    graceful: impl FnOnce(Pin<&mut C>),
    drain: &mut watch::Receiver<bool>,
    close: &mut watch::Receiver<bool>,
) where
    C: Future<Output = Result<(), E>>,
    E: std::fmt::Display,
{
    tokio::pin!(conn);
    tokio::select! {
        r = conn.as_mut() => {
            if let Err(e) = r {
                tracing::debug!(error = %e, "connection ended");
            }
            return;
        }
        () = wait_true(drain) => graceful(conn.as_mut()),
    }
    tokio::select! {
        _ = conn.as_mut() => {}
        () = wait_true(close) => {}
    }
}

/// The refusal for a connection over the cap: a 503 the client can read, then close. Reading
/// what the client already sent before closing keeps the kernel from answering with a reset
/// that would hide the 503.
async fn too_busy(
    mut stream: TcpStream,
    component: &'static str,
    limit: usize,
    _slot: OwnedSemaphorePermit,
) {
    let body =
        format!("blocked by {component}: too many connections (limit {limit}); retry later\n");
    let msg = format!(
        "HTTP/1.1 503 Service Unavailable\r\nX-Bottle-Blocked: {component}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = tokio::time::timeout(Duration::from_secs(2), async {
        stream.write_all(msg.as_bytes()).await?;
        stream.shutdown().await?;
        let mut sink = [0u8; 4096];
        let mut left: usize = 64 * 1024;
        while left > 0 {
            let n = stream.read(&mut sink).await?;
            if n == 0 {
                break;
            }
            left = left.saturating_sub(n);
        }
        Ok::<_, std::io::Error>(())
    })
    .await;
}

#[cfg(test)]
#[path = "serve_tests.rs"]
mod tests;
