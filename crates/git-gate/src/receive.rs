//! `git-receive-pack` over smart HTTP: a push slot, the body (spilled past a threshold), the
//! gate's judgement of every ref, local receive-pack into a quarantine, then the upstream push.
//! What is decided from the command list is `policy::decide_push`; this file carries it out.
//! The routing is in `front_end.rs`, the read side in `fetch.rs`.

use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bottle_core::{BoxBody, BoxError, RefusalKind};
use bytes::Bytes;
use http::{header, Request, Response};
use http_body_util::StreamBody;
use hyper::body::{Frame, Incoming};
use tokio::io::AsyncReadExt;

use crate::config::RepoConfig;
use crate::git::run;
use crate::hook_protocol::{ENV_PUSH_ID, ENV_SOCKET};
use crate::in_flight::{PushCtx, PushVerdict, RefOutcome};
use crate::intake::{self, PushBody};
use crate::pktline::write_flush;
use crate::policy::{decide_push, Action, Intake, PushDecision, PushRefusal, Verdict};
use crate::report::Report;
use crate::request::{self, CommandKind};
use crate::smart_http::{
    content_type_is, git_response, git_service_cmd, refuse, result_response, Service,
    BODY_IDLE_TIMEOUT,
};
use crate::state::State;
use crate::GateError;

/// A refused push as the client prints it: 200, an `ng` line per ref, `remote:` lines
/// giving each ref's own reason (not the "another ref was refused" ones); audited per ref.
fn refusal_report(
    gate: &State,
    repo: &RepoConfig,
    parsed: &request::PushRequest,
    refusal: &PushRefusal,
    bytes: u64,
) -> Response<BoxBody> {
    gate.metrics.secrets(refusal.secrets_found);
    let mut rep = Report::new(parsed.caps.sideband(), parsed.caps.report_status());
    rep.unpack = refusal.unpack_error.clone().map_or(Ok(()), Err);
    let mut asks = Vec::new();
    let mut outcomes = Vec::new();
    for (c, v) in parsed.commands.iter().zip(&refusal.verdicts) {
        let name = c.name_str();
        let outcome = RefOutcome {
            name: name.clone(),
            old: c.old.clone(),
            new: c.new.clone(),
            class: match c.kind() {
                CommandKind::Create => Some(Action::Create),
                CommandKind::Delete => Some(Action::Delete),
                CommandKind::Update => None,
            },
            rule: v.rule.clone(),
            ok: false,
            reason: v.reason.clone(),
        };
        if !v.is_not_pushed() {
            let shown = gate.shown_ref(&name);
            let said = if shown == name {
                // A withheld name (it holds a secret) is never repeated in an ask line.
                asks.extend(crate::ask::ask_lines(
                    gate.supervise_url.as_ref(),
                    &repo.name,
                    &outcome,
                ));
                v.reason.clone()
            } else {
                v.reason.replace(&name, &shown)
            };
            rep.messages.push(format!("git-gate: {shown}: {said}"));
        }
        rep.refs.push((c.name.clone(), Err(v.reason.clone())));
        outcomes.push(outcome);
    }
    rep.messages
        .push("git-gate: push refused; nothing was sent upstream".into());
    rep.messages.extend(asks);
    for outcome in &outcomes {
        gate.audit_ref(&repo.name, outcome, bytes);
    }
    result_response(rep.render())
}

/// A push that failed after it was let through (git could not be run, the mirror could not
/// be locked): every ref is refused with the same reason.
fn failure_report(
    gate: &State,
    repo: &RepoConfig,
    parsed: &request::PushRequest,
    reason: String,
    bytes: u64,
) -> Response<BoxBody> {
    let refusal = PushRefusal {
        verdicts: vec![Verdict::deny("error", reason); parsed.commands.len()],
        unpack_error: None,
        secrets_found: 0,
    };
    refusal_report(gate, repo, parsed, &refusal, bytes)
}

