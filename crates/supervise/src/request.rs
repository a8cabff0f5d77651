//! An agent's access request, parsed and validated before anything is written. Host entries go
//! through [`bottle_core::allow_entry`], the code `bottle allow` uses, so the agent gets the
//! reason the operator's command would print. Unknown fields are refused: the agent cannot
//! name a credential (`auth`, `token_from`) or any setting the operator alone chooses.

use serde::Deserialize;
use serde_json::{json, Value};

/// Longest `reason`, in bytes.
pub const MAX_REASON_BYTES: usize = 1024;
/// Longest host (253-byte name, `*.`, `:port`) or CIDR accepted before parsing.
const MAX_HOST_BYTES: usize = 270;
const MAX_PATHS: usize = 16;
const MAX_PATH_BYTES: usize = 256;
const MAX_METHODS: usize = 9;
const MAX_REPO_BYTES: usize = 100;
const MAX_REF_BYTES: usize = 200;

/// The request as the agent sends it (JSON body or MCP tool arguments).
#[derive(Debug, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
enum Wire {
    Host {
        host: String,
        reason: String,
    },
    Route {
        host: String,
        #[serde(default)]
        paths: Option<Vec<String>>,
        #[serde(default)]
        methods: Option<Vec<String>>,
        reason: String,
    },
    GitRef {
        repo: String,
        #[serde(rename = "ref")]
        refname: String,
        allow: Vec<String>,
        reason: String,
    },
}

/// A valid request: its kind, its normalised fields and the reason.
#[derive(Debug, Clone, PartialEq)]
pub struct AccessRequest {
    pub kind: &'static str,
    pub ask: Value,
    pub reason: String,
}

/// Parses and validates `body`; the error is the reason to give the agent.
pub fn parse(body: &Value) -> Result<AccessRequest, String> {
    let wire: Wire = serde_json::from_value(body.clone()).map_err(|e| {
        format!("invalid request: {e} (expected {{\"kind\": \"host\"|\"route\"|\"git-ref\", ..., \"reason\": \"...\"}})")
    })?;
    match wire {
        Wire::Host { host, reason } => {
            let host = check_len("host", host.trim(), MAX_HOST_BYTES)?;
            if let Some(why) = bottle_core::allow_entry::refusal(host) {
                return Err(why);
            }
            Ok(AccessRequest {
                kind: "host",
                ask: json!({"host": host}),
                reason: check_reason(&reason)?,
            })
        }
        Wire::Route {
            host,
            paths,
            methods,
            reason,
        } => {
            let host = check_len("host", host.trim(), MAX_HOST_BYTES)?;
            bottle_core::HostPattern::parse(host)
                .map_err(|e| format!("route host `{host}`: {e}"))?;
            if let Some(why) = bottle_core::allow_entry::route_host_too_broad(host) {
                return Err(format!("refusing route host {why}"));
            }
            if let Some(paths) = &paths {
                check_paths(paths)?;
            }
            let methods = methods.map(|m| check_methods(&m)).transpose()?;
            Ok(AccessRequest {
                kind: "route",
                ask: json!({"host": host, "paths": paths, "methods": methods}),
                reason: check_reason(&reason)?,
            })
        }
        Wire::GitRef {
            repo,
            refname,
            allow,
            reason,
        } => {
            check_repo(&repo)?;
            check_ref(&refname)?;
            let allow = check_ref_actions(&allow)?;
            Ok(AccessRequest {
                kind: "git-ref",
                ask: json!({"repo": repo, "ref": refname, "allow": allow}),
                reason: check_reason(&reason)?,
            })
        }
    }
}

fn check_len<'a>(what: &str, s: &'a str, max: usize) -> Result<&'a str, String> {
    if s.is_empty() {
        return Err(format!("`{what}` is empty"));
    }
    if s.len() > max {
        return Err(format!("`{what}` is longer than {max} bytes"));
    }
    Ok(s)
}

/// Control and bidi-override characters would let the agent rewrite what the operator's
/// terminal shows (`bottle requests`, `bottle watch`): a fake "approved" line, hidden text.
fn is_deceptive(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2060}'..='\u{206F}' | '\u{FEFF}')
}

fn check_reason(reason: &str) -> Result<String, String> {
    let r = reason.trim();
    if r.is_empty() {
        return Err("`reason` is required: say why the access is needed".into());
    }
    if r.len() > MAX_REASON_BYTES {
        return Err(format!("`reason` is longer than {MAX_REASON_BYTES} bytes"));
    }
    if r.chars().any(is_deceptive) {
        return Err("`reason` must be one line of text without control or bidi characters".into());
    }
    Ok(r.to_owned())
}

fn check_paths(paths: &[String]) -> Result<(), String> {
    if paths.is_empty() || paths.len() > MAX_PATHS {
        return Err(format!("`paths` must list 1 to {MAX_PATHS} globs"));
    }
    for p in paths {
        check_len("paths", p, MAX_PATH_BYTES)?;
        if !p.starts_with('/') || p.chars().any(is_deceptive) {
            return Err(format!(
                "path glob `{p}` must start with `/` and be plain text"
            ));
        }
    }
    bottle_core::routes::PathGlobs::new(paths).map(|_| ())
}

