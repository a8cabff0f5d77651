#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;
use std::process::Command;

/// A real `git`, isolated from the machine's global and system config.
fn git(dir: &Path, args: &[&str]) -> String {
    let home = dir.join("../home");
    let _ = std::fs::create_dir_all(&home);
    let out = Command::new("git")
        .current_dir(dir)
        .env("HOME", &home)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env_remove("GIT_DIR")
        .env_remove("GIT_WORK_TREE")
        .args(["-c", "user.name=t", "-c", "user.email=t@example.test"])
        .args(args)
        .output()
        .expect("git runs");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A workspace: a repository with one commit, in a temp dir (also holding `home/`).
fn workspace() -> (tempfile::TempDir, PathBuf) {
    let t = tempfile::tempdir().unwrap();
    let ws = t.path().join("ws");
    std::fs::create_dir_all(&ws).unwrap();
    git(&ws, &["init", "-q"]);
    std::fs::write(ws.join("a.txt"), "a\n").unwrap();
    git(&ws, &["add", "a.txt"]);
    git(&ws, &["commit", "-qm", "a"]);
    (t, ws.canonicalize().unwrap())
}

/// What the agent does in the escape suite: a repository at `git_dir` whose config runs
/// `touch marker` as its fsmonitor, recorded as a gitlink at `dir`.
fn plant(ws: &Path, git_dir: &str, dir: &str, marker: &Path) {
    let src = ws.join("../src");
    std::fs::create_dir_all(&src).unwrap();
    git(&src, &["init", "-q"]);
    git(&src, &["commit", "-q", "--allow-empty", "-m", "s"]);
    std::fs::create_dir_all(ws.join(dir)).unwrap();
    git(
        ws,
        &["clone", "-q", "--bare", src.to_str().unwrap(), git_dir],
    );
    let gd = format!("--git-dir={git_dir}");
    git(ws, &[&gd, "config", "core.bare", "false"]);
    let cmd = format!("touch {}", marker.display());
    git(ws, &[&gd, "config", "core.fsmonitor", &cmd]);
    let head = git(ws, &[&gd, "rev-parse", "HEAD"]);
    let info = format!("160000,{},{dir}", head.trim());
    git(ws, &["update-index", "--add", "--cacheinfo", &info]);
}

/// The operator's `git status` after teardown: did the planted command run?
fn status_runs_marker(ws: &Path, marker: &Path) -> bool {
    let _ = std::fs::remove_file(marker);
    git(ws, &["status", "--porcelain"]);
    let ran = marker.exists();
    let _ = std::fs::remove_file(marker);
    ran
}

#[test]
fn planted_submodule_git_dir_is_quarantined_and_git_status_runs_nothing() {
    let (t, ws) = workspace();
    let marker = t.path().join("marker");
    let before = snapshot(&ws);
    plant(&ws, ".git/modules/sub", "sub", &marker);
    git(
        &ws,
        &[
            "--git-dir=.git/modules/sub",
            "config",
            "core.worktree",
            "../../../sub",
        ],
    );
    std::fs::write(ws.join("sub/.git"), "gitdir: ../.git/modules/sub\n").unwrap();
    std::fs::write(
        ws.join(".gitmodules"),
        "[submodule \"sub\"]\n\tpath = sub\n\turl = ./sub\n",
    )
    .unwrap();
    // The attack works with this git: without the sweep the operator runs the command.
    assert!(
        status_runs_marker(&ws, &marker),
        "the planted fsmonitor should run unswept"
    );

    let (found, truncated) = sweep(&ws, &before, true);
    assert!(!truncated);
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].path, ws.join(".git/modules/sub"));
    assert!(
        found[0].moved.iter().any(|m| m.contains("core.fsmonitor")),
        "{found:?}"
    );
    assert!(
        !status_runs_marker(&ws, &marker),
        "the operator's git status ran the agent's command"
    );
    // The quarantined original is kept for review; the rewritten config keeps inert keys.
    let q = std::fs::read_to_string(ws.join(".git/modules/sub/config.bottle-quarantine")).unwrap();
    assert!(q.contains("fsmonitor"));
    let kept = std::fs::read_to_string(ws.join(".git/modules/sub/config")).unwrap();
    assert!(
        !kept.contains("fsmonitor") && kept.contains("worktree"),
        "{kept}"
    );
    // A second sweep finds nothing new to do with a fresh snapshot.
    assert!(sweep(&ws, &snapshot(&ws), true).0.is_empty());
}

