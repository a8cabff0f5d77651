//! The smart-HTTP vocabulary that fetch and receive share: the two git services, how
//! git-gate runs them on a mirror (with its own config, whatever the mirror says), and the
//! shapes of its answers (a smart-HTTP 200, or a refusal marked `X-Bottle-Blocked`).

use std::time::Duration;

use bottle_core::body::{empty, full};
use bottle_core::{BoxBody, Refusal, RefusalKind};
use http::{header, HeaderMap, Response, StatusCode};

use crate::config::RepoConfig;
use crate::state::State;

/// How the sidecar names itself in refusals and audit lines.
pub const COMPONENT: &str = "git-gate";
/// How long the client may stay silent while sending a body.
pub const BODY_IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// The two git services git-gate offers (`upload-archive` and the dumb protocol are not).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Service {
    UploadPack,
    ReceivePack,
}

impl Service {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Service::UploadPack => "git-upload-pack",
            Service::ReceivePack => "git-receive-pack",
        }
    }
}

/// A refusal of the request itself (not of a ref): the kind's status, the reason,
/// `X-Bottle-Blocked`. None of git-gate's request refusals is something the agent could ask
/// for (repositories and endpoints are the operator's), so there are no ask lines.
pub(crate) fn refuse(kind: RefusalKind, reason: impl Into<String>) -> Response<BoxBody> {
    Refusal::of(kind, reason).response(COMPONENT)
}

/// receive-pack checks objects (fsck, size) and hands every push to git-gate's hook; its
/// own ref checks are off because the hook applies the policy.
fn receive_pack_config(gate: &State, repo: &RepoConfig) -> Vec<String> {
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

/// upload-pack serves only what is reachable from the mirror's refs; no bundle URIs or
/// object-info that would point the client elsewhere.
fn upload_pack_config() -> Vec<String> {
    vec![
        "uploadpack.allowFilter=true".into(),
        "uploadpack.allowAnySHA1InWant=false".into(),
        "uploadpack.advertiseBundleURIs=false".into(),
        "transfer.advertiseObjectInfo=false".into(),
    ]
}

/// `git upload-pack|receive-pack --stateless-rpc` on the mirror of `repo`, in git-gate's
/// clean environment.
pub(crate) fn git_service_cmd(
    gate: &State,
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

/// Whether the request's media type (parameters ignored) is `want`.
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

/// A receive-pack result body (report-status, side-band framed as the client asked).
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
