//! Secrets pushed outside blob contents: tree entry names, ref names, commit and tag header
//! fields and messages, push options, notes. Each push goes through the gate with the
//! stock git client and must fail with a reason naming the detector and the place; the
//! upstream keeps its refs and its object set, and the secret is nowhere in it, in the
//! audit log or in the gate's log.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
use common::*;

use std::path::{Path, PathBuf};
use std::process::Command;

const RULES: &str = "    rules:\n      - {ref: \"refs/heads/agent/**\", allow: [create, update, force, delete]}\n      - {ref: \"refs/tags/v*\", allow: [create]}\n      - {ref: \"refs/notes/**\", allow: [create, update]}\n    protected: [\"refs/heads/main\"]\n";

struct Case {
    env: Env,
    up: PathBuf,
    work: PathBuf,
}

fn setup(extra: &str, upstream_config: &[(&str, &str)]) -> Case {
    let mut env = Env::new();
    let up = env.make_upstream("demo");
    for (k, v) in upstream_config {
        env.git_ok(&up, &["config", k, v]);
    }
    env.write_routes(&routes(&up, extra));
    env.start();
    let work = env.clone_work("demo", "w");
    Case { env, up, work }
}

fn git_in(up: &Path, args: &[&str]) -> Vec<u8> {
    let mut c = Command::new("git");
    c.arg("--git-dir").arg(up).args(args);
    let o = run_timeout(c, None, 60);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    o.stdout
}

/// The upstream's object ids (with types) and the full dump of every object.
fn upstream_objects(up: &Path) -> (String, Vec<u8>) {
    let ids = git_in(
        up,
        &[
            "cat-file",
            "--batch-all-objects",
            "--batch-check=%(objectname) %(objecttype)",
        ],
    );
    let dump = git_in(up, &["cat-file", "--batch-all-objects", "--batch"]);
    (String::from_utf8_lossy(&ids).into_owned(), dump)
}

fn contains(hay: &[u8], needle: &str) -> bool {
    hay.windows(needle.len()).any(|w| w == needle.as_bytes())
}

/// Pushes with `args`: must fail with `needle` in git's output; nothing changes upstream
/// and the secret is not in it. Returns git's output.
fn assert_hidden_refused(c: &Case, args: &[&str], needle: &str) -> String {
    let refs = upstream_refs(&c.up);
    let (ids, _) = upstream_objects(&c.up);
    let (ok, out) = c.env.push(&c.work, args);
    assert!(!ok, "push {args:?} should fail:\n{out}");
    assert!(out.contains(needle), "missing {needle:?} in:\n{out}");
    // The gate's own words (remote: lines) never quote the secret.
    for l in out.lines().filter(|l| l.starts_with("remote:")) {
        assert!(!l.contains(SECRET), "secret echoed: {l}");
    }
    assert_eq!(upstream_refs(&c.up), refs, "upstream refs changed");
    let (ids_after, dump) = upstream_objects(&c.up);
    assert_eq!(ids_after, ids, "upstream objects changed");
    assert!(!contains(&dump, SECRET), "the secret reached upstream");
    assert!(
        !upstream_refs(&c.up).contains(SECRET),
        "the secret is in an upstream ref name"
    );
    out
}

/// Nothing we write (audit, log) holds the secret.
fn assert_not_recorded(c: &Case) {
    let audit = std::fs::read_to_string(&c.env.audit).unwrap_or_default();
    assert!(audit.contains("secret-scan"), "no secret-scan audit line");
    assert!(!audit.contains(SECRET), "secret in the audit log");
    assert!(
        !c.env.log.lock().unwrap().contains(SECRET),
        "secret in the gate log"
    );
}

#[test]
fn secret_as_tree_entry_name_refused() {
    let c = setup(RULES, &[]);
    let w = &c.work;
    c.env.git_ok(w, &["checkout", "-q", "-b", "agent/t1"]);
    // as a file name
    c.env
        .commit_file(w, &format!("cfg/{SECRET}"), "harmless\n", "file name");
    assert_hidden_refused(
        &c,
        &["origin", "agent/t1"],
        "(secret detected (github-pat) in tree entry name (tree ",
    );
    // as a directory name, deeper down
    c.env
        .git_ok(w, &["checkout", "-q", "-b", "agent/t2", "origin/main"]);
    c.env
        .commit_file(w, &format!("a/{SECRET}/b/c.txt"), "harmless\n", "dir name");
    assert_hidden_refused(
        &c,
        &["origin", "agent/t2"],
        "secret detected (github-pat) in tree entry name",
    );
    // the same tree shape without the secret is fine (no false positive on names)
    c.env
        .git_ok(w, &["checkout", "-q", "-b", "agent/t3", "origin/main"]);
    c.env
        .commit_file(w, "a/ghp_short/b/c.txt", "harmless\n", "benign");
    let (ok, out) = c.env.push(w, &["origin", "agent/t3"]);
    assert!(ok, "{out}");
    assert_not_recorded(&c);
}

