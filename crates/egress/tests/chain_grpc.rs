//! gRPC through the whole chain: an HTTP/2 client (the agent) -> pipelock (TLS interception,
//! DLP) -> egress (credential injection, scrubbing) -> the echo origin's gRPC endpoint over
//! TLS with ALPN h2. Unary and bidirectional streaming keep their trailers and statuses; no
//! side holds a message back; a secret in a message or a request trailer never reaches the
//! origin; the injected credential never comes back, not in a message, not in a trailer.
//! Needs `target/debug/pipelock`: run `cargo build -p pipelock` first.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::convert::Infallible;
use std::time::Duration;

use bytes::Bytes;
use common::*;
use http::{HeaderMap, Request, StatusCode};
use http_body_util::{BodyExt, StreamBody};
use hyper::body::{Frame, Incoming};
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

    /// The agent's HTTP/2 connection to `host` through pipelock.
    async fn agent(&self, host: &str) -> hyper::client::conn::http2::SendRequest<ReqBody> {
        agent_h2(&self.pl, host, self.fx.origin.https_addr.port()).await
    }

    fn finish(mut self) {
        if let Some(mut c) = self.pl.child.take() {
            signal(c.id(), "TERM");
            wait_timeout(&mut c, Duration::from_secs(20));
        }
        self.fx.finish();
    }
}

/// One gRPC call: the request's message sender and the response.
struct Call {
    tx: mpsc::Sender<Frame<Bytes>>,
    resp: Result<http::Response<Incoming>, hyper::Error>,
}

/// Starts a call to `path` with extra metadata; messages are sent with [`Call::tx`].
async fn call(
    send: &mut hyper::client::conn::http2::SendRequest<ReqBody>,
    uri: &str,
    meta: &[(&str, &str)],
    first: Option<Frame<Bytes>>,
) -> Call {
    let (tx, rx) = mpsc::channel::<Frame<Bytes>>(8);
    if let Some(f) = first {
        tx.send(f).await.unwrap();
    }
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|f| (Ok::<_, Infallible>(f), rx))
    });
    let mut b = Request::post(uri)
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .header("authorization", "Bearer agent-own");
    for (k, v) in meta {
        b = b.header(*k, *v);
    }
    let req = b.body(BodyExt::boxed(StreamBody::new(stream))).unwrap();
    send.ready().await.unwrap();
    let fut = send.send_request(req);
    // unary calls end the request before the answer; streams answer first
    let resp = tokio::time::timeout(Duration::from_secs(20), fut)
        .await
        .expect("response head");
    Call { tx, resp }
}

fn msg(payload: &str) -> Frame<Bytes> {
    Frame::data(echo_origin::grpc_frame(payload.as_bytes()))
}

/// The next frame of a response body: a message's bytes (whole messages), or trailers.
async fn next(body: &mut Incoming) -> Option<Result<Frame<Bytes>, hyper::Error>> {
    tokio::time::timeout(Duration::from_secs(20), body.frame())
        .await
        .expect("a frame in time")
}

/// Reads until `n` whole message payloads arrived (or the body ends or fails); trailers
/// that end it instead are kept in `ended`.
async fn messages_or_end(
    body: &mut Incoming,
    n: usize,
    buf: &mut Vec<u8>,
    ended: &mut Option<HeaderMap>,
) -> Vec<String> {
    let mut out = Vec::new();
    while out.len() < n {
        while buf.len() >= 5 {
            let len = u32::from_be_bytes([buf[1], buf[2], buf[3], buf[4]]) as usize;
            if buf.len() < 5 + len {
                break;
            }
            out.push(String::from_utf8_lossy(&buf[5..5 + len]).into_owned());
            buf.drain(..5 + len);
        }
        if out.len() >= n {
            break;
        }
        match next(body).await {
            Some(Ok(f)) => match f.into_data() {
                Ok(d) => buf.extend_from_slice(&d),
                Err(f) => {
                    *ended = f.into_trailers().ok();
                    break;
                }
            },
            _ => break,
        }
    }
    out
}

/// [`messages_or_end`] for a stream that must not end.
async fn messages(body: &mut Incoming, n: usize, buf: &mut Vec<u8>) -> Vec<String> {
    let mut ended = None;
    let got = messages_or_end(body, n, buf, &mut ended).await;
    assert_eq!(ended, None, "the stream ended early");
    got
}

