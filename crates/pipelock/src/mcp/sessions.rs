//! Tool definitions pinned per MCP server (authority and path, across sessions and query
//! strings): a `tools/list` that redefines a tool already seen from that server (a "rug
//! pull": benign when approved, hostile later) is caught, even when the server hands out a
//! fresh `Mcp-Session-Id` or re-initialises. The keys below are those servers.
//!
//! The first definition seen of each tool name is kept (later changes never replace it, so
//! a refused change stays refused). Bounded: at most [`MAX_SESSIONS`] sessions (least
//! recently used dropped first) of at most [`MAX_TOOLS`] tools each.

use std::collections::HashMap;
use std::sync::Mutex;

use serde_json::Value;
use sha2::{Digest, Sha256};

/// Sessions remembered at once.
pub const MAX_SESSIONS: usize = 4096;
/// Tools remembered per session.
pub const MAX_TOOLS: usize = 1024;

/// A tool name and the SHA-256 of its whole definition (canonical: object keys sorted).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ToolDigest {
    pub name: String,
    pub digest: [u8; 32],
}

impl ToolDigest {
    pub fn of(name: &str, definition: &Value) -> ToolDigest {
        let mut h = Sha256::new();
        canonical(definition, &mut h);
        ToolDigest {
            name: name.to_string(),
            digest: h.finalize().into(),
        }
    }
}

/// Feeds `v` to `h` with object keys sorted and every item length-prefixed, so that two
/// different definitions never feed the same bytes.
fn canonical(v: &Value, h: &mut Sha256) {
    fn text(h: &mut Sha256, tag: u8, s: &str) {
        h.update([tag]);
        h.update((s.len() as u64).to_be_bytes());
        h.update(s.as_bytes());
    }
    match v {
        Value::Null => h.update(b"n"),
        Value::Bool(b) => h.update(if *b { b"t" } else { b"f" }),
        Value::Number(n) => text(h, b'#', &n.to_string()),
        Value::String(s) => text(h, b's', s),
        Value::Array(items) => {
            h.update(b"[");
            h.update((items.len() as u64).to_be_bytes());
            items.iter().for_each(|i| canonical(i, h));
        }
        Value::Object(o) => {
            let mut keys: Vec<&String> = o.keys().collect();
            keys.sort();
            h.update(b"{");
            h.update((keys.len() as u64).to_be_bytes());
            for k in keys {
                text(h, b'k', k);
                if let Some(val) = o.get(k) {
                    canonical(val, h);
                }
            }
        }
    }
}

struct Session {
    last_used: u64,
    tools: HashMap<String, [u8; 32]>,
}

#[derive(Default)]
struct Inner {
    sessions: HashMap<String, Session>,
    clock: u64,
}

/// The pinned tool definitions of every MCP session seen.
#[derive(Default)]
pub struct Sessions {
    inner: Mutex<Inner>,
}

impl Sessions {
    /// Compares `tools` with the definitions pinned for `session`, pins the tools not seen
    /// before, and returns the names whose definition changed.
    pub fn check(&self, session: &str, tools: &[ToolDigest]) -> Vec<String> {
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        inner.clock += 1;
        let now = inner.clock;
        if !inner.sessions.contains_key(session) && inner.sessions.len() >= MAX_SESSIONS {
            // O(sessions), only when a new session arrives at a full table.
            let oldest = inner
                .sessions
                .iter()
                .min_by_key(|(_, s)| s.last_used)
                .map(|(k, _)| k.clone());
            if let Some(k) = oldest {
                inner.sessions.remove(&k);
            }
        }
        let s = inner
            .sessions
            .entry(session.to_string())
            .or_insert_with(|| Session {
                last_used: now,
                tools: HashMap::new(),
            });
        s.last_used = now;
        let mut changed = Vec::new();
        for t in tools {
            match s.tools.get(&t.name) {
                Some(d) if *d != t.digest => changed.push(t.name.clone()),
                Some(_) => {}
                None if s.tools.len() < MAX_TOOLS => {
                    s.tools.insert(t.name.clone(), t.digest);
                }
                None => {}
            }
        }
        changed
    }

    /// Sessions remembered now.
    pub fn len(&self) -> usize {
        self.inner
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .sessions
            .len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn digest_ignores_key_order_and_sees_any_change() {
        let a = json!({"name": "t", "description": "d", "inputSchema": {"a": 1, "b": [1, 2]}});
        let b = json!({"inputSchema": {"b": [1, 2], "a": 1}, "description": "d", "name": "t"});
        assert_eq!(ToolDigest::of("t", &a), ToolDigest::of("t", &b));
        let c = json!({"name": "t", "description": "d ", "inputSchema": {"a": 1, "b": [1, 2]}});
        assert_ne!(ToolDigest::of("t", &a), ToolDigest::of("t", &c));
        // "ab" + "c" vs "a" + "bc" in two fields must differ.
        let d = json!({"x": "ab", "y": "c"});
        let e = json!({"x": "a", "y": "bc"});
        assert_ne!(ToolDigest::of("t", &d), ToolDigest::of("t", &e));
    }

    #[test]
    fn a_changed_tool_is_reported_every_time_and_sessions_are_independent() {
        let s = Sessions::default();
        let v1 = ToolDigest::of("t", &json!({"d": 1}));
        let v2 = ToolDigest::of("t", &json!({"d": 2}));
        assert!(s.check("a", std::slice::from_ref(&v1)).is_empty());
        assert!(s.check("a", std::slice::from_ref(&v1)).is_empty());
        assert_eq!(
            s.check("a", std::slice::from_ref(&v2)),
            vec!["t".to_string()]
        );
        assert_eq!(
            s.check("a", std::slice::from_ref(&v2)),
            vec!["t".to_string()]
        );
        assert!(s.check("b", &[v2]).is_empty());
    }

    #[test]
    fn sessions_are_bounded_least_recently_used_first() {
        let s = Sessions::default();
        let t = ToolDigest::of("t", &json!(1));
        for i in 0..MAX_SESSIONS + 10 {
            s.check(&format!("s{i}"), std::slice::from_ref(&t));
        }
        assert_eq!(s.len(), MAX_SESSIONS);
    }
}
