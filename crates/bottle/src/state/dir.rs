//! [`StateDir`]: one bottle's state directory, `$BOTTLE_HOME/state/<slug>/`, and every file
//! and directory name in it. The e2e tests, the compose fragment's `./…` bind mounts and
//! operators' scripts rely on these names: change them here or nowhere.

use std::path::{Path, PathBuf};

use bottle_core::status::Status;

use super::{valid_slug, Metadata};
use crate::error::{Error, Result};

/// `metadata.json`: name, slug, cwd, manifest, start time, compose project.
pub const METADATA: &str = "metadata.json";
/// `docker-compose.yml`: exactly what ran.
pub const COMPOSE_FILE: &str = "docker-compose.yml";
/// `compose.log`: every service's logs, saved at teardown.
pub const COMPOSE_LOG: &str = "compose.log";
/// Marker of a state dir kept after a failure (`bottle cleanup` leaves it).
pub const PRESERVE_MARKER: &str = ".preserve";
/// The bottle CA with its key, for pipelock only (mounted `./ca`).
pub const CA_DIR: &str = "ca";
/// What the agent gets: the bottle CA and the bundle, never the key (mounted `./agent-ca`).
pub const AGENT_CA_DIR: &str = "agent-ca";
/// The sidecars' config, reloaded on SIGHUP (mounted `./live-config`).
pub const LIVE_CONFIG_DIR: &str = "live-config";
/// The sidecars' status files (mounted `./status`).
pub const STATUS_DIR: &str = "status";
/// The sidecars' audit logs (mounted `./audit`).
pub const AUDIT_DIR: &str = "audit";
/// git-gate's repositories (mounted `./git-gate-data`).
pub const GIT_GATE_DATA_DIR: &str = "git-gate-data";
/// The manifest's `upstream_ca`, copied (mounted `./upstream-ca`).
pub const UPSTREAM_CA_DIR: &str = "upstream-ca";
/// Where `hide-hooks` takes its empty read-only hooks directory from (mounted `./empty-hooks`
/// over the workspace's `.git/hooks`).
pub const EMPTY_HOOKS: &str = "empty-hooks";

/// A sidecar whose status file the launcher reads and which reloads on SIGHUP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sidecar {
    /// The agent's proxy.
    Pipelock,
    /// The credential-injecting router.
    Egress,
    /// The git remote.
    GitGate,
}

impl Sidecar {
    /// The compose service name, also the status file's stem (`status/<service>.json`).
    pub fn service(self) -> &'static str {
        match self {
            Sidecar::Pipelock => "pipelock",
            Sidecar::Egress => "egress",
            Sidecar::GitGate => "git-gate",
        }
    }
}

/// One bottle's state directory. Built only from a valid slug (`[a-z0-9-]`, not starting
/// with `-`), so no path it hands out leaves the state root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateDir {
    dir: PathBuf,
    slug: String,
}

impl StateDir {
    /// `root/<slug>`; an invalid slug is a usage error (it never becomes a path).
    pub fn new(root: &Path, slug: &str) -> Result<StateDir> {
        if !valid_slug(slug) {
            return Err(Error::Usage(format!(
                "`{slug}` is not a bottle slug (see `bottle ls`)"
            )));
        }
        Ok(StateDir {
            dir: root.join(slug),
            slug: slug.to_string(),
        })
    }

    /// The state dir of `slug` under `$BOTTLE_HOME/state`.
    pub fn of(slug: &str) -> Result<StateDir> {
        StateDir::new(&super::state_root(), slug)
    }

    /// Every state dir under `root`, sorted by slug, with its metadata when readable. Only
    /// real directories named like a slug count: a symlink or a stray name was not made by
    /// `bottle start`, and `bottle cleanup` must not follow or remove it.
    pub fn list_in(root: &Path) -> Vec<(StateDir, Option<Metadata>)> {
        let mut out = Vec::new();
        for e in std::fs::read_dir(root).into_iter().flatten().flatten() {
            let is_dir = e.file_type().is_ok_and(|t| t.is_dir());
            let name = e.file_name();
            let Some(slug) = name.to_str() else { continue };
            if let (true, Ok(s)) = (is_dir, StateDir::new(root, slug)) {
                let meta = s.read_metadata().ok();
                out.push((s, meta));
            }
        }
        out.sort_by(|a, b| a.0.slug.cmp(&b.0.slug));
        out
    }

