//! Table tests for the decisions: every refusal each decision function can return, and
//! the allow paths with what they decide.

use std::cell::Cell;
use std::net::IpAddr;
use std::path::Path;

use bottle_core::allowlist::Allowlist;
use bottle_core::routes::RoutesFile;

use bottle_core::refusal::{AskAccess, RefusalKind};

use super::why::would_pass;
use super::*;

fn aws_key() -> String {
    format!("AKIA{}", "QZ7T3WXR5Y2P6N4K")
}

fn github_pat() -> String {
    format!("ghp_{}", &"Zq8Lr3Tx6Wv1Np9Ks4Hb7Jd2Mf5Gc0Ye8Ua3Io6Pl"[..36])
}

const ALLOW: &str = "echo.test\necho.test:8443\n203.0.113.7\n10.1.2.3\n";
const ROUTES: &str =
    "routes:\n  - host: \"pass.test:*\"\n    tls_passthrough: true\n  - host: \"api.test\"\n";

fn config(allow: &str, routes: &str) -> PolicyConfig {
    PolicyConfig::new(LiveConfig {
        allowlist: Allowlist::parse(allow, Path::new("allowlist")).unwrap(),
        routes: RoutesFile::parse(routes, Path::new("routes.yaml")).unwrap(),
        sha256: String::new(),
    })
}

fn base() -> PolicyConfig {
    config(ALLOW, ROUTES)
}

fn with_dlp(dlp: &str) -> PolicyConfig {
    config(ALLOW, &format!("{ROUTES}dlp: {dlp}\n"))
}

fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (n, v) in pairs {
        h.append(
            http::header::HeaderName::from_bytes(n.as_bytes()).unwrap(),
            HeaderValue::from_str(v).unwrap(),
        );
    }
    h
}

/// A history that finds something on every question, and counts them.
#[derive(Default)]
struct Suspicious {
    hosts: Cell<u32>,
    urls: Cell<u32>,
}

fn finding(detector: &'static str) -> Finding {
    Finding {
        detector,
        offset: 0,
        len: 1,
        encoding: bottle_dlp::Encoding::Raw,
    }
}

impl History for Suspicious {
    fn observe_host(&self, _: &str, _: Instant) -> Option<Finding> {
        self.hosts.set(self.hosts.get() + 1);
        Some(finding(bottle_dlp::anomaly::IDS[0]))
    }
    fn observe_url(&self, _: &str, _: &str, _: Instant) -> Option<Finding> {
        self.urls.set(self.urls.get() + 1);
        Some(finding(bottle_dlp::anomaly::IDS[0]))
    }
}

fn connect(cfg: &PolicyConfig, authority: &str, h: &HeaderMap) -> Decision<ConnectPlan> {
    decide_connect(authority, h, cfg.view(), &NoHistory, Instant::now())
}

/// (kind, status, first line of the body) of a refusal.
fn shape(d: &Denied) -> (&'static str, u16, String) {
    (
        d.kind(),
        d.refusal.status.as_u16(),
        d.refusal.message("pipelock"),
    )
}

