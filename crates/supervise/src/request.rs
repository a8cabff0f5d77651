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

/// Refuses a JSON object that names a field twice (`{"host":"a.com","host":"b.com"}`): parsers
/// disagree on which one counts, and the operator must see the one that is acted on.
pub fn check_unique_keys(bytes: &[u8]) -> Result<(), String> {
    struct UniqueKeys;
    impl<'de> Deserialize<'de> for UniqueKeys {
        fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            d.deserialize_any(UniqueKeys)
        }
    }
    impl<'de> serde::de::Visitor<'de> for UniqueKeys {
        type Value = UniqueKeys;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a JSON value")
        }
        fn visit_map<A: serde::de::MapAccess<'de>>(
            self,
            mut map: A,
        ) -> Result<UniqueKeys, A::Error> {
            let mut seen = std::collections::HashSet::new();
            while let Some(key) = map.next_key::<String>()? {
                if !seen.insert(key.clone()) {
                    return Err(serde::de::Error::custom(format!(
                        "duplicate field `{}`",
                        key.escape_default()
                    )));
                }
                map.next_value::<UniqueKeys>()?;
            }
            Ok(UniqueKeys)
        }
        fn visit_seq<A: serde::de::SeqAccess<'de>>(
            self,
            mut seq: A,
        ) -> Result<UniqueKeys, A::Error> {
            while seq.next_element::<UniqueKeys>()?.is_some() {}
            Ok(UniqueKeys)
        }
        fn visit_bool<E>(self, _: bool) -> Result<UniqueKeys, E> {
            Ok(UniqueKeys)
        }
        fn visit_i64<E>(self, _: i64) -> Result<UniqueKeys, E> {
            Ok(UniqueKeys)
        }
        fn visit_u64<E>(self, _: u64) -> Result<UniqueKeys, E> {
            Ok(UniqueKeys)
        }
        fn visit_f64<E>(self, _: f64) -> Result<UniqueKeys, E> {
            Ok(UniqueKeys)
        }
        fn visit_str<E>(self, _: &str) -> Result<UniqueKeys, E> {
            Ok(UniqueKeys)
        }
        fn visit_unit<E>(self) -> Result<UniqueKeys, E> {
            Ok(UniqueKeys)
        }
    }
    serde_json::from_slice::<UniqueKeys>(bytes)
        .map(|_| ())
        .map_err(|e| format!("invalid request: {e}"))
}

