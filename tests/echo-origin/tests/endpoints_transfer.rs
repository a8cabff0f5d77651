//! Endpoint tests: download and upload (sizes, memory), WebSocket, slow answers, status
//! and redirect.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use bytes::Bytes;
use http::StatusCode;
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use rustls_pki_types::ServerName;
use tokio::net::TcpStream;

mod support;
use support::*;

// ---------------------------------------------------------------- download / upload

#[tokio::test]
async fn download_content_is_the_documented_pattern() {
    let o = start().await;
    let n: u64 = 3 * 65536 + 17;
    for (proto, tls) in [(Proto::H1, false), (Proto::H2, true)] {
        let (addr, t) = if tls {
            (o.https_addr, Some((&o.ca, "localhost")))
        } else {
            (o.http_addr, None)
        };
        let path = format!("/download?bytes={n}");
        let r = rust_request(addr, t, proto, "GET", &path, &[], full(Bytes::new())).await;
        assert_eq!(r.headers()["content-length"], n.to_string().as_str());
        let b = body_bytes(r).await;
        assert_eq!(b.len() as u64, n);
        for (i, byte) in b.iter().enumerate() {
            assert_eq!(*byte, echo_origin::download_byte(i as u64), "offset {i}");
        }
        assert_eq!(sha256_hex(&b), echo_origin::download_sha256(n));
    }
    // chunked=1: no content-length, same bytes.
    let out = curl(&[
        "-D",
        "-",
        "-o",
        "/dev/null",
        "-w",
        "size=%{size_download}",
        &o.http_url("/download?bytes=1000&chunked=1"),
    ])
    .await;
    let s = stdout(&out).to_ascii_lowercase();
    assert!(s.contains("transfer-encoding: chunked"), "{s}");
    assert!(s.contains("size=1000"));
    // bytes=0
    let out = curl(&["-w", "%{size_download}", &o.http_url("/download?bytes=0")]).await;
    assert_eq!(stdout(&out), "0");
}

#[tokio::test]
async fn download_1gib_through_curl_keeps_origin_memory_small() {
    let o = start().await;
    let gib: u64 = 1 << 30;
    let before = vm_rss_kib();
    let start = Instant::now();
    let out = curl(&[
        "--max-time",
        "600",
        "--cacert",
        o.ca_path.to_str().unwrap(),
        "-o",
        "/dev/null",
        "-w",
        "%{size_download}",
        &o.https_url(&format!("/download?bytes={gib}")),
    ])
    .await;
    let elapsed = start.elapsed();
    let after = vm_rss_kib();
    assert_eq!(stdout(&out), gib.to_string());
    let grew = after.saturating_sub(before);
    eprintln!(
        "1 GiB over TLS: {:?} ({:.0} MiB/s), RSS {before} -> {after} KiB",
        elapsed,
        1024.0 / elapsed.as_secs_f64()
    );
    assert!(grew < 64 * 1024, "origin RSS grew by {grew} KiB");
}

#[tokio::test]
async fn upload_curl_reports_size_and_sha256() {
    let o = start().await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("up.bin");
    let data: Vec<u8> = (0..5_000_003u32).map(|i| (i * 7 % 256) as u8).collect();
    std::fs::write(&file, &data).unwrap();
    let at = format!("@{}", file.display());
    let want = sha256_hex(&data);
    for (url, extra) in [
        (o.http_url("/upload"), vec!["-X", "POST"]),
        (o.https_url("/upload"), vec!["-X", "PUT", "--http2"]),
    ] {
        let mut args = vec!["--cacert", o.ca_path.to_str().unwrap()];
        args.extend(extra);
        args.extend(["--data-binary", &at, &url]);
        let v = json(&stdout(&curl(&args).await));
        assert_eq!(v["bytes"], 5_000_003);
        assert_eq!(v["sha256"], want);
    }
    let seen = o.requests();
    assert_eq!(seen[0].body_len, 5_000_003);
    assert_eq!(seen[1].body_len, 5_000_003);
    assert_eq!(seen[1].method, "PUT");
}

#[tokio::test]
async fn upload_512mib_streams_without_buffering() {
    let o = start().await;
    let total: u64 = 512 << 20;
    let chunk = Bytes::from(vec![0x5au8; 256 * 1024]);
    let stream = futures_util::stream::unfold(0u64, move |sent| {
        let chunk = chunk.clone();
        async move {
            if sent >= total {
                return None;
            }
            Some((
                Ok::<_, BoxError>(Frame::data(chunk.clone())),
                sent + chunk.len() as u64,
            ))
        }
    });
    let before = vm_rss_kib();
    let r = rust_request(
        o.http_addr,
        None,
        Proto::H1,
        "POST",
        "/upload",
        &[],
        BodyExt::boxed(StreamBody::new(stream)),
    )
    .await;
    let v = json(std::str::from_utf8(&body_bytes(r).await).unwrap());
    let after = vm_rss_kib();
    assert_eq!(v["bytes"], total);
    let mut h = ring::digest::Context::new(&ring::digest::SHA256);
    let block = vec![0x5au8; 256 * 1024];
    for _ in 0..(total / block.len() as u64) {
        h.update(&block);
    }
    assert_eq!(v["sha256"], hex::encode(h.finish().as_ref()));
    let grew = after.saturating_sub(before);
    assert!(grew < 64 * 1024, "RSS grew by {grew} KiB");
}

// ---------------------------------------------------------------- websocket

