//! serve() over real TCP on 127.0.0.1: cap, head caps, timeouts, drain.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use super::*;
use crate::body::full;

/// A generous bound for "the server closed it": a liveness check, not a speed assertion.
const LIVENESS: Duration = Duration::from_secs(10);

struct Server {
    addr: SocketAddr,
    handled: Arc<AtomicUsize>,
    refused: Arc<AtomicUsize>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

impl Server {
    async fn start(limits: ServeLimits) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let handled = Arc::new(AtomicUsize::new(0));
        let refused = Arc::new(AtomicUsize::new(0));
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let h = handled.clone();
        let r = refused.clone();
        let opts = ServeOptions::new("testcomp", limits).on_refusal(move |kind| {
            assert_eq!(kind, "connection_limit");
            r.fetch_add(1, Ordering::SeqCst);
        });
        let task = tokio::spawn(serve(
            listener,
            opts,
            move |req: Request<Incoming>| {
                let h = h.clone();
                async move {
                    h.fetch_add(1, Ordering::SeqCst);
                    // /slow/<ms>: answers after a while (an in-flight request for the drain)
                    if let Some(ms) = req.uri().path().strip_prefix("/slow/") {
                        let ms: u64 = ms.parse().unwrap();
                        tokio::time::sleep(Duration::from_millis(ms)).await;
                    }
                    Response::new(full("done\n"))
                }
            },
            async move {
                let _ = rx.await;
            },
        ));
        Server {
            addr,
            handled,
            refused,
            stop: Some(tx),
            task,
        }
    }

