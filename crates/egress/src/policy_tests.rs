#![allow(clippy::unwrap_used, clippy::expect_used)]
use super::*;
use crate::config::EnvSource;
use bottle_core::parse_host;
use http::StatusCode;

fn load(routes: &str, allow: &str) -> EgressConfig {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("routes.yaml"), routes).unwrap();
    std::fs::write(dir.path().join("allowlist"), allow).unwrap();
    let env = EnvSource::from_map([("T".to_string(), "tok-123456".to_string())].into());
    EgressConfig::load(dir.path(), &env).unwrap()
}

/// `decide` for an https request without override headers.
fn d(cfg: &EgressConfig, host: &str, m: Method, p: &str) -> Result<Decision, Refusal> {
    full(cfg, true, host, 443, m, p, &[])
}

fn full(
    cfg: &EgressConfig,
    https: bool,
    host: &str,
    port: u16,
    m: Method,
    pq: &str,
    headers: &[(&str, &str)],
) -> Result<Decision, Refusal> {
    let host = parse_host(host).unwrap();
    let mut h = HeaderMap::new();
    for (k, v) in headers {
        h.append(
            http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
            v.parse().unwrap(),
        );
    }
    let (path, query) = match pq.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (pq, None),
    };
    decide(
        cfg,
        &Target {
            https,
            host: &host,
            port,
            method: &m,
            path,
            query,
            headers: &h,
        },
    )
}

fn route(i: usize) -> Decision {
    Decision {
        matched: Matched::Route(i),
        path: None,
        check_body: false,
    }
}

/// A POST matched on a route with `methods:`: its body is checked for `_method`.
fn post_route(i: usize) -> Decision {
    Decision {
        check_body: true,
        ..route(i)
    }
}

#[test]
fn decision_order_and_reasons() {
    let cfg = load(
        "routes:\n  - host: api.example\n    paths: [\"/repos/acme/**\"]\n    methods: [GET]\n  - host: api.example\n    paths: [\"/repos/acme/**\"]\n    methods: [POST]\n    auth: {scheme: bearer, token_env: T}\n  - host: \"*.wild.example\"\n",
        "open.example\napi.example\n",
    );
    assert_eq!(
        d(&cfg, "api.example", Method::GET, "/repos/acme/x").unwrap(),
        route(0)
    );
    assert_eq!(
        d(&cfg, "API.example.", Method::POST, "/repos/acme/x").unwrap(),
        post_route(1)
    );
    let e = d(&cfg, "api.example", Method::DELETE, "/repos/acme/x").unwrap_err();
    assert!(e.reason.starts_with("method not allowed"), "{}", e.reason);
    // a host named by a route is not widened by the allowlist
    let e = d(&cfg, "api.example", Method::GET, "/other").unwrap_err();
    assert!(e.reason.starts_with("path not allowed"), "{}", e.reason);
    assert_eq!(
        d(&cfg, "open.example", Method::PUT, "/x").unwrap(),
        Decision {
            matched: Matched::Allowlist,
            path: None,
            check_body: false
        }
    );
    assert_eq!(
        d(&cfg, "a.b.wild.example", Method::PUT, "/x").unwrap(),
        route(2)
    );
    let e = d(&cfg, "wild.example", Method::GET, "/").unwrap_err();
    assert!(
        e.reason.starts_with("host not routed: wild.example:443"),
        "{}",
        e.reason
    );
    let e = d(&cfg, "evil.example", Method::GET, "/").unwrap_err();
    assert_eq!(e.status, StatusCode::FORBIDDEN);
    assert_eq!(e.hint.as_deref(), Some("run: bottle allow evil.example"));
    // port matters: default pattern = 80 and 443
    assert!(full(&cfg, true, "open.example", 8443, Method::GET, "/", &[]).is_err());
}

