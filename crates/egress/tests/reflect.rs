//! A hostile upstream reflects the credential egress injected, in every place and
//! spelling it can think of; the agent-side bytes (status line, header names and
//! values, trailers, body) must hold no form of it. The upstream is a raw-TCP origin
//! written here (plain `http://`, so it can misbehave at the framing level); the
//! agent side is a real hyper HTTP/1.1 client sending absolute-form requests.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::net::SocketAddr;
use std::sync::Arc;

use async_compression::tokio::bufread::GzipDecoder;
use async_compression::tokio::write::{BrotliEncoder, GzipEncoder};
use base64::engine::general_purpose::{STANDARD, URL_SAFE};
use base64::Engine as _;
use bytes::Bytes;
use common::*;
use http::{HeaderMap, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

type Respond = dyn Fn(&str, &str) -> Vec<u8> + Send + Sync;

/// A raw-TCP origin: reads one request head, hands (path, injected token) to
/// `respond`, writes the bytes it returns, closes.
async fn raw_origin(respond: Arc<Respond>) -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = l.accept().await else {
                return;
            };
            let respond = Arc::clone(&respond);
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut tmp = [0u8; 4096];
                while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                    match s.read(&mut tmp).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&tmp[..n]),
                    }
                }
                let head = String::from_utf8_lossy(&buf).to_string();
                let path = head.split(' ').nth(1).unwrap_or("/").to_string();
                let mut token = String::new();
                for line in head.lines() {
                    let l = line.to_ascii_lowercase();
                    if l.starts_with("authorization: bearer ") {
                        token = line["authorization: bearer ".len()..].to_string();
                    } else if l.starts_with("x-api-key: key ") {
                        token = line["x-api-key: key ".len()..].to_string();
                    }
                }
                assert!(!token.is_empty(), "egress injected nothing: {path}");
                let out = respond(&path, &token);
                let _ = s.write_all(&out).await;
                let _ = s.shutdown().await;
            });
        }
    });
    addr
}

fn ok(body: &[u8]) -> Vec<u8> {
    let mut v = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    v.extend_from_slice(body);
    v
}

fn chunk(out: &mut Vec<u8>, data: &[u8]) {
    out.extend_from_slice(format!("{:x}\r\n", data.len()).as_bytes());
    out.extend_from_slice(data);
    out.extend_from_slice(b"\r\n");
}

async fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = GzipEncoder::new(Vec::new());
    e.write_all(data).await.unwrap();
    e.shutdown().await.unwrap();
    e.into_inner()
}

async fn brotli(data: &[u8]) -> Vec<u8> {
    let mut e = BrotliEncoder::new(Vec::new());
    e.write_all(data).await.unwrap();
    e.shutdown().await.unwrap();
    e.into_inner()
}

/// What the agent received: reason phrase, headers, body, trailers.
struct Got {
    status: StatusCode,
    reason: Option<Vec<u8>>,
    headers: HeaderMap,
    body: Vec<u8>,
    trailers: Option<HeaderMap>,
}

async fn agent_get(fx: &Fixture, host: &str, port: u16, path: &str) -> Got {
    let req = Request::get(format!("http://{host}:{port}{path}"))
        .header("te", "trailers")
        .body(Full::new(Bytes::new()))
        .unwrap();
    let r = send(fx.eg.addr, req).await;
    let reason = r
        .extensions()
        .get::<hyper::ext::ReasonPhrase>()
        .map(|r| r.as_bytes().to_vec());
    let (parts, body) = r.into_parts();
    let c = body.collect().await.expect("body");
    let trailers = c.trailers().cloned();
    Got {
        status: parts.status,
        reason,
        headers: parts.headers,
        body: c.to_bytes().to_vec(),
        trailers,
    }
}

// ---- the test's own decoders: what an agent could run on what it got ----

fn unhex(c: u8) -> Option<u8> {
    (c as char).to_digit(16).map(|d| d as u8)
}

fn pct_decode(b: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            if let (Some(h), Some(l)) = (unhex(b[i + 1]), unhex(b[i + 2])) {
                out.push(h << 4 | l);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    out
}

fn json_decode(b: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 1 < b.len() {
            match b[i + 1] {
                b'/' | b'"' | b'\\' => {
                    out.push(b[i + 1]);
                    i += 2;
                    continue;
                }
                b'u' if i + 6 <= b.len() => {
                    let d: Option<Vec<u8>> = b[i + 2..i + 6].iter().map(|&c| unhex(c)).collect();
                    if let Some(d) = d {
                        let v = (u32::from(d[0]) << 12)
                            | (u32::from(d[1]) << 8)
                            | (u32::from(d[2]) << 4)
                            | u32::from(d[3]);
                        if v < 0x80 {
                            out.push(v as u8);
                            i += 6;
                            continue;
                        }
                    }
                }
                _ => {}
            }
        }
        out.push(b[i]);
        i += 1;
    }
    out
}

