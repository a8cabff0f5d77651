//! The smart-HTTP front end. Only these requests exist, for configured repositories only:
//!
//! - `GET  /<name>.git/info/refs?service=git-upload-pack|git-receive-pack`
//! - `POST /<name>.git/git-upload-pack`
//! - `POST /<name>.git/git-receive-pack`
//!
//! Everything else (dumb HTTP, WebDAV, LFS, archives, other names, odd spellings) is refused.

use std::io::Read;
use std::process::Stdio;
use std::sync::Arc;
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
use crate::gate::Gate;
use crate::git::run;
use crate::pktline::{write_flush, write_text};

/// Largest (decoded) upload-pack request body.
pub const MAX_UPLOAD_REQUEST: usize = 16 << 20;
/// How long the client may stay silent while sending a body.
pub const BODY_IDLE_TIMEOUT: Duration = Duration::from_secs(60);

const COMPONENT: &str = "git-gate";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Service {
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

pub(crate) fn refuse(status: StatusCode, reason: impl Into<String>) -> Response<BoxBody> {
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
        Endpoint::Rpc(Service::ReceivePack) => {
            crate::receive::receive_pack(&gate, &repo, req).await
        }
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

pub(crate) fn git_service_cmd(
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

pub(crate) fn content_type_is(headers: &HeaderMap, want: &str) -> bool {
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

pub(crate) fn result_response(body: Vec<u8>) -> Response<BoxBody> {
    git_response("application/x-git-receive-pack-result", full(body))
}

/// A smart-HTTP answer: 200, the service's content type, never cached.
pub(crate) fn git_response(content_type: &str, body: BoxBody) -> Response<BoxBody> {
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, content_type)
        .header(header::CACHE_CONTROL, "no-cache")
        .body(body)
        .unwrap_or_else(|_| Response::new(empty()))
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
