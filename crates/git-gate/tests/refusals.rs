//! Every refusal: `git push` (or a raw request where the stock client would not send it)
//! shows the reason, and the upstream is unchanged: same refs, new objects absent.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
use common::*;

use std::path::{Path, PathBuf};

struct Case {
    env: Env,
    up: PathBuf,
    work: PathBuf,
}

fn setup(extra: &str) -> Case {
    let mut env = Env::new();
    let up = env.make_upstream("demo");
    env.write_routes(&routes(&up, extra));
    env.start();
    let work = env.clone_work("demo", "w");
    Case { env, up, work }
}

/// Pushes with `args`; asserts failure, each `needles` in the output, refs unchanged and
/// `absent` objects absent upstream.
fn assert_refused(c: &Case, args: &[&str], needles: &[&str], absent: &[&str]) -> String {
    let before = upstream_refs(&c.up);
    let (ok, out) = c.env.push(&c.work, args);
    assert!(!ok, "push {args:?} should fail:\n{out}");
    for n in needles {
        assert!(out.contains(n), "missing {n:?} in:\n{out}");
    }
    assert_eq!(upstream_refs(&c.up), before, "upstream refs changed");
    for o in absent {
        assert!(!upstream_has(&c.up, o), "object {o} reached upstream");
    }
    out
}

fn assert_raw_refused(c: &Case, body: &[u8], needles: &[&str], absent: &[&str]) {
    let before = upstream_refs(&c.up);
    let (lines, msgs) = raw_push(c.env.addr.unwrap(), "demo", body);
    assert!(lines.iter().all(|l| !l.starts_with("ok ")), "{lines:?}");
    assert!(
        lines.iter().any(|l| l.starts_with("ng ")),
        "{lines:?} {msgs}"
    );
    let all = format!("{}\n{msgs}", lines.join("\n"));
    for n in needles {
        assert!(all.contains(n), "missing {n:?} in:\n{all}");
    }
    assert_eq!(upstream_refs(&c.up), before, "upstream refs changed");
    for o in absent {
        assert!(!upstream_has(&c.up, o), "object {o} reached upstream");
    }
}

fn head(c: &Case) -> String {
    c.env.git_ok(&c.work, &["rev-parse", "HEAD"])
}

#[test]
fn protected_branch_update_and_force_and_delete() {
    let c = setup(AGENT_RULES);
    let new = c.env.commit_file(&c.work, "x.txt", "x\n", "to main");
    // main is protected and no rule allows it
    assert_refused(
        &c,
        &["origin", "main"],
        &["no rule allows refs/heads/main", "git-gate"],
        &[&new],
    );

    // rules that allow force and delete everywhere still cannot force or delete main
    let open = "    rules:\n      - {ref: \"refs/heads/**\", allow: [create, update, force, delete]}\n    protected: [\"refs/heads/main\"]\n";
    let c = setup(open);
    c.env
        .git_ok(&c.work, &["commit", "-q", "--amend", "-m", "rewritten"]);
    let amended = head(&c);
    assert_refused(
        &c,
        &["--force", "origin", "main"],
        &["force push of protected ref refs/heads/main refused"],
        &[&amended],
    );
    assert_refused(
        &c,
        &["origin", "--delete", "main"],
        &["deletion of protected ref refs/heads/main refused"],
        &[],
    );
    // a lookalike of the protected name
    c.env.git_ok(&c.work, &["branch", "Main"]);
    assert_refused(
        &c,
        &["origin", "Main"],
        &["looks like protected ref refs/heads/main"],
        &[],
    );
    c.env.git_ok(&c.work, &["branch", "mаin"]); // Cyrillic а
    assert_refused(&c, &["origin", "mаin"], &["ASCII"], &[]);
    // and a fast-forward of main is allowed by the rule
    c.env
        .git_ok(&c.work, &["reset", "-q", "--hard", "origin/main"]);
    let ff = c.env.commit_file(&c.work, "y.txt", "y\n", "ff");
    let (ok, out) = c.env.push(&c.work, &["origin", "main"]);
    assert!(ok, "{out}");
    assert_eq!(upstream_ref(&c.up, "refs/heads/main"), Some(ff));
}

