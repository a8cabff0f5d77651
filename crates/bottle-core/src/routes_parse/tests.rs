//! routes.yaml parsing: the design example, every error with its line, fuzzing.
use super::*;
use crate::host::parse_host;
use crate::routes::{DlpAction, DlpProfile, RefAction, ScanAction, DEFAULT_MAX_PACK_BYTES};
use crate::strict_yaml::nearest;
use std::path::PathBuf;

fn parse_ok(text: &str) -> RoutesFile {
    parse(text, Path::new("routes.yaml")).unwrap_or_else(|e| panic!("{e}"))
}

fn parse_err(text: &str) -> String {
    parse(text, Path::new("routes.yaml"))
        .err()
        .map(|e| e.to_string())
        .unwrap_or_else(|| panic!("accepted: {text}"))
}

const DESIGN: &str = r#"routes:                            # egress routes; their hosts are allowed too
  - host: api.github.com           # a pattern as in the allowlist
    paths: ["/repos/acme/**"]      # optional globs; default: every path
    methods: [GET, POST]           # optional; default: every method
    auth:                          # optional; without it the route only allows
      scheme: bearer               # bearer | basic | header | query
      token_env: BOTTLE_TOKEN_0    # env var of egress that holds the secret
      # header: X-Api-Key          # scheme header: the header to set
      # prefix: "token "           # optional prefix of the header value
      # username: x-access-token   # scheme basic
      # param: api_key             # scheme query
    tls_passthrough: false         # true: tunnelled, not decrypted (no DLP, no injection)
git:                               # git-gate repositories
  - name: demo                     # served as http://git-gate:8080/demo.git
    upstream: https://github.com/acme/demo.git   # https://, ssh:// or file://
    auth: {scheme: basic, username: x-access-token, token_env: BOTTLE_GIT_TOKEN_0}
    rules:                         # ordered; first match wins; no match: denied
      - {ref: "refs/heads/agent/**", allow: [create, update, force, delete]}
      - {ref: "refs/heads/**", allow: [update]}
    protected: ["refs/heads/main"] # never forced or deleted, whatever the rules say
dlp:                               # pipelock
  action: block                    # block | log
"#;

#[test]
fn dlp_settings_parse() {
    let f = parse_ok("dlp:\n  action: log\n  profile: strict\n  responses: warn\n  mcp: off\n");
    assert_eq!(
        f.dlp,
        DlpSettings {
            action: DlpAction::Log,
            profile: DlpProfile::Strict,
            responses: ScanAction::Warn,
            mcp: ScanAction::Off,
        }
    );
}

#[test]
fn design_example_parses() {
    let f = parse_ok(DESIGN);
    assert_eq!(f.routes.len(), 1);
    let r = &f.routes[0];
    assert_eq!(r.line, 2);
    assert_eq!(r.index, 0);
    assert!(r.host.matches(&parse_host("api.github.com").unwrap(), 443));
    assert!(r.accepts(&http::Method::GET, "/repos/acme/x/pulls"));
    assert!(!r.accepts(&http::Method::DELETE, "/repos/acme/x"));
    assert!(!r.accepts(&http::Method::GET, "/repos/other/x"));
    assert!(!r.accepts(&http::Method::GET, "/repos/acme/../other/x"));
    assert!(!r.accepts(&http::Method::GET, "/repos/acme/%2e%2e/other"));
    assert!(!r.accepts(&http::Method::GET, "/repos/acme%2fx"));
    let a = r.auth.as_ref().unwrap();
    assert_eq!(a.scheme, AuthScheme::Bearer);
    assert_eq!(a.token_env, "BOTTLE_TOKEN_0");
    assert!(!a.strip_cookies);
    assert!(!r.tls_passthrough);
    assert!(!r.allow_cleartext);
    let f = parse_ok("routes:\n  - host: \"origin.test:8080\"\n    allow_cleartext: true\n    auth: {scheme: bearer, token_env: T}\n");
    assert!(f.routes[0].allow_cleartext);
    let f = parse_ok(DESIGN);
    let g = &f.git[0];
    assert_eq!(g.name, "demo");
    assert_eq!(g.line, 14);
    assert_eq!(
        g.auth.as_ref().unwrap().username.as_deref(),
        Some("x-access-token")
    );
    assert_eq!(g.rules.len(), 2);
    assert!(g.rules[0].matches("refs/heads/agent/fix/1"));
    assert!(!g.rules[0].matches("refs/heads/main"));
    assert!(g.rules[1].matches("refs/heads/main"));
    assert!(!g.rules[1].matches("refs/tags/v1"));
    assert_eq!(
        g.rules[0].allow,
        vec![
            RefAction::Create,
            RefAction::Update,
            RefAction::Force,
            RefAction::Delete
        ]
    );
    assert_eq!(g.protected, vec!["refs/heads/main".to_string()]);
    assert_eq!(g.max_pack_bytes, DEFAULT_MAX_PACK_BYTES);
    assert_eq!(g.max_refs, 100);
    assert!(!g.push_options);
    assert_eq!(f.dlp.action, DlpAction::Block);
    assert_eq!(
        f.dlp.responses,
        ScanAction::Block,
        "response scanning is on by default"
    );
    assert_eq!(f.dlp.mcp, ScanAction::Block);
    assert_eq!(f.dlp.profile, DlpProfile::Default);
}

