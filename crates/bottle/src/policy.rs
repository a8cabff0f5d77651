//! The effective policy of a manifest, and what widened since the operator last accepted it.
//!
//! A manifest inside the workspace can be rewritten by the agent (`allow: ["0.0.0.0/0"]`,
//! `workspace: /`, `env: {K: "${AWS_SECRET_ACCESS_KEY}"}`); the next `bottle start` must not
//! obey that silently. `$BOTTLE_HOME/policies/<sha256 of the canonical manifest path>.json`
//! holds the last policy the operator accepted for that path (variable NAMES, never values);
//! [`widenings`] says what a new one grants beyond it.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
use crate::manifest::{DlpAction, DlpProfile, Loaded, RefRuleSpec, ScanAction, WorkspaceGit};

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests;

/// A route as far as access goes (credential by variable name).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RoutePolicy {
    /// Host pattern (lowercase).
    pub host: String,
    /// Path globs; `None`: every path.
    pub paths: Option<Vec<String>>,
    /// Methods (uppercase); `None`: every method.
    pub methods: Option<Vec<String>>,
    /// `scheme token_from [header|param|username|prefix]`, names only.
    pub auth: Option<String>,
    /// Cookies the agent sends are stripped.
    pub strip_cookies: bool,
    /// Tunnelled without decryption (no DLP, no credential).
    pub tls_passthrough: bool,
    /// Credential over plain http.
    pub allow_cleartext: bool,
}

/// A git-gate repository as far as access goes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GitPolicy {
    /// Repository name.
    pub name: String,
    /// Upstream URL.
    pub upstream: String,
    /// `scheme token_from [username]`, names only.
    pub auth: Option<String>,
    /// Push rules, in order.
    pub rules: Vec<RefRuleSpec>,
    /// Protected refs.
    pub protected: BTreeSet<String>,
    /// Push options allowed.
    pub push_options: bool,
    /// Limits (`None`: git-gate's default).
    pub max_pack_bytes: Option<u64>,
    /// Ref count limit.
    pub max_refs: Option<u64>,
    /// Object size limit.
    pub max_object_bytes: Option<u64>,
}

/// Everything in a manifest that decides what the agent can reach or touch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Policy {
    /// Allowlist lines (trimmed, lowercase).
    pub allow: BTreeSet<String>,
    /// egress routes.
    pub routes: Vec<RoutePolicy>,
    /// git-gate repositories.
    pub git: Vec<GitPolicy>,
    /// DLP blocks (false: only logs).
    pub dlp_block: bool,
    /// DLP detector set. Records written before the key existed read as the default.
    #[serde(default)]
    pub dlp_profile: DlpProfile,
    /// What pipelock does with prompt injection in responses.
    #[serde(default)]
    pub dlp_responses: ScanAction,
    /// What pipelock does with findings in MCP/A2A traffic.
    #[serde(default)]
    pub dlp_mcp: ScanAction,
    /// Host directory mounted into the agent.
    pub workspace: Option<String>,
    /// `.git/hooks` and `.git/config` protection.
    pub workspace_git: WorkspaceGit,
    /// `user:` as written (`None`: the invoking user).
    pub user: Option<String>,
    /// Agent env key -> host variables it reads (names only).
    pub env: BTreeMap<String, Vec<String>>,
    /// Pinned names.
    pub resolve: BTreeMap<String, String>,
    /// Extra upstream trust anchor (path).
    pub upstream_ca: Option<String>,
    /// Docker networks egress and git-gate join.
    pub upstream_networks: BTreeSet<String>,
    /// Agent memory limit (as written).
    pub memory: String,
    /// Agent CPUs.
    pub cpus: f64,
    /// Agent process limit.
    pub pids: u32,
    /// The supervise sidecar is rendered (`supervise:`). Recorded, never a widening either
    /// way: it holds no credential and can change nothing (an ask is applied only by the
    /// operator's `bottle approve`). Records without the key read as the default, on.
    #[serde(default = "default_on")]
    pub supervise: bool,
    /// The notify hook as it will run on the host: `command [argv]`, or `webhook <origin>
    /// (sha256 <digest>)` (a webhook's path often is its secret: only a digest is written).
    /// A new or changed hook is a widening: it is a program or URL the launcher runs or calls
    /// on the operator's host, and a manifest in the workspace is the agent's to rewrite.
    #[serde(default)]
    pub notify: Option<String>,
}

