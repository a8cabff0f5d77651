//! egress alone: the real binary, absolute-form requests over real TCP, the
//! echo origin over real TLS.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::*;
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};

fn origin_saw<'a>(
    reqs: &'a [echo_origin::RecordedRequest],
    host: &str,
) -> &'a echo_origin::RecordedRequest {
    reqs.iter()
        .rev()
        .find(|r| {
            r.sni.as_deref() == Some(host)
                || r.authority.as_deref().is_some_and(|a| a.starts_with(host))
        })
        .unwrap_or_else(|| panic!("origin saw no request for {host}: {reqs:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_scheme_injects_exactly_the_configured_credential() {
    bounded(async {
        let fx = Fixture::new().await;
        let s = fx.secrets.clone();
        let agent = [
            ("authorization", "Bearer agent-own-token"),
            ("proxy-authorization", "Basic YWdlbnQ6cHc="),
            ("x-api-key", "agent-own-key"),
            ("cookie", "session=agent"),
            ("range", "bytes=3-"),
        ];
        // bearer
        let (st, _, body) = fx.get("bearer.test", "/echo", &agent).await;
        assert_eq!(st, StatusCode::OK);
        assert!(String::from_utf8_lossy(&body).contains(REDACTED));
        let reqs = fx.origin.requests();
        let r = origin_saw(&reqs, "bearer.test");
        assert_eq!(
            r.header_all("authorization"),
            vec![format!("Bearer {}", s.bearer)]
        );
        assert!(r.header("proxy-authorization").is_none());
        assert_eq!(r.header("x-api-key"), Some("agent-own-key"));
        assert_eq!(r.header("cookie"), Some("session=agent"));
        // partial responses could cut a secret: no Range on injecting routes
        assert!(r.header("range").is_none());
        assert!(r.tls);
        // basic
        fx.get("basic.test", "/echo", &agent).await;
        let reqs = fx.origin.requests();
        let r = origin_saw(&reqs, "basic.test");
        use base64::Engine;
        let want =
            base64::engine::general_purpose::STANDARD.encode(format!("x-access-token:{}", s.basic));
        assert_eq!(r.header_all("authorization"), vec![format!("Basic {want}")]);
        // header with prefix: Authorization stripped too
        fx.get("header.test", "/echo", &agent).await;
        let reqs = fx.origin.requests();
        let r = origin_saw(&reqs, "header.test");
        assert_eq!(r.header_all("x-api-key"), vec![format!("key {}", s.header)]);
        assert!(r.header("authorization").is_none());
        // query: the agent's parameter replaced (every spelling), not duplicated
        fx.get(
            "query.test",
            "/echo?a=1&api_key=agent&api%5Fkey=again&b=2",
            &agent,
        )
        .await;
        let reqs = fx.origin.requests();
        let r = origin_saw(&reqs, "query.test");
        let q = r.query.clone().unwrap();
        assert_eq!(q.matches("api_key=").count(), 1, "{q}");
        assert!(q.starts_with("a=1&b=2&api_key="), "{q}");
        let v = q.split("api_key=").nth(1).unwrap();
        let decoded = percent_encoding::percent_decode_str(v)
            .decode_utf8()
            .unwrap();
        assert_eq!(decoded, s.query);
        assert!(r.header("authorization").is_none());
        // strip_cookies
        fx.get("cookie.test", "/echo", &agent).await;
        let reqs = fx.origin.requests();
        let r = origin_saw(&reqs, "cookie.test");
        assert!(r.header("cookie").is_none());
        assert_eq!(
            r.header_all("authorization"),
            vec![format!("Bearer {}", s.cookie)]
        );
        // a route without auth forwards the agent's Authorization unchanged
        fx.get("open.test", "/echo", &agent).await;
        let reqs = fx.origin.requests();
        let r = origin_saw(&reqs, "open.test");
        assert_eq!(
            r.header_all("authorization"),
            vec!["Bearer agent-own-token"]
        );
        assert!(r.header("proxy-authorization").is_none());
        // Range is removed on every route once any route injects (a stored secret
        // must not come back in slices: red_team.rs)
        assert!(r.header("range").is_none());

        // audit: route index + scheme, query value redacted
        let line = fx
            .eg
            .wait_audit(|v| v["host"] == "query.test" && v["decision"] == "allow")
            .await;
        assert_eq!(line["route"], "3");
        assert_eq!(line["auth_scheme"], "query");
        assert_eq!(line["path"], "/echo?a=1&b=2&api_key=[REDACTED]");
        let line = fx.eg.wait_audit(|v| v["host"] == "bearer.test").await;
        assert_eq!(line["route"], "0");
        assert_eq!(line["auth_scheme"], "bearer");
        assert_eq!(line["status"], 200);
        let m = fx.eg.metrics().await;
        assert!(
            m.contains("egress_injections_total{route=\"0\",scheme=\"bearer\"} 1"),
            "{m}"
        );
        assert!(
            m.contains("egress_requests_total{route=\"allowlist\",outcome=\"forwarded\"} 1"),
            "{m}"
        );
        assert!(m.contains("egress_scrubs_total{route=\"0\"}"), "{m}");
        fx.finish();
    })
    .await
}

struct Case {
    host: &'static str,
    query: &'static str,
    secret: fn(&Secrets) -> String,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reflected_credential_is_scrubbed_in_every_encoding() {
    bounded(async {
        let fx = Fixture::new().await;
        let cases = [
            Case {
                host: "bearer.test",
                query: "",
                secret: |s| s.bearer.clone(),
            },
            Case {
                host: "basic.test",
                query: "",
                secret: |s| s.basic.clone(),
            },
            Case {
                host: "header.test",
                query: "from_header=X-Api-Key",
                secret: |s| s.header.clone(),
            },
            Case {
                host: "query.test",
                query: "from_query=api_key&api_key=agent",
                secret: |s| s.query.clone(),
            },
        ];
        let variants = [
            "",
            "split=1",
            "gzip=1",
            "encoding=br",
            "encoding=deflate",
            "encoding=zstd",
            "split=1&gzip=1",
            "split=1&encoding=zstd",
        ];
        for c in &cases {
            for v in variants {
                let mut q = c.query.to_string();
                if !v.is_empty() {
                    if !q.is_empty() {
                        q.push('&');
                    }
                    q.push_str(v);
                }
                let path = if q.is_empty() {
                    "/reflect".to_string()
                } else {
                    format!("/reflect?{q}")
                };
                let (st, h, body) = fx
                    .get(
                        c.host,
                        &path,
                        &[("accept-encoding", "gzip, br, zstd, deflate")],
                    )
                    .await;
                let what = format!("{} {path}", c.host);
                assert_eq!(st, StatusCode::OK, "{what}");
                let text = String::from_utf8_lossy(&body).to_string();
                // the origin really echoed the credential: one redaction per line at least
                assert!(text.matches(REDACTED).count() >= 6, "{what}: {text}");
                assert!(h.get("content-encoding").is_none(), "{what}");
                assert!(
                    h.get("x-reflect").is_none() && h.get("x-reflect-token").is_none(),
                    "{what}"
                );
                assert_eq!(h["x-reflect-count"], "1");
                assert_clean(&what, &body, &fx.secrets.all());
                assert_clean(&what, &headers_text(&h), &fx.secrets.all());
                // and what the origin sent, line by line, is gone
                let secret = (c.secret)(&fx.secrets);
                assert!(!text.contains(&secret), "{what}");
            }
        }
        let line = fx
            .eg
            .wait_audit(|v| v["host"] == "basic.test" && v["scrubbed"].as_u64().unwrap_or(0) > 0)
            .await;
        assert_eq!(line["route"], "1");
        fx.finish();
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn undecodable_encoding_is_refused_when_secrets_exist() {
    bounded(async {
        let fx = Fixture::new().await;
        // on every route (an allowlist host could serve a secret stored upstream)
        for host in ["bearer.test", "open.test"] {
            let (st, h, body) = fx.get(host, "/reflect?encoding=x-unknown", &[]).await;
            assert_eq!(st, StatusCode::BAD_GATEWAY, "{host}");
            assert_eq!(h["x-bottle-blocked"], "egress");
            let text = String::from_utf8(body).unwrap();
            assert!(text.starts_with("blocked by egress: "), "{text}");
            // an unregistered name is not echoed (it is the origin's text: red_team.rs)
            assert!(text.contains("an unknown coding"), "{text}");
        }
        // an egress with no credential at all passes it through untouched
        let tmp = tempfile::tempdir().unwrap();
        write_config(&tmp.path().join("live-config"), "", ALLOWLIST);
        let eg = start_egress(tmp.path(), &[], Some(&fx.origin.ca_path), &[]).unwrap();
        let (st, h, _) = get(
            eg.addr,
            Method::GET,
            &fx.url("open.test", "/reflect?encoding=x-unknown"),
            &[],
        )
        .await;
        assert_eq!(st, StatusCode::OK);
        assert_eq!(h["content-encoding"], "x-unknown");
        drop(eg);
        fx.finish();
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_secret_coming_back_through_another_host_is_scrubbed() {
    bounded(async {
        let fx = Fixture::new().await;
        // as if the secret had been stored upstream through bearer.test and is now
        // fetched from an allowlist host without injection
        let stored = format!("Bearer {}", fx.secrets.bearer);
        for q in ["", "?split=1", "?gzip=1", "?encoding=br"] {
            let (st, h, body) = fx
                .get(
                    "open.test",
                    &format!("/reflect{q}"),
                    &[("authorization", stored.as_str())],
                )
                .await;
            assert_eq!(st, StatusCode::OK);
            assert!(
                String::from_utf8_lossy(&body).matches(REDACTED).count() >= 6,
                "{q}"
            );
            assert_clean(q, &body, &fx.secrets.all());
            assert_clean(q, &headers_text(&h), &fx.secrets.all());
        }
        // the request itself was forwarded unchanged (no auth on that route)
        let reqs = fx.origin.requests();
        assert_eq!(reqs[0].header("authorization"), Some(stored.as_str()));
        // a fragment cut at the start of a body (what a Range request returns) is
        // redacted too
        let secret = &fx.secrets.header;
        let frag = &secret[5..];
        let q = percent_encoding::utf8_percent_encode(frag, percent_encoding::NON_ALPHANUMERIC);
        let (st, h, body) = fx
            .get("open.test", &format!("/reflect?from_query=x&x={q}"), &[])
            .await;
        assert_eq!(st, StatusCode::OK);
        let text = String::from_utf8(body).unwrap();
        // (the origin repeats it mid-body too: a fragment there is not recognisable)
        assert!(text.starts_with(&format!("{REDACTED}\n")), "{text}");
        // a header value starting with the end of the secret is a truncated echo:
        // dropped too (red_team.rs)
        assert!(
            h.get("x-reflect").is_none(),
            "a fragment at the start of a header value is dropped"
        );
        fx.finish();
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn path_and_method_rules() {
    bounded(async {
        let fx = Fixture::new().await;
        let (st, _, _) = fx.get("paths.test", "/allowed/a/b", &[]).await;
        assert_eq!(st, StatusCode::OK);
        let (st, _, _) = get(
            fx.eg.addr,
            Method::HEAD,
            &fx.url("paths.test", "/allowed/x"),
            &[],
        )
        .await;
        assert_eq!(st, StatusCode::OK);
        for (m, p, want) in [
            (
                Method::GET,
                "/other",
                "path not allowed: /other on paths.test:",
            ),
            (
                Method::GET,
                "/allowed/../secret",
                "ambiguous path /allowed/../secret on paths.test:",
            ),
            (Method::GET, "/allowed%2f..%2fsecret", "ambiguous path"),
            (
                Method::POST,
                "/allowed/x",
                "method not allowed: POST /allowed/x on paths.test:",
            ),
            (Method::DELETE, "/reflect", "method not allowed"),
        ] {
            let before = fx.origin.requests().len();
            let (st, h, body) = get(fx.eg.addr, m.clone(), &fx.url("paths.test", p), &[]).await;
            let text = String::from_utf8(body).unwrap();
            assert_eq!(st, StatusCode::FORBIDDEN, "{m} {p}: {text}");
            assert_eq!(h["x-bottle-blocked"], "egress");
            assert!(
                text.starts_with(&format!("blocked by egress: {want}")),
                "{text}"
            );
            assert_eq!(
                fx.origin.requests().len(),
                before,
                "origin reached for {m} {p}"
            );
        }
        let line = fx
            .eg
            .wait_audit(|v| v["decision"] == "deny" && v["method"] == "POST")
            .await;
        assert!(line["reason"]
            .as_str()
            .unwrap()
            .starts_with("method not allowed"));
        fx.finish();
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unmatched_host_is_refused_by_egress_alone() {
    bounded(async {
        let fx = Fixture::new().await;
        for uri in [
            fx.url("evil.test", "/"),
            fx.http_url("evil.test", "/"),
            fx.url("EVIL.test.", "/x"),
            // the allowlist names open.test on every port, not its subdomains
            fx.url("a.open.test", "/"),
        ] {
            let (st, h, body) = get(fx.eg.addr, Method::GET, &uri, &[]).await;
            let text = String::from_utf8(body).unwrap();
            assert_eq!(st, StatusCode::FORBIDDEN, "{uri}");
            assert_eq!(h["x-bottle-blocked"], "egress");
            assert!(text.contains("host not routed"), "{text}");
        }
        // origin-form (not from pipelock) is refused too
        let (st, _, _) = get(fx.eg.addr, Method::GET, "/echo", &[("host", "open.test")]).await;
        assert_eq!(st, StatusCode::BAD_REQUEST);
        assert!(fx.origin.requests().is_empty());
        // a routed name resolving to a private address not covered by the allowlist
        let tmp = tempfile::tempdir().unwrap();
        write_config(
            &tmp.path().join("live-config"),
            "routes:\n  - host: \"open.test:*\"\n",
            "",
        );
        let eg = start_egress(tmp.path(), &[], Some(&fx.origin.ca_path), &[]).unwrap();
        let (st, _, body) = get(eg.addr, Method::GET, &fx.url("open.test", "/"), &[]).await;
        assert_eq!(st, StatusCode::FORBIDDEN);
        assert!(String::from_utf8(body)
            .unwrap()
            .contains("private address: 127.0.0.1"));
        assert!(fx.origin.requests().is_empty());
        drop(eg);
        fx.finish();
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_git_push_is_refused_on_every_route() {
    bounded(async {
        let fx = Fixture::new().await;
        for (m, host, p) in [
            (
                Method::GET,
                "open.test",
                "/acme/demo.git/info/refs?service=git-receive-pack",
            ),
            (Method::POST, "open.test", "/acme/demo.git/git-receive-pack"),
            (
                Method::POST,
                "bearer.test",
                "/acme/demo.git/git-receive-pack",
            ),
            (
                Method::GET,
                "bearer.test",
                "/acme/demo.git/info/refs?SERVICE=git%2Dreceive%2Dpack",
            ),
        ] {
            let (st, h, body) = get(fx.eg.addr, m, &fx.url(host, p), &[]).await;
            let text = String::from_utf8(body).unwrap();
            assert_eq!(st, StatusCode::FORBIDDEN, "{p}");
            assert_eq!(h["x-bottle-blocked"], "egress");
            assert!(
                text.contains("git push over HTTPS is refused (push through git-gate)"),
                "{text}"
            );
        }
        // fetches are fine
        let (st, _, _) = fx
            .get(
                "open.test",
                "/acme/demo.git/info/refs?service=git-upload-pack",
                &[],
            )
            .await;
        assert_eq!(st, StatusCode::OK);
        assert_eq!(fx.origin.requests().len(), 1);
        fx.finish();
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_only_for_passthrough_routes() {
    bounded(async {
        let fx = Fixture::new().await;
        let port = fx.origin.https_addr.port();
        // passthrough: a TLS session straight to the origin through the tunnel
        let r = send(
            fx.eg.addr,
            Request::connect(format!("pass.test:{port}"))
                .body(Full::new(Bytes::new()))
                .unwrap(),
        )
        .await;
        assert_eq!(r.status(), StatusCode::OK);
        let up = hyper::upgrade::on(r).await.unwrap();
        let tls =
            tokio_rustls::TlsConnector::from(fx.origin.ca.client_config(&[b"http/1.1"]).unwrap());
        let name = rustls::pki_types::ServerName::try_from("pass.test").unwrap();
        let s = tls
            .connect(name, hyper_util::rt::TokioIo::new(up))
            .await
            .unwrap();
        let (mut sender, conn) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(s))
                .await
                .unwrap();
        tokio::spawn(conn);
        let resp = sender
            .send_request(
                Request::get("/echo")
                    .header("host", "pass.test")
                    .header("authorization", "Bearer agent")
                    .body(Full::new(Bytes::new()))
                    .unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        assert!(String::from_utf8_lossy(&body).contains("Bearer agent"));
        drop(sender);
        // CONNECT to anything else is refused before a tunnel is opened
        for target in [
            format!("bearer.test:{port}"),
            format!("open.test:{port}"),
            format!("evil.test:{port}"),
        ] {
            let r = send(
                fx.eg.addr,
                Request::connect(target.as_str())
                    .body(Full::new(Bytes::new()))
                    .unwrap(),
            )
            .await;
            let (st, h, body) = collect(r).await;
            assert_eq!(st, StatusCode::FORBIDDEN, "{target}");
            assert_eq!(h["x-bottle-blocked"], "egress");
            assert!(String::from_utf8(body)
                .unwrap()
                .contains("only for tls_passthrough routes"));
        }
        fx.eg
            .wait_audit(|v| v["event"] == "tunnel" && v["host"] == "pass.test")
            .await;
        fx.finish();
    })
    .await
}

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
async fn redirects_are_passed_back_not_followed() {
    bounded(async {
        let fx = Fixture::new().await;
        let target = fx.url("bearer.test", "/echo");
        let (st, h, _) = fx
            .get(
                "bearer.test",
                &format!("/redirect?to={target}&status=307"),
                &[],
            )
            .await;
        assert_eq!(st.as_u16(), 307);
        assert_eq!(h["location"], target.as_str());
        assert_eq!(fx.origin.requests().len(), 1);
        fx.finish();
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_failures_say_what_failed() {
    bounded(async {
        // a listener that accepts and never speaks TLS
        let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let silent_port = silent.local_addr().unwrap().port();
        let hold = tokio::spawn(async move {
            let mut conns = Vec::new();
            while let Ok((s, _)) = silent.accept().await {
                conns.push(s);
            }
        });
        // a port with nothing listening: bound (so no parallel test can take it) but never
        // listened on, so a connect is refused
        let closed = tokio::net::TcpSocket::new_v4().unwrap();
        closed.bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let closed_port = closed.local_addr().unwrap().port();
        let fx = Fixture::with(
            &routes_yaml(),
            ALLOWLIST,
            &["--handshake-timeout", "1", "--response-timeout", "2"],
        )
        .await;
        let (st, h, body) = get(
            fx.eg.addr,
            Method::GET,
            &format!("https://open.test:{silent_port}/"),
            &[],
        )
        .await;
        let text = String::from_utf8(body).unwrap();
        assert_eq!(st, StatusCode::GATEWAY_TIMEOUT, "{text}");
        assert_eq!(h["x-bottle-blocked"], "egress");
        assert!(
            text.contains("TLS handshake with open.test:") && text.contains("timed out"),
            "{text}"
        );
        let (st, _, body) = get(
            fx.eg.addr,
            Method::GET,
            &format!("https://open.test:{closed_port}/"),
            &[],
        )
        .await;
        let text = String::from_utf8(body).unwrap();
        assert_eq!(st, StatusCode::BAD_GATEWAY, "{text}");
        assert!(text.contains("connecting to open.test:"), "{text}");
        // warm the pool first so the short handshake timeout cannot hit the slow request
        for _ in 0..5 {
            let (st, _, _) = fx.get("open.test", "/echo", &[]).await;
            if st == StatusCode::OK {
                break;
            }
        }
        let (st, _, body) = fx.get("open.test", "/slow?ms=5000", &[]).await;
        let text = String::from_utf8(body).unwrap();
        assert_eq!(st, StatusCode::GATEWAY_TIMEOUT, "{text}");
        assert!(text.contains("no response headers"), "{text}");
        let m = fx.eg.metrics().await;
        assert!(
            m.contains("egress_upstream_errors_total{kind=\"tls_timeout\"}"),
            "{m}"
        );
        hold.abort();
        drop(closed);
        fx.finish();

        // without --upstream-ca the origin's certificate is not trusted
        let tmp = tempfile::tempdir().unwrap();
        let origin = origin().await;
        write_config(&tmp.path().join("live-config"), "", ALLOWLIST);
        let eg = start_egress(tmp.path(), &[], None, &[]).unwrap();
        let (st, _, body) = get(
            eg.addr,
            Method::GET,
            &format!("https://open.test:{}/", origin.https_addr.port()),
            &[],
        )
        .await;
        let text = String::from_utf8(body).unwrap();
        assert_eq!(st, StatusCode::BAD_GATEWAY, "{text}");
        assert!(
            text.contains("TLS handshake with open.test:") && text.contains("certificate"),
            "{text}"
        );
        assert!(origin.requests().is_empty());
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streaming_sse_download_upload_and_h2() {
    bounded(async {
        let fx = Fixture::new().await;
        // SSE through an injecting (scrubbing) route arrives event by event
        let r = send(
            fx.eg.addr,
            Request::get(fx.url("bearer.test", "/sse?n=3&interval_ms=400"))
                .body(Full::new(Bytes::new()))
                .unwrap(),
        )
        .await;
        assert_eq!(r.status(), StatusCode::OK);
        let mut body = r.into_body();
        let first = body.frame().await.unwrap().unwrap().into_data().unwrap();
        let first = String::from_utf8(first.to_vec()).unwrap();
        assert!(
            first.contains("event-0") && !first.contains("event-2"),
            "{first}"
        );
        let rest = body.collect().await.unwrap().to_bytes();
        assert!(String::from_utf8_lossy(&rest).contains("event-2"));
        // the origin saw HTTP/2 (ALPN) from egress
        let reqs = fx.origin.requests();
        assert_eq!(reqs[0].alpn.as_deref(), Some("h2"));
        // a large download through a scrubbing route is intact
        let n = 8 * 1024 * 1024u64;
        let (st, h, body) = fx
            .get("bearer.test", &format!("/download?bytes={n}"), &[])
            .await;
        assert_eq!(st, StatusCode::OK);
        assert!(h.get("content-length").is_none());
        assert_eq!(body.len() as u64, n);
        assert!(body
            .iter()
            .enumerate()
            .all(|(i, b)| *b == echo_origin::download_byte(i as u64)));
        // upload streams through
        let payload = vec![7u8; 3 * 1024 * 1024];
        let r = send(
            fx.eg.addr,
            Request::post(fx.url("open.test", "/upload"))
                .body(Full::new(Bytes::from(payload)))
                .unwrap(),
        )
        .await;
        let (st, _, body) = collect(r).await;
        assert_eq!(st, StatusCode::OK);
        assert!(String::from_utf8(body)
            .unwrap()
            .contains("\"bytes\":3145728"));
        // plain http upstream
        let (st, _, _) = get(
            fx.eg.addr,
            Method::GET,
            &fx.http_url("open.test", "/echo"),
            &[],
        )
        .await;
        assert_eq!(st, StatusCode::OK);
        fx.finish();
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_upgrade_is_forwarded() {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::protocol::Role;
    use tokio_tungstenite::tungstenite::Message;
    bounded(async {
        let fx = Fixture::new().await;
        for uri in [fx.url("open.test", "/ws"), fx.http_url("open.test", "/ws")] {
            let r = send(
                fx.eg.addr,
                Request::get(uri.as_str())
                    .header("connection", "Upgrade")
                    .header("upgrade", "websocket")
                    .header("sec-websocket-version", "13")
                    .header("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==")
                    .body(Full::new(Bytes::new()))
                    .unwrap(),
            )
            .await;
            assert_eq!(r.status(), StatusCode::SWITCHING_PROTOCOLS, "{uri}");
            let up = hyper::upgrade::on(r).await.unwrap();
            let mut ws = tokio_tungstenite::WebSocketStream::from_raw_socket(
                hyper_util::rt::TokioIo::new(up),
                Role::Client,
                None,
            )
            .await;
            ws.send(Message::text("hello through egress"))
                .await
                .unwrap();
            let got = tokio::time::timeout(Duration::from_secs(10), ws.next())
                .await
                .unwrap()
                .unwrap()
                .unwrap();
            assert_eq!(got.into_text().unwrap().as_str(), "hello through egress");
            let _ = ws.close(None).await;
        }
        // on an injecting route the server's frames are scrubbed
        let r = send(
            fx.eg.addr,
            Request::get(fx.url("bearer.test", "/ws"))
                .header("connection", "Upgrade")
                .header("upgrade", "websocket")
                .header("sec-websocket-version", "13")
                .header("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==")
                .header("sec-websocket-extensions", "permessage-deflate")
                .body(Full::new(Bytes::new()))
                .unwrap(),
        )
        .await;
        assert_eq!(r.status(), StatusCode::SWITCHING_PROTOCOLS);
        assert!(r.headers().get("sec-websocket-extensions").is_none());
        let up = hyper::upgrade::on(r).await.unwrap();
        let mut ws = tokio_tungstenite::WebSocketStream::from_raw_socket(
            hyper_util::rt::TokioIo::new(up),
            Role::Client,
            None,
        )
        .await;
        let secret = fx.secrets.bearer.clone();
        let big = format!("x{secret}y").repeat(5000);
        for msg in [format!("echo: {secret}!"), big.clone()] {
            ws.send(Message::text(msg.clone())).await.unwrap();
            let got = tokio::time::timeout(Duration::from_secs(10), ws.next())
                .await
                .unwrap()
                .unwrap()
                .unwrap();
            let got = got.into_text().unwrap().to_string();
            assert!(!got.contains(&secret));
            assert_eq!(got.matches(REDACTED).count(), msg.matches(&secret).count());
        }
        let _ = ws.close(None).await;
        drop(ws);
        // other upgrades on an injecting route are refused
        let (st, _, body) = fx
            .get(
                "bearer.test",
                "/ws",
                &[("connection", "Upgrade"), ("upgrade", "h2c")],
            )
            .await;
        assert_eq!(st, StatusCode::FORBIDDEN);
        assert!(String::from_utf8(body)
            .unwrap()
            .contains("other than WebSocket"));
        fx.eg
            .wait_audit(|v| v["event"] == "upgrade" && v["scrubbed"].as_u64().unwrap_or(0) >= 5001)
            .await;
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn target_comes_from_the_uri_not_the_host_header() {
    bounded(async {
        let fx = Fixture::new().await;
        // a spoofed Host never changes where the request goes or what is injected
        let (st, _, _) = fx
            .get("bearer.test", "/echo", &[("host", "evil.test")])
            .await;
        assert_eq!(st, StatusCode::OK);
        let reqs = fx.origin.requests();
        assert_eq!(reqs.len(), 1);
        assert_eq!(reqs[0].sni.as_deref(), Some("bearer.test"));
        assert!(reqs[0]
            .authority
            .as_deref()
            .unwrap()
            .starts_with("bearer.test"));
        assert!(reqs[0]
            .header_all("host")
            .iter()
            .all(|h| !h.contains("evil")));
        let (st, _, _) = fx.get("evil.test", "/echo", &[("host", "open.test")]).await;
        assert_eq!(st, StatusCode::FORBIDDEN);
        // userinfo in the authority is refused
        let uri = format!(
            "https://user:pw@open.test:{}/echo",
            fx.origin.https_addr.port()
        );
        let (st, _, _) = get(fx.eg.addr, Method::GET, &uri, &[]).await;
        assert_eq!(st, StatusCode::BAD_REQUEST);
        assert_eq!(fx.origin.requests().len(), 1);
        fx.finish();
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pool_is_keyed_per_host_not_per_address() {
    bounded(async {
        let fx = Fixture::new().await;
        for host in ["bearer.test", "bearer.test", "basic.test", "bearer.test"] {
            let (st, _, _) = fx.get(host, "/echo", &[]).await;
            assert_eq!(st, StatusCode::OK);
        }
        let reqs = fx.origin.requests();
        assert_eq!(reqs.len(), 4);
        // same name: one pooled connection reused (same SNI, same credential route)
        assert_eq!(reqs[0].conn_id, reqs[1].conn_id);
        assert_eq!(reqs[0].conn_id, reqs[3].conn_id);
        // another name on the same address:port gets its own connection and SNI
        assert_ne!(reqs[2].conn_id, reqs[0].conn_id);
        assert_eq!(reqs[2].sni.as_deref(), Some("basic.test"));
        assert_eq!(reqs[0].sni.as_deref(), Some("bearer.test"));
        fx.finish();
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_scrubbed_download_stays_in_bounded_memory() {
    bounded(async {
        let fx = Fixture::new().await;
        let n = 96 * 1024 * 1024u64;
        let r = send(
            fx.eg.addr,
            Request::get(fx.url("bearer.test", &format!("/download?bytes={n}")))
                .body(Full::new(Bytes::new()))
                .unwrap(),
        )
        .await;
        assert_eq!(r.status(), StatusCode::OK);
        let mut body = r.into_body();
        let mut got = 0u64;
        while let Some(f) = body.frame().await {
            if let Ok(d) = f.unwrap().into_data() {
                got += d.len() as u64;
            }
        }
        assert_eq!(got, n);
        let status = std::fs::read_to_string(format!("/proc/{}/status", fx.eg.pid())).unwrap();
        let hwm_kb: u64 = status
            .lines()
            .find(|l| l.starts_with("VmHWM:"))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap();
        // the whole body would be 96 MiB; streaming keeps egress far below that
        assert!(hwm_kb < 64 * 1024, "egress peak RSS {hwm_kb} kB");
        fx.finish();
    })
    .await
}
