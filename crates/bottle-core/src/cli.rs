//! Flags shared by every sidecar, tracing setup and shutdown signal.

use std::net::SocketAddr;
use std::path::PathBuf;

use tracing_subscriber::filter::Targets;

use crate::resolve::ResolveOverride;

/// Flags every sidecar has. Flatten into the binary's own args with `#[command(flatten)]`.
#[derive(clap::Args, Debug, Clone)]
pub struct CommonArgs {
    /// Address to listen on (e.g. 0.0.0.0:8888).
    #[arg(long, value_name = "ADDR")]
    pub listen: SocketAddr,
    /// Directory holding `allowlist` and `routes.yaml` (re-read on SIGHUP).
    #[arg(long, value_name = "DIR")]
    pub config_dir: PathBuf,
    /// Extra trust anchor(s) for upstream TLS, beside the built-in web roots (PEM).
    #[arg(long, value_name = "PEM")]
    pub upstream_ca: Option<PathBuf>,
    /// Answer NAME with ADDR before DNS (repeatable). `NAME=ADDR,private` also lets that pin be
    /// a private address (an internal service the operator names); plain pins are SSRF-checked.
    #[arg(long = "resolve", value_name = "NAME=ADDR")]
    pub resolve: Vec<ResolveOverride>,
    /// Serve GET /healthz and GET /metrics on this address.
    #[arg(long, value_name = "ADDR")]
    pub admin_listen: Option<SocketAddr>,
    /// Append one JSON line per decision to FILE (`-` = stderr).
    #[arg(long, value_name = "FILE")]
    pub audit_log: Option<String>,
    /// Rotate the audit file before it would exceed this many bytes (0 = never rotate).
    #[arg(long, value_name = "BYTES", default_value_t = crate::audit::DEFAULT_MAX_BYTES)]
    pub audit_max_bytes: u64,
    /// Rotated audit files kept (`FILE.1` newest ... `FILE.N` oldest).
    #[arg(long, value_name = "N", default_value_t = crate::audit::DEFAULT_KEEP)]
    pub audit_keep: usize,
    /// Rewrite FILE (JSON) after every config load attempt.
    #[arg(long, value_name = "FILE")]
    pub status_file: Option<PathBuf>,
    /// supervise's base URL as the agent reaches it: refusals the agent may ask about then
    /// print the exact access request (curl line, MCP tool) to send there.
    #[arg(long, value_name = "URL", env = "BOTTLE_SUPERVISE_URL")]
    pub supervise_url: Option<crate::refusal::SuperviseUrl>,
}

impl CommonArgs {
    /// The audit file's rotation settings from `--audit-max-bytes` and `--audit-keep`.
    pub fn audit_rotation(&self) -> crate::audit::Rotation {
        crate::audit::Rotation {
            max_bytes: self.audit_max_bytes,
            keep: self.audit_keep,
        }
    }
}

// Here rather than in audit.rs so that audit does not depend on cli (cli already uses audit).
impl crate::audit::AuditLog {
    /// The log named by a sidecar's `--audit-log`, `--audit-max-bytes` and `--audit-keep`.
    pub fn from_args(common: &CommonArgs) -> std::io::Result<Self> {
        Self::open_optional_rotating(common.audit_log.as_deref(), common.audit_rotation())
    }
}

/// Args of the `healthcheck` subcommand.
#[derive(clap::Args, Debug, Clone)]
pub struct HealthcheckArgs {
    /// URL to GET; exit 0 on HTTP 200, else 1.
    #[arg(long, value_name = "URL", default_value = crate::admin::DEFAULT_HEALTH_URL)]
    pub url: String,
}

/// Log to stderr; filter from `RUST_LOG`, default `info`. Safe to call twice.
///
/// Colour only on a terminal (and never with `NO_COLOR` set): in containers stderr is a pipe
/// into Docker's log files and `compose.log`, where escape codes are noise.
pub fn init_tracing() {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let (filter, complaint) = log_filter(std::env::var("RUST_LOG").ok().as_deref());
    if let Some(c) = complaint {
        eprintln!("{c}");
    }
    let _ = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(use_colour(
            std::io::IsTerminal::is_terminal(&std::io::stderr()),
            std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty()),
        ))
        .finish()
        .with(filter)
        .try_init();
}

/// The log filter from `RUST_LOG`: comma-separated `LEVEL` (the default) and `TARGET=LEVEL`
/// directives, e.g. `warn,pipelock=debug`. Unset or empty means `info`; a value that does not
/// parse means `info` too, with the complaint to print. (`Targets` rather than `EnvFilter`:
/// span and field filters are not worth the regex compiler they link, 0.25 MB of image.)
fn log_filter(var: Option<&str>) -> (Targets, Option<String>) {
    let info = || Targets::new().with_default(tracing::Level::INFO);
    match var.map(str::trim) {
        None | Some("") => (info(), None),
        Some(v) => match v.parse::<Targets>() {
            Ok(t) => (t, None),
            Err(e) => (
                info(),
                Some(format!(
                    "RUST_LOG {v:?} is not a filter ({e}); logging at info. Write LEVEL or \
                     TARGET=LEVEL, comma-separated, e.g. warn,pipelock=debug"
                )),
            ),
        },
    }
}

