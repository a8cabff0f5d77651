//! The bottle manifest: one YAML file that says which agent runs and what it may reach.
//!
//! Parsing is strict: unknown keys, wrong types and host variables that are not set are
//! errors that name the file and line, with a did-you-mean for misspelt keys and values.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::error::Error;

mod broad;
mod dlp;
pub mod live_config;
mod read;
mod supervise;
#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests;
mod validate;

pub use bottle_core::strict_yaml::nearest;
pub use broad::too_broad;
pub use dlp::{DlpAction, DlpEffective, DlpProfile, DlpSpec, ScanAction};
pub use read::Lines;
pub use supervise::{webhook_ok, Notify, SuperviseSpec};

/// A parsed, validated manifest. Paths are absolute (resolved against the manifest's dir).
/// Read by `read.rs` (bottle-core's strict YAML reader): every key is checked.
#[derive(Debug, Clone)]
pub struct Manifest {
    /// Short name of the bottle; the slug is `<name>-<5 random base36>`.
    pub name: String,
    /// The agent image (must exist locally: nothing is pulled).
    pub image: String,
    /// The agent command, run with `compose exec` (default: `sh`).
    pub command: Option<Command>,
    /// Working directory in the agent container.
    pub workdir: Option<String>,
    /// A host directory mounted read-write at `workdir` (default `/workspace`).
    pub workspace: Option<PathBuf>,
    /// Agent environment. Values may use `${HOST_VAR}` and `${HOST_VAR:-default}`; `$$` is `$`.
    pub env: BTreeMap<String, String>,
    /// Allowlist lines (see the allowlist format).
    pub allow: Vec<String>,
    /// egress routes; credentials are named by `token_from: HOST_ENV_VAR`.
    pub routes: Vec<RouteSpec>,
    /// git-gate repositories.
    pub git: Vec<GitSpec>,
    /// DLP settings of pipelock.
    pub dlp: Option<DlpSpec>,
    /// Operator-pinned names for egress and git-gate: `name: address`.
    pub resolve: BTreeMap<String, String>,
    /// Extra trust anchor (PEM) for the upstream TLS of egress and git-gate.
    pub upstream_ca: Option<PathBuf>,
    /// Existing Docker networks that egress and git-gate also join (never the agent).
    pub upstream_networks: Vec<String>,
    /// Resource limits of the agent container.
    pub limits: Limits,
    /// The agent's `uid[:gid]` or `root` (default: the invoking user when a workspace is mounted).
    pub user: Option<String>,
    /// How the workspace's `.git/hooks` and `.git/config` are mounted (default `rw`).
    pub workspace_git: WorkspaceGit,
    /// The access-request sidecar and its notify hook (`supervise:`; on by default).
    pub supervise: SuperviseSpec,
    /// The line of each key in the manifest file, for messages.
    pub lines: Lines,
}

/// How the workspace's `.git/hooks` and `.git/config` reach the agent. Both run code as the
/// operator on the host later (a hook, `core.fsmonitor`, `core.hooksPath`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, serde::Serialize)]
pub enum WorkspaceGit {
    /// Writable like the rest of the workspace (`bottle start` warns).
    #[default]
    #[serde(rename = "rw")]
    Rw,
    /// `.git/hooks` and `.git/config` mounted read-only.
    #[serde(rename = "ro-hooks")]
    RoHooks,
    /// `.git/hooks` replaced by an empty read-only directory, `.git/config` read-only.
    #[serde(rename = "hide-hooks")]
    HideHooks,
}

/// A command: a list of arguments, or one string run with `sh -c`.
#[derive(Debug, Clone)]
pub enum Command {
    /// `["cmd", "arg"]`
    Argv(Vec<String>),
    /// `"cmd arg && other"` (run with `sh -c`)
    Shell(String),
}

impl Command {
    /// The argument vector to exec.
    pub fn argv(&self) -> Vec<String> {
        match self {
            Command::Argv(v) => v.clone(),
            Command::Shell(s) => vec!["sh".into(), "-c".into(), s.clone()],
        }
    }
}

/// One egress route of the manifest.
#[derive(Debug, Clone)]
pub struct RouteSpec {
    /// Host pattern, as in the allowlist.
    pub host: String,
    /// Path globs (default: every path).
    pub paths: Option<Vec<String>>,
    /// Methods (default: every method).
    pub methods: Option<Vec<String>>,
    /// Credential injection.
    pub auth: Option<RouteAuthSpec>,
    /// Tunnel instead of decrypting.
    pub tls_passthrough: bool,
    /// Inject the credential over plain http:// too (only for a private host; see validate).
    pub allow_cleartext: bool,
}