#[test]
fn force_push_refused_including_lying_old_value() {
    let c = setup(AGENT_RULES);
    c.env.git_ok(&c.work, &["checkout", "-q", "-b", "feature"]);
    let base = c.env.commit_file(&c.work, "f.txt", "1\n", "f1");
    let (ok, out) = c.env.push(&c.work, &["origin", "feature"]);
    assert!(ok, "{out}");
    let tip = c.env.commit_file(&c.work, "f.txt", "2\n", "f2");
    let (ok, out) = c.env.push(&c.work, &["origin", "feature"]);
    assert!(ok, "{out}");
    // plain non-fast-forward
    c.env.git_ok(&c.work, &["reset", "-q", "--hard", &base]);
    let other = c.env.commit_file(&c.work, "f.txt", "other\n", "rewrite");
    assert_refused(
        &c,
        &["--force", "origin", "feature"],
        &["(force pushing (non-fast-forward) refs/heads/feature is not allowed)"],
        &[&other],
    );
    assert_eq!(upstream_ref(&c.up, "refs/heads/feature"), Some(tip.clone()));

    // disguised: claim old = base (an ancestor of `other`) although the tip is `tip`.
    // To the ancestry check alone this looks like a fast-forward.
    let pack = make_pack(&c.env, &c.work, &[&other, &format!("^{base}")]);
    let body = push_body(&[(&base, &other, b"refs/heads/feature")], CAPS, None, &pack);
    assert_raw_refused(&c, &body, &["stale or forged old value"], &[&other]);
    assert_eq!(upstream_ref(&c.up, "refs/heads/feature"), Some(tip.clone()));

    // a create aimed at an existing ref
    let body = push_body(&[(ZERO, &other, b"refs/heads/feature")], CAPS, None, &pack);
    assert_raw_refused(&c, &body, &["already exists"], &[&other]);

    // a delete with a bogus old value (git itself would delete regardless)
    c.env.git_ok(
        &c.work,
        &["push", "-q", "origin", "HEAD:refs/heads/agent/d"],
    );
    let bogus = "1111111111111111111111111111111111111111";
    let body = push_body(&[(bogus, ZERO, b"refs/heads/agent/d")], CAPS, None, b"");
    assert_raw_refused(&c, &body, &["stale or forged old value"], &[]);
    assert!(upstream_ref(&c.up, "refs/heads/agent/d").is_some());
}

#[test]
fn deletion_tag_and_ref_outside_rules() {
    let c = setup(AGENT_RULES);
    c.env.git_ok(&c.work, &["checkout", "-q", "-b", "feature"]);
    let (ok, out) = c.env.push(&c.work, &["origin", "feature"]);
    assert!(ok, "{out}");
    assert_refused(
        &c,
        &["origin", "--delete", "feature"],
        &["deleting refs/heads/feature is not allowed"],
        &[],
    );
    // tags: lightweight and annotated
    c.env.git_ok(&c.work, &["tag", "v1"]);
    assert_refused(&c, &["origin", "v1"], &["tags are not allowed"], &[]);
    c.env
        .git_ok(&c.work, &["tag", "-a", "-m", "annotated", "v2"]);
    let tag_obj = c.env.git_ok(&c.work, &["rev-parse", "v2"]);
    assert_refused(
        &c,
        &["origin", "v2"],
        &["tags are not allowed"],
        &[&tag_obj],
    );
    // refs outside every rule
    let n = c.env.commit_file(&c.work, "o.txt", "o\n", "other");
    assert_refused(
        &c,
        &["origin", "HEAD:refs/heads/other"],
        &["no rule allows refs/heads/other"],
        &[&n],
    );
    assert_refused(
        &c,
        &["origin", "HEAD:refs/notes/x"],
        &["no rule allows refs/notes/x"],
        &[&n],
    );
    assert_refused(
        &c,
        &["origin", "HEAD:refs/for/main"],
        &["no rule allows refs/for/main"],
        &[&n],
    );
}

