//! Upstream failures, concurrency, reload during a push, and an https:// upstream with the
//! gate's token injected (and the agent's own credential dropped).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
use common::origin::https_origin;
use common::*;

use std::time::{Duration, Instant};

#[test]
fn upstream_unreachable_gives_clear_error_without_hanging() {
    let mut env = Env::new();
    let up = env.make_upstream("demo");
    let yaml = format!(
        "git:\n  - name: demo\n    upstream: file://{}\n{AGENT_RULES}  - name: gone\n    upstream: file:///nonexistent/gone.git\n{AGENT_RULES}  - name: closed\n    upstream: https://127.0.0.1:1/x.git\n{AGENT_RULES}",
        up.display()
    );
    env.write_routes(&yaml);
    env.start();
    for repo in ["gone", "closed"] {
        let started = Instant::now();
        let o = env.git(
            env.tmp.path(),
            &[
                "clone",
                "-q",
                &env.url(repo),
                env.path(repo).to_str().unwrap(),
            ],
        );
        let text = String::from_utf8_lossy(&o.stderr).to_string();
        assert!(!o.status.success());
        assert!(
            text.contains("git-gate: upstream unavailable for"),
            "{text}"
        );
        assert!(started.elapsed() < Duration::from_secs(60));
    }
    // the upstream disappears after a clone: the push fails clearly, nothing hangs
    let work = env.clone_work("demo", "w");
    env.git_ok(&work, &["checkout", "-q", "-b", "agent/u"]);
    env.commit_file(&work, "u.txt", "u\n", "u");
    let moved = env.path("moved.git");
    std::fs::rename(&up, &moved).unwrap();
    std::thread::sleep(Duration::from_millis(2100));
    let started = Instant::now();
    let (ok, out) = env.push(&work, &["origin", "agent/u"]);
    assert!(!ok);
    assert!(out.contains("upstream unavailable"), "{out}");
    assert!(started.elapsed() < Duration::from_secs(60));
    assert_eq!(upstream_ref(&moved, "refs/heads/agent/u"), None);
}

#[test]
fn upstream_refusal_is_relayed() {
    let mut env = Env::new();
    let up = env.make_upstream("demo");
    let hook = up.join("hooks").join("pre-receive");
    std::fs::write(
        &hook,
        "#!/bin/sh\necho 'GH006: Protected branch update failed (upstream policy)' >&2\nexit 1\n",
    )
    .unwrap();
    set_exec(&hook);
    env.write_routes(&routes(&up, AGENT_RULES));
    env.start();
    let work = env.clone_work("demo", "w");
    env.git_ok(&work, &["checkout", "-q", "-b", "agent/r"]);
    let n = env.commit_file(&work, "r.txt", "r\n", "r");
    let (ok, out) = env.push(&work, &["origin", "agent/r"]);
    assert!(!ok);
    assert!(out.contains("GH006"), "{out}");
    assert!(out.contains("push refused by upstream"), "{out}");
    assert!(!upstream_has(&up, &n));
    // the mirror did not run ahead of upstream: a fresh clone has no agent/r
    let w2 = env.clone_work("demo", "w2");
    let o = env.git(&w2, &["rev-parse", "--verify", "--quiet", "origin/agent/r"]);
    assert!(!o.status.success());
}

fn set_exec(p: &std::path::Path) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o755)).unwrap();
}

