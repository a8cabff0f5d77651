//! The `allowlist` file: host patterns, addresses and CIDRs.
//!
//! ```text
//! example.com          # that host, ports 80 and 443
//! *.example.com        # any subdomain at any depth, not the apex itself
//! example.com:8443     # that host, that port only
//! *.example.com:*      # any port
//! 203.0.113.7          # an address (any port): allowed as a literal destination
//! [2001:db8::7]:8443   # an address, that port only
//! 10.20.0.0/16         # a CIDR (any port): allowed as destinations
//! ```
//!
//! Address and CIDR lines also exempt the addresses they cover from the SSRF check
//! ([`Allowlist::covers_addr`]), whatever name resolved to them.

use std::fmt;
use std::net::IpAddr;
use std::path::Path;

use ipnet::IpNet;

use crate::error::ConfigError;
use crate::host::{canonical_ip, parse_host, parse_port, Host};

/// Which ports an entry covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PortSpec {
    /// 80 and 443.
    Default,
    /// Exactly this port.
    Port(u16),
    /// Every port.
    Any,
}

impl PortSpec {
    /// Whether `port` is covered.
    pub fn matches(&self, port: u16) -> bool {
        match self {
            PortSpec::Default => port == 80 || port == 443,
            PortSpec::Port(p) => *p == port,
            PortSpec::Any => true,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum PatternKind {
    /// Exactly this host (name or address).
    Exact(Host),
    /// `*.suffix`: any name with at least one more label in front of `suffix`.
    Subdomains(String),
}

/// A host pattern as in the allowlist: `example.com`, `*.example.com`, `10.0.0.1`,
/// `[::1]`, each with an optional `:port` or `:*`. Without a port a name pattern covers
/// 80 and 443 and an address covers every port.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct HostPattern {
    kind: PatternKind,
    port: PortSpec,
}

impl HostPattern {
    /// Parse one pattern. The error says what is wrong and what to write instead.
    pub fn parse(s: &str) -> Result<HostPattern, String> {
        let s = s.trim();
        if s.is_empty() {
            return Err("empty host pattern".into());
        }
        if s.contains('@') {
            return Err(format!(
                "`{s}`: userinfo (`user@`) is not allowed; write just the host"
            ));
        }
        if s.contains("://") {
            return Err(format!(
                "`{s}`: write a host, not a URL (e.g. `example.com`)"
            ));
        }
        if s.contains('/') {
            return Err(format!(
                "`{s}`: a host pattern cannot contain `/` (CIDRs belong in the allowlist)"
            ));
        }
        let (host_part, port_part) = split_pattern_port(s)?;
        let port = match port_part {
            None => None,
            Some("*") => Some(PortSpec::Any),
            Some(p) => Some(PortSpec::Port(parse_port(p).map_err(|_| {
                format!("`{s}`: invalid port `{p}` (use 1-65535 or `*`)")
            })?)),
        };
        let kind = if let Some(suffix) = host_part.strip_prefix("*.") {
            if suffix.contains('*') {
                return Err(format!(
                    "`{s}`: `*` is only allowed as the whole first label, as in `*.example.com`"
                ));
            }
            match parse_host(suffix) {
                Ok(Host::Name(n)) => PatternKind::Subdomains(n),
                Ok(Host::Ip(_)) => {
                    return Err(format!(
                        "`{s}`: a wildcard cannot be combined with an address"
                    ))
                }
                Err(e) => return Err(format!("`{s}`: {e}")),
            }
        } else if host_part == "*" {
            return Err(format!(
                "`{s}`: a lone `*` would allow every host; list the hosts instead"
            ));
        } else if host_part.contains('*') {
            return Err(format!(
                "`{s}`: `*` is only allowed as the whole first label, as in `*.example.com`"
            ));
        } else {
            match parse_host(host_part) {
                Ok(h) => PatternKind::Exact(h),
                Err(e) => return Err(format!("`{s}`: {e}")),
            }
        };
        let port = port.unwrap_or(match kind {
            PatternKind::Exact(Host::Ip(_)) => PortSpec::Any,
            _ => PortSpec::Default,
        });
        Ok(HostPattern { kind, port })
    }

    /// Whether `host:port` is covered.
    pub fn matches(&self, host: &Host, port: u16) -> bool {
        if !self.port.matches(port) {
            return false;
        }
        match (&self.kind, host) {
            (PatternKind::Exact(h), host) => h == host,
            (PatternKind::Subdomains(suffix), Host::Name(n)) => {
                n.len() > suffix.len() + 1
                    && n.ends_with(suffix.as_str())
                    && n.as_bytes()[n.len() - suffix.len() - 1] == b'.'
            }
            (PatternKind::Subdomains(_), Host::Ip(_)) => false,
        }
    }

    /// The port part.
    pub fn port(&self) -> PortSpec {
        self.port
    }

    /// True for `*.` patterns.
    pub fn is_wildcard(&self) -> bool {
        matches!(self.kind, PatternKind::Subdomains(_))
    }

    /// The exact host of a non-wildcard pattern.
    pub fn exact_host(&self) -> Option<&Host> {
        match &self.kind {
            PatternKind::Exact(h) => Some(h),
            PatternKind::Subdomains(_) => None,
        }
    }
}

impl fmt::Display for HostPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            PatternKind::Exact(h) => f.write_str(&h.to_url_host())?,
            PatternKind::Subdomains(s) => write!(f, "*.{s}")?,
        }
        match self.port {
            PortSpec::Default => Ok(()),
            PortSpec::Port(p) => write!(f, ":{p}"),
            PortSpec::Any => f.write_str(":*"),
        }
    }
}

