//! Host names and IP literals, normalised so that one host has exactly one spelling.
//!
//! Names are lowercased, lose one trailing dot and are converted to punycode (UTS-46).
//! IP literals are recognised in every spelling a WHATWG URL parser accepts (decimal,
//! octal, hex, 1 to 4 parts, IPv6 with or without brackets, IPv4-mapped IPv6), so an
//! address can never hide behind an unusual spelling.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use idna::uts46::{AsciiDenyList, DnsLength, Hyphens, Uts46};

/// Longest accepted input, in bytes, before any processing.
const MAX_INPUT: usize = 1024;

/// A normalised host.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Host {
    /// A DNS name: lowercase ASCII (punycode), no trailing dot.
    Name(String),
    /// An IP address. IPv4-mapped IPv6 addresses are stored as IPv4.
    Ip(IpAddr),
}

impl Host {
    /// The IP address, if this is one.
    pub fn ip(&self) -> Option<IpAddr> {
        match self {
            Host::Ip(ip) => Some(*ip),
            Host::Name(_) => None,
        }
    }

    /// The name, if this is one.
    pub fn name(&self) -> Option<&str> {
        match self {
            Host::Name(n) => Some(n),
            Host::Ip(_) => None,
        }
    }

    /// The host as it goes into an authority (`host:port`): IPv6 in brackets.
    pub fn to_authority(&self, port: u16) -> String {
        match self {
            Host::Ip(IpAddr::V6(v6)) => format!("[{v6}]:{port}"),
            other => format!("{other}:{port}"),
        }
    }

    /// The host as it goes into a URL or a Host header (IPv6 in brackets, no port).
    pub fn to_url_host(&self) -> String {
        match self {
            Host::Ip(IpAddr::V6(v6)) => format!("[{v6}]"),
            other => other.to_string(),
        }
    }
}

impl fmt::Display for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Host::Name(n) => f.write_str(n),
            Host::Ip(ip) => write!(f, "{ip}"),
        }
    }
}

impl std::str::FromStr for Host {
    type Err = HostError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse_host(s)
    }
}

/// Why a host or authority was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HostError {
    /// Nothing was given.
    #[error("empty host")]
    Empty,
    /// `user@host` forms are never accepted.
    #[error("userinfo (`user@`) is not allowed in a host")]
    Userinfo,
    /// A label was empty (`a..b`, leading dot).
    #[error("empty label in host `{0}`")]
    EmptyLabel(String),
    /// A label was longer than 63 bytes.
    #[error("label longer than 63 characters in host `{0}`")]
    LabelTooLong(String),
    /// The name was longer than 253 bytes.
    #[error("host name longer than 253 characters")]
    NameTooLong,
    /// A character that cannot be in a host name.
    #[error("invalid character in host `{0}`")]
    InvalidChar(String),
    /// The IDNA conversion failed.
    #[error("invalid international domain name `{0}`")]
    Idna(String),
    /// It looks like an IP address but is not a valid one.
    #[error("invalid IP address `{0}`")]
    InvalidIp(String),
    /// A label mixes Latin with Cyrillic or Greek letters (a homograph, e.g. Cyrillic `а`).
    #[error("host `{0}` mixes Latin with Cyrillic or Greek letters in one label (homograph)")]
    MixedScript(String),
    /// The port is not a number in 1..=65535.
    #[error("invalid port `{0}`")]
    InvalidPort(String),
}

