//! The bottle launcher: renders one Docker Compose project per agent from a manifest,
//! starts it, runs the agent attached to the terminal, and tears it down.
#![forbid(unsafe_code)]

pub mod agent_user;
pub mod build;
pub mod ca;
pub mod commands;
pub mod docker;
pub mod engine;
pub mod error;
pub mod git_sweep;
pub mod manifest;
pub mod policy;
pub mod render;
pub mod signals;
pub mod state;
pub mod terminal_text;
pub mod ui;

pub use error::{Error, Result};
