//! git-gate: the agent's git remote. Smart HTTP for configured repositories only, fetches
//! served from a local mirror, pushes judged by a ref policy and a secret scan, then pushed
//! upstream atomically with a lease on every ref.
#![forbid(unsafe_code)]

pub mod pktline;
pub mod policy;
pub mod refname;
pub mod report;
pub mod request;
