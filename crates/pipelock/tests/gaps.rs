//! Issue 13 DLP gaps through a real pipelock: a key split over JSON sibling
//! values, hex with `-` separators, an AWS key in lower-case or split host
//! labels. Each is refused and the origin's request log proves nothing left.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, StreamBody};

/// A well-formed AWS access key id assembled at run time (never a real one).
fn aws() -> String {
    format!("AKIA{}", "VCODYLSA53PQK4ZA")
}

type Body = http_body_util::combinators::BoxBody<Bytes, std::io::Error>;

async fn post_via_tunnel(env: &Env, p: &pipelock::Running, path: &str, body: Body) -> Resp {
    let auth = format!("echo.test:{}", env.tls_port());
    let mut send = tunnel_h1(p.addr, &auth, "echo.test", &env.ca_cert()).await;
    let req = http::Request::post(path)
        .header("host", &auth)
        .header("content-type", "application/json")
        .body(body)
        .unwrap();
    let resp = tokio::time::timeout(T, send.send_request(req))
        .await
        .unwrap()
        .unwrap();
    let (parts, b) = resp.into_parts();
    Resp {
        status: parts.status.as_u16(),
        headers: parts.headers,
        body: b.collect().await.map(|c| c.to_bytes()).unwrap_or_default(),
    }
}

/// The body in slow chunks cut at `cuts`.
fn chunked(doc: &str, cuts: &[usize]) -> Body {
    let mut parts = Vec::new();
    let mut at = 0;
    for &c in cuts {
        parts.push(doc[at..c].to_string());
        at = c;
    }
    parts.push(doc[at..].to_string());
    let stream = futures_util::stream::unfold(parts.into_iter(), |mut it| async move {
        let next = it.next()?;
        tokio::time::sleep(Duration::from_millis(100)).await;
        Some((
            Ok::<_, std::io::Error>(hyper::body::Frame::data(Bytes::from(next))),
            it,
        ))
    });
    StreamBody::new(stream).boxed()
}

fn full(b: impl Into<Bytes>) -> Body {
    Full::new(b.into()).map_err(|e| match e {}).boxed()
}

