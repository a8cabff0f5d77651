//! WebSocket messages judged before they leave (issue 13): fragments of a data message are
//! held in pipelock until the message is complete and scanned, so a refused message reaches
//! the origin in no part; control frames still pass between fragments; long clean messages
//! arrive whole; the agent's compression offer never reaches the origin. A frame-level
//! recording origin proves what arrived.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};
use tokio_tungstenite::tungstenite::protocol::frame::Frame as WsFrame;
use tokio_tungstenite::tungstenite::Message;

/// A GitHub-PAT-shaped token assembled at run time (never a real credential).
fn token() -> String {
    format!("ghp_{}", &"Zq8Lr3Tx6Wv1Np9Ks4Hb7Jd2Mf5Gc0Ye8Ua3Io6Pl"[..36])
}

/// One session as the origin saw it: the upgrade request head and every frame in order.
#[derive(Clone, Debug, Default)]
struct Seen {
    head: String,
    /// (opcode, fin, unmasked payload)
    frames: Vec<(u8, bool, Vec<u8>)>,
}

impl Seen {
    fn data(&self) -> Vec<u8> {
        let d = self.frames.iter().filter(|f| f.0 < 8);
        d.flat_map(|f| f.2.clone()).collect()
    }
    fn data_frames(&self) -> usize {
        self.frames.iter().filter(|f| f.0 < 8).count()
    }
}

/// A TLS WebSocket origin that records frames as they arrive and answers pings.
struct FrameOrigin {
    addr: SocketAddr,
    log: Arc<Mutex<Vec<Seen>>>,
}

impl FrameOrigin {
    async fn start(ca: &echo_origin::TestCa) -> FrameOrigin {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let log: Arc<Mutex<Vec<Seen>>> = Arc::default();
        let mut cfg = (*ca.server_config(&["echo.test"]).unwrap()).clone();
        cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
        let tls = tokio_rustls::TlsAcceptor::from(Arc::new(cfg));
        let lg = log.clone();
        tokio::spawn(async move {
            while let Ok((s, _)) = l.accept().await {
                let (tls, lg) = (tls.clone(), lg.clone());
                tokio::spawn(async move {
                    let Ok(mut t) = tls.accept(s).await else {
                        return;
                    };
                    let mut buf = Vec::new();
                    let mut b = vec![0u8; 65536];
                    let end = loop {
                        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                            break i + 4;
                        }
                        match t.read(&mut b).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&b[..n]),
                        }
                    };
                    let head = String::from_utf8_lossy(&buf[..end]).to_string();
                    let key = head
                        .lines()
                        .find_map(|l| {
                            let (n, v) = l.split_once(':')?;
                            n.eq_ignore_ascii_case("sec-websocket-key")
                                .then(|| v.trim().to_string())
                        })
                        .unwrap_or_default();
                    let accept = tokio_tungstenite::tungstenite::handshake::derive_accept_key(
                        key.as_bytes(),
                    );
                    let resp = format!("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\n\r\n");
                    if t.write_all(resp.as_bytes()).await.is_err() {
                        return;
                    }
                    let idx = {
                        let mut g = lg.lock().unwrap();
                        g.push(Seen {
                            head,
                            frames: Vec::new(),
                        });
                        g.len() - 1
                    };
                    buf.drain(..end);
                    loop {
                        while let Some((b0, payload, used)) = parse_frame(&buf) {
                            buf.drain(..used);
                            let op = b0 & 0x0f;
                            lg.lock().unwrap()[idx].frames.push((
                                op,
                                b0 & 0x80 != 0,
                                payload.clone(),
                            ));
                            if op == 0x9 {
                                let mut pong = vec![0x8a, payload.len() as u8];
                                pong.extend_from_slice(&payload);
                                let _ = t.write_all(&pong).await;
                            }
                            if op == 0x8 {
                                return;
                            }
                        }
                        match t.read(&mut b).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&b[..n]),
                        }
                    }
                });
            }
        });
        FrameOrigin { addr, log }
    }

    fn sessions(&self) -> Vec<Seen> {
        self.log.lock().unwrap().clone()
    }
}