fn truncated(s: &str) -> String {
    let mut out: String = s.chars().take(80).collect();
    if out.len() < s.len() {
        out.push('…');
    }
    out.chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

/// Parse and normalise a host (no port). See the module documentation.
pub fn parse_host(input: &str) -> Result<Host, HostError> {
    if input.is_empty() {
        return Err(HostError::Empty);
    }
    if input.len() > MAX_INPUT {
        return Err(HostError::NameTooLong);
    }
    if input.contains('@') {
        return Err(HostError::Userinfo);
    }
    if let Some(rest) = input.strip_prefix('[') {
        let inner = rest
            .strip_suffix(']')
            .ok_or_else(|| HostError::InvalidIp(truncated(input)))?;
        return parse_ipv6(inner).map(canonical_ip).map(Host::Ip);
    }
    if input.contains(':') {
        // Only an IPv6 literal may contain a colon here ("host:port" is not a host).
        if input.matches(':').count() == 1 {
            return Err(HostError::InvalidChar(truncated(input)));
        }
        return parse_ipv6(input).map(canonical_ip).map(Host::Ip);
    }
    // Reject characters that have a meaning in URLs or requests before IDNA, which would
    // otherwise map some of them away.
    if input
        .chars()
        .any(|c| c.is_whitespace() || c.is_control() || "%/\\?#[]<>^|*\"'`{}".contains(c))
    {
        return Err(HostError::InvalidChar(truncated(input)));
    }
    let ascii = Uts46::new()
        .to_ascii(
            input.as_bytes(),
            AsciiDenyList::URL,
            Hyphens::Allow,
            DnsLength::Ignore,
        )
        .map_err(|_| HostError::Idna(truncated(input)))?;
    // One trailing dot (after IDNA, so U+3002 and U+FF0E count too) is the root label.
    let ascii: &str = ascii.strip_suffix('.').unwrap_or(&ascii);
    if ascii.is_empty() || ascii.ends_with('.') || ascii.starts_with('.') || ascii.contains("..") {
        return Err(HostError::EmptyLabel(truncated(input)));
    }
    if ends_in_number(ascii) {
        return parse_ipv4_whatwg(ascii)
            .map(IpAddr::V4)
            .map(Host::Ip)
            .ok_or_else(|| HostError::InvalidIp(truncated(input)));
    }
    validate_name(ascii, input)?;
    if ascii.split('.').any(label_mixes_scripts) {
        return Err(HostError::MixedScript(truncated(input)));
    }
    Ok(Host::Name(ascii.to_string()))
}

#[derive(PartialEq, Eq, Clone, Copy)]
enum Script {
    Latin,
    Cyrillic,
    Greek,
}

fn script_of(c: char) -> Option<Script> {
    match c as u32 {
        0x41..=0x5a | 0x61..=0x7a | 0xc0..=0x24f | 0x1e00..=0x1eff => Some(Script::Latin),
        0x370..=0x3ff | 0x1f00..=0x1fff => Some(Script::Greek),
        0x400..=0x52f | 0x1c80..=0x1c8f | 0x2de0..=0x2dff | 0xa640..=0xa69f => {
            Some(Script::Cyrillic)
        }
        _ => None,
    }
}

/// Whether a punycode label decodes to letters of Latin and of Cyrillic or Greek together.
fn label_mixes_scripts(label: &str) -> bool {
    let Some(encoded) = label.strip_prefix("xn--") else {
        return false; // pure ASCII
    };
    let Some(decoded) = idna::punycode::decode_to_string(encoded) else {
        return false;
    };
    let mut seen: Option<Script> = None;
    for s in decoded.chars().filter_map(script_of) {
        match seen {
            None => seen = Some(s),
            Some(prev) if prev != s => return true,
            Some(_) => {}
        }
    }
    false
}

fn validate_name(ascii: &str, original: &str) -> Result<(), HostError> {
    if ascii.len() > 253 {
        return Err(HostError::NameTooLong);
    }
    for label in ascii.split('.') {
        if label.is_empty() {
            return Err(HostError::EmptyLabel(truncated(original)));
        }
        if label.len() > 63 {
            return Err(HostError::LabelTooLong(truncated(original)));
        }
        if !label
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
        {
            return Err(HostError::InvalidChar(truncated(original)));
        }
    }
    Ok(())
}

/// IPv4-mapped IPv6 addresses become the IPv4 address; everything else is kept.
pub fn canonical_ip(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(v6),
        },
        v4 => v4,
    }
}

fn parse_ipv6(s: &str) -> Result<IpAddr, HostError> {
    // Zone identifiers (`%eth0`) are never accepted.
    s.parse::<Ipv6Addr>()
        .map(IpAddr::V6)
        .map_err(|_| HostError::InvalidIp(truncated(s)))
}

