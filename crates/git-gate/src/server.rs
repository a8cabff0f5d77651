//! The smart-HTTP front end. Only these requests exist, for configured repositories only:
//!
//! - `GET  /<name>.git/info/refs?service=git-upload-pack|git-receive-pack`
//! - `POST /<name>.git/git-upload-pack`
//! - `POST /<name>.git/git-receive-pack`
//!
//! Everything else (dumb HTTP, WebDAV, LFS, archives, other names, odd spellings) is refused.

use std::io::Read;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bottle_core::body::{empty, full};
use bottle_core::serve::{ServeLimits, ServeOptions};
use bottle_core::{BoxBody, BoxError, Refusal};
use bytes::Bytes;
use http::{header, HeaderMap, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, StreamBody};
use hyper::body::{Frame, Incoming};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use crate::config::RepoConfig;
use crate::gate::{Gate, PushCtx, RefOutcome};
use crate::git::run;
use crate::hook::{ENV_PUSH_ID, ENV_SOCKET};
use crate::intake::{self, PushBody};
use crate::pktline::{write_flush, write_text};
use crate::policy::Verdict;
use crate::report::Report;
use crate::request::{self, CommandKind};
use crate::GateError;

/// Largest (decoded) upload-pack request body.
pub const MAX_UPLOAD_REQUEST: usize = 16 << 20;
/// How long the client may stay silent while sending a body.
pub const BODY_IDLE_TIMEOUT: Duration = Duration::from_secs(60);

const COMPONENT: &str = "git-gate";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Service {
    UploadPack,
    ReceivePack,
}

impl Service {
    fn name(self) -> &'static str {
        match self {
            Service::UploadPack => "git-upload-pack",
            Service::ReceivePack => "git-receive-pack",
        }
    }
}

#[derive(Debug, PartialEq, Eq)]
enum Endpoint {
    InfoRefs(Service),
    Rpc(Service),
}

fn refuse(status: StatusCode, reason: impl Into<String>) -> Response<BoxBody> {
    Refusal::new(status, reason).response(COMPONENT)
}

fn valid_repo_name(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with('.')
        && name.len() <= 100
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// Exact routing: no percent-decoding, no normalisation.
fn route(
    method: &Method,
    path: &str,
    query: Option<&str>,
) -> Result<(String, Endpoint), Box<Response<BoxBody>>> {
    let not_git = || {
        Box::new(refuse(
            StatusCode::NOT_FOUND,
            "not a git smart-HTTP endpoint (only /<repo>.git/info/refs, git-upload-pack, git-receive-pack)",
        ))
    };
    let rest = path.strip_prefix('/').ok_or_else(not_git)?;
    let (name, tail) = rest.split_once(".git/").ok_or_else(not_git)?;
    if !valid_repo_name(name) {
        return Err(not_git());
    }
    let ep = match (method, tail) {
        (&Method::GET, "info/refs") => {
            match query {
                Some("service=git-upload-pack") => Endpoint::InfoRefs(Service::UploadPack),
                Some("service=git-receive-pack") => Endpoint::InfoRefs(Service::ReceivePack),
                _ => return Err(Box::new(refuse(
                    StatusCode::FORBIDDEN,
                    "dumb HTTP is not supported: use service=git-upload-pack or git-receive-pack",
                ))),
            }
        }
        (&Method::POST, "git-upload-pack") if query.is_none() => Endpoint::Rpc(Service::UploadPack),
        (&Method::POST, "git-receive-pack") if query.is_none() => {
            Endpoint::Rpc(Service::ReceivePack)
        }
        (_, "info/refs" | "git-upload-pack" | "git-receive-pack") => {
            return Err(Box::new(refuse(
                StatusCode::METHOD_NOT_ALLOWED,
                "method not allowed",
            )))
        }
        _ => return Err(not_git()),
    };
    Ok((name.to_string(), ep))
}

/// Only `version=1` / `version=2` are passed on to git.
fn git_protocol(headers: &HeaderMap) -> Option<&'static str> {
    match headers.get("git-protocol").and_then(|v| v.to_str().ok()) {
        Some("version=2") => Some("version=2"),
        Some("version=1") => Some("version=1"),
        _ => None,
    }
}

