//! Integration tests: every endpoint, driven by the system `curl` and by a Rust client
//! (hyper client connections over rustls), over plain TCP and TLS, HTTP/1.1 and HTTP/2.
//! This file: echo and SSE; the other endpoints are in `endpoints_*.rs`, helpers in
//! `support/`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use bytes::Bytes;
use echo_origin::TestCa;
use http::StatusCode;
use http_body_util::BodyExt;
use serde_json::Value;
use tokio::io::AsyncBufReadExt;

mod support;
use support::*;

// ---------------------------------------------------------------- echo

#[tokio::test]
async fn echo_curl_http1_plain_keeps_header_order_and_duplicates() {
    let o = start().await;
    let url = o.http_url("/some/path?a=1&b=%20x");
    let out = curl(&[
        "-X",
        "PATCH",
        "-H",
        "X-Dup: one",
        "-H",
        "X-Other: o",
        "-H",
        "X-Dup: two",
        "--data-binary",
        "hello body",
        &url,
    ])
    .await;
    let v = json(&stdout(&out));
    assert_eq!(v["method"], "PATCH");
    assert_eq!(v["path"], "/some/path");
    assert_eq!(v["query"], "a=1&b=%20x");
    assert_eq!(v["version"], "HTTP/1.1");
    assert_eq!(v["tls"], false);
    assert_eq!(v["sni"], Value::Null);
    assert_eq!(v["body"], "hello body");
    assert_eq!(v["body_len"], 10);
    let h = header_strings(&v);
    let dups: Vec<&str> = h
        .iter()
        .filter(|(n, _)| n == "x-dup")
        .map(|(_, v)| v.as_str())
        .collect();
    assert_eq!(dups, ["one", "two"]);
    let pos = |name: &str| h.iter().position(|(n, _)| n == name).unwrap();
    assert!(pos("x-dup") < pos("x-other"));

    let seen = o.requests();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].method, "PATCH");
    assert_eq!(seen[0].body_len, 10);
    assert_eq!(seen[0].header_all("x-dup"), ["one", "two"]);
    assert_eq!(seen[0].query.as_deref(), Some("a=1&b=%20x"));
    assert!(!seen[0].tls);
}

#[tokio::test]
async fn echo_curl_h2c_prior_knowledge() {
    let o = start().await;
    let out = curl(&["--http2-prior-knowledge", &o.http_url("/h2c")]).await;
    let v = json(&stdout(&out));
    assert_eq!(v["version"], "HTTP/2.0");
    assert_eq!(v["path"], "/h2c");
    assert_eq!(o.requests()[0].version, "HTTP/2.0");
}

#[tokio::test]
async fn echo_curl_https_alpn_and_sni() {
    let o = start().await;
    let port = o.https_addr.port();
    let ca = o.ca_path.to_str().unwrap();
    let resolve = format!("echo.test:{port}:127.0.0.1");
    let url = format!("https://echo.test:{port}/tls");

    let v = json(&stdout(
        &curl(&["--cacert", ca, "--resolve", &resolve, "--http2", &url]).await,
    ));
    assert_eq!(v["tls"], true);
    assert_eq!(v["sni"], "echo.test");
    assert_eq!(v["alpn"], "h2");
    assert_eq!(v["version"], "HTTP/2.0");

    let v = json(&stdout(
        &curl(&["--cacert", ca, "--resolve", &resolve, "--http1.1", &url]).await,
    ));
    assert_eq!(v["sni"], "echo.test");
    assert_eq!(v["alpn"], "http/1.1");
    assert_eq!(v["version"], "HTTP/1.1");

    // An IP literal: clients send no SNI; the leaf covers 127.0.0.1.
    let v = json(&stdout(&curl(&["--cacert", ca, &o.https_url("/ip")]).await));
    assert_eq!(v["sni"], Value::Null);
    assert_eq!(v["tls"], true);

    let seen = o.requests();
    assert_eq!(seen.len(), 3);
    assert_eq!(seen[0].sni.as_deref(), Some("echo.test"));
    assert_eq!(seen[0].alpn.as_deref(), Some("h2"));
    assert_eq!(seen[1].alpn.as_deref(), Some("http/1.1"));
    assert_eq!(seen[2].sni, None);
}

