//! `bottle start` (render, compose up the sidecars, wait until they are ready, start the
//! agent, run it attached, tear down)
//! and `bottle render`. The pieces that need no Docker (the state dir's content, which images
//! are missing, what counts as healthy, which command runs) are functions of their own.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use super::teardown::teardown;
use super::{accept_policy, timeout_from_env, Terminal, GIT_GATE_IMAGE, SIDECAR_IMAGES};
use crate::docker::{self, Compose};
use crate::error::{Error, Result};
use crate::manifest::{self, Loaded, ProcessEnv};
use crate::render;
use crate::signals::Interrupt;
use crate::state::{self, Metadata, StateDir};
use crate::ui;
use ready::NotReady;

pub mod notify;
#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod notify_tests;
pub(crate) mod ready;
#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod ready_tests;
#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests;

/// `state/<slug>/requests/`: supervise's one writable mount.
pub fn requests_dir(state: &StateDir) -> PathBuf {
    bottle_core::access_request::requests_dir(state.path())
}

/// `bottle render MANIFEST`: print the compose file; start nothing.
pub fn render_cmd(manifest_path: &Path) -> Result<()> {
    let l = manifest::load(manifest_path, &ProcessEnv)?;
    let opts = render::Options {
        slug: format!("{}-xxxxx", l.manifest.name),
        sidecar_user: state::sidecar_user(),
        tag: "latest".into(),
        agent_user: crate::agent_user::resolve(&l).map_err(Error::Usage)?,
    };
    let text = render::compose(&l, &opts, !l.manifest.git.is_empty()).map_err(Error::Bottle)?;
    print!("{text}");
    Ok(())
}

/// Options of `bottle start`.
pub struct StartOpts {
    /// The manifest.
    pub manifest: PathBuf,
    /// Leave the bottle running.
    pub detach: bool,
    /// Override the manifest's command.
    pub command: Vec<String>,
    /// Accept a policy that widened since the last accepted start.
    pub yes: bool,
    /// Accept over-broad `allow:` entries.
    pub force_allow: bool,
}

/// Write the whole state directory of a new bottle (it must not exist yet).
pub fn prepare_state(
    l: &Loaded,
    state: &StateDir,
    git_gate: bool,
    detach: bool,
    agent_user: Option<String>,
) -> Result<Metadata> {
    let dir = state.path();
    if dir.exists() {
        return Err(Error::Bottle(format!(
            "state dir {} already exists",
            dir.display()
        )));
    }
    let side = state::sidecar_user();
    if let Some(root) = dir.parent() {
        state::mkdir(root, 0o700, None)?;
    }
    state::mkdir(dir, 0o711, None)?;
    let meta = Metadata {
        name: l.manifest.name.clone(),
        slug: state.slug().to_string(),
        cwd: std::env::current_dir()
            .map(|p| p.display().to_string())
            .unwrap_or_default(),
        manifest: l.path.display().to_string(),
        started_at: state::now_rfc3339(),
        compose_project: state.project(),
        git_gate,
        detached: detach,
        guarded_git: match (&l.manifest.workspace, l.manifest.workspace_git) {
            (Some(ws), manifest::WorkspaceGit::RoHooks | manifest::WorkspaceGit::HideHooks) => {
                Some(ws.display().to_string())
            }
            _ => None,
        },
        workspace: l
            .manifest
            .workspace
            .as_ref()
            .map(|w| w.display().to_string()),
    };
    state.write_metadata(&meta)?;
    // Before the agent runs: what teardown compares the workspace's git dirs with.
    if let Some(ws) = &l.manifest.workspace {
        crate::git_sweep::record(ws, dir).map_err(|e| {
            Error::Bottle(format!("recording the git dirs of {}: {e}", ws.display()))
        })?;
    }

    // CA: key 0600, readable only by the sidecar user (pipelock).
    let ca = crate::ca::generate(state.slug())?;
    state::mkdir(&state.ca_dir(), 0o700, Some(side))?;
    state::write_file(&state.ca_cert(), ca.cert_pem.as_bytes(), 0o644, Some(side))?;
    state::write_file(&state.ca_key(), ca.key_pem.as_bytes(), 0o600, Some(side))?;
    // What the agent sees: the bottle CA and the bundle, never the key.
    state::mkdir(&state.agent_ca_dir(), 0o755, None)?;
    state::write_file(&state.agent_ca_cert(), ca.cert_pem.as_bytes(), 0o644, None)?;
    let bundle = crate::ca::bundle(&ca.cert_pem);
    state::write_file(&state.agent_bundle(), bundle.as_bytes(), 0o644, None)?;

    state::mkdir(&state.live_config_dir(), 0o755, None)?;
    let allowlist = render::allowlist(l);
    state::write_file(&state.allowlist(), allowlist.as_bytes(), 0o644, None)?;
    let routes = render::routes_yaml(l);
    state::write_file(&state.routes(), routes.as_bytes(), 0o644, None)?;
    state::mkdir(&state.status_dir(), 0o755, Some(side))?;
    state::mkdir(&state.audit_dir(), 0o755, Some(side))?;
    if git_gate {
        state::mkdir(&state.git_gate_data_dir(), 0o700, Some(side))?;
    }
    if l.manifest.supervise.enabled {
        // supervise runs as `side` (the operator's uid:gid unless we are root): its 0600
        // request files are then ours to read, and this dir is the only one it can write.
        state::mkdir(&requests_dir(state), 0o700, Some(side))?;
    }
    if let Some(ca) = &l.manifest.upstream_ca {
        let pem =
            std::fs::read(ca).map_err(|e| Error::io(format!("reading {}", ca.display()), e))?;
        state::mkdir(&state.upstream_ca_dir(), 0o755, None)?;
        state::write_file(&state.upstream_ca(), &pem, 0o644, None)?;
    }
    if l.manifest.workspace_git == manifest::WorkspaceGit::HideHooks {
        // Mounted read-only over the workspace's .git/hooks: empty, and not writable anyway.
        state::mkdir(&state.empty_hooks_dir(), 0o555, None)?;
    }
    let opts = render::Options {
        slug: state.slug().to_string(),
        sidecar_user: side,
        tag: "latest".into(),
        agent_user,
    };
    let text = render::compose(l, &opts, git_gate).map_err(Error::Bottle)?;
    state::write_file(&state.compose_file(), text.as_bytes(), 0o644, None)?;
    Ok(meta)
}

