//! Git directories the agent planted or changed in the workspace, quarantined at teardown.
//!
//! `workspace_git` makes the main `.git/hooks` and `.git/config` read-only, but the agent can
//! still write other git directories that the operator's git reads later: a submodule's git
//! dir in `.git/modules/`, a nested repository, a bare repository anywhere in the tree, a
//! `gitdir:` file or `commondir` pointing at one. `git status` in the workspace recurses into
//! submodules and runs their `core.fsmonitor` as the operator. So before the agent runs we
//! record a fingerprint of every git directory reachable in the workspace (hashes only: a
//! config may hold a credential), and at teardown every git directory that is new or changed
//! is judged: config entries outside a small inert allowlist, and hooks that are not
//! `*.sample`, are moved aside where git never reads them, with one warning per directory.

pub mod config;

use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::ui;

/// The snapshot's file name in the state dir.
pub const SNAPSHOT: &str = "git-snapshot.json";
/// At most this many directory entries are walked; beyond it the walk says so.
pub const MAX_ENTRIES: usize = 500_000;
/// Suffix of everything moved aside.
pub const QUARANTINE: &str = ".bottle-quarantine";

/// Files of a git dir whose content can run code or redirect git.
const CONFIGS: &[&str] = &["config", "config.worktree"];

/// What we remember of one git directory (hashes only).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fingerprint {
    /// File name -> sha256 of the whole file (`config`, `config.worktree`, `commondir`).
    pub files: BTreeMap<String, String>,
    /// sha256 of each config entry's key and value, over both config files.
    pub entries: BTreeSet<String>,
    /// Non-sample hooks: name -> sha256 of kind and content.
    pub hooks: BTreeMap<String, String>,
}

/// Every git dir found, by path relative to the workspace; also `gitdir:` files.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snapshot {
    pub dirs: BTreeMap<String, Fingerprint>,
    /// `.git` files: path -> sha256 of their content.
    pub links: BTreeMap<String, String>,
    /// The walk stopped at [`MAX_ENTRIES`].
    pub truncated: bool,
}

