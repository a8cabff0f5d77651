//! `bottle allow`: add an allowlist entry to a running bottle, SIGHUP the sidecars and confirm
//! the reload through their status files (putting the file back if either refuses it).

use std::path::Path;
use std::time::{Duration, Instant};

use super::{pick_bottle, timeout_from_env};
use crate::docker::{self, Compose};
use crate::error::{Error, Result};
use crate::manifest;
use crate::state;
use crate::ui;

/// A sidecar's status file.
#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
pub struct Status {
    /// Component name.
    #[serde(default)]
    pub component: String,
    /// Generation of the loaded config.
    #[serde(default)]
    pub generation: u64,
    /// sha256 of the loaded config.
    #[serde(default)]
    pub config_sha256: String,
    /// When the last load attempt happened.
    #[serde(default)]
    pub loaded_at: String,
    /// When the last load attempt happened (newer status files).
    #[serde(default)]
    pub attempted_at: Option<String>,
    /// Error of the last attempt, if it failed.
    #[serde(default)]
    pub last_error: Option<String>,
}

/// Read `status/<component>.json` of a bottle.
pub fn read_status(dir: &Path, component: &str) -> Option<Status> {
    let text =
        std::fs::read_to_string(dir.join("status").join(format!("{component}.json"))).ok()?;
    serde_json::from_str(&text).ok()
}

/// Signal the reloading sidecars and wait until each reports a new attempt.
/// Returns per component: Ok(generation) or Err(last_error / timeout).
pub fn reload_and_confirm(
    compose: &Compose,
    dir: &Path,
    project: &str,
    components: &[&str],
    timeout: Duration,
) -> Result<Vec<(String, std::result::Result<u64, String>)>> {
    let before: Vec<Option<Status>> = components.iter().map(|c| read_status(dir, c)).collect();
    let mut kill = compose.cmd(project, &dir.join("docker-compose.yml"));
    kill.args(["kill", "-s", "SIGHUP"]).args(components);
    let out = docker::output(kill)?;
    if !out.status.success() {
        return Err(Error::Docker(format!(
            "sending SIGHUP failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    let start = Instant::now();
    let mut results: Vec<Option<std::result::Result<u64, String>>> = vec![None; components.len()];
    while results.iter().any(Option::is_none) && start.elapsed() < timeout {
        for (i, c) in components.iter().enumerate() {
            if results[i].is_some() {
                continue;
            }
            let Some(now) = read_status(dir, c) else {
                continue;
            };
            let prev = before[i].as_ref();
            let advanced = prev.is_none_or(|p| now.generation > p.generation);
            let attempted = prev.is_none_or(|p| now != *p);
            if advanced && now.last_error.is_none() {
                results[i] = Some(Ok(now.generation));
            } else if attempted && now.last_error.is_some() {
                results[i] = Some(Err(now.last_error.clone().unwrap_or_default()));
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok(components
        .iter()
        .zip(results)
        .map(|(c, r)| {
            (
                c.to_string(),
                r.unwrap_or_else(|| {
                    Err(format!("no reload reported within {}s", timeout.as_secs()))
                }),
            )
        })
        .collect())
}

/// `bottle allow HOST [--bottle SLUG] [--force]`.
pub fn allow(entry: &str, slug: Option<&str>, force: bool) -> Result<()> {
    let entry = entry.trim();
    manifest::validate_allow_entry(entry).map_err(Error::Usage)?;
    if let Some(why) = manifest::too_broad(entry) {
        if !force {
            return Err(Error::Usage(format!(
                "refusing to allow {why}; pass --force if you really mean it"
            )));
        }
        ui::warn(&format!("allowing {why} (--force)"));
    }
    let compose = Compose::detect()?;
    let slug = pick_bottle(slug)?;
    let dir = state::dir(&slug);
    let project = state::project(&slug);
    let path = dir.join("live-config/allowlist");
    let old = std::fs::read_to_string(&path)
        .map_err(|e| Error::io(format!("reading {}", path.display()), e))?;
    if old
        .lines()
        .any(|l| l.split('#').next().unwrap_or("").trim() == entry)
    {
        ui::ok(&format!("{entry} is already in the allowlist of {slug}"));
        return Ok(());
    }
    let mut new = old.clone();
    if !new.is_empty() && !new.ends_with('\n') {
        new.push('\n');
    }
    new.push_str(&format!("{entry}\n"));
    bottle_core::Allowlist::parse(&new, &path)
        .map_err(|e| Error::Bottle(format!("new allowlist invalid: {e}")))?;
    state::replace_file(&path, new.as_bytes())?;
    ui::step(&format!("allowing {} in {}", ui::bold(entry), slug));
    let results = reload_and_confirm(
        &compose,
        &dir,
        &project,
        &["pipelock", "egress"],
        timeout_from_env("BOTTLE_RELOAD_TIMEOUT", 20),
    )?;
    let failed: Vec<String> = results
        .iter()
        .filter_map(|(c, r)| r.as_ref().err().map(|e| format!("{c}: {e}")))
        .collect();
    if failed.is_empty() {
        let gens: Vec<String> = results
            .iter()
            .map(|(c, r)| {
                format!(
                    "{c} generation {}",
                    r.as_ref().map(|g| g.to_string()).unwrap_or_default()
                )
            })
            .collect();
        ui::ok(&format!("{entry} allowed ({})", gens.join(", ")));
        Ok(())
    } else {
        // Put the file back so what is on disk is what runs; the sidecars kept the old config.
        let _ = state::replace_file(&path, old.as_bytes());
        let _ = reload_and_confirm(
            &compose,
            &dir,
            &project,
            &["pipelock", "egress"],
            Duration::from_secs(5),
        );
        Err(Error::Bottle(format!(
            "reload failed, the old allowlist is still active: {}",
            failed.join("; ")
        )))
    }
}
