#![no_main]
//! `Allowlist::parse` + `allows()`: never panics; the file is the union of its lines;
//! every host pattern's Display parses back to itself; an entry allows what it names.
use std::net::IpAddr;
use std::path::Path;

use bottle_core::allowlist::{Allowlist, HostPattern, PortSpec};
use bottle_core::host::{parse_host, Host};
use libfuzzer_sys::fuzz_target;

const HOSTS: &[&str] = &[
    "example.com",
    "www.example.com",
    "a.b.example.com",
    "api.github.com",
    "github.com",
    "localhost",
    "xn--bcher-kva.example",
    "10.20.1.2",
    "10.0.0.1",
    "127.0.0.1",
    "203.0.113.7",
    "169.254.169.254",
    "::1",
    "2001:db8::7",
    "::ffff:10.20.1.2",
    "fd00::1",
];
const PORTS: &[u16] = &[1, 22, 80, 443, 8080, 8443, 65535];

fn port_in(spec: PortSpec) -> u16 {
    match spec {
        PortSpec::Default => 443,
        PortSpec::Port(p) => p,
        PortSpec::Any => 12345,
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let file = Path::new("fuzz/allowlist");
    let Ok(list) = Allowlist::parse(text, file) else {
        return;
    };
    assert_eq!(Allowlist::parse(text, file).ok().as_ref(), Some(&list));

    // Each line on its own must parse too, and the file allows exactly the union.
    let mut singles = Vec::new();
    for line in text.lines() {
        let single = Allowlist::parse(line, file).expect("a line of a valid file is valid");
        if !single.is_empty() {
            singles.push(single);
        }
    }
    assert_eq!(
        singles.iter().map(Allowlist::len).sum::<usize>(),
        list.len()
    );
    let mut hosts: Vec<Host> = HOSTS.iter().map(|h| parse_host(h).unwrap()).collect();
    for p in list.patterns() {
        if let Some(h) = p.exact_host() {
            hosts.push(h.clone());
        }
    }
    for h in &hosts {
        for &port in PORTS {
            let all = list.allows(h, port);
            let any = singles.iter().any(|s| s.allows(h, port));
            assert_eq!(all, any, "union broken for {h}:{port}");
            if let Some(ip) = h.ip() {
                if all {
                    assert!(list.covers_addr(ip), "{ip} allowed but not covered");
                }
                // A mapped IPv6 spelling is the same address.
                if let IpAddr::V4(v4) = ip {
                    let mapped = Host::Ip(IpAddr::V6(v4.to_ipv6_mapped()));
                    assert_eq!(list.allows(&mapped, port), all);
                }
            }
        }
    }

    for p in list.patterns() {
        let shown = p.to_string();
        let back = HostPattern::parse(&shown)
            .unwrap_or_else(|e| panic!("pattern {shown:?} does not parse back: {e}"));
        assert_eq!(&back, p, "pattern {shown:?} changed on reparse");
        let port = port_in(p.port());
        assert!(p.port().matches(port));
        if let Some(h) = p.exact_host() {
            assert!(p.matches(h, port));
            assert!(list.allows(h, port), "{shown} does not allow its own host");
        } else if p.is_wildcard() {
            let suffix = shown.split(':').next().unwrap().strip_prefix("*.").unwrap();
            if let Ok(sub) = parse_host(&format!("x.{suffix}")) {
                assert!(list.allows(&sub, port), "{shown} does not allow x.{suffix}");
            }
            if let Ok(apex) = parse_host(suffix) {
                assert!(!p.matches(&apex, port), "{shown} matches its apex");
            }
        }
    }
});
