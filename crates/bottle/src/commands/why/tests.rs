#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;

const ROUTES: &str = "routes:\n  - host: api.example\n    paths: [\"/repos/**\"]\n    methods: [GET]\n    auth:\n      scheme: bearer\n      token_env: H7_WHY_NEVER_SET\n";

const ALLOW: &str = "# the agent's hosts\nasked.example  until=2999-01-01T00:00:00Z\nold.example until=2020-01-01T00:00:00Z\n";

fn ask(url: &str, method: &str) -> Answer {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("allowlist"), ALLOW).unwrap();
    std::fs::write(dir.path().join("routes.yaml"), ROUTES).unwrap();
    explain(dir.path(), &Question::parse(url, method).unwrap()).unwrap()
}

fn text(a: &Answer) -> String {
    a.lines.join("\n")
}

#[test]
fn an_allowed_host_names_its_allowlist_line() {
    let a = ask("https://asked.example/x", "GET");
    let t = text(&a);
    assert!(a.allowed, "{t}");
    assert!(t.starts_with("https://asked.example/x GET: allowed"), "{t}");
    assert!(
        t.contains("allowlist line 2 `asked.example  until=2999-01-01T00:00:00Z`"),
        "{t}"
    );
    assert!(t.contains("egress:   no route; allowlist"), "{t}");
}

#[test]
fn a_refused_host_gets_the_rule_and_the_hint() {
    let a = ask("https://nope.example/", "GET");
    let t = text(&a);
    assert!(!a.allowed);
    assert!(t.contains("nope.example") && t.contains("refused"), "{t}");
    assert!(t.contains("host not allowed"), "{t}");
    assert!(t.contains("run: bottle allow nope.example"), "{t}");
    assert!(
        t.contains("no line or route matches nope.example:443"),
        "{t}"
    );
}

#[test]
fn a_route_judges_method_and_path_without_the_secret() {
    let a = ask("https://api.example/repos/acme", "GET");
    assert!(a.allowed, "{}", text(&a));
    assert!(
        text(&a).contains("routes.yaml line 2: api.example"),
        "{}",
        text(&a)
    );
    let a = ask("https://api.example/repos/acme", "delete");
    let t = text(&a);
    assert!(!a.allowed, "{t}");
    assert!(
        t.contains("DELETE") && t.contains("blocked by egress"),
        "{t}"
    );
    let a = ask("https://api.example/admin", "GET");
    assert!(!a.allowed, "{}", text(&a));
    let a = ask("http://api.example/repos/acme", "GET");
    assert!(!a.allowed, "cleartext credential: {}", text(&a));
}

#[test]
fn a_metadata_literal_names_the_ssrf_category() {
    let a = ask("http://169.254.169.254/latest/meta-data", "GET");
    let t = text(&a);
    assert!(!a.allowed);
    assert!(t.contains("ssrf") && t.contains("metadata"), "{t}");
    assert!(!t.contains("run: bottle allow"), "no hint to allow it: {t}");
}

#[test]
fn a_secret_in_the_url_names_the_detector_never_the_value() {
    let token = format!("ghp_{}", &"Zq8Lr3Tx6Wv1Np9Ks4Hb7Jd2Mf5Gc0Ye8Ua3Io6Pl"[..36]);
    let a = ask(&format!("https://asked.example/p?token={token}"), "GET");
    let t = text(&a);
    assert!(!a.allowed, "{t}");
    assert!(t.contains("dlp") || t.contains("DLP"), "{t}");
    assert!(!t.contains(&token[4..20]), "the value leaked: {t}");
    // in the path, the host name spot too
    let a = ask(&format!("https://asked.example/{token}/x"), "POST");
    assert!(
        !a.allowed && !text(&a).contains(&token[4..20]),
        "{}",
        text(&a)
    );
}

#[test]
fn an_expired_grant_is_refused_and_pointed_at() {
    let a = ask("https://old.example/", "GET");
    let t = text(&a);
    assert!(!a.allowed, "{t}");
    assert!(
        t.contains("allowlist line 3 `old.example until=2020-01-01T00:00:00Z` expired at 2020-01-01T00:00:00Z"),
        "{t}"
    );
}

#[test]
fn bad_input_is_a_usage_error_without_control_characters() {
    for (url, method) in [
        ("not a url", "GET"),
        ("ftp://example.com/", "GET"),
        ("https://user:pw@example.com/", "GET"),
        ("/relative", "GET"),
        ("https://example.com/\u{1b}[2J", "GET"),
        ("https://example.com/", "G\u{1b}T"),
    ] {
        let e = Question::parse(url, method).unwrap_err();
        assert!(matches!(e, Error::Usage(_)), "{url}: {e}");
        assert!(!e.to_string().chars().any(char::is_control), "{e:?}");
    }
}

#[test]
fn answers_hold_no_control_characters() {
    let a = ask("https://nope.example/a%1b%5b2J", "GET");
    assert!(
        a.lines.iter().all(|l| !l.chars().any(char::is_control)),
        "{a:?}"
    );
}

#[test]
fn exit_codes_are_0_allowed_1_refused_usage_error_for_bad_input() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("allowlist"), ALLOW).unwrap();
    let args = |url: &str, method: &str| WhyArgs {
        url: url.into(),
        method: method.into(),
        bottle: None,
        config_dir: Some(dir.path().to_path_buf()),
    };
    assert_eq!(run(&args("https://asked.example/", "GET")).unwrap(), 0);
    assert_eq!(run(&args("https://nope.example/", "GET")).unwrap(), 1);
    assert!(matches!(run(&args("nope", "GET")), Err(Error::Usage(_))));
    assert!(matches!(
        run(&args("https://asked.example/", "NOT A METHOD")),
        Err(Error::Usage(_))
    ));
}

#[test]
fn a_broken_live_config_is_an_error_not_a_verdict() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("allowlist"), "not a host pattern!!\n").unwrap();
    let q = Question::parse("https://asked.example/", "GET").unwrap();
    assert!(explain(dir.path(), &q).is_err());
}
