//! `bottle log`: the sidecars' audit as readable lines.

use clap::Args;

use crate::error::{Error, Result};

/// Arguments of `bottle log`.
#[derive(Args, Debug)]
pub struct LogArgs {
    /// The bottle's slug.
    pub slug: Option<String>,
}

/// Runs `bottle log`.
pub fn run(_args: &LogArgs) -> Result<i32> {
    Err(Error::Usage("`bottle log` is not built yet".into()))
}