/// How egress authenticates a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Scheme {
    /// `Authorization: Bearer <token>`
    Bearer,
    /// `Authorization: Basic base64(username:token)`
    Basic,
    /// A named header.
    Header,
    /// A query parameter.
    Query,
}

/// Route credentials: `token_from` names a variable of the launcher's environment.
#[derive(Debug, Clone)]
pub struct RouteAuthSpec {
    /// The scheme.
    pub scheme: Scheme,
    /// Host environment variable holding the secret.
    pub token_from: String,
    /// Header name (scheme `header`).
    pub header: Option<String>,
    /// Value prefix.
    pub prefix: Option<String>,
    /// Username (scheme `basic`).
    pub username: Option<String>,
    /// Query parameter (scheme `query`).
    pub param: Option<String>,
    /// Also strip cookies the agent sends.
    pub strip_cookies: bool,
}

/// Git credential scheme.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum GitScheme {
    /// HTTP basic.
    Basic,
    /// HTTP bearer.
    Bearer,
}

/// Git credentials.
#[derive(Debug, Clone)]
pub struct GitAuthSpec {
    /// The scheme.
    pub scheme: GitScheme,
    /// Username (basic).
    pub username: Option<String>,
    /// Host environment variable holding the secret.
    pub token_from: String,
}

/// A ref action a rule allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RefAction {
    /// Create a ref.
    Create,
    /// Fast-forward a ref.
    Update,
    /// Non-fast-forward.
    Force,
    /// Delete a ref.
    Delete,
}

/// A push rule.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct RefRuleSpec {
    /// Ref glob.
    #[serde(rename = "ref")]
    pub ref_glob: String,
    /// Allowed actions.
    pub allow: Vec<RefAction>,
}

/// A git-gate repository.
#[derive(Debug, Clone)]
pub struct GitSpec {
    /// Served as `http://git-gate:8080/<name>.git`.
    pub name: String,
    /// The real upstream (https://, ssh:// or file://).
    pub upstream: String,
    /// Credentials for the upstream.
    pub auth: Option<GitAuthSpec>,
    /// Ordered push rules; first match wins; no match: denied.
    pub rules: Vec<RefRuleSpec>,
    /// Refs never forced or deleted.
    pub protected: Vec<String>,
    /// Allow push options.
    pub push_options: Option<bool>,
    /// Pack size limit.
    pub max_pack_bytes: Option<u64>,
    /// Ref count limit per push.
    pub max_refs: Option<u64>,
    /// Object size limit.
    pub max_object_bytes: Option<u64>,
}

/// Agent resource limits.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Memory, in Docker syntax (`2g`, `512m`).
    pub memory: String,
    /// CPUs (fractional allowed).
    pub cpus: f64,
    /// Max processes.
    pub pids: u32,
}

fn default_memory() -> String {
    "4g".into()
}
fn default_cpus() -> f64 {
    2.0
}
fn default_pids() -> u32 {
    1024
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            memory: default_memory(),
            cpus: default_cpus(),
            pids: default_pids(),
        }
    }
}

/// A manifest together with where it came from and its host-side resolution.
#[derive(Debug, Clone)]
pub struct Loaded {
    /// The manifest file.
    pub path: PathBuf,
    /// The parsed manifest (env placeholders expanded, paths absolute).
    pub manifest: Manifest,
    /// Route credential slots: (slot env name, host variable), in declaration order.
    pub route_tokens: Vec<(String, String)>,
    /// git credential slots: (slot env name, host variable).
    pub git_tokens: Vec<(String, String)>,
    /// Pinned addresses.
    pub resolve: Vec<(String, IpAddr)>,
    /// Host variables each `env:` key takes its value from (names only, never values).
    pub env_sources: BTreeMap<String, Vec<String>>,
}

impl Loaded {
    /// Slot env name for a route's `token_from`.
    pub fn route_slot(&self, host_var: &str) -> Option<&str> {
        self.route_tokens
            .iter()
            .find(|(_, v)| v == host_var)
            .map(|(s, _)| s.as_str())
    }
    /// Slot env name for a git repo's `token_from`.
    pub fn git_slot(&self, host_var: &str) -> Option<&str> {
        self.git_tokens
            .iter()
            .find(|(_, v)| v == host_var)
            .map(|(s, _)| s.as_str())
    }
}

/// Where host variables come from (the process environment, or a map in tests).
pub trait HostEnv {
    /// The value of `name`, if set.
    fn get(&self, name: &str) -> Option<String>;
}

