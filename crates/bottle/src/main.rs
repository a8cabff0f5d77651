//! `bottle`: run an AI coding agent in a bottle (see `bottle --help`).
#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use bottle::{build, commands, ui, Error};

/// Run an AI coding agent in a Docker bottle whose only ways out are the pipelock,
/// egress and git-gate sidecars.
#[derive(Parser)]
#[command(name = "bottle", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Render, start the sidecars, run the agent attached, tear everything down on exit.
    Start {
        /// The manifest (YAML).
        manifest: PathBuf,
        /// Leave the bottle running in the background.
        #[arg(long)]
        detach: bool,
        /// Accept a policy that grants more than the one last accepted for this manifest.
        #[arg(long, short)]
        yes: bool,
        /// Accept over-broad `allow:` entries (huge CIDRs, `*.com`, private or metadata addresses).
        #[arg(long)]
        force_allow: bool,
        /// Command to run instead of the manifest's `command`.
        #[arg(last = true)]
        command: Vec<String>,
    },
    /// Validate a manifest, show its policy and what widened since the last accepted start,
    /// and record it when accepted; start nothing.
    Check {
        /// The manifest (YAML).
        manifest: PathBuf,
        /// Accept a widening without asking.
        #[arg(long, short)]
        yes: bool,
        /// Accept over-broad `allow:` entries.
        #[arg(long)]
        force_allow: bool,
    },
    /// Allow a host (or pattern, address, CIDR) in a running bottle, without restarting it.
    Allow {
        /// `example.com`, `*.example.com`, `example.com:8443`, `203.0.113.7`, `10.0.0.0/16`.
        host: String,
        /// The bottle; may be omitted when exactly one runs.
        #[arg(long = "bottle")]
        bottle: Option<String>,
        /// Accept an over-broad entry (huge CIDR, `*.com`, private or metadata address).
        #[arg(long)]
        force: bool,
    },
    /// List bottles (state dirs), marking the running ones.
    Ls,
    /// Show a bottle's logs (live, or the saved compose.log).
    Logs {
        /// The bottle's slug.
        slug: String,
        /// Follow.
        #[arg(short, long)]
        follow: bool,
    },
    /// Run a command (default `sh`) in the agent of a running (detached) bottle.
    Exec {
        /// The bottle's slug.
        slug: String,
        /// The command.
        #[arg(last = true)]
        command: Vec<String>,
    },
    /// Stop a bottle: save logs, compose down, remove its state (unless --keep).
    Stop {
        /// The bottle's slug.
        slug: String,
        /// Keep the state directory.
        #[arg(long)]
        keep: bool,
    },
    /// Remove every bottle-* compose project and state dirs without a live project.
    Cleanup {
        /// Do not ask.
        #[arg(long, short)]
        yes: bool,
    },
    /// Build the sidecar images (and the e2e test images).
    Build {
        /// Skip the test images (echo origin, test agent).
        #[arg(long, conflicts_with = "image")]
        no_test_images: bool,
        /// Rebuild even when nothing changed.
        #[arg(long)]
        force: bool,
        /// Build only this image (repeatable), e.g. `--image bottle-agent-clients`: the only
        /// way to build an on-demand test image, which a plain `bottle build` skips.
        #[arg(long, value_name = "IMAGE")]
        image: Vec<String>,
    },
    /// Print the compose file a manifest renders to; start nothing.
    Render {
        /// The manifest (YAML).
        manifest: PathBuf,
    },
    /// List the agent's pending access requests, with its reason and the refusals before it.
    Requests(commands::requests::RequestsArgs),
    /// Approve an access request (for the session, or for a time).
    Approve(commands::requests::ApproveArgs),
    /// Deny an access request, with a reason the agent sees.
    Deny(commands::requests::DenyArgs),
    /// A live terminal view of refusals and pending requests, over every running bottle.
    Watch(commands::watch::WatchArgs),
    /// Which rule allows or refuses a request to URL (the sidecars' own decision code).
    Why(commands::why::WhyArgs),
    /// The sidecars' audit as readable lines.
    Log(commands::log::LogArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let r: Result<i32, Error> = match cli.cmd {
        Cmd::Start {
            manifest,
            detach,
            yes,
            force_allow,
            command,
        } => commands::start(&commands::StartOpts {
            manifest,
            detach,
            command,
            yes,
            force_allow,
        }),
        Cmd::Check {
            manifest,
            yes,
            force_allow,
        } => commands::check(&manifest, yes, force_allow).map(|()| 0),
        Cmd::Allow {
            host,
            bottle,
            force,
        } => commands::allow(&host, bottle.as_deref(), force).map(|()| 0),
        Cmd::Ls => commands::ls().map(|()| 0),
        Cmd::Logs { slug, follow } => commands::logs(&slug, follow),
        Cmd::Exec { slug, command } => commands::exec(&slug, &command),
        Cmd::Stop { slug, keep } => commands::stop(&slug, keep).map(|()| 0),
        Cmd::Cleanup { yes } => commands::cleanup(yes).map(|()| 0),
        Cmd::Build {
            no_test_images,
            force,
            image,
        } => build::build(&build::BuildOpts {
            test_images: !no_test_images,
            force,
            only: image,
        })
        .map(|_| 0),
        Cmd::Render { manifest } => commands::render_cmd(&manifest).map(|()| 0),
        Cmd::Requests(a) => commands::requests::list(&a),
        Cmd::Approve(a) => commands::requests::approve(&a),
        Cmd::Deny(a) => commands::requests::deny(&a),
        Cmd::Watch(a) => commands::watch::run(&a),
        Cmd::Why(a) => commands::why::run(&a),
        Cmd::Log(a) => commands::log::run(&a),
    };
    match r {
        Ok(code) => ExitCode::from(u8::try_from(code.clamp(0, 255)).unwrap_or(1)),
        Err(e) => {
            ui::error(&e.to_string());
            ExitCode::from(match e {
                Error::Manifest(_) | Error::Usage(_) => 2,
                Error::Interrupted => 130,
                _ => 1,
            })
        }
    }
}