/// Accepts connections until `shutdown` resolves, then gives requests in flight up to the
/// drain time to finish (a push holds its own task and finishes regardless). The listener
/// limits (connection cap, idle and header-read timeouts, head caps) are bottle-core's.
pub async fn serve(
    gate: Arc<Gate>,
    listener: TcpListener,
    limits: ServeLimits,
    shutdown: impl std::future::Future<Output = ()>,
) {
    let metrics = gate.metrics.clone();
    let opts = ServeOptions::new(COMPONENT, limits)
        .on_refusal(move |kind| metrics.request("connection", kind));
    bottle_core::serve::serve(
        listener,
        opts,
        move |req| handle(gate.clone(), req),
        shutdown,
    )
    .await;
}

/// Handles one request.
pub async fn handle(gate: Arc<Gate>, req: Request<Incoming>) -> Response<BoxBody> {
    let started = Instant::now();
    let (name, ep) = match route(req.method(), req.uri().path(), req.uri().query()) {
        Ok(r) => r,
        Err(resp) => {
            gate.metrics.request("other", "refused");
            audit_http(
                &gate,
                &req,
                resp.status(),
                "refused: not a smart-HTTP endpoint",
                started,
            );
            return *resp;
        }
    };
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    // One config snapshot for the whole request.
    let cfg = (gate.config)();
    let Some(repo) = cfg.repo(&name) else {
        gate.metrics.request("other", "refused");
        let resp = refuse(StatusCode::NOT_FOUND, format!("unknown repository: {name}"));
        audit_http(
            &gate,
            &req,
            resp.status(),
            "refused: unknown repository",
            started,
        );
        return resp;
    };
    let resp = match ep {
        Endpoint::InfoRefs(svc) => info_refs(&gate, &repo, svc, req.headers()).await,
        Endpoint::Rpc(Service::UploadPack) => upload_pack(&gate, &repo, req).await,
        Endpoint::Rpc(Service::ReceivePack) => receive_pack(&gate, &repo, req).await,
    };
    if matches!(
        ep,
        Endpoint::InfoRefs(_) | Endpoint::Rpc(Service::UploadPack)
    ) {
        let mut ev = bottle_core::AuditEvent::new(
            COMPONENT,
            if matches!(ep, Endpoint::InfoRefs(_)) {
                "advertise"
            } else {
                "fetch"
            },
            if resp.status().is_success() {
                "allow"
            } else {
                "error"
            },
        );
        ev.method = method.to_string();
        ev.scheme = "http".into();
        ev.path = path;
        ev.status = Some(resp.status().as_u16());
        ev.duration_ms = started.elapsed().as_millis() as u64;
        ev.extra
            .insert("repo".into(), serde_json::Value::from(name.clone()));
        gate.audit.record(ev);
    }
    let label = match ep {
        Endpoint::InfoRefs(_) => "info-refs",
        Endpoint::Rpc(Service::UploadPack) => "upload-pack",
        Endpoint::Rpc(Service::ReceivePack) => "receive-pack",
    };
    gate.metrics.request(
        label,
        if resp.status().is_success() {
            "ok"
        } else {
            "error"
        },
    );
    resp
}

fn audit_http<B>(
    gate: &Gate,
    req: &Request<B>,
    status: StatusCode,
    reason: &str,
    started: Instant,
) {
    let mut ev = bottle_core::AuditEvent::new(COMPONENT, "request", "deny");
    ev.reason = Some(reason.to_string());
    ev.method = req.method().to_string();
    ev.scheme = "http".into();
    ev.path = req.uri().path().chars().take(200).collect();
    ev.status = Some(status.as_u16());
    ev.duration_ms = started.elapsed().as_millis() as u64;
    gate.audit.record(ev);
}

