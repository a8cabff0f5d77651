//! The escape suite: named hostile attempts run from inside a real bottle's agent, each with
//! its expected refusal and a host-side proof that nothing arrived. See tests/escape/README.md.
#![forbid(unsafe_code)]
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a test failure

use std::net::Ipv4Addr;

pub mod attempts;
pub mod world;

pub use world::World;

/// What one attempt observed.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// The attempt was refused as expected and the proof holds.
    pub pass: bool,
    /// What happened, short.
    pub seen: String,
}

/// An outcome.
pub fn outcome(pass: bool, seen: impl AsRef<str>) -> Outcome {
    Outcome {
        pass,
        seen: short(seen.as_ref()),
    }
}

/// One named attempt: run from the agent (or the host, for launcher attempts) and judged.
pub struct Attempt {
    /// Group: network, dns, sidecar, docker, metadata, ipv6, smuggling, reflection, git,
    /// workspace, manifest, exhaustion, cross-bottle.
    pub category: &'static str,
    /// Unique name within the category.
    pub name: String,
    /// The expected refusal and the proof, one line.
    pub expect: String,
    /// Runs the attempt and checks the proof.
    pub run: Box<dyn Fn(&World) -> Outcome + Send + Sync>,
    /// A second proof checked after both bottles are stopped (what the operator's host sees
    /// after teardown); the attempt passes only if both pass.
    pub after_teardown: Option<Check>,
}

/// A host-side proof run after teardown.
pub type Check = Box<dyn Fn(&World) -> Outcome + Send + Sync>;

/// Build an attempt.
pub fn attempt(
    category: &'static str,
    name: impl Into<String>,
    expect: impl Into<String>,
    run: impl Fn(&World) -> Outcome + Send + Sync + 'static,
) -> Attempt {
    Attempt {
        category,
        name: name.into(),
        expect: expect.into(),
        run: Box::new(run),
        after_teardown: None,
    }
}

/// Whitespace collapsed, cut to 400 characters (one report line per attempt).
pub fn short(s: &str) -> String {
    let one: String = s.split_whitespace().collect::<Vec<_>>().join(" ");
    if one.chars().count() > 400 {
        let cut: String = one.chars().take(400).collect();
        format!("{cut}…")
    } else {
        one
    }
}

/// The report line of one attempt.
pub fn report_line(a: &Attempt, o: &Outcome) -> String {
    format!(
        "{} {}/{}: {} [{}]",
        if o.pass { "PASS" } else { "FAIL" },
        a.category,
        a.name,
        a.expect,
        o.seen
    )
}

/// The last line of the run.
pub fn summary_line(passed: usize, failed: usize) -> String {
    format!("escape: {passed} passed, {failed} failed")
}

/// A value that must never show up where it should not (origin log, host listener).
pub fn canary(tag: &str) -> String {
    format!("esc{tag}{:012x}", rand::random::<u64>() & 0xffff_ffff_ffff)
}

/// Spellings of an IPv4 address that URL parsers and resolvers disagree on.
pub fn ipv4_spellings(ip: Ipv4Addr) -> Vec<(&'static str, String)> {
    let o = ip.octets();
    let n = u32::from(ip);
    vec![
        ("decimal", n.to_string()),
        ("hex", format!("0x{n:08x}")),
        (
            "octal-dotted",
            format!("0{:o}.0{:o}.0{:o}.0{:o}", o[0], o[1], o[2], o[3]),
        ),
        (
            "hex-dotted",
            format!("0x{:x}.0x{:x}.0x{:x}.0x{:x}", o[0], o[1], o[2], o[3]),
        ),
        (
            "three-part",
            format!(
                "{}.{}.{}",
                o[0],
                o[1],
                u32::from(o[2]) * 256 + u32::from(o[3])
            ),
        ),
        ("two-part", format!("{}.{}", o[0], n & 0x00ff_ffff)),
        ("v4-mapped-v6", format!("[::ffff:{ip}]")),
        (
            "v4-mapped-v6-hex",
            format!(
                "[::ffff:{:x}:{:x}]",
                u16::from(o[0]) << 8 | u16::from(o[1]),
                u16::from(o[2]) << 8 | u16::from(o[3])
            ),
        ),
        ("v4-compat-v6", format!("[::{ip}]")),
        ("trailing-dot", format!("{ip}.")),
    ]
}

/// Spellings of a credential the agent must never see: those of the e2e harness plus the
/// percent forms `/reflect` sends.
pub fn all_secret_spellings(secret: &str) -> Vec<String> {
    let mut v = bottle_e2e::secret_spellings(secret);
    v.push(secret.bytes().map(|b| format!("%{b:02X}")).collect());
    v.push(secret.bytes().map(|b| format!("%{b:02x}")).collect());
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spellings_decode_to_the_address() {
        let ip: Ipv4Addr = "172.18.3.4".parse().unwrap();
        let s: std::collections::HashMap<_, _> = ipv4_spellings(ip).into_iter().collect();
        assert_eq!(s["decimal"], "2886861572");
        assert_eq!(s["hex"], "0xac120304");
        assert_eq!(s["octal-dotted"], "0254.022.03.04");
        assert_eq!(s["hex-dotted"], "0xac.0x12.0x3.0x4");
        assert_eq!(s["three-part"], "172.18.772");
        assert_eq!(s["two-part"], "172.1180420");
        assert_eq!(s["v4-mapped-v6-hex"], "[::ffff:ac12:304]");
        let v6: std::net::Ipv6Addr = s["v4-mapped-v6-hex"]
            .trim_matches(|c| c == '[' || c == ']')
            .parse()
            .unwrap();
        assert_eq!(v6.to_ipv4_mapped(), Some(ip));
    }

    #[test]
    fn report_lines_have_the_promised_shape() {
        let a = attempt("network", "x", "refused", |_| outcome(true, ""));
        let l = report_line(&a, &outcome(false, "got\n 200\tOK"));
        assert_eq!(l, "FAIL network/x: refused [got 200 OK]");
        assert_eq!(summary_line(61, 2), "escape: 61 passed, 2 failed");
        assert!(short(&"a".repeat(500)).ends_with('…'));
    }

    #[test]
    fn secret_spellings_include_percent_forms() {
        let v = all_secret_spellings("ab-");
        assert!(v.contains(&"%61%62%2D".to_string()));
        assert!(v.contains(&"ab-".to_string()));
    }
}
