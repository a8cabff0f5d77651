//! Where in the allowlist file a host appears, for the operator's eyes: the line number and
//! text of the entry in force, or of entries that have expired. This locates lines; it
//! decides nothing (the verdict is the sidecars').

use std::path::Path;

use bottle_core::allowlist::{format_utc, now_unix, split_line};
use bottle_core::{Host, HostPattern};

use crate::error::{Error, Result};

/// One host-pattern line of the allowlist file.
pub struct Line {
    pub number: usize,
    pub text: String,
    pub pattern: HostPattern,
    pub until: Option<u64>,
}

/// The allowlist's host-pattern lines (a missing file has none; lines the sidecars would
/// refuse to load never get this far, `LiveConfig::load` having read the same file).
pub fn read_allowlist(dir: &Path) -> Result<Vec<Line>> {
    let path = dir.join("allowlist");
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(Error::io(format!("reading {}", path.display()), e)),
    };
    let mut out = Vec::new();
    for (idx, raw) in text.lines().enumerate() {
        let line = raw.split('#').next().unwrap_or("").trim();
        if line.is_empty() || line.contains('/') {
            continue;
        }
        let Ok((entry, until)) = split_line(line) else {
            continue;
        };
        if let Ok(pattern) = HostPattern::parse(entry) {
            out.push(Line {
                number: idx + 1,
                text: line.to_string(),
                pattern,
                until,
            });
        }
    }
    Ok(out)
}

/// `allowlist line 3 `docs.rs until=...``: the first line in force that covers the host.
pub fn in_force_match(lines: &[Line], host: &Host, port: u16) -> Option<String> {
    let now = now_unix();
    lines
        .iter()
        .find(|l| l.until.is_none_or(|u| now < u) && l.pattern.matches(host, port))
        .map(|l| format!("allowlist line {} `{}`", l.number, l.text))
}

/// Lines that would cover the host but whose `until=` has passed.
pub fn expired_matches(lines: &[Line], host: &Host, port: u16) -> Vec<String> {
    let now = now_unix();
    lines
        .iter()
        .filter_map(|l| {
            let until = l.until.filter(|u| now >= *u)?;
            l.pattern.matches(host, port).then(|| {
                format!(
                    "allowlist line {} `{}` expired at {} (an expired grant is ignored)",
                    l.number,
                    l.text,
                    format_utc(until)
                )
            })
        })
        .collect()
}
