//! Forwarding an accepted push upstream, with credentials only git-gate holds:
//! `git push --porcelain [--atomic]` from the quarantine with a lease on every ref, after
//! checking that no pushed ref is a symbolic ref upstream. What the upstream says is
//! guarded (`Upstream::guard_message`) before it can reach the agent.

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;
use std::time::Instant;

use crate::git::{run, tail_lines};
use crate::in_flight::PushCtx;
use crate::request::{Command, CommandKind};
use crate::state::State;
use crate::GateError;

/// How long the upstream push may take.
pub const UPSTREAM_PUSH_TIMEOUT: Duration = Duration::from_secs(600);

/// Which of the pushed refs are symbolic refs upstream: `(ref, target)`.
pub(crate) async fn upstream_symrefs(
    gate: &State,
    ctx: &PushCtx,
) -> Result<Vec<(String, String)>, GateError> {
    let mut cmd = gate.runner.command(Some(&ctx.mirror.dir));
    ctx.repo.upstream.apply(&mut cmd, &gate.settings);
    cmd.args(["ls-remote", "--symref"])
        .arg(&ctx.repo.upstream.url);
    let names: Vec<String> = ctx.commands.iter().map(Command::name_str).collect();
    cmd.args(&names);
    let out = run(cmd, None, crate::mirror::FETCH_TIMEOUT).await?;
    // ls-remote exits 0 with no output when nothing matches; 2 with --exit-code only.
    if !out.success {
        let detail = tail_lines(&out.stderr, 2).join(" / ");
        return Err(GateError::Upstream(
            ctx.repo.upstream.guard_message(&detail),
        ));
    }
    let mut found = Vec::new();
    for line in out.stdout_str().lines() {
        if let Some(rest) = line.strip_prefix("ref: ") {
            if let Some((target, name)) = rest.split_once('\t') {
                if names.iter().any(|n| n == name) {
                    found.push((name.to_string(), target.to_string()));
                }
            }
        }
    }
    Ok(found)
}

/// `git push --atomic --porcelain --force-with-lease=<ref>:<old>... <upstream> <new>:<ref>...`
/// from the quarantine. Err = (reason per ref, upstream's last stderr lines).
pub(crate) async fn push_upstream(
    gate: &State,
    ctx: &PushCtx,
    quarantine: Option<&Path>,
) -> Result<(), (HashMap<String, String>, Vec<String>)> {
    let mirror = &ctx.mirror.dir;
    // No GIT_QUARANTINE_PATH: a local (file://) receiving side must not think it is
    // inside a quarantine. GIT_OBJECT_DIRECTORY / alternates are not passed to local
    // transports by git itself.
    let mut cmd = gate.runner.quarantine_command(mirror, quarantine);
    ctx.repo.upstream.apply(&mut cmd, &gate.settings);
    cmd.args([
        "push",
        "--porcelain",
        "--no-verify",
        "--no-recurse-submodules",
    ]);
    if ctx.commands.len() > 1 {
        cmd.arg("--atomic");
    }
    for o in &ctx.push_options {
        cmd.arg(format!("--push-option={o}"));
    }
    let mut refspecs = Vec::new();
    for c in &ctx.commands {
        let name = c.name_str();
        match c.kind() {
            CommandKind::Create => cmd.arg(format!("--force-with-lease={name}:")),
            _ => cmd.arg(format!("--force-with-lease={name}:{}", c.old)),
        };
        refspecs.push(match c.kind() {
            CommandKind::Delete => format!(":{name}"),
            _ => format!("{}:{name}", c.new),
        });
    }
    cmd.arg(&ctx.repo.upstream.url).args(&refspecs);
    let started = Instant::now();
    let res = run(cmd, None, UPSTREAM_PUSH_TIMEOUT).await;
    let out = match res {
        Ok(o) => o,
        Err(e) => {
            gate.metrics.upstream_push(false);
            return Err((HashMap::new(), vec![format!("push failed: {e}")]));
        }
    };
    tracing::info!(repo = %ctx.repo.name, ok = out.success, ms = started.elapsed().as_millis() as u64, "upstream push");
    gate.metrics.upstream_push(out.success);
    if out.success {
        return Ok(());
    }
    let mut per_ref = HashMap::new();
    for line in out.stdout_str().lines() {
        let parts: Vec<&str> = line.split('\t').collect();
        if parts.len() >= 3 && parts[0] == "!" {
            if let Some((_, dst)) = parts[1].split_once(':') {
                let said = ctx.repo.upstream.guard_message(parts[2].trim());
                per_ref.insert(dst.to_string(), format!("upstream: {said}"));
            }
        }
    }
    let lines = tail_lines(&out.stderr, 8)
        .into_iter()
        .filter(|l| !l.starts_with("To ") && l != "Done")
        .map(|l| ctx.repo.upstream.guard_message(&l))
        .collect();
    Err((per_ref, lines))
}
