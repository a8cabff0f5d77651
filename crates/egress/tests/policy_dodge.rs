//! Hostile attempts to dodge a route's rules, against the real egress binary and
//! the echo origin: a credential over cleartext http://, method overrides, and
//! path spellings an origin reads differently from the glob. Every refusal is
//! proved by the origin's request log (nothing arrived) and the canary grep.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::net::SocketAddr;
use std::process::Command;
use std::time::Duration;

use common::*;
use http::{Method, StatusCode};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const DODGE_ROUTES: &str = r#"  - host: "dodge.test:*"
    paths: ["/repos/acme/**"]
    methods: [GET]
    auth: {scheme: bearer, token_env: TOK_BEARER}
  - host: "plain.test:*"
    auth: {scheme: bearer, token_env: TOK_BEARER}
    allow_cleartext: true
  - host: "late.test:*"
    methods: [GET, POST]
    auth: {scheme: bearer, token_env: TOK_BEARER}
"#;

async fn fixture() -> Fixture {
    Fixture::with(&format!("{}{DODGE_ROUTES}", routes_yaml()), ALLOWLIST, &[]).await
}

/// curl with egress as its HTTP proxy (absolute-form for http:// URLs).
fn curl(proxy: SocketAddr, url: &str, extra: &[&str]) -> (u16, String) {
    let out = Command::new("curl")
        .args(["-sS", "-i", "--max-time", "30", "--path-as-is", "-x"])
        .arg(format!("http://{proxy}"))
        .args(extra)
        .arg(url)
        .output()
        .expect("curl");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let code = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no status from curl: {text} {:?}", out.stderr));
    (code, text)
}

/// One request written byte for byte (no client normalises the target); the whole
/// response as text.
async fn raw(addr: SocketAddr, method: &str, target: &str, headers: &[(&str, &str)]) -> String {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut req = format!("{method} {target} HTTP/1.1\r\nhost: dodge.test\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("connection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(30), s.read_to_end(&mut out))
        .await
        .expect("egress did not answer")
        .unwrap();
    String::from_utf8_lossy(&out).into_owned()
}