fn default_on() -> bool {
    true
}

/// What [`Policy::notify`] records for a hook.
fn notify_record(n: &crate::manifest::Notify) -> String {
    match n {
        crate::manifest::Notify::Command(argv) => format!("command {argv:?}"),
        crate::manifest::Notify::Webhook(url) => {
            let origin_end = url
                .find("://")
                .map(|i| i + 3)
                .and_then(|start| url[start..].find(['/', '?', '#']).map(|e| start + e))
                .unwrap_or(url.len());
            let digest = hex::encode(Sha256::digest(url.as_bytes()));
            format!("webhook {} (sha256 {})", &url[..origin_end], &digest[..16])
        }
    }
}

/// One way a new policy grants more than the accepted one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Widening {
    /// What widened (`allow`, `routes[api.example.com].paths`, ...).
    pub what: String,
    /// Accepted value.
    pub old: String,
    /// New value.
    pub new: String,
}

impl fmt::Display for Widening {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {} -> {}", self.what, self.old, self.new)
    }
}

fn opt_list(v: &Option<Vec<String>>) -> String {
    match v {
        None => "(any)".into(),
        Some(v) => format!("[{}]", v.join(", ")),
    }
}

fn opt<T: fmt::Display>(v: &Option<T>) -> String {
    v.as_ref().map_or("(none)".into(), |v| v.to_string())
}

impl Policy {
    /// The policy of a loaded manifest.
    pub fn of(l: &Loaded) -> Policy {
        let m = &l.manifest;
        let routes = m
            .routes
            .iter()
            .map(|r| RoutePolicy {
                host: r.host.trim().to_ascii_lowercase(),
                paths: r.paths.clone(),
                methods: r
                    .methods
                    .as_ref()
                    .map(|v| v.iter().map(|s| s.to_ascii_uppercase()).collect()),
                auth: r.auth.as_ref().map(|a| {
                    let scheme = format!("{:?}", a.scheme).to_lowercase();
                    let mut s = format!("{scheme} {}", a.token_from);
                    for (k, v) in [
                        ("header", &a.header),
                        ("param", &a.param),
                        ("username", &a.username),
                        ("prefix", &a.prefix),
                    ] {
                        if let Some(v) = v {
                            s.push_str(&format!(" {k}={v}"));
                        }
                    }
                    s
                }),
                strip_cookies: r.auth.as_ref().is_some_and(|a| a.strip_cookies),
                tls_passthrough: r.tls_passthrough,
                allow_cleartext: r.allow_cleartext,
            })
            .collect();
        let git = m
            .git
            .iter()
            .map(|g| GitPolicy {
                name: g.name.clone(),
                upstream: g.upstream.clone(),
                auth: g.auth.as_ref().map(|a| {
                    let mut s = format!("{:?}", a.scheme).to_lowercase();
                    s.push(' ');
                    s.push_str(&a.token_from);
                    if let Some(u) = &a.username {
                        s.push_str(&format!(" username={u}"));
                    }
                    s
                }),
                rules: g.rules.clone(),
                protected: g.protected.iter().cloned().collect(),
                push_options: g.push_options.unwrap_or(false),
                max_pack_bytes: g.max_pack_bytes,
                max_refs: g.max_refs,
                max_object_bytes: g.max_object_bytes,
            })
            .collect();
        let dlp = m.dlp_effective();
        Policy {
            allow: m
                .allow
                .iter()
                .map(|a| a.trim().to_ascii_lowercase())
                .collect(),
            routes,
            git,
            dlp_block: dlp.action == DlpAction::Block,
            dlp_profile: dlp.profile,
            dlp_responses: dlp.responses,
            dlp_mcp: dlp.mcp,
            workspace: m.workspace.as_ref().map(|p| p.display().to_string()),
            workspace_git: m.workspace_git,
            user: m.user.clone(),
            env: l.env_sources.clone(),
            resolve: m.resolve.clone(),
            // The file may sit in the agent-writable workspace: its content counts, not its name.
            upstream_ca: m.upstream_ca.as_ref().map(|p| {
                let digest = std::fs::read(p).map(|b| hex::encode(Sha256::digest(b)));
                format!(
                    "{} (sha256 {})",
                    p.display(),
                    digest.unwrap_or_else(|_| "unreadable".into())
                )
            }),
            upstream_networks: m.upstream_networks.iter().cloned().collect(),
            memory: m.limits.memory.clone(),
            cpus: m.limits.cpus,
            pids: m.limits.pids,
            supervise: m.supervise.enabled,
            notify: m.supervise.notify.as_ref().map(notify_record),
        }
    }

