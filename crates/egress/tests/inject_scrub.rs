//! egress alone, credentials: each scheme injects exactly its credential, and every form of it
//! coming back (any encoding, any host, any size) is scrubbed. The real binary, absolute-form
//! requests over real TCP, the echo origin over real TLS.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

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
