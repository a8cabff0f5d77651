//! The Docker Engine's version against known isolation bugs.
//!
//! CVE-2024-29018: on engines before 26.0.0 (25.0.5 and 23.0.11 in their branches) the
//! embedded DNS resolver of a container on an `internal` network could forward external
//! names to the host's loopback resolvers from the host's namespace: a DNS exfiltration
//! channel. `bottle start` sets the agent's DNS server to `0.0.0.0` (render.rs), so the
//! resolver has no host-side server to forward to: external names are sent into the agent's
//! own namespace and go nowhere (tests/e2e/tests/isolation.rs proves nothing arrives). That is
//! why an affected engine is a warning, not a refusal.

/// The engine versions that fixed CVE-2024-29018.
pub const CVE_2024_29018_FIXED: &str = "26.0.0, 25.0.5, 23.0.11";

/// `major.minor.patch` of a `docker version` server string (`20.10.24+dfsg1`, `25.0.5-ce`).
pub fn parse_version(v: &str) -> Option<(u32, u32, u32)> {
    let core = v.trim().trim_start_matches('v');
    let mut it = core.split('.');
    let num = |s: Option<&str>| -> Option<u32> {
        let s = s?;
        let digits: String = s.chars().take_while(char::is_ascii_digit).collect();
        digits.parse().ok()
    };
    Some((
        num(it.next())?,
        num(it.next())?,
        num(it.next()).unwrap_or(0),
    ))
}

/// True when the engine is in the range affected by CVE-2024-29018.
pub fn affected_by_cve_2024_29018(v: (u32, u32, u32)) -> bool {
    match v {
        (major, _, _) if major >= 26 => false,
        (25, 0, patch) => patch < 5,
        (25, _, _) => false,
        (24, _, _) => true,
        (23, 0, patch) => patch < 11,
        (23, _, _) => false,
        _ => true,
    }
}

/// The warning for an engine version string, if any.
pub fn warning(server_version: &str) -> Option<String> {
    let v = parse_version(server_version)?;
    affected_by_cve_2024_29018(v).then(|| {
        format!(
            "Docker Engine {} is affected by CVE-2024-29018 (DNS from internal networks; fixed in {CVE_2024_29018_FIXED}): \
             the agent's DNS is pinned to its own namespace, which closes that path here; upgrade the engine when you can",
            server_version.trim()
        )
    })
}

/// Print the warning for the running engine (nothing when the version cannot be read).
pub fn warn_if_affected() {
    if let Ok(v) = crate::docker::docker(&["version", "--format", "{{.Server.Version}}"]) {
        if let Some(w) = warning(&v) {
            crate::ui::warn(&w);
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn affected_range() {
        for (v, bad) in [
            ("20.10.24+dfsg1", true),
            ("19.03.15", true),
            ("23.0.10", true),
            ("23.0.11", false),
            ("23.1.0", false),
            ("24.0.9", true),
            ("25.0.4", true),
            ("25.0.5", false),
            ("26.0.0", false),
            ("27.3.1", false),
        ] {
            let p = parse_version(v).unwrap();
            assert_eq!(affected_by_cve_2024_29018(p), bad, "{v}");
            assert_eq!(warning(v).is_some(), bad, "{v}");
        }
        assert_eq!(parse_version("20.10.24+dfsg1"), Some((20, 10, 24)));
        assert_eq!(parse_version("garbage"), None);
        assert!(warning("nonsense").is_none());
        let w = warning("20.10.24+dfsg1").unwrap();
        assert!(w.contains("20.10.24+dfsg1") && w.contains("26.0.0, 25.0.5, 23.0.11"));
    }
}