/// Everything left of a body: data and trailers (None when it failed or had none).
async fn rest(body: &mut Incoming) -> (Vec<u8>, Option<HeaderMap>) {
    let mut data = Vec::new();
    loop {
        match next(body).await {
            Some(Ok(f)) => match f.into_data() {
                Ok(d) => data.extend_from_slice(&d),
                Err(f) => return (data, f.into_trailers().ok()),
            },
            _ => return (data, None),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_unary_and_bidi_keep_trailers_status_and_streaming() {
    bounded(async {
        let s = Setup::new().await;
        let base = s.fx.url("bearer.test", "");
        let mut agent = s.agent("bearer.test").await;

        // unary: one message, the request ends, one answer and status OK
        let c = call(
            &mut agent,
            &format!("{base}/echo.Echo/Unary"),
            &[],
            Some(msg("ping")),
        )
        .await;
        drop(c.tx);
        let mut resp = c.resp.unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        assert_eq!(resp.headers()["content-type"], "application/grpc");
        let mut buf = Vec::new();
        assert_eq!(messages(resp.body_mut(), 1, &mut buf).await, ["ping"]);
        let (tail, t) = rest(resp.body_mut()).await;
        assert!(tail.is_empty());
        assert_eq!(t.expect("trailers")["grpc-status"], "0");

        // bidirectional: each answer comes before the next message is sent (no side holds
        // a message back), and the request stays open in between
        let c = call(
            &mut agent,
            &format!("{base}/echo.Echo/Bidi"),
            &[],
            Some(msg("one c")),
        )
        .await;
        let mut resp = c.resp.unwrap();
        let mut buf = Vec::new();
        assert_eq!(messages(resp.body_mut(), 1, &mut buf).await, ["one c"]);
        c.tx.send(msg("two")).await.unwrap();
        assert_eq!(messages(resp.body_mut(), 1, &mut buf).await, ["two"]);
        c.tx.send(msg(&"x".repeat(100_000))).await.unwrap();
        assert_eq!(
            messages(resp.body_mut(), 1, &mut buf).await[0].len(),
            100_000
        );
        drop(c.tx);
        let (_, t) = rest(resp.body_mut()).await;
        assert_eq!(t.expect("trailers")["grpc-status"], "0");

        // a non-OK status and its message survive
        let meta = [
            ("x-grpc-status", "5"),
            ("x-grpc-message", "no%20such%20thing"),
        ];
        let c = call(
            &mut agent,
            &format!("{base}/echo.Echo/Unary"),
            &meta,
            Some(msg("q")),
        )
        .await;
        drop(c.tx);
        let mut resp = c.resp.unwrap();
        let (_, t) = rest(resp.body_mut()).await;
        let t = t.expect("trailers");
        assert_eq!(t["grpc-status"], "5");
        assert_eq!(t["grpc-message"], "no%20such%20thing");

        // the origin saw HTTP/2 with TE: trailers, the injected credential as metadata (the
        // agent's own replaced), and every message
        let reqs = s.fx.origin.requests();
        let calls: Vec<_> = reqs
            .iter()
            .filter(|r| r.path.starts_with("/echo.Echo/"))
            .collect();
        assert_eq!(calls.len(), 3);
        for r in &calls {
            assert_eq!(r.version, "HTTP/2.0");
            assert_eq!(r.header("te"), Some("trailers"));
            assert_eq!(
                r.header_all("authorization"),
                vec![format!("Bearer {}", s.fx.secrets.bearer)]
            );
            assert_eq!(r.header("grpc-accept-encoding"), Some("identity"));
        }
        assert_eq!(calls[1].body.len(), 5 + 5 + 5 + 3 + 5 + 100_000);
        s.finish();
    })
    .await
}

/// The refusal a gRPC client gets from pipelock: before the answer's head, a trailers-only
/// answer (`grpc-status: 7` in its head, `X-Bottle-Blocked`); the answer already under way,
/// `grpc-status: 7` trailers. Its text either way.
async fn refusal(resp: Result<http::Response<Incoming>, hyper::Error>) -> String {
    let mut r = resp.expect("pipelock answers");
    assert_eq!(r.status(), StatusCode::OK);
    let head = r.headers().clone();
    let (body, t) = rest(r.body_mut()).await;
    let status = match head.get("grpc-status") {
        Some(_) => {
            assert_eq!(head["x-bottle-blocked"], "pipelock");
            assert!(body.is_empty());
            head
        }
        None => t.expect("trailers"),
    };
    assert_eq!(status["grpc-status"], "7", "{status:?}");
    status["grpc-message"].to_str().unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_secret_in_a_message_or_a_trailer_never_reaches_the_origin() {
    bounded(async {
        let s = Setup::new().await;
        let base = s.fx.url("open.test", "");
        let tok = github_token();
        let mut agent = s.agent("open.test").await;

        // unary with the secret in its message: refused, nothing of it arrives
        let c = call(
            &mut agent,
            &format!("{base}/echo.Echo/Unary"),
            &[],
            Some(msg(&format!("key={tok}"))),
        )
        .await;
        drop(c.tx);
        let text = refusal(c.resp).await;
        assert!(
            text.starts_with("blocked by pipelock: secret detected"),
            "{text}"
        );

        // bidirectional: the clean message is answered, the one with the secret never
        // arrives, and the stream ends there
        let c = call(
            &mut agent,
            &format!("{base}/echo.Echo/Bidi"),
            &[],
            Some(msg("clean")),
        )
        .await;
        let mut resp = c.resp.unwrap();
        let mut buf = Vec::new();
        assert_eq!(messages(resp.body_mut(), 1, &mut buf).await, ["clean"]);
        let (a, b) = tok.split_at(10);
        // the secret split over two messages: the first (no secret alone) goes on, the
        // second is judged with the end of the first and refused
        let _ = c.tx.send(msg(&format!("part {a}"))).await;
        let _ = c.tx.send(msg(&format!("{b} end"))).await;
        let mut ended = None;
        let got = messages_or_end(resp.body_mut(), 2, &mut buf, &mut ended).await;
        assert!(got.len() < 2, "{got:?}");
        assert!(got.is_empty() || got == [format!("part {a}")], "{got:?}");
        drop(c.tx);
        if ended.is_none() {
            ended = rest(resp.body_mut()).await.1;
        }
        let t = ended.expect("the refusal as the stream's status");
        assert_eq!(t["grpc-status"], "7");
        let m = t["grpc-message"].to_str().unwrap();
        assert!(m.contains("secret detected"), "{m}");

        // a request trailer with the secret: the request never completes at the origin
        let c = call(
            &mut agent,
            &format!("{base}/echo.Echo/Unary"),
            &[],
            Some(msg("t")),
        )
        .await;
        let mut t = HeaderMap::new();
        t.insert("x-token", tok.parse().unwrap());
        let _ = c.tx.send(Frame::trailers(t)).await;
        drop(c.tx);
        let text = refusal(c.resp).await;
        assert!(text.contains("trailer x-token"), "{text}");

        // a compressed message cannot be scanned: refused
        let mut gz = echo_origin::grpc_frame(b"\x1f\x8b compressed").to_vec();
        gz[0] = 1;
        let c = call(
            &mut agent,
            &format!("{base}/echo.Echo/Unary"),
            &[("grpc-encoding", "gzip")],
            Some(Frame::data(Bytes::from(gz))),
        )
        .await;
        drop(c.tx);
        let text = refusal(c.resp).await;
        assert!(text.contains("compressed gRPC"), "{text}");

        tokio::time::sleep(Duration::from_millis(300)).await;
        // the stream refused after its answer began is audited as the refusal it was
        let audit = std::fs::read_to_string(s.fx.tmp.path().join("pipelock-audit.jsonl")).unwrap();
        let refused_stream = audit
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .find(|v| v["path"] == "/echo.Echo/Bidi" && v["decision"] == "deny");
        let line = refused_stream.expect("a deny line for the bidirectional stream");
        assert_eq!(line["refusal"], "dlp", "{line}");
        assert!(
            line["reason"].as_str().unwrap().contains("secret detected"),
            "{line}"
        );
        for r in s.fx.origin.requests() {
            let body = String::from_utf8_lossy(&r.body);
            assert!(!body.contains(&tok), "{} got the secret", r.path);
            assert!(!body.contains(b), "{} got the second half", r.path);
            assert!(
                !body.contains("compressed"),
                "{} got the compressed message",
                r.path
            );
            for (n, v) in &r.trailers {
                assert!(
                    !v.contains(&tok),
                    "{} got the secret in trailer {n}",
                    r.path
                );
            }
        }
        s.finish();
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_injected_credential_never_comes_back_in_messages_or_trailers() {
    bounded(async {
        let s = Setup::new().await;
        let base = s.fx.url("bearer.test", "");
        let mut agent = s.agent("bearer.test").await;
        // the origin answers with the credential in a message, a trailer and grpc-message
        let c = call(
            &mut agent,
            &format!("{base}/echo.Echo/Reflect"),
            &[],
            Some(msg("q")),
        )
        .await;
        drop(c.tx);
        let mut resp = c.resp.unwrap();
        let headers = headers_text(resp.headers());
        let (data, t) = rest(resp.body_mut()).await;
        let t = t.expect("egress ends the stream with a status");
        assert_eq!(t["grpc-status"], "13");
        assert!(t["grpc-message"]
            .to_str()
            .unwrap()
            .starts_with("blocked by egress"));
        assert!(!t.contains_key("x-reflect"));
        let all = s.fx.secrets.all();
        assert_clean("headers", &headers, &all);
        assert_clean("messages", &data, &all);
        assert_clean("trailers", &headers_text(&t), &all);
        // the credential in the trailers alone: those trailers are dropped, the status stays
        let meta = [("x-reflect-where", "trailers")];
        let c = call(
            &mut agent,
            &format!("{base}/echo.Echo/Reflect"),
            &meta,
            Some(msg("q")),
        )
        .await;
        drop(c.tx);
        let mut resp = c.resp.unwrap();
        let (data, t) = rest(resp.body_mut()).await;
        assert!(data.is_empty());
        let t = t.expect("trailers");
        assert_eq!(t["grpc-status"], "0", "{t:?}");
        assert!(
            !t.contains_key("x-reflect") && !t.contains_key("grpc-message"),
            "{t:?}"
        );
        assert_clean("trailers", &headers_text(&t), &all);
        // the origin did get it, as metadata
        let r =
            s.fx.origin
                .requests()
                .into_iter()
                .find(|r| r.path == "/echo.Echo/Reflect")
                .unwrap();
        assert_eq!(
            r.header("authorization"),
            Some(format!("Bearer {}", s.fx.secrets.bearer).as_str())
        );
        s.finish();
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_over_the_h2_hop_carries_the_pipelock_key() {
    bounded(async {
        let (fx, key) = Fixture::with_client_key("EGRESS_KEY").await;
        let port = fx.origin.https_addr.port();
        let base = fx.url("bearer.test", "");
        // without the key, egress refuses the HTTP/2 request too (407, as a gRPC status)
        let bare = start_pipelock(fx.tmp.path(), &fx.eg.cfg_dir, fx.eg.addr).await;
        let mut agent = agent_h2(&bare, "bearer.test", port).await;
        let c = call(
            &mut agent,
            &format!("{base}/echo.Echo/Unary"),
            &[],
            Some(msg("x")),
        )
        .await;
        drop(c.tx);
        let r = c.resp.unwrap();
        assert_eq!(r.headers()["x-bottle-blocked"], "egress");
        assert!(r.headers()["grpc-message"]
            .to_str()
            .unwrap()
            .starts_with("blocked by egress: only this bottle's pipelock"));
        assert!(fx.origin.requests().is_empty());
        drop(bare);
        // with it, the call goes through, and the key never reaches the origin
        let pl = fx.keyed_pipelock(&key).await;
        let mut agent = agent_h2(&pl, "bearer.test", port).await;
        let c = call(
            &mut agent,
            &format!("{base}/echo.Echo/Unary"),
            &[],
            Some(msg("y")),
        )
        .await;
        drop(c.tx);
        let mut r = c.resp.unwrap();
        let mut buf = Vec::new();
        assert_eq!(messages(r.body_mut(), 1, &mut buf).await, ["y"]);
        let (_, t) = rest(r.body_mut()).await;
        assert_eq!(t.expect("trailers")["grpc-status"], "0");
        for rq in fx.origin.requests() {
            assert_eq!(rq.version, "HTTP/2.0");
            assert!(rq.header("proxy-authorization").is_none(), "{rq:?}");
        }
        let mut all = fx.secrets.all();
        all.push(key.clone());
        drop(pl);
        assert_no_secret_in_files(fx.tmp.path(), &all);
        fx.finish();
    })
    .await
}