    /// A short human summary (one line per item), for a first start.
    pub fn summary(&self) -> Vec<String> {
        let mut out = Vec::new();
        let list = |s: &BTreeSet<String>| s.iter().cloned().collect::<Vec<_>>().join(", ");
        out.push(format!("allow: {}", or_none(&list(&self.allow))));
        for r in &self.routes {
            out.push(format!(
                "route {}: paths {} methods {} credential {}{}{}",
                r.host,
                opt_list(&r.paths),
                opt_list(&r.methods),
                opt(&r.auth),
                if r.tls_passthrough {
                    " tls_passthrough"
                } else {
                    ""
                },
                if r.allow_cleartext {
                    " allow_cleartext"
                } else {
                    ""
                }
            ));
        }
        for g in &self.git {
            out.push(format!(
                "git {} <- {} credential {}, {} rule(s), protected [{}]",
                g.name,
                g.upstream,
                opt(&g.auth),
                g.rules.len(),
                list(&g.protected)
            ));
        }
        out.push(format!(
            "workspace: {} (.git: {}), user: {}",
            opt(&self.workspace),
            git_mode(self.workspace_git),
            self.user.as_deref().unwrap_or("the invoking user")
        ));
        let env_vars: Vec<String> = self
            .env
            .iter()
            .filter(|(_, v)| !v.is_empty())
            .map(|(k, v)| format!("{k}<-{}", v.join("+")))
            .collect();
        out.push(format!(
            "env from host variables: {}",
            or_none(&env_vars.join(", "))
        ));
        if !self.resolve.is_empty() || !self.upstream_networks.is_empty() {
            let pins: Vec<String> = self
                .resolve
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            out.push(format!(
                "resolve: {}; upstream networks: {}",
                or_none(&pins.join(", ")),
                or_none(&list(&self.upstream_networks))
            ));
        }
        out.push(format!(
            "dlp: {} (profile {}, responses {}, mcp {}); limits: memory {} cpus {} pids {}",
            if self.dlp_block { "block" } else { "log" },
            self.dlp_profile.as_str(),
            self.dlp_responses.as_str(),
            self.dlp_mcp.as_str(),
            self.memory,
            self.cpus,
            self.pids
        ));
        out.push(format!(
            "supervise: {}; notify: {}",
            if self.supervise { "on" } else { "off" },
            opt(&self.notify)
        ));
        out
    }
}

fn or_none(s: &str) -> String {
    if s.is_empty() {
        "(none)".into()
    } else {
        s.to_string()
    }
}

fn git_mode(g: WorkspaceGit) -> &'static str {
    match g {
        WorkspaceGit::Rw => "rw",
        WorkspaceGit::RoHooks => "ro-hooks",
        WorkspaceGit::HideHooks => "hide-hooks",
    }
}

fn git_rank(g: WorkspaceGit) -> u8 {
    match g {
        WorkspaceGit::Rw => 0,
        WorkspaceGit::RoHooks => 1,
        WorkspaceGit::HideHooks => 2,
    }
}

