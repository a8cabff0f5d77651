//! Reading the sidecars' audit lines back (supervise's `/v1/blocks`, `bottle log`, `bottle watch`).
//!
//! The audit directory is hostile-adjacent input (the lines hold what the agent sent), so the
//! reader is bounded: lines up to `MAX_READ_LINE_BYTES`, malformed or truncated lines skipped,
//! unknown fields tolerated, and only a fixed set of scalar fields passed on. Extra fields a
//! sidecar adds (findings, matched patterns) are never echoed, and the `path` is the one the
//! sidecar already redacted. Callers that print must still make the strings inert.

use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use crate::audit::MAX_LINE_BYTES;

/// Longest line considered: the writer caps lines at `MAX_LINE_BYTES` plus a small marker.
pub const MAX_READ_LINE_BYTES: usize = MAX_LINE_BYTES + 1024;
/// Bytes read from the end of each audit file by `tail_lines` callers that want recent lines.
pub const TAIL_BYTES: u64 = 512 * 1024;
/// Most live audit files looked at in one directory (there is one per sidecar).
pub const MAX_FILES: usize = 32;
/// Most rotated files followed back from a live file (`--audit-keep` is 4 by default).
pub const MAX_ROTATED: usize = 64;
/// The `decision` string of a refusal (`AuditDecision::Deny` as written).
pub const REFUSAL_DECISION: &str = "deny";
/// Fields passed on from an audit line; anything else stays on the operator's side.
pub const SHOWN_FIELDS: &[&str] = &[
    "ts",
    "component",
    "event",
    "decision",
    "reason",
    "method",
    "scheme",
    "host",
    "port",
    "path",
    "status",
];

/// The shown fields of one audit line: a JSON object with a string `ts`, scalars only.
pub fn parse_shown(line: &str) -> Option<Map<String, Value>> {
    if line.len() > MAX_READ_LINE_BYTES {
        return None;
    }
    let Value::Object(obj) = serde_json::from_str::<Value>(line).ok()? else {
        return None;
    };
    obj.get("ts").and_then(Value::as_str)?;
    let mut shown = Map::new();
    for f in SHOWN_FIELDS {
        if let Some(v) = obj.get(*f) {
            // Only scalars: a sidecar's nested value is not part of the contract.
            if v.is_string() || v.is_number() || v.is_null() {
                shown.insert((*f).to_owned(), v.clone());
            }
        }
    }
    Some(shown)
}

/// Whether a parsed line records a refusal (`decision` `deny`).
pub fn is_refusal(shown: &Map<String, Value>) -> bool {
    shown.get("decision").and_then(Value::as_str) == Some(REFUSAL_DECISION)
}

/// The `ts` of a parsed line (RFC 3339 UTC, which sorts as text), or "".
pub fn ts_of(shown: &Map<String, Value>) -> &str {
    shown.get("ts").and_then(Value::as_str).unwrap_or("")
}

/// The live audit files directly in `dir` (`*.log`, `*.jsonl`; rotated `.N` files excluded),
/// sorted by name, at most `MAX_FILES`.
pub fn live_files(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok())
        .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.ends_with(".log") || n.ends_with(".jsonl"))
        })
        .collect();
    files.sort();
    files.truncate(MAX_FILES);
    files
}

/// `live` and its rotated files (`live.N` ... `live.1`, see `audit::Rotation`), oldest first;
/// only files that exist. A gap in the numbering ends the chain.
pub fn rotation_chain(live: &Path) -> Vec<PathBuf> {
    let mut older = Vec::new();
    for n in 1..=MAX_ROTATED {
        let mut name = live.as_os_str().to_owned();
        name.push(format!(".{n}"));
        let p = PathBuf::from(name);
        if !p.is_file() {
            break;
        }
        older.push(p);
    }
    older.reverse();
    if live.is_file() {
        older.push(live.to_path_buf());
    }
    older
}

/// The complete lines in the last `max_bytes` of `path` (a first line cut by the seek is
/// dropped), each at most `MAX_READ_LINE_BYTES` and valid UTF-8.
pub fn tail_lines(path: &Path, max_bytes: u64) -> Vec<String> {
    let Ok(mut f) = std::fs::File::open(path) else {
        return Vec::new();
    };
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    let start = len.saturating_sub(max_bytes);
    if f.seek(SeekFrom::Start(start)).is_err() {
        return Vec::new();
    }
    let mut buf = Vec::new();
    if f.take(max_bytes).read_to_end(&mut buf).is_err() {
        return Vec::new();
    }
    let mut lines: Vec<&[u8]> = buf.split(|&b| b == b'\n').collect();
    if start > 0 && !lines.is_empty() {
        lines.remove(0);
    }
    lines
        .into_iter()
        .filter(|l| !l.is_empty() && l.len() <= MAX_READ_LINE_BYTES)
        .filter_map(|l| std::str::from_utf8(l).ok().map(str::to_owned))
        .collect()
}

