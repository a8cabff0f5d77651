//! `--upstream-proxy` mode (pipelock -> egress): absolute-form HTTP/1.1 over pooled keep-alive
//! connections, passthrough as CONNECT, refusals of the upstream passed on, no DNS of its own.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;

/// method, uri, Host header, whether Proxy-Authorization was present.
type SeenReq = (String, String, Option<String>, bool);

#[derive(Default)]
struct Seen {
    reqs: Mutex<Vec<SeenReq>>,
    conns: AtomicU64,
}

/// A stand-in for egress: answers absolute-form requests itself; CONNECT tunnels to `tunnel_to`
/// unless the target starts with "deny".
async fn fake_egress(tunnel_to: SocketAddr) -> (SocketAddr, Arc<Seen>) {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let seen = Arc::new(Seen::default());
    let s2 = seen.clone();
    tokio::spawn(async move {
        loop {
            let (sock, _) = l.accept().await.unwrap();
            s2.conns.fetch_add(1, Ordering::SeqCst);
            let seen = s2.clone();
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |mut req: http::Request<Incoming>| {
                    let seen = seen.clone();
                    async move {
                        let host = req
                            .headers()
                            .get("host")
                            .map(|h| h.to_str().unwrap().to_string());
                        let pa = req.headers().contains_key("proxy-authorization");
                        seen.reqs.lock().unwrap().push((
                            req.method().to_string(),
                            req.uri().to_string(),
                            host,
                            pa,
                        ));
                        if req.method() == http::Method::CONNECT {
                            if req.uri().to_string().starts_with("deny") {
                                let mut r = http::Response::new(Full::new(Bytes::from(
                                    "blocked by egress: nope\n",
                                )));
                                *r.status_mut() = http::StatusCode::FORBIDDEN;
                                r.headers_mut()
                                    .insert("x-bottle-blocked", "egress".parse().unwrap());
                                return Ok::<_, std::convert::Infallible>(r);
                            }
                            tokio::spawn(async move {
                                let up = hyper::upgrade::on(&mut req).await.unwrap();
                                let mut o =
                                    tokio::net::TcpStream::connect(tunnel_to).await.unwrap();
                                let _ =
                                    tokio::io::copy_bidirectional(&mut TokioIo::new(up), &mut o)
                                        .await;
                            });
                            return Ok(http::Response::new(Full::new(Bytes::new())));
                        }
                        let body = format!("egress saw {} {}", req.method(), req.uri());
                        Ok(http::Response::new(Full::new(Bytes::from(body))))
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(sock), svc)
                    .with_upgrades()
                    .await;
            });
        }
    });
    (addr, seen)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn decrypted_requests_go_to_the_upstream_proxy_in_absolute_form_pooled() {
    let env = Env::new("echo.test:*\nnodns.test:*\n", "routes:\n  - host: \"pass.test:*\"\n    tls_passthrough: true\n  - host: \"deny.test:*\"\n    tls_passthrough: true\n").await;
    let (egress, seen) = fake_egress(env.origin.https_addr).await;
    let up = format!("http://{egress}");
    let p = env.spawn(&["--upstream-proxy", &up]).await;
    let port = env.tls_port();
    // nodns.test has no --resolve entry: pipelock must not need DNS for it in proxy mode.
    for (host, path) in [("echo.test", "/a?x=1"), ("nodns.test", "/b")] {
        let auth = format!("{host}:{port}");
        let mut send = tunnel_h1(p.addr, &auth, host, &env.ca_cert()).await;
        for _ in 0..5 {
            send.ready().await.unwrap();
            let req = http::Request::get(path)
                .header("host", &auth)
                .header("proxy-authorization", "Basic c2VjcmV0")
                .body(Full::new(Bytes::new()))
                .unwrap();
            let r = send.send_request(req).await.unwrap();
            assert_eq!(r.status(), 200);
            let body = r.into_body().collect().await.unwrap().to_bytes();
            assert_eq!(
                String::from_utf8_lossy(&body),
                format!("egress saw GET https://{auth}{path}")
            );
        }
    }
    // Plain HTTP goes absolute-form too.
    let r = http_get(p.addr, "http://echo.test/plain").await;
    assert_eq!(r.text(), "egress saw GET http://echo.test/plain");
    {
        let reqs = seen.reqs.lock().unwrap();
        assert_eq!(reqs.len(), 11);
        for (m, uri, host, pa) in reqs.iter() {
            assert_eq!(m, "GET");
            assert!(
                uri.starts_with("https://") || uri.starts_with("http://"),
                "{uri}"
            );
            let h = host.clone().unwrap();
            assert!(uri.contains(&h), "Host {h} matches {uri}");
            assert!(!pa, "Proxy-Authorization forwarded");
        }
    }
    // Pooled: 11 requests over at most one connection per destination.
    assert!(
        seen.conns.load(Ordering::SeqCst) <= 3,
        "{} connections",
        seen.conns.load(Ordering::SeqCst)
    );

    // Passthrough: CONNECT to egress, bytes tunnelled (the origin's own certificate).
    let auth = format!("pass.test:{port}");
    let c = connect(p.addr, &auth).await;
    let t = tls(
        c,
        "pass.test",
        client_config(roots_from_pem(&env.origin.ca_path), &[b"http/1.1"]),
    )
    .await
    .unwrap();
    let r = h1(
        t,
        http::Request::get("/pt")
            .header("host", &auth)
            .body(Default::default())
            .unwrap(),
    )
    .await;
    assert_eq!(r.status, 200);
    assert!(seen
        .reqs
        .lock()
        .unwrap()
        .iter()
        .any(|(m, u, _, _)| m == "CONNECT" && u == &auth));
    // A CONNECT refused by egress reaches the agent as egress's refusal.
    let (status, head, mut s) = raw_head(
        p.addr,
        &format!("CONNECT deny.test:{port} HTTP/1.1\r\nHost: deny.test:{port}\r\n\r\n"),
    )
    .await;
    assert_eq!(status, 403, "{head}");
    assert!(read_body(&mut s, &head).await.contains("blocked by egress"));
    // Not allowed in pipelock: egress never hears of it.
    let before = seen.reqs.lock().unwrap().len();
    let (status, _, _) = raw_head(
        p.addr,
        "CONNECT evil.test:443 HTTP/1.1\r\nHost: evil.test\r\n\r\n",
    )
    .await;
    assert_eq!(status, 403);
    let (status, _, _) = raw_head(
        p.addr,
        "CONNECT 10.1.2.3:443 HTTP/1.1\r\nHost: 10.1.2.3\r\n\r\n",
    )
    .await;
    assert_eq!(status, 403);
    assert_eq!(seen.reqs.lock().unwrap().len(), before);
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn private_ip_literals_are_refused_in_proxy_mode_unless_covered() {
    let env = Env::new("10.0.0.0/8\n192.168.1.1\n", "").await;
    let (egress, seen) = fake_egress(env.origin.https_addr).await;
    let up = format!("http://{egress}");
    let p = env.spawn(&["--upstream-proxy", &up]).await;
    let r = http_get(p.addr, "http://10.9.8.7/x").await;
    assert_eq!(r.status, 200, "covered by a CIDR line: {}", r.text());
    let r = http_get(p.addr, "http://192.168.1.2/x").await;
    assert_eq!(r.status, 403);
    let r = http_get(p.addr, "http://169.254.169.254/latest/meta-data/").await;
    assert_eq!(r.status, 403);
    assert_eq!(seen.reqs.lock().unwrap().len(), 1);
    p.stop().await;
}
