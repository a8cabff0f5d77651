#![forbid(unsafe_code)]
//! pipelock binary.

use std::process::ExitCode;

use pipelock::cli::{self, Invocation};

fn main() -> ExitCode {
    let inv = match cli::parse_from(std::env::args().collect()) {
        Ok(i) => i,
        Err(e) => {
            let _ = e.print();
            return match e.kind() {
                clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion => {
                    ExitCode::SUCCESS
                }
                _ => ExitCode::from(2),
            };
        }
    };
    match inv {
        Invocation::CaInit(a) => match pipelock::tls_intercept::ca::init_ca(&a.out) {
            Ok(()) => {
                println!(
                    "wrote {} and {}",
                    a.out.join("ca.crt").display(),
                    a.out.join("ca.key").display()
                );
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("pipelock: {e}");
                ExitCode::from(2)
            }
        },
        Invocation::Healthcheck(h) => bottle_core::admin::healthcheck(&h.url),
        Invocation::Run(args) => {
            bottle_core::cli::init_tracing();
            let rt = match tokio::runtime::Runtime::new() {
                Ok(rt) => rt,
                Err(e) => {
                    eprintln!("pipelock: tokio runtime: {e}");
                    return ExitCode::from(1);
                }
            };
            // handlers installed (inside the runtime) before the listener is announced
            let run = async { pipelock::run(*args, bottle_core::cli::shutdown_signal()).await };
            match rt.block_on(run) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("pipelock: {e}");
                    ExitCode::from(2)
                }
            }
        }
    }
}
