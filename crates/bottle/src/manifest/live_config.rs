//! The live config the sidecars load (`allowlist`, `routes.yaml`), rendered from a loaded
//! manifest and checked with their own code. It sits under `manifest` because loading a
//! manifest runs that check (`render` re-exports the rendering for `bottle start`).
//!
//! `routes.yaml`, built as a tree from the manifest and checked with the sidecars' own schema
//! (`RoutesFile::from_node`, the code egress, git-gate and pipelock load the file with), then
//! written as text. Nothing is rendered to text and parsed back to validate it: the tree
//! carries the manifest's lines, so a refusal names the manifest line that caused it. That
//! the written text reads back as the same value is proved by the tests beside this file.

use std::path::Path;

use bottle_core::strict_yaml::Node;
use bottle_core::RoutesFile;

use crate::manifest::{GitScheme, Loaded, RefAction, Scheme};

fn scheme_word(s: Scheme) -> &'static str {
    match s {
        Scheme::Bearer => "bearer",
        Scheme::Basic => "basic",
        Scheme::Header => "header",
        Scheme::Query => "query",
    }
}

fn git_scheme_word(s: GitScheme) -> &'static str {
    match s {
        GitScheme::Basic => "basic",
        GitScheme::Bearer => "bearer",
    }
}

fn action_word(a: RefAction) -> &'static str {
    match a {
        RefAction::Create => "create",
        RefAction::Update => "update",
        RefAction::Force => "force",
        RefAction::Delete => "delete",
    }
}

/// The routes.yaml tree of a manifest: credential names are slot names, never values; each
/// node on the line of the manifest key it comes from.
pub fn routes_tree(l: &Loaded) -> Node {
    let m = &l.manifest;
    let at = |p: &str| m.lines.near(p);
    let strings = |p: &str, items: &[String]| {
        Node::seq(
            at(p),
            items
                .iter()
                .enumerate()
                .map(|(j, s)| Node::str(at(&format!("{p}.{j}")), s))
                .collect(),
        )
    };
    let mut routes = Vec::new();
    for (i, r) in m.routes.iter().enumerate() {
        let p = format!("routes.{i}");
        let k = |key: &str| format!("{p}.{key}");
        let mut o = vec![("host", Node::str(at(&k("host")), &r.host))];
        if let Some(paths) = &r.paths {
            o.push(("paths", strings(&k("paths"), paths)));
        }
        if let Some(methods) = &r.methods {
            o.push(("methods", strings(&k("methods"), methods)));
        }
        if let Some(a) = &r.auth {
            let k = |key: &str| format!("{p}.auth.{key}");
            let mut au = vec![
                ("scheme", Node::str(at(&k("scheme")), scheme_word(a.scheme))),
                (
                    "token_env",
                    Node::str(
                        at(&k("token_from")),
                        l.route_slot(&a.token_from).unwrap_or(""),
                    ),
                ),
            ];
            for (key, v) in [
                ("header", &a.header),
                ("prefix", &a.prefix),
                ("username", &a.username),
                ("param", &a.param),
            ] {
                if let Some(v) = v {
                    au.push((key, Node::str(at(&k(key)), v)));
                }
            }
            if a.strip_cookies {
                au.push(("strip_cookies", Node::bool(at(&k("strip_cookies")), true)));
            }
            o.push(("auth", Node::map(at(&format!("{p}.auth")), au)));
        }
        if r.tls_passthrough {
            o.push((
                "tls_passthrough",
                Node::bool(at(&k("tls_passthrough")), true),
            ));
        }
        if r.allow_cleartext {
            o.push((
                "allow_cleartext",
                Node::bool(at(&k("allow_cleartext")), true),
            ));
        }
        routes.push(Node::map(at(&p), o));
    }
    let mut git = Vec::new();
    for (i, g) in m.git.iter().enumerate() {
        let p = format!("git.{i}");
        let k = |key: &str| format!("{p}.{key}");
        let mut o = vec![
            ("name", Node::str(at(&k("name")), &g.name)),
            ("upstream", Node::str(at(&k("upstream")), &g.upstream)),
        ];
        if let Some(a) = &g.auth {
            let k = |key: &str| format!("{p}.auth.{key}");
            let mut au = vec![(
                "scheme",
                Node::str(at(&k("scheme")), git_scheme_word(a.scheme)),
            )];
            if let Some(u) = &a.username {
                au.push(("username", Node::str(at(&k("username")), u)));
            }
            au.push((
                "token_env",
                Node::str(
                    at(&k("token_from")),
                    l.git_slot(&a.token_from).unwrap_or(""),
                ),
            ));
            o.push(("auth", Node::map(at(&format!("{p}.auth")), au)));
        }
        let rules = g
            .rules
            .iter()
            .enumerate()
            .map(|(j, r)| {
                let rp = format!("{p}.rules.{j}");
                let line = at(&rp);
                Node::map(
                    line,
                    vec![
                        ("ref", Node::str(at(&format!("{rp}.ref")), &r.ref_glob)),
                        (
                            "allow",
                            Node::seq(
                                at(&format!("{rp}.allow")),
                                r.allow
                                    .iter()
                                    .map(|a| Node::str(at(&format!("{rp}.allow")), action_word(*a)))
                                    .collect(),
                            ),
                        ),
                    ],
                )
            })
            .collect();
        o.push(("rules", Node::seq(at(&k("rules")), rules)));
        if !g.protected.is_empty() {
            o.push(("protected", strings(&k("protected"), &g.protected)));
        }
        if let Some(v) = g.push_options {
            o.push(("push_options", Node::bool(at(&k("push_options")), v)));
        }
        for (key, v) in [
            ("max_pack_bytes", g.max_pack_bytes),
            ("max_refs", g.max_refs),
            ("max_object_bytes", g.max_object_bytes),
        ] {
            if let Some(v) = v {
                o.push((key, Node::u64(at(&k(key)), v)));
            }
        }
        git.push(Node::map(at(&p), o));
    }
    // Always the effective values, defaults included: what runs is what the policy record
    // shows, even if bottle-core's defaults change later.
    let d = m.dlp_effective();
    let dl = |key: &str| at(&format!("dlp.{key}"));
    let dlp = Node::map(
        at("dlp"),
        vec![
            ("action", Node::str(dl("action"), d.action.as_str())),
            ("profile", Node::str(dl("profile"), d.profile.as_str())),
            (
                "responses",
                Node::str(dl("responses"), d.responses.as_str()),
            ),
            ("mcp", Node::str(dl("mcp"), d.mcp.as_str())),
        ],
    );
    Node::map(
        1,
        vec![
            ("routes", Node::seq(at("routes"), routes)),
            ("git", Node::seq(at("git"), git)),
            ("dlp", dlp),
        ],
    )
}