#[test]
fn invalid_ref_names_refused() {
    let c =
        setup("    rules:\n      - {ref: \"refs/**\", allow: [create, update, force, delete]}\n");
    let new = c.env.commit_file(&c.work, "n.txt", "n\n", "n");
    let main = upstream_ref(&c.up, "refs/heads/main").unwrap();
    let pack = make_pack(&c.env, &c.work, &[&new, &format!("^{main}")]);
    let names: &[&[u8]] = &[
        b"refs/heads/agent/../main",
        b"refs/heads/a..b",
        b"refs/heads/x@{1}",
        b"refs/heads/bell\x07",
        b"refs/heads/tab\tx",
        b"refs/heads/x.lock",
        b"refs/heads//x",
        b"refs/heads/back\\slash",
        "refs/heads/mаin".as_bytes(),
        b"HEAD",
        b"main",
    ];
    for name in names {
        let body = push_body(&[(ZERO, &new, name)], CAPS, None, &pack);
        assert_raw_refused(&c, &body, &["invalid ref name"], &[&new]);
    }
    // the stock client refuses to send such names itself
    let (ok, _) = c.env.push(&c.work, &["origin", "HEAD:refs/heads/a..b"]);
    assert!(!ok);
}

#[test]
fn push_options_refused_unless_allowed() {
    let c = setup(AGENT_RULES);
    c.env.git_ok(&c.work, &["checkout", "-q", "-b", "agent/o"]);
    let n = c.env.commit_file(&c.work, "o.txt", "o\n", "o");
    // the gate does not advertise push-options: the stock client stops
    assert_refused(
        &c,
        &["-o", "ci.skip", "origin", "agent/o"],
        &["push options"],
        &[&n],
    );
    // a crafted client sends them anyway
    let main = upstream_ref(&c.up, "refs/heads/main").unwrap();
    let pack = make_pack(&c.env, &c.work, &[&n, &format!("^{main}")]);
    let body = push_body(
        &[(ZERO, &n, b"refs/heads/agent/o")],
        &format!("{CAPS} push-options"),
        Some(&["secret_push_protection.skip_all"]),
        &pack,
    );
    assert_raw_refused(&c, &body, &["push options are not allowed"], &[&n]);
}

#[test]
fn oversized_pack_refused() {
    let c = setup(&format!("{AGENT_RULES}    max_pack_bytes: 20000\n"));
    c.env
        .git_ok(&c.work, &["checkout", "-q", "-b", "agent/big"]);
    // incompressible content
    let mut data = String::new();
    let mut x: u64 = 0x9e3779b97f4a7c15;
    for _ in 0..20000 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        data.push_str(&format!("{:016x}\n", x));
    }
    let n = c.env.commit_file(&c.work, "big.txt", &data, "big");
    assert_refused(&c, &["origin", "agent/big"], &["pack too large"], &[&n]);
}

#[test]
fn max_object_bytes_refused() {
    let c = setup(&format!("{AGENT_RULES}    max_object_bytes: 1000\n"));
    c.env
        .git_ok(&c.work, &["checkout", "-q", "-b", "agent/obj"]);
    let n = c
        .env
        .commit_file(&c.work, "zeros.txt", &"0".repeat(5000), "zeros");
    assert_refused(&c, &["origin", "agent/obj"], &["limit 1000"], &[&n]);
}

fn blob_id(c: &Case, content: &str) -> String {
    let o = run_timeout(
        c.env.git_cmd(&c.work, &["hash-object", "-w", "--stdin"]),
        Some(content.as_bytes()),
        30,
    );
    String::from_utf8_lossy(&o.stdout).trim().to_string()
}