#[test]
#[allow(clippy::type_complexity)]
fn connect_refusals() {
    let pat = github_pat();
    let secret_host = format!("{pat}.echo.test:443");
    let secret_header = [("x-token", pat.as_str())];
    let cases: Vec<(
        &str,
        PolicyConfig,
        String,
        &[(&str, &str)],
        &str,
        u16,
        String,
    )> = vec![
        (
            "not allowed",
            base(),
            "evil.test:443".into(),
            &[],
            "host_not_allowed",
            403,
            "blocked by pipelock: host not allowed: evil.test:443 (run: bottle allow evil.test)"
                .into(),
        ),
        (
            "port not allowed",
            base(),
            "echo.test:22".into(),
            &[],
            "host_not_allowed",
            403,
            "blocked by pipelock: host not allowed: echo.test:22 (run: bottle allow echo.test:22)"
                .into(),
        ),
        (
            "private literal without an address line",
            config("*.test\n127.0.0.1\n", ""),
            "[::1]:443".into(),
            &[],
            "host_not_allowed",
            403,
            "blocked by pipelock: host not allowed: [::1]:443".into(),
        ),
        (
            "bad target",
            base(),
            "echo.test:99999".into(),
            &[],
            "bad_target",
            400,
            String::new(),
        ),
        (
            "secret in the host",
            base(),
            secret_host.clone(),
            &[],
            "dlp",
            403,
            "blocked by pipelock: secret detected in request host: github-pat".into(),
        ),
        (
            "secret in a CONNECT header",
            base(),
            "echo.test:443".into(),
            &secret_header,
            "dlp",
            403,
            "blocked by pipelock: secret detected in request header x-token: github-pat".into(),
        ),
    ];
    for (name, cfg, authority, h, kind, status, line) in cases {
        let d = connect(&cfg, &authority, &headers(h));
        let denied = d.verdict.clone().expect_err(name);
        let (k, s, msg) = shape(&denied);
        assert_eq!((k, s), (kind, status), "{name}");
        if !line.is_empty() {
            assert_eq!(msg, line, "{name}");
        }
        assert!(
            denied.refusal.rule.is_some(),
            "{name}: a refusal names its rule"
        );
        assert!(!msg.contains(&pat), "{name}: the secret is never echoed");
        assert!(
            !format!("{d:?}").contains(&pat) || name == "secret in a CONNECT header",
            "{name}: the decision never carries the host's secret"
        );
        if kind == "dlp" {
            assert_eq!(denied.blocked_by, vec!["github-pat"], "{name}");
        }
    }
}

#[test]
fn connect_allows_intercept_or_passthrough_naming_the_rule() {
    let cfg = base();
    let d = connect(&cfg, "echo.test:443", &HeaderMap::new());
    let plan = d.verdict.unwrap();
    assert_eq!(plan.tunnel, Tunnel::Intercept);
    assert_eq!(plan.rule, "allowlist: echo.test");
    assert_eq!(d.subject.host, "echo.test");
    assert_eq!(d.subject.port, Some(443));

    let plan = connect(&cfg, "pass.test:9000", &HeaderMap::new())
        .verdict
        .unwrap();
    assert_eq!(plan.tunnel, Tunnel::Passthrough);
    assert!(plan.rule.contains("routes.yaml line 2"), "{}", plan.rule);
    assert!(plan.rule.ends_with("(tls_passthrough)"));

    let plan = connect(&cfg, "api.test:443", &HeaderMap::new())
        .verdict
        .unwrap();
    assert_eq!(plan.tunnel, Tunnel::Intercept);
    assert!(plan.rule.starts_with("routes.yaml line 4"), "{}", plan.rule);
}

#[test]
fn private_literal_refused_unless_an_address_line_covers_it() {
    let cfg = config("*.test\n10.0.0.0/8\n", "");
    assert!(connect(&cfg, "10.9.9.9:443", &HeaderMap::new())
        .verdict
        .is_ok());
    // Allowed by the host lines of a route (`*` ports) but private and uncovered.
    let cfg = config("", "routes:\n  - host: \"169.254.169.254:*\"\n");
    let denied = connect(&cfg, "169.254.169.254:80", &HeaderMap::new())
        .verdict
        .unwrap_err();
    assert_eq!(denied.kind(), "private_address");
    assert!(denied
        .refusal
        .reason
        .starts_with("private address: 169.254.169.254 ("));
    assert!(denied.refusal.rule.unwrap().starts_with("ssrf: "));
}

#[test]
fn log_mode_lets_findings_through_and_counts_them() {
    let cfg = with_dlp("{action: log}");
    let pat = github_pat();
    let d = connect(&cfg, &format!("{pat}.echo.test:443"), &HeaderMap::new());
    // Logged, then refused for what it is: a host nobody allowed.
    assert_eq!(d.verdict.unwrap_err().kind(), "host_not_allowed");
    assert_eq!(d.logged, vec!["github-pat"]);
    assert_eq!(d.subject.host, "[REDACTED]");

    let h = headers(&[("x-token", &pat)]);
    let d = connect(&cfg, "echo.test:443", &h);
    assert!(d.verdict.is_ok());
    assert_eq!(d.logged, vec!["github-pat"]);
}