fn sha(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

/// Lexically resolve `rel` against `base` (no symlinks followed; `..` pops).
fn join_lexical(base: &Path, rel: &str) -> PathBuf {
    let mut out = PathBuf::new();
    for c in base.join(rel.trim_end_matches(['\n', '\r'])).components() {
        match c {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            other => out.push(other),
        }
    }
    out
}

/// `target` inside `ws`, through symlinks too: the relative path, else `None`.
fn inside(ws: &Path, target: &Path) -> Option<String> {
    let real_ws = std::fs::canonicalize(ws).ok()?;
    let real = std::fs::canonicalize(target).ok()?;
    let rel = real.strip_prefix(&real_ws).ok()?;
    Some(rel.display().to_string())
}

/// Walk the workspace: (git dirs, `.git` files, truncated). Symlinks are not followed; the
/// `objects` of a git dir are not entered.
fn discover(ws: &Path) -> (BTreeSet<String>, BTreeMap<String, String>, bool) {
    let mut dirs = BTreeSet::new();
    let mut links = BTreeMap::new();
    let mut stack = vec![PathBuf::new()];
    let mut seen = 0usize;
    let mut truncated = false;
    while let Some(rel) = stack.pop() {
        let abs = ws.join(&rel);
        let Ok(rd) = std::fs::read_dir(&abs) else {
            continue;
        };
        let names: Vec<(String, std::fs::Metadata)> = rd
            .filter_map(|e| e.ok())
            .filter_map(|e| {
                let md = std::fs::symlink_metadata(e.path()).ok()?;
                Some((e.file_name().to_string_lossy().into_owned(), md))
            })
            .collect();
        seen += names.len();
        if seen > MAX_ENTRIES {
            truncated = true;
            break;
        }
        // git discovers a directory as a (bare) git dir by HEAD + objects (or commondir) +
        // refs; refs is left out to be wider.
        let has = |f: &str| names.iter().any(|(n, _)| n == f);
        let is_git_dir = rel.file_name().is_some_and(|n| n == ".git")
            || (has("HEAD") && (has("objects") || has("commondir")));
        if is_git_dir {
            dirs.insert(rel.display().to_string());
        }
        for (name, md) in names {
            let child = rel.join(&name);
            if md.is_dir() {
                if is_git_dir && name == "objects" {
                    continue;
                }
                stack.push(child);
            } else if name == ".git" && md.is_file() {
                let text = std::fs::read(ws.join(&child)).unwrap_or_default();
                links.insert(child.display().to_string(), sha(&text));
            }
        }
    }
    // Indirections: a `.git` file's gitdir and a git dir's commondir are git dirs too.
    let mut extra = Vec::new();
    for l in links.keys() {
        if let Some(t) = gitdir_target(ws, Path::new(l)).and_then(|t| inside(ws, &t)) {
            extra.push(t);
        }
    }
    for d in &dirs {
        let cd = ws.join(d).join("commondir");
        if let Ok(text) = std::fs::read_to_string(&cd) {
            if let Some(t) = inside(ws, &join_lexical(&ws.join(d), text.trim())) {
                extra.push(t);
            }
        }
    }
    dirs.extend(extra);
    (dirs, links, truncated)
}

/// The directory a `.git` file (`gitdir: X`) points at.
fn gitdir_target(ws: &Path, link: &Path) -> Option<PathBuf> {
    let text = std::fs::read_to_string(ws.join(link)).ok()?;
    let t = text.trim_start().strip_prefix("gitdir:")?.trim();
    let base = ws.join(link.parent().unwrap_or(Path::new("")));
    Some(join_lexical(&base, t))
}

fn fingerprint(dir: &Path) -> Fingerprint {
    let mut f = Fingerprint::default();
    for name in CONFIGS.iter().chain(["commondir"].iter()) {
        let p = dir.join(name);
        let Ok(md) = std::fs::symlink_metadata(&p) else {
            continue;
        };
        let data = if md.is_file() {
            std::fs::read(&p).unwrap_or_default()
        } else {
            b"\0not a file".to_vec()
        };
        if CONFIGS.contains(name) {
            if let Ok(es) = config::parse(&String::from_utf8_lossy(&data)) {
                f.entries
                    .extend(es.iter().map(|e| sha(e.identity().as_bytes())));
            }
        }
        f.files.insert((*name).to_string(), sha(&data));
    }
    f.hooks = hooks(dir);
    f
}

/// Non-sample entries of `dir/hooks` (a `hooks` that is not a directory counts as one).
fn hooks(dir: &Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let h = dir.join("hooks");
    match std::fs::symlink_metadata(&h) {
        Ok(md) if md.is_dir() => {}
        Ok(_) => {
            out.insert(String::new(), sha(b"hooks is not a directory"));
            return out;
        }
        Err(_) => return out,
    }
    for e in std::fs::read_dir(&h).into_iter().flatten().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if name.ends_with(".sample") {
            continue;
        }
        let md = std::fs::symlink_metadata(e.path()).ok();
        let kind = match &md {
            Some(m) if m.is_file() => format!("file {:o}", m.mode() & 0o111),
            Some(m) if m.is_symlink() => format!(
                "link {}",
                std::fs::read_link(e.path())
                    .map(|p| p.display().to_string())
                    .unwrap_or_default()
            ),
            _ => "other".into(),
        };
        let mut data = kind.into_bytes();
        if md.is_some_and(|m| m.is_file()) {
            data.extend(std::fs::read(e.path()).unwrap_or_default());
        }
        out.insert(name, sha(&data));
    }
    out
}

/// Record every git directory of the workspace.
pub fn snapshot(ws: &Path) -> Snapshot {
    let (dirs, links, truncated) = discover(ws);
    Snapshot {
        dirs: dirs
            .into_iter()
            .map(|d| {
                let f = fingerprint(&ws.join(&d));
                (d, f)
            })
            .collect(),
        links,
        truncated,
    }
}

/// What teardown did to one git dir or `.git` file: its path and what was moved aside.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub path: PathBuf,
    pub moved: Vec<String>,
}

/// A free `base` + [`QUARANTINE`] (+ `.N`) name next to `base`.
fn free_name(base: &Path) -> PathBuf {
    let mut p = PathBuf::from(format!("{}{QUARANTINE}", base.display()));
    let mut n = 1;
    while std::fs::symlink_metadata(&p).is_ok() {
        p = PathBuf::from(format!("{}{QUARANTINE}.{n}", base.display()));
        n += 1;
    }
    p
}

