//! The real `bottle` binary: `bottle log` over a state dir's audit files (hostile lines
//! printed inert, `--blocked`, `-f` picking up new lines), and `bottle watch` refusing to run
//! without a terminal. No Docker is needed: a named slug is looked up on disk only.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn bottle(home: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_bottle"));
    c.env_clear()
        .env("BOTTLE_HOME", home)
        .env("PATH", "/nonexistent")
        .stdin(Stdio::null());
    c
}

fn audit_dir(home: &Path, slug: &str) -> std::path::PathBuf {
    let d = home.join("state").join(slug).join("audit");
    std::fs::create_dir_all(&d).unwrap();
    d
}

const HOSTILE: &str = r#"{"ts":"2026-12-07T05:00:02.000Z","component":"pipelock","event":"request","decision":"deny","reason":"secret in body: \u001b]0;pwned\u0007\u001b[2J","method":"POST","scheme":"https","host":"paste.example","port":443,"path":"/up\r\u001b[1Aallowed\u202e","status":403,"finding":"AKIA-NEVER-SHOWN"}"#;

#[test]
fn log_prints_every_sidecar_in_time_order_and_hostile_text_inert() {
    let home = tempfile::tempdir().unwrap();
    let d = audit_dir(home.path(), "b-1");
    std::fs::write(
        d.join("egress.jsonl"),
        concat!(
            r#"{"ts":"2026-12-07T05:00:01.000Z","component":"egress","event":"request","decision":"allow","method":"GET","host":"pypi.org","port":443,"path":"/simple/","status":200}"#,
            "\n",
            r#"{"ts":"2026-12-07T05:00:03.000Z","component":"egress","event":"request","decision":"error","method":"GET","host":"down.example","path":"/","status":502,"reason":"upstream refused"}"#,
            "\n"
        ),
    )
    .unwrap();
    std::fs::write(d.join("pipelock.jsonl"), format!("{HOSTILE}\n")).unwrap();

    let o = bottle(home.path()).args(["log", "b-1"]).output().unwrap();
    assert!(o.status.success(), "{o:?}");
    let out = String::from_utf8(o.stdout).unwrap();
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 3, "{out}");
    assert!(lines[0].contains("egress") && lines[0].contains("pypi.org:443 /simple/ 200"));
    assert!(lines[1].starts_with("2026-12-07 05:00:02 pipelock deny  POST"));
    assert!(lines[2].contains("down.example / 502 — upstream refused"));
    assert!(
        !out.chars()
            .any(|c| (c.is_control() && c != '\n') || c == '\u{202e}'),
        "{out:?}"
    );
    assert!(
        lines[1].contains("/up\\u{d}\\u{1b}[1Aallowed\\u{202e}"),
        "{}",
        lines[1]
    );
    assert!(
        !out.contains("AKIA-NEVER-SHOWN"),
        "extra fields are never shown"
    );

    let o = bottle(home.path())
        .args(["log", "b-1", "--blocked"])
        .output()
        .unwrap();
    let out = String::from_utf8(o.stdout).unwrap();
    assert_eq!(out.lines().count(), 1, "{out}");
    assert!(out.contains("paste.example:443"));

    let o = bottle(home.path()).args(["log", "../x"]).output().unwrap();
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn log_follow_prints_lines_written_later() {
    let home = tempfile::tempdir().unwrap();
    let d = audit_dir(home.path(), "b-2");
    let mut child = bottle(home.path())
        .args(["log", "b-2", "-f", "--blocked"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    std::fs::write(d.join("pipelock.jsonl"), format!("{HOSTILE}\n")).unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        let n = stdout.read(&mut buf).unwrap_or(0);
        String::from_utf8_lossy(&buf[..n]).into_owned()
    });
    let deadline = Instant::now() + Duration::from_secs(10);
    while !reader.is_finished() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let got = reader.join().unwrap();
    assert!(got.contains("paste.example:443"), "{got:?}");
}

#[test]
fn watch_without_a_terminal_points_at_bottle_requests() {
    let home = tempfile::tempdir().unwrap();
    let o = bottle(home.path()).args(["watch"]).output().unwrap();
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("bottle watch needs a terminal; use `bottle requests`"),
        "{err}"
    );
}
