//! The read side: the `info/refs` advertisement of both services (after refreshing the
//! mirror from upstream) and `git-upload-pack`, served by the real git from the mirror.

use std::io::Read;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use bottle_core::body::full;
use bottle_core::{BoxBody, BoxError, RefusalKind};
use bytes::Bytes;
use http::{header, HeaderMap, Request, Response};
use http_body_util::{BodyExt, StreamBody};
use hyper::body::{Frame, Incoming};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::config::RepoConfig;
use crate::git::run;
use crate::mirror::Mirror;
use crate::pktline::{write_flush, write_text};
use crate::smart_http::{
    content_type_is, git_response, git_service_cmd, refuse, Service, BODY_IDLE_TIMEOUT,
};
use crate::state::{State, LOCK_WAIT};
use crate::GateError;

/// Largest (decoded) upload-pack request body.
pub const MAX_UPLOAD_REQUEST: usize = 16 << 20;
/// Only `version=1` / `version=2` are passed on to git.
fn git_protocol(headers: &HeaderMap) -> Option<&'static str> {
    match headers.get("git-protocol").and_then(|v| v.to_str().ok()) {
        Some("version=2") => Some("version=2"),
        Some("version=1") => Some("version=1"),
        _ => None,
    }
}

/// How long an advertisement waits for a busy mirror before serving it unrefreshed.
pub const BUSY_WAIT: Duration = Duration::from_secs(1);

/// Refreshes the mirror of `repo` (rate-limited, exclusive).
async fn refresh_mirror(gate: &State, repo: &RepoConfig) -> Result<Arc<Mirror>, GateError> {
    let mirror = gate.mirror(&repo.name);
    // A push in flight holds the mirror: serve what the mirror has rather than wait
    // (its old values are checked against upstream by the lease anyway).
    let mut guard = match mirror.lock(BUSY_WAIT).await {
        Ok(g) => g,
        Err(GateError::Busy) if mirror.is_initialised() => {
            tracing::debug!(repo = %repo.name, "mirror busy; serving without refresh");
            return Ok(mirror.clone());
        }
        Err(_) => mirror.lock(LOCK_WAIT).await?,
    };
    let res = mirror
        .refresh(
            &mut guard,
            &gate.runner,
            &repo.upstream,
            &gate.settings,
            gate.refresh_interval,
        )
        .await;
    gate.metrics.refresh(res.is_ok());
    res.map(|()| mirror.clone())
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

/// `GET info/refs`: the advertisement of either service, from a freshly refreshed mirror.
pub(crate) async fn info_refs(
    gate: &State,
    repo: &RepoConfig,
    svc: Service,
    headers: &HeaderMap,
) -> Response<BoxBody> {
    // Tell the client early that pushes are at their cap (the POST is what enforces it).
    if svc == Service::ReceivePack && gate.push_slots.full() {
        return advert_error(svc, &gate.push_slots.busy_reason());
    }
    let mirror = match refresh_mirror(gate, repo).await {
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

/// `POST git-upload-pack`: a fetch served by git from the mirror, streamed as it comes.
pub(crate) async fn upload_pack(
    gate: &State,
    repo: &RepoConfig,
    req: Request<Incoming>,
) -> Response<BoxBody> {
    if !content_type_is(req.headers(), "application/x-git-upload-pack-request") {
        return refuse(
            RefusalKind::UnsupportedMediaType,
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
                RefusalKind::UnsupportedMediaType,
                format!("content encoding {other} not supported"),
            )
        }
    };
    let raw = match read_body(req.into_body(), MAX_UPLOAD_REQUEST).await {
        BodyRead::Complete(b) => b,
        BodyRead::TooLarge => return refuse(RefusalKind::BodyTooLarge, "fetch request too large"),
        BodyRead::Failed(e) => return refuse(RefusalKind::BadRequest, e),
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
                    RefusalKind::BodyTooLarge,
                    "fetch request too large after decompression",
                )
            }
            Err(_) => return refuse(RefusalKind::BadRequest, "bad gzip body"),
        }
    } else {
        raw
    };
    let mirror = gate.mirror(&repo.name);
    if !mirror.dir.join("HEAD").is_file() {
        return refuse(
            RefusalKind::Unavailable,
            "mirror not ready: fetch info/refs first",
        );
    }
    let mut cmd = git_service_cmd(gate, repo, Service::UploadPack, protocol);
    cmd.arg(&mirror.dir).stdin(Stdio::piped());
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            return refuse(
                RefusalKind::UpstreamError,
                format!("cannot run git upload-pack: {e}"),
            )
        }
    };
    let (Some(mut stdin), Some(stdout), Some(mut stderr)) =
        (child.stdin.take(), child.stdout.take(), child.stderr.take())
    else {
        return refuse(RefusalKind::UpstreamError, "cannot run git upload-pack");
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
