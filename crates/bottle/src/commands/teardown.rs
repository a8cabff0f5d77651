//! The end of a bottle: save its logs, `compose down`, sweep what the agent planted in the
//! workspace's git dirs, then keep or remove the state dir. Used by `start` (agent exited or
//! the start failed), `stop` and, for the sweep, `cleanup`.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use crate::docker::{self, Compose};
use crate::state::StateDir;
use crate::ui;

/// Save logs to compose.log, `down --volumes`, keep or remove the state dir.
pub fn teardown(compose: &Compose, state: &StateDir, keep: bool) {
    ui::step("tearing down");
    let project = state.project();
    let file = state.compose_file();
    let mut logs = compose.cmd(&project, &file);
    logs.args(["logs", "--no-color", "--timestamps"]);
    match docker::output(logs) {
        Ok(out) => {
            let mut data = out.stdout;
            data.extend_from_slice(&out.stderr);
            if let Err(e) = std::fs::write(state.compose_log(), &data) {
                ui::warn(&format!("could not save compose.log: {e}"));
            }
        }
        Err(e) => ui::warn(&format!("could not collect logs: {e}")),
    }
    let mut down = compose.cmd(&project, &file);
    down.args(["down", "--volumes", "--remove-orphans", "--timeout", "5"]);
    down.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let ok = match down.spawn() {
        Ok(mut c) => {
            let r = docker::wait_child(&mut c, Some(Duration::from_secs(120)), &|| false);
            matches!(r, Ok(Some(0)))
        }
        Err(_) => false,
    };
    if !ok {
        ui::warn(&format!(
            "compose down failed for {project}; run `bottle cleanup`"
        ));
    }
    sweep_workspace(state);
    let dir = state.path();
    if keep || !ok {
        state.preserve();
        ui::note(&format!(
            "state kept in {}",
            ui::bold(&dir.display().to_string())
        ));
        ui::note(&format!("logs: {}", state.compose_log().display()));
    } else if let Err(e) = std::fs::remove_dir_all(dir) {
        ui::warn(&format!("could not remove {}: {e}", dir.display()));
    } else {
        ui::ok("removed the bottle and its state");
    }
}

/// After the agent is gone: what it planted in the workspace's git dirs is removed or
/// quarantined (`agent_user`, `git_sweep`), with a warning each.
pub(super) fn sweep_workspace(state: &StateDir) {
    let Ok(m) = state.read_metadata() else {
        return;
    };
    if let Some(ws) = &m.guarded_git {
        crate::agent_user::sweep_git_indirections(Path::new(ws));
    }
    if let Some(ws) = &m.workspace {
        crate::git_sweep::sweep_and_warn(Path::new(ws), state.path(), m.guarded_git.is_some());
    }
}