#[tokio::test]
async fn tls_leaf_verifies_only_against_the_test_ca() {
    let o = start().await;
    // No --cacert: the system roots do not know the test CA.
    let out = curl(&[&o.https_url("/")]).await;
    assert_eq!(
        out.status.code(),
        Some(60),
        "want curl error 60 (cert verify)"
    );
    // Another test CA does not verify it either.
    let dir = tempfile::tempdir().unwrap();
    let other = TestCa::new().write_cert(dir.path());
    let out = curl(&["--cacert", other.to_str().unwrap(), &o.https_url("/")]).await;
    assert_eq!(out.status.code(), Some(60));
    // A name not in the SAN list is refused.
    let port = o.https_addr.port();
    let out = curl(&[
        "--cacert",
        o.ca_path.to_str().unwrap(),
        "--resolve",
        &format!("not-listed.test:{port}:127.0.0.1"),
        &format!("https://not-listed.test:{port}/"),
    ])
    .await;
    assert_eq!(out.status.code(), Some(60));
    assert!(o.requests().is_empty());
}

#[tokio::test]
async fn echo_rust_client_all_protocol_combinations() {
    let o = start().await;
    for proto in [Proto::H1, Proto::H2] {
        for tls in [false, true] {
            let (addr, t) = if tls {
                (o.https_addr, Some((&o.ca, "localhost")))
            } else {
                (o.http_addr, None)
            };
            let r = rust_request(
                addr,
                t,
                proto,
                "PUT",
                "/rust?x=y",
                &[("x-a", "1"), ("x-a", "2")],
                full(vec![0xffu8, 0x00, 0x80]),
            )
            .await;
            assert_eq!(r.status(), StatusCode::OK);
            let v = json(std::str::from_utf8(&body_bytes(r).await).unwrap());
            assert_eq!(v["method"], "PUT");
            assert_eq!(v["query"], "x=y");
            assert_eq!(v["tls"], tls);
            let want_version = if proto == Proto::H1 {
                "HTTP/1.1"
            } else {
                "HTTP/2.0"
            };
            assert_eq!(v["version"], want_version);
            assert_eq!(v["body_base64"], "/wCA", "non-UTF-8 body is base64");
            assert!(v.get("body").is_none());
            assert_eq!(v["body_len"], 3);
            if tls {
                assert_eq!(v["sni"], "localhost");
            }
            let xa: Vec<_> = header_strings(&v)
                .into_iter()
                .filter(|(n, _)| n == "x-a")
                .map(|(_, v)| v)
                .collect();
            assert_eq!(xa, ["1", "2"]);
        }
    }
    assert_eq!(o.requests().len(), 4);
}

#[tokio::test]
async fn requests_record_connection_reuse() {
    let o = start().await;
    // One curl invocation with two URLs reuses the connection.
    let a = o.http_url("/one");
    let b = o.http_url("/two");
    let out = stdout(&curl(&[&a, &b]).await);
    assert_eq!(out.lines().count(), 2);
    let c = o.http_url("/three");
    stdout(&curl(&[&c]).await);
    let seen = o.requests();
    assert_eq!(seen.len(), 3);
    assert_eq!(seen[0].conn_id, seen[1].conn_id);
    assert_ne!(seen[1].conn_id, seen[2].conn_id);
    assert_eq!(o.total_connections(), 2);
    o.clear_requests();
    assert!(o.requests().is_empty());
}

// ---------------------------------------------------------------- sse

/// Runs `curl -N` and records when each `data:` line arrives.
async fn curl_sse_arrivals(args: &[&str]) -> Vec<(Instant, String)> {
    let mut child = tokio::process::Command::new("curl")
        .args(["-sS", "-N", "--max-time", "60"])
        .args(args)
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let mut got = Vec::new();
    tokio::time::timeout(T, async {
        while let Some(l) = lines.next_line().await.unwrap() {
            if l.starts_with("data:") {
                got.push((Instant::now(), l));
            }
        }
    })
    .await
    .expect("sse in time");
    assert!(child.wait().await.unwrap().success());
    got
}

