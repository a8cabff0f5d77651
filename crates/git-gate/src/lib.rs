//! git-gate: the agent's git remote. Smart HTTP for configured repositories only, fetches
//! served from a local mirror, pushes judged by a ref policy and a secret scan, then pushed
//! upstream atomically with a lease on every ref.
#![forbid(unsafe_code)]

pub mod config;
pub mod gate;
pub mod git;
pub mod hook;
pub mod intake;
pub mod metrics;
pub mod mirror;
pub mod objparts;
pub mod pktline;
pub mod policy;
mod receive;
pub mod refname;
pub mod report;
pub mod request;
pub mod scan;
pub mod server;
pub mod upstream;

/// Errors of git-gate's own operations (config errors are `bottle_core::ConfigError`).
#[derive(Debug, thiserror::Error)]
pub enum GateError {
    #[error("cannot run git: {0}")]
    Spawn(String),
    #[error("git operation timed out")]
    Timeout,
    #[error("{0}")]
    Git(String),
    #[error("{0}")]
    Upstream(String),
    #[error("I/O error: {0}")]
    Io(String),
    #[error("repository busy (another push or refresh is running)")]
    Busy,
}
