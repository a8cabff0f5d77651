//! egress: bottle's credential-injecting router. See DESIGN.md and crates/egress/README.md.
#![forbid(unsafe_code)]

pub mod scrub;
