//! The launcher's subcommands, one file per concern: `start.rs` (start, render),
//! `allow.rs` (allow a host in a running bottle), `manage.rs` (ls, logs, exec, stop, cleanup),
//! `teardown.rs` (the end of a bottle), `accept.rs` (the policy confirmation, check),
//! `requests.rs` (requests, approve, deny), `watch.rs` (the live view), `why.rs` (which rule
//! decides a URL), `log.rs` (the audit as readable lines).

use std::time::Duration;

use crate::docker;
use crate::error::{Error, Result};
use crate::state::StateDir;

mod accept;
mod allow;
pub mod log;
mod manage;
pub mod requests;
mod start;
mod teardown;
pub mod watch;
pub mod why;

pub use accept::{accept_policy, check, Confirm, Terminal};
pub use allow::{allow, reload_and_confirm};
pub use manage::{cleanup, exec, logs, ls, stop};
pub use start::{prepare_state, render_cmd, start, StartOpts};
pub use teardown::teardown;

/// Sidecar images a bottle needs (without git-gate).
pub const SIDECAR_IMAGES: &[&str] = &["bottle-pipelock", "bottle-egress"];
/// The git-gate image.
pub const GIT_GATE_IMAGE: &str = "bottle-git-gate";

pub(crate) fn timeout_from_env(var: &str, default_secs: u64) -> Duration {
    Duration::from_secs(
        std::env::var(var)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(default_secs),
    )
}

/// Compose projects (`bottle-<slug>`) with running containers.
fn running_projects() -> Result<Vec<String>> {
    let mut ps: Vec<String> = docker::containers(None)?
        .into_iter()
        .filter(|c| c.project.starts_with("bottle-") && c.state == "running")
        .map(|c| c.project)
        .collect();
    ps.sort();
    ps.dedup();
    Ok(ps)
}

/// Resolve `--bottle SLUG`, or the only running bottle.
pub(crate) fn pick_bottle(slug: Option<&str>) -> Result<String> {
    if let Some(s) = slug {
        if !StateDir::of(s)?.exists() {
            return Err(Error::Usage(format!("no bottle `{s}` (see `bottle ls`)")));
        }
        return Ok(s.to_string());
    }
    let running = running_projects()?;
    only_running(&running, &|s| {
        StateDir::of(s).is_ok_and(|d| d.path().is_dir())
    })
}

/// The one bottle among running `projects` that has a state dir (`has_state`).
fn only_running(projects: &[String], has_state: &dyn Fn(&str) -> bool) -> Result<String> {
    let running: Vec<&str> = projects
        .iter()
        .filter_map(|p| manage::slug_of_project(p))
        .filter(|s| has_state(s))
        .collect();
    match running.as_slice() {
        [one] => Ok(one.to_string()),
        [] => Err(Error::Usage(
            "no bottle is running; name one with --bottle SLUG".into(),
        )),
        _ => Err(Error::Usage(format!(
            "several bottles run ({}); name one with --bottle SLUG",
            running.join(", ")
        ))),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn only_running_picks_the_single_bottle_with_state() {
        let ps = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let all = |_: &str| true;
        assert_eq!(only_running(&ps(&["bottle-a-1"]), &all).unwrap(), "a-1");
        // A bottle named `bottle`: the prefix comes off once.
        assert_eq!(
            only_running(&ps(&["bottle-bottle-x1"]), &all).unwrap(),
            "bottle-x1"
        );
        let e = only_running(&ps(&["bottle-a-1", "bottle-b-2"]), &all).unwrap_err();
        assert!(e.to_string().contains("a-1, b-2"), "{e}");
        let e = only_running(&ps(&[]), &all).unwrap_err();
        assert!(e.to_string().contains("no bottle is running"), "{e}");
        // Another tool's project, or one without a state dir here, is never picked.
        let only_b = |s: &str| s == "b-2";
        assert_eq!(
            only_running(&ps(&["bottle-a-1", "bottle-b-2", "other"]), &only_b).unwrap(),
            "b-2"
        );
    }

    #[test]
    fn pick_bottle_refuses_a_hostile_slug_before_touching_a_path() {
        for s in [
            "../x",
            "a/../../etc",
            "/etc",
            "-rf",
            "A",
            ".",
            "..",
            "a b",
            "",
        ] {
            let e = pick_bottle(Some(s)).unwrap_err();
            assert!(
                matches!(e, Error::Usage(ref m) if m.contains("not a bottle slug")),
                "{s:?}: {e}"
            );
        }
    }
}
