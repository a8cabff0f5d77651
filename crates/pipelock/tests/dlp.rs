//! DLP through pipelock: URL, headers and streaming bodies; block vs log; audit never holds secrets.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use std::io::Write;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, StreamBody};

/// A GitHub-PAT-shaped token assembled at run time (never a real credential).
fn token() -> String {
    let alnum = "Zq8Lr3Tx6Wv1Np9Ks4Hb7Jd2Mf5Gc0Ye8Ua3Io6Pl";
    format!("ghp_{}", &alnum[..36])
}

fn aws() -> String {
    format!("AKIA{}", "QZ7T3WXR5Y2P6N4K")
}

async fn env_with(routes: &str) -> (Env, pipelock::Running, std::path::PathBuf) {
    let env = Env::new("echo.test:*\n127.0.0.1/32\n", routes).await;
    let audit = env.dir.path().join("audit.jsonl");
    let ap = audit.display().to_string();
    let p = env.spawn(&["--audit-log", &ap]).await;
    (env, p, audit)
}

fn audit_text(path: &std::path::Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secret_in_url_query_is_blocked_and_audit_is_redacted() {
    let (env, p, audit) = env_with("").await;
    let tok = token();
    let url = format!(
        "http://echo.test:{}/search?q=1&token={tok}",
        env.http_port()
    );
    let r = http_get(p.addr, &url).await;
    assert_eq!(r.status, 403, "{}", r.text());
    assert!(
        r.text()
            .starts_with("blocked by pipelock: secret detected in request URL: "),
        "{}",
        r.text()
    );
    assert!(
        r.text().contains("github"),
        "names the detector: {}",
        r.text()
    );
    assert!(!r.text().contains(&tok));
    assert!(env.origin.requests().iter().all(|q| q.path != "/search"));
    // HTTPS through the tunnel too, with curl.
    let (code, body, _) = curl(
        p.addr,
        &env.ca_cert(),
        &format!("https://echo.test:{}/p/{tok}", env.tls_port()),
        &[],
    );
    assert_eq!(code, 403, "{body}");
    p.stop().await;
    let a = audit_text(&audit);
    assert!(a.contains("[REDACTED]"), "{a}");
    assert!(!a.contains(&tok), "audit must never hold the secret");
    assert!(!a.contains(&tok[4..20]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secret_in_header_is_blocked() {
    let (env, p, audit) = env_with("").await;
    let key = aws();
    let hp = env.http_port();
    let (status, head, mut s) = raw_head(
        p.addr,
        &format!("GET http://echo.test:{hp}/h HTTP/1.1\r\nHost: echo.test:{hp}\r\nX-Upload-Auth: {key}\r\n\r\n"),
    )
    .await;
    assert_eq!(status, 403, "{head}");
    let body = read_body(&mut s, &head).await;
    assert!(
        body.contains("header x-upload-auth") && body.contains("aws"),
        "{body}"
    );
    assert!(env.origin.requests().is_empty());
    p.stop().await;
    assert!(!audit_text(&audit).contains(&key));
}

async fn post_via_tunnel(
    env: &Env,
    p: &pipelock::Running,
    path: &str,
    body: http_body_util::combinators::BoxBody<Bytes, std::io::Error>,
    headers: &[(&str, &str)],
) -> Resp {
    let auth = format!("echo.test:{}", env.tls_port());
    let mut send = tunnel_h1(p.addr, &auth, "echo.test", &env.ca_cert()).await;
    let mut b = http::Request::post(path).header("host", &auth);
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    let resp = tokio::time::timeout(T, send.send_request(b.body(body).unwrap()))
        .await
        .unwrap();
    match resp {
        Ok(r) => {
            let (p, b) = r.into_parts();
            let body = b.collect().await.map(|c| c.to_bytes()).unwrap_or_default();
            Resp {
                status: p.status.as_u16(),
                headers: p.headers,
                body,
            }
        }
        Err(e) => panic!("request failed: {e}"),
    }
}

fn full(b: impl Into<Bytes>) -> http_body_util::combinators::BoxBody<Bytes, std::io::Error> {
    Full::new(b.into()).map_err(|e| match e {}).boxed()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secret_in_streamed_body_split_across_chunks_is_blocked_before_it_leaves() {
    let (env, p, audit) = env_with("").await;
    let tok = token();
    // The body arrives in three slow chunks; the secret straddles the first boundary.
    let prefix = "x".repeat(10_000);
    let doc = format!("{prefix}{{\"note\":\"deploy with {tok} please\"}}");
    let cut = prefix.len() + 22;
    let parts = vec![
        doc[..cut].to_string(),
        doc[cut..cut + 10].to_string(),
        doc[cut + 10..].to_string(),
    ];
    let stream = futures_util::stream::unfold(parts.into_iter(), |mut it| async move {
        let next = it.next()?;
        tokio::time::sleep(Duration::from_millis(150)).await;
        Some((
            Ok::<_, std::io::Error>(hyper::body::Frame::data(Bytes::from(next))),
            it,
        ))
    });
    let body = StreamBody::new(stream).boxed();
    let r = post_via_tunnel(&env, &p, "/upload", body, &[]).await;
    assert_eq!(r.status, 403, "{}", r.text());
    assert!(
        r.text().contains("secret detected in request body: github"),
        "{}",
        r.text()
    );
    // The origin never got the secret: at most the bytes before it.
    for q in env.origin.requests() {
        assert!(
            q.body_len < (prefix.len() + 18) as u64,
            "origin got {} bytes",
            q.body_len
        );
    }
    p.stop().await;
    assert!(!audit_text(&audit).contains(&tok));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compressed_bodies_are_decoded_for_scanning_or_refused() {
    use async_compression::tokio::write::{BrotliEncoder, GzipEncoder, ZlibEncoder, ZstdEncoder};
    use tokio::io::AsyncWriteExt;
    let (env, p, _audit) = env_with("").await;
    let tok = token();
    let secret_doc = format!("{{\"k\":\"{tok}\"}}");
    let clean_doc = "hello, this is an ordinary request body ".repeat(100);
    async fn enc(kind: &str, data: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        match kind {
            "gzip" => {
                let mut e = GzipEncoder::new(&mut out);
                e.write_all(data).await.unwrap();
                e.shutdown().await.unwrap();
            }
            "deflate" => {
                let mut e = ZlibEncoder::new(&mut out);
                e.write_all(data).await.unwrap();
                e.shutdown().await.unwrap();
            }
            "br" => {
                let mut e = BrotliEncoder::new(&mut out);
                e.write_all(data).await.unwrap();
                e.shutdown().await.unwrap();
            }
            _ => {
                let mut e = ZstdEncoder::new(&mut out);
                e.write_all(data).await.unwrap();
                e.shutdown().await.unwrap();
            }
        }
        out
    }
    for kind in ["gzip", "deflate", "br", "zstd"] {
        let bad = enc(kind, secret_doc.as_bytes()).await;
        let r = post_via_tunnel(
            &env,
            &p,
            "/upload",
            full(bad),
            &[("content-encoding", kind)],
        )
        .await;
        assert_eq!(r.status, 403, "{kind}: {}", r.text());
        let good = enc(kind, clean_doc.as_bytes()).await;
        let r = post_via_tunnel(
            &env,
            &p,
            "/upload",
            full(good),
            &[("content-encoding", kind)],
        )
        .await;
        assert_eq!(r.status, 200, "{kind}: {}", r.text());
        assert_eq!(r.json()["bytes"], clean_doc.len(), "forwarded decoded");
    }
    let r = post_via_tunnel(
        &env,
        &p,
        "/upload",
        full("abc"),
        &[("content-encoding", "compress")],
    )
    .await;
    assert_eq!(r.status, 415, "{}", r.text());
    let r = post_via_tunnel(
        &env,
        &p,
        "/upload",
        full("abc"),
        &[("content-encoding", "gzip, br")],
    )
    .await;
    assert_eq!(r.status, 415, "{}", r.text());
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dlp_action_log_lets_requests_through_and_records_them() {
    let (env, p, audit) = env_with("dlp:\n  action: log\n").await;
    let tok = token();
    let r = http_get(
        p.addr,
        &format!("http://echo.test:{}/l?token={tok}", env.http_port()),
    )
    .await;
    assert_eq!(r.status, 200);
    let r = post_via_tunnel(&env, &p, "/upload", full(format!("body {tok} end")), &[]).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["bytes"], 9 + tok.len());
    p.stop().await;
    let a = audit_text(&audit);
    assert!(a.contains("logged: github"), "{a}");
    assert!(a.contains("dlp_body"), "{a}");
    assert!(!a.contains(&tok));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dlp_action_log_records_every_detector_in_a_long_body() {
    let (env, p, audit) = env_with("dlp:\n  action: log\n").await;
    let tok = token();
    let key = aws();
    // Two different secrets 40 KB apart: scanning goes on after the first finding.
    let doc = format!(
        "gh {tok} {}{{\"aws_access_key_id\": \"{key}\"}} end",
        "y ".repeat(20_000)
    );
    let r = post_via_tunnel(&env, &p, "/upload", full(doc.clone()), &[]).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["bytes"], doc.len(), "log mode forwards every byte");
    p.stop().await;
    let a = audit_text(&audit);
    let line = a
        .lines()
        .find(|l| l.contains("dlp_body"))
        .unwrap_or_else(|| panic!("no dlp_body field: {a}"));
    assert!(line.contains("github"), "{line}");
    assert!(line.contains("aws-access-key-id"), "{line}");
    assert!(!a.contains(&tok) && !a.contains(&key));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secret_split_over_dns_labels_is_blocked() {
    // A wildcard entry would let any label through to DNS: the labels are scanned joined.
    let env = Env::new("*.wild.test:*\necho.test:*\n127.0.0.1/32\n", "").await;
    let audit = env.dir.path().join("audit.jsonl");
    let p = env
        .spawn(&["--audit-log", &audit.display().to_string()])
        .await;
    let tok = token();
    let (a, b) = (&tok[..20], &tok[20..]);
    let host = format!("{a}.{b}.wild.test");
    let tp = env.tls_port();
    let (status, head, mut s) = raw_head(
        p.addr,
        &format!("CONNECT {host}:{tp} HTTP/1.1\r\nHost: {host}:{tp}\r\n\r\n"),
    )
    .await;
    assert_eq!(status, 403, "{head}");
    let body = read_body(&mut s, &head).await;
    assert!(
        body.contains("secret detected in request host: github"),
        "{body}"
    );
    let r = http_get(p.addr, &format!("http://{host}:{}/x", env.http_port())).await;
    assert_eq!(r.status, 403, "{}", r.text());
    // Ordinary names under the same wildcard still work.
    drop(connect(p.addr, &format!("b.c.wild.test:{tp}")).await);
    assert!(env.origin.requests().is_empty());
    p.stop().await;
    let log = audit_text(&audit);
    assert!(log.contains("[REDACTED]"), "{log}");
    assert!(!log.contains(a) && !log.contains(b), "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn known_secret_canary_is_blocked_in_encoded_forms_and_never_logged() {
    let env = Env::new("echo.test:*\n127.0.0.1/32\n", "").await;
    let canary = "bottle-canary-7f3a9c21d4e8";
    let f = env.dir.path().join("known");
    std::fs::File::create(&f)
        .unwrap()
        .write_all(format!("# canary\n{canary}\n").as_bytes())
        .unwrap();
    let audit = env.dir.path().join("audit.jsonl");
    let (fp, ap) = (f.display().to_string(), audit.display().to_string());
    let p = env
        .spawn(&["--dlp-known-secrets", &fp, "--audit-log", &ap])
        .await;
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD.encode(canary);
    let hexed = hex::encode(canary);
    for body in [canary.to_string(), format!("x={b64}"), format!("h={hexed}")] {
        let r = post_via_tunnel(&env, &p, "/upload", full(body), &[]).await;
        assert_eq!(r.status, 403, "{}", r.text());
        assert!(r.text().contains("known-secret"));
        assert!(!r.text().contains(canary));
    }
    let r = http_get(
        p.addr,
        &format!("http://echo.test:{}/q?c={b64}", env.http_port()),
    )
    .await;
    assert_eq!(r.status, 403);
    p.stop().await;
    let a = audit_text(&audit);
    assert!(
        !a.contains(canary) && !a.contains(&b64) && !a.contains(&hexed),
        "{a}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clean_traffic_passes() {
    let (env, p, _) = env_with("").await;
    let json = serde_json::json!({
        "model": "some-model", "messages": [{"role": "user", "content": "Please refactor the function parse_config so it returns a Result instead of panicking. ".repeat(50)}],
        "image": base64::Engine::encode(&base64::engine::general_purpose::STANDARD, vec![7u8; 30_000]),
    })
    .to_string();
    let r = post_via_tunnel(
        &env,
        &p,
        "/upload",
        full(json.clone()),
        &[("content-type", "application/json")],
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["bytes"], json.len());
    let r = http_get(
        p.addr,
        &format!(
            "http://echo.test:{}/crates/serde/1.0.200/download?x=AKIAIOSFODNN7EXAMPLE",
            env.http_port()
        ),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    p.stop().await;
}

/// Invariant 2 canary: a fixed token configured as a known secret is sent every way an agent
/// could; it must not appear in any response, the audit log, the status file or the logs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn canary_never_appears_in_any_artefact() {
    use std::process::Stdio;
    let env = Env::new("echo.test:*\n127.0.0.1/32\n", "").await;
    let canary = "bottle-canary-token-5d1e0c7a9b";
    let known = env.dir.path().join("known");
    std::fs::write(&known, format!("{canary}\n")).unwrap();
    let audit = env.dir.path().join("audit.jsonl");
    let status = env.dir.path().join("status.json");
    let log = env.dir.path().join("stderr.log");
    let (kp, ap, sp) = (
        known.display().to_string(),
        audit.display().to_string(),
        status.display().to_string(),
    );
    let p = Proc::start_with(
        &env,
        &[
            "--dlp-known-secrets",
            &kp,
            "--audit-log",
            &ap,
            "--status-file",
            &sp,
        ],
        "debug",
        Stdio::from(std::fs::File::create(&log).unwrap()),
    );
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD.encode(canary);
    let pct: String = canary.bytes().map(|b| format!("%{b:02X}")).collect();
    let hp = env.http_port();
    let a = format!("echo.test:{hp}");
    let mut responses = String::new();
    for head in [
        format!("GET http://{a}/c?t={canary} HTTP/1.1\r\nHost: {a}\r\nConnection: close\r\n\r\n"),
        format!("GET http://{a}/c/{pct} HTTP/1.1\r\nHost: {a}\r\nConnection: close\r\n\r\n"),
        format!("GET http://{a}/c HTTP/1.1\r\nHost: {a}\r\nAuthorization: Bearer {canary}\r\nConnection: close\r\n\r\n"),
        format!("GET http://{a}/c HTTP/1.1\r\nHost: {a}\r\nCookie: s={b64}\r\nConnection: close\r\n\r\n"),
        format!("POST http://{a}/upload HTTP/1.1\r\nHost: {a}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{canary}", canary.len()),
        format!("CONNECT echo.test:{0} HTTP/1.1\r\nHost: echo.test:{0}\r\nProxy-Authorization: Basic {b64}\r\n\r\n", env.tls_port()),
        format!("GET http://{canary}.test/ HTTP/1.1\r\nHost: {canary}.test\r\nConnection: close\r\n\r\n"),
    ] {
        let (status, text, mut s) = raw_head(p.addr, &head).await;
        assert!(status == 403 || status == 415, "{head} -> {text}");
        responses.push_str(&text);
        responses.push_str(&read_body(&mut s, &text).await);
    }
    // Over the tunnel too.
    let r = post_via_tunnel_raw(&env, p.addr, canary).await;
    assert_eq!(r.status, 403);
    responses.push_str(&r.text());
    drop(p);
    let mut artefacts = vec![("responses", responses)];
    for (name, path) in [("audit", &audit), ("status", &status), ("log", &log)] {
        artefacts.push((name, std::fs::read_to_string(path).unwrap_or_default()));
    }
    assert!(!artefacts[1].1.is_empty(), "audit was written");
    for (name, text) in &artefacts {
        for form in [canary, b64.as_str(), pct.as_str()] {
            assert!(!text.contains(form), "canary found in {name}");
        }
    }
    // Nothing with the canary reached the origin either.
    for q in env.origin.requests() {
        assert!(!q.uri.contains(canary) && q.headers.iter().all(|(_, v)| !v.contains(canary)));
    }
}

async fn post_via_tunnel_raw(env: &Env, proxy: std::net::SocketAddr, canary: &str) -> Resp {
    let auth = format!("echo.test:{}", env.tls_port());
    let s = connect(proxy, &auth).await;
    let t = tls(
        s,
        "echo.test",
        client_config(roots_from_pem(&env.ca_cert()), &[b"http/1.1"]),
    )
    .await
    .unwrap();
    let req = http::Request::post("/upload")
        .header("host", &auth)
        .header("x-note", hex::encode(canary))
        .body(Full::new(Bytes::from(canary.to_string())))
        .unwrap();
    h1(t, req).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_messages_are_scanned() {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    let (env, p, audit) = env_with("").await;
    let auth = format!("echo.test:{}", env.tls_port());
    let s = connect(p.addr, &auth).await;
    let t = tls(
        s,
        "echo.test",
        client_config(roots_from_pem(&env.ca_cert()), &[b"http/1.1"]),
    )
    .await
    .unwrap();
    let (mut ws, _) = tokio_tungstenite::client_async(format!("wss://{auth}/ws"), t)
        .await
        .unwrap();
    ws.send(Message::text("clean message")).await.unwrap();
    let back = tokio::time::timeout(T, ws.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(back.into_text().unwrap().as_str(), "clean message");
    let tok = token();
    let _ = ws.send(Message::text(format!("here it is: {tok}"))).await;
    // The session is cut; the secret is never echoed back.
    let next = tokio::time::timeout(T, ws.next()).await.unwrap();
    match next {
        Some(Ok(Message::Text(t))) => panic!("echoed: {t}"),
        Some(Ok(Message::Close(_))) | Some(Err(_)) | None => {}
        Some(Ok(other)) => panic!("unexpected {other:?}"),
    }
    p.stop().await;
    let a = audit_text(&audit);
    assert!(
        a.contains("secret detected in a WebSocket message: github"),
        "{a}"
    );
    assert!(!a.contains(&tok));
}
