//! The `git:` section of routes.yaml turned into git-gate's own snapshot.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use bottle_core::routes::{GitRepo, RefAction, RoutesFile};
use bottle_core::ConfigError;
use sha2::{Digest, Sha256};

use crate::policy::{Action, RepoPolicy, Rule};
use crate::upstream_access::{Upstream, UpstreamSettings};

/// One repository, as served.
#[derive(Debug)]
pub struct RepoConfig {
    pub name: String,
    pub upstream: Upstream,
    pub policy: RepoPolicy,
}

/// One immutable config snapshot. A request takes one and keeps it to the end.
#[derive(Debug, Default)]
pub struct GateConfig {
    pub repos: HashMap<String, Arc<RepoConfig>>,
}

impl GateConfig {
    pub fn repo(&self, name: &str) -> Option<Arc<RepoConfig>> {
        self.repos.get(name).cloned()
    }
}

fn action(a: RefAction) -> Action {
    match a {
        RefAction::Create => Action::Create,
        RefAction::Update => Action::Update,
        RefAction::Force => Action::Force,
        RefAction::Delete => Action::Delete,
    }
}

pub fn repo_policy(repo: &GitRepo) -> Result<RepoPolicy, String> {
    let mut rules = Vec::new();
    for (i, r) in repo.rules.iter().enumerate() {
        rules.push(Rule::new(
            i,
            &r.r#ref,
            r.allow.iter().copied().map(action).collect(),
        )?);
    }
    RepoPolicy::new(
        rules,
        &repo.protected,
        repo.push_options,
        repo.max_pack_bytes,
        repo.max_refs,
        repo.max_object_bytes,
    )
}

/// Builds the snapshot from parsed routes.
pub fn build(
    routes: &RoutesFile,
    settings: &UpstreamSettings,
    file: &Path,
) -> Result<GateConfig, ConfigError> {
    let mut repos = HashMap::new();
    for repo in &routes.git {
        let err = |message: String| ConfigError::Invalid {
            file: file.to_path_buf(),
            line: Some(repo.line),
            message,
        };
        let policy = repo_policy(repo).map_err(err)?;
        let upstream = Upstream::from_repo(repo, settings).map_err(err)?;
        repos.insert(
            repo.name.clone(),
            Arc::new(RepoConfig {
                name: repo.name.clone(),
                upstream,
                policy,
            }),
        );
    }
    Ok(GateConfig { repos })
}

/// Loads `<dir>/routes.yaml` (a missing file = no repositories). Returns the snapshot and
/// the sha256 of the file.
pub fn load(dir: &Path, settings: &UpstreamSettings) -> Result<(GateConfig, String), ConfigError> {
    let file = dir.join("routes.yaml");
    let text = match std::fs::read_to_string(&file) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(ConfigError::Io { file, source: e }),
    };
    let routes = if text.trim().is_empty() {
        RoutesFile::empty()
    } else {
        RoutesFile::parse(&text, &file)?
    };
    let cfg = build(&routes, settings, &file)?;
    let sha = hex::encode(Sha256::digest(text.as_bytes()));
    Ok((cfg, sha))
}