#[test]
fn secrets_refused_tip_intermediate_message_unreferenced() {
    let c = setup(AGENT_RULES);
    let w = c.work.clone();
    c.env.git_ok(&w, &["checkout", "-q", "-b", "agent/s1"]);
    // in the tip commit
    let tip = c
        .env
        .commit_file(&w, "config.env", &format!("TOKEN={SECRET}\n"), "add config");
    let out = assert_refused(
        &c,
        &["origin", "agent/s1"],
        &[
            "! [remote rejected] agent/s1 -> agent/s1 (secret detected (",
            "secret detected (github-pat) in blob",
        ],
        &[&tip],
    );
    assert!(!out.contains(SECRET), "the secret must never be echoed");

    // in an intermediate commit that a later commit removes
    c.env
        .git_ok(&w, &["checkout", "-q", "-b", "agent/s2", "origin/main"]);
    let mid = c
        .env
        .commit_file(&w, "config.env", &format!("TOKEN={SECRET}\n"), "oops");
    std::fs::remove_file(w.join("config.env")).unwrap();
    c.env.git_ok(&w, &["commit", "-q", "-a", "-m", "remove it"]);
    let tip2 = head(&c);
    assert_refused(
        &c,
        &["origin", "agent/s2"],
        &["secret detected"],
        &[&mid, &tip2],
    );

    // in a commit message
    c.env
        .git_ok(&w, &["checkout", "-q", "-b", "agent/s3", "origin/main"]);
    std::fs::write(w.join("m.txt"), "m\n").unwrap();
    c.env.git_ok(&w, &["add", "m.txt"]);
    c.env
        .git_ok(&w, &["commit", "-q", "-m", &format!("use token {SECRET}")]);
    let msg = head(&c);
    assert_refused(
        &c,
        &["origin", "agent/s3"],
        &["secret detected (github-pat) in commit"],
        &[&msg],
    );

    // in a blob no pushed ref reaches (crafted pack)
    c.env
        .git_ok(&w, &["checkout", "-q", "-b", "agent/s4", "origin/main"]);
    let clean = c.env.commit_file(&w, "clean.txt", "clean\n", "clean");
    let hidden = blob_id(&c, &format!("hidden {SECRET}\n"));
    let main = upstream_ref(&c.up, "refs/heads/main").unwrap();
    let pack = make_pack(&c.env, &w, &[&clean, &hidden, &format!("^{main}")]);
    let body = push_body(&[(ZERO, &clean, b"refs/heads/agent/s4")], CAPS, None, &pack);
    assert_raw_refused(
        &c,
        &body,
        &["secret detected (github-pat) in blob"],
        &[&clean, &hidden],
    );
    // without the hidden blob the same push is fine
    let (ok, out) = c.env.push(&w, &["origin", "agent/s4"]);
    assert!(ok, "{out}");
    assert_eq!(upstream_ref(&c.up, "refs/heads/agent/s4"), Some(clean));
    let audit = c.env.audit_lines();
    assert!(audit
        .iter()
        .any(|a| a["rule"] == "secret-scan" && a["result"] == "refused"));
    assert!(!std::fs::read_to_string(&c.env.audit)
        .unwrap()
        .contains(SECRET));
}

#[test]
fn atomic_multi_ref_push_one_refused() {
    let c = setup(AGENT_RULES);
    c.env.git_ok(&c.work, &["checkout", "-q", "-b", "agent/ok"]);
    let n = c.env.commit_file(&c.work, "a.txt", "a\n", "a");
    c.env.git_ok(&c.work, &["branch", "-f", "main", "HEAD"]);
    for atomic in [true, false] {
        let mut args = vec!["origin", "agent/ok", "main"];
        if atomic {
            args.insert(0, "--atomic");
        }
        let out = assert_refused(&c, &args, &["no rule allows refs/heads/main"], &[&n]);
        assert!(
            out.contains("another ref in this push was refused"),
            "{out}"
        );
        assert_eq!(upstream_ref(&c.up, "refs/heads/agent/ok"), None);
    }
}

