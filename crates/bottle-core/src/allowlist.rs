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
//! docs.rs  until=2026-12-07T06:00:00Z   # allowed until then (RFC 3339, UTC), ignored after
//! ```
//!
//! Address and CIDR lines also exempt the addresses they cover from the SSRF check
//! ([`Allowlist::covers_addr`]), whatever name resolved to them.
//!
//! An entry with `until=` (a time-limited grant, `bottle approve --for`) stops matching at
//! that second by itself: every match reads the clock, so an expired line is ignored even if
//! nobody edits the file or signals the sidecar (fail closed). Lines without it never expire.

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

/// The option a line may carry after its entry: `until=<RFC 3339 UTC>`.
const UNTIL_OPTION: &str = "until=";

/// The parsed `allowlist` file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Allowlist {
    patterns: Vec<HostPattern>,
    /// The `until=` of each pattern line, by index (unix seconds; `None`: no end).
    pattern_until: Vec<Option<u64>>,
    addrs: Vec<(AddrEntry, Option<u64>)>,
}

/// Whether an entry ending at `until` is in force at `now`.
fn in_force(until: Option<u64>, now: u64) -> bool {
    until.is_none_or(|u| now < u)
}

/// Unix time in seconds (0 if the clock is before 1970, which only makes grants look
/// younger; an entry's end is still compared with the same clock).
pub fn now_unix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Parses `YYYY-MM-DDTHH:MM:SSZ` (RFC 3339 in UTC; a fraction of a second is accepted and
/// dropped, which ends a grant early rather than late) into unix seconds.
pub fn parse_utc(s: &str) -> Result<u64, String> {
    let bad = || format!("`{s}`: write the time as RFC 3339 in UTC, e.g. `2026-12-07T06:00:00Z`");
    let body = s.strip_suffix('Z').ok_or_else(bad)?;
    let main = match body.split_once('.') {
        Some((m, f)) if !f.is_empty() && f.len() <= 9 && f.bytes().all(|b| b.is_ascii_digit()) => m,
        Some(_) => return Err(bad()),
        None => body,
    };
    let b = main.as_bytes();
    let digits = |r: std::ops::Range<usize>| -> Option<u32> {
        let part = main.get(r)?;
        if !part.bytes().all(|c| c.is_ascii_digit()) {
            return None;
        }
        part.parse().ok()
    };
    if b.len() != 19
        || b[4] != b'-'
        || b[7] != b'-'
        || b[10] != b'T'
        || b[13] != b':'
        || b[16] != b':'
    {
        return Err(bad());
    }
    let fields = (|| {
        Some((
            digits(0..4)?,
            digits(5..7)?,
            digits(8..10)?,
            digits(11..13)?,
            digits(14..16)?,
            digits(17..19)?,
        ))
    })()
    .ok_or_else(bad)?;
    let (year, month, day, hour, minute, second) = fields;
    let month = u8::try_from(month)
        .ok()
        .and_then(|m| time::Month::try_from(m).ok())
        .ok_or_else(bad)?;
    let date = time::Date::from_calendar_date(
        i32::try_from(year).map_err(|_| bad())?,
        month,
        u8::try_from(day).map_err(|_| bad())?,
    )
    .map_err(|_| bad())?;
    let clock = time::Time::from_hms(
        u8::try_from(hour).map_err(|_| bad())?,
        u8::try_from(minute).map_err(|_| bad())?,
        u8::try_from(second).map_err(|_| bad())?,
    )
    .map_err(|_| bad())?;
    let unix = time::PrimitiveDateTime::new(date, clock)
        .assume_utc()
        .unix_timestamp();
    u64::try_from(unix).map_err(|_| bad())
}

/// Unix seconds as `YYYY-MM-DDTHH:MM:SSZ` (what [`parse_utc`] reads).
pub fn format_utc(unix: u64) -> String {
    let t = i64::try_from(unix)
        .ok()
        .and_then(|u| time::OffsetDateTime::from_unix_timestamp(u).ok())
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

/// Splits one allowlist line (comment removed, trimmed, not empty) into its entry and its
/// `until=` (unix seconds), if any.
pub fn split_line(line: &str) -> Result<(&str, Option<u64>), String> {
    let mut words = line.split_whitespace();
    let entry = words.next().unwrap_or("");
    let mut until = None;
    for word in words {
        let Some(value) = word.strip_prefix(UNTIL_OPTION) else {
            return Err(if word.contains('=') {
                format!("`{word}`: unknown option (the only one is `until=2026-12-07T06:00:00Z`)")
            } else {
                format!("`{line}`: one entry per line (use `#` for comments)")
            });
        };
        if until.is_some() {
            return Err(format!("`{line}`: `until=` given twice"));
        }
        until = Some(parse_utc(value)?);
    }
    Ok((entry, until))
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
            let (line, until) = split_line(line).map_err(err)?;
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
                list.addrs.push((AddrEntry::Net(canonical_net(net)), until));
                continue;
            }
            let pattern = HostPattern::parse(line).map_err(err)?;
            match &pattern.kind {
                PatternKind::Exact(Host::Ip(ip)) => {
                    list.addrs.push((AddrEntry::Addr(*ip, pattern.port), until))
                }
                _ => {
                    list.patterns.push(pattern);
                    list.pattern_until.push(until);
                }
            }
        }
        Ok(list)
    }

    /// An allowlist that allows nothing.
    pub fn empty() -> Allowlist {
        Allowlist::default()
    }

    /// Whether `host:port` may be reached now: host pattern lines for names, address and CIDR
    /// lines for IP literals; expired lines never match.
    pub fn allows(&self, host: &Host, port: u16) -> bool {
        self.allows_at(host, port, now_unix())
    }

    /// [`Allowlist::allows`] at `now` (unix seconds).
    pub fn allows_at(&self, host: &Host, port: u16, now: u64) -> bool {
        match host {
            Host::Name(_) => self
                .patterns
                .iter()
                .zip(&self.pattern_until)
                .any(|(p, until)| in_force(*until, now) && p.matches(host, port)),
            Host::Ip(ip) => {
                let ip = canonical_ip(*ip);
                self.addrs.iter().any(|(a, until)| {
                    in_force(*until, now)
                        && match a {
                            AddrEntry::Net(n) => n.contains(&ip),
                            AddrEntry::Addr(a, ps) => *a == ip && ps.matches(port),
                        }
                })
            }
        }
    }

    /// Whether an address or CIDR line in force covers `ip` (the SSRF exemption; ports are
    /// not considered here).
    pub fn covers_addr(&self, ip: IpAddr) -> bool {
        self.covers_addr_at(ip, now_unix())
    }

    /// [`Allowlist::covers_addr`] at `now` (unix seconds).
    pub fn covers_addr_at(&self, ip: IpAddr, now: u64) -> bool {
        let ip = canonical_ip(ip);
        self.addrs.iter().any(|(a, until)| {
            in_force(*until, now)
                && match a {
                    AddrEntry::Net(n) => n.contains(&ip),
                    AddrEntry::Addr(a, _) => *a == ip,
                }
        })
    }

    /// Number of entries, expired ones included.
    pub fn len(&self) -> usize {
        self.patterns.len() + self.addrs.len()
    }

    /// Number of entries in force at `now`.
    pub fn active_len_at(&self, now: u64) -> usize {
        self.untils().filter(|u| in_force(*u, now)).count()
    }

    /// The earliest end after `now` of a time-limited entry, if any (when the sidecar should
    /// publish that one more entry has lapsed).
    pub fn next_expiry_after(&self, now: u64) -> Option<u64> {
        self.untils().flatten().filter(|u| *u > now).min()
    }

    /// The `until=` of every entry (`None`: no end).
    pub fn untils(&self) -> impl Iterator<Item = Option<u64>> + '_ {
        self.pattern_until
            .iter()
            .copied()
            .chain(self.addrs.iter().map(|(_, u)| *u))
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

    /// A time-limited line matches before its end and never at or after it, for names,
    /// addresses and the SSRF exemption alike; lines without `until=` are unaffected.
    #[test]
    fn until_ends_an_entry_by_itself() {
        let end = parse_utc("2026-12-07T06:00:00Z").unwrap();
        assert_eq!(end, 1_796_623_200);
        let a = list(
            "docs.rs  until=2026-12-07T06:00:00Z  # an approval\n\
             10.9.0.0/24 until=2026-12-07T06:00:00Z\n\
             203.0.113.9:8443\tuntil=2026-12-07T07:00:00Z\n\
             example.com\n",
        );
        assert_eq!(a.len(), 4);
        let docs = h("docs.rs");
        assert!(a.allows_at(&docs, 443, end - 1));
        assert!(!a.allows_at(&docs, 443, end));
        assert!(!a.allows_at(&docs, 443, end + 86_400));
        assert!(a.covers_addr_at("10.9.0.5".parse().unwrap(), end - 1));
        assert!(!a.covers_addr_at("10.9.0.5".parse().unwrap(), end));
        assert!(!a.allows_at(&h("10.9.0.5"), 80, end));
        assert!(a.allows_at(&h("203.0.113.9"), 8443, end));
        assert!(!a.allows_at(&h("203.0.113.9"), 8443, end + 3600));
        assert!(a.allows_at(&h("example.com"), 443, u64::MAX));
        assert_eq!(a.active_len_at(end - 1), 4);
        assert_eq!(a.active_len_at(end), 2);
        assert_eq!(a.active_len_at(end + 3600), 1);
        assert_eq!(a.next_expiry_after(0), Some(end));
        assert_eq!(a.next_expiry_after(end), Some(end + 3600));
        assert_eq!(a.next_expiry_after(end + 3600), None);
        // The clock-reading API is the same check at the real time: a past end never matches.
        let past = list("docs.rs until=2020-01-01T00:00:00Z\n");
        assert!(!past.allows(&docs, 443));
        assert!(list("docs.rs until=2999-01-01T00:00:00Z\n").allows(&docs, 443));
    }

    #[test]
    fn until_spellings() {
        assert_eq!(parse_utc("1970-01-01T00:00:00Z"), Ok(0));
        assert_eq!(parse_utc("2024-02-29T23:59:59.999Z"), Ok(1_709_251_199));
        assert_eq!(format_utc(1_796_623_200), "2026-12-07T06:00:00Z");
        assert_eq!(parse_utc(&format_utc(1_709_251_199)), Ok(1_709_251_199));
        for bad in [
            "2026-12-07T06:00:00",
            "2026-12-07T06:00:00+01:00",
            "2026-12-07 06:00:00Z",
            "2026-12-07t06:00:00z",
            "2025-02-29T00:00:00Z",
            "2026-13-01T00:00:00Z",
            "2026-12-07T24:00:00Z",
            "2026-12-7T06:00:00Z",
            "+026-12-07T06:00:00Z",
            "2026-12-07T06:00:00.Z",
            "1969-12-31T23:59:59Z",
            "",
        ] {
            assert!(parse_utc(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn until_errors_name_file_and_line() {
        let cases = [
            ("ok.com\ndocs.rs until=tomorrow\n", 2, "RFC 3339 in UTC"),
            ("docs.rs until=2026-12-07T06:00:00\n", 1, "RFC 3339"),
            ("docs.rs ttl=1h\n", 1, "unknown option"),
            (
                "docs.rs until=2026-12-07T06:00:00Z until=2027-01-01T00:00:00Z\n",
                1,
                "twice",
            ),
            ("docs.rs other.rs\n", 1, "one entry per line"),
            ("until=2026-12-07T06:00:00Z\n", 1, ""),
            ("*.com until=2026-12-07T06:00:00Z\n", 1, ""),
        ];
        for (text, line, needle) in cases {
            let Err(e) = Allowlist::parse(text, Path::new("/s/allowlist")) else {
                // `*.com` parses (breadth is the launcher's rule, not the parser's).
                assert!(text.starts_with("*.com"), "{text:?} parsed");
                continue;
            };
            let msg = e.to_string();
            assert!(
                msg.starts_with(&format!("/s/allowlist:{line}: ")),
                "{text:?}: {msg}"
            );
            assert!(msg.contains(needle), "{text:?}: {msg}");
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
