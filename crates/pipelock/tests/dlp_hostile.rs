//! Hostile DLP evasions through pipelock (issue 11): a token as the request method, split
//! over several headers, sent in request trailers, or split over WebSocket fragments with
//! control frames in between. Each test proves at the origin that the secret never arrived.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
#[path = "support/hostile_origin.rs"]
mod hostile_origin;

use common::*;
use hostile_origin::{TrailerOrigin, WsOrigin};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;

/// A GitHub-PAT-shaped token assembled at run time (never a real credential).
fn token() -> String {
    format!("ghp_{}", &"Zq8Lr3Tx6Wv1Np9Ks4Hb7Jd2Mf5Gc0Ye8Ua3Io6Pl"[..36])
}

async fn env_audit() -> (Env, pipelock::Running, std::path::PathBuf) {
    let env = Env::new("echo.test:*\n127.0.0.1/32\n", "").await;
    let audit = env.dir.path().join("audit.jsonl");
    let p = env
        .spawn(&["--audit-log", &audit.display().to_string()])
        .await;
    (env, p, audit)
}

fn audit_text(p: &std::path::Path) -> String {
    std::fs::read_to_string(p).unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_as_the_request_method_is_refused() {
    let (env, p, audit) = env_audit().await;
    let tok = token();
    let hp = env.http_port();
    // Plain absolute-form: `ghp_... http://host/path HTTP/1.1`.
    let (status, head, mut s) = raw_head(
        p.addr,
        &format!("{tok} http://echo.test:{hp}/m HTTP/1.1\r\nHost: echo.test:{hp}\r\nConnection: close\r\n\r\n"),
    )
    .await;
    assert_eq!(status, 403, "{head}");
    assert!(head.contains("x-bottle-blocked: pipelock"), "{head}");
    let body = read_body(&mut s, &head).await;
    assert!(
        body.contains("secret detected in request method: github"),
        "{body}"
    );
    // Inside a tunnel with curl's custom method; and a method holding the token's start,
    // the path its rest (a server could glue them back together).
    let url = format!("https://echo.test:{}/m", env.tls_port());
    let (code, body, err) = curl(p.addr, &env.ca_cert(), &url, &["-X", &tok]);
    assert_eq!(code, 403, "{body} {err}");
    assert!(body.contains("request method: github"), "{body}");
    // (The path glues more letters on: the join is scanned with relaxed boundaries.)
    let url = format!("https://echo.test:{}/{}zz", env.tls_port(), &tok[12..]);
    let (code, body, err) = curl(p.addr, &env.ca_cert(), &url, &["-X", &tok[..12]]);
    assert_eq!(code, 403, "{body} {err}");
    // Ordinary and extension methods without secrets still pass.
    for m in ["GET", "PROPFIND", "PURGE"] {
        let (code, body, err) = curl(
            p.addr,
            &env.ca_cert(),
            &url.replace(&tok[12..], "ok"),
            &["-X", m],
        );
        assert_eq!(code, 200, "{m}: {body} {err}");
    }
    let seen = env.origin.requests();
    assert_eq!(seen.len(), 3, "only the clean requests arrived: {seen:?}");
    assert!(seen
        .iter()
        .all(|r| !r.method.contains(&tok[..12]) && !r.uri.contains(&tok[12..])));
    p.stop().await;
    let a = audit_text(&audit);
    assert!(a.contains("[REDACTED]"), "{a}");
    assert!(
        !a.contains(&tok) && !a.contains(&tok[4..12]) && !a.contains(&tok[12..]),
        "audit holds no secret, nor half of one"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_split_over_headers_is_refused() {
    let (env, p, audit) = env_audit().await;
    let tok = token();
    let url = format!("https://echo.test:{}/h", env.tls_port());
    let (a, b) = tok.split_at(14);
    let cases: Vec<(Vec<String>, &str)> = vec![
        // Two consecutive headers.
        (
            vec![format!("X-A: {a}"), format!("X-B: {b}")],
            "headers x-a + x-b",
        ),
        // Two values of one name.
        (
            vec![format!("X-Part: {a}"), format!("X-Part: {b}")],
            "header x-part",
        ),
        // A name and its value (names travel lower-case; this prefix is lower-case).
        (vec![format!("ghp_: {}", &tok[4..])], "header ghp_"),
    ];
    for (headers, what) in &cases {
        let mut args: Vec<&str> = Vec::new();
        for h in headers {
            args.push("-H");
            args.push(h);
        }
        let (code, body, err) = curl(p.addr, &env.ca_cert(), &url, &args);
        assert_eq!(code, 403, "{headers:?}: {body} {err}");
        assert!(
            body.contains(&format!("secret detected in request {what}: github")),
            "{headers:?}: {body}"
        );
    }
    // Over plain HTTP too, with the pieces three headers apart in a raw request.
    let hp = env.http_port();
    let (status, head, _s) = raw_head(
        p.addr,
        &format!("GET http://echo.test:{hp}/h HTTP/1.1\r\nHost: echo.test:{hp}\r\nX-1: {}\r\nX-2: {}\r\nX-3: {}\r\n\r\n", &tok[..10], &tok[10..25], &tok[25..]),
    )
    .await;
    assert_eq!(status, 403, "{head}");
    assert!(
        env.origin.requests().is_empty(),
        "nothing reached the origin"
    );
    // An ordinary request with many headers passes.
    let (code, body, err) = curl(
        p.addr,
        &env.ca_cert(),
        &url,
        &[
            "-H",
            "Accept: application/vnd.github+json",
            "-H",
            "X-GitHub-Api-Version: 2022-11-28",
            "-H",
            "If-None-Match: \"4d8c1f0e9b7a6c5d3e2f1a0b9c8d7e6f\"",
            "-H",
            "traceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        ],
    );
    assert_eq!(code, 200, "{body} {err}");
    p.stop().await;
    assert!(!audit_text(&audit).contains(&tok));
}

/// A request body: `chunks` of data, then `trailers`.
fn body_with_trailers(
    chunks: Vec<&'static str>,
    trailers: http::HeaderMap,
) -> http_body_util::combinators::BoxBody<Bytes, std::io::Error> {
    let mut frames: Vec<Result<Frame<Bytes>, std::io::Error>> = chunks
        .into_iter()
        .map(|c| Ok(Frame::data(Bytes::from_static(c.as_bytes()))))
        .collect();
    frames.push(Ok(Frame::trailers(trailers)));
    let stream = futures_util::stream::unfold(frames.into_iter(), |mut it| async move {
        let next = it.next()?;
        tokio::time::sleep(Duration::from_millis(30)).await;
        Some((next, it))
    });
    StreamBody::new(stream).boxed()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_in_request_trailers_never_completes_upstream() {
    let (env, p, audit) = env_audit().await;
    let origin = TrailerOrigin::start(&env.origin.ca).await;
    let auth = format!("echo.test:{}", origin.port());
    let tok = token();
    let trailers = |name: &str, v: &str| {
        let mut t = http::HeaderMap::new();
        t.insert(
            http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
            v.parse().unwrap(),
        );
        t
    };
    let body_chunks = vec!["first part of the upload\n", "second part\n"];

    // Control: a clean trailer arrives complete (the origin sees trailers over HTTP/2).
    let mut send = tunnel_h1(p.addr, &auth, "echo.test", &env.ca_cert()).await;
    let req = http::Request::post("/clean")
        .header("host", &auth)
        .header("trailer", "x-checksum")
        .body(body_with_trailers(
            body_chunks.clone(),
            trailers("x-checksum", "sha256-abc"),
        ))
        .unwrap();
    let r = tokio::time::timeout(T, send.send_request(req))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(r.status(), 200);
    let rec = origin.get("/clean").expect("clean request recorded");
    assert!(rec.complete, "{rec:?}");
    assert_eq!(
        rec.trailers,
        vec![("x-checksum".to_string(), "sha256-abc".to_string())]
    );

    // HTTP/1.1 chunked trailer with the token: the body already streamed, the request
    // must still not complete upstream.
    let mut send = tunnel_h1(p.addr, &auth, "echo.test", &env.ca_cert()).await;
    let req = http::Request::post("/h1")
        .header("host", &auth)
        .header("trailer", "x-checksum")
        .body(body_with_trailers(
            body_chunks.clone(),
            trailers("x-checksum", &tok),
        ))
        .unwrap();
    let r = tokio::time::timeout(T, send.send_request(req))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(r.status(), 403);
    let text = r.into_body().collect().await.unwrap().to_bytes();
    let text = String::from_utf8_lossy(&text);
    assert!(
        text.contains("secret detected in request trailer x-checksum: github"),
        "{text}"
    );

    // HTTP/2 from the agent; the token split between a header and a trailer.
    let mut h2 = tunnel_h2(p.addr, &auth, "echo.test", &env.ca_cert()).await;
    let req = http::Request::post(format!("https://{auth}/h2"))
        .header("x-sig", &tok[..16])
        .body(body_with_trailers(
            body_chunks.clone(),
            trailers("x-sig-rest", &tok[16..]),
        ))
        .unwrap();
    let r = tokio::time::timeout(T, h2.send_request(req))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(r.status(), 403);
    let text = r.into_body().collect().await.unwrap().to_bytes();
    let text = String::from_utf8_lossy(&text);
    assert!(
        text.contains("secret detected in request trailers x-sig + x-sig-rest: github"),
        "{text}"
    );

    // Give an incomplete request time to show up, then check the origin's log.
    tokio::time::sleep(Duration::from_millis(300)).await;
    for path in ["/h1", "/h2"] {
        if let Some(rec) = origin.get(path) {
            assert!(!rec.complete, "{path} completed upstream: {rec:?}");
            assert!(rec.trailers.is_empty(), "{path}: {rec:?}");
        }
    }
    assert!(
        !origin.saw(&tok[16..]),
        "the origin never saw the trailer value"
    );
    p.stop().await;
    assert!(!audit_text(&audit).contains(&tok[16..]));
}

/// One WebSocket session through pipelock to `origin`: sends `frames`, returns the close
/// frame the agent got (code, reason), or None if the session was not closed.
async fn ws_session(
    env: &Env,
    proxy: std::net::SocketAddr,
    origin: &WsOrigin,
    frames: Vec<tokio_tungstenite::tungstenite::protocol::frame::Frame>,
) -> Option<(u16, String)> {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    let auth = format!("echo.test:{}", origin.port());
    let s = connect(proxy, &auth).await;
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
    for f in frames {
        if ws.send(Message::Frame(f)).await.is_err() {
            break;
        }
    }
    loop {
        match tokio::time::timeout(Duration::from_secs(5), ws.next()).await {
            Ok(Some(Ok(Message::Close(c)))) => {
                return c.map(|c| (u16::from(c.code), c.reason.to_string()));
            }
            Ok(Some(Ok(_))) => continue,
            _ => return None,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_token_split_over_fragments_with_pings_between_is_refused_at_every_offset() {
    use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};
    use tokio_tungstenite::tungstenite::protocol::frame::Frame as WsFrame;
    let (env, p, audit) = env_audit().await;
    let origin = WsOrigin::start(&env.origin.ca).await;
    let tok = token();
    for cut in 1..tok.len() {
        let (a, b) = tok.split_at(cut);
        let frames = vec![
            WsFrame::message(format!("deploy key={a}"), OpCode::Data(Data::Text), false),
            WsFrame::ping(Bytes::from_static(b"keepalive")),
            WsFrame::pong(Bytes::from_static(b"x")),
            WsFrame::message(b.to_string(), OpCode::Data(Data::Continue), false),
            WsFrame::message(" end", OpCode::Data(Data::Continue), true),
        ];
        let close = ws_session(&env, p.addr, &origin, frames).await;
        let (code, reason) = close.unwrap_or_else(|| panic!("cut {cut}: session not closed"));
        assert_eq!(code, 1008, "cut {cut}");
        assert!(reason.contains("github"), "cut {cut}: {reason}");
    }
    // A long message (3 MiB in 64 KiB fragments, beyond one frame's cap) is scanned to its end.
    let mut frames = vec![WsFrame::message(
        vec![b'a'; 65536],
        OpCode::Data(Data::Binary),
        false,
    )];
    for _ in 0..47 {
        frames.push(WsFrame::message(
            vec![b'a'; 65536],
            OpCode::Data(Data::Continue),
            false,
        ));
    }
    frames.push(WsFrame::message(
        format!(" {}", &tok[..20]),
        OpCode::Data(Data::Continue),
        false,
    ));
    frames.push(WsFrame::ping(Bytes::from_static(b"p")));
    frames.push(WsFrame::message(
        tok[20..].to_string(),
        OpCode::Data(Data::Continue),
        true,
    ));
    let close = ws_session(&env, p.addr, &origin, frames).await;
    assert_eq!(close.map(|c| c.0), Some(1008), "long message");
    // A clean fragmented message with pings between goes through whole.
    let frames = vec![
        WsFrame::message("hello ", OpCode::Data(Data::Text), false),
        WsFrame::ping(Bytes::from_static(b"p")),
        WsFrame::message("world", OpCode::Data(Data::Continue), true),
        WsFrame::close(None),
    ];
    let _ = ws_session(&env, p.addr, &origin, frames).await;
    assert!(
        eventually(T, || origin
            .sessions()
            .iter()
            .any(|s| s.data.ends_with(b"hello world")))
        .await,
        "clean message arrived"
    );
    // The origin got every session's close and never the whole token.
    let sessions = origin.sessions();
    assert_eq!(sessions.len(), tok.len() + 1, "one session per attempt");
    for (i, s) in sessions.iter().enumerate() {
        assert!(
            !s.data.windows(tok.len()).any(|w| w == tok.as_bytes()),
            "session {i} delivered the token"
        );
    }
    let told = eventually(T, || {
        origin
            .sessions()
            .iter()
            .filter(|s| s.close_code == Some(1008))
            .count()
            == tok.len()
    })
    .await;
    assert!(told, "every refused session's origin got close 1008");
    p.stop().await;
    assert!(!audit_text(&audit).contains(&tok));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_frames_with_reserved_bits_are_refused_unscanned() {
    use async_compression::tokio::write::DeflateEncoder;
    use tokio::io::AsyncWriteExt;
    use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};
    use tokio_tungstenite::tungstenite::protocol::frame::Frame as WsFrame;
    let (env, p, _audit) = env_audit().await;
    let origin = WsOrigin::start(&env.origin.ca).await;
    // permessage-deflate was never negotiated (pipelock strips the offer), but a hostile
    // origin could inflate RSV1 frames anyway: the token would pass compressed.
    let mut deflated = Vec::new();
    let mut e = DeflateEncoder::new(&mut deflated);
    let text = format!("the deploy key is {}; ", token()).repeat(8);
    e.write_all(text.as_bytes()).await.unwrap();
    e.shutdown().await.unwrap();
    assert!(
        bottle_dlp::detect(&deflated).is_empty(),
        "compressed, the token is invisible to the detectors"
    );
    let mut f = WsFrame::message(deflated, OpCode::Data(Data::Text), true);
    f.header_mut().rsv1 = true;
    let close = ws_session(&env, p.addr, &origin, vec![f]).await;
    let (code, reason) = close.expect("session closed");
    assert_eq!(code, 1008);
    assert!(reason.contains("reserved bits"), "{reason}");
    assert!(
        eventually(T, || origin.sessions().len() == 1).await,
        "the upgrade reached the origin"
    );
    assert!(
        origin.sessions()[0].data.is_empty(),
        "the compressed frame never reached the origin"
    );
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_log_mode_forwards_the_message_and_records_the_detector_once() {
    use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};
    use tokio_tungstenite::tungstenite::protocol::frame::Frame as WsFrame;
    let env = Env::new("echo.test:*\n127.0.0.1/32\n", "dlp:\n  action: log\n").await;
    let audit = env.dir.path().join("audit.jsonl");
    let p = env
        .spawn(&["--audit-log", &audit.display().to_string()])
        .await;
    let origin = WsOrigin::start(&env.origin.ca).await;
    let tok = token();
    let frames = vec![
        WsFrame::message(format!("k={}", &tok[..9]), OpCode::Data(Data::Text), false),
        WsFrame::ping(Bytes::from_static(b"p")),
        WsFrame::message(tok[9..].to_string(), OpCode::Data(Data::Continue), false),
        WsFrame::message(" and again", OpCode::Data(Data::Continue), true),
        WsFrame::close(None),
    ];
    let _ = ws_session(&env, p.addr, &origin, frames).await;
    assert!(
        eventually(T, || origin
            .sessions()
            .first()
            .is_some_and(|s| s.data.ends_with(b" and again")))
        .await,
        "the whole message arrived: {:?}",
        origin.sessions()
    );
    let data = origin.sessions()[0].data.clone();
    assert!(
        data.windows(tok.len()).any(|w| w == tok.as_bytes()),
        "log mode forwards"
    );
    p.stop().await;
    let a = audit_text(&audit);
    let line = a
        .lines()
        .find(|l| l.contains("dlp_ws"))
        .unwrap_or_else(|| panic!("no dlp_ws field: {a}"));
    assert!(line.contains("logged: github-pat\""), "{line}");
    assert!(!a.contains(&tok));
}
