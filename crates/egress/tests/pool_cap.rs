//! A hostile agent allowed a wildcard asks for one name after another: each would leave an
//! idle pooled connection for the idle timeout, in egress (TLS to the origin) and in
//! pipelock (to egress: its pool is keyed by the origin too). The cap across hosts
//! (bottle-core `pool_cap`) keeps the open connections of each at most its cap, counted in
//! the kernel's TCP table, while every request still succeeds and a name used again after
//! being evicted is served on a new connection.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use echo_origin::{EchoOptions, EchoOrigin};
use egress::server::MAX_ORIGIN_CONNS;
use http::{Method, StatusCode};

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_walking_many_names_cannot_grow_egress_s_origin_pool_past_the_cap() {
    bounded(async {
        let hosts = MAX_ORIGIN_CONNS * 2 + 8;
        let (origin, _tmp, mut eg, names, _) = many_names(hosts).await;
        let port = origin.https_addr.port();
        let mut most = 0;
        for (i, n) in names.iter().enumerate() {
            let url = format!("https://{n}:{port}/echo?i={i}");
            let (st, _, _) = get(eg.addr, Method::GET, &url, &[]).await;
            assert_eq!(st, StatusCode::OK, "{url}");
            most = most.max(established_to(port));
        }
        assert_eq!(
            origin.requests().len(),
            hosts,
            "every request reached the origin"
        );
        // + 1: the connection that takes the count over the cap is open before it closes one
        assert!(
            most <= MAX_ORIGIN_CONNS + 1,
            "egress held {most} connections to the origin at once (cap {MAX_ORIGIN_CONNS})"
        );
        assert!(
            most >= MAX_ORIGIN_CONNS / 2,
            "the pool kept connections at all ({most}): otherwise this test proves nothing"
        );
        // the first name was evicted long ago: it is served again, on a new connection
        let url = format!("https://{}:{port}/echo?again", names[0]);
        let (st, _, _) = get(eg.addr, Method::GET, &url, &[]).await;
        assert_eq!(st, StatusCode::OK);
        assert!(established_to(port) <= MAX_ORIGIN_CONNS + 1);
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
        let mut most = 0;
        for (i, n) in names.iter().enumerate() {
            let url = format!("http://{n}:{port}/echo?i={i}");
            let (st, _, body) = get(pl.addr, Method::GET, &url, &[]).await;
            assert_eq!(
                st,
                StatusCode::OK,
                "{url}: {}",
                String::from_utf8_lossy(&body)
            );
            most = most.max(established_to(eg.addr.port()));
        }
        assert_eq!(
            origin.requests().len(),
            hosts,
            "every request reached the origin"
        );
        // + 1: the connection that takes the count over the cap is open before it closes one
        assert!(
            most <= cap + 1,
            "pipelock held {most} connections to egress at once (cap {cap})"
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
