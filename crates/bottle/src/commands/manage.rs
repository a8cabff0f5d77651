//! Bottles already started: `ls`, `logs`, `exec`, `stop`, `cleanup`.

use std::io::{IsTerminal, Write};

use super::running_projects;
use super::teardown::{sweep_workspace, teardown};
use crate::docker::{self, Compose};
use crate::error::{Error, Result};
use crate::state::{self, StateDir};
use crate::ui;

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests;

/// `bottle ls`.
pub fn ls() -> Result<()> {
    let running = running_projects().unwrap_or_default();
    let all = StateDir::list();
    if all.is_empty() {
        ui::note("no bottles");
        return Ok(());
    }
    println!("{:<24} {:<10} {:<21} CWD", "SLUG", "STATE", "STARTED");
    for (dir, meta) in all {
        let st = match ls_state(running.contains(&dir.project()), dir.is_preserved()) {
            "running" => ui::green("running"),
            other => other.to_string(),
        };
        let (started, cwd) = meta.map(|m| (m.started_at, m.cwd)).unwrap_or_default();
        let pad = 10usize.saturating_sub(console_len(&st));
        println!(
            "{:<24} {st}{} {started:<21} {cwd}",
            dir.slug(),
            " ".repeat(pad)
        );
    }
    Ok(())
}

/// The STATE column of `bottle ls`.
pub(crate) fn ls_state(running: bool, preserved: bool) -> &'static str {
    if running {
        "running"
    } else if preserved {
        "kept"
    } else {
        "stopped"
    }
}

/// Printed width of `s`, without ANSI colour sequences.
pub(crate) fn console_len(s: &str) -> usize {
    let mut n = 0;
    let mut esc = false;
    for c in s.chars() {
        if c == '\x1b' {
            esc = true;
        } else if esc {
            if c == 'm' {
                esc = false;
            }
        } else {
            n += 1;
        }
    }
    n
}

/// `bottle logs SLUG [-f]`.
pub fn logs(slug: &str, follow: bool) -> Result<i32> {
    let dir = StateDir::of(slug)?;
    let project = dir.project();
    let live = !docker::containers(Some(&project))?.is_empty();
    if live && dir.has_compose_file() {
        let compose = Compose::detect()?;
        let mut c = compose.cmd(&project, &dir.compose_file());
        c.args(["logs", "--no-color", "--timestamps"]);
        if follow {
            c.arg("--follow");
        }
        let st = c
            .status()
            .map_err(|e| Error::Docker(format!("cannot run compose logs: {e}")))?;
        return Ok(st.code().unwrap_or(1));
    }
    let saved = dir.compose_log();
    if saved.is_file() {
        let data = std::fs::read(&saved)
            .map_err(|e| Error::io(format!("reading {}", saved.display()), e))?;
        std::io::stdout()
            .write_all(&data)
            .map_err(|e| Error::io("writing stdout", e))?;
        return Ok(0);
    }
    Err(Error::Usage(format!(
        "bottle `{slug}` is not running and has no saved compose.log"
    )))
}

/// `bottle exec SLUG [-- CMD...]`: run a command in the agent of a running bottle.
pub fn exec(slug: &str, command: &[String]) -> Result<i32> {
    let dir = StateDir::of(slug)?;
    let project = dir.project();
    if !dir.has_compose_file() || docker::containers(Some(&project))?.is_empty() {
        return Err(Error::Usage(format!(
            "bottle `{slug}` is not running (see `bottle ls`)"
        )));
    }
    let compose = Compose::detect()?;
    let mut c = compose.cmd(&project, &dir.compose_file());
    c.arg("exec");
    if !(std::io::stdin().is_terminal() && std::io::stdout().is_terminal()) {
        c.arg("-T");
    }
    c.arg("agent");
    if command.is_empty() {
        c.arg("sh");
    } else {
        c.args(command);
    }
    let st = c
        .status()
        .map_err(|e| Error::Docker(format!("cannot run compose exec: {e}")))?;
    Ok(st.code().unwrap_or(1))
}

/// `bottle stop SLUG [--keep]`.
pub fn stop(slug: &str, keep: bool) -> Result<()> {
    let dir = StateDir::of(slug)?;
    if !dir.has_compose_file() {
        return Err(Error::Usage(format!(
            "no bottle `{slug}` (see `bottle ls`; `bottle cleanup` removes strays)"
        )));
    }
    let compose = Compose::detect()?;
    teardown(&compose, &dir, keep);
    Ok(())
}

/// The slug of a compose project `bottle-<slug>` (the prefix once: a bottle named `bottle`
/// has projects `bottle-bottle-xxxxx`).
pub(crate) fn slug_of_project(project: &str) -> Option<&str> {
    project.strip_prefix("bottle-")
}