#[test]
fn dumb_http_webdav_and_unknown_repos_refused() {
    let c = setup(AGENT_RULES);
    let addr = c.env.addr.unwrap();
    for (m, t) in [
        ("GET", "/demo.git/HEAD"),
        ("GET", "/demo.git/info/refs"),
        ("GET", "/demo.git/objects/info/packs"),
        ("GET", "/demo.git/info/refs?service=git-upload-archive"),
        ("GET", "/other.git/info/refs?service=git-upload-pack"),
        ("GET", "/demo/info/refs?service=git-upload-pack"),
        ("GET", "/x/../demo.git/info/refs?service=git-upload-pack"),
        ("PROPFIND", "/demo.git/"),
        ("MKCOL", "/demo.git/x"),
        ("PUT", "/demo.git/objects/aa/bb"),
        ("POST", "/demo.git/info/lfs/objects/batch"),
    ] {
        let (status, head, body) = http(addr, m, t, &[], b"");
        assert!(
            status == 403 || status == 404 || status == 405,
            "{m} {t}: {status}"
        );
        assert!(
            head.to_ascii_lowercase()
                .contains("x-bottle-blocked: git-gate"),
            "{head}"
        );
        assert!(
            String::from_utf8_lossy(&body).starts_with("blocked by git-gate"),
            "{m} {t}"
        );
    }
    // each refusal's audit line names its kind (issue 14)
    let kinds: Vec<String> = c
        .env
        .audit_lines()
        .iter()
        .filter(|l| l["event"] == "request" && l["decision"] == "deny")
        .filter_map(|l| l["refusal"].as_str().map(str::to_string))
        .collect();
    for k in ["not_git_endpoint", "dumb_http", "unknown_repository"] {
        assert!(kinds.iter().any(|x| x == k), "{k} in {kinds:?}");
    }
    // push with an Authorization header of the agent's own: irrelevant, still judged
    let (status, _, _) = http(
        addr,
        "GET",
        "/demo.git/info/refs?service=git-receive-pack",
        &[("Authorization", "Basic YWdlbnQ6c2VjcmV0")],
        b"",
    );
    assert_eq!(status, 200);
    // git never compresses push bodies: refused
    let (status, _, _) = http(
        addr,
        "POST",
        "/demo.git/git-receive-pack",
        &[
            ("Content-Type", "application/x-git-receive-pack-request"),
            ("Content-Encoding", "gzip"),
        ],
        b"0000",
    );
    assert_eq!(status, 415);
    // wrong content type
    let (status, _, _) = http(
        addr,
        "POST",
        "/demo.git/git-receive-pack",
        &[("Content-Type", "text/plain")],
        b"0000",
    );
    assert_eq!(status, 415);
    // probe of a large push: 200 and an empty body
    let (status, _, body) = http(
        addr,
        "POST",
        "/demo.git/git-receive-pack",
        &[("Content-Type", "application/x-git-receive-pack-request")],
        b"0000",
    );
    assert_eq!((status, body.len()), (200, 0));
    // malformed bodies never reach upstream and never crash the gate
    for bad in [&b"00ffshort"[..], b"0001", b"garbage!", b"0009push-cert\0"] {
        let (status, _, _) = http(
            addr,
            "POST",
            "/demo.git/git-receive-pack",
            &[("Content-Type", "application/x-git-receive-pack-request")],
            bad,
        );
        assert!(status == 200 || status == 400, "{status}");
    }
    // a gzip-encoded protocol v2 request (git gzips large fetch requests)
    let mut v2 = Vec::new();
    for l in ["command=ls-refs\n", "object-format=sha1\n"] {
        git_gate::pktline::write_data(&mut v2, l.as_bytes()).unwrap();
    }
    v2.extend_from_slice(b"0001");
    git_gate::pktline::write_data(&mut v2, b"ref-prefix refs/heads/\n").unwrap();
    v2.extend_from_slice(b"0000");
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    std::io::Write::write_all(&mut gz, &v2).unwrap();
    let gz = gz.finish().unwrap();
    let (status, _, body) = http(
        addr,
        "POST",
        "/demo.git/git-upload-pack",
        &[
            ("Content-Type", "application/x-git-upload-pack-request"),
            ("Content-Encoding", "gzip"),
            ("Git-Protocol", "version=2"),
        ],
        &gz,
    );
    assert_eq!(status, 200);
    let main = upstream_ref(&c.up, "refs/heads/main").unwrap();
    assert!(String::from_utf8_lossy(&body).contains(&format!("{main} refs/heads/main")));
    // a gzip bomb is cut off
    let mut bomb = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    let zeros = vec![0u8; 1 << 20];
    for _ in 0..20 {
        std::io::Write::write_all(&mut bomb, &zeros).unwrap();
    }
    let bomb = bomb.finish().unwrap();
    let (status, _, _) = http(
        addr,
        "POST",
        "/demo.git/git-upload-pack",
        &[
            ("Content-Type", "application/x-git-upload-pack-request"),
            ("Content-Encoding", "gzip"),
        ],
        &bomb,
    );
    assert_eq!(status, 413);
    let w2 = c.env.clone_work("demo", "still-alive");
    assert!(Path::new(&w2).join("README").exists());
}