/// Parses and validates `body`; the error is the reason to give the agent.
pub fn parse(body: &Value) -> Result<AccessRequest, String> {
    let wire: Wire = serde_json::from_value(body.clone()).map_err(|e| {
        format!("invalid request: {e} (expected {{\"kind\": \"host\"|\"route\"|\"git-ref\", ..., \"reason\": \"...\"}})")
    })?;
    match wire {
        Wire::Host { host, reason } => {
            let host = check_len("host", host.trim(), MAX_HOST_BYTES)?;
            if let Some(why) = bottle_core::allow_entry::agent_refusal(host) {
                return Err(why);
            }
            check_ascii_host(host)?;
            check_public_name(host)?;
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
            // An approved route opens its host as `bottle allow` does, so the agent's route
            // host meets the allowlist's rule, not the manifest's looser one for routes
            // (private and loopback targets are the operator's to write, e.g. egress's own
            // admin port on 127.0.0.1 must never be one click away).
            if let Some(why) = bottle_core::allow_entry::agent_refusal(host) {
                return Err(why);
            }
            check_ascii_host(host)?;
            check_public_name(host)?;
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

/// Hosts from the agent must be ASCII (punycode for IDNs): a Unicode lookalike
/// (`gіthub.com` with a Cyrillic `і`) would read as a trusted name in the operator's terminal,
/// while `xn--gthub-n4e.com` does not. The operator's own `bottle allow` keeps accepting both.
fn check_ascii_host(host: &str) -> Result<(), String> {
    if host.is_ascii() {
        return Ok(());
    }
    let ascii = bottle_core::HostPattern::parse(host)
        .map(|p| format!(" (`{p}`)"))
        .unwrap_or_default();
    Err(format!(
        "`{}` is not ASCII: write the host in its ASCII (punycode) form{ascii}, which is what the operator sees and approves",
        host.escape_default()
    ))
}

/// Top-level names that only exist inside a private network (RFC 6762 `.local`, ICANN's
/// `.internal`, RFC 8375 `home.arpa`, and the undelegated ones that routers and companies use).
const PRIVATE_TLDS: &[&str] = &[
    "internal",
    "local",
    "localdomain",
    "lan",
    "home",
    "corp",
    "intranet",
    "private",
];

/// The agent asks for public hosts. A single-label name (`egress`, `pipelock`, `git-gate`: the
/// bottle's own services) or one under a private-use name (`host.docker.internal`,
/// `db.corp.internal`) can only mean the operator's network, and a click must not open it;
/// the operator's own `bottle allow` still accepts them. Addresses and CIDRs were judged by
/// [`bottle_core::allow_entry::refusal`] already.
fn check_public_name(host: &str) -> Result<(), String> {
    if host.contains('/') {
        return Ok(());
    }
    let Ok(p) = bottle_core::HostPattern::parse(host) else {
        return Ok(());
    };
    if matches!(p.exact_host(), Some(bottle_core::Host::Ip(_))) {
        return Ok(());
    }
    let shown = p.to_string().to_ascii_lowercase();
    let name = shown.strip_prefix("*.").unwrap_or(&shown);
    // `name[:port]`: names never hold a `:` (addresses were returned above).
    let name = name.split(':').next().unwrap_or(name).trim_end_matches('.');
    let last = name.rsplit('.').next().unwrap_or(name);
    let private = !name.contains('.')
        || PRIVATE_TLDS.contains(&last)
        || name == "home.arpa"
        || name.ends_with(".home.arpa");
    if private {
        return Err(format!(
            "`{}` names a host on a private network, not a public destination: the agent can ask only for public hosts (the operator can still `bottle allow` it)",
            host.escape_default()
        ));
    }
    Ok(())
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

/// Control, bidi, line-separator and invisible characters would let the agent rewrite what
/// the operator's terminal shows (`bottle requests`, `bottle watch`): a fake "approved" line,
/// reordered or hidden text (tag characters carry invisible ASCII).
pub fn is_deceptive(c: char) -> bool {
    c.is_control()
        || matches!(c,
            '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2060}'..='\u{206F}'
            | '\u{2028}' | '\u{2029}' | '\u{061C}' | '\u{180E}' | '\u{FEFF}'
            | '\u{FFF9}'..='\u{FFFB}' | '\u{E0000}'..='\u{E007F}')
}

/// `s` with every [`is_deceptive`] character written as its escape (`\u{9b}`): for the
/// agent's text quoted in supervise's own audit lines (a refusal quotes the field it refuses),
/// which the operator may read raw (`docker compose logs`); JSON escapes only C0 controls.
pub fn inert(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if is_deceptive(c) {
            out.extend(c.escape_unicode());
        } else {
            out.push(c);
        }
    }
    out
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
            assert_eq!(got.err(), bottle_core::allow_entry::agent_refusal(e), "{e}");
        }
        assert!(parse(&json!({"kind": "host", "host": "example.com", "reason": "docs"})).is_ok());
    }

    #[test]
    fn the_agent_is_not_told_to_force() {
        for e in ["*.com", "10.0.0.0/8", "169.254.169.254", "0.0.0.0/0"] {
            let why = parse(&json!({"kind": "host", "host": e, "reason": "r"})).unwrap_err();
            assert!(why.starts_with("refusing to allow"), "{e}: {why}");
            assert!(!why.contains("--force"), "{e}: {why}");
        }
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
    fn lookalike_hosts_must_be_punycode() {
        // All-Cyrillic `аррӏе.com` passes the parser's mixed-script check, yet reads as apple.com.
        for kind in ["host", "route"] {
            let err = parse(&json!({"kind": kind, "host": "\u{430}\u{440}\u{440}\u{4cf}\u{435}.com", "reason": "r"}))
                .err()
                .unwrap_or_default();
            assert!(err.contains("xn--"), "{kind}: {err}");
        }
        // A mixed-script label is refused by the shared parser, with its reason.
        let mixed = "g\u{456}thub.com";
        let err = parse(&json!({"kind": "host", "host": mixed, "reason": "r"})).err();
        assert!(err.is_some());
        assert_eq!(err, bottle_core::allow_entry::agent_refusal(mixed));
        assert!(
            parse(&json!({"kind": "host", "host": "xn--mnchen-3ya.de", "reason": "r"})).is_ok()
        );
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
        for bad in [
            "*.github.io",
            "127.0.0.1:9090",
            "localhost:9099",
            "10.20.0.7",
            "169.254.169.254",
        ] {
            let got = parse(&json!({"kind": "route", "host": bad, "reason": "r"})).err();
            assert_eq!(got, bottle_core::allow_entry::agent_refusal(bad), "{bad}");
            assert!(got.is_some(), "{bad}");
        }
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
