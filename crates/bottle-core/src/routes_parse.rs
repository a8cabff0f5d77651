//! Strict `routes.yaml` parsing with line numbers, built on yaml-rust2's marked events.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::{Marker, TScalarStyle};

use crate::allowlist::HostPattern;
use crate::error::ConfigError;
use crate::routes::{
    ref_glob, AuthScheme, DlpAction, DlpProfile, DlpSettings, GitAuth, GitAuthScheme, GitRepo,
    GitSsh, PathGlobs, RefAction, RefRule, Route, RouteAuth, RoutesFile, ScanAction,
    DEFAULT_MAX_OBJECT_BYTES, DEFAULT_MAX_PACK_BYTES, DEFAULT_MAX_REFS,
};

const MAX_TEXT: usize = 4 * 1024 * 1024;
const MAX_DEPTH: usize = 32;

/// A hint for the commonest YAML mistake here: an unquoted value starting with `*` (an alias).
fn yaml_hint(text: &str, line: usize) -> String {
    let Some(l) = text.lines().nth(line.saturating_sub(1)) else {
        return String::new();
    };
    let value = l.split_once(": ").map(|(_, v)| v.trim()).unwrap_or("");
    let value = value.split(" #").next().unwrap_or("").trim();
    if value.starts_with('*') && !value.is_empty() && value.len() < 200 {
        format!(" (a value starting with `*` must be quoted: \"{value}\")")
    } else {
        String::new()
    }
}

#[derive(Debug)]
enum Value {
    Null,
    Scalar(String, bool),
    Seq(Vec<Node>),
    Map(Vec<(String, usize, Node)>),
}

#[derive(Debug)]
struct Node {
    v: Value,
    line: usize,
}

#[derive(Default)]
struct Events(Vec<(Event, usize)>);

impl MarkedEventReceiver for Events {
    fn on_event(&mut self, ev: Event, mark: Marker) {
        self.0.push((ev, mark.line()));
    }
}

struct Ctx<'a> {
    file: &'a Path,
}

impl Ctx<'_> {
    fn err(&self, line: usize, msg: impl Into<String>) -> ConfigError {
        ConfigError::invalid(self.file, Some(line.max(1)), msg)
    }
}

struct Tree<'e> {
    events: &'e [(Event, usize)],
    pos: usize,
}

impl Tree<'_> {
    fn node(&mut self, ctx: &Ctx<'_>, depth: usize) -> Result<Node, ConfigError> {
        let Some((ev, line)) = self.events.get(self.pos) else {
            return Err(ctx.err(1, "unexpected end of YAML"));
        };
        let line = *line;
        self.pos += 1;
        if depth > MAX_DEPTH {
            return Err(ctx.err(line, "nested too deeply"));
        }
        match ev {
            Event::Scalar(s, style, anchor, _) => {
                if *anchor != 0 {
                    return Err(ctx.err(
                        line,
                        "YAML anchors and aliases are not supported here; write the value out",
                    ));
                }
                let plain = *style == TScalarStyle::Plain;
                if plain && (s.is_empty() || s == "~" || s == "null" || s == "Null" || s == "NULL")
                {
                    Ok(Node {
                        v: Value::Null,
                        line,
                    })
                } else {
                    Ok(Node {
                        v: Value::Scalar(s.clone(), plain),
                        line,
                    })
                }
            }
            Event::SequenceStart(anchor, _) => {
                if *anchor != 0 {
                    return Err(ctx.err(
                        line,
                        "YAML anchors and aliases are not supported here; write the value out",
                    ));
                }
                let mut items = Vec::new();
                loop {
                    match self.events.get(self.pos) {
                        Some((Event::SequenceEnd, _)) => {
                            self.pos += 1;
                            break;
                        }
                        Some(_) => items.push(self.node(ctx, depth + 1)?),
                        None => return Err(ctx.err(line, "unterminated list")),
                    }
                }
                Ok(Node {
                    v: Value::Seq(items),
                    line,
                })
            }
            Event::MappingStart(anchor, _) => {
                if *anchor != 0 {
                    return Err(ctx.err(
                        line,
                        "YAML anchors and aliases are not supported here; write the value out",
                    ));
                }
                let mut entries: Vec<(String, usize, Node)> = Vec::new();
                loop {
                    match self.events.get(self.pos) {
                        Some((Event::MappingEnd, _)) => {
                            self.pos += 1;
                            break;
                        }
                        Some(_) => {
                            let key = self.node(ctx, depth + 1)?;
                            let k = match key.v {
                                Value::Scalar(s, _) => s,
                                Value::Null => String::new(),
                                _ => return Err(ctx.err(key.line, "a key must be a plain word")),
                            };
                            let value = self.node(ctx, depth + 1)?;
                            if entries.iter().any(|(e, _, _)| *e == k) {
                                return Err(ctx.err(key.line, format!("duplicate key `{k}`")));
                            }
                            entries.push((k, key.line, value));
                        }
                        None => return Err(ctx.err(line, "unterminated mapping")),
                    }
                }
                Ok(Node {
                    v: Value::Map(entries),
                    line,
                })
            }
            Event::Alias(_) => Err(ctx.err(
                line,
                "YAML anchors and aliases are not supported here; write the value out",
            )),
            other => Err(ctx.err(line, format!("unexpected YAML event {other:?}"))),
        }
    }
}

fn levenshtein(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != *cb);
            cur.push(sub.min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}

/// The known key nearest to `key`, if it is reasonably near.
fn nearest<'k>(key: &str, known: &[&'k str]) -> Option<&'k str> {
    let key_l = key.to_ascii_lowercase().replace('-', "_");
    if key_l.len() >= 3 {
        if let Some(k) = known
            .iter()
            .filter(|k| k.starts_with(key_l.as_str()))
            .min_by_key(|k| k.len())
        {
            return Some(k);
        }
    }
    known
        .iter()
        .map(|k| (levenshtein(&key_l, k), *k))
        .min()
        .filter(|(d, k)| *d <= (k.len().max(key.len()) / 2).max(2))
        .map(|(_, k)| k)
}