/// The launcher's own environment.
pub struct ProcessEnv;

impl HostEnv for ProcessEnv {
    fn get(&self, name: &str) -> Option<String> {
        std::env::var(name).ok()
    }
}

impl HostEnv for BTreeMap<String, String> {
    fn get(&self, name: &str) -> Option<String> {
        BTreeMap::get(self, name).cloned()
    }
}

/// Read and validate a manifest file.
pub fn load(path: &Path, env: &dyn HostEnv) -> Result<Loaded, Error> {
    load_opts(path, env, false)
}

/// [`load`]; `force_allow` accepts over-broad `allow:` entries (the operator's CLI flag).
pub fn load_opts(path: &Path, env: &dyn HostEnv, force_allow: bool) -> Result<Loaded, Error> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Error::Manifest(format!("{}: cannot read: {e}", path.display())))?;
    parse_opts(&text, path, env, force_allow)
}

/// Parse and validate manifest text. `path` is used for messages and relative paths.
pub fn parse(text: &str, path: &Path, env: &dyn HostEnv) -> Result<Loaded, Error> {
    parse_opts(text, path, env, false)
}

/// [`parse`]; `force_allow` accepts over-broad `allow:` entries.
pub fn parse_opts(
    text: &str,
    path: &Path,
    env: &dyn HostEnv,
    force_allow: bool,
) -> Result<Loaded, Error> {
    let file = path.display().to_string();
    let err = |line: Option<usize>, msg: String| -> Error {
        Error::Manifest(match line {
            Some(l) => format!("{file}:{l}: {msg}"),
            None => format!("{file}: {msg}"),
        })
    };
    let mut m = read::read(text, path).map_err(|e| Error::Manifest(e.to_string()))?;
    let lines = m.lines.clone();
    let at = |p: &str| lines.at(p);

    // name
    let name_ok = !m.name.is_empty()
        && m.name.len() <= 40
        && m.name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && m.name.starts_with(|c: char| c.is_ascii_alphanumeric());
    if !name_ok {
        return Err(err(
            at("name"),
            format!(
                "name `{}` must be 1-40 characters of a-z, 0-9 and '-', starting with a letter or digit",
                m.name
            ),
        ));
    }
    if m.image.trim().is_empty() {
        return Err(err(at("image"), "image must not be empty".into()));
    }
    if let Some(Command::Argv(v)) = &m.command {
        if v.is_empty() {
            return Err(err(at("command"), "command must not be empty".into()));
        }
    }

    // credentials: collect slots and check host variables
    let mut route_tokens: Vec<(String, String)> = Vec::new();
    for (i, r) in m.routes.iter().enumerate() {
        if let Some(a) = &r.auth {
            let line = at(&format!("routes.{i}.auth.token_from"));
            check_var_name(&a.token_from).map_err(|msg| err(line, msg))?;
            if env.get(&a.token_from).is_none() {
                return Err(err(
                    line,
                    format!(
                        "host variable `{}` (token_from) is not set; export it before `bottle start`",
                        a.token_from
                    ),
                ));
            }
            if !route_tokens.iter().any(|(_, v)| v == &a.token_from) {
                route_tokens.push((
                    format!("BOTTLE_TOKEN_{}", route_tokens.len()),
                    a.token_from.clone(),
                ));
            }
        }
    }
    let mut git_tokens: Vec<(String, String)> = Vec::new();
    let mut git_names = std::collections::BTreeSet::new();
    for (i, g) in m.git.iter().enumerate() {
        let name_line = at(&format!("git.{i}.name"));
        let ok = !g.name.is_empty()
            && g.name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.')
            && !g.name.starts_with('.');
        if !ok {
            return Err(err(
                name_line,
                format!(
                    "git repository name `{}` must be letters, digits, '-', '_' or '.'",
                    g.name
                ),
            ));
        }
        if let Some(p) = g.upstream.strip_prefix("file://") {
            let path = Path::new(p);
            if !path.is_absolute() || !path.is_dir() || p.contains(':') {
                return Err(err(
                    at(&format!("git.{i}.upstream")),
                    format!("git upstream `{}`: a file:// upstream must be an existing absolute directory (a bare repository)", g.upstream),
                ));
            }
        }
        if !git_names.insert(g.name.clone()) {
            return Err(err(
                name_line,
                format!("git repository name `{}` is used twice", g.name),
            ));
        }
        if let Some(a) = &g.auth {
            let line = at(&format!("git.{i}.auth.token_from"));
            check_var_name(&a.token_from).map_err(|msg| err(line, msg))?;
            if env.get(&a.token_from).is_none() {
                return Err(err(
                    line,
                    format!(
                        "host variable `{}` (token_from) is not set; export it before `bottle start`",
                        a.token_from
                    ),
                ));
            }
            if !git_tokens.iter().any(|(_, v)| v == &a.token_from) {
                git_tokens.push((
                    format!("BOTTLE_GIT_TOKEN_{}", git_tokens.len()),
                    a.token_from.clone(),
                ));
            }
        }
    }

    // env placeholders
    let credential_vars: Vec<&str> = route_tokens
        .iter()
        .chain(git_tokens.iter())
        .map(|(_, v)| v.as_str())
        .collect();
    let mut expanded = BTreeMap::new();
    let env_sources: BTreeMap<String, Vec<String>> = m
        .env
        .iter()
        .map(|(k, v)| (k.clone(), referenced_vars(v)))
        .collect();
    for (k, v) in &m.env {
        let line = at(&format!("env.{k}"));
        check_var_name(k).map_err(|msg| err(line, msg))?;
        if is_reserved_env(k) {
            return Err(err(
                line,
                format!("env `{k}` is set by the bottle itself (proxy, CA and git settings) and cannot be overridden"),
            ));
        }
        let value = expand(v, env, &credential_vars)
            .map_err(|msg| err(line, format!("env `{k}`: {msg}")))?;
        expanded.insert(k.clone(), value);
    }
    m.env = expanded;

    // allowlist lines: validated by bottle-core, line by line for precise messages
    for (i, entry) in m.allow.iter().enumerate() {
        let line = at(&format!("allow.{i}"));
        validate_allow_entry(entry).map_err(|msg| err(line, msg))?;
        if let (false, Some(why)) = (force_allow, too_broad(entry)) {
            return Err(err(
                line,
                format!("allow: {why} (an operator who means it passes --force-allow)"),
            ));
        }
    }
    if let Some(u) = &m.user {
        validate::user_spec(u).map_err(|msg| err(at("user"), msg))?;
    }
    for (i, r) in m.routes.iter().enumerate() {
        let line = at(&format!("routes.{i}.host"));
        bottle_core::HostPattern::parse(&r.host)
            .map_err(|msg| err(line, format!("route host `{}`: {msg}", r.host)))?;
        if let (false, Some(why)) = (force_allow, broad::route_host_too_broad(&r.host)) {
            return Err(err(line, format!("route host: {why} (or --force-allow)")));
        }
    }

    // pinned names: parsed by bottle-core, as the sidecars will parse them
    let mut resolve = Vec::new();
    for (name, addr) in &m.resolve {
        let o: bottle_core::ResolveOverride = format!("{name}={addr}").parse().map_err(|_| {
            err(
                at(&format!("resolve.{name}")),
                format!("resolve: `{name}: {addr}` must map a host name to an IP address"),
            )
        })?;
        resolve.push((o.name, o.addr));
    }

    // A git credential must not be usable for every method through the API, and a credential
    // goes over plain http:// only to a private host.
    validate::git_token_routes(&m, env).map_err(|(line, msg)| err(line, msg))?;
    validate::cleartext_routes(&m, &resolve).map_err(|(line, msg)| err(line, msg))?;

    for (i, n) in m.upstream_networks.iter().enumerate() {
        let ok = !n.is_empty()
            && n.chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
        if !ok {
            return Err(err(
                at(&format!("upstream_networks.{i}")),
                format!("upstream network `{n}` is not a valid Docker network name"),
            ));
        }
    }

    if !(m.limits.cpus > 0.0 && m.limits.cpus <= 1024.0) {
        return Err(err(
            at("limits.cpus"),
            "limits.cpus must be a positive number".into(),
        ));
    }
    if !valid_memory(&m.limits.memory) {
        return Err(err(
            at("limits.memory"),
            format!(
                "limits.memory `{}` must look like 512m or 2g",
                m.limits.memory
            ),
        ));
    }
    if m.limits.pids < 16 {
        return Err(err(
            at("limits.pids"),
            "limits.pids must be at least 16".into(),
        ));
    }

    // relative paths
    let base = path
        .parent()
        .map(|p| {
            if p.as_os_str().is_empty() {
                Path::new(".")
            } else {
                p
            }
        })
        .unwrap_or(Path::new("."));
    let base = std::fs::canonicalize(base).unwrap_or_else(|_| base.to_path_buf());
    if let Some(ca) = &m.upstream_ca {
        let abs = base.join(ca);
        if !abs.is_file() {
            return Err(err(
                at("upstream_ca"),
                format!("upstream_ca `{}` is not a readable file", abs.display()),
            ));
        }
        m.upstream_ca = Some(abs);
    }
    if let Some(ws) = &m.workspace {
        let abs = base.join(ws);
        let abs = std::fs::canonicalize(&abs).map_err(|_| {
            err(
                at("workspace"),
                format!("workspace `{}` does not exist", abs.display()),
            )
        })?;
        if !abs.is_dir() {
            return Err(err(
                at("workspace"),
                format!("workspace `{}` is not a directory", abs.display()),
            ));
        }
        m.workspace = Some(abs);
    }

    let loaded = Loaded {
        path: path.to_path_buf(),
        manifest: m,
        route_tokens,
        git_tokens,
        resolve,
        env_sources,
    };
    // The live config must load in the sidecars: checked with their own schema, on the tree.
    live_config::check_live_config(&loaded).map_err(Error::Manifest)?;
    Ok(loaded)
}