/// (first header byte, unmasked payload, bytes used) of the first complete frame in `buf`.
fn parse_frame(buf: &[u8]) -> Option<(u8, Vec<u8>, usize)> {
    let b1 = *buf.get(1)?;
    let (mut at, len) = match b1 & 0x7f {
        126 => (4, u16::from_be_bytes([*buf.get(2)?, *buf.get(3)?]) as usize),
        127 => (
            10,
            u64::from_be_bytes(buf.get(2..10)?.try_into().ok()?) as usize,
        ),
        n => (2, n as usize),
    };
    let mask: Option<[u8; 4]> = if b1 & 0x80 != 0 {
        let m = buf.get(at..at + 4)?.try_into().ok()?;
        at += 4;
        Some(m)
    } else {
        None
    };
    let mut payload = buf.get(at..at + len)?.to_vec();
    if let Some(m) = mask {
        for (i, x) in payload.iter_mut().enumerate() {
            *x ^= m[i % 4];
        }
    }
    Some((buf[0], payload, at + len))
}

type Ws = tokio_tungstenite::WebSocketStream<tokio_rustls::client::TlsStream<Box<dyn common::Io>>>;

async fn open(env: &Env, proxy: SocketAddr, origin: &FrameOrigin, offer: Option<&str>) -> Ws {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let auth = format!("echo.test:{}", origin.addr.port());
    let s: Box<dyn common::Io> = Box::new(connect(proxy, &auth).await);
    let t = tls(
        s,
        "echo.test",
        client_config(roots_from_pem(&env.ca_cert()), &[b"http/1.1"]),
    )
    .await
    .unwrap();
    let mut req = format!("wss://{auth}/ws").into_client_request().unwrap();
    if let Some(o) = offer {
        req.headers_mut()
            .insert("sec-websocket-extensions", o.parse().unwrap());
    }
    tokio_tungstenite::client_async(req, t).await.unwrap().0
}

/// The next close (code, reason) the agent gets, skipping other messages.
async fn close_of(ws: &mut Ws) -> Option<(u16, String)> {
    loop {
        match tokio::time::timeout(Duration::from_secs(10), ws.next()).await {
            Ok(Some(Ok(Message::Close(c)))) => {
                return c.map(|c| (u16::from(c.code), c.reason.to_string()));
            }
            Ok(Some(Ok(_))) => continue,
            _ => return None,
        }
    }
}