/// Every maximal run of hex digits, decoded at both alignments.
fn hex_runs(b: &[u8]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for run in b.split(|c| unhex(*c).is_none()) {
        for off in 0..2.min(run.len()) {
            let r = &run[off..];
            out.push(
                r.chunks_exact(2)
                    .map(|p| unhex(p[0]).unwrap() << 4 | unhex(p[1]).unwrap())
                    .collect(),
            );
        }
    }
    out
}

/// Every maximal run of base64 (std or url) characters, decoded at all four offsets.
fn b64_runs(b: &[u8]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let is = |c: u8| c.is_ascii_alphanumeric() || b"+/-_".contains(&c);
    for run in b.split(|c| !is(*c)) {
        let norm: Vec<u8> = run
            .iter()
            .map(|&c| match c {
                b'-' => b'+',
                b'_' => b'/',
                c => c,
            })
            .collect();
        for off in 0..4.min(norm.len()) {
            let r = &norm[off..];
            let r = &r[..r.len() / 4 * 4];
            if let Ok(d) = STANDARD.decode(r) {
                out.push(d);
            }
        }
    }
    out
}

/// Every view of `data` the agent could compute with ordinary decoders.
async fn views(data: &[u8]) -> Vec<Vec<u8>> {
    let mut base = vec![data.to_vec()];
    if data.starts_with(&[0x1f, 0x8b]) {
        let mut d = GzipDecoder::new(data);
        let mut v = Vec::new();
        let _ = d.read_to_end(&mut v).await;
        base.push(v);
    }
    let mut out = Vec::new();
    for b in base {
        for v in [
            b.clone(),
            pct_decode(&b),
            json_decode(&b),
            pct_decode(&json_decode(&b)),
            json_decode(&pct_decode(&b)),
        ] {
            out.extend(hex_runs(&v));
            out.extend(b64_runs(&v));
            out.push(v);
        }
    }
    out
}

/// No 12-byte window of `secret` (any case) in any view of `data`.
async fn assert_no_canary(what: &str, data: &[u8], secret: &str) {
    let s = secret.to_ascii_lowercase().into_bytes();
    for v in views(data).await {
        let v = v.to_ascii_lowercase();
        for w in s.windows(12.min(s.len())) {
            assert!(
                !v.windows(w.len()).any(|x| x == w),
                "{what}: the agent can recover part of the secret ({}) from: {}",
                String::from_utf8_lossy(w),
                String::from_utf8_lossy(data)
            );
        }
    }
}

async fn assert_got_clean(what: &str, g: &Got, secret: &str) {
    if let Some(r) = &g.reason {
        assert_no_canary(&format!("{what} reason"), r, secret).await;
    }
    assert_no_canary(
        &format!("{what} headers"),
        &headers_text(&g.headers),
        secret,
    )
    .await;
    if let Some(t) = &g.trailers {
        assert_no_canary(&format!("{what} trailers"), &headers_text(t), secret).await;
    }
    assert_no_canary(&format!("{what} body"), &g.body, secret).await;
}

fn marked(g: &Got) -> bool {
    g.body
        .windows(REDACTED.len())
        .any(|w| w == REDACTED.as_bytes())
}

// ---- spellings of the token ----

fn alt_case(s: &str) -> String {
    s.chars()
        .enumerate()
        .map(|(i, c)| {
            if i % 2 == 0 {
                c.to_ascii_uppercase()
            } else {
                c.to_ascii_lowercase()
            }
        })
        .collect()
}

/// `%XX` for the bytes `which` selects, digits in the case `upper` picks per byte.
fn pct_some(t: &str, which: impl Fn(usize) -> bool, upper: impl Fn(usize) -> bool) -> String {
    t.bytes()
        .enumerate()
        .map(|(i, b)| {
            if which(i) {
                let h = format!("%{b:02x}");
                if upper(i) {
                    h.to_ascii_uppercase()
                } else {
                    h
                }
            } else {
                (b as char).to_string()
            }
        })
        .collect()
}

