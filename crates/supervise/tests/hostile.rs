#![allow(clippy::unwrap_used, clippy::expect_used)]
//! A hostile agent against supervise over real TCP (issue 15): it controls every byte it sends
//! and may open as many connections as it likes. Each test fails if its attack works.

mod common;

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use supervise::ids::RequestId;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// One raw JSON-RPC POST to /mcp (stateless, no session); the whole answer as text.
async fn raw_mcp(addr: std::net::SocketAddr, body: &str) -> String {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nAccept: application/json, text/event-stream\r\nMCP-Protocol-Version: 2025-06-18\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    s.write_all(head.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf).await;
    String::from_utf8_lossy(&buf).into_owned()
}

/// `request_access` called with `args` as raw JSON text (so it may hold anything).
async fn mcp_request_access(addr: std::net::SocketAddr, args: &str) -> String {
    let body = format!(
        r#"{{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{{"name":"request_access","arguments":{args}}}}}"#
    );
    raw_mcp(addr, &body).await
}

/// Pending request files (not decisions, not temp files).
fn pending_files(srv: &common::Server) -> usize {
    srv.request_files()
        .iter()
        .filter(|(n, _)| !n.starts_with('.') && !n.ends_with(".decision.json"))
        .count()
}

/// Sends a head announcing `announced` body bytes to `target`, then one byte every 300 ms and
/// never the rest. Returns what came back and when the server answered or closed.
async fn trickle(addr: std::net::SocketAddr, target: &str, announced: usize) -> (String, Duration) {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "POST {target} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nAccept: application/json, text/event-stream\r\nContent-Length: {announced}\r\n\r\n{{"
    );
    s.write_all(head.as_bytes()).await.unwrap();
    let started = Instant::now();
    let mut buf = vec![0u8; 4096];
    let mut got = Vec::new();
    // Well past the deadline (3 s in the test server): the idle timeout (120 s) never fires
    // because a byte arrives every 300 ms.
    while started.elapsed() < Duration::from_secs(15) {
        tokio::select! {
            r = s.read(&mut buf) => match r {
                Ok(0) | Err(_) => break,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            },
            () = tokio::time::sleep(Duration::from_millis(300)) => {
                if s.write_all(b" ").await.is_err() {
                    break;
                }
            }
        }
    }
    (
        String::from_utf8_lossy(&got).into_owned(),
        started.elapsed(),
    )
}

#[tokio::test]
async fn a_trickled_body_does_not_hold_its_connection() {
    let srv = common::start(100, 100, 50).await;
    for target in ["/v1/requests?wait=20", "/mcp"] {
        let (answer, took) = trickle(srv.addr, target, 8000).await;
        assert!(
            answer.starts_with("HTTP/1.1 408"),
            "{target}: {answer:?} after {took:?}"
        );
        assert!(took < Duration::from_secs(8), "{target}: held {took:?}");
    }
    assert_eq!(pending_files(&srv), 0);
}

#[tokio::test]
async fn stalled_bodies_do_not_starve_a_real_request() {
    let srv = common::start(100, 100, 50).await;
    let mut stalled = Vec::new();
    for _ in 0..64 {
        let mut s = tokio::net::TcpStream::connect(srv.addr).await.unwrap();
        s.write_all(b"POST /v1/requests HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 10000\r\n\r\n{")
            .await
            .unwrap();
        stalled.push(s);
    }
    let r = common::post(
        srv.addr,
        "/v1/requests",
        json!({"kind": "host", "host": "docs.rs", "reason": "docs"}),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.head);
    // And every stalled one is answered 408 and closed at the body deadline (10 s), not held
    // until the idle timeout (120 s); 30 s leaves room for a loaded machine.
    for mut s in stalled {
        let mut buf = Vec::new();
        let read = tokio::time::timeout(Duration::from_secs(30), s.read_to_end(&mut buf)).await;
        assert!(read.is_ok(), "a stalled connection still open");
        let text = String::from_utf8_lossy(&buf);
        assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    }
}

