//! Name resolution with `--resolve` overrides, `/etc/hosts` and DNS (hickory, pure Rust),
//! and [`resolve_checked`], which refuses private addresses in one resolution.

use std::collections::HashMap;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::str::FromStr;
use std::time::Duration;

use hickory_resolver::config::ResolverConfig;
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::TokioResolver;

use crate::host::{canonical_ip, parse_host, Host};
use crate::live::LiveConfig;
use crate::refusal::Refusal;
use crate::ssrf::private_reason;

/// How long one lookup may take.
pub const LOOKUP_TIMEOUT: Duration = Duration::from_secs(10);

/// Resolution errors.
#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    /// A `--resolve` value was malformed.
    #[error(
        "invalid --resolve `{0}`: expected NAME=ADDR or NAME=ADDR,private (e.g. api.example.com=203.0.113.7)"
    )]
    BadOverride(String),
    /// The name has no addresses.
    #[error("{0} has no addresses")]
    NotFound(String),
    /// The lookup failed.
    #[error("cannot resolve {host}: {message}")]
    Lookup {
        /// The name.
        host: String,
        /// Why.
        message: String,
    },
    /// The lookup took too long.
    #[error("resolving {0} timed out")]
    Timeout(String),
}

/// `--resolve NAME=ADDR`: answer NAME with ADDR before DNS. Several for one name add up.
///
/// `--resolve NAME=ADDR,private` also exempts that pin from the private-address refusal: the
/// operator states that NAME is an internal service (the agent cannot set flags), so a sidecar
/// can reach it without an allowlist address line, which would open the literal address too.
/// A plain pin is checked like a DNS answer, which is what tests of DNS rebinding rely on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolveOverride {
    /// Normalised name (lowercase, punycode, no trailing dot).
    pub name: String,
    /// The address.
    pub addr: IpAddr,
    /// `,private`: the address may be private.
    pub private_ok: bool,
}

impl FromStr for ResolveOverride {
    type Err = ResolveError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || ResolveError::BadOverride(s.chars().take(100).collect());
        let (name, addr) = s.split_once('=').ok_or_else(bad)?;
        let (addr, private_ok) = match addr.trim().strip_suffix(",private") {
            Some(a) => (a, true),
            None => (addr, false),
        };
        let name = match parse_host(name.trim()) {
            Ok(Host::Name(n)) => n,
            _ => return Err(bad()),
        };
        let addr = addr.trim();
        let addr = addr
            .strip_prefix('[')
            .and_then(|a| a.strip_suffix(']'))
            .unwrap_or(addr);
        let addr: IpAddr = addr.parse().map_err(|_| bad())?;
        Ok(ResolveOverride {
            name,
            addr: canonical_ip(addr),
            private_ok,
        })
    }
}

impl fmt::Display for ResolveOverride {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}={}", self.name, self.addr)?;
        if self.private_ok {
            f.write_str(",private")?;
        }
        Ok(())
    }
}

/// The resolver: `--resolve` overrides, then `localhost`, then `/etc/hosts` and DNS.
pub struct Resolver {
    overrides: HashMap<String, Vec<IpAddr>>,
    /// Names pinned with `,private`.
    private_ok: std::collections::HashSet<String>,
    dns: TokioResolver,
}

impl fmt::Debug for Resolver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Resolver")
            .field("overrides", &self.overrides)
            .finish_non_exhaustive()
    }
}

impl Resolver {
    /// Build from overrides and the system config (`/etc/resolv.conf`, `/etc/hosts`).
    /// Without a usable `/etc/resolv.conf`, DNS lookups fail cleanly (overrides still work).
    pub fn new(overrides: &[ResolveOverride]) -> Result<Resolver, ResolveError> {
        Resolver::build(overrides, true)
    }

    /// Overrides, `localhost` and `/etc/hosts` only: every DNS lookup fails (tests, sealed setups).
    pub fn without_dns(overrides: &[ResolveOverride]) -> Result<Resolver, ResolveError> {
        Resolver::build(overrides, false)
    }

