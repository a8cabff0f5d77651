//! Protocol abuse against pipelock: smuggling, oversized heads, slowloris, h2 floods,
//! tunnel exhaustion, pipelining.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const ALLOW: &str = "echo.test:*\n127.0.0.1/32\n";

/// Reads everything until EOF or `limit`; returns the text.
async fn read_all(s: &mut TcpStream, limit: Duration) -> String {
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(limit, s.read_to_end(&mut buf)).await;
    String::from_utf8_lossy(&buf).to_string()
}

fn statuses(text: &str) -> Vec<u16> {
    text.match_indices("HTTP/1.1 ")
        .filter_map(|(i, _)| text[i + 9..].get(..3).and_then(|s| s.parse().ok()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_smuggling_attempts_never_reach_the_origin_as_extra_requests() {
    let env = Env::new(ALLOW, "").await;
    let p = env.spawn(&[]).await;
    let hp = env.http_port();
    let a = format!("echo.test:{hp}");
    let smuggled = format!("GET http://{a}/smuggled HTTP/1.1\r\nHost: {a}\r\n\r\n");
    let cases = [
        // CL + TE: must not be framed by Content-Length.
        format!("POST http://{a}/cl-te HTTP/1.1\r\nHost: {a}\r\nContent-Length: {}\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n0\r\n\r\n{smuggled}", 5 + smuggled.len()),
        // Duplicate, conflicting Content-Length.
        format!("POST http://{a}/dup-cl HTTP/1.1\r\nHost: {a}\r\nContent-Length: 0\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{smuggled}", smuggled.len()),
        // obs-fold continuation line hiding a Transfer-Encoding.
        format!("POST http://{a}/obs-fold HTTP/1.1\r\nHost: {a}\r\nX-A: 1\r\n Transfer-Encoding: chunked\r\nContent-Length: 0\r\nConnection: close\r\n\r\n{smuggled}"),
        // TE with a bogus coding.
        format!("POST http://{a}/te-bogus HTTP/1.1\r\nHost: {a}\r\nTransfer-Encoding: xchunked\r\nConnection: close\r\n\r\n{smuggled}"),
        // Bare LF line endings and a space before the colon.
        format!("POST http://{a}/bare-lf HTTP/1.1\nHost: {a}\nContent-Length : 0\nConnection: close\n\n{smuggled}"),
    ];
    for c in cases {
        env.origin.clear_requests();
        let mut s = TcpStream::connect(p.addr).await.unwrap();
        s.write_all(c.as_bytes()).await.unwrap();
        let text = read_all(&mut s, Duration::from_secs(5)).await;
        let seen = env.origin.requests();
        let name = c.split_whitespace().nth(1).unwrap().to_string();
        // Whatever pipelock decides, the origin never receives the smuggled request...
        assert!(
            seen.iter().all(|r| r.path != "/smuggled"),
            "{name}: smuggled request reached the origin; got {text}"
        );
        // ...and never more requests than the client got responses for.
        assert!(
            seen.len() <= statuses(&text).len(),
            "{name}: {} origin requests, responses {text}",
            seen.len()
        );
        // Framing the body with the smaller (or chunked) length: the smuggled bytes are not body either.
        assert!(seen.iter().all(|r| r.body_len == 0), "{name}: {seen:?}");
    }
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_heads_and_header_counts_are_refused() {
    let env = Env::new(ALLOW, "").await;
    let p = env
        .spawn(&["--max-header-bytes", "16384", "--max-headers", "50"])
        .await;
    let hp = env.http_port();
    let a = format!("echo.test:{hp}");
    // One huge header.
    let big = "x".repeat(100_000);
    let mut s = TcpStream::connect(p.addr).await.unwrap();
    let _ = s
        .write_all(
            format!("GET http://{a}/big HTTP/1.1\r\nHost: {a}\r\nX-Big: {big}\r\n\r\n").as_bytes(),
        )
        .await;
    let text = read_all(&mut s, Duration::from_secs(5)).await;
    assert!(
        text.is_empty() || statuses(&text).iter().all(|&c| c == 431 || c == 400),
        "{text}"
    );
    // Too many headers.
    let many: String = (0..200).map(|i| format!("X-H{i}: v\r\n")).collect();
    let mut s = TcpStream::connect(p.addr).await.unwrap();
    let _ = s
        .write_all(format!("GET http://{a}/many HTTP/1.1\r\nHost: {a}\r\n{many}\r\n").as_bytes())
        .await;
    let text = read_all(&mut s, Duration::from_secs(5)).await;
    assert!(
        text.is_empty() || statuses(&text).iter().all(|&c| c == 431 || c == 400),
        "{text}"
    );
    // Same inside an intercepted tunnel.
    let auth = format!("echo.test:{}", env.tls_port());
    let c = connect(p.addr, &auth).await;
    let mut t = tls(
        c,
        "echo.test",
        client_config(roots_from_pem(&env.ca_cert()), &[b"http/1.1"]),
    )
    .await
    .unwrap();
    let _ = t
        .write_all(format!("GET /big HTTP/1.1\r\nHost: {auth}\r\nX-Big: {big}\r\n\r\n").as_bytes())
        .await;
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), t.read_to_end(&mut buf)).await;
    let text = String::from_utf8_lossy(&buf);
    assert!(
        text.is_empty() || statuses(&text).iter().all(|&c| c == 431 || c == 400),
        "{text}"
    );
    assert!(env.origin.requests().is_empty());
    // Normal requests still work.
    assert_eq!(
        http_get(p.addr, &format!("http://{a}/ok")).await.status,
        200
    );
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slowloris_on_headers_and_bodies_is_cut_off() {
    let env = Env::new(ALLOW, "").await;
    let p = env
        .spawn(&["--header-timeout-secs", "2", "--idle-timeout-secs", "2"])
        .await;
    let hp = env.http_port();
    let a = format!("echo.test:{hp}");
    // Headers trickled and then stalled.
    let mut s = TcpStream::connect(p.addr).await.unwrap();
    s.write_all(format!("GET http://{a}/slow-head HTTP/1.1\r\nHost: {a}\r\nX-1: a\r\n").as_bytes())
        .await
        .unwrap();
    let t0 = Instant::now();
    let text = read_all(&mut s, Duration::from_secs(15)).await;
    assert!(
        t0.elapsed() < Duration::from_secs(12),
        "head slowloris not cut: {text}"
    );
    // A body that stalls after a few bytes.
    let mut s = TcpStream::connect(p.addr).await.unwrap();
    s.write_all(
        format!(
            "POST http://{a}/upload HTTP/1.1\r\nHost: {a}\r\nContent-Length: 100000\r\n\r\nabc"
        )
        .as_bytes(),
    )
    .await
    .unwrap();
    let t0 = Instant::now();
    let text = read_all(&mut s, Duration::from_secs(15)).await;
    assert!(
        t0.elapsed() < Duration::from_secs(12),
        "body slowloris not cut"
    );
    let _ = text;
    // The origin saw the upload aborted, not completed.
    let up: Vec<_> = env
        .origin
        .requests()
        .into_iter()
        .filter(|r| r.path == "/upload")
        .collect();
    assert!(up.iter().all(|r| r.body_len < 100_000), "{up:?}");
    // Idle CONNECT tunnel (no ClientHello): closed too.
    let mut c = connect(p.addr, &format!("echo.test:{}", env.tls_port())).await;
    let t0 = Instant::now();
    let mut buf = [0u8; 16];
    let _ = tokio::time::timeout(Duration::from_secs(15), c.read(&mut buf)).await;
    assert!(
        t0.elapsed() < Duration::from_secs(14),
        "idle tunnel not closed"
    );
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_idle_tunnels_are_bounded_with_a_clear_503() {
    let env = Env::new(ALLOW, "").await;
    let p = Proc::start(&env, &["--max-tunnels", "200"]);
    let auth = format!("echo.test:{}", env.tls_port());
    let mut open = Vec::new();
    for _ in 0..200 {
        open.push(connect(p.addr, &auth).await);
    }
    let mut refused = 0;
    for _ in 0..300 {
        let (status, head, mut s) = raw_head(
            p.addr,
            &format!("CONNECT {auth} HTTP/1.1\r\nHost: {auth}\r\n\r\n"),
        )
        .await;
        assert_eq!(status, 503, "{head}");
        let body = read_body(&mut s, &head).await;
        assert!(body.contains("too many open tunnels (limit 200)"), "{body}");
        assert!(head
            .to_ascii_lowercase()
            .contains("x-bottle-blocked: pipelock"));
        refused += 1;
    }
    assert_eq!(refused, 300);
    // Plain requests still served while the tunnel limit is reached.
    assert_eq!(
        http_get(
            p.addr,
            &format!("http://echo.test:{}/still", env.http_port())
        )
        .await
        .status,
        200
    );
    // Closing tunnels frees slots.
    open.truncate(150);
    let ok = async {
        loop {
            let (status, _, s) = raw_head(
                p.addr,
                &format!("CONNECT {auth} HTTP/1.1\r\nHost: {auth}\r\n\r\n"),
            )
            .await;
            if status == 200 {
                return s;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    let s = tokio::time::timeout(T, ok).await.expect("a slot frees up");
    let t = tls(
        s,
        "echo.test",
        client_config(roots_from_pem(&env.ca_cert()), &[b"http/1.1"]),
    )
    .await
    .unwrap();
    let r = h1(
        t,
        http::Request::get("/after")
            .header("host", &auth)
            .body(Default::default())
            .unwrap(),
    )
    .await;
    assert_eq!(r.status, 200);
    // Thousands of idle agent connections do not take the process down either.
    let mut idle = Vec::new();
    for _ in 0..2000 {
        idle.push(TcpStream::connect(p.addr).await.unwrap());
    }
    assert_eq!(
        http_get(
            p.addr,
            &format!("http://echo.test:{}/still2", env.http_port())
        )
        .await
        .status,
        200
    );
    eprintln!(
        "RSS with 150 tunnels + 2000 idle connections: {} KiB",
        p.rss_kib()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelined_requests_are_answered_in_order() {
    let env = Env::new(ALLOW, "").await;
    let p = env.spawn(&[]).await;
    let hp = env.http_port();
    let a = format!("echo.test:{hp}");
    let mut s = TcpStream::connect(p.addr).await.unwrap();
    let mut reqs = String::new();
    for i in 0..5 {
        reqs.push_str(&format!(
            "GET http://{a}/pipe{i} HTTP/1.1\r\nHost: {a}\r\n\r\n"
        ));
    }
    reqs.push_str(&format!(
        "GET http://other.test:{hp}/no HTTP/1.1\r\nHost: other.test:{hp}\r\n\r\n"
    ));
    reqs.push_str(&format!(
        "GET http://{a}/pipe-last HTTP/1.1\r\nHost: {a}\r\nConnection: close\r\n\r\n"
    ));
    s.write_all(reqs.as_bytes()).await.unwrap();
    let text = read_all(&mut s, T).await;
    assert_eq!(
        statuses(&text),
        vec![200, 200, 200, 200, 200, 403, 200],
        "{text}"
    );
    let order: Vec<usize> = (0..5)
        .map(|i| text.find(&format!("/pipe{i}")).unwrap())
        .collect();
    assert!(order.windows(2).all(|w| w[0] < w[1]));
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h2_rapid_reset_and_stream_floods_are_contained() {
    let env = Env::new(ALLOW, "").await;
    let p = env.spawn(&[]).await;
    let auth = format!("echo.test:{}", env.tls_port());
    let c = connect(p.addr, &auth).await;
    let t = tls(
        c,
        "echo.test",
        client_config(roots_from_pem(&env.ca_cert()), &[b"h2"]),
    )
    .await
    .unwrap();
    let (client, conn) = h2::client::handshake(t).await.unwrap();
    let conn = tokio::spawn(conn);
    let mut client = client.ready().await.unwrap();
    // One normal request first (the server's SETTINGS arrive).
    let (resp, _) = client
        .send_request(
            http::Request::get(format!("https://{auth}/first"))
                .body(())
                .unwrap(),
            true,
        )
        .unwrap();
    assert_eq!(
        tokio::time::timeout(T, resp)
            .await
            .unwrap()
            .unwrap()
            .status(),
        200
    );
    let mut client = client.ready().await.unwrap();
    assert_eq!(
        client.current_max_send_streams(),
        100,
        "server limits concurrent streams"
    );
    // Rapid reset: open and immediately cancel streams.
    let mut sent = 0;
    let mut broke = false;
    for _ in 0..5000 {
        let req = http::Request::get(format!("https://{auth}/slow?ms=2000"))
            .body(())
            .unwrap();
        match client.ready().await {
            Ok(c) => client = c,
            Err(_) => {
                broke = true;
                break;
            }
        }
        match client.send_request(req, true) {
            Ok((resp, _)) => {
                drop(resp); // RST_STREAM(CANCEL)
                sent += 1;
            }
            Err(_) => {
                broke = true;
                break;
            }
        }
        if sent % 200 == 0 {
            tokio::task::yield_now().await;
        }
    }
    let _ = tokio::time::timeout(Duration::from_secs(5), conn).await;
    let reached = env.origin.requests().len();
    eprintln!("rapid reset: {sent} streams opened and cancelled, connection closed by server: {broke}, origin saw {reached}");
    assert!(
        reached < 1000,
        "cancelled streams were not all forwarded ({reached})"
    );
    // pipelock is still healthy.
    let r = https_get(p.addr, &auth, "/alive", roots_from_pem(&env.ca_cert())).await;
    assert_eq!(r.status, 200);
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_limit_answers_a_clear_503() {
    let env = Env::new(ALLOW, "").await;
    let p = env.spawn(&["--max-connections", "5"]).await;
    let mut idle = Vec::new();
    for _ in 0..5 {
        idle.push(TcpStream::connect(p.addr).await.unwrap());
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut s = TcpStream::connect(p.addr).await.unwrap();
    let text = read_all(&mut s, Duration::from_secs(5)).await;
    assert!(text.starts_with("HTTP/1.1 503"), "{text}");
    assert!(text.contains("X-Bottle-Blocked: pipelock"));
    assert!(text.contains("too many connections (limit 5)"));
    drop(idle);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        http_get(p.addr, &format!("http://echo.test:{}/ok", env.http_port()))
            .await
            .status,
        200
    );
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_name_with_any_private_answer_is_refused_before_connecting() {
    let env = Env::new("mixed.test:*\necho.test:*\n127.0.0.1/32\n", "").await;
    let p = env
        .spawn(&[
            "--resolve",
            "mixed.test=127.0.0.1",
            "--resolve",
            "mixed.test=10.0.0.1",
        ])
        .await;
    let port = env.tls_port();
    // CONNECT (intercepted) and plain HTTP: refused with the private address named.
    let (status, head, mut s) = raw_head(
        p.addr,
        &format!("CONNECT mixed.test:{port} HTTP/1.1\r\nHost: mixed.test\r\n\r\n"),
    )
    .await;
    assert_eq!(status, 403, "{head}");
    assert!(read_body(&mut s, &head).await.contains("10.0.0.1"));
    let r = http_get(p.addr, &format!("http://mixed.test:{}/m", env.http_port())).await;
    assert_eq!(r.status, 403, "{}", r.text());
    assert!(
        r.text().contains("private address: 10.0.0.1"),
        "{}",
        r.text()
    );
    assert_eq!(env.origin.total_connections(), 0, "nothing was connected");
    p.stop().await;
}