    /// Every state dir under `$BOTTLE_HOME/state`.
    pub fn list() -> Vec<(StateDir, Option<Metadata>)> {
        StateDir::list_in(&super::state_root())
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// The slug.
    pub fn slug(&self) -> &str {
        &self.slug
    }

    /// The compose project, `bottle-<slug>`.
    pub fn project(&self) -> String {
        super::project(&self.slug)
    }

    /// `metadata.json`.
    pub fn metadata_file(&self) -> PathBuf {
        self.dir.join(METADATA)
    }

    /// `docker-compose.yml`.
    pub fn compose_file(&self) -> PathBuf {
        self.dir.join(COMPOSE_FILE)
    }

    /// `compose.log`.
    pub fn compose_log(&self) -> PathBuf {
        self.dir.join(COMPOSE_LOG)
    }

    /// `ca/`.
    pub fn ca_dir(&self) -> PathBuf {
        self.dir.join(CA_DIR)
    }

    /// `ca/ca.crt`.
    pub fn ca_cert(&self) -> PathBuf {
        self.ca_dir().join("ca.crt")
    }

    /// `ca/ca.key` (0600, the sidecar user's).
    pub fn ca_key(&self) -> PathBuf {
        self.ca_dir().join("ca.key")
    }

    /// `agent-ca/`.
    pub fn agent_ca_dir(&self) -> PathBuf {
        self.dir.join(AGENT_CA_DIR)
    }

    /// `agent-ca/ca.crt`.
    pub fn agent_ca_cert(&self) -> PathBuf {
        self.agent_ca_dir().join("ca.crt")
    }

    /// `agent-ca/bundle.pem`: web roots and the bottle CA.
    pub fn agent_bundle(&self) -> PathBuf {
        self.agent_ca_dir().join("bundle.pem")
    }

    /// `live-config/`.
    pub fn live_config_dir(&self) -> PathBuf {
        self.dir.join(LIVE_CONFIG_DIR)
    }

    /// `live-config/allowlist`.
    pub fn allowlist(&self) -> PathBuf {
        self.live_config_dir().join("allowlist")
    }

    /// `live-config/routes.yaml`.
    pub fn routes(&self) -> PathBuf {
        self.live_config_dir().join("routes.yaml")
    }

    /// `status/`.
    pub fn status_dir(&self) -> PathBuf {
        self.dir.join(STATUS_DIR)
    }

    /// `status/<service>.json`, as the compose fragment's `--status-file` names it.
    pub fn status_file(&self, sidecar: Sidecar) -> PathBuf {
        self.status_dir()
            .join(format!("{}.json", sidecar.service()))
    }

    /// A sidecar's status, when its file exists and parses.
    pub fn read_status(&self, sidecar: Sidecar) -> Option<Status> {
        Status::read(&self.status_file(sidecar)).ok()
    }

    /// `audit/`.
    pub fn audit_dir(&self) -> PathBuf {
        self.dir.join(AUDIT_DIR)
    }

    /// `git-gate-data/`.
    pub fn git_gate_data_dir(&self) -> PathBuf {
        self.dir.join(GIT_GATE_DATA_DIR)
    }

    /// `upstream-ca/`.
    pub fn upstream_ca_dir(&self) -> PathBuf {
        self.dir.join(UPSTREAM_CA_DIR)
    }

    /// `upstream-ca/ca.pem`.
    pub fn upstream_ca(&self) -> PathBuf {
        self.upstream_ca_dir().join("ca.pem")
    }

    /// `empty-hooks/`: mounted read-only over the workspace's `.git/hooks` (`hide-hooks`).
    pub fn empty_hooks_dir(&self) -> PathBuf {
        self.dir.join(EMPTY_HOOKS)
    }

    /// Read `metadata.json`.
    pub fn read_metadata(&self) -> Result<Metadata> {
        let p = self.metadata_file();
        let text = std::fs::read_to_string(&p)
            .map_err(|e| Error::io(format!("reading {}", p.display()), e))?;
        serde_json::from_str(&text)
            .map_err(|e| Error::Bottle(format!("{}: invalid metadata: {e}", p.display())))
    }

    /// Write `metadata.json` (0600).
    pub fn write_metadata(&self, meta: &Metadata) -> Result<()> {
        let json = serde_json::to_vec_pretty(meta).map_err(|e| Error::Bottle(e.to_string()))?;
        super::write_file(&self.metadata_file(), &json, 0o600, None)
    }

    /// Mark the dir to be kept (the agent failed, or compose down did).
    pub fn preserve(&self) {
        let _ = std::fs::write(self.dir.join(PRESERVE_MARKER), b"");
    }

    /// Whether the dir is marked to be kept.
    pub fn is_preserved(&self) -> bool {
        self.dir.join(PRESERVE_MARKER).exists()
    }

    /// Whether the dir exists as a real directory (a symlink in its place does not count,
    /// as in [`StateDir::list_in`]).
    pub fn exists(&self) -> bool {
        std::fs::symlink_metadata(&self.dir).is_ok_and(|m| m.is_dir())
    }

    /// Whether a bottle was rendered here (its compose file exists).
    pub fn has_compose_file(&self) -> bool {
        self.compose_file().is_file()
    }
}