#[test]
fn concurrent_pushes_to_one_repository() {
    let mut env = Env::new();
    let up = env.make_upstream("demo");
    env.write_routes(&routes(&up, AGENT_RULES));
    env.start();
    let wa = env.clone_work("demo", "wa");
    let wb = env.clone_work("demo", "wb");
    env.git_ok(&wa, &["checkout", "-q", "-b", "agent/a"]);
    env.git_ok(&wb, &["checkout", "-q", "-b", "agent/b"]);
    let env = std::sync::Arc::new(env);
    for round in 0..3 {
        let a = env.commit_file(&wa, "a.txt", &format!("a{round}\n"), "a");
        let b = env.commit_file(&wb, "b.txt", &format!("b{round}\n"), "b");
        let (e1, e2) = (env.clone(), env.clone());
        let (p1, p2) = (wa.clone(), wb.clone());
        let t1 = std::thread::spawn(move || e1.push(&p1, &["origin", "agent/a"]));
        let t2 = std::thread::spawn(move || e2.push(&p2, &["origin", "agent/b"]));
        let (r1, r2) = (t1.join().unwrap(), t2.join().unwrap());
        assert!(r1.0, "{}", r1.1);
        assert!(r2.0, "{}", r2.1);
        assert_eq!(upstream_ref(&up, "refs/heads/agent/a"), Some(a));
        assert_eq!(upstream_ref(&up, "refs/heads/agent/b"), Some(b));
    }
    // both create the same branch from different commits: exactly one wins
    env.git_ok(&wa, &["checkout", "-q", "-b", "agent/same"]);
    env.git_ok(&wb, &["checkout", "-q", "-b", "agent/same"]);
    let a = env.commit_file(&wa, "s.txt", "from a\n", "sa");
    let b = env.commit_file(&wb, "s.txt", "from b\n", "sb");
    let (e1, e2) = (env.clone(), env.clone());
    let (p1, p2) = (wa.clone(), wb.clone());
    let t1 = std::thread::spawn(move || e1.push(&p1, &["origin", "agent/same"]));
    let t2 = std::thread::spawn(move || e2.push(&p2, &["origin", "agent/same"]));
    let (r1, r2) = (t1.join().unwrap(), t2.join().unwrap());
    assert!(r1.0 ^ r2.0, "exactly one must win:\n{}\n{}", r1.1, r2.1);
    let loser = if r1.0 { &r2.1 } else { &r1.1 };
    assert!(
        loser.contains("rejected") || loser.contains("already exists"),
        "{loser}"
    );
    let winner = if r1.0 { a } else { b };
    assert_eq!(upstream_ref(&up, "refs/heads/agent/same"), Some(winner));
}

#[test]
fn reload_while_a_push_is_running() {
    let mut env = Env::new();
    let up = env.make_upstream("demo");
    let marker = env.path("upstream-hook-started");
    let hook = up.join("hooks").join("pre-receive");
    std::fs::write(
        &hook,
        format!("#!/bin/sh\ntouch '{}'\nsleep 8\nexit 0\n", marker.display()),
    )
    .unwrap();
    set_exec(&hook);
    env.write_routes(&routes(&up, AGENT_RULES));
    env.start();
    let work = env.clone_work("demo", "w");
    env.git_ok(&work, &["checkout", "-q", "-b", "agent/r1"]);
    let c1 = env.commit_file(&work, "r.txt", "1\n", "r1");
    let env = std::sync::Arc::new(env);
    let (e, w) = (env.clone(), work.clone());
    let pushing = std::thread::spawn(move || e.push(&w, &["origin", "agent/r1"]));
    let deadline = Instant::now() + Duration::from_secs(60);
    while !marker.exists() {
        assert!(Instant::now() < deadline, "push never reached upstream");
        std::thread::sleep(Duration::from_millis(20));
    }
    // the push is in flight (and holds the mirror): reads are still served
    let ls = env.git_ok(env.tmp.path(), &["ls-remote", &env.url("demo")]);
    assert!(ls.contains("refs/heads/main"), "{ls}");
    assert!(
        !pushing.is_finished(),
        "ls-remote should not wait for the push"
    );
    // tighten the policy (agent/** no longer allowed) and reload
    let tight = "    rules:\n      - {ref: \"refs/heads/feature\", allow: [create, update]}\n    protected: [\"refs/heads/main\"]\n";
    env.write_routes(&routes(&up, tight));
    env.sighup();
    env.wait_generation(2);
    assert!(
        !pushing.is_finished(),
        "reload should land while the push runs"
    );
    let (ok, out) = pushing.join().unwrap();
    assert!(
        ok,
        "the in-flight push is judged under its own snapshot: {out}"
    );
    assert_eq!(upstream_ref(&up, "refs/heads/agent/r1"), Some(c1));
    // the next push sees the new policy
    env.git_ok(&work, &["checkout", "-q", "-b", "agent/r2"]);
    let c2 = env.commit_file(&work, "r.txt", "2\n", "r2");
    let (ok, out) = env.push(&work, &["origin", "agent/r2"]);
    assert!(!ok);
    assert!(out.contains("no rule allows refs/heads/agent/r2"), "{out}");
    assert!(!upstream_has(&up, &c2));
    // an invalid config keeps the last good one
    env.write_routes("git:\n  - name: demo\n    upstream: file:///x\n    bogus_key: 1\n");
    env.sighup();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let text = std::fs::read_to_string(&env.status).unwrap_or_default();
        if text.contains("bogus_key") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "status file never showed the error: {text}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let (ok, out) = env.push(&work, &["origin", "HEAD:refs/heads/feature"]);
    assert!(ok, "last good config still serves: {out}");
}