/// WHATWG "ends in a number": the last label is all digits or a 0x hex number.
fn ends_in_number(s: &str) -> bool {
    let last = s.rsplit('.').next().unwrap_or("");
    if !last.is_empty() && last.bytes().all(|b| b.is_ascii_digit()) {
        return true;
    }
    if let Some(hex) = last.strip_prefix("0x").or_else(|| last.strip_prefix("0X")) {
        return hex.bytes().all(|b| b.is_ascii_hexdigit());
    }
    false
}

fn parse_ipv4_part(p: &str) -> Option<u64> {
    if p.is_empty() {
        return None;
    }
    let (digits, radix) = if let Some(h) = p.strip_prefix("0x").or_else(|| p.strip_prefix("0X")) {
        (h, 16)
    } else if p.len() > 1 && p.starts_with('0') {
        (&p[1..], 8)
    } else {
        (p, 10)
    };
    if digits.is_empty() {
        return Some(0); // "0x" is zero in WHATWG
    }
    if !digits.chars().all(|c| c.is_digit(radix)) {
        return None;
    }
    let digits = digits.trim_start_matches('0');
    if digits.is_empty() {
        return Some(0);
    }
    if digits.len() > 20 {
        return None; // certainly out of range
    }
    u64::from_str_radix(digits, radix).ok()
}

/// The WHATWG IPv4 parser: 1 to 4 parts, each decimal, octal (leading 0) or hex (0x).
pub fn parse_ipv4_whatwg(s: &str) -> Option<Ipv4Addr> {
    let parts: Vec<&str> = s.split('.').collect();
    if parts.is_empty() || parts.len() > 4 {
        return None;
    }
    let mut nums = Vec::with_capacity(parts.len());
    for p in &parts {
        nums.push(parse_ipv4_part(p)?);
    }
    let (last, init) = nums.split_last()?;
    if init.iter().any(|&n| n > 255) {
        return None;
    }
    let limit = 256u64.pow(5 - nums.len() as u32);
    if *last >= limit {
        return None;
    }
    let mut value = *last;
    for (i, n) in init.iter().enumerate() {
        value += n * 256u64.pow(3 - i as u32);
    }
    u32::try_from(value).ok().map(Ipv4Addr::from)
}

/// Split an authority (`host:port`, `[v6]:port`, `host`) into a normalised host and a port.
/// Userinfo is rejected; a missing or empty port gives `default_port`; port 0 is rejected.
pub fn split_host_port(authority: &str, default_port: u16) -> Result<(Host, u16), HostError> {
    if authority.is_empty() {
        return Err(HostError::Empty);
    }
    if authority.contains('@') {
        return Err(HostError::Userinfo);
    }
    let (host_part, port_part) = if authority.starts_with('[') {
        let close = authority
            .find(']')
            .ok_or_else(|| HostError::InvalidIp(truncated(authority)))?;
        let rest = &authority[close + 1..];
        let port = if rest.is_empty() {
            None
        } else {
            Some(
                rest.strip_prefix(':')
                    .ok_or_else(|| HostError::InvalidPort(truncated(rest)))?,
            )
        };
        (&authority[..=close], port)
    } else {
        match authority.matches(':').count() {
            0 => (authority, None),
            1 => {
                let (h, p) = authority.split_once(':').unwrap_or((authority, ""));
                (h, Some(p))
            }
            // An IPv6 literal must be bracketed when it comes with a port; without brackets
            // it is ambiguous, so it is rejected.
            _ => return Err(HostError::InvalidIp(truncated(authority))),
        }
    };
    let port = match port_part {
        None | Some("") => default_port,
        Some(p) => parse_port(p)?,
    };
    Ok((parse_host(host_part)?, port))
}