fn json_some(t: &str, which: impl Fn(usize) -> bool, upper: bool) -> String {
    t.bytes()
        .enumerate()
        .map(|(i, b)| {
            if which(i) {
                if upper {
                    format!("\\u{b:04X}")
                } else {
                    format!("\\u{b:04x}")
                }
            } else if b == b'/' {
                "\\/".to_string()
            } else {
                (b as char).to_string()
            }
        })
        .collect()
}

/// Every spelling the brief names, by name.
fn spellings(t: &str) -> Vec<(String, String)> {
    let mut v = vec![("raw".to_string(), t.to_string())];
    for (i, pre) in ["", "x", "xy"].iter().enumerate() {
        let p = format!("{pre}{t}tail");
        v.push((format!("base64-std-{i}"), STANDARD.encode(&p)));
        v.push((format!("base64-url-{i}"), URL_SAFE.encode(&p)));
    }
    v.push(("hex-lower".into(), hex::encode(t)));
    v.push(("hex-upper".into(), hex::encode_upper(t)));
    v.push(("hex-mixed".into(), alt_case(&hex::encode(t))));
    v.push(("pct-full-upper".into(), pct_some(t, |_| true, |_| true)));
    v.push(("pct-full-lower".into(), pct_some(t, |_| true, |_| false)));
    v.push((
        "pct-full-mixed".into(),
        pct_some(t, |_| true, |i| i % 2 == 0),
    ));
    v.push(("pct-partial".into(), pct_some(t, |i| i % 2 == 1, |_| true)));
    v.push((
        "pct-partial-mixed".into(),
        pct_some(t, |i| i % 3 != 0, |i| i % 2 == 0),
    ));
    v.push(("json-u-full".into(), json_some(t, |_| true, false)));
    v.push(("json-u-partial".into(), json_some(t, |i| i % 2 == 0, false)));
    v.push((
        "json-u-partial-upper".into(),
        json_some(t, |i| i % 3 == 1, true),
    ));
    // a percent escape and a JSON escape in one spelling
    let mixed: String = t
        .bytes()
        .enumerate()
        .map(|(i, b)| match i % 3 {
            0 => format!("%{b:02x}"),
            1 => format!("\\u00{b:02X}"),
            _ => (b as char).to_string(),
        })
        .collect();
    v.push(("pct-and-json".into(), mixed));
    v
}

/// The spelling the chunk-split test cuts at every offset.
fn mixed_form(t: &str) -> String {
    pct_some(t, |i| i % 3 != 1, |i| i % 2 == 0)
}

/// The standard routes, the two this file uses allowed over cleartext (the raw
/// origin speaks plain HTTP so it can misbehave at the framing level).
async fn fixture() -> Fixture {
    let routes = routes_yaml()
        .replace(
            "token_env: TOK_BEARER}",
            "token_env: TOK_BEARER}\n    allow_cleartext: true",
        )
        .replace(
            "token_env: TOK_HEADER}",
            "token_env: TOK_HEADER}\n    allow_cleartext: true",
        );
    assert_eq!(routes.matches("allow_cleartext").count(), 2);
    Fixture::with(&routes, ALLOWLIST, &[]).await
}

fn secret_of(fx: &Fixture, host: &str) -> String {
    if host == "header.test" {
        fx.secrets.header.clone()
    } else {
        fx.secrets.bearer.clone()
    }
}

/// (a) hyper keeps a non-canonical reason phrase and writes it back out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reason_phrase_never_carries_the_token() {
    bounded(async {
        let fx = fixture().await;
        let port = raw_origin(Arc::new(|path: &str, t: &str| {
            let reason = match path {
                "/raw" => t.to_string(),
                "/hex" => format!("Not {}", hex::encode_upper(t)),
                _ => format!("x {}", pct_some(t, |i| i % 2 == 0, |_| false)),
            };
            let mut v =
                format!("HTTP/1.1 404 {reason}\r\nContent-Length: 2\r\nConnection: close\r\n\r\n")
                    .into_bytes();
            v.extend_from_slice(b"no");
            v
        }))
        .await
        .port();
        let secret = fx.secrets.bearer.clone();
        for path in ["/raw", "/hex", "/pct"] {
            let g = agent_get(&fx, "bearer.test", port, path).await;
            assert_eq!(g.status, StatusCode::NOT_FOUND, "{path}");
            assert_eq!(g.body, b"no", "{path}");
            // a non-canonical reason never comes back on an injecting config
            assert!(g.reason.is_none(), "{path}: reason {:?}", g.reason);
            assert_got_clean(path, &g, &secret).await;
        }
        fx.finish();
    })
    .await
}

