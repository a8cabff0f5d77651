//! False positives of the prompt-injection detector: ordinary pages, API responses, MCP tool
//! lists, READMEs, LLM streams and security documentation *about* prompt injection
//! (tests/corpus/pages/) must produce no finding, whole or streamed at any chunk size, and a
//! stream must hand back every byte unchanged.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use bottle_dlp::injection::{scan_injection, ContentKind, InjectionStream};
use std::path::PathBuf;

fn pages() -> Vec<(String, Vec<u8>, ContentKind)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/corpus/pages");
    let mut out = Vec::new();
    let mut entries: Vec<_> = std::fs::read_dir(&dir)
        .expect("pages dir")
        .flatten()
        .collect();
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let name = e.file_name().to_string_lossy().into_owned();
        let kind = match name.rsplit('.').next() {
            Some("html") => ContentKind::Html,
            Some("md") => ContentKind::Markdown,
            Some("json") => ContentKind::Json,
            _ => ContentKind::Text,
        };
        out.push((name, std::fs::read(e.path()).expect("read page"), kind));
    }
    assert!(out.len() >= 14, "corpus incomplete: {}", out.len());
    out
}

#[test]
fn ordinary_pages_and_documentation_produce_no_finding() {
    let mut bytes = 0;
    let mut failures = Vec::new();
    for (name, body, kind) in pages() {
        bytes += body.len();
        for f in scan_injection(&body, kind) {
            let end = (f.offset + f.len).min(body.len());
            failures.push(format!(
                "{name}: {} at {}: {:?}",
                f.detector,
                f.offset,
                String::from_utf8_lossy(&body[f.offset..end])
            ));
        }
        // The same bytes read as plain text (a response without a Content-Type).
        for f in scan_injection(&body, ContentKind::Text) {
            failures.push(format!("{name} as text: {} at {}", f.detector, f.offset));
        }
    }
    eprintln!(
        "injection false-positive corpus: {bytes} bytes, {} findings",
        failures.len()
    );
    assert!(
        failures.is_empty(),
        "false positives:\n{}",
        failures.join("\n")
    );
}

#[test]
fn pages_stream_through_unchanged_at_any_chunk_size() {
    for (name, body, kind) in pages() {
        for size in [1, 7, 64, 1500, 1 << 20] {
            let mut s = InjectionStream::new(kind);
            let mut out = Vec::new();
            for chunk in body.chunks(size) {
                out.extend(
                    s.push(chunk)
                        .unwrap_or_else(|f| panic!("{name} @{size}: {f:?}")),
                );
            }
            out.extend(
                s.finish()
                    .unwrap_or_else(|f| panic!("{name} @{size}: {f:?}")),
            );
            assert_eq!(out, body, "{name} @{size}");
        }
    }
}

/// Every description in the MCP `tools/list` results (tools and their parameters) and the
/// A2A agent card's skills, judged as tool descriptions (the stricter standard).
#[test]
fn well_known_tool_descriptions_are_not_poisoning() {
    let mut descriptions = Vec::new();
    for (name, body, _) in pages() {
        if !(name.starts_with("mcp_") || name.starts_with("a2a_")) {
            continue;
        }
        let value: serde_json::Value = serde_json::from_slice(&body).expect("json");
        collect_descriptions(&value, &mut descriptions);
    }
    assert!(descriptions.len() >= 40, "{}", descriptions.len());
    let mut failures = Vec::new();
    for d in &descriptions {
        let found = scan_injection(d.as_bytes(), ContentKind::ToolDescription);
        if !found.is_empty() {
            failures.push(format!("{found:?}: {d}"));
        }
    }
    assert!(
        failures.is_empty(),
        "flagged descriptions:\n{}",
        failures.join("\n")
    );
}

fn collect_descriptions(v: &serde_json::Value, out: &mut Vec<String>) {
    match v {
        serde_json::Value::Object(map) => {
            for (k, v) in map {
                match (k.as_str(), v) {
                    ("description", serde_json::Value::String(s)) => out.push(s.clone()),
                    _ => collect_descriptions(v, out),
                }
            }
        }
        serde_json::Value::Array(items) => items.iter().for_each(|i| collect_descriptions(i, out)),
        _ => {}
    }
}
