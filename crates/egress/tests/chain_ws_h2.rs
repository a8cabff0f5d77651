//! WebSocket over HTTP/2 (RFC 8441) through the whole chain: the agent opens an extended
//! CONNECT stream to pipelock, which judges it as the HTTP/1.1 handshake and carries it on
//! through egress (credential injected, frames scrubbed) to the echo origin's `/ws`. A secret
//! in a frame is refused by pipelock's DLP and never reaches the origin.
//! Needs `target/debug/pipelock`: run `cargo build -p pipelock` first.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::*;
use futures_util::{SinkExt, StreamExt};
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Empty};
use tokio_tungstenite::tungstenite::protocol::Role;
use tokio_tungstenite::tungstenite::Message;

type Ws = tokio_tungstenite::WebSocketStream<hyper_util::rt::TokioIo<hyper::upgrade::Upgraded>>;

/// Opens `/ws` on `host` as an RFC 8441 stream through pipelock.
async fn open(fx: &Fixture, pl: &Pipelock, host: &str) -> (Ws, http::HeaderMap) {
    let port = fx.origin.https_addr.port();
    let mut agent = agent_h2(pl, host, port).await;
    let mut req = Request::connect(format!("https://{host}:{port}/ws"))
        .header("sec-websocket-version", "13")
        .header("sec-websocket-protocol", "chat")
        .body(Empty::new().map_err(|e| match e {}).boxed())
        .unwrap();
    req.extensions_mut()
        .insert(hyper::ext::Protocol::from_static("websocket"));
    agent.ready().await.unwrap();
    let resp = agent.send_request(req).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK, "{:?}", resp.headers());
    let headers = resp.headers().clone();
    let up = hyper::upgrade::on(resp).await.unwrap();
    let ws = tokio_tungstenite::WebSocketStream::from_raw_socket(
        hyper_util::rt::TokioIo::new(up),
        Role::Client,
        None,
    )
    .await;
    // the connection task keeps running while the stream is open
    std::mem::forget(agent);
    (ws, headers)
}

async fn next(ws: &mut Ws) -> Option<Message> {
    tokio::time::timeout(Duration::from_secs(20), ws.next())
        .await
        .expect("a message in time")
        .and_then(|m| m.ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_over_h2_is_injected_scrubbed_and_scanned() {
    bounded(async {
        let fx = Fixture::new().await;
        let pl = start_pipelock(fx.tmp.path(), &fx.eg.cfg_dir, fx.eg.addr).await;
        let (mut ws, headers) = open(&fx, &pl, "bearer.test").await;
        assert_eq!(headers["sec-websocket-protocol"], "chat");
        assert!(!headers.contains_key("sec-websocket-accept"));
        ws.send(Message::text("hello")).await.unwrap();
        assert_eq!(
            next(&mut ws).await.unwrap().into_text().unwrap().as_str(),
            "hello"
        );
        // what the origin echoes of the injected credential is scrubbed by egress
        let secret = fx.secrets.bearer.clone();
        ws.send(Message::text(format!("a {secret} b")))
            .await
            .unwrap();
        assert_eq!(
            next(&mut ws).await.unwrap().into_text().unwrap().as_str(),
            format!("a {REDACTED} b")
        );
        let _ = ws.close(None).await;
        let hs = fx
            .origin
            .requests()
            .into_iter()
            .find(|r| r.path == "/ws")
            .unwrap();
        // the origin got the HTTP/1.1 handshake with the injected credential
        assert_eq!(hs.method, "GET");
        assert_eq!(
            hs.header_all("authorization"),
            vec![format!("Bearer {secret}")]
        );
        drop(pl);
        fx.finish();
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_over_h2_secret_in_a_frame_never_reaches_the_origin() {
    bounded(async {
        let fx = Fixture::new().await;
        let pl = start_pipelock(fx.tmp.path(), &fx.eg.cfg_dir, fx.eg.addr).await;
        let (mut ws, _) = open(&fx, &pl, "open.test").await;
        ws.send(Message::text("canary-clean")).await.unwrap();
        assert_eq!(
            next(&mut ws).await.unwrap().into_text().unwrap().as_str(),
            "canary-clean"
        );
        let tok = format!("ghp_{}", &"Zq8Lr3Tx6Wv1Np9Ks4Hb7Jd2Mf5Gc0Ye8Ua3Io6Pl"[..36]);
        // Once written, the frame is on its way: pipelock may refuse it, send its close and end
        // the stream (HTTP/2 RST_STREAM NO_ERROR) before this send's flush returns, which then
        // fails. That is not a leak; the close it sent first is still in the agent's buffer.
        if let Err(e) = ws.send(Message::text(format!("key {tok}"))).await {
            eprintln!("pipelock ended the stream before the send returned: {e}");
        }
        // the agent gets a policy close, never the echo
        match next(&mut ws).await {
            Some(Message::Close(Some(c))) => {
                assert_eq!(u16::from(c.code), 1008);
                assert!(c.reason.contains("blocked by pipelock"), "{}", c.reason);
            }
            other => panic!("expected a 1008 close, got {other:?}"),
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
        let hs = fx
            .origin
            .requests()
            .into_iter()
            .find(|r| r.path == "/ws")
            .unwrap();
        let got = String::from_utf8_lossy(&hs.body).into_owned();
        assert_eq!(
            got, "canary-clean",
            "the origin received only the clean frame"
        );
        // an extended CONNECT for anything but websocket is a CONNECT: refused
        let port = fx.origin.https_addr.port();
        let mut agent = agent_h2(&pl, "open.test", port).await;
        let mut req = Request::connect(format!("https://open.test:{port}/ws"))
            .body(Empty::new().map_err(|e| match e {}).boxed())
            .unwrap();
        req.extensions_mut()
            .insert(hyper::ext::Protocol::from_static("connect-udp"));
        agent.ready().await.unwrap();
        let resp = agent.send_request(req).await.unwrap();
        assert_eq!(resp.status(), StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(resp.headers()["x-bottle-blocked"], "pipelock");
        drop(pl);
        fx.finish();
    })
    .await
}