/// Validate one allowlist entry with bottle-core's parser.
pub fn validate_allow_entry(entry: &str) -> Result<(), String> {
    // One copy, shared with the supervise sidecar's access requests.
    bottle_core::allow_entry::check_syntax(entry)
}

fn check_var_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !name.starts_with(|c: char| c.is_ascii_digit());
    if ok {
        Ok(())
    } else {
        Err(format!("`{name}` is not a valid environment variable name"))
    }
}

fn valid_memory(s: &str) -> bool {
    let s = s.trim().to_ascii_lowercase();
    let digits = s.trim_end_matches(['b', 'k', 'm', 'g']);
    !digits.is_empty() && digits.chars().all(|c| c.is_ascii_digit()) && s.len() - digits.len() <= 2
}

/// Variables the launcher sets in the agent; the manifest cannot override them.
pub fn is_reserved_env(name: &str) -> bool {
    const RESERVED: &[&str] = &[
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "NO_PROXY",
        "ALL_PROXY",
        "SSL_CERT_FILE",
        "SSL_CERT_DIR",
        "REQUESTS_CA_BUNDLE",
        "CURL_CA_BUNDLE",
        "GIT_SSL_CAINFO",
        "PIP_CERT",
        "CARGO_HTTP_CAINFO",
        "AWS_CA_BUNDLE",
        "NODE_EXTRA_CA_CERTS",
        "GIT_CONFIG_COUNT",
        "GIT_SSL_NO_VERIFY",
        "BOTTLE_SLUG",
    ];
    let up = name.to_ascii_uppercase();
    RESERVED.contains(&up.as_str())
        || up.starts_with("GIT_CONFIG_KEY_")
        || up.starts_with("GIT_CONFIG_VALUE_")
}

