//! How a refused agent asks the operator for access (issue 15): the access request it can
//! send to supervise, rendered as an exact `curl` line and as the MCP tool to call, and the
//! command the operator would run. The JSON matches supervise's request schema
//! (`crates/supervise/src/request.rs`, `Wire`) so the line is accepted as printed.
//!
//! Everything rendered here ends up in a response body the agent reads and may paste into a
//! shell, so the JSON is pure printable ASCII without a single quote (every other character is
//! a `\uXXXX` escape) and each shell word is single-quoted.

use std::fmt;
use std::str::FromStr;

use crate::host::Host;
use crate::refusal_kind::Askable;

/// The MCP tool supervise offers for access requests (`crates/supervise/src/mcp.rs`).
pub const REQUEST_ACCESS_TOOL: &str = "request_access";
/// The `reason` the rendered request carries: accepted as is, meant to be replaced.
pub const REASON_PLACEHOLDER: &str = "<say why you need it>";
/// Longest supervise URL accepted.
const MAX_URL_BYTES: usize = 200;
/// Longest path put into a route request (supervise's own limit).
const MAX_ASK_PATH_BYTES: usize = 256;
const METHODS: [&str; 9] = [
    "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "CONNECT", "TRACE",
];

/// supervise's base URL as the agent reaches it (`--supervise-url`), e.g.
/// `http://supervise:8070`. No user info, query or fragment; no trailing `/`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SuperviseUrl(String);

impl SuperviseUrl {
    /// The base URL, without a trailing `/`.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for SuperviseUrl {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim().trim_end_matches('/');
        let rest = s
            .strip_prefix("http://")
            .or_else(|| s.strip_prefix("https://"))
            .ok_or_else(|| {
                format!(
                    "supervise URL `{}` must start with http:// or https://",
                    s.escape_default()
                )
            })?;
        if rest.is_empty() || s.len() > MAX_URL_BYTES {
            return Err("supervise URL needs a host and at most 200 bytes".into());
        }
        // Only characters that need no quoting anywhere: the URL is printed into shell lines.
        let plain = rest
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~:/[]%".contains(&b));
        if !plain {
            return Err(format!(
                "supervise URL `{}` may hold only a host, port and path (no user info, query or quoting characters)",
                s.escape_default()
            ));
        }
        Ok(SuperviseUrl(s.to_string()))
    }
}

impl fmt::Display for SuperviseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What the agent would ask for: one supervise access request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AskAccess {
    /// An allowlist entry (`bottle allow HOST`).
    Host { host: String },
    /// An egress route for `host`, optionally narrowed to paths and methods.
    Route {
        host: String,
        paths: Option<Vec<String>>,
        methods: Option<Vec<String>>,
    },
    /// A push rule for `refname` in git-gate's `repo`.
    GitRef {
        repo: String,
        refname: String,
        allow: Vec<String>,
    },
}

/// `host` or `host:port` as `bottle allow` takes it, when the operator's own command would
/// accept it (never a private, metadata or over-broad entry, never a non-ASCII lookalike).
fn entry_for(host: &Host, port: u16) -> Option<String> {
    if !crate::hint::may_suggest(host) {
        return None;
    }
    let entry = if port == 80 || port == 443 {
        host.to_string()
    } else {
        host.to_authority(port)
    };
    (entry.is_ascii() && crate::allow_entry::refusal(&entry).is_none()).then_some(entry)
}

/// A path supervise accepts as a glob matching only itself.
fn literal_path(path: &str) -> Option<String> {
    let plain = path.starts_with('/')
        && path.len() <= MAX_ASK_PATH_BYTES
        && path
            .bytes()
            .all(|b| b.is_ascii_graphic() && !b"*?[]{}!\\".contains(&b));
    let p = path.to_string();
    (plain && crate::routes::PathGlobs::new(std::slice::from_ref(&p)).is_ok()).then_some(p)
}

impl AskAccess {
    /// Ask for `host:port` on the allowlist; `None` when asking for it is never advice.
    pub fn host(host: &Host, port: u16) -> Option<AskAccess> {
        entry_for(host, port).map(|host| AskAccess::Host { host })
    }

