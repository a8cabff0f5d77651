//! `supervise`: the bottle's access-request sidecar (see the crate README).
#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;

use bottle_core::serve::{serve, ServeLimits, ServeOptions};
use bottle_core::{AuditLog, Metrics};
use supervise::state::{Settings, State};

#[derive(Parser, Debug)]
#[command(name = "supervise", about = "The bottle's access-request sidecar")]
struct Args {
    #[command(flatten)]
    common: bottle_core::cli::CommonArgs,
    #[command(flatten)]
    limits: ServeLimits,
    /// The bottle's state directory: pending requests go to DIR/requests/.
    #[arg(long, value_name = "DIR")]
    state_dir: PathBuf,
    /// The sidecars' audit logs (read-only), for /v1/blocks.
    #[arg(long, value_name = "DIR")]
    audit_dir: Option<PathBuf>,
    /// Seconds an undecided request stays pending.
    #[arg(long, value_name = "SECS", default_value_t = 3600)]
    request_ttl_secs: u64,
    /// Most requests pending at once.
    #[arg(long, value_name = "N", default_value_t = 50)]
    max_pending: usize,
    /// Access requests per minute (token bucket refill).
    #[arg(long, value_name = "N", default_value_t = supervise::limits::DEFAULT_PER_MINUTE)]
    requests_per_minute: u32,
    /// Access requests accepted at once (token bucket size).
    #[arg(long, value_name = "N", default_value_t = supervise::limits::DEFAULT_BURST)]
    burst: u32,
    /// Seconds to receive a whole request body (a trickled body gets 408).
    #[arg(long, value_name = "SECS", default_value_t = 10, hide = true)]
    body_timeout_secs: u64,
    /// Host header values /mcp accepts (DNS-rebinding guard); repeatable.
    #[arg(long = "mcp-allowed-host", value_name = "HOST", default_values_t = ["supervise".to_string(), "localhost".to_string(), "127.0.0.1".to_string()])]
    mcp_allowed_hosts: Vec<String>,
}

/// Longest long-poll: under the idle timeout, so a waiting client is not cut as idle.
fn max_wait_secs(limits: &ServeLimits) -> u64 {
    limits.idle_timeout_secs.saturating_sub(10).clamp(1, 300)
}

/// `supervise healthcheck [--url URL]`: GET the admin /healthz; exit 0 on 200.
#[derive(Parser, Debug)]
#[command(name = "supervise healthcheck")]
struct HealthCli {
    #[command(flatten)]
    hc: bottle_core::cli::HealthcheckArgs,
}

fn main() -> ExitCode {
    let argv: Vec<std::ffi::OsString> = std::env::args_os().collect();
    if argv.get(1).is_some_and(|a| a == "healthcheck") {
        let rest = argv
            .iter()
            .take(1)
            .cloned()
            .chain(argv.iter().skip(2).cloned());
        let h = HealthCli::parse_from(rest);
        return bottle_core::admin::healthcheck(&h.hc.url);
    }
    let args = Args::parse();
    bottle_core::cli::init_tracing();
    match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt.block_on(run(args)),
        Err(e) => {
            eprintln!("supervise: cannot start the runtime: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> ExitCode {
    let audit = match AuditLog::from_args(&args.common) {
        Ok(a) => a,
        Err(e) => {
            tracing::error!(error = %e, "cannot open the audit log");
            return ExitCode::FAILURE;
        }
    };
    let settings = Settings {
        state_dir: args.state_dir.clone(),
        audit_dir: args.audit_dir.clone(),
        config_dir: args.common.config_dir.clone(),
        request_ttl_secs: args.request_ttl_secs,
        max_pending: args.max_pending,
        max_wait_secs: max_wait_secs(&args.limits),
        per_minute: args.requests_per_minute,
        burst: args.burst,
        body_timeout_secs: args.body_timeout_secs,
    };
    let app = match State::new(settings, audit) {
        Ok(a) => Arc::new(a),
        Err(e) => {
            tracing::error!(error = %e, "cannot open the state directory");
            return ExitCode::FAILURE;
        }
    };
    let listener = match tokio::net::TcpListener::bind(args.common.listen).await {
        Ok(l) => l,
        Err(e) => {
            tracing::error!(error = %e, "cannot listen");
            return ExitCode::FAILURE;
        }
    };
    if let Some(admin) = args.common.admin_listen {
        let metrics = Arc::new(Metrics::new());
        tokio::spawn(bottle_core::admin::serve_admin(admin, || true, metrics));
    }
    if let Some(path) = &args.common.status_file {
        let status = bottle_core::StatusFile::new(path.clone(), "supervise");
        if let Err(e) = status.write(1, "", None) {
            tracing::warn!(error = %e, "cannot write the status file");
        }
    }
    let mcp = supervise::mcp::service(app.clone(), args.mcp_allowed_hosts.clone());
    tracing::info!(listen = %args.common.listen, "supervise listening");
    let opts = ServeOptions::new("supervise", args.limits.clone());
    serve(
        listener,
        opts,
        move |req| supervise::api::handle(app.clone(), mcp.clone(), req),
        bottle_core::cli::shutdown_signal(),
    )
    .await;
    ExitCode::SUCCESS
}