#[test]
fn empty_forms() {
    for t in [
        "",
        "\n",
        "# only a comment\n",
        "---\n",
        "routes:\ngit:\n",
        "routes: []\n",
    ] {
        let f = parse_ok(t);
        assert!(f.routes.is_empty() && f.git.is_empty());
        assert_eq!(f.dlp.action, DlpAction::Block);
    }
}

#[test]
fn unknown_key_names_line_and_nearest() {
    let t = "routes:\n  - host: a.example\n    auth:\n      scheme: bearer\n      token_env: X\n\n      tokn_env: Y\n";
    assert_eq!(
        parse_err(t),
        "routes.yaml:7: unknown key `tokn_env` in route auth (did you mean `token_env`?)"
    );
    assert_eq!(
        parse_err("rotes: []\n"),
        "routes.yaml:1: unknown key `rotes` in routes.yaml (top level) (did you mean `routes`?)"
    );
    let e = parse_err("routes:\n  - host: a\n    tls_pasthrough: true\n");
    assert!(e.starts_with("routes.yaml:3: unknown key `tls_pasthrough` in route (did you mean `tls_passthrough`?)"), "{e}");
    let e = parse_err("routes:\n  - host: a\n    allow_cleartxt: true\n");
    assert!(e.starts_with("routes.yaml:3: unknown key `allow_cleartxt` in route (did you mean `allow_cleartext`?)"), "{e}");
    let e = parse_err("git:\n  - name: a\n    upstream: https://h/x\n    max_pack: 3\n");
    assert!(
        e.starts_with("routes.yaml:4:") && e.contains("did you mean `max_pack_bytes`"),
        "{e}"
    );
    let e = parse_err("dlp:\n  zzzzzzzz: 1\n");
    assert!(e.contains("known keys: `action`"), "{e}");
}