fn receive_pack_config(gate: &Gate, repo: &RepoConfig) -> Vec<String> {
    let p = &repo.policy;
    vec![
        format!("core.hooksPath={}", gate.hooks_dir.display()),
        "receive.fsckObjects=true".into(),
        format!("receive.maxInputSize={}", p.max_pack_bytes),
        format!("receive.advertisePushOptions={}", p.push_options),
        "receive.advertiseAtomic=true".into(),
        "receive.denyDeletes=false".into(),
        "receive.denyNonFastForwards=false".into(),
        "receive.shallowUpdate=false".into(),
        "receive.autogc=false".into(),
        "receive.updateServerInfo=false".into(),
        "core.logAllRefUpdates=false".into(),
    ]
}

fn upload_pack_config() -> Vec<String> {
    vec![
        "uploadpack.allowFilter=true".into(),
        "uploadpack.allowAnySHA1InWant=false".into(),
        "uploadpack.advertiseBundleURIs=false".into(),
        "transfer.advertiseObjectInfo=false".into(),
    ]
}

fn git_service_cmd(
    gate: &Gate,
    repo: &RepoConfig,
    svc: Service,
    protocol: Option<&str>,
) -> tokio::process::Command {
    let mirror = gate.mirror(&repo.name);
    let mut cmd = gate.runner.command(None);
    let cfg = match svc {
        Service::UploadPack => upload_pack_config(),
        Service::ReceivePack => receive_pack_config(gate, repo),
    };
    for c in cfg {
        cmd.arg("-c").arg(c);
    }
    cmd.arg(match svc {
        Service::UploadPack => "upload-pack",
        Service::ReceivePack => "receive-pack",
    });
    cmd.arg("--stateless-rpc");
    if let Some(p) = protocol {
        cmd.env("GIT_PROTOCOL", p);
    }
    cmd.current_dir(&mirror.dir);
    // The mirror path goes last (callers add --advertise-refs before it).
    cmd
}

fn advert_error(svc: Service, msg: &str) -> Response<BoxBody> {
    let mut body = Vec::new();
    write_text(&mut body, &format!("# service={}", svc.name()));
    write_flush(&mut body);
    write_text(
        &mut body,
        &format!("ERR git-gate: {}", crate::report::sanitize(msg)),
    );
    git_response(
        &format!("application/x-{}-advertisement", svc.name()),
        full(body),
    )
}

async fn info_refs(
    gate: &Gate,
    repo: &RepoConfig,
    svc: Service,
    headers: &HeaderMap,
) -> Response<BoxBody> {
    // Tell the client early that pushes are at their cap (the POST is what enforces it).
    if svc == Service::ReceivePack && gate.push_slots.full() {
        return advert_error(svc, &gate.push_slots.busy_reason());
    }
    let mirror = match gate.refresh(repo).await {
        Ok(m) => m,
        Err(e) => {
            tracing::warn!(repo = %repo.name, error = %e, "mirror refresh failed");
            return advert_error(svc, &format!("upstream unavailable for {}: {e}", repo.name));
        }
    };
    let protocol = if svc == Service::UploadPack {
        git_protocol(headers)
    } else {
        None
    };
    let mut cmd = git_service_cmd(gate, repo, svc, protocol);
    cmd.arg("--advertise-refs").arg(&mirror.dir);
    let out = match run(cmd, None, Duration::from_secs(120)).await {
        Ok(o) if o.success => o,
        Ok(o) => {
            return advert_error(
                svc,
                &format!("advertisement failed: {}", o.stderr_str().trim()),
            )
        }
        Err(e) => return advert_error(svc, &e.to_string()),
    };
    let mut body = Vec::new();
    if protocol != Some("version=2") {
        write_text(&mut body, &format!("# service={}", svc.name()));
        write_flush(&mut body);
    }
    body.extend_from_slice(&out.stdout);
    git_response(
        &format!("application/x-{}-advertisement", svc.name()),
        full(body),
    )
}

