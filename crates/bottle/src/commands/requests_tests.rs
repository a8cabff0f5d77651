use super::*;

const HOUR: u64 = 3600;

/// A state root with bottles, each with a `requests/` and an empty allowlist.
struct Root {
    tmp: tempfile::TempDir,
}

impl Root {
    fn new() -> Root {
        Root {
            tmp: tempfile::tempdir().unwrap(),
        }
    }

    fn bottle(&self, slug: &str) -> StateDir {
        let d = StateDir::new(self.tmp.path(), slug).unwrap();
        std::fs::create_dir_all(contract::requests_dir(d.path())).unwrap();
        std::fs::create_dir_all(d.live_config_dir()).unwrap();
        std::fs::write(d.allowlist(), "").unwrap();
        d
    }
}

/// Writes a request as supervise would (but with any fields: the tests plant hostile ones).
fn plant(dir: &StateDir, kind: &str, ask: Value, reason: &str, created: u64) -> String {
    let id = RequestId::random();
    let req = PendingRequest {
        id: id.to_string(),
        kind: kind.into(),
        ask,
        reason: reason.into(),
        created_at: format_utc(created),
        created_unix: created,
        expires_unix: created + HOUR,
    };
    contract::write_pending(&contract::requests_dir(dir.path()), &id, &req).unwrap();
    id.to_string()
}

fn host(h: &str) -> Value {
    serde_json::json!({ "host": h })
}

fn usage(e: Error) -> String {
    match e {
        Error::Usage(m) => m,
        other => panic!("not a usage error: {other:?}"),
    }
}

fn decision_file(dir: &StateDir, id: &str) -> std::path::PathBuf {
    contract::requests_dir(dir.path()).join(format!("{id}.decision.json"))
}

#[test]
fn durations() {
    for (text, secs, label) in [
        ("30s", 30, "30s"),
        ("15m", 900, "15m"),
        ("2h", 7200, "2h"),
        ("1d", 86_400, "1d"),
        ("90m", 5400, "90m"),
        ("120m", 7200, "2h"),
    ] {
        let d = parse_duration(text).unwrap();
        assert_eq!(d.as_secs(), secs, "{text}");
        assert_eq!(duration_label(d), label, "{text}");
    }
    for bad in [
        "",
        "h",
        "0s",
        "1",
        "1.5h",
        "-1h",
        "1w",
        "1 h",
        "1hh",
        "+1h",
        "99999999999999999999d",
    ] {
        assert!(parse_duration(bad).is_err(), "{bad:?}");
    }
    assert!(check_grant(Duration::from_secs(31 * 86_400)).is_err());
    assert!(check_grant(Duration::from_secs(30 * 86_400)).is_ok());
}

/// The agent wrote the reason: escapes, CR, C1 controls and bidi marks reach the terminal
/// only as visible `\u{..}` text.
#[test]
fn agent_text_is_printed_inert() {
    let hostile = "ok\x1b[2J\x1b]0;pwned\x07\rapproved!\u{9b}31m\u{202e}gnp.exe\u{2066}\n";
    let shown = inert(hostile);
    assert!(!shown.chars().any(is_unsafe_char), "{shown:?}");
    assert!(
        shown.contains("\\u{1b}[2J") && shown.contains("\\u{d}"),
        "{shown:?}"
    );
    assert!(shown.contains("\\u{202e}"), "{shown:?}");
    let view = PendingView {
        slug: "demo-a1b2c".into(),
        id: "a".repeat(26),
        kind: "host\x1b[31m".into(),
        ask: serde_json::json!({"host": "docs.rs\x1b[8m", "note\r": ["x\u{7}"]}),
        reason: hostile.into(),
        created_unix: 1000,
        blocks: vec![],
    };
    let out = render(&view, 1100);
    for raw in [
        "\x1b[2J", "\r", "\u{9b}", "\u{202e}", "\x07", "\x1b[31m", "\x1b[8m",
    ] {
        assert!(!out.contains(raw), "{raw:?} reached the terminal: {out:?}");
    }
    assert!(out.contains("1m ago") || out.contains("100s ago"), "{out}");
    assert_eq!(
        out.lines().count(),
        2,
        "one head line and the reason: {out:?}"
    );
}

