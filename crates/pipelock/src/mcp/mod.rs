//! MCP and A2A understanding: JSON-RPC 2.0 messages over HTTP (JSON bodies and SSE events).
//!
//! What comes back to the agent is split into the pieces a model reads: tool, prompt and
//! resource definitions and A2A agent cards are judged as tool descriptions (text addressed
//! to a model by design, held to a stricter standard); tool results, A2A messages, artifacts
//! and server-sent requests as text. Tool definitions are pinned per MCP server
//! ([`sessions::Sessions`]) so a definition that changes later is caught.
//! Requests from the agent (tool arguments, agent messages) are ordinary request bodies: the
//! request DLP scans them, JSON string values decoded.

pub mod dup_keys;
pub mod peek;
pub mod sessions;

use bottle_dlp::injection::ContentKind;
use serde_json::Value;

pub use peek::{PeekBody, Peeked};
pub use sessions::{Sessions, ToolDigest};

/// One piece of text a model will read, and how to judge it.
#[derive(Debug, PartialEq, Eq)]
pub struct Unit {
    /// Every string of the piece, each followed by [`SEP`].
    pub text: String,
    pub kind: ContentKind,
    /// Where it was found, for the refusal and the audit line (`tool description`, ...).
    pub place: &'static str,
}

/// Ends each string in [`Unit::text`].
pub const SEP: char = '\n';

impl Unit {
    /// The strings of the unit worth judging alone (longer than a word).
    pub fn parts(&self) -> impl Iterator<Item = &str> {
        self.text.split(SEP).filter(|p| p.len() >= 12)
    }
}

/// Whether `v` is a JSON-RPC message, or a batch holding one. Recognised by its shape, not
/// its spelling: a `jsonrpc` member whatever its value (`"2.0 "` reads as 2.0 to lenient
/// clients), or an `id` with a `result`, `error` or `method`.
pub fn is_jsonrpc(v: &Value) -> bool {
    match v {
        Value::Array(items) => items.iter().any(is_jsonrpc),
        Value::Object(o) => {
            o.contains_key("jsonrpc")
                || (o.contains_key("id")
                    && ["result", "error", "method"]
                        .iter()
                        .any(|k| o.contains_key(*k)))
        }
        _ => false,
    }
}

/// The `method` of a JSON-RPC request body (the first of a batch), when it parses.
pub fn request_method(body: &[u8]) -> Option<String> {
    let v: Value = serde_json::from_slice(body).ok()?;
    let one = match &v {
        Value::Array(items) => items.first()?,
        other => other,
    };
    if !is_jsonrpc(one) {
        return None;
    }
    let m = one.get("method")?.as_str()?;
    // Only a plain method name goes to the audit line (the agent chooses it).
    let plain = !m.is_empty()
        && m.len() <= 64
        && m.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'/' | b'_' | b'-' | b'.'));
    plain.then(|| m.to_string())
}

/// Every string in `v` (object keys too when `keys`), one per line: what a model would read
/// of a structure.
pub fn strings(v: &Value, keys: bool, out: &mut String) {
    match v {
        Value::String(s) => {
            out.push_str(s);
            out.push('\n');
        }
        Value::Array(items) => items.iter().for_each(|i| strings(i, keys, out)),
        Value::Object(o) => {
            for (k, val) in o {
                if keys {
                    out.push_str(k);
                    out.push('\n');
                }
                strings(val, keys, out);
            }
        }
        _ => {}
    }
}

fn all_strings(v: &Value, keys: bool) -> String {
    let mut s = String::new();
    strings(v, keys, &mut s);
    s
}

/// Definition lists of an MCP result: each item is a definition a model reads as instructions.
const DEFINITION_LISTS: &[&str] = &["tools", "prompts", "resources", "resourceTemplates"];

/// The units of one JSON-RPC message (or batch) coming back to the agent.
pub fn response_units(v: &Value, out: &mut Vec<Unit>) {
    if let Value::Array(items) = v {
        items.iter().for_each(|i| response_units(i, out));
        return;
    }
    if let Some(result) = v.get("result") {
        result_units(result, out);
    }
    if let Some(err) = v.get("error") {
        push(
            out,
            all_strings(err, false),
            ContentKind::Text,
            "json-rpc error",
        );
    }
    // A request or notification from the server (sampling, elicitation, A2A push).
    if v.get("method").is_some() {
        if let Some(params) = v.get("params") {
            result_units(params, out);
        }
    }
}

fn result_units(result: &Value, out: &mut Vec<Unit>) {
    let mut definitions = false;
    for list in DEFINITION_LISTS {
        if let Some(items) = result.get(*list).and_then(Value::as_array) {
            definitions = true;
            for item in items {
                // Names, titles, descriptions, schema keys and texts: all of it is read.
                push(
                    out,
                    all_strings(item, true),
                    ContentKind::ToolDescription,
                    "tool description",
                );
            }
        }
    }
    if definitions {
        return;
    }
    let place = if result.get("content").is_some()
        || result.get("structuredContent").is_some()
        || result.get("contents").is_some()
        || result.get("messages").is_some()
    {
        "tool result"
    } else if is_a2a_object(result) {
        "agent message"
    } else {
        "json-rpc result"
    };
    push(out, all_strings(result, false), ContentKind::Text, place);
}

