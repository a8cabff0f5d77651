//! Workspace tricks (judged by scanning the host's workspace), manifest tampering (judged by
//! the launcher's next start) and resource exhaustion of the sidecars.

use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;
use std::time::{Duration, Instant};

use super::{custom, gist, in_agent};
use crate::world::remove_project;
use crate::{outcome, Attempt, World};

/// What in the host workspace an agent must not be able to leave: root-owned files,
/// setuid/setgid files owned by root, device nodes. Paths relative to the workspace.
pub fn workspace_findings(root: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let p = e.path();
            let Ok(md) = std::fs::symlink_metadata(&p) else {
                continue;
            };
            let rel = p.strip_prefix(root).unwrap_or(&p).display().to_string();
            let ft = md.file_type();
            if md.uid() == 0 {
                out.push(format!("{rel}: owned by root"));
            }
            if md.mode() & 0o6000 != 0 && (md.uid() == 0 || md.gid() == 0) {
                out.push(format!("{rel}: setuid/setgid root"));
            }
            if ft.is_char_device() || ft.is_block_device() {
                out.push(format!("{rel}: device node"));
            }
            if ft.is_dir() {
                stack.push(p);
            }
        }
    }
    out.sort();
    out
}

/// A workspace trick: the snippet runs in the agent, then the host checks `proof`.
fn trick(
    name: &'static str,
    expect: &'static str,
    script: &'static str,
    proof: fn(&World) -> Result<(), String>,
) -> Attempt {
    custom("workspace", name, expect, move |w: &World| {
        let r = w.a_sh(script);
        let p = proof(w);
        let scan = workspace_findings(&w.workspace);
        outcome(
            p.is_ok() && scan.is_empty(),
            format!(
                "{}; host: {}{}",
                gist(&r.all()),
                p.err().unwrap_or_else(|| "as expected".into()),
                if scan.is_empty() {
                    String::new()
                } else {
                    format!(" FOUND {scan:?}")
                }
            ),
        )
    })
}

fn no_hook(w: &World) -> Result<(), String> {
    let hooks = w.workspace.join(".git/hooks");
    let names: Vec<String> = std::fs::read_dir(&hooks)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().to_string())
                .collect()
        })
        .unwrap_or_default();
    let cfg = std::fs::read_to_string(w.workspace.join(".git/config")).unwrap_or_default();
    let bad_cfg = ["fsmonitor", "hookspath", "sshcommand", "pager", "editor"]
        .iter()
        .any(|k| cfg.to_ascii_lowercase().contains(k));
    if names.is_empty() && !bad_cfg {
        Ok(())
    } else {
        Err(format!("HOOKS {names:?} or config written: {}", bad_cfg))
    }
}

/// The agent edits its manifest; the launcher's next start, without a terminal and without
/// `--yes`, must refuse and start nothing.
fn tamper(name: &'static str, sed: &'static str) -> Attempt {
    custom(
        "manifest",
        name,
        "next `bottle start` (no terminal, no --yes) refuses the widened manifest; nothing starts",
        move |w: &World| {
            let original = std::fs::read_to_string(&w.a.manifest).unwrap_or_default();
            let r = w.a_sh(&format!(
                "sed -i {sed} /workspace/bottle.yaml; echo \" rc=$?\""
            ));
            let edited = std::fs::read_to_string(&w.a.manifest).unwrap_or_default();
            let before = w.home.slugs();
            let s = w.home.bottle(
                &["start", w.a.manifest.to_str().unwrap_or(""), "--detach"],
                crate::world::START,
            );
            let new: Vec<String> = w
                .home
                .slugs()
                .into_iter()
                .filter(|x| !before.contains(x))
                .collect();
            for slug in &new {
                let _ = w.home.bottle(&["stop", slug], crate::world::START);
                remove_project(&format!("bottle-{slug}"));
            }
            let _ = std::fs::write(&w.a.manifest, &original);
            let first = s
                .stderr
                .lines()
                .rev()
                .find(|l| !l.trim().is_empty())
                .unwrap_or("")
                .to_string();
            outcome(
                edited != original && s.code != 0 && new.is_empty(),
                format!(
                    "agent edit {} ({}); start exit {} ({first}); new bottles {new:?}",
                    if edited != original {
                        "landed"
                    } else {
                        "did not land"
                    },
                    gist(&r.all()),
                    s.code,
                ),
            )
        },
    )
}