#[test]
fn cleartext_never_carries_a_credential() {
    let cfg = load(
        "routes:\n  - host: api.example\n    auth: {scheme: bearer, token_env: T}\n  - host: \"plain.test:8080\"\n    auth: {scheme: bearer, token_env: T}\n    allow_cleartext: true\n  - host: \"[::1]:*\"\n    auth: {scheme: query, param: k, token_env: T}\n  - host: noauth.example\n",
        "open.example\n",
    );
    let e = full(&cfg, false, "api.example", 80, Method::GET, "/x", &[]).unwrap_err();
    assert_eq!(e.status, StatusCode::FORBIDDEN);
    assert_eq!(
        e.message("egress"),
        "blocked by egress: route 0 (api.example) injects a credential; refusing to send it over cleartext http://api.example:80 (use https://api.example/...)"
    );
    // http:// to port 443 is still cleartext
    let e = full(&cfg, false, "api.example", 443, Method::GET, "/x", &[]).unwrap_err();
    assert!(
        e.message("egress")
            .ends_with("(use https://api.example:443/...)"),
        "{}",
        e.message("egress")
    );
    let e = full(&cfg, false, "::1", 9000, Method::GET, "/x", &[]).unwrap_err();
    assert!(e.reason.contains("http://[::1]:9000"), "{}", e.reason);
    // https is fine; the opt-in is honoured; routes without auth and the allowlist are untouched
    assert_eq!(
        full(&cfg, true, "api.example", 443, Method::GET, "/x", &[]).unwrap(),
        route(0)
    );
    assert_eq!(
        full(&cfg, false, "plain.test", 8080, Method::GET, "/x", &[]).unwrap(),
        route(1)
    );
    assert_eq!(
        full(&cfg, false, "noauth.example", 80, Method::GET, "/x", &[]).unwrap(),
        route(3)
    );
    assert!(full(&cfg, false, "open.example", 80, Method::GET, "/x", &[]).is_ok());
}

#[test]
fn method_overrides_are_judged_as_the_method_they_name() {
    let cfg = load(
        "routes:\n  - host: api.example\n    methods: [GET, POST]\n  - host: any.example\n",
        "",
    );
    let ok =
        |pq: &str, h: &[(&str, &str)]| full(&cfg, true, "api.example", 443, Method::POST, pq, h);
    assert_eq!(ok("/x", &[]).unwrap(), post_route(0));
    assert_eq!(
        ok("/x", &[("X-HTTP-Method-Override", "get")]).unwrap(),
        post_route(0)
    );
    assert_eq!(ok("/x?_method=GET", &[]).unwrap(), post_route(0));
    for (pq, h, want) in [
        (
            "/x",
            &[("X-HTTP-Method-Override", "DELETE")][..],
            "method override not allowed: x-http-method-override names DELETE on POST /x on api.example:443",
        ),
        ("/x", &[("x-http-method", "delete")][..], "names DELETE"),
        ("/x", &[("X-METHOD-OVERRIDE", " Put ")][..], "names PUT"),
        ("/x?a=1&_method=DELETE", &[][..], "query parameter _method names DELETE"),
        ("/x?%5Fmethod=DELETE", &[][..], "names DELETE"),
        ("/x?_METHOD=patch", &[][..], "names PATCH"),
        ("/x?a=1;_method=DELETE", &[][..], "names DELETE"),
        (
            "/x",
            &[("X-HTTP-Method-Override", "GET, DELETE")][..],
            "malformed method override: 2 method overrides",
        ),
        (
            "/x",
            &[("X-HTTP-Method-Override", "GET"), ("X-HTTP-Method-Override", "GET")][..],
            "malformed method override: 2",
        ),
        (
            "/x?_method=GET",
            &[("X-HTTP-Method", "GET")][..],
            "malformed method override: 2",
        ),
        ("/x", &[("X-HTTP-Method-Override", "")][..], "is not an HTTP method"),
        ("/x", &[("X-HTTP-Method-Override", "DE LETE")][..], "is not an HTTP method"),
        ("/x?_method=DEL%00ETE", &[][..], "is not an HTTP method"),
    ] {
        let e = ok(pq, h).unwrap_err();
        assert_eq!(e.status, StatusCode::FORBIDDEN);
        assert!(e.reason.contains(want), "{pq} {h:?}: {}", e.reason);
    }
    // the real method is still judged first
    let e = full(
        &cfg,
        true,
        "api.example",
        443,
        Method::DELETE,
        "/x",
        &[("X-HTTP-Method-Override", "GET")],
    )
    .unwrap_err();
    assert!(
        e.reason.starts_with("method not allowed: DELETE"),
        "{}",
        e.reason
    );
    // a route without method rules does not care
    assert_eq!(
        full(
            &cfg,
            true,
            "any.example",
            443,
            Method::POST,
            "/x?_method=DELETE",
            &[("X-HTTP-Method-Override", "DELETE")]
        )
        .unwrap(),
        route(1)
    );
}