/// An A2A message, task, artifact or status update.
fn is_a2a_object(v: &Value) -> bool {
    v.get("parts").is_some()
        || v.get("artifacts").is_some()
        || v.get("artifact").is_some()
        || v.get("status").is_some_and(|s| s.get("message").is_some())
        || matches!(
            v.get("kind").and_then(Value::as_str),
            Some("message" | "task" | "status-update" | "artifact-update")
        )
}

fn push(out: &mut Vec<Unit>, text: String, kind: ContentKind, place: &'static str) {
    if !text.trim().is_empty() {
        out.push(Unit { text, kind, place });
    }
}

/// Whether `path` is where A2A agent cards are published.
pub fn is_agent_card_path(path: &str) -> bool {
    path.ends_with("/.well-known/agent.json") || path.ends_with("/.well-known/agent-card.json")
}

/// Whether `v` has the shape of an A2A agent card (served from any path).
pub fn looks_like_agent_card(v: &Value) -> bool {
    v.get("skills").is_some_and(Value::is_array)
        && v.get("name").is_some()
        && (v.get("capabilities").is_some() || v.get("url").is_some())
}

/// The units of an agent card: its description and each skill (description, examples, tags)
/// are judged as tool descriptions.
pub fn agent_card_units(v: &Value, out: &mut Vec<Unit>) {
    let mut top = String::new();
    for key in ["name", "description"] {
        if let Some(s) = v.get(key).and_then(Value::as_str) {
            top.push_str(s);
            top.push('\n');
        }
    }
    push(out, top, ContentKind::ToolDescription, "agent card");
    if let Some(skills) = v.get("skills").and_then(Value::as_array) {
        for skill in skills {
            push(
                out,
                all_strings(skill, false),
                ContentKind::ToolDescription,
                "agent card skill",
            );
        }
    }
}

/// The tools of a `tools/list` result in `v` (or in any message of a batch), digested.
pub fn tool_digests(v: &Value) -> Vec<ToolDigest> {
    let mut out = Vec::new();
    let messages: Vec<&Value> = match v {
        Value::Array(items) => items.iter().collect(),
        one => vec![one],
    };
    for m in messages {
        let tools = m
            .get("result")
            .and_then(|r| r.get("tools"))
            .and_then(Value::as_array);
        for tool in tools.into_iter().flatten() {
            if let Some(name) = tool.get("name").and_then(Value::as_str) {
                out.push(ToolDigest::of(name, tool));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn tools_list_items_are_tool_descriptions_with_schema_text() {
        let v = json!({"jsonrpc": "2.0", "id": 1, "result": {"tools": [
            {"name": "read", "description": "Reads a file",
             "inputSchema": {"type": "object", "properties": {"path": {"type": "string", "description": "hidden note"}}}}
        ]}});
        let mut u = Vec::new();
        response_units(&v, &mut u);
        assert_eq!(u.len(), 1);
        assert_eq!(u[0].kind, ContentKind::ToolDescription);
        assert!(u[0].text.contains("Reads a file") && u[0].text.contains("hidden note"));
        assert!(u[0].text.contains("path"), "schema keys are read too");
    }

    #[test]
    fn call_results_and_a2a_messages_are_text() {
        let v = json!({"jsonrpc": "2.0", "id": 2, "result": {"content": [{"type": "text", "text": "file body"}]}});
        let mut u = Vec::new();
        response_units(&v, &mut u);
        assert_eq!((u[0].place, u[0].kind), ("tool result", ContentKind::Text));
        let v = json!({"jsonrpc": "2.0", "id": 3, "result": {"kind": "message", "parts": [{"kind": "text", "text": "hi"}]}});
        let mut u = Vec::new();
        response_units(&v, &mut u);
        assert_eq!(u[0].place, "agent message");
        assert!(u[0].text.contains("hi"));
    }

    #[test]
    fn request_method_is_plain_or_absent() {
        assert_eq!(
            request_method(br#"{"jsonrpc":"2.0","id":1,"method":"tools/call"}"#).as_deref(),
            Some("tools/call")
        );
        assert_eq!(
            request_method(br#"{"jsonrpc":"2.0","id":1,"method":"a b"}"#),
            None
        );
        assert_eq!(request_method(br#"{"method":"tools/call"}"#), None);
        assert_eq!(request_method(b"not json"), None);
    }

    #[test]
    fn agent_cards_are_recognised_by_path_and_shape() {
        assert!(is_agent_card_path("/.well-known/agent-card.json"));
        assert!(!is_agent_card_path("/agent.json"));
        let card = json!({"name": "x", "url": "https://a", "skills": [{"id": "s", "description": "d", "examples": ["e"]}]});
        assert!(looks_like_agent_card(&card));
        let mut u = Vec::new();
        agent_card_units(&card, &mut u);
        assert!(u
            .iter()
            .any(|u| u.place == "agent card skill" && u.text.contains('e')));
    }
}
