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

/// A bottle's live routes.yaml as the launcher renders it: one route with a credential, one
/// repository with rules and a protected ref.
const LIVE_ROUTES: &str = r#"routes:
  - host: api.github.com
    paths:
      - "/repos/acme/**"
    auth:
      scheme: bearer
      token_env: BOTTLE_TOKEN_0
git:
  - name: demo
    upstream: "https://github.com/acme/demo.git"
    rules:
      - ref: "refs/heads/agent/**"
        allow:
          - create
          - update
      - ref: "refs/heads/release/*"
        allow: []
    protected:
      - refs/heads/main
      - "refs/tags/v*"
"#;

fn with_routes(dir: &StateDir) {
    std::fs::write(dir.routes(), LIVE_ROUTES).unwrap();
}

/// Plays the sidecars: on the signal, each named one loads routes.yaml with the schema and
/// writes its status file (a new generation, or the error), except the `silent` ones.
fn sidecars(
    silent: &'static [state::Sidecar],
) -> impl Fn(&StateDir, &[state::Sidecar]) -> Result<()> {
    move |dir: &StateDir, which: &[state::Sidecar]| {
        std::fs::create_dir_all(dir.status_dir()).unwrap();
        for s in which.iter().filter(|s| !silent.contains(s)) {
            let before = dir.read_status(*s);
            let generation = before.as_ref().map_or(0, |b| b.generation);
            let text = std::fs::read_to_string(dir.routes()).unwrap();
            let loaded = bottle_core::RoutesFile::parse(&text, &dir.routes());
            let status = bottle_core::status::Status {
                component: s.service().into(),
                generation: generation + u64::from(loaded.is_ok()),
                config_sha256: String::new(),
                loaded_at: None,
                attempted_at: Some(format!("attempt-{generation}-{}", now_unix())),
                last_error: loaded.err().map(|e| e.to_string()),
                allowlist: None,
            };
            std::fs::write(dir.status_file(*s), serde_json::to_vec(&status).unwrap()).unwrap();
        }
        Ok(())
    }
}

fn approve_fake(
    dir: &StateDir,
    id: &str,
    grant: Grant,
    silent: &'static [state::Sidecar],
) -> Result<String> {
    let signal = sidecars(silent);
    let reloader = Reloader {
        signal: &signal,
        timeout: Duration::from_millis(400),
    };
    approve_with(std::slice::from_ref(dir), id, grant, &reloader)
}

fn route_ask() -> Value {
    serde_json::json!({"host": "api.example.com", "paths": ["/v1/*"], "methods": ["GET"]})
}

fn git_ask(r: &str, allow: &[&str]) -> Value {
    serde_json::json!({"repo": "demo", "ref": r, "allow": allow})
}

fn approval(dir: &StateDir, id: &str) -> Decision {
    contract::read_decision(
        &contract::requests_dir(dir.path()),
        &RequestId::parse(id).unwrap(),
    )
    .unwrap()
    .expect("a decision")
}

/// An approved route is appended without credential, every existing line kept, both route
/// readers confirmed, then the approval written.
#[test]
fn route_approved_live() {
    let root = Root::new();
    let a = root.bottle("demo-aaaaa");
    with_routes(&a);
    let id = plant(&a, "route", route_ask(), "read the API", now_unix());
    let line = approve_fake(&a, &id, Grant::Session, &[]).unwrap();
    assert!(
        line.contains("route api.example.com methods=GET paths=/v1/*")
            && line.contains("no credential; add one in the manifest")
            && line.contains("pipelock generation 1, egress generation 1"),
        "{line}"
    );
    let text = std::fs::read_to_string(a.routes()).unwrap();
    let want_added =
        "  - host: api.example.com\n    paths:\n      - \"/v1/*\"\n    methods:\n      - GET\n";
    assert!(text.contains(want_added), "{text}");
    // Every line of the old file is still there, in order.
    let mut rest = text.as_str();
    for l in LIVE_ROUTES.lines() {
        let at = rest
            .find(l)
            .unwrap_or_else(|| panic!("lost {l:?}:\n{text}"));
        rest = &rest[at + l.len()..];
    }
    let f = bottle_core::RoutesFile::parse(&text, &a.routes()).unwrap();
    assert_eq!(f.routes.len(), 2);
    assert!(
        f.routes[1].auth.is_none(),
        "no credential for the agent's route"
    );
    assert!(f.routes[0].auth.is_some(), "the manifest's credential kept");
    assert!(
        line.contains(&format!("line {}", f.routes[1].line)),
        "{line}"
    );
    let d = approval(&a, &id);
    assert!(d.is_approval());
    assert_eq!(d.for_.as_deref(), Some("session"));
    assert_eq!(d.until_unix, None);
    // No temp file left beside it.
    let names: Vec<String> = std::fs::read_dir(a.live_config_dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names.len(), 2, "{names:?}");
}