enum BodyRead {
    Complete(Vec<u8>),
    /// Over the cap (drained up to 2x the cap).
    TooLarge,
    Failed(String),
}

/// Reads a fetch request body up to `cap` bytes; beyond that keeps reading (discarding) up to `2 * cap`
/// so that the client is still listening when we answer.
async fn read_body(mut body: Incoming, cap: usize) -> BodyRead {
    let mut buf = Vec::new();
    let mut total: u64 = 0;
    let drain_cap = (cap as u64).saturating_mul(2);
    loop {
        let frame = match tokio::time::timeout(BODY_IDLE_TIMEOUT, body.frame()).await {
            Err(_) => return BodyRead::Failed("timed out reading the request body".into()),
            Ok(None) => break,
            Ok(Some(Err(e))) => {
                return BodyRead::Failed(format!("cannot read the request body: {e}"))
            }
            Ok(Some(Ok(f))) => f,
        };
        if let Ok(data) = frame.into_data() {
            total += data.len() as u64;
            if buf.len() + data.len() <= cap {
                buf.extend_from_slice(&data);
            } else if total > drain_cap {
                return BodyRead::TooLarge;
            }
        }
    }
    if total > cap as u64 {
        BodyRead::TooLarge
    } else {
        BodyRead::Complete(buf)
    }
}

fn content_type_is(headers: &HeaderMap, want: &str) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .eq_ignore_ascii_case(want)
        })
        .unwrap_or(false)
}

async fn upload_pack(gate: &Gate, repo: &RepoConfig, req: Request<Incoming>) -> Response<BoxBody> {
    if !content_type_is(req.headers(), "application/x-git-upload-pack-request") {
        return refuse(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "wrong content type for git-upload-pack",
        );
    }
    let protocol = git_protocol(req.headers());
    let encoding = req
        .headers()
        .get(header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .map(|s| s.trim().to_ascii_lowercase());
    let gzip = match encoding.as_deref() {
        None | Some("identity") => false,
        Some("gzip" | "x-gzip") => true,
        Some(other) => {
            return refuse(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                format!("content encoding {other} not supported"),
            )
        }
    };
    let raw = match read_body(req.into_body(), MAX_UPLOAD_REQUEST).await {
        BodyRead::Complete(b) => b,
        BodyRead::TooLarge => {
            return refuse(StatusCode::PAYLOAD_TOO_LARGE, "fetch request too large")
        }
        BodyRead::Failed(e) => return refuse(StatusCode::BAD_REQUEST, e),
    };
    let body = if gzip {
        let mut out = Vec::new();
        let dec = flate2::read::GzDecoder::new(&raw[..]);
        match dec
            .take(MAX_UPLOAD_REQUEST as u64 + 1)
            .read_to_end(&mut out)
        {
            Ok(n) if n <= MAX_UPLOAD_REQUEST => out,
            Ok(_) => {
                return refuse(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "fetch request too large after decompression",
                )
            }
            Err(_) => return refuse(StatusCode::BAD_REQUEST, "bad gzip body"),
        }
    } else {
        raw
    };
    let mirror = gate.mirror(&repo.name);
    if !mirror.dir.join("HEAD").is_file() {
        return refuse(
            StatusCode::SERVICE_UNAVAILABLE,
            "mirror not ready: fetch info/refs first",
        );
    }
    let mut cmd = git_service_cmd(gate, repo, Service::UploadPack, protocol);
    cmd.arg(&mirror.dir).stdin(Stdio::piped());
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            return refuse(
                StatusCode::BAD_GATEWAY,
                format!("cannot run git upload-pack: {e}"),
            )
        }
    };
    let (Some(mut stdin), Some(stdout), Some(mut stderr)) =
        (child.stdin.take(), child.stdout.take(), child.stderr.take())
    else {
        return refuse(StatusCode::BAD_GATEWAY, "cannot run git upload-pack");
    };
    tokio::spawn(async move {
        let _ = stdin.write_all(&body).await;
        let _ = stdin.shutdown().await;
    });
    let repo_name = repo.name.clone();
    tokio::spawn(async move {
        let mut err = Vec::new();
        let _ = (&mut stderr).take(64 << 10).read_to_end(&mut err).await;
        if !err.is_empty() {
            tracing::debug!(repo = %repo_name, stderr = %String::from_utf8_lossy(&err).trim(), "upload-pack");
        }
    });
    let stream = futures_util::stream::unfold(Some((stdout, child)), |state| async move {
        let (mut out, child) = state?;
        let mut buf = vec![0u8; 64 << 10];
        match out.read(&mut buf).await {
            Ok(0) => None,
            Ok(n) => {
                buf.truncate(n);
                Some((
                    Ok::<_, BoxError>(Frame::data(Bytes::from(buf))),
                    Some((out, child)),
                ))
            }
            Err(e) => Some((Err(BoxError::from(e)), None)),
        }
    });
    git_response(
        "application/x-git-upload-pack-result",
        BoxBody::new(StreamBody::new(stream)),
    )
}

