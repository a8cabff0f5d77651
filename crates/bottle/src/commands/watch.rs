//! The live view of refusals and pending requests (`bottle watch`).

use clap::Args;

use crate::error::{Error, Result};

/// Arguments of `bottle watch`.
#[derive(Args, Debug)]
pub struct WatchArgs {
    /// The bottle's slug.
    pub slug: Option<String>,
}

/// Runs `bottle watch`.
pub fn run(_args: &WatchArgs) -> Result<i32> {
    Err(Error::Usage("`bottle watch` is not built yet".into()))
}