fn status_of(resp: &str) -> u16 {
    resp.split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credential_is_never_sent_over_cleartext() {
    bounded(async {
        let fx = fixture().await;
        let port = fx.origin.http_addr.port();
        for host in [
            "bearer.test",
            "basic.test",
            "header.test",
            "query.test",
            "cookie.test",
        ] {
            let (code, text) = curl(
                fx.eg.addr,
                &fx.http_url(host, "/echo?x=1"),
                &["-H", "Authorization: Bearer agent-own"],
            );
            assert_eq!(code, 403, "{host}: {text}");
            assert!(
                text.to_ascii_lowercase().contains("x-bottle-blocked: egress"),
                "{text}"
            );
            let want = format!(
                "injects a credential; refusing to send it over cleartext http://{host}:{port} (use https://{host}:{port}/...)"
            );
            assert!(text.contains(&want), "{host}: {text}");
            assert_clean(host, text.as_bytes(), &fx.secrets.all());
        }
        // hyper as the client: same refusal
        let (st, _, body) = get(
            fx.eg.addr,
            Method::POST,
            &fx.http_url("bearer.test", "/upload"),
            &[],
        )
        .await;
        assert_eq!(st, StatusCode::FORBIDDEN);
        assert_clean("body", &body, &fx.secrets.all());
        // nothing at all reached the origin: no request, so no token on the wire
        assert!(
            fx.origin.requests().is_empty(),
            "{:?}",
            fx.origin.requests()
        );
        let line = fx
            .eg
            .wait_audit(|v| v["host"] == "query.test" && v["decision"] == "deny")
            .await;
        assert!(line["reason"]
            .as_str()
            .unwrap()
            .contains("over cleartext"));

        // the documented opt-in for a plain test origin, and https, still inject
        let (code, _) = curl(fx.eg.addr, &fx.http_url("plain.test", "/echo"), &[]);
        assert_eq!(code, 200);
        let reqs = fx.origin.requests();
        assert_eq!(reqs.len(), 1);
        assert!(!reqs[0].tls);
        assert_eq!(
            reqs[0].header_all("authorization"),
            vec![format!("Bearer {}", fx.secrets.bearer)]
        );
        let (st, _, _) = fx.get("bearer.test", "/echo", &[]).await;
        assert_eq!(st, StatusCode::OK);
        assert_eq!(fx.origin.requests().len(), 2);
        // a route without auth is untouched on http://
        let (code, _) = curl(fx.eg.addr, &fx.http_url("open.test", "/echo"), &[]);
        assert_eq!(code, 200);
        fx.finish();
    })
    .await
}

/// Path and query, the agent's headers, what the refusal must say.
type Case = (
    &'static str,
    &'static [(&'static str, &'static str)],
    &'static str,
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn method_override_cannot_dodge_method_rules() {
    bounded(async {
        let fx = fixture().await;
        let cases: &[Case] = &[
            (
                "/repos/acme/x",
                &[("X-HTTP-Method-Override", "DELETE")],
                "method override not allowed: x-http-method-override names DELETE on GET /repos/acme/x on dodge.test:",
            ),
            ("/repos/acme/x", &[("x-http-method", "put")], "names PUT"),
            ("/repos/acme/x", &[("X-Method-Override", "Delete")], "names DELETE"),
            ("/repos/acme/x?_method=DELETE", &[], "query parameter _method names DELETE"),
            ("/repos/acme/x?a=1&%5Fmethod=patch", &[], "names PATCH"),
            ("/repos/acme/x?_METHOD=DELETE", &[], "names DELETE"),
            (
                "/repos/acme/x",
                &[("X-HTTP-Method-Override", "GET, DELETE")],
                "malformed method override: 2 method overrides",
            ),
            (
                "/repos/acme/x?_method=GET",
                &[("X-HTTP-Method-Override", "GET")],
                "malformed method override: 2 method overrides",
            ),
            ("/repos/acme/x", &[("X-HTTP-Method-Override", "")], "is not an HTTP method"),
        ];
        for (path, headers, want) in cases {
            let (st, h, body) = fx.get("dodge.test", path, headers).await;
            let text = String::from_utf8_lossy(&body);
            assert_eq!(st, StatusCode::FORBIDDEN, "{path} {headers:?}: {text}");
            assert_eq!(h["x-bottle-blocked"], "egress");
            assert!(
                text.starts_with("blocked by egress: ") && text.contains(want),
                "{path} {headers:?}: {text}"
            );
        }
        assert!(
            fx.origin.requests().is_empty(),
            "{:?}",
            fx.origin.requests()
        );
        // the real method is judged too: POST disguised as GET
        let (st, _, body) = get(
            fx.eg.addr,
            Method::POST,
            &fx.url("dodge.test", "/repos/acme/x"),
            &[("X-HTTP-Method-Override", "GET")],
        )
        .await;
        assert_eq!(st, StatusCode::FORBIDDEN);
        assert!(String::from_utf8_lossy(&body).contains("method not allowed: POST"));
        assert!(fx.origin.requests().is_empty());
        // an override naming an allowed method passes (not rewritten, not stripped)
        let (st, _, _) = fx
            .get(
                "dodge.test",
                "/repos/acme/x",
                &[("X-HTTP-Method-Override", "get")],
            )
            .await;
        assert_eq!(st, StatusCode::OK);
        let reqs = fx.origin.requests();
        assert_eq!(reqs.len(), 1);
        assert_eq!(reqs[0].header("x-http-method-override"), Some("get"));
        fx.finish();
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn path_spellings_cannot_dodge_path_rules() {
    bounded(async {
        let fx = fixture().await;
        let base = format!("https://dodge.test:{}", fx.origin.https_addr.port());
        let mut got = Vec::new();
        for path in [
            "/repos/acme/../other/x",
            "/repos/acme/./../../admin",
            "/repos/acme/%2e%2e/other/x",
            "/repos/acme/%2E%2E/%2E%2E/admin",
            "/repos/acme/%2E./other/x",
            "/repos/acme/.%2e/other/x",
            "/repos/acme//..//..//admin",
            "/repos/acme/..;/other/x",
            "/repos/acme/..;/..;/admin",
            "/repos/acme;a=b/../../admin",
            "/repos/acme/x;jsessionid=1/../../../admin",
            "/repos/acme/..%3b/..%3B/admin",
            "/repos/acme/..%2f..%2fadmin",
            "/repos/acme%2F..%2F..%2Fadmin",
            "/repos/acme/..%5c..%5cadmin",
            "/repos/acme/..\\..\\admin",
            "/repos/acme/x%00/../../admin",
            "/repos/acme/%252e%252e/%252e%252e/admin",
            "/repos/acme/%c0%ae%c0%ae/%c0%ae%c0%ae/admin",
            "/repos/acme/%zz/../../admin",
        ] {
            let resp = raw(fx.eg.addr, "GET", &format!("{base}{path}"), &[]).await;
            got.push((path, resp));
        }
        // first what matters most: nothing reached the origin
        let reqs = fx.origin.requests();
        assert!(reqs.is_empty(), "the origin was reached: {reqs:?}");
        for (path, resp) in &got {
            assert_eq!(status_of(resp), 403, "{path}: {resp}");
            assert!(
                resp.contains("blocked by egress: ambiguous path ")
                    && resp.contains("refused on a route with path rules"),
                "{path}: {resp}"
            );
            assert_clean(path, resp.as_bytes(), &fx.secrets.all());
        }
        // `//` runs are merged before the glob, never around it
        let resp = raw(fx.eg.addr, "GET", &format!("{base}//repos//other/x"), &[]).await;
        assert_eq!(status_of(&resp), 403, "{resp}");
        assert!(
            resp.contains("blocked by egress: path not allowed"),
            "{resp}"
        );
        let reqs = fx.origin.requests();
        assert!(reqs.is_empty(), "the origin was reached: {reqs:?}");

        // legit paths pass, and the origin gets exactly the path that was judged
        let resp = raw(fx.eg.addr, "GET", &format!("{base}/repos/acme/x?y=1"), &[]).await;
        assert_eq!(status_of(&resp), 200, "{resp}");
        let resp = raw(
            fx.eg.addr,
            "GET",
            &format!("{base}/repos/%61cme//x%20y/"),
            &[],
        )
        .await;
        assert_eq!(status_of(&resp), 200, "{resp}");
        let reqs = fx.origin.requests();
        let paths: Vec<&str> = reqs.iter().map(|r| r.path.as_str()).collect();
        assert_eq!(paths, vec!["/repos/acme/x", "/repos/acme/x%20y/"]);
        assert_eq!(reqs[0].query.as_deref(), Some("y=1"));
        assert_eq!(
            reqs[1].header_all("authorization"),
            vec![format!("Bearer {}", fx.secrets.bearer)]
        );
        let line = fx
            .eg
            .wait_audit(|v| v["path"] == "/repos/acme/x%20y/" && v["decision"] == "allow")
            .await;
        assert_eq!(line["route"], "7");
        // a host without path rules is forwarded untouched (nothing to dodge)
        let open = format!("https://open.test:{}", fx.origin.https_addr.port());
        let resp = raw(fx.eg.addr, "GET", &format!("{open}/a/..;/b%2Fc"), &[]).await;
        assert_eq!(status_of(&resp), 200, "{resp}");
        assert_eq!(fx.origin.requests().last().unwrap().path, "/a/..;/b%2Fc");
        fx.finish();
    })
    .await
}

/// POST `body` to `https://late.test/echo` through egress.
async fn post(fx: &Fixture, content_type: Option<&str>, body: Vec<u8>) -> (StatusCode, String) {
    let mut b = http::Request::post(fx.url("late.test", "/echo"));
    if let Some(ct) = content_type {
        b = b.header("content-type", ct);
    }
    let r = send(
        fx.eg.addr,
        b.body(http_body_util::Full::new(bytes::Bytes::from(body)))
            .unwrap(),
    )
    .await;
    let (st, _, body) = collect(r).await;
    (st, String::from_utf8_lossy(&body).into_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn method_override_in_a_post_body_is_refused() {
    bounded(async {
        let fx = fixture().await;
        let multipart = "--XyZ\r\nContent-Disposition: form-data; name=\"_method\"\r\n\r\nDELETE\r\n--XyZ--\r\n";
        let cases: &[(Option<&str>, &str)] = &[
            (Some("application/x-www-form-urlencoded"), "a=1&_method=DELETE"),
            (Some("application/x-www-form-urlencoded"), "a=1&%5Fmethod=DELETE"),
            (Some("application/x-www-form-urlencoded"), "a=1&_%6Dethod=DELETE"),
            (None, "_method=DELETE"),
            (Some("application/json"), "{\"_method\": \"DELETE\"}"),
            (Some("application/json"), "{\"\\u005fmethod\": \"DELETE\"}"),
            (Some("multipart/form-data; boundary=XyZ"), multipart),
        ];
        for (ct, body) in cases {
            let (st, text) = post(&fx, *ct, body.as_bytes().to_vec()).await;
            assert_eq!(st, StatusCode::FORBIDDEN, "{ct:?} {body}: {text}");
            assert!(
                text.starts_with("blocked by egress: method override in the request body"),
                "{text}"
            );
        }
        // too large to check: refused, not streamed unchecked
        let mut big = b"a=".to_vec();
        big.resize(egress::policy::MAX_CHECKED_BODY + 10, b'x');
        big.extend_from_slice(b"&_method=DELETE");
        let (st, text) = post(&fx, Some("application/x-www-form-urlencoded"), big).await;
        assert_eq!(st, StatusCode::PAYLOAD_TOO_LARGE, "{text}");
        let reqs = fx.origin.requests();
        assert!(reqs.is_empty(), "the origin was reached: {reqs:?}");

        // legit bodies pass whole: a field that merely ends in _method, a binary upload
        let body = "a=1&payment_method=card";
        let (st, _) = post(&fx, Some("application/x-www-form-urlencoded"), body.into()).await;
        assert_eq!(st, StatusCode::OK);
        let (st, _) = post(&fx, Some("application/octet-stream"), b"_method=DELETE".to_vec()).await;
        assert_eq!(st, StatusCode::OK);
        let reqs = fx.origin.requests();
        assert_eq!(reqs.len(), 2);
        assert_eq!(reqs[0].body_len, body.len() as u64);
        assert_eq!(reqs[0].method, "POST");
        fx.finish();
    })
    .await
}
