//! gRPC (python grpcio over HTTP/2) and WebSocket over HTTP/2 through the bottle. To be
//! filled by the engineer owning gRPC/HTTP-2 in pipelock and egress (issue 16); until then its
//! row fails loudly when named and is skipped by default.

use super::harness::{not_written, Row};

/// The rows of this module.
pub fn rows() -> Vec<Row> {
    vec![Row {
        name: "grpc",
        by_default: false,
        allow: &[],
        routes: &[],
        git: &[],
        secrets: &[],
        run: |_, c| not_written(c, "grpc", "the gRPC/HTTP-2 engineer of issue 16"),
    }]
}
