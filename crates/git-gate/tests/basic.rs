//! Clone, fetch, pull, ls-remote and allowed pushes through the gate with the stock git client.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
use common::*;

#[test]
fn clone_fetch_pull_ls_remote_v2_and_v0() {
    let mut env = Env::new();
    let up = env.make_upstream("demo");
    env.write_routes(&routes(&up, AGENT_RULES));
    env.start();
    let main = upstream_ref(&up, "refs/heads/main").unwrap();

    // protocol v2 (default) clone
    let work = env.clone_work("demo", "w2");
    assert_eq!(
        std::fs::read_to_string(work.join("README")).unwrap(),
        "hello\n"
    );
    assert_eq!(env.git_ok(&work, &["rev-parse", "HEAD"]), main);
    assert_eq!(
        env.git_ok(&work, &["symbolic-ref", "HEAD"]),
        "refs/heads/main"
    );

    // protocol v0 clone
    let w0 = env.path("w0");
    env.git_ok(
        env.tmp.path(),
        &[
            "-c",
            "protocol.version=0",
            "clone",
            "-q",
            &env.url("demo"),
            w0.to_str().unwrap(),
        ],
    );
    assert_eq!(env.git_ok(&w0, &["rev-parse", "HEAD"]), main);

    // protocol v1
    let w1 = env.path("w1");
    env.git_ok(
        env.tmp.path(),
        &[
            "-c",
            "protocol.version=1",
            "clone",
            "-q",
            &env.url("demo"),
            w1.to_str().unwrap(),
        ],
    );
    assert_eq!(env.git_ok(&w1, &["rev-parse", "HEAD"]), main);

    // upstream moves; fetch and pull see it (v2 and v0)
    let seed = env.path("demo-seed");
    let c2 = env.commit_file(&seed, "b.txt", "b\n", "second");
    env.git_ok(&seed, &["push", "-q", up.to_str().unwrap(), "main"]);
    std::thread::sleep(std::time::Duration::from_millis(2100)); // refresh rate limit
    env.git_ok(&work, &["pull", "-q", "--ff-only"]);
    assert_eq!(env.git_ok(&work, &["rev-parse", "HEAD"]), c2);
    env.git_ok(&w0, &["-c", "protocol.version=0", "fetch", "-q"]);
    assert_eq!(env.git_ok(&w0, &["rev-parse", "origin/main"]), c2);

    // many local commits: the negotiation request is large enough that git gzips it
    for i in 0..60 {
        env.commit_file(&w0, "local.txt", &format!("{i}\n"), &format!("local {i}"));
    }
    env.git_ok(&seed, &["commit", "-q", "--allow-empty", "-m", "third"]);
    env.git_ok(&seed, &["push", "-q", up.to_str().unwrap(), "main"]);
    let c3 = env.git_ok(&seed, &["rev-parse", "HEAD"]);
    std::thread::sleep(std::time::Duration::from_millis(2100));
    env.git_ok(&w0, &["-c", "protocol.version=0", "fetch", "-q"]);
    assert_eq!(env.git_ok(&w0, &["rev-parse", "origin/main"]), c3);
    env.git_ok(&w0, &["commit", "-q", "--allow-empty", "-m", "one more"]);
    env.git_ok(&w0, &["fetch", "-q"]);
    let c2 = c3;

    let ls = env.git_ok(&work, &["ls-remote", &env.url("demo")]);
    assert!(ls.contains(&format!("{c2}\trefs/heads/main")), "{ls}");
    // shallow and partial clones work too
    let ws = env.path("ws");
    env.git_ok(
        env.tmp.path(),
        &[
            "clone",
            "-q",
            "--depth",
            "1",
            "--filter=blob:none",
            &env.url("demo"),
            ws.to_str().unwrap(),
        ],
    );
    assert_eq!(env.git_ok(&ws, &["rev-parse", "HEAD"]), c2);
}

#[test]
fn allowed_pushes_land_upstream() {
    let mut env = Env::new();
    let up = env.make_upstream("demo");
    env.write_routes(&routes(&up, AGENT_RULES));
    env.start();
    let work = env.clone_work("demo", "w");
    env.git_ok(&work, &["checkout", "-q", "-b", "agent/x"]);
    let c1 = env.commit_file(&work, "a.txt", "one\n", "one");
    let (ok, out) = env.push(&work, &["origin", "agent/x"]);
    assert!(ok, "{out}");
    assert_eq!(
        upstream_ref(&up, "refs/heads/agent/x").as_deref(),
        Some(c1.as_str())
    );
    // fast-forward
    let c2 = env.commit_file(&work, "a.txt", "two\n", "two");
    let (ok, out) = env.push(&work, &["origin", "agent/x"]);
    assert!(ok, "{out}");
    assert_eq!(
        upstream_ref(&up, "refs/heads/agent/x").as_deref(),
        Some(c2.as_str())
    );
    // force is allowed under agent/**
    env.git_ok(&work, &["reset", "-q", "--hard", &c1]);
    let c3 = env.commit_file(&work, "a.txt", "three\n", "three");
    let (ok, out) = env.push(&work, &["--force", "origin", "agent/x"]);
    assert!(ok, "{out}");
    assert_eq!(
        upstream_ref(&up, "refs/heads/agent/x").as_deref(),
        Some(c3.as_str())
    );
    // fast-forward of an allowed plain branch (feature: create, update)
    env.git_ok(&work, &["checkout", "-q", "-b", "feature"]);
    let (ok, out) = env.push(&work, &["origin", "feature"]);
    assert!(ok, "{out}");
    // delete under agent/** is allowed
    let (ok, out) = env.push(&work, &["origin", "--delete", "agent/x"]);
    assert!(ok, "{out}");
    assert_eq!(upstream_ref(&up, "refs/heads/agent/x"), None);
    // a new branch at an existing commit (empty pack)
    let (ok, out) = env.push(&work, &["origin", "origin/main:refs/heads/agent/at-main"]);
    assert!(ok, "{out}");
    assert_eq!(
        upstream_ref(&up, "refs/heads/agent/at-main"),
        upstream_ref(&up, "refs/heads/main")
    );
    // the gate's mirror follows: a fresh clone sees feature
    let w2 = env.clone_work("demo", "w2");
    assert_eq!(env.git_ok(&w2, &["rev-parse", "origin/feature"]), c3);

    // audit: one line per ref decision, with classification and rule, never contents
    let audit = env.audit_lines();
    let pushes: Vec<_> = audit.iter().filter(|a| a["event"] == "push").collect();
    assert!(pushes.len() >= 5, "{audit:?}");
    let force = pushes
        .iter()
        .find(|a| a["classification"] == "force")
        .expect("force line");
    assert_eq!(force["repo"], "demo");
    assert_eq!(force["ref"], "refs/heads/agent/x");
    assert_eq!(force["new"], c3.as_str());
    assert_eq!(force["old"], c2.as_str());
    assert_eq!(force["rule"], "rules[0] refs/heads/agent/**");
    assert_eq!(force["result"], "accepted");
    assert_eq!(force["decision"], "allow");
    assert!(pushes.iter().any(|a| a["classification"] == "update"));
    assert!(pushes.iter().any(|a| a["classification"] == "delete"));
    let text = std::fs::read_to_string(&env.audit).unwrap();
    assert!(
        !text.contains("three"),
        "audit must not contain file contents"
    );
}