/// The secrets for `docker compose`, read from the launcher's environment: (slot, value).
fn secret_env(l: &Loaded) -> Result<Vec<(String, String)>> {
    let mut out = Vec::new();
    for (slot, var) in l.route_tokens.iter().chain(l.git_tokens.iter()) {
        let v = std::env::var(var).map_err(|_| {
            Error::Manifest(format!("host variable `{var}` (token_from) is not set"))
        })?;
        out.push((slot.clone(), v));
    }
    Ok(out)
}

/// The sidecar images (`name:latest`) a bottle needs that `exists` does not find.
pub(crate) fn missing_images(
    git_gate: bool,
    supervise: bool,
    exists: &dyn Fn(&str) -> bool,
) -> Vec<String> {
    let gate = git_gate.then_some(GIT_GATE_IMAGE);
    let sup = supervise.then_some(render::supervise::IMAGE);
    SIDECAR_IMAGES
        .iter()
        .copied()
        .chain(gate)
        .chain(sup)
        .map(|i| format!("{i}:latest"))
        .filter(|i| !exists(i))
        .collect()
}

/// What the agent runs: the command line's, else the manifest's, else `sh`.
pub(crate) fn agent_argv(cli: &[String], l: &Loaded) -> Vec<String> {
    if !cli.is_empty() {
        return cli.to_vec();
    }
    l.manifest
        .command
        .as_ref()
        .map(|c| c.argv())
        .unwrap_or_else(|| vec!["sh".into()])
}

