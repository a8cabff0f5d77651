#![no_main]
//! `parse_host` / `split_host_port`: never panic, and the normalised form is a fixed point
//! (parsing its Display, URL-host or authority spelling again gives the same host).
use bottle_core::host::{parse_host, split_host_port, Host};
use libfuzzer_sys::fuzz_target;

fn check_host(h: &Host, input: &str) {
    let shown = h.to_string();
    assert_eq!(
        parse_host(&shown).as_ref(),
        Ok(h),
        "Display form {shown:?} of {input:?} does not parse back"
    );
    let url = h.to_url_host();
    assert_eq!(
        parse_host(&url).as_ref(),
        Ok(h),
        "url host {url:?} of {input:?}"
    );
    for port in [1u16, 443, 65535] {
        let auth = h.to_authority(port);
        assert_eq!(
            split_host_port(&auth, 9),
            Ok((h.clone(), port)),
            "authority {auth:?} of {input:?}"
        );
    }
    match h {
        Host::Name(n) => {
            assert!(!n.is_empty(), "empty name from {input:?}");
            assert!(n.len() <= 253, "name too long from {input:?}");
            assert!(!n.ends_with('.'), "trailing dot kept: {n:?} from {input:?}");
            assert!(
                n.bytes().all(|b| b.is_ascii() && !b.is_ascii_uppercase()),
                "not lowercase ASCII: {n:?} from {input:?}"
            );
            for label in n.split('.') {
                assert!(
                    !label.is_empty() && label.len() <= 63,
                    "bad label in {n:?} from {input:?}"
                );
            }
            assert!(
                !n.contains(':') && !n.contains('@') && !n.contains('/'),
                "{n:?}"
            );
        }
        Host::Ip(std::net::IpAddr::V6(v6)) => {
            assert!(
                v6.to_ipv4_mapped().is_none(),
                "mapped v6 kept from {input:?}"
            );
        }
        Host::Ip(_) => {}
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    let parsed = parse_host(s);
    assert_eq!(s.parse::<Host>(), parsed);
    if let Ok(h) = &parsed {
        check_host(h, s);
        // Case and one trailing dot never change the host.
        if let Host::Name(_) = h {
            if !s.ends_with('.') {
                let dotted = format!("{s}.");
                if let Ok(h2) = parse_host(&dotted) {
                    assert_eq!(&h2, h, "trailing dot changed {s:?}");
                }
            }
        }
    }
    let split = split_host_port(s, 443);
    if let Ok((h, port)) = &split {
        assert_ne!(*port, 0);
        check_host(h, s);
    }
    // Without a colon or bracket, an authority is just a host with the default port.
    if !s.contains(':') && !s.starts_with('[') {
        // (Only the outcome is compared: which error is reported first may differ.)
        assert_eq!(split.ok(), parsed.ok().map(|h| (h, 443)), "{s:?}");
    }
});
