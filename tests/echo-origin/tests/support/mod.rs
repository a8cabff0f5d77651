//! What the endpoint test binaries share: starting an origin, curl, a Rust client over
//! every protocol combination, and body and JSON readers.
// Each test binary uses a part of this module.
#![allow(dead_code)]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::process::Output;
use std::time::Duration;

use bytes::Bytes;
use echo_origin::{EchoOptions, EchoOrigin, TestCa};
use futures_util::{SinkExt, StreamExt};
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls_pki_types::ServerName;
use serde_json::Value;
use tokio::net::TcpStream;

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
pub type Body = http_body_util::combinators::BoxBody<Bytes, BoxError>;

pub const T: Duration = Duration::from_secs(120);

pub async fn start() -> EchoOrigin {
    EchoOrigin::start(EchoOptions::default())
        .await
        .expect("origin starts")
}

/// Runs curl with `-sS` and a time limit.
pub async fn curl(args: &[&str]) -> Output {
    let fut = tokio::process::Command::new("curl")
        .args(["-sS", "--max-time", "100"])
        .args(args)
        .kill_on_drop(true)
        .output();
    tokio::time::timeout(T, fut)
        .await
        .expect("curl finished in time")
        .expect("curl runs")
}

pub fn stdout(o: &Output) -> String {
    assert!(
        o.status.success(),
        "curl failed: {:?} {}",
        o.status,
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn json(s: &str) -> Value {
    serde_json::from_str(s).unwrap_or_else(|e| panic!("not JSON ({e}): {s}"))
}

pub fn full(b: impl Into<Bytes>) -> Body {
    Full::new(b.into()).map_err(|e| match e {}).boxed()
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Proto {
    H1,
    H2,
}

/// A Rust client: one connection (plain or TLS with SNI `sni`, trusting only `ca`), one request.
pub async fn rust_request(
    addr: SocketAddr,
    tls: Option<(&TestCa, &str)>,
    proto: Proto,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Body,
) -> Response<Incoming> {
    let tcp = TcpStream::connect(addr).await.expect("connect");
    let authority = match tls {
        Some((_, sni)) => format!("{sni}:{}", addr.port()),
        None => addr.to_string(),
    };
    let scheme = if tls.is_some() { "https" } else { "http" };
    let mut b = Request::builder().method(method);
    b = match proto {
        Proto::H1 => b.uri(path).header("host", &authority),
        Proto::H2 => b
            .uri(format!("{scheme}://{authority}{path}"))
            .version(http::Version::HTTP_2),
    };
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    let req = b.body(body).unwrap();
    match tls {
        None => send(TokioIo::new(tcp), proto, req).await,
        Some((ca, sni)) => {
            let alpn: &[&[u8]] = match proto {
                Proto::H1 => &[b"http/1.1"],
                Proto::H2 => &[b"h2"],
            };
            let cfg = ca.client_config(alpn).unwrap();
            let name = ServerName::try_from(sni.to_string()).unwrap();
            let stream = tokio_rustls::TlsConnector::from(cfg)
                .connect(name, tcp)
                .await
                .expect("TLS handshake");
            let want: &[u8] = if proto == Proto::H2 {
                b"h2"
            } else {
                b"http/1.1"
            };
            assert_eq!(stream.get_ref().1.alpn_protocol(), Some(want));
            send(TokioIo::new(stream), proto, req).await
        }
    }
}

pub async fn send<I>(io: TokioIo<I>, proto: Proto, req: Request<Body>) -> Response<Incoming>
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let fut = async move {
        match proto {
            Proto::H1 => {
                let (mut s, conn) = hyper::client::conn::http1::handshake(io).await.unwrap();
                tokio::spawn(conn);
                s.send_request(req).await.unwrap()
            }
            Proto::H2 => {
                let (mut s, conn) = hyper::client::conn::http2::handshake(TokioExecutor::new(), io)
                    .await
                    .unwrap();
                tokio::spawn(conn);
                s.send_request(req).await.unwrap()
            }
        }
    };
    tokio::time::timeout(T, fut)
        .await
        .expect("response in time")
}

pub async fn body_bytes(r: Response<Incoming>) -> Bytes {
    tokio::time::timeout(T, r.into_body().collect())
        .await
        .expect("body in time")
        .expect("body")
        .to_bytes()
}

pub fn sha256_hex(b: &[u8]) -> String {
    hex::encode(ring::digest::digest(&ring::digest::SHA256, b).as_ref())
}

pub fn vm_rss_kib() -> u64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap();
    s.lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

pub fn header_strings(v: &Value) -> Vec<(String, String)> {
    v["headers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p[0].as_str().unwrap().to_string(),
                p[1].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// What `/reflect` answers for the token `t`, as curl prints it.
pub fn reflect_expected(t: &str) -> String {
    let mut s = echo_origin::reflect_lines(t).join("\n");
    s.push('\n');
    s
}

/// Text, binary and a 200 kB text message each come back unchanged.
pub async fn ws_roundtrip<S>(ws: &mut tokio_tungstenite::WebSocketStream<S>)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    use tokio_tungstenite::tungstenite::Message;
    ws.send(Message::text("hello ws")).await.unwrap();
    let m = tokio::time::timeout(T, ws.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(m, Message::text("hello ws"));
    let bin: Vec<u8> = (0..=255u8).collect();
    ws.send(Message::binary(bin.clone())).await.unwrap();
    let m = tokio::time::timeout(T, ws.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(m, Message::binary(bin));
    let big = "x".repeat(200_000);
    ws.send(Message::text(big.clone())).await.unwrap();
    let m = tokio::time::timeout(T, ws.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(m.into_text().unwrap().as_str(), big);
    ws.close(None).await.unwrap();
}
