//! An upstream that echoes the credential git-gate sent it (in its error text) must not hand it
//! to the agent: every message git-gate relays from an upstream is checked for the credential
//! in every form, and withheld when it holds one.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::origin::https_origin;
use common::*;

#[test]
fn an_upstream_that_echoes_the_credential_does_not_reach_the_agent() {
    let mut env = Env::new();
    // Built at run time so the source holds no token-shaped literal.
    let token = format!(
        "ghp_{}",
        "R3fl3ct3dT0k3nCanary0123456789abcdefgh".get(..36).unwrap()
    );
    let (origin, served, expected) = https_origin(&mut env, &token);
    let basic = expected.trim_start_matches("Basic ").to_string();
    // The upstream refuses every push and says the credential back, raw and as the header.
    let hook = served.join("hooks/pre-receive");
    std::fs::write(
        &hook,
        format!("#!/bin/sh\necho \"denied for token {token}\" >&2\necho \"auth was {expected}\" >&2\nexit 1\n"),
    )
    .unwrap();
    let mut perm = std::fs::metadata(&hook).unwrap().permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perm, 0o755);
    std::fs::set_permissions(&hook, perm).unwrap();
    let port = origin.addr.port();
    env.write_routes(&format!(
        "git:\n  - name: demo\n    upstream: https://origin.test:{port}/demo.git\n    auth: {{scheme: basic, username: x-access-token, token_env: BOTTLE_GIT_TOKEN_0}}\n{AGENT_RULES}"
    ));
    env.start();

    let before = upstream_refs(&served);
    let work = env.clone_work("demo", "work");
    env.commit_file(&work, "a.txt", "hello\n", "a change");
    let (ok, out) = env.push(&work, &["origin", "HEAD:refs/heads/agent/x"]);
    assert!(!ok, "the upstream refused: the push must fail\n{out}");
    assert!(
        out.contains("upstream message withheld"),
        "the agent is still told the upstream said something\n{out}"
    );
    // The hook really ran and really echoed it (so the test cannot pass vacuously).
    assert!(origin
        .requests
        .lock()
        .unwrap()
        .iter()
        .any(|r| r.contains("git-receive-pack")));
    for form in [token.as_str(), basic.as_str()] {
        assert!(
            !out.contains(form),
            "a form of the credential reached the agent\n{out}"
        );
    }
    assert_eq!(upstream_refs(&served), before, "nothing landed upstream");
    let log = env.log.lock().unwrap().clone();
    let audit = std::fs::read_to_string(&env.audit).unwrap_or_default();
    for form in [token.as_str(), basic.as_str()] {
        assert!(!log.contains(form), "gate log holds the credential");
        assert!(!audit.contains(form), "audit holds the credential");
    }
}