/// (b) and every other spelling: each one is redacted, the rest of the body intact.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_spelling_of_the_token_is_redacted() {
    bounded(async {
        let fx = fixture().await;
        let port = raw_origin(Arc::new(|path: &str, t: &str| {
            let name = path.trim_start_matches("/enc/");
            let (_, s) = spellings(t).into_iter().find(|(n, _)| n == name).unwrap();
            ok(format!("before {s} after").as_bytes())
        }))
        .await
        .port();
        for host in ["bearer.test", "header.test"] {
            let secret = secret_of(&fx, host);
            for (name, _) in spellings(&secret) {
                let g = agent_get(&fx, host, port, &format!("/enc/{name}")).await;
                let what = format!("{host} {name}");
                assert_eq!(g.status, StatusCode::OK, "{what}");
                assert!(marked(&g), "{what}: {}", String::from_utf8_lossy(&g.body));
                assert!(g.body.starts_with(b"before "), "{what}");
                assert_got_clean(&what, &g, &secret).await;
            }
        }
        fx.finish();
    })
    .await
}

/// (c) a compressed transfer coding with no Content-Encoding is decoded and scrubbed;
/// a transfer coding egress cannot decode is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transfer_coded_bodies_are_decoded_or_refused() {
    bounded(async {
        let fx = fixture().await;
        let port = raw_origin(Arc::new(|path: &str, t: &str| {
            let body = format!("data: {t}\nhex: {}\n", hex::encode(t)).into_bytes();
            let rt = tokio::runtime::Handle::current();
            let z = std::thread::scope(|s| {
                s.spawn(|| rt.block_on(gzip(&body))).join().unwrap()
            });
            let mut v = Vec::new();
            match path {
                // close-delimited: hyper reads to EOF, egress used to pass it on gzipped
                "/te-gzip" => {
                    v.extend_from_slice(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n");
                    v.extend_from_slice(&z);
                }
                "/te-gzip-chunked" => {
                    v.extend_from_slice(
                        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\nConnection: close\r\n\r\n",
                    );
                    let (a, b) = z.split_at(z.len() / 2);
                    chunk(&mut v, a);
                    chunk(&mut v, b);
                    v.extend_from_slice(b"0\r\n\r\n");
                }
                "/te-gzip-ce-br" => {
                    let br = std::thread::scope(|s| {
                        s.spawn(|| rt.block_on(brotli(&body))).join().unwrap()
                    });
                    let z = std::thread::scope(|s| {
                        s.spawn(|| rt.block_on(gzip(&br))).join().unwrap()
                    });
                    v.extend_from_slice(
                        b"HTTP/1.1 200 OK\r\nContent-Encoding: br\r\nTransfer-Encoding: gzip, chunked\r\nConnection: close\r\n\r\n",
                    );
                    chunk(&mut v, &z);
                    v.extend_from_slice(b"0\r\n\r\n");
                }
                _ => {
                    v.extend_from_slice(
                        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: compress, chunked\r\nConnection: close\r\n\r\n",
                    );
                    chunk(&mut v, &z);
                    v.extend_from_slice(b"0\r\n\r\n");
                }
            }
            v
        }))
        .await
        .port();
        let secret = fx.secrets.bearer.clone();
        for path in ["/te-gzip", "/te-gzip-chunked", "/te-gzip-ce-br"] {
            let g = agent_get(&fx, "bearer.test", port, path).await;
            assert_eq!(g.status, StatusCode::OK, "{path}");
            assert_got_clean(path, &g, &secret).await;
            assert_eq!(
                String::from_utf8_lossy(&g.body),
                format!("data: {REDACTED}\nhex: {REDACTED}\n"),
                "{path}"
            );
            assert!(g.headers.get("content-encoding").is_none(), "{path}");
        }
        let g = agent_get(&fx, "bearer.test", port, "/te-compress").await;
        assert_eq!(g.status, StatusCode::BAD_GATEWAY);
        assert_eq!(g.headers["x-bottle-blocked"], "egress");
        let text = String::from_utf8_lossy(&g.body).to_string();
        assert!(text.contains("Transfer-Encoding compress"), "{text}");
        assert_got_clean("compress", &g, &secret).await;
        fx.finish();
    })
    .await
}

