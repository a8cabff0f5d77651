//! `/v1/blocks`: this bottle's recent refusals, read from the sidecars' JSON audit lines.
//!
//! The audit directory is hostile-adjacent input (the lines hold what the agent sent), so the
//! reader is bounded: only the tail of each file (`TAIL_BYTES`), lines up to `MAX_LINE_BYTES`,
//! malformed or truncated lines skipped, and only a fixed set of fields passed on. Extra
//! fields a sidecar adds (findings, matched patterns) are never echoed, and the `path` is the
//! one the sidecar already redacted.

use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

use serde_json::{Map, Value};

/// Bytes read from the end of each audit file.
pub const TAIL_BYTES: u64 = 512 * 1024;
/// Longest line considered (the audit writer caps its lines at 16 KiB).
const MAX_LINE_BYTES: usize = 16 * 1024;
/// Most refusals one answer lists.
pub const MAX_BLOCKS: usize = 200;
/// Fields copied from an audit line; anything else stays on the operator's side.
const FIELDS: &[&str] = &[
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

/// Up to `limit` refusals (`decision` `deny`) from the audit files directly in `dir`, newest
/// first (by their `ts`, RFC 3339 UTC, which sorts as text).
pub fn recent_blocks(dir: &Path, limit: usize) -> Vec<Value> {
    let limit = limit.min(MAX_BLOCKS);
    let mut out: Vec<Map<String, Value>> = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<_> = entries
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
    for file in files.iter().take(32) {
        for line in tail_lines(file) {
            if let Some(block) = parse_block(&line) {
                out.push(block);
            }
        }
    }
    out.sort_by(|a, b| ts(b).cmp(ts(a)));
    out.truncate(limit);
    out.into_iter().map(Value::Object).collect()
}

fn ts(m: &Map<String, Value>) -> &str {
    m.get("ts").and_then(Value::as_str).unwrap_or("")
}

/// The complete lines in the last `TAIL_BYTES` of `path` (a first line cut by the seek is dropped).
fn tail_lines(path: &Path) -> Vec<String> {
    let Ok(mut f) = std::fs::File::open(path) else {
        return Vec::new();
    };
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    let start = len.saturating_sub(TAIL_BYTES);
    if f.seek(SeekFrom::Start(start)).is_err() {
        return Vec::new();
    }
    let mut buf = Vec::new();
    if f.take(TAIL_BYTES).read_to_end(&mut buf).is_err() {
        return Vec::new();
    }
    let mut lines: Vec<&[u8]> = buf.split(|&b| b == b'\n').collect();
    if start > 0 && !lines.is_empty() {
        lines.remove(0);
    }
    lines
        .into_iter()
        .filter(|l| !l.is_empty() && l.len() <= MAX_LINE_BYTES)
        .filter_map(|l| std::str::from_utf8(l).ok().map(str::to_owned))
        .collect()
}

/// The shown fields of one audit line, if it is a well-formed refusal.
pub fn parse_block(line: &str) -> Option<Map<String, Value>> {
    let Value::Object(obj) = serde_json::from_str::<Value>(line).ok()? else {
        return None;
    };
    if obj.get("decision").and_then(Value::as_str) != Some("deny") {
        return None;
    }
    obj.get("ts").and_then(Value::as_str)?;
    let mut shown = Map::new();
    for f in FIELDS {
        if let Some(v) = obj.get(*f) {
            // Only scalars: a sidecar's nested value is not part of the contract.
            if v.is_string() || v.is_number() || v.is_null() {
                shown.insert((*f).to_owned(), v.clone());
            }
        }
    }
    Some(shown)
}
