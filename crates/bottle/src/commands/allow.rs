//! `bottle allow`: add an allowlist entry to a running bottle, SIGHUP the sidecars and confirm
//! the reload through their status files (putting the file back if either refuses it).

use std::time::{Duration, Instant};

use bottle_core::status::Status;

use super::{pick_bottle, timeout_from_env};
use crate::docker::{self, Compose};
use crate::error::{Error, Result};
use crate::manifest;
use crate::state::{self, Sidecar, StateDir};
use crate::ui;

/// The sidecars that load the allowlist.
const ALLOWLIST_READERS: &[Sidecar] = &[Sidecar::Pipelock, Sidecar::Egress];

/// Signal the reloading sidecars and wait until each reports a new attempt.
/// Returns per component: Ok(generation) or Err(last_error / timeout).
pub fn reload_and_confirm(
    compose: &Compose,
    dir: &StateDir,
    components: &[Sidecar],
    timeout: Duration,
) -> Result<Vec<(String, std::result::Result<u64, String>)>> {
    let before: Vec<Option<Status>> = components.iter().map(|c| dir.read_status(*c)).collect();
    let mut kill = compose.cmd(&dir.project(), &dir.compose_file());
    kill.args(["kill", "-s", "SIGHUP"])
        .args(components.iter().map(|c| c.service()));
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
            if results[i].is_none() {
                results[i] = reload_outcome(before[i].as_ref(), dir.read_status(*c).as_ref());
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok(components
        .iter()
        .zip(results)
        .map(|(c, r)| {
            (
                c.service().to_string(),
                r.unwrap_or_else(|| {
                    Err(format!("no reload reported within {}s", timeout.as_secs()))
                }),
            )
        })
        .collect())
}

/// Whether a sidecar answered the SIGHUP, judged from its status before and now: a higher
/// generation without error is a good reload; a changed status with an error is a refused
/// one; anything else (no file, no change, an old error) is no answer yet.
pub(crate) fn reload_outcome(
    before: Option<&Status>,
    now: Option<&Status>,
) -> Option<std::result::Result<u64, String>> {
    let now = now?;
    let advanced = before.is_none_or(|p| now.generation > p.generation);
    let attempted = before.is_none_or(|p| now != p);
    match &now.last_error {
        None if advanced => Some(Ok(now.generation)),
        Some(e) if attempted => Some(Err(e.clone())),
        _ => None,
    }
}

/// `bottle allow HOST [--bottle SLUG] [--force]`.
pub fn allow(entry: &str, slug: Option<&str>, force: bool) -> Result<()> {
    let entry = entry.trim();
    manifest::validate_allow_entry(entry).map_err(Error::Usage)?;
    if let Some(why) = manifest::too_broad(entry) {
        if !force {
            return Err(Error::Usage(bottle_core::allow_entry::breadth_refusal(
                &why,
            )));
        }
        ui::warn(&format!("allowing {why} (--force)"));
    }
    let compose = Compose::detect()?;
    let slug = pick_bottle(slug)?;
    let dir = StateDir::of(&slug)?;
    let path = dir.allowlist();
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
        ALLOWLIST_READERS,
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
        let _ = reload_and_confirm(&compose, &dir, ALLOWLIST_READERS, Duration::from_secs(5));
        Err(Error::Bottle(format!(
            "reload failed, the old allowlist is still active: {}",
            failed.join("; ")
        )))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn status(generation: u64, attempted: &str, err: Option<&str>) -> Status {
        Status {
            component: "egress".into(),
            generation,
            config_sha256: format!("sha-{generation}"),
            loaded_at: Some("t0".into()),
            attempted_at: Some(attempted.into()),
            last_error: err.map(str::to_string),
        }
    }

    /// `bottle allow` reports success only on a new generation; an old error, an unchanged
    /// file or a missing one is no answer (it keeps waiting, then fails closed on timeout).
    #[test]
    fn reload_outcome_table() {
        let g1 = status(1, "t1", None);
        type Outcome = Option<std::result::Result<u64, String>>;
        let cases: [(Option<Status>, Option<Status>, Outcome); 7] = [
            (Some(g1.clone()), None, None),
            (Some(g1.clone()), Some(g1.clone()), None),
            (Some(g1.clone()), Some(status(2, "t2", None)), Some(Ok(2))),
            (
                Some(g1.clone()),
                Some(status(1, "t2", Some("allowlist:4: bad"))),
                Some(Err("allowlist:4: bad".into())),
            ),
            // The same failed attempt seen again is not a new answer.
            (
                Some(status(1, "t2", Some("old"))),
                Some(status(1, "t2", Some("old"))),
                None,
            ),
            // No file before: the first good status counts.
            (None, Some(g1.clone()), Some(Ok(1))),
            // A rewritten file with the same generation and no error is not a reload.
            (Some(g1), Some(status(1, "t9", None)), None),
        ];
        for (before, now, want) in cases {
            assert_eq!(
                reload_outcome(before.as_ref(), now.as_ref()),
                want,
                "{before:?} -> {now:?}"
            );
        }
    }
}