#[test]
fn https_upstream_gets_the_gate_token_never_the_agents() {
    let mut env = Env::new();
    let token = "gate-token-5f3a9c1e7d";
    let (origin, served, expected) = https_origin(&mut env, token);
    let port = origin.addr.port();
    env.write_routes(&format!(
        "git:\n  - name: demo\n    upstream: https://origin.test:{port}/demo.git\n    auth: {{scheme: basic, username: x-access-token, token_env: BOTTLE_GIT_TOKEN_0}}\n{AGENT_RULES}"
    ));
    env.start();
    // the agent sends its own credential to the gate
    let agent_cred = "Authorization: Basic YWdlbnQ6YWdlbnQtb3duLXNlY3JldA==";
    let work = env.path("w");
    env.git_ok(
        env.tmp.path(),
        &[
            "-c",
            &format!("http.extraHeader={agent_cred}"),
            "clone",
            "-q",
            &env.url("demo"),
            work.to_str().unwrap(),
        ],
    );
    env.git_ok(&work, &["config", "http.extraHeader", agent_cred]);
    env.git_ok(&work, &["checkout", "-q", "-b", "agent/h"]);
    let c = env.commit_file(&work, "h.txt", "h\n", "over https");
    let (ok, out) = env.push(&work, &["origin", "agent/h"]);
    assert!(ok, "{out}");
    assert_eq!(upstream_ref(&served, "refs/heads/agent/h"), Some(c));
    // a refused push never reaches the origin at all
    let n_before = origin.requests.lock().unwrap().len();
    let (ok, out) = env.push(&work, &["origin", "agent/h:main"]);
    assert!(!ok, "{out}");
    let reqs = origin.requests.lock().unwrap().clone();
    assert!(
        !reqs[n_before..]
            .iter()
            .any(|r| r.starts_with("POST") && r.contains("receive-pack")),
        "{reqs:?}"
    );
    let seen = origin.seen_auth.lock().unwrap().clone();
    assert!(!seen.is_empty());
    assert!(seen.iter().all(|a| a == &expected), "origin saw: {seen:?}");
    assert!(reqs
        .iter()
        .any(|r| r.starts_with("POST") && r.contains("git-receive-pack")));
    // the token is nowhere on disk or in logs
    let log = env.log.lock().unwrap().clone();
    assert!(!log.contains(token));
    assert!(!std::fs::read_to_string(&env.audit)
        .unwrap_or_default()
        .contains(token));
    assert!(
        !grep_dir(&env.data_dir, token.as_bytes()),
        "token written under --data-dir"
    );
    assert!(!grep_dir(
        &env.data_dir,
        expected.split(' ').nth(1).unwrap().as_bytes()
    ));
}

#[test]
fn upstream_redirects_are_not_followed() {
    let mut env = Env::new();
    let (origin, _, _) = https_origin(&mut env, "gate-token-redirect-1");
    let port = origin.addr.port();
    env.write_routes(&format!(
        "git:\n  - name: moved\n    upstream: https://origin.test:{port}/moved.git\n    auth: {{scheme: basic, token_env: BOTTLE_GIT_TOKEN_0}}\n{AGENT_RULES}"
    ));
    env.start();
    let o = env.git(
        env.tmp.path(),
        &[
            "clone",
            "-q",
            &env.url("moved"),
            env.path("w").to_str().unwrap(),
        ],
    );
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr).to_string();
    assert!(err.contains("upstream unavailable"), "{err}");
    let reqs = origin.requests.lock().unwrap().clone();
    assert!(!reqs.is_empty());
    assert!(
        reqs.iter().all(|r| r.contains("/moved.git/")),
        "redirect was followed: {reqs:?}"
    );
}

