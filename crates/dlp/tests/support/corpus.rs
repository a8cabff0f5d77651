//! Builds the false-positive corpus (ordinary coding-agent traffic) shared by
//! the corpus test and the benchmarks. Everything is synthetic or written for
//! this crate; see tests/corpus/generate.py for the registry metadata.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use base64::Engine as _;
use serde_json::json;
use std::path::PathBuf;

pub fn corpus_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("corpus")
}

/// The committed corpus files: (name, bytes).
pub fn files() -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let mut entries: Vec<_> = std::fs::read_dir(corpus_dir())
        .expect("corpus dir")
        .flatten()
        // Sub-folders (pages/: the prompt-injection corpus) are not part of this corpus.
        .filter(|e| e.path().is_file())
        .collect();
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let name = e.file_name().to_string_lossy().into_owned();
        out.push((name, std::fs::read(e.path()).expect("read corpus file")));
    }
    out
}

fn read(name: &str) -> String {
    String::from_utf8(std::fs::read(corpus_dir().join(name)).expect("corpus file")).expect("utf8")
}

/// Deterministic pseudo-random bytes (stand-in for compressed image data).
pub fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

pub fn fake_png(len: usize, seed: u64) -> Vec<u8> {
    let mut v =
        b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\x04\0\0\0\x03\0\x08\x06\0\0\0\x5c\x72\xa8\x66".to_vec();
    v.extend_from_slice(&(len as u32).to_be_bytes());
    v.extend_from_slice(b"IDAT");
    v.extend(noise(len, seed));
    v.extend_from_slice(b"\0\0\0\0IEND\xaeB`\x82");
    v
}

pub fn fake_jpeg(len: usize, seed: u64) -> Vec<u8> {
    let mut v = b"\xff\xd8\xff\xe0\0\x10JFIF\0\x01\x01\0\0\x48\0\x48\0\0\xff\xdb\0\x43\0".to_vec();
    v.extend(noise(len, seed));
    v.extend_from_slice(b"\xff\xd9");
    v
}

fn b64(b: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(b)
}

