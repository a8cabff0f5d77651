//! Route and git-ref approvals on a live routes.yaml, the sidecars played by a fake that
//! loads the file with the schema and writes their status files.

use super::*;

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
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(a.routes(), std::fs::Permissions::from_mode(0o640)).unwrap();
    }
    let id = plant(&a, "route", route_ask(), "read the API", now_unix());
    let line = approve_fake(&a, &id, Grant::Session, &[]).unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(a.routes()).unwrap().permissions().mode();
        assert_eq!(mode & 0o7777, 0o640, "the file keeps its mode");
    }
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
    // git-gate silent: taken back, still pending.
    let m = approve_fake(&a, &id, Grant::Session, &[state::Sidecar::GitGate])
        .unwrap_err()
        .to_string();
    assert!(m.contains("git-gate: no reload reported"), "{m}");
    assert_eq!(std::fs::read_to_string(a.routes()).unwrap(), LIVE_ROUTES);
    assert!(!decision_file(&a, &id).exists());
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
