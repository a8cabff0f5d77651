//! The judge: the exact checks on a push once git has received it into quarantine, under
//! the config snapshot the request started with. git's parse must equal ours; each ref's
//! old value, objects and class are checked (`policy::ref_update`) and decided by the rules;
//! every object the push brought is size-checked and secret-scanned; symbolic refs upstream
//! are refused; then the push is forwarded upstream (`forward_push.rs`). Any error refuses.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::forward_push;
use crate::git::run;
use crate::hook_protocol::HookRequest;
use crate::in_flight::{PushCtx, PushVerdict, RefOutcome};
use crate::policy::{
    check_findings, check_object_sizes, check_ref_facts, check_upstream_symrefs, classify,
    needs_ancestry, RefFacts, Verdict, MAX_FINDINGS_SHOWN,
};
use crate::request::ZERO_OID;
use crate::scan;
use crate::state::State;
use crate::GateError;

/// The deep checks for one push, then the upstream push. Never panics; any error refuses.
pub async fn judge(gate: &State, ctx: &PushCtx, req: &HookRequest) -> PushVerdict {
    let mut v = PushVerdict {
        outcomes: ctx
            .commands
            .iter()
            .map(|c| RefOutcome {
                name: c.name_str(),
                old: c.old.clone(),
                new: c.new.clone(),
                class: None,
                rule: String::new(),
                ok: false,
                reason: String::new(),
            })
            .collect(),
        ..PushVerdict::default()
    };
    // git's own parse must agree with ours, command for command.
    let ours: Vec<(String, String, String)> = ctx
        .commands
        .iter()
        .map(|c| (c.old.clone(), c.new.clone(), c.name_str()))
        .collect();
    if ours != req.updates || req.push_options != ctx.push_options {
        return refused(v, "protocol", "command list mismatch".into());
    }
    // No quarantine when the push brought no objects (delete-only pushes).
    let quarantine = (!req.object_dir.is_empty()).then(|| PathBuf::from(&req.object_dir));
    let quarantine = quarantine.as_deref();
    let mirror = ctx.mirror.dir.clone();
    if let Err(e) = check_refs(gate, ctx, quarantine, &mut v.outcomes).await {
        return refused(v, "error", format!("cannot check refs: {e}"));
    }
    if v.outcomes.iter().any(|o| !o.ok) {
        for o in v.outcomes.iter().filter(|o| !o.ok) {
            v.messages
                .push(format!("git-gate: {}: {}", o.name, o.reason));
            if gate.shown_ref(&o.name) == o.name {
                v.messages.extend(crate::ask::ask_lines(
                    gate.supervise_url.as_ref(),
                    &ctx.repo.name,
                    o,
                ));
            }
        }
        let not_pushed = Verdict::not_pushed();
        for o in v.outcomes.iter_mut().filter(|o| o.ok) {
            o.ok = false;
            o.rule = not_pushed.rule.clone();
            o.reason = not_pushed.reason.clone();
        }
        return v;
    }
    // Sizes and secrets over every object the push brought.
    let objects = match quarantine {
        None => Ok(Vec::new()),
        Some(q) => scan::new_objects(&gate.runner, &mirror, q).await,
    };
    let objects = match objects {
        Ok(o) => o,
        Err(e) => return refused(v, "error", format!("cannot list pushed objects: {e}")),
    };
    if let Err(too_big) = check_object_sizes(&objects, ctx.repo.policy.max_object_bytes) {
        return refused(v, &too_big.rule, too_big.reason);
    }
    let findings = match quarantine {
        None => Ok(Vec::new()),
        Some(q) => {
            scan::scan_objects(&gate.runner, &mirror, q, &objects, gate.scanner.as_ref()).await
        }
    };
    match findings {
        Ok(findings) => {
            if let Err(secret) = check_findings(&findings) {
                gate.metrics.secrets(findings.len() as u64);
                for f in findings.iter().take(MAX_FINDINGS_SHOWN) {
                    v.messages.push(format!("git-gate: {}", f.reason()));
                }
                return refused(v, &secret.rule, secret.reason);
            }
        }
        Err(e) => return refused(v, "error", format!("secret scan failed: {e}")),
    }
    match forward_push::upstream_symrefs(gate, ctx).await {
        Ok(aliased) => {
            if let Err(per_ref) = check_upstream_symrefs(&aliased) {
                for (name, verdict) in &per_ref {
                    if let Some(o) = v.outcomes.iter_mut().find(|o| &o.name == name) {
                        o.rule = verdict.rule.clone();
                        o.reason = verdict.reason.clone();
                    }
                }
                // Never empty; a refusal anyway if it were (fail closed).
                let first = per_ref.into_iter().next().map_or_else(
                    || Verdict::deny("symref", "symbolic ref upstream"),
                    |(_, verdict)| verdict,
                );
                return refused(v, &first.rule, first.reason);
            }
        }
        Err(e) => {
            v.upstream_failed = true;
            return refused(v, "upstream", format!("upstream unavailable: {e}"));
        }
    }
    // The push may have been abandoned (timeout) while we were checking.
    if gate.pushes.get(&req.push_id).is_none() {
        return refused(v, "error", "push abandoned".into());
    }
    // Everything passed: push upstream, atomically, with a lease on every ref.
    match forward_push::push_upstream(gate, ctx, quarantine).await {
        Ok(()) => {
            v.accept = true;
            v.upstream_updated = true;
        }
        Err((per_ref, lines)) => {
            v.upstream_failed = true;
            for l in lines {
                v.messages.push(format!("git-gate: upstream: {l}"));
            }
            for o in v.outcomes.iter_mut() {
                o.ok = false;
                o.rule = "upstream".into();
                o.reason = per_ref
                    .get(&o.name)
                    .cloned()
                    .unwrap_or_else(|| "upstream refused the push".into());
            }
            v.messages
                .push("git-gate: push refused by upstream; nothing was changed".into());
        }
    }
    v
}