    /// A connection whose request `path` is in the handler.
    async fn in_flight(&self, path: &str) -> TcpStream {
        let mut s = TcpStream::connect(self.addr).await.unwrap();
        s.write_all(format!("GET {path} HTTP/1.1\r\nHost: t\r\n\r\n").as_bytes())
            .await
            .unwrap();
        tokio::time::timeout(LIVENESS, async {
            while self.handled.load(Ordering::SeqCst) == 0 {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await
        .expect("the request reaches the handler");
        s
    }

    async fn shutdown(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
    }
}

fn small() -> ServeLimits {
    ServeLimits {
        max_connections: 3,
        idle_timeout_secs: 60,
        header_timeout_secs: 60,
        max_header_bytes: 8192,
        max_headers: 20,
        drain_secs: 30,
    }
}

/// Everything the server sends until it closes (or `LIVENESS` passes: then panics).
async fn read_to_close(s: &mut TcpStream) -> String {
    let mut out = Vec::new();
    let r = tokio::time::timeout(LIVENESS, async {
        let mut b = [0u8; 4096];
        loop {
            match s.read(&mut b).await {
                Ok(0) | Err(_) => break,
                Ok(n) => out.extend_from_slice(&b[..n]),
            }
        }
    })
    .await;
    assert!(r.is_ok(), "server did not close the connection");
    String::from_utf8_lossy(&out).into_owned()
}

const GET: &[u8] = b"GET / HTTP/1.1\r\nHost: t\r\n\r\n";

#[tokio::test]
async fn over_the_cap_gets_a_503_while_the_cap_is_held_then_serves_again() {
    let srv = Server::start(small()).await;
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(TcpStream::connect(srv.addr).await.unwrap());
    }
    let mut extra = TcpStream::connect(srv.addr).await.unwrap();
    extra.write_all(GET).await.unwrap();
    let text = read_to_close(&mut extra).await;
    assert!(text.starts_with("HTTP/1.1 503 "), "{text}");
    assert!(
        text.contains("\r\nX-Bottle-Blocked: testcomp\r\n"),
        "{text}"
    );
    assert!(
        text.ends_with(
            "\r\n\r\nblocked by testcomp: too many connections (limit 3); retry later\n"
        ),
        "{text}"
    );
    assert_eq!(srv.refused.load(Ordering::SeqCst), 1);
    assert_eq!(srv.handled.load(Ordering::SeqCst), 0);
    // the held connections are served, and a freed slot serves a new connection
    held[0].write_all(GET).await.unwrap();
    let mut b = [0u8; 12];
    held[0].read_exact(&mut b).await.unwrap();
    assert_eq!(&b, b"HTTP/1.1 200");
    drop(held);
    let mut again = tokio::time::timeout(LIVENESS, async {
        loop {
            tokio::time::sleep(Duration::from_millis(20)).await;
            let mut s = TcpStream::connect(srv.addr).await.unwrap();
            s.write_all(GET).await.unwrap();
            let mut b = [0u8; 12];
            if s.read_exact(&mut b).await.is_ok() && &b == b"HTTP/1.1 200" {
                return s;
            }
        }
    })
    .await
    .expect("a slot frees up");
    let _ = again.shutdown().await;
}

#[tokio::test]
async fn a_head_over_the_byte_cap_gets_431_and_never_reaches_the_handler() {
    let srv = Server::start(small()).await;
    let mut s = TcpStream::connect(srv.addr).await.unwrap();
    let big = format!(
        "GET / HTTP/1.1\r\nHost: t\r\nX-Big: {}\r\n\r\n",
        "a".repeat(20_000)
    );
    let _ = s.write_all(big.as_bytes()).await;
    let text = read_to_close(&mut s).await;
    assert!(text.starts_with("HTTP/1.1 431 "), "{text}");
    assert_eq!(srv.handled.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn too_many_header_fields_get_431_and_never_reach_the_handler() {
    let srv = Server::start(small()).await;
    let mut s = TcpStream::connect(srv.addr).await.unwrap();
    let mut head = String::from("GET / HTTP/1.1\r\nHost: t\r\n");
    for i in 0..30 {
        head.push_str(&format!("X-H{i}: v\r\n"));
    }
    head.push_str("\r\n");
    s.write_all(head.as_bytes()).await.unwrap();
    let text = read_to_close(&mut s).await;
    assert!(text.starts_with("HTTP/1.1 431 "), "{text}");
    assert_eq!(srv.handled.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn a_slowloris_head_is_cut_off_after_the_header_timeout() {
    let srv = Server::start(ServeLimits {
        header_timeout_secs: 1,
        ..small()
    })
    .await;
    let mut s = TcpStream::connect(srv.addr).await.unwrap();
    s.write_all(b"GET / HTTP/1.1\r\nHost: t\r\n").await.unwrap();
    let started = Instant::now();
    // keep trickling bytes (so the idle timeout alone would never fire) until cut off
    let cut = tokio::time::timeout(LIVENESS, async {
        loop {
            tokio::time::sleep(Duration::from_millis(200)).await;
            if s.write_all(b"X-A: b\r\n").await.is_err() {
                return;
            }
            let mut b = [0u8; 256];
            match tokio::time::timeout(Duration::from_millis(10), s.read(&mut b)).await {
                Ok(Ok(0)) | Ok(Err(_)) => return,
                Ok(Ok(_)) => return, // hyper may answer 408 before closing
                Err(_) => {}
            }
        }
    })
    .await;
    assert!(cut.is_ok(), "a slow head was not cut off");
    assert!(started.elapsed() >= Duration::from_millis(900));
    assert_eq!(srv.handled.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn a_silent_connection_is_closed_after_the_idle_timeout() {
    let srv = Server::start(ServeLimits {
        idle_timeout_secs: 1,
        ..small()
    })
    .await;
    let mut s = TcpStream::connect(srv.addr).await.unwrap();
    // one request, then silence on a kept-alive connection
    s.write_all(GET).await.unwrap();
    let text = read_to_close(&mut s).await;
    assert!(text.starts_with("HTTP/1.1 200 "), "{text}");
    assert_eq!(srv.handled.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_kept_alive_connection_waiting_for_its_next_head_is_closed_after_the_header_timeout() {
    // idle timeout far away: only the header-read timeout can close it within LIVENESS
    let srv = Server::start(ServeLimits {
        header_timeout_secs: 1,
        ..small()
    })
    .await;
    let mut s = TcpStream::connect(srv.addr).await.unwrap();
    s.write_all(GET).await.unwrap();
    let text = read_to_close(&mut s).await;
    assert!(text.starts_with("HTTP/1.1 200 "), "{text}");
}

#[tokio::test]
async fn shutdown_lets_an_in_flight_request_finish_and_refuses_new_connections() {
    let mut srv = Server::start(small()).await;
    let mut s = srv.in_flight("/slow/1500").await;
    srv.shutdown().await;
    let text = read_to_close(&mut s).await;
    assert!(text.starts_with("HTTP/1.1 200 "), "{text}");
    assert!(text.ends_with("done\n"), "{text}");
    tokio::time::timeout(LIVENESS, &mut srv.task)
        .await
        .unwrap()
        .unwrap();
    assert!(TcpStream::connect(srv.addr).await.is_err());
}

#[tokio::test]
async fn the_drain_time_bounds_a_request_that_never_finishes() {
    let mut srv = Server::start(ServeLimits {
        drain_secs: 1,
        ..small()
    })
    .await;
    let mut s = srv.in_flight("/slow/3600000").await;
    srv.shutdown().await;
    tokio::time::timeout(LIVENESS, &mut srv.task)
        .await
        .expect("serve returns after the drain time")
        .unwrap();
    let text = read_to_close(&mut s).await;
    assert_eq!(text, "");
}

#[test]
fn flags_parse_with_the_documented_names_and_defaults() {
    use clap::Parser;
    #[derive(clap::Parser)]
    struct A {
        #[command(flatten)]
        l: ServeLimits,
    }
    assert_eq!(A::parse_from(["x"]).l, ServeLimits::default());
    let a = A::parse_from([
        "x",
        "--max-connections",
        "7",
        "--idle-timeout-secs",
        "8",
        "--header-timeout-secs",
        "9",
        "--max-header-bytes",
        "10000",
        "--max-headers",
        "11",
        "--drain-timeout",
        "12",
    ]);
    assert_eq!(
        a.l,
        ServeLimits {
            max_connections: 7,
            idle_timeout_secs: 8,
            header_timeout_secs: 9,
            max_header_bytes: 10000,
            max_headers: 11,
            drain_secs: 12,
        }
    );
}

#[tokio::test]
async fn http2_by_prior_knowledge_only_when_enabled_and_http1_still_served() {
    use http_body_util::BodyExt;
    for h2 in [true, false] {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let opts = ServeOptions::new("testcomp", small()).http2(h2);
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(serve(
            listener,
            opts,
            |req: Request<Incoming>| async move {
                Response::new(full(format!("{:?}\n", req.version())))
            },
            async move {
                let _ = rx.await;
            },
        ));
        // HTTP/1.1 is served either way
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let out = read_to_close(&mut s).await;
        assert!(out.ends_with("HTTP/1.1\n"), "{out}");
        // HTTP/2 by prior knowledge only when enabled
        let tcp = TcpStream::connect(addr).await.unwrap();
        let r = async {
            let (mut send, conn) = hyper::client::conn::http2::handshake(
                hyper_util::rt::TokioExecutor::new(),
                TokioIo::new(tcp),
            )
            .await?;
            tokio::spawn(conn);
            let req = Request::get("http://t/")
                .body(http_body_util::Empty::<bytes::Bytes>::new())
                .unwrap();
            let resp = send.send_request(req).await?;
            let body = resp.into_body().collect().await?.to_bytes();
            Ok::<_, hyper::Error>(String::from_utf8_lossy(&body).into_owned())
        };
        let got = tokio::time::timeout(LIVENESS, r).await.unwrap();
        if h2 {
            assert_eq!(got.unwrap(), "HTTP/2.0\n");
        } else {
            assert!(got.is_err(), "{got:?}");
        }
        let _ = tx.send(());
        let _ = task.await;
    }
}
