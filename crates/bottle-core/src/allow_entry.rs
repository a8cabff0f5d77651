//! One allowlist entry judged: its syntax (the allowlist parser) and whether it is too broad
//! to accept without the operator's `--force`: huge CIDRs, wildcards directly over a public
//! suffix, private/loopback/link-local/CGNAT/ULA ranges and cloud metadata endpoints.
//!
//! The launcher (`bottle allow`, the manifest's `allow:` and routes) and the `supervise`
//! sidecar (an agent's access request) call these same functions, so an agent's request is
//! refused for exactly the reason the operator's command would give. A hostile agent's
//! request, refusal hint or a tampered manifest must not talk the operator into opening the
//! bottle to the whole internet or to the host's own network.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::host::canonical_ip;
use crate::{Host, HostPattern};

/// Shortest IPv4 prefix accepted (a /16 is 65 536 addresses: already a provider's block).
pub const MIN_V4_PREFIX: u8 = 16;
/// Shortest IPv6 prefix accepted (a /48 is one site; shorter ones span many customers).
pub const MIN_V6_PREFIX: u8 = 48;

/// Cloud instance-metadata host names: one list, shared with the sidecars' refusal hints.
use crate::hint::METADATA_NAMES;

/// Metadata addresses inside otherwise public space (a CIDR must not contain them).
const METADATA_ADDRS: &[&str] = &[
    "169.254.169.254",
    "169.254.170.2",
    "168.63.129.16",
    "100.100.100.200",
    "192.0.0.192",
    "fd00:ec2::254",
];

/// Suffixes under which anyone can register a name: `*.<suffix>` would let the agent reach
/// hosts of any stranger (a multi-label subset of the Public Suffix List, ICANN and hosting).
const PUBLIC_SUFFIXES: &[&str] = &[
    // ICANN second-level registries
    "co.uk",
    "org.uk",
    "me.uk",
    "ltd.uk",
    "plc.uk",
    "net.uk",
    "ac.uk",
    "gov.uk",
    "sch.uk",
    "com.au",
    "net.au",
    "org.au",
    "edu.au",
    "gov.au",
    "id.au",
    "co.nz",
    "net.nz",
    "org.nz",
    "co.jp",
    "ne.jp",
    "or.jp",
    "ac.jp",
    "go.jp",
    "co.kr",
    "or.kr",
    "com.cn",
    "net.cn",
    "org.cn",
    "gov.cn",
    "com.hk",
    "com.tw",
    "com.sg",
    "com.my",
    "co.in",
    "net.in",
    "org.in",
    "co.id",
    "co.th",
    "com.br",
    "net.br",
    "org.br",
    "com.ar",
    "com.mx",
    "com.co",
    "com.pe",
    "co.za",
    "org.za",
    "com.tr",
    "com.ua",
    "co.il",
    "com.eg",
    "com.sa",
    "com.pl",
    "co.at",
    "or.at",
    "com.es",
    "com.pt",
    "co.ke",
    "com.ng",
    "eu.org",
    "us.com",
    "uk.com",
    "de.com",
    // hosting platforms where anyone gets a subdomain or a bucket
    "github.io",
    "githubusercontent.com",
    "gitlab.io",
    "herokuapp.com",
    "appspot.com",
    "cloudfront.net",
    "amazonaws.com",
    "s3.amazonaws.com",
    "elasticbeanstalk.com",
    "azurewebsites.net",
    "blob.core.windows.net",
    "cloudapp.net",
    "azureedge.net",
    "web.app",
    "firebaseapp.com",
    "vercel.app",
    "netlify.app",
    "pages.dev",
    "workers.dev",
    "r2.dev",
    "fly.dev",
    "onrender.com",
    "ngrok.io",
    "ngrok-free.app",
    "ngrok.app",
    "trycloudflare.com",
    "glitch.me",
    "repl.co",
    "replit.dev",
    "surge.sh",
    "now.sh",
    "storage.googleapis.com",
    "googleusercontent.com",
    "blogspot.com",
    "wordpress.com",
    "pythonanywhere.com",
    "deno.dev",
    "azurestaticapps.net",
    "digitaloceanspaces.com",
    "ondigitalocean.app",
    "loca.lt",
    "serveo.net",
    "webhook.site",
    "pipedream.net",
];