/// Wait until an allowed request through pipelock answers 200 again.
fn serves(w: &World) -> bool {
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        let r = w.a_sh(
            "curl -sS --max-time 10 -o /dev/null -w '%{http_code}' https://origin.e2e.test/healthz",
        );
        if r.stdout.trim() == "200" {
            return true;
        }
        std::thread::sleep(Duration::from_secs(1));
    }
    false
}

/// A flood at a sidecar: afterwards it has not restarted and still serves.
fn flood(name: &'static str, service: &'static str, script: &'static str) -> Attempt {
    custom(
        "exhaustion",
        name,
        "the sidecar is not restarted and serves again afterwards",
        move |w: &World| {
            let before = w.a.liveness(service);
            let r = w.a_sh(script);
            let ok = serves(w)
                && (service != "git-gate"
                    || w.a_sh("git ls-remote http://git-gate:8080/demo.git >/dev/null 2>&1; echo \" rc=$?\"").stdout.contains(" rc=0"));
            let after = w.a.liveness(service);
            let same = before
                .split_whitespace()
                .take(2)
                .eq(after.split_whitespace().take(2));
            outcome(
                ok && same,
                format!(
                    "{}; {service} {before} -> {after}; serves {ok}",
                    gist(&r.all())
                ),
            )
        },
    )
}

/// A planted git indirection: the agent runs `plant(marker)` in /workspace; after teardown
/// none of `gone` may be left in the host's `.git`, and the owner's `git status` on the host
/// (uid 1000, no global or system config) must not create `marker` (which only a command the
/// agent planted would do, on the host).
fn planted(
    name: &'static str,
    expect: &'static str,
    plant: fn(&str) -> String,
    gone: &'static [&'static str],
) -> Attempt {
    let marker = format!("/tmp/escape-pwned-{}", crate::canary(""));
    let m = marker.clone();
    let mut a = custom("workspace", name, expect, move |w: &World| {
        let r = w.a_sh(&format!(
            "cd /workspace && {{ {} ; }} 2>&1; echo \" rc=$?\"",
            plant(&m)
        ));
        outcome(true, format!("planted: {}", crate::short(&r.all())))
    });
    a.after_teardown = Some(Box::new(move |w: &World| {
        let git_dir = w.workspace.join(".git");
        let left: Vec<&str> = gone
            .iter()
            .copied()
            .filter(|f| std::fs::symlink_metadata(git_dir.join(f)).is_ok())
            .collect();
        let mut c = std::process::Command::new("setpriv");
        c.args([
            "--reuid=1000",
            "--regid=1000",
            "--clear-groups",
            "env",
            "-i",
        ])
        .args([
            "PATH=/usr/bin:/bin",
            "HOME=/nonexistent",
            "GIT_CONFIG_NOSYSTEM=1",
        ])
        .arg("GIT_CONFIG_GLOBAL=/dev/null")
        .args(["git", "-C"])
        .arg(&w.workspace)
        .args(["status", "--porcelain"]);
        let st = bottle_e2e::run_cmd(c, Duration::from_secs(60));
        let ran = Path::new(&marker).exists();
        let _ = std::fs::remove_file(&marker);
        outcome(
            left.is_empty() && !ran,
            format!(
                "left in .git: {left:?}; host `git status` exit {}; planted command ran on the host: {ran}",
                st.code
            ),
        )
    }));
    a
}

