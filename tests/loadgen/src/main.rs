#![forbid(unsafe_code)]
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]
//! loadgen: HTTP(S) load and latency measurements, optionally through a CONNECT proxy.
//!
//! Modes (one per run; `--json` prints one JSON object instead of the text line):
//! - keep-alive (default): `loadgen --url URL [--proxy http://ADDR] [--cacert PEM] -c 8 -d 5
//!   [--download | --upload BYTES]` — requests/s, p50/p99 latency and MB/s.
//! - `--urls FILE`: one GET per URL, each on a new connection (first contact).
//! - `--sse --url URL`: time to the first SSE event and the gaps between events.
//! - `--hold N --url URL`: N idle keep-alive tunnels, `ready N` once open (proxy RSS).
//!   Needs file descriptors: run `ulimit -n 65536` first.

mod conn;
mod modes;
mod stats;

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;

use conn::{Dialer, Endpoint, LoadError};

#[derive(Parser, Debug)]
#[command(name = "loadgen", about = "HTTP(S) load generator and latency probe")]
pub struct Args {
    /// Target URL (http:// or https://). Required except with --urls.
    #[arg(long, required_unless_present = "urls")]
    pub url: Option<String>,
    /// Forward proxy (http://HOST:PORT): CONNECT for https, absolute-form for http.
    #[arg(long)]
    pub proxy: Option<String>,
    /// Extra trust anchor(s) for the target's TLS (PEM). Without it: web roots.
    #[arg(long)]
    pub cacert: Option<PathBuf>,
    /// Concurrent connections (with --hold: connections being set up at a time).
    /// Default 8, with --hold 32.
    #[arg(short = 'c', long)]
    pub concurrency: Option<usize>,
    /// Keep-alive mode: duration in seconds.
    #[arg(short = 'd', long, default_value_t = 5)]
    pub duration: u64,
    /// Keep-alive mode: report download throughput (read whole bodies; use a large-body URL).
    #[arg(long)]
    pub download: bool,
    /// Keep-alive mode: POST a body of this many bytes of ordinary text with each request
    /// (MB/s then counts uploaded bytes). Use with an upload endpoint (echo-origin `/upload`).
    #[arg(long, default_value_t = 0)]
    pub upload: usize,
    /// Print exactly one JSON object on stdout at the end instead of the text line.
    #[arg(long)]
    pub json: bool,
    /// First contact: FILE has one URL per line (blank lines and `#` comments ignored); each
    /// gets one GET on a new connection (TCP, CONNECT, TLS with SNI = its host), -c at a time.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["url", "sse", "hold", "download", "upload"])]
    pub urls: Option<PathBuf>,
    /// Server-sent events: GET --url --repeat times (one connection each), measure the time
    /// to the first complete event and the gaps between events.
    #[arg(long, conflicts_with_all = ["hold", "download", "upload"])]
    pub sse: bool,
    /// --sse: number of sequential GETs.
    #[arg(long, default_value_t = 5)]
    pub repeat: usize,
    /// --sse: stop each GET after this many events (or at the end of the body).
    #[arg(long, default_value_t = 10)]
    pub events: usize,
    /// Open N keep-alive connections (CONNECT + TLS + one GET of --url each), print
    /// `ready N`, keep them idle for --hold-secs, close. Run `ulimit -n 65536` first.
    #[arg(long, value_name = "N", conflicts_with_all = ["download", "upload"])]
    pub hold: Option<usize>,
    /// --hold: seconds to keep the connections open; 0 = until stdin is closed.
    #[arg(long, default_value_t = 10)]
    pub hold_secs: u64,
    /// --urls, --sse, --hold: limit in seconds for each step (connect + CONNECT + TLS,
    /// response head, each body read).
    #[arg(long, default_value_t = 30)]
    pub timeout: u64,
}

impl Args {
    pub fn step_timeout(&self) -> Duration {
        Duration::from_secs(self.timeout.max(1))
    }

    pub fn concurrency_or(&self, default: usize) -> usize {
        self.concurrency.unwrap_or(default).max(1)
    }

    /// The parsed --url (clap makes it required unless --urls is given).
    pub fn endpoint(&self) -> Result<Endpoint, LoadError> {
        let url = self
            .url
            .as_deref()
            .ok_or_else(|| LoadError::Msg("--url is required".into()))?;
        Endpoint::parse(url).map_err(|e| LoadError::Msg(format!("--url: {e}")))
    }

    pub fn dialer(&self) -> Result<Dialer, LoadError> {
        Ok(Dialer {
            proxy: self.proxy.as_deref().map(conn::parse_proxy).transpose()?,
            tls: conn::tls_config(self.cacert.as_ref())?,
        })
    }
}

async fn main_async(args: Args) -> Result<stats::Outcome, LoadError> {
    if let Some(file) = &args.urls {
        modes::urls::run(&args, file).await
    } else if args.sse {
        modes::sse::run(&args).await
    } else if let Some(n) = args.hold {
        modes::hold::run(&args, n).await
    } else {
        modes::keepalive::run(&args).await
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    let json = args.json;
    let rt = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("loadgen: {e}");
            return ExitCode::from(1);
        }
    };
    let result = rt.block_on(main_async(args));
    // Nothing may outlive the run (e.g. a stdin read): do not wait for blocking tasks.
    rt.shutdown_timeout(Duration::from_millis(100));
    match result {
        Ok(out) => {
            let mut stdout = std::io::stdout().lock();
            let line = if json { out.json } else { out.text };
            let _ = writeln!(stdout, "{line}");
            let _ = stdout.flush();
            match out.failure {
                None => ExitCode::SUCCESS,
                Some(msg) => {
                    eprintln!("loadgen: {msg}");
                    ExitCode::from(1)
                }
            }
        }
        Err(e) => {
            eprintln!("loadgen: {e}");
            ExitCode::from(1)
        }
    }
}
