//! egress alone, the process: start-up and reload with a missing credential, reload under
//! load, SIGTERM drain, in-process spawn, the healthcheck subcommand.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::*;
use http::{Method, StatusCode};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_env_var_at_start_exits_2() {
    bounded(async {
        let tmp = tempfile::tempdir().unwrap();
        let secrets = Secrets::new();
        write_config(&tmp.path().join("live-config"), &routes_yaml(), ALLOWLIST);
        let mut env = secrets.env();
        env.retain(|(k, _)| k != "TOK_HEADER");
        let Err((stderr, st)) = start_egress(tmp.path(), &env, None, &[]) else {
            panic!("egress started without TOK_HEADER");
        };
        assert_eq!(st.and_then(|s| s.code()), Some(2), "{stderr}");
        assert!(stderr.contains("TOK_HEADER"), "{stderr}");
        assert!(stderr.contains("route 2"), "{stderr}");
        assert!(stderr.contains("header.test"), "{stderr}");
        // empty counts as missing
        env.push(("TOK_HEADER".into(), String::new()));
        let Err((stderr, st)) = start_egress(tmp.path(), &env, None, &[]) else {
            panic!("egress started with an empty TOK_HEADER");
        };
        assert_eq!(st.and_then(|s| s.code()), Some(2));
        assert!(stderr.contains("TOK_HEADER"), "{stderr}");
        let status = std::fs::read_to_string(tmp.path().join("status.json")).unwrap();
        assert!(status.contains("TOK_HEADER"), "{status}");
        assert_no_secret_in_files(tmp.path(), &secrets.all());
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_env_var_at_reload_keeps_old_config() {
    bounded(async {
        let fx = Fixture::new().await;
        let st0 = fx.eg.wait_status(|v| v["generation"] == 1).await;
        assert!(st0["last_error"].is_null());
        // a new route needing an env var egress does not have
        let routes = format!(
            "{}  - host: \"late.test:*\"\n    auth: {{scheme: bearer, token_env: TOK_NOT_SET}}\n",
            routes_yaml()
        );
        write_config(&fx.eg.cfg_dir, &routes, ALLOWLIST);
        fx.eg.sighup();
        let st = fx.eg.wait_status(|v| v["last_error"].is_string()).await;
        let err = st["last_error"].as_str().unwrap();
        assert!(
            err.contains("TOK_NOT_SET") && err.contains("route 7"),
            "{err}"
        );
        assert_eq!(st["generation"], 1);
        assert_eq!(st["config_sha256"], st0["config_sha256"]);
        // old config still in force: late.test not routed, bearer.test still injects
        let (code, _, _) = fx.get("late.test", "/echo", &[]).await;
        assert_eq!(code, StatusCode::FORBIDDEN);
        let (code, _, _) = fx.get("bearer.test", "/echo", &[]).await;
        assert_eq!(code, StatusCode::OK);
        let log = std::fs::read_to_string(&fx.eg.log).unwrap();
        assert!(log.contains("TOK_NOT_SET"), "{log}");
        let m = fx.eg.metrics().await;
        assert!(
            m.contains("bottle_reloads_total{result=\"error\"} 1"),
            "{m}"
        );
        // fixing the config is picked up by the next SIGHUP
        write_config(
            &fx.eg.cfg_dir,
            &format!("{}  - host: \"late.test:*\"\n", routes_yaml()),
            ALLOWLIST,
        );
        fx.eg.sighup();
        fx.eg
            .wait_status(|v| v["generation"] == 2 && v["last_error"].is_null())
            .await;
        let (code, _, _) = fx.get("late.test", "/echo", &[]).await;
        assert_eq!(code, StatusCode::OK);
        fx.finish();
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_under_load_drops_nothing() {
    bounded(async {
        let fx = Fixture::new().await;
        let addr = fx.eg.addr;
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let mut tasks = Vec::new();
        for i in 0..4 {
            let url = if i % 2 == 0 {
                fx.url("bearer.test", "/reflect?split=1")
            } else {
                fx.url("open.test", "/slow-body?chunks=3&ms=50")
            };
            let stop = stop.clone();
            let secrets = fx.secrets.all();
            tasks.push(tokio::spawn(async move {
                let mut n = 0u32;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let (st, h, body) = get(addr, Method::GET, &url, &[]).await;
                    assert_eq!(
                        st,
                        StatusCode::OK,
                        "{url}: {}",
                        String::from_utf8_lossy(&body)
                    );
                    assert_clean(&url, &body, &secrets);
                    assert_clean(&url, &headers_text(&h), &secrets);
                    n += 1;
                }
                n
            }));
        }
        let mut gen = 1;
        let mut worst = Duration::ZERO;
        for round in 0..50 {
            if round % 10 == 5 {
                // an invalid config: rejected, nothing changes, requests keep working
                write_config(&fx.eg.cfg_dir, "routes:\n  - hots: typo\n", ALLOWLIST);
                fx.eg.sighup();
                fx.eg
                    .wait_status(|v| v["last_error"].as_str().is_some_and(|e| e.contains("hots")))
                    .await;
                continue;
            }
            // alternate: late.test routed / not routed; the hosts under load stay
            let add = round % 2 == 0;
            let extra = if add {
                "  - host: \"late.test:*\"\n"
            } else {
                ""
            };
            write_config(
                &fx.eg.cfg_dir,
                &format!("{}{extra}", routes_yaml()),
                ALLOWLIST,
            );
            let t0 = std::time::Instant::now();
            fx.eg.sighup();
            gen += 1;
            let g = gen;
            fx.eg
                .wait_status(move |v| v["generation"] == g && v["last_error"].is_null())
                .await;
            // the very next request sees the new config
            let (st, _, _) = get(addr, Method::GET, &fx.url("late.test", "/echo"), &[]).await;
            worst = worst.max(t0.elapsed());
            let want = if add {
                StatusCode::OK
            } else {
                StatusCode::FORBIDDEN
            };
            assert_eq!(st, want, "round {round}");
        }
        // informational, not asserted (timing depends on the machine)
        eprintln!("slowest signal-to-new-config-answer: {worst:?}");
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let mut total = 0;
        for t in tasks {
            total += t.await.unwrap();
        }
        assert!(total >= 8, "only {total} requests ran");
        fx.finish();
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_in_flight_requests() {
    bounded(async {
        let mut fx = Fixture::new().await;
        let url = fx.url("open.test", "/slow?ms=1500");
        let addr = fx.eg.addr;
        let inflight = tokio::spawn(async move { get(addr, Method::GET, &url, &[]).await });
        // wait until the request is in flight at the origin (no fixed sleep)
        let end = std::time::Instant::now() + Duration::from_secs(30);
        while !fx.origin.requests().iter().any(|r| r.path == "/slow") {
            assert!(
                std::time::Instant::now() < end,
                "request never reached the origin"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let child = fx.eg.child.take().unwrap();
        signal(child.id(), "TERM");
        let (st, _, body) = inflight.await.unwrap();
        assert_eq!(st, StatusCode::OK, "{}", String::from_utf8_lossy(&body));
        let mut child = child;
        let exit = wait_timeout(&mut child, Duration::from_secs(20));
        assert!(exit.is_some_and(|s| s.success()), "{exit:?}");
        // no longer accepting
        assert!(tokio::net::TcpStream::connect(addr).await.is_err());
        assert_no_secret_in_files(fx.tmp.path(), &fx.secrets.all());
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_process_spawn_for_other_crates() {
    bounded(async {
        let tmp = tempfile::tempdir().unwrap();
        let origin = origin().await;
        write_config(tmp.path(), "routes:\n  - host: \"bearer.test:*\"\n    auth: {scheme: bearer, token_env: T}\n", "127.0.0.1/32\n");
        let mut args = egress::EgressArgs::new(tmp.path());
        args.common.upstream_ca = Some(origin.ca_path.clone());
        args.common.resolve = vec!["bearer.test=127.0.0.1".parse().unwrap()];
        let eg = egress::spawn(args.clone(), [("T".to_string(), "in-process-secret".to_string())].into()).await.unwrap();
        let (st, _, body) = get(eg.addr, Method::GET, &format!("https://bearer.test:{}/reflect", origin.https_addr.port()), &[]).await;
        assert_eq!(st, StatusCode::OK);
        assert!(!String::from_utf8_lossy(&body).contains("in-process-secret"));
        assert_eq!(origin.requests()[0].header("authorization"), Some("Bearer in-process-secret"));
        // reload in-process
        write_config(tmp.path(), "routes:\n  - host: \"bearer.test:*\"\n    auth: {scheme: bearer, token_env: MISSING}\n", "127.0.0.1/32\n");
        let e = eg.reload().await.unwrap_err().to_string();
        assert!(e.contains("MISSING"));
        eg.shutdown().await;
        // missing env at start
        let e = egress::spawn(args, Default::default()).await.unwrap_err().to_string();
        assert!(e.contains("MISSING"), "{e}");
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthcheck_subcommand_and_help() {
    bounded(async {
        let fx = Fixture::new().await;
        let url = format!("http://{}/healthz", fx.eg.admin);
        let st = tokio::task::spawn_blocking(move || {
            std::process::Command::new(EGRESS)
                .args(["healthcheck", "--url", &url])
                .status()
                .unwrap()
        })
        .await
        .unwrap();
        assert!(st.success());
        // bound but never listened on: refused, and no parallel test can take the port
        let closed = tokio::net::TcpSocket::new_v4().unwrap();
        closed.bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let url = format!("http://{}/healthz", closed.local_addr().unwrap());
        let st = std::process::Command::new(EGRESS)
            .args(["healthcheck", "--url", &url])
            .stderr(std::process::Stdio::null())
            .status()
            .unwrap();
        drop(closed);
        assert_eq!(st.code(), Some(1));
        let help = std::process::Command::new(EGRESS)
            .arg("--help")
            .output()
            .unwrap();
        let help = String::from_utf8(help.stdout).unwrap();
        for flag in [
            "--listen",
            "--config-dir",
            "--upstream-ca",
            "--resolve",
            "--admin-listen",
            "--audit-log",
            "--status-file",
            "healthcheck",
        ] {
            assert!(help.contains(flag), "--help lacks {flag}");
        }
        let bad = std::process::Command::new(EGRESS)
            .args(["--listen", "nope"])
            .output()
            .unwrap();
        assert_eq!(bad.status.code(), Some(2));
        fx.finish();
    })
    .await
}