/// Whether `entry` is one syntactically valid allowlist line (host, `*.pattern`, address or
/// CIDR, optional port), else the reason. A newline or `#` would smuggle a second line or
/// hide part of the entry in a comment, and whitespace would carry a line option such as
/// `until=` past the breadth rules (which judge the entry alone), so they are refused before
/// parsing.
pub fn check_syntax(entry: &str) -> Result<(), String> {
    if entry.contains('\n') || entry.contains('#') || entry.trim().contains(char::is_whitespace) {
        return Err(format!(
            "allowlist entry `{entry}` must be one host, pattern, address or CIDR"
        ));
    }
    crate::Allowlist::parse(entry, std::path::Path::new("allowlist"))
        .map(|_| ())
        .map_err(|e| match e {
            crate::ConfigError::Invalid { message, .. } => {
                format!("allowlist entry `{entry}`: {message}")
            }
            other => other.to_string(),
        })
}

/// The reason `bottle allow ENTRY` (without `--force`) refuses `entry`, or `None` when it
/// would be accepted: the syntax error, else the breadth refusal worded as the launcher
/// prints it.
pub fn refusal(entry: &str) -> Option<String> {
    let entry = entry.trim();
    if let Err(why) = check_syntax(entry) {
        return Some(why);
    }
    too_broad(entry).map(|why| breadth_refusal(&why))
}

/// The same judgement worded for the agent asking through supervise: the agent has no
/// `--force` to pass, so the breadth refusal does not offer one.
pub fn agent_refusal(entry: &str) -> Option<String> {
    let entry = entry.trim();
    if let Err(why) = check_syntax(entry) {
        return Some(why);
    }
    too_broad(entry).map(|why| format!("refusing to allow {why}"))
}

/// The refusal `bottle allow` prints for a [`too_broad`] entry without `--force`.
pub fn breadth_refusal(why: &str) -> String {
    format!("refusing to allow {why}; pass --force if you really mean it")
}

/// Why `entry` (an allowlist line: host, pattern, address or CIDR) is too broad, or `None`.
///
/// The entry is assumed to be syntactically valid (checked by bottle-core first).
pub fn too_broad(entry: &str) -> Option<String> {
    let e = entry.trim();
    if let Some((addr, len)) = e.split_once('/') {
        return cidr_too_broad(e, addr, len);
    }
    let p = HostPattern::parse(e).ok()?;
    match p.exact_host() {
        Some(Host::Ip(ip)) => {
            let ip = canonical_ip(*ip);
            crate::ssrf::private_reason(ip).map(|why| {
                format!(
                    "`{e}` is a {why} address: the agent would reach {}",
                    reach(why)
                )
            })
        }
        Some(Host::Name(n)) => name_too_broad(e, n),
        None => {
            // `*.suffix`: the display form is `*.suffix[:port]`.
            let shown = p.to_string();
            let suffix = shown
                .strip_prefix("*.")
                .map(|s| s.split(':').next().unwrap_or(s))
                .unwrap_or("");
            wildcard_too_broad(e, suffix)
        }
    }
}

/// [`too_broad`] for a route's host, which egress and pipelock also allow: a private address
/// or `localhost` is a legitimate route target (`allow_cleartext` requires one), a public
/// suffix wildcard or a metadata endpoint is not.
pub fn route_host_too_broad(host: &str) -> Option<String> {
    let p = HostPattern::parse(host).ok()?;
    let private_target = match p.exact_host() {
        Some(Host::Ip(ip)) => {
            crate::ssrf::private_reason(canonical_ip(*ip)).is_some_and(|r| r != "metadata")
        }
        Some(Host::Name(n)) => n.trim_end_matches('.') == "localhost",
        None => false,
    };
    if private_target {
        None
    } else {
        too_broad(host)
    }
}

fn reach(why: &str) -> &'static str {
    match why {
        "metadata" => "the cloud instance-metadata service (credentials of the host)",
        "loopback" => "services on its own loopback",
        "private" | "cgnat" | "ula" | "link-local" | "site-local" => {
            "the operator's own network (hosts behind the firewall)"
        }
        _ => "addresses that are not public destinations",
    }
}

