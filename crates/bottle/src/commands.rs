//! The launcher's subcommands: start, allow, ls, logs, stop, cleanup, render.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::docker::{self, Compose};
use crate::error::{Error, Result};
use crate::manifest::{self, Loaded, ProcessEnv};
use crate::render;
use crate::signals::Interrupt;
use crate::state::{self, Metadata};
use crate::ui;

mod accept;
mod allow;

pub use accept::{accept_policy, check, Confirm, Terminal};
pub use allow::{allow, read_status, reload_and_confirm, Status};

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

/// Write the whole state directory of a new bottle. Returns (dir, metadata).
pub fn prepare_state(
    l: &Loaded,
    slug: &str,
    git_gate: bool,
    detach: bool,
    agent_user: Option<String>,
) -> Result<(PathBuf, Metadata)> {
    let dir = state::dir(slug);
    if dir.exists() {
        return Err(Error::Bottle(format!(
            "state dir {} already exists",
            dir.display()
        )));
    }
    let side = state::sidecar_user();
    state::mkdir(&state::state_root(), 0o700, None)?;
    state::mkdir(&dir, 0o711, None)?;
    let meta = Metadata {
        name: l.manifest.name.clone(),
        slug: slug.to_string(),
        cwd: std::env::current_dir()
            .map(|p| p.display().to_string())
            .unwrap_or_default(),
        manifest: l.path.display().to_string(),
        started_at: state::now_rfc3339(),
        compose_project: state::project(slug),
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
    let json = serde_json::to_vec_pretty(&meta).map_err(|e| Error::Bottle(e.to_string()))?;
    state::write_file(&dir.join("metadata.json"), &json, 0o600, None)?;
    // Before the agent runs: what teardown compares the workspace's git dirs with.
    if let Some(ws) = &l.manifest.workspace {
        crate::git_sweep::record(ws, &dir).map_err(|e| {
            Error::Bottle(format!("recording the git dirs of {}: {e}", ws.display()))
        })?;
    }

    // CA: key 0600, readable only by the sidecar user (pipelock).
    let ca = crate::ca::generate(slug)?;
    state::mkdir(&dir.join("ca"), 0o700, Some(side))?;
    state::write_file(
        &dir.join("ca/ca.crt"),
        ca.cert_pem.as_bytes(),
        0o644,
        Some(side),
    )?;
    state::write_file(
        &dir.join("ca/ca.key"),
        ca.key_pem.as_bytes(),
        0o600,
        Some(side),
    )?;
    // What the agent sees: the bottle CA and the bundle, never the key.
    state::mkdir(&dir.join("agent-ca"), 0o755, None)?;
    state::write_file(
        &dir.join("agent-ca/ca.crt"),
        ca.cert_pem.as_bytes(),
        0o644,
        None,
    )?;
    state::write_file(
        &dir.join("agent-ca/bundle.pem"),
        crate::ca::bundle(&ca.cert_pem).as_bytes(),
        0o644,
        None,
    )?;

    state::mkdir(&dir.join("live-config"), 0o755, None)?;
    state::write_file(
        &dir.join("live-config/allowlist"),
        render::allowlist(l).as_bytes(),
        0o644,
        None,
    )?;
    state::write_file(
        &dir.join("live-config/routes.yaml"),
        render::routes_yaml(l).as_bytes(),
        0o644,
        None,
    )?;
    state::mkdir(&dir.join("status"), 0o755, Some(side))?;
    state::mkdir(&dir.join("audit"), 0o755, Some(side))?;
    if git_gate {
        state::mkdir(&dir.join("git-gate-data"), 0o700, Some(side))?;
    }
    if let Some(ca) = &l.manifest.upstream_ca {
        let pem =
            std::fs::read(ca).map_err(|e| Error::io(format!("reading {}", ca.display()), e))?;
        state::mkdir(&dir.join("upstream-ca"), 0o755, None)?;
        state::write_file(&dir.join("upstream-ca/ca.pem"), &pem, 0o644, None)?;
    }
    if l.manifest.workspace_git == manifest::WorkspaceGit::HideHooks {
        // Mounted read-only over the workspace's .git/hooks: empty, and not writable anyway.
        let empty = dir.join(crate::agent_user::EMPTY_HOOKS);
        state::mkdir(&empty, 0o555, None)?;
    }
    let opts = render::Options {
        slug: slug.to_string(),
        sidecar_user: side,
        tag: "latest".into(),
        agent_user,
    };
    let text = render::compose(l, &opts, git_gate).map_err(Error::Bottle)?;
    state::write_file(
        &dir.join("docker-compose.yml"),
        text.as_bytes(),
        0o644,
        None,
    )?;
    Ok((dir, meta))
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
    let mut missing: Vec<String> = SIDECAR_IMAGES
        .iter()
        .map(|i| format!("{i}:latest"))
        .filter(|i| !docker::image_exists(i))
        .collect();
    if git_gate && !docker::image_exists(&format!("{GIT_GATE_IMAGE}:latest")) {
        missing.push(format!("{GIT_GATE_IMAGE}:latest"));
    }
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
    let slug = state::new_slug(&l.manifest.name);
    let project = state::project(&slug);
    let intr = Interrupt::install();
    let (dir, _meta) = prepare_state(&l, &slug, git_gate, o.detach, agent_user)?;
    let file = dir.join("docker-compose.yml");
    ui::step(&format!(
        "starting bottle {} {}",
        ui::bold(&slug),
        ui::dim(&format!("({})", compose.describe()))
    ));

    // up -d (v1 waits there for the healthy dependencies itself; v2 does not without --wait)
    let mut up = compose.cmd(&project, &file);
    up.args(["up", "-d", "--no-build"]);
    for (k, v) in &secrets {
        up.env(k, v);
    }
    up.stdin(Stdio::null())
        .stdout(Stdio::inherit())
        .stderr(Stdio::inherit());
    let start_timeout = timeout_from_env("BOTTLE_START_TIMEOUT", 180);
    let t0 = Instant::now();
    let mut child = up
        .spawn()
        .map_err(|e| Error::Docker(format!("cannot run compose: {e}")))?;
    let code = docker::wait_child(&mut child, Some(start_timeout), &|| intr.is_set())?;
    let up_result = match code {
        _ if intr.is_set() => Err(Error::Interrupted),
        Some(0) => wait_healthy(
            &project,
            git_gate,
            start_timeout.saturating_sub(t0.elapsed()),
            &intr,
        ),
        Some(c) => Err(Error::Bottle(format!("compose up failed (exit {c})"))),
        None if intr.is_set() => Err(Error::Interrupted),
        None => Err(Error::Bottle(format!(
            "compose up did not finish within {}s",
            start_timeout.as_secs()
        ))),
    };
    if let Err(e) = up_result {
        ui::error(&e.to_string());
        show_unhealthy_logs(&compose, &project, &file);
        teardown(&compose, &project, &dir, true);
        return Ok(if matches!(e, Error::Interrupted) {
            130
        } else {
            1
        });
    }
    ui::ok(&format!(
        "sidecars healthy in {:.1}s",
        t0.elapsed().as_secs_f64()
    ));

    if o.detach {
        ui::ok(&format!("bottle {} is running (detached)", ui::bold(&slug)));
        ui::note(&format!("state:  {}", dir.display()));
        ui::note(&format!("shell:  bottle exec {slug} [-- CMD...]"));
        ui::note(&format!("allow:  bottle allow HOST --bottle {slug}"));
        ui::note(&format!("logs:   bottle logs {slug} -f"));
        ui::note(&format!("stop:   bottle stop {slug}"));
        return Ok(0);
    }

    let argv = if !o.command.is_empty() {
        o.command.clone()
    } else {
        l.manifest
            .command
            .as_ref()
            .map(|c| c.argv())
            .unwrap_or_else(|| vec!["sh".into()])
    };
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
    if code == 0 {
        ui::ok("agent exited (0)");
    } else {
        ui::warn(&format!("agent exited with status {code}"));
    }
    teardown(&compose, &project, &dir, code != 0);
    Ok(code)
}

/// Poll the project's containers until every sidecar is healthy and the agent runs.
fn wait_healthy(project: &str, git_gate: bool, timeout: Duration, intr: &Interrupt) -> Result<()> {
    let mut want = vec!["egress", "pipelock", "agent"];
    if git_gate {
        want.push("git-gate");
    }
    let start = Instant::now();
    loop {
        if intr.is_set() {
            return Err(Error::Interrupted);
        }
        let cs = docker::containers(Some(project))?;
        let mut pending = Vec::new();
        for w in &want {
            match cs.iter().find(|c| c.service == *w) {
                None => pending.push(format!("{w}: not created")),
                Some(c) if c.state != "running" => {
                    if c.state == "exited" || c.state == "dead" {
                        return Err(Error::Bottle(format!("{w} stopped: {}", c.status)));
                    }
                    pending.push(format!("{w}: {}", c.state));
                }
                Some(c) => match c.health() {
                    Some("unhealthy") => return Err(Error::Bottle(format!("{w} is unhealthy"))),
                    Some("starting") => pending.push(format!("{w}: starting")),
                    _ => {}
                },
            }
        }
        if pending.is_empty() {
            return Ok(());
        }
        if start.elapsed() > timeout {
            return Err(Error::Bottle(format!(
                "not healthy within {}s ({}); raise BOTTLE_START_TIMEOUT if the machine is slow",
                timeout.as_secs(),
                pending.join(", ")
            )));
        }
        std::thread::sleep(Duration::from_millis(300));
    }
}

/// Print the last log lines of services that are not healthy.
fn show_unhealthy_logs(compose: &Compose, project: &str, file: &Path) {
    let Ok(cs) = docker::containers(Some(project)) else {
        return;
    };
    for c in cs {
        let bad =
            c.state != "running" || matches!(c.health(), Some("unhealthy") | Some("starting"));
        if !bad || c.service == "agent" {
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

/// Save logs to compose.log, `down --volumes`, keep or remove the state dir.
pub fn teardown(compose: &Compose, project: &str, dir: &Path, keep: bool) {
    ui::step("tearing down");
    let file = dir.join("docker-compose.yml");
    let mut logs = compose.cmd(project, &file);
    logs.args(["logs", "--no-color", "--timestamps"]);
    match docker::output(logs) {
        Ok(out) => {
            let mut data = out.stdout;
            data.extend_from_slice(&out.stderr);
            if let Err(e) = std::fs::write(dir.join("compose.log"), &data) {
                ui::warn(&format!("could not save compose.log: {e}"));
            }
        }
        Err(e) => ui::warn(&format!("could not collect logs: {e}")),
    }
    let mut down = compose.cmd(project, &file);
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
    sweep_workspace(dir);
    if keep || !ok {
        state::preserve(dir);
        ui::note(&format!(
            "state kept in {}",
            ui::bold(&dir.display().to_string())
        ));
        ui::note(&format!("logs: {}", dir.join("compose.log").display()));
    } else if let Err(e) = std::fs::remove_dir_all(dir) {
        ui::warn(&format!("could not remove {}: {e}", dir.display()));
    } else {
        ui::ok("removed the bottle and its state");
    }
}

/// After the agent is gone: what it planted in the workspace's git dirs is removed or
/// quarantined (`agent_user`, `git_sweep`), with a warning each.
fn sweep_workspace(dir: &Path) {
    let Ok(m) = state::read_metadata(dir) else {
        return;
    };
    if let Some(ws) = &m.guarded_git {
        crate::agent_user::sweep_git_indirections(Path::new(ws));
    }
    if let Some(ws) = &m.workspace {
        crate::git_sweep::sweep_and_warn(Path::new(ws), dir, m.guarded_git.is_some());
    }
}

/// Slugs of bottles whose project has running containers.
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
        if !state::valid_slug(s) {
            return Err(Error::Usage(format!(
                "`{s}` is not a bottle slug (see `bottle ls`)"
            )));
        }
        if !state::dir(s).is_dir() {
            return Err(Error::Usage(format!("no bottle `{s}` (see `bottle ls`)")));
        }
        return Ok(s.to_string());
    }
    let running: Vec<String> = running_projects()?
        .into_iter()
        .filter_map(|p| p.strip_prefix("bottle-").map(str::to_string))
        .filter(|s| state::dir(s).is_dir())
        .collect();
    match running.len() {
        1 => Ok(running[0].clone()),
        0 => Err(Error::Usage(
            "no bottle is running; name one with --bottle SLUG".into(),
        )),
        _ => Err(Error::Usage(format!(
            "several bottles run ({}); name one with --bottle SLUG",
            running.join(", ")
        ))),
    }
}

/// `bottle ls`.
pub fn ls() -> Result<()> {
    let running = running_projects().unwrap_or_default();
    let all = state::list();
    if all.is_empty() {
        ui::note("no bottles");
        return Ok(());
    }
    println!("{:<24} {:<10} {:<21} CWD", "SLUG", "STATE", "STARTED");
    for (dir, meta) in all {
        let slug = dir
            .file_name()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_default();
        let st = if running.contains(&state::project(&slug)) {
            ui::green("running")
        } else if state::is_preserved(&dir) {
            "kept".to_string()
        } else {
            "stopped".to_string()
        };
        let (started, cwd) = meta.map(|m| (m.started_at, m.cwd)).unwrap_or_default();
        let pad = 10usize.saturating_sub(console_len(&st));
        println!("{slug:<24} {st}{} {started:<21} {cwd}", " ".repeat(pad));
    }
    Ok(())
}

fn console_len(s: &str) -> usize {
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
    if !state::valid_slug(slug) {
        return Err(Error::Usage(format!("`{slug}` is not a bottle slug")));
    }
    let dir = state::dir(slug);
    let project = state::project(slug);
    let live = !docker::containers(Some(&project))?.is_empty();
    if live && dir.join("docker-compose.yml").is_file() {
        let compose = Compose::detect()?;
        let mut c = compose.cmd(&project, &dir.join("docker-compose.yml"));
        c.args(["logs", "--no-color", "--timestamps"]);
        if follow {
            c.arg("--follow");
        }
        let st = c
            .status()
            .map_err(|e| Error::Docker(format!("cannot run compose logs: {e}")))?;
        return Ok(st.code().unwrap_or(1));
    }
    let saved = dir.join("compose.log");
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
    if !state::valid_slug(slug) {
        return Err(Error::Usage(format!("`{slug}` is not a bottle slug")));
    }
    let dir = state::dir(slug);
    let project = state::project(slug);
    if !dir.join("docker-compose.yml").is_file() || docker::containers(Some(&project))?.is_empty() {
        return Err(Error::Usage(format!(
            "bottle `{slug}` is not running (see `bottle ls`)"
        )));
    }
    let compose = Compose::detect()?;
    let mut c = compose.cmd(&project, &dir.join("docker-compose.yml"));
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
    if !state::valid_slug(slug) {
        return Err(Error::Usage(format!("`{slug}` is not a bottle slug")));
    }
    let dir = state::dir(slug);
    if !dir.join("docker-compose.yml").is_file() {
        return Err(Error::Usage(format!(
            "no bottle `{slug}` (see `bottle ls`; `bottle cleanup` removes strays)"
        )));
    }
    let compose = Compose::detect()?;
    teardown(&compose, &state::project(slug), &dir, keep);
    Ok(())
}

/// `bottle cleanup [--yes]`.
pub fn cleanup(yes: bool) -> Result<()> {
    docker::check_daemon()?;
    let compose = Compose::detect().ok();
    let mut projects: Vec<String> = docker::containers(None)?
        .into_iter()
        .map(|c| c.project)
        .filter(|p| p.starts_with("bottle-"))
        .collect();
    projects.extend(docker::networks("bottle-")?.into_iter().map(|(_, p)| p));
    projects.extend(docker::volumes("bottle-")?.into_iter().map(|(_, p)| p));
    projects.sort();
    projects.dedup();
    let dirs: Vec<PathBuf> = state::list()
        .into_iter()
        .map(|(d, _)| d)
        .filter(|d| !state::is_preserved(d))
        .collect();
    let kept: Vec<PathBuf> = state::list()
        .into_iter()
        .map(|(d, _)| d)
        .filter(|d| state::is_preserved(d))
        .collect();
    if projects.is_empty() && dirs.is_empty() {
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
    for d in &dirs {
        ui::note(&format!("state dir {}", d.display()));
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
        let slug = p.trim_start_matches("bottle-");
        let file = state::dir(slug).join("docker-compose.yml");
        if let (Some(c), true) = (&compose, state::valid_slug(slug) && file.is_file()) {
            let mut down = c.cmd(p, &file);
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
    for d in &dirs {
        // A bottle whose launcher died never ran its teardown: sweep its workspace's git
        // dirs now, while the snapshot is still there.
        sweep_workspace(d);
        if let Err(e) = std::fs::remove_dir_all(d) {
            ui::warn(&format!("could not remove {}: {e}", d.display()));
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
        dirs.len()
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
