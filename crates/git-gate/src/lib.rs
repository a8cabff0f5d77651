//! git-gate: the agent's git remote. Smart HTTP for configured repositories only, fetches
//! served from a local mirror, pushes judged by a ref policy and a secret scan, then pushed
//! upstream atomically with a lease on every ref.
#![forbid(unsafe_code)]

pub mod ask;
pub mod config;
mod fetch;
pub mod forward_push;
pub mod front_end;
pub mod git;
pub mod hook_protocol;
pub mod hook_server;
pub mod in_flight;
pub mod intake;
pub mod judge;
pub mod metrics;
pub mod mirror;
pub mod objparts;
pub mod pktline;
pub mod policy;
pub mod pre_receive;
mod receive;
pub mod refname;
pub mod report;
pub mod request;
pub mod scan;
mod smart_http;
pub mod state;
pub mod upstream_access;

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
