//! The launcher holds against a hostile agent with a workspace (issue 12): a root-configured
//! agent image cannot leave root-owned files, setuid-root binaries or device nodes in the host
//! workspace, and with `workspace_git: ro-hooks`/`hide-hooks` it cannot plant a git hook or a
//! `core.fsmonitor` that would run as the operator later. Each test scans the HOST side.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use bottle_e2e::{
    agent_container, agent_sh, docker, docker_or_skip, project_objects, repo_root, require_images,
    Home, Run, TempDir,
};

const START: Duration = Duration::from_secs(300);
const SHORT: Duration = Duration::from_secs(90);
/// The workspace owner the agent must run as (bottle runs as root here, without sudo).
const OWNER: u32 = 1000;

/// A test-only image (`images/agent-root-test`: the test agent with `USER 0`), removed on drop.
struct RootImage(String);

impl RootImage {
    fn build() -> RootImage {
        let tag = format!(
            "bottle-e2e-agent-root:{}-{:06x}",
            std::process::id(),
            rand::random::<u32>() & 0xff_ffff
        );
        let dir = repo_root().join("images/agent-root-test");
        let r = docker(&["build", "-q", "-t", &tag, dir.to_str().unwrap()]);
        assert_eq!(r.code, 0, "docker build {tag}: {}", r.all());
        RootImage(tag)
    }
}

impl Drop for RootImage {
    fn drop(&mut self) {
        let _ = docker(&["rmi", "-f", &self.0]);
    }
}

/// A detached bottle, stopped (and checked gone) on drop.
struct Running<'a> {
    home: &'a Home,
    slug: String,
    agent: String,
}

impl<'a> Running<'a> {
    fn start(home: &'a Home, manifest: &str) -> Running<'a> {
        let p = home.dir.path().join("hardening.yaml");
        std::fs::write(&p, manifest).unwrap();
        let r = home.bottle(&["start", p.to_str().unwrap(), "--detach"], START);
        assert_eq!(r.code, 0, "bottle start --detach failed:\n{}", r.all());
        let slugs = home.slugs();
        assert_eq!(slugs.len(), 1, "{slugs:?}");
        let slug = slugs[0].clone();
        let agent = agent_container(&format!("bottle-{slug}"));
        assert!(!agent.is_empty(), "no agent container:\n{}", r.all());
        Running { home, slug, agent }
    }

    fn sh(&self, script: &str) -> Run {
        agent_sh(&self.agent, script, SHORT)
    }
}

impl Drop for Running<'_> {
    fn drop(&mut self) {
        let _ = self.home.bottle(&["stop", &self.slug], SHORT);
        let left = project_objects(&format!("bottle-{}", self.slug));
        if !std::thread::panicking() {
            assert!(left.is_empty(), "left behind: {left:?}");
        }
    }
}

fn chown_r(p: &Path, uid: u32) {
    for e in walk(p) {
        std::os::unix::fs::lchown(&e, Some(uid), Some(uid)).unwrap();
    }
}

fn walk(root: &Path) -> Vec<PathBuf> {
    let mut out = vec![root.to_path_buf()];
    let mut i = 0;
    while i < out.len() {
        let p = out[i].clone();
        if std::fs::symlink_metadata(&p).is_ok_and(|m| m.is_dir()) {
            for e in std::fs::read_dir(&p).unwrap().flatten() {
                out.push(e.path());
            }
        }
        i += 1;
    }
    out
}

/// Everything in the host workspace a later root or operator could trip over.
fn dangerous_files(root: &Path) -> Vec<String> {
    let mut bad = Vec::new();
    for p in walk(root) {
        let m = std::fs::symlink_metadata(&p).unwrap();
        let ft = m.file_type();
        let mode = m.mode();
        if m.uid() == 0 || m.gid() == 0 {
            bad.push(format!("{} owned by {}:{}", p.display(), m.uid(), m.gid()));
        }
        if ft.is_char_device() || ft.is_block_device() {
            bad.push(format!("{} is a device node", p.display()));
        }
        if mode & 0o6000 != 0 && m.uid() != OWNER {
            bad.push(format!(
                "{} setuid/setgid {:o} owned by {}",
                p.display(),
                mode,
                m.uid()
            ));
        }
    }
    bad
}