/// Current tips, lying/stale old values, exact classification and the policy per ref.
async fn check_refs(
    gate: &State,
    ctx: &PushCtx,
    quarantine: Option<&Path>,
    outcomes: &mut [RefOutcome],
) -> Result<(), GateError> {
    let mirror = &ctx.mirror.dir;
    let mut cmd = gate.runner.command(Some(mirror));
    cmd.args(["for-each-ref", "--format=%(objectname) %(refname)"]);
    let out = run(cmd, None, Duration::from_secs(60)).await?;
    if !out.success {
        return Err(GateError::Git(out.stderr_str()));
    }
    let current: HashMap<String, String> = out
        .stdout_str()
        .lines()
        .filter_map(|l| {
            l.split_once(' ')
                .map(|(o, r)| (r.to_string(), o.to_string()))
        })
        .collect();
    // Object types of everything named.
    let mut oids: Vec<String> = Vec::new();
    for c in &ctx.commands {
        for o in [&c.old, &c.new] {
            if o != ZERO_OID && !oids.contains(o) {
                oids.push(o.clone());
            }
        }
    }
    let mut types: HashMap<String, String> = HashMap::new();
    if !oids.is_empty() {
        let mut cmd = gate.runner.quarantine_command(mirror, quarantine);
        cmd.args(["cat-file", "--batch-check=%(objectname) %(objecttype)"]);
        let input: String = oids.iter().map(|o| format!("{o}\n")).collect();
        let out = run(cmd, Some(input.as_bytes()), Duration::from_secs(60)).await?;
        for l in out.stdout_str().lines() {
            if let Some((o, t)) = l.split_once(' ') {
                types.insert(o.to_string(), t.to_string());
            }
        }
    }
    let policy = &ctx.repo.policy;
    for (c, o) in ctx.commands.iter().zip(outcomes.iter_mut()) {
        let facts = RefFacts {
            current: current.get(&c.name_str()).map(String::as_str),
            old_type: types.get(&c.old).map(String::as_str),
            new_type: types.get(&c.new).map(String::as_str),
        };
        if let Err(refused) = check_ref_facts(c, &facts) {
            o.rule = refused.rule;
            o.reason = refused.reason;
            continue;
        }
        let fast_forward = needs_ancestry(c, &facts)
            && is_ancestor(gate, mirror, quarantine, &c.old, &c.new).await?;
        let action = classify(c, &facts, fast_forward);
        o.class = Some(action);
        let verdict: Verdict = policy.decide(&c.name, action);
        o.rule = verdict.rule;
        o.ok = verdict.allowed;
        o.reason = verdict.reason;
    }
    Ok(())
}

async fn is_ancestor(
    gate: &State,
    mirror: &Path,
    quarantine: Option<&Path>,
    old: &str,
    new: &str,
) -> Result<bool, GateError> {
    let mut cmd = gate.runner.quarantine_command(mirror, quarantine);
    cmd.args(["merge-base", "--is-ancestor", old, new]);
    let out = run(cmd, None, Duration::from_secs(120)).await?;
    match out.code {
        Some(0) => Ok(true),
        Some(1) => Ok(false),
        _ => Err(GateError::Git(format!(
            "merge-base failed: {}",
            out.stderr_str().trim()
        ))),
    }
}

/// Refuses every ref of the push: each keeps the reason it already has (a more precise one),
/// the others get `rule`/`reason`; the client is told why.
fn refused(mut v: PushVerdict, rule: &str, reason: String) -> PushVerdict {
    for o in v.outcomes.iter_mut() {
        o.ok = false;
        if o.reason.is_empty() {
            o.rule = rule.to_string();
            o.reason = reason.clone();
        }
    }
    v.messages.push(format!("git-gate: push refused: {reason}"));
    v
}