/// Bytes of a Docker memory size (`512m`, `2g`); unknown forms count as unlimited.
fn memory_bytes(s: &str) -> u128 {
    let s = s.trim().to_ascii_lowercase();
    let s = s.strip_suffix('b').unwrap_or(&s);
    let (digits, mult) = match s.chars().last() {
        Some('k') => (&s[..s.len() - 1], 1u128 << 10),
        Some('m') => (&s[..s.len() - 1], 1 << 20),
        Some('g') => (&s[..s.len() - 1], 1 << 30),
        _ => (s, 1),
    };
    digits
        .parse::<u128>()
        .map_or(u128::MAX, |d| d.saturating_mul(mult))
}

/// Every way `new` grants more than `old` (empty: same or narrower).
///
/// Conservative: a change whose direction is unclear (a rewritten path glob, reordered push
/// rules, another credential) counts as widening.
pub fn widenings(old: &Policy, new: &Policy) -> Vec<Widening> {
    let mut w = Vec::new();
    let mut add = |what: String, old: String, new: String| w.push(Widening { what, old, new });

    for a in new.allow.difference(&old.allow) {
        add("allow".into(), "-".into(), a.clone());
    }

    // Routes, matched by host (and occurrence for repeated hosts).
    let keyed = |rs: &[RoutePolicy]| -> BTreeMap<(String, usize), RoutePolicy> {
        let mut seen: BTreeMap<String, usize> = BTreeMap::new();
        rs.iter()
            .map(|r| {
                let n = seen.entry(r.host.clone()).or_default();
                *n += 1;
                ((r.host.clone(), *n), r.clone())
            })
            .collect()
    };
    let (oldr, newr) = (keyed(&old.routes), keyed(&new.routes));
    for (k, n) in &newr {
        let name = format!("routes[{}]", k.0);
        let Some(o) = oldr.get(k) else {
            add(
                name,
                "(no route)".into(),
                format!(
                    "paths {} methods {} credential {}",
                    opt_list(&n.paths),
                    opt_list(&n.methods),
                    opt(&n.auth)
                ),
            );
            continue;
        };
        for (field, ov, nv) in [
            ("paths", &o.paths, &n.paths),
            ("methods", &o.methods, &n.methods),
        ] {
            let wider = match (ov, nv) {
                (_, None) => ov.is_some(),
                (None, Some(_)) => false,
                (Some(a), Some(b)) => b.iter().any(|x| !a.contains(x)),
            };
            if wider {
                add(format!("{name}.{field}"), opt_list(ov), opt_list(nv));
            }
        }
        if n.auth.is_some() && n.auth != o.auth {
            add(format!("{name}.auth"), opt(&o.auth), opt(&n.auth));
        }
        for (field, ov, nv) in [
            ("tls_passthrough", o.tls_passthrough, n.tls_passthrough),
            ("allow_cleartext", o.allow_cleartext, n.allow_cleartext),
            ("keeps agent cookies", !o.strip_cookies, !n.strip_cookies),
        ] {
            if nv && !ov {
                add(format!("{name}.{field}"), "false".into(), "true".into());
            }
        }
    }
    for (k, o) in &oldr {
        // Without its route a host in `allow:` loses its path and method limits.
        if !newr.contains_key(k) && (o.paths.is_some() || o.methods.is_some()) {
            add(
                format!("routes[{}]", k.0),
                format!(
                    "paths {} methods {}",
                    opt_list(&o.paths),
                    opt_list(&o.methods)
                ),
                "(removed: its path/method limits no longer apply)".into(),
            );
        }
    }

    for n in &new.git {
        let name = format!("git[{}]", n.name);
        let Some(o) = old.git.iter().find(|o| o.name == n.name) else {
            add(
                name,
                "(no repository)".into(),
                format!("{} credential {}", n.upstream, opt(&n.auth)),
            );
            continue;
        };
        if n.upstream != o.upstream {
            add(
                format!("{name}.upstream"),
                o.upstream.clone(),
                n.upstream.clone(),
            );
        }
        if n.auth.is_some() && n.auth != o.auth {
            add(format!("{name}.auth"), opt(&o.auth), opt(&n.auth));
        }
        if !rules_narrower_or_same(&o.rules, &n.rules) {
            add(
                format!("{name}.rules"),
                rules_text(&o.rules),
                rules_text(&n.rules),
            );
        }
        for p in o.protected.difference(&n.protected) {
            add(format!("{name}.protected"), p.clone(), "(removed)".into());
        }
        if n.push_options && !o.push_options {
            add(
                format!("{name}.push_options"),
                "false".into(),
                "true".into(),
            );
        }
        for (field, ov, nv) in [
            ("max_pack_bytes", o.max_pack_bytes, n.max_pack_bytes),
            ("max_refs", o.max_refs, n.max_refs),
            ("max_object_bytes", o.max_object_bytes, n.max_object_bytes),
        ] {
            let wider = match (ov, nv) {
                (Some(_), None) => true,
                (Some(a), Some(b)) => b > a,
                (None, _) => false,
            };
            if wider {
                add(format!("{name}.{field}"), opt(&ov), opt(&nv));
            }
        }
    }

    if old.dlp_block && !new.dlp_block {
        add("dlp.action".into(), "block".into(), "log".into());
    }
    if profile_rank(new.dlp_profile) < profile_rank(old.dlp_profile) {
        add(
            "dlp.profile".into(),
            old.dlp_profile.as_str().into(),
            new.dlp_profile.as_str().into(),
        );
    }
    for (field, o, n) in [
        ("dlp.responses", old.dlp_responses, new.dlp_responses),
        ("dlp.mcp", old.dlp_mcp, new.dlp_mcp),
    ] {
        if scan_rank(n) < scan_rank(o) {
            add(field.into(), o.as_str().into(), n.as_str().into());
        }
    }
    let ws_wider = match (&old.workspace, &new.workspace) {
        (_, None) => false,
        (None, Some(_)) => true,
        (Some(a), Some(b)) => !Path::new(b).starts_with(Path::new(a)),
    };
    if ws_wider {
        add("workspace".into(), opt(&old.workspace), opt(&new.workspace));
    }
    if git_rank(new.workspace_git) < git_rank(old.workspace_git) {
        add(
            "workspace_git".into(),
            git_mode(old.workspace_git).into(),
            git_mode(new.workspace_git).into(),
        );
    }
    if new.user.is_some() && new.user != old.user {
        add(
            "user".into(),
            old.user.clone().unwrap_or_else(|| "(invoking user)".into()),
            opt(&new.user),
        );
    }
    for (k, vars) in &new.env {
        let before = old.env.get(k);
        for v in vars {
            if before.is_none_or(|b| !b.contains(v)) {
                add(
                    format!("env[{k}]"),
                    before.map_or("(unset)".into(), |b| format!("${{{}}}", b.join("}${"))),
                    format!("reads host variable ${{{v}}}"),
                );
            }
        }
    }
    for (k, v) in &new.resolve {
        if old.resolve.get(k) != Some(v) {
            add(format!("resolve[{k}]"), opt(&old.resolve.get(k)), v.clone());
        }
    }
    if new.upstream_ca.is_some() && new.upstream_ca != old.upstream_ca {
        add(
            "upstream_ca".into(),
            opt(&old.upstream_ca),
            opt(&new.upstream_ca),
        );
    }
    for n in new.upstream_networks.difference(&old.upstream_networks) {
        add("upstream_networks".into(), "-".into(), n.clone());
    }
    if memory_bytes(&new.memory) > memory_bytes(&old.memory) {
        add(
            "limits.memory".into(),
            old.memory.clone(),
            new.memory.clone(),
        );
    }
    if new.cpus > old.cpus {
        add(
            "limits.cpus".into(),
            old.cpus.to_string(),
            new.cpus.to_string(),
        );
    }
    if new.pids > old.pids {
        add(
            "limits.pids".into(),
            old.pids.to_string(),
            new.pids.to_string(),
        );
    }
    if new.notify.is_some() && new.notify != old.notify {
        add(
            "supervise.notify".into(),
            opt(&old.notify),
            opt(&new.notify),
        );
    }
    w
}

