//! `--hold N` (memory per idle tunnel): opens N connections (CONNECT + TLS + one GET of --url
//! each, whole response read, connection kept alive), `-c` being set up at a time; prints
//! `ready OPENED` once all are done, keeps them idle for --hold-secs (0: until stdin is
//! closed), then closes them all.
//!
//! Each connection is one file descriptor here: the caller raises the limit first
//! (`ulimit -n 65536`); the workspace forbids the unsafe code that `setrlimit` would need.

use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use http_body_util::Empty;
use hyper::client::conn::http1::SendRequest;
use serde::Serialize;
use tokio::io::AsyncReadExt;
use tokio::task::JoinHandle;

use crate::conn::{fetch, within, Dialer, Endpoint, LoadError};
use crate::stats::{r3, to_json, Outcome, Reasons};
use crate::Args;

/// `--json` result.
#[derive(Serialize)]
struct Report {
    mode: &'static str,
    opened: usize,
    failed: u64,
    /// Start -> every connection opened (or failed).
    secs_to_open: f64,
    /// Opened connections the peer had closed by the end of the hold.
    closed_early: usize,
}

/// One open keep-alive connection. Dropping it closes the connection.
struct Held {
    send: SendRequest<Empty<bytes::Bytes>>,
    conn: JoinHandle<()>,
}

impl Drop for Held {
    fn drop(&mut self) {
        self.conn.abort();
    }
}

async fn open_one(dialer: &Dialer, ep: &Endpoint, limit: Duration) -> Result<Held, LoadError> {
    let (send, conn) = within(limit, "connect", dialer.http1(ep)).await?;
    // From here on, dropping `held` (on any error) closes the connection.
    let mut held = Held { send, conn };
    let req = ep.get(dialer.proxy.is_some())?;
    let (status, _) = within(limit, "response", fetch(&mut held.send, req)).await?;
    if status != http::StatusCode::OK {
        return Err(LoadError::Msg(format!("status {status}")));
    }
    Ok(held)
}

struct Shared {
    dialer: Dialer,
    ep: Endpoint,
    n: usize,
    next: AtomicUsize,
    /// Set on "too many open files": every worker stops, the run fails.
    out_of_fds: AtomicBool,
    limit: Duration,
    reasons: Reasons,
}

async fn worker(s: Arc<Shared>) -> (Vec<Held>, u64) {
    let (mut held, mut failed) = (Vec::new(), 0u64);
    while !s.out_of_fds.load(Ordering::Relaxed) && s.next.fetch_add(1, Ordering::Relaxed) < s.n {
        match open_one(&s.dialer, &s.ep, s.limit).await {
            Ok(h) => held.push(h),
            Err(LoadError::TooManyFiles) => {
                s.out_of_fds.store(true, Ordering::Relaxed);
                failed += 1;
            }
            Err(e) => {
                failed += 1;
                s.reasons.report("open", &e.to_string());
            }
        }
    }
    (held, failed)
}

/// Waits until stdin reaches end of file (or fails).
async fn stdin_closed() {
    let mut stdin = tokio::io::stdin();
    let mut buf = [0u8; 1024];
    while let Ok(n) = stdin.read(&mut buf).await {
        if n == 0 {
            return;
        }
    }
}

pub async fn run(args: &Args, n: usize) -> Result<Outcome, LoadError> {
    let shared = Arc::new(Shared {
        dialer: args.dialer()?,
        ep: args.endpoint()?,
        n,
        next: AtomicUsize::new(0),
        out_of_fds: AtomicBool::new(false),
        limit: args.step_timeout(),
        reasons: Reasons::new(3),
    });
    let started = Instant::now();
    let workers = args.concurrency_or(32).min(n.max(1));
    let (held, failed) = super::gather(workers, || worker(shared.clone())).await?;
    if shared.out_of_fds.load(Ordering::Relaxed) {
        return Err(LoadError::TooManyFiles);
    }
    let secs_to_open = started.elapsed().as_secs_f64();
    let opened = held.len();
    {
        let mut out = std::io::stdout().lock();
        writeln!(out, "ready {opened}")?;
        out.flush()?;
    }
    if args.hold_secs == 0 {
        stdin_closed().await;
    } else {
        tokio::time::sleep(Duration::from_secs(args.hold_secs)).await;
    }
    // Connections the peer (proxy or origin) closed while they were idle.
    let closed_early = held.iter().filter(|h| h.conn.is_finished()).count();
    drop(held);
    let text = format!(
        "mode=hold opened={opened} failed={failed} secs_to_open={secs_to_open:.2} closed_early={closed_early}"
    );
    let json = to_json(&Report {
        mode: "hold",
        opened,
        failed,
        secs_to_open: r3(secs_to_open),
        closed_early,
    });
    let failure = (opened == 0).then(|| "no connection opened".to_string());
    Ok(Outcome {
        json,
        text,
        failure,
    })
}
