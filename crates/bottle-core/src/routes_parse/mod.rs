//! Strict `routes.yaml` parsing with line numbers: the schema (routes, dlp, and git in
//! `git.rs`) on the strict YAML reader of `strict_yaml`.

mod git;

use std::collections::HashSet;
use std::path::Path;

use crate::allowlist::HostPattern;
use crate::error::ConfigError;
use crate::routes::{
    dlp_setting, AuthScheme, DlpSettings, PathGlobs, Route, RouteAuth, RoutesFile,
};
use crate::strict_yaml::{load, seq, short, str_list, Ctx, Map, Node};

use git::parse_git;

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

pub(super) fn token_env(ctx: &Ctx<'_>, m: &Map<'_>) -> Result<String, ConfigError> {
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
pub(super) const GIT_KEYS: &[&str] = &[
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
pub(super) const GIT_AUTH_KEYS: &[&str] = &["scheme", "username", "token_env"];
pub(super) const SSH_KEYS: &[&str] = &["key_file", "known_hosts"];
pub(super) const RULE_KEYS: &[&str] = &["ref", "allow"];
const DLP_KEYS: &[&str] = &["action", "profile", "responses", "mcp"];

// The parser's entry points are `RoutesFile`'s own methods, defined here rather than in
// routes.rs so that the schema module does not depend on this one.
impl RoutesFile {
    /// Parse the file's text; `file` is only used in error messages.
    pub fn parse(text: &str, file: &Path) -> Result<RoutesFile, ConfigError> {
        parse(text, file)
    }

    /// The same schema over a tree the caller built (the launcher, from its manifest) or
    /// read with [`crate::strict_yaml::load`]: what [`RoutesFile::parse`] accepts, with the
    /// same errors, naming `file` and the nodes' lines.
    pub fn from_node(root: &Node, file: &Path) -> Result<RoutesFile, ConfigError> {
        from_node(root, file)
    }
}

pub(crate) fn parse(text: &str, file: &Path) -> Result<RoutesFile, ConfigError> {
    let ctx = Ctx { file };
    match load(text, &ctx)? {
        None => Ok(RoutesFile::empty()),
        Some(root) => from_node(&root, file),
    }
}

/// The schema over a tree, read from a file or built by the launcher: errors name `file` and
/// the nodes' lines.
pub(crate) fn from_node(root: &Node, file: &Path) -> Result<RoutesFile, ConfigError> {
    let ctx = Ctx { file };
    if matches!(root.v, crate::strict_yaml::Value::Null) {
        return Ok(RoutesFile::empty());
    }
    let top = Map::new(&ctx, root, "routes.yaml (top level)", TOP_KEYS)?;

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
    Ok(DlpSettings {
        action: dlp_setting(ctx, &m, "action")?.unwrap_or_default(),
        profile: dlp_setting(ctx, &m, "profile")?.unwrap_or_default(),
        responses: dlp_setting(ctx, &m, "responses")?.unwrap_or_default(),
        mcp: dlp_setting(ctx, &m, "mcp")?.unwrap_or_default(),
    })
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

#[cfg(test)]
mod tests;