/// A route for a host a route already decides, --for, or an over-broad host: refused with
/// the reason, nothing written, still pending.
#[test]
fn route_refusals_change_nothing() {
    let root = Root::new();
    let a = root.bottle("demo-aaaaa");
    with_routes(&a);
    let now = now_unix();
    let cases = [
        (
            serde_json::json!({"host": "api.github.com"}),
            Grant::Session,
            "already exists (routes.yaml line 2: host `api.github.com`)",
        ),
        (
            route_ask(),
            Grant::For(Duration::from_secs(600)),
            "session only",
        ),
        (
            serde_json::json!({"host": "*.com"}),
            Grant::Session,
            "not approved",
        ),
        (
            serde_json::json!({"host": "127.0.0.1:9000"}),
            Grant::Session,
            "not approved",
        ),
        (
            serde_json::json!({"host": "api.example.com", "paths": ["v1"]}),
            Grant::Session,
            "start with `/`",
        ),
        (
            serde_json::json!({"host": "api.example.com", "methods": ["GET\r\nX: y"]}),
            Grant::Session,
            "plain words",
        ),
        (
            serde_json::json!({"host": "api.example.com", "methods": ["FETCH"]}),
            Grant::Session,
            "HTTP methods",
        ),
    ];
    for (ask, grant, needle) in cases {
        let id = plant(&a, "route", ask.clone(), "r", now);
        let m = usage(approve_fake(&a, &id, grant, &[]).unwrap_err());
        assert!(m.contains(needle), "{ask}: {m}");
        assert!(m.contains("nothing changed"), "{m}");
        assert!(!decision_file(&a, &id).exists(), "{ask}");
    }
    assert_eq!(std::fs::read_to_string(a.routes()).unwrap(), LIVE_ROUTES);
    assert!(!a.status_dir().exists(), "no sidecar was signalled");
    // A file edited by hand (a comment) is not re-written: the comment would be lost.
    let edited = LIVE_ROUTES.replacen("git:\n", "git: # keep me\n", 1);
    std::fs::write(a.routes(), &edited).unwrap();
    let id = plant(&a, "route", route_ask(), "r", now);
    let m = approve_fake(&a, &id, Grant::Session, &[])
        .unwrap_err()
        .to_string();
    assert!(m.contains("edited by hand"), "{m}");
    assert_eq!(std::fs::read_to_string(a.routes()).unwrap(), edited);
    assert!(!decision_file(&a, &id).exists());
}

/// A route whose readers do not both confirm is taken back: the old file is on disk and
/// reloaded, no decision written, the request still pending.
#[test]
fn route_rolled_back_when_a_sidecar_is_silent() {
    let root = Root::new();
    let a = root.bottle("demo-aaaaa");
    with_routes(&a);
    let id = plant(&a, "route", route_ask(), "r", now_unix());
    let e = approve_fake(&a, &id, Grant::Session, &[state::Sidecar::Egress]).unwrap_err();
    let m = e.to_string();
    assert!(
        m.contains("old routes.yaml is back") && m.contains("egress: no reload reported"),
        "{m}"
    );
    assert_eq!(std::fs::read_to_string(a.routes()).unwrap(), LIVE_ROUTES);
    assert!(!decision_file(&a, &id).exists());
    // pipelock loaded the new file and then the old one again.
    assert_eq!(
        a.read_status(state::Sidecar::Pipelock).unwrap().generation,
        2
    );
    let (views, _) = collect_pending(std::slice::from_ref(&a), now_unix());
    assert_eq!(views.len(), 1, "still pending");
    // With both answering, the same request goes through.
    approve_fake(&a, &id, Grant::Session, &[]).unwrap();
    assert!(decision_file(&a, &id).exists());
}