/// Host variables an env value reads (`${VAR}` and `${VAR:-default}`), in order.
fn referenced_vars(value: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = value;
    while let Some(i) = rest.find('$') {
        let after = &rest[i + 1..];
        if let Some(s) = after.strip_prefix('$') {
            rest = s;
        } else if let Some(body) = after.strip_prefix('{') {
            let end = body.find('}').unwrap_or(body.len());
            let name = body[..end].split(":-").next().unwrap_or("");
            out.push(name.to_string());
            rest = body.get(end + 1..).unwrap_or("");
        } else {
            rest = after;
        }
    }
    out
}

/// Expand `${VAR}`, `${VAR:-default}` and `$$` in an env value.
fn expand(value: &str, env: &dyn HostEnv, credential_vars: &[&str]) -> Result<String, String> {
    let mut out = String::new();
    let mut rest = value;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        if let Some(stripped) = after.strip_prefix('$') {
            out.push('$');
            rest = stripped;
        } else if let Some(body) = after.strip_prefix('{') {
            let end = body
                .find('}')
                .ok_or_else(|| format!("unclosed `${{` in `{value}`"))?;
            let inner = &body[..end];
            let (name, default) = match inner.split_once(":-") {
                Some((n, d)) => (n, Some(d)),
                None => (inner, None),
            };
            check_var_name(name)?;
            if credential_vars.contains(&name) {
                return Err(format!(
                    "`${{{name}}}` is a credential (token_from) and would reach the agent; credentials stay in egress/git-gate"
                ));
            }
            match (env.get(name), default) {
                (Some(v), _) => out.push_str(&v),
                (None, Some(d)) => out.push_str(d),
                (None, None) => {
                    return Err(format!(
                    "host variable `{name}` is not set (use `${{{name}:-default}}` for a default)"
                ))
                }
            }
            rest = &body[end + 1..];
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    Ok(out)
}
