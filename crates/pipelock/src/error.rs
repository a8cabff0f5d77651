//! pipelock's error type.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum PipelockError {
    #[error("CA: {0}")]
    Ca(String),
    #[error("TLS: {0}")]
    Tls(String),
    #[error("{0}")]
    Config(#[from] bottle_core::ConfigError),
    #[error("{0}")]
    Usage(String),
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("upstream proxy: {0}")]
    UpstreamProxy(String),
}