/// Judge one config file of a new or changed git dir; quarantine it when it sets anything
/// not inert. Returns the offending keys (empty: left alone).
fn judge_config(ws: &Path, dir: &Path, name: &str, before: &Fingerprint) -> Vec<String> {
    let p = dir.join(name);
    let Ok(md) = std::fs::symlink_metadata(&p) else {
        return Vec::new();
    };
    let parsed = if md.is_file() {
        std::fs::read(&p)
            .map_err(|e| e.to_string())
            .and_then(|d| String::from_utf8(d).map_err(|_| "not UTF-8".to_string()))
            .and_then(|t| config::parse(&t).map_err(|(l, e)| format!("line {l}: {e}")))
    } else {
        Err("not a regular file".into())
    };
    let (keep, bad) = match parsed {
        Ok(entries) => {
            let mut keep = Vec::new();
            let mut bad = Vec::new();
            for e in entries {
                let old = before.entries.contains(&sha(e.identity().as_bytes()));
                let why = if old { None } else { danger_here(ws, dir, &e) };
                match why {
                    Some(w) => bad.push(w),
                    None => keep.push(e),
                }
            }
            (keep, bad)
        }
        Err(e) => (Vec::new(), vec![format!("unreadable config ({e})")]),
    };
    if bad.is_empty() {
        return bad;
    }
    let dest = free_name(&p);
    if let Err(e) = std::fs::rename(&p, &dest) {
        return vec![format!(
            "{} (could not be moved aside: {e}; delete it by hand)",
            bad.join(", ")
        )];
    }
    if name == "config" || !keep.is_empty() {
        let text = config::render(&keep);
        if std::fs::write(&p, text).is_ok() {
            let _ = std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644));
            // Running as root (sudo): give the rewritten file its old owner back.
            let _ = std::os::unix::fs::lchown(&p, Some(md.uid()), Some(md.gid()));
        }
    }
    bad.into_iter()
        .map(|b| format!("{name}: {b} -> {}", dest.display()))
        .collect()
}

/// [`config::danger`], plus a `core.worktree` must stay inside the workspace.
fn danger_here(ws: &Path, dir: &Path, e: &config::Entry) -> Option<String> {
    if let Some(d) = config::danger(e) {
        return Some(d);
    }
    if e.section == "core" && e.key == "worktree" {
        let v = e.value.as_deref().unwrap_or("");
        let t = join_lexical(dir, v);
        let lexical_inside = t.starts_with(ws);
        let real_ok = !t.exists() || inside(ws, &t).is_some();
        if !(lexical_inside && real_ok) {
            return Some("core.worktree (outside the workspace)".into());
        }
    }
    None
}

/// Move new or changed non-sample hooks into `hooks.bottle-quarantine/`, not executable.
fn judge_hooks(dir: &Path, before: &Fingerprint) -> Vec<String> {
    let now = hooks(dir);
    let changed: Vec<&String> = now
        .iter()
        .filter(|(n, h)| before.hooks.get(*n) != Some(*h))
        .map(|(n, _)| n)
        .collect();
    if changed.is_empty() {
        return Vec::new();
    }
    let h = dir.join("hooks");
    if changed.iter().any(|n| n.is_empty()) {
        let dest = free_name(&h);
        return vec![match std::fs::rename(&h, &dest) {
            Ok(()) => format!("hooks (not a directory) -> {}", dest.display()),
            Err(e) => format!("hooks (not a directory; could not be moved: {e})"),
        }];
    }
    // A real directory, never one the agent left (it could be a symlink out of the tree).
    let mut qdir = dir.join(format!("hooks{QUARANTINE}"));
    if std::fs::symlink_metadata(&qdir).is_ok() {
        qdir = free_name(&h);
    }
    if let Err(e) = std::fs::create_dir(&qdir) {
        return vec![format!(
            "hooks {changed:?} (could not create {}: {e}; delete them by hand)",
            qdir.display()
        )];
    }
    // Running as root (sudo): the directory belongs to whoever owns the hooks.
    if let Ok(md) = std::fs::symlink_metadata(&h) {
        let _ = std::os::unix::fs::lchown(&qdir, Some(md.uid()), Some(md.gid()));
    }
    changed
        .into_iter()
        .map(|n| {
            let dest = free_name(&qdir.join(n));
            match std::fs::rename(h.join(n), &dest) {
                Ok(()) => {
                    if std::fs::symlink_metadata(&dest).is_ok_and(|m| m.is_file()) {
                        let _ =
                            std::fs::set_permissions(&dest, std::fs::Permissions::from_mode(0o600));
                    }
                    format!("hooks/{n} -> {}", dest.display())
                }
                Err(e) => format!("hooks/{n} (could not be moved: {e}; delete it by hand)"),
            }
        })
        .collect()
}