fn name_too_broad(e: &str, name: &str) -> Option<String> {
    let n = name.trim_end_matches('.');
    if METADATA_NAMES.contains(&n) {
        return Some(format!(
            "`{e}` is a cloud metadata endpoint: the agent would read the host's instance credentials"
        ));
    }
    if n == "localhost" || n.ends_with(".localhost") {
        return Some(format!(
            "`{e}` is the loopback: the agent would reach services of the sidecars' own host"
        ));
    }
    None
}

fn wildcard_too_broad(e: &str, suffix: &str) -> Option<String> {
    let s = suffix.trim_end_matches('.');
    if !s.contains('.') {
        return Some(format!(
            "`{e}` covers every name under the top-level domain `.{s}`: list the hosts (or `*.example.{s}`) instead"
        ));
    }
    if PUBLIC_SUFFIXES.contains(&s) {
        return Some(format!(
            "`{e}` covers `{s}`, a public suffix where anyone can get a name: list the hosts (or `*.yours.{s}`) instead"
        ));
    }
    if METADATA_NAMES.iter().any(|m| m.ends_with(&format!(".{s}"))) {
        return Some(format!("`{e}` covers a cloud metadata endpoint"));
    }
    if s == "localhost" {
        return Some(format!("`{e}` covers the loopback"));
    }
    None
}