fn check_methods(methods: &[String]) -> Result<Vec<String>, String> {
    if methods.is_empty() || methods.len() > MAX_METHODS {
        return Err(format!("`methods` must list 1 to {MAX_METHODS} methods"));
    }
    methods
        .iter()
        .map(|m| {
            let up = m.trim().to_ascii_uppercase();
            let known = [
                "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "CONNECT", "TRACE",
            ];
            if known.contains(&up.as_str()) {
                Ok(up)
            } else {
                Err(format!("`{}` is not an HTTP method", m.escape_default()))
            }
        })
        .collect()
}

fn check_repo(repo: &str) -> Result<(), String> {
    check_len("repo", repo, MAX_REPO_BYTES)?;
    let ok = repo
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        && !repo.starts_with('.');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "`{}` is not a repository name",
            repo.escape_default()
        ))
    }
}

/// A ref glob must name a place under `refs/<kind>/` with at least one literal segment below
/// it before any wildcard: `refs/**` or `refs/heads/*` would be every branch, `main` included.
fn check_ref(refname: &str) -> Result<(), String> {
    check_len("ref", refname, MAX_REF_BYTES)?;
    let plain = refname
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'/' | b'-' | b'_' | b'.' | b'*'));
    if !plain || refname.contains("..") || refname.contains("//") || refname.ends_with('/') {
        return Err(format!(
            "`{}` is not a ref name or glob",
            refname.escape_default()
        ));
    }
    let segs: Vec<&str> = refname.split('/').collect();
    let literal_prefix = segs.iter().take_while(|s| !s.contains('*')).count();
    if segs.first() != Some(&"refs") || literal_prefix < 3 || segs.len() < 3 {
        return Err(format!(
            "`{refname}` is too broad: name a ref under refs/<kind>/<name>/ (e.g. refs/heads/agent/**)"
        ));
    }
    globset::Glob::new(refname).map_err(|e| format!("ref glob `{refname}`: {e}"))?;
    Ok(())
}

fn check_ref_actions(allow: &[String]) -> Result<Vec<String>, String> {
    if allow.is_empty() || allow.len() > 4 {
        return Err("`allow` must list some of create, update, force, delete".into());
    }
    allow
        .iter()
        .map(|a| match a.as_str() {
            "create" | "update" | "force" | "delete" => Ok(a.clone()),
            other => Err(format!(
                "`{}` is not a ref action (create, update, force, delete)",
                other.escape_default()
            )),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_refusals_are_bottle_allows() {
        for e in ["*.com", "10.0.0.0/8", "169.254.169.254", "a b", "x.com#y"] {
            let got = parse(&json!({"kind": "host", "host": e, "reason": "r"}));
            assert_eq!(got.err(), bottle_core::allow_entry::refusal(e), "{e}");
        }
        assert!(parse(&json!({"kind": "host", "host": "example.com", "reason": "docs"})).is_ok());
    }

    #[test]
    fn agent_cannot_name_a_credential_or_unknown_field() {
        for body in [
            json!({"kind": "route", "host": "api.github.com", "reason": "r", "auth": {"token_from": "GITHUB_TOKEN"}}),
            json!({"kind": "host", "host": "example.com", "reason": "r", "force": true}),
            json!({"kind": "allowlist", "host": "example.com", "reason": "r"}),
            json!({"host": "example.com", "reason": "r"}),
        ] {
            assert!(parse(&body).is_err(), "{body}");
        }
    }

    #[test]
    fn deceptive_reasons_refused() {
        for r in [
            "",
            "  ",
            "ok\u{1b}[2K\rapproved",
            "line\nline",
            "abc\u{202e}fdp",
            &"x".repeat(1025),
        ] {
            assert!(
                parse(&json!({"kind": "host", "host": "example.com", "reason": r})).is_err(),
                "{r:?}"
            );
        }
        assert!(
            parse(&json!({"kind": "host", "host": "example.com", "reason": "é ünïcode ok"}))
                .is_ok()
        );
    }

    #[test]
    fn routes_and_refs() {
        assert!(parse(&json!({"kind": "route", "host": "api.github.com", "paths": ["/repos/a/**"], "methods": ["get"], "reason": "r"})).is_ok());
        assert!(parse(&json!({"kind": "route", "host": "*.github.io", "reason": "r"})).is_err());
        assert!(parse(&json!({"kind": "route", "host": "api.x.com", "methods": ["GET\r\nX: y"], "reason": "r"})).is_err());
        assert!(parse(
            &json!({"kind": "route", "host": "api.x.com", "paths": ["repos"], "reason": "r"})
        )
        .is_err());
        for bad in [
            "refs/**",
            "refs/heads/*",
            "**",
            "refs/heads/../x",
            "refs/heads/a b",
            "main",
        ] {
            assert!(parse(&json!({"kind": "git-ref", "repo": "demo", "ref": bad, "allow": ["update"], "reason": "r"})).is_err(), "{bad}");
        }
        assert!(parse(&json!({"kind": "git-ref", "repo": "demo", "ref": "refs/heads/agent/**", "allow": ["create", "update"], "reason": "r"})).is_ok());
        assert!(parse(&json!({"kind": "git-ref", "repo": "../x", "ref": "refs/heads/agent/x", "allow": ["update"], "reason": "r"})).is_err());
    }
}
