//! A real gRPC client and server (python `grpcio`, generic bytes methods) through the whole
//! chain: the client goes through pipelock as its HTTPS proxy (CONNECT, the bottle CA), egress
//! injects the route's credential, the server checks it arrived as metadata. Unary and
//! bidirectional streaming, trailing metadata, a non-OK status and its message; a secret in
//! a message refused by pipelock; the credential reflected by the server withheld by egress.
//! Needs `target/debug/pipelock` and `python3` with `grpcio` (`.ci/run` installs it).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::*;

fn script(name: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/grpcio")
        .join(name)
}

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The python server on a free port, TLS with a leaf from the origin's CA (which egress
/// trusts), expecting `auth` as the authorization metadata.
fn start_server(fx: &Fixture, auth: &str) -> (Server, u16) {
    let (chain, key) = fx.origin.ca.issue(&["bearer.test", "open.test"]);
    let dir = fx.tmp.path().join("grpc-server");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("chain.pem"), chain).unwrap();
    std::fs::write(dir.join("key.pem"), key).unwrap();
    let port = free_port();
    let mut child = Command::new("python3")
        .arg(script("server.py"))
        .arg(port.to_string())
        .arg(dir.join("chain.pem"))
        .arg(dir.join("key.pem"))
        .env("EXPECT_AUTH", auth)
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(dir.join("server.log")).unwrap())
        .spawn()
        .expect("python3");
    let out = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = BufReader::new(out).read_line(&mut line);
        let _ = tx.send(line);
    });
    let line = rx.recv_timeout(Duration::from_secs(60)).unwrap_or_default();
    assert_eq!(
        line.trim(),
        "ready",
        "the grpcio server did not start (is grpcio installed? pip install grpcio); see {}",
        dir.join("server.log").display()
    );
    (Server(child), port)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpcio_client_and_server_through_the_chain() {
    bounded(async {
        let fx = Fixture::new().await;
        let pl = start_pipelock(fx.tmp.path(), &fx.eg.cfg_dir, fx.eg.addr).await;
        let auth = format!("Bearer {}", fx.secrets.bearer);
        let (server, port) = start_server(&fx, &auth);
        let tok = format!("ghp_{}", &"Zq8Lr3Tx6Wv1Np9Ks4Hb7Jd2Mf5Gc0Ye8Ua3Io6Pl"[..36]);
        let mut cmd = Command::new("python3");
        cmd.arg(script("client.py"))
            .arg(format!("bearer.test:{port}"))
            .arg(&pl.ca)
            .arg(&tok);
        for v in [
            "http_proxy",
            "HTTP_PROXY",
            "HTTPS_PROXY",
            "no_proxy",
            "NO_PROXY",
            "no_grpc_proxy",
        ] {
            cmd.env_remove(v);
        }
        cmd.env("https_proxy", format!("http://{}", pl.addr))
            .env("grpc_proxy", format!("http://{}", pl.addr));
        let out = tokio::time::timeout(
            Duration::from_secs(90),
            tokio::task::spawn_blocking(move || cmd.output().unwrap()),
        )
        .await
        .expect("client in time")
        .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(out.status.success(), "client failed: {stderr}");
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();

        // the credential arrived as metadata (the agent's own replaced); trailers intact
        assert_eq!(v["unary"], "auth-ok:ping", "{v}");
        assert_eq!(v["unary_code"], "OK");
        assert_eq!(v["unary_trailers"]["x-trailer"], "done");
        // bidirectional: each answer came back before the next message was sent
        assert_eq!(v["bidi"], serde_json::json!(["one", "two", "three"]));
        assert_eq!(v["bidi_code"], "OK");
        // a non-OK status and its message survive
        assert_eq!(v["fail"]["code"], "NOT_FOUND", "{v}");
        assert_eq!(v["fail"]["details"], "no such thing");
        // a secret in a message: refused by pipelock, with the reason
        assert_eq!(v["secret"]["code"], "PERMISSION_DENIED", "{v}");
        let d = v["secret"]["details"].as_str().unwrap();
        assert!(
            d.contains("blocked by pipelock") && d.contains("github-pat"),
            "{d}"
        );
        // the server reflecting the credential: egress withholds the message
        assert_eq!(v["reflect"]["code"], "INTERNAL", "{v}");
        assert!(v["reflect"]["details"]
            .as_str()
            .unwrap()
            .starts_with("blocked by egress"));
        assert_clean("client output", &out.stdout, &fx.secrets.all());
        assert_clean("client errors", &out.stderr, &fx.secrets.all());
        drop(server);
        drop(pl);
        fx.finish();
    })
    .await
}
