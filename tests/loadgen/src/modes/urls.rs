//! `--urls FILE` (first contact with many host names): every URL gets exactly one GET on a
//! new connection (TCP, CONNECT host:port, TLS with SNI = host, request, whole body, close).
//! `-c` workers share one queue. Latency: TCP connect start to body end.

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use http_body_util::Empty;
use serde::Serialize;

use crate::conn::{fetch, within, Dialer, Endpoint, LoadError};
use crate::stats::{percentile_ms, r3, to_json, us_since, Outcome, Reasons};
use crate::Args;

/// `--json` result. Latencies are of the successes, TCP connect start to body end.
#[derive(Serialize)]
struct Report {
    mode: &'static str,
    requests: usize,
    ok: usize,
    failed: u64,
    secs: f64,
    /// ok / secs.
    per_sec: f64,
    p50_ms: f64,
    p99_ms: f64,
}

/// The URLs of a `--urls` file: one per line, surrounding blanks trimmed; blank lines and
/// lines starting with `#` are skipped. An unparsable line is an error naming its number.
pub fn parse_url_file(text: &str) -> Result<Vec<Endpoint>, String> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let ep = Endpoint::parse(line).map_err(|e| format!("line {}: {line:?}: {e}", i + 1))?;
        out.push(ep);
    }
    Ok(out)
}

/// One GET on a new connection; `Err` carries the failure reason.
async fn one(dialer: &Dialer, ep: &Endpoint, limit: Duration) -> Result<(), String> {
    let via_proxy = dialer.proxy.is_some();
    let (mut send, conn) = within(limit, "connect", dialer.http1::<Empty<bytes::Bytes>>(ep))
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let req = ep.get(via_proxy).map_err(|e| e.to_string())?;
    let got = within(limit, "response", fetch(&mut send, req)).await;
    drop(send);
    conn.abort();
    match got {
        Ok((s, _)) if s == http::StatusCode::OK => Ok(()),
        Ok((s, _)) => Err(format!("status {s}")),
        Err(e) => Err(e.to_string()),
    }
}

struct Shared {
    dialer: Dialer,
    eps: Vec<Endpoint>,
    next: AtomicUsize,
    limit: Duration,
    reasons: Reasons,
}

/// Takes URLs off the shared queue until it is empty; returns latencies (µs) of the
/// successes and the number of failures.
async fn worker(s: Arc<Shared>) -> (Vec<u64>, u64) {
    let (mut lat, mut failed) = (Vec::new(), 0u64);
    loop {
        let i = s.next.fetch_add(1, Ordering::Relaxed);
        let Some(ep) = s.eps.get(i) else {
            return (lat, failed);
        };
        let start = Instant::now();
        match one(&s.dialer, ep, s.limit).await {
            Ok(()) => lat.push(us_since(start)),
            Err(reason) => {
                failed += 1;
                s.reasons.report(&ep.uri.to_string(), &reason);
            }
        }
    }
}

pub async fn run(args: &Args, file: &Path) -> Result<Outcome, LoadError> {
    let text = std::fs::read_to_string(file)
        .map_err(|e| LoadError::Msg(format!("--urls {}: {e}", file.display())))?;
    let eps = parse_url_file(&text)
        .map_err(|e| LoadError::Msg(format!("--urls {}: {e}", file.display())))?;
    if eps.is_empty() {
        return Err(LoadError::Msg(format!("--urls {}: no URL", file.display())));
    }
    let shared = Arc::new(Shared {
        dialer: args.dialer()?,
        eps,
        next: AtomicUsize::new(0),
        limit: args.step_timeout(),
        reasons: Reasons::new(3),
    });
    let started = Instant::now();
    let workers = args.concurrency_or(8).min(shared.eps.len());
    let (mut lat, failed) = super::gather(workers, || worker(shared.clone())).await?;
    let secs = started.elapsed().as_secs_f64();
    lat.sort_unstable();
    let requests = shared.eps.len();
    let ok = lat.len();
    let per_sec = ok as f64 / secs;
    let (p50, p99) = (percentile_ms(&lat, 0.50), percentile_ms(&lat, 0.99));
    let text = format!(
        "mode=urls requests={requests} ok={ok} failed={failed} secs={secs:.2} per_sec={per_sec:.1} p50_ms={p50:.2} p99_ms={p99:.2}"
    );
    let json = to_json(&Report {
        mode: "urls",
        requests,
        ok,
        failed,
        secs: r3(secs),
        per_sec: r3(per_sec),
        p50_ms: p50,
        p99_ms: p99,
    });
    let failure = (ok == 0).then(|| "no URL answered 200".to_string());
    Ok(Outcome {
        json,
        text,
        failure,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_file() {
        let eps = parse_url_file(
            "# hosts\n\nhttps://a.w5.test/\n   https://b.w5.test:8443/x?y=1  \r\n  # indented comment\nhttp://c.test\n",
        )
        .unwrap();
        let got: Vec<_> = eps.iter().map(|e| (e.https, e.authority())).collect();
        assert_eq!(
            got,
            vec![
                (true, "a.w5.test:443".to_string()),
                (true, "b.w5.test:8443".to_string()),
                (false, "c.test:80".to_string()),
            ]
        );
        assert_eq!(eps[1].request_uri(true), "/x?y=1");
        assert!(parse_url_file("").unwrap().is_empty());
        assert!(parse_url_file("# only\n\n").unwrap().is_empty());
        let e = parse_url_file("https://ok.test/\nnot a url\n").unwrap_err();
        assert!(e.starts_with("line 2:"), "{e}");
        assert!(parse_url_file("ftp://x.test/\n").is_err());
    }
}