#[tokio::test]
async fn sse_arrives_incrementally_curl_http1_and_h2() {
    let o = start().await;
    let ca = o.ca_path.to_str().unwrap().to_string();
    // Whole stream, in order.
    let url = o.https_url("/sse?n=3&interval_ms=100");
    for proto in ["--http1.1", "--http2"] {
        let got = curl_sse_arrivals(&["--cacert", &ca, proto, &url]).await;
        let names: Vec<&str> = got.iter().map(|(_, l)| l.as_str()).collect();
        assert_eq!(names, ["data: event-0", "data: event-1", "data: event-2"]);
    }
    // Incremental delivery, proven causally rather than by timing: the second event is
    // sent 10 minutes after the first, so seeing event-0 at all (within T) means it was
    // not buffered until the end of the stream.
    let url = o.https_url("/sse?n=2&interval_ms=600000");
    for proto in ["--http1.1", "--http2"] {
        let mut child = tokio::process::Command::new("curl")
            .args(["-sS", "-N", "--cacert", &ca, proto, &url])
            .stdout(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
        let first = tokio::time::timeout(T, lines.next_line())
            .await
            .unwrap_or_else(|_| panic!("{proto}: event-0 not delivered before the stream ended"))
            .unwrap();
        assert_eq!(first.as_deref(), Some("data: event-0"), "{proto}");
        assert!(child.try_wait().unwrap().is_none(), "stream still open");
        child.kill().await.unwrap();
    }
    let r = curl(&["-sS", "-D", "-", "-o", "/dev/null", &o.http_url("/sse?n=1")]).await;
    assert!(stdout(&r)
        .to_ascii_lowercase()
        .contains("content-type: text/event-stream"));
}

#[tokio::test]
async fn sse_arrives_incrementally_rust_client() {
    let o = start().await;
    for proto in [Proto::H1, Proto::H2] {
        let asked = Instant::now();
        let r = rust_request(
            o.https_addr,
            Some((&o.ca, "echo.test")),
            proto,
            "GET",
            "/sse?n=4&interval_ms=300",
            &[],
            full(Bytes::new()),
        )
        .await;
        assert_eq!(r.headers()["content-type"], "text/event-stream");
        let mut body = r.into_body();
        let mut events: Vec<(Instant, Bytes)> = Vec::new();
        tokio::time::timeout(T, async {
            while let Some(f) = body.frame().await {
                if let Ok(d) = f.unwrap().into_data() {
                    events.push((Instant::now(), d));
                }
            }
        })
        .await
        .unwrap();
        let text: Vec<u8> = events.iter().flat_map(|(_, d)| d.to_vec()).collect();
        assert_eq!(
            String::from_utf8(text).unwrap(),
            "data: event-0\n\ndata: event-1\n\ndata: event-2\n\ndata: event-3\n\n"
        );
        assert!(
            events.len() >= 4,
            "one frame per event, got {}",
            events.len()
        );
        // The last event is sent >= 900 ms after the request was made (causal bound).
        assert!(events.last().unwrap().0 - asked >= Duration::from_millis(900));

        // Causal incremental check: event-1 comes 10 minutes after event-0.
        let r = rust_request(
            o.https_addr,
            Some((&o.ca, "echo.test")),
            proto,
            "GET",
            "/sse?n=2&interval_ms=600000",
            &[],
            full(Bytes::new()),
        )
        .await;
        let mut body = r.into_body();
        let f = tokio::time::timeout(T, body.frame())
            .await
            .expect("event-0 before the stream ends")
            .unwrap()
            .unwrap();
        assert_eq!(f.into_data().unwrap(), "data: event-0\n\n", "{proto:?}");
        assert!(!http_body::Body::is_end_stream(&body));
    }
}
