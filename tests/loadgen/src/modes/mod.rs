//! One module per measurement mode; each returns a `stats::Outcome`.

pub mod hold;
pub mod keepalive;
pub mod sse;
pub mod urls;