#[tokio::test]
async fn odd_ids_never_name_a_file() {
    let srv = common::start(100, 100, 50).await;
    let r = common::post(
        srv.addr,
        "/v1/requests",
        json!({"kind": "host", "host": "pypi.org", "reason": "pip"}),
    )
    .await;
    let real = r.json["id"].as_str().unwrap().to_owned();
    // A file a traversal would reach, shaped like a request for that id.
    let planted = std::fs::read(srv.requests_dir().join(format!("{real}.json"))).unwrap();
    std::fs::write(srv.state().join("outside.json"), &planted).unwrap();
    let upper = real.to_ascii_uppercase();
    let fullwidth: String = real
        .chars()
        .map(|c| char::from_u32(c as u32 + 0xFEE0).unwrap_or(c))
        .collect();
    for id in [
        format!("{real}.json"),
        format!("{real}/"),
        format!("{real}%00"),
        format!("{real}%2F..%2F..%2Foutside"),
        format!("{real}.decision"),
        format!("..%2F{real}"),
        upper,
        fullwidth,
        "..".into(),
        "%2e%2e".into(),
        "%2e%2e%2foutside".into(),
        "/etc/passwd".into(),
        "%2Fetc%2Fpasswd".into(),
        "%00".into(),
        "a".repeat(ID_LEN_PLUS),
        "a".repeat(60_000),
        format!("{}%F0%9F%98%80", &real[..24]),
    ] {
        let r = common::call(srv.addr, "GET", &format!("/v1/requests/{id}"), b"").await;
        assert_ne!(r.status, 200, "{id}: {}", r.head);
        assert!(r.json.get("status").is_none(), "{id}: {}", r.json);
    }
    // The real one still answers.
    let r = common::call(srv.addr, "GET", &format!("/v1/requests/{real}"), b"").await;
    assert_eq!(
        (r.status, r.json["status"].as_str()),
        (200, Some("pending"))
    );
}

const ID_LEN_PLUS: usize = supervise::ids::ID_LEN + 1;

/// Hosts an agent might smuggle past the breadth check: wildcards, loopback and metadata in
/// every spelling, trailing dots, case, the bottle's own services, private-network names.
const SMUGGLED_HOSTS: &[&str] = &[
    "*",
    "*.*",
    "*.co.uk",
    "*.com.",
    "localhost.",
    "LOCALHOST",
    "LocalHost.:8080",
    "x.localhost",
    "127.1",
    "0x7f000001",
    "2130706433",
    "0177.0.0.1",
    "[::1]",
    "[::ffff:169.254.169.254]",
    "[::ffff:a9fe:a9fe]",
    "[fd00:ec2::254]",
    "100.100.100.200",
    "169.254.169.254:80",
    "metadata.google.internal.",
    "METADATA.GOOGLE.INTERNAL",
    "0.0.0.0",
    "0.0.0.0/0",
    "::/0",
    "128.0.0.0/1",
    "egress",
    "pipelock",
    "git-gate",
    "supervise",
    "host.docker.internal",
    "kubernetes.default.svc.cluster.local",
    "router.lan",
    "printer.local",
    "nas.home.arpa",
    "*.corp.internal",
    "g\u{456}thub.com",
    "\u{430}\u{440}\u{440}\u{4cf}\u{435}.com",
    "example.com\u{0}.evil",
    "example.com/../",
    "http://example.com",
    "example.com:0",
];

