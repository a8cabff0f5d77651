//! The `echo-origin` binary: flags, CA persistence, the stdout line, SIGTERM.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_echo-origin");

struct Running {
    child: Child,
    http: String,
    https: String,
    /// The rest of stdout after the address line.
    stdout: Option<BufReader<std::process::ChildStdout>>,
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn spawn(args: &[&str]) -> Running {
    let mut child = Command::new(BIN)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let out = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let mut rd = BufReader::new(out);
        let _ = rd.read_line(&mut line);
        let _ = tx.send((line, rd));
    });
    let (line, rd) = rx
        .recv_timeout(Duration::from_secs(60))
        .expect("echo-origin printed its addresses");
    let mut http = String::new();
    let mut https = String::new();
    for part in line.split_whitespace() {
        if let Some(v) = part.strip_prefix("http=") {
            http = v.to_string();
        } else if let Some(v) = part.strip_prefix("https=") {
            https = v.to_string();
        }
    }
    assert!(!http.is_empty() && !https.is_empty(), "bad line {line:?}");
    Running {
        child,
        http,
        https,
        stdout: Some(rd),
    }
}

fn curl(args: &[&str]) -> String {
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "60"])
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "curl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn sigterm_and_wait(mut r: Running) -> std::process::ExitStatus {
    let pid = r.child.id().to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(st) = r.child.try_wait().unwrap() {
            return st;
        }
        assert!(Instant::now() < deadline, "no exit after SIGTERM");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn serves_http_and_https_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let tls = dir.path().to_str().unwrap();
    let r = spawn(&["--tls-dir", tls, "--name", "bin.test", "--name", "10.9.8.7"]);
    let ca = dir.path().join("ca.crt");
    let key = dir.path().join("ca.key");
    assert!(std::fs::read_to_string(&ca)
        .unwrap()
        .contains("BEGIN CERTIFICATE"));
    let mode = std::fs::metadata(&key).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);

    let body = curl(&[&format!("http://{}/plain?q=1", r.http)]);
    assert!(body.contains("\"query\":\"q=1\""), "{body}");
    let port = r.https.rsplit(':').next().unwrap();
    let body = curl(&[
        "--cacert",
        ca.to_str().unwrap(),
        "--resolve",
        &format!("bin.test:{port}:127.0.0.1"),
        &format!("https://bin.test:{port}/tls"),
    ]);
    assert!(body.contains("\"sni\":\"bin.test\""), "{body}");
    // Default names are still covered.
    let body = curl(&[
        "--cacert",
        ca.to_str().unwrap(),
        &format!("https://localhost:{port}/"),
    ]);
    assert!(body.contains("\"tls\":true"));

    let st = sigterm_and_wait(r);
    assert!(st.success(), "exit status {st:?}");
}

#[test]
fn reuses_the_ca_in_tls_dir() {
    let dir = tempfile::tempdir().unwrap();
    let tls = dir.path().to_str().unwrap();
    let r = spawn(&["--tls-dir", tls]);
    let first = std::fs::read_to_string(dir.path().join("ca.crt")).unwrap();
    let mtime = std::fs::metadata(dir.path().join("ca.crt"))
        .unwrap()
        .modified()
        .unwrap();
    assert!(sigterm_and_wait(r).success());
    std::thread::sleep(Duration::from_millis(50));
    let r = spawn(&["--tls-dir", tls, "--https", "127.0.0.1:0"]);
    let second = std::fs::read_to_string(dir.path().join("ca.crt")).unwrap();
    assert_eq!(first, second, "CA loaded, not regenerated");
    let mtime2 = std::fs::metadata(dir.path().join("ca.crt"))
        .unwrap()
        .modified()
        .unwrap();
    assert_eq!(
        mtime, mtime2,
        "an identical ca.crt is not rewritten (read-only mounts)"
    );
    let body = curl(&[
        "--cacert",
        dir.path().join("ca.crt").to_str().unwrap(),
        &format!("https://{}/again", r.https),
    ]);
    assert!(body.contains("\"path\":\"/again\""));
}

#[test]
fn bad_start_exits_2_with_one_line() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("ca.crt"), "not a cert").unwrap();
    std::fs::write(dir.path().join("ca.key"), "not a key").unwrap();
    let out = Command::new(BIN)
        .args(["--tls-dir", dir.path().to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    assert!(err.starts_with("echo-origin: "));

    // Port already taken.
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let taken = l.local_addr().unwrap().to_string();
    let dir2 = tempfile::tempdir().unwrap();
    let out = Command::new(BIN)
        .args(["--tls-dir", dir2.path().to_str().unwrap(), "--http", &taken])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));

    // Unknown flag (clap).
    let out = Command::new(BIN).args(["--bogus"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn healthcheck_subcommand() {
    let dir = tempfile::tempdir().unwrap();
    let r = spawn(&["--tls-dir", dir.path().to_str().unwrap()]);
    let url = format!("http://{}/healthz", r.http);
    let st = Command::new(BIN)
        .args(["healthcheck", "--url", &url])
        .status()
        .unwrap();
    assert!(st.success());
    let st = Command::new(BIN)
        .args([
            "healthcheck",
            "--url",
            &format!("http://{}/status/503", r.http),
        ])
        .status()
        .unwrap();
    assert_eq!(st.code(), Some(1));
    drop(r);
    // Nothing listening any more.
    let st = Command::new(BIN)
        .args(["healthcheck", "--url", &url])
        .status()
        .unwrap();
    assert_eq!(st.code(), Some(1));
    // Missing --tls-dir when serving.
    let out = Command::new(BIN).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn log_requests_prints_one_json_line_per_request() {
    let dir = tempfile::tempdir().unwrap();
    let mut r = spawn(&["--tls-dir", dir.path().to_str().unwrap(), "--log-requests"]);
    let ca = dir.path().join("ca.crt");
    curl(&[
        "-H",
        "Authorization: Bearer injected-token",
        "--data-binary",
        "12345",
        &format!("http://{}/seen?q=1", r.http),
    ]);
    let port = r.https.rsplit(':').next().unwrap();
    curl(&[
        "--cacert",
        ca.to_str().unwrap(),
        &format!("https://echo.test:{port}/status/404"),
        "--resolve",
        &format!("echo.test:{port}:127.0.0.1"),
        "-o",
        "/dev/null",
    ]);
    // Stop it, then read the rest of stdout.
    let pid = r.child.id().to_string();
    Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    let mut rest = String::new();
    std::io::Read::read_to_string(r.stdout.as_mut().unwrap(), &mut rest).unwrap();
    let lines: Vec<serde_json::Value> = rest
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    assert_eq!(lines.len(), 2, "{rest}");
    assert_eq!(lines[0]["path"], "/seen");
    assert_eq!(lines[0]["query"], "q=1");
    assert_eq!(lines[0]["method"], "POST");
    assert_eq!(lines[0]["body_len"], 5);
    assert_eq!(lines[0]["status"], 200);
    assert_eq!(lines[0]["tls"], false);
    let auth = lines[0]["headers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h[0] == "authorization")
        .unwrap();
    assert_eq!(auth[1], "Bearer injected-token");
    assert_eq!(lines[1]["sni"], "echo.test");
    assert_eq!(lines[1]["status"], 404);
    assert_eq!(lines[1]["tls"], true);
}