    fn build(overrides: &[ResolveOverride], system_dns: bool) -> Result<Resolver, ResolveError> {
        let mut map: HashMap<String, Vec<IpAddr>> = HashMap::new();
        let mut private_ok = std::collections::HashSet::new();
        for o in overrides {
            if o.private_ok {
                private_ok.insert(o.name.clone());
            }
            let v = map.entry(o.name.clone()).or_default();
            if !v.contains(&o.addr) {
                v.push(o.addr);
            }
        }
        let system = if system_dns {
            match TokioResolver::builder_tokio().and_then(|b| b.build()) {
                Ok(r) => Some(r),
                Err(e) => {
                    tracing::warn!(error = %e, "no usable DNS configuration; only --resolve and /etc/hosts answer");
                    None
                }
            }
        } else {
            None
        };
        let dns = match system {
            Some(r) => r,
            None => TokioResolver::builder_with_config(
                ResolverConfig::from_name_servers(Vec::new()),
                TokioRuntimeProvider::default(),
            )
            .build()
            .map_err(|e| ResolveError::Lookup {
                host: String::new(),
                message: e.to_string(),
            })?,
        };
        Ok(Resolver {
            overrides: map,
            private_ok,
            dns,
        })
    }

    /// Whether `name` was pinned with `--resolve NAME=ADDR,private`.
    pub fn pinned_private_ok(&self, name: &str) -> bool {
        self.private_ok.contains(name)
    }

    /// All addresses of `host` (an IP host is returned as is). IPv4-mapped IPv6 answers are
    /// returned as IPv4. Never empty on success.
    pub async fn lookup(&self, host: &Host) -> Result<Vec<IpAddr>, ResolveError> {
        let name = match host {
            Host::Ip(ip) => return Ok(vec![canonical_ip(*ip)]),
            Host::Name(n) => n,
        };
        if let Some(v) = self.overrides.get(name) {
            return Ok(v.clone());
        }
        if name == "localhost" || name.ends_with(".localhost") {
            return Ok(vec![
                IpAddr::V4(Ipv4Addr::LOCALHOST),
                IpAddr::V6(Ipv6Addr::LOCALHOST),
            ]);
        }
        // Fully qualified: no search-domain expansion, the name asked is the name checked.
        let fqdn = format!("{name}.");
        let res = tokio::time::timeout(LOOKUP_TIMEOUT, self.dns.lookup_ip(fqdn.as_str()))
            .await
            .map_err(|_| ResolveError::Timeout(name.clone()))?;
        let lookup = match res {
            Ok(l) => l,
            Err(e) if e.is_no_records_found() => return Err(ResolveError::NotFound(name.clone())),
            Err(e) => {
                return Err(ResolveError::Lookup {
                    host: name.clone(),
                    message: e.to_string(),
                })
            }
        };
        let mut out: Vec<IpAddr> = Vec::new();
        for ip in lookup.iter().map(canonical_ip) {
            if !out.contains(&ip) {
                out.push(ip);
            }
        }
        if out.is_empty() {
            return Err(ResolveError::NotFound(name.clone()));
        }
        Ok(out)
    }
}