pub(crate) async fn receive_pack(
    gate: &Arc<State>,
    repo: &Arc<RepoConfig>,
    req: Request<Incoming>,
) -> Response<BoxBody> {
    if !content_type_is(req.headers(), "application/x-git-receive-pack-request") {
        return refuse(
            RefusalKind::UnsupportedMediaType,
            "wrong content type for git-receive-pack",
        );
    }
    if let Some(enc) = req.headers().get(header::CONTENT_ENCODING) {
        if enc.as_bytes() != b"identity" {
            return refuse(
                RefusalKind::UnsupportedMediaType,
                "compressed push bodies are not accepted",
            );
        }
    }
    let policy = &repo.policy;
    // The command list is small (bounded by max_refs); everything else is the pack.
    let cap = policy.max_pack_bytes.saturating_add(64 << 10);
    let Some(slot) = gate.push_slots.try_acquire() else {
        return busy_refusal(gate, repo, req.into_body(), cap).await;
    };
    let (body, too_large) =
        match intake::read_push_body(req.into_body(), cap, &gate.spill, BODY_IDLE_TIMEOUT).await {
            intake::BodyRead::Complete(b) => (b, None),
            intake::BodyRead::TooLarge { head, total } => (PushBody::Memory(head), Some(total)),
            intake::BodyRead::Failed(e) => return refuse(RefusalKind::BadRequest, e),
        };
    let bytes = too_large.unwrap_or(body.len());
    // git's probe before a large chunked push: an empty command list.
    if too_large.is_none() && body.head() == b"0000" && body.len() == 4 {
        return result_response(Vec::new());
    }
    let parsed = if let Some(total) = too_large {
        // Parse the command list from what we kept; the pack is cut off.
        match request::parse_commands_only(body.head()) {
            Ok(p) => {
                return decide_and_refuse(gate, repo, &p, Intake::PackTooLarge { total }, bytes)
            }
            Err(_) => return refuse(RefusalKind::BodyTooLarge, "push too large"),
        }
    } else {
        // A spilled body is parsed from its head: the pack must begin there.
        match request::parse(body.head()) {
            Ok(p) => p,
            Err(e) => {
                // Answered on the side band git prints, when the client asked for one.
                let caps = request::sniff_caps(body.head());
                if caps.sideband() == crate::pktline::Sideband::None {
                    return refuse(
                        RefusalKind::BadRequest,
                        format!("malformed push request: {e}"),
                    );
                }
                let mut out = Vec::new();
                let msg = format!("git-gate: malformed push request: {e}\n");
                crate::pktline::write_band(&mut out, caps.sideband(), 3, msg.as_bytes());
                write_flush(&mut out);
                return result_response(out);
            }
        }
    };
    // The whole command list is decided before git sees any of the pack.
    let decision = decide_push(&parsed, Intake::Whole, &repo.policy, &|bytes: &[u8]| {
        gate.first_secret(bytes)
    });
    if let PushDecision::Refuse(refusal) = decision {
        return refusal_report(gate, repo, &parsed, &refusal, bytes);
    }
    match run_receive_pack(gate.clone(), repo.clone(), parsed.clone(), body, slot).await {
        Ok(resp) => resp,
        Err(e) => failure_report(gate, repo, &parsed, format!("push failed: {e}"), bytes),
    }
}

/// Over `--max-concurrent-pushes`: every ref is refused with a reason git prints; the body
/// is read only to find the command list (and drained, never stored).
async fn busy_refusal(
    gate: &State,
    repo: &RepoConfig,
    body: Incoming,
    cap: u64,
) -> Response<BoxBody> {
    let (head, total) = match intake::read_head_and_drain(body, cap, BODY_IDLE_TIMEOUT).await {
        Ok(r) => r,
        Err(e) => return refuse(RefusalKind::BadRequest, e),
    };
    let intake = Intake::NoPushSlot {
        limit: gate.push_slots.max,
    };
    if head == b"0000" {
        // The probe of a large push: answer it; the push itself is refused next.
        return result_response(Vec::new());
    }
    match request::parse_commands_only(&head) {
        Ok(p) => decide_and_refuse(gate, repo, &p, intake, total),
        Err(_) => refuse(RefusalKind::Unavailable, gate.push_slots.busy_reason()),
    }
}

