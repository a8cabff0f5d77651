//! The smart-HTTP front end: routes a request to one of the only endpoints that exist, for
//! configured repositories only, takes one config snapshot for it, and audits and counts it:
//!
//! - `GET  /<name>.git/info/refs?service=git-upload-pack|git-receive-pack` (`fetch.rs`)
//! - `POST /<name>.git/git-upload-pack` (`fetch.rs`)
//! - `POST /<name>.git/git-receive-pack` (`receive.rs`)
//!
//! Everything else (dumb HTTP, WebDAV, LFS, archives, other names, odd spellings) is refused.

use std::sync::Arc;
use std::time::Instant;

use bottle_core::serve::{ServeLimits, ServeOptions};
use bottle_core::BoxBody;
use http::{Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use tokio::net::TcpListener;

use crate::gate::Gate;
use crate::smart_http::{refuse, Service, COMPONENT};
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
        Endpoint::InfoRefs(svc) => fetch::info_refs(&gate, &repo, svc, req.headers()).await,
        Endpoint::Rpc(Service::UploadPack) => fetch::upload_pack(&gate, &repo, req).await,
        Endpoint::Rpc(Service::ReceivePack) => receive::receive_pack(&gate, &repo, req).await,
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