fn kind(n: &Node) -> &'static str {
    match n.v {
        Value::Null => "nothing",
        Value::Scalar(..) => "a scalar",
        Value::Seq(_) => "a list",
        Value::Map(_) => "a mapping",
    }
}

struct Map<'n> {
    what: &'static str,
    line: usize,
    entries: &'n [(String, usize, Node)],
}

impl<'n> Map<'n> {
    fn new(
        ctx: &Ctx<'_>,
        node: &'n Node,
        what: &'static str,
        known: &[&str],
    ) -> Result<Map<'n>, ConfigError> {
        let Value::Map(entries) = &node.v else {
            return Err(ctx.err(
                node.line,
                format!("{what} must be a mapping of keys, not {}", kind(node)),
            ));
        };
        for (k, line, _) in entries {
            if !known.contains(&k.as_str()) {
                let hint = match nearest(k, known) {
                    Some(n) => format!(" (did you mean `{n}`?)"),
                    None => format!(
                        " (known keys: {})",
                        known
                            .iter()
                            .map(|k| format!("`{k}`"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                };
                return Err(ctx.err(*line, format!("unknown key `{k}` in {what}{hint}")));
            }
        }
        Ok(Map {
            what,
            line: node.line,
            entries,
        })
    }

    fn get(&self, key: &str) -> Option<&'n Node> {
        self.entries
            .iter()
            .find(|(k, _, _)| k == key)
            .map(|(_, _, n)| n)
            .filter(|n| !matches!(n.v, Value::Null))
    }

    fn req(&self, ctx: &Ctx<'_>, key: &str) -> Result<&'n Node, ConfigError> {
        self.get(key)
            .ok_or_else(|| ctx.err(self.line, format!("{} is missing `{key}`", self.what)))
    }

    fn str(&self, ctx: &Ctx<'_>, key: &str) -> Result<Option<String>, ConfigError> {
        self.get(key).map(|n| scalar(ctx, n, key)).transpose()
    }

    fn req_str(&self, ctx: &Ctx<'_>, key: &str) -> Result<(String, usize), ConfigError> {
        let n = self.req(ctx, key)?;
        Ok((scalar(ctx, n, key)?, n.line))
    }

    fn bool(&self, ctx: &Ctx<'_>, key: &str, default: bool) -> Result<bool, ConfigError> {
        let Some(n) = self.get(key) else {
            return Ok(default);
        };
        match &n.v {
            Value::Scalar(s, true) if matches!(s.as_str(), "true" | "True" | "TRUE") => Ok(true),
            Value::Scalar(s, true) if matches!(s.as_str(), "false" | "False" | "FALSE") => {
                Ok(false)
            }
            Value::Scalar(s, _) => Err(ctx.err(
                n.line,
                format!("`{key}` must be true or false, not `{}`", short(s)),
            )),
            _ => Err(ctx.err(
                n.line,
                format!("`{key}` must be true or false, not {}", kind(n)),
            )),
        }
    }

    fn u64(&self, ctx: &Ctx<'_>, key: &str, default: u64) -> Result<u64, ConfigError> {
        let Some(n) = self.get(key) else {
            return Ok(default);
        };
        match &n.v {
            Value::Scalar(s, true) => match s.replace('_', "").parse::<u64>() {
                Ok(v) if v > 0 => Ok(v),
                _ => Err(ctx.err(
                    n.line,
                    format!(
                        "`{key}` must be a positive whole number, not `{}`",
                        short(s)
                    ),
                )),
            },
            _ => Err(ctx.err(
                n.line,
                format!("`{key}` must be a positive whole number, not {}", kind(n)),
            )),
        }
    }
}

fn short(s: &str) -> String {
    let mut o: String = s
        .chars()
        .take(60)
        .map(|c| if c.is_control() { '?' } else { c })
        .collect();
    if o.len() < s.len() {
        o.push('…');
    }
    o
}

fn scalar(ctx: &Ctx<'_>, n: &Node, key: &str) -> Result<String, ConfigError> {
    match &n.v {
        Value::Scalar(s, _) => Ok(s.clone()),
        _ => Err(ctx.err(n.line, format!("`{key}` must be a string, not {}", kind(n)))),
    }
}

/// A list of strings; a single string is accepted as a list of one.
fn str_list(ctx: &Ctx<'_>, n: &Node, key: &str) -> Result<Vec<(String, usize)>, ConfigError> {
    match &n.v {
        Value::Scalar(s, _) => Ok(vec![(s.clone(), n.line)]),
        Value::Seq(items) => items
            .iter()
            .map(|i| match &i.v {
                Value::Scalar(s, _) => Ok((s.clone(), i.line)),
                _ => Err(ctx.err(
                    i.line,
                    format!("items of `{key}` must be strings, not {}", kind(i)),
                )),
            })
            .collect(),
        _ => Err(ctx.err(
            n.line,
            format!("`{key}` must be a list of strings, not {}", kind(n)),
        )),
    }
}

fn seq<'n>(ctx: &Ctx<'_>, n: Option<&'n Node>, key: &str) -> Result<&'n [Node], ConfigError> {
    match n {
        None => Ok(&[]),
        Some(Node {
            v: Value::Seq(items),
            ..
        }) => Ok(items),
        Some(n) => Err(ctx.err(
            n.line,
            format!(
                "`{key}` must be a list (each item starting with `- `), not {}",
                kind(n)
            ),
        )),
    }
}

/// An environment variable name: `[A-Za-z_][A-Za-z0-9_]*`.
pub(crate) fn valid_env_name(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && s.len() <= 128
}

/// Values that are surely credentials, not variable names (AWS access key ids).
fn looks_like_secret(s: &str) -> bool {
    (s.starts_with("AKIA") || s.starts_with("ASIA")) && s.len() == 20
}

fn token_env(ctx: &Ctx<'_>, m: &Map<'_>) -> Result<String, ConfigError> {
    let (v, line) = m.req_str(ctx, "token_env")?;
    let upper = v
        .bytes()
        .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_');
    if !valid_env_name(&v) || !upper || looks_like_secret(&v) {
        return Err(ctx.err(
            line,
            format!(
                "`token_env` must name an environment variable (UPPER_CASE letters, digits, `_`), \
                 not `{}`; never put the secret itself here",
                if v.len() > 12 {
                    "[value hidden]".to_string()
                } else {
                    short(&v)
                }
            ),
        ));
    }
    Ok(v)
}

const TOP_KEYS: &[&str] = &["routes", "git", "dlp"];
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
    "token_env",
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
    "ssh",
    "rules",
    "protected",
    "push_options",
    "max_pack_bytes",
    "max_refs",
    "max_object_bytes",
];
const GIT_AUTH_KEYS: &[&str] = &["scheme", "username", "token_env"];
const SSH_KEYS: &[&str] = &["key_file", "known_hosts"];
const RULE_KEYS: &[&str] = &["ref", "allow"];
const DLP_KEYS: &[&str] = &["action", "profile", "responses", "mcp"];

pub(crate) fn parse(text: &str, file: &Path) -> Result<RoutesFile, ConfigError> {
    let ctx = Ctx { file };
    if text.len() > MAX_TEXT {
        return Err(ConfigError::invalid(file, None, "file larger than 4 MiB"));
    }
    let mut events = Events::default();
    let mut parser = Parser::new_from_str(text);
    if let Err(e) = parser.load(&mut events, true) {
        let line = e.marker().line();
        return Err(ctx.err(
            line,
            format!("invalid YAML: {}{}", e.info(), yaml_hint(text, line)),
        ));
    }
    if let Some((_, line)) = events
        .0
        .iter()
        .filter(|(e, _)| matches!(e, Event::DocumentStart))
        .nth(1)
    {
        return Err(ctx.err(
            *line,
            "only one YAML document is allowed (remove the second `---`)",
        ));
    }
    // Skip StreamStart / DocumentStart; an empty stream is an empty file.
    let body: Vec<(Event, usize)> = events
        .0
        .into_iter()
        .filter(|(e, _)| {
            !matches!(
                e,
                Event::StreamStart
                    | Event::StreamEnd
                    | Event::DocumentStart
                    | Event::DocumentEnd
                    | Event::Nothing
            )
        })
        .collect();
    if body.is_empty() {
        return Ok(RoutesFile::empty());
    }
    let mut tree = Tree {
        events: &body,
        pos: 0,
    };
    let root = tree.node(&ctx, 0)?;
    if matches!(root.v, Value::Null) {
        return Ok(RoutesFile::empty());
    }
    let top = Map::new(&ctx, &root, "routes.yaml (top level)", TOP_KEYS)?;

    let mut out = RoutesFile::empty();
    for (index, n) in seq(&ctx, top.get("routes"), "routes")?.iter().enumerate() {
        out.routes.push(parse_route(&ctx, n, index)?);
    }
    let mut names = HashSet::new();
    for n in seq(&ctx, top.get("git"), "git")? {
        let repo = parse_git(&ctx, n)?;
        if !names.insert(repo.name.clone()) {
            return Err(ctx.err(
                repo.line,
                format!("git repository `{}` is defined twice", repo.name),
            ));
        }
        out.git.push(repo);
    }
    if let Some(d) = top.get("dlp") {
        out.dlp = parse_dlp(&ctx, d)?;
    }
    Ok(out)
}

fn parse_dlp(ctx: &Ctx<'_>, d: &Node) -> Result<DlpSettings, ConfigError> {
    let m = Map::new(ctx, d, "dlp", DLP_KEYS)?;
    let mut out = DlpSettings::default();
    let word = |key: &str, allowed: &[&str]| -> Result<Option<(String, usize)>, ConfigError> {
        let Some(n) = m.get(key) else {
            return Ok(None);
        };
        let v = scalar(ctx, n, key)?;
        if allowed.contains(&v.as_str()) {
            return Ok(Some((v, n.line)));
        }
        let list = allowed
            .iter()
            .map(|a| format!("`{a}`"))
            .collect::<Vec<_>>()
            .join(" or ");
        Err(ctx.err(
            n.line,
            format!("dlp `{key}` must be {list}, not `{}`", short(&v)),
        ))
    };
    if let Some((v, _)) = word("action", &["block", "log"])? {
        out.action = if v == "log" {
            DlpAction::Log
        } else {
            DlpAction::Block
        };
    }
    if let Some((v, _)) = word("profile", &["default", "strict"])? {
        out.profile = if v == "strict" {
            DlpProfile::Strict
        } else {
            DlpProfile::Default
        };
    }
    let action = |v: &str| match v {
        "warn" => ScanAction::Warn,
        "off" => ScanAction::Off,
        _ => ScanAction::Block,
    };
    if let Some((v, _)) = word("responses", &["block", "warn", "off"])? {
        out.responses = action(&v);
    }
    if let Some((v, _)) = word("mcp", &["block", "warn", "off"])? {
        out.mcp = action(&v);
    }
    Ok(out)
}

fn parse_route(ctx: &Ctx<'_>, n: &Node, index: usize) -> Result<Route, ConfigError> {
    let m = Map::new(ctx, n, "route", ROUTE_KEYS)?;
    let (host_s, host_line) = m.req_str(ctx, "host")?;
    let host = HostPattern::parse(&host_s)
        .map_err(|e| ctx.err(host_line, format!("route `host`: {e}")))?;
    let paths = match m.get("paths") {
        None => None,
        Some(p) => {
            let list = str_list(ctx, p, "paths")?;
            if list.is_empty() {
                return Err(ctx.err(
                    p.line,
                    "`paths` is empty, which would match nothing; remove it to allow every path",
                ));
            }
            for (g, line) in &list {
                PathGlobs::new(std::slice::from_ref(g)).map_err(|e| ctx.err(*line, e))?;
            }
            let globs: Vec<String> = list.into_iter().map(|(g, _)| g).collect();
            Some(PathGlobs::new(&globs).map_err(|e| ctx.err(p.line, e))?)
        }
    };
    let methods = match m.get("methods") {
        None => None,
        Some(p) => {
            let list = str_list(ctx, p, "methods")?;
            if list.is_empty() {
                return Err(ctx.err(p.line, "`methods` is empty, which would match nothing; remove it to allow every method"));
            }
            let mut out = Vec::new();
            for (s, line) in list {
                let up = s.to_ascii_uppercase();
                let valid = !up.is_empty()
                    && up
                        .bytes()
                        .all(|b| b.is_ascii_uppercase() || b == b'-' || b == b'_');
                let method = http::Method::from_bytes(up.as_bytes())
                    .ok()
                    .filter(|_| valid);
                match method {
                    Some(mth) => out.push(mth),
                    None => {
                        return Err(ctx.err(
                            line,
                            format!("`{}` is not an HTTP method (e.g. GET, POST)", short(&s)),
                        ))
                    }
                }
            }
            Some(out)
        }
    };
    let auth = match m.get("auth") {
        None => None,
        Some(a) => Some(parse_route_auth(ctx, a)?),
    };
    let tls_passthrough = m.bool(ctx, "tls_passthrough", false)?;
    let allow_cleartext = m.bool(ctx, "allow_cleartext", false)?;
    if tls_passthrough {
        for key in ["auth", "paths", "methods", "allow_cleartext"] {
            if let Some(node) = m.get(key) {
                return Err(ctx.err(
                    node.line,
                    format!("`{key}` cannot apply to a `tls_passthrough` route: its traffic is not decrypted"),
                ));
            }
        }
    }
    Ok(Route {
        index,
        line: n.line,
        host,
        paths,
        methods,
        auth,
        tls_passthrough,
        allow_cleartext,
    })
}

fn parse_route_auth(ctx: &Ctx<'_>, n: &Node) -> Result<RouteAuth, ConfigError> {
    let m = Map::new(ctx, n, "route auth", AUTH_KEYS)?;
    let (scheme_s, scheme_line) = m.req_str(ctx, "scheme")?;
    let scheme = match scheme_s.to_ascii_lowercase().as_str() {
        "bearer" => AuthScheme::Bearer,
        "basic" => AuthScheme::Basic,
        "header" => AuthScheme::Header,
        "query" => AuthScheme::Query,
        _ => {
            return Err(ctx.err(
                scheme_line,
                format!(
                    "unknown auth scheme `{}` (use bearer, basic, header or query)",
                    short(&scheme_s)
                ),
            ))
        }
    };
    let token_env = token_env(ctx, &m)?;
    let header = m.str(ctx, "header")?;
    let prefix = m.str(ctx, "prefix")?;
    let username = m.str(ctx, "username")?;
    let param = m.str(ctx, "param")?;
    let strip_cookies = m.bool(ctx, "strip_cookies", false)?;
    let line_of = |k: &str| m.get(k).map(|n| n.line).unwrap_or(m.line);
    let only = |key: &str, for_scheme: &str| -> ConfigError {
        ctx.err(
            line_of(key),
            format!("`{key}` only applies to scheme {for_scheme}"),
        )
    };
    match scheme {
        AuthScheme::Header => {
            let Some(h) = &header else {
                return Err(ctx.err(
                    m.line,
                    "scheme header needs `header` (the header to set, e.g. X-Api-Key)",
                ));
            };
            if http::HeaderName::from_bytes(h.as_bytes()).is_err() {
                return Err(ctx.err(
                    line_of("header"),
                    format!("`{}` is not a valid header name", short(h)),
                ));
            }
            let lower = h.to_ascii_lowercase();
            if matches!(
                lower.as_str(),
                "host"
                    | "connection"
                    | "content-length"
                    | "transfer-encoding"
                    | "te"
                    | "upgrade"
                    | "proxy-authorization"
            ) {
                return Err(ctx.err(
                    line_of("header"),
                    format!("header `{h}` cannot carry a credential"),
                ));
            }
        }
        AuthScheme::Query => {
            let Some(p) = &param else {
                return Err(ctx.err(
                    m.line,
                    "scheme query needs `param` (the query parameter, e.g. api_key)",
                ));
            };
            if p.is_empty()
                || !p
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.~".contains(&b))
            {
                return Err(ctx.err(
                    line_of("param"),
                    format!("`param` `{}` must be letters, digits, `-_.~`", short(p)),
                ));
            }
        }
        AuthScheme::Bearer | AuthScheme::Basic => {}
    }
    if header.is_some() && scheme != AuthScheme::Header {
        return Err(only("header", "header"));
    }
    if param.is_some() && scheme != AuthScheme::Query {
        return Err(only("param", "query"));
    }
    if username.is_some() && scheme != AuthScheme::Basic {
        return Err(only("username", "basic"));
    }
    if prefix.is_some() && !matches!(scheme, AuthScheme::Header | AuthScheme::Bearer) {
        return Err(only("prefix", "header or bearer"));
    }
    for (k, v) in [("prefix", &prefix), ("username", &username)] {
        if v.as_deref()
            .is_some_and(|s| s.chars().any(|c| c.is_control()))
        {
            return Err(ctx.err(
                line_of(k),
                format!("`{k}` must not contain control characters"),
            ));
        }
    }
    if username.as_deref().is_some_and(|u| u.contains(':')) {
        return Err(ctx.err(line_of("username"), "`username` must not contain `:`"));
    }
    Ok(RouteAuth {
        scheme,
        token_env,
        header,
        prefix,
        username,
        param,
        strip_cookies,
    })
}

fn valid_repo_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 100
        && s != "."
        && s != ".."
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
}

