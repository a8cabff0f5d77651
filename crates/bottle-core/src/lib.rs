//! bottle-core: shared building blocks of the bottle sidecars (pipelock, egress, git-gate).
//!
//! Config parsing (`allowlist`, `routes.yaml`), host normalisation and matching, the SSRF
//! classification, a resolver that checks what it resolved, SIGHUP reload with an atomic
//! swap, the status file, the JSON audit log, the admin endpoints, refusals, TLS helpers and
//! the flags every sidecar shares.
#![forbid(unsafe_code)]
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

pub mod access_request;
pub mod admin;
pub mod allow_entry;
pub mod allowlist;
pub mod audit;
pub mod audit_context;
pub mod audit_read;
pub mod body;
pub mod ca;
pub mod cli;
pub mod error;
pub mod error_chain;
pub mod grpc;
pub mod hint;
pub mod hop;
pub mod host;
pub mod idle;
pub mod live;
pub mod metrics;
pub mod path;
pub mod peer;
pub mod pool_cap;
pub mod refusal;
pub mod refusal_ask;
pub mod refusal_kind;
pub mod reload;
pub mod resolve;
pub mod routes;
mod routes_parse;
pub mod secret;
pub mod serve;
pub mod ssrf;
pub mod status;
pub mod strict_yaml;
pub mod tls;
pub mod upstream;
pub mod ws_frame;

pub use allowlist::{Allowlist, HostPattern, PortSpec};
pub use audit::{AuditDecision, AuditEvent, AuditLog};
pub use audit_context::RequestContext;
pub use body::{BoxBody, BoxError};
pub use error::ConfigError;
pub use host::{parse_host, split_host_port, Host, HostError};
pub use live::LiveConfig;
pub use metrics::Metrics;
pub use refusal::{AskAccess, Refusal, RefusalKind, SuperviseUrl};
pub use reload::Reloadable;
pub use resolve::{resolve_checked, ResolveError, ResolveOverride, Resolver};
pub use routes::RoutesFile;
pub use secret::Secret;
pub use status::StatusFile;
