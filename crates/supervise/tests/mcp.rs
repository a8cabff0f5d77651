//! The MCP endpoint driven by rmcp's own streamable HTTP client over real TCP.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use rmcp::model::CallToolRequestParams;
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::ServiceExt;
use serde_json::{json, Value};
use supervise::ids::RequestId;
use supervise::store::{write_decision, Decision};

async fn call(
    client: &rmcp::service::RunningService<rmcp::RoleClient, ()>,
    tool: &'static str,
    args: Value,
) -> Value {
    let Value::Object(args) = args else {
        panic!("arguments must be an object")
    };
    let res = client
        .call_tool(CallToolRequestParams::new(tool).with_arguments(args))
        .await
        .unwrap();
    let text = res
        .content
        .iter()
        .find_map(|c| c.as_text())
        .map(|t| t.text.clone())
        .unwrap();
    serde_json::from_str(&text).unwrap()
}

#[tokio::test]
async fn mcp_client_lists_and_calls_every_tool() {
    let srv = common::start(10, 5, 50).await;
    std::fs::write(srv.config_dir().join("allowlist"), "example.com\n").unwrap();
    std::fs::write(
        srv.audit_dir().join("pipelock.log"),
        "{\"ts\":\"2026-01-01T00:00:01Z\",\"component\":\"pipelock\",\"decision\":\"deny\",\"reason\":\"host not allowed\",\"host\":\"crates.io\"}\n",
    )
    .unwrap();
    let transport = StreamableHttpClientTransport::from_uri(format!("http://{}/mcp", srv.addr));
    let client = ().serve(transport).await.unwrap();

    let mut names: Vec<String> = client
        .list_all_tools()
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.name.to_string())
        .collect();
    names.sort();
    assert_eq!(names, ["check_url", "list_recent_blocks", "request_access"]);

    let v = call(&client, "check_url", json!({"url": "https://example.com/"})).await;
    assert_eq!(v["allowed"], true);
    assert_eq!(v["rule"], "allowlist");
    let v = call(
        &client,
        "check_url",
        json!({"url": "https://crates.io/", "method": "GET"}),
    )
    .await;
    assert_eq!(v["allowed"], false);

    let v = call(&client, "list_recent_blocks", json!({})).await;
    assert_eq!(v["blocks"][0]["host"], "crates.io");

    // Refused with the reason `bottle allow` gives; nothing written.
    let v = call(
        &client,
        "request_access",
        json!({"kind": "host", "host": "*.co.uk", "reason": "x"}),
    )
    .await;
    assert_eq!(
        v["error"],
        bottle_core::allow_entry::agent_refusal("*.co.uk")
            .unwrap()
            .as_str()
    );
    assert!(srv.request_files().is_empty());

    // Accepted, then denied by the operator while the tool call waits.
    let state = srv.state();
    let requests = srv.requests_dir();
    let decider = tokio::spawn(async move {
        loop {
            let found = std::fs::read_dir(&requests)
                .unwrap()
                .filter_map(|e| e.ok())
                .find_map(|e| {
                    let n = e.file_name().to_string_lossy().into_owned();
                    RequestId::parse(n.strip_suffix(".json")?)
                });
            if let Some(id) = found {
                let d = Decision {
                    decision: "denied".into(),
                    for_: None,
                    until_unix: None,
                    reason: Some("use the mirror".into()),
                    decided_at: String::new(),
                };
                write_decision(&state, &id, &d).unwrap();
                return id;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    });
    let v = call(
        &client,
        "request_access",
        json!({"kind": "host", "host": "crates.io", "reason": "cargo fetch", "wait_secs": 15}),
    )
    .await;
    let id = decider.await.unwrap();
    assert_eq!(v["id"], id.as_str());
    assert_eq!(v["status"], "denied");
    assert_eq!(v["reason"], "use the mirror");
    assert!(srv.own_audit().contains("\"via\":\"mcp\""));
    client.cancel().await.unwrap();
}

#[tokio::test]
async fn mcp_refuses_a_foreign_host_header() {
    // rmcp's DNS-rebinding guard: only the configured Host names reach the tools.
    let srv = common::start(10, 5, 50).await;
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}}).to_string();
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(srv.addr).await.unwrap();
    let head = format!("POST /mcp HTTP/1.1\r\nHost: attacker.example\r\nContent-Type: application/json\r\nAccept: application/json, text/event-stream\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len());
    s.write_all(head.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf).await;
    let text = String::from_utf8_lossy(&buf);
    assert!(!text.starts_with("HTTP/1.1 200"), "{text}");
}

#[tokio::test]
async fn mcp_and_http_share_one_rate_limit() {
    let srv = common::start(1, 2, 50).await;
    for host in ["a.example.com", "b.example.com"] {
        let r = common::post(
            srv.addr,
            "/v1/requests",
            json!({"kind": "host", "host": host, "reason": "r"}),
        )
        .await;
        assert_eq!(r.status, 201);
    }
    let transport = StreamableHttpClientTransport::from_uri(format!("http://{}/mcp", srv.addr));
    let client = ().serve(transport).await.unwrap();
    let v = call(
        &client,
        "request_access",
        json!({"kind": "host", "host": "c.example.com", "reason": "r"}),
    )
    .await;
    assert!(
        v["error"].as_str().unwrap_or("").contains("rate limited"),
        "{v}"
    );
    assert!(v["retry_after_secs"].as_u64().unwrap_or(0) >= 1);
    assert_eq!(srv.request_files().len(), 2, "the MCP flood wrote nothing");
    client.cancel().await.unwrap();
}

/// One raw JSON-RPC POST to /mcp; the whole answer as text.
async fn raw_mcp(addr: std::net::SocketAddr, body: &Value, extra_headers: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let body = body.to_string();
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nAccept: application/json, text/event-stream\r\n{extra_headers}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    s.write_all(head.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf).await;
    String::from_utf8_lossy(&buf).into_owned()
}

#[tokio::test]
async fn an_older_protocol_client_works_without_a_session() {
    // Clients on the 2025-06-18 protocol (sessions optional) get answers with no session kept.
    let srv = common::start(10, 5, 50).await;
    let init = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "old", "version": "1"}}});
    let answer = raw_mcp(srv.addr, &init, "").await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(
        !answer.to_ascii_lowercase().contains("mcp-session-id:"),
        "{answer}"
    );
    let list = json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list", "params": {}});
    let answer = raw_mcp(srv.addr, &list, "MCP-Protocol-Version: 2025-06-18\r\n").await;
    assert!(
        answer.contains("request_access") && answer.contains("check_url"),
        "{answer}"
    );
}