/// An approved ref rule is appended to the repository's rules and confirmed by git-gate.
#[test]
fn git_ref_approved_live() {
    let root = Root::new();
    let a = root.bottle("demo-aaaaa");
    with_routes(&a);
    let id = plant(
        &a,
        "git-ref",
        git_ask("refs/heads/feature/x", &["create", "update", "create"]),
        "push my branch",
        now_unix(),
    );
    let line = approve_fake(&a, &id, Grant::Session, &[]).unwrap();
    assert!(
        line.contains("rule refs/heads/feature/x allow=create,update added to git repository demo")
            && line.contains("git-gate generation 1"),
        "{line}"
    );
    assert!(
        !line.contains("pipelock"),
        "only git-gate acts on ref rules: {line}"
    );
    let text = std::fs::read_to_string(a.routes()).unwrap();
    let f = bottle_core::RoutesFile::parse(&text, &a.routes()).unwrap();
    let rules = &f.git_repo("demo").unwrap().rules;
    assert_eq!(rules.len(), 3, "{text}");
    assert_eq!(rules[2].r#ref, "refs/heads/feature/x");
    assert!(rules[2].matches("refs/heads/feature/x"));
    assert_eq!(rules[2].allow.len(), 2);
    assert_eq!(f.git_repo("demo").unwrap().protected.len(), 2);
    assert_eq!(f.routes.len(), 1);
    assert!(approval(&a, &id).is_approval());
}

/// Unknown repository (the bottle's are listed), protected refs, refs a rule already
/// decides, over-broad globs and --for: refused, nothing written.
#[test]
fn git_ref_refusals_change_nothing() {
    let root = Root::new();
    let a = root.bottle("demo-aaaaa");
    with_routes(&a);
    let now = now_unix();
    let other_repo =
        serde_json::json!({"repo": "other", "ref": "refs/heads/agent/x", "allow": ["create"]});
    let cases = [
        (
            other_repo,
            Grant::Session,
            "no git repository `other` (this bottle's repositories: demo)",
        ),
        (
            git_ask("refs/heads/main", &["update"]),
            Grant::Session,
            "`refs/heads/main`, which the manifest protects",
        ),
        (
            git_ask("refs/tags/v1.0", &["create"]),
            Grant::Session,
            "protects",
        ),
        (
            git_ask("refs/tags/vnext", &["create"]),
            Grant::Session,
            "protects",
        ),
        (
            git_ask("refs/heads/agent/mine", &["force"]),
            Grant::Session,
            "already has a rule `refs/heads/agent/**`",
        ),
        (
            git_ask("refs/heads/release/*", &["update"]),
            Grant::Session,
            "already has a rule `refs/heads/release/*` (allow nothing)",
        ),
        (
            git_ask("refs/heads/*", &["update"]),
            Grant::Session,
            "too broad",
        ),
        (git_ask("refs/**", &["update"]), Grant::Session, "too broad"),
        (
            git_ask("refs/heads/x/../main", &["update"]),
            Grant::Session,
            "not a ref name",
        ),
        (
            git_ask("refs/heads/ok/x", &["push"]),
            Grant::Session,
            "create, update, force, delete",
        ),
        (
            git_ask("refs/heads/ok/x", &[]),
            Grant::Session,
            "create, update, force, delete",
        ),
        (
            git_ask("refs/heads/ok/x", &["create"]),
            Grant::For(Duration::from_secs(60)),
            "session only",
        ),
    ];
    for (ask, grant, needle) in cases {
        let id = plant(&a, "git-ref", ask.clone(), "r", now);
        let m = usage(approve_fake(&a, &id, grant, &[]).unwrap_err());
        assert!(m.contains(needle), "{ask}: {m}");
        assert!(!decision_file(&a, &id).exists(), "{ask}");
    }
    assert_eq!(std::fs::read_to_string(a.routes()).unwrap(), LIVE_ROUTES);
    let odd = plant(&a, "root\x1b[2J", host("docs.rs"), "r", now);
    let m = usage(approve_fake(&a, &odd, Grant::Session, &[]).unwrap_err());
    assert!(m.contains("unknown kind") && !m.contains('\x1b'), "{m:?}");
    assert!(!decision_file(&a, &odd).exists());
}

/// Another decision written while the sidecars confirmed wins: the added route is taken out
/// again (and only it: a route added meanwhile by someone else stays).
#[test]
fn route_undone_when_another_decision_won() {
    let root = Root::new();
    let a = root.bottle("demo-aaaaa");
    with_routes(&a);
    let id = plant(&a, "route", route_ask(), "r", now_unix());
    let sidecars_then_deny = {
        let inner = sidecars(&[]);
        let a = a.clone();
        let id = id.clone();
        move |dir: &StateDir, which: &[state::Sidecar]| {
            inner(dir, which)?;
            if !decision_file(&a, &id).exists() {
                deny_in(std::slice::from_ref(&a), &id, Some("no")).unwrap();
            }
            Ok(())
        }
    };
    let reloader = Reloader {
        signal: &sidecars_then_deny,
        timeout: Duration::from_millis(400),
    };
    let m =
        usage(approve_with(std::slice::from_ref(&a), &id, Grant::Session, &reloader).unwrap_err());
    assert!(m.contains("already denied"), "{m}");
    assert!(!approval(&a, &id).is_approval());
    let text = std::fs::read_to_string(a.routes()).unwrap();
    let f = bottle_core::RoutesFile::parse(&text, &a.routes()).unwrap();
    assert_eq!(f.routes.len(), 1, "{text}");
    assert_eq!(
        a.read_status(state::Sidecar::Egress).unwrap().generation,
        2,
        "the undo was reloaded"
    );
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

/// On the file the launcher really renders from a manifest (not a hand-written fixture), both
/// kinds of approval apply, and every route and rule of the manifest reads back unchanged.
#[test]
fn approvals_apply_to_the_launchers_own_routes_yaml() {
    let manifest = r#"name: demo
image: x
routes:
  - host: api.example.com
    paths: ["/v1/**"]
    methods: [GET]
    auth: {scheme: bearer, token_from: API, prefix: "token #1: "}
  - host: "*.example.org:8443"
    tls_passthrough: true
git:
  - name: demo
    upstream: https://github.com/acme/demo.git
    auth: {scheme: basic, username: x-access-token, token_from: API}
    rules:
      - {ref: "refs/heads/agent/**", allow: [create, update]}
    protected: ["refs/heads/main"]
    max_refs: 7
dlp:
  responses: "off"
"#;
    let env: std::collections::BTreeMap<String, String> = [("API".to_owned(), "sekrit".to_owned())]
        .into_iter()
        .collect();
    let loaded =
        crate::manifest::parse(manifest, std::path::Path::new("/tmp/m.yaml"), &env).unwrap();
    let rendered = crate::render::routes_yaml(&loaded);
    let root = Root::new();
    let a = root.bottle("demo-aaaaa");
    std::fs::write(a.routes(), &rendered).unwrap();
    let now = now_unix();
    let route = plant(
        &a,
        "route",
        serde_json::json!({"host": "docs.rs"}),
        "r",
        now,
    );
    approve_fake(&a, &route, Grant::Session, &[]).unwrap();
    let git = plant(
        &a,
        "git-ref",
        git_ask("refs/heads/fix/typo", &["create"]),
        "r",
        now,
    );
    approve_fake(&a, &git, Grant::Session, &[]).unwrap();
    let text = std::fs::read_to_string(a.routes()).unwrap();
    assert!(text.starts_with("# written by `bottle start`"), "{text}");
    let before = bottle_core::RoutesFile::parse(&rendered, &a.routes()).unwrap();
    let after = bottle_core::RoutesFile::parse(&text, &a.routes()).unwrap();
    assert_eq!(after.routes.len(), 3);
    assert_eq!(after.routes[..2], before.routes[..2], "{text}");
    assert_eq!(after.routes[2].host.to_string(), "docs.rs");
    assert_eq!(after.dlp, before.dlp);
    let (b, g) = (&before.git[0], &after.git[0]);
    assert_eq!(
        (g.max_refs, &g.protected, &g.auth),
        (b.max_refs, &b.protected, &b.auth)
    );
    assert_eq!(g.rules[0], b.rules[0]);
    assert_eq!(g.rules[1].r#ref, "refs/heads/fix/typo");
    // The rendered lines themselves are all still there, in order.
    let mut rest = text.as_str();
    for l in rendered.lines() {
        let at = rest
            .find(l)
            .unwrap_or_else(|| panic!("lost {l:?}:\n{text}"));
        rest = &rest[at + l.len()..];
    }
}