/// What `bottle cleanup` does.
#[derive(Debug, Default)]
pub(crate) struct CleanupPlan {
    /// Compose projects to take down (sorted, once each).
    pub projects: Vec<String>,
    /// State dirs to remove (not marked to be kept).
    pub remove: Vec<StateDir>,
    /// State dirs of failed bottles, left for the operator.
    pub kept: Vec<StateDir>,
}

/// Plan a cleanup from the projects Docker has (containers, networks, volumes; only
/// `bottle-*` count) and the state dirs on disk.
pub(crate) fn cleanup_plan(projects: Vec<String>, dirs: Vec<StateDir>) -> CleanupPlan {
    let mut projects: Vec<String> = projects
        .into_iter()
        .filter(|p| p.starts_with("bottle-"))
        .collect();
    projects.sort();
    projects.dedup();
    let (kept, remove) = dirs.into_iter().partition(StateDir::is_preserved);
    CleanupPlan {
        projects,
        remove,
        kept,
    }
}

/// `bottle cleanup [--yes]`.
pub fn cleanup(yes: bool) -> Result<()> {
    docker::check_daemon()?;
    let compose = Compose::detect().ok();
    let mut found: Vec<String> = docker::containers(None)?
        .into_iter()
        .map(|c| c.project)
        .collect();
    found.extend(docker::networks("bottle-")?.into_iter().map(|(_, p)| p));
    found.extend(docker::volumes("bottle-")?.into_iter().map(|(_, p)| p));
    let dirs = StateDir::list().into_iter().map(|(d, _)| d).collect();
    let CleanupPlan {
        projects,
        remove,
        kept,
    } = cleanup_plan(found, dirs);
    if projects.is_empty() && remove.is_empty() {
        ui::ok("nothing to clean up");
        if !kept.is_empty() {
            ui::note(&format!(
                "{} kept state dir(s) of failed bottles remain under {}",
                kept.len(),
                state::state_root().display()
            ));
        }
        return Ok(());
    }
    ui::step("bottle cleanup will remove:");
    for p in &projects {
        ui::note(&format!(
            "compose project {p} (containers, networks, volumes)"
        ));
    }
    for d in &remove {
        ui::note(&format!("state dir {}", d.path().display()));
    }
    if !yes {
        if !std::io::stdin().is_terminal() {
            return Err(Error::Usage(
                "refusing to clean up without confirmation: pass --yes".into(),
            ));
        }
        eprint!("proceed? [y/N] ");
        let _ = std::io::stderr().flush();
        let mut line = String::new();
        let _ = std::io::stdin().read_line(&mut line);
        if !matches!(line.trim(), "y" | "Y" | "yes") {
            ui::note("nothing removed");
            return Ok(());
        }
    }
    let mut failures = 0;
    for p in &projects {
        let state = slug_of_project(p).and_then(|s| StateDir::of(s).ok());
        if let (Some(c), Some(s)) = (&compose, state.filter(StateDir::has_compose_file)) {
            let mut down = c.cmd(p, &s.compose_file());
            down.args(["down", "--volumes", "--remove-orphans", "--timeout", "3"]);
            let _ = docker::output(down);
        }
        // Whatever compose did not remove (or could not, without a file): by label.
        let filter = format!("label=com.docker.compose.project={p}");
        if let Ok(ids) = docker::docker(&["ps", "-aq", "--filter", &filter]) {
            let ids: Vec<&str> = ids.split_whitespace().collect();
            if !ids.is_empty() {
                let mut args = vec!["rm", "-f", "-v"];
                args.extend(ids);
                if docker::docker(&args).is_err() {
                    failures += 1;
                }
            }
        }
        for (n, np) in docker::networks(p).unwrap_or_default() {
            if &np == p && docker::docker(&["network", "rm", &n]).is_err() {
                failures += 1;
            }
        }
        for (v, vp) in docker::volumes(p).unwrap_or_default() {
            if &vp == p && docker::docker(&["volume", "rm", "-f", &v]).is_err() {
                failures += 1;
            }
        }
    }
    for d in &remove {
        // A bottle whose launcher died never ran its teardown: sweep its workspace's git
        // dirs now, while the snapshot is still there.
        sweep_workspace(d);
        if let Err(e) = std::fs::remove_dir_all(d.path()) {
            ui::warn(&format!("could not remove {}: {e}", d.path().display()));
            failures += 1;
        }
    }
    if failures > 0 {
        return Err(Error::Docker(format!(
            "cleanup left {failures} item(s) behind; see the messages above"
        )));
    }
    ui::ok(&format!(
        "removed {} project(s) and {} state dir(s)",
        projects.len(),
        remove.len()
    ));
    if !kept.is_empty() {
        ui::note(&format!(
            "kept {} state dir(s) of failed bottles (delete them by hand when done): {}",
            kept.len(),
            state::state_root().display()
        ));
    }
    Ok(())
}