async fn spawn(allow: &str) -> (Env, pipelock::Running) {
    let env = Env::new(allow, "").await;
    let p = env.spawn(&[]).await;
    (env, p)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_split_over_json_siblings_is_blocked_before_it_leaves() {
    let (env, p) = spawn("echo.test:*\n127.0.0.1/32\n").await;
    let key = aws();
    let (a, b) = key.split_at(10);
    // Control: the same shape without a key goes through.
    let clean = r#"{"model": "m", "a": "hello", "b": "world"}"#;
    let r = post_via_tunnel(&env, &p, "/clean", full(clean)).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(env.origin.requests().iter().any(|q| q.path == "/clean"));
    let pad = "p".repeat(9000);
    let docs = [
        format!(r#"{{"pad": "{pad}", "a": "{a}", "b": "{b}"}}"#),
        format!(r#"{{"pad": "{pad}", "msgs": ["{a}", 7, "{b}"], "z": 1}}"#),
    ];
    for (i, doc) in docs.iter().enumerate() {
        let second = doc.find(b).unwrap();
        let path = format!("/json{i}");
        let r = post_via_tunnel(&env, &p, &path, chunked(doc, &[second - 3, second + 4])).await;
        assert_eq!(r.status, 403, "{}", r.text());
        assert_eq!(r.headers.get("x-bottle-blocked").unwrap(), "pipelock");
        assert!(
            r.text()
                .contains("secret detected in request body: aws-access-key-id"),
            "{}",
            r.text()
        );
        assert!(!r.text().contains(&key));
        // The origin never saw the second half of the key.
        for q in env.origin.requests().iter().filter(|q| q.path == path) {
            assert!((q.body_len as usize) < second, "origin got {}", q.body_len);
        }
    }
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dash_separated_hex_key_in_body_is_blocked() {
    let (env, p) = spawn("echo.test:*\n127.0.0.1/32\n").await;
    let hexed: Vec<String> = aws().bytes().map(|b| format!("{b:02x}")).collect();
    let doc = format!(r#"{{"blob": "{}"}}"#, hexed.join("-"));
    let r = post_via_tunnel(&env, &p, "/hex", full(doc.clone())).await;
    assert_eq!(r.status, 403, "{}", r.text());
    assert!(r.text().contains("aws-access-key-id"), "{}", r.text());
    for q in env.origin.requests().iter().filter(|q| q.path == "/hex") {
        assert!((q.body_len as usize) < doc.len(), "origin got the body");
    }
    // A UUID-laden body still goes through.
    let ok = r#"{"id": "123e4567-e89b-12d3-a456-426614174000", "at": "2024-01-02"}"#;
    let r = post_via_tunnel(&env, &p, "/uuid", full(ok)).await;
    assert_eq!(r.status, 200, "{}", r.text());
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aws_key_in_lowercase_or_split_host_labels_is_blocked() {
    // A wildcard entry would let any label through to DNS.
    let (env, p) = spawn("*.wild.test:*\necho.test:*\n127.0.0.1/32\n").await;
    let key = aws().to_ascii_lowercase();
    let tp = env.tls_port();
    let hosts = [
        format!("{key}.wild.test"),
        format!("x.{}.{}.cdn.wild.test", &key[..7], &key[7..]),
        format!("{}.{}.{}.a.b.wild.test", &key[..3], &key[3..11], &key[11..]),
        format!("{}.{}.wild.test", &aws()[..12], &aws()[12..]),
    ];
    for host in &hosts {
        let (status, head, mut s) = raw_head(
            p.addr,
            &format!("CONNECT {host}:{tp} HTTP/1.1\r\nHost: {host}:{tp}\r\n\r\n"),
        )
        .await;
        assert_eq!(status, 403, "{host}: {head}");
        let body = read_body(&mut s, &head).await;
        assert!(
            body.contains("secret detected in request host: aws-access-key-id"),
            "{body}"
        );
        let r = http_get(p.addr, &format!("http://{host}:{}/x", env.http_port())).await;
        assert_eq!(r.status, 403, "{}", r.text());
    }
    // Ordinary names under the same wildcard still connect.
    drop(connect(p.addr, &format!("b.c.wild.test:{tp}")).await);
    assert!(env.origin.requests().is_empty());
    p.stop().await;
}

/// Every byte but unreserved ones percent-encoded (a form or query value).
fn pct(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_split_over_json_siblings_in_a_form_or_query_value_is_blocked() {
    let (env, p) = spawn("echo.test:*\n127.0.0.1/32\n").await;
    let key = aws();
    let (a, b) = key.split_at(10);
    let json = format!(r#"{{"a":"{a}","b":"{b}"}}"#);
    // Control: a form and a query carrying clean JSON go through.
    let clean = pct(r#"{"a":"hello","b":"world"}"#);
    let r = post_via_tunnel(&env, &p, "/form-ok", full(format!("x=1&q={clean}"))).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let r = post_via_tunnel(&env, &p, &format!("/search-ok?q={clean}"), full("")).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(env.origin.requests().len(), 2);
    for (i, value) in [pct(&json), json.clone()].iter().enumerate() {
        let form = format!("csrf=k3J9x&payload={value}&submit=Send");
        let path = format!("/form{i}");
        let r = post_via_tunnel(&env, &p, &path, full(form.clone())).await;
        assert_eq!(r.status, 403, "{}", r.text());
        assert_eq!(r.headers.get("x-bottle-blocked").unwrap(), "pipelock");
        assert!(r.text().contains("aws-access-key-id"), "{}", r.text());
        assert!(!r.text().contains(&key));
        for q in env.origin.requests().iter().filter(|q| q.path == path) {
            assert!((q.body_len as usize) < form.len(), "origin got the form");
        }
    }
    let r = post_via_tunnel(&env, &p, &format!("/search?q={}", pct(&json)), full("")).await;
    assert_eq!(r.status, 403, "{}", r.text());
    assert!(!r.text().contains(&key));
    assert!(
        !env.origin
            .requests()
            .iter()
            .any(|q| q.path.starts_with("/search?") || q.path == "/search"),
        "the query reached the origin"
    );
    p.stop().await;
}

/// A GitHub token shape built at run time (no literal token in the source).
fn ghp() -> String {
    const ALPHA: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let tail: String = (0..36)
        .map(|_| {
            x = x
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            ALPHA[((x >> 33) % ALPHA.len() as u64) as usize] as char
        })
        .collect();
    format!("ghp_{tail}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_split_over_plain_form_fields_or_ndjson_lines_is_blocked() {
    let (env, p) = spawn("echo.test:*\n127.0.0.1/32\n").await;
    let tok = ghp();
    let (a, b) = tok.split_at(20);
    // Control: an ordinary form and log lines go through.
    let ok = "name=Ada+Lovelace&email=ada%40example.com&message=Hello";
    let r = post_via_tunnel(&env, &p, "/form-ok", full(ok)).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let bodies = [
        format!("a={a}&b={b}"),
        format!("csrf=k3J9x&a={a}&b=&c={b}&submit=Send"),
        format!("{{\"a\":\"{a}\"}}\n{{\"b\":\"{b}\"}}\n"),
    ];
    for (i, body) in bodies.iter().enumerate() {
        for (j, cuts) in [vec![], vec![body.find(b).unwrap() - 2]].iter().enumerate() {
            let path = format!("/split{i}-{j}");
            let r = post_via_tunnel(&env, &p, &path, chunked(body, cuts)).await;
            assert_eq!(r.status, 403, "{body}: {}", r.text());
            assert_eq!(r.headers.get("x-bottle-blocked").unwrap(), "pipelock");
            assert!(!r.text().contains(a) && !r.text().contains(b));
            for q in env.origin.requests().iter().filter(|q| q.path == path) {
                assert_eq!(q.body_len, 0, "a body byte reached the origin: {body}");
            }
        }
    }
    p.stop().await;
}