/// A push whose body was not taken in whole (no push slot, pack too large): the decision
/// is a refusal whatever the commands say.
fn decide_and_refuse(
    gate: &State,
    repo: &RepoConfig,
    parsed: &request::PushRequest,
    intake: Intake,
    bytes: u64,
) -> Response<BoxBody> {
    match decide_push(parsed, intake, &repo.policy, &|bytes: &[u8]| {
        gate.first_secret(bytes)
    }) {
        PushDecision::Refuse(refusal) => refusal_report(gate, repo, parsed, &refusal, bytes),
        // Unreachable for these intakes; refusing keeps it closed anyway.
        PushDecision::Receive => failure_report(
            gate,
            repo,
            parsed,
            "push body was not received".into(),
            bytes,
        ),
    }
}

/// Runs `git receive-pack` on the mirror with the body; its output (keepalives, `remote:`
/// lines from the hook, the report) is streamed to the client as it comes. The mirror stays
/// locked until receive-pack has finished, whether or not the client is still there.
async fn run_receive_pack(
    gate: Arc<State>,
    repo: Arc<RepoConfig>,
    parsed: request::PushRequest,
    body: PushBody,
    slot: intake::PushSlot,
) -> Result<Response<BoxBody>, GateError> {
    let bytes = body.len();
    let mirror = gate.mirror(&repo.name);
    let mut guard = mirror.lock(crate::state::LOCK_WAIT).await?;
    if !mirror.dir.join("HEAD").is_file() {
        mirror
            .refresh(
                &mut guard,
                &gate.runner,
                &repo.upstream,
                &gate.settings,
                gate.refresh_interval,
            )
            .await?;
    }
    let push_id = hex::encode(rand::random::<[u8; 16]>());
    let ctx = Arc::new(PushCtx {
        repo: repo.clone(),
        mirror: mirror.clone(),
        commands: parsed.commands.clone(),
        push_options: parsed.push_options.clone(),
        verdict: Mutex::new(None),
    });
    let mut cmd = git_service_cmd(&gate, &repo, Service::ReceivePack, None);
    cmd.env(ENV_SOCKET, &gate.hook_socket)
        .env(ENV_PUSH_ID, &push_id)
        .arg(&mirror.dir)
        .stdin(Stdio::piped());
    let mut child = cmd.spawn().map_err(|e| GateError::Spawn(e.to_string()))?;
    let (Some(mut stdin), Some(mut stdout), Some(mut stderr)) =
        (child.stdin.take(), child.stdout.take(), child.stderr.take())
    else {
        return Err(GateError::Spawn("no pipes".into()));
    };
    gate.pushes.register(&push_id, ctx.clone());
    tokio::spawn(async move {
        // A spilled body streams from its file; its space is freed when this ends.
        let _ = body.write_to(&mut stdin).await;
    });
    let stderr_task = tokio::spawn(async move {
        let mut err = Vec::new();
        let _ = (&mut stderr).take(64 << 10).read_to_end(&mut err).await;
        err
    });
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Frame<Bytes>, BoxError>>(16);
    tokio::spawn(async move {
        let mut rewriter = crate::report::ReportRewriter::new(parsed.caps.sideband());
        let relay = async {
            let mut any = false;
            let mut buf = vec![0u8; 64 << 10];
            loop {
                match stdout.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        any = true;
                        let now = rewriter.feed(&buf[..n]);
                        if !now.is_empty() {
                            // The client may be gone; keep draining so receive-pack finishes.
                            let _ = tx.send(Ok(Frame::data(Bytes::from(now)))).await;
                        }
                    }
                }
            }
            let _ = child.wait().await;
            any
        };
        let any = tokio::time::timeout(crate::state::PUSH_TIMEOUT, relay)
            .await
            .unwrap_or(false);
        gate.pushes.unregister(&push_id);
        let stderr = stderr_task.await.unwrap_or_default();
        let verdict = ctx.verdict.lock().unwrap_or_else(|p| p.into_inner()).take();
        let reasons: std::collections::HashMap<Vec<u8>, String> = verdict
            .iter()
            .flat_map(|v| v.outcomes.iter())
            .filter(|o| !o.ok)
            .map(|o| (o.name.clone().into_bytes(), o.reason.clone()))
            .collect();
        if any {
            let rest = rewriter.finish(&reasons);
            if !rest.is_empty() {
                let _ = tx.send(Ok(Frame::data(Bytes::from(rest)))).await;
            }
        }
        finish_push(&gate, &repo, &parsed, verdict, &mut guard, bytes).await;
        drop(guard);
        // The push slot is held until the push, upstream included, is over.
        drop(slot);
        if !any {
            // Nothing was sent yet: answer with a proper refusal.
            let reason = format!(
                "push failed: {}",
                crate::git::tail_lines(&stderr, 2).join(" / ")
            );
            let mut rep = Report::new(parsed.caps.sideband(), parsed.caps.report_status());
            rep.messages.push(format!("git-gate: {reason}"));
            rep.unpack = Err(reason.clone());
            for c in &parsed.commands {
                rep.refs.push((c.name.clone(), Err(reason.clone())));
            }
            let _ = tx.send(Ok(Frame::data(Bytes::from(rep.render())))).await;
        }
    });
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    });
    Ok(git_response(
        "application/x-git-receive-pack-result",
        BoxBody::new(StreamBody::new(stream)),
    ))
}