#[test]
fn errors_with_lines() {
    let cases: &[(&str, &str)] = &[
        ("routes:\n  - paths: [\"/x\"]\n", "routes.yaml:2: route is missing `host`"),
        ("routes:\n  - host: a\n    tls_passthrough: yes\n", "routes.yaml:3: `tls_passthrough` must be true or false"),
        ("routes:\n  - host: a\n    tls_passthrough: \"true\"\n", "routes.yaml:3: `tls_passthrough` must be true or false"),
        ("routes:\n  - host: a\n    auth: {scheme: header, token_env: T}\n", "routes.yaml:3: scheme header needs `header`"),
        ("routes:\n  - host: a\n    auth:\n      scheme: query\n      token_env: T\n", "routes.yaml:4: scheme query needs `param`"),
        ("routes:\n  - host: a\n    auth:\n      scheme: bearer\n      token_env: ghp_abcdefghijklmnop\n", "routes.yaml:5:"),
        ("routes:\n  - host: a\n    auth:\n      scheme: bearer\n      token_env: 1ABC\n", "must name an environment variable"),
        ("routes:\n  - host: a\n    auth:\n      scheme: oauth\n      token_env: T\n", "routes.yaml:4: unknown auth scheme `oauth`"),
        ("routes:\n  - host: a\n    auth:\n      scheme: bearer\n      token_env: T\n      param: x\n", "routes.yaml:6: `param` only applies to scheme query"),
        ("routes:\n  - host: a\n    methods: [GET, \"PO ST\"]\n", "routes.yaml:3: `PO ST` is not an HTTP method"),
        ("routes:\n  - host: a\n    paths: [\"repos/**\"]\n", "must start with `/`"),
        ("routes:\n  - host: a\n    paths: [\"/a/[\"]\n", "routes.yaml:3: invalid path glob"),
        ("routes:\n  - host: \"a.*.b\"\n", "routes.yaml:2: route `host`"),
        ("routes:\n  - host: a\n    tls_passthrough: true\n    auth: {scheme: bearer, token_env: T}\n", "routes.yaml:4: `auth` cannot apply"),
        ("routes:\n  - host: a\n    tls_passthrough: true\n    allow_cleartext: true\n", "routes.yaml:4: `allow_cleartext` cannot apply"),
        ("routes:\n  - host: a\n    allow_cleartext: 1\n", "routes.yaml:3: `allow_cleartext` must be true or false"),
        ("routes: {host: a}\n", "routes.yaml:1: `routes` must be a list"),
        ("routes:\n  - a.example\n", "routes.yaml:2: route must be a mapping"),
        ("git:\n  - name: a/b\n    upstream: https://h/x\n", "routes.yaml:2: git `name`"),
        ("git:\n  - name: a\n    upstream: https://h/x\n  - name: a\n    upstream: https://h/y\n", "routes.yaml:4: git repository `a` is defined twice"),
        ("git:\n  - name: a\n    upstream: http://h/x\n", "routes.yaml:3: `upstream` `http://h/x`: use https://"),
        ("git:\n  - name: a\n    upstream: ftp://h/x\n", "must start with https://, ssh:// or file://"),
        ("git:\n  - name: a\n    upstream: https://u:p@h/x\n", "must not carry credentials"),
        ("git:\n  - name: a\n    upstream: ssh://git@h/x\n", "needs `ssh:"),
        ("git:\n  - name: a\n    upstream: https://h/x\n    rules:\n      - {ref: \"heads/*\", allow: [update]}\n", "routes.yaml:5: ref pattern `heads/*` must start with `refs/`"),
        ("git:\n  - name: a\n    upstream: https://h/x\n    rules:\n      - {ref: \"refs/heads/*\", allow: [push]}\n", "routes.yaml:5: unknown ref action `push`"),
        ("git:\n  - name: a\n    upstream: https://h/x\n    rules:\n      - {ref: \"refs/heads/*\"}\n", "routes.yaml:5: ref rule is missing `allow`"),
        ("git:\n  - name: a\n    upstream: https://h/x\n    max_refs: -1\n", "routes.yaml:4: `max_refs` must be a positive whole number"),
        ("git:\n  - name: a\n    upstream: https://h/x\n    max_refs: 0\n", "routes.yaml:4:"),
        ("dlp:\n  action: warn\n", "routes.yaml:2: dlp `action` must be `block` or `log`"),
        ("dlp:\n  responses: log\n", "routes.yaml:2: dlp `responses` must be `block` or `warn` or `off`, not `log`"),
        ("dlp:\n  action: block\n  mcp: yes\n", "routes.yaml:3: dlp `mcp` must be `block` or `warn` or `off`"),
        ("dlp:\n  profile: paranoid\n", "routes.yaml:2: dlp `profile` must be `default` or `strict`"),
        ("routes:\n  - host: a\n  - host: b\n    host: c\n", "routes.yaml:4: duplicate key `host`"),
        ("routes: [\n", "routes.yaml:"),
        ("a: &x 1\nb: *x\n", "routes.yaml:1:"),
        ("- 1\n- 2\n", "routes.yaml:1: routes.yaml (top level) must be a mapping"),
        ("git:\n  - name: a\n    upstream: file://relative\n", "absolute path"),
    ];
    for (text, want) in cases {
        let e = parse_err(text);
        assert!(e.contains(want), "{text:?}\n got: {e}\nwant: {want}");
        assert!(e.starts_with("routes.yaml:"), "{e}");
    }
}

#[test]
fn secret_like_token_env_is_not_echoed() {
    let e = parse_err(
        "routes:\n  - host: a\n    auth: {scheme: bearer, token_env: ghp_0123456789abcdef0123}\n",
    );
    assert!(!e.contains("ghp_0123456789abcdef0123"), "{e}");
}

#[test]
fn all_schemes() {
    let f = parse_ok(
        "routes:\n  - host: a\n    auth: {scheme: header, header: X-Api-Key, prefix: \"key \", token_env: A}\n\
         \x20 - host: b\n    auth: {scheme: basic, username: u, token_env: B, strip_cookies: true}\n\
         \x20 - host: c\n    auth: {scheme: query, param: api_key, token_env: C}\n\
         \x20 - host: \"*.d:*\"\n    tls_passthrough: true\n\
         git:\n  - name: s\n    upstream: ssh://git@github.com/acme/s.git\n    ssh: {key_file: /run/k, known_hosts: \"github.com ssh-ed25519 AAAA\"}\n\
         \x20 - name: f.x_y-z\n    upstream: file:///srv/x.git\n    push_options: true\n    max_pack_bytes: 1_000\n",
    );
    assert_eq!(
        f.routes[0].auth.as_ref().unwrap().header.as_deref(),
        Some("X-Api-Key")
    );
    assert_eq!(
        f.routes[0].auth.as_ref().unwrap().prefix.as_deref(),
        Some("key ")
    );
    assert!(f.routes[1].auth.as_ref().unwrap().strip_cookies);
    assert_eq!(
        f.routes[2].auth.as_ref().unwrap().param.as_deref(),
        Some("api_key")
    );
    assert!(f.routes[3].tls_passthrough);
    assert!(f.routes[3].host.matches(&parse_host("x.d").unwrap(), 9));
    assert_eq!(
        f.git[0].ssh.as_ref().unwrap().key_file,
        PathBuf::from("/run/k")
    );
    assert!(f.git[1].push_options);
    assert_eq!(f.git[1].max_pack_bytes, 1000);
    assert_eq!(
        f.routes.iter().map(|r| r.index).collect::<Vec<_>>(),
        vec![0, 1, 2, 3]
    );
}

