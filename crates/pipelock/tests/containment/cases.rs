//! The corpus format: one YAML file per class under `containment/cases/`, each
//! `{class, cases: [...]}`; a case names its transport and carries its payload as a template
//! (see `secrets::expand`), so secrets are generated, never pasted.

use std::path::Path;

use serde::Deserialize;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    class: String,
    cases: Vec<RawCase>,
}

#[derive(Deserialize, Clone)]
#[serde(deny_unknown_fields)]
struct RawCase {
    id: String,
    label: String,
    #[serde(default = "default_profile")]
    profile: String,
    transport: String,
    #[serde(default)]
    payload: String,
    /// Second response (mcp-rug-pull: the tools list served the second time).
    #[serde(default)]
    payload2: Option<String>,
    /// WebSocket fragments, or the hosts of a subdomain burst.
    #[serde(default)]
    parts: Vec<String>,
    /// What must not arrive (outbound: at the origin; inbound: at the agent). Default: the
    /// first `{{...}}` of the payload.
    #[serde(default)]
    canary: Option<String>,
    #[serde(default)]
    content_type: Option<String>,
    #[serde(default)]
    path: Option<String>,
    /// Response served gzip-compressed.
    #[serde(default)]
    gzip: bool,
    /// Response body in frames of this many bytes.
    #[serde(default)]
    chunk: Option<usize>,
    /// MCP responses as an SSE stream (Streamable HTTP) instead of JSON.
    #[serde(default)]
    sse: bool,
    /// A ping between WebSocket fragments.
    #[serde(default)]
    ping_between: bool,
    /// Response body encoded as UTF-16LE (`charset=utf-16le`).
    #[serde(default)]
    utf16: bool,
    /// mcp-rug-pull: the changed listing comes under a new `Mcp-Session-Id`.
    #[serde(default)]
    new_session: bool,
    /// How the agent reaches the proxy: `h1` (default), `h2` or `plain`.
    #[serde(default = "default_via")]
    via: String,
    why: String,
}

fn default_via() -> String {
    "h1".into()
}

