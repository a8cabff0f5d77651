use super::*;
use serde_json::Value;

fn h(s: &str) -> Host {
    crate::host::parse_host(s).unwrap()
}

fn url() -> SuperviseUrl {
    "http://supervise:8070/".parse().unwrap()
}

/// The fields supervise's `Wire` takes for each kind (`deny_unknown_fields`): required ones
/// and optional ones, each a string or an array of strings.
fn wire_fields(kind: &str) -> (&'static [&'static str], &'static [&'static str]) {
    match kind {
        "host" => (&["kind", "host", "reason"], &[]),
        "route" => (&["kind", "host", "reason"], &["paths", "methods"]),
        "git-ref" => (&["kind", "repo", "ref", "allow", "reason"], &[]),
        other => panic!("unknown kind {other}"),
    }
}

fn assert_wire_shaped(json: &str) -> serde_json::Map<String, Value> {
    let v: Value = serde_json::from_str(json).unwrap_or_else(|e| panic!("{json}: {e}"));
    let obj = v.as_object().unwrap().clone();
    let kind = obj["kind"].as_str().unwrap();
    let (required, optional) = wire_fields(kind);
    for k in required {
        assert!(obj.contains_key(*k), "{kind} lacks {k}: {json}");
    }
    for (k, v) in &obj {
        assert!(
            required.contains(&k.as_str()) || optional.contains(&k.as_str()),
            "{kind} has unknown field {k}: {json}"
        );
        let ok = match k.as_str() {
            "paths" | "methods" | "allow" => v
                .as_array()
                .is_some_and(|a| !a.is_empty() && a.iter().all(Value::is_string)),
            _ => v.is_string(),
        };
        assert!(ok, "{kind}.{k} has the wrong type: {json}");
    }
    assert!(
        json.bytes()
            .all(|b| (b' '..=b'~').contains(&b) && b != b'\''),
        "printable ASCII without a single quote: {json}"
    );
    obj
}

#[test]
fn every_askable_kind_renders_json_supervise_accepts() {
    let asks = [
        AskAccess::host(&h("evil.example"), 443).unwrap(),
        AskAccess::host(&h("api.example"), 8443).unwrap(),
        AskAccess::route(
            &h("api.github.com"),
            443,
            Some("/repos/acme/x"),
            Some("delete"),
        )
        .unwrap(),
        AskAccess::route(&h("api.github.com"), 443, None, None).unwrap(),
        AskAccess::GitRef {
            repo: "app".into(),
            refname: "refs/heads/main".into(),
            allow: vec!["update".into()],
        },
    ];
    let mut kinds = std::collections::HashSet::new();
    for a in &asks {
        let obj = assert_wire_shaped(&a.json(REASON_PLACEHOLDER));
        assert_eq!(obj["reason"], REASON_PLACEHOLDER);
        kinds.insert(obj["kind"].as_str().unwrap().to_string());
    }
    assert_eq!(kinds.len(), 3, "host, route and git-ref all covered");
    let obj = assert_wire_shaped(&asks[1].json("r"));
    assert_eq!(obj["host"], "api.example:8443");
    let obj = assert_wire_shaped(&asks[2].json("r"));
    assert_eq!(obj["paths"], serde_json::json!(["/repos/acme/x"]));
    assert_eq!(obj["methods"], serde_json::json!(["DELETE"]));
    assert_eq!(
        asks[0].curl_line(&url()),
        r#"curl -s -X POST 'http://supervise:8070/v1/requests' -H 'content-type: application/json' -d '{"kind":"host","host":"evil.example","reason":"<say why you need it>"}'"#
    );
    assert_eq!(
        asks[0].mcp_line(&url()),
        r#"tool request_access at http://supervise:8070/mcp, arguments {"kind":"host","host":"evil.example","reason":"<say why you need it>"}"#
    );
    assert_eq!(asks[0].operator_line(), "bottle allow evil.example");
}

#[test]
fn never_asks_for_private_metadata_or_broad_hosts() {
    for s in [
        "10.0.0.1",
        "127.0.0.1",
        "169.254.169.254",
        "::1",
        "localhost",
        "metadata.google.internal",
    ] {
        assert_eq!(AskAccess::host(&h(s), 443), None, "{s}");
        assert_eq!(AskAccess::route(&h(s), 443, Some("/"), None), None, "{s}");
    }
}

#[test]
fn route_asks_leave_out_globs_and_unknown_methods() {
    let AskAccess::Route { paths, methods, .. } =
        AskAccess::route(&h("a.example"), 443, Some("/x/*"), Some("BREW")).unwrap()
    else {
        panic!("route");
    };
    assert_eq!((paths, methods), (None, None));
    let long = format!("/{}", "a".repeat(300));
    let AskAccess::Route { paths, .. } =
        AskAccess::route(&h("a.example"), 443, Some(&long), None).unwrap()
    else {
        panic!("route");
    };
    assert_eq!(paths, None, "over supervise's path limit");
}

/// What a POSIX shell makes of `line` when `curl` is replaced by a printer of its words.
fn shell_words(line: &str) -> Vec<String> {
    let rest = line.strip_prefix("curl ").unwrap();
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!("printf '%s\\0' {rest}"))
        .output()
        .unwrap();
    assert!(out.status.success());
    String::from_utf8(out.stdout)
        .unwrap()
        .split('\0')
        .filter(|w| !w.is_empty())
        .map(str::to_string)
        .collect()
}

#[test]
fn hostile_fields_never_leave_their_quotes() {
    let hostile = [
        "a'; touch /tmp/pwned; echo '",
        "$(id)`id`\"$HOME\\",
        "x\ny\r\u{0}z",
        "\u{202e}evil\u{200b}",
        "😀'\"",
    ];
    for bad in hostile {
        let ask = AskAccess::Route {
            host: bad.into(),
            paths: Some(vec![bad.into()]),
            methods: Some(vec![bad.into()]),
        };
        let line = ask.curl_line(&url());
        assert!(!line.contains('\n') && !line.contains('\r'), "{line:?}");
        assert!(line.is_ascii(), "{line:?}");
        let words = shell_words(&line);
        assert_eq!(
            words[..7],
            [
                "-s",
                "-X",
                "POST",
                "http://supervise:8070/v1/requests",
                "-H",
                "content-type: application/json",
                "-d"
            ],
            "{line}"
        );
        assert_eq!(words.len(), 8, "one JSON word: {words:?}");
        let v: Value = serde_json::from_str(&words[7]).unwrap();
        assert_eq!(v["host"], bad, "the value round-trips exactly");
        assert_eq!(v["paths"][0], bad);
        // The MCP line carries the same escaped JSON.
        assert!(ask.mcp_line(&url()).is_ascii());
    }
    assert_eq!(shell_quote("it's"), r"'it'\''s'");
}

#[test]
fn supervise_url_is_plain() {
    assert_eq!(url().as_str(), "http://supervise:8070");
    assert!("https://10.0.0.5:8070/base".parse::<SuperviseUrl>().is_ok());
    assert!("http://[::1]:8070".parse::<SuperviseUrl>().is_ok());
    for bad in [
        "",
        "supervise:8070",
        "ftp://supervise",
        "http://",
        "http://user:pw@supervise",
        "http://s/x?q=1",
        "http://s/'$(id)'",
        "http://s/ x",
        "http://s/\nx",
    ] {
        assert!(bad.parse::<SuperviseUrl>().is_err(), "{bad:?}");
    }
    assert!(format!("http://{}", "a".repeat(300))
        .parse::<SuperviseUrl>()
        .is_err());
}
