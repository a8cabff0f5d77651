//! egress: bottle's credential-injecting router (see crates/egress/README.md).
//!
//! For other crates' tests: [`spawn`] starts egress in-process on 127.0.0.1:0:
//! ```no_run
//! # async fn demo(dir: std::path::PathBuf) -> Result<(), egress::server::StartError> {
//! let env = [("BOTTLE_TOKEN_0".to_string(), "secret".to_string())].into();
//! let eg = egress::spawn(egress::EgressArgs::new(dir), env).await?;
//! let proxy = format!("http://{}", eg.addr);
//! # let _ = proxy; eg.shutdown().await; Ok(()) }
//! ```
#![forbid(unsafe_code)]

pub mod body;
pub mod config;
pub mod grpc;
pub mod inject;
pub mod metrics;
pub mod origin;
pub mod policy;
pub mod proxy;
pub mod scrub;
pub mod server;
pub mod state;
pub mod why;
pub mod ws;

pub use server::{spawn, start, EgressArgs, Running, StartError};
