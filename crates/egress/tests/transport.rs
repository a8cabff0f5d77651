//! egress alone, the wire: upstream failures named, streaming (SSE, uploads, h2), WebSocket
//! upgrades, the connection pool keyed per host.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::*;
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_failures_say_what_failed() {
    bounded(async {
        // a listener that accepts and never speaks TLS
        let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let silent_port = silent.local_addr().unwrap().port();
        let hold = tokio::spawn(async move {
            let mut conns = Vec::new();
            while let Ok((s, _)) = silent.accept().await {
                conns.push(s);
            }
        });
        // a port with nothing listening: bound (so no parallel test can take it) but never
        // listened on, so a connect is refused
        let closed = tokio::net::TcpSocket::new_v4().unwrap();
        closed.bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let closed_port = closed.local_addr().unwrap().port();
        let fx = Fixture::with(
            &routes_yaml(),
            ALLOWLIST,
            &["--handshake-timeout", "1", "--response-timeout", "2"],
        )
        .await;
        let (st, h, body) = get(
            fx.eg.addr,
            Method::GET,
            &format!("https://open.test:{silent_port}/"),
            &[],
        )
        .await;
        let text = String::from_utf8(body).unwrap();
        assert_eq!(st, StatusCode::GATEWAY_TIMEOUT, "{text}");
        assert_eq!(h["x-bottle-blocked"], "egress");
        assert!(
            text.contains("TLS handshake with open.test:") && text.contains("timed out"),
            "{text}"
        );
        let (st, _, body) = get(
            fx.eg.addr,
            Method::GET,
            &format!("https://open.test:{closed_port}/"),
            &[],
        )
        .await;
        let text = String::from_utf8(body).unwrap();
        assert_eq!(st, StatusCode::BAD_GATEWAY, "{text}");
        assert!(text.contains("connecting to open.test:"), "{text}");
        // warm the pool first so the short handshake timeout cannot hit the slow request
        for _ in 0..5 {
            let (st, _, _) = fx.get("open.test", "/echo", &[]).await;
            if st == StatusCode::OK {
                break;
            }
        }
        let (st, _, body) = fx.get("open.test", "/slow?ms=5000", &[]).await;
        let text = String::from_utf8(body).unwrap();
        assert_eq!(st, StatusCode::GATEWAY_TIMEOUT, "{text}");
        assert!(text.contains("no response headers"), "{text}");
        let m = fx.eg.metrics().await;
        assert!(
            m.contains("egress_upstream_errors_total{kind=\"tls_timeout\"}"),
            "{m}"
        );
        hold.abort();
        drop(closed);
        fx.finish();

        // without --upstream-ca the origin's certificate is not trusted
        let tmp = tempfile::tempdir().unwrap();
        let origin = origin().await;
        write_config(&tmp.path().join("live-config"), "", ALLOWLIST);
        let eg = start_egress(tmp.path(), &[], None, &[]).unwrap();
        let (st, _, body) = get(
            eg.addr,
            Method::GET,
            &format!("https://open.test:{}/", origin.https_addr.port()),
            &[],
        )
        .await;
        let text = String::from_utf8(body).unwrap();
        assert_eq!(st, StatusCode::BAD_GATEWAY, "{text}");
        assert!(
            text.contains("TLS handshake with open.test:") && text.contains("certificate"),
            "{text}"
        );
        assert!(origin.requests().is_empty());
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streaming_sse_download_upload_and_h2() {
    bounded(async {
        let fx = Fixture::new().await;
        // SSE through an injecting (scrubbing) route arrives event by event
        let r = send(
            fx.eg.addr,
            Request::get(fx.url("bearer.test", "/sse?n=3&interval_ms=400"))
                .body(Full::new(Bytes::new()))
                .unwrap(),
        )
        .await;
        assert_eq!(r.status(), StatusCode::OK);
        let mut body = r.into_body();
        let first = body.frame().await.unwrap().unwrap().into_data().unwrap();
        let first = String::from_utf8(first.to_vec()).unwrap();
        assert!(
            first.contains("event-0") && !first.contains("event-2"),
            "{first}"
        );
        let rest = body.collect().await.unwrap().to_bytes();
        assert!(String::from_utf8_lossy(&rest).contains("event-2"));
        // the origin saw HTTP/2 (ALPN) from egress
        let reqs = fx.origin.requests();
        assert_eq!(reqs[0].alpn.as_deref(), Some("h2"));
        // a large download through a scrubbing route is intact
        let n = 8 * 1024 * 1024u64;
        let (st, h, body) = fx
            .get("bearer.test", &format!("/download?bytes={n}"), &[])
            .await;
        assert_eq!(st, StatusCode::OK);
        assert!(h.get("content-length").is_none());
        assert_eq!(body.len() as u64, n);
        assert!(body
            .iter()
            .enumerate()
            .all(|(i, b)| *b == echo_origin::download_byte(i as u64)));
        // upload streams through
        let payload = vec![7u8; 3 * 1024 * 1024];
        let r = send(
            fx.eg.addr,
            Request::post(fx.url("open.test", "/upload"))
                .body(Full::new(Bytes::from(payload)))
                .unwrap(),
        )
        .await;
        let (st, _, body) = collect(r).await;
        assert_eq!(st, StatusCode::OK);
        assert!(String::from_utf8(body)
            .unwrap()
            .contains("\"bytes\":3145728"));
        // plain http upstream
        let (st, _, _) = get(
            fx.eg.addr,
            Method::GET,
            &fx.http_url("open.test", "/echo"),
            &[],
        )
        .await;
        assert_eq!(st, StatusCode::OK);
        fx.finish();
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_upgrade_is_forwarded() {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    bounded(async {
        let fx = Fixture::new().await;
        for uri in [fx.url("open.test", "/ws"), fx.http_url("open.test", "/ws")] {
            let r = send(
                fx.eg.addr,
                websocket_request(&uri)
                    .body(Full::new(Bytes::new()))
                    .unwrap(),
            )
            .await;
            assert_eq!(r.status(), StatusCode::SWITCHING_PROTOCOLS, "{uri}");
            let mut ws = websocket_client(r).await;
            ws.send(Message::text("hello through egress"))
                .await
                .unwrap();
            let got = tokio::time::timeout(Duration::from_secs(10), ws.next())
                .await
                .unwrap()
                .unwrap()
                .unwrap();
            assert_eq!(got.into_text().unwrap().as_str(), "hello through egress");
            let _ = ws.close(None).await;
        }
        // on an injecting route the server's frames are scrubbed
        let r = send(
            fx.eg.addr,
            websocket_request(&fx.url("bearer.test", "/ws"))
                .header("sec-websocket-extensions", "permessage-deflate")
                .body(Full::new(Bytes::new()))
                .unwrap(),
        )
        .await;
        assert_eq!(r.status(), StatusCode::SWITCHING_PROTOCOLS);
        assert!(r.headers().get("sec-websocket-extensions").is_none());
        let mut ws = websocket_client(r).await;
        let secret = fx.secrets.bearer.clone();
        let big = format!("x{secret}y").repeat(5000);
        for msg in [format!("echo: {secret}!"), big.clone()] {
            ws.send(Message::text(msg.clone())).await.unwrap();
            let got = tokio::time::timeout(Duration::from_secs(10), ws.next())
                .await
                .unwrap()
                .unwrap()
                .unwrap();
            let got = got.into_text().unwrap().to_string();
            assert!(!got.contains(&secret));
            assert_eq!(got.matches(REDACTED).count(), msg.matches(&secret).count());
        }
        let _ = ws.close(None).await;
        drop(ws);
        // other upgrades on an injecting route are refused
        let (st, _, body) = fx
            .get(
                "bearer.test",
                "/ws",
                &[("connection", "Upgrade"), ("upgrade", "h2c")],
            )
            .await;
        assert_eq!(st, StatusCode::FORBIDDEN);
        assert!(String::from_utf8(body)
            .unwrap()
            .contains("other than WebSocket"));
        fx.eg
            .wait_audit(|v| v["event"] == "upgrade" && v["scrubbed"].as_u64().unwrap_or(0) >= 5001)
            .await;
        fx.finish();
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pool_is_keyed_per_host_not_per_address() {
    bounded(async {
        let fx = Fixture::new().await;
        for host in ["bearer.test", "bearer.test", "basic.test", "bearer.test"] {
            let (st, _, _) = fx.get(host, "/echo", &[]).await;
            assert_eq!(st, StatusCode::OK);
        }
        let reqs = fx.origin.requests();
        assert_eq!(reqs.len(), 4);
        // same name: one pooled connection reused (same SNI, same credential route)
        assert_eq!(reqs[0].conn_id, reqs[1].conn_id);
        assert_eq!(reqs[0].conn_id, reqs[3].conn_id);
        // another name on the same address:port gets its own connection and SNI
        assert_ne!(reqs[2].conn_id, reqs[0].conn_id);
        assert_eq!(reqs[2].sni.as_deref(), Some("basic.test"));
        assert_eq!(reqs[0].sni.as_deref(), Some("bearer.test"));
        fx.finish();
    })
    .await
}