#[test]
fn planted_nested_repository_is_quarantined_and_git_status_runs_nothing() {
    let (t, ws) = workspace();
    let marker = t.path().join("marker");
    let before = snapshot(&ws);
    plant(&ws, "nested/.git", "nested", &marker);
    assert!(
        status_runs_marker(&ws, &marker),
        "the planted fsmonitor should run unswept"
    );
    let (found, _) = sweep(&ws, &before, true);
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].path, ws.join("nested/.git"));
    assert!(!status_runs_marker(&ws, &marker));
    // And inside the nested repository itself.
    let _ = std::fs::remove_file(&marker);
    git(&ws.join("nested"), &["status"]);
    assert!(!marker.exists());
}

#[test]
fn untouched_configs_are_left_alone_and_only_new_entries_are_quarantined() {
    let (_t, ws) = workspace();
    // The operator's own settings, outside the allowlist, before the bottle.
    git(&ws, &["config", "alias.st", "status"]);
    git(&ws, &["config", "core.pager", "less"]);
    let sub = ws.join(".git/modules/lib");
    std::fs::create_dir_all(sub.join("hooks")).unwrap();
    std::fs::create_dir_all(sub.join("objects")).unwrap();
    std::fs::write(sub.join("HEAD"), "ref: refs/heads/main\n").unwrap();
    std::fs::write(
        sub.join("config"),
        "[core]\n\tbare = false\n[diff \"x\"]\n\ttextconv = cat\n",
    )
    .unwrap();
    std::fs::write(sub.join("hooks/pre-commit"), "#!/bin/sh\n").unwrap();
    let before = snapshot(&ws);
    // Nothing changed: nothing touched, in rw mode (main `.git` judged too).
    assert!(sweep(&ws, &before, false).0.is_empty());
    let main_cfg = std::fs::read(ws.join(".git/config")).unwrap();

    // The agent adds one key to the submodule's config and a hook.
    let mut c = std::fs::read_to_string(sub.join("config")).unwrap();
    c.push_str("[core]\n\tsshCommand = sh -c x\n");
    std::fs::write(sub.join("config"), c).unwrap();
    std::fs::write(sub.join("hooks/post-checkout"), "#!/bin/sh\ntouch x\n").unwrap();
    std::fs::write(sub.join("hooks/pre-push.sample"), "#!/bin/sh\n").unwrap();
    let (found, _) = sweep(&ws, &before, false);
    assert_eq!(found.len(), 1, "{found:?}");
    let kept = config::parse(&std::fs::read_to_string(sub.join("config")).unwrap()).unwrap();
    let names: Vec<String> = kept.iter().map(config::Entry::name).collect();
    assert_eq!(
        names,
        ["core.bare", "diff.x.textconv"],
        "the operator's own entries stay"
    );
    assert!(!sub.join("hooks/post-checkout").exists());
    let q = sub.join("hooks.bottle-quarantine/post-checkout.bottle-quarantine");
    assert_eq!(
        std::fs::metadata(&q).unwrap().mode() & 0o111,
        0,
        "not executable"
    );
    assert!(
        sub.join("hooks/pre-commit").exists(),
        "the operator's hook stays"
    );
    assert!(sub.join("hooks/pre-push.sample").exists());
    assert_eq!(std::fs::read(ws.join(".git/config")).unwrap(), main_cfg);
}

#[test]
fn rw_main_git_dir_is_judged_and_guarded_is_left_to_the_mounts() {
    let (_t, ws) = workspace();
    let before = snapshot(&ws);
    git(&ws, &["config", "core.hooksPath", "/tmp/h"]);
    std::fs::write(ws.join(".git/hooks/pre-commit"), "#!/bin/sh\n").unwrap();
    // Guarded: the main config and hooks were read-only mounts; nothing to judge.
    assert!(sweep(&ws, &before, true).0.is_empty());
    let (found, _) = sweep(&ws, &before, false);
    assert_eq!(found.len(), 1);
    let m = found[0].moved.join(" ");
    assert!(
        m.contains("core.hookspath") && m.contains("hooks/pre-commit"),
        "{m}"
    );
    assert!(!git(&ws, &["config", "--list"]).contains("hookspath"));
}