/// An HTTPS origin (`origin.test`, its own CA) serving a fresh `demo.git`, which accepts only
/// Basic `x-access-token:<token>`; the gate is told to trust it and is given the token as
/// `BOTTLE_GIT_TOKEN_0`. Returns the origin, the served repository and the expected header.
fn grep_dir(dir: &std::path::Path, needle: &[u8]) -> bool {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return false;
    };
    for e in rd.flatten() {
        let p = e.path();
        let Ok(ft) = e.file_type() else { continue };
        if ft.is_symlink() {
            continue;
        }
        if ft.is_dir() {
            if grep_dir(&p, needle) {
                return true;
            }
        } else if let Ok(data) = std::fs::read(&p) {
            if data.windows(needle.len()).any(|w| w == needle) {
                return true;
            }
        }
    }
    false
}

/// The ssh path end to end, with a stand-in `ssh` on PATH that records its arguments and
/// runs the remote command locally: git -> git-gate-ssh (this binary) -> ssh with the deploy
/// key and the pinned known_hosts, strict checking, no agent, no user config.
#[test]
fn ssh_upstream_uses_deploy_key_and_pinned_host_key() {
    let mut env = Env::new();
    let up = env.make_upstream("demo");
    let bin = env.path("fakebin");
    std::fs::create_dir_all(&bin).unwrap();
    let args_log = env.path("ssh-args.log");
    let fake = bin.join("ssh");
    std::fs::write(
        &fake,
        format!(
            "#!/bin/sh\nprintf '%s\\n' \"$@\" >> '{}'\necho --- >> '{}'\nfor a; do last=$a; done\nexec sh -c \"$last\"\n",
            args_log.display(),
            args_log.display()
        ),
    )
    .unwrap();
    set_exec(&fake);
    let key = env.path("deploy_key");
    std::fs::write(&key, "not a real key\n").unwrap();
    let pinned = "upstream.test ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl";
    env.write_routes(&format!(
        "git:\n  - name: demo\n    upstream: ssh://git@upstream.test:2222{}\n    ssh: {{key_file: {}, known_hosts: \"{pinned}\"}}\n{AGENT_RULES}",
        up.display(),
        key.display()
    ));
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    env.extra_env.push(("PATH".into(), path));
    env.start();
    let work = env.clone_work("demo", "w");
    env.git_ok(&work, &["checkout", "-q", "-b", "agent/ssh"]);
    let c = env.commit_file(&work, "s.txt", "s\n", "over ssh");
    let (ok, out) = env.push(&work, &["origin", "agent/ssh"]);
    assert!(ok, "{out}");
    assert_eq!(upstream_ref(&up, "refs/heads/agent/ssh"), Some(c));
    let args = std::fs::read_to_string(&args_log).unwrap();
    let kh = env.data_dir.join("ssh").join("demo.known_hosts");
    for want in [
        "StrictHostKeyChecking=yes".to_string(),
        "BatchMode=yes".to_string(),
        "IdentitiesOnly=yes".to_string(),
        "IdentityAgent=none".to_string(),
        "GlobalKnownHostsFile=/dev/null".to_string(),
        format!("UserKnownHostsFile={}", kh.display()),
        key.display().to_string(),
        "git@upstream.test".to_string(),
        "2222".to_string(),
    ] {
        assert!(
            args.lines().any(|l| l == want),
            "missing {want} in ssh args:\n{args}"
        );
    }
    assert!(!args.contains("accept-new") && !args.contains("StrictHostKeyChecking=no"));
    assert!(args.contains("git-receive-pack"), "{args}");
    assert_eq!(std::fs::read_to_string(&kh).unwrap().trim(), pinned);
}