fn result_response(body: Vec<u8>) -> Response<BoxBody> {
    git_response("application/x-git-receive-pack-result", full(body))
}

/// A smart-HTTP answer: 200, the service's content type, never cached.
fn git_response(content_type: &str, body: BoxBody) -> Response<BoxBody> {
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, content_type)
        .header(header::CACHE_CONTROL, "no-cache")
        .body(body)
        .unwrap_or_else(|_| Response::new(empty()))
}

/// A refusal the client prints: 200, per-ref `ng`, `remote:` lines.
fn refusal_report(
    gate: &Gate,
    repo: &RepoConfig,
    parsed: &request::PushRequest,
    verdicts: &[Verdict],
    unpack: Result<(), String>,
    bytes: u64,
) -> Response<BoxBody> {
    let mut rep = Report::new(parsed.caps.sideband(), parsed.caps.report_status());
    rep.unpack = unpack;
    let mut outcomes = Vec::new();
    for (c, v) in parsed.commands.iter().zip(verdicts) {
        let (ok, rule, reason) = if v.allowed {
            (
                false,
                "atomic".to_string(),
                "not pushed: another ref in this push was refused".to_string(),
            )
        } else {
            (false, v.rule.clone(), v.reason.clone())
        };
        if !v.allowed {
            let name = c.name_str();
            let shown = gate.shown_ref(&name);
            let said = if shown == name {
                reason.clone()
            } else {
                reason.replace(&name, &shown)
            };
            rep.messages.push(format!("git-gate: {shown}: {said}"));
        }
        rep.refs.push((c.name.clone(), Err(reason.clone())));
        outcomes.push(RefOutcome {
            name: c.name_str(),
            old: c.old.clone(),
            new: c.new.clone(),
            class: match c.kind() {
                CommandKind::Create => Some(crate::policy::Action::Create),
                CommandKind::Delete => Some(crate::policy::Action::Delete),
                CommandKind::Update => None,
            },
            rule,
            ok,
            reason,
        });
    }
    rep.messages
        .push("git-gate: push refused; nothing was sent upstream".into());
    for o in &outcomes {
        gate.audit_ref(&repo.name, o, bytes);
    }
    result_response(rep.render())
}

