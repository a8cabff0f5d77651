//! Who the agent runs as, and how the workspace's git metadata is mounted.
//!
//! A root agent with a read-write workspace could leave a setuid-root binary, a device node or
//! a root-owned file in the operator's directory. So when a workspace is mounted the agent runs
//! as the invoking user (under sudo: `SUDO_UID:SUDO_GID`, else the workspace's owner), never
//! as root unless the manifest says `user: root`; and `.git/hooks` / `.git/config`, which run
//! code as the operator later, can be mounted read-only (`workspace_git:`).

use std::os::unix::fs::MetadataExt;
use std::path::Path;

use crate::manifest::{Loaded, WorkspaceGit};
use crate::state::EMPTY_HOOKS;
use crate::ui;

/// The agent's `user:` for compose. `None`: the image's own user (no workspace mounted).
///
/// `invoking`: our uid:gid; `sudo`: `SUDO_UID:SUDO_GID` when set; `ws_owner`: the workspace
/// directory's owner.
pub fn pick(
    user: Option<&str>,
    workspace: bool,
    invoking: (u32, u32),
    sudo: Option<(u32, u32)>,
    ws_owner: Option<(u32, u32)>,
) -> Result<Option<String>, String> {
    match user {
        Some("root") => return Ok(Some("0:0".into())),
        Some(u) => return Ok(Some(u.to_string())),
        None if !workspace => return Ok(None),
        None => {}
    }
    let who = if invoking.0 != 0 {
        invoking
    } else if let Some(s) = sudo.filter(|s| s.0 != 0) {
        s
    } else if let Some(o) = ws_owner.filter(|o| o.0 != 0) {
        o
    } else {
        return Err(
            "the workspace is owned by root and bottle runs as root without sudo: the agent \
             would run as root in your workspace. Say who it runs as with `user: \"UID:GID\"` \
             (or `user: root` if you really mean it), or chown the workspace to a user"
                .into(),
        );
    };
    Ok(Some(format!("{}:{}", who.0, who.1)))
}

fn sudo_ids() -> Option<(u32, u32)> {
    let uid = std::env::var("SUDO_UID").ok()?.parse().ok()?;
    let gid = std::env::var("SUDO_GID").ok()?.parse().ok()?;
    Some((uid, gid))
}

/// [`pick`] for this process and manifest; also checks what `workspace_git` needs.
pub fn resolve(l: &Loaded) -> Result<Option<String>, String> {
    let m = &l.manifest;
    let owner = m
        .workspace
        .as_ref()
        .and_then(|w| std::fs::metadata(w).ok())
        .map(|md| (md.uid(), md.gid()));
    if let (Some(ws), true) = (&m.workspace, m.workspace_git != WorkspaceGit::Rw) {
        git_paths_ok(ws)?;
    }
    pick(
        m.user.as_deref(),
        m.workspace.is_some(),
        (crate::state::euid(), crate::state::egid()),
        sudo_ids(),
        owner,
    )
}

/// `ro-hooks`/`hide-hooks` mount over `.git/hooks` and `.git/config`: both must exist (Docker
/// would otherwise create the mount points in the workspace, as root).
fn git_paths_ok(ws: &Path) -> Result<(), String> {
    let git = ws.join(".git");
    let dir = std::fs::symlink_metadata(&git).is_ok_and(|m| m.is_dir());
    let hooks = std::fs::symlink_metadata(git.join("hooks")).is_ok_and(|m| m.is_dir());
    let config = std::fs::symlink_metadata(git.join("config")).is_ok_and(|m| m.is_file());
    if dir && hooks && config {
        let found = git_indirections(ws);
        if !found.is_empty() {
            return Err(format!(
                "{} in {} would make git read hooks and config from elsewhere, around \
                 workspace_git; remove it (a main repository never needs it)",
                found.join(", "),
                ws.display()
            ));
        }
        return Ok(());
    }
    Err(format!(
        "workspace_git: {} needs a git repository with a .git/hooks directory and a .git/config \
         file (not symlinks); run `git init` and `mkdir -p .git/hooks` in {}, or use `workspace_git: rw`",
        if dir { "protection" } else { "ro-hooks/hide-hooks" },
        ws.display()
    ))
}

/// Files in a main repository's `.git` that make git take its config and hooks from
/// elsewhere (`commondir`), or add config (`config.worktree`): never legitimate in a `.git`
/// directory of a main working tree, and writable by the agent even when hooks and config
/// are read-only.
const INDIRECTIONS: &[&str] = &["commondir", "config.worktree"];