#[tokio::test]
async fn websocket_echo_plain_and_tls() {
    let o = start().await;
    let tcp = TcpStream::connect(o.http_addr).await.unwrap();
    let (mut ws, resp) = tokio_tungstenite::client_async(format!("ws://{}/ws", o.http_addr), tcp)
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::SWITCHING_PROTOCOLS);
    ws_roundtrip(&mut ws).await;

    let tcp = TcpStream::connect(o.https_addr).await.unwrap();
    let cfg = o.ca.client_config(&[b"http/1.1"]).unwrap();
    let tls = tokio_rustls::TlsConnector::from(cfg)
        .connect(ServerName::try_from("echo.test").unwrap(), tcp)
        .await
        .unwrap();
    let (mut ws, _) =
        tokio_tungstenite::client_async(format!("wss://echo.test:{}/ws", o.https_addr.port()), tls)
            .await
            .unwrap();
    ws_roundtrip(&mut ws).await;
    let seen = o.requests();
    assert_eq!(seen.len(), 2);
    assert_eq!(seen[1].sni.as_deref(), Some("echo.test"));
    assert_eq!(seen[1].header("upgrade"), Some("websocket"));
}

#[tokio::test]
async fn websocket_without_upgrade_is_400() {
    let o = start().await;
    let out = curl(&["-w", "%{http_code}", "-o", "/dev/null", &o.http_url("/ws")]).await;
    assert_eq!(stdout(&out), "400");
}

// ---------------------------------------------------------------- slow

#[tokio::test]
async fn slow_waits_before_answering() {
    let o = start().await;
    let start = Instant::now();
    let v = json(&stdout(&curl(&[&o.http_url("/slow?ms=700")]).await));
    assert!(start.elapsed() >= Duration::from_millis(700));
    assert_eq!(v["slept_ms"], 700);
    // A client timeout shorter than the delay fails (curl exit 28).
    let out = curl(&["--max-time", "0.5", &o.http_url("/slow?ms=5000")]).await;
    assert_eq!(out.status.code(), Some(28));
}

#[tokio::test]
async fn slow_body_streams_chunks_slowly() {
    let o = start().await;
    let asked = Instant::now();
    let r = rust_request(
        o.http_addr,
        None,
        Proto::H1,
        "GET",
        "/slow-body?chunks=4&ms=250",
        &[],
        full(Bytes::new()),
    )
    .await;
    let mut body = r.into_body();
    let mut got = Vec::new();
    while let Some(f) = tokio::time::timeout(T, body.frame()).await.unwrap() {
        if let Ok(d) = f.unwrap().into_data() {
            got.push((Instant::now(), d));
        }
    }
    let text: String = got
        .iter()
        .map(|(_, d)| std::str::from_utf8(d).unwrap())
        .collect();
    assert_eq!(text, "chunk-0\nchunk-1\nchunk-2\nchunk-3\n");
    assert!(got.len() >= 4);
    // Four pauses of 250 ms happen before the last chunk is sent (causal lower bound).
    assert!(got.last().unwrap().0 - asked >= Duration::from_millis(1000));
    // curl sees the same.
    let out = curl(&[&o.http_url("/slow-body?chunks=2&ms=10")]).await;
    assert_eq!(stdout(&out), "chunk-0\nchunk-1\n");
}

// ---------------------------------------------------------------- status / redirect

#[tokio::test]
async fn status_endpoint_returns_the_code() {
    let o = start().await;
    for code in ["200", "201", "204", "404", "418", "500", "503"] {
        let out = curl(&[
            "-w",
            "%{http_code}",
            "-o",
            "/dev/null",
            &o.http_url(&format!("/status/{code}")),
        ])
        .await;
        assert_eq!(stdout(&out), code);
    }
    for code in ["301", "302", "307", "308"] {
        let out = curl(&[
            "-w",
            "%{http_code} %{redirect_url}",
            "-o",
            "/dev/null",
            &o.http_url(&format!("/status/{code}")),
        ])
        .await;
        assert_eq!(stdout(&out), format!("{code} {}", o.http_url("/")));
    }
    let out = curl(&[
        "-w",
        "%{http_code}",
        "-o",
        "/dev/null",
        &o.http_url("/status/abc"),
    ])
    .await;
    assert_eq!(stdout(&out), "400");
    let out = curl(&[
        "-w",
        "%{http_code}",
        "-o",
        "/dev/null",
        &o.http_url("/status/101"),
    ])
    .await;
    assert_eq!(stdout(&out), "400");
    // Over h2 too.
    let out = curl(&[
        "--http2-prior-knowledge",
        "-w",
        "%{http_code}",
        "-o",
        "/dev/null",
        &o.http_url("/status/429"),
    ])
    .await;
    assert_eq!(stdout(&out), "429");
}

#[tokio::test]
async fn redirect_goes_to_the_target() {
    let o = start().await;
    let target = "https://example.test/x?y=1";
    let out = curl(&[
        "-w",
        "%{http_code} %{redirect_url}",
        "-o",
        "/dev/null",
        &o.http_url("/redirect?to=https%3A%2F%2Fexample.test%2Fx%3Fy%3D1"),
    ])
    .await;
    assert_eq!(stdout(&out), format!("302 {target}"));
    // curl -L follows a relative target on the same origin.
    let v = json(&stdout(
        &curl(&["-L", &o.http_url("/redirect?to=/landed")]).await,
    ));
    assert_eq!(v["path"], "/landed");
    let out = curl(&[
        "-w",
        "%{http_code}",
        "-o",
        "/dev/null",
        &o.http_url("/redirect?to=/&status=307"),
    ])
    .await;
    assert_eq!(stdout(&out), "307");
}