fn cidr_too_broad(e: &str, addr: &str, len: &str) -> Option<String> {
    let ip: IpAddr = addr.trim().parse().ok()?;
    let len: u8 = len.trim().parse().ok()?;
    // `::ffff:a.b.c.d/n` is the IPv4 network a.b.c.d/(n-96).
    let (ip, len) = match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) if len >= 96 => (IpAddr::V4(v4), len - 96),
            _ => (ip, len),
        },
        v4 => (v4, len),
    };
    let (first, last, min) = match ip {
        IpAddr::V4(v4) => {
            let bits = u32::from(v4);
            let mask = if len == 0 {
                0
            } else {
                u32::MAX << (32 - u32::from(len.min(32)))
            };
            (
                IpAddr::V4(Ipv4Addr::from(bits & mask)),
                IpAddr::V4(Ipv4Addr::from(bits | !mask)),
                MIN_V4_PREFIX,
            )
        }
        IpAddr::V6(v6) => {
            let bits = u128::from(v6);
            let mask = if len == 0 {
                0
            } else {
                u128::MAX << (128 - u32::from(len.min(128)))
            };
            (
                IpAddr::V6(Ipv6Addr::from(bits & mask)),
                IpAddr::V6(Ipv6Addr::from(bits | !mask)),
                MIN_V6_PREFIX,
            )
        }
    };
    if len < min {
        return Some(format!(
            "`{e}` spans more than a /{min}: the agent could reach a large part of the internet; list the hosts or a narrower range"
        ));
    }
    for edge in [first, last] {
        if let Some(why) = crate::ssrf::private_reason(edge) {
            return Some(format!(
                "`{e}` covers {why} addresses: the agent would reach {}",
                reach(why)
            ));
        }
    }
    let inside = |a: IpAddr| match (a, first, last) {
        (IpAddr::V4(a), IpAddr::V4(f), IpAddr::V4(l)) => a >= f && a <= l,
        (IpAddr::V6(a), IpAddr::V6(f), IpAddr::V6(l)) => a >= f && a <= l,
        _ => false,
    };
    if METADATA_ADDRS
        .iter()
        .filter_map(|m| m.parse::<IpAddr>().ok())
        .any(inside)
    {
        return Some(format!(
            "`{e}` contains a cloud metadata address: the agent would read the host's instance credentials"
        ));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refused_spellings() {
        for e in [
            "0.0.0.0/0",
            "::/0",
            "::ffff:0.0.0.0/96",
            "8.0.0.0/8",
            "1.0.0.0/15",
            "2001:db8::/32",
            "2a00::/47",
            "10.0.0.0/8",
            "10.1.0.0/16",
            "10.1.2.3",
            "10.1.2.0/24",
            "172.16.5.4",
            "192.168.1.0/24",
            "127.0.0.1",
            "127.0.0.1:8080",
            "[::1]",
            "::1",
            "169.254.169.254",
            "169.254.169.254:80",
            "169.254.0.0/16",
            "168.63.129.16",
            "168.63.0.0/16",
            "100.64.0.1",
            "100.100.100.200",
            "fd00:ec2::254",
            "[fd00:ec2::254]:80",
            "fd12:3456::1",
            "fd00::/48",
            "fe80::1",
            "::ffff:10.0.0.1",
            "::ffff:169.254.169.254",
            "2002:a00::/48",
            "metadata.google.internal",
            "Metadata.Google.Internal.",
            "metadata.google.internal:80",
            "metadata",
            "instance-data.ec2.internal",
            "*.google.internal",
            "*.internal",
            "*.com",
            "*.COM:443",
            "*.io",
            "*.co.uk",
            "*.com.au",
            "*.github.io",
            "*.amazonaws.com",
            "*.s3.amazonaws.com",
            "*.ngrok-free.app",
            "localhost",
            "localhost:3000",
            "a.localhost",
            "*.localhost",
        ] {
            assert!(
                check_syntax(e).is_ok(),
                "{e} must be valid syntax (the breadth check is separate)"
            );
            assert!(too_broad(e).is_some(), "{e} must be refused");
        }
    }

    #[test]
    fn accepted_spellings() {
        for e in [
            "example.com",
            "*.example.com",
            "*.example.co.uk",
            "*.mybucket.s3.amazonaws.com",
            "api.github.com:8443",
            "*.pypi.org",
            "203.0.114.7",
            "8.8.8.8",
            "1.2.0.0/16",
            "1.2.3.0/24",
            "2a00:1450:4001::/48",
            "[2a00:1450:4001::5]:443",
            "registry.npmjs.org",
        ] {
            assert_eq!(too_broad(e), None, "{e} must be accepted");
        }
    }

    #[test]
    fn route_hosts() {
        for bad in [
            "*.com",
            "*.co.uk",
            "169.254.169.254",
            "metadata.google.internal",
            "*.github.io",
        ] {
            assert!(route_host_too_broad(bad).is_some(), "{bad}");
        }
        for ok in [
            "10.20.0.7",
            "127.0.0.1:8080",
            "localhost:3000",
            "api.github.com",
            "*.example.com",
        ] {
            assert_eq!(route_host_too_broad(ok), None, "{ok}");
        }
    }

    #[test]
    fn refusal_is_syntax_then_breadth() {
        assert_eq!(refusal("example.com"), None);
        assert_eq!(refusal(" *.pypi.org "), None);
        assert_eq!(refusal("a b"), check_syntax("a b").err());
        assert_eq!(refusal("x.com#y"), check_syntax("x.com#y").err());
        let why = too_broad("*.com").unwrap_or_default();
        assert_eq!(refusal("*.com"), Some(breadth_refusal(&why)));
        // The agent's wording: the same judgement, no --force to offer.
        assert_eq!(agent_refusal("example.com"), None);
        assert_eq!(agent_refusal("a b"), refusal("a b"));
        assert_eq!(
            agent_refusal("*.com"),
            Some(format!("refusing to allow {why}"))
        );
        assert!(breadth_refusal(&why).contains("--force"));
        // A line option after the entry would pass the parser yet hide the entry from the
        // breadth rules: an entry with whitespace inside is refused outright.
        for e in [
            "*.com until=2999-01-01T00:00:00Z",
            "0.0.0.0/0 until=2999-01-01T00:00:00Z",
            "example.com\tuntil=2999-01-01T00:00:00Z",
        ] {
            assert!(
                refusal(e).is_some_and(|m| m.contains("must be one host")),
                "{e}"
            );
        }
        // Surrounding whitespace is not an option: it is trimmed as before.
        assert_eq!(check_syntax(" example.com\t"), Ok(()));
    }

    #[test]
    fn messages_say_why() {
        let m = too_broad("0.0.0.0/0").unwrap_or_default();
        assert!(m.contains("/16"), "{m}");
        let m = too_broad("10.0.0.0/16").unwrap_or_default();
        assert!(m.contains("private") && m.contains("network"), "{m}");
        let m = too_broad("*.co.uk").unwrap_or_default();
        assert!(m.contains("public suffix"), "{m}");
        let m = too_broad("169.254.169.254").unwrap_or_default();
        assert!(m.contains("metadata"), "{m}");
    }
}