/// A port number: ASCII digits only, 1..=65535.
pub fn parse_port(p: &str) -> Result<u16, HostError> {
    if p.is_empty() || p.len() > 5 || !p.bytes().all(|b| b.is_ascii_digit()) {
        return Err(HostError::InvalidPort(truncated(p)));
    }
    match p.parse::<u16>() {
        Ok(0) | Err(_) => Err(HostError::InvalidPort(truncated(p))),
        Ok(n) => Ok(n),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(s: &str) -> Host {
        Host::Name(s.to_string())
    }
    fn v4(s: &str) -> Host {
        Host::Ip(IpAddr::V4(s.parse().unwrap()))
    }
    fn v6(s: &str) -> Host {
        Host::Ip(IpAddr::V6(s.parse().unwrap()))
    }

    #[test]
    fn names_normalise() {
        assert_eq!(parse_host("Example.COM").unwrap(), name("example.com"));
        assert_eq!(parse_host("example.com.").unwrap(), name("example.com"));
        assert_eq!(
            parse_host("my_host.internal").unwrap(),
            name("my_host.internal")
        );
        assert_eq!(
            parse_host("bücher.example").unwrap(),
            name("xn--bcher-kva.example")
        );
        assert_eq!(
            parse_host("BÜCHER.example").unwrap(),
            name("xn--bcher-kva.example")
        );
        assert_eq!(
            parse_host("xn--bcher-kva.example").unwrap(),
            name("xn--bcher-kva.example")
        );
        // Full-width dot and letters map to ASCII.
        assert_eq!(
            parse_host("ｅｘａｍｐｌｅ。com").unwrap(),
            name("example.com")
        );
    }

    #[test]
    fn cyrillic_lookalike_is_rejected() {
        // Cyrillic а inside a Latin label: a homograph, rejected in both spellings.
        assert!(matches!(
            parse_host("exаmple.com"),
            Err(HostError::MixedScript(_))
        ));
        let puny = idna::domain_to_ascii("exаmple.com").unwrap();
        assert!(matches!(parse_host(&puny), Err(HostError::MixedScript(_))));
        assert!(matches!(
            parse_host("pаypal.com"),
            Err(HostError::MixedScript(_))
        ));
        assert!(matches!(
            parse_host("gοogle.com"),
            Err(HostError::MixedScript(_))
        )); // Greek ο
            // Single-script IDNs, and different scripts in different labels, are fine.
        assert_eq!(
            parse_host("пример.рф").unwrap(),
            name("xn--e1afmkfd.xn--p1ai")
        );
        assert!(parse_host("ελληνικά.example").is_ok());
        assert!(parse_host("bücher.пример").is_ok());
        // An all-Cyrillic lookalike of a Latin name is a different host, never equal.
        let h = parse_host("ехаmрlе.com");
        assert_ne!(h, Ok(name("example.com")));
    }

    #[test]
    fn names_rejected() {
        for bad in [
            "",
            ".",
            "..",
            "a..b",
            ".a",
            "a.b..",
            "user@example.com",
            "exa mple.com",
            "a/b",
            "a%2eb",
            "ex*ample.com",
            "*.example.com",
            "a\u{0}b",
            "a\nb",
            "[::1",
            "[example.com]",
            "a\\b",
            "1.2.3.4.5",
            "foo.123",
            "foo.0x1",
            "256.1.1.1",
            "1.2.3.256",
            "4294967296",
            "0x100000000",
            "1.2.65536",
            "fe80::1%eth0",
            "[fe80::1%25eth0]",
            "ex#ample.com",
            "a?b",
        ] {
            assert!(parse_host(bad).is_err(), "{bad:?} should be rejected");
        }
        let long_label = "a".repeat(64);
        assert_eq!(
            parse_host(&format!("{long_label}.com")),
            Err(HostError::LabelTooLong(format!("{long_label}.com")))
        );
        let long_name = ["a".repeat(60).as_str(); 5].join(".");
        assert_eq!(parse_host(&long_name), Err(HostError::NameTooLong));
        assert!(parse_host(&"a".repeat(5000)).is_err());
    }

    #[test]
    fn loopback_spellings() {
        for s in [
            "127.0.0.1",
            "127.1",
            "127.0.1",
            "2130706433",
            "0x7f000001",
            "0x7F.0.0.1",
            "0177.0.0.1",
            "0177.0.0.01",
            "0x7f.1",
            "127.0.0.1.",
            "017700000001",
            "0x7f.0x0.0x0.0x1",
            "127.000.000.001",
            "[::ffff:127.0.0.1]",
            "::ffff:127.0.0.1",
            "[::ffff:7f00:1]",
            "１２７.０.０.１",
            "127。0。0。1",
            "0X7F000001",
            "00000177.0.0.1",
        ] {
            assert_eq!(parse_host(s).unwrap(), v4("127.0.0.1"), "{s}");
        }
        assert_eq!(parse_host("0").unwrap(), v4("0.0.0.0"));
        assert_eq!(parse_host("0x").unwrap(), v4("0.0.0.0"));
        assert_eq!(parse_host("[::1]").unwrap(), v6("::1"));
        assert_eq!(parse_host("::1").unwrap(), v6("::1"));
        assert_eq!(parse_host("[0:0:0:0:0:0:0:1]").unwrap(), v6("::1"));
        assert_eq!(parse_host("10.1").unwrap(), v4("10.0.0.1"));
        assert_eq!(parse_host("192.168.257").unwrap(), v4("192.168.1.1"));
        assert_eq!(parse_host("3232235777").unwrap(), v4("192.168.1.1"));
        assert_eq!(parse_host("0xa9fea9fe").unwrap(), v4("169.254.169.254"));
    }

    #[test]
    fn display_forms() {
        assert_eq!(parse_host("[::1]").unwrap().to_string(), "::1");
        assert_eq!(parse_host("[::1]").unwrap().to_authority(443), "[::1]:443");
        assert_eq!(parse_host("a.b").unwrap().to_authority(80), "a.b:80");
        assert_eq!(parse_host("[::1]").unwrap().to_url_host(), "[::1]");
    }

    #[test]
    fn authority_split() {
        assert_eq!(
            split_host_port("example.com:443", 80).unwrap(),
            (name("example.com"), 443)
        );
        assert_eq!(
            split_host_port("example.com", 80).unwrap(),
            (name("example.com"), 80)
        );
        assert_eq!(
            split_host_port("example.com:", 80).unwrap(),
            (name("example.com"), 80)
        );
        assert_eq!(
            split_host_port("[::1]:8443", 80).unwrap(),
            (v6("::1"), 8443)
        );
        assert_eq!(split_host_port("[::1]", 80).unwrap(), (v6("::1"), 80));
        assert_eq!(
            split_host_port("127.1:8080", 80).unwrap(),
            (v4("127.0.0.1"), 8080)
        );
        assert_eq!(
            split_host_port("EXAMPLE.com.:443", 80).unwrap(),
            (name("example.com"), 443)
        );
        for bad in [
            "",
            "user@example.com:443",
            "user:pw@example.com",
            "example.com:0",
            "example.com:65536",
            "example.com:+1",
            "example.com:-1",
            "example.com:1x",
            "::1:443",
            "[::1]x",
            "[::1]:",
            "[::1]:99999",
            ":443",
            "a:b:c",
            "example.com: 443",
        ] {
            // "[::1]:" is accepted as the default port by WHATWG; we accept it too.
            if bad == "[::1]:" {
                assert!(split_host_port(bad, 1).is_ok());
                continue;
            }
            assert!(
                split_host_port(bad, 80).is_err(),
                "{bad:?} should be rejected"
            );
        }
    }

    #[test]
    fn never_panics_on_random_input() {
        let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
        let alphabet: Vec<char> = "0123456789abcdefxX.:[]@%-_*/ \u{3002}\u{ff0e}\u{0430}ü"
            .chars()
            .collect();
        for _ in 0..20_000 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let len = (seed % 24) as usize;
            let s: String = (0..len)
                .map(|i| alphabet[((seed >> (i % 8 * 8)) as usize + i * 7) % alphabet.len()])
                .collect();
            if let Ok(h) = parse_host(&s) {
                // Normalisation is idempotent and every output spelling parses back the same.
                assert_eq!(parse_host(&h.to_string()).as_ref(), Ok(&h), "{s:?}");
                assert_eq!(parse_host(&h.to_url_host()).as_ref(), Ok(&h), "{s:?}");
                assert_eq!(
                    split_host_port(&h.to_authority(8443), 1),
                    Ok((h.clone(), 8443)),
                    "{s:?}"
                );
            }
            let _ = split_host_port(&s, 443);
        }
    }
}