#[tokio::test]
async fn smuggled_hosts_are_refused_over_http_and_mcp() {
    let srv = common::start(10_000, 10_000, 500).await;
    for host in SMUGGLED_HOSTS {
        for kind in ["host", "route"] {
            let r = common::post(
                srv.addr,
                "/v1/requests",
                json!({"kind": kind, "host": host, "reason": "need it"}),
            )
            .await;
            assert_eq!(r.status, 422, "{kind} {host:?}: {}", r.json);
            let args = json!({"kind": kind, "host": host, "reason": "need it"}).to_string();
            let answer = mcp_request_access(srv.addr, &args).await;
            assert!(
                answer.contains(r#"\"error\""#) && !answer.contains(r#"\"id\""#),
                "{kind} {host:?}: {answer}"
            );
        }
    }
    assert_eq!(pending_files(&srv), 0, "nothing written");
    // Plain public hosts in odd case or with a trailing dot are still askable.
    for host in ["Docs.RS", "example.com.", "*.example.com"] {
        let r = common::post(
            srv.addr,
            "/v1/requests",
            json!({"kind": "host", "host": host, "reason": "need it"}),
        )
        .await;
        assert_eq!(r.status, 201, "{host}: {}", r.json);
    }
}

#[tokio::test]
async fn reasons_that_could_rewrite_the_operators_terminal_are_refused() {
    let srv = common::start(10_000, 10_000, 500).await;
    for reason in [
        "ok\u{1b}]0;pwned\u{7}",
        "ok\u{9b}2K",
        "ok\rapproved",
        "first\u{2028}approved by operator",
        "first\u{2029}second",
        "looks fine\u{e0041}\u{e0050}\u{e0050}\u{e0052}\u{e004f}\u{e0056}\u{e0045}",
        "abc\u{61c}def",
        "abc\u{2067}def",
        "x\u{fffb}y",
        "x\u{180e}y",
    ] {
        let r = common::post(
            srv.addr,
            "/v1/requests",
            json!({"kind": "host", "host": "docs.rs", "reason": reason}),
        )
        .await;
        assert_eq!(r.status, 422, "{reason:?}: {}", r.json);
        let args = json!({"kind": "host", "host": "docs.rs", "reason": reason}).to_string();
        let answer = mcp_request_access(srv.addr, &args).await;
        assert!(!answer.contains(r#"\"id\""#), "{reason:?}: {answer}");
    }
    assert_eq!(pending_files(&srv), 0);
    // A plain one-line reason in any script is kept as sent.
    let r = common::post(
        srv.addr,
        "/v1/requests",
        json!({"kind": "host", "host": "docs.rs", "reason": "документация, 文档"}),
    )
    .await;
    assert_eq!(r.status, 201);
}

#[tokio::test]
async fn a_flood_writes_one_audit_line_per_window_not_one_per_request() {
    let srv = common::start(1, 2, 50).await;
    for i in 0..60 {
        let body = json!({"kind": "host", "host": format!("h{i}.example.com"), "reason": "r"});
        match i % 3 {
            0 => {
                common::post(srv.addr, "/v1/requests", body).await;
            }
            1 => {
                common::call(srv.addr, "POST", "/v1/requests", b"{not json").await;
            }
            _ => {
                mcp_request_access(srv.addr, &body.to_string()).await;
            }
        }
    }
    // The burst of 2: the first request and the first malformed body (also charged).
    assert_eq!(
        pending_files(&srv),
        1,
        "the bucket held across HTTP, MCP and malformed bodies"
    );
    let audit = srv.own_audit();
    let limited = audit.lines().filter(|l| l.contains("rate limited")).count();
    assert_eq!(limited, 1, "{audit}");
    assert_eq!(audit.lines().count(), 3, "{audit}");
}

#[tokio::test]
async fn mcp_arguments_naming_a_field_twice_are_refused() {
    let srv = common::start(100, 100, 50).await;
    // The control: the same raw call with each field once is accepted.
    let ok = mcp_request_access(
        srv.addr,
        r#"{"kind":"host","host":"docs.rs","reason":"docs"}"#,
    )
    .await;
    assert!(ok.contains(r#"\"status\":\"pending\""#), "{ok}");
    let twice = mcp_request_access(
        srv.addr,
        r#"{"kind":"host","host":"pypi.org","host":"evil.example","reason":"pip"}"#,
    )
    .await;
    assert!(twice.starts_with("HTTP/1.1 400"), "{twice}");
    assert!(twice.contains("duplicate field"), "{twice}");
    let nested_twice = r#"{"jsonrpc":"2.0","id":1,"id":2,"method":"tools/list","params":{}}"#;
    assert!(raw_mcp(srv.addr, nested_twice)
        .await
        .starts_with("HTTP/1.1 400"));
    assert_eq!(pending_files(&srv), 1);
}

#[tokio::test]
async fn hostile_values_and_parameters_are_plain_errors() {
    let srv = common::start(10_000, 10_000, 50).await;
    let deep = format!("{}1{}", "[".repeat(5000), "]".repeat(5000));
    let bodies: Vec<Vec<u8>> = vec![
        br#"{"kind":"host","host":1e999,"reason":"r"}"#.to_vec(),
        br#"{"kind":"host","host":123456789012345678901234567890,"reason":"r"}"#.to_vec(),
        br#"{"kind":"host","host":["a.com","b.com"],"reason":"r"}"#.to_vec(),
        br#"{"kind":"host","host":"a.com","reason":{"text":"r"}}"#.to_vec(),
        format!(r#"{{"kind":"host","host":"a.com","reason":"r","x":{deep}}}"#).into_bytes(),
        b"{\"kind\":\"host\",\"host\":\"a.com\",\"reason\":\"\xff\xfe\"}".to_vec(),
        br#"{"kind":"host","host":"a.com","reason":"\ud800"}"#.to_vec(),
    ];
    for body in &bodies {
        let r = common::call(srv.addr, "POST", "/v1/requests", body).await;
        assert!(
            r.status == 400 || r.status == 422,
            "{}: {}",
            String::from_utf8_lossy(&body[..body.len().min(80)]),
            r.head
        );
    }
    let ok = json!({"kind": "host", "host": "docs.rs", "reason": "r"});
    for wait in ["-1", "18446744073709551616", "1e3", "%00"] {
        let r = common::post(srv.addr, &format!("/v1/requests?wait={wait}"), ok.clone()).await;
        assert_eq!(r.status, 400, "wait={wait}");
    }
    assert_eq!(pending_files(&srv), 0);
    // An absurd wait is capped, not honoured: answered within the cap (20 s in the test server).
    let started = Instant::now();
    let r = common::post(srv.addr, "/v1/requests?wait=99999999999", ok.clone()).await;
    assert_eq!(r.status, 201);
    assert!(started.elapsed() < Duration::from_secs(25));
    for limit in ["-5", "99999999999999999999999", "abc"] {
        let r = common::call(srv.addr, "GET", &format!("/v1/blocks?limit={limit}"), b"").await;
        assert_eq!(r.status, 200, "limit={limit}");
    }
}

#[tokio::test]
async fn check_is_no_oracle_for_secrets() {
    let srv = common::start(100, 100, 50).await;
    std::fs::write(srv.config_dir().join("allowlist"), "paste.example\n").unwrap();
    let token = format!("ghp_{}", "Zq8Lr3Tx6Wv1Np9Ks4Hb7Jd2Mf5Gc0Ye8Ua3I");
    let aws = "AKIAZ7QX3MPLR5TNW2VB";
    let enc = |s: &str| {
        s.replace('%', "%25")
            .replace(':', "%3A")
            .replace('/', "%2F")
            .replace('?', "%3F")
            .replace('&', "%26")
            .replace('=', "%3D")
    };
    for url in [
        format!("https://paste.example/?t={token}"),
        format!("https://paste.example/{token}/x"),
        format!("https://paste.example/?k={aws}"),
        format!("https://{}.paste.example/", token.to_ascii_lowercase()),
    ] {
        let r = common::call(
            srv.addr,
            "GET",
            &format!("/v1/check?url={}", enc(&url)),
            b"",
        )
        .await;
        assert_eq!(r.json["allowed"], false, "{url}: {}", r.json);
        let text = r.json.to_string();
        assert!(
            !text.contains(&token[6..]) && !text.contains(&token.to_ascii_lowercase()[6..]),
            "{text}"
        );
        assert!(!text.contains(&aws[4..]), "{text}");
    }
    // A secret in the method is not echoed either.
    let r = common::call(
        srv.addr,
        "GET",
        &format!("/v1/check?url=https%3A%2F%2Fpaste.example%2F&method={token}%0D"),
        b"",
    )
    .await;
    assert!(!r.json.to_string().contains(&token[6..]), "{}", r.json);
}

#[tokio::test]
async fn blocks_show_this_bottles_refusals_without_credentials() {
    let srv = common::start(100, 100, 50).await;
    let secret = "sk-live-Q7m2Xv9Lp4Rt8Wz1Ny6Kb3Hd5Jf0Gc";
    let line = json!({
        "ts": "2026-01-01T00:00:01Z", "component": "egress", "decision": "deny",
        "reason": "method not allowed", "host": "api.example", "method": "DELETE",
        "authorization": format!("Bearer {secret}"), "token": secret,
        "headers": {"authorization": secret}, "finding": secret,
        "path": ["/x", secret], "port": {"n": secret},
    });
    std::fs::write(srv.audit_dir().join("egress.log"), format!("{line}\n")).unwrap();
    // Another bottle's audit, reached only through a link planted in this one's directory.
    let other = srv.dir.path().join("other-bottle");
    std::fs::create_dir_all(&other).unwrap();
    std::fs::write(
        other.join("pipelock.log"),
        "{\"ts\":\"2026-01-01T00:00:09Z\",\"component\":\"pipelock\",\"decision\":\"deny\",\"host\":\"other-bottle.example\"}\n",
    )
    .unwrap();
    #[cfg(unix)]
    std::os::unix::fs::symlink(
        other.join("pipelock.log"),
        srv.audit_dir().join("linked.log"),
    )
    .unwrap();
    let r = common::call(srv.addr, "GET", "/v1/blocks?limit=200", b"").await;
    let text = r.json.to_string();
    assert!(text.contains("api.example"), "{text}");
    assert!(!text.contains(&secret[8..]), "{text}");
    assert!(!text.contains("other-bottle"), "{text}");
    let blocks: &Vec<Value> = r.json["blocks"].as_array().unwrap();
    assert_eq!(blocks.len(), 1, "{text}");
}

#[tokio::test]
async fn a_request_file_swapped_for_a_link_is_not_served() {
    let srv = common::start(100, 100, 50).await;
    let r = common::post(
        srv.addr,
        "/v1/requests",
        json!({"kind": "host", "host": "pypi.org", "reason": "pip"}),
    )
    .await;
    let id = RequestId::parse(r.json["id"].as_str().unwrap()).unwrap();
    let path = srv.requests_dir().join(format!("{id}.json"));
    let copy = srv.state().join("copy.json");
    std::fs::copy(&path, &copy).unwrap();
    // A decision planted as a link (not the launcher's hard-linked regular file).
    let decision = srv.state().join("approve.json");
    std::fs::write(
        &decision,
        r#"{"decision":"approved","for":"session","decided_at":""}"#,
    )
    .unwrap();
    #[cfg(unix)]
    {
        std::os::unix::fs::symlink(
            &decision,
            srv.requests_dir().join(format!("{id}.decision.json")),
        )
        .unwrap();
        let r = common::call(srv.addr, "GET", &format!("/v1/requests/{id}"), b"").await;
        assert_eq!(r.json["status"], "pending", "{}", r.json);
        std::fs::remove_file(&path).unwrap();
        std::os::unix::fs::symlink(&copy, &path).unwrap();
        let r = common::call(srv.addr, "GET", &format!("/v1/requests/{id}"), b"").await;
        assert_eq!(r.status, 404, "{}", r.json);
    }
}

#[tokio::test]
async fn refusals_quoting_the_agents_text_audit_it_inert() {
    // JSON escapes only C0 controls: a C1 CSI or a bidi override quoted raw in supervise's
    // audit line would reach the operator's terminal through `docker compose logs`.
    let srv = common::start(10_000, 10_000, 50).await;
    let kind = format!("\u{9b}2J\u{202e}{}", "k".repeat(20_000));
    for body in [
        json!({"kind": kind, "host": "a.com", "reason": "r"}),
        json!({"kind": "route", "host": "ex\u{202e}ample.com", "reason": "r"}),
        json!({"kind": "route", "host": "api.example.com", "paths": ["/\u{9b}x"], "reason": "r"}),
        json!({"kind": "host", "host": "docs.rs\u{85}", "reason": "r"}),
    ] {
        common::post(srv.addr, "/v1/requests", body).await;
    }
    let audit = srv.own_audit();
    assert_eq!(audit.lines().count(), 4, "{audit}");
    let raw = audit
        .chars()
        .find(|&c| ('\u{80}'..='\u{9f}').contains(&c) || ('\u{202a}'..='\u{202e}').contains(&c));
    assert_eq!(raw, None, "{audit:?}");
    assert!(audit.lines().all(|l| l.len() < 2048), "{audit}");
}

#[tokio::test]
async fn a_cross_origin_simple_post_files_nothing() {
    // What a web page in a browser inside the bottle can send without a CORS preflight.
    let srv = common::start(100, 100, 50).await;
    let body = r#"{"kind":"host","host":"docs.rs","reason":"a page asked for this"}"#;
    for ctype in [
        "text/plain",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
        "",
    ] {
        let mut s = tokio::net::TcpStream::connect(srv.addr).await.unwrap();
        let ct = if ctype.is_empty() {
            String::new()
        } else {
            format!("Content-Type: {ctype}\r\n")
        };
        let head = format!(
            "POST /v1/requests HTTP/1.1\r\nHost: supervise:8070\r\nOrigin: https://evil.example\r\n{ct}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        s.write_all(head.as_bytes()).await.unwrap();
        let mut buf = Vec::new();
        let _ = s.read_to_end(&mut buf).await;
        let text = String::from_utf8_lossy(&buf);
        assert!(text.starts_with("HTTP/1.1 415"), "{ctype:?}: {text}");
    }
    assert_eq!(pending_files(&srv), 0);
    let r = common::post(
        srv.addr,
        "/v1/requests",
        serde_json::from_str(body).unwrap(),
    )
    .await;
    assert_eq!(r.status, 201, "JSON with its content type still works");
}

#[tokio::test]
async fn hostile_mcp_shapes_are_errors_and_change_nothing() {
    let srv = common::start(10_000, 10_000, 50).await;
    // Balanced, valid JSON, under the 64 KiB cap, far past any parser's depth limit.
    let deep = format!("{}{}", "[".repeat(20_000), "]".repeat(20_000));
    let call = |args: &str| {
        format!(
            r#"{{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{{"name":"request_access","arguments":{args}}}}}"#
        )
    };
    for body in [
        deep.clone(),
        call(&format!(r#"{{"kind":"host","host":"a.com","reason":"r","x":{}}}"#, deep)),
        call(r#"{"kind":"host","host":"a.com","reason":"r","wait_secs":1e400}"#),
        call(r#"{"kind":"host","host":"a.com","reason":"r","wait_secs":-1}"#),
        call(r#"{"kind":"host","host":["a.com"],"reason":"r"}"#),
        r#"{"jsonrpc":"2.0","id":4,"method":"tools/call","params":{"name":"list_recent_blocks","arguments":{"limit":-1}}}"#.into(),
        "\u{feff}{\"jsonrpc\":\"2.0\"".into(),
    ] {
        let answer = raw_mcp(srv.addr, &body).await;
        assert!(answer.starts_with("HTTP/1.1 "), "no answer: {answer}");
        assert!(!answer.contains(r#"\"status\":\"pending\""#), "{answer}");
    }
    // Non-UTF-8 bytes.
    let mut s = tokio::net::TcpStream::connect(srv.addr).await.unwrap();
    s.write_all(b"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nAccept: application/json, text/event-stream\r\nContent-Length: 3\r\nConnection: close\r\n\r\n\xff\xfe\x00")
        .await
        .unwrap();
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf).await;
    assert!(
        buf.starts_with(b"HTTP/1.1 4"),
        "{}",
        String::from_utf8_lossy(&buf)
    );
    assert_eq!(pending_files(&srv), 0);
    // Still serving.
    let ok = mcp_request_access(
        srv.addr,
        r#"{"kind":"host","host":"docs.rs","reason":"docs"}"#,
    )
    .await;
    assert!(ok.contains(r#"\"status\":\"pending\""#), "{ok}");
}

#[tokio::test]
async fn the_pending_cap_holds_under_a_concurrent_burst() {
    let srv = common::start(100_000, 100_000, 5).await;
    let mut tasks = Vec::new();
    for i in 0..80 {
        let addr = srv.addr;
        tasks.push(tokio::spawn(async move {
            let body = json!({"kind": "host", "host": format!("c{i}.example.com"), "reason": "r"});
            if i % 2 == 0 {
                common::post(addr, "/v1/requests", body).await.status
            } else if mcp_request_access(addr, &body.to_string())
                .await
                .contains(r#"\"status\":\"pending\""#)
            {
                201
            } else {
                429
            }
        }));
    }
    let mut created = 0;
    for t in tasks {
        let status = t.await.unwrap();
        assert!(status == 201 || status == 429, "{status}");
        created += usize::from(status == 201);
    }
    assert_eq!(created, 5);
    assert_eq!(pending_files(&srv), 5);
}
