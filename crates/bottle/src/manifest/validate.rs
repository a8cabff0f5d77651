//! Cross-checks of a manifest that no single key shows: a git credential reachable through an
//! unrestricted API route, and credentials sent in cleartext to a public host.

use std::net::IpAddr;

use bottle_core::{parse_host, Host, HostPattern};

use super::{HostEnv, Manifest};

/// A refusal: the 1-based line (if known) and the message.
pub(super) type Refusal = (Option<usize>, String);

fn route_line(m: &Manifest, index: usize) -> Option<usize> {
    m.lines.at(&format!("routes.{index}"))
}

/// A route that injects a credential also used by a `git:` repository must list `methods:`.
///
/// Without it the agent could move or delete protected branches through the forge's REST API
/// (`PATCH`/`DELETE /repos/o/r/git/refs/heads/main`) with the very token git-gate guards,
/// bypassing every push rule.
pub(super) fn git_token_routes(m: &Manifest, env: &dyn HostEnv) -> Result<(), Refusal> {
    // Same variable, or two variables holding the same secret (compared, never shown).
    let same = |a: &str, b: &str| {
        a == b || matches!((env.get(a), env.get(b)), (Some(x), Some(y)) if !x.is_empty() && x == y)
    };
    for (i, r) in m.routes.iter().enumerate() {
        let Some(a) = &r.auth else { continue };
        if r.methods.is_some() {
            continue;
        }
        let Some((g, git_var)) = m.git.iter().find_map(|g| {
            let ga = g.auth.as_ref()?;
            same(&a.token_from, &ga.token_from).then_some((g, &ga.token_from))
        }) else {
            continue;
        };
        let whose = if *git_var == a.token_from {
            format!("the credential of git repository `{}`", g.name)
        } else {
            format!(
                "which holds the same value as `{git_var}`, the credential of git repository `{}`",
                g.name
            )
        };
        return Err((
            route_line(m, i),
            format!(
                "route `{}` injects `{}`, {whose}, for every method: the agent could move or \
                 delete protected branches through the API and bypass git-gate's push rules; \
                 list the methods the route allows, e.g. `methods: [GET, HEAD]`, or give the \
                 route its own read-only token",
                r.host, a.token_from
            ),
        ));
    }
    Ok(())
}

/// Whether `ip` is the operator's own network: loopback, RFC 1918, link-local or IPv6 ULA
/// (never cloud metadata, which has its own SSRF reason).
fn private_addr(ip: IpAddr) -> bool {
    matches!(
        bottle_core::ssrf::private_reason(ip),
        Some("loopback" | "private" | "link-local" | "ula")
    )
}

/// Why `host` may carry a credential over plain http://, or `None` when it may not.
fn private_host(host: &str, resolve: &[(String, IpAddr)]) -> Option<String> {
    let p = HostPattern::parse(host).ok()?;
    match p.exact_host()? {
        Host::Ip(ip) => private_addr(*ip).then(|| format!("{ip} is a private address")),
        Host::Name(n) if n == "localhost" => Some("localhost".into()),
        Host::Name(n) => resolve.iter().find_map(|(name, addr)| {
            let same = matches!(parse_host(name), Ok(Host::Name(ref pn)) if pn == n);
            (same && private_addr(*addr)).then(|| format!("{n} is pinned to {addr}"))
        }),
    }
}

/// `allow_cleartext: true` only for a host that is surely private: a private literal address,
/// `localhost`, or a name `resolve:` pins to a private address. Never a wildcard.
pub(super) fn cleartext_routes(m: &Manifest, resolve: &[(String, IpAddr)]) -> Result<(), Refusal> {
    for (i, r) in m
        .routes
        .iter()
        .enumerate()
        .filter(|(_, r)| r.allow_cleartext)
    {
        if private_host(&r.host, resolve).is_none() {
            return Err((
                route_line(m, i),
                format!(
                    "route `{}`: allow_cleartext would send its credential over plain http:// \
                     to a host that is not private (only a private address, localhost, or a \
                     name pinned to a private address qualifies, never a wildcard); use \
                     https, or pin the host to a private address with resolve:",
                    r.host
                ),
            ));
        }
    }
    Ok(())
}

/// `user:` is `root`, `UID` or `UID:GID` (numbers: what lands in the host workspace is a
/// number, and a name would be looked up in the agent's own, agent-writable image).
pub(super) fn user_spec(u: &str) -> Result<(), String> {
    let num = |s: &str| !s.is_empty() && s.len() <= 10 && s.chars().all(|c| c.is_ascii_digit());
    let ok = u == "root"
        || match u.split_once(':') {
            Some((a, b)) => num(a) && num(b),
            None => num(u),
        };
    if ok {
        Ok(())
    } else {
        Err(format!(
            "user `{u}` must be `root`, `UID` or `UID:GID` (numbers), e.g. `user: \"1000:1000\"`"
        ))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn which_hosts_are_private() {
        let pins = vec![
            ("internal.corp".to_string(), "10.1.2.3".parse().unwrap()),
            ("public.corp".to_string(), "8.8.8.8".parse().unwrap()),
            ("meta.corp".to_string(), "169.254.169.254".parse().unwrap()),
        ];
        for ok in [
            "127.0.0.1",
            "127.0.0.1:8080",
            "10.0.0.5",
            "192.168.1.1:*",
            "172.16.0.1",
            "169.254.1.1",
            "[::1]:8080",
            "fd00::1",
            "localhost",
            "LOCALHOST:3000",
            "internal.corp",
            "Internal.Corp.:8443",
        ] {
            assert!(private_host(ok, &pins).is_some(), "{ok}");
        }
        for bad in [
            "8.8.8.8",
            "example.com",
            "*.internal.corp",
            "*.localhost",
            "public.corp",
            "meta.corp",
            "169.254.169.254",
            "100.64.0.1",
            "a.localhost",
            "[2001:db8::1]",
        ] {
            assert!(private_host(bad, &pins).is_none(), "{bad}");
        }
    }
}
