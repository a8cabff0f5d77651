//! Differential test: our ref-name rules against `git check-ref-format` itself.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use rand::{Rng, SeedableRng};

#[test]
fn check_ref_format_matches_git() {
    let fragments = [
        "refs", "heads", "main", "a", ".", "..", "x.lock", "lock", "@", "@{", "{", "}", "~", "^",
        ":", "?", "*", "[", "\\", " ", "\t", "\x7f", "-", "_", "%2e", "é", "/", "//", ".x", "x.",
        "a.b", "HEAD", "\x01",
    ];
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let mut names: Vec<String> = vec![
        "refs/heads/main".into(),
        "refs/heads/agent/../main".into(),
        "refs/heads/a..b".into(),
        "refs/heads/x@{1}".into(),
        "refs/heads/@".into(),
        "@".into(),
        "refs/heads/x.lock".into(),
        "refs/heads/.hidden".into(),
        "refs/heads/trailing.".into(),
        "refs/heads/sp ace".into(),
        "refs/heads/mаin".into(),
        "refs//x".into(),
        "/refs/x".into(),
        "refs/x/".into(),
        "main".into(),
    ];
    for _ in 0..400 {
        let n = rng.random_range(1..6);
        let mut s = String::new();
        for i in 0..n {
            if i > 0 && rng.random_bool(0.6) {
                s.push('/');
            }
            s.push_str(fragments[rng.random_range(0..fragments.len())]);
        }
        names.push(s);
    }
    let mut mismatches = Vec::new();
    // A leading '-' would be taken as an option by the git command line.
    for name in names.iter().filter(|n| !n.starts_with('-')) {
        let ours = git_gate::refname::check_ref_format(name.as_bytes()).is_ok();
        let st = std::process::Command::new("git")
            .args(["check-ref-format", name])
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .status()
            .unwrap();
        if ours != st.success() {
            mismatches.push(format!("{name:?}: ours={ours} git={}", st.success()));
        }
    }
    assert!(mismatches.is_empty(), "{mismatches:#?}");
}
