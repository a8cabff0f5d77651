//! The smart-HTTP front end: routes a request to one of the only endpoints that exist, for
//! configured repositories only, takes one config snapshot for it, and audits and counts it:
//!
//! - `GET  /<name>.git/info/refs?service=git-upload-pack|git-receive-pack` (`fetch.rs`)
//! - `POST /<name>.git/git-upload-pack` (`fetch.rs`)
//! - `POST /<name>.git/git-receive-pack` (`receive.rs`)
//!
//! Everything else (dumb HTTP, WebDAV, LFS, archives, other names, odd spellings) is refused.

use std::sync::Arc;

use bottle_core::serve::{ServeLimits, ServeOptions};
use bottle_core::{AuditDecision, BoxBody, Refusal, RefusalKind, RequestContext};
use http::{Method, Request, Response};
use hyper::body::Incoming;
use tokio::net::TcpListener;

use crate::smart_http::{Service, COMPONENT};
use crate::state::State;
use crate::{fetch, receive};

#[derive(Debug, PartialEq, Eq)]
enum Endpoint {
    InfoRefs(Service),
    Rpc(Service),
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
fn route(method: &Method, path: &str, query: Option<&str>) -> Result<(String, Endpoint), Refusal> {
    let not_git = || {
        Refusal::of(
            RefusalKind::NotGitEndpoint,
            "not a git smart-HTTP endpoint (only /<repo>.git/info/refs, git-upload-pack, git-receive-pack)",
        )
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
                _ => return Err(Refusal::of(
                    RefusalKind::DumbHttp,
                    "dumb HTTP is not supported: use service=git-upload-pack or git-receive-pack",
                )),
            }
        }
        (&Method::POST, "git-upload-pack") if query.is_none() => Endpoint::Rpc(Service::UploadPack),
        (&Method::POST, "git-receive-pack") if query.is_none() => {
            Endpoint::Rpc(Service::ReceivePack)
        }
        (_, "info/refs" | "git-upload-pack" | "git-receive-pack") => {
            return Err(Refusal::of(
                RefusalKind::EndpointMethod,
                "method not allowed",
            ))
        }
        _ => return Err(not_git()),
    };
    Ok((name.to_string(), ep))
}

/// Accepts connections until `shutdown` resolves, then gives requests in flight up to the
/// drain time to finish (a push holds its own task and finishes regardless). The listener
/// limits (connection cap, idle and header-read timeouts, head caps) are bottle-core's.
pub async fn serve(
    gate: Arc<State>,
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
pub async fn handle(gate: Arc<State>, req: Request<Incoming>) -> Response<BoxBody> {
    let mut ctx = RequestContext::new(COMPONENT, "request");
    ctx.method = req.method().to_string();
    ctx.scheme = "http";
    ctx.path = req.uri().path().chars().take(200).collect();
    let (name, ep) = match route(req.method(), req.uri().path(), req.uri().query()) {
        Ok(r) => r,
        Err(r) => return refuse_request(&gate, &ctx, r),
    };
    let path = req.uri().path().to_string();
    // One config snapshot for the whole request.
    let cfg = (gate.config)();
    let Some(repo) = cfg.repo(&name) else {
        let r = Refusal::of(
            RefusalKind::UnknownRepository,
            format!("unknown repository: {name}"),
        );
        return refuse_request(&gate, &ctx, r);
    };
    let resp = match ep {
        Endpoint::InfoRefs(svc) => fetch::info_refs(&gate, &repo, svc, req.headers()).await,
        Endpoint::Rpc(Service::UploadPack) => fetch::upload_pack(&gate, &repo, req).await,
        Endpoint::Rpc(Service::ReceivePack) => receive::receive_pack(&gate, &repo, req).await,
    };
    if matches!(
        ep,
        Endpoint::InfoRefs(_) | Endpoint::Rpc(Service::UploadPack)
    ) {
        ctx.event = if matches!(ep, Endpoint::InfoRefs(_)) {
            "advertise"
        } else {
            "fetch"
        };
        ctx.path = path;
        ctx.extra
            .insert("repo".into(), serde_json::Value::from(name.clone()));
        let decision = if resp.status().is_success() {
            AuditDecision::Allow
        } else {
            AuditDecision::Error
        };
        gate.audit
            .record(ctx.event(decision, None, Some(resp.status().as_u16())));
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

/// A request refused before any git service runs: counted, audited as `deny` (with its kind
/// as `refusal`) and answered, all from the one refusal.
fn refuse_request(gate: &State, ctx: &RequestContext, r: Refusal) -> Response<BoxBody> {
    gate.metrics.request("other", "refused");
    let mut ev = ctx.refusal_event(&r);
    // Every request refusal here is a policy decision about the endpoint, whatever its status.
    ev.decision = AuditDecision::Deny;
    gate.audit.record(ev);
    r.response(COMPONENT)
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
        let kind = |m: &Method, p: &str, q: Option<&str>| route(m, p, q).err().map(|r| r.kind);
        assert_eq!(
            kind(&g, "/demo.git/info/refs", None),
            Some(RefusalKind::DumbHttp)
        );
        assert_eq!(
            kind(&g, "/demo.git/HEAD", None),
            Some(RefusalKind::NotGitEndpoint)
        );
        assert_eq!(
            kind(&p, "/demo.git/info/refs", None),
            Some(RefusalKind::EndpointMethod)
        );
        assert!(route(
            &Method::from_bytes(b"PROPFIND").unwrap_or(Method::GET),
            "/demo.git/info/refs",
            None
        )
        .is_err());
    }
}
