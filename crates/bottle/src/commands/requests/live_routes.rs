//! Route and git-ref approvals written into a running bottle's `live-config/routes.yaml`.
//!
//! The file is read with the sidecars' own reader and schema (`strict_yaml::load`,
//! `RoutesFile::from_node`), changed as a tree, written with `Node::to_yaml`, and the new
//! text must parse with that schema and keep every existing route, repository, rule and DLP
//! setting (checked, not assumed) before it replaces the old one (temp file in the same
//! directory, fsync, rename). Then the sidecars that act on the change are signalled and
//! must report a new generation in their status files; if one refuses or stays silent the
//! old text is put back and reloaded. A route added this way carries no credential: the
//! operator never hands the agent one through a request.

use std::io::Write;
use std::path::Path;
use std::time::Duration;

use bottle_core::routes::{GitRepo, RefAction, RefRule, Route, RoutesFile};
use bottle_core::strict_yaml::{self, Ctx, Node, Value as Y};
use bottle_core::{parse_host, HostPattern, PortSpec};
use serde_json::Value;

use super::super::allow;
use super::{ask_summary, inert, record, Found, Grant};
use crate::error::{Error, Result};
use crate::state::{self, Sidecar, StateDir};
use bottle_core::access_request::Decision;

/// The sidecars that act on routes (both load `routes.yaml`).
pub(crate) const ROUTE_READERS: &[Sidecar] = &[Sidecar::Pipelock, Sidecar::Egress];
/// The sidecar that acts on ref rules.
pub(crate) const GIT_READERS: &[Sidecar] = &[Sidecar::GitGate];

/// Longest ref glob an agent may ask for (supervise's own cap).
const MAX_REF_BYTES: usize = 256;
/// Most paths / methods in one asked route (supervise's caps).
const MAX_PATHS: usize = 32;
const MAX_PATH_BYTES: usize = 512;

/// How the sidecars are made to reload: a signal, then their status files are watched for
/// `timeout`. The launcher signals through compose; tests pass a fake sidecar.
pub(crate) struct Reloader<'a> {
    pub signal: &'a dyn Fn(&StateDir, &[Sidecar]) -> Result<()>,
    pub timeout: Duration,
}

/// The one change a request makes.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Change {
    /// A route without credential.
    Route {
        host: String,
        paths: Option<Vec<String>>,
        methods: Option<Vec<String>>,
    },
    /// A rule appended to a repository's rules.
    GitRule {
        repo: String,
        r#ref: String,
        allow: Vec<String>,
    },
}

impl Change {
    fn readers(&self) -> &'static [Sidecar] {
        match self {
            Change::Route { .. } => ROUTE_READERS,
            Change::GitRule { .. } => GIT_READERS,
        }
    }

    /// The node appended (a route, or a rule).
    fn node(&self) -> Node {
        match self {
            Change::Route {
                host,
                paths,
                methods,
            } => {
                let mut o = vec![("host", Node::str(0, host))];
                if let Some(p) = paths {
                    o.push(("paths", Node::str_seq(0, p)));
                }
                if let Some(m) = methods {
                    o.push(("methods", Node::str_seq(0, m)));
                }
                Node::map(0, o)
            }
            Change::GitRule { r#ref, allow, .. } => Node::map(
                0,
                vec![
                    ("ref", Node::str(0, r#ref)),
                    ("allow", Node::str_seq(0, allow)),
                ],
            ),
        }
    }
}

/// What [`apply`] did.
#[derive(Debug)]
pub(crate) struct Applied {
    /// Per sidecar, the generation that confirmed the new file.
    pub confirmed: Vec<(String, u64)>,
    /// 1-based line of the added route or rule in the new file.
    pub line: usize,
}

impl Applied {
    /// `pipelock generation 3, egress generation 3`.
    pub fn generations(&self) -> String {
        let gens: Vec<String> = self
            .confirmed
            .iter()
            .map(|(c, g)| format!("{c} generation {g}"))
            .collect();
        gens.join(", ")
    }
}

fn usage(id: &str, why: impl std::fmt::Display) -> Error {
    Error::Usage(format!("request {id} not approved: {why}; nothing changed"))
}

/// Printable ASCII without spaces: anything else is refused before it is quoted anywhere.
fn plain_word(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_graphic())
}