/// Whether log lines get ANSI colour codes.
fn use_colour(stderr_is_terminal: bool, no_color: bool) -> bool {
    stderr_is_terminal && !no_color
}

/// Resolves on SIGTERM or SIGINT. The handlers are installed when this is called, not when
/// the future is first polled: call it (inside the runtime) before announcing the listener,
/// so a SIGTERM right after start drains instead of killing the process.
pub fn shutdown_signal() -> impl std::future::Future<Output = ()> + Send + 'static {
    use tokio::signal::unix::{signal, SignalKind};
    let term = signal(SignalKind::terminate());
    let int = signal(SignalKind::interrupt());
    async move {
        match (term, int) {
            (Ok(mut t), Ok(mut i)) => {
                tokio::select! {
                    _ = t.recv() => {}
                    _ = i.recv() => {}
                }
            }
            (Ok(mut t), Err(_)) => {
                t.recv().await;
            }
            (Err(_), Ok(mut i)) => {
                i.recv().await;
            }
            (Err(e), Err(_)) => {
                tracing::error!(error = %e, "cannot install signal handlers; waiting forever");
                std::future::pending::<()>().await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[test]
    fn colour_only_on_a_terminal_without_no_color() {
        assert!(use_colour(true, false));
        assert!(!use_colour(false, false), "pipes and files get plain text");
        assert!(!use_colour(true, true), "NO_COLOR wins");
        assert!(!use_colour(false, true));
    }

    #[test]
    fn log_filter_reads_levels_and_targets() {
        use tracing::Level;
        let enabled = |t: &Targets, target: &str, level: Level| t.would_enable(target, &level);

        let (t, complaint) = log_filter(None);
        assert!(complaint.is_none());
        assert!(enabled(&t, "pipelock", Level::INFO));
        assert!(!enabled(&t, "pipelock", Level::DEBUG), "unset means info");
        let (t, _) = log_filter(Some("  "));
        assert!(!enabled(&t, "egress", Level::DEBUG), "empty means info");

        let (t, complaint) = log_filter(Some("warn,pipelock=debug,pipelock::dlp_scan=off"));
        assert!(complaint.is_none());
        assert!(enabled(&t, "pipelock::forward", Level::DEBUG));
        assert!(!enabled(&t, "pipelock::forward", Level::TRACE));
        assert!(!enabled(&t, "pipelock::dlp_scan", Level::ERROR));
        assert!(enabled(&t, "hyper", Level::WARN));
        assert!(
            !enabled(&t, "hyper", Level::INFO),
            "the bare level is the default"
        );
    }

    #[test]
    fn a_bad_log_filter_logs_at_info_and_says_why() {
        use tracing::Level;
        let (t, complaint) = log_filter(Some("pipelock=loud"));
        let complaint = complaint.expect("a complaint");
        assert!(complaint.contains("pipelock=loud"), "{complaint}");
        assert!(complaint.contains("TARGET=LEVEL"), "{complaint}");
        assert!(t.would_enable("pipelock", &Level::INFO));
        assert!(!t.would_enable("pipelock", &Level::DEBUG));
    }

    #[derive(Parser, Debug)]
    struct Cli {
        #[command(flatten)]
        common: CommonArgs,
    }

    #[test]
    fn parses_all_flags() {
        let c = Cli::try_parse_from([
            "x",
            "--listen",
            "127.0.0.1:8888",
            "--config-dir",
            "/etc/bottle",
            "--upstream-ca",
            "/ca.pem",
            "--resolve",
            "a.test=10.0.0.1",
            "--resolve",
            "b.test=::1",
            "--admin-listen",
            "0.0.0.0:9090",
            "--audit-log",
            "-",
            "--status-file",
            "/s.json",
            "--audit-max-bytes",
            "1000",
            "--audit-keep",
            "2",
            "--supervise-url",
            "http://supervise:8070/",
        ])
        .unwrap();
        assert_eq!(
            c.common.audit_rotation(),
            crate::audit::Rotation {
                max_bytes: 1000,
                keep: 2
            }
        );
        let d = Cli::try_parse_from(["x", "--listen", "127.0.0.1:1", "--config-dir", "/"]).unwrap();
        assert_eq!(d.common.audit_rotation(), crate::audit::Rotation::default());
        assert_eq!(c.common.resolve.len(), 2);
        assert_eq!(c.common.resolve[1].name, "b.test");
        assert_eq!(c.common.audit_log.as_deref(), Some("-"));
        assert_eq!(
            c.common.supervise_url.as_ref().map(|u| u.as_str()),
            Some("http://supervise:8070")
        );
        assert!(Cli::try_parse_from([
            "x",
            "--listen",
            "127.0.0.1:1",
            "--config-dir",
            "/",
            "--supervise-url",
            "http://s/'$(id)'"
        ])
        .is_err());
        assert!(Cli::try_parse_from(["x", "--listen", "nope", "--config-dir", "/"]).is_err());
        assert!(Cli::try_parse_from([
            "x",
            "--listen",
            "127.0.0.1:1",
            "--config-dir",
            "/",
            "--resolve",
            "bad"
        ])
        .is_err());
        assert!(Cli::try_parse_from(["x", "--config-dir", "/"]).is_err());
    }
}