/// How much pipelock inspects: higher is more (a lower new rank is a widening).
fn profile_rank(p: DlpProfile) -> u8 {
    match p {
        DlpProfile::Default => 0,
        DlpProfile::Strict => 1,
    }
}

/// block > warn > off: `warn` still scans but lets the finding reach the agent.
fn scan_rank(a: ScanAction) -> u8 {
    match a {
        ScanAction::Off => 0,
        ScanAction::Warn => 1,
        ScanAction::Block => 2,
    }
}

/// Same refs in the same order, each allowing a subset of what it allowed before.
fn rules_narrower_or_same(old: &[RefRuleSpec], new: &[RefRuleSpec]) -> bool {
    old.len() == new.len()
        && old
            .iter()
            .zip(new)
            .all(|(o, n)| o.ref_glob == n.ref_glob && n.allow.iter().all(|a| o.allow.contains(a)))
}

fn rules_text(r: &[RefRuleSpec]) -> String {
    let v: Vec<String> = r
        .iter()
        .map(|r| format!("{} {:?}", r.ref_glob, r.allow).to_lowercase())
        .collect();
    format!("[{}]", v.join("; "))
}

/// The stored record of an accepted policy.
#[derive(Debug, Serialize, Deserialize)]
pub struct Record {
    /// The manifest path it was accepted for.
    pub manifest: String,
    /// When.
    pub accepted_at: String,
    /// The policy.
    pub policy: Policy,
}