#[test]
fn path_rules_judge_the_normalised_path_and_refuse_ambiguity() {
    let cfg = load(
        "routes:\n  - host: api.example\n    paths: [\"/repos/acme/**\"]\n    methods: [GET]\n  - host: open.example\n  - host: mixed.example\n    paths: [\"/repos/acme/**\"]\n    auth: {scheme: bearer, token_env: T}\n  - host: mixed.example\n",
        "",
    );
    let g = |host: &str, p: &str| d(&cfg, host, Method::GET, p);
    assert_eq!(g("api.example", "/repos/acme/x").unwrap(), route(0));
    // forwarded as judged
    assert_eq!(
        g("api.example", "/repos/%61cme//x").unwrap(),
        Decision {
            matched: Matched::Route(0),
            path: Some("/repos/acme/x".into()),
            check_body: false
        }
    );
    for p in [
        "/repos/acme/../other/x",
        "/repos/acme/%2e%2e/other/x",
        "/repos/acme/%2E./other/x",
        "/repos/acme/.%2e/other/x",
        "/repos/acme/..;/other/x",
        "/repos/acme;x=1/../../admin",
        "/repos/acme/..%2f..%2fadmin",
        "/repos/acme/..%5c..%5cadmin",
        "/repos/acme/..\\..\\admin",
        "/repos/acme/x%00/../../admin",
        "/repos/acme/%zz",
        "/repos/acme/%252e%252e/admin",
    ] {
        let e = g("api.example", p).unwrap_err();
        assert_eq!(e.status, StatusCode::FORBIDDEN);
        assert!(
            e.reason.starts_with("ambiguous path ")
                && e.reason.contains("refused on a route with path rules"),
            "{p}: {}",
            e.reason
        );
    }
    // `//` merging cannot widen the glob: `//repos/other` is still /repos/other
    let e = g("api.example", "//repos//other/x").unwrap_err();
    assert!(e.reason.starts_with("path not allowed"), "{}", e.reason);
    // no path rules: nothing to dodge, the agent's path is forwarded untouched
    assert_eq!(g("open.example", "/a/..;/b%2f").unwrap(), route(1));
    // an ambiguous path skips the credential route and falls to the plain one
    assert_eq!(g("mixed.example", "/repos/acme/..;/x").unwrap(), route(3));
    assert_eq!(g("mixed.example", "/repos/acme/x").unwrap(), route(2));
}

#[test]
fn with_path_keeps_the_query() {
    let u: Uri = "https://h.example:8443/a/%2e/b?x=1&y=%2F".parse().unwrap();
    assert_eq!(
        with_path(&u, "/a/b").unwrap().to_string(),
        "https://h.example:8443/a/b?x=1&y=%2F"
    );
}

#[test]
fn body_override_fields_are_found_in_every_spelling() {
    for body in [
        &b"_method=DELETE"[..],
        b"a=1&_method=delete",
        b"a=1&_METHOD=put",
        b"a=1&%5Fmethod=DELETE",
        b"a=1&_%6Dethod=DELETE",
        b"{\"_method\": \"DELETE\"}",
        b"{\"\\u005fmethod\": \"DELETE\"}",
        b"{\"a\": 1, \"_Method\": \"PATCH\"}",
        b"--b\r\nContent-Disposition: form-data; name=\"_method\"\r\n\r\nDELETE\r\n--b--\r\n",
    ] {
        assert!(
            body_names_override(body),
            "{}",
            String::from_utf8_lossy(body)
        );
    }
    for body in [
        &b""[..],
        b"a=1&payment_method=card",
        b"{\"payment_method\": \"card\", \"methods\": [\"_methodx\"]}",
        b"method=DELETE",
        b"{\"nested\": {\"x_method_y\": 1}}",
    ] {
        assert!(
            !body_names_override(body),
            "{}",
            String::from_utf8_lossy(body)
        );
    }
    let ct = |v: Option<&str>| {
        let mut h = HeaderMap::new();
        if let Some(v) = v {
            h.insert(http::header::CONTENT_TYPE, v.parse().unwrap());
        }
        body_in_scope(&h)
    };
    assert!(ct(None));
    assert!(ct(Some("application/x-www-form-urlencoded; charset=utf-8")));
    assert!(ct(Some("Multipart/Form-Data; boundary=x")));
    assert!(ct(Some("application/json")));
    assert!(ct(Some("application/vnd.api+json")));
    assert!(!ct(Some("application/octet-stream")));
    assert!(!ct(Some("text/plain")));
}

