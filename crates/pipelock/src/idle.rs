//! The idle-timeout I/O wrapper now lives in bottle-core (every sidecar's listener uses it);
//! re-exported for the tunnels and upgrades here.

pub use bottle_core::idle::IdleIo;
