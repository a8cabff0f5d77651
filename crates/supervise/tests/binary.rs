//! The real `supervise` binary with the flags the launcher will render.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::json;

struct Kill(Child);
impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> std::net::SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

#[tokio::test]
async fn binary_serves_the_api_audits_and_answers_healthcheck() {
    let dir = tempfile::tempdir().unwrap();
    let (state, config, audit) = (
        dir.path().join("state"),
        dir.path().join("config"),
        dir.path().join("audit"),
    );
    for d in [&state, &config, &audit] {
        std::fs::create_dir_all(d).unwrap();
    }
    std::fs::write(config.join("allowlist"), "example.com\n").unwrap();
    let (listen, admin) = (free_port(), free_port());
    let own_audit = dir.path().join("supervise.log");
    let status = dir.path().join("supervise.status.json");
    let bin = env!("CARGO_BIN_EXE_supervise");
    let _child = Kill(
        Command::new(bin)
            .args([
                "--listen",
                &listen.to_string(),
                "--admin-listen",
                &admin.to_string(),
            ])
            .arg("--config-dir")
            .arg(&config)
            .arg("--state-dir")
            .arg(&state)
            .arg("--audit-dir")
            .arg(&audit)
            .arg("--audit-log")
            .arg(&own_audit)
            .arg("--status-file")
            .arg(&status)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let mut up = false;
    for _ in 0..100 {
        if tokio::net::TcpStream::connect(listen).await.is_ok() {
            up = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(up, "supervise did not listen");
    let r = common::post(
        listen,
        "/v1/requests",
        json!({"kind": "host", "host": "docs.rs", "reason": "docs"}),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.head);
    let id = r.json["id"].as_str().unwrap().to_owned();
    assert!(state.join("requests").join(format!("{id}.json")).is_file());
    let r = common::call(
        listen,
        "GET",
        "/v1/check?url=https%3A%2F%2Fexample.com%2F",
        b"",
    )
    .await;
    assert_eq!(r.json["allowed"], true);
    let log = std::fs::read_to_string(&own_audit).unwrap();
    assert!(
        log.contains(&id) && log.contains("\"component\":\"supervise\""),
        "{log}"
    );
    assert!(status.is_file());
    let hc = Command::new(bin)
        .args(["healthcheck", "--url", &format!("http://{admin}/healthz")])
        .status()
        .unwrap();
    assert!(hc.success());
}
