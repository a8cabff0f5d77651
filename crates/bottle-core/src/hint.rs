//! The `run: bottle allow ...` hint a refusal carries. It is a suggestion the agent relays to
//! the operator, so it must never talk the operator into opening something dangerous: no hint
//! for private, loopback, link-local or metadata addresses, `localhost`, or metadata names.

use crate::host::Host;

/// Cloud instance-metadata host names (exact, lowercase): the host's own credentials live there.
pub const METADATA_NAMES: &[&str] = &[
    "metadata",
    "metadata.google.internal",
    "metadata.goog",
    "metadata.azure.com",
    "metadata.tencentyun.com",
    "instance-data",
    "instance-data.ec2.internal",
    "metadata.platformequinix.com",
];

/// Whether a refusal may suggest allowing `host` at all.
pub fn may_suggest(host: &Host) -> bool {
    match host {
        Host::Ip(ip) => crate::ssrf::private_reason(*ip).is_none(),
        Host::Name(n) => {
            n != "localhost" && !n.ends_with(".localhost") && !METADATA_NAMES.contains(&n.as_str())
        }
    }
}

/// `run: bottle allow HOST[:PORT]` for `host:port`, or `None` when allowing it is never advice.
pub fn allow_hint(host: &Host, port: u16) -> Option<String> {
    if !may_suggest(host) {
        return None;
    }
    Some(if port == 80 || port == 443 {
        format!("run: bottle allow {host}")
    } else {
        format!("run: bottle allow {}", host.to_authority(port))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(s: &str) -> Host {
        crate::host::parse_host(s).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn public_hosts_get_a_hint_with_their_port() {
        assert_eq!(
            allow_hint(&h("example.com"), 443).as_deref(),
            Some("run: bottle allow example.com")
        );
        assert_eq!(
            allow_hint(&h("example.com"), 8443).as_deref(),
            Some("run: bottle allow example.com:8443")
        );
        // A literal that is only parsed, never contacted.
        assert!(allow_hint(&h("8.8.8.8"), 443).is_some());
    }

    #[test]
    fn private_loopback_metadata_and_localhost_never_get_one() {
        for s in [
            "10.1.2.3",
            "127.0.0.1",
            "169.254.169.254",
            "192.168.0.1",
            "100.64.0.1",
            "::1",
            "fd00::1",
            "fe80::1",
            "localhost",
            "db.localhost",
            "metadata.google.internal",
            "instance-data",
        ] {
            assert_eq!(allow_hint(&h(s), 80), None, "{s}");
        }
    }
}
