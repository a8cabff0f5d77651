//! Tests of manifest parsing and validation.

use super::*;

fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn parse_err(text: &str, e: &BTreeMap<String, String>) -> String {
    match parse(text, Path::new("/tmp/m.yaml"), e) {
        Ok(_) => panic!("expected an error"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn minimal_manifest_parses_with_defaults() {
    let l = parse(
        "name: demo\nimage: alpine:3\n",
        Path::new("/tmp/m.yaml"),
        &env(&[]),
    )
    .unwrap();
    assert_eq!(l.manifest.name, "demo");
    assert_eq!(l.manifest.limits.pids, 1024);
    assert!(l.route_tokens.is_empty());
}

#[test]
fn unknown_key_has_line_and_suggestion() {
    let e = parse_err("name: demo\nimage: x\nalow:\n  - example.com\n", &env(&[]));
    assert!(e.contains("/tmp/m.yaml:3:"), "{e}");
    assert!(e.contains("did you mean `allow`?"), "{e}");
}

#[test]
fn nested_unknown_key_and_bad_variant() {
    let text = "name: demo\nimage: x\nroutes:\n  - host: api.example.com\n    auth:\n      scheme: baerer\n      token_from: T\n";
    let e = parse_err(text, &env(&[("T", "s")]));
    assert!(e.contains(":6:"), "{e}");
    assert!(e.contains("did you mean `bearer`?"), "{e}");
    let text = "name: demo\nimage: x\nroutes:\n  - host: api.example.com\n    methds: [GET]\n";
    let e = parse_err(text, &env(&[]));
    assert!(
        e.contains(":5:") && e.contains("did you mean `methods`?"),
        "{e}"
    );
}

#[test]
fn wrong_type_has_line() {
    let e = parse_err("name: demo\nimage: x\nlimits:\n  pids: lots\n", &env(&[]));
    assert!(e.contains(":4:"), "{e}");
    assert!(e.contains("invalid type"), "{e}");
}

#[test]
fn missing_host_variable_is_an_error_with_line() {
    let text = "name: demo\nimage: x\nroutes:\n  - host: api.example.com\n    auth: {scheme: bearer, token_from: NOPE_TOKEN}\n";
    let e = parse_err(text, &env(&[]));
    assert!(e.contains(":5:") && e.contains("NOPE_TOKEN"), "{e}");
    let e = parse_err(
        "name: demo\nimage: x\nenv:\n  A: \"${NOT_SET_X}\"\n",
        &env(&[]),
    );
    assert!(e.contains(":4:") && e.contains("NOT_SET_X"), "{e}");
}

#[test]
fn env_expansion() {
    let text = "name: demo\nimage: x\nenv:\n  A: \"pre-${H}-$$-${NOPE:-dflt}\"\n";
    let l = parse(text, Path::new("/tmp/m.yaml"), &env(&[("H", "v")])).unwrap();
    assert_eq!(l.manifest.env["A"], "pre-v-$-dflt");
}

#[test]
fn credential_cannot_be_copied_into_agent_env() {
    let text = "name: demo\nimage: x\nenv:\n  LEAK: \"${GH}\"\nroutes:\n  - host: api.example.com\n    auth: {scheme: bearer, token_from: GH}\n";
    let e = parse_err(text, &env(&[("GH", "secret")]));
    assert!(e.contains("credential"), "{e}");
    assert!(!e.contains("secret\""), "{e}");
}

#[test]
fn reserved_env_rejected() {
    let e = parse_err(
        "name: demo\nimage: x\nenv:\n  HTTPS_PROXY: http://evil:1\n",
        &env(&[]),
    );
    assert!(e.contains(":4:") && e.contains("HTTPS_PROXY"), "{e}");
}

#[test]
fn token_slots_are_shared_per_variable() {
    let text = "name: demo\nimage: x\nroutes:\n  - host: a.example.com\n    auth: {scheme: bearer, token_from: T1}\n  - host: b.example.com\n    auth: {scheme: bearer, token_from: T1}\n  - host: c.example.com\n    auth: {scheme: header, header: X-Key, token_from: T2}\n";
    let l = parse(
        text,
        Path::new("/tmp/m.yaml"),
        &env(&[("T1", "a"), ("T2", "b")]),
    )
    .unwrap();
    assert_eq!(l.route_tokens.len(), 2);
    assert_eq!(l.route_slot("T1"), Some("BOTTLE_TOKEN_0"));
    assert_eq!(l.route_slot("T2"), Some("BOTTLE_TOKEN_1"));
}

#[test]
fn bad_name_and_bad_resolve() {
    let e = parse_err("name: Demo_1\nimage: x\n", &env(&[]));
    assert!(e.contains(":1:"), "{e}");
    let e = parse_err(
        "name: d\nimage: x\nresolve:\n  origin.test: not-an-ip\n",
        &env(&[]),
    );
    assert!(e.contains(":4:") && e.contains("IP address"), "{e}");
}

#[test]
fn suggestions() {
    assert_eq!(nearest("imgae", &["image", "name", "env"]), Some("image"));
    assert_eq!(nearest("zzzzzz", &["image", "name"]), None);
}

const GIT_AND_API: &str = "name: demo\nimage: x\nroutes:\n  - host: api.github.com\n    paths: [\"/repos/acme/**\"]\n    auth: {scheme: bearer, token_from: GH}\ngit:\n  - name: demo\n    upstream: https://github.com/acme/demo.git\n    auth: {scheme: basic, username: x-access-token, token_from: GH}\n    rules: [{ref: \"refs/heads/agent/**\", allow: [create, update]}]\n";

#[test]
fn git_token_on_an_api_route_needs_methods() {
    let e = parse_err(GIT_AND_API, &env(&[("GH", "s")]));
    assert!(e.starts_with("/tmp/m.yaml:4: "), "{e}");
    for part in [
        "route `api.github.com`",
        "`GH`",
        "git repository `demo`",
        "methods: [GET, HEAD]",
    ] {
        assert!(e.contains(part), "{part}: {e}");
    }
    // Explicit methods: accepted, and they reach routes.yaml.
    let ok = GIT_AND_API.replace(
        "    auth: {scheme: bearer",
        "    methods: [GET, HEAD]\n    auth: {scheme: bearer",
    );
    let l = parse(&ok, Path::new("/tmp/m.yaml"), &env(&[("GH", "s")])).unwrap();
    let f = bottle_core::RoutesFile::parse(
        &crate::manifest::live_config::routes_yaml(&l),
        Path::new("routes.yaml"),
    )
    .unwrap();
    assert_eq!(f.routes.len(), 1);
    // Another variable holding the same secret is the same credential; the value is not shown.
    let alias = GIT_AND_API.replacen("token_from: GH}", "token_from: ALIAS}", 1);
    let e = parse_err(&alias, &env(&[("GH", "s3cr3t-v"), ("ALIAS", "s3cr3t-v")]));
    assert!(
        e.contains("`ALIAS`, which holds the same value as `GH`"),
        "{e}"
    );
    assert!(!e.contains("s3cr3t-v"), "{e}");
    // A different token on the API route needs no methods.
    let other = GIT_AND_API.replacen("token_from: GH}", "token_from: API}", 1);
    parse(
        &other,
        Path::new("/tmp/m.yaml"),
        &env(&[("GH", "s"), ("API", "t")]),
    )
    .unwrap();
}

fn cleartext(host: &str, resolve: &str) -> String {
    format!("name: demo\nimage: x\n{resolve}routes:\n  - host: \"{host}\"\n    allow_cleartext: true\n    auth: {{scheme: bearer, token_from: T}}\n")
}

#[test]
fn cleartext_only_for_private_hosts() {
    let e = env(&[("T", "s")]);
    for host in ["api.example.com", "8.8.8.8:80", "*.corp.test"] {
        let msg = parse_err(&cleartext(host, ""), &e);
        assert!(msg.starts_with("/tmp/m.yaml:4: "), "{msg}");
        assert!(msg.contains(&format!("route `{host}`")), "{msg}");
        assert!(
            msg.contains("use https, or pin the host to a private address with resolve:"),
            "{msg}"
        );
    }
    // A metadata address is refused as a route host before allow_cleartext is looked at.
    let msg = parse_err(&cleartext("169.254.169.254", ""), &e);
    assert!(
        msg.starts_with("/tmp/m.yaml:4: ") && msg.contains("metadata"),
        "{msg}"
    );
    // Pinned to a public address: still refused.
    let msg = parse_err(
        &cleartext("svc.corp.test:8080", "resolve:\n  svc.corp.test: 8.8.4.4\n"),
        &e,
    );
    assert!(msg.contains("allow_cleartext"), "{msg}");
    for (host, resolve) in [
        ("127.0.0.1:8080", ""),
        ("localhost:3000", ""),
        ("10.1.2.3", ""),
        ("[::1]:8080", ""),
        (
            "svc.corp.test:8080",
            "resolve:\n  svc.corp.test: 10.9.8.7\n",
        ),
    ] {
        let l = parse(&cleartext(host, resolve), Path::new("/tmp/m.yaml"), &e)
            .unwrap_or_else(|err| panic!("{host}: {err}"));
        let y = crate::manifest::live_config::routes_yaml(&l);
        let f = bottle_core::RoutesFile::parse(&y, Path::new("routes.yaml")).unwrap();
        assert!(f.routes[0].allow_cleartext, "{y}");
    }
    // Without the key, nothing is rendered and egress keeps refusing http:// injection.
    let l = parse(
        &cleartext("127.0.0.1", "").replace("    allow_cleartext: true\n", ""),
        Path::new("/tmp/m.yaml"),
        &e,
    )
    .unwrap();
    assert!(!crate::manifest::live_config::routes_yaml(&l).contains("allow_cleartext"));
    // With tls_passthrough it means nothing: egress's own parser refuses it.
    let msg = parse_err(
        "name: d\nimage: x\nroutes:\n  - host: 127.0.0.1\n    allow_cleartext: true\n    tls_passthrough: true\n",
        &e,
    );
    assert!(msg.contains("allow_cleartext"), "{msg}");
}

#[test]
fn over_broad_allow_is_refused_with_its_line() {
    for entry in [
        "0.0.0.0/0",
        "*.com",
        "169.254.169.254",
        "10.0.0.0/8",
        "*.co.uk",
    ] {
        let text = format!("name: demo\nimage: x\nallow:\n  - example.com\n  - \"{entry}\"\n");
        let e = parse_err(&text, &env(&[]));
        assert!(e.contains("/tmp/m.yaml:5:"), "{entry}: {e}");
        assert!(e.contains("--force-allow"), "{entry}: {e}");
        // The operator's flag, never the manifest, overrides it.
        assert!(parse_opts(&text, Path::new("/tmp/m.yaml"), &env(&[]), true).is_ok());
    }
}

#[test]
fn user_must_be_numeric_or_root() {
    for ok in ["root", "1000", "1000:1000", "0:0"] {
        let text = format!("name: demo\nimage: x\nuser: \"{ok}\"\n");
        assert!(
            parse(&text, Path::new("/tmp/m.yaml"), &env(&[])).is_ok(),
            "{ok}"
        );
    }
    for bad in ["agent", "1000:", ":1000", "1000:staff", "-1"] {
        let e = parse_err(
            &format!("name: demo\nimage: x\nuser: \"{bad}\"\n"),
            &env(&[]),
        );
        assert!(e.contains(":3:") && e.contains("UID:GID"), "{bad}: {e}");
    }
    let e = parse_err("name: demo\nimage: x\nworkspace_git: ro\n", &env(&[]));
    assert!(e.contains("ro-hooks"), "{e}");
}

#[test]
fn dlp_keys_parse_with_defaults_for_the_missing_ones() {
    let text = "name: demo\nimage: x\ndlp:\n  profile: strict\n  responses: warn\n  mcp: off\n";
    let l = parse(text, Path::new("/tmp/m.yaml"), &env(&[])).unwrap();
    let d = l.manifest.dlp_effective();
    assert_eq!(d.action, DlpAction::Block);
    assert_eq!(d.profile, DlpProfile::Strict);
    assert_eq!(d.responses, ScanAction::Warn);
    assert_eq!(d.mcp, ScanAction::Off);
    let none = parse(
        "name: demo\nimage: x\n",
        Path::new("/tmp/m.yaml"),
        &env(&[]),
    )
    .unwrap();
    assert_eq!(none.manifest.dlp_effective(), DlpEffective::default());
    let empty = parse(
        "name: demo\nimage: x\ndlp: {}\n",
        Path::new("/tmp/m.yaml"),
        &env(&[]),
    )
    .unwrap();
    assert_eq!(empty.manifest.dlp_effective(), DlpEffective::default());
}

/// A wrong word names the key, its line and the allowed words; near misses get a suggestion.
#[test]
fn dlp_bad_values_name_key_line_and_allowed_words() {
    for (text, line, key, allowed, suggestion) in [
        (
            "name: demo\nimage: x\ndlp:\n  action: block\n  profile: strcit\n",
            ":5:",
            "profile",
            &["default", "strict"][..],
            Some("strict"),
        ),
        (
            "name: demo\nimage: x\ndlp:\n  responses: wran\n",
            ":4:",
            "responses",
            &["block", "warn", "off"][..],
            Some("warn"),
        ),
        (
            "name: demo\nimage: x\n\ndlp:\n  mcp: none\n",
            ":5:",
            "mcp",
            &["block", "warn", "off"][..],
            None,
        ),
        (
            "name: demo\nimage: x\ndlp: {mcp: true}\n",
            ":3:",
            "mcp",
            &["block", "warn", "off"][..],
            None,
        ),
    ] {
        let e = parse_err(text, &env(&[]));
        assert!(e.contains(line), "{text:?}: {e}");
        assert!(e.contains(key), "{text:?}: key not named: {e}");
        if !text.contains("true") {
            for a in allowed {
                assert!(e.contains(&format!("`{a}`")), "{text:?}: {a} missing: {e}");
            }
        }
        if let Some(s) = suggestion {
            assert!(e.contains(&format!("did you mean `{s}`?")), "{e}");
        }
    }
}

#[test]
fn dlp_unknown_key_is_refused_with_line_and_suggestion() {
    let e = parse_err(
        "name: demo\nimage: x\ndlp:\n  action: block\n  response: off\n",
        &env(&[]),
    );
    assert!(e.contains(":5:"), "{e}");
    assert!(e.contains("did you mean `responses`?"), "{e}");
    // An agent hiding a key behind a different case gets no silent default either.
    let e = parse_err("name: demo\nimage: x\ndlp:\n  MCP: off\n", &env(&[]));
    assert!(e.contains(":4:") && e.contains("MCP"), "{e}");
}

/// A key given twice (the second quieter) is an error, not "last one wins": what the operator
/// reads first is not silently overridden further down.
#[test]
fn dlp_duplicate_key_is_refused() {
    let e = parse_err(
        "name: demo\nimage: x\ndlp:\n  responses: block\n  mcp: block\n  responses: off\n",
        &env(&[]),
    );
    assert!(e.contains("responses") && e.contains("duplicate"), "{e}");
}

/// YAML anchors, aliases and merge keys let a manifest say one thing where the operator reads
/// and mean another further down (a `<<: *base` quietly adding keys): refused, with the line.
#[test]
fn anchors_aliases_and_merge_keys_are_refused() {
    for (text, line) in [
        // An anchored block is reported at its first line.
        ("base: &b\n  name: demo\nimage: x\n<<: *b\n", ":2:"),
        ("name: demo\nimage: x\nallow:\n  - &h example.com\n  - *h\n", ":4:"),
        (
            "name: demo\nimage: x\nroutes:\n  - host: a.example.com\n    auth: &a {scheme: bearer, token_from: T}\n",
            ":5:",
        ),
    ] {
        let e = parse_err(text, &env(&[("T", "s")]));
        assert!(e.contains(line) && e.contains("anchors"), "{text:?}: {e}");
    }
}

/// A second document (after `---`) is not silently ignored or merged.
#[test]
fn a_second_document_is_refused() {
    let e = parse_err(
        "name: demo\nimage: x\n---\nallow: [\"0.0.0.0/0\"]\n",
        &env(&[]),
    );
    assert!(e.contains(":3:") && e.contains("one YAML document"), "{e}");
    let e = parse_err("# nothing\n", &env(&[]));
    assert!(e.contains("empty"), "{e}");
}

/// Lines come from the reader, not from searching the text: a value or variable name that
/// also appears earlier (in another key, a comment, or the top-level `name`) does not move
/// the error to the wrong line.
#[test]
fn error_lines_are_the_lines_of_the_keys_not_of_the_first_match() {
    // The variable's name appears first in an env value.
    let text = "name: demo\nimage: x\nenv:\n  NOTE: \"see MY_TOKEN\"\nroutes:\n  - host: a.example.com\n    auth: {scheme: bearer, token_from: MY_TOKEN}\n";
    let e = parse_err(text, &env(&[]));
    assert!(e.starts_with("/tmp/m.yaml:7: "), "{e}");
    // A git repository named like the bottle, defined twice: the second definition's line.
    let text = "name: demo\nimage: x\ngit:\n  - name: demo\n    upstream: https://h.example/a.git\n  - name: demo\n    upstream: https://h.example/b.git\n";
    let e = parse_err(text, &env(&[]));
    assert!(
        e.starts_with("/tmp/m.yaml:6: ") && e.contains("twice"),
        "{e}"
    );
    // A too-broad entry also written in a comment above it: the entry's line.
    let text = "name: demo\nimage: x\n# 10.0.0.0/8 is our office\nallow:\n  - example.com\n  - 10.0.0.0/8\n";
    let e = parse_err(text, &env(&[]));
    assert!(e.starts_with("/tmp/m.yaml:6: "), "{e}");
}

/// Types are checked by kind, not coerced: a quoted `"true"` is not a boolean, a list is not
/// a string, a quoted number is not a number.
#[test]
fn values_of_the_wrong_kind_are_refused_with_their_line() {
    for (text, line, words) in [
        (
            "name: demo\nimage: x\nroutes:\n  - host: a.example.com\n    tls_passthrough: \"true\"\n",
            ":5:",
            "true or false",
        ),
        ("name: [demo]\nimage: x\n", ":1:", "string"),
        ("name: demo\nimage: x\nlimits:\n  pids: \"64\"\n", ":4:", "whole number"),
        ("name: demo\nimage: x\ncommand: {a: 1}\n", ":3:", "list of arguments"),
        ("name: demo\nimage: x\nenv:\n  A:\n", ":4:", "needs a value"),
        ("name: demo\nimage: x\nallow: example.com\n", ":3:", "must be a list"),
    ] {
        let e = parse_err(text, &env(&[]));
        assert!(e.contains(line) && e.contains(words), "{text:?}: {e}");
    }
}

/// Misspelt values get the same did-you-mean as misspelt keys (one suggester, bottle-core's).
#[test]
fn misspelt_words_get_the_shared_suggestion() {
    for (text, want) in [
        ("name: demo\nimage: x\nworkspace_git: hide_hooks\n", "did you mean `hide-hooks`?"),
        ("name: demo\nimage: x\nworkspace_git: ro-hook\n", "did you mean `ro-hooks`?"),
        (
            "name: demo\nimage: x\ngit:\n  - name: r\n    upstream: https://h.example/r.git\n    rules: [{ref: \"refs/heads/**\", allow: [udpate]}]\n",
            "did you mean `update`?",
        ),
        ("name: demo\nimage: x\nlimit:\n  pids: 64\n", "did you mean `limits`?"),
        ("name: demo\nimage: x\nupstream-ca: ca.pem\n", "did you mean `upstream_ca`?"),
    ] {
        let e = parse_err(text, &env(&[]));
        assert!(e.contains(want), "{text:?}: {e}");
    }
}

/// Damaged manifests (bytes replaced, lines cut) are refused or accepted, never a panic.
#[test]
fn damaged_manifests_never_panic() {
    let base = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../examples/demo.yaml"
    ))
    .unwrap();
    let e = env(&[("USER", "u")]);
    let mut state: u64 = 0x2545_f491_4f6c_dd1d;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let junk = [
        ":", "-", " ", "\n", "\"", "'", "{", "[", "*", "&", "!", "#", "~", "\t", "é",
    ];
    for _ in 0..2000 {
        let mut text = base.clone();
        for _ in 0..(next() % 4 + 1) {
            let at = (next() as usize) % (text.len() + 1);
            let at = (0..=at)
                .rev()
                .find(|i| text.is_char_boundary(*i))
                .unwrap_or(0);
            let j = junk[(next() as usize) % junk.len()];
            if next() % 3 == 0 {
                text.truncate(at);
            } else {
                text.insert_str(at, j);
            }
        }
        let _ = parse(&text, Path::new("/tmp/m.yaml"), &e);
    }
}