async fn receive_pack(
    gate: &Arc<Gate>,
    repo: &Arc<RepoConfig>,
    req: Request<Incoming>,
) -> Response<BoxBody> {
    if !content_type_is(req.headers(), "application/x-git-receive-pack-request") {
        return refuse(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "wrong content type for git-receive-pack",
        );
    }
    if let Some(enc) = req.headers().get(header::CONTENT_ENCODING) {
        if enc.as_bytes() != b"identity" {
            return refuse(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
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
            intake::BodyRead::Failed(e) => return refuse(StatusCode::BAD_REQUEST, e),
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
                let reason = format!(
                    "pack too large ({total} bytes, limit {})",
                    policy.max_pack_bytes
                );
                let verdicts: Vec<Verdict> = p
                    .commands
                    .iter()
                    .map(|_| Verdict::deny("max_pack_bytes", reason.clone()))
                    .collect();
                return refusal_report(gate, repo, &p, &verdicts, Err(reason), bytes);
            }
            Err(_) => return refuse(StatusCode::PAYLOAD_TOO_LARGE, "push too large"),
        }
    } else {
        // A spilled body is parsed from its head: the pack must begin there.
        match request::parse(body.head()) {
            Ok(p) => p,
            Err(e) => {
                let caps = request::sniff_caps(body.head());
                let mut rep = Report::new(caps.sideband(), false);
                rep.messages
                    .push(format!("git-gate: malformed push request: {e}"));
                if caps.sideband() == crate::pktline::Sideband::None {
                    return refuse(
                        StatusCode::BAD_REQUEST,
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
    // Cheap policy on the command list.
    let mut verdicts: Vec<Verdict> = parsed
        .commands
        .iter()
        .map(|c| policy.decide_cheap(&c.name, c.kind()))
        .collect();
    let mut push_wide: Option<(String, String)> = None;
    if parsed.commands.len() > policy.max_refs {
        push_wide = Some((
            "max_refs".into(),
            format!(
                "too many refs in one push ({}, limit {})",
                parsed.commands.len(),
                policy.max_refs
            ),
        ));
    } else if !parsed.push_options.is_empty() && !policy.push_options {
        push_wide = Some(("push_options".into(), "push options are not allowed".into()));
    } else if let Some(d) = parsed
        .push_options
        .iter()
        .find_map(|o| gate.scanner.scan(o.as_bytes()).into_iter().next())
    {
        // Push options are forwarded upstream: they must not carry a secret out.
        gate.metrics.secrets(1);
        push_wide = Some((
            "secret-scan".into(),
            format!("secret detected ({d}) in push option"),
        ));
    } else if parsed
        .caps
        .value("object-format")
        .is_some_and(|f| f != "sha1")
    {
        push_wide = Some((
            "object-format".into(),
            "only sha1 repositories are supported".into(),
        ));
    }
    let mut seen = std::collections::HashSet::new();
    for (c, v) in parsed.commands.iter().zip(verdicts.iter_mut()) {
        if !seen.insert(c.name.clone()) && v.allowed {
            *v = Verdict::deny("protocol", "ref appears twice in one push");
        }
    }
    if let Some((rule, reason)) = push_wide {
        for v in verdicts.iter_mut() {
            *v = Verdict::deny(rule.clone(), reason.clone());
        }
    }
    // A secret in a ref name would land upstream as the name itself; this reason wins
    // over every other one (those may quote the name).
    for (c, v) in parsed.commands.iter().zip(verdicts.iter_mut()) {
        if let Some(d) = gate.ref_name_secret(&c.name) {
            gate.metrics.secrets(1);
            *v = Verdict::deny("secret-scan", format!("secret detected ({d}) in ref name"));
        }
    }
    if verdicts.iter().any(|v| !v.allowed) {
        return refusal_report(gate, repo, &parsed, &verdicts, Ok(()), bytes);
    }
    match run_receive_pack(gate.clone(), repo.clone(), parsed.clone(), body, slot).await {
        Ok(resp) => resp,
        Err(e) => {
            let verdicts: Vec<Verdict> = parsed
                .commands
                .iter()
                .map(|_| Verdict::deny("error", format!("push failed: {e}")))
                .collect();
            refusal_report(gate, repo, &parsed, &verdicts, Ok(()), bytes)
        }
    }
}

/// Over `--max-concurrent-pushes`: every ref is refused with a reason git prints; the body
/// is read only to find the command list (and drained, never stored).
async fn busy_refusal(
    gate: &Gate,
    repo: &RepoConfig,
    body: Incoming,
    cap: u64,
) -> Response<BoxBody> {
    let reason = gate.push_slots.busy_reason();
    let (head, total) = match intake::read_head_and_drain(body, cap, BODY_IDLE_TIMEOUT).await {
        Ok(r) => r,
        Err(e) => return refuse(StatusCode::BAD_REQUEST, e),
    };
    if head == b"0000" {
        // The probe of a large push: answer it; the push itself is refused next.
        return result_response(Vec::new());
    }
    match request::parse_commands_only(&head) {
        Ok(p) => {
            let verdicts: Vec<Verdict> = p
                .commands
                .iter()
                .map(|_| Verdict::deny("max-concurrent-pushes", reason.clone()))
                .collect();
            refusal_report(gate, repo, &p, &verdicts, Err(reason), total)
        }
        Err(_) => refuse(StatusCode::SERVICE_UNAVAILABLE, reason),
    }
}

/// Runs `git receive-pack` on the mirror with the body; its output (keepalives, `remote:`
/// lines from the hook, the report) is streamed to the client as it comes. The mirror stays
/// locked until receive-pack has finished, whether or not the client is still there.
async fn run_receive_pack(
    gate: Arc<Gate>,
    repo: Arc<RepoConfig>,
    parsed: request::PushRequest,
    body: PushBody,
    slot: intake::PushSlot,
) -> Result<Response<BoxBody>, GateError> {
    let bytes = body.len();
    let mirror = gate.mirror(&repo.name);
    let mut guard = mirror.lock(crate::gate::LOCK_WAIT).await?;
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
    gate.register_push(&push_id, ctx.clone());
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
        let any = tokio::time::timeout(crate::gate::PUSH_TIMEOUT, relay)
            .await
            .unwrap_or(false);
        gate.unregister_push(&push_id);
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
    gate: &Gate,
    repo: &RepoConfig,
    parsed: &request::PushRequest,
    verdict: Option<crate::gate::HookVerdict>,
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

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn routing_is_exact() {
        let g = Method::GET;
        let p = Method::POST;
        assert_eq!(
            route(&g, "/demo.git/info/refs", Some("service=git-upload-pack"))
                .ok()
                .map(|r| r.1),
            Some(Endpoint::InfoRefs(Service::UploadPack))
        );
        assert_eq!(
            route(&p, "/demo.git/git-receive-pack", None)
                .ok()
                .map(|r| r.0),
            Some("demo".to_string())
        );
        let refused = [
            (&g, "/demo.git/info/refs", None),
            (
                &g,
                "/demo.git/info/refs",
                Some("service=git-upload-pack&service=git-receive-pack"),
            ),
            (&g, "/demo.git/info/refs", Some("Service=git-upload-pack")),
            (
                &g,
                "/demo.git/info/refs",
                Some("service=git-upload-archive"),
            ),
            (&g, "/demo.git/HEAD", None),
            (&g, "/demo.git/objects/info/packs", None),
            (&g, "/demo/info/refs", Some("service=git-upload-pack")),
            (&g, "//demo.git/info/refs", Some("service=git-upload-pack")),
            (
                &g,
                "/x/../demo.git/info/refs",
                Some("service=git-upload-pack"),
            ),
            (&g, "/%64emo.git/info/refs", Some("service=git-upload-pack")),
            (&g, "/demo.git/info/lfs/objects/batch", None),
            (&p, "/demo.git/info/refs", None),
            (&g, "/demo.git/git-receive-pack", None),
            (&p, "/demo.git/git-receive-pack/", None),
            (&p, "/.git/git-receive-pack", None),
        ];
        for (m, path, q) in refused {
            assert!(route(m, path, q).is_err(), "{m} {path} {q:?}");
        }
        assert!(route(
            &Method::from_bytes(b"PROPFIND").unwrap_or(Method::GET),
            "/demo.git/info/refs",
            None
        )
        .is_err());
    }
}