#[test]
fn root_image_cannot_plant_root_files_in_the_workspace() {
    if !docker_or_skip("root_image_cannot_plant_root_files_in_the_workspace") {
        return;
    }
    require_images();
    let image = RootImage::build();
    let ws = TempDir::new("bottle-e2e-ws");
    std::fs::write(ws.path().join("README"), "operator's file\n").unwrap();
    chown_r(ws.path(), OWNER);
    let home = Home::new();
    let b = Running::start(
        &home,
        &format!(
            "name: e2e-root\nimage: {}\nworkspace: {}\n",
            image.0,
            ws.path().display()
        ),
    );

    let who = b.sh("id -u; id -g; grep -E '^(CapEff|CapBnd|CapPrm|NoNewPrivs)' /proc/self/status");
    let lines: Vec<&str> = who.stdout.lines().collect();
    assert_eq!(lines.first(), Some(&"1000"), "agent uid: {}", who.all());
    assert_eq!(lines.get(1), Some(&"1000"), "agent gid: {}", who.all());
    for cap in ["CapEff", "CapBnd", "CapPrm"] {
        assert!(
            who.stdout.contains(&format!("{cap}:\t0000000000000000")),
            "{cap} not empty: {}",
            who.all()
        );
    }
    assert!(who.stdout.contains("NoNewPrivs:\t1"), "{}", who.all());

    // The hostile attempts, each allowed to fail.
    let attempts = [
        "cp /bin/sh /workspace/x && chmod u+s,g+s /workspace/x",
        "chown 0:0 /workspace/x",
        "chmod 4755 /workspace/x && chown root /workspace/x",
        "mknod /workspace/null c 1 3",
        "mknod /workspace/sda b 8 0",
        "touch /workspace/as-agent && chown 0 /workspace/as-agent",
        "mkdir /workspace/d && chgrp 0 /workspace/d",
        "cp /bin/sh /tmp/s && chmod u+s /tmp/s && /tmp/s -c 'id -u > /workspace/escalated'",
        "su -c 'touch /workspace/su' root </dev/null",
        "chown 0:0 /workspace/README",
    ];
    let mut log = String::new();
    for a in attempts {
        let r = b.sh(a);
        log.push_str(&format!("$ {a}\n-> {} {}", r.code, r.all()));
    }
    for refused in ["chown 0:0 /workspace/x", "mknod /workspace/null c 1 3"] {
        let r = b.sh(refused);
        assert_ne!(r.code, 0, "{refused} succeeded in the agent:\n{log}");
    }

    let bad = dangerous_files(ws.path());
    assert!(
        bad.is_empty(),
        "host workspace after the agent: {bad:?}\n{log}"
    );
    let escalated = std::fs::read_to_string(ws.path().join("escalated")).unwrap_or_default();
    assert_ne!(escalated.trim(), "0", "setuid gained root:\n{log}");
    // The operator's file is intact and still theirs.
    let m = std::fs::metadata(ws.path().join("README")).unwrap();
    assert_eq!(m.uid(), OWNER);
    eprintln!("attempts:\n{log}");
}