/// `bottle start`. Returns the process exit code (the agent's, when it ran).
pub fn start(o: &StartOpts) -> Result<i32> {
    // The policy is judged before Docker is touched: a tampered manifest starts nothing.
    let l = manifest::load_opts(&o.manifest, &ProcessEnv, o.force_allow)?;
    accept_policy(&l, o.yes, &Terminal)?;
    let agent_user = crate::agent_user::resolve(&l).map_err(Error::Usage)?;
    crate::agent_user::warn_workspace_git(&l);
    let compose = Compose::detect()?;
    docker::check_daemon()?;
    crate::engine::warn_if_affected();
    let git_gate = !l.manifest.git.is_empty();
    let supervise = l.manifest.supervise.enabled;
    let missing = missing_images(git_gate, supervise, &docker::image_exists);
    if !missing.is_empty() {
        return Err(Error::Usage(format!(
            "missing image(s) {}: run `bottle build` first",
            missing.join(", ")
        )));
    }
    if !docker::image_exists(&l.manifest.image) {
        return Err(Error::Usage(format!(
            "agent image `{}` is not present locally (nothing is pulled): build or load it first",
            l.manifest.image
        )));
    }
    for n in &l.manifest.upstream_networks {
        if docker::docker(&["network", "inspect", "--format", "{{.Name}}", n]).is_err() {
            return Err(Error::Usage(format!(
                "upstream network `{n}` does not exist: create it first"
            )));
        }
    }
    let mut secrets = secret_env(&l)?;
    // Per-bottle pipelock -> egress key: only this bottle's pipelock can use egress. Passed in
    // compose's environment only (the compose file names it), never written by us.
    secrets.push((render::EGRESS_KEY_ENV.to_string(), render::new_egress_key()));
    let state = StateDir::of(&state::new_slug(&l.manifest.name))?;
    let slug = state.slug().to_string();
    let project = state.project();
    let intr = Interrupt::install();
    prepare_state(&l, &state, git_gate, o.detach, agent_user)?;
    let file = state.compose_file();
    ui::step(&format!(
        "starting bottle {} {}",
        ui::bold(&slug),
        ui::dim(&format!("({})", compose.describe()))
    ));

    let deadline = ready::Deadline {
        t0: Instant::now(),
        limit: timeout_from_env("BOTTLE_START_TIMEOUT", 180),
    };
    let t0 = deadline.t0;
    // Status files older than this are not this start's (see `ready`).
    let since = ready::fs_now(&state.status_dir());
    let sidecars = ready::sidecars(git_gate, supervise);
    let up = |args: &[&str]| -> std::result::Result<(), NotReady> {
        compose_up(&compose, &project, &file, &secrets, args, &deadline, &intr)
    };
    // Two phases: the sidecars (and the networks) first; the launcher waits until they are
    // really ready (fresh status files, then the images' own healthcheck), then starts the
    // agent alone. Compose's own wait on `service_healthy` would wait for Docker's first
    // healthcheck, one `interval` (2 s) after each sidecar started (issue 17).
    let mut sidecar_up = vec!["up", "-d", "--no-build"];
    sidecar_up.extend(sidecars.iter().copied());
    let mut t_compose = Duration::ZERO;
    let mut t_ready = Duration::ZERO;
    let up_result = up(&sidecar_up)
        .and_then(|()| {
            t_compose = t0.elapsed();
            let status = state.status_dir();
            ready::wait(&project, &status, &sidecars, since, &deadline, &intr)
        })
        .and_then(|()| {
            t_ready = t0.elapsed();
            // The rendered depends_on still says `service_healthy` (safe for a hand-run
            // `docker compose up`); --no-deps makes compose neither touch nor wait for the
            // sidecars, which the launcher has just found ready.
            let mut agent_up = vec!["up", "-d", "--no-build"];
            if compose.no_deps_skips_conditions() {
                agent_up.push("--no-deps");
            }
            agent_up.push("agent");
            up(&agent_up)
        })
        .and_then(|()| wait_agent(&project, &deadline, &intr));
    if let Err(e) = up_result {
        ui::error(&e.error.to_string());
        show_logs(&compose, &project, &file, &e.services);
        teardown(&compose, &state, true);
        return Ok(if matches!(e.error, Error::Interrupted) {
            130
        } else {
            1
        });
    }
    ui::ok(&format!(
        "sidecars ready in {:.1}s (compose up {:.1}s), agent started in {:.1}s",
        t_ready.as_secs_f64(),
        t_compose.as_secs_f64(),
        (t0.elapsed() - t_ready).as_secs_f64()
    ));

    if o.detach {
        ui::ok(&format!("bottle {} is running (detached)", ui::bold(&slug)));
        ui::note(&format!("state:  {}", state.path().display()));
        ui::note(&format!("shell:  bottle exec {slug} [-- CMD...]"));
        ui::note(&format!("allow:  bottle allow HOST --bottle {slug}"));
        ui::note(&format!("logs:   bottle logs {slug} -f"));
        ui::note(&format!("stop:   bottle stop {slug}"));
        if supervise {
            // No launcher stays to run a notify hook: the live view is `bottle watch`.
            ui::note(&format!(
                "asks:   bottle watch {slug}  (the agent's access requests)"
            ));
        }
        return Ok(0);
    }

    let watcher = match (&l.manifest.supervise.notify, supervise) {
        (Some(hook), true) => Some(notify::spawn(
            requests_dir(&state),
            slug.clone(),
            hook.clone(),
        )),
        _ => None,
    };
    let argv = agent_argv(&o.command, &l);
    ui::step(&format!("running the agent: {}", ui::dim(&argv.join(" "))));
    let mut exec = compose.cmd(&project, &file);
    exec.arg("exec");
    let tty = std::io::stdin().is_terminal() && std::io::stdout().is_terminal();
    if !tty {
        exec.arg("-T");
    }
    exec.arg("agent").args(&argv);
    exec.stdin(Stdio::inherit())
        .stdout(Stdio::inherit())
        .stderr(Stdio::inherit());
    let code = match exec.spawn() {
        Ok(mut c) => docker::wait_child(&mut c, None, &|| intr.is_set())?.unwrap_or(130),
        Err(e) => {
            ui::error(&format!("cannot run compose exec: {e}"));
            1
        }
    };
    if let Some(w) = watcher {
        w.stop();
    }
    if code == 0 {
        ui::ok("agent exited (0)");
    } else {
        ui::warn(&format!("agent exited with status {code}"));
    }
    teardown(&compose, &state, code != 0);
    Ok(code)
}

