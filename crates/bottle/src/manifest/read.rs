//! Reading a manifest with bottle-core's strict YAML reader, the one the sidecars read
//! routes.yaml with: every key checked against the known ones (did-you-mean from the shared
//! suggester), every value's kind checked, and the line of every key kept in [`Lines`] so
//! that later checks point at the line they are about.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use bottle_core::strict_yaml::{kind, load, seq, short, word, Ctx, Map, Node, Value};
use bottle_core::ConfigError;

use bottle_core::routes::dlp_setting;

use super::dlp::DlpSpec;
use super::{
    Command, GitAuthSpec, GitScheme, GitSpec, Limits, Manifest, RefAction, RefRuleSpec,
    RouteAuthSpec, RouteSpec, Scheme, WorkspaceGit,
};

const TOP_KEYS: &[&str] = &[
    "name",
    "image",
    "command",
    "workdir",
    "workspace",
    "env",
    "allow",
    "routes",
    "git",
    "dlp",
    "resolve",
    "upstream_ca",
    "upstream_networks",
    "limits",
    "user",
    "workspace_git",
    "supervise",
];
const ROUTE_KEYS: &[&str] = &[
    "host",
    "paths",
    "methods",
    "auth",
    "tls_passthrough",
    "allow_cleartext",
];
const AUTH_KEYS: &[&str] = &[
    "scheme",
    "token_from",
    "header",
    "prefix",
    "username",
    "param",
    "strip_cookies",
];
const GIT_KEYS: &[&str] = &[
    "name",
    "upstream",
    "auth",
    "rules",
    "protected",
    "push_options",
    "max_pack_bytes",
    "max_refs",
    "max_object_bytes",
];
const GIT_AUTH_KEYS: &[&str] = &["scheme", "username", "token_from"];
const RULE_KEYS: &[&str] = &["ref", "allow"];
const LIMIT_KEYS: &[&str] = &["memory", "cpus", "pids"];
const DLP_KEYS: &[&str] = &["action", "profile", "responses", "mcp"];

/// The 1-based line of each key, by its path: `name`, `limits.cpus`, `env.HOME`, `allow.2`,
/// `routes.0.auth.token_from`, `git.1.upstream`. A list item's own path (`routes.0`) is the
/// line it starts on.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Lines(BTreeMap<String, usize>);

impl Lines {
    /// The line of `path`, when the manifest has it.
    pub fn at(&self, path: &str) -> Option<usize> {
        self.0.get(path).copied()
    }

    /// The line of `path`, or of the nearest enclosing path that has one (`routes.0.auth`
    /// for a missing `routes.0.auth.header`), or 0 when none is known.
    pub fn near(&self, path: &str) -> usize {
        let mut p = path;
        loop {
            if let Some(l) = self.at(p) {
                return l;
            }
            match p.rsplit_once('.') {
                Some((parent, _)) => p = parent,
                None => return 0,
            }
        }
    }

    fn note(&mut self, path: String, line: usize) {
        self.0.insert(path, line);
    }
}

/// A reader over one document: the file for messages and the lines seen so far.
struct Reader<'a> {
    ctx: Ctx<'a>,
    lines: Lines,
}

/// Parse manifest text (no validation beyond keys and kinds; see `parse_opts`).
pub(super) fn read(text: &str, path: &Path) -> Result<Manifest, ConfigError> {
    let r = Reader {
        ctx: Ctx::new(path),
        lines: Lines::default(),
    };
    let Some(root) = load(text, &r.ctx)? else {
        return Err(r.ctx.err(
            1,
            "the manifest is empty (it needs at least `name` and `image`)",
        ));
    };
    r.manifest(&root)
}