fn default_profile() -> String {
    "default".into()
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Label {
    Attack,
    Benign,
}

/// A case with its templates expanded.
#[derive(Clone, Debug)]
pub struct Case {
    pub id: String,
    pub class: String,
    pub label: Label,
    pub profile: String,
    pub transport: String,
    pub payload: String,
    pub payload2: Option<String>,
    pub parts: Vec<String>,
    pub canary: String,
    pub content_type: Option<String>,
    pub path: Option<String>,
    pub gzip: bool,
    pub chunk: Option<usize>,
    pub sse: bool,
    pub ping_between: bool,
    pub utf16: bool,
    pub via: String,
    pub new_session: bool,
    pub why: String,
}

impl Case {
    pub fn attack(&self) -> bool {
        self.label == Label::Attack
    }
    /// The allowlist entry covering this case's hosts.
    pub fn site(&self) -> Option<String> {
        self.hosts()
            .first()
            .map(|_| format!("*.{}.test:*", self.id))
    }
    /// The host the case's HTTP requests go to: each MCP and A2A case is its own server
    /// (`srv.<id>.test`), so state pipelock keeps per server (pinned tool definitions) sees
    /// one case at a time, as with real servers; everything else goes to `echo.test`.
    pub fn origin_host(&self) -> String {
        if self.transport.starts_with("mcp-") || self.transport.starts_with("a2a-") {
            format!("srv.{}.test", self.id)
        } else {
            "echo.test".into()
        }
    }
    /// Host names this case connects to (pinned to 127.0.0.1 and in the origin's leaf).
    pub fn hosts(&self) -> Vec<String> {
        match self.transport.as_str() {
            "connect-host" => vec![self.payload.clone()],
            "subdomain-burst" => self.parts.clone(),
            _ if self.origin_host() != "echo.test" => vec![self.origin_host()],
            _ => vec![],
        }
    }
}

const TRANSPORTS: &[&str] = &[
    "http-url",
    "http-header",
    "http-body",
    "ws-message",
    "ws-fragments",
    "ws-rsv1",
    "ws-ping",
    "ws-binary",
    "http-burst",
    "response-page",
    "response-sse",
    "mcp-tools-list",
    "mcp-tools-call-result",
    "mcp-rug-pull",
    "mcp-call-args",
    "a2a-card",
    "a2a-message-in",
    "a2a-message-out",
    "connect-host",
    "subdomain-burst",
];

/// Loads every `*.yaml` under `dir`, sorted by file name.
pub fn load(dir: &Path) -> Result<Vec<Case>, String> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .map_err(|e| format!("{}: {e}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    files.sort();
    let mut out = Vec::new();
    let mut ids = std::collections::HashSet::new();
    for f in files {
        let text = std::fs::read_to_string(&f).map_err(|e| format!("{}: {e}", f.display()))?;
        let file: File =
            serde_yaml::from_str(&text).map_err(|e| format!("{}: {e}", f.display()))?;
        for raw in file.cases {
            if !ids.insert(raw.id.clone()) {
                return Err(format!("duplicate case id {}", raw.id));
            }
            out.push(expand_case(&file.class, raw)?);
        }
    }
    Ok(out)
}

fn expand_case(class: &str, raw: RawCase) -> Result<Case, String> {
    use super::secrets::expand;
    let id = raw.id.clone();
    let label = match raw.label.as_str() {
        "attack" => Label::Attack,
        "benign" => Label::Benign,
        other => return Err(format!("{id}: label {other}")),
    };
    if !TRANSPORTS.contains(&raw.transport.as_str()) {
        return Err(format!("{id}: unknown transport {}", raw.transport));
    }
    let outbound_http = [
        "http-url",
        "http-header",
        "http-body",
        "http-burst",
        "mcp-call-args",
        "a2a-message-out",
    ];
    if !["h1", "h2", "plain"].contains(&raw.via.as_str())
        || (raw.via != "h1" && !outbound_http.contains(&raw.transport.as_str()))
    {
        return Err(format!("{id}: via {} with {}", raw.via, raw.transport));
    }
    if !["default", "strict"].contains(&raw.profile.as_str()) {
        return Err(format!("{id}: profile {}", raw.profile));
    }
    // Every host case is its own site: `wild.test` becomes `<id>.test`, so a heuristic that
    // counts subdomains per domain sees one case at a time, whatever ran before.
    let hosty = ["connect-host", "subdomain-burst"].contains(&raw.transport.as_str());
    let site = |h: String| {
        if hosty {
            h.replace("wild.test", &format!("{id}.test"))
        } else {
            h
        }
    };
    let payload = site(expand(&id, &raw.payload)?);
    let canary_template = match &raw.canary {
        Some(c) => c.clone(),
        None => first_template(&raw.payload).unwrap_or_default(),
    };
    let canary = expand(&id, &canary_template)?;
    if label == Label::Attack
        && canary.is_empty()
        && !["ws-rsv1", "subdomain-burst", "http-burst"].contains(&raw.transport.as_str())
    {
        return Err(format!("{id}: an attack needs a canary"));
    }
    let parts = raw
        .parts
        .iter()
        .map(|p| expand(&id, p).map(site))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Case {
        id: raw.id,
        class: class.to_string(),
        label,
        profile: raw.profile,
        transport: raw.transport,
        payload,
        payload2: raw.payload2.map(|p| expand(&id, &p)).transpose()?,
        parts,
        canary,
        content_type: raw.content_type,
        path: raw.path,
        gzip: raw.gzip,
        chunk: raw.chunk,
        sse: raw.sse,
        ping_between: raw.ping_between,
        utf16: raw.utf16,
        via: raw.via,
        new_session: raw.new_session,
        why: raw.why,
    })
}

fn first_template(t: &str) -> Option<String> {
    let s = t.find("{{")?;
    let e = t[s..].find("}}")?;
    Some(t[s..s + e + 2].to_string())
}