fn parse_git(ctx: &Ctx<'_>, n: &Node) -> Result<GitRepo, ConfigError> {
    let m = Map::new(ctx, n, "git repository", GIT_KEYS)?;
    let (name, name_line) = m.req_str(ctx, "name")?;
    if !valid_repo_name(&name) {
        return Err(ctx.err(
            name_line,
            format!(
                "git `name` `{}` may only hold letters, digits, `.`, `_` and `-`",
                short(&name)
            ),
        ));
    }
    if name.ends_with(".git") {
        return Err(ctx.err(
            name_line,
            format!("git `name` `{name}`: leave out `.git` (it is served as `{name}`)"),
        ));
    }
    let (upstream, up_line) = m.req_str(ctx, "upstream")?;
    let kind = upstream_kind(&upstream).map_err(|e| ctx.err(up_line, e))?;
    let auth = match m.get("auth") {
        None => None,
        Some(a) => {
            let am = Map::new(ctx, a, "git auth", GIT_AUTH_KEYS)?;
            let (s, sl) = am.req_str(ctx, "scheme")?;
            let scheme = match s.to_ascii_lowercase().as_str() {
                "basic" => GitAuthScheme::Basic,
                "bearer" => GitAuthScheme::Bearer,
                _ => {
                    return Err(ctx.err(
                        sl,
                        format!(
                            "unknown git auth scheme `{}` (use basic or bearer)",
                            short(&s)
                        ),
                    ))
                }
            };
            let username = am.str(ctx, "username")?;
            if username.is_some() && scheme != GitAuthScheme::Basic {
                return Err(ctx.err(
                    am.get("username").map(|n| n.line).unwrap_or(a.line),
                    "`username` only applies to scheme basic",
                ));
            }
            if username
                .as_deref()
                .is_some_and(|u| u.contains(':') || u.chars().any(|c| c.is_control()))
            {
                return Err(ctx.err(
                    a.line,
                    "`username` must not contain `:` or control characters",
                ));
            }
            let token_env = token_env(ctx, &am)?;
            if kind != "https" {
                return Err(ctx.err(
                    a.line,
                    "`auth` applies to https:// upstreams only (ssh uses `ssh`)",
                ));
            }
            Some(GitAuth {
                scheme,
                username,
                token_env,
            })
        }
    };
    let ssh = match m.get("ssh") {
        None => None,
        Some(s) => {
            let sm = Map::new(ctx, s, "git ssh", SSH_KEYS)?;
            let (key_file, _) = sm.req_str(ctx, "key_file")?;
            let (known_hosts, kl) = sm.req_str(ctx, "known_hosts")?;
            if known_hosts.trim().is_empty() {
                return Err(ctx.err(kl, "`known_hosts` must hold the pinned host key line(s)"));
            }
            if kind != "ssh" {
                return Err(ctx.err(s.line, "`ssh` applies to ssh:// upstreams only"));
            }
            Some(GitSsh {
                key_file: PathBuf::from(key_file),
                known_hosts,
            })
        }
    };
    if kind == "ssh" && ssh.is_none() {
        return Err(ctx.err(
            up_line,
            "an ssh:// upstream needs `ssh: {key_file: ..., known_hosts: ...}`",
        ));
    }
    let mut rules = Vec::new();
    for r in seq(ctx, m.get("rules"), "rules")? {
        let rm = Map::new(ctx, r, "ref rule", RULE_KEYS)?;
        let (pattern, pl) = rm.req_str(ctx, "ref")?;
        let glob = ref_glob(&pattern).map_err(|e| ctx.err(pl, e))?;
        let allow_node = rm.get("allow");
        let mut allow = Vec::new();
        if let Some(a) = allow_node {
            for (s, line) in str_list(ctx, a, "allow")? {
                allow.push(match s.to_ascii_lowercase().as_str() {
                    "create" => RefAction::Create,
                    "update" => RefAction::Update,
                    "force" => RefAction::Force,
                    "delete" => RefAction::Delete,
                    _ => {
                        return Err(ctx.err(
                            line,
                            format!(
                                "unknown ref action `{}` (use create, update, force or delete)",
                                short(&s)
                            ),
                        ))
                    }
                });
            }
        } else if !rm.entries.iter().any(|(k, _, _)| k == "allow") {
            return Err(ctx.err(
                r.line,
                "ref rule is missing `allow` (a list of create, update, force, delete; [] denies)",
            ));
        }
        rules.push(RefRule {
            r#ref: pattern,
            glob,
            allow,
        });
    }
    let mut protected = Vec::new();
    if let Some(p) = m.get("protected") {
        for (s, line) in str_list(ctx, p, "protected")? {
            ref_glob(&s).map_err(|e| ctx.err(line, e))?;
            protected.push(s);
        }
    }
    let push_options = m.bool(ctx, "push_options", false)?;
    let max_pack_bytes = m.u64(ctx, "max_pack_bytes", DEFAULT_MAX_PACK_BYTES)?;
    let max_refs =
        usize::try_from(m.u64(ctx, "max_refs", DEFAULT_MAX_REFS as u64)?).unwrap_or(usize::MAX);
    let max_object_bytes = m.u64(ctx, "max_object_bytes", DEFAULT_MAX_OBJECT_BYTES)?;
    Ok(GitRepo {
        name,
        line: n.line,
        upstream,
        auth,
        ssh,
        rules,
        protected,
        push_options,
        max_pack_bytes,
        max_refs,
        max_object_bytes,
    })
}

