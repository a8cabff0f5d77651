//! `bottle requests`, `bottle approve`, `bottle deny`: the operator decides the agent's access requests.

use clap::Args;

use crate::error::{Error, Result};

/// `bottle requests [SLUG]`.
#[derive(Args, Debug)]
pub struct RequestsArgs {
    /// The bottle; all running bottles when omitted.
    pub slug: Option<String>,
}

/// `bottle approve ID [--for DURATION | --session]`.
#[derive(Args, Debug)]
pub struct ApproveArgs {
    /// The request's id (from `bottle requests`).
    pub id: String,
}

/// `bottle deny ID [--reason TEXT]`.
#[derive(Args, Debug)]
pub struct DenyArgs {
    /// The request's id (from `bottle requests`).
    pub id: String,
}

/// Lists pending requests.
pub fn list(_args: &RequestsArgs) -> Result<i32> {
    Err(Error::Usage("`bottle requests` is not built yet".into()))
}

/// Approves a request.
pub fn approve(_args: &ApproveArgs) -> Result<i32> {
    Err(Error::Usage("`bottle approve` is not built yet".into()))
}

/// Denies a request.
pub fn deny(_args: &DenyArgs) -> Result<i32> {
    Err(Error::Usage("`bottle deny` is not built yet".into()))
}