/// A list of strings, or an error naming `key`.
fn str_list(id: &str, ask: &Value, key: &str) -> Result<Option<Vec<String>>> {
    match ask.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Array(items)) => items
            .iter()
            .map(|i| match i.as_str() {
                Some(s) if plain_word(s) => Ok(s.to_owned()),
                _ => Err(usage(id, format!("`{key}` must list plain words"))),
            })
            .collect::<Result<Vec<_>>>()
            .map(Some),
        Some(_) => Err(usage(id, format!("`{key}` is not a list"))),
    }
}

/// The route a `route` request asks for, judged from scratch (the file is the agent's):
/// the host as `bottle allow` judges an entry (never forced), paths and methods as the
/// schema reads them.
pub(crate) fn judge_route(id: &str, ask: &Value) -> Result<Change> {
    let host = ask
        .get("host")
        .and_then(Value::as_str)
        .ok_or_else(|| usage(id, "it names no host"))?;
    if !plain_word(host) {
        return Err(usage(id, "the host is not one host pattern"));
    }
    allow::judge_entry(host, false).map_err(|e| {
        usage(
            id,
            e.to_string()
                .replace("; pass --force if you really mean it", ""),
        )
    })?;
    HostPattern::parse(host).map_err(|e| usage(id, format!("route host: {e}")))?;
    let paths = str_list(id, ask, "paths")?;
    if let Some(p) = &paths {
        if p.is_empty() || p.len() > MAX_PATHS {
            return Err(usage(
                id,
                format!("`paths` must list 1 to {MAX_PATHS} globs"),
            ));
        }
        if p.iter()
            .any(|g| !g.starts_with('/') || g.len() > MAX_PATH_BYTES)
        {
            return Err(usage(id, "every path glob must start with `/`"));
        }
        bottle_core::routes::PathGlobs::new(p).map_err(|e| usage(id, e))?;
    }
    let methods = str_list(id, ask, "methods")?;
    if let Some(m) = &methods {
        let known = [
            "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "CONNECT", "TRACE",
        ];
        if m.is_empty() || m.iter().any(|x| !known.contains(&x.as_str())) {
            return Err(usage(
                id,
                "`methods` must list HTTP methods (GET, POST, ...)",
            ));
        }
    }
    Ok(Change::Route {
        host: host.to_owned(),
        paths,
        methods,
    })
}

/// The rule a `git-ref` request asks for, judged again here as supervise judges it: a plain
/// repository name, a ref glob under `refs/<kind>/<name>/` with a literal prefix of three
/// segments (`refs/heads/*` would be every branch), and 1 to 4 known actions.
pub(crate) fn judge_git_ref(id: &str, ask: &Value) -> Result<Change> {
    let field = |k: &str| {
        ask.get(k)
            .and_then(Value::as_str)
            .ok_or_else(|| usage(id, format!("it names no `{k}`")))
    };
    let repo = field("repo")?;
    let valid_repo = repo.len() <= 100
        && !repo.starts_with('.')
        && repo
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
    if repo.is_empty() || !valid_repo {
        return Err(usage(id, "the repository is not a repository name"));
    }
    let r = field("ref")?;
    let plain = r
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"/-_.*".contains(&b));
    if r.len() > MAX_REF_BYTES || !plain || r.contains("..") || r.contains("//") || r.ends_with('/')
    {
        return Err(usage(id, "the ref is not a ref name or glob"));
    }
    let segs: Vec<&str> = r.split('/').collect();
    let literal = segs.iter().take_while(|s| !s.contains('*')).count();
    if segs.first() != Some(&"refs") || literal < 3 {
        return Err(usage(
            id,
            format!("`{r}` is too broad: a rule must name refs under refs/<kind>/<name>/"),
        ));
    }
    let allow = str_list(id, ask, "allow")?.unwrap_or_default();
    let known = ["create", "update", "force", "delete"];
    if allow.is_empty() || allow.len() > 4 || allow.iter().any(|a| !known.contains(&a.as_str())) {
        return Err(usage(
            id,
            "`allow` must list some of create, update, force, delete",
        ));
    }
    let mut dedup: Vec<String> = Vec::new();
    for a in allow {
        if !dedup.contains(&a) {
            dedup.push(a);
        }
    }
    Ok(Change::GitRule {
        repo: repo.to_owned(),
        r#ref: r.to_owned(),
        allow: dedup,
    })
}

