//! Default mode: `-c` keep-alive connections send GETs (or POSTs with --upload) back to back
//! for `-d` seconds. The text line is parsed by crates/egress/bench/run.sh: keep it as is.

use std::sync::Arc;
use std::time::{Duration, Instant};

use http::Request;
use http_body_util::Full;
use hyper_util::rt::TokioIo;
use serde::Serialize;

use crate::conn::{fetch, Dialer, Endpoint, LoadError};
use crate::stats::{percentile_ms, r3, to_json, us_since, Outcome};
use crate::Args;

/// `--json` result.
#[derive(Serialize)]
struct Report {
    mode: &'static str,
    requests: usize,
    errors: u64,
    secs: f64,
    rps: f64,
    p50_ms: f64,
    p99_ms: f64,
    /// Downloaded bytes (uploaded with --upload) per second, in 10^6 bytes.
    mb_per_s: f64,
}

struct Target {
    ep: Endpoint,
    dialer: Dialer,
    upload: bytes::Bytes,
}

async fn worker(t: Arc<Target>, deadline: Instant) -> (Vec<u64>, u64, u64) {
    let mut lat = Vec::new();
    let mut bytes = 0u64;
    let mut errors = 0u64;
    let via_proxy = t.dialer.proxy.is_some();
    while Instant::now() < deadline {
        let io = match t.dialer.connect(&t.ep).await {
            Ok(io) => io,
            Err(e) => {
                errors += 1;
                if errors < 3 {
                    eprintln!("loadgen: connect: {e}");
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Ok((mut send, conn)) =
            hyper::client::conn::http1::handshake::<_, Full<bytes::Bytes>>(TokioIo::new(io)).await
        else {
            errors += 1;
            continue;
        };
        tokio::spawn(conn);
        while Instant::now() < deadline {
            let method = if t.upload.is_empty() {
                http::Method::GET
            } else {
                http::Method::POST
            };
            let Ok(req) = Request::builder()
                .method(method)
                .uri(t.ep.request_uri(via_proxy))
                .header("host", t.ep.authority())
                .body(Full::new(t.upload.clone()))
            else {
                break;
            };
            let start = Instant::now();
            match fetch(&mut send, req).await {
                Ok((s, n)) if s.is_success() => {
                    lat.push(us_since(start));
                    bytes += if t.upload.is_empty() {
                        n
                    } else {
                        t.upload.len() as u64
                    };
                }
                Ok((s, _)) => {
                    errors += 1;
                    if errors < 3 {
                        eprintln!("loadgen: status {s}");
                    }
                }
                Err(e) => {
                    errors += 1;
                    if errors < 3 {
                        eprintln!("loadgen: {e}");
                    }
                    break;
                }
            }
        }
    }
    (lat, bytes, errors)
}

pub async fn run(args: &Args) -> Result<Outcome, LoadError> {
    let line = b"the quick brown fox jumps over the lazy dog 0123456789\n";
    let upload = bytes::Bytes::from(
        line.iter()
            .cycle()
            .take(args.upload)
            .copied()
            .collect::<Vec<u8>>(),
    );
    let t = Arc::new(Target {
        ep: args.endpoint()?,
        dialer: args.dialer()?,
        upload,
    });
    let started = Instant::now();
    let deadline = started + Duration::from_secs(args.duration.max(1));
    let mut tasks = Vec::new();
    for _ in 0..args.concurrency_or(8) {
        tasks.push(tokio::spawn(worker(t.clone(), deadline)));
    }
    let mut lat = Vec::new();
    let (mut bytes, mut errors) = (0u64, 0u64);
    for task in tasks {
        let (l, b, e) = task.await.map_err(|e| LoadError::Msg(e.to_string()))?;
        lat.extend(l);
        bytes += b;
        errors += e;
    }
    let secs = started.elapsed().as_secs_f64();
    lat.sort_unstable();
    let rps = lat.len() as f64 / secs;
    let (p50, p99) = (percentile_ms(&lat, 0.50), percentile_ms(&lat, 0.99));
    let mb_per_s = bytes as f64 / secs / 1_000_000.0;
    let text = format!(
        "requests={} errors={} secs={:.2} rps={:.0} p50_ms={:.2} p99_ms={:.2} mb_per_s={:.1}{}",
        lat.len(),
        errors,
        secs,
        rps,
        p50,
        p99,
        mb_per_s,
        if args.upload > 0 {
            " (upload)"
        } else if args.download {
            " (download)"
        } else {
            ""
        }
    );
    let json = to_json(&Report {
        mode: "keepalive",
        requests: lat.len(),
        errors,
        secs: r3(secs),
        rps: r3(rps),
        p50_ms: p50,
        p99_ms: p99,
        mb_per_s: r3(mb_per_s),
    });
    let failure = lat.is_empty().then(|| "no request succeeded".to_string());
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
    fn json_fields_in_order() {
        let r = Report {
            mode: "keepalive",
            requests: 3,
            errors: 0,
            secs: 1.5,
            rps: 2.0,
            p50_ms: 0.25,
            p99_ms: 1.0,
            mb_per_s: 0.0,
        };
        assert_eq!(
            to_json(&r),
            r#"{"mode":"keepalive","requests":3,"errors":0,"secs":1.5,"rps":2.0,"p50_ms":0.25,"p99_ms":1.0,"mb_per_s":0.0}"#
        );
    }
}
