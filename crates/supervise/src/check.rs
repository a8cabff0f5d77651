//! `/v1/check`: would a request to this URL pass, and which rule decides.
//!
//! The policy is read from the live config directory (`allowlist`, `routes.yaml`) on every
//! call, so the answer follows reloads with no signal. [`decide`] is the one place that
//! judges: when the sidecars' own decision functions are shared (issue 14, e.g.
//! `pipelock::policy::decide_*`), it becomes that one call.

use std::path::Path;

use bottle_core::{Allowlist, Host, RoutesFile};
use serde::Serialize;

/// The live policy files.
pub struct Policy {
    pub allowlist: Allowlist,
    pub routes: RoutesFile,
}

impl Policy {
    /// Reads `dir/allowlist` and `dir/routes.yaml` (a missing file is an empty one).
    pub fn load(dir: &Path) -> Result<Policy, String> {
        let read = |name: &str| match std::fs::read_to_string(dir.join(name)) {
            Ok(t) => Ok(t),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(String::new()),
            Err(e) => Err(format!("reading {name}: {e}")),
        };
        let allowlist = Allowlist::parse(&read("allowlist")?, &dir.join("allowlist"))
            .map_err(|e| e.to_string())?;
        let routes_text = read("routes.yaml")?;
        let routes = if routes_text.trim().is_empty() {
            RoutesFile::empty()
        } else {
            RoutesFile::parse(&routes_text, &dir.join("routes.yaml")).map_err(|e| e.to_string())?
        };
        Ok(Policy { allowlist, routes })
    }
}

/// The request asked about.
#[derive(Debug, Clone)]
pub struct Target {
    pub scheme: String,
    pub host: Host,
    pub port: u16,
    pub method: http::Method,
    pub path: String,
}

impl Target {
    /// Parses an absolute `http://` or `https://` URL and a method (default GET).
    pub fn parse(url: &str, method: Option<&str>) -> Result<Target, String> {
        if url.len() > 4096 {
            return Err("url is longer than 4096 bytes".into());
        }
        let uri: http::Uri = url.parse().map_err(|e| format!("invalid url: {e}"))?;
        let scheme = uri.scheme_str().unwrap_or("").to_ascii_lowercase();
        let default_port = match scheme.as_str() {
            "http" => 80,
            "https" => 443,
            _ => return Err("url must be absolute http:// or https://".into()),
        };
        let authority = uri.authority().ok_or("url has no host")?.as_str();
        if authority.contains('@') {
            return Err("url must not carry credentials (user@host)".into());
        }
        let (host, port) = bottle_core::split_host_port(authority, default_port)
            .map_err(|e| format!("invalid host: {e}"))?;
        let method = method
            .unwrap_or("GET")
            .to_ascii_uppercase()
            .parse::<http::Method>()
            .map_err(|_| "invalid method".to_string())?;
        Ok(Target {
            scheme,
            host,
            port,
            method,
            path: uri.path().to_owned(),
        })
    }
}

/// The answer: allowed or not, the deciding rule, and in words why.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Verdict {
    pub allowed: bool,
    /// `ssrf`, `route`, `allowlist` or `default-deny`.
    pub rule: String,
    pub detail: String,
}

/// Judges `t` against `policy` in the sidecars' order: SSRF refusal of private address
/// literals, then the egress route for the host (its method and path filters decide), then
/// the allowlist, else refused. Names are not resolved here: a name that resolves to a
/// private address is still refused by the sidecars at connect time.
pub fn decide(policy: &Policy, t: &Target) -> Verdict {
    let hostport = format!("{}:{}", t.host, t.port);
    if let Host::Ip(ip) = &t.host {
        let ip = bottle_core::host::canonical_ip(*ip);
        if let Some(why) = bottle_core::ssrf::private_reason(ip) {
            if !policy.allowlist.covers_addr(ip) {
                return Verdict {
                    allowed: false,
                    rule: "ssrf".into(),
                    detail: format!("{hostport} is a {why} address"),
                };
            }
        }
    }
    if let Some(route) = policy
        .routes
        .routes
        .iter()
        .find(|r| r.host.matches(&t.host, t.port))
    {
        let allowed = route.accepts(&t.method, &t.path);
        let what = if allowed { "allows" } else { "does not allow" };
        return Verdict {
            allowed,
            rule: "route".into(),
            detail: format!(
                "routes.yaml line {} (host {}) {what} {} {}",
                route.line, route.host, t.method, t.path
            ),
        };
    }
    if policy.allowlist.allows(&t.host, t.port) {
        let line = match &t.host {
            Host::Name(_) => policy
                .allowlist
                .patterns()
                .iter()
                .find(|p| p.matches(&t.host, t.port))
                .map(|p| format!("allowlist entry `{p}`")),
            Host::Ip(_) => None,
        };
        let line = line.unwrap_or_else(|| "an allowlist address or CIDR line".to_owned());
        return Verdict {
            allowed: true,
            rule: "allowlist".into(),
            detail: format!("{line} allows {hostport}"),
        };
    }
    Verdict {
        allowed: false,
        rule: "default-deny".into(),
        detail: format!("host not allowed: {hostport} is in neither the allowlist nor routes"),
    }
}