#[test]
fn indirections_out_of_the_workspace_and_bare_repositories_anywhere() {
    let (t, ws) = workspace();
    let outside = t.path().join("outside");
    std::fs::create_dir_all(&outside).unwrap();
    let before = snapshot(&ws);
    // A `.git` file pointing outside, a commondir pointing outside, a worktree outside.
    std::fs::create_dir_all(ws.join("x")).unwrap();
    std::fs::write(
        ws.join("x/.git"),
        format!("gitdir: {}\n", outside.display()),
    )
    .unwrap();
    let wt = ws.join(".git/worktrees/w");
    std::fs::create_dir_all(&wt).unwrap();
    std::fs::write(wt.join("HEAD"), "ref: refs/heads/main\n").unwrap();
    std::fs::write(wt.join("commondir"), format!("{}\n", outside.display())).unwrap();
    // A bare-looking repository deep in the tree whose config uses a legacy header.
    let bare = ws.join("deep/er/repo");
    std::fs::create_dir_all(bare.join("objects")).unwrap();
    std::fs::write(bare.join("HEAD"), "ref: refs/heads/main\n").unwrap();
    std::fs::write(
        bare.join("config"),
        "[core]\n\tworktree = ../../../..\n[CORE.x]\n\ty = 1\n",
    )
    .unwrap();
    // A `.git` file pointing at a directory inside the workspace: that git dir is judged.
    std::fs::create_dir_all(ws.join("y")).unwrap();
    std::fs::create_dir_all(ws.join("gd")).unwrap();
    std::fs::write(ws.join("gd/config"), "[include]\n\tpath = ../evil\n").unwrap();
    std::fs::write(ws.join("y/.git"), "gitdir: ../gd\n").unwrap();

    let (found, _) = sweep(&ws, &before, true);
    let all = format!("{found:?}");
    assert!(
        !ws.join("x/.git").exists() && all.contains("gitdir file pointing outside"),
        "{all}"
    );
    assert!(
        !wt.join("commondir").exists() && all.contains("commondir pointing outside"),
        "{all}"
    );
    assert!(
        all.contains("core.worktree (outside the workspace)") && all.contains("core.x.y"),
        "{all}"
    );
    assert!(all.contains("include.path"), "{all}");
    assert!(ws.join("gd/config.bottle-quarantine").exists());
}

#[test]
fn no_snapshot_means_everything_is_new() {
    let (_t, ws) = workspace();
    let sub = ws.join("n/.git");
    std::fs::create_dir_all(&sub).unwrap();
    std::fs::write(sub.join("config"), "[core]\n\tfsmonitor = x\n").unwrap();
    let (found, _) = sweep(&ws, &Snapshot::default(), true);
    assert_eq!(found.len(), 1);
    // Unparseable config: quarantined whole, an empty config in its place.
    std::fs::write(sub.join("config"), "[core\n\tfsmonitor = x\n").unwrap();
    let (found, _) = sweep(&ws, &Snapshot::default(), true);
    assert!(format!("{found:?}").contains("unreadable config"));
    assert_eq!(std::fs::read_to_string(sub.join("config")).unwrap(), "");
}

#[test]
fn record_and_sweep_and_warn_round_trip_through_the_state_dir() {
    let (t, ws) = workspace();
    let state = t.path().join("state");
    std::fs::create_dir_all(&state).unwrap();
    record(&ws, &state).unwrap();
    let text = std::fs::read_to_string(state.join(SNAPSHOT)).unwrap();
    assert!(
        text.contains(".git") && !text.contains("repositoryformatversion"),
        "hashes only"
    );
    let n = ws.join("n/.git");
    std::fs::create_dir_all(&n).unwrap();
    std::fs::write(n.join("config"), "[core]\n\tfsmonitor = x\n").unwrap();
    sweep_and_warn(&ws, &state, true);
    assert!(n.join("config.bottle-quarantine").exists());
}

#[test]
fn a_symlinked_quarantine_dir_is_not_used_and_plain_files_named_head_are_not_git_dirs() {
    let (t, ws) = workspace();
    let outside = t.path().join("outside");
    std::fs::create_dir_all(&outside).unwrap();
    // A project directory that merely holds files named HEAD and config.
    std::fs::create_dir_all(ws.join("docs")).unwrap();
    let before = snapshot(&ws);
    std::fs::write(ws.join("docs/HEAD"), "x").unwrap();
    std::fs::write(ws.join("docs/config"), "[alias]\n\tx = !y\n").unwrap();
    // The agent pre-creates the quarantine dir as a symlink out of the workspace.
    std::os::unix::fs::symlink(&outside, ws.join(".git/hooks.bottle-quarantine")).unwrap();
    std::fs::write(ws.join(".git/hooks/pre-commit"), "#!/bin/sh\n").unwrap();
    let (found, _) = sweep(&ws, &before, false);
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(
        std::fs::read_dir(&outside).unwrap().count(),
        0,
        "moved out of the tree"
    );
    assert!(ws
        .join(".git/hooks.bottle-quarantine.1/pre-commit.bottle-quarantine")
        .exists());
    assert!(ws.join("docs/config").exists(), "not a git dir: left alone");
}