#[test]
fn refusals_matched_by_host() {
    let refusal = |host: &str, port: u64, path: &str, ts: &str| {
        let mut m = Map::new();
        for (k, v) in [
            ("ts", Value::from(ts)),
            ("component", Value::from("pipelock")),
            ("method", Value::from("GET")),
            ("scheme", Value::from("https")),
            ("host", Value::from(host)),
            ("port", Value::from(port)),
            ("path", Value::from(path)),
            ("reason", Value::from("host not allowed")),
        ] {
            m.insert(k.into(), v);
        }
        m
    };
    let refusals = vec![
        refusal("docs.rs", 443, "/a\x1b[2Jb", "2026-12-07T05:04:00Z"),
        refusal("evil.example", 443, "/", "2026-12-07T05:03:00Z"),
        refusal("DOCS.RS", 443, "/2", "2026-12-07T05:02:00Z"),
        refusal("docs.rs", 8443, "/other-port", "2026-12-07T05:01:30Z"),
        refusal("docs.rs", 443, "/3", "2026-12-07T05:01:00Z"),
        refusal("docs.rs", 443, "/4", "2026-12-07T05:00:00Z"),
    ];
    let shown = blocks_for(&host("docs.rs"), &refusals);
    assert_eq!(shown.len(), BLOCKS_PER_REQUEST, "{shown:?}");
    assert!(shown[0].starts_with("2026-12-07T05:04:00Z pipelock GET https://docs.rs:443/a"));
    assert!(!shown[0].contains('\x1b'), "{:?}", shown[0]);
    assert!(
        shown[1].contains("/2") && shown[2].contains("/3"),
        "{shown:?}"
    );
    let wild = blocks_for(&host("*.example"), &refusals);
    assert_eq!(wild.len(), 1);
    assert!(blocks_for(&serde_json::json!({"repo": "x"}), &refusals).is_empty());
    let long = refusal("docs.rs", 443, &"/x".repeat(500), "t");
    assert!(block_line(&long).chars().count() <= MAX_BLOCK_CHARS);
}

/// Only undecided, unexpired requests are listed, oldest first; a garbled file is reported.
#[test]
fn pending_lists_what_waits() {
    let root = Root::new();
    let a = root.bottle("demo-aaaaa");
    let b = root.bottle("other-bbbbb");
    let now = now_unix();
    let newer = plant(&a, "host", host("docs.rs"), "read docs", now - 10);
    let older = plant(&b, "host", host("pypi.org"), "install", now - 20);
    let _expired = plant(&a, "host", host("old.example"), "old", now - 2 * HOUR);
    let denied = plant(&a, "host", host("denied.example"), "no", now - 5);
    deny_in(std::slice::from_ref(&a), &denied, Some("not today")).unwrap();
    let garbled = RequestId::random();
    std::fs::write(
        contract::requests_dir(a.path()).join(format!("{garbled}.json")),
        b"{\"id\":\x1b[2J",
    )
    .unwrap();
    let (views, problems) = collect_pending(&[a.clone(), b.clone()], now);
    let ids: Vec<&str> = views.iter().map(|v| v.id.as_str()).collect();
    assert_eq!(ids, [older.as_str(), newer.as_str()]);
    assert_eq!(views[0].slug, "other-bbbbb");
    assert_eq!(views[1].reason, "read docs");
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(problems[0].contains(garbled.as_str()), "{problems:?}");
}

#[test]
fn bad_ids_and_decided_requests_are_usage_errors() {
    let root = Root::new();
    let a = root.bottle("demo-aaaaa");
    let dirs = [a.clone()];
    let now = now_unix();
    for bad in ["../../etc/passwd", "", "A", "abc\x1b[2J"] {
        let m = usage(deny_in(&dirs, bad, None).unwrap_err());
        assert!(m.contains("`bottle requests`"), "{m}");
        assert!(!m.contains('\x1b'), "{m:?}");
    }
    let ghost = RequestId::random().to_string();
    let m = usage(approve_in(&dirs, &ghost, Grant::Session).unwrap_err());
    assert!(
        m.contains("no request") && m.contains("`bottle requests`"),
        "{m}"
    );
    assert!(
        !decision_file(&a, &ghost).exists(),
        "nothing written for a ghost"
    );

    let id = plant(&a, "host", host("docs.rs"), "r", now);
    let line = deny_in(&dirs, &id, Some("use the mirror")).unwrap();
    assert!(
        line.contains("denied") && line.contains("docs.rs"),
        "{line}"
    );
    let before = std::fs::read(decision_file(&a, &id)).unwrap();
    let m = usage(deny_in(&dirs, &id, Some("again")).unwrap_err());
    assert!(m.contains("already denied at"), "{m}");
    let m = usage(approve_in(&dirs, &id, Grant::Session).unwrap_err());
    assert!(m.contains("already denied at"), "{m}");
    assert_eq!(std::fs::read(decision_file(&a, &id)).unwrap(), before);
    let written = contract::read_decision(
        &contract::requests_dir(a.path()),
        &contract::RequestId::parse(&id).unwrap(),
    )
    .unwrap()
    .unwrap();
    assert_eq!(written.reason.as_deref(), Some("use the mirror"));

    let old = plant(&a, "host", host("docs.rs"), "r", now - 2 * HOUR);
    let m = usage(deny_in(&dirs, &old, None).unwrap_err());
    assert!(m.contains("expired"), "{m}");
    assert!(!decision_file(&a, &old).exists());

    // The same id in two bottles (planted): which one is for the operator to say.
    let b = root.bottle("other-bbbbb");
    let twin = plant(&a, "host", host("docs.rs"), "r", now);
    let twin_id = RequestId::parse(&twin).unwrap();
    let copy =
        std::fs::read(contract::requests_dir(a.path()).join(format!("{twin}.json"))).unwrap();
    std::fs::write(
        contract::requests_dir(b.path()).join(format!("{twin_id}.json")),
        copy,
    )
    .unwrap();
    let m = usage(deny_in(&[a.clone(), b.clone()], &twin, None).unwrap_err());
    assert!(m.contains("--bottle") && m.contains("other-bbbbb"), "{m}");
    deny_in(std::slice::from_ref(&b), &twin, None).unwrap();
    assert!(decision_file(&b, &twin).exists() && !decision_file(&a, &twin).exists());
}