/// Teardown: judge every git dir that is new or changed since `before`. `skip_main`: the
/// main `.git`'s config and hooks were read-only mounts (guarded modes).
pub fn sweep(ws: &Path, before: &Snapshot, skip_main: bool) -> (Vec<Finding>, bool) {
    let (dirs, links, truncated) = discover(ws);
    let mut out = Vec::new();
    for (l, h) in &links {
        if before.links.get(l) == Some(h) {
            continue;
        }
        // A new `.git` file pointing outside the workspace: git would read a git dir we
        // cannot judge.
        let target = gitdir_target(ws, Path::new(l));
        if target.as_ref().and_then(|t| inside(ws, t)).is_none() {
            let p = ws.join(l);
            let dest = free_name(&p);
            let moved = match std::fs::rename(&p, &dest) {
                Ok(()) => format!(
                    "gitdir file pointing outside the workspace -> {}",
                    dest.display()
                ),
                Err(e) => {
                    format!("gitdir file pointing outside the workspace (could not be moved: {e})")
                }
            };
            out.push(Finding {
                path: p,
                moved: vec![moved],
            });
        }
    }
    let empty = Fingerprint::default();
    for d in &dirs {
        let abs = ws.join(d);
        let old = before.dirs.get(d).unwrap_or(&empty);
        if before.dirs.get(d) == Some(&fingerprint(&abs)) {
            continue;
        }
        let main = d == ".git";
        let mut moved = Vec::new();
        if !(main && skip_main) {
            for name in CONFIGS {
                moved.extend(judge_config(ws, &abs, name, old));
            }
            moved.extend(judge_hooks(&abs, old));
        }
        if !main && old.files.get("commondir") != fingerprint(&abs).files.get("commondir") {
            let cd = abs.join("commondir");
            let target = std::fs::read_to_string(&cd)
                .ok()
                .and_then(|t| inside(ws, &join_lexical(&abs, t.trim())));
            if cd.exists() && target.is_none() {
                let dest = free_name(&cd);
                moved.push(match std::fs::rename(&cd, &dest) {
                    Ok(()) => format!(
                        "commondir pointing outside the workspace -> {}",
                        dest.display()
                    ),
                    Err(e) => format!(
                        "commondir pointing outside the workspace (could not be moved: {e})"
                    ),
                });
            }
        }
        if !moved.is_empty() {
            out.push(Finding { path: abs, moved });
        }
    }
    (out, truncated)
}

/// `bottle start`: record the workspace's git dirs in the state dir.
pub fn record(ws: &Path, state_dir: &Path) -> Result<(), String> {
    let s = snapshot(ws);
    if s.truncated {
        ui::warn(&format!(
            "{} has more than {MAX_ENTRIES} files: git directories beyond them are not \
             recorded, so teardown will treat any it finds there as new",
            ws.display()
        ));
    }
    let json = serde_json::to_vec(&s).map_err(|e| e.to_string())?;
    crate::state::write_file(&state_dir.join(SNAPSHOT), &json, 0o600, None)
        .map_err(|e| e.to_string())
}

/// Teardown: sweep against the recorded snapshot (none recorded: everything counts as
/// new) and warn once per quarantined git dir.
pub fn sweep_and_warn(ws: &Path, state_dir: &Path, guarded: bool) {
    let before: Snapshot = std::fs::read(state_dir.join(SNAPSHOT))
        .ok()
        .and_then(|d| serde_json::from_slice(&d).ok())
        .unwrap_or_default();
    let (found, truncated) = sweep(ws, &before, guarded);
    if truncated {
        ui::warn(&format!(
            "{} has more than {MAX_ENTRIES} files: git directories beyond them were not \
             checked; run git there only with `-c core.hooksPath=/dev/null -c core.fsmonitor=`",
            ws.display()
        ));
    }
    for f in found {
        let main = !guarded && f.path == ws.join(".git");
        ui::warn(&format!(
            "quarantined what the agent wrote in git directory {}{}: {}. Git never reads \
             the `*{QUARANTINE}` copies; review them (they run as you if restored) and \
             delete them",
            f.path.display(),
            if main {
                " (workspace_git: rw lets the agent write it; quarantining is the safe default)"
            } else {
                ""
            },
            f.moved.join("; ")
        ));
    }
}

#[cfg(test)]
mod tests;