/// Which [`INDIRECTIONS`] exist in `ws/.git`.
pub fn git_indirections(ws: &Path) -> Vec<String> {
    INDIRECTIONS
        .iter()
        .filter(|f| std::fs::symlink_metadata(ws.join(".git").join(f)).is_ok())
        .map(|f| format!(".git/{f}"))
        .collect()
}

/// After the agent: remove indirections it planted in a guarded `.git`, and say so.
pub fn sweep_git_indirections(ws: &Path) {
    for f in git_indirections(ws) {
        let p = ws.join(&f);
        match std::fs::remove_file(&p) {
            Ok(()) => ui::warn(&format!(
                "removed {} written during the bottle: it would have made git read hooks and \
                 config from elsewhere, around workspace_git",
                p.display()
            )),
            Err(e) => ui::warn(&format!(
                "{} was written during the bottle and could not be removed ({e}): delete it                  before you run git in {}",
                p.display(),
                ws.display()
            )),
        }
    }
}

/// The agent's extra volumes for `workspace_git` (host:container[:ro], compose syntax, `$`
/// not yet escaped). `.git` itself is mounted too so it is a mount point the agent cannot
/// rename away and replace with a repository of its own.
pub fn git_volumes(l: &Loaded, workdir: &str) -> Vec<String> {
    let m = &l.manifest;
    let Some(ws) = &m.workspace else {
        return Vec::new();
    };
    let host = |p: &str| ws.join(p).display().to_string();
    let hooks_src = match m.workspace_git {
        WorkspaceGit::Rw => return Vec::new(),
        WorkspaceGit::RoHooks => host(".git/hooks"),
        WorkspaceGit::HideHooks => format!("./{EMPTY_HOOKS}"),
    };
    vec![
        format!("{}:{workdir}/.git", host(".git")),
        format!("{hooks_src}:{workdir}/.git/hooks:ro"),
        format!("{}:{workdir}/.git/config:ro", host(".git/config")),
    ]
}

/// Say once, plainly, what a writable workspace means for git.
pub fn warn_workspace_git(l: &Loaded) {
    let m = &l.manifest;
    if let (Some(ws), WorkspaceGit::Rw) = (&m.workspace, m.workspace_git) {
        ui::warn(&format!(
            "the agent can write {0}/.git/hooks and {0}/.git/config: a hook or a setting such \
             as core.fsmonitor runs as you the next time you use git there. Set \
             `workspace_git: ro-hooks` (or `hide-hooks`) in the manifest to mount them read-only",
            ws.display()
        ));
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn guarded_git_needs_hooks_config_and_no_indirection() {
        let ws = std::env::temp_dir().join(format!("bottle-agent-user-{}", std::process::id()));
        std::fs::create_dir_all(ws.join(".git")).unwrap();
        assert!(git_paths_ok(&ws).is_err(), "no hooks dir, no config");
        std::fs::create_dir_all(ws.join(".git/hooks")).unwrap();
        std::fs::write(ws.join(".git/config"), "").unwrap();
        assert_eq!(git_paths_ok(&ws), Ok(()));
        std::fs::write(ws.join(".git/commondir"), "../evil\n").unwrap();
        assert!(git_paths_ok(&ws).is_err_and(|e| e.contains(".git/commondir")));
        sweep_git_indirections(&ws);
        assert!(!ws.join(".git/commondir").exists());
        assert_eq!(git_paths_ok(&ws), Ok(()));
        let _ = std::fs::remove_dir_all(&ws);
    }

    #[test]
    fn who_the_agent_runs_as() {
        // No workspace: the image's user.
        assert_eq!(pick(None, false, (0, 0), None, None), Ok(None));
        // A user: that user.
        assert_eq!(
            pick(None, true, (1000, 1001), None, Some((0, 0))),
            Ok(Some("1000:1001".into()))
        );
        // root under sudo: the sudo user.
        assert_eq!(
            pick(None, true, (0, 0), Some((1002, 1003)), Some((0, 0))),
            Ok(Some("1002:1003".into()))
        );
        // root without sudo: the workspace's owner.
        assert_eq!(
            pick(None, true, (0, 0), None, Some((1004, 1005))),
            Ok(Some("1004:1005".into()))
        );
        // root, no sudo, root-owned workspace: refused, never silently root.
        assert!(
            pick(None, true, (0, 0), None, Some((0, 0))).is_err_and(|e| e.contains("user: root"))
        );
        assert!(pick(None, true, (0, 0), Some((0, 0)), Some((0, 0))).is_err());
        // Explicit choices win.
        assert_eq!(
            pick(Some("root"), true, (1000, 1000), None, None),
            Ok(Some("0:0".into()))
        );
        assert_eq!(
            pick(Some("2000:2000"), true, (0, 0), None, Some((0, 0))),
            Ok(Some("2000:2000".into()))
        );
    }
}
