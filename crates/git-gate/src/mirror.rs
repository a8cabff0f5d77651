//! The bare mirror of one repository under `--data-dir`: created on first use, refreshed
//! from upstream (rate-limited, one writer at a time), and the repository that the real
//! `git upload-pack` / `git receive-pack` serve.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use std::sync::Arc;

use tokio::sync::{Mutex, OwnedMutexGuard};

use crate::git::{run, tail_lines, GitRunner};
use crate::upstream_access::{Upstream, UpstreamSettings};
use crate::GateError;

/// How long a fetch from upstream may take.
pub const FETCH_TIMEOUT: Duration = Duration::from_secs(300);

#[derive(Debug, Default)]
pub struct MirrorState {
    last_refresh: Option<Instant>,
    /// Set when the mirror may disagree with upstream (e.g. after a failed push).
    pub stale: bool,
    upstream_url: Option<String>,
}

#[derive(Debug)]
pub struct Mirror {
    pub name: String,
    pub dir: PathBuf,
    state: Arc<Mutex<MirrorState>>,
}

/// Holding this guard = being the one writer of the mirror.
pub type MirrorGuard = OwnedMutexGuard<MirrorState>;

impl Mirror {
    pub fn new(name: &str, dir: PathBuf) -> Mirror {
        Mirror {
            name: name.to_string(),
            dir,
            state: Arc::new(Mutex::new(MirrorState::default())),
        }
    }

    /// Waits for exclusive access (bounded).
    pub async fn lock(&self, wait: Duration) -> Result<MirrorGuard, GateError> {
        tokio::time::timeout(wait, self.state.clone().lock_owned())
            .await
            .map_err(|_| GateError::Busy)
    }

    pub fn is_initialised(&self) -> bool {
        self.dir.join("HEAD").is_file() && self.dir.join("objects").is_dir()
    }

    async fn init(&self, runner: &GitRunner) -> Result<(), GateError> {
        if self.is_initialised() {
            return Ok(());
        }
        std::fs::create_dir_all(&self.dir).map_err(|e| GateError::Io(e.to_string()))?;
        let mut cmd = runner.command(None);
        cmd.arg("init").arg("--bare").arg("--quiet").arg(&self.dir);
        let out = run(cmd, None, Duration::from_secs(60)).await?;
        if !out.success {
            return Err(GateError::Git(format!(
                "git init failed: {}",
                out.stderr_str().trim()
            )));
        }
        Ok(())
    }

    /// Brings the mirror up to date with upstream unless it was refreshed less than
    /// `min_interval` ago. Caller holds the guard.
    pub async fn refresh(
        &self,
        guard: &mut MirrorGuard,
        runner: &GitRunner,
        upstream: &Upstream,
        settings: &UpstreamSettings,
        min_interval: Duration,
    ) -> Result<(), GateError> {
        self.init(runner).await?;
        let same_upstream = guard.upstream_url.as_deref() == Some(upstream.url.as_str());
        if let Some(t) = guard.last_refresh {
            if same_upstream && !guard.stale && t.elapsed() < min_interval {
                return Ok(());
            }
        }
        let mut cmd = runner.command(Some(&self.dir));
        upstream.apply(&mut cmd, settings);
        cmd.args([
            "fetch",
            "--prune",
            "--no-tags",
            "--quiet",
            "--no-write-fetch-head",
            "--no-recurse-submodules",
            "--no-auto-gc",
        ])
        .arg(&upstream.url)
        .args(["+refs/heads/*:refs/heads/*", "+refs/tags/*:refs/tags/*"]);
        let out = run(cmd, None, FETCH_TIMEOUT).await?;
        if !out.success {
            let detail = upstream.guard_message(&tail_lines(&out.stderr, 2).join(" / "));
            return Err(GateError::Upstream(format!(
                "cannot fetch from upstream: {detail}"
            )));
        }
        if !same_upstream || !self.head_target_exists(runner).await {
            self.set_head(runner, upstream, settings).await;
        }
        guard.last_refresh = Some(Instant::now());
        guard.stale = false;
        guard.upstream_url = Some(upstream.url.clone());
        Ok(())
    }

    async fn head_target_exists(&self, runner: &GitRunner) -> bool {
        let mut cmd = runner.command(Some(&self.dir));
        cmd.args(["rev-parse", "--verify", "--quiet", "HEAD"]);
        matches!(run(cmd, None, Duration::from_secs(30)).await, Ok(o) if o.success)
    }

    /// Points the mirror's HEAD where upstream's HEAD points (for clones to check out the
    /// right branch). Best effort.
    async fn set_head(&self, runner: &GitRunner, upstream: &Upstream, settings: &UpstreamSettings) {
        let mut cmd = runner.command(Some(&self.dir));
        upstream.apply(&mut cmd, settings);
        cmd.args(["ls-remote", "--symref"])
            .arg(&upstream.url)
            .arg("HEAD");
        let mut target = None;
        if let Ok(out) = run(cmd, None, FETCH_TIMEOUT).await {
            for line in out.stdout_str().lines() {
                if let Some(rest) = line.strip_prefix("ref: ") {
                    if let Some((r, _)) = rest.split_once('\t') {
                        if r.starts_with("refs/heads/")
                            && crate::refname::validate(r.as_bytes()).is_ok()
                        {
                            target = Some(r.to_string());
                        }
                    }
                }
            }
        }
        if target.is_none() {
            for candidate in ["refs/heads/main", "refs/heads/master"] {
                if self.dir.join(candidate).exists() || self.ref_exists(runner, candidate).await {
                    target = Some(candidate.to_string());
                    break;
                }
            }
        }
        if let Some(t) = target {
            let mut cmd = runner.command(Some(&self.dir));
            cmd.args(["symbolic-ref", "HEAD", &t]);
            if let Err(e) = run(cmd, None, Duration::from_secs(30)).await {
                tracing::warn!(repo = %self.name, error = %e, "cannot set mirror HEAD");
            }
        }
    }

    async fn ref_exists(&self, runner: &GitRunner, name: &str) -> bool {
        let mut cmd = runner.command(Some(&self.dir));
        cmd.args(["rev-parse", "--verify", "--quiet", name]);
        matches!(run(cmd, None, Duration::from_secs(30)).await, Ok(o) if o.success)
    }

    pub fn path(&self) -> &Path {
        &self.dir
    }
}

/// Marks a mirror stale (next access refreshes regardless of the rate limit).
pub fn mark_stale(guard: &mut MirrorGuard) {
    guard.stale = true;
}
