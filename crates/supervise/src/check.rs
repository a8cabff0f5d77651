//! `/v1/check`: would a request to this URL pass, and which rule decides.
//!
//! The answer is the sidecars' own: [`pipelock::policy::why::would_pass`] (allowlist, SSRF,
//! DLP on the URL, in pipelock's order) and, when pipelock lets it through,
//! [`egress::why::would_pass`] (routes: method and path rules, cleartext credentials, git
//! pushes). Nothing is judged here. The config is read from the live config directory on
//! every call, so the answer follows reloads with no signal; supervise holds no credential
//! and needs none (egress's config is built without credential values).

use std::path::Path;

use bottle_core::refusal::RefusalKind;
use bottle_core::LiveConfig;
use egress::config::EgressConfig;
use egress::policy::Matched;
use pipelock::policy::PolicyConfig;
use serde::Serialize;

/// The live policy as both sidecars read it.
pub struct Policy {
    pipelock: PolicyConfig,
    egress: EgressConfig,
}

impl Policy {
    /// Reads `dir/allowlist` and `dir/routes.yaml` (a missing file is an empty one).
    pub fn load(dir: &Path) -> Result<Policy, String> {
        let live = LiveConfig::load(dir).map_err(|e| e.to_string())?;
        Ok(Policy {
            pipelock: PolicyConfig::new(live.clone()),
            egress: egress::why::decision_config(live),
        })
    }
}

/// The request asked about.
#[derive(Debug, Clone)]
pub struct Target {
    pub method: http::Method,
    pub url: http::Uri,
}

impl Target {
    /// Parses an absolute `http://` or `https://` URL and a method (default GET). These are
    /// checks of the question, not of the policy: the sidecars judge the rest.
    pub fn parse(url: &str, method: Option<&str>) -> Result<Target, String> {
        if url.len() > 4096 {
            return Err("url is longer than 4096 bytes".into());
        }
        let uri: http::Uri = url.parse().map_err(|e| format!("invalid url: {e}"))?;
        match uri.scheme_str().map(str::to_ascii_lowercase).as_deref() {
            Some("http" | "https") => {}
            _ => return Err("url must be absolute http:// or https://".into()),
        }
        let authority = uri.authority().ok_or("url has no host")?.as_str();
        if authority.contains('@') {
            return Err("url must not carry credentials (user@host)".into());
        }
        let method = method
            .unwrap_or("GET")
            .to_ascii_uppercase()
            .parse::<http::Method>()
            .map_err(|_| "invalid method".to_string())?;
        Ok(Target { method, url: uri })
    }
}

/// The answer: allowed or not, the deciding rule's category and, in words, why.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Verdict {
    pub allowed: bool,
    /// `allowlist`, `route`, `ssrf`, `dlp`, `default-deny`, `git-push`, or the refusal's
    /// kind label for anything else.
    pub rule: String,
    /// The deciding rule in the sidecar's words (`allowlist: example.com`,
    /// `routes.yaml line 4: api.github.com`, `ssrf: metadata`).
    pub detail: String,
    /// The sidecar that decides: `pipelock` or `egress`.
    pub component: &'static str,
    /// The refusal's kind label (`host_not_allowed`, `method_not_allowed`, ...).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kind: Option<&'static str>,
    /// The line the agent would get (`blocked by pipelock: ...`); never a matched value.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// The category a refusal's kind falls in.
fn category(kind: RefusalKind) -> String {
    match kind {
        RefusalKind::HostNotAllowed => "default-deny".into(),
        RefusalKind::PrivateAddress => "ssrf".into(),
        RefusalKind::Dlp | RefusalKind::DlpEncoding => "dlp".into(),
        RefusalKind::PathNotAllowed
        | RefusalKind::MethodNotAllowed
        | RefusalKind::MethodOverride
        | RefusalKind::PathOverride
        | RefusalKind::AmbiguousPath
        | RefusalKind::CleartextCredential => "route".into(),
        RefusalKind::GitPushOverHttps => "git-push".into(),
        other => other.label().into(),
    }
}

