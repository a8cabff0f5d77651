//! The notify hook, hostile side first: request fields never become part of what runs, odd
//! files in `requests/` are not read, a hook that hangs or fails does not hold us.

use std::io::{Read, Write};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use bottle_core::access_request::RequestId;

use super::notify::*;
use crate::manifest::Notify;

fn rid(s: &str) -> RequestId {
    RequestId::parse(s).unwrap()
}

const ID: &str = "abcdefghijklmnopqrstuvwxyz";
const ID2: &str = "zyxwvutsrqponmlkjihgfedcba";

/// A request as supervise writes it, with a reason and host chosen by a hostile agent.
fn hostile_request(id: &str, marker: &Path) -> String {
    let m = marker.display();
    serde_json::json!({
        "id": id,
        "kind": "host",
        "ask": {"host": format!("x.example$(touch {m}.host)")},
        "reason": format!("please $(touch {m}) `touch {m}` ; touch {m} && \"quoted\" \\ back"),
        "created_at": "2026-12-07T05:00:00Z",
        "created_unix": 1,
        "expires_unix": 2,
    })
    .to_string()
}

fn wait_for(p: &Path) -> bool {
    let t = Instant::now();
    while t.elapsed() < Duration::from_secs(10) {
        if p.exists() {
            std::thread::sleep(Duration::from_millis(100));
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

#[test]
fn the_watcher_runs_the_manifest_argv_with_the_request_on_stdin_only() {
    let dir = tempfile::tempdir().unwrap();
    let out = tempfile::tempdir().unwrap();
    let marker = out.path().join("pwned");
    let got = out.path().join("stdin.json");
    let env_out = out.path().join("env.txt");
    // The manifest's argv: a fixed script; the request can only arrive on stdin and in env.
    let argv = vec![
        "sh".to_string(),
        "-c".to_string(),
        "cat > \"$1\"; printf '%s|%s|%s' \"$BOTTLE_SLUG\" \"$BOTTLE_REQUEST_ID\" \"$BOTTLE_REQUEST_KIND\" > \"$2\""
            .to_string(),
        "hook".to_string(),
        got.display().to_string(),
        env_out.display().to_string(),
    ];
    let w = spawn(
        dir.path().to_path_buf(),
        "demo-ab12c".into(),
        Notify::Command(argv),
    );
    std::thread::sleep(Duration::from_millis(100));
    std::fs::write(
        dir.path().join(format!("{ID}.json")),
        hostile_request(ID, &marker),
    )
    .unwrap();
    assert!(wait_for(&env_out), "the hook did not run");
    w.stop();
    let body: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&got).unwrap()).unwrap();
    assert_eq!(body["bottle"], "demo-ab12c");
    assert_eq!(body["request"]["id"], ID);
    let reason = body["request"]["reason"].as_str().unwrap();
    assert!(reason.contains("$(touch") && reason.contains("\"quoted\" \\ back"));
    assert!(body["text"].as_str().unwrap().contains(ID));
    assert_eq!(
        std::fs::read_to_string(&env_out).unwrap(),
        format!("demo-ab12c|{ID}|host")
    );
    for m in [marker.clone(), marker.with_extension("host")] {
        assert!(!m.exists(), "a request field was run: {}", m.display());
    }
}

#[test]
fn odd_files_in_requests_are_not_read_or_notified() {
    let dir = tempfile::tempdir().unwrap();
    let out = tempfile::tempdir().unwrap();
    let secret = out.path().join("host-secret");
    std::fs::write(&secret, "{\"id\":\"host-secret-canary\"}").unwrap();
    // a symlink named like a request (a hostile supervise pointing at a host file)
    let link = dir.path().join(format!("{ID}.json"));
    std::os::unix::fs::symlink(&secret, &link).unwrap();
    assert!(read_request(dir.path(), &rid(ID)).is_err());
    // oversized; a request naming another id; not a request
    let big = dir.path().join(format!("{ID2}.json"));
    std::fs::write(&big, "a".repeat(70_000)).unwrap();
    assert!(read_request(dir.path(), &rid(ID2)).is_err());
    let other = "bbbbbbbbbbbbbbbbbbbbbbbbbb";
    std::fs::write(
        dir.path().join(format!("{other}.json")),
        hostile_request(ID, &secret),
    )
    .unwrap();
    let e = read_request(dir.path(), &rid(other)).unwrap_err();
    assert!(e.contains("its id is not its file name"), "{e}");
    let arr = "cccccccccccccccccccccccccc";
    std::fs::write(dir.path().join(format!("{arr}.json")), "[1]").unwrap();
    assert!(read_request(dir.path(), &rid(arr)).is_err());
    for name in [
        format!("{ID}.decision.json"),
        format!(".{ID}.json.x1.tmp"),
        "notes.json".to_string(),
    ] {
        std::fs::write(dir.path().join(name), hostile_request(ID, &secret)).unwrap();
    }
    let log = out.path().join("ran");
    let argv = vec![
        "sh".to_string(),
        "-c".to_string(),
        "cat >> \"$1\"".to_string(),
        "hook".to_string(),
        log.display().to_string(),
    ];
    let w = spawn(dir.path().to_path_buf(), "d".into(), Notify::Command(argv));
    std::thread::sleep(Duration::from_millis(1500));
    // Made while watching, but still not requests.
    std::os::unix::fs::symlink(&secret, dir.path().join("mmmmmmmmmmmmmmmmmmmmmmmmmm.json"))
        .unwrap();
    std::fs::write(
        dir.path().join("nnnnnnnnnnnnnnnnnnnnnnnnnn.decision.json"),
        "{}",
    )
    .unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    w.stop();
    let ran = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(!ran.contains("host-secret-canary"), "{ran}");
    assert!(ran.is_empty(), "nothing was a new request: {ran}");
}

#[test]
fn a_failing_or_hanging_hook_is_reported_and_bounded() {
    let e = run_command(
        &[
            "sh".into(),
            "-c".into(),
            "echo 'bad\u{1b}[2J\u{202e}thing' >&2; exit 3".into(),
        ],
        "d",
        ID,
        "host",
        "{}",
    )
    .unwrap_err();
    assert!(e.contains("exit status: 3") && e.contains("bad"), "{e}");
    assert!(!e.contains('\u{1b}') && !e.contains('\u{202e}'), "{e:?}");
    let t = Instant::now();
    let mut c = Command::new("sleep");
    c.arg("30");
    let e =
        super::notify::run_with_timeout(c, b"{}", "sleep", Duration::from_millis(300)).unwrap_err();
    assert!(e.contains("killed"), "{e}");
    assert!(t.elapsed() < Duration::from_secs(5));
    // A hook that never reads its stdin is fine too.
    assert!(run_command(&["true".into()], "d", ID, "host", &"x".repeat(200_000)).is_ok());
    let e = run_command(&["/nonexistent/notify-hook".into()], "d", ID, "host", "{}").unwrap_err();
    assert!(e.contains("not found"), "{e}");
}

#[test]
fn webhook_config_round_trips_through_curl_quoting() {
    let body = serde_json::json!({"reason": "a \"b\" \\ c $(d) `e`\nf"}).to_string();
    let cfg = curl_config("https://hooks.example/T0/x\"y", &body);
    // one line per option, values quoted: a newline or quote in a value cannot add an option
    assert_eq!(cfg.lines().count(), 4, "{cfg}");
    assert!(
        cfg.contains("url = \"https://hooks.example/T0/x\\\"y\""),
        "{cfg}"
    );
}

/// End to end through curl, when it is installed: the POSTed body is the JSON, byte for byte.
#[test]
fn webhook_posts_the_json_with_curl() {
    if Command::new("curl").arg("--version").output().is_err() {
        eprintln!("curl not installed: skipped");
        return;
    }
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = std::thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut buf = Vec::new();
        let mut chunk = [0u8; 4096];
        loop {
            let n = s.read(&mut chunk).unwrap_or(0);
            if n == 0 {
                break;
            }
            buf.extend_from_slice(&chunk[..n]);
            let text = String::from_utf8_lossy(&buf).to_string();
            if let Some((head, body)) = text.split_once("\r\n\r\n") {
                let len: usize = head
                    .lines()
                    .find_map(|l| {
                        l.to_ascii_lowercase()
                            .strip_prefix("content-length:")
                            .map(|v| v.trim().parse().unwrap())
                    })
                    .unwrap_or(0);
                if body.len() >= len {
                    break;
                }
            }
        }
        let _ = s.write_all(b"HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n");
        String::from_utf8_lossy(&buf).to_string()
    });
    let body = serde_json::json!({"reason": "a \"b\" \\ c $(d) `e` \u{e9}"}).to_string();
    post_webhook(&format!("http://127.0.0.1:{port}/hook"), &body).unwrap();
    let req = server.join().unwrap();
    assert!(req.starts_with("POST /hook "), "{req}");
    assert!(req
        .to_ascii_lowercase()
        .contains("content-type: application/json"));
    assert!(req.ends_with(&body), "{req}");
}

#[test]
fn hook_runs_are_capped_per_minute() {
    let mut b = RunBudget::default();
    let t0 = Instant::now();
    for i in 0..MAX_RUNS_PER_MINUTE {
        assert!(b.take(t0 + Duration::from_millis(i as u64)), "run {i}");
    }
    assert!(!b.take(t0 + Duration::from_secs(30)), "a flood is cut");
    assert!(b.take(t0 + Duration::from_secs(61)), "the window slides");
}