/// The manifest path made absolute and normalised lexically. Symlinks are NOT followed: the
/// agent could otherwise swap the file for a symlink to another manifest, which would count
/// as a first start (nothing to compare with) instead of a widening.
pub fn canonical_manifest_path(manifest: &Path) -> PathBuf {
    let abs = std::path::absolute(manifest).unwrap_or_else(|_| manifest.to_path_buf());
    let mut out = PathBuf::new();
    for c in abs.components() {
        match c {
            std::path::Component::CurDir => {}
            std::path::Component::ParentDir => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}

/// `$BOTTLE_HOME/policies/<sha256 of the canonical manifest path>.json`.
pub fn record_path(manifest: &Path) -> PathBuf {
    let canon = canonical_manifest_path(manifest);
    let digest = Sha256::digest(canon.as_os_str().as_encoded_bytes());
    crate::state::home()
        .join("policies")
        .join(format!("{}.json", hex::encode(digest)))
}

/// The accepted policy for a manifest, if any. An unreadable record is an error (fail closed).
pub fn read_record(manifest: &Path) -> Result<Option<Record>> {
    let p = record_path(manifest);
    match std::fs::read_to_string(&p) {
        Ok(text) => serde_json::from_str(&text).map(Some).map_err(|e| {
            Error::Bottle(format!(
                "{}: unreadable policy record ({e}); remove it, or pass --yes to replace it",
                p.display()
            ))
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::io(format!("reading {}", p.display()), e)),
    }
}

/// Store the accepted policy (0600 in a 0700 dir, replaced atomically).
pub fn write_record(manifest: &Path, policy: &Policy) -> Result<()> {
    let p = record_path(manifest);
    let dir = p.parent().unwrap_or(Path::new("."));
    crate::state::mkdir(dir, 0o700, None)?;
    let canon = canonical_manifest_path(manifest);
    let rec = Record {
        manifest: canon.display().to_string(),
        accepted_at: crate::state::now_rfc3339(),
        policy: policy.clone(),
    };
    let json = serde_json::to_vec_pretty(&rec).map_err(|e| Error::Bottle(e.to_string()))?;
    let tmp = p.with_extension("json.tmp");
    crate::state::write_file(&tmp, &json, 0o600, None)?;
    std::fs::rename(&tmp, &p).map_err(|e| Error::io(format!("writing {}", p.display()), e))
}
