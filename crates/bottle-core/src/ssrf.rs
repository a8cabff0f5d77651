//! Which addresses are not public destinations (SSRF protection).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Why `ip` is not a public destination, or `None` when it is public.
///
/// IPv6 forms that embed an IPv4 address (mapped `::ffff:a.b.c.d`, compatible `::a.b.c.d`,
/// 6to4 `2002::/16`, NAT64 `64:ff9b::/96` and `64:ff9b:1::/48`) are judged by the embedded
/// IPv4 address. Teredo and every IPv6 address outside global unicast `2000::/3` are refused.
pub fn private_reason(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => v4_reason(v4),
        IpAddr::V6(v6) => v6_reason(v6),
    }
}

/// True when [`private_reason`] returns `Some`.
pub fn is_private(ip: IpAddr) -> bool {
    private_reason(ip).is_some()
}

fn in_v4(ip: u32, net: [u8; 4], len: u32) -> bool {
    let net = u32::from_be_bytes(net);
    let mask = if len == 0 { 0 } else { u32::MAX << (32 - len) };
    ip & mask == net & mask
}

fn v4_reason(v4: Ipv4Addr) -> Option<&'static str> {
    let ip = u32::from(v4);
    // Most specific first.
    const TABLE: &[([u8; 4], u32, &str)] = &[
        ([169, 254, 169, 254], 32, "metadata"), // AWS/GCP/Azure/OpenStack instance metadata
        ([169, 254, 170, 2], 32, "metadata"),   // AWS ECS task metadata
        ([168, 63, 129, 16], 32, "metadata"),   // Azure wire server
        ([100, 100, 100, 200], 32, "metadata"), // Alibaba Cloud metadata
        ([192, 0, 0, 192], 32, "metadata"),     // Oracle Cloud metadata
        ([255, 255, 255, 255], 32, "broadcast"),
        ([0, 0, 0, 0], 32, "unspecified"),
        ([0, 0, 0, 0], 8, "this-network"),
        ([10, 0, 0, 0], 8, "private"),
        ([100, 64, 0, 0], 10, "cgnat"),
        ([127, 0, 0, 0], 8, "loopback"),
        ([169, 254, 0, 0], 16, "link-local"),
        ([172, 16, 0, 0], 12, "private"),
        ([192, 0, 0, 0], 24, "reserved"), // IETF protocol assignments (incl. NAT64 discovery)
        ([192, 0, 2, 0], 24, "documentation"),
        ([192, 31, 196, 0], 24, "reserved"), // AS112
        ([192, 52, 193, 0], 24, "reserved"), // AMT
        ([192, 88, 99, 0], 24, "reserved"),  // deprecated 6to4 relay anycast
        ([192, 168, 0, 0], 16, "private"),
        ([192, 175, 48, 0], 24, "reserved"), // direct delegation AS112
        ([198, 18, 0, 0], 15, "benchmarking"),
        ([198, 51, 100, 0], 24, "documentation"),
        ([203, 0, 113, 0], 24, "documentation"),
        ([224, 0, 0, 0], 4, "multicast"),
        ([240, 0, 0, 0], 4, "reserved"),
    ];
    TABLE
        .iter()
        .find(|(net, len, _)| in_v4(ip, *net, *len))
        .map(|(_, _, r)| *r)
}

fn embedded_v4(seg: &[u16; 8], hi: usize) -> Ipv4Addr {
    let a = seg[hi];
    let b = seg[hi + 1];
    Ipv4Addr::new((a >> 8) as u8, a as u8, (b >> 8) as u8, b as u8)
}

