//! The corpus origin: HTTPS (HTTP/1.1) on 127.0.0.1 with a leaf for every host the corpus
//! names, issued by the echo origin's CA (which pipelock trusts via `--upstream-ca`). It
//! records every request whole (head, body bytes, whether the body completed), so a case can
//! prove a canary never arrived, and answers each case with its canned response, chosen by
//! the `x-case` request header (the n-th request of a case gets the n-th response, the last
//! one repeated: an MCP server that changes its tools within a session).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, StreamBody};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

/// What the origin answers.
#[derive(Clone, Debug, Default)]
pub struct Canned {
    pub content_type: String,
    /// Body chunks, sent as separate frames 30 ms apart (SSE event by event).
    pub chunks: Vec<Vec<u8>>,
    /// `Content-Encoding: gzip` (the chunks are already compressed).
    pub gzip: bool,
}

/// One request as it arrived.
#[derive(Clone, Debug, Default)]
pub struct Seen {
    pub case: String,
    /// Request line, headers and body as text, for canary search.
    pub text: String,
    pub body: Vec<u8>,
    pub complete: bool,
}

#[derive(Default)]
struct Shared {
    canned: HashMap<String, Vec<Canned>>,
    served: HashMap<String, usize>,
    seen: Vec<Seen>,
}

pub struct Origin {
    pub addr: SocketAddr,
    pub plain_addr: SocketAddr,
    shared: Arc<Mutex<Shared>>,
}

fn lock(m: &Mutex<Shared>) -> std::sync::MutexGuard<'_, Shared> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Origin {
    pub async fn start(ca: &echo_origin::TestCa, names: &[String]) -> Origin {
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        let mut cfg = (*ca.server_config(&names).unwrap()).clone();
        cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(cfg));
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let shared: Arc<Mutex<Shared>> = Arc::default();
        let sh = shared.clone();
        tokio::spawn(async move {
            while let Ok((s, _)) = l.accept().await {
                let (acceptor, sh) = (acceptor.clone(), sh.clone());
                tokio::spawn(async move {
                    let Ok(t) = acceptor.accept(s).await else {
                        return;
                    };
                    let sni = t.get_ref().1.server_name().unwrap_or("").to_string();
                    let svc =
                        hyper::service::service_fn(move |req| handle(sh.clone(), sni.clone(), req));
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(t), svc)
                        .await;
                });
            }
        });
        // A plain-HTTP listener too, for absolute-form `http://` requests through the proxy.
        let plain = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let plain_addr = plain.local_addr().unwrap();
        let sh = shared.clone();
        tokio::spawn(async move {
            while let Ok((s, _)) = plain.accept().await {
                let sh = sh.clone();
                tokio::spawn(async move {
                    let svc = hyper::service::service_fn(move |req| {
                        handle(sh.clone(), String::new(), req)
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(s), svc)
                        .await;
                });
            }
        });
        Origin {
            addr,
            plain_addr,
            shared,
        }
    }

    pub fn set(&self, case: &str, responses: Vec<Canned>) {
        let mut g = lock(&self.shared);
        g.canned.insert(case.to_string(), responses);
        g.served.remove(case);
    }

    /// Everything recorded for `case`.
    pub fn seen(&self, case: &str) -> Vec<Seen> {
        lock(&self.shared)
            .seen
            .iter()
            .filter(|s| s.case == case)
            .cloned()
            .collect()
    }

    /// Whether `needle` (case-insensitively) arrived in any request, whatever its case.
    pub fn saw_anywhere(&self, needle: &str) -> bool {
        let n = needle.to_lowercase();
        lock(&self.shared)
            .seen
            .iter()
            .any(|s| s.text.to_lowercase().contains(&n))
    }
}

type Body = http_body_util::combinators::BoxBody<Bytes, std::io::Error>;

async fn handle(
    sh: Arc<Mutex<Shared>>,
    sni: String,
    req: http::Request<hyper::body::Incoming>,
) -> Result<http::Response<Body>, std::convert::Infallible> {
    let (parts, mut body) = req.into_parts();
    let case = parts
        .headers
        .get("x-case")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let mut text = format!("sni {sni}\n{} {}\n", parts.method, parts.uri);
    for (n, v) in &parts.headers {
        text.push_str(&format!("{n}: {}\n", String::from_utf8_lossy(v.as_bytes())));
    }
    let idx = {
        let mut g = lock(&sh);
        g.seen.push(Seen {
            case: case.clone(),
            text: text.clone(),
            ..Default::default()
        });
        g.seen.len() - 1
    };
    loop {
        match body.frame().await {
            Some(Ok(f)) => {
                if let Ok(d) = f.into_data() {
                    let mut g = lock(&sh);
                    let s = &mut g.seen[idx];
                    s.body.extend_from_slice(&d);
                    s.text.push_str(&String::from_utf8_lossy(&d));
                }
            }
            Some(Err(_)) => break,
            None => {
                lock(&sh).seen[idx].complete = true;
                break;
            }
        }
    }
    let canned = {
        let mut g = lock(&sh);
        let n = g.served.entry(case.clone()).or_insert(0);
        let i = *n;
        *n += 1;
        g.canned
            .get(&case)
            .and_then(|list| list.get(i.min(list.len().saturating_sub(1))).cloned())
    };
    let canned = canned.unwrap_or_else(|| Canned {
        content_type: "application/json".into(),
        chunks: vec![br#"{"ok":true}"#.to_vec()],
        gzip: false,
    });
    let mut resp = http::Response::builder()
        .status(200)
        .header("content-type", &canned.content_type);
    if canned.gzip {
        resp = resp.header("content-encoding", "gzip");
    }
    let chunks = canned.chunks;
    let stream =
        futures_util::stream::unfold((chunks.into_iter(), true), |(mut it, first)| async move {
            let next = it.next()?;
            if !first {
                tokio::time::sleep(Duration::from_millis(30)).await;
            }
            Some((
                Ok::<_, std::io::Error>(hyper::body::Frame::data(Bytes::from(next))),
                (it, false),
            ))
        });
    Ok(resp
        .body(StreamBody::new(stream).boxed())
        .unwrap_or_else(|_| {
            http::Response::new(http_body_util::Empty::new().map_err(|e| match e {}).boxed())
        }))
}