#[test]
fn second_document_is_an_error() {
    let e = parse_err("routes: []\n---\nroutes:\n  - host: evil.example\n");
    assert!(
        e.starts_with("routes.yaml:2: only one YAML document"),
        "{e}"
    );
    assert!(parse("---\nroutes: []\n", Path::new("routes.yaml")).is_ok());
}

#[test]
fn unquoted_star_gets_a_hint() {
    let e = parse_err("routes:\n  - host: *.example.com\n");
    assert!(e.starts_with("routes.yaml:2:"), "{e}");
    assert!(e.contains("\"*.example.com\""), "{e}");
}

#[test]
fn nearest_key() {
    assert_eq!(nearest("tokn_env", AUTH_KEYS), Some("token_env"));
    assert_eq!(nearest("Host", ROUTE_KEYS), Some("host"));
    assert_eq!(nearest("xyzzy", ROUTE_KEYS), None);
}

#[test]
fn never_panics_on_random_input() {
    let mut seed: u64 = 0xdead_beef_cafe_f00d;
    let pieces = [
        "routes:",
        "git:",
        "dlp:",
        "\n",
        "  ",
        "- ",
        "host: ",
        "a.b",
        "[",
        "]",
        "{",
        "}",
        ",",
        ":",
        "&a ",
        "*a",
        "auth:",
        "scheme: ",
        "bearer",
        "\"",
        "'",
        "#",
        "---",
        "name: ",
        "rules:",
        "ref: ",
        "allow: ",
        "!!str ",
        "|",
        "\t",
        "?",
        "%",
        "@",
        "upstream: ",
        "https://h/x",
        "ssh:",
    ];
    for _ in 0..5_000 {
        let mut s = String::new();
        for _ in 0..(seed % 40) {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            s.push_str(pieces[(seed % pieces.len() as u64) as usize]);
        }
        let _ = parse(&s, Path::new("r"));
    }
    // Deep nesting is refused, not a stack overflow.
    let deep = "[".repeat(10_000);
    let _ = parse(&deep, Path::new("r"));
    let deep = format!("{}1{}", "[".repeat(200), "]".repeat(200));
    assert!(parse(&deep, Path::new("r")).is_err());
}

/// `RoutesFile::from_node` is the parser's own schema: the same file, read to a tree first,
/// gives the same value and the same errors.
#[test]
fn from_node_is_the_schema_parse_uses() {
    let ctx = Ctx::new(Path::new("routes.yaml"));
    let tree = load(DESIGN, &ctx).unwrap().unwrap();
    let built = RoutesFile::from_node(&tree, Path::new("routes.yaml")).unwrap();
    assert_eq!(built, parse_ok(DESIGN));
    assert!(!built.routes.is_empty() && !built.git.is_empty());
    for bad in [
        "routes:\n  - host: a\n    tls_pasthrough: true\n",
        "git:\n  - name: a\n    upstream: http://h/x\n",
        "routes:\n  - host: a\n    auth: {scheme: bearer, token_env: lower}\n",
    ] {
        let tree = load(bad, &ctx).unwrap().unwrap();
        let e = RoutesFile::from_node(&tree, Path::new("routes.yaml"))
            .unwrap_err()
            .to_string();
        assert_eq!(e, parse_err(bad));
    }
    // A tree whose `tls_passthrough` is the string "true" (quoted), not the boolean: refused,
    // as the sidecars refuse `tls_passthrough: "true"`.
    let tree = Node::map(
        1,
        vec![(
            "routes",
            Node::seq(
                2,
                vec![Node::map(
                    2,
                    vec![
                        ("host", Node::str(2, "a.example")),
                        ("tls_passthrough", Node::str(3, "true")),
                    ],
                )],
            ),
        )],
    );
    let e = RoutesFile::from_node(&tree, Path::new("m.yaml")).unwrap_err();
    assert!(
        e.to_string()
            .starts_with("m.yaml:3: `tls_passthrough` must be true or false"),
        "{e}"
    );
}

#[test]
fn a_misspelt_dlp_word_gets_the_nearest() {
    let e = parse_err("dlp:\n  responses: wran\n");
    assert_eq!(
        e,
        "routes.yaml:2: dlp `responses` must be `block` or `warn` or `off`, not `wran` (did you mean `warn`?)"
    );
}
