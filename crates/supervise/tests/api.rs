#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The JSON API over real TCP, with an agent that tries to abuse it.

mod common;

use std::time::Duration;

use serde_json::json;
use supervise::ids::RequestId;
use supervise::store::{write_decision, Decision};

fn approve(for_: &str) -> Decision {
    Decision {
        decision: "approved".into(),
        for_: Some(for_.into()),
        until_unix: None,
        reason: None,
        decided_at: "2026-01-01T00:00:00Z".into(),
    }
}

#[tokio::test]
async fn long_poll_gets_the_operators_decision() {
    let srv = common::start(10, 5, 50).await;
    let addr = srv.addr;
    let waiting = tokio::spawn(async move {
        common::post(
            addr,
            "/v1/requests?wait=15",
            json!({"kind": "host", "host": "docs.rs", "reason": "read crate docs"}),
        )
        .await
    });
    // The pending file appears; the operator (launcher) decides by writing the decision file.
    let id = loop {
        let files = srv.request_files();
        if let Some((name, body)) = files.iter().find(|(n, _)| !n.starts_with('.')) {
            let v: serde_json::Value = serde_json::from_slice(body).unwrap();
            assert_eq!(v["ask"]["host"], "docs.rs");
            assert_eq!(v["reason"], "read crate docs");
            break RequestId::parse(name.trim_end_matches(".json")).unwrap();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(srv.requests_dir().join(format!("{id}.json")))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    write_decision(&srv.state(), &id, &approve("session")).unwrap();
    let r = waiting.await.unwrap();
    assert_eq!(r.status, 201, "{}", r.head);
    assert_eq!(r.json["id"], id.as_str());
    assert_eq!(r.json["status"], "approved");
    assert_eq!(r.json["for"], "session");
    let r = common::call(addr, "GET", &format!("/v1/requests/{id}"), b"").await;
    assert_eq!(r.json["status"], "approved");
    assert!(srv.own_audit().contains("\"decision\":\"pending\""));
    assert!(
        !srv.own_audit().contains("read crate docs"),
        "the reason text stays out of the audit log"
    );
}

#[tokio::test]
async fn invalid_and_over_broad_refused_with_bottle_allows_reason() {
    let srv = common::start(100, 100, 50).await;
    for host in [
        "*.com",
        "0.0.0.0/0",
        "169.254.169.254",
        "10.0.0.0/8",
        "localhost:22",
        "evil.com\nexample.com",
        "a b",
    ] {
        let r = common::post(
            srv.addr,
            "/v1/requests",
            json!({"kind": "host", "host": host, "reason": "need it"}),
        )
        .await;
        assert_eq!(r.status, 422, "{host}");
        let want = bottle_core::allow_entry::agent_refusal(host.trim()).unwrap();
        assert_eq!(r.json["error"], want.as_str(), "{host}");
    }
    for body in [
        json!({"kind": "host", "host": "example.com"}),
        json!({"kind": "route", "host": "api.github.com", "auth": {"scheme": "bearer", "token_from": "GITHUB_TOKEN"}, "reason": "r"}),
        json!({"kind": "git-ref", "repo": "demo", "ref": "refs/heads/*", "allow": ["force"], "reason": "r"}),
        json!({"kind": "host", "host": "example.com", "reason": "fine\u{1b}[1A\u{1b}[2Kapproved by operator"}),
    ] {
        let r = common::post(srv.addr, "/v1/requests", body.clone()).await;
        assert_eq!(r.status, 422, "{body}");
    }
    let r = common::call(srv.addr, "POST", "/v1/requests", b"{not json").await;
    assert_eq!(r.status, 400);
    assert!(
        srv.request_files().is_empty(),
        "nothing written for a refused request"
    );
}

#[tokio::test]
async fn oversized_body_refused_and_nothing_written() {
    let srv = common::start(10, 5, 50).await;
    let big = json!({"kind": "host", "host": "example.com", "reason": "x".repeat(64 * 1024)});
    let r = common::post(srv.addr, "/v1/requests", big).await;
    assert_eq!(r.status, 413, "{}", r.head);
    let long_reason = json!({"kind": "host", "host": "example.com", "reason": "x".repeat(1025)});
    assert_eq!(
        common::post(srv.addr, "/v1/requests", long_reason)
            .await
            .status,
        422
    );
    assert!(srv.request_files().is_empty());
}

#[tokio::test]
async fn unknown_and_hostile_ids_are_not_found() {
    let srv = common::start(10, 5, 50).await;
    // A file outside the requests dir that a traversal would reach.
    std::fs::write(srv.state().join("secret.json"), br#"{"id":"x"}"#).unwrap();
    let unknown = RequestId::random();
    let long = "a".repeat(5000);
    for id in [
        unknown.as_str(),
        "..%2Fsecret",
        "../secret",
        "%2e%2e%2fsecret",
        long.as_str(),
        "%C3%A9aaaaaaaaaaaaaaaaaaaaaaaa",
        "aaaaaaaaaaaaaaaaaaaaaaaaaa.decision",
    ] {
        let r = common::call(srv.addr, "GET", &format!("/v1/requests/{id}"), b"").await;
        assert!(
            r.status == 404 || r.status == 400 || r.status == 431,
            "{id}: {}",
            r.head
        );
        assert_ne!(r.status, 200);
    }
}

#[tokio::test]
async fn double_decision_first_one_wins() {
    let srv = common::start(10, 5, 50).await;
    let r = common::post(
        srv.addr,
        "/v1/requests",
        json!({"kind": "host", "host": "pypi.org", "reason": "pip"}),
    )
    .await;
    assert_eq!(r.status, 201);
    let id = RequestId::parse(r.json["id"].as_str().unwrap()).unwrap();
    let deny = Decision {
        decision: "denied".into(),
        for_: None,
        until_unix: None,
        reason: Some("no".into()),
        decided_at: String::new(),
    };
    write_decision(&srv.state(), &id, &approve("1h")).unwrap();
    let second = write_decision(&srv.state(), &id, &deny).unwrap_err();
    assert_eq!(second.kind(), std::io::ErrorKind::AlreadyExists);
    assert_eq!(
        common::call(srv.addr, "GET", &format!("/v1/requests/{id}"), b"")
            .await
            .json["status"],
        "approved"
    );
    // Even a decision file swapped in by rename afterwards changes nothing supervise reports.
    let path = srv.requests_dir().join(format!("{id}.decision.json"));
    let tmp = srv.requests_dir().join("swap.tmp");
    std::fs::write(&tmp, serde_json::to_vec(&deny).unwrap()).unwrap();
    std::fs::rename(&tmp, &path).unwrap();
    assert_eq!(
        common::call(srv.addr, "GET", &format!("/v1/requests/{id}"), b"")
            .await
            .json["status"],
        "approved"
    );
    // No decision for a request that does not exist.
    let ghost = RequestId::random();
    assert_eq!(
        write_decision(&srv.state(), &ghost, &deny)
            .unwrap_err()
            .kind(),
        std::io::ErrorKind::NotFound
    );
}

#[tokio::test]
async fn flood_is_rate_limited_and_pending_requests_survive() {
    let srv = common::start(10, 5, 50).await;
    let mut ok = Vec::new();
    let mut limited = 0;
    for i in 0..40 {
        let r = common::post(
            srv.addr,
            "/v1/requests",
            json!({"kind": "host", "host": format!("h{i}.example.com"), "reason": "flood"}),
        )
        .await;
        match r.status {
            201 => ok.push(r.json["id"].as_str().unwrap().to_owned()),
            429 => {
                limited += 1;
                let retry = r
                    .head
                    .lines()
                    .find(|l| l.to_ascii_lowercase().starts_with("retry-after:"));
                assert!(retry.is_some(), "{}", r.head);
            }
            s => panic!("unexpected {s}"),
        }
    }
    assert!(ok.len() >= 5 && ok.len() <= 6, "{}", ok.len());
    assert_eq!(limited, 40 - ok.len());
    let files = srv.request_files();
    assert_eq!(
        files.len(),
        ok.len(),
        "one file per accepted request, none for refused ones"
    );
    for id in &ok {
        let r = common::call(srv.addr, "GET", &format!("/v1/requests/{id}"), b"").await;
        assert_eq!(r.json["status"], "pending");
    }
}

#[tokio::test]
async fn pending_cap_refuses_without_touching_pending_ones() {
    let srv = common::start(1000, 1000, 3).await;
    for i in 0..3 {
        let r = common::post(
            srv.addr,
            "/v1/requests",
            json!({"kind": "host", "host": format!("h{i}.example.com"), "reason": "r"}),
        )
        .await;
        assert_eq!(r.status, 201);
    }
    let before = srv.request_files();
    let r = common::post(
        srv.addr,
        "/v1/requests",
        json!({"kind": "host", "host": "more.example.com", "reason": "r"}),
    )
    .await;
    assert_eq!(r.status, 429);
    assert_eq!(
        srv.request_files(),
        before,
        "pending requests byte for byte unchanged"
    );
}

#[tokio::test]
async fn blocks_from_audit_lines_newest_first_without_extra_fields() {
    let srv = common::start(10, 5, 50).await;
    let lines = [
        r#"{"ts":"2026-01-01T00:00:01Z","component":"pipelock","event":"connect","decision":"deny","reason":"host not allowed","method":"CONNECT","host":"evil.example","port":443,"path":"","finding":"AKIA-SECRET-MATCH"}"#,
        r#"{"ts":"2026-01-01T00:00:03Z","component":"egress","event":"request","decision":"allow","host":"ok.example"}"#,
        r#"{"ts":"2026-01-01T00:00:02Z","component":"pipelock","event":"request","decision":"deny","reason":"secret in request","host":"paste.example","path":"/?q=[REDACTED]","extra":{"nested":1}}"#,
        r#"not json at all"#,
        r#"{"ts":"2026-01-01T00:00:09Z","decision":"deny","host":"trunc"#,
        r#"["decision","deny"]"#,
    ];
    std::fs::write(srv.audit_dir().join("pipelock.log"), lines.join("\n")).unwrap();
    std::fs::write(srv.audit_dir().join("git-gate.log"), "{\"ts\":\"2026-01-01T00:00:05Z\",\"component\":\"git-gate\",\"decision\":\"deny\",\"reason\":\"ref not allowed\"}\n").unwrap();
    let r = common::call(srv.addr, "GET", "/v1/blocks", b"").await;
    assert_eq!(r.status, 200);
    let blocks = r.json["blocks"].as_array().unwrap();
    let hosts: Vec<_> = blocks
        .iter()
        .map(|b| b["component"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(hosts, ["git-gate", "pipelock", "pipelock"]);
    assert_eq!(blocks[1]["host"], "paste.example");
    let text = r.json.to_string();
    assert!(
        !text.contains("AKIA-SECRET-MATCH") && !text.contains("nested") && !text.contains("trunc"),
        "{text}"
    );
    let r = common::call(srv.addr, "GET", "/v1/blocks?limit=1", b"").await;
    assert_eq!(r.json["blocks"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn check_names_the_deciding_rule() {
    let srv = common::start(10, 5, 50).await;
    std::fs::write(
        srv.config_dir().join("allowlist"),
        "example.com\n*.pypi.org\n203.0.113.0/24\n",
    )
    .unwrap();
    std::fs::write(
        srv.config_dir().join("routes.yaml"),
        "routes:\n  - host: api.github.com\n    paths: [\"/repos/acme/**\"]\n    methods: [GET]\n",
    )
    .unwrap();
    let q = |url: &str, m: &str| {
        format!(
            "/v1/check?url={}&method={m}",
            url.replace(':', "%3A")
                .replace('/', "%2F")
                .replace('[', "%5B")
                .replace(']', "%5D")
        )
    };
    let cases = [
        ("https://example.com/x", "GET", true, "allowlist"),
        ("https://files.pypi.org/simple", "GET", true, "allowlist"),
        ("https://evil.example/", "GET", false, "default-deny"),
        ("https://api.github.com/repos/acme/x", "GET", true, "route"),
        (
            "https://api.github.com/repos/acme/x",
            "DELETE",
            false,
            "route",
        ),
        (
            "https://api.github.com/repos/other/x",
            "GET",
            false,
            "route",
        ),
        (
            "http://169.254.169.254/latest/meta-data",
            "GET",
            false,
            "ssrf",
        ),
        ("http://127.0.0.1:9099/", "GET", false, "ssrf"),
        (
            "https://example.com.evil.example/",
            "GET",
            false,
            "default-deny",
        ),
    ];
    for (url, m, allowed, rule) in cases {
        let r = common::call(srv.addr, "GET", &q(url, m), b"").await;
        assert_eq!(r.status, 200, "{url}");
        assert_eq!(r.json["allowed"], allowed, "{url} {m}: {}", r.json);
        assert_eq!(r.json["rule"], rule, "{url} {m}: {}", r.json);
    }
    for bad in [
        "ftp://example.com/",
        "https://user:pw@example.com/",
        "/relative",
    ] {
        assert_eq!(
            common::call(srv.addr, "GET", &q(bad, "GET"), b"")
                .await
                .status,
            400,
            "{bad}"
        );
    }
}

#[tokio::test]
async fn the_same_request_twice_is_one_pending_request() {
    let srv = common::start(10, 5, 50).await;
    let body = json!({"kind": "host", "host": "static.crates.io", "reason": "cargo"});
    let first = common::post(srv.addr, "/v1/requests", body.clone()).await;
    assert_eq!(first.status, 201);
    let again = common::post(
        srv.addr,
        "/v1/requests",
        json!({"kind": "host", "host": "static.crates.io", "reason": "cargo, please"}),
    )
    .await;
    assert_eq!(again.status, 200);
    assert_eq!(again.json["id"], first.json["id"]);
    assert_eq!(again.json["status"], "pending");
    assert_eq!(srv.request_files().len(), 1);
}

#[tokio::test]
async fn waiters_beyond_the_cap_answer_at_once_and_the_rest_get_the_decision() {
    let srv = common::start(1000, 1000, 50).await;
    let body = json!({"kind": "host", "host": "index.crates.io", "reason": "cargo"});
    let first = common::post(srv.addr, "/v1/requests", body.clone()).await;
    let id = RequestId::parse(first.json["id"].as_str().unwrap()).unwrap();
    let total = supervise::state::MAX_WAITERS + 8;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    for _ in 0..total {
        let (addr, body, tx) = (srv.addr, body.clone(), tx.clone());
        tokio::spawn(async move {
            let r = common::post(addr, "/v1/requests?wait=20", body).await;
            let _ = tx.send(r.json["status"].as_str().unwrap_or("").to_owned());
        });
    }
    // Those over the cap come back while nothing is decided: still pending.
    let mut early = Vec::new();
    for _ in 0..8 {
        early.push(rx.recv().await.unwrap());
    }
    assert!(early.iter().all(|s| s == "pending"), "{early:?}");
    let d = supervise::store::Decision {
        decision: "denied".into(),
        for_: None,
        until_unix: None,
        reason: Some("no".into()),
        decided_at: String::new(),
    };
    write_decision(&srv.state(), &id, &d).unwrap();
    let mut late = Vec::new();
    for _ in 0..supervise::state::MAX_WAITERS {
        late.push(rx.recv().await.unwrap());
    }
    assert!(late.iter().all(|s| s == "denied"), "{late:?}");
    assert_eq!(
        srv.request_files().len(),
        2,
        "one request and its decision, whatever the waiters"
    );
}

#[tokio::test]
async fn hostile_json_shapes_are_plain_errors() {
    let srv = common::start(1000, 1000, 50).await;
    let deep = "[".repeat(8000);
    for body in [
        deep.as_bytes(),
        b"\"just a string\"",
        b"null",
        b"{\"kind\":\"host\",\"host\":\"a.com\",\"host\":\"b.com\",\"reason\":\"r\"}",
        &[0xff, 0xfe, 0x00],
    ] {
        let r = common::call(srv.addr, "POST", "/v1/requests", body).await;
        assert!(r.status == 400 || r.status == 422, "{}", r.head);
    }
    assert!(srv.request_files().is_empty());
    let audit = srv.own_audit();
    assert_eq!(
        audit.lines().count(),
        5,
        "each malformed body is audited: {audit}"
    );
    assert!(audit.contains("duplicate field"), "{audit}");
    // The server still answers.
    assert_eq!(
        common::call(srv.addr, "GET", "/v1/blocks", b"")
            .await
            .status,
        200
    );
}