/// "https" | "ssh" | "file", or an error saying what to write.
fn upstream_kind(u: &str) -> Result<&'static str, String> {
    if u.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("`upstream` must not contain spaces or control characters".into());
    }
    let (kind, rest) = if let Some(r) = u.strip_prefix("https://") {
        ("https", r)
    } else if let Some(r) = u.strip_prefix("ssh://") {
        ("ssh", r)
    } else if let Some(r) = u.strip_prefix("file://") {
        return if r.starts_with('/') && r.len() > 1 {
            Ok("file")
        } else {
            Err(format!(
                "`upstream` `{}`: file:// needs an absolute path (file:///srv/repo.git)",
                short(u)
            ))
        };
    } else if u.starts_with("http://") {
        return Err(format!(
            "`upstream` `{}`: use https://, plain http is not allowed",
            short(u)
        ));
    } else {
        return Err(format!(
            "`upstream` `{}` must start with https://, ssh:// or file:// (scp-like `git@host:path` → ssh://git@host/path)",
            short(u)
        ));
    };
    let authority = rest.split('/').next().unwrap_or("");
    let (userinfo, hostport) = match authority.rsplit_once('@') {
        Some((ui, hp)) => (Some(ui), hp),
        None => (None, authority),
    };
    if let Some(ui) = userinfo {
        if kind == "https" || ui.contains(':') {
            return Err(
                "`upstream` must not carry credentials; use `auth` with `token_env`".into(),
            );
        }
    }
    crate::host::split_host_port(hostport, if kind == "https" { 443 } else { 22 })
        .map_err(|e| format!("`upstream` `{}`: {e}", short(u)))?;
    if rest.len() <= authority.len() + 1 {
        return Err(format!("`upstream` `{}` has no repository path", short(u)));
    }
    Ok(kind)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::parse_host;

    fn parse_ok(text: &str) -> RoutesFile {
        parse(text, Path::new("routes.yaml")).unwrap_or_else(|e| panic!("{e}"))
    }

    fn parse_err(text: &str) -> String {
        parse(text, Path::new("routes.yaml"))
            .err()
            .map(|e| e.to_string())
            .unwrap_or_else(|| panic!("accepted: {text}"))
    }

    const DESIGN: &str = r#"routes:                            # egress routes; their hosts are allowed too
  - host: api.github.com           # a pattern as in the allowlist
    paths: ["/repos/acme/**"]      # optional globs; default: every path
    methods: [GET, POST]           # optional; default: every method
    auth:                          # optional; without it the route only allows
      scheme: bearer               # bearer | basic | header | query
      token_env: BOTTLE_TOKEN_0    # env var of egress that holds the secret
      # header: X-Api-Key          # scheme header: the header to set
      # prefix: "token "           # optional prefix of the header value
      # username: x-access-token   # scheme basic
      # param: api_key             # scheme query
    tls_passthrough: false         # true: tunnelled, not decrypted (no DLP, no injection)