#[test]
fn deny_reasons_are_one_clean_line() {
    let root = Root::new();
    let a = root.bottle("demo-aaaaa");
    let id = plant(&a, "host", host("docs.rs"), "r", now_unix());
    for bad in [
        "two\nlines",
        "esc\x1b[2J",
        "bidi\u{202e}",
        &"x".repeat(1025),
    ] {
        assert!(
            deny_in(std::slice::from_ref(&a), &id, Some(bad)).is_err(),
            "{bad:?}"
        );
    }
    assert!(!decision_file(&a, &id).exists());
}

/// A pending file planted with an over-broad or malformed entry is refused at approve, before
/// anything is written: the allowlist stays as it was and the request stays pending.
#[test]
fn hostile_requests_are_refused_at_approve() {
    let root = Root::new();
    let a = root.bottle("demo-aaaaa");
    std::fs::write(a.allowlist(), "kept.example\n").unwrap();
    let now = now_unix();
    for (ask, needle) in [
        (host("*.com"), "not approved"),
        (host("0.0.0.0/0"), "not approved"),
        (host("169.254.169.254"), "metadata"),
        (host("metadata.google.internal"), "not approved"),
        (host("10.0.0.0/8"), "not approved"),
        (
            host("docs.rs until=2999-01-01T00:00:00Z"),
            "not one allowlist entry",
        ),
        (host("docs.rs\nevil.example"), "not one allowlist entry"),
        (host("docs.rs#x"), "not approved"),
        (host("exa\x1b[2Jmple.com"), "not one allowlist entry"),
        (host(""), "not one allowlist entry"),
        (serde_json::json!({"hots": "docs.rs"}), "names no host"),
        (serde_json::json!({"host": ["docs.rs"]}), "names no host"),
    ] {
        let id = plant(&a, "host", ask.clone(), "please", now);
        for grant in [Grant::Session, Grant::For(Duration::from_secs(60))] {
            let m = usage(approve_in(std::slice::from_ref(&a), &id, grant).unwrap_err());
            assert!(m.contains(needle), "{ask}: {m}");
            assert!(!m.contains('\x1b') && !m.contains('\n'), "{m:?}");
            assert!(
                !m.contains("--force"),
                "no hint to force an agent's entry: {m}"
            );
        }
        assert!(!decision_file(&a, &id).exists(), "{ask}");
    }
    assert_eq!(
        std::fs::read_to_string(a.allowlist()).unwrap(),
        "kept.example\n"
    );
    let (views, _) = collect_pending(std::slice::from_ref(&a), now);
    assert_eq!(views.len(), 12, "every refused request stays pending");
}

#[test]
fn approve_flags() {
    use clap::Parser;
    #[derive(Parser, Debug)]
    struct Cli {
        #[command(flatten)]
        approve: ApproveArgs,
    }
    let id = "a".repeat(26);
    let a = Cli::try_parse_from([
        "approve",
        id.as_str(),
        "--for",
        "2h",
        "--bottle",
        "demo-aaaaa",
    ])
    .unwrap()
    .approve;
    assert_eq!(a.for_, Some(Duration::from_secs(7200)));
    assert_eq!(a.bottle.as_deref(), Some("demo-aaaaa"));
    let a = Cli::try_parse_from(["approve", id.as_str()])
        .unwrap()
        .approve;
    assert_eq!(
        (a.for_, a.session),
        (None, false),
        "the default is the session"
    );
    assert!(Cli::try_parse_from(["approve", id.as_str(), "--session"]).is_ok());
    for bad in [
        vec!["approve", id.as_str(), "--for", "2h", "--session"],
        vec!["approve", id.as_str(), "--for", "0s"],
        vec!["approve", id.as_str(), "--for", "soon"],
        vec!["approve"],
    ] {
        assert!(Cli::try_parse_from(&bad).is_err(), "{bad:?}");
    }
}

#[path = "requests/live_tests.rs"]
mod live;