#[test]
fn secret_in_ref_name_refused_and_withheld() {
    let c = setup(RULES, &[]);
    let w = &c.work;
    c.env.commit_file(w, "r.txt", "r\n", "r");
    let branch = format!("HEAD:refs/heads/agent/{SECRET}");
    let out = assert_hidden_refused(
        &c,
        &["origin", &branch],
        "(secret detected (github-pat) in ref name)",
    );
    assert!(out.contains("[remote rejected]"), "{out}");
    // outside every rule: still named as a secret, not as "no rule allows <name>"
    let other = format!("HEAD:refs/heads/x-{SECRET}");
    assert_hidden_refused(
        &c,
        &["origin", &other],
        "(secret detected (github-pat) in ref name)",
    );
    // a tag name
    c.env.git_ok(w, &["tag", &format!("v-{SECRET}")]);
    assert_hidden_refused(
        &c,
        &["origin", &format!("refs/tags/v-{SECRET}")],
        "(secret detected (github-pat) in ref name)",
    );
    // in a multi-ref push the other ref is refused too, and the audit names it
    let out = assert_hidden_refused(
        &c,
        &["origin", &branch, "HEAD:refs/heads/agent/fine"],
        "another ref in this push was refused",
    );
    assert!(out.contains("in ref name"), "{out}");
    let audit = c.env.audit_lines();
    assert!(audit.iter().any(|a| a["ref"] == "refs/heads/agent/fine"));
    assert!(audit.iter().any(|a| a["ref"]
        .as_str()
        .is_some_and(|r| r.starts_with("[ref name withheld"))));
    assert_not_recorded(&c);
}

#[test]
fn secret_in_commit_and_tag_fields_refused() {
    let c = setup(RULES, &[]);
    let w = &c.work;
    // commit message
    c.env.git_ok(w, &["checkout", "-q", "-b", "agent/m"]);
    std::fs::write(w.join("m.txt"), "m\n").unwrap();
    c.env.git_ok(w, &["add", "m.txt"]);
    c.env.git_ok(
        w,
        &["commit", "-q", "-m", &format!("subject\n\nuse {SECRET}")],
    );
    assert_hidden_refused(
        &c,
        &["origin", "agent/m"],
        "(secret detected (github-pat) in commit message (commit ",
    );
    // author identity
    c.env
        .git_ok(w, &["checkout", "-q", "-b", "agent/a", "origin/main"]);
    std::fs::write(w.join("a.txt"), "a\n").unwrap();
    c.env.git_ok(w, &["add", "a.txt"]);
    c.env.git_ok(
        w,
        &[
            "-c",
            &format!("user.name=dev {SECRET}"),
            "commit",
            "-q",
            "-m",
            "plain",
        ],
    );
    assert_hidden_refused(
        &c,
        &["origin", "agent/a"],
        "(secret detected (github-pat) in commit author/committer (commit ",
    );
    // annotated tag message (the tag name itself is allowed by refs/tags/v*)
    c.env
        .git_ok(w, &["checkout", "-q", "--detach", "origin/main"]);
    c.env
        .git_ok(w, &["tag", "-a", "-m", &format!("notes {SECRET}"), "v1"]);
    assert_hidden_refused(
        &c,
        &["origin", "v1"],
        "(secret detected (github-pat) in tag message (tag ",
    );
    // a tag object whose own name (not the ref) holds the secret
    let head = c.env.git_ok(w, &["rev-parse", "HEAD"]);
    let raw = format!(
        "object {head}\ntype commit\ntag {SECRET}\ntagger T <t@example.invalid> 0 +0000\n\nrelease\n"
    );
    let o = run_timeout(c.env.git_cmd(w, &["mktag"]), Some(raw.as_bytes()), 30);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let tag = String::from_utf8_lossy(&o.stdout).trim().to_string();
    c.env.git_ok(w, &["update-ref", "refs/tags/v2", &tag]);
    assert_hidden_refused(
        &c,
        &["origin", "refs/tags/v2"],
        "(secret detected (github-pat) in tag name (tag ",
    );
    // a clean annotated tag still goes through
    c.env.git_ok(w, &["tag", "-a", "-m", "release", "v3"]);
    let (ok, out) = c.env.push(w, &["origin", "v3"]);
    assert!(ok, "{out}");
    assert_not_recorded(&c);
}

#[test]
fn secret_in_push_option_refused() {
    // The upstream takes push options, so an accepted option would travel on to it.
    let c = setup(
        &format!("{RULES}    push_options: true\n"),
        &[("receive.advertisePushOptions", "true")],
    );
    let w = &c.work;
    c.env.git_ok(w, &["checkout", "-q", "-b", "agent/po"]);
    c.env.commit_file(w, "p.txt", "p\n", "p");
    let opt = format!("token={SECRET}");
    assert_hidden_refused(
        &c,
        &["-o", &opt, "origin", "agent/po"],
        "(secret detected (github-pat) in push option)",
    );
    // an ordinary option is still passed
    let (ok, out) = c.env.push(w, &["-o", "ci.skip", "origin", "agent/po"]);
    assert!(ok, "{out}");
    assert_not_recorded(&c);
}

#[test]
fn secret_in_notes_refused_with_or_without_a_notes_rule() {
    let c = setup(RULES, &[]);
    let w = &c.work;
    c.env.git_ok(
        w,
        &["notes", "add", "-m", &format!("deployed with {SECRET}")],
    );
    assert_hidden_refused(
        &c,
        &["origin", "refs/notes/commits"],
        "(secret detected (github-pat) in blob ",
    );
    assert_not_recorded(&c);
    // no rule for notes: refused by the policy before any object is looked at
    let c = setup(AGENT_RULES, &[]);
    c.env.git_ok(
        &c.work,
        &["notes", "add", "-m", &format!("deployed with {SECRET}")],
    );
    assert_hidden_refused(
        &c,
        &["origin", "refs/notes/commits"],
        "no rule allows refs/notes/commits",
    );
}