#[test]
fn symref_alias_of_protected_ref_refused() {
    let mut env = Env::new();
    let up = env.make_upstream("demo");
    let o = std::process::Command::new("git")
        .args([
            "--git-dir",
            up.to_str().unwrap(),
            "symbolic-ref",
            "refs/heads/master",
            "refs/heads/main",
        ])
        .status()
        .unwrap();
    assert!(o.success());
    env.write_routes(&routes(
        &up,
        "    rules:\n      - {ref: \"refs/heads/master\", allow: [update]}\n    protected: [\"refs/heads/main\"]\n",
    ));
    env.start();
    let c = Case {
        work: env.clone_work("demo", "w"),
        env,
        up,
    };
    c.env.git_ok(
        &c.work,
        &["checkout", "-q", "-b", "master", "origin/master"],
    );
    let n = c.env.commit_file(&c.work, "s.txt", "s\n", "via alias");
    assert_refused(
        &c,
        &["origin", "master"],
        &["refs/heads/master is a symbolic ref to refs/heads/main upstream"],
        &[&n],
    );
}

#[test]
fn too_many_refs_refused() {
    let c = setup(&format!("{AGENT_RULES}    max_refs: 2\n"));
    for b in ["agent/a", "agent/b", "agent/c"] {
        c.env.git_ok(&c.work, &["branch", b]);
    }
    assert_refused(
        &c,
        &["origin", "agent/a", "agent/b", "agent/c"],
        &["too many refs in one push (3, limit 2)"],
        &[],
    );
    let (ok, out) = c.env.push(&c.work, &["origin", "agent/a", "agent/b"]);
    assert!(ok, "{out}");
}

#[test]
fn tags_allowed_only_by_tag_rules_and_never_moved() {
    let c = setup(&format!(
        "{}      - {{ref: \"refs/tags/v*\", allow: [create, update]}}\n",
        AGENT_RULES.split("    protected").next().unwrap()
    ));
    c.env.git_ok(&c.work, &["tag", "-a", "-m", "release", "v1"]);
    let (ok, out) = c.env.push(&c.work, &["origin", "v1"]);
    assert!(ok, "{out}");
    let t = c.env.git_ok(&c.work, &["rev-parse", "v1"]);
    assert_eq!(upstream_ref(&c.up, "refs/tags/v1"), Some(t));
    // moving a tag is a rewrite even when the rule says update
    c.env.commit_file(&c.work, "t.txt", "t\n", "after tag");
    c.env
        .git_ok(&c.work, &["tag", "-f", "-a", "-m", "moved", "v1"]);
    assert_refused(
        &c,
        &["--force", "origin", "v1"],
        &["force pushing (non-fast-forward) refs/tags/v1 is not allowed"],
        &[],
    );
    // other tags have no rule
    c.env.git_ok(&c.work, &["tag", "other"]);
    assert_refused(&c, &["origin", "other"], &["tags are not allowed"], &[]);
}

/// Command lists the stock client never sends, each next to a ref that would pass on its
/// own: the same ref twice (the second update would ride on the first's lease) and a
/// sha256 object format. The whole push is refused, nothing reaches upstream.
#[test]
fn crafted_duplicate_ref_and_sha256_push_refused_whole() {
    let c = setup(AGENT_RULES);
    let new = c.env.commit_file(&c.work, "d.txt", "d\n", "d");
    let main = upstream_ref(&c.up, "refs/heads/main").unwrap();
    let pack = make_pack(&c.env, &c.work, &[&new, &format!("^{main}")]);
    let twice = push_body(
        &[
            (ZERO, &new, b"refs/heads/agent/x"),
            (ZERO, &new, b"refs/heads/agent/x"),
        ],
        CAPS,
        None,
        &pack,
    );
    assert_raw_refused(
        &c,
        &twice,
        &[
            "ng refs/heads/agent/x ref appears twice in one push",
            "ng refs/heads/agent/x not pushed: another ref in this push was refused",
        ],
        &[&new],
    );
    let sha256 = CAPS.replace("object-format=sha1", "object-format=sha256");
    let body = push_body(
        &[
            (ZERO, &new, b"refs/heads/agent/y"),
            (ZERO, &new, b"refs/heads/agent/z"),
        ],
        &sha256,
        None,
        &pack,
    );
    assert_raw_refused(
        &c,
        &body,
        &["ng refs/heads/agent/z only sha1 repositories are supported"],
        &[&new],
    );
    assert_eq!(upstream_ref(&c.up, "refs/heads/agent/x"), None);
    assert_eq!(upstream_ref(&c.up, "refs/heads/agent/y"), None);
}