/// `compose up ARGS` with the secrets in its environment (every phase: a compose that
/// compared the sidecars' config without them would see a change), within the deadline.
fn compose_up(
    compose: &Compose,
    project: &str,
    file: &Path,
    secrets: &[(String, String)],
    args: &[&str],
    deadline: &ready::Deadline,
    intr: &Interrupt,
) -> std::result::Result<(), NotReady> {
    let fail = |e: Error| NotReady {
        error: e,
        services: Vec::new(),
    };
    let mut up = compose.cmd(project, file);
    up.args(args);
    for (k, v) in secrets {
        up.env(k, v);
    }
    up.stdin(Stdio::null())
        .stdout(Stdio::inherit())
        .stderr(Stdio::inherit());
    let mut child = up
        .spawn()
        .map_err(|e| fail(Error::Docker(format!("cannot run compose: {e}"))))?;
    let code = docker::wait_child(&mut child, Some(deadline.remaining()), &|| intr.is_set());
    match code.map_err(fail)? {
        _ if intr.is_set() => Err(fail(Error::Interrupted)),
        Some(0) => Ok(()),
        Some(c) => Err(fail(Error::Bottle(format!("compose up failed (exit {c})")))),
        None => Err(fail(
            deadline.exceeded("compose up did not finish", &args.join(" ")),
        )),
    }
}

/// After `up -d agent`: the agent's container runs (its command may not have exited).
fn wait_agent(
    project: &str,
    deadline: &ready::Deadline,
    intr: &Interrupt,
) -> std::result::Result<(), NotReady> {
    let fail = |e: Error| NotReady {
        error: e,
        services: vec!["agent".to_string()],
    };
    loop {
        if intr.is_set() {
            return Err(fail(Error::Interrupted));
        }
        let cs = docker::containers(Some(project)).map_err(fail)?;
        let agent = cs.iter().find(|c| c.service == "agent");
        match ready::running("agent", agent) {
            Ok(true) => return Ok(()),
            Ok(false) if deadline.passed() => {
                let state = agent.map_or("not created", |c| c.state.as_str());
                return Err(fail(deadline.exceeded("the agent is not running", state)));
            }
            Ok(false) => std::thread::sleep(Duration::from_millis(50)),
            Err(e) => return Err(fail(Error::Bottle(e))),
        }
    }
}

/// Print the last log lines of `services`; none named: of every sidecar that is not running
/// or not healthy.
fn show_logs(compose: &Compose, project: &str, file: &Path, services: &[String]) {
    let Ok(cs) = docker::containers(Some(project)) else {
        return;
    };
    for c in cs {
        let named = services.contains(&c.service);
        let bad = c.service != "agent"
            && (c.state != "running" || matches!(c.health(), Some("unhealthy") | Some("starting")));
        if !(named || services.is_empty() && bad) {
            continue;
        }
        ui::note(&format!(
            "--- last logs of {} ({}) ---",
            ui::bold(&c.service),
            c.status
        ));
        let mut cmd = compose.cmd(project, file);
        cmd.args(["logs", "--no-color", "--tail", "40", &c.service]);
        if let Ok(out) = docker::output(cmd) {
            eprint!("{}", String::from_utf8_lossy(&out.stdout));
            eprint!("{}", String::from_utf8_lossy(&out.stderr));
        }
    }
}