#[test]
fn git_hooks_and_config_are_read_only() {
    if !docker_or_skip("git_hooks_and_config_are_read_only") {
        return;
    }
    require_images();
    for mode in ["ro-hooks", "hide-hooks"] {
        let ws = TempDir::new("bottle-e2e-gitws");
        let git = |args: &[&str]| {
            let mut c = std::process::Command::new("git");
            // The repository belongs to OWNER; this test runs as root.
            c.args(["-c", "safe.directory=*", "-C"])
                .arg(ws.path())
                .args(args);
            bottle_e2e::run_cmd(c, SHORT)
        };
        assert_eq!(git(&["init", "-q"]).code, 0);
        std::fs::create_dir_all(ws.path().join(".git/hooks")).unwrap();
        std::fs::write(ws.path().join(".git/hooks/pre-push.sample"), "#!/bin/sh\n").unwrap();
        chown_r(ws.path(), OWNER);
        let config_before = std::fs::read(ws.path().join(".git/config")).unwrap();
        let home = Home::new();
        let b = Running::start(
            &home,
            &format!(
                "name: e2e-git\nimage: bottle-agent-test:latest\nworkspace: {}\nworkspace_git: {mode}\n",
                ws.path().display()
            ),
        );
        let attempts = [
            "printf '#!/bin/sh\\ntouch /tmp/pwned\\n' > /workspace/.git/hooks/pre-commit",
            "chmod +x /workspace/.git/hooks/pre-commit",
            "git -C /workspace config core.fsmonitor 'touch /tmp/pwned'",
            "git -C /workspace config core.hooksPath /workspace/evil-hooks",
            "echo '[core] fsmonitor = evil' >> /workspace/.git/config",
            "rm -rf /workspace/.git/hooks",
            "mv /workspace/.git /workspace/.git-old",
            "printf 'gitdir: /workspace/evil\\n' > /workspace/.git",
        ];
        let mut log = String::new();
        for a in attempts {
            let r = b.sh(a);
            log.push_str(&format!("$ {a}\n-> {} {}", r.code, r.all()));
            if !a.starts_with("chmod") {
                assert_ne!(r.code, 0, "{mode}: `{a}` succeeded:\n{log}");
            }
        }
        // Ordinary git work still goes through.
        let c = b.sh(
            "cd /workspace && echo hi > f && git add f && \
             git -c user.name=a -c user.email=a@example.invalid commit -qm agent && git log --oneline",
        );
        assert_eq!(c.code, 0, "{mode}: commit failed: {}", c.all());
        let listing = b.sh("ls -A /workspace/.git/hooks");
        if mode == "hide-hooks" {
            assert_eq!(
                listing.stdout.trim(),
                "",
                "hooks not hidden: {}",
                listing.all()
            );
        } else {
            assert!(
                listing.stdout.contains("pre-push.sample"),
                "{}",
                listing.all()
            );
        }
        // Writable (the rest of .git must be): swept at teardown, and refused at start.
        let r = b.sh(
            "mkdir -p /workspace/evil/hooks && printf '../evil\\n' > /workspace/.git/commondir",
        );
        log.push_str(&format!("$ commondir -> {} {}", r.code, r.all()));
        assert_eq!(
            r.code,
            0,
            "{mode}: the agent could not even try: {}",
            r.all()
        );
        drop(b);
        // Host side: no hook, config byte-identical, .git still the operator's repository.
        assert!(
            !ws.path().join(".git/hooks/pre-commit").exists(),
            "{mode}:\n{log}"
        );
        assert_eq!(
            std::fs::read(ws.path().join(".git/config")).unwrap(),
            config_before,
            "{mode}: .git/config changed:\n{log}"
        );
        assert!(!ws.path().join(".git-old").exists());
        assert!(
            !ws.path().join(".git/commondir").exists(),
            "{mode}: .git/commondir left for the operator's git:\n{log}"
        );
        let host_log = git(&["log", "--oneline"]);
        assert_eq!(host_log.code, 0, "{mode}: {}", host_log.all());
        let bad = dangerous_files(ws.path());
        assert!(bad.is_empty(), "{mode}: {bad:?}");
    }
}