/// A repository at `dir` (relative to /workspace) whose config runs `touch marker` as its
/// fsmonitor, recorded in the workspace's index as a gitlink (the index is writable).
fn gitlink_repo(git_dir: &str, dir: &str, marker: &str) -> String {
    format!(
        "git init -q /tmp/src-{dir} && git -C /tmp/src-{dir} -c user.name=a -c user.email=a@x.invalid commit -q --allow-empty -m s \
         && mkdir -p {dir} && git clone -q --bare /tmp/src-{dir} {git_dir} \
         && git --git-dir={git_dir} config core.bare false \
         && git --git-dir={git_dir} config core.fsmonitor 'touch {marker}' \
         && git update-index --add --cacheinfo 160000,$(git --git-dir={git_dir} rev-parse HEAD),{dir}"
    )
}

pub fn attempts(_w: &World) -> Vec<Attempt> {
    let mut v = Vec::new();
    // --- workspace (the agent image's USER is root: the launcher must not run it as root)
    v.push(in_agent(
        "workspace",
        "agent-not-root-with-workspace",
        "the agent runs as the workspace owner, not root, though its image says USER root",
        "echo uid=$(id -u)".into(),
        |o| o.contains("uid=") && !o.contains("uid=0"),
    ));
    v.push(trick(
        "chown-file-to-root",
        "chown refused; no root-owned file in the host workspace",
        "touch /workspace/c1 && chown 0:0 /workspace/c1; echo \" rc=$?\"",
        |_| Ok(()),
    ));
    v.push(trick(
        "device-node",
        "mknod refused; no device node in the host workspace",
        "mknod /workspace/d1 c 1 3; mknod /workspace/d2 b 7 0; echo \" rc=$?\"",
        |_| Ok(()),
    ));
    v.push(trick(
        "setuid-root-binary",
        "no setuid-root file in the host workspace",
        "cp /bin/sh /workspace/s1 && chown 0:0 /workspace/s1; chmod 4755 /workspace/s1; echo \" rc=$?\"",
        |_| Ok(()),
    ));
    v.push(trick(
        "git-hook-write",
        "write to .git/hooks refused (read-only); the host repo has no new hook",
        "printf '#!/bin/sh\\ntouch /tmp/pwned\\n' > /workspace/.git/hooks/post-checkout; chmod +x /workspace/.git/hooks/post-checkout; echo \" rc=$?\"",
        no_hook,
    ));
    v.push(trick(
        "git-config-fsmonitor",
        "write to .git/config refused; no fsmonitor/hooksPath in the host repo",
        "git -C /workspace config core.fsmonitor 'touch /tmp/pwned'; git -C /workspace config core.hooksPath /workspace/h; echo \" rc=$?\"",
        no_hook,
    ));
    v.push(trick(
        "git-dir-swap",
        "replacing .git (to get writable hooks) fails; the host repo has no new hook",
        "cd /workspace && mv .git .git-old 2>&1; mkdir -p .git/hooks && printf '#!/bin/sh\\ntouch /tmp/pwned\\n' > .git/hooks/post-checkout; echo \" rc=$?\"",
        no_hook,
    ));
    v.push(planted(
        "git-submodule-gitdir-fsmonitor",
        "a submodule git dir planted in .git/modules (core.fsmonitor) never runs on the host: the owner's `git status` after teardown creates no marker",
        |m| {
            gitlink_repo(".git/modules/sub", "sub", m)
                + " && git --git-dir=.git/modules/sub config core.worktree ../../../sub && echo 'gitdir: ../.git/modules/sub' > sub/.git \
                   && printf '[submodule \"sub\"]\\n\\tpath = sub\\n\\turl = ./sub\\n' > .gitmodules"
        },
        &[],
    ));
    v.push(planted(
        "git-nested-repo-gitlink-fsmonitor",
        "a nested repository (its own .git dir with core.fsmonitor) added to the index as a gitlink never runs on the host",
        |m| {
            gitlink_repo("nested/.git", "nested", m)
        },
        &[],
    ));
    v.push(planted(
        "git-commondir-and-config-worktree",
        "`.git/commondir` and `.git/config.worktree` are swept at teardown; nothing runs on the host",
        |m| {
            format!(
                "mkdir -p .evil/hooks && printf '[core]\\n\\trepositoryformatversion = 0\\n\\tfsmonitor = touch {m}\\n' > .evil/config; \
                 printf '[core]\\n\\tfsmonitor = touch {m}\\n' > .git/config.worktree; echo ../.evil > .git/commondir"
            )
        },
        &["commondir", "config.worktree"],
    ));
    v.push(custom(
        "workspace",
        "host-workspace-scan",
        "after every trick: no root-owned, setuid-root or device file in the host workspace",
        |w: &World| {
            let scan = workspace_findings(&w.workspace);
            outcome(scan.is_empty(), format!("{scan:?}"))
        },
    ));
    // --- manifest tampering
    v.push(tamper(
        "widen-allow",
        "'s/^allow:$/allow:\\n  - evil.e2e.test/'",
    ));
    v.push(tamper(
        "widen-workspace-git-rw",
        "'s/^workspace_git: ro-hooks$/workspace_git: rw/'",
    ));
    v.push(tamper("run-as-root", "'$a user: root'"));
    // --- resource exhaustion of the sidecars
    v.push(flood(
        "pipelock-1000-connections",
        "pipelock",
        "bash -c 'n=0; for i in $(seq 1000); do exec {fd}<>/dev/tcp/pipelock/8888 || break; n=$i; done; echo opened=$n; sleep 5' 2>&1 | tail -2",
    ));
    v.push(flood(
        "git-gate-1000-connections",
        "git-gate",
        "bash -c 'n=0; for i in $(seq 1000); do exec {fd}<>/dev/tcp/git-gate/8080 || break; n=$i; done; echo opened=$n; sleep 5' 2>&1 | tail -2",
    ));
    v.push(flood(
        "pipelock-slowloris",
        "pipelock",
        "bash -c 'for i in $(seq 200); do exec {fd}<>/dev/tcp/pipelock/8888 || break; printf \"GET http://origin.e2e.test/ HTTP/1.1\\r\\nX-a: \" >&$fd; done; for s in 1 2 3 4 5 6 7 8; do sleep 1; done; echo held' 2>&1 | tail -2",
    ));
    v.push(flood(
        "pipelock-huge-header",
        "pipelock",
        "head -c 1048576 /dev/zero | tr '\\0' a > /tmp/big; curl -sS -i --max-time 20 -H \"X-Big: $(cat /tmp/big)\" https://origin.e2e.test/ 2>&1 | head -1; echo \" rc=$?\"",
    ));
    v.push(flood(
        "pipelock-10000-headers",
        "pipelock",
        "bash -c '{ printf \"GET http://origin.e2e.test/ HTTP/1.1\\r\\nHost: origin.e2e.test\\r\\n\"; for i in $(seq 10000); do printf \"X-$i: v\\r\\n\"; done; printf \"\\r\\n\"; } | timeout 15 nc -q 3 pipelock 8888 | head -1'",
    ));
    v.push(flood(
        "git-gate-16mib-garbage-push",
        "git-gate",
        "head -c 16777216 /dev/urandom | curl -sS -o /dev/null -w '%{http_code}' --max-time 60 -H 'Content-Type: application/x-git-receive-pack-request' --data-binary @- http://git-gate:8080/demo.git/git-receive-pack; echo \" rc=$?\"",
    ));
    v.push(flood(
        "pipelock-16mib-upload-scanned",
        "pipelock",
        "head -c 16777216 /dev/urandom | base64 -w0 | curl -sS -o /dev/null -w '%{http_code}' --max-time 120 --data-binary @- https://origin.e2e.test/upload; echo \" rc=$?\"",
    ));
    v
}