#[test]
fn strict_history_is_asked_only_for_allowed_clean_hosts() {
    let cfg = with_dlp("{action: block, profile: strict}");
    let history = Suspicious::default();
    let now = Instant::now();
    let d = decide_connect(
        "evil.test:443",
        &HeaderMap::new(),
        cfg.view(),
        &history,
        now,
    );
    assert_eq!(d.verdict.unwrap_err().kind(), "host_not_allowed");
    assert_eq!(history.hosts.get(), 0, "a refused host spends nothing");
    let d = decide_connect(
        "echo.test:443",
        &HeaderMap::new(),
        cfg.view(),
        &history,
        now,
    );
    let denied = d.verdict.unwrap_err();
    assert_eq!(denied.kind(), "dlp");
    assert!(denied
        .refusal
        .reason
        .starts_with("suspected exfiltration in request host: "));
    assert!(denied.refusal.rule.unwrap().starts_with("dlp anomaly: "));
    // Not strict: never asked.
    let history = Suspicious::default();
    let d = decide_connect(
        "echo.test:443",
        &HeaderMap::new(),
        base().view(),
        &history,
        now,
    );
    assert!(d.verdict.is_ok());
    assert_eq!(history.hosts.get(), 0);
}

fn request(
    cfg: &PolicyConfig,
    method: &str,
    uri: &str,
    h: &[(&str, &str)],
    via: Via<'_>,
) -> Decision<RequestPlan> {
    let method = Method::from_bytes(method.as_bytes()).unwrap();
    let uri: Uri = uri.parse().unwrap();
    let h = headers(h);
    let head = RequestHead {
        method: &method,
        uri: &uri,
        headers: &h,
    };
    decide_request(head, via, cfg.view(), &NoHistory, Instant::now())
}

#[test]
#[allow(clippy::type_complexity)]
fn request_refusals() {
    let target = Target {
        host: Host::Name("echo.test".into()),
        port: 443,
    };
    let tunnel = Via::Tunnel(&target);
    let pat = github_pat();
    let key = aws_key();
    let secret_url = format!("http://echo.test/x?k={key}");
    let secret_method = format!("GET{pat}");
    let cases: Vec<(&str, PolicyConfig, &str, String, Vec<(&str, &str)>, Via<'_>, &str, u16, &str)> = vec![
        ("nested CONNECT", base(), "CONNECT", "echo.test:443".into(), vec![], tunnel,
            "nested_connect", 405, "blocked by pipelock: CONNECT inside an intercepted tunnel is not allowed"),
        ("several Host headers in a tunnel", base(), "GET", "/".into(),
            vec![("host", "echo.test"), ("host", "echo.test")], tunnel, "bad_request", 400,
            "blocked by pipelock: several Host headers"),
        ("Host names another host", base(), "GET", "/".into(), vec![("host", "evil.test")], tunnel,
            "authority_mismatch", 403,
            "blocked by pipelock: request authority \"evil.test\" does not match the CONNECT target echo.test:443"),
        ("URI names another host", base(), "GET", "https://evil.test/".into(), vec![("host", "echo.test")], tunnel,
            "authority_mismatch", 403, ""),
        ("no Host", base(), "GET", "/".into(), vec![], tunnel, "bad_request", 400,
            "blocked by pipelock: request has no Host"),
        ("origin form on the proxy port", base(), "GET", "/x".into(), vec![], Via::Plain, "bad_request", 400,
            "blocked by pipelock: pipelock is a forward proxy: send absolute-form requests (http://host/path) or CONNECT"),
        ("unsupported scheme", base(), "GET", "ftp://echo.test/".into(), vec![], Via::Plain, "bad_request", 400,
            "blocked by pipelock: unsupported scheme \"ftp\""),
        ("secret in the URL host", base(), "GET", format!("http://{pat}.echo.test/"), vec![], Via::Plain, "dlp", 403,
            "blocked by pipelock: secret detected in request host: github-pat"),
        ("bad host", base(), "GET", "http://echo.test:0/".into(), vec![], Via::Plain, "bad_target", 403, ""),
        ("several Host headers", base(), "GET", "http://echo.test/".into(),
            vec![("host", "echo.test"), ("host", "echo.test")], Via::Plain, "bad_request", 400,
            "blocked by pipelock: several Host headers"),
        ("Host fronting", base(), "GET", "http://echo.test/".into(), vec![("host", "evil.test")], Via::Plain,
            "authority_mismatch", 403,
            "blocked by pipelock: Host header does not match the request target echo.test:80"),
        ("not allowed", base(), "GET", "http://evil.test/".into(), vec![], Via::Plain, "host_not_allowed", 403,
            "blocked by pipelock: host not allowed: evil.test:80 (run: bottle allow evil.test)"),
        ("private literal", config("", "routes:\n  - host: \"127.0.0.1:*\"\n"), "GET",
            "http://127.0.0.1/".into(), vec![], Via::Plain, "private_address", 403, ""),
        ("secret in the URL", base(), "GET", secret_url.clone(), vec![], Via::Plain, "dlp", 403,
            "blocked by pipelock: secret detected in request URL: aws-access-key-id"),
        ("secret in a header", base(), "GET", "/".into(), vec![("host", "echo.test"), ("x-k", &key)], tunnel,
            "dlp", 403, "blocked by pipelock: secret detected in request header x-k: aws-access-key-id"),
        ("secret in the method", base(), &secret_method, "http://echo.test/".into(), vec![], Via::Plain,
            "dlp", 403, "blocked by pipelock: secret detected in request method: github-pat"),
        ("unknown body coding", base(), "POST", "http://echo.test/".into(),
            vec![("content-encoding", "compress")], Via::Plain, "dlp_encoding", 415,
            "blocked by pipelock: request Content-Encoding \"compress\" cannot be scanned"),
        ("stacked body codings", base(), "POST", "http://echo.test/".into(),
            vec![("content-encoding", "gzip, br")], Via::Plain, "dlp_encoding", 415,
            "blocked by pipelock: stacked request Content-Encodings cannot be scanned"),
    ];
    for (name, cfg, method, uri, h, via, kind, status, line) in cases {
        let d = request(&cfg, method, &uri, &h, via);
        let denied = d.verdict.clone().expect_err(name);
        let (k, s, msg) = shape(&denied);
        assert_eq!((k, s), (kind, status), "{name}: {msg}");
        if !line.is_empty() {
            assert_eq!(msg, line, "{name}");
        }
        assert!(
            denied.refusal.rule.is_some(),
            "{name}: a refusal names its rule"
        );
        for secret in [&pat, &key] {
            assert!(!msg.contains(secret.as_str()), "{name}: secret echoed");
            assert!(!d.subject.path.contains(secret.as_str()), "{name}: path");
            assert!(
                !d.subject.method.contains(secret.as_str()),
                "{name}: method"
            );
        }
    }
}

