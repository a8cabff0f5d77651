//! Per-bottle state directories under `$BOTTLE_HOME/state/<slug>/` ([`StateDir`] owns their
//! layout), slugs, and the file helpers that set modes and owners.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use rand::Rng;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

mod dir;
#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests;

pub use dir::{Sidecar, StateDir, EMPTY_HOOKS};

/// `metadata.json` of a bottle.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Metadata {
    /// Manifest name.
    pub name: String,
    /// The slug (`<name>-<5 base36>`).
    pub slug: String,
    /// Where `bottle start` ran.
    pub cwd: String,
    /// The manifest path.
    pub manifest: String,
    /// RFC 3339 start time.
    pub started_at: String,
    /// Compose project name (`bottle-<slug>`).
    pub compose_project: String,
    /// Whether git-gate is part of this bottle.
    #[serde(default)]
    pub git_gate: bool,
    /// Whether it was started with `--detach`.
    #[serde(default)]
    pub detached: bool,
    /// The workspace, when `workspace_git` protects its `.git` (checked again at teardown).
    #[serde(default)]
    pub guarded_git: Option<String>,
    /// The workspace (any `workspace_git`): its git dirs are swept at teardown.
    #[serde(default)]
    pub workspace: Option<String>,
}

/// `$BOTTLE_HOME`, default `~/.bottle`.
pub fn home() -> PathBuf {
    if let Some(h) = std::env::var_os("BOTTLE_HOME") {
        return PathBuf::from(h);
    }
    let base = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/tmp"));
    base.join(".bottle")
}

/// `$BOTTLE_HOME/state`.
pub fn state_root() -> PathBuf {
    home().join("state")
}

/// Compose project of a slug.
pub fn project(slug: &str) -> String {
    format!("bottle-{slug}")
}

/// A fresh slug: `<name>-<5 random base36 chars>`.
pub fn new_slug(name: &str) -> String {
    const ALPHABET: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut rng = rand::rng();
    let suffix: String = (0..5)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect();
    format!("{name}-{suffix}")
}

/// True when `s` looks like a slug we made (safe to use in paths and project names).
pub fn valid_slug(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !s.starts_with('-')
}

/// The effective uid of this process (owner of `/proc/self`).
pub fn euid() -> u32 {
    std::fs::metadata("/proc/self")
        .map(|m| m.uid())
        .unwrap_or(u32::MAX)
}

/// The effective gid of this process.
pub fn egid() -> u32 {
    std::fs::metadata("/proc/self")
        .map(|m| m.gid())
        .unwrap_or(u32::MAX)
}

/// The uid:gid the sidecars run as: the image's 65532 when we are root (we chown what they
/// need), else the invoking user, so bind mounts stay readable without widening permissions.
pub fn sidecar_user() -> (u32, u32) {
    if euid() == 0 {
        (65532, 65532)
    } else {
        (euid(), egid())
    }
}

/// Create a directory with a mode (and owner when root).
pub fn mkdir(p: &Path, mode: u32, owner: Option<(u32, u32)>) -> Result<()> {
    std::fs::create_dir_all(p).map_err(|e| Error::io(format!("creating {}", p.display()), e))?;
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode))
        .map_err(|e| Error::io(format!("chmod {}", p.display()), e))?;
    chown_if_root(p, owner)
}

/// Write a file with a mode (and owner when root). Written in place (new file).
pub fn write_file(p: &Path, contents: &[u8], mode: u32, owner: Option<(u32, u32)>) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(p)
        .map_err(|e| Error::io(format!("writing {}", p.display()), e))?;
    f.write_all(contents)
        .map_err(|e| Error::io(format!("writing {}", p.display()), e))?;
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode))
        .map_err(|e| Error::io(format!("chmod {}", p.display()), e))?;
    chown_if_root(p, owner)
}

/// Replace a file atomically (temp file in the same dir + rename), keeping mode and owner.
pub fn replace_file(p: &Path, contents: &[u8]) -> Result<()> {
    let meta =
        std::fs::metadata(p).map_err(|e| Error::io(format!("reading {}", p.display()), e))?;
    let dir = p.parent().unwrap_or(Path::new("."));
    let name = p
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    let owner = if euid() == 0 {
        Some((meta.uid(), meta.gid()))
    } else {
        None
    };
    write_file(&tmp, contents, meta.mode() & 0o7777, owner)?;
    std::fs::rename(&tmp, p).map_err(|e| Error::io(format!("renaming onto {}", p.display()), e))
}

fn chown_if_root(p: &Path, owner: Option<(u32, u32)>) -> Result<()> {
    if let Some((u, g)) = owner {
        if euid() == 0 {
            std::os::unix::fs::chown(p, Some(u), Some(g))
                .map_err(|e| Error::io(format!("chown {}", p.display()), e))?;
        }
    }
    Ok(())
}

/// RFC 3339 now.
pub fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| "unknown".into())
}
