//! The `git:` section of routes.yaml: repositories, upstreams, credentials, ref rules.

use std::path::PathBuf;

use crate::error::ConfigError;
use crate::routes::{
    ref_glob, GitAuth, GitAuthScheme, GitRepo, GitSsh, RefAction, RefRule,
    DEFAULT_MAX_OBJECT_BYTES, DEFAULT_MAX_PACK_BYTES, DEFAULT_MAX_REFS,
};
use crate::strict_yaml::{seq, short, str_list, Ctx, Map, Node};

use super::{token_env, GIT_AUTH_KEYS, GIT_KEYS, RULE_KEYS, SSH_KEYS};

fn valid_repo_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 100
        && s != "."
        && s != ".."
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
}

pub(super) fn parse_git(ctx: &Ctx<'_>, n: &Node) -> Result<GitRepo, ConfigError> {
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