git:                               # git-gate repositories
  - name: demo                     # served as http://git-gate:8080/demo.git
    upstream: https://github.com/acme/demo.git   # https://, ssh:// or file://
    auth: {scheme: basic, username: x-access-token, token_env: BOTTLE_GIT_TOKEN_0}
    rules:                         # ordered; first match wins; no match: denied
      - {ref: "refs/heads/agent/**", allow: [create, update, force, delete]}
      - {ref: "refs/heads/**", allow: [update]}
    protected: ["refs/heads/main"] # never forced or deleted, whatever the rules say
dlp:                               # pipelock
  action: block                    # block | log
"#;

    #[test]
    fn dlp_settings_parse() {
        let f = parse_ok("dlp:\n  action: log\n  profile: strict\n  responses: warn\n  mcp: off\n");
        assert_eq!(
            f.dlp,
            DlpSettings {
                action: DlpAction::Log,
                profile: DlpProfile::Strict,
                responses: ScanAction::Warn,
                mcp: ScanAction::Off,
            }
        );
    }

    #[test]
    fn design_example_parses() {
        let f = parse_ok(DESIGN);
        assert_eq!(f.routes.len(), 1);
        let r = &f.routes[0];
        assert_eq!(r.line, 2);
        assert_eq!(r.index, 0);
        assert!(r.host.matches(&parse_host("api.github.com").unwrap(), 443));
        assert!(r.accepts(&http::Method::GET, "/repos/acme/x/pulls"));
        assert!(!r.accepts(&http::Method::DELETE, "/repos/acme/x"));
        assert!(!r.accepts(&http::Method::GET, "/repos/other/x"));
        assert!(!r.accepts(&http::Method::GET, "/repos/acme/../other/x"));
        assert!(!r.accepts(&http::Method::GET, "/repos/acme/%2e%2e/other"));
        assert!(!r.accepts(&http::Method::GET, "/repos/acme%2fx"));
        let a = r.auth.as_ref().unwrap();
        assert_eq!(a.scheme, AuthScheme::Bearer);
        assert_eq!(a.token_env, "BOTTLE_TOKEN_0");
        assert!(!a.strip_cookies);
        assert!(!r.tls_passthrough);
        assert!(!r.allow_cleartext);
        let f = parse_ok("routes:\n  - host: \"origin.test:8080\"\n    allow_cleartext: true\n    auth: {scheme: bearer, token_env: T}\n");
        assert!(f.routes[0].allow_cleartext);
        let f = parse_ok(DESIGN);
        let g = &f.git[0];
        assert_eq!(g.name, "demo");
        assert_eq!(g.line, 14);
        assert_eq!(
            g.auth.as_ref().unwrap().username.as_deref(),
            Some("x-access-token")
        );
        assert_eq!(g.rules.len(), 2);
        assert!(g.rules[0].matches("refs/heads/agent/fix/1"));
        assert!(!g.rules[0].matches("refs/heads/main"));
        assert!(g.rules[1].matches("refs/heads/main"));
        assert!(!g.rules[1].matches("refs/tags/v1"));
        assert_eq!(
            g.rules[0].allow,
            vec![
                RefAction::Create,
                RefAction::Update,
                RefAction::Force,
                RefAction::Delete
            ]
        );
        assert_eq!(g.protected, vec!["refs/heads/main".to_string()]);
        assert_eq!(g.max_pack_bytes, DEFAULT_MAX_PACK_BYTES);
        assert_eq!(g.max_refs, 100);
        assert!(!g.push_options);
        assert_eq!(f.dlp.action, DlpAction::Block);
        assert_eq!(
            f.dlp.responses,
            ScanAction::Block,
            "response scanning is on by default"
        );
        assert_eq!(f.dlp.mcp, ScanAction::Block);
        assert_eq!(f.dlp.profile, DlpProfile::Default);
    }

    #[test]
    fn empty_forms() {
        for t in [
            "",
            "\n",
            "# only a comment\n",
            "---\n",
            "routes:\ngit:\n",
            "routes: []\n",
        ] {
            let f = parse_ok(t);
            assert!(f.routes.is_empty() && f.git.is_empty());
            assert_eq!(f.dlp.action, DlpAction::Block);
        }
    }

    #[test]
    fn unknown_key_names_line_and_nearest() {
        let t = "routes:\n  - host: a.example\n    auth:\n      scheme: bearer\n      token_env: X\n\n      tokn_env: Y\n";
        assert_eq!(
            parse_err(t),
            "routes.yaml:7: unknown key `tokn_env` in route auth (did you mean `token_env`?)"
        );
        assert_eq!(parse_err("rotes: []\n"), "routes.yaml:1: unknown key `rotes` in routes.yaml (top level) (did you mean `routes`?)");
        let e = parse_err("routes:\n  - host: a\n    tls_pasthrough: true\n");
        assert!(e.starts_with("routes.yaml:3: unknown key `tls_pasthrough` in route (did you mean `tls_passthrough`?)"), "{e}");
        let e = parse_err("routes:\n  - host: a\n    allow_cleartxt: true\n");
        assert!(e.starts_with("routes.yaml:3: unknown key `allow_cleartxt` in route (did you mean `allow_cleartext`?)"), "{e}");
        let e = parse_err("git:\n  - name: a\n    upstream: https://h/x\n    max_pack: 3\n");
        assert!(
            e.starts_with("routes.yaml:4:") && e.contains("did you mean `max_pack_bytes`"),
            "{e}"
        );
        let e = parse_err("dlp:\n  zzzzzzzz: 1\n");
        assert!(e.contains("known keys: `action`"), "{e}");
    }

    #[test]
    fn errors_with_lines() {
        let cases: &[(&str, &str)] = &[
            ("routes:\n  - paths: [\"/x\"]\n", "routes.yaml:2: route is missing `host`"),
            ("routes:\n  - host: a\n    tls_passthrough: yes\n", "routes.yaml:3: `tls_passthrough` must be true or false"),
            ("routes:\n  - host: a\n    tls_passthrough: \"true\"\n", "routes.yaml:3: `tls_passthrough` must be true or false"),
            ("routes:\n  - host: a\n    auth: {scheme: header, token_env: T}\n", "routes.yaml:3: scheme header needs `header`"),
            ("routes:\n  - host: a\n    auth:\n      scheme: query\n      token_env: T\n", "routes.yaml:4: scheme query needs `param`"),
            ("routes:\n  - host: a\n    auth:\n      scheme: bearer\n      token_env: ghp_abcdefghijklmnop\n", "routes.yaml:5:"),
            ("routes:\n  - host: a\n    auth:\n      scheme: bearer\n      token_env: 1ABC\n", "must name an environment variable"),
            ("routes:\n  - host: a\n    auth:\n      scheme: oauth\n      token_env: T\n", "routes.yaml:4: unknown auth scheme `oauth`"),
            ("routes:\n  - host: a\n    auth:\n      scheme: bearer\n      token_env: T\n      param: x\n", "routes.yaml:6: `param` only applies to scheme query"),
            ("routes:\n  - host: a\n    methods: [GET, \"PO ST\"]\n", "routes.yaml:3: `PO ST` is not an HTTP method"),
            ("routes:\n  - host: a\n    paths: [\"repos/**\"]\n", "must start with `/`"),
            ("routes:\n  - host: a\n    paths: [\"/a/[\"]\n", "routes.yaml:3: invalid path glob"),
            ("routes:\n  - host: \"a.*.b\"\n", "routes.yaml:2: route `host`"),
            ("routes:\n  - host: a\n    tls_passthrough: true\n    auth: {scheme: bearer, token_env: T}\n", "routes.yaml:4: `auth` cannot apply"),
            ("routes:\n  - host: a\n    tls_passthrough: true\n    allow_cleartext: true\n", "routes.yaml:4: `allow_cleartext` cannot apply"),
            ("routes:\n  - host: a\n    allow_cleartext: 1\n", "routes.yaml:3: `allow_cleartext` must be true or false"),
            ("routes: {host: a}\n", "routes.yaml:1: `routes` must be a list"),
            ("routes:\n  - a.example\n", "routes.yaml:2: route must be a mapping"),
            ("git:\n  - name: a/b\n    upstream: https://h/x\n", "routes.yaml:2: git `name`"),
            ("git:\n  - name: a\n    upstream: https://h/x\n  - name: a\n    upstream: https://h/y\n", "routes.yaml:4: git repository `a` is defined twice"),
            ("git:\n  - name: a\n    upstream: http://h/x\n", "routes.yaml:3: `upstream` `http://h/x`: use https://"),
            ("git:\n  - name: a\n    upstream: ftp://h/x\n", "must start with https://, ssh:// or file://"),
            ("git:\n  - name: a\n    upstream: https://u:p@h/x\n", "must not carry credentials"),
            ("git:\n  - name: a\n    upstream: ssh://git@h/x\n", "needs `ssh:"),
            ("git:\n  - name: a\n    upstream: https://h/x\n    rules:\n      - {ref: \"heads/*\", allow: [update]}\n", "routes.yaml:5: ref pattern `heads/*` must start with `refs/`"),
            ("git:\n  - name: a\n    upstream: https://h/x\n    rules:\n      - {ref: \"refs/heads/*\", allow: [push]}\n", "routes.yaml:5: unknown ref action `push`"),
            ("git:\n  - name: a\n    upstream: https://h/x\n    rules:\n      - {ref: \"refs/heads/*\"}\n", "routes.yaml:5: ref rule is missing `allow`"),
            ("git:\n  - name: a\n    upstream: https://h/x\n    max_refs: -1\n", "routes.yaml:4: `max_refs` must be a positive whole number"),
            ("git:\n  - name: a\n    upstream: https://h/x\n    max_refs: 0\n", "routes.yaml:4:"),
            ("dlp:\n  action: warn\n", "routes.yaml:2: dlp `action` must be `block` or `log`"),
            ("dlp:\n  responses: log\n", "routes.yaml:2: dlp `responses` must be `block` or `warn` or `off`, not `log`"),
            ("dlp:\n  action: block\n  mcp: yes\n", "routes.yaml:3: dlp `mcp` must be `block` or `warn` or `off`"),
            ("dlp:\n  profile: paranoid\n", "routes.yaml:2: dlp `profile` must be `default` or `strict`"),
            ("routes:\n  - host: a\n  - host: b\n    host: c\n", "routes.yaml:4: duplicate key `host`"),
            ("routes: [\n", "routes.yaml:"),
            ("a: &x 1\nb: *x\n", "routes.yaml:1:"),
            ("- 1\n- 2\n", "routes.yaml:1: routes.yaml (top level) must be a mapping"),
            ("git:\n  - name: a\n    upstream: file://relative\n", "absolute path"),
        ];
        for (text, want) in cases {
            let e = parse_err(text);
            assert!(e.contains(want), "{text:?}\n got: {e}\nwant: {want}");
            assert!(e.starts_with("routes.yaml:"), "{e}");
        }
    }

    #[test]
    fn secret_like_token_env_is_not_echoed() {
        let e = parse_err("routes:\n  - host: a\n    auth: {scheme: bearer, token_env: ghp_0123456789abcdef0123}\n");
        assert!(!e.contains("ghp_0123456789abcdef0123"), "{e}");
    }

    #[test]
    fn all_schemes() {
        let f = parse_ok(
            "routes:\n  - host: a\n    auth: {scheme: header, header: X-Api-Key, prefix: \"key \", token_env: A}\n\
             \x20 - host: b\n    auth: {scheme: basic, username: u, token_env: B, strip_cookies: true}\n\
             \x20 - host: c\n    auth: {scheme: query, param: api_key, token_env: C}\n\
             \x20 - host: \"*.d:*\"\n    tls_passthrough: true\n\
             git:\n  - name: s\n    upstream: ssh://git@github.com/acme/s.git\n    ssh: {key_file: /run/k, known_hosts: \"github.com ssh-ed25519 AAAA\"}\n\
             \x20 - name: f.x_y-z\n    upstream: file:///srv/x.git\n    push_options: true\n    max_pack_bytes: 1_000\n",
        );
        assert_eq!(
            f.routes[0].auth.as_ref().unwrap().header.as_deref(),
            Some("X-Api-Key")
        );
        assert_eq!(
            f.routes[0].auth.as_ref().unwrap().prefix.as_deref(),
            Some("key ")
        );
        assert!(f.routes[1].auth.as_ref().unwrap().strip_cookies);
        assert_eq!(
            f.routes[2].auth.as_ref().unwrap().param.as_deref(),
            Some("api_key")
        );
        assert!(f.routes[3].tls_passthrough);
        assert!(f.routes[3].host.matches(&parse_host("x.d").unwrap(), 9));
        assert_eq!(
            f.git[0].ssh.as_ref().unwrap().key_file,
            PathBuf::from("/run/k")
        );
        assert!(f.git[1].push_options);
        assert_eq!(f.git[1].max_pack_bytes, 1000);
        assert_eq!(
            f.routes.iter().map(|r| r.index).collect::<Vec<_>>(),
            vec![0, 1, 2, 3]
        );
    }

    #[test]
    fn second_document_is_an_error() {
        let e = parse_err("routes: []\n---\nroutes:\n  - host: evil.example\n");
        assert!(
            e.starts_with("routes.yaml:2: only one YAML document"),
            "{e}"
        );
        assert!(parse("---\nroutes: []\n", Path::new("routes.yaml")).is_ok());
    }

    #[test]
    fn unquoted_star_gets_a_hint() {
        let e = parse_err("routes:\n  - host: *.example.com\n");
        assert!(e.starts_with("routes.yaml:2:"), "{e}");
        assert!(e.contains("\"*.example.com\""), "{e}");
    }

    #[test]
    fn nearest_key() {
        assert_eq!(nearest("tokn_env", AUTH_KEYS), Some("token_env"));
        assert_eq!(nearest("Host", ROUTE_KEYS), Some("host"));
        assert_eq!(nearest("xyzzy", ROUTE_KEYS), None);
    }

    #[test]
    fn never_panics_on_random_input() {
        let mut seed: u64 = 0xdead_beef_cafe_f00d;
        let pieces = [
            "routes:",
            "git:",
            "dlp:",
            "\n",
            "  ",
            "- ",
            "host: ",
            "a.b",
            "[",
            "]",
            "{",
            "}",
            ",",
            ":",
            "&a ",
            "*a",
            "auth:",
            "scheme: ",
            "bearer",
            "\"",
            "'",
            "#",
            "---",
            "name: ",
            "rules:",
            "ref: ",
            "allow: ",
            "!!str ",
            "|",
            "\t",
            "?",
            "%",
            "@",
            "upstream: ",
            "https://h/x",
            "ssh:",
        ];
        for _ in 0..5_000 {
            let mut s = String::new();
            for _ in 0..(seed % 40) {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                s.push_str(pieces[(seed % pieces.len() as u64) as usize]);
            }
            let _ = parse(&s, Path::new("r"));
        }
        // Deep nesting is refused, not a stack overflow.
        let deep = "[".repeat(10_000);
        let _ = parse(&deep, Path::new("r"));
        let deep = format!("{}1{}", "[".repeat(200), "]".repeat(200));
        assert!(parse(&deep, Path::new("r")).is_err());
    }
}
