//! "Would egress pass this request, and which rule decides?": [`policy::decide`] run on a
//! method and an absolute URL, for `bottle why` and supervise's `/v1/check` (issue 15).
//!
//! Those callers hold no secret, so the config is built without credential values
//! ([`decision_config`]): every decision but one reads only the routes and the allowlist
//! (which route has `auth`, never its value). The exception, refusing non-WebSocket
//! upgrades while anything is injected, needs headers a URL does not carry.

use bottle_core::{split_host_port, LiveConfig, Refusal, RefusalKind};
use http::{HeaderMap, Method, Uri};

use crate::config::EgressConfig;
use crate::policy::{self, Decision, Matched, Target};

/// egress's config for deciding only: the live routes and allowlist, no credential loaded
/// (nothing to inject, nothing to scrub), so no secret needs to be present.
pub fn decision_config(live: LiveConfig) -> EgressConfig {
    let creds = vec![None; live.routes.routes.len()];
    EgressConfig {
        live,
        creds,
        all_patterns: None,
    }
}

/// Runs egress's route decision on `method url` as pipelock forwards it (absolute form,
/// no headers of the agent's that matter here).
pub fn would_pass(cfg: &EgressConfig, method: &Method, url: &Uri) -> Result<Decision, Refusal> {
    let https = match url.scheme_str() {
        Some("https") => true,
        Some("http") => false,
        _ => {
            return Err(Refusal::of(
                RefusalKind::BadTarget,
                "egress expects absolute-form requests (GET https://host/path)",
            ))
        }
    };
    let authority = url.authority().map(|a| a.as_str()).unwrap_or("");
    let (host, port) = split_host_port(authority, if https { 443 } else { 80 })
        .map_err(|e| Refusal::of(RefusalKind::BadTarget, format!("bad host: {e}")))?;
    let headers = HeaderMap::new();
    policy::decide(
        cfg,
        &Target {
            https,
            host: &host,
            port,
            method,
            path: url.path(),
            query: url.query(),
            headers: &headers,
        },
    )
}

/// The rule an allowed decision names: `routes.yaml line 4: api.github.com` or `allowlist`.
pub fn rule_of(cfg: &EgressConfig, decision: &Decision) -> String {
    match decision.matched {
        Matched::Route(i) => match cfg.live.routes.routes.get(i) {
            Some(r) => format!("routes.yaml line {}: {}", r.line, r.host),
            None => format!("route {i}"),
        },
        Matched::Allowlist => "no route; allowlist".into(),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn cfg(routes: &str, allow: &str) -> EgressConfig {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("routes.yaml"), routes).unwrap();
        std::fs::write(dir.path().join("allowlist"), allow).unwrap();
        decision_config(LiveConfig::load(dir.path()).unwrap())
    }

    const ROUTES: &str = "routes:\n  - host: api.example\n    paths: [\"/repos/**\"]\n    methods: [GET]\n    auth:\n      scheme: bearer\n      token_env: NOT_SET_ANYWHERE_H7\n";

    #[test]
    fn decides_routes_with_auth_without_any_secret() {
        let c = cfg(ROUTES, "files.example\n");
        let get: Uri = "https://api.example/repos/x".parse().unwrap();
        let d = would_pass(&c, &Method::GET, &get).unwrap();
        assert_eq!(rule_of(&c, &d), "routes.yaml line 2: api.example");
        let r = would_pass(&c, &Method::DELETE, &get).unwrap_err();
        assert_eq!(r.kind, RefusalKind::MethodNotAllowed);
        let clear: Uri = "http://api.example/repos/x".parse().unwrap();
        let r = would_pass(&c, &Method::GET, &clear).unwrap_err();
        assert_eq!(r.kind, RefusalKind::CleartextCredential);
        let other: Uri = "https://files.example/a".parse().unwrap();
        let d = would_pass(&c, &Method::POST, &other).unwrap();
        assert_eq!(rule_of(&c, &d), "no route; allowlist");
        let push: Uri = "https://files.example/r.git/git-receive-pack"
            .parse()
            .unwrap();
        let r = would_pass(&c, &Method::POST, &push).unwrap_err();
        assert_eq!(r.kind, RefusalKind::GitPushOverHttps);
    }
}