#[test]
fn metrics_healthcheck_audit_and_sigterm() {
    let mut env = Env::new();
    let up = env.make_upstream("demo");
    env.write_routes(&routes(&up, AGENT_RULES));
    env.extra_args
        .extend(["--admin-listen".to_string(), "127.0.0.1:0".to_string()]);
    env.start();
    let work = env.clone_work("demo", "w");
    env.git_ok(&work, &["checkout", "-q", "-b", "agent/m"]);
    env.commit_file(&work, "m.txt", "m\n", "m");
    let (ok, out) = env.push(&work, &["origin", "agent/m"]);
    assert!(ok, "{out}");
    let (ok, _) = env.push(&work, &["origin", "agent/m:main"]);
    assert!(!ok);
    let admin = env.admin_addr();
    let (status, _, body) = http(admin, "GET", "/metrics", &[], b"");
    assert_eq!(status, 200);
    let text = String::from_utf8_lossy(&body);
    assert!(
        text.contains("git_gate_ref_decisions_total{result=\"accepted\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("git_gate_ref_decisions_total{result=\"refused\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("git_gate_upstream_pushes_total{result=\"ok\"} 1"),
        "{text}"
    );
    let hc = std::process::Command::new(env!("CARGO_BIN_EXE_git-gate"))
        .args(["healthcheck", "--url", &format!("http://{admin}/healthz")])
        .status()
        .unwrap();
    assert!(hc.success());
    let hc = std::process::Command::new(env!("CARGO_BIN_EXE_git-gate"))
        .args(["healthcheck", "--url", "http://127.0.0.1:1/healthz"])
        .status()
        .unwrap();
    assert!(!hc.success());
    // fetch-side audit lines
    let audit = env.audit_lines();
    assert!(audit
        .iter()
        .any(|a| a["event"] == "advertise" && a["repo"] == "demo"));
    assert!(audit
        .iter()
        .any(|a| a["event"] == "fetch" && a["decision"] == "allow"));
    // bad flags / bad config exit 2
    let st = std::process::Command::new(env!("CARGO_BIN_EXE_git-gate"))
        .args(["--listen", "nope"])
        .stderr(std::process::Stdio::null())
        .status()
        .unwrap();
    assert_eq!(st.code(), Some(2));
    let bad = env.path("badcfg");
    std::fs::create_dir_all(&bad).unwrap();
    std::fs::write(
        bad.join("routes.yaml"),
        "git:\n  - name: x\n    upstream: http://plain/x\n",
    )
    .unwrap();
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_git-gate"))
        .args([
            "--listen",
            "127.0.0.1:0",
            "--config-dir",
            bad.to_str().unwrap(),
            "--data-dir",
            env.path("d2").to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("routes.yaml:3"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    // SIGTERM: exits cleanly within a few seconds
    let pid = env.pid().to_string();
    assert!(std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    let mut child = env.gate.take().unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "did not exit on SIGTERM"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    assert!(status.success(), "{status:?}");
}

/// Bodies over git's http.postBuffer (1 MiB) go as a `0000` probe plus a chunked POST.
#[test]
fn large_chunked_push_lands() {
    let mut env = Env::new();
    let up = env.make_upstream("demo");
    env.write_routes(&routes(&up, AGENT_RULES));
    env.start();
    let work = env.clone_work("demo", "w");
    env.git_ok(&work, &["checkout", "-q", "-b", "agent/big"]);
    let mut data = String::with_capacity(3 << 20);
    let mut x: u64 = 0x2545f4914f6cdd1d;
    while data.len() < (3 << 20) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        data.push_str(&format!("{x:016x}\n"));
    }
    let c = env.commit_file(&work, "big.txt", &data, "big");
    let (ok, out) = env.push(&work, &["origin", "agent/big"]);
    assert!(ok, "{out}");
    assert_eq!(upstream_ref(&up, "refs/heads/agent/big"), Some(c));
}