/// Split `host[:port]`, `[v6][:port]`, bare IPv6 (no port).
fn split_pattern_port(s: &str) -> Result<(&str, Option<&str>), String> {
    if s.starts_with('[') {
        let close = s.find(']').ok_or_else(|| format!("`{s}`: missing `]`"))?;
        let rest = &s[close + 1..];
        if rest.is_empty() {
            return Ok((&s[..=close], None));
        }
        let port = rest
            .strip_prefix(':')
            .ok_or_else(|| format!("`{s}`: expected `:port` after `]`"))?;
        return Ok((&s[..=close], Some(port)));
    }
    match s.matches(':').count() {
        0 => Ok((s, None)),
        1 => {
            let (h, p) = s.split_once(':').unwrap_or((s, ""));
            if p.is_empty() {
                return Err(format!("`{s}`: empty port (write a port number or `*`)"));
            }
            Ok((h, Some(p)))
        }
        // A bare IPv6 address; with a port it must be bracketed.
        _ => Ok((s, None)),
    }
}

/// `::ffff:a.b.c.d/n` (n >= 96) is the IPv4 network `a.b.c.d/(n-96)`: addresses are compared
/// in their canonical form, where mapped addresses are IPv4.
fn canonical_net(net: IpNet) -> IpNet {
    if let IpNet::V6(v6) = net {
        if let Some(v4) = v6.network().to_ipv4_mapped() {
            if v6.prefix_len() >= 96 {
                if let Ok(n) = ipnet::Ipv4Net::new(v4, v6.prefix_len() - 96) {
                    return IpNet::V4(n);
                }
            }
        }
    }
    net
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum AddrEntry {
    Net(IpNet),
    Addr(IpAddr, PortSpec),
}

/// The parsed `allowlist` file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Allowlist {
    patterns: Vec<HostPattern>,
    addrs: Vec<AddrEntry>,
}

impl Allowlist {
    /// Parse the file's text; `file` is only used in error messages.
    pub fn parse(text: &str, file: &Path) -> Result<Allowlist, ConfigError> {
        let mut list = Allowlist::default();
        for (idx, raw) in text.lines().enumerate() {
            let lineno = idx + 1;
            let line = raw.split('#').next().unwrap_or("").trim();
            if line.is_empty() {
                continue;
            }
            let err = |msg: String| ConfigError::invalid(file, Some(lineno), msg);
            if line.split_whitespace().count() > 1 {
                return Err(err(format!(
                    "`{line}`: one entry per line (use `#` for comments)"
                )));
            }
            if line.contains('/') && !line.contains("://") {
                let net: IpNet = line.parse().map_err(|_| {
                    err(format!(
                        "`{line}`: invalid CIDR (write e.g. `10.20.0.0/16` or `fd00::/8`)"
                    ))
                })?;
                if net.trunc() != net {
                    return Err(err(format!(
                        "`{line}`: host bits are set; did you mean `{}`?",
                        net.trunc()
                    )));
                }
                list.addrs.push(AddrEntry::Net(canonical_net(net)));
                continue;
            }
            let pattern = HostPattern::parse(line).map_err(err)?;
            match &pattern.kind {
                PatternKind::Exact(Host::Ip(ip)) => {
                    list.addrs.push(AddrEntry::Addr(*ip, pattern.port))
                }
                _ => list.patterns.push(pattern),
            }
        }
        Ok(list)
    }

