//! Recording origins for the hostile DLP tests: they log what actually arrived (request
//! trailers and whether a body completed; unmasked WebSocket payloads and close codes), so a
//! test can prove a secret never reached the origin. TLS with a leaf for `echo.test` from the
//! echo origin's CA, which pipelock trusts via `--upstream-ca`.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

fn acceptor(ca: &echo_origin::TestCa, alpn: &[u8]) -> TlsAcceptor {
    let mut cfg = (*ca.server_config(&["echo.test"]).unwrap()).clone();
    cfg.alpn_protocols = vec![alpn.to_vec()];
    TlsAcceptor::from(Arc::new(cfg))
}

/// One request as the trailer origin saw it.
#[derive(Clone, Debug, Default)]
pub struct TrailerRecord {
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub data: Vec<u8>,
    pub trailers: Vec<(String, String)>,
    /// The body ended cleanly (not reset or cut off).
    pub complete: bool,
}

/// An HTTP/2-only origin that records request bodies and trailers.
pub struct TrailerOrigin {
    addr: SocketAddr,
    log: Arc<Mutex<Vec<TrailerRecord>>>,
}

impl TrailerOrigin {
    pub async fn start(ca: &echo_origin::TestCa) -> TrailerOrigin {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let log: Arc<Mutex<Vec<TrailerRecord>>> = Arc::default();
        let tls = acceptor(ca, b"h2");
        let lg = log.clone();
        tokio::spawn(async move {
            while let Ok((s, _)) = l.accept().await {
                let (tls, lg) = (tls.clone(), lg.clone());
                tokio::spawn(async move {
                    let Ok(t) = tls.accept(s).await else { return };
                    let svc = hyper::service::service_fn(
                        move |req: http::Request<hyper::body::Incoming>| {
                            let lg = lg.clone();
                            async move {
                                let (parts, mut body) = req.into_parts();
                                let idx = {
                                    let mut g = lg.lock().unwrap();
                                    g.push(TrailerRecord {
                                        path: parts.uri.path().to_string(),
                                        headers: parts
                                            .headers
                                            .iter()
                                            .map(|(n, v)| {
                                                (
                                                    n.to_string(),
                                                    String::from_utf8_lossy(v.as_bytes()).into(),
                                                )
                                            })
                                            .collect(),
                                        ..Default::default()
                                    });
                                    g.len() - 1
                                };
                                loop {
                                    match body.frame().await {
                                        Some(Ok(f)) => {
                                            let mut g = lg.lock().unwrap();
                                            let rec = &mut g[idx];
                                            match f.into_data() {
                                                Ok(d) => rec.data.extend_from_slice(&d),
                                                Err(f) => {
                                                    if let Some(t) = f.trailers_ref() {
                                                        rec.trailers.extend(t.iter().map(
                                                            |(n, v)| {
                                                                (
                                                                    n.to_string(),
                                                                    String::from_utf8_lossy(
                                                                        v.as_bytes(),
                                                                    )
                                                                    .into(),
                                                                )
                                                            },
                                                        ));
                                                    }
                                                }
                                            }
                                        }
                                        Some(Err(_)) => break,
                                        None => {
                                            lg.lock().unwrap()[idx].complete = true;
                                            break;
                                        }
                                    }
                                }
                                Ok::<_, std::convert::Infallible>(http::Response::new(Full::new(
                                    Bytes::from_static(b"ok\n"),
                                )))
                            }
                        },
                    );
                    let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(t), svc)
                        .await;
                });
            }
        });
        TrailerOrigin { addr, log }
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// The last request for `path`.
    pub fn get(&self, path: &str) -> Option<TrailerRecord> {
        self.log
            .lock()
            .unwrap()
            .iter()
            .rev()
            .find(|r| r.path == path)
            .cloned()
    }

    /// Whether `needle` appears anywhere the origin recorded.
    pub fn saw(&self, needle: &str) -> bool {
        self.log.lock().unwrap().iter().any(|r| {
            r.headers
                .iter()
                .chain(r.trailers.iter())
                .any(|(n, v)| n.contains(needle) || v.contains(needle))
                || r.data.windows(needle.len()).any(|w| w == needle.as_bytes())
        })
    }
}

/// One WebSocket session as the origin saw it.
#[derive(Clone, Debug, Default)]
pub struct WsSession {
    /// Unmasked payloads of every data frame, in order.
    pub data: Vec<u8>,
    /// Unmasked payloads of ping/pong frames, in order.
    pub control: Vec<u8>,
    pub close_code: Option<u16>,
}

/// An HTTP/1.1 WebSocket origin that parses frames itself and records their payloads.
pub struct WsOrigin {
    addr: SocketAddr,
    log: Arc<Mutex<Vec<WsSession>>>,
}

impl WsOrigin {
    pub async fn start(ca: &echo_origin::TestCa) -> WsOrigin {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let log: Arc<Mutex<Vec<WsSession>>> = Arc::default();
        let tls = acceptor(ca, b"http/1.1");
        let lg = log.clone();
        tokio::spawn(async move {
            while let Ok((s, _)) = l.accept().await {
                let (tls, lg) = (tls.clone(), lg.clone());
                tokio::spawn(async move {
                    let Ok(mut t) = tls.accept(s).await else {
                        return;
                    };
                    let mut buf = Vec::new();
                    let mut b = [0u8; 4096];
                    let head_end = loop {
                        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                            break i + 4;
                        }
                        match t.read(&mut b).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&b[..n]),
                        }
                    };
                    let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
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
                        g.push(WsSession::default());
                        g.len() - 1
                    };
                    buf.drain(..head_end);
                    loop {
                        if let Some((op, payload, used)) = parse_frame(&buf) {
                            buf.drain(..used);
                            let mut g = lg.lock().unwrap();
                            let s = &mut g[idx];
                            match op {
                                0x0..=0x7 => s.data.extend_from_slice(&payload),
                                0x8 => {
                                    s.close_code =
                                        payload.get(..2).map(|c| u16::from_be_bytes([c[0], c[1]]));
                                    return;
                                }
                                _ => s.control.extend_from_slice(&payload),
                            }
                            continue;
                        }
                        match t.read(&mut b).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&b[..n]),
                        }
                    }
                });
            }
        });
        WsOrigin { addr, log }
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    pub fn sessions(&self) -> Vec<WsSession> {
        self.log.lock().unwrap().clone()
    }
}

/// (opcode, unmasked payload, bytes used) of the first complete frame in `buf`.
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
    Some((buf[0] & 0x0f, payload, at + len))
}
