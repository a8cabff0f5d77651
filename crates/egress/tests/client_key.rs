//! `--client-key-env`: only the bottle's own pipelock (which holds the per-bottle key) may use
//! egress. Anything else that reaches the port (the host, a container on an upstream network)
//! gets a 407 and nothing: no credential injected, no request or tunnel to the origin.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use bytes::Bytes;
use common::*;
use http::{Method, Request, StatusCode};
use http_body_util::Full;

const KEY_VAR: &str = "BOTTLE_EGRESS_KEY";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_without_the_key_get_407_and_nothing_reaches_the_origin() {
    bounded(async {
        let (k, key) = Fixture::with_client_key(KEY_VAR).await;
        let port = k.origin.https_addr.port();
        let url = format!("https://bearer.test:{port}/echo");
        let wrong_len = format!("Bottle {}x", key);
        let wrong_byte = format!("Bottle {}", key.replacen("pipelock", "pipelocK", 1));
        let attempts: Vec<Vec<(&str, &str)>> = vec![
            vec![],
            vec![("proxy-authorization", "Basic YWdlbnQ6cHc=")],
            vec![("proxy-authorization", wrong_len.as_str())],
            vec![("proxy-authorization", wrong_byte.as_str())],
            vec![("proxy-authorization", key.as_str())],
        ];
        for h in &attempts {
            for m in [Method::GET, Method::POST] {
                let (st, headers, body) = get(k.eg.addr, m.clone(), &url, h).await;
                assert_eq!(st, StatusCode::PROXY_AUTHENTICATION_REQUIRED, "{m} {h:?}");
                assert_eq!(headers["x-bottle-blocked"], "egress");
                assert!(headers.contains_key("proxy-authenticate"));
                let text = String::from_utf8(body).unwrap();
                assert!(
                    text.starts_with("blocked by egress: only this bottle's pipelock"),
                    "{text}"
                );
                assert_eq!(text.lines().count(), 1, "{text}");
            }
        }
        // CONNECT to a tls_passthrough route: no tunnel either
        for h in &attempts {
            let mut b = Request::connect(format!("pass.test:{port}"));
            for (n, v) in h {
                b = b.header(*n, *v);
            }
            let r = send(k.eg.addr, b.body(Full::new(Bytes::new())).unwrap()).await;
            assert_eq!(
                r.status(),
                StatusCode::PROXY_AUTHENTICATION_REQUIRED,
                "{h:?}"
            );
        }
        assert!(
            k.origin.requests().is_empty(),
            "the origin was reached: {:?}",
            k.origin.requests()
        );
        assert!(
            !k.eg.audit_lines().iter().any(|v| v["event"] == "tunnel"),
            "a tunnel was opened"
        );
        let refused =
            k.eg.wait_audit(|v| v["status"] == 407 && v["method"] == "CONNECT")
                .await;
        assert_eq!(refused["component"], "egress");

        // with the key: served, credential injected, the key itself never forwarded
        let good = format!("Bottle {}", key);
        let (st, _, _) = get(
            k.eg.addr,
            Method::GET,
            &url,
            &[("proxy-authorization", good.as_str())],
        )
        .await;
        assert_eq!(st, StatusCode::OK);
        let reqs = k.origin.requests();
        assert_eq!(reqs.len(), 1, "{reqs:?}");
        assert_eq!(
            reqs[0].header_all("authorization"),
            vec![format!("Bearer {}", k.secrets.bearer)]
        );
        assert!(reqs[0].header("proxy-authorization").is_none());
        let r = send(
            k.eg.addr,
            Request::connect(format!("pass.test:{port}"))
                .header("proxy-authorization", good.as_str())
                .body(Full::new(Bytes::new()))
                .unwrap(),
        )
        .await;
        assert_eq!(r.status(), StatusCode::OK);

        // the key is a secret too: in no file egress wrote (audit, status, log)
        let mut secrets = k.secrets.all();
        secrets.push(key.clone());
        assert_no_secret_in_files(k.eg.dir.as_path(), &secrets);
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_or_weak_key_stops_egress_at_startup() {
    let tmp = tempfile::tempdir().unwrap();
    write_config(&tmp.path().join("live-config"), &routes_yaml(), ALLOWLIST);
    let env = Secrets::new().env();
    let (err, st) = start_egress(tmp.path(), &env, None, &["--client-key-env", KEY_VAR])
        .err()
        .expect("egress started without its key");
    assert!(!st.unwrap().success());
    assert!(err.contains(KEY_VAR), "{err}");
    let weak = "weak-key-value".to_string();
    let mut env = env.clone();
    env.push((KEY_VAR.into(), weak.clone()));
    let (err, _) = start_egress(tmp.path(), &env, None, &["--client-key-env", KEY_VAR])
        .err()
        .expect("egress started with a 14-byte key");
    assert!(err.contains("at least 32"), "{err}");
    assert!(!err.contains(&weak), "the key was echoed: {err}");
}
