//! HTTP stacks through the bottle: python requests and httpx (HTTP/2), node fetch (undici),
//! Go net/http, SSE and WebSocket. To be filled by the engineer owning issue 16's HTTP-stack
//! rows; until then its row fails loudly when named and is skipped by default.

use super::harness::{not_written, Row};

/// The rows of this module.
pub fn rows() -> Vec<Row> {
    vec![Row {
        name: "http-stacks",
        by_default: false,
        allow: &[],
        routes: &[],
        git: &[],
        secrets: &[],
        run: |_, c| not_written(c, "http-stacks", "the HTTP-stacks engineer of issue 16"),
    }]
}