/// The two checks that used to sit in the proxy before `decide` (git push) and after it
/// (upgrade): every refusal `decide` can return for them, and what still passes.
#[test]
fn git_push_and_upgrade_refusals_are_decided_here() {
    let injecting = load(
        "routes:\n  - host: api.example\n    auth: {scheme: bearer, token_env: T}\n",
        "open.example\n",
    );
    let plain = load("", "open.example\n");
    let ws = [("connection", "Upgrade"), ("upgrade", "websocket")];
    let h2c = [("connection", "Upgrade"), ("upgrade", "h2c")];
    type Row<'a> = (
        &'a EgressConfig,
        &'a str,
        &'a str,
        &'a [(&'a str, &'a str)],
        Option<&'a str>,
    );
    let rows: &[Row<'_>] = &[
        // git push: refused on a route, on the allowlist, whatever the spelling
        (
            &injecting,
            "api.example",
            "/acme/r.git/git-receive-pack",
            &[],
            Some("git push over HTTPS is refused"),
        ),
        (
            &plain,
            "open.example",
            "/acme/r.git/info/refs?service=git-receive-pack",
            &[],
            Some("git push over HTTPS is refused"),
        ),
        (
            &plain,
            "open.example",
            "/acme/r.git/GIT-RECEIVE-PACK",
            &[],
            Some("git push over HTTPS is refused"),
        ),
        (
            &plain,
            "open.example",
            "/acme/r.git/git%2dreceive-pack",
            &[],
            Some("git push over HTTPS is refused"),
        ),
        (
            &plain,
            "open.example",
            "/acme/r.git/info/refs?service=git%2Breceive-pack&service=git-receive-pack",
            &[],
            Some("git push over HTTPS is refused"),
        ),
        // fetch is not a push
        (
            &plain,
            "open.example",
            "/acme/r.git/info/refs?service=git-upload-pack",
            &[],
            None,
        ),
        // upgrades: only WebSocket when egress injects anything (it scrubs frames)
        (
            &injecting,
            "api.example",
            "/socket",
            &h2c,
            Some("protocol upgrade other than WebSocket"),
        ),
        (
            &injecting,
            "open.example",
            "/socket",
            &h2c,
            Some("protocol upgrade other than WebSocket"),
        ),
        (&injecting, "api.example", "/socket", &ws, None),
        // with no credential anywhere there is nothing to scrub
        (&plain, "open.example", "/socket", &h2c, None),
        // a refused host stays refused for its own reason
        (
            &injecting,
            "elsewhere.example",
            "/socket",
            &h2c,
            Some("host not routed"),
        ),
    ];
    for (cfg, host, pq, headers, want) in rows {
        let got = full(cfg, true, host, 443, Method::GET, pq, headers);
        match (want, got) {
            (None, Ok(_)) => {}
            (Some(w), Err(r)) => {
                assert_eq!(r.status, StatusCode::FORBIDDEN, "{host}{pq}");
                assert!(r.reason.contains(w), "{host}{pq}: {}", r.reason);
            }
            (w, g) => panic!("{host}{pq} {headers:?}: wanted {w:?}, got {g:?}"),
        }
    }
    let push = full(
        &plain,
        true,
        "open.example",
        443,
        Method::POST,
        "/r.git/git-receive-pack",
        &[],
    )
    .unwrap_err();
    assert_eq!(push.hint.as_deref(), Some("push through git-gate"));
}

