//! supervise: the sidecar through which a bottled agent asks its operator for access.
//!
//! It validates a request with the launcher's own rules, writes it as a pending file into the
//! bottle's state directory and reports the operator's decision once the launcher writes it.
//! It holds no credential and can change no policy: see [`store`] for the on-disk contract.
#![forbid(unsafe_code)]
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

pub mod api;
pub mod blocks;
pub mod check;
pub mod ids;
pub mod limits;
pub mod mcp;
pub mod request;
pub mod state;
pub mod store;