#[test]
fn rw_workspace_git_is_warned_about() {
    // No Docker needed for the warning: it is printed before Docker is touched.
    let ws = TempDir::new("bottle-e2e-warn");
    chown_r(ws.path(), OWNER);
    let home = Home::new();
    let p = home.dir.path().join("w.yaml");
    std::fs::write(
        &p,
        format!("name: w\nimage: x\nworkspace: {}\n", ws.path().display()),
    )
    .unwrap();
    let mut c = home.command(&["start", p.to_str().unwrap()]);
    c.env("PATH", "/nonexistent").env("NO_COLOR", "1");
    let r = bottle_e2e::run_cmd(c, SHORT);
    assert!(
        r.stderr.contains(".git/hooks") && r.stderr.contains("workspace_git: ro-hooks"),
        "{}",
        r.all()
    );
    assert_eq!(
        r.stderr.matches("core.fsmonitor").count(),
        1,
        "warned once: {}",
        r.all()
    );
}

#[test]
fn planted_git_dirs_are_quarantined_at_teardown() {
    if !docker_or_skip("planted_git_dirs_are_quarantined_at_teardown") {
        return;
    }
    require_images();
    // `rw`: the agent may write the main `.git` too; teardown still judges everything.
    let ws = TempDir::new("bottle-e2e-gitplant");
    let marks = TempDir::new("bottle-e2e-gitmarks");
    let (m1, m2) = (marks.path().join("main"), marks.path().join("nested"));
    let git = |args: &[&str]| {
        let mut c = std::process::Command::new("git");
        c.env("HOME", marks.path())
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .args(["-c", "safe.directory=*", "-C"])
            .arg(ws.path())
            .args(args);
        bottle_e2e::run_cmd(c, SHORT)
    };
    assert_eq!(git(&["init", "-q"]).code, 0);
    chown_r(ws.path(), OWNER);
    let home = Home::new();
    let b = Running::start(
        &home,
        &format!(
            "name: e2e-plant\nimage: bottle-agent-test:latest\nworkspace: {}\nworkspace_git: rw\n",
            ws.path().display()
        ),
    );
    let r = b.sh(&format!(
        "cd /workspace && git config core.fsmonitor 'touch {m1}' \
         && printf '#!/bin/sh\\ntouch {m1}\\n' > .git/hooks/post-checkout && chmod +x .git/hooks/post-checkout \
         && git init -q /tmp/src && git -C /tmp/src -c user.name=a -c user.email=a@x.invalid commit -q --allow-empty -m s \
         && mkdir nested && git clone -q --bare /tmp/src nested/.git \
         && git --git-dir=nested/.git config core.bare false \
         && git --git-dir=nested/.git config core.fsmonitor 'touch {m2}' \
         && git update-index --add --cacheinfo 160000,$(git --git-dir=nested/.git rev-parse HEAD),nested",
        m1 = m1.display(),
        m2 = m2.display()
    ));
    assert_eq!(r.code, 0, "the agent could not even plant: {}", r.all());
    let stop = home.bottle(&["stop", &b.slug], SHORT);
    assert_eq!(stop.code, 0, "{}", stop.all());
    // Before the host's git (run as root here) writes anything: nothing root-owned.
    let bad = dangerous_files(ws.path());
    assert!(bad.is_empty(), "{bad:?}");
    // Host side: the operator's git status (and a checkout, for the hook) runs nothing.
    let st = git(&["status", "--porcelain"]);
    assert_eq!(st.code, 0, "{}", st.all());
    git(&["checkout", "-q", "-b", "x"]);
    assert!(
        !m1.exists() && !m2.exists(),
        "the agent's command ran on the host; stop said:\n{}",
        stop.all()
    );
    let said = stop.all();
    assert!(
        said.contains("quarantined")
            && said.contains("nested/.git")
            && said.contains("core.fsmonitor"),
        "{said}"
    );
    let q = std::fs::read_to_string(ws.path().join(".git/config.bottle-quarantine")).unwrap();
    assert!(q.contains("fsmonitor"), "{q}");
    assert!(ws
        .path()
        .join(".git/hooks.bottle-quarantine/post-checkout.bottle-quarantine")
        .exists());
    // The rewritten config still belongs to the operator, not to root.
    let md = std::fs::metadata(ws.path().join(".git/config")).unwrap();
    assert_eq!(md.uid(), OWNER);
}
