//! End-to-end acceptance tests of the whole product on a real Docker Engine.
//!
//! One test drives every Docker scenario in order (they share one echo origin, and
//! `bottle cleanup` touches every bottle on the host, so they must not run in parallel).
//! See tests/e2e/README.md.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is a failure

use std::time::Instant;

use bottle_e2e::*;

mod docker_scenarios;

use docker_scenarios::attached::{attached_runs, interrupted_and_killed};
use docker_scenarios::detached::detached_bottle;
use docker_scenarios::git_gate::git_through_gate;
use docker_scenarios::readiness::dying_sidecar_stops_the_start;
use docker_scenarios::*;

/// Manifest errors come back with file:line and a suggestion, without Docker.
#[test]
fn manifest_errors_have_lines_and_suggestions() {
    let home = Home::new();
    let cases: &[(&str, &[&str])] = &[
        ("name: e2e\nimage: x\nalow:\n  - example.com\n", &[":3:", "did you mean `allow`?"]),
        ("name: e2e\nimage: x\nlimits:\n  memroy: 1g\n", &[":4:", "did you mean `memory`?"]),
        ("name: e2e\nimage: x\nlimits:\n  pids: many\n", &[":4:", "invalid type"]),
        (
            "name: e2e\nimage: x\nroutes:\n  - host: a.example.com\n    auth: {scheme: bearer, token_from: E2E_UNSET_VAR_X}\n",
            &[":5:", "E2E_UNSET_VAR_X", "not set"],
        ),
        ("name: e2e\nimage: x\nenv:\n  A: \"${E2E_UNSET_VAR_Y}\"\n", &[":4:", "E2E_UNSET_VAR_Y"]),
        ("name: e2e\nimage: x\nallow:\n  - \"bad host!\"\n", &[":4:", "bad host!"]),
    ];
    for (text, wants) in cases {
        let p = write_manifest(&home, text);
        let r = home.bottle(&["render", &p], SHORT);
        assert_eq!(r.code, 2, "expected exit 2 for {text:?}: {}", r.all());
        for w in *wants {
            assert!(
                r.stderr.contains(w),
                "expected {w:?} in error for {text:?}, got: {}",
                r.stderr
            );
        }
    }
    // A valid manifest renders, with the secret's name but never its value.
    let secret = new_secret();
    let mut home = home;
    home.env.push(("E2E_API_TOKEN".into(), secret.clone()));
    let text = "name: e2e\nimage: x\nroutes:\n  - host: api.example.com\n    auth: {scheme: bearer, token_from: E2E_API_TOKEN}\n";
    let p = write_manifest(&home, text);
    let r = home.bottle(&["render", &p], SHORT);
    assert_eq!(r.code, 0, "{}", r.all());
    assert!(r.stdout.contains("BOTTLE_TOKEN_0"));
    assert!(
        !r.stdout.contains(&secret),
        "secret value in rendered compose file"
    );
}

/// Without a usable Compose the launcher says what to install (forced with BOTTLE_COMPOSE).
#[test]
fn missing_compose_is_a_clear_error() {
    let v2 = std::process::Command::new("docker")
        .args(["compose", "version"])
        .output()
        .is_ok_and(|o| o.status.success());
    if v2 {
        eprintln!("docker compose v2 is installed here; forcing `plugin` would not fail");
        return;
    }
    let mut home = Home::new();
    home.env.push(("BOTTLE_COMPOSE".into(), "plugin".into()));
    let p = write_manifest(&home, "name: e2e\nimage: x\n");
    let r = home.bottle(&["start", &p], SHORT);
    assert_ne!(r.code, 0, "{}", r.all());
    assert!(
        r.stderr.contains("docker compose") && r.stderr.contains("install"),
        "{}",
        r.stderr
    );
    assert!(
        home.slugs().is_empty(),
        "no state dir may be left: {:?}",
        home.slugs()
    );
}

/// Every Docker scenario, in order.
#[test]
fn docker_end_to_end() {
    if !docker_or_skip("docker_end_to_end") {
        return;
    }
    let t0 = Instant::now();
    require_images();
    let origin = Origin::start();
    eprintln!(
        "origin {} at {} on {}",
        origin.container, origin.ip, origin.network
    );
    let secret = new_secret();
    let mut home = Home::new();
    home.env.push(("E2E_API_TOKEN".into(), secret.clone()));
    let mpath = write_manifest(&home, &manifest(&origin, ""));

    let mut c = Checks::default();
    detached_bottle(&mut c, &home, &origin, &mpath, &secret);
    eprintln!("detached scenario done at {:?}", t0.elapsed());
    git_through_gate(&mut c, &home);
    eprintln!("git scenario done at {:?}", t0.elapsed());
    attached_runs(&mut c, &home, &mpath);
    eprintln!("attached scenarios done at {:?}", t0.elapsed());
    interrupted_and_killed(&mut c, &home, &mpath);
    dying_sidecar_stops_the_start(&mut c, &home, &origin);
    eprintln!("failed-start scenario done at {:?}", t0.elapsed());
    eprintln!("all Docker scenarios done in {:?}", t0.elapsed());
    c.finish("docker end to end");
}
