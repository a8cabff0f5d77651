//! The real `bottle` binary against a manifest the agent rewrote: without a terminal and
//! without `--yes` nothing starts and the accepted policy record is unchanged. No Docker is
//! needed: the policy is judged before Docker is touched (PATH has no docker here, so a start
//! that got past the check would fail differently).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

struct Out {
    code: i32,
    err: String,
}

fn bottle(home: &Path, args: &[&str], env: &[(&str, &str)]) -> Out {
    let mut c = Command::new(env!("CARGO_BIN_EXE_bottle"));
    c.args(args)
        .env_clear()
        .env("BOTTLE_HOME", home)
        .env("PATH", "/nonexistent")
        .env("NO_COLOR", "1")
        .stdin(Stdio::null());
    for (k, v) in env {
        c.env(k, v);
    }
    let o = c.output().unwrap();
    Out {
        code: o.status.code().unwrap_or(-1),
        err: format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        ),
    }
}

fn records(home: &Path) -> Vec<(PathBuf, String)> {
    let mut v: Vec<(PathBuf, String)> = std::fs::read_dir(home.join("policies"))
        .map(|rd| {
            rd.flatten()
                .map(|e| (e.path(), std::fs::read_to_string(e.path()).unwrap()))
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

const OPERATOR: &str =
    "name: demo\nimage: agent:1\nallow: [example.com]\nenv:\n  WHO: \"${USER_NAME}\"\n";
const SECRET_VALUE: &str = "aws-secret-canary-7f3a9";

#[test]
fn tampered_manifest_is_refused_without_yes_and_the_record_stays() {
    let home = tempfile::tempdir().unwrap();
    let ws = tempfile::tempdir().unwrap();
    let m = ws.path().join("bottle.yaml");
    std::fs::write(&m, OPERATOR).unwrap();
    let mp = m.to_str().unwrap();
    let env = [
        ("USER_NAME", "op"),
        ("API_TOKEN", "api-token-canary-1b2c"),
        ("AWS_SECRET_ACCESS_KEY", SECRET_VALUE),
    ];

    // First start: not a widening; shown, recorded, and it goes on (to Docker, absent here).
    let r = bottle(home.path(), &["start", mp], &env);
    assert!(r.err.contains("first start"), "{}", r.err);
    assert!(r.err.contains("example.com"), "summary missing: {}", r.err);
    assert!(
        r.err.contains("docker") || r.err.contains("compose"),
        "should get past the policy to Docker: {}",
        r.err
    );
    let first = records(home.path());
    assert_eq!(first.len(), 1, "one record per manifest path");
    assert!(first[0].1.contains("USER_NAME") && !first[0].1.contains("\"op\""));

    // The agent rewrites the manifest: the whole internet is an over-broad allow and is
    // refused outright; a quieter widening needs the operator.
    let broad = OPERATOR.replace("[example.com]", "[example.com, \"0.0.0.0/0\"]");
    std::fs::write(&m, &broad).unwrap();
    let r = bottle(home.path(), &["start", mp], &env);
    assert_eq!(r.code, 2, "{}", r.err);
    assert!(
        r.err.contains("bottle.yaml:3:") && r.err.contains("--force-allow"),
        "{}",
        r.err
    );

    let tampered = format!(
        "{OPERATOR}  K: \"${{AWS_SECRET_ACCESS_KEY}}\"\nworkspace: /\nroutes:\n  - host: api.example.com\n    auth: {{scheme: bearer, token_from: API_TOKEN}}\n"
    )
    .replace("[example.com]", "[example.com, evil.example]");
    std::fs::write(&m, &tampered).unwrap();
    for args in [vec!["start", mp], vec!["check", mp]] {
        let r = bottle(home.path(), &args, &env);
        assert_eq!(r.code, 2, "{args:?}: {}", r.err);
        for needle in [
            "not started",
            "--yes",
            "allow",
            "evil.example",
            "env[K]",
            "AWS_SECRET_ACCESS_KEY",
            "workspace",
            "routes[api.example.com]",
        ] {
            assert!(
                r.err.contains(needle),
                "{args:?}: {needle} missing: {}",
                r.err
            );
        }
        assert!(!r.err.contains(SECRET_VALUE), "a secret value was shown");
        assert!(
            !r.err.contains("docker"),
            "must stop before Docker: {}",
            r.err
        );
        assert_eq!(
            records(home.path()),
            first,
            "record changed without acceptance"
        );
    }

    // The operator accepts it explicitly.
    let r = bottle(home.path(), &["check", mp, "--yes"], &env);
    assert_eq!(r.code, 0, "{}", r.err);
    let accepted = records(home.path());
    assert_ne!(accepted, first);
    assert!(accepted[0].1.contains("evil.example"));
    assert!(
        !accepted[0].1.contains(SECRET_VALUE),
        "a secret value in the record"
    );

    // Narrowing back needs no confirmation and updates the record.
    std::fs::write(&m, OPERATOR).unwrap();
    let r = bottle(home.path(), &["check", mp], &env);
    assert_eq!(r.code, 0, "{}", r.err);
    assert!(!records(home.path())[0].1.contains("evil.example"));

    // Swapping the file for a symlink to another manifest is the same path: still compared.
    let other = ws.path().join("other.yaml");
    std::fs::write(&other, &tampered).unwrap();
    std::fs::remove_file(&m).unwrap();
    std::os::unix::fs::symlink(&other, &m).unwrap();
    let r = bottle(home.path(), &["check", mp], &env);
    assert_eq!(r.code, 2, "symlinked manifest treated as new: {}", r.err);
    assert!(!r.err.contains("first start"), "{}", r.err);
    // And `dir/../bottle.yaml` is the same manifest too.
    let dotted = ws.path().join("sub/../bottle.yaml");
    std::fs::create_dir_all(ws.path().join("sub")).unwrap();
    let r = bottle(home.path(), &["check", dotted.to_str().unwrap()], &env);
    assert_eq!(r.code, 2, "{}", r.err);
    std::fs::remove_file(&m).unwrap();
    std::fs::write(&m, OPERATOR).unwrap();

    // A corrupt record fails closed.
    std::fs::write(&accepted[0].0, "{not json").unwrap();
    let r = bottle(home.path(), &["check", mp], &env);
    assert_ne!(r.code, 0, "{}", r.err);
    assert!(r.err.contains("unreadable policy record"), "{}", r.err);
}

#[test]
fn bottle_allow_refuses_over_broad_entries_before_anything_else() {
    let home = tempfile::tempdir().unwrap();
    for e in [
        "0.0.0.0/0",
        "*.com",
        "*.co.uk",
        "10.0.0.0/8",
        "192.168.1.10",
        "169.254.169.254",
        "[fd00:ec2::254]",
        "metadata.google.internal",
        "::/0",
        "100.64.0.0/10",
    ] {
        let r = bottle(home.path(), &["allow", e, "--bottle", "x-aaaaa"], &[]);
        assert_eq!(r.code, 2, "{e}: {}", r.err);
        assert!(r.err.contains("--force"), "{e}: {}", r.err);
    }
    // With --force it gets past the breadth check (and fails later: no such bottle).
    let r = bottle(
        home.path(),
        &["allow", "10.0.0.0/8", "--bottle", "x-aaaaa", "--force"],
        &[],
    );
    assert!(!r.err.contains("refusing to allow"), "{}", r.err);
}

/// On a terminal (a pty from util-linux `script`) the widening is asked: "n" keeps the record,
/// "y" records the wider policy.
#[test]
fn on_a_terminal_the_operator_answers() {
    let home = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let m = dir.path().join("m.yaml");
    std::fs::write(&m, "name: d\nimage: x\nallow: [example.com]\n").unwrap();
    let mp = m.to_str().unwrap();
    assert_eq!(bottle(home.path(), &["check", mp], &[]).code, 0);
    let before = records(home.path());
    std::fs::write(
        &m,
        "name: d\nimage: x\nallow: [example.com, evil.example]\n",
    )
    .unwrap();
    let on_tty = |answer: &str| {
        let cmd = format!("{} check {mp}", env!("CARGO_BIN_EXE_bottle"));
        let mut c = Command::new("script");
        c.args(["-qec", &cmd, "/dev/null"])
            .env("BOTTLE_HOME", home.path())
            .env("NO_COLOR", "1")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = c
            .spawn()
            .expect("util-linux `script` is needed for this test");
        use std::io::Write;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(answer.as_bytes())
            .unwrap();
        let o = child.wait_with_output().unwrap();
        (
            o.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&o.stdout).to_string(),
        )
    };
    let (code, out) = on_tty("n\n");
    assert_eq!(code, 2, "{out}");
    assert!(
        out.contains("[y/N]") && out.contains("evil.example"),
        "{out}"
    );
    assert_eq!(records(home.path()), before, "refused, yet recorded");
    let (code, out) = on_tty("y\n");
    assert_eq!(code, 0, "{out}");
    assert!(records(home.path())[0].1.contains("evil.example"));
}

/// The agent quiets pipelock by editing `dlp:` (response and MCP scanning off, the strict
/// profile dropped): the real binary refuses to start without `--yes`, names each key, and
/// leaves the accepted record as it was.
#[test]
fn quieter_dlp_written_by_the_agent_is_refused_without_yes() {
    let home = tempfile::tempdir().unwrap();
    let ws = tempfile::tempdir().unwrap();
    let m = ws.path().join("bottle.yaml");
    let strict = "name: demo\nimage: agent:1\nallow: [example.com]\ndlp:\n  profile: strict\n";
    std::fs::write(&m, strict).unwrap();
    let mp = m.to_str().unwrap();
    let r = bottle(home.path(), &["check", mp], &[]);
    assert_eq!(r.code, 0, "{}", r.err);
    assert!(
        r.err.contains("profile strict, responses block, mcp block"),
        "{}",
        r.err
    );
    let accepted = records(home.path());

    let quiet = "name: demo\nimage: agent:1\nallow: [example.com]\ndlp:\n  profile: default\n  responses: off\n  mcp: warn\n";
    std::fs::write(&m, quiet).unwrap();
    for args in [vec!["start", mp], vec!["check", mp]] {
        let r = bottle(home.path(), &args, &[]);
        assert_eq!(r.code, 2, "{args:?}: {}", r.err);
        for needle in [
            "dlp.profile: strict -> default",
            "dlp.responses: block -> off",
            "dlp.mcp: block -> warn",
        ] {
            assert!(r.err.contains(needle), "{args:?}: {needle}: {}", r.err);
        }
        assert!(
            !r.err.contains("docker"),
            "must stop before Docker: {}",
            r.err
        );
        assert_eq!(records(home.path()), accepted, "record changed");
    }
    // Stricter again: narrowing, recorded without asking.
    let stricter = "name: demo\nimage: agent:1\nallow: [example.com]\ndlp: {profile: strict, responses: block, mcp: block, action: block}\n";
    std::fs::write(&m, stricter).unwrap();
    let r = bottle(home.path(), &["check", mp], &[]);
    assert_eq!(r.code, 0, "{}", r.err);
}