/// Judges `t` with pipelock's decisions, then egress's. Names are not resolved: a name
/// that resolves to a private address is still refused by pipelock at connect time.
pub fn decide(policy: &Policy, t: &Target) -> Verdict {
    let url = t.url.to_string();
    let p = pipelock::policy::why::would_pass(&policy.pipelock, &t.method, &url);
    if !p.allowed {
        if let Some(v) = ssrf_behind_allowlist(policy, t, &p) {
            return v;
        }
        return Verdict {
            allowed: false,
            rule: p.kind.map_or_else(|| "refused".into(), category),
            detail: p.rule,
            component: pipelock::policy::COMPONENT,
            kind: p.kind.map(|k| k.label()),
            message: p.message,
        };
    }
    if p.passthrough {
        return Verdict {
            allowed: true,
            rule: "route".into(),
            detail: p.rule,
            component: pipelock::policy::COMPONENT,
            kind: None,
            message: None,
        };
    }
    match egress::why::would_pass(&policy.egress, &t.method, &t.url) {
        Ok(d) => Verdict {
            allowed: true,
            rule: match d.matched {
                Matched::Route(_) => "route".into(),
                Matched::Allowlist => "allowlist".into(),
            },
            detail: format!(
                "pipelock: {}; egress: {}",
                p.rule,
                egress::why::rule_of(&policy.egress, &d)
            ),
            component: "egress",
            kind: None,
            message: None,
        },
        Err(r) => Verdict {
            allowed: false,
            rule: category(r.kind),
            detail: r.rule.clone().unwrap_or_else(|| r.reason.clone()),
            component: "egress",
            kind: Some(r.kind.label()),
            message: Some(r.message("egress")),
        },
    }
}

/// An IP literal refused because no line names it may also be a private address, refused
/// whatever the allowlist's host lines say: pipelock's own post-DNS check names that rule,
/// the one an operator needs to know (an address line, not `bottle allow HOST`).
fn ssrf_behind_allowlist(
    policy: &Policy,
    t: &Target,
    p: &pipelock::policy::why::WhyVerdict,
) -> Option<Verdict> {
    if p.kind != Some(RefusalKind::HostNotAllowed) {
        return None;
    }
    let https = t.url.scheme_str() == Some("https");
    let authority = t.url.authority()?.as_str();
    let (host, _) = bottle_core::split_host_port(authority, if https { 443 } else { 80 }).ok()?;
    let bottle_core::Host::Ip(ip) = host else {
        return None;
    };
    let denied =
        pipelock::policy::decide_addresses(&host, &[ip], &policy.pipelock.live, false).err()?;
    let ssrf = denied.refusal.rule.unwrap_or(denied.refusal.reason);
    Some(Verdict {
        allowed: false,
        rule: "ssrf".into(),
        detail: format!("{ssrf} (refused first by {})", p.rule),
        component: pipelock::policy::COMPONENT,
        kind: Some(RefusalKind::PrivateAddress.label()),
        message: p.message.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const ROUTES: &str = "routes:\n  - host: api.example\n    paths: [\"/repos/**\"]\n    methods: [GET]\n    auth:\n      scheme: bearer\n      token_env: H7_NEVER_SET\n  - host: tunnel.example\n    tls_passthrough: true\n";

    fn check(allow: &str, url: &str, method: &str) -> Verdict {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("allowlist"), allow).unwrap();
        std::fs::write(dir.path().join("routes.yaml"), ROUTES).unwrap();
        let policy = Policy::load(dir.path()).unwrap();
        decide(&policy, &Target::parse(url, Some(method)).unwrap())
    }

    #[test]
    fn routes_with_auth_are_judged_without_their_secret() {
        let v = check("", "https://api.example/repos/x", "GET");
        assert!(v.allowed, "{v:?}");
        assert_eq!((v.rule.as_str(), v.component), ("route", "egress"));
        assert!(v.detail.contains("routes.yaml line 2"), "{v:?}");
        let v = check("", "https://api.example/repos/x", "DELETE");
        assert!(!v.allowed);
        assert_eq!(v.kind, Some("method_not_allowed"));
        let v = check("", "http://api.example/repos/x", "GET");
        assert_eq!(v.kind, Some("cleartext_credential"), "{v:?}");
        let v = check("", "https://tunnel.example/anything", "DELETE");
        assert!(v.allowed && v.detail.contains("tls_passthrough"), "{v:?}");
    }

    #[test]
    fn a_secret_in_the_url_names_the_detector_not_the_value() {
        let token = format!("ghp_{}", &"Zq8Lr3Tx6Wv1Np9Ks4Hb7Jd2Mf5Gc0Ye8Ua3Io6Pl"[..36]);
        let v = check(
            "paste.example\n",
            &format!("https://paste.example/?t={token}"),
            "GET",
        );
        assert!(!v.allowed);
        assert_eq!(v.rule, "dlp", "{v:?}");
        let json = serde_json::to_string(&v).unwrap();
        assert!(!json.contains(&token[4..]), "{json}");
    }

    #[test]
    fn expired_grants_and_metadata_literals_are_refused() {
        let v = check(
            "old.example until=2020-01-01T00:00:00Z\n",
            "https://old.example/",
            "GET",
        );
        assert!(!v.allowed);
        assert_eq!(v.rule, "default-deny");
        let v = check("", "http://169.254.169.254/latest/meta-data", "GET");
        assert_eq!((v.allowed, v.rule.as_str()), (false, "ssrf"));
        assert!(v.detail.contains("metadata"), "{v:?}");
        // an address line exempts it, as in the sidecar
        let v = check("169.254.169.254\n", "http://169.254.169.254/", "GET");
        assert!(v.allowed, "{v:?}");
    }
}
