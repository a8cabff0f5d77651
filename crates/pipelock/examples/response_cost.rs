//! Cost of judging responses for prompt injection: a 64 MiB text download and a small-page
//! request rate through pipelock with `dlp.responses: block` and `off`, interleaved,
//! best of N. Plain HTTP (absolute form) so TLS does not hide the scanning cost.
//!
//! `cargo run -p pipelock --profile bench --example response_cost [rounds]`
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use echo_origin::{EchoOptions, EchoOrigin, Page};
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;

const BIG: usize = 64 * 1024 * 1024;

fn text_chunk() -> Bytes {
    let line = "Release 2.4 adds streaming uploads, fixes the retry loop and documents the proxy settings.\n";
    let mut s = String::with_capacity(64 * 1024);
    while s.len() + line.len() <= 64 * 1024 {
        s.push_str(line);
    }
    while s.len() < 64 * 1024 {
        s.push('.');
    }
    Bytes::from(s)
}

async fn start_pipelock(
    responses: &str,
    origin_ca: &std::path::Path,
) -> (tempfile::TempDir, pipelock::Running) {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("cfg");
    std::fs::create_dir_all(&cfg).unwrap();
    std::fs::write(cfg.join("allowlist"), "127.0.0.1/32\n").unwrap();
    std::fs::write(
        cfg.join("routes.yaml"),
        format!("dlp:\n  responses: {responses}\n"),
    )
    .unwrap();
    pipelock::tls_intercept::ca::init_ca(&dir.path().join("ca")).unwrap();
    let argv = vec![
        "pipelock".to_string(),
        "--listen".into(),
        "127.0.0.1:0".into(),
        "--config-dir".into(),
        cfg.display().to_string(),
        "--ca-cert".into(),
        dir.path().join("ca/ca.crt").display().to_string(),
        "--ca-key".into(),
        dir.path().join("ca/ca.key").display().to_string(),
        "--upstream-ca".into(),
        origin_ca.display().to_string(),
    ];
    let args = <pipelock::Args as clap::Parser>::try_parse_from(argv).unwrap();
    let p = pipelock::spawn(args).await.unwrap();
    (dir, p)
}

type Sender = hyper::client::conn::http1::SendRequest<Empty<Bytes>>;

async fn client(proxy: SocketAddr) -> Sender {
    let s = tokio::net::TcpStream::connect(proxy).await.unwrap();
    let (send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(s))
        .await
        .unwrap();
    tokio::spawn(conn);
    send
}

async fn get(send: &mut Sender, url: &str) -> (u16, usize) {
    let uri: http::Uri = url.parse().unwrap();
    let req = http::Request::get(url)
        .header("host", uri.authority().unwrap().as_str())
        .body(Empty::new())
        .unwrap();
    send.ready().await.unwrap();
    let resp = send.send_request(req).await.unwrap();
    let status = resp.status().as_u16();
    let mut body = resp.into_body();
    let mut n = 0;
    while let Some(f) = body.frame().await {
        n += f.unwrap().data_ref().map_or(0, |d| d.len());
    }
    (status, n)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let rounds: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(3);
    let origin = EchoOrigin::start(EchoOptions::default()).await.unwrap();
    origin.set_record_limit(0);
    let chunk = text_chunk();
    let mut big = Page::new("text/plain; charset=utf-8", Bytes::new());
    big.body_chunks = vec![chunk; BIG / (64 * 1024)];
    origin.set_page("/big", big);
    let small = "<!doctype html><html><head><title>Docs</title></head><body><h1>Install</h1>\
        <p>Run <code>cargo add serde</code>, then derive Serialize on your types.</p></body></html>"
        .repeat(8);
    origin.set_page("/small", Page::html(small.clone()));
    let mut results: Vec<(&str, f64, f64)> = Vec::new();
    let (_d1, block) = start_pipelock("block", &origin.ca_path).await;
    let (_d2, off) = start_pipelock("off", &origin.ca_path).await;
    let big_url = origin.http_url("/big");
    let small_url = origin.http_url("/small");
    let mut best = [(0f64, 0f64); 2];
    for _ in 0..rounds {
        for (i, p) in [&block, &off].into_iter().enumerate() {
            let mut send = client(p.addr).await;
            let t = Instant::now();
            let (status, n) = get(&mut send, &big_url).await;
            assert_eq!((status, n), (200, BIG));
            let mib_s = (BIG as f64 / (1024.0 * 1024.0)) / t.elapsed().as_secs_f64();
            let mut count = 0u32;
            let t = Instant::now();
            while t.elapsed() < Duration::from_secs(2) {
                let (status, _) = get(&mut send, &small_url).await;
                assert_eq!(status, 200);
                count += 1;
            }
            let rps = f64::from(count) / t.elapsed().as_secs_f64();
            best[i].0 = best[i].0.max(mib_s);
            best[i].1 = best[i].1.max(rps);
        }
    }
    results.push(("responses: block", best[0].0, best[0].1));
    results.push(("responses: off", best[1].0, best[1].1));
    println!("best of {rounds} (interleaved), plain HTTP through pipelock:");
    for (name, mib_s, rps) in &results {
        println!("  {name:18} 64 MiB text: {mib_s:7.1} MiB/s   small page (1.2 KiB HTML): {rps:7.0} req/s");
    }
    // The detector alone on the same bytes (the part of the cost that is not pipelock's).
    let chunk = text_chunk();
    let mut best_alone = 0f64;
    for _ in 0..rounds {
        let mut stream =
            bottle_dlp::injection::InjectionStream::new(bottle_dlp::injection::ContentKind::Text);
        let t = Instant::now();
        for _ in 0..BIG / chunk.len() {
            stream.push(&chunk).unwrap();
        }
        stream.finish().unwrap();
        best_alone = best_alone.max((BIG as f64 / (1024.0 * 1024.0)) / t.elapsed().as_secs_f64());
    }
    println!("  InjectionStream alone, 64 KiB pushes: {best_alone:7.1} MiB/s");
    let n = 20_000u32;
    let t = Instant::now();
    for _ in 0..n {
        let f = bottle_dlp::injection::scan_injection(
            small.as_bytes(),
            bottle_dlp::injection::ContentKind::Html,
        );
        assert!(f.is_empty());
    }
    let per = t.elapsed().as_secs_f64() * 1e6 / f64::from(n);
    println!("  scan_injection alone on the small page: {per:5.1} us/call");
    block.stop().await;
    off.stop().await;
}