async fn env_proxy() -> (Env, pipelock::Running) {
    let env = Env::new("echo.test:*\n127.0.0.1/32\n", "").await;
    let p = env.spawn(&[]).await;
    (env, p)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ws_token_split_over_three_fragments_reaches_the_origin_in_no_part() {
    let (env, p) = env_proxy().await;
    let origin = FrameOrigin::start(&env.origin.ca).await;
    let tok = token();
    let mut ws = open(&env, p.addr, &origin, None).await;
    let frames = [
        WsFrame::message(
            format!("deploy key={}", &tok[..12]),
            OpCode::Data(Data::Text),
            false,
        ),
        WsFrame::ping(Bytes::from_static(b"between")),
        WsFrame::message(tok[12..26].to_string(), OpCode::Data(Data::Continue), false),
        WsFrame::message(
            format!("{} end", &tok[26..]),
            OpCode::Data(Data::Continue),
            true,
        ),
    ];
    for f in frames {
        if ws.send(Message::Frame(f)).await.is_err() {
            break;
        }
    }
    let (code, reason) = close_of(&mut ws).await.expect("session closed");
    assert_eq!(code, 1008);
    assert!(reason.contains("github"), "{reason}");
    // The origin got the ping and pipelock's close 1008, and no fragment of the message.
    let closed = eventually(T, || {
        origin
            .sessions()
            .first()
            .is_some_and(|s| s.frames.iter().any(|f| f.0 == 0x8))
    })
    .await;
    let s = origin.sessions()[0].clone();
    assert!(closed, "origin told: {s:?}");
    assert_eq!(s.data_frames(), 0, "a fragment reached the origin: {s:?}");
    assert!(s.frames.iter().any(|f| f.0 == 0x9 && f.2 == b"between"));
    let close = s.frames.iter().find(|f| f.0 == 0x8).unwrap();
    assert_eq!(close.2[..2], 1008u16.to_be_bytes());
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ws_fragments_wait_for_their_message_while_a_ping_between_is_answered() {
    let (env, p) = env_proxy().await;
    let origin = FrameOrigin::start(&env.origin.ca).await;
    let mut ws = open(&env, p.addr, &origin, None).await;
    let first = WsFrame::message("hello ", OpCode::Data(Data::Text), false);
    ws.send(Message::Frame(first)).await.unwrap();
    ws.send(Message::Ping(Bytes::from_static(b"are you there")))
        .await
        .unwrap();
    // The origin's pong comes back while the message is still open...
    let pong = tokio::time::timeout(T, ws.next()).await.unwrap();
    assert!(
        matches!(&pong, Some(Ok(Message::Pong(b))) if &b[..] == b"are you there"),
        "{pong:?}"
    );
    // ...and by then the origin had the ping but not the first fragment.
    let s = origin.sessions()[0].clone();
    assert_eq!(s.frames.len(), 1, "only the ping went ahead: {s:?}");
    assert_eq!(s.frames[0].0, 0x9);
    let last = WsFrame::message("world", OpCode::Data(Data::Continue), true);
    ws.send(Message::Frame(last)).await.unwrap();
    assert!(
        eventually(T, || origin.sessions()[0].data() == b"hello world").await,
        "{:?}",
        origin.sessions()
    );
    // Framing kept: both fragments, the last with FIN.
    let s = origin.sessions()[0].clone();
    let data: Vec<_> = s.frames.iter().filter(|f| f.0 < 8).collect();
    assert_eq!(data.len(), 2, "{s:?}");
    assert!(!data[0].1 && data[1].1);
    ws.close(None).await.unwrap();
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ws_a_long_clean_fragmented_message_arrives_intact_past_the_hold_bound() {
    let (env, p) = env_proxy().await;
    let origin = FrameOrigin::start(&env.origin.ca).await;
    let mut ws = open(&env, p.addr, &origin, None).await;
    // 3 MiB in 48 fragments of 64 KiB, distinct text so any loss or reordering shows.
    let chunk = |i: usize| {
        let mut c = format!("fragment {i:02} line of clean text;").repeat(2048);
        c.truncate(65536);
        c
    };
    let mut sent = Vec::new();
    for i in 0..48 {
        let op = if i == 0 { Data::Text } else { Data::Continue };
        sent.extend_from_slice(chunk(i).as_bytes());
        ws.send(Message::Frame(WsFrame::message(
            chunk(i),
            OpCode::Data(op),
            false,
        )))
        .await
        .unwrap();
    }
    // Past the bound, the oldest (scanned) fragments went on before the message ended.
    let released = eventually(T, || {
        origin
            .sessions()
            .first()
            .is_some_and(|s| s.data().len() >= sent.len() - (1 << 20) - 65536)
    })
    .await;
    assert!(
        released,
        "{:?}",
        origin.sessions().first().map(|s| s.data().len())
    );
    ws.send(Message::Frame(WsFrame::message(
        " the end",
        OpCode::Data(Data::Continue),
        true,
    )))
    .await
    .unwrap();
    sent.extend_from_slice(b" the end");
    assert!(
        eventually(T, || origin.sessions()[0].data().len() == sent.len()).await,
        "arrived: {}",
        origin.sessions()[0].data().len()
    );
    assert!(origin.sessions()[0].data() == sent, "intact and in order");
    ws.close(None).await.unwrap();
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ws_compression_offer_never_reaches_the_origin() {
    let (env, p) = env_proxy().await;
    let origin = FrameOrigin::start(&env.origin.ca).await;
    let mut ws = open(
        &env,
        p.addr,
        &origin,
        Some("permessage-deflate; client_max_window_bits"),
    )
    .await;
    ws.send(Message::text("plain")).await.unwrap();
    assert!(
        eventually(T, || origin
            .sessions()
            .first()
            .is_some_and(|s| s.data() == b"plain"))
        .await
    );
    let head = origin.sessions()[0].head.to_ascii_lowercase();
    assert!(head.contains("upgrade: websocket"), "{head}");
    assert!(!head.contains("sec-websocket-extensions"), "{head}");
    assert!(!head.contains("deflate"), "{head}");
    ws.close(None).await.unwrap();
    p.stop().await;
}