/// A route or ref rule: added to the live routes.yaml and confirmed, then the approval
/// written; undone if another decision won meanwhile.
pub(super) fn approve(
    found: &Found,
    grant: Grant,
    change: &Change,
    reloader: &Reloader<'_>,
) -> Result<String> {
    let what = match change {
        Change::Route { .. } => "a route",
        Change::GitRule { .. } => "a git ref rule",
    };
    if let Grant::For(_) = grant {
        // An expiring route or rule would need the sidecars to drop it by themselves, as
        // they do `until=` allowlist lines; they do not, so it is not offered.
        return Err(Error::Usage(format!(
            "request {} asks for {what} ({}): these are granted for the session only, not \
             --for; approve with --session, or allow just the host for a time with \
             `bottle allow`; nothing changed",
            found.id,
            ask_summary(&found.request.ask)
        )));
    }
    crate::ui::step(&format!(
        "adding {what} to the live routes.yaml of {}",
        found.dir.slug()
    ));
    // The id from the file name (checked), never the file's own `id` field (the agent's).
    let applied = apply(&found.dir, found.id.as_str(), change, reloader)?;
    let decision = Decision {
        decision: "approved".into(),
        for_: Some("session".into()),
        until_unix: None,
        reason: None,
        decided_at: state::now_rfc3339(),
    };
    if let Err(e) = record(found, &decision) {
        // Someone decided it meanwhile: what this call added must not outlive the refusal.
        undo(&found.dir, change, reloader);
        return Err(e);
    }
    let done = match change {
        Change::Route { .. } => format!(
            "route {} added for the session at routes.yaml line {}, no credential; add one in \
             the manifest",
            ask_summary(&found.request.ask),
            applied.line
        ),
        Change::GitRule {
            repo, r#ref, allow, ..
        } => format!(
            "rule {} allow={} added to git repository {} for the session (routes.yaml line {})",
            inert(r#ref),
            allow.join(","),
            inert(repo),
            applied.line
        ),
    };
    Ok(format!(
        "approved {} in {}: {done} ({})",
        found.id,
        found.dir.slug(),
        applied.generations()
    ))
}

/// Applies `change` to the bottle's live routes.yaml: checked against what is there, written,
/// reloaded, confirmed; put back on refusal.
pub(crate) fn apply(
    dir: &StateDir,
    id: &str,
    change: &Change,
    r: &Reloader<'_>,
) -> Result<Applied> {
    let _lock = lock(dir)?;
    let path = dir.routes();
    let old = read(&path)?;
    let (new_text, line) = changed_text(&path, &old, id, change)?;
    write_synced(&path, &new_text)?;
    let results = allow::signal_and_confirm(dir, change.readers(), r.timeout, || {
        (r.signal)(dir, change.readers())
    });
    let results = match results {
        Ok(res) => res,
        Err(e) => {
            put_back(dir, &path, &old, change.readers(), r);
            return Err(e);
        }
    };
    let failed: Vec<String> = results
        .iter()
        .filter_map(|(c, r)| r.as_ref().err().map(|e| format!("{c}: {e}")))
        .collect();
    if !failed.is_empty() {
        put_back(dir, &path, &old, change.readers(), r);
        return Err(Error::Bottle(format!(
            "reload failed, the old routes.yaml is back: {}",
            failed.join("; ")
        )));
    }
    Ok(Applied {
        confirmed: results
            .into_iter()
            .filter_map(|(c, r)| r.ok().map(|g| (c, g)))
            .collect(),
        line,
    })
}

/// Takes `change` out again (another decision won meanwhile): the node added is removed from
/// the file as it is now, so whatever else changed since stays. Best effort: the caller
/// reports the original error.
pub(crate) fn undo(dir: &StateDir, change: &Change, r: &Reloader<'_>) {
    let Ok(_lock) = lock(dir) else { return };
    let path = dir.routes();
    let Ok(text) = read(&path) else { return };
    let Ok(Some(mut root)) = strict_yaml::load(&text, &Ctx::new(&path)) else {
        return;
    };
    let added = change.node().to_yaml();
    let Some(list) = target_list(&mut root, change) else {
        return;
    };
    let Some(pos) = list.iter().rposition(|n| n.to_yaml() == added) else {
        return;
    };
    list.remove(pos);
    let new_text = format!("{}{}", split_header(&text).0, root.to_yaml());
    if RoutesFile::parse(&new_text, &path).is_ok() && write_synced(&path, &new_text).is_ok() {
        let _ = allow::signal_and_confirm(dir, change.readers(), r.timeout, || {
            (r.signal)(dir, change.readers())
        });
    }
}

/// The old text back, and the sidecars told (best effort: the caller reports why).
fn put_back(dir: &StateDir, path: &Path, old: &str, readers: &[Sidecar], r: &Reloader<'_>) {
    if write_synced(path, old).is_ok() {
        let _ =
            allow::signal_and_confirm(dir, readers, r.timeout.min(Duration::from_secs(5)), || {
                (r.signal)(dir, readers)
            });
    }
}

/// Serialises approvals of one bottle (read, change, write, confirm): two at once would
/// each write their change over the other's. The lock file sits in the state directory, not
/// in `live-config/` (which the sidecars read).
fn lock(dir: &StateDir) -> Result<std::fs::File> {
    let p = dir.path().join(".live-routes.lock");
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&p)
        .map_err(|e| Error::io(format!("opening {}", p.display()), e))?;
    f.lock()
        .map_err(|e| Error::io(format!("locking {}", p.display()), e))?;
    Ok(f)
}

