//! A hostile agent allowed a wildcard asks for one name after another: each would leave an
//! idle pooled connection for the idle timeout, in egress (TLS to the origin) and in
//! pipelock (to egress: its pool is keyed by the origin too). The cap across hosts
//! (bottle-core `pool_cap`) keeps the open connections of each at most its cap, counted in
//! the kernel's TCP table, while every request still succeeds and a name used again after
//! being evicted is served on a new connection. What is in use is never closed: a response
//! still streaming, a WebSocket.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use echo_origin::{EchoOptions, EchoOrigin};
use egress::server::MAX_ORIGIN_CONNS;
use http::{Method, StatusCode};
use std::net::SocketAddr;
use std::time::Duration;

/// Established IPv4 TCP connections whose remote end is 127.0.0.1:`port` (egress's side of
/// its connections to the origin; the origin's side has the port as its local end).
fn established_to(port: u16) -> usize {
    let table = std::fs::read_to_string("/proc/net/tcp").unwrap();
    let want = format!("0100007F:{port:04X}");
    table
        .lines()
        .skip(1)
        .filter(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            f.len() > 3 && f[2] == want && f[3] == "01"
        })
        .count()
}

/// An origin whose certificate names `hosts` names under pool.test, an egress that allows
/// them all, and the `--resolve` flags that send them to the origin.
async fn many_names(
    hosts: usize,
) -> (
    EchoOrigin,
    tempfile::TempDir,
    Egress,
    Vec<String>,
    Vec<String>,
) {
    let names: Vec<String> = (0..hosts).map(|i| format!("h{i}.pool.test")).collect();
    let mut sans = names.clone();
    sans.extend(echo_origin::default_names());
    let origin = EchoOrigin::start(EchoOptions {
        names: sans,
        ca: None,
    })
    .await
    .unwrap();
    let tmp = tempfile::tempdir().unwrap();
    write_config(
        &tmp.path().join("live-config"),
        "routes: []\n",
        "*.pool.test:*\n127.0.0.1/32\n",
    );
    let resolve: Vec<String> = names
        .iter()
        .flat_map(|n| ["--resolve".to_string(), format!("{n}=127.0.0.1")])
        .collect();
    let extra: Vec<&str> = resolve.iter().map(String::as_str).collect();
    let eg = start_egress(tmp.path(), &[], Some(&origin.ca_path), &extra)
        .unwrap_or_else(|(e, st)| panic!("egress did not start ({st:?}): {e}"));
    (origin, tmp, eg, names, resolve)
}