/// Audit lines and mirror bookkeeping once receive-pack has finished.
async fn finish_push(
    gate: &State,
    repo: &RepoConfig,
    parsed: &request::PushRequest,
    verdict: Option<PushVerdict>,
    guard: &mut crate::mirror::MirrorGuard,
    bytes: u64,
) {
    let mirror = gate.mirror(&repo.name);
    let Some(v) = verdict else {
        for c in &parsed.commands {
            gate.audit_ref(
                &repo.name,
                &RefOutcome {
                    name: c.name_str(),
                    old: c.old.clone(),
                    new: c.new.clone(),
                    class: None,
                    rule: "receive-pack".into(),
                    ok: false,
                    reason: "rejected by git receive-pack (pack, fsck or size check)".into(),
                },
                bytes,
            );
        }
        return;
    };
    for o in &v.outcomes {
        gate.audit_ref(&repo.name, o, bytes);
    }
    if v.upstream_failed {
        crate::mirror::mark_stale(guard);
    }
    if v.upstream_updated {
        // The mirror must now agree with upstream; if receive-pack could not update it,
        // refresh it next time regardless of the rate limit.
        let mut q = gate.runner.command(Some(&mirror.dir));
        q.args(["for-each-ref", "--format=%(objectname) %(refname)"]);
        let refs = run(q, None, Duration::from_secs(30))
            .await
            .map(|o| o.stdout_str())
            .unwrap_or_default();
        let in_sync = parsed.commands.iter().all(|c| {
            let line = format!("{} {}", c.new, c.name_str());
            match c.kind() {
                CommandKind::Delete => !refs
                    .lines()
                    .any(|l| l.split_once(' ').map(|x| x.1) == Some(c.name_str().as_str())),
                _ => refs.lines().any(|l| l == line),
            }
        });
        if !in_sync {
            tracing::warn!(repo = %repo.name, "mirror not updated after upstream push; will refresh");
            crate::mirror::mark_stale(guard);
        }
    }
}