#[test]
fn request_allowed_says_what_to_send() {
    let cfg = base();
    let d = request(
        &cfg,
        "POST",
        "http://echo.test:8443/a?b=c",
        &[("content-encoding", "gzip")],
        Via::Plain,
    );
    let plan = d.verdict.unwrap();
    assert_eq!(plan.url.to_string(), "http://echo.test:8443/a?b=c");
    assert_eq!(plan.host_header, "echo.test:8443");
    assert_eq!(plan.body.coding, BodyCoding::Decode(vec![Coding::Gzip]));
    assert!(plan.body.block && !plan.body.strict && !plan.body.grpc);
    assert_eq!(plan.rule, "allowlist: echo.test:8443");
    assert_eq!(d.subject.path, "/a?b=c");

    let target = Target {
        host: Host::Name("echo.test".into()),
        port: 443,
    };
    let d = request(
        &cfg,
        "GET",
        "/p",
        &[("host", "echo.test")],
        Via::Tunnel(&target),
    );
    let plan = d.verdict.unwrap();
    assert_eq!(plan.url.to_string(), "https://echo.test/p");
    assert_eq!(plan.body.coding, BodyCoding::AsSent);
    assert_eq!(plan.head_logged, None);

    // gRPC: scanned message by message
    for (ct, grpc) in [
        ("application/grpc", true),
        ("application/grpc+proto", true),
        ("application/json", false),
    ] {
        let d = request(
            &cfg,
            "POST",
            "/pkg.Svc/Method",
            &[
                ("host", "echo.test"),
                ("content-type", ct),
                ("te", "trailers"),
            ],
            Via::Tunnel(&target),
        );
        assert_eq!(d.verdict.unwrap().body.grpc, grpc, "{ct}");
    }
}

