//! `/v1/blocks`: this bottle's recent refusals, read from the sidecars' JSON audit lines.
//!
//! The bounded reader lives in `bottle_core::audit_read` (shared with `bottle log` and
//! `bottle watch`): only the tail of each file, lines up to a cap, malformed lines skipped,
//! and only a fixed set of scalar fields passed on. Extra fields a sidecar adds (findings,
//! matched patterns) are never echoed, and the `path` is the one the sidecar already redacted.

use std::path::Path;

use bottle_core::audit_read;
use serde_json::{Map, Value};

/// Bytes read from the end of each audit file.
pub const TAIL_BYTES: u64 = audit_read::TAIL_BYTES;
/// Most refusals one answer lists.
pub const MAX_BLOCKS: usize = 200;

/// Up to `limit` refusals (`decision` `deny`) from the audit files directly in `dir`, newest
/// first (by their `ts`, RFC 3339 UTC, which sorts as text).
pub fn recent_blocks(dir: &Path, limit: usize) -> Vec<Value> {
    audit_read::recent_refusals(dir, limit.min(MAX_BLOCKS))
        .into_iter()
        .map(Value::Object)
        .collect()
}

/// The shown fields of one audit line, if it is a well-formed refusal.
pub fn parse_block(line: &str) -> Option<Map<String, Value>> {
    audit_read::parse_shown(line).filter(audit_read::is_refusal)
}
