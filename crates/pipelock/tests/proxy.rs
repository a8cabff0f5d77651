//! End-to-end behaviour of pipelock against the echo origin, driven by curl and a Rust client.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use std::time::{Duration, Instant};

fn allow_echo(env_ports: (u16, u16)) -> String {
    let _ = env_ports;
    "echo.test:*\n127.0.0.1/32\n".to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn allowed_and_refused_over_http_and_https_with_curl() {
    let env = Env::new(&allow_echo((0, 0)), "").await;
    let p = env.spawn(&[]).await;
    let ca = env.ca_cert();

    // HTTPS through the MITM, verified against the bottle CA.
    let (code, body, err) = curl(
        p.addr,
        &ca,
        &format!("https://echo.test:{}/hello?x=1", env.tls_port()),
        &[],
    );
    assert_eq!(code, 200, "{err}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["path"], "/hello");
    // HTTP absolute-form.
    let (code, body, err) = curl(
        p.addr,
        &ca,
        &format!("http://echo.test:{}/plain", env.http_port()),
        &[],
    );
    assert_eq!(code, 200, "{err}");
    assert!(body.contains("/plain"));

    // Refused HTTPS: curl reports the CONNECT refusal (no tunnel opened).
    let (code, _body, err) = curl(
        p.addr,
        &ca,
        &format!("https://other.test:{}/", env.tls_port()),
        &["-v"],
    );
    assert!(code == 403 || code == 0, "code {code}");
    assert!(err.contains("403"), "{err}");
    // Refused HTTP: the body's first line is the refusal with the hint, then the rule
    // that decided and what the operator can run.
    let (code, body, _) = curl(
        p.addr,
        &ca,
        &format!("http://other.test:{}/", env.http_port()),
        &[],
    );
    assert_eq!(code, 403);
    assert_eq!(
        body,
        format!(
            "blocked by pipelock: host not allowed: other.test:{0} (run: bottle allow other.test:{0})\n\
             rule: allowlist: no line or route matches other.test:{0}\n\
             operator: bottle allow other.test:{0}\n",
            env.http_port()
        )
    );
    // Nothing refused reached the origin.
    assert!(env
        .origin
        .requests()
        .iter()
        .all(|r| r.path != "/" || r.authority.as_deref() != Some("other.test")));
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_connect_is_answered_before_any_tunnel() {
    let env = Env::new("echo.test:*\n127.0.0.1/32\n", "").await;
    let p = env.spawn(&[]).await;
    let (status, head, mut s) = raw_head(
        p.addr,
        &format!(
            "CONNECT other.test:{0} HTTP/1.1\r\nHost: other.test:{0}\r\n\r\n",
            env.tls_port()
        ),
    )
    .await;
    assert_eq!(status, 403, "{head}");
    assert!(
        head.to_ascii_lowercase()
            .contains("x-bottle-blocked: pipelock"),
        "{head}"
    );
    let body = read_body(&mut s, &head).await;
    assert!(
        body.starts_with("blocked by pipelock: host not allowed: other.test:"),
        "{body}"
    );
    assert_eq!(env.origin.total_connections(), 0);
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_spellings_wildcard_port_trailing_dot_case_idn() {
    let env = Env::new("", "").await;
    let port = env.tls_port();
    env.write_allowlist(&format!(
        "*.wild.test:*\nport.test:{port}\necho.test:*\nbücher.test:*\n127.0.0.1/32\n# comment\n"
    ));
    let p = env.spawn(&[]).await;
    let cases: Vec<(String, u16)> = vec![
        (format!("a.wild.test:{port}"), 200),
        (format!("b.c.wild.test:{port}"), 200),
        (format!("wild.test:{port}"), 403), // apex not covered by *.
        (format!("port.test:{port}"), 200),
        (format!("port.test:{}", port.wrapping_add(1)), 403), // other port
        (format!("echo.test.:{port}"), 200),                  // trailing dot
        (format!("ECHO.Test:{port}"), 200),                   // case
        (format!("xn--bcher-kva.test:{port}"), 200),          // IDN in punycode
        (format!("bücher.test:{port}"), 403), // raw UTF-8 in a request target: refused (clients send punycode)
        (format!("bucher.test:{port}"), 403), // homograph-ish near miss
        (format!("evil.test:{port}"), 403),
        (format!("echo.test.evil.test:{port}"), 403),
        (format!("user@echo.test:{port}"), 403), // userinfo
        // Cyrillic homograph of echo.test, in punycode.
        (format!("xn--ho-mlc2c.test:{port}"), 403),
    ];
    for (auth, want) in cases {
        let (status, head, _) = raw_head(
            p.addr,
            &format!("CONNECT {auth} HTTP/1.1\r\nHost: {auth}\r\n\r\n"),
        )
        .await;
        let status = if status == 400 { 403 } else { status };
        assert_eq!(status, want, "CONNECT {auth}: {head}");
    }
    // A full request through a wildcard-allowed name and through the trailing-dot spelling.
    let r = https_get(
        p.addr,
        &format!("a.wild.test:{port}"),
        "/w",
        roots_from_pem(&env.ca_cert()),
    )
    .await;
    assert_eq!(r.status, 200);
    let (code, _, err) = curl(
        p.addr,
        &env.ca_cert(),
        &format!("https://ECHO.test.:{port}/dot"),
        &[],
    );
    assert_eq!(code, 200, "{err}");
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ip_literal_spellings_refused_unless_allowed() {
    let env = Env::new("echo.test:*\n", "").await;
    let p = env.spawn(&[]).await;
    let port = env.tls_port();
    let hport = env.http_port();
    let spellings = [
        "127.0.0.1",
        "127.1",
        "2130706433",
        "0x7f000001",
        "0x7f.0.0.1",
        "0177.0.0.1",
        "0177.1",
        "[::ffff:127.0.0.1]",
        "[::ffff:7f00:1]",
        "[::1]",
        "127.000.000.001",
        "[0:0:0:0:0:ffff:127.0.0.1]",
        "0.0.0.0",
        "0",
        "[::]",
        "[fe80::1%25lo]",
        "[::1%251]",
        "127.0.0.1%2e",
        "localhost",
    ];
    for s in spellings {
        let (status, head, _) = raw_head(
            p.addr,
            &format!("CONNECT {s}:{port} HTTP/1.1\r\nHost: {s}:{port}\r\n\r\n"),
        )
        .await;
        assert!(status == 403 || status == 400, "CONNECT {s}: {head}");
        let (status, head, _) = raw_head(
            p.addr,
            &format!("GET http://{s}:{hport}/ HTTP/1.1\r\nHost: {s}:{hport}\r\n\r\n"),
        )
        .await;
        assert!(status == 403 || status == 400, "GET {s}: {head}");
    }
    // A name that resolves to a private address is refused too (SSRF), even when allowed.
    env.write_allowlist("echo.test:*\nprivate.test:*\n");
    p.live.reload_now().await.unwrap();
    let (status, head, _) = raw_head(
        p.addr,
        &format!("CONNECT private.test:{port} HTTP/1.1\r\nHost: private.test\r\n\r\n"),
    )
    .await;
    assert_eq!(status, 403, "{head}");
    assert!(head.contains("403"));
    // echo.test resolves to 127.0.0.1: refused until an address line covers it.
    let (status, head, _) = raw_head(
        p.addr,
        &format!("CONNECT echo.test:{port} HTTP/1.1\r\nHost: echo.test\r\n\r\n"),
    )
    .await;
    assert_eq!(status, 403, "{head}");
    assert_eq!(env.origin.total_connections(), 0);

    // Allowed by an address line: every spelling now reaches the origin.
    env.write_allowlist("127.0.0.1\n");
    p.live.reload_now().await.unwrap();
    for s in [
        "127.0.0.1",
        "127.1",
        "2130706433",
        "0x7f.0.0.1",
        "[::ffff:127.0.0.1]",
    ] {
        let (status, head, _) = raw_head(
            p.addr,
            &format!("GET http://{s}:{hport}/ip HTTP/1.1\r\nHost: {s}:{hport}\r\n\r\n"),
        )
        .await;
        assert_eq!(status, 200, "GET {s}: {head}");
    }
    let r = https_get(
        p.addr,
        &format!("127.0.0.1:{port}"),
        "/ip",
        roots_from_pem(&env.ca_cert()),
    )
    .await;
    assert_eq!(r.status, 200);
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mitm_certificate_verifies_against_the_bottle_ca_only() {
    let env = Env::new("echo.test:*\n127.0.0.1/32\n", "").await;
    let p = env.spawn(&[]).await;
    let auth = format!("echo.test:{}", env.tls_port());
    // Bottle CA: verifies; chain is [leaf, CA]; SAN = echo.test.
    let s = connect(p.addr, &auth).await;
    let t = tls(
        s,
        "echo.test",
        client_config(roots_from_pem(&env.ca_cert()), &[b"http/1.1"]),
    )
    .await
    .unwrap();
    let chain = t.get_ref().1.peer_certificates().unwrap().to_vec();
    assert_eq!(chain.len(), 2);
    let ca_pem = std::fs::read(env.ca_cert()).unwrap();
    let ca_der = rustls_pemfile::certs(&mut ca_pem.as_slice())
        .next()
        .unwrap()
        .unwrap();
    assert_eq!(chain[1].as_ref(), ca_der.as_ref());
    let (_, leaf) = x509_parser::parse_x509_certificate(&chain[0]).unwrap();
    let san = format!(
        "{:?}",
        leaf.subject_alternative_name().unwrap().unwrap().value
    );
    assert!(san.contains("echo.test"), "{san}");
    drop(t);
    // The origin's CA does not verify the MITM leaf...
    let s = connect(p.addr, &auth).await;
    assert!(tls(
        s,
        "echo.test",
        client_config(roots_from_pem(&env.origin.ca_path), &[])
    )
    .await
    .is_err());
    // ...nor do the public web roots.
    let mut web = rustls::RootCertStore::empty();
    web.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    let s = connect(p.addr, &auth).await;
    assert!(tls(s, "echo.test", client_config(web, &[])).await.is_err());
    // curl without the bottle CA fails verification.
    let (code, _, err) = curl(
        p.addr,
        &env.origin.ca_path,
        &format!("https://{auth}/"),
        &[],
    );
    assert_eq!(code, 0, "{err}");
    // Cache: one mint for echo.test, kept across a reload.
    assert_eq!(p.cert_cache_stats().mints, 1);
    p.live.reload_now().await.unwrap();
    let r = https_get(p.addr, &auth, "/again", roots_from_pem(&env.ca_cert())).await;
    assert_eq!(r.status, 200);
    assert_eq!(p.cert_cache_stats().mints, 1);
    assert!(p.cert_cache_stats().hits >= 1);
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rsa_ca_works() {
    let env = Env::new("echo.test:*\n127.0.0.1/32\n", "").await;
    let rsa = echo_origin::TestCa::new_rsa();
    let d = env.dir.path().join("rsa");
    std::fs::create_dir_all(&d).unwrap();
    let cert = rsa.write_cert(&d);
    let key = rsa.write_key(&d).unwrap();
    std::fs::copy(&cert, env.ca_cert()).unwrap();
    std::fs::copy(&key, env.ca_key()).unwrap();
    let p = env.spawn(&[]).await;
    let r = https_get(
        p.addr,
        &format!("echo.test:{}", env.tls_port()),
        "/rsa",
        roots_from_pem(&env.ca_cert()),
    )
    .await;
    assert_eq!(r.status, 200);
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_and_sni_must_match_the_connect_target() {
    let env = Env::new("echo.test:*\nother.test:*\n127.0.0.1/32\n", "").await;
    let p = env.spawn(&[]).await;
    let port = env.tls_port();
    let roots = || roots_from_pem(&env.ca_cert());
    // SNI other.test inside CONNECT echo.test: handshake refused.
    let s = connect(p.addr, &format!("echo.test:{port}")).await;
    assert!(tls(s, "other.test", client_config(roots(), &[]))
        .await
        .is_err());
    // SNI right, Host wrong (domain fronting): 403 naming the mismatch.
    let s = connect(p.addr, &format!("echo.test:{port}")).await;
    let t = tls(s, "echo.test", client_config(roots(), &[b"http/1.1"]))
        .await
        .unwrap();
    let req = http::Request::get("/front")
        .header("host", format!("other.test:{port}"))
        .body(Default::default())
        .unwrap();
    let r = h1(t, req).await;
    assert_eq!(r.status, 403);
    assert!(
        r.text().contains("does not match the CONNECT target"),
        "{}",
        r.text()
    );
    assert_eq!(r.headers.get("x-bottle-blocked").unwrap(), "pipelock");
    // Same port mismatch.
    let s = connect(p.addr, &format!("echo.test:{port}")).await;
    let t = tls(s, "echo.test", client_config(roots(), &[b"http/1.1"]))
        .await
        .unwrap();
    let req = http::Request::get("/front")
        .header("host", "echo.test:1")
        .body(Default::default())
        .unwrap();
    assert_eq!(h1(t, req).await.status, 403);
    // HTTP/2 :authority mismatch.
    let s = connect(p.addr, &format!("echo.test:{port}")).await;
    let t = tls(s, "echo.test", client_config(roots(), &[b"h2"]))
        .await
        .unwrap();
    assert_eq!(t.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    let (mut send, conn) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(t),
    )
    .await
    .unwrap();
    tokio::spawn(conn);
    let req = http::Request::get(format!("https://other.test:{port}/h2"))
        .body(empty())
        .unwrap();
    let r = send.send_request(req).await.unwrap();
    assert_eq!(r.status(), 403);
    let req = http::Request::get(format!("https://echo.test:{port}/h2ok"))
        .body(empty())
        .unwrap();
    let r = send.send_request(req).await.unwrap();
    assert_eq!(r.status(), 200);
    // CONNECT nested inside the intercepted tunnel: refused.
    let s = connect(p.addr, &format!("echo.test:{port}")).await;
    let mut t = tls(s, "echo.test", client_config(roots(), &[b"http/1.1"]))
        .await
        .unwrap();
    use tokio::io::AsyncWriteExt;
    t.write_all(
        format!("CONNECT echo.test:{port} HTTP/1.1\r\nHost: echo.test:{port}\r\n\r\n").as_bytes(),
    )
    .await
    .unwrap();
    let (status, head) = read_head(&mut t).await;
    assert_eq!(status, 405, "{head}");
    // Userinfo in an absolute URI.
    let hp0 = env.http_port();
    let (status, head, _) = raw_head(
        p.addr,
        &format!("GET http://user:pw@echo.test:{hp0}/ HTTP/1.1\r\nHost: echo.test:{hp0}\r\n\r\n"),
    )
    .await;
    assert!(status == 403 || status == 400, "{head}");
    // Plain HTTP: absolute URI vs Host mismatch.
    let hp = env.http_port();
    let (status, head, _) = raw_head(
        p.addr,
        &format!("GET http://echo.test:{hp}/ HTTP/1.1\r\nHost: other.test:{hp}\r\n\r\n"),
    )
    .await;
    assert_eq!(status, 403, "{head}");
    assert!(env.origin.requests().iter().all(|r| r.path != "/front"));
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passthrough_presents_the_origins_own_certificate() {
    let env = Env::new(
        "127.0.0.1/32\n",
        "routes:\n  - host: \"pass.test:*\"\n    tls_passthrough: true\n",
    )
    .await;
    let p = env.spawn(&[]).await;
    let auth = format!("pass.test:{}", env.tls_port());
    let s = connect(p.addr, &auth).await;
    let t = tls(
        s,
        "pass.test",
        client_config(roots_from_pem(&env.origin.ca_path), &[b"http/1.1"]),
    )
    .await
    .unwrap();
    let req = http::Request::get("/pass")
        .header("host", &auth)
        .body(Default::default())
        .unwrap();
    let r = h1(t, req).await;
    assert_eq!(r.status, 200);
    // The bottle CA does not verify it: it was not intercepted.
    let s = connect(p.addr, &auth).await;
    assert!(tls(
        s,
        "pass.test",
        client_config(roots_from_pem(&env.ca_cert()), &[])
    )
    .await
    .is_err());
    assert_eq!(p.cert_cache_stats().mints, 0);
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sse_arrives_incrementally() {
    let env = Env::new("echo.test:*\n127.0.0.1/32\n", "").await;
    let p = env.spawn(&[]).await;
    let auth = format!("echo.test:{}", env.tls_port());
    let mut send = tunnel_h1(p.addr, &auth, "echo.test", &env.ca_cert()).await;
    let req = http::Request::get("/sse?n=3&interval_ms=700")
        .header("host", &auth)
        .body(empty())
        .unwrap();
    let start = Instant::now();
    let resp = send.send_request(req).await.unwrap();
    assert_eq!(resp.status(), 200);
    let mut body = resp.into_body();
    let mut times = Vec::new();
    let mut text = String::new();
    use http_body_util::BodyExt;
    while let Some(f) = tokio::time::timeout(T, body.frame()).await.unwrap() {
        if let Some(d) = f.unwrap().data_ref() {
            text.push_str(&String::from_utf8_lossy(d));
            let events = text.matches("\n\n").count();
            while times.len() < events {
                times.push(start.elapsed());
            }
        }
    }
    assert!(times.len() >= 3, "{text}");
    // The first event arrived well before the last one was sent.
    assert!(
        times[2] - times[0] >= Duration::from_millis(1000),
        "{times:?}"
    );
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_echo_through_the_intercepted_tunnel() {
    use futures_util::{SinkExt, StreamExt};
    let env = Env::new("echo.test:*\n127.0.0.1/32\n", "").await;
    let p = env.spawn(&[]).await;
    let auth = format!("echo.test:{}", env.tls_port());
    let s = connect(p.addr, &auth).await;
    let t = tls(
        s,
        "echo.test",
        client_config(roots_from_pem(&env.ca_cert()), &[b"http/1.1"]),
    )
    .await
    .unwrap();
    let (mut ws, resp) = tokio_tungstenite::client_async(format!("wss://{auth}/ws"), t)
        .await
        .unwrap();
    assert_eq!(resp.status(), 101);
    for i in 0..5 {
        let msg = format!("hello {i}");
        ws.send(tokio_tungstenite::tungstenite::Message::text(msg.clone()))
            .await
            .unwrap();
        let back = tokio::time::timeout(T, ws.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert_eq!(back.into_text().unwrap().as_str(), msg);
    }
    ws.close(None).await.unwrap();
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxy_authorization_and_hop_by_hop_headers_are_not_forwarded() {
    let env = Env::new("echo.test:*\n127.0.0.1/32\n", "").await;
    let p = env.spawn(&[]).await;
    let hp = env.http_port();
    let (status, head, mut s) = raw_head(
        p.addr,
        &format!(
            "GET http://echo.test:{hp}/hop HTTP/1.1\r\nHost: echo.test:{hp}\r\nProxy-Authorization: Basic c2VjcmV0\r\nConnection: close, X-Drop-Me\r\nX-Drop-Me: 1\r\nX-Keep: 2\r\n\r\n"
        ),
    )
    .await;
    assert_eq!(status, 200, "{head}");
    let _ = read_body(&mut s, &head).await;
    let seen = env
        .origin
        .requests()
        .into_iter()
        .find(|r| r.path == "/hop")
        .unwrap();
    assert!(seen.header("proxy-authorization").is_none());
    assert!(seen.header("x-drop-me").is_none());
    assert_eq!(seen.header("x-keep"), Some("2"));
    // A GET without a body is forwarded without one (no chunked framing invented).
    assert!(seen.header("transfer-encoding").is_none(), "{seen:?}");
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_inside_the_tunnel_and_connection_reuse() {
    let env = Env::new("echo.test:*\n127.0.0.1/32\n", "").await;
    let p = env.spawn(&[]).await;
    let auth = format!("echo.test:{}", env.tls_port());
    let (code, body, err) = curl(
        p.addr,
        &env.ca_cert(),
        &format!("https://{auth}/h2"),
        &["--http2"],
    );
    assert_eq!(code, 200, "{err}");
    assert!(body.contains("/h2"));
    // Keep-alive: several requests on one tunnel reuse one upstream connection pool.
    let mut send = tunnel_h1(p.addr, &auth, "echo.test", &env.ca_cert()).await;
    let before = env.origin.total_connections();
    for i in 0..10 {
        send.ready().await.unwrap();
        let req = http::Request::get(format!("/k{i}"))
            .header("host", &auth)
            .body(empty())
            .unwrap();
        let r = send.send_request(req).await.unwrap();
        assert_eq!(r.status(), 200);
        use http_body_util::BodyExt;
        r.into_body().collect().await.unwrap();
    }
    assert!(
        env.origin.total_connections() - before <= 1,
        "upstream connections are pooled"
    );
    p.stop().await;
}

/// A refusal's hint is relayed to the operator: it must never suggest opening a private,
/// loopback or metadata address. Refused before any lookup or connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_never_hint_at_allowing_private_or_metadata_hosts() {
    let env = Env::new(&allow_echo((0, 0)), "").await;
    let p = env.spawn(&[]).await;
    let ca = env.ca_cert();
    for url in [
        "http://10.9.8.7/",
        "http://169.254.169.254/latest/meta-data/",
        "http://metadata.google.internal/computeMetadata/v1/",
        "http://localhost:6379/",
        "http://[fd00::1]/",
    ] {
        let (code, body, err) = curl(p.addr, &ca, url, &[]);
        assert_eq!(code, 403, "{url}: {err}");
        assert!(body.starts_with("blocked by pipelock: "), "{url}: {body}");
        assert!(!body.contains("bottle allow"), "{url}: {body}");
    }
    // A public name still gets the remedy.
    let (code, body, _) = curl(p.addr, &ca, "http://other.test/", &[]);
    assert_eq!(code, 403);
    assert!(body.contains("(run: bottle allow other.test)"), "{body}");
}