impl Reader<'_> {
    fn map<'n>(
        &mut self,
        node: &'n Node,
        what: &'static str,
        known: &[&str],
        path: &str,
    ) -> Result<Map<'n>, ConfigError> {
        let m = Map::new(&self.ctx, node, what, known)?;
        for (k, line, _) in m.entries {
            self.lines.note(join(path, k), *line);
        }
        Ok(m)
    }

    fn manifest(mut self, root: &Node) -> Result<Manifest, ConfigError> {
        let m = self.map(root, "the manifest", TOP_KEYS, "")?;
        let name = m.req_str(&self.ctx, "name")?.0;
        let image = m.req_str(&self.ctx, "image")?.0;
        let command = m.get("command").map(|n| self.command(n)).transpose()?;
        let workdir = m.str(&self.ctx, "workdir")?;
        let workspace = m.str(&self.ctx, "workspace")?.map(PathBuf::from);
        let env = m
            .get("env")
            .map(|n| self.string_map(n, "env"))
            .transpose()?;
        let allow = self.strings(m.get("allow"), "allow")?;
        let mut routes = Vec::new();
        for (i, n) in seq(&self.ctx, m.get("routes"), "routes")?
            .iter()
            .enumerate()
        {
            self.lines.note(format!("routes.{i}"), n.line);
            routes.push(self.route(n, &format!("routes.{i}"))?);
        }
        let mut git = Vec::new();
        for (i, n) in seq(&self.ctx, m.get("git"), "git")?.iter().enumerate() {
            self.lines.note(format!("git.{i}"), n.line);
            git.push(self.git(n, &format!("git.{i}"))?);
        }
        let dlp = m.get("dlp").map(|n| self.dlp(n)).transpose()?;
        let resolve = m
            .get("resolve")
            .map(|n| self.string_map(n, "resolve"))
            .transpose()?;
        let upstream_ca = m.str(&self.ctx, "upstream_ca")?.map(PathBuf::from);
        let upstream_networks = self.strings(m.get("upstream_networks"), "upstream_networks")?;
        let limits = match m.get("limits") {
            Some(n) => self.limits(n)?,
            None => Limits::default(),
        };
        let user = m.str(&self.ctx, "user")?;
        let workspace_git = match m.get("workspace_git") {
            None => WorkspaceGit::default(),
            Some(n) => match word(
                &self.ctx,
                n,
                "`workspace_git`",
                &["rw", "ro-hooks", "hide-hooks"],
            )? {
                "ro-hooks" => WorkspaceGit::RoHooks,
                "hide-hooks" => WorkspaceGit::HideHooks,
                _ => WorkspaceGit::Rw,
            },
        };
        let supervise = match m.get("supervise") {
            None => super::SuperviseSpec::default(),
            Some(n) => {
                let (spec, lines) = super::supervise::read(&self.ctx, n)?;
                for (path, line) in lines {
                    self.lines.note(path, line);
                }
                spec
            }
        };
        Ok(Manifest {
            name,
            image,
            command,
            workdir,
            workspace,
            env: env.unwrap_or_default(),
            allow,
            routes,
            git,
            dlp,
            resolve: resolve.unwrap_or_default(),
            upstream_ca,
            upstream_networks,
            limits,
            user,
            workspace_git,
            supervise,
            lines: self.lines,
        })
    }

    fn command(&mut self, n: &Node) -> Result<Command, ConfigError> {
        match &n.v {
            Value::Scalar(s, _) => Ok(Command::Shell(s.clone())),
            Value::Seq(_) => Ok(Command::Argv(self.strings(Some(n), "command")?)),
            _ => Err(self.ctx.err(
                n.line,
                format!(
                    "invalid type: `command` must be a list of arguments or one string, not {}",
                    kind(n)
                ),
            )),
        }
    }

    /// A list of strings (absent: empty); `path.i` records each item's line.
    fn strings(&mut self, n: Option<&Node>, path: &str) -> Result<Vec<String>, ConfigError> {
        let mut out = Vec::new();
        for (i, item) in seq(&self.ctx, n, path)?.iter().enumerate() {
            match &item.v {
                Value::Scalar(s, _) => out.push(s.clone()),
                _ => {
                    return Err(self.ctx.err(
                        item.line,
                        format!(
                            "invalid type: items of `{path}` must be strings, not {}",
                            kind(item)
                        ),
                    ))
                }
            }
            self.lines.note(format!("{path}.{i}"), item.line);
        }
        Ok(out)
    }

    /// A mapping of names to strings (`env:`, `resolve:`); every value must be there.
    fn string_map(
        &mut self,
        n: &Node,
        what: &'static str,
    ) -> Result<BTreeMap<String, String>, ConfigError> {
        let Value::Map(entries) = &n.v else {
            return Err(self.ctx.err(
                n.line,
                format!(
                    "invalid type: `{what}` must be a mapping of names to values, not {}",
                    kind(n)
                ),
            ));
        };
        let mut out = BTreeMap::new();
        for (k, line, v) in entries {
            let Value::Scalar(s, _) = &v.v else {
                return Err(self.ctx.err(
                    *line,
                    format!(
                        "invalid type: `{what}` `{}` needs a value (a string; `\"\"` for empty), not {}",
                        short(k),
                        kind(v)
                    ),
                ));
            };
            self.lines.note(format!("{what}.{k}"), *line);
            out.insert(k.clone(), s.clone());
        }
        Ok(out)
    }

    /// An optional list of strings (`paths`, `methods`): absent is `None`, `[]` is empty.
    fn opt_strings(
        &mut self,
        n: Option<&Node>,
        path: &str,
    ) -> Result<Option<Vec<String>>, ConfigError> {
        n.map(|n| self.strings(Some(n), path)).transpose()
    }

    fn route(&mut self, n: &Node, path: &str) -> Result<RouteSpec, ConfigError> {
        let m = self.map(n, "route", ROUTE_KEYS, path)?;
        let host = m.req_str(&self.ctx, "host")?.0;
        let paths = self.opt_strings(m.get("paths"), &join(path, "paths"))?;
        let methods = self.opt_strings(m.get("methods"), &join(path, "methods"))?;
        let auth = m
            .get("auth")
            .map(|a| self.route_auth(a, &join(path, "auth")))
            .transpose()?;
        let ctx = &self.ctx;
        Ok(RouteSpec {
            host,
            paths,
            methods,
            auth,
            tls_passthrough: m.bool(ctx, "tls_passthrough", false)?,
            allow_cleartext: m.bool(ctx, "allow_cleartext", false)?,
        })
    }

    fn route_auth(&mut self, n: &Node, path: &str) -> Result<RouteAuthSpec, ConfigError> {
        let m = self.map(n, "route auth", AUTH_KEYS, path)?;
        let ctx = &self.ctx;
        let scheme = match word(
            ctx,
            m.req(ctx, "scheme")?,
            "auth `scheme`",
            &["bearer", "basic", "header", "query"],
        )? {
            "basic" => Scheme::Basic,
            "header" => Scheme::Header,
            "query" => Scheme::Query,
            _ => Scheme::Bearer,
        };
        Ok(RouteAuthSpec {
            scheme,
            token_from: m.req_str(ctx, "token_from")?.0,
            header: m.str(ctx, "header")?,
            prefix: m.str(ctx, "prefix")?,
            username: m.str(ctx, "username")?,
            param: m.str(ctx, "param")?,
            strip_cookies: m.bool(ctx, "strip_cookies", false)?,
        })
    }

    fn git(&mut self, n: &Node, path: &str) -> Result<GitSpec, ConfigError> {
        let m = self.map(n, "git repository", GIT_KEYS, path)?;
        let name = m.req_str(&self.ctx, "name")?.0;
        let upstream = m.req_str(&self.ctx, "upstream")?.0;
        let auth = match m.get("auth") {
            None => None,
            Some(a) => {
                let am = self.map(a, "git auth", GIT_AUTH_KEYS, &join(path, "auth"))?;
                let ctx = &self.ctx;
                let scheme = match word(
                    ctx,
                    am.req(ctx, "scheme")?,
                    "git auth `scheme`",
                    &["basic", "bearer"],
                )? {
                    "bearer" => GitScheme::Bearer,
                    _ => GitScheme::Basic,
                };
                Some(GitAuthSpec {
                    scheme,
                    username: am.str(ctx, "username")?,
                    token_from: am.req_str(ctx, "token_from")?.0,
                })
            }
        };
        let mut rules = Vec::new();
        for (i, r) in seq(&self.ctx, m.get("rules"), "rules")?.iter().enumerate() {
            let rpath = format!("{path}.rules.{i}");
            self.lines.note(rpath.clone(), r.line);
            let rm = self.map(r, "ref rule", RULE_KEYS, &rpath)?;
            let ref_glob = rm.req_str(&self.ctx, "ref")?.0;
            // `allow: []` denies; only a missing `allow` is an error.
            let Some((_, _, allow_node)) = rm.entries.iter().find(|(k, _, _)| k == "allow") else {
                return Err(self.ctx.err(
                    r.line,
                    "ref rule is missing `allow` (a list of create, update, force, delete; [] denies)",
                ));
            };
            let mut allow = Vec::new();
            for a in seq(&self.ctx, Some(allow_node), "allow")? {
                allow.push(
                    match word(
                        &self.ctx,
                        a,
                        "ref action",
                        &["create", "update", "force", "delete"],
                    )? {
                        "create" => RefAction::Create,
                        "update" => RefAction::Update,
                        "force" => RefAction::Force,
                        _ => RefAction::Delete,
                    },
                );
            }
            rules.push(RefRuleSpec { ref_glob, allow });
        }
        let protected = self.strings(m.get("protected"), &join(path, "protected"))?;
        let ctx = &self.ctx;
        let push_options = m
            .get("push_options")
            .map(|_| m.bool(ctx, "push_options", false))
            .transpose()?;
        Ok(GitSpec {
            name,
            upstream,
            auth,
            rules,
            protected,
            push_options,
            max_pack_bytes: whole(ctx, m.get("max_pack_bytes"), "max_pack_bytes")?,
            max_refs: whole(ctx, m.get("max_refs"), "max_refs")?,
            max_object_bytes: whole(ctx, m.get("max_object_bytes"), "max_object_bytes")?,
        })
    }

    fn limits(&mut self, n: &Node) -> Result<Limits, ConfigError> {
        let m = self.map(n, "limits", LIMIT_KEYS, "limits")?;
        let ctx = &self.ctx;
        let d = Limits::default();
        let memory = m.str(ctx, "memory")?.unwrap_or(d.memory);
        let cpus = match m.get("cpus") {
            None => d.cpus,
            Some(c) => match &c.v {
                Value::Scalar(s, true) => s.parse::<f64>().map_err(|_| {
                    ctx.err(
                        c.line,
                        format!("invalid type: `cpus` must be a number, not `{}`", short(s)),
                    )
                })?,
                _ => {
                    return Err(ctx.err(
                        c.line,
                        format!("invalid type: `cpus` must be a number, not {}", describe(c)),
                    ))
                }
            },
        };
        let pids = match whole(ctx, m.get("pids"), "pids")? {
            None => d.pids,
            Some(p) => u32::try_from(p).map_err(|_| {
                ctx.err(
                    m.get("pids").map_or(m.line, |n| n.line),
                    "`pids` is too large",
                )
            })?,
        };
        Ok(Limits { memory, cpus, pids })
    }

    fn dlp(&mut self, n: &Node) -> Result<DlpSpec, ConfigError> {
        let m = self.map(n, "dlp", DLP_KEYS, "dlp")?;
        let ctx = &self.ctx;
        Ok(DlpSpec {
            action: dlp_setting(ctx, &m, "action")?,
            profile: dlp_setting(ctx, &m, "profile")?,
            responses: dlp_setting(ctx, &m, "responses")?,
            mcp: dlp_setting(ctx, &m, "mcp")?,
        })
    }
}

/// `kind`, or the text of a quoted scalar (`"2"` is a string, not a number).
fn describe(n: &Node) -> String {
    match &n.v {
        Value::Scalar(s, false) => format!("the string `{}`", short(s)),
        _ => kind(n).to_string(),
    }
}

/// An optional plain whole number (`0` included: the routes schema judges the range).
fn whole(ctx: &Ctx<'_>, n: Option<&Node>, key: &str) -> Result<Option<u64>, ConfigError> {
    let Some(n) = n else { return Ok(None) };
    match &n.v {
        Value::Scalar(s, true) => s.parse::<u64>().map(Some).map_err(|_| {
            ctx.err(
                n.line,
                format!(
                    "invalid type: `{key}` must be a whole number, not `{}`",
                    short(s)
                ),
            )
        }),
        _ => Err(ctx.err(
            n.line,
            format!(
                "invalid type: `{key}` must be a whole number, not {}",
                describe(n)
            ),
        )),
    }
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}