fn read(path: &Path) -> Result<String> {
    std::fs::read_to_string(path).map_err(|e| Error::io(format!("reading {}", path.display()), e))
}

/// The new text with `change` made, and the line of the added node; every refusal is a usage
/// error that leaves the file alone.
pub(crate) fn changed_text(
    path: &Path,
    old: &str,
    id: &str,
    change: &Change,
) -> Result<(String, usize)> {
    let ctx = Ctx::new(path);
    let broken = |e: bottle_core::ConfigError| {
        Error::Bottle(format!("the live routes.yaml does not load: {e}"))
    };
    let mut root = strict_yaml::load(old, &ctx)
        .map_err(broken)?
        .unwrap_or(Node {
            v: Y::Null,
            line: 0,
        });
    let before = RoutesFile::from_node(&root, path).map_err(broken)?;
    check(&before, id, change)?;
    // The launcher's header comment is kept as it is; a file in another layout (edited by
    // hand, with comments) would be re-written line by line: refused rather than losing one.
    let (header, body) = split_header(old);
    if !matches!(root.v, Y::Null) && root.to_yaml() != body {
        return Err(Error::Bottle(format!(
            "{} was edited by hand (it is not in the layout the launcher writes); not \
             re-writing it: add the change there yourself and SIGHUP the sidecars, or restart \
             the bottle",
            path.display()
        )));
    }
    if matches!(root.v, Y::Null) {
        root.v = Y::Map(Vec::new());
    }
    let list = target_list(&mut root, change)
        .ok_or_else(|| Error::Bottle("the live routes.yaml has no place for the change".into()))?;
    list.push(change.node());
    let new_text = format!("{header}{}", root.to_yaml());
    let after = RoutesFile::parse(&new_text, path)
        .map_err(|e| Error::Bottle(format!("the changed routes.yaml would not load: {e}")))?;
    let line = kept_everything(&before, &after, change).ok_or_else(|| {
        Error::Bottle(
            "the changed routes.yaml would not keep every existing entry; not written".into(),
        )
    })?;
    Ok((new_text, line))
}

/// The leading comment and blank lines (the launcher's `# written by ...`), and the rest.
fn split_header(text: &str) -> (&str, &str) {
    let len: usize = text
        .split_inclusive('\n')
        .take_while(|l| l.trim().is_empty() || l.trim_start().starts_with('#'))
        .map(str::len)
        .sum();
    text.split_at(len)
}

