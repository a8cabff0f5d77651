//! The proof that writing routes.yaml loses nothing: the text written for a manifest, read by
//! the sidecars' parser, is the very `RoutesFile` the launcher built and checked; refusals of
//! the sidecars' schema name the manifest's own line.

use std::collections::BTreeMap;
use std::path::Path;

use bottle_core::RoutesFile;

use super::*;

fn env() -> BTreeMap<String, String> {
    [
        ("API", "sekrit-api"),
        ("GIT", "sekrit-git"),
        ("HDR", "sekrit-hdr"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

fn load(text: &str) -> Loaded {
    crate::manifest::parse(text, Path::new("/tmp/m.yaml"), &env())
        .unwrap_or_else(|e| panic!("{e}\n{text}"))
}

fn refusal(text: &str) -> String {
    match crate::manifest::parse(text, Path::new("/tmp/m.yaml"), &env()) {
        Ok(_) => panic!("accepted:\n{text}"),
        Err(e) => e.to_string(),
    }
}

/// Lines differ by design (manifest lines in the built value, routes.yaml lines in the
/// parsed one); everything the sidecars act on must be equal.
fn without_lines(mut f: RoutesFile) -> RoutesFile {
    for r in &mut f.routes {
        r.line = 0;
    }
    for g in &mut f.git {
        g.line = 0;
    }
    f
}

fn assert_round_trip(l: &Loaded) -> (RoutesFile, String) {
    let built = routes_file(l).unwrap();
    let text = routes_yaml(l);
    let parsed = RoutesFile::parse(&text, Path::new("routes.yaml"))
        .unwrap_or_else(|e| panic!("{e}\n{text}"));
    assert_eq!(
        without_lines(parsed),
        without_lines(built.clone()),
        "\n{text}"
    );
    (built, text)
}

const EVERYTHING: &str = r#"name: demo
image: x
routes:
  - host: api.example.com
    paths: ["/v1/**", "/v2/{a,b}/*"]
    methods: [GET, post]
    auth: {scheme: bearer, token_from: API, prefix: "token #1: \"x\" ", strip_cookies: true}
  - host: "*.example.org:8443"
    auth: {scheme: header, header: X-Api-Key, token_from: HDR}
  - host: q.example.net
    auth: {scheme: query, param: api_key, token_from: API}
  - host: b.example.net
    methods: [GET]
    auth: {scheme: basic, username: "user name", token_from: GIT}
  - host: tunnel.example.com
    tls_passthrough: true
  - host: 127.0.0.1:8080
    allow_cleartext: true
    auth: {scheme: bearer, token_from: API}
git:
  - name: demo
    upstream: https://github.com/acme/demo.git
    auth: {scheme: basic, username: x-access-token, token_from: GIT}
    rules:
      - {ref: "refs/heads/agent/**", allow: [create, update, force, delete]}
      - {ref: "refs/heads/**", allow: []}
    protected: ["refs/heads/main", "refs/tags/*"]
    push_options: true
    max_pack_bytes: 1048576
    max_refs: 7
    max_object_bytes: 4096
  - name: other.repo
    upstream: https://git.example.com/o/other.git
    auth: {scheme: bearer, token_from: GIT}
dlp:
  action: log
  profile: strict
  responses: "off"
  mcp: warn
"#;

#[test]
fn the_written_file_reads_back_as_the_built_value() {
    let (built, text) = assert_round_trip(&load(EVERYTHING));
    assert_eq!(built.routes.len(), 6);
    assert_eq!(built.git.len(), 2);
    assert_eq!(built.git[0].max_refs, 7);
    assert!(built.routes[0].auth.as_ref().unwrap().strip_cookies);
    // Slots only: no host variable name, no value.
    assert!(
        !text.contains("sekrit") && !text.contains(": API"),
        "{text}"
    );
    for minimal in [
        "name: demo\nimage: x\n",
        "name: demo\nimage: x\nroutes: []\ngit: []\ndlp: {}\n",
        "name: demo\nimage: x\nroutes:\n  - host: a.example.com\n",
    ] {
        assert_round_trip(&load(minimal));
    }
}

/// Values with YAML syntax in them (quotes, `#`, `: `, braces, a leading `*` or `&`, words a
/// YAML 1.1 reader takes for booleans) are written so that they read back unchanged and add
/// no key.
#[test]
fn values_with_yaml_syntax_in_them_change_nothing() {
    for prefix in [
        "#", "a: b", "{x}", "*alias", "&anchor", "'q'", "yes", "off", "- item", "\\",
    ] {
        let text = format!(
            "name: demo\nimage: x\nroutes:\n  - host: api.example.com\n    auth: {{scheme: bearer, token_from: API, prefix: {}}}\n",
            serde_json::to_string(prefix).unwrap()
        );
        let (built, written) = assert_round_trip(&load(&text));
        let auth = built.routes[0].auth.as_ref().unwrap();
        assert_eq!(auth.prefix.as_deref(), Some(prefix), "{written}");
    }
}

/// A newline in the manifest's path must not end the header comment and start YAML.
#[test]
fn a_newline_in_the_manifest_path_stays_in_the_comment() {
    let l = crate::manifest::parse(
        "name: demo\nimage: x\n",
        Path::new("/tmp/evil\nroutes: [{host: evil.example}]\n#.yaml"),
        &env(),
    )
    .unwrap();
    let text = routes_yaml(&l);
    let f = RoutesFile::parse(&text, Path::new("routes.yaml")).unwrap();
    assert!(f.routes.is_empty(), "{text}");
    assert!(
        text.lines().next().unwrap().contains("/tmp/evil?routes"),
        "{text}"
    );
}

/// What only the sidecars' schema refuses (the manifest reader knows nothing of globs or
/// header names) is refused at the manifest's line, naming the manifest file: the tree was
/// checked, not a rendered text.
#[test]
fn the_sidecars_schema_refuses_at_the_manifest_line() {
    for (text, want) in [
        (
            "name: demo\nimage: x\nroutes:\n  - host: api.example.com\n    paths:\n      - /ok/**\n      - no-slash\n",
            "/tmp/m.yaml:7: path glob `no-slash` must start with `/`",
        ),
        (
            "name: demo\nimage: x\nroutes:\n  - host: api.example.com\n    auth:\n      scheme: header\n      header: Host\n      token_from: API\n",
            "/tmp/m.yaml:7: header `Host` cannot carry a credential",
        ),
        (
            "name: demo\nimage: x\nroutes:\n  - host: api.example.com\n    methods: [GET, \"GE T\"]\n",
            "/tmp/m.yaml:5: `GE T` is not an HTTP method",
        ),
        (
            "name: demo\nimage: x\ngit:\n  - name: r\n    upstream: https://h.example/r.git\n    rules:\n      - {ref: heads/main, allow: [update]}\n",
            "/tmp/m.yaml:7: ref pattern `heads/main` must start with `refs/`",
        ),
        (
            "name: demo\nimage: x\ngit:\n  - name: r\n    upstream: https://h.example/r.git\n    max_refs: 0\n",
            "/tmp/m.yaml:6: `max_refs` must be a positive whole number",
        ),
        (
            "name: demo\nimage: x\nroutes:\n  - host: api.example.com\n    auth: {scheme: bearer, token_from: API, username: u}\n",
            "/tmp/m.yaml:5: `username` only applies to scheme basic",
        ),
    ] {
        let e = refusal(text);
        assert!(e.starts_with(want), "{text}\n got: {e}\nwant: {want}");
    }
}

#[test]
fn built_lines_are_the_manifest_lines() {
    let l = load(EVERYTHING);
    let f = routes_file(&l).unwrap();
    assert_eq!(f.routes[1].line, 8);
    assert_eq!(f.git[1].line, 32);
}