/// Up to `limit` refusals from the last `TAIL_BYTES` of each live audit file in `dir`, newest
/// first.
pub fn recent_refusals(dir: &Path, limit: usize) -> Vec<Map<String, Value>> {
    recent_refusals_in_tail(dir, limit, TAIL_BYTES)
}

/// `recent_refusals` reading only the last `tail_bytes` of each file (a cheaper poll).
pub fn recent_refusals_in_tail(
    dir: &Path,
    limit: usize,
    tail_bytes: u64,
) -> Vec<Map<String, Value>> {
    let mut out: Vec<Map<String, Value>> = live_files(dir)
        .iter()
        .flat_map(|f| tail_lines(f, tail_bytes))
        .filter_map(|l| parse_shown(&l))
        .filter(is_refusal)
        .collect();
    out.sort_by(|a, b| ts_of(b).cmp(ts_of(a)));
    out.truncate(limit);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shown_fields_only_scalars_and_a_ts_is_required() {
        let m = parse_shown(
            r#"{"ts":"t","decision":"deny","host":"h","port":443,"finding":"SECRET","path":{"x":1},"new_field":2}"#,
        )
        .unwrap();
        assert_eq!(m["host"], "h");
        assert_eq!(m["port"], 443);
        assert!(m.get("finding").is_none() && m.get("path").is_none());
        assert!(m.get("new_field").is_none());
        assert!(is_refusal(&m));
        assert!(parse_shown(r#"{"decision":"deny"}"#).is_none(), "no ts");
        assert!(parse_shown(r#"["ts","deny"]"#).is_none());
        assert!(parse_shown(r#"{"ts":"t","decision":"deny","host":"tr"#).is_none());
        let allow = parse_shown(r#"{"ts":"t","decision":"allow"}"#).unwrap();
        assert!(!is_refusal(&allow));
        let long = format!(r#"{{"ts":"t","x":"{}"}}"#, "a".repeat(MAX_READ_LINE_BYTES));
        assert!(parse_shown(&long).is_none(), "over-long line skipped");
    }

    #[test]
    fn rotation_chain_is_oldest_first_and_stops_at_a_gap() {
        let dir = tempfile::tempdir().unwrap();
        let live = dir.path().join("egress.jsonl");
        for n in [
            "egress.jsonl",
            "egress.jsonl.1",
            "egress.jsonl.2",
            "egress.jsonl.4",
        ] {
            std::fs::write(dir.path().join(n), "").unwrap();
        }
        let names: Vec<String> = rotation_chain(&live)
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["egress.jsonl.2", "egress.jsonl.1", "egress.jsonl"]);
        let lives: Vec<PathBuf> = live_files(dir.path());
        assert_eq!(lives, [live]);
    }

    #[test]
    fn recent_refusals_newest_first_across_files_from_the_tail() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("pipelock.jsonl"),
            "{\"ts\":\"2026-01-01T00:00:01Z\",\"decision\":\"deny\",\"host\":\"a\"}\nnot json\n\
             {\"ts\":\"2026-01-01T00:00:04Z\",\"decision\":\"allow\",\"host\":\"b\"}\n",
        )
        .unwrap();
        std::fs::write(
            dir.path().join("egress.jsonl"),
            "{\"ts\":\"2026-01-01T00:00:03Z\",\"decision\":\"deny\",\"host\":\"c\"}\n",
        )
        .unwrap();
        let hosts: Vec<String> = recent_refusals(dir.path(), 10)
            .iter()
            .map(|m| m["host"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(hosts, ["c", "a"]);
        assert_eq!(recent_refusals_in_tail(dir.path(), 1, 100).len(), 1);
        assert!(recent_refusals(&dir.path().join("missing"), 10).is_empty());
    }

    #[test]
    fn tail_drops_the_line_cut_by_the_seek() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.jsonl");
        std::fs::write(&p, "first-line-long\nsecond\nthird\n").unwrap();
        assert_eq!(tail_lines(&p, 13), ["third"]);
        assert_eq!(tail_lines(&p, 1000), ["first-line-long", "second", "third"]);
    }
}