    /// Ask for a route to `host:port` covering `path` and `method` where they are plain
    /// (a path with glob characters is left out rather than asked for as a glob).
    pub fn route(
        host: &Host,
        port: u16,
        path: Option<&str>,
        method: Option<&str>,
    ) -> Option<AskAccess> {
        let host = entry_for(host, port)?;
        let paths = path.and_then(literal_path).map(|p| vec![p]);
        let methods = method
            .map(str::to_ascii_uppercase)
            .filter(|m| METHODS.contains(&m.as_str()))
            .map(|m| vec![m]);
        Some(AskAccess::Route {
            host,
            paths,
            methods,
        })
    }

    /// Which askable kind this request is.
    pub fn askable(&self) -> Askable {
        match self {
            AskAccess::Host { .. } => Askable::Host,
            AskAccess::Route { .. } => Askable::Route,
            AskAccess::GitRef { .. } => Askable::GitRef,
        }
    }

    /// The request body, as supervise's `POST /v1/requests` and the MCP tool take it.
    pub fn json(&self, reason: &str) -> String {
        let mut out = String::from("{");
        let mut field = |k: &str, v: String| {
            if out.len() > 1 {
                out.push(',');
            }
            out.push_str(&json_string(k));
            out.push(':');
            out.push_str(&v);
        };
        match self {
            AskAccess::Host { host } => {
                field("kind", json_string("host"));
                field("host", json_string(host));
            }
            AskAccess::Route {
                host,
                paths,
                methods,
            } => {
                field("kind", json_string("route"));
                field("host", json_string(host));
                if let Some(p) = paths {
                    field("paths", json_array(p));
                }
                if let Some(m) = methods {
                    field("methods", json_array(m));
                }
            }
            AskAccess::GitRef {
                repo,
                refname,
                allow,
            } => {
                field("kind", json_string("git-ref"));
                field("repo", json_string(repo));
                field("ref", json_string(refname));
                field("allow", json_array(allow));
            }
        }
        field("reason", json_string(reason));
        out.push('}');
        out
    }

    /// `curl ...` that files this request with supervise, as one shell line.
    pub fn curl_line(&self, url: &SuperviseUrl) -> String {
        format!(
            "curl -s -X POST {} -H 'content-type: application/json' -d {}",
            shell_quote(&format!("{url}/v1/requests")),
            shell_quote(&self.json(REASON_PLACEHOLDER))
        )
    }

    /// The MCP tool call carrying the same request.
    pub fn mcp_line(&self, url: &SuperviseUrl) -> String {
        format!(
            "tool {REQUEST_ACCESS_TOOL} at {url}/mcp, arguments {}",
            self.json(REASON_PLACEHOLDER)
        )
    }

    /// What the operator runs to grant it directly.
    pub fn operator_line(&self) -> String {
        match self {
            AskAccess::Host { host } => format!("bottle allow {host}"),
            AskAccess::Route {
                host,
                paths,
                methods,
            } => {
                let mut s = format!("add a route for {host}");
                if let Some(p) = paths {
                    s.push_str(&format!(" (paths {})", p.join(", ")));
                }
                if let Some(m) = methods {
                    s.push_str(&format!(" (methods {})", m.join(", ")));
                }
                s.push_str(" to the bottle's manifest");
                s
            }
            AskAccess::GitRef {
                repo,
                refname,
                allow,
            } => format!(
                "add a push rule for {refname} ({}) on repo {repo} to the bottle's manifest",
                allow.join(", ")
            ),
        }
    }
}

/// A JSON string of printable ASCII only: quotes, backslashes, single quotes, controls and
/// everything non-ASCII become escapes, so no byte can end a shell quote or steer a terminal.
pub(crate) fn json_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            ' '..='~' if c != '\'' => out.push(c),
            _ => {
                let mut units = [0u16; 2];
                for u in c.encode_utf16(&mut units) {
                    out.push_str(&format!("\\u{u:04x}"));
                }
            }
        }
    }
    out.push('"');
    out
}

fn json_array(items: &[String]) -> String {
    let parts: Vec<String> = items.iter().map(|s| json_string(s)).collect();
    format!("[{}]", parts.join(","))
}

/// One single-quoted shell word (`'` written as `'\''`).
pub(crate) fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

#[cfg(test)]
#[path = "refusal_ask_tests.rs"]
mod tests;