fn v6_reason(v6: Ipv6Addr) -> Option<&'static str> {
    let s = v6.segments();
    if v6.is_unspecified() {
        return Some("unspecified");
    }
    if v6.is_loopback() {
        return Some("loopback");
    }
    // fd00:ec2::254, AWS IMDS over IPv6.
    if s == [0xfd00, 0x0ec2, 0, 0, 0, 0, 0, 0x0254] {
        return Some("metadata");
    }
    // ::ffff:a.b.c.d (mapped)
    if s[..6] == [0, 0, 0, 0, 0, 0xffff] {
        return v4_reason(embedded_v4(&s, 6));
    }
    // ::ffff:0:a.b.c.d (SIIT translated)
    if s[..6] == [0, 0, 0, 0, 0xffff, 0] {
        return v4_reason(embedded_v4(&s, 6)).or(Some("reserved"));
    }
    // ::a.b.c.d (deprecated IPv4-compatible)
    if s[..6] == [0, 0, 0, 0, 0, 0] {
        return v4_reason(embedded_v4(&s, 6)).or(Some("reserved"));
    }
    // NAT64 well-known prefix 64:ff9b::/96: public embedded addresses are legitimate.
    if s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        return v4_reason(embedded_v4(&s, 6));
    }
    // NAT64 local-use prefix 64:ff9b:1::/48: the IPv4 address is in the last 32 bits for /96.
    if s[..3] == [0x64, 0xff9b, 1] {
        return v4_reason(embedded_v4(&s, 6)).or(Some("reserved"));
    }
    // 6to4: 2002:AABB:CCDD::/48 embeds AA.BB.CC.DD
    if s[0] == 0x2002 {
        return v4_reason(embedded_v4(&s, 1));
    }
    // Teredo 2001:0::/32: tunnels to arbitrary IPv4 (server and obfuscated client). Refused.
    if s[0] == 0x2001 && s[1] == 0 {
        return Some("teredo");
    }
    if s[0] == 0x2001 && s[1] == 0x0db8 {
        return Some("documentation");
    }
    if s[0] == 0x3fff && s[1] & 0xf000 == 0 {
        return Some("documentation"); // 3fff::/20
    }
    if s[0] == 0x2001 && s[1] == 0x0002 && s[2] == 0 {
        return Some("benchmarking"); // 2001:2::/48
    }
    if s[0] == 0x2001 && (s[1] & 0xfff0 == 0x0010 || s[1] & 0xfff0 == 0x0020) {
        return Some("reserved"); // ORCHID / ORCHIDv2
    }
    if s[0] & 0xff00 == 0xff00 {
        return Some("multicast");
    }
    if s[0] & 0xfe00 == 0xfc00 {
        return Some("ula");
    }
    if s[0] & 0xffc0 == 0xfe80 {
        return Some("link-local");
    }
    if s[0] & 0xffc0 == 0xfec0 {
        return Some("site-local");
    }
    // Everything else outside global unicast 2000::/3 (incl. discard-only 100::/64).
    if s[0] & 0xe000 != 0x2000 {
        return Some("reserved");
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::{parse_host, Host};

    fn reason(s: &str) -> Option<&'static str> {
        private_reason(s.parse().unwrap())
    }

    #[test]
    fn ipv4_ranges() {
        let cases = [
            ("127.0.0.1", "loopback"),
            ("127.255.255.254", "loopback"),
            ("10.0.0.1", "private"),
            ("10.255.255.255", "private"),
            ("172.16.0.1", "private"),
            ("172.31.255.255", "private"),
            ("192.168.0.1", "private"),
            ("100.64.0.1", "cgnat"),
            ("100.127.255.255", "cgnat"),
            ("169.254.169.254", "metadata"),
            ("169.254.1.1", "link-local"),
            ("168.63.129.16", "metadata"),
            ("100.100.100.200", "metadata"),
            ("0.0.0.0", "unspecified"),
            ("0.1.2.3", "this-network"),
            ("224.0.0.1", "multicast"),
            ("239.255.255.250", "multicast"),
            ("255.255.255.255", "broadcast"),
            ("240.0.0.1", "reserved"),
            ("198.18.0.1", "benchmarking"),
            ("198.19.255.255", "benchmarking"),
            ("192.0.2.1", "documentation"),
            ("198.51.100.7", "documentation"),
            ("203.0.113.7", "documentation"),
            ("192.0.0.170", "reserved"),
        ];
        for (ip, want) in cases {
            assert_eq!(reason(ip), Some(want), "{ip}");
        }
        for ip in [
            "8.8.8.8",
            "1.1.1.1",
            "172.15.255.255",
            "172.32.0.0",
            "100.63.255.255",
            "100.128.0.0",
            "169.253.255.255",
            "169.255.0.0",
            "192.167.255.255",
            "192.169.0.0",
            "11.0.0.0",
            "9.255.255.255",
            "126.255.255.255",
            "128.0.0.0",
            "198.17.255.255",
            "198.20.0.0",
            "223.255.255.255",
            "1.0.0.0",
            "192.0.3.0",
            "203.0.114.1",
        ] {
            assert_eq!(reason(ip), None, "{ip} is public");
        }
    }

    #[test]
    fn ipv6_ranges() {
        let cases = [
            ("::1", "loopback"),
            ("::", "unspecified"),
            ("fc00::1", "ula"),
            ("fdff::1", "ula"),
            ("fd00:ec2::254", "metadata"),
            ("fe80::1", "link-local"),
            ("febf::1", "link-local"),
            ("fec0::1", "site-local"),
            ("ff02::1", "multicast"),
            ("::ffff:127.0.0.1", "loopback"),
            ("::ffff:10.0.0.1", "private"),
            ("::127.0.0.1", "loopback"),
            ("::10.1.2.3", "private"),
            ("::8.8.8.8", "reserved"),
            ("2002:7f00:1::", "loopback"),
            ("2002:a9fe:a9fe::1", "metadata"),
            ("2002:c0a8:0101::", "private"),
            ("64:ff9b::127.0.0.1", "loopback"),
            ("64:ff9b::10.0.0.1", "private"),
            ("64:ff9b::169.254.169.254", "metadata"),
            ("64:ff9b:1::a00:1", "private"),
            ("2001::1", "teredo"),
            ("2001:0:4136:e378:8000:63bf:3fff:fdd2", "teredo"),
            ("2001:db8::1", "documentation"),
            ("100::1", "reserved"),
            ("::ffff:0:7f00:1", "loopback"),
            ("2001:2::1", "benchmarking"),
            ("2001:10::1", "reserved"),
            ("4000::1", "reserved"),
            ("::ffff:100.64.0.1", "cgnat"),
            ("::ffff:0.0.0.0", "unspecified"),
        ];
        for (ip, want) in cases {
            assert_eq!(reason(ip), Some(want), "{ip}");
        }
        for ip in [
            "2606:4700:4700::1111",
            "2001:4860:4860::8888",
            "2a00:1450::1",
            "64:ff9b::8.8.8.8",
            "2002:0808:0808::1",
            "::ffff:8.8.8.8",
            "2001:db9::1",
            "3fff:1000::1",
        ] {
            assert_eq!(reason(ip), None, "{ip} is public");
        }
    }

    /// Every spelling of a private address, through the host parser, is still private.
    #[test]
    fn spellings_through_parser_stay_private() {
        let spellings = [
            "127.0.0.1",
            "127.1",
            "2130706433",
            "0x7f000001",
            "0177.0.0.1",
            "0x7f.0.0.1",
            "127.0.0.1.",
            "[::1]",
            "[::ffff:127.0.0.1]",
            "[::ffff:7f00:1]",
            "[0:0:0:0:0:ffff:127.0.0.1]",
            "[::127.0.0.1]",
            "[2002:7f00:1::1]",
            "[64:ff9b::7f00:1]",
            "127.000.000.001",
            "0x7f.1",
            "0177.1",
            "017700000001",
            "１２７.０.０.１",
            "10.1",
            "012.0.0.1",
            "0xa.0.0.1",
            "167772161",
            "0xa9fea9fe",
            "169.254.43518",
            "0251.0376.0251.0376",
            "[::ffff:a9fe:a9fe]",
            "[fd00:ec2::254]",
            "0",
            "0.0.0.0",
            "0x0",
            "[::]",
            "192.168.1",
            "0300.0250.1.1",
            "3232235777",
            "172.16.1",
            "0254.020.0.1",
            "100.64.1",
            "[fe80::1]",
            "[fc00::]",
            "[ff02::1]",
            "255.255.255.255",
            "0xffffffff",
            "4294967295",
            "[::ffff:ffff:ffff]",
            "[2001::1]",
            "0x64.0x40.0.1",
            "[64:ff9b::a00:1]",
            "[2002:a00:1::]",
        ];
        for s in spellings {
            let h = parse_host(s).unwrap_or_else(|e| panic!("{s}: {e}"));
            let Host::Ip(ip) = h else {
                panic!("{s} parsed as a name")
            };
            assert!(
                private_reason(ip).is_some(),
                "{s} -> {ip} should be private"
            );
        }
    }
}
