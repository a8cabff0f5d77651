//! Canned pages and JSON-RPC endpoints, driven by the system `curl`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use bytes::Bytes;
use echo_origin::{EchoOptions, EchoOrigin, JsonRpcEndpoint, Page, PageEncoding};
use serde_json::{json, Value};

async fn curl(args: &[&str]) -> (String, String) {
    let out = tokio::process::Command::new("curl")
        .args(["-sS", "--max-time", "60", "-D", "/dev/stderr"])
        .args(args)
        .kill_on_drop(true)
        .output()
        .await
        .expect("curl runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).to_ascii_lowercase(),
    )
}

#[tokio::test]
async fn page_is_served_for_any_method_with_headers_and_body_kept() {
    let origin = EchoOrigin::start(EchoOptions::default()).await.unwrap();
    let page = Page::html("<p>hello</p>").header("x-canned", "1");
    origin.set_page("/p", page);
    let url = origin.http_url("/p?ignored=1");
    let (body, head) = curl(&["-X", "PUT", "--data-binary", "payload-1", &url]).await;
    assert_eq!(body, "<p>hello</p>");
    assert!(head.contains("content-type: text/html"), "{head}");
    assert!(head.contains("x-canned: 1"), "{head}");
    assert!(head.contains("content-length: 12"), "{head}");
    let r = origin.requests().pop().unwrap();
    assert_eq!(r.body, b"payload-1");
    assert_eq!(r.body_len, 9);
    // Other paths keep their built-in behaviour.
    let (echo, _) = curl(&[&origin.http_url("/other")]).await;
    assert!(echo.contains("\"path\":\"/other\""), "{echo}");
    origin.clear_page("/p");
    let (echo, _) = curl(&[&origin.http_url("/p")]).await;
    assert!(echo.contains("\"path\":\"/p\""), "{echo}");
}

#[tokio::test]
async fn streamed_page_sends_chunks_apart_and_each_encoding_decodes() {
    let origin = EchoOrigin::start(EchoOptions::default()).await.unwrap();
    let chunks = vec![Bytes::from("first "), Bytes::from("second")];
    for enc in [
        PageEncoding::Gzip,
        PageEncoding::Deflate,
        PageEncoding::Br,
        PageEncoding::Zstd,
    ] {
        let page =
            Page::streamed("text/plain", chunks.clone(), Duration::from_millis(10)).encoded(enc);
        origin.set_page("/z", page);
        let (body, head) = curl(&[
            "--compressed",
            &origin.https_url("/z"),
            "--cacert",
            origin.ca_path.to_str().unwrap(),
        ])
        .await;
        assert_eq!(body, "first second", "{enc:?}");
        assert!(head.contains("content-encoding:"), "{head}");
        assert!(!head.contains("content-length"), "{head}");
    }
}

#[tokio::test]
async fn sse_page_releases_first_event_before_the_delayed_second() {
    let origin = EchoOrigin::start(EchoOptions::default()).await.unwrap();
    origin.set_page(
        "/events",
        Page::sse(
            &["data: one\n\n", "data: two\n\n"],
            Duration::from_secs(600),
        ),
    );
    let mut child = tokio::process::Command::new("curl")
        .args(["-sSN", &origin.http_url("/events")])
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut out = child.stdout.take().unwrap();
    let mut buf = vec![0u8; 64];
    use tokio::io::AsyncReadExt;
    let n = tokio::time::timeout(Duration::from_secs(30), out.read(&mut buf))
        .await
        .expect("first event arrives while the second is 10 minutes away")
        .unwrap();
    assert_eq!(&buf[..n], b"data: one\n\n");
}

#[tokio::test]
async fn jsonrpc_answers_by_method_as_json_and_as_sse() {
    let origin = EchoOrigin::start(EchoOptions::default()).await.unwrap();
    let tools = json!({"tools": [{"name": "read_file", "description": "Reads a file"}]});
    origin.set_jsonrpc("/mcp", [("tools/list".to_string(), tools.clone())], false);
    let url = origin.http_url("/mcp");
    let req = r#"{"jsonrpc":"2.0","id":7,"method":"tools/list"}"#;
    let (body, head) = curl(&[
        "-H",
        "content-type: application/json",
        "--data-binary",
        req,
        &url,
    ])
    .await;
    assert!(head.contains("content-type: application/json"), "{head}");
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v, json!({"jsonrpc": "2.0", "id": 7, "result": tools}));
    assert_eq!(origin.requests().pop().unwrap().body, req.as_bytes());

    let (body, _) = curl(&[
        "--data-binary",
        r#"{"jsonrpc":"2.0","id":"x","method":"nope"}"#,
        &url,
    ])
    .await;
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["error"]["code"], -32601);

    let (body, head) = curl(&[
        "--data-binary",
        r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#,
        &url,
    ])
    .await;
    assert!(head.starts_with("http/1.1 202"), "{head}");
    assert!(body.is_empty());

    let mut ep = JsonRpcEndpoint::new([("tools/list".to_string(), tools.clone())], true);
    ep.methods
        .get_mut("tools/list")
        .unwrap()
        .push(json!({"more": true}));
    ep.session_id = Some("sess-1".into());
    origin.set_jsonrpc_endpoint("/mcp", ep);
    let (body, head) = curl(&["--data-binary", req, &url]).await;
    assert!(head.contains("content-type: text/event-stream"), "{head}");
    assert!(head.contains("mcp-session-id: sess-1"), "{head}");
    let events: Vec<&str> = body.split("\n\n").filter(|e| !e.is_empty()).collect();
    assert_eq!(events.len(), 2, "{body}");
    let first = events[0].strip_prefix("event: message\ndata: ").unwrap();
    let v: Value = serde_json::from_str(first).unwrap();
    assert_eq!(v["result"], tools);
    assert_eq!(v["id"], 7);
}