/// Coding-agent LLM API requests: long prose, code, tool results, images.
pub fn llm_requests() -> Vec<(String, Vec<u8>)> {
    let prose = read("prose.md");
    let rust = read("code_rust.rs");
    let py = read("code_python.py");
    let ts = read("code_ts.ts");
    let lock = read("Cargo.lock");
    let tools = json!([
        {"name": "read_file", "description": "Read a file from the workspace. Returns the content with line numbers.",
         "input_schema": {"type": "object", "properties": {"path": {"type": "string", "description": "Path relative to the repository root"}}, "required": ["path"]}},
        {"name": "bash", "description": "Run a shell command in the sandbox and return stdout, stderr and the exit code.",
         "input_schema": {"type": "object", "properties": {"command": {"type": "string"}, "timeout_ms": {"type": "integer"}}, "required": ["command"]}},
        {"name": "edit", "description": "Replace an exact string in a file.",
         "input_schema": {"type": "object", "properties": {"path": {"type": "string"}, "old": {"type": "string"}, "new": {"type": "string"}}}}
    ]);
    let mut out = Vec::new();
    let anthropic = json!({
        "model": "claude-sonnet-4-5", "max_tokens": 8192, "stream": true,
        "system": [{"type": "text", "text": format!("You are a careful software engineer working in a git repository. Follow the style of the existing code.\n\n{prose}"), "cache_control": {"type": "ephemeral"}}],
        "tools": tools,
        "messages": [
            {"role": "user", "content": format!("Please refactor the request parsing in src/lib.rs. Here are my notes:\n\n{prose}")},
            {"role": "assistant", "content": [
                {"type": "text", "text": "I'll start by reading the current implementation."},
                {"type": "tool_use", "id": "toolu_01A09q90qw90lq917835lq9", "name": "read_file", "input": {"path": "src/lib.rs"}}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_01A09q90qw90lq917835lq9", "content": rust}]},
            {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_01B2c3D4e5F6g7H8i9J0k1L2", "name": "bash", "input": {"command": "cargo test --workspace 2>&1 | tail -n 40"}}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_01B2c3D4e5F6g7H8i9J0k1L2", "content": format!("running 42 tests\n{}\ntest result: ok. 42 passed; 0 failed\n\n{lock}", "test tests::empty_digest ... ok\n".repeat(40))}]},
        ]
    });
    out.push((
        "anthropic-messages".to_string(),
        serde_json::to_vec(&anthropic).expect("json"),
    ));
    let openai = json!({
        "model": "gpt-4.1", "temperature": 0.2,
        "messages": [
            {"role": "system", "content": "You are a coding assistant. Answer with code blocks when useful."},
            {"role": "user", "content": format!("Why does this Python code leak memory?\n```python\n{py}\n```\nAnd this TypeScript:\n```ts\n{ts}\n```")},
            {"role": "assistant", "content": prose},
            {"role": "user", "content": "Thanks. Can you write unit tests for the RateLimiter class? Use pytest and keep them fast."}
        ],
        "tools": [{"type": "function", "function": {"name": "run_tests", "parameters": {"type": "object", "properties": {"path": {"type": "string"}}}}}]
    });
    out.push((
        "openai-chat".to_string(),
        serde_json::to_vec(&openai).expect("json"),
    ));
    // Go's encoding/json escapes <, > and & everywhere.
    let go = serde_json::to_string(&openai)
        .expect("json")
        .replace('<', "\\u003c")
        .replace('>', "\\u003e")
        .replace('&', "\\u0026");
    out.push(("go-client-escaped".to_string(), go.into_bytes()));
    // ensure_ascii-style escaping, as Python SDKs send it
    let escaped = serde_json::to_string(&json!({"messages": [{"role": "user", "content": format!("{prose}\n\u{201c}Quoted\u{201d} caf\u{e9} na\u{ef}ve \u{2014} \u{4f60}\u{597d} \u{1f600}")}]})).expect("json");
    let ascii: String = escaped
        .chars()
        .map(|c| {
            if c.is_ascii() {
                c.to_string()
            } else {
                let mut b = [0u16; 2];
                c.encode_utf16(&mut b)
                    .iter()
                    .map(|u| format!("\\u{u:04x}"))
                    .collect()
            }
        })
        .collect();
    out.push(("python-sdk-ascii-escaped".to_string(), ascii.into_bytes()));
    for (i, (mime, img)) in [
        ("image/png", fake_png(300_000, 7)),
        ("image/jpeg", fake_jpeg(200_000, 8)),
        ("image/png", fake_png(50_000, 9)),
    ]
    .into_iter()
    .enumerate()
    {
        let req = json!({"model": "claude-sonnet-4-5", "max_tokens": 1024, "messages": [{"role": "user", "content": [
            {"type": "image", "source": {"type": "base64", "media_type": mime, "data": b64(&img)}},
            {"type": "text", "text": "What is wrong with the layout in this screenshot? The sidebar overlaps the editor."}]}]});
        out.push((
            format!("image-request-{i}"),
            serde_json::to_vec(&req).expect("json"),
        ));
    }
    out
}

/// A clean LLM request body of about `size` bytes (long conversation).
pub fn clean_body(size: usize) -> Vec<u8> {
    let prose = read("prose.md");
    let code = [
        read("code_rust.rs"),
        read("code_python.py"),
        read("code_ts.ts"),
        read("minified.js"),
    ];
    let mut messages = Vec::new();
    let mut total = 0;
    let mut i = 0;
    while total < size {
        let text = if i % 2 == 0 {
            prose.clone()
        } else {
            format!("```\n{}\n```", code[(i / 2) % code.len()])
        };
        total += text.len() + 40;
        messages
            .push(json!({"role": if i % 2 == 0 { "user" } else { "assistant" }, "content": text}));
        i += 1;
    }
    let mut v = serde_json::to_vec(
        &json!({"model": "claude-sonnet-4-5", "max_tokens": 4096, "messages": messages}),
    )
    .expect("json");
    v.truncate(size);
    v
}

/// `clean_body(size)` with a provider token every `every` bytes.
pub fn dirty_body(size: usize, every: usize) -> Vec<u8> {
    let mut v = clean_body(size);
    let tokens = [
        "ghp_R3aLlyN0tAT0kenButL00ksLikeOne123456",
        "AKIAZ4MPLEKEYIDXQWPE",
        "xoxb-123456789012-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx",
        "sk-ant-api03-AbCdEfGhIjKlMnOpQrStUvWxYz0123456789AbCdEfGhIjKlMnOpQrStUvWxYz0123456789-_AbCd",
    ];
    let mut pos = every / 2;
    let mut k = 0;
    while pos + 200 < v.len() {
        let t = tokens[k % tokens.len()].as_bytes();
        v[pos] = b' ';
        v[pos + 1..pos + 1 + t.len()].copy_from_slice(t);
        v[pos + 1 + t.len()] = b' ';
        pos += every;
        k += 1;
    }
    v
}

/// Request targets an agent typically fetches.
pub fn urls() -> Vec<String> {
    read("urls.txt").lines().map(str::to_string).collect()
}
