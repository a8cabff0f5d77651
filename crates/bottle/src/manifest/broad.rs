//! Allowlist entries too broad to accept without `--force`. The rules live in bottle-core
//! ([`bottle_core::allow_entry`]) so the `supervise` sidecar refuses an agent's access request
//! with the very reason `bottle allow` gives; this module only re-exports them.

pub use bottle_core::allow_entry::{route_host_too_broad, too_broad};

#[cfg(test)]
mod tests {
    use super::*;

    /// The launcher's syntax check and breadth refusal are bottle-core's: the same entries are
    /// refused and accepted through the manifest's entry point.
    #[test]
    fn launcher_uses_the_shared_rules() {
        for e in [
            "*.com",
            "10.0.0.0/8",
            "169.254.169.254",
            "localhost",
            "0.0.0.0/0",
        ] {
            assert!(crate::manifest::validate_allow_entry(e).is_ok(), "{e}");
            assert_eq!(too_broad(e), bottle_core::allow_entry::too_broad(e), "{e}");
            assert!(too_broad(e).is_some(), "{e}");
        }
        for e in ["example.com", "*.pypi.org", "1.2.0.0/16"] {
            assert_eq!(too_broad(e), None, "{e}");
        }
        for bad in ["a b", "x.com#y", "x.com\ny.com", "*.*.com"] {
            assert_eq!(
                crate::manifest::validate_allow_entry(bad),
                bottle_core::allow_entry::check_syntax(bad),
                "{bad:?}"
            );
            assert!(
                crate::manifest::validate_allow_entry(bad).is_err(),
                "{bad:?}"
            );
        }
        assert!(route_host_too_broad("*.github.io").is_some());
        assert_eq!(route_host_too_broad("10.20.0.7"), None);
    }
}