#[test]
fn request_log_mode_redacts_the_audited_url() {
    let cfg = with_dlp("{action: log}");
    let key = aws_key();
    let d = request(
        &cfg,
        "GET",
        &format!("http://echo.test/x?k={key}"),
        &[],
        Via::Plain,
    );
    assert_eq!(
        d.verdict.unwrap().head_logged.as_deref(),
        Some("logged: aws-access-key-id in URL")
    );
    assert_eq!(d.logged, vec!["aws-access-key-id"]);
    assert!(!d.subject.path.contains(&key));
}

#[test]
fn strict_budget_is_charged_last() {
    let cfg = with_dlp("{action: block, profile: strict}");
    let history = Suspicious::default();
    let method = Method::GET;
    let now = Instant::now();
    let uri: Uri = "/p".parse().unwrap();
    for (host, charged) in [("evil.test", 0), ("echo.test", 1)] {
        let target = Target {
            host: Host::Name(host.into()),
            port: 443,
        };
        let h = headers(&[("host", host)]);
        let head = RequestHead {
            method: &method,
            uri: &uri,
            headers: &h,
        };
        let d = decide_request(head, Via::Tunnel(&target), cfg.view(), &history, now);
        assert!(d.verdict.is_err());
        assert_eq!(history.urls.get(), charged, "{host}");
    }
    // A plain request is judged on its host first: the host's finding ends it.
    let uri: Uri = "http://echo.test/".parse().unwrap();
    let h = HeaderMap::new();
    let head = RequestHead {
        method: &method,
        uri: &uri,
        headers: &h,
    };
    let d = decide_request(head, Via::Plain, cfg.view(), &history, now);
    assert!(d
        .verdict
        .unwrap_err()
        .refusal
        .reason
        .contains("request host"));
    assert_eq!((history.hosts.get(), history.urls.get()), (1, 1));
}

#[test]
fn addresses_refusals() {
    let live = base().live;
    let name = Host::Name("echo.test".into());
    let ip = |s: &str| s.parse::<IpAddr>().unwrap();
    let cases: Vec<(&str, Vec<IpAddr>, bool, Option<&str>)> = vec![
        ("public", vec![ip("93.184.216.34")], false, None),
        (
            "loopback",
            vec![ip("93.184.216.34"), ip("127.0.0.1")],
            false,
            Some("blocked by pipelock: private address: 127.0.0.1 ("),
        ),
        (
            "metadata",
            vec![ip("169.254.169.254")],
            false,
            Some("blocked by pipelock: private address: 169.254.169.254 ("),
        ),
        (
            "covered by an address line",
            vec![ip("10.1.2.3")],
            false,
            None,
        ),
        ("pinned by --resolve", vec![ip("127.0.0.1")], true, None),
    ];
    for (name_, addrs, pinned, refused) in cases {
        let r = decide_addresses(&name, &addrs, &live, pinned);
        match refused {
            None => assert!(r.is_ok(), "{name_}"),
            Some(prefix) => {
                let d = r.expect_err(name_);
                let msg = d.refusal.message("pipelock");
                assert!(msg.starts_with(prefix), "{name_}: {msg}");
                assert!(msg.contains("for echo.test"), "{name_}: {msg}");
                assert_eq!(d.kind(), "private_address");
                assert!(d.refusal.rule.unwrap().starts_with("ssrf: "));
            }
        }
    }
}

#[test]
fn addresses_agree_with_bottle_core_resolve_checked() {
    // The proxy dials through bottle-core's resolve_checked; the two must judge alike.
    let live = base().live;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    for addr in [
        "127.0.0.1",
        "10.1.2.3",
        "93.184.216.34",
        "fd00::1",
        "169.254.169.254",
    ] {
        let o: bottle_core::resolve::ResolveOverride = format!("x.test={addr}").parse().unwrap();
        let resolver = bottle_core::Resolver::without_dns(&[o]).unwrap();
        let host = Host::Name("x.test".into());
        let core = rt.block_on(bottle_core::resolve_checked(&resolver, &live, &host, 443));
        let ip: IpAddr = addr.parse().unwrap();
        let ours = decide_addresses(&host, &[ip], &live, resolver.pinned_private_ok("x.test"));
        assert_eq!(
            core.map(|_| ()).map_err(|r| r.message("pipelock")),
            ours.map_err(|d| d.refusal.message("pipelock")),
            "{addr}"
        );
    }
}