/// Each refusal `decide` makes has its kind, names the rule that decided, and invites a
/// request only for what the operator could grant (a host, a route), never for a safeguard.
#[test]
fn refusals_name_their_kind_rule_and_what_may_be_asked() {
    use bottle_core::{AskAccess, RefusalKind as K};
    let cfg = load(
        "routes:\n  - host: api.example\n    paths: [\"/repos/acme/**\"]\n    methods: [GET]\n  - host: api.example\n    paths: [\"/repos/acme/**\"]\n    methods: [POST]\n    auth: {scheme: bearer, token_env: T}\n",
        "",
    );
    let e = d(&cfg, "api.example", Method::DELETE, "/repos/acme/x").unwrap_err();
    assert_eq!(e.kind, K::MethodNotAllowed);
    assert_eq!(
        e.rule.as_deref(),
        Some("routes.yaml: route 0 (line 2), 1 (line 5) for api.example:443: method DELETE not in [GET, POST]")
    );
    assert_eq!(
        e.ask.as_deref(),
        Some(&AskAccess::Route {
            host: "api.example".into(),
            paths: Some(vec!["/repos/acme/x".into()]),
            methods: Some(vec!["DELETE".into()]),
        })
    );
    let e = d(&cfg, "api.example", Method::GET, "/other").unwrap_err();
    assert_eq!(e.kind, K::PathNotAllowed);
    assert_eq!(
        e.rule.as_deref(),
        Some("routes.yaml: no route for api.example:443 covers path /other (paths [/repos/acme/**; /repos/acme/**])")
    );
    assert!(matches!(e.ask.as_deref(), Some(AskAccess::Route { .. })));
    let e = full(&cfg, true, "evil.example", 8443, Method::GET, "/", &[]).unwrap_err();
    assert_eq!(e.kind, K::HostNotAllowed);
    assert_eq!(
        e.rule.as_deref(),
        Some("allowlist and routes.yaml: no entry or route matches evil.example:8443")
    );
    assert_eq!(
        e.ask.as_deref(),
        Some(&AskAccess::Host {
            host: "evil.example:8443".into()
        })
    );
    // SSRF-class hosts: refused, never an invitation.
    for h in ["169.254.169.254", "10.0.0.1", "metadata.google.internal"] {
        let e = d(&cfg, h, Method::GET, "/").unwrap_err();
        assert_eq!((e.kind, e.ask), (K::HostNotAllowed, None), "{h}");
    }
    // Safeguards are never askable.
    let e = full(
        &cfg,
        false,
        "api.example",
        80,
        Method::POST,
        "/repos/acme/x",
        &[],
    )
    .unwrap_err();
    assert_eq!((e.kind, e.ask.is_none()), (K::CleartextCredential, true));
    assert!(e.rule.unwrap().contains("without allow_cleartext"));
    let e = full(
        &cfg,
        true,
        "api.example",
        443,
        Method::GET,
        "/repos/acme/x",
        &[("x-http-method-override", "DELETE")],
    )
    .unwrap_err();
    assert_eq!((e.kind, e.ask.is_none()), (K::MethodOverride, true));
    let e = full(
        &cfg,
        true,
        "api.example",
        443,
        Method::GET,
        "/repos/acme/x",
        &[("x-original-url", "/admin")],
    )
    .unwrap_err();
    assert_eq!((e.kind, e.ask.is_none()), (K::PathOverride, true));
    let e = d(&cfg, "api.example", Method::GET, "/repos/acme/%2e%2e/admin").unwrap_err();
    assert_eq!((e.kind, e.ask.is_none()), (K::AmbiguousPath, true));
    let e = d(&cfg, "api.example", Method::POST, "/x/git-receive-pack").unwrap_err();
    assert_eq!((e.kind, e.ask.is_none()), (K::GitPushOverHttps, true));
    let e = full(
        &cfg,
        true,
        "api.example",
        443,
        Method::GET,
        "/repos/acme/x",
        &[("connection", "upgrade"), ("upgrade", "h2c")],
    )
    .unwrap_err();
    assert_eq!((e.kind, e.ask.is_none()), (K::UpgradeRefused, true));
    for e in [
        d(&cfg, "api.example", Method::DELETE, "/repos/acme/x").unwrap_err(),
        d(&cfg, "evil.example", Method::GET, "/").unwrap_err(),
    ] {
        assert_eq!(e.status, StatusCode::FORBIDDEN);
    }
}
