//! Integration tests: every endpoint, driven by the system `curl` and by a Rust client
//! (hyper client connections over rustls), over plain TCP and TLS, HTTP/1.1 and HTTP/2.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::process::Output;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use echo_origin::{EchoOptions, EchoOrigin, TestCa};
use futures_util::{SinkExt, StreamExt};
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls_pki_types::ServerName;
use serde_json::Value;
use tokio::io::AsyncBufReadExt;
use tokio::net::TcpStream;

type BoxError = Box<dyn std::error::Error + Send + Sync>;
type Body = http_body_util::combinators::BoxBody<Bytes, BoxError>;

const T: Duration = Duration::from_secs(120);

// ---------------------------------------------------------------- helpers

async fn start() -> EchoOrigin {
    EchoOrigin::start(EchoOptions::default())
        .await
        .expect("origin starts")
}

/// Runs curl with `-sS` and a time limit.
async fn curl(args: &[&str]) -> Output {
    let fut = tokio::process::Command::new("curl")
        .args(["-sS", "--max-time", "100"])
        .args(args)
        .kill_on_drop(true)
        .output();
    tokio::time::timeout(T, fut)
        .await
        .expect("curl finished in time")
        .expect("curl runs")
}

fn stdout(o: &Output) -> String {
    assert!(
        o.status.success(),
        "curl failed: {:?} {}",
        o.status,
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn json(s: &str) -> Value {
    serde_json::from_str(s).unwrap_or_else(|e| panic!("not JSON ({e}): {s}"))
}

fn full(b: impl Into<Bytes>) -> Body {
    Full::new(b.into()).map_err(|e| match e {}).boxed()
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Proto {
    H1,
    H2,
}

/// A Rust client: one connection (plain or TLS with SNI `sni`, trusting only `ca`), one request.
async fn rust_request(
    addr: SocketAddr,
    tls: Option<(&TestCa, &str)>,
    proto: Proto,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Body,
) -> Response<Incoming> {
    let tcp = TcpStream::connect(addr).await.expect("connect");
    let authority = match tls {
        Some((_, sni)) => format!("{sni}:{}", addr.port()),
        None => addr.to_string(),
    };
    let scheme = if tls.is_some() { "https" } else { "http" };
    let mut b = Request::builder().method(method);
    b = match proto {
        Proto::H1 => b.uri(path).header("host", &authority),
        Proto::H2 => b
            .uri(format!("{scheme}://{authority}{path}"))
            .version(http::Version::HTTP_2),
    };
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    let req = b.body(body).unwrap();
    match tls {
        None => send(TokioIo::new(tcp), proto, req).await,
        Some((ca, sni)) => {
            let alpn: &[&[u8]] = match proto {
                Proto::H1 => &[b"http/1.1"],
                Proto::H2 => &[b"h2"],
            };
            let cfg = ca.client_config(alpn).unwrap();
            let name = ServerName::try_from(sni.to_string()).unwrap();
            let stream = tokio_rustls::TlsConnector::from(cfg)
                .connect(name, tcp)
                .await
                .expect("TLS handshake");
            let want: &[u8] = if proto == Proto::H2 {
                b"h2"
            } else {
                b"http/1.1"
            };
            assert_eq!(stream.get_ref().1.alpn_protocol(), Some(want));
            send(TokioIo::new(stream), proto, req).await
        }
    }
}

async fn send<I>(io: TokioIo<I>, proto: Proto, req: Request<Body>) -> Response<Incoming>
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let fut = async move {
        match proto {
            Proto::H1 => {
                let (mut s, conn) = hyper::client::conn::http1::handshake(io).await.unwrap();
                tokio::spawn(conn);
                s.send_request(req).await.unwrap()
            }
            Proto::H2 => {
                let (mut s, conn) = hyper::client::conn::http2::handshake(TokioExecutor::new(), io)
                    .await
                    .unwrap();
                tokio::spawn(conn);
                s.send_request(req).await.unwrap()
            }
        }
    };
    tokio::time::timeout(T, fut)
        .await
        .expect("response in time")
}

async fn body_bytes(r: Response<Incoming>) -> Bytes {
    tokio::time::timeout(T, r.into_body().collect())
        .await
        .expect("body in time")
        .expect("body")
        .to_bytes()
}

fn sha256_hex(b: &[u8]) -> String {
    hex::encode(ring::digest::digest(&ring::digest::SHA256, b).as_ref())
}

fn vm_rss_kib() -> u64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap();
    s.lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

fn header_strings(v: &Value) -> Vec<(String, String)> {
    v["headers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p[0].as_str().unwrap().to_string(),
                p[1].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

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

async fn ws_roundtrip<S>(ws: &mut tokio_tungstenite::WebSocketStream<S>)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    use tokio_tungstenite::tungstenite::Message;
    ws.send(Message::text("hello ws")).await.unwrap();
    let m = tokio::time::timeout(T, ws.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(m, Message::text("hello ws"));
    let bin: Vec<u8> = (0..=255u8).collect();
    ws.send(Message::binary(bin.clone())).await.unwrap();
    let m = tokio::time::timeout(T, ws.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(m, Message::binary(bin));
    let big = "x".repeat(200_000);
    ws.send(Message::text(big.clone())).await.unwrap();
    let m = tokio::time::timeout(T, ws.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(m.into_text().unwrap().as_str(), big);
    ws.close(None).await.unwrap();
}

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

// ---------------------------------------------------------------- reflect

fn reflect_expected(t: &str) -> String {
    let mut s = echo_origin::reflect_lines(t).join("\n");
    s.push('\n');
    s
}

#[tokio::test]
async fn reflect_authorization_in_every_spelling() {
    let o = start().await;
    let secret = "s3cr+t/tok en?";
    let auth = format!("Authorization: Bearer {secret}");
    let out = curl(&["-D", "-", "-H", &auth, &o.http_url("/reflect")]).await;
    let s = stdout(&out);
    let (head, body) = s.split_once("\r\n\r\n").unwrap();
    let head = head.to_ascii_lowercase();
    assert!(head.contains(&format!(
        "x-reflect: bearer {}",
        secret.to_ascii_lowercase()
    )));
    assert!(head.contains(&format!("x-reflect-token: {}", secret.to_ascii_lowercase())));
    assert_eq!(body, reflect_expected(&format!("Bearer {secret}")));
    let lines: Vec<&str> = body.lines().collect();
    assert_eq!(lines.len(), 8);
    assert_eq!(lines[1], secret);
    assert_eq!(lines[2], "czNjcit0L3RvayBlbj8=");
    assert_eq!(lines[3], "czNjcit0L3RvayBlbj8");
    assert_eq!(lines[4], "s3cr%2Bt%2Ftok%20en%3F");
    assert!(lines[5].starts_with("%73%33%63%72%2B"));
    assert_eq!(lines[6], hex::encode(secret));
    assert_eq!(lines[7], hex::encode_upper(secret));
    // Basic: the whole value and the part after the space.
    let out = curl(&["-u", "user:pass", &o.http_url("/reflect")]).await;
    let body = stdout(&out);
    assert!(body.starts_with("Basic dXNlcjpwYXNz\ndXNlcjpwYXNz\n"));
}

#[tokio::test]
async fn reflect_from_query_and_from_header() {
    let o = start().await;
    let out = curl(&[&o.http_url("/reflect?from_query=key&key=abc%2Bdef")]).await;
    assert_eq!(stdout(&out), reflect_expected("abc+def"));
    let out = curl(&[
        "-H",
        "X-Api-Key: k-123",
        &o.http_url("/reflect?from_header=x-api-key"),
    ])
    .await;
    assert_eq!(stdout(&out), reflect_expected("k-123"));
    // Several sources at once: Authorization first, then the header.
    let out = curl(&[
        "-D",
        "-",
        "-H",
        "Authorization: token A1",
        "-H",
        "X-Api-Key: k-2",
        &o.http_url("/reflect?from_header=X-Api-Key"),
    ])
    .await;
    let s = stdout(&out);
    let (head, body) = s.split_once("\r\n\r\n").unwrap();
    assert!(head.contains("x-reflect-count: 2"));
    assert_eq!(
        body,
        reflect_expected("token A1") + &reflect_expected("k-2")
    );
    // Nothing to reflect.
    let out = curl(&["-D", "-", &o.http_url("/reflect")]).await;
    let s = stdout(&out);
    assert!(s.contains("x-reflect-count: 0"));
    assert!(s.ends_with("no credential\n"));
}

#[tokio::test]
async fn reflect_split_sends_the_token_in_two_frames() {
    let o = start().await;
    for proto in [Proto::H1, Proto::H2] {
        let asked = Instant::now();
        let r = rust_request(
            o.https_addr,
            Some((&o.ca, "localhost")),
            proto,
            "GET",
            "/reflect?split=1",
            &[("authorization", "Bearer SPLITTOKEN123456")],
            full(Bytes::new()),
        )
        .await;
        let mut body = r.into_body();
        let mut frames = Vec::new();
        while let Some(f) = tokio::time::timeout(T, body.frame()).await.unwrap() {
            // (HTTP/2 may end the stream with an empty DATA frame.)
            if let Ok(d) = f.unwrap().into_data() {
                if !d.is_empty() {
                    frames.push((Instant::now(), d));
                }
            }
        }
        // The two server frames stay distinct frames for the client (HTTP/2 DATA frames,
        // HTTP/1.1 chunks), though a read may cut one further: so there is a frame boundary
        // exactly in the middle of the token.
        let mut offsets = Vec::new();
        let mut at = 0;
        for (_, d) in &frames {
            at += d.len();
            offsets.push(at);
        }
        assert!(
            offsets.contains(&"Bearer SPLITTOK".len()),
            "{proto:?}: boundaries {offsets:?}"
        );
        // The second frame is sent 100 ms after the first (causal lower bound).
        assert!(frames.last().unwrap().0 - asked >= Duration::from_millis(100));
        let all: Vec<u8> = frames.iter().flat_map(|(_, d)| d.to_vec()).collect();
        assert_eq!(
            String::from_utf8(all).unwrap(),
            reflect_expected("Bearer SPLITTOKEN123456")
        );
    }
}

#[tokio::test]
async fn reflect_compressed_bodies_decode_to_the_same_text() {
    let o = start().await;
    let want = reflect_expected("Bearer zz-top-secret");
    for q in [
        "gzip=1",
        "encoding=gzip",
        "encoding=br",
        "encoding=deflate",
        "encoding=zstd",
        "encoding=gzip&split=1",
    ] {
        let url = o.http_url(&format!("/reflect?{q}"));
        // Without --compressed the raw body must not contain the token.
        let raw = curl(&["-H", "Authorization: Bearer zz-top-secret", &url]).await;
        assert!(raw.status.success());
        assert!(
            !String::from_utf8_lossy(&raw.stdout).contains("zz-top-secret"),
            "{q}"
        );
        let out = curl(&[
            "--compressed",
            "-D",
            "-",
            "-H",
            "Authorization: Bearer zz-top-secret",
            &url,
        ])
        .await;
        let s = stdout(&out);
        let (head, body) = s.split_once("\r\n\r\n").unwrap();
        let label = q
            .split('&')
            .next()
            .unwrap()
            .trim_start_matches("encoding=")
            .replace("gzip=1", "gzip");
        assert!(
            head.to_ascii_lowercase()
                .contains(&format!("content-encoding: {label}")),
            "{q}: {head}"
        );
        assert_eq!(body, want, "{q}");
    }
    // x-unknown: labelled, undecodable random bytes.
    let out = curl(&["-D", "-", &o.http_url("/reflect?encoding=x-unknown")]).await;
    assert!(out.status.success());
    let s = String::from_utf8_lossy(&out.stdout).to_ascii_lowercase();
    assert!(s.contains("content-encoding: x-unknown"));
    assert!(s.contains("content-length: 64"));
    // Unknown name.
    let out = curl(&[
        "-w",
        "%{http_code}",
        "-o",
        "/dev/null",
        &o.http_url("/reflect?encoding=lzma"),
    ])
    .await;
    assert_eq!(stdout(&out), "400");
}

// ---------------------------------------------------------------- lifecycle, CA

async fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn max_concurrent_connections_counts_parallel_clients() {
    let o = start().await;
    // Hold 5 connections open at once (3 plain, 2 TLS before any handshake).
    let mut held = Vec::new();
    for addr in [
        o.http_addr,
        o.http_addr,
        o.http_addr,
        o.https_addr,
        o.https_addr,
    ] {
        held.push(TcpStream::connect(addr).await.unwrap());
    }
    wait_until("5 open connections", || o.open_connections() == 5).await;
    assert_eq!(o.max_concurrent_connections(), 5);
    drop(held);
    wait_until("connections to close", || o.open_connections() == 0).await;
    // Later sequential requests do not raise the maximum.
    for _ in 0..3 {
        stdout(&curl(&[&o.http_url("/")]).await);
    }
    assert_eq!(o.max_concurrent_connections(), 5);
    assert_eq!(o.total_connections(), 8);
    // Parallel slow requests through curl are counted too.
    let mut tasks = Vec::new();
    for _ in 0..3 {
        let url = o.http_url("/slow?ms=300");
        tasks.push(tokio::spawn(async move { curl(&[&url]).await }));
    }
    for t in tasks {
        assert!(t.await.unwrap().status.success());
    }
    assert_eq!(o.total_connections(), 11);
}

#[tokio::test]
async fn dropping_the_origin_stops_it() {
    let o = start().await;
    let (h, s) = (o.http_addr, o.https_addr);
    let url = o.http_url("/");
    assert!(curl(&[&url]).await.status.success());
    // A slow request in flight is cut when the origin is dropped.
    let slow = o.http_url("/slow?ms=30000");
    let inflight = tokio::spawn(async move { curl(&[&slow]).await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    drop(o);
    let out = inflight.await.unwrap();
    assert!(!out.status.success());
    for addr in [h, s] {
        let mut refused = false;
        for _ in 0..100 {
            if TcpStream::connect(addr).await.is_err() {
                refused = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(refused, "{addr} still accepts");
    }
}

#[tokio::test]
async fn rsa_ca_and_shared_ca_work() {
    let ca = TestCa::new_rsa();
    assert!(ca.key_pem().contains("PRIVATE KEY"));
    let o = EchoOrigin::start(EchoOptions {
        names: vec!["rsa.test".into(), "::1".into(), "127.0.0.1".into()],
        ca: Some(ca.clone()),
    })
    .await
    .unwrap();
    assert_eq!(o.ca.cert_pem, ca.cert_pem);
    let port = o.https_addr.port();
    let v = json(&stdout(
        &curl(&[
            "--cacert",
            o.ca_path.to_str().unwrap(),
            "--resolve",
            &format!("rsa.test:{port}:127.0.0.1"),
            &format!("https://rsa.test:{port}/r"),
        ])
        .await,
    ));
    assert_eq!(v["sni"], "rsa.test");
    // The CA key really is RSA.
    let key = echo_origin::parse_key(&ca.key_pem()).unwrap();
    ring::signature::RsaKeyPair::from_pkcs8(key.secret_der()).expect("an RSA PKCS#8 key");
    // And the CA cert verifies the chain with curl above; a second CA is a fresh cert.
    assert_ne!(
        TestCa::new_rsa().cert_pem,
        ca.cert_pem,
        "fresh cert per call"
    );
}

#[tokio::test]
async fn issued_leaf_has_ip_and_dns_sans_and_chain() {
    let ca = TestCa::new();
    let (chain, key) = ca.issue(&["svc.test", "10.1.2.3", "[::1]"]);
    let certs = echo_origin::parse_certs(&chain).unwrap();
    assert_eq!(certs.len(), 2, "leaf + CA");
    assert_eq!(certs[1], ca.cert_der().unwrap());
    echo_origin::parse_key(&key).unwrap();
    // A rustls client trusting only `ca` accepts the leaf for each name.
    let cfg = Arc::new(
        rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(certs, echo_origin::parse_key(&key).unwrap())
        .unwrap(),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(cfg);
    tokio::spawn(async move {
        loop {
            let (s, _) = listener.accept().await.unwrap();
            let a = acceptor.clone();
            tokio::spawn(async move {
                let _ = a.accept(s).await;
            });
        }
    });
    let client = tokio_rustls::TlsConnector::from(ca.client_config(&[]).unwrap());
    for name in ["svc.test", "10.1.2.3", "::1"] {
        let tcp = TcpStream::connect(addr).await.unwrap();
        let sn = ServerName::try_from(name.to_string()).unwrap();
        client
            .connect(sn, tcp)
            .await
            .unwrap_or_else(|e| panic!("{name}: {e}"));
    }
    let tcp = TcpStream::connect(addr).await.unwrap();
    let sn = ServerName::try_from("other.test".to_string()).unwrap();
    assert!(client.connect(sn, tcp).await.is_err());
    // from_pem round trip issues leaves that chain to the same CA.
    let again = TestCa::from_pem(&ca.cert_pem, &ca.key_pem()).unwrap();
    let (chain2, _) = again.issue(&["x.test"]);
    assert!(chain2.ends_with(&ca.cert_pem));
    // Debug does not print the key.
    assert!(!format!("{ca:?}").contains(&ca.key_pem()));
}

// ---------------------------------------------------------------- extras

#[tokio::test]
async fn response_headers_are_set_as_asked() {
    let o = start().await;
    let out = curl(&[
        "-D",
        "-",
        &o.http_url("/response-headers?Connection=x-hop&X-Hop=1&Set-Cookie=a%3Db&Set-Cookie=c%3Dd"),
    ])
    .await;
    let s = stdout(&out).to_ascii_lowercase();
    assert!(s.contains("connection: x-hop"), "{s}");
    assert!(s.contains("x-hop: 1"));
    assert!(s.contains("set-cookie: a=b"));
    assert!(s.contains("set-cookie: c=d"));
    let out = curl(&[
        "-w",
        "%{http_code}",
        "-o",
        "/dev/null",
        &o.http_url("/response-headers?bad%20name=x"),
    ])
    .await;
    assert_eq!(stdout(&out), "400");
}

#[tokio::test]
async fn trailers_arrive_after_the_body() {
    let o = start().await;
    for proto in [Proto::H1, Proto::H2] {
        let r = rust_request(
            o.https_addr,
            Some((&o.ca, "localhost")),
            proto,
            "GET",
            "/trailers?name=x-sum&value=42",
            &[("te", "trailers")],
            full(Bytes::new()),
        )
        .await;
        assert_eq!(r.headers()["trailer"], "x-sum");
        let collected = tokio::time::timeout(T, r.into_body().collect())
            .await
            .unwrap()
            .unwrap();
        let tr = collected.trailers().cloned().expect("trailers");
        assert_eq!(tr["x-sum"], "42", "{proto:?}");
        assert_eq!(collected.to_bytes(), "trailers follow\n");
    }
}

#[test]
fn start_blocking_serves_synchronous_tests() {
    let o = EchoOrigin::start_blocking(EchoOptions::default()).unwrap();
    let out = std::process::Command::new("curl")
        .args(["-sS", "--max-time", "60", "--cacert"])
        .arg(&o.ca_path)
        .arg(o.https_url("/sync"))
        .output()
        .unwrap();
    let v = json(&stdout(&out));
    assert_eq!(v["path"], "/sync");
    assert_eq!(o.requests().len(), 1);
    let addr = o.http_addr;
    drop(o);
    std::thread::sleep(Duration::from_millis(200));
    assert!(std::net::TcpStream::connect(addr).is_err());
}

#[tokio::test]
async fn record_limit_keeps_the_newest_and_counts_all() {
    let o = start().await;
    o.set_record_limit(2);
    for p in ["/r1", "/r2", "/r3"] {
        stdout(&curl(&["--data-binary", "abc", &o.http_url(p)]).await);
    }
    let seen = o.requests();
    let paths: Vec<&str> = seen.iter().map(|r| r.path.as_str()).collect();
    assert_eq!(paths, ["/r2", "/r3"]);
    assert!(
        seen.iter().all(|r| r.body_len == 3),
        "body_len set after trimming"
    );
    assert_eq!(o.total_requests(), 3);
    o.set_record_limit(0);
    stdout(&curl(&[&o.http_url("/r4")]).await);
    assert!(o.requests().is_empty());
    assert_eq!(o.total_requests(), 4);
}

#[tokio::test]
async fn bad_numeric_parameters_are_400() {
    let o = start().await;
    for p in [
        "/download?bytes=-1",
        "/download?bytes=1e6",
        "/download?bytes=99999999999999999999999",
        "/sse?n=x",
        "/sse?interval_ms=99999999999",
        "/slow?ms=abc",
        "/slow-body?chunks=1.5",
    ] {
        let out = curl(&["-w", "%{http_code}", "-o", "/dev/null", &o.http_url(p)]).await;
        assert_eq!(stdout(&out), "400", "{p}");
    }
}

#[tokio::test]
async fn abort_cuts_the_body_short() {
    let o = start().await;
    // curl: exit 18 (partial file) on HTTP/1.1, 92 (stream error) on HTTP/2.
    let out = curl(&["-o", "/dev/null", &o.http_url("/abort?after_bytes=100000")]).await;
    assert_eq!(out.status.code(), Some(18), "{out:?}");
    let out = curl(&[
        "--cacert",
        o.ca_path.to_str().unwrap(),
        "--http2",
        "-o",
        "/dev/null",
        &o.https_url("/abort?after_bytes=1000"),
    ])
    .await;
    assert!(!out.status.success());
    // Rust client: the body errors after the bytes.
    for proto in [Proto::H1, Proto::H2] {
        let r = rust_request(
            o.https_addr,
            Some((&o.ca, "localhost")),
            proto,
            "GET",
            "/abort?after_bytes=70000",
            &[],
            full(Bytes::new()),
        )
        .await;
        assert_eq!(r.headers()["content-length"], "140001");
        let mut body = r.into_body();
        let mut got = 0usize;
        let mut failed = false;
        while let Some(f) = tokio::time::timeout(T, body.frame()).await.unwrap() {
            match f {
                Ok(f) => got += f.into_data().map(|d| d.len()).unwrap_or(0),
                Err(_) => {
                    failed = true;
                    break;
                }
            }
        }
        assert!(failed, "{proto:?}: body must fail");
        assert_eq!(got, 70000, "{proto:?}");
    }
}

#[tokio::test]
async fn leaf_accessors_match_what_clients_see() {
    let o = start().await;
    let tcp = TcpStream::connect(o.https_addr).await.unwrap();
    let tls = tokio_rustls::TlsConnector::from(o.ca.client_config(&[]).unwrap())
        .connect(ServerName::try_from("echo.test").unwrap(), tcp)
        .await
        .unwrap();
    let seen = tls.get_ref().1.peer_certificates().unwrap().to_vec();
    assert_eq!(seen.len(), 2);
    assert_eq!(seen[0], o.leaf_der().unwrap());
    assert_eq!(seen, echo_origin::parse_certs(o.leaf_chain_pem()).unwrap());
    assert_eq!(
        o.https_url_host("echo.test", "/p"),
        format!("https://echo.test:{}/p", o.https_addr.port())
    );
    assert_eq!(
        o.http_url_host("echo.test", "/p"),
        format!("http://echo.test:{}/p", o.http_addr.port())
    );
}

#[tokio::test]
async fn reflect_chunked_frames_and_head_and_http10() {
    let o = start().await;
    let r = rust_request(
        o.http_addr,
        None,
        Proto::H2,
        "GET",
        "/reflect?chunk=3&chunk_ms=1",
        &[("authorization", "Bearer abcdefgh")],
        full(Bytes::new()),
    )
    .await;
    let mut body = r.into_body();
    let mut frames = Vec::new();
    while let Some(f) = tokio::time::timeout(T, body.frame()).await.unwrap() {
        if let Ok(d) = f.unwrap().into_data() {
            if !d.is_empty() {
                frames.push(d);
            }
        }
    }
    assert!(frames.iter().all(|f| f.len() <= 3));
    assert_eq!(frames[0], "Bea");
    let all: Vec<u8> = frames.iter().flat_map(|d| d.to_vec()).collect();
    assert_eq!(all, reflect_expected("Bearer abcdefgh").into_bytes());
    // Compressed + chunked decodes to the same text.
    let out = curl(&[
        "--compressed",
        "-H",
        "Authorization: Bearer abcdefgh",
        &o.http_url("/reflect?encoding=zstd&chunk=1"),
    ])
    .await;
    assert_eq!(stdout(&out), reflect_expected("Bearer abcdefgh"));

    // HEAD: headers only.
    let out = curl(&["-I", &o.http_url("/download?bytes=5")]).await;
    let s = stdout(&out).to_ascii_lowercase();
    assert!(s.contains("content-length: 5"), "{s}");
    // HTTP/1.0 client.
    let v = json(&stdout(&curl(&["-0", &o.http_url("/ten")]).await));
    assert_eq!(v["version"], "HTTP/1.0");
}

#[tokio::test]
async fn websocket_over_http2_extended_connect() {
    use tokio_tungstenite::tungstenite::protocol::Role;
    let o = start().await;
    let tcp = TcpStream::connect(o.https_addr).await.unwrap();
    let tls = tokio_rustls::TlsConnector::from(o.ca.client_config(&[b"h2"]).unwrap())
        .connect(ServerName::try_from("echo.test").unwrap(), tcp)
        .await
        .unwrap();
    let (mut sender, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tls))
            .await
            .unwrap();
    tokio::spawn(conn);
    let mut req = Request::builder()
        .method("CONNECT")
        .uri(format!("https://echo.test:{}/ws", o.https_addr.port()))
        .version(http::Version::HTTP_2)
        .header("sec-websocket-version", "13")
        .body(full(Bytes::new()))
        .unwrap();
    req.extensions_mut()
        .insert(hyper::ext::Protocol::from_static("websocket"));
    let mut resp = tokio::time::timeout(T, sender.send_request(req))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let upgraded = hyper::upgrade::on(&mut resp).await.unwrap();
    let mut ws = tokio_tungstenite::WebSocketStream::from_raw_socket(
        TokioIo::new(upgraded),
        Role::Client,
        None,
    )
    .await;
    ws_roundtrip(&mut ws).await;
    let seen = o.requests();
    assert_eq!(seen[0].method, "CONNECT");
    assert_eq!(seen[0].path, "/ws");
    assert_eq!(seen[0].version, "HTTP/2.0");
}

#[tokio::test]
async fn garbage_and_wrong_protocol_do_not_break_the_origin() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let o = start().await;
    // Garbage on the plain port: 400 or close, never a hang.
    let mut s = TcpStream::connect(o.http_addr).await.unwrap();
    s.write_all(b"\x00\x01GARBAGE \xff\r\n\r\n").await.unwrap();
    let mut buf = Vec::new();
    tokio::time::timeout(T, s.read_to_end(&mut buf))
        .await
        .unwrap()
        .ok();
    let head = String::from_utf8_lossy(&buf);
    assert!(buf.is_empty() || head.starts_with("HTTP/1.1 400"), "{head}");
    // Plain HTTP on the TLS port: the handshake fails, the connection closes.
    let mut s = TcpStream::connect(o.https_addr).await.unwrap();
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut buf = Vec::new();
    tokio::time::timeout(T, s.read_to_end(&mut buf))
        .await
        .unwrap()
        .ok();
    assert!(!String::from_utf8_lossy(&buf).contains("200 OK"));
    // A client that connects and says nothing does not block others.
    let _idle = TcpStream::connect(o.https_addr).await.unwrap();
    let _idle2 = TcpStream::connect(o.http_addr).await.unwrap();
    // An oversized header (2 MiB) on HTTP/1.1 is refused, not crashed on.
    let mut s = TcpStream::connect(o.http_addr).await.unwrap();
    let req = format!(
        "GET / HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
        "a".repeat(2 * 1024 * 1024)
    );
    let _ = s.write_all(req.as_bytes()).await;
    let mut buf = Vec::new();
    tokio::time::timeout(T, s.read_to_end(&mut buf))
        .await
        .unwrap()
        .ok();
    let head = String::from_utf8_lossy(&buf);
    assert!(!head.contains("200 OK"), "{head}");
    // Everything still works.
    let v = json(&stdout(
        &curl(&[
            "--cacert",
            o.ca_path.to_str().unwrap(),
            &o.https_url("/after"),
        ])
        .await,
    ));
    assert_eq!(v["path"], "/after");
    let v = json(&stdout(&curl(&[&o.http_url("/after2")]).await));
    assert_eq!(v["path"], "/after2");
    let paths: Vec<String> = o.requests().into_iter().map(|r| r.path).collect();
    assert_eq!(paths, ["/after", "/after2"]);
}