/// Header names (not only values) and trailers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn header_names_and_trailers_never_carry_the_token() {
    bounded(async {
        let fx = fixture().await;
        let port = raw_origin(Arc::new(|_path: &str, t: &str| {
            // the raw token where it is a valid field name, else its hex and base64url
            let name = if t.bytes().all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b)) {
                t.to_string()
            } else {
                base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(t)
            };
            let mut v = format!(
                "HTTP/1.1 200 OK\r\nX-{name}: 1\r\nX-{}: 2\r\nX-Fine: ok\r\nTrailer: X-Tr, X-{name}\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n",
                hex::encode(t)
            )
            .into_bytes();
            chunk(&mut v, b"hello");
            v.extend_from_slice(format!("0\r\nX-Tr: {t}\r\nX-{name}: 3\r\n\r\n").as_bytes());
            v
        }))
        .await
        .port();
        for host in ["header.test", "bearer.test"] {
            let secret = secret_of(&fx, host);
            let g = agent_get(&fx, host, port, "/h").await;
            assert_eq!(g.status, StatusCode::OK, "{host}");
            assert_eq!(g.body, b"hello", "{host}");
            assert_eq!(g.headers["x-fine"], "ok", "{host}");
            assert_got_clean(host, &g, &secret).await;
        }
        fx.finish();
    })
    .await
}

/// A mixed spelling cut across two chunks at every offset.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mixed_spelling_split_at_every_offset() {
    bounded(async {
        let fx = fixture().await;
        let port = raw_origin(Arc::new(|path: &str, t: &str| {
            let k: usize = path.trim_start_matches("/split/").parse().unwrap();
            let form = mixed_form(t).into_bytes();
            let mut v =
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
                    .to_vec();
            let mut first = b"data: ".to_vec();
            first.extend_from_slice(&form[..k]);
            let mut second = form[k..].to_vec();
            second.extend_from_slice(b"\n\n");
            chunk(&mut v, &first);
            chunk(&mut v, &second);
            v.extend_from_slice(b"0\r\n\r\n");
            v
        }))
        .await
        .port();
        let secret = fx.secrets.bearer.clone();
        let n = mixed_form(&secret).len();
        for k in 0..=n {
            let g = agent_get(&fx, "bearer.test", port, &format!("/split/{k}")).await;
            let what = format!("split at {k}");
            assert_eq!(g.status, StatusCode::OK, "{what}");
            assert_eq!(
                String::from_utf8_lossy(&g.body),
                format!("data: {REDACTED}\n\n"),
                "{what}"
            );
            assert_got_clean(&what, &g, &secret).await;
        }
        fx.finish();
    })
    .await
}

/// Scrubber throughput on a 64 MiB clean body in 64 KiB chunks (prints MB/s; run with
/// `--ignored --nocapture`). Three bodies: prose, JSON-ish text full of `\"` and `%20`, and
/// random bytes (any compressed download: benchmark W3).
#[test]
#[ignore]
fn scrub_throughput_64mib() {
    let pats = Arc::new(
        egress::scrub::Patterns::new(&["ghp_CanaryT0ken/with+odd=chars_1234567890"]).unwrap(),
    );
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let next = |seed: &mut u64| {
        *seed ^= *seed << 13;
        *seed ^= *seed >> 7;
        *seed ^= *seed << 17;
        *seed
    };
    let word = |seed: u64, json: bool| {
        let w = [
            "the", "quick", "brown", "fox", "jumps", "over", "lazy", "dog", "lorem", "ipsum",
        ];
        let s = w[(seed % 10) as usize];
        match (json, seed % 7) {
            (true, 0) => format!("\\\"{s}\\\" "),
            (true, 1) => format!("{s}%20"),
            _ => format!("{s} "),
        }
    };
    for kind in ["prose", "json-ish", "random"] {
        let mut body = Vec::with_capacity(64 << 20);
        while body.len() < 64 << 20 {
            let x = next(&mut seed);
            if kind == "random" {
                body.extend_from_slice(&x.to_le_bytes());
            } else {
                body.extend_from_slice(word(x, kind == "json-ish").as_bytes());
            }
        }
        let body = Bytes::from(body);
        // 64 KiB, the 16 KiB of a TLS record, and 4 KiB (what a proxied download may arrive in)
        for chunk in [64 << 10, 16 << 10, 4 << 10] {
            let start = std::time::Instant::now();
            let mut sc = egress::scrub::StreamScrubber::new(Arc::clone(&pats));
            let mut out = 0usize;
            let mut i = 0;
            while i < body.len() {
                let end = (i + chunk).min(body.len());
                out += sc.push(body.slice(i..end)).len();
                i = end;
            }
            out += sc.finish().len();
            let secs = start.elapsed().as_secs_f64();
            assert_eq!(out, body.len());
            assert_eq!(sc.count(), 0);
            println!(
                "scrub throughput ({kind}, {} KiB chunks): {:.0} MB/s",
                chunk >> 10,
                body.len() as f64 / secs / 1e6
            );
        }
    }
}