/// The `RoutesFile` the sidecars will load, checked by their own schema; a refusal names the
/// manifest file and line.
pub fn routes_file(l: &Loaded) -> Result<RoutesFile, String> {
    RoutesFile::from_node(&routes_tree(l), &l.path).map_err(|e| e.to_string())
}

/// `routes.yaml` as written to `live-config/`.
pub fn routes_yaml(l: &Loaded) -> String {
    // The manifest path goes into a comment: a control character in it (a newline) must
    // not end the comment and start YAML of its own.
    let from: String = l
        .path
        .display()
        .to_string()
        .chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect();
    format!(
        "# written by `bottle start` from {from}\n{}",
        routes_tree(l).to_yaml()
    )
}

/// The allowlist file, from the manifest's `allow:`.
pub fn allowlist(l: &Loaded) -> String {
    let mut s = String::from("# written by `bottle start`; edit with `bottle allow HOST`\n");
    for a in &l.manifest.allow {
        s.push_str(a.trim());
        s.push('\n');
    }
    s
}

/// Check the live config with the sidecars' own code (bottle-core): the allowlist file (a
/// list of lines, its native form) and the routes tree (`routes_tree`). The message starts
/// with the manifest's file and, where known, line.
pub fn check_live_config(l: &Loaded) -> Result<(), String> {
    bottle_core::Allowlist::parse(&allowlist(l), Path::new("allowlist"))
        .map_err(|e| format!("{}: allow: {e}", l.path.display()))?;
    routes_file(l)?;
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
#[path = "live_config_tests.rs"]
mod tests;