/// Resolve `host` once and refuse when any address is private and not covered by an address
/// or CIDR line of the allowlist, or pinned with `--resolve NAME=ADDR,private`. Callers connect only to the returned addresses, so there is
/// no second resolution (no DNS-rebinding window). Does not check the host allowlist itself.
pub async fn resolve_checked(
    resolver: &Resolver,
    cfg: &LiveConfig,
    host: &Host,
    port: u16,
) -> Result<Vec<SocketAddr>, Refusal> {
    let addrs = match resolver.lookup(host).await {
        Ok(a) => a,
        Err(ResolveError::Timeout(h)) => {
            return Err(Refusal::of(
                crate::RefusalKind::UpstreamTimeout,
                format!("resolving {h} timed out"),
            ));
        }
        Err(e) => {
            return Err(Refusal::of(
                crate::RefusalKind::Resolve,
                format!("dns: {e}"),
            ))
        }
    };
    let pinned_private_ok = matches!(host, Host::Name(n) if resolver.pinned_private_ok(n));
    for ip in &addrs {
        if let Some(reason) = private_reason(*ip) {
            if !pinned_private_ok && !cfg.allowlist.covers_addr(*ip) {
                let what = match host {
                    Host::Ip(_) => format!("private address: {ip} ({reason})"),
                    Host::Name(n) => format!("private address: {ip} ({reason}) for {n}"),
                };
                return Err(Refusal::of(crate::RefusalKind::PrivateAddress, what)
                    .with_hint(format!("allow it with an address line: {ip}")));
            }
        }
    }
    Ok(addrs
        .into_iter()
        .map(|ip| SocketAddr::new(ip, port))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::allowlist::Allowlist;
    use std::path::Path;

    fn cfg(allow: &str) -> LiveConfig {
        LiveConfig {
            allowlist: Allowlist::parse(allow, Path::new("allowlist")).unwrap(),
            ..Default::default()
        }
    }

    #[test]
    fn override_parsing() {
        let o: ResolveOverride = "API.Example.com.=203.0.113.7".parse().unwrap();
        assert_eq!(o.name, "api.example.com");
        assert_eq!(o.addr, "203.0.113.7".parse::<IpAddr>().unwrap());
        let o: ResolveOverride = "h=[::1]".parse().unwrap();
        assert_eq!(o.addr, "::1".parse::<IpAddr>().unwrap());
        let o: ResolveOverride = "h=::ffff:10.0.0.1".parse().unwrap();
        assert_eq!(o.addr, "10.0.0.1".parse::<IpAddr>().unwrap());
        assert_eq!(o.to_string(), "h=10.0.0.1");
        for bad in [
            "",
            "h",
            "h=",
            "=1.2.3.4",
            "h=host",
            "1.2.3.4=1.2.3.4",
            "h=1.2.3.4:80",
            "a b=1.2.3.4",
        ] {
            assert!(bad.parse::<ResolveOverride>().is_err(), "{bad}");
        }
    }

    #[tokio::test]
    async fn overrides_localhost_and_ips() {
        let r = Resolver::new(&[
            "a.test=10.0.0.1".parse().unwrap(),
            "a.test=10.0.0.2".parse().unwrap(),
        ])
        .unwrap();
        let a = r.lookup(&parse_host("A.test.").unwrap()).await.unwrap();
        assert_eq!(
            a,
            vec![
                "10.0.0.1".parse::<IpAddr>().unwrap(),
                "10.0.0.2".parse().unwrap()
            ]
        );
        let l = r.lookup(&parse_host("localhost").unwrap()).await.unwrap();
        assert!(l.contains(&IpAddr::V4(Ipv4Addr::LOCALHOST)));
        let ip = r
            .lookup(&parse_host("[::ffff:1.2.3.4]").unwrap())
            .await
            .unwrap();
        assert_eq!(ip, vec!["1.2.3.4".parse::<IpAddr>().unwrap()]);
    }

    #[tokio::test]
    async fn without_dns_fails_fast_and_cleanly() {
        let r = Resolver::without_dns(&["x.test=203.0.113.9".parse().unwrap()]).unwrap();
        let start = std::time::Instant::now();
        let e = r
            .lookup(&parse_host("example.com").unwrap())
            .await
            .unwrap_err();
        assert!(start.elapsed() < Duration::from_secs(30), "{e}");
        assert!(e.to_string().contains("example.com"), "{e}");
        assert_eq!(
            r.lookup(&parse_host("x.test").unwrap()).await.unwrap(),
            vec!["203.0.113.9".parse::<IpAddr>().unwrap()]
        );
        assert!(r.lookup(&parse_host("localhost").unwrap()).await.is_ok());
    }

    #[test]
    fn builds_outside_a_runtime() {
        assert!(Resolver::new(&[]).is_ok());
    }

    #[tokio::test]
    async fn dns_failure_is_a_clean_error() {
        let r = Resolver::new(&[]).unwrap();
        let h = parse_host("no-such-host-bottle-test.invalid").unwrap();
        let res = tokio::time::timeout(Duration::from_secs(60), r.lookup(&h))
            .await
            .unwrap();
        assert!(res.is_err(), "{res:?}");
        let e = resolve_checked(&r, &cfg(""), &h, 443).await.unwrap_err();
        assert!(
            e.status == http::StatusCode::BAD_GATEWAY
                || e.status == http::StatusCode::GATEWAY_TIMEOUT
        );
        assert!(
            e.reason.contains("no-such-host-bottle-test.invalid"),
            "{}",
            e.reason
        );
    }

    #[tokio::test]
    async fn checked_refuses_private_unless_covered() {
        let r = Resolver::new(&[
            "internal.test=10.1.2.3".parse().unwrap(),
            "pub.test=8.8.8.8".parse().unwrap(),
        ])
        .unwrap();
        let c = cfg("");
        let e = resolve_checked(&r, &c, &parse_host("internal.test").unwrap(), 443)
            .await
            .unwrap_err();
        assert_eq!(e.status, http::StatusCode::FORBIDDEN);
        assert_eq!(
            e.reason,
            "private address: 10.1.2.3 (private) for internal.test"
        );
        assert_eq!(
            e.hint.as_deref(),
            Some("allow it with an address line: 10.1.2.3")
        );
        let e = resolve_checked(&r, &c, &parse_host("2130706433").unwrap(), 80)
            .await
            .unwrap_err();
        assert_eq!(e.reason, "private address: 127.0.0.1 (loopback)");
        let e = resolve_checked(&r, &c, &parse_host("localhost").unwrap(), 80)
            .await
            .unwrap_err();
        assert!(e.reason.contains("loopback"));
        let ok = resolve_checked(&r, &c, &parse_host("pub.test").unwrap(), 443)
            .await
            .unwrap();
        assert_eq!(ok, vec!["8.8.8.8:443".parse::<SocketAddr>().unwrap()]);
        let c = cfg("10.0.0.0/8\n127.0.0.1\n::1\n");
        let ok = resolve_checked(&r, &c, &parse_host("internal.test").unwrap(), 443)
            .await
            .unwrap();
        assert_eq!(ok, vec!["10.1.2.3:443".parse::<SocketAddr>().unwrap()]);
        let ok = resolve_checked(&r, &c, &parse_host("localhost").unwrap(), 8080)
            .await
            .unwrap();
        assert_eq!(ok.len(), 2);
    }

    #[tokio::test]
    async fn private_pin_is_exempt_only_for_its_name() {
        let pin: ResolveOverride = "origin.test=172.20.0.5,private".parse().unwrap();
        assert!(pin.private_ok);
        assert_eq!(pin.to_string(), "origin.test=172.20.0.5,private");
        assert!("x.test=10.0.0.1,public".parse::<ResolveOverride>().is_err());
        let r = Resolver::without_dns(&[pin, "other.test=172.20.0.6".parse().unwrap()]).unwrap();
        let c = cfg("");
        let ok = resolve_checked(&r, &c, &parse_host("origin.test").unwrap(), 443)
            .await
            .unwrap();
        assert_eq!(ok, vec!["172.20.0.5:443".parse::<SocketAddr>().unwrap()]);
        // The literal address and a plain pin to a private address stay refused.
        let lit = resolve_checked(&r, &c, &parse_host("172.20.0.5").unwrap(), 443).await;
        assert!(lit.is_err());
        let plain = resolve_checked(&r, &c, &parse_host("other.test").unwrap(), 443).await;
        assert!(plain.is_err());
    }

    #[tokio::test]
    async fn one_private_address_among_public_ones_refuses() {
        let r = Resolver::new(&[
            "mixed.test=8.8.8.8".parse().unwrap(),
            "mixed.test=169.254.169.254".parse().unwrap(),
        ])
        .unwrap();
        let e = resolve_checked(&r, &cfg(""), &parse_host("mixed.test").unwrap(), 80)
            .await
            .unwrap_err();
        assert!(
            e.reason.contains("169.254.169.254 (metadata)"),
            "{}",
            e.reason
        );
    }
}