    /// An allowlist that allows nothing.
    pub fn empty() -> Allowlist {
        Allowlist::default()
    }

    /// Whether `host:port` may be reached: host pattern lines for names, address and CIDR
    /// lines for IP literals.
    pub fn allows(&self, host: &Host, port: u16) -> bool {
        match host {
            Host::Name(_) => self.patterns.iter().any(|p| p.matches(host, port)),
            Host::Ip(ip) => {
                let ip = canonical_ip(*ip);
                self.addrs.iter().any(|a| match a {
                    AddrEntry::Net(n) => n.contains(&ip),
                    AddrEntry::Addr(a, ps) => *a == ip && ps.matches(port),
                })
            }
        }
    }

    /// Whether an address or CIDR line covers `ip` (the SSRF exemption; ports are not
    /// considered here).
    pub fn covers_addr(&self, ip: IpAddr) -> bool {
        let ip = canonical_ip(ip);
        self.addrs.iter().any(|a| match a {
            AddrEntry::Net(n) => n.contains(&ip),
            AddrEntry::Addr(a, _) => *a == ip,
        })
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.patterns.len() + self.addrs.len()
    }

    /// True when there are no entries.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The host pattern lines.
    pub fn patterns(&self) -> &[HostPattern] {
        &self.patterns
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(s: &str) -> Host {
        parse_host(s).unwrap()
    }

    fn list(text: &str) -> Allowlist {
        Allowlist::parse(text, Path::new("allowlist")).unwrap()
    }

    #[test]
    fn design_example() {
        let a = list(
            "# comment\n\nexample.com          # that host\n*.example.com\nexample.com:8443\n*.example.com:*\n\
             203.0.113.7\n10.20.0.0/16\n",
        );
        assert_eq!(a.len(), 6);
        assert!(a.allows(&h("example.com"), 443));
        assert!(a.allows(&h("example.com"), 80));
        assert!(a.allows(&h("example.com"), 8443));
        assert!(!a.allows(&h("example.com"), 8080));
        assert!(a.allows(&h("a.example.com"), 1234));
        assert!(a.allows(&h("a.b.c.example.com"), 443));
        assert!(!a.allows(&h("example.org"), 443));
        assert!(!a.allows(&h("badexample.com"), 443));
        assert!(!a.allows(&h("example.com.evil.net"), 443));
        assert!(a.allows(&h("203.0.113.7"), 9999));
        assert!(a.allows(&h("10.20.3.4"), 22));
        assert!(!a.allows(&h("10.21.0.1"), 22));
        assert!(a.covers_addr("10.20.255.255".parse().unwrap()));
        assert!(a.covers_addr("::ffff:10.20.0.1".parse().unwrap()));
        assert!(!a.covers_addr("10.19.255.255".parse().unwrap()));
    }

    #[test]
    fn wildcard_is_not_apex() {
        let a = list("*.example.com\n");
        assert!(!a.allows(&h("example.com"), 443));
        assert!(a.allows(&h("x.example.com"), 443));
        assert!(a.allows(&h("X.Example.COM."), 443));
        assert!(!a.allows(&h("x.example.com"), 8443));
        assert!(!a.allows(&h("xexample.com"), 443));
    }

    #[test]
    fn spellings_match() {
        let a = list("Bücher.Example.\nlocalhost:*\n");
        assert!(a.allows(&h("xn--bcher-kva.example"), 443));
        assert!(a.allows(&h("BÜCHER.example"), 80));
        assert!(a.allows(&h("localhost"), 31337));
        // A name never matches an address line and the other way round.
        assert!(!a.allows(&h("127.0.0.1"), 31337));
        let cyr = list("example.com\n");
        assert!(parse_host("exаmple.com").is_err());
        assert!(!cyr.allows(&h("ехаре.com"), 443));
        assert!(parse_host("ехаmрlе.com").is_err());
    }

    #[test]
    fn ipv6_lines() {
        let a = list("[::1]:8443\n2001:db8::7\nfd00::/8\n");
        assert!(a.allows(&h("[::1]"), 8443));
        assert!(!a.allows(&h("[::1]"), 8444));
        assert!(a.covers_addr("::1".parse().unwrap()));
        assert!(a.allows(&h("2001:db8::7"), 1));
        assert!(a.allows(&h("[fd12::1]"), 1));
    }

    #[test]
    fn address_spellings_match_address_lines() {
        let a = list("127.0.0.1\n");
        for s in ["127.1", "2130706433", "0x7f000001", "[::ffff:127.0.0.1]"] {
            assert!(a.allows(&h(s), 8080), "{s}");
        }
        assert!(!a.allows(&h("127.0.0.2"), 8080));
    }

    #[test]
    fn mapped_cidr_covers_ipv4() {
        let a = list("::ffff:10.0.0.0/104\n");
        assert!(a.covers_addr("10.1.2.3".parse().unwrap()));
        assert!(a.allows(&h("10.1.2.3"), 80));
        assert!(!a.covers_addr("11.0.0.0".parse().unwrap()));
    }

    /// The same host in many spellings matches; near-misses never do.
    #[test]
    fn adversarial_spellings() {
        let a = list("example.com\n*.corp.example:*\n");
        for s in [
            "example.com",
            "EXAMPLE.COM",
            "Example.Com.",
            "ｅｘａｍｐｌｅ.ｃｏｍ",
            "example。com",
            "example.com．",
        ] {
            assert!(a.allows(&h(s), 443), "{s} should match");
        }
        for s in [
            "example.co",
            "example.comm",
            "xexample.com",
            "example.com.evil.net",
            "a.example.com",
            "example.corp",
            "corp.example",
            "evil-corp.example",
            "example.com.corp.example.net",
        ] {
            assert!(!a.allows(&h(s), 443), "{s} must not match");
        }
        for s in ["x.corp.example", "a.b.c.corp.example", "X.CORP.EXAMPLE."] {
            assert!(a.allows(&h(s), 1), "{s} should match");
        }
        // Spellings that are not hosts at all are rejected by the parser.
        for s in [
            "example.com\0",
            "example.com/",
            "example.com:443",
            "exa%6dple.com",
            "example..com",
            " example.com",
            "exаmple.com",
        ] {
            assert!(parse_host(s).is_err(), "{s:?} must not parse");
        }
    }

    #[test]
    fn errors_name_file_and_line() {
        let cases = [
            ("ok.com\nex*ample.com\n", 2, "`*`"),
            ("\n\n*\n", 3, "lone `*`"),
            ("a.*.example.com", 1, "first label"),
            ("*.*.example.com", 1, "first label"),
            ("example.com:0\n", 1, "invalid port"),
            ("example.com:http\n", 1, "invalid port"),
            ("example.com:\n", 1, "empty port"),
            ("10.0.0.1/8\n", 1, "did you mean `10.0.0.0/8`"),
            ("10.0.0.0/33\n", 1, "invalid CIDR"),
            ("https://example.com\n", 1, "not a URL"),
            ("user@example.com\n", 1, "userinfo"),
            ("a.com b.com\n", 1, "one entry per line"),
            ("1.2.3.4.5\n", 1, "invalid IP"),
            ("*.10.0.0.1\n", 1, "address"),
            ("[::1\n", 1, "missing `]`"),
            ("[::1]x\n", 1, "`:port`"),
            ("a..b\n", 1, "empty label"),
        ];
        for (text, line, needle) in cases {
            let e = Allowlist::parse(text, Path::new("/etc/bottle/allowlist")).unwrap_err();
            let msg = e.to_string();
            assert!(
                msg.starts_with(&format!("/etc/bottle/allowlist:{line}: ")),
                "{text:?}: {msg}"
            );
            assert!(msg.contains(needle), "{text:?}: {msg}");
        }
    }

    #[test]
    fn pattern_display_round_trips() {
        for s in [
            "example.com",
            "*.example.com:*",
            "example.com:8443",
            "[::1]:*",
            "10.0.0.1:*",
        ] {
            let p = HostPattern::parse(s).unwrap();
            assert_eq!(HostPattern::parse(&p.to_string()).unwrap(), p, "{s}");
        }
    }

    #[test]
    fn never_panics_on_random_input() {
        let mut seed: u64 = 0x1234_5678_9abc_def1;
        let alphabet: Vec<char> = "ab1.:*/[]#@ \n-0x%ü".chars().collect();
        for _ in 0..10_000 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let len = (seed % 30) as usize;
            let s: String = (0..len)
                .map(|i| alphabet[((seed >> (i % 8 * 8)) as usize + i) % alphabet.len()])
                .collect();
            let _ = Allowlist::parse(&s, Path::new("x"));
            let _ = HostPattern::parse(&s);
        }
    }
}