/// [`established_to`] once it is at most `limit`, or after 2 s: a connection the cap closed
/// is gone once the sidecar's task for it has run, which a loaded machine may delay.
async fn settled_count(port: u16, limit: usize) -> usize {
    let end = std::time::Instant::now() + Duration::from_secs(2);
    loop {
        let n = established_to(port);
        if n <= limit || std::time::Instant::now() > end {
            return n;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The hostile walk: GETs every URL through `proxy` in turn, each answered 200; after each,
/// at most `cap + 1` connections to `counted_port` (the connection that takes the count over
/// the cap is open before it closes one). Returns the most seen at once.
async fn walk(
    proxy: SocketAddr,
    urls: impl IntoIterator<Item = String>,
    counted_port: u16,
    cap: usize,
    what: &str,
) -> usize {
    let mut most = 0;
    for url in urls {
        let (st, _, body) = get(proxy, Method::GET, &url, &[]).await;
        assert_eq!(
            st,
            StatusCode::OK,
            "{url}: {}",
            String::from_utf8_lossy(&body)
        );
        let n = settled_count(counted_port, cap + 1).await;
        assert!(
            n <= cap + 1,
            "{what}: {n} connections after {url} (cap {cap})"
        );
        most = most.max(n);
    }
    most
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_walking_many_names_cannot_grow_egress_s_origin_pool_past_the_cap() {
    bounded(async {
        let hosts = MAX_ORIGIN_CONNS * 2 + 8;
        let (origin, _tmp, mut eg, names, _) = many_names(hosts).await;
        let port = origin.https_addr.port();
        let urls =
            (names.iter().enumerate()).map(|(i, n)| format!("https://{n}:{port}/echo?i={i}"));
        let most = walk(
            eg.addr,
            urls,
            port,
            MAX_ORIGIN_CONNS,
            "egress to the origin",
        )
        .await;
        assert_eq!(
            origin.requests().len(),
            hosts,
            "every request reached the origin"
        );
        assert!(
            most >= MAX_ORIGIN_CONNS / 2,
            "the pool kept connections at all ({most}): otherwise this test proves nothing"
        );
        // the first name was evicted long ago: it is served again, on a new connection
        let url = format!("https://{}:{port}/echo?again", names[0]);
        let (st, _, _) = get(eg.addr, Method::GET, &url, &[]).await;
        assert_eq!(st, StatusCode::OK);
        assert!(settled_count(port, MAX_ORIGIN_CONNS + 1).await <= MAX_ORIGIN_CONNS + 1);
        let exit = eg.stop();
        assert!(exit.is_some_and(|s| s.success()), "egress exit: {exit:?}");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_walking_many_names_cannot_grow_pipelock_s_pool_to_egress_past_the_cap() {
    bounded(async {
        let cap = ::pipelock::next_hop::MAX_UPSTREAM_CONNS;
        let hosts = cap * 2 + 8;
        let (origin, tmp, mut eg, names, resolve) = many_names(hosts).await;
        let extra: Vec<&str> = resolve.iter().map(String::as_str).collect();
        let pl = start_pipelock_with(tmp.path(), &eg.cfg_dir, eg.addr, &extra, &[]).await;
        // plain http through pipelock: its hop to egress is what is counted
        let port = origin.http_addr.port();
        let urls = (names.iter().enumerate()).map(|(i, n)| format!("http://{n}:{port}/echo?i={i}"));
        let most = walk(pl.addr, urls, eg.addr.port(), cap, "pipelock to egress").await;
        assert_eq!(
            origin.requests().len(),
            hosts,
            "every request reached the origin"
        );
        assert!(
            most >= cap / 2,
            "the pool kept connections at all ({most}): otherwise this test proves nothing"
        );
        let url = format!("http://{}:{port}/echo?again", names[0]);
        let (st, _, _) = get(pl.addr, Method::GET, &url, &[]).await;
        assert_eq!(st, StatusCode::OK);
        drop(pl);
        let exit = eg.stop();
        assert!(exit.is_some_and(|s| s.success()), "egress exit: {exit:?}");
    })
    .await;
}

/// The next data frame of a streaming body, as text; panics if the stream stalls, ends or
/// breaks.
async fn next_chunk(body: &mut hyper::body::Incoming) -> String {
    use http_body_util::BodyExt;
    loop {
        let f = tokio::time::timeout(Duration::from_secs(10), body.frame())
            .await
            .expect("the stream stalled")
            .expect("the stream ended")
            .expect("the stream broke");
        if let Ok(d) = f.into_data() {
            return String::from_utf8(d.to_vec()).unwrap();
        }
    }
}

/// The cap never closes a connection whose response is still streaming: a slow page on the
/// least recently used host keeps coming while the agent walks past the cap.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_response_still_streaming_survives_an_agent_walking_past_the_cap() {
    bounded(async {
        let hosts = MAX_ORIGIN_CONNS * 2 + 8;
        let (origin, _tmp, mut eg, names, _) = many_names(hosts).await;
        // long enough to outlast any walk; the test reads a few chunks after it and hangs up
        let chunks: Vec<bytes::Bytes> = (0..1200)
            .map(|i| bytes::Bytes::from(format!("chunk {i:04};")))
            .collect();
        origin.set_page(
            "/slow",
            echo_origin::Page::streamed("text/plain", chunks, Duration::from_millis(50)),
        );
        let port = origin.https_addr.port();
        let slow_url = format!("https://{}:{port}/slow", names[0]);
        let req = http::Request::get(&slow_url)
            .body(http_body_util::Full::new(bytes::Bytes::new()))
            .unwrap();
        let resp = send(eg.addr, req).await;
        assert_eq!(resp.status(), StatusCode::OK);
        let mut body = resp.into_body();
        let first = next_chunk(&mut body).await;
        let started = std::time::Instant::now();
        assert!(first.starts_with("chunk 0000;"), "{first}");
        // the slow page's host is now the least recently used one with a connection
        let urls = (names.iter().enumerate().skip(1))
            .map(|(i, n)| format!("https://{n}:{port}/echo?i={i}"));
        walk(
            eg.addr,
            urls,
            port,
            MAX_ORIGIN_CONNS,
            "egress while the page streamed",
        )
        .await;
        // still streaming after the evictions: a chunk the origin sent after the walk ended
        // (the ones before it may have waited in buffers), so the connection was never cut
        let sent_by_now = (started.elapsed().as_millis() / 50) as usize;
        let mut last = 0;
        while last < sent_by_now + 2 {
            let text = next_chunk(&mut body).await;
            last = text
                .split(';')
                .filter_map(|c| c.trim().strip_prefix("chunk ")?.parse().ok())
                .max()
                .unwrap_or(last);
        }
        drop(body);
        let exit = eg.stop();
        assert!(exit.is_some_and(|s| s.success()), "egress exit: {exit:?}");
    })
    .await;
}

/// The cap never closes an upgraded connection: a WebSocket to the least recently used host
/// still echoes after the agent walked past the cap.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_websocket_survives_an_agent_walking_past_the_cap() {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    bounded(async {
        let hosts = MAX_ORIGIN_CONNS * 2 + 8;
        let (origin, _tmp, mut eg, names, _) = many_names(hosts).await;
        let port = origin.https_addr.port();
        let r = send(
            eg.addr,
            websocket_request(&format!("https://{}:{port}/ws", names[0]))
                .body(http_body_util::Full::new(bytes::Bytes::new()))
                .unwrap(),
        )
        .await;
        assert_eq!(r.status(), StatusCode::SWITCHING_PROTOCOLS);
        let mut ws = websocket_client(r).await;
        let mut echo = async |text: &str| {
            ws.send(Message::text(text)).await.expect("send");
            let got = tokio::time::timeout(Duration::from_secs(10), ws.next())
                .await
                .expect("an answer in time")
                .expect("the WebSocket is open")
                .expect("a frame");
            got.into_text().unwrap().to_string()
        };
        assert_eq!(echo("before the walk").await, "before the walk");
        let urls = (names.iter().enumerate().skip(1))
            .map(|(i, n)| format!("https://{n}:{port}/echo?i={i}"));
        walk(
            eg.addr,
            urls,
            port,
            MAX_ORIGIN_CONNS,
            "egress while the WebSocket is open",
        )
        .await;
        assert_eq!(echo("after the walk").await, "after the walk");
        drop(ws);
        let exit = eg.stop();
        assert!(exit.is_some_and(|s| s.success()), "egress exit: {exit:?}");
    })
    .await;
}
