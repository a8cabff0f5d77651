//! Endpoint tests: the origin's lifecycle and CA, and the extras (response headers,
//! trailers, blocking start, record limit, abort, HTTP/2 WebSocket, garbage input).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use echo_origin::{EchoOptions, EchoOrigin, TestCa};
use http::{Request, StatusCode};
use http_body_util::BodyExt;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls_pki_types::ServerName;
use tokio::net::TcpStream;

mod support;
use support::*;

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