#[test]
fn why_answers_with_the_deciding_rule() {
    let cfg = base();
    let get = Method::GET;
    let v = would_pass(&cfg, &get, "https://echo.test/x");
    assert!(v.allowed, "{v:?}");
    assert_eq!(v.rule, "allowlist: echo.test");
    let v = would_pass(&cfg, &get, "https://evil.test/x");
    assert!(!v.allowed);
    assert_eq!(v.kind, Some(RefusalKind::HostNotAllowed));
    assert_eq!(
        v.ask,
        Some(AskAccess::Host {
            host: "evil.test".into()
        })
    );
    assert_eq!(v.rule, "allowlist: no line or route matches evil.test:443");
    assert_eq!(v.status, Some(403));
    assert_eq!(
        v.message.as_deref(),
        Some("blocked by pipelock: host not allowed: evil.test:443 (run: bottle allow evil.test)")
    );
    let v = would_pass(&cfg, &get, "https://pass.test:9000/");
    assert!(v.allowed && v.passthrough, "{v:?}");
    let v = would_pass(&cfg, &get, &format!("http://echo.test/?k={}", aws_key()));
    assert_eq!(v.kind, Some(RefusalKind::Dlp));
    assert_eq!(v.ask, None, "a DLP refusal never invites a request");
    assert_eq!(v.rule, "dlp pattern: aws-access-key-id");
    let v = would_pass(
        &config("", "routes:\n  - host: \"127.0.0.1:*\"\n"),
        &get,
        "https://127.0.0.1/",
    );
    assert_eq!(v.kind, Some(RefusalKind::PrivateAddress));
    assert_eq!(v.ask, None);
    let v = would_pass(&cfg, &get, "not a url at all");
    assert!(!v.allowed);
}

#[test]
fn every_label_pipelock_refuses_with_is_a_refusal_kind() {
    let labels = [
        "host_not_allowed",
        "private_address",
        "dlp",
        "dlp_encoding",
        "injection",
        "bad_target",
        "bad_request",
        "nested_connect",
        "authority_mismatch",
        "tunnel_limit",
        "resolve",
        "upstream_error",
        "upstream_timeout",
        "upstream_unreachable",
        "websocket_extension",
        "upstream_refused",
    ];
    // Each label dashboards count is some kind's; a refusal of that kind carries the label
    // and the kind's status unless a site overrides it.
    for label in labels {
        let kind = RefusalKind::ALL
            .into_iter()
            .find(|k| k.label() == label)
            .unwrap_or_else(|| panic!("{label} is no RefusalKind's label"));
        let d = Denied::of(kind, "x");
        assert_eq!(d.kind(), label);
        assert_eq!(d.refusal.status, kind.status(), "{label}");
        let d = d.with_status(StatusCode::FORBIDDEN);
        assert_eq!(d.refusal.status, StatusCode::FORBIDDEN, "status overridden");
        assert_eq!(d.kind(), label, "kind kept");
    }
}

#[test]
fn only_a_host_refusal_invites_asking() {
    let cfg = base();
    let d = connect(&cfg, "evil.test:443", &HeaderMap::new())
        .verdict
        .unwrap_err();
    assert_eq!(d.refusal.kind, RefusalKind::HostNotAllowed);
    assert!(d.refusal.ask.is_some());
    let body = d.refusal.body("pipelock", None);
    let mut lines = body.lines();
    assert_eq!(
        lines.next(),
        Some("blocked by pipelock: host not allowed: evil.test:443 (run: bottle allow evil.test)")
    );
    assert_eq!(
        lines.next(),
        Some("rule: allowlist: no line or route matches evil.test:443")
    );
    let pat = github_pat();
    let h = headers(&[("x-token", &pat)]);
    let d = connect(&cfg, "echo.test:443", &h).verdict.unwrap_err();
    assert_eq!(d.refusal.ask, None);
    assert!(!d.refusal.body("pipelock", None).contains(&pat));
    // A private address is never askable, however it is reached.
    let d = decide_addresses(
        &Host::Name("echo.test".into()),
        &["127.0.0.1".parse().unwrap()],
        &cfg.live,
        false,
    )
    .unwrap_err();
    assert_eq!(d.refusal.ask, None);
}
