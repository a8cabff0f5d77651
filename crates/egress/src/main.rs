//! `egress`: bottle's credential-injecting router. See `egress --help`.
#![forbid(unsafe_code)]

use std::process::ExitCode;

use clap::Parser;
use egress::config::EnvSource;
use egress::server::{start, EgressArgs};

/// bottle's credential-injecting egress router: receives absolute-form requests
/// (and CONNECT for tls_passthrough routes) from pipelock, matches them against
/// routes.yaml and the allowlist, injects credentials from its environment,
/// originates TLS, and scrubs injected secrets out of responses.
/// Subcommand: `egress healthcheck [--url URL]`.
#[derive(Parser, Debug)]
#[command(name = "egress", version)]
struct Cli {
    #[command(flatten)]
    args: EgressArgs,
}

/// GET the admin /healthz; exit 0 when it answers 200.
#[derive(Parser, Debug)]
#[command(name = "egress healthcheck")]
struct HealthCli {
    #[command(flatten)]
    hc: bottle_core::cli::HealthcheckArgs,
}

fn main() -> ExitCode {
    let argv: Vec<std::ffi::OsString> = std::env::args_os().collect();
    if argv.get(1).is_some_and(|a| a == "healthcheck") {
        let rest = std::iter::once(argv[0].clone()).chain(argv.into_iter().skip(2));
        let h = HealthCli::parse_from(rest);
        return bottle_core::admin::healthcheck(&h.hc.url);
    }
    let cli = Cli::parse();
    bottle_core::cli::init_tracing();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("egress: cannot start the runtime: {e}");
            return ExitCode::from(2);
        }
    };
    rt.block_on(async move {
        // handlers installed before the port is announced (see shutdown_signal)
        let signalled = bottle_core::cli::shutdown_signal();
        let running = match start(cli.args, EnvSource::Process, true).await {
            Ok(r) => r,
            Err(e) => {
                eprintln!("egress: {e}");
                return ExitCode::from(2);
            }
        };
        // one line on stdout so callers that passed port 0 learn the ports
        match running.admin_addr {
            Some(a) => println!("listening={} admin={a}", running.addr),
            None => println!("listening={}", running.addr),
        }
        let stop = running.shutdown_handle();
        tokio::spawn(async move {
            signalled.await;
            tracing::info!("shutting down: draining in-flight requests");
            let _ = stop.send(true);
        });
        running.wait().await;
        ExitCode::SUCCESS
    })
}
