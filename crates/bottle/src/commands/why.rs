//! `bottle why URL`: which rule allows or refuses a request, by the sidecars' own decision code.

use clap::Args;

use crate::error::{Error, Result};

/// Arguments of `bottle why`.
#[derive(Args, Debug)]
pub struct WhyArgs {
    /// The bottle's slug.
    pub slug: Option<String>,
}

/// Runs `bottle why`.
pub fn run(_args: &WhyArgs) -> Result<i32> {
    Err(Error::Usage("`bottle why` is not built yet".into()))
}
