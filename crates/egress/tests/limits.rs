//! The listener limits hold for egress (bottle-core `serve`): connection cap, head caps,
//! header-read and idle timeouts, bounded drain. Real TCP to the real binary; the echo
//! origin's request counter proves what never arrived.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use common::*;
use http::{Method, StatusCode};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A generous bound for "egress closed it": a liveness check, not a speed assertion.
const LIVENESS: Duration = Duration::from_secs(10);

fn head(fx: &Fixture, path: &str, extra: &str) -> String {
    let url = fx.http_url("open.test", path);
    let host = url
        .trim_start_matches("http://")
        .split('/')
        .next()
        .unwrap()
        .to_string();
    format!("GET {url} HTTP/1.1\r\nHost: {host}\r\n{extra}\r\n")
}

/// Everything egress sends until it closes the connection; panics if it stays open.
async fn read_to_close(s: &mut TcpStream) -> String {
    let mut out = Vec::new();
    let r = tokio::time::timeout(LIVENESS, async {
        let mut b = [0u8; 4096];
        loop {
            match s.read(&mut b).await {
                Ok(0) | Err(_) => break,
                Ok(n) => out.extend_from_slice(&b[..n]),
            }
        }
    })
    .await;
    assert!(
        r.is_ok(),
        "egress kept the connection open: {}",
        String::from_utf8_lossy(&out)
    );
    String::from_utf8_lossy(&out).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_the_connection_cap_the_next_connection_gets_a_503() {
    bounded(async {
        let fx = Fixture::with(&routes_yaml(), ALLOWLIST, &["--max-connections", "2"]).await;
        let held = [
            TcpStream::connect(fx.eg.addr).await.unwrap(),
            TcpStream::connect(fx.eg.addr).await.unwrap(),
        ];
        let mut extra = TcpStream::connect(fx.eg.addr).await.unwrap();
        extra
            .write_all(head(&fx, "/over-cap", "").as_bytes())
            .await
            .unwrap();
        let text = read_to_close(&mut extra).await;
        assert!(text.starts_with("HTTP/1.1 503 "), "{text}");
        assert!(text.contains("\r\nX-Bottle-Blocked: egress\r\n"), "{text}");
        assert!(
            text.ends_with(
                "\r\n\r\nblocked by egress: too many connections (limit 2); retry later\n"
            ),
            "{text}"
        );
        assert_eq!(fx.origin.total_requests(), 0);
        assert!(fx
            .eg
            .metrics()
            .await
            .contains("egress_requests_total{route=\"none\",outcome=\"connection_limit\"} 1"));
        // once the cap's connections go, egress serves again (raw TCP: a 503 written at
        // accept can precede the request, which hyper's client would call unexpected)
        drop(held);
        let end = Instant::now() + LIVENESS;
        loop {
            let mut s = TcpStream::connect(fx.eg.addr).await.unwrap();
            let _ = s
                .write_all(head(&fx, "/after", "Connection: close\r\n").as_bytes())
                .await;
            let text = read_to_close(&mut s).await;
            if text.starts_with("HTTP/1.1 200 ") {
                break;
            }
            assert!(text.starts_with("HTTP/1.1 503 "), "{text}");
            assert!(Instant::now() < end, "egress never served again");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(fx.origin.requests().iter().all(|r| r.path == "/after"));
        fx.finish();
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_head_over_the_header_caps_gets_431_and_never_reaches_the_origin() {
    bounded(async {
        let fx = Fixture::with(
            &routes_yaml(),
            ALLOWLIST,
            &["--max-header-bytes", "16384", "--max-headers", "20"],
        )
        .await;
        // control: the same shape under the caps goes through
        let mut s = TcpStream::connect(fx.eg.addr).await.unwrap();
        let ok = head(
            &fx,
            "/small",
            &format!("X-Big: {}\r\nConnection: close\r\n", "a".repeat(4000)),
        );
        s.write_all(ok.as_bytes()).await.unwrap();
        let text = read_to_close(&mut s).await;
        assert!(text.starts_with("HTTP/1.1 200 "), "{text}");
        assert_eq!(fx.origin.total_requests(), 1);
        // 20 000 bytes of one header: under hyper's own default cap, over ours
        let mut s = TcpStream::connect(fx.eg.addr).await.unwrap();
        let big = head(&fx, "/big", &format!("X-Big: {}\r\n", "a".repeat(20_000)));
        let _ = s.write_all(big.as_bytes()).await;
        let text = read_to_close(&mut s).await;
        assert!(text.starts_with("HTTP/1.1 431 "), "{text}");
        // 40 small header fields: over --max-headers 20
        let mut s = TcpStream::connect(fx.eg.addr).await.unwrap();
        let many: String = (0..40).map(|i| format!("X-H{i}: v\r\n")).collect();
        s.write_all(head(&fx, "/many", &many).as_bytes())
            .await
            .unwrap();
        let text = read_to_close(&mut s).await;
        assert!(text.starts_with("HTTP/1.1 431 "), "{text}");
        assert_eq!(fx.origin.total_requests(), 1, "{:?}", fx.origin.requests());
        fx.finish();
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slowloris_head_is_cut_off_after_the_header_timeout() {
    bounded(async {
        let fx = Fixture::with(&routes_yaml(), ALLOWLIST, &["--header-timeout-secs", "1"]).await;
        let mut s = TcpStream::connect(fx.eg.addr).await.unwrap();
        let url = fx.http_url("open.test", "/slowloris");
        s.write_all(format!("GET {url} HTTP/1.1\r\n").as_bytes())
            .await
            .unwrap();
        // one header line every 200 ms: never silent, never complete
        let cut = tokio::time::timeout(LIVENESS, async {
            for i in 0.. {
                tokio::time::sleep(Duration::from_millis(200)).await;
                if s.write_all(format!("X-Drip-{i}: a\r\n").as_bytes())
                    .await
                    .is_err()
                {
                    return;
                }
                let mut b = [0u8; 512];
                if let Ok(r) = tokio::time::timeout(Duration::from_millis(10), s.read(&mut b)).await
                {
                    // closed (0 / error) or an error response before the close
                    let _ = r;
                    return;
                }
            }
        })
        .await;
        assert!(cut.is_ok(), "egress let a head trickle in for {LIVENESS:?}");
        assert_eq!(fx.origin.total_requests(), 0);
        fx.finish();
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_kept_alive_connection_is_closed_after_the_idle_timeout() {
    bounded(async {
        // header timeout at its 30 s default: only the idle timeout can close it within LIVENESS
        let fx = Fixture::with(&routes_yaml(), ALLOWLIST, &["--idle-timeout-secs", "1"]).await;
        let mut s = TcpStream::connect(fx.eg.addr).await.unwrap();
        s.write_all(head(&fx, "/then-silence", "").as_bytes())
            .await
            .unwrap();
        let text = read_to_close(&mut s).await;
        assert!(text.starts_with("HTTP/1.1 200 "), "{text}");
        assert_eq!(fx.origin.total_requests(), 1);
        fx.finish();
    })
    .await
}

async fn wait_at_origin(fx: &Fixture, path: &str) {
    let end = Instant::now() + Duration::from_secs(30);
    while !fx.origin.requests().iter().any(|r| r.path == path) {
        assert!(Instant::now() < end, "request never reached the origin");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_lets_an_in_flight_request_finish_within_the_drain_time() {
    bounded(async {
        let mut fx = Fixture::with(&routes_yaml(), ALLOWLIST, &["--drain-secs", "30"]).await;
        let url = fx.http_url("open.test", "/slow?ms=2000");
        let addr = fx.eg.addr;
        let inflight = tokio::spawn(async move { get(addr, Method::GET, &url, &[]).await });
        wait_at_origin(&fx, "/slow").await;
        let mut child = fx.eg.child.take().unwrap();
        signal(child.id(), "TERM");
        let (st, _, body) = inflight.await.unwrap();
        assert_eq!(st, StatusCode::OK, "{}", String::from_utf8_lossy(&body));
        assert!(String::from_utf8_lossy(&body).contains("\"slept_ms\":2000"));
        let exit = wait_timeout(&mut child, Duration::from_secs(20));
        assert!(exit.is_some_and(|s| s.success()), "{exit:?}");
        assert!(TcpStream::connect(addr).await.is_err());
        assert_no_secret_in_files(fx.tmp.path(), &fx.secrets.all());
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_drain_time_bounds_a_request_that_never_finishes() {
    bounded(async {
        let mut fx = Fixture::with(&routes_yaml(), ALLOWLIST, &["--drain-secs", "1"]).await;
        let mut s = TcpStream::connect(fx.eg.addr).await.unwrap();
        s.write_all(head(&fx, "/slow?ms=3600000", "").as_bytes())
            .await
            .unwrap();
        wait_at_origin(&fx, "/slow").await;
        let mut child = fx.eg.child.take().unwrap();
        signal(child.id(), "TERM");
        let exit = wait_timeout(&mut child, Duration::from_secs(20));
        assert!(exit.is_some_and(|s| s.success()), "{exit:?}");
        // At the drain deadline the runtime goes down: either the connection is dropped
        // unanswered, or (when the upstream client's task is dropped first) egress still gets
        // to answer 502. Either way the agent is never left hanging and nothing else arrives.
        let answer = read_to_close(&mut s).await;
        assert!(
            answer.is_empty()
                || (answer.starts_with("HTTP/1.1 502 ")
                    && answer.contains("x-bottle-blocked: egress")),
            "{answer}"
        );
        for secret in fx.secrets.all() {
            assert!(!answer.contains(secret.as_str()), "a secret in the answer");
        }
        assert_no_secret_in_files(fx.tmp.path(), &fx.secrets.all());
    })
    .await
}

/// SIGTERM as soon as the port is announced drains and exits 0: the handlers are installed
/// before the `listening=` line (they were installed later, and such a SIGTERM killed egress).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_right_after_start_exits_cleanly() {
    bounded(async {
        let tmp = tempfile::tempdir().unwrap();
        write_config(&tmp.path().join("live-config"), &routes_yaml(), ALLOWLIST);
        let secrets = Secrets::new();
        let env = secrets.env();
        for _ in 0..10 {
            let mut eg = start_egress(tmp.path(), &env, None, &[])
                .unwrap_or_else(|(e, st)| panic!("egress did not start ({st:?}): {e}"));
            let mut child = eg.child.take().unwrap();
            signal(child.id(), "TERM");
            let exit = wait_timeout(&mut child, Duration::from_secs(20));
            assert!(exit.is_some_and(|s| s.success()), "{exit:?}");
        }
        assert_no_secret_in_files(tmp.path(), &secrets.all());
    })
    .await
}