/// The refusals that depend on what the file holds already.
fn check(file: &RoutesFile, id: &str, change: &Change) -> Result<()> {
    match change {
        Change::Route { host, .. } => {
            // Asked patterns were parsed by `judge_route`.
            let asked = HostPattern::parse(host).map_err(|e| usage(id, e))?;
            if let Some(r) = file.routes.iter().find(|r| covers(r, &asked)) {
                return Err(usage(
                    id,
                    format!(
                        "a route for `{}` already exists (routes.yaml line {}: host `{}`); \
                         change it in the manifest",
                        host, r.line, r.host
                    ),
                ));
            }
            Ok(())
        }
        Change::GitRule { repo, r#ref, .. } => {
            let Some(g) = file.git_repo(repo) else {
                let names: Vec<&str> = file.git.iter().map(|g| g.name.as_str()).collect();
                let known = if names.is_empty() {
                    "this bottle has no git repositories".to_owned()
                } else {
                    format!("this bottle's repositories: {}", names.join(", "))
                };
                return Err(usage(id, format!("no git repository `{repo}` ({known})")));
            };
            check_ref(g, id, r#ref)
        }
    }
}

/// A ref the manifest protects is never the agent's to push; a rule placed after one that
/// already decides the asked refs would never apply.
fn check_ref(g: &GitRepo, id: &str, asked: &str) -> Result<()> {
    let asked_glob = glob(asked).map_err(|e| usage(id, e))?;
    for p in &g.protected {
        // Either glob taken as text matching the other: `refs/heads/main` under
        // `refs/heads/**`, or `refs/heads/release/v1*` under a protected `refs/heads/release/*`.
        let overlaps = glob(p).is_ok_and(|pg| pg.matches(asked)) || asked_glob.matches(p);
        if overlaps {
            return Err(usage(
                id,
                format!(
                    "`{asked}` touches `{p}`, which the manifest protects in repository `{}`",
                    g.name
                ),
            ));
        }
    }
    if let Some(rule) = g
        .rules
        .iter()
        .find(|r| r.r#ref == asked || r.matches(asked))
    {
        return Err(usage(
            id,
            format!(
                "repository `{}` already has a rule `{}` (allow {}) that decides `{asked}` first; \
                 change it in the manifest",
                g.name,
                rule.r#ref,
                actions(&rule.allow)
            ),
        ));
    }
    Ok(())
}

fn actions(a: &[RefAction]) -> String {
    if a.is_empty() {
        return "nothing".into();
    }
    a.iter()
        .map(|x| match x {
            RefAction::Create => "create",
            RefAction::Update => "update",
            RefAction::Force => "force",
            RefAction::Delete => "delete",
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// The ref glob compiled by the schema git-gate loads rules with (a one-rule file read by
/// `RoutesFile::from_node`), so the launcher matches exactly as git-gate would.
fn glob(p: &str) -> std::result::Result<RefRule, String> {
    let rule = Node::map(
        0,
        vec![
            ("ref", Node::str(0, p)),
            ("allow", Node::seq(0, Vec::new())),
        ],
    );
    let repo = Node::map(
        0,
        vec![
            ("name", Node::str(0, "probe")),
            ("upstream", Node::str(0, "file:///probe")),
            ("rules", Node::seq(0, vec![rule])),
        ],
    );
    let root = Node::map(0, vec![("git", Node::seq(0, vec![repo]))]);
    let mut f = RoutesFile::from_node(&root, Path::new("request"))
        .map_err(|e| format!("ref glob `{p}`: {e}"))?;
    f.git
        .pop()
        .and_then(|mut g| g.rules.pop())
        .ok_or_else(|| format!("ref glob `{p}` did not compile"))
}

/// Whether route `r` already decides (some of) what `asked` names: the same pattern, or a
/// pattern matching the asked host (for `*.x`, a name under `x`) on one of its ports. Routes
/// are matched first by host, so a new route behind such a one would never apply.
fn covers(r: &Route, asked: &HostPattern) -> bool {
    if &r.host == asked {
        return true;
    }
    let probe = match asked.exact_host() {
        Some(h) => Some(h.clone()),
        None => {
            let shown = asked.to_string();
            let name = shown.trim_start_matches("*.");
            let name = name.split(':').next().unwrap_or(name);
            parse_host(&format!("x.{name}")).ok()
        }
    };
    let ports: &[u16] = match asked.port() {
        PortSpec::Port(p) => &[p],
        PortSpec::Default | PortSpec::Any => &[443, 80],
    };
    probe.is_some_and(|h| ports.iter().any(|p| r.host.matches(&h, *p)))
}

/// The list the change appends to: top-level `routes`, or the repository's `rules` (created
/// when absent). `None` when the tree has no such place (a repository not in the tree).
fn target_list<'n>(root: &'n mut Node, change: &Change) -> Option<&'n mut Vec<Node>> {
    let Y::Map(top) = &mut root.v else {
        return None;
    };
    match change {
        Change::Route { .. } => seq_at(top, "routes"),
        Change::GitRule { repo, .. } => {
            let git = seq_at(top, "git")?;
            let entry = git.iter_mut().find(|n| match &n.v {
                Y::Map(e) => e
                    .iter()
                    .any(|(k, _, v)| k == "name" && v.as_str() == Some(repo.as_str())),
                _ => false,
            })?;
            let Y::Map(fields) = &mut entry.v else {
                return None;
            };
            seq_at(fields, "rules")
        }
    }
}

/// The list under `key`, created empty when the key is absent or null.
fn seq_at<'n>(map: &'n mut Vec<(String, usize, Node)>, key: &str) -> Option<&'n mut Vec<Node>> {
    let pos = match map.iter().position(|(k, _, _)| k == key) {
        Some(p) => p,
        None => {
            map.push((key.to_owned(), 0, Node::seq(0, Vec::new())));
            map.len() - 1
        }
    };
    let node = &mut map[pos].2;
    if matches!(node.v, Y::Null) {
        node.v = Y::Seq(Vec::new());
    }
    match &mut node.v {
        Y::Seq(items) => Some(items),
        _ => None,
    }
}

/// `before` with lines forgotten (they move when the file is re-written).
fn unlined(f: &RoutesFile) -> RoutesFile {
    let mut f = f.clone();
    for r in &mut f.routes {
        r.line = 0;
    }
    for g in &mut f.git {
        g.line = 0;
    }
    f
}

/// The line of the added node when `after` is `before` with exactly the change appended
/// (every route, repository, rule and setting kept, in order); `None` otherwise.
fn kept_everything(before: &RoutesFile, after: &RoutesFile, change: &Change) -> Option<usize> {
    let (b, mut a) = (unlined(before), unlined(after));
    match change {
        Change::Route { .. } => {
            let added = after.routes.last()?;
            a.routes.pop();
            (a == b && after.routes.len() == before.routes.len() + 1).then_some(added.line)
        }
        Change::GitRule { repo, .. } => {
            let i = after.git.iter().position(|g| &g.name == repo)?;
            let rules = &mut a.git.get_mut(i)?.rules;
            rules.pop()?;
            // A rule's line is not kept by the schema: the repository's line stands for it.
            (a == b).then_some(after.git[i].line)
        }
    }
}

/// Replaces `path` with `text`: a temp file in the same directory (mode and, as root, owner
/// of the old file), fsynced, renamed over it, and the directory fsynced, so a crash leaves
/// the old file or the new one, never half of one.
pub(crate) fn write_synced(path: &Path, text: &str) -> Result<()> {
    use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
    let io = |what: &str, e| Error::io(format!("{what} {}", path.display()), e);
    let meta = std::fs::metadata(path).map_err(|e| io("reading", e))?;
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.approve-{}", std::process::id()));
    let _ = std::fs::remove_file(&tmp);
    let written = (|| -> std::io::Result<()> {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(meta.mode() & 0o7777)
            .open(&tmp)?;
        f.write_all(text.as_bytes())?;
        if state::euid() == 0 {
            std::os::unix::fs::fchown(&f, Some(meta.uid()), Some(meta.gid()))?;
        }
        f.set_permissions(std::fs::Permissions::from_mode(meta.mode() & 0o7777))?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)?;
        std::fs::File::open(dir)?.sync_all()
    })();
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(io("replacing", e));
    }
    Ok(())
}
