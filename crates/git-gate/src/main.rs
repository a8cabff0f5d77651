//! git-gate binary: the server, plus the modes git runs it in (pre-receive hook, ssh wrapper)
//! and the `healthcheck` subcommand.
#![forbid(unsafe_code)]

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use bottle_core::cli::{CommonArgs, HealthcheckArgs};
use bottle_core::serve::ServeLimits;
use bottle_core::{AuditLog, Metrics, StatusFile};
use clap::Parser;
use git_gate::git::GitRunner;
use git_gate::metrics::GateMetrics;
use git_gate::scan::DetectorScanner;
use git_gate::state::State;
use git_gate::upstream_access::UpstreamSettings;

/// git-gate: the agent's git remote (smart HTTP). Serves the repositories of the `git:`
/// section of routes.yaml from local mirrors; judges every pushed ref against the policy and
/// a secret scan; pushes accepted updates upstream (atomic, leased) with credentials only it
/// holds. SIGHUP reloads the config. Subcommand: `git-gate healthcheck [--url URL]`.
#[derive(Parser, Debug)]
#[command(name = "git-gate", version)]
struct Cli {
    #[command(flatten)]
    common: CommonArgs,
    /// Directory for the mirrors, hooks and runtime files (must be writable).
    #[arg(long, value_name = "DIR")]
    data_dir: PathBuf,
    /// Minimum seconds between two refreshes of a mirror from its upstream.
    #[arg(long, value_name = "SECS", default_value_t = 2)]
    refresh_interval: u64,
    /// The git executable.
    #[arg(long, value_name = "PATH", default_value = "git")]
    git: PathBuf,
    #[command(flatten)]
    push: git_gate::intake::PushArgs,
    /// Listener limits shared by every sidecar.
    #[command(flatten)]
    limits: ServeLimits,
    /// Bind `--listen`'s port on the local address that reaches HOST:PORT (e.g. pipelock:8888:
    /// git-gate then serves the agent's network only, not its upstream networks). Retried
    /// until the name resolves (up to 120 s).
    #[arg(long, value_name = "HOST:PORT")]
    listen_via: Option<String>,
}

#[derive(Parser, Debug)]
#[command(name = "git-gate healthcheck")]
struct HealthCli {
    #[command(flatten)]
    args: HealthcheckArgs,
}

fn exit_err(msg: impl std::fmt::Display) -> ExitCode {
    eprintln!("git-gate: {msg}");
    ExitCode::from(2)
}

fn link(target: &Path, at: &Path) -> std::io::Result<()> {
    let _ = std::fs::remove_file(at);
    std::os::unix::fs::symlink(target, at)
}

fn ssh_wrapper() -> ExitCode {
    use std::os::unix::process::CommandExt;
    let args: Vec<String> = std::env::args().skip(1).collect();
    let key = std::env::var_os("GIT_GATE_SSH_KEY").map(PathBuf::from);
    let kh = std::env::var_os("GIT_GATE_SSH_KNOWN_HOSTS").map(PathBuf::from);
    let addr = std::env::var("GIT_GATE_SSH_ADDR").ok();
    let argv =
        git_gate::upstream_access::ssh_argv(&args, key.as_deref(), kh.as_deref(), addr.as_deref());
    let err = std::process::Command::new("ssh").args(argv).exec();
    eprintln!("git-gate: cannot run ssh: {err}");
    ExitCode::from(255)
}

fn main() -> ExitCode {
    let argv0 = std::env::args().next().unwrap_or_default();
    let base = Path::new(&argv0)
        .file_name()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    if base == "pre-receive" {
        return ExitCode::from(git_gate::pre_receive::run_pre_receive() as u8);
    }
    if base == "git-gate-ssh" {
        return ssh_wrapper();
    }
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("healthcheck") => {
            let h = HealthCli::parse_from(args.iter().skip(1));
            return bottle_core::admin::healthcheck(&h.args.url);
        }
        Some("hook") => {
            if args.get(2).map(String::as_str) == Some("pre-receive") {
                return ExitCode::from(git_gate::pre_receive::run_pre_receive() as u8);
            }
            return exit_err("usage: git-gate hook pre-receive");
        }
        Some("ssh") => {
            return exit_err("the ssh wrapper runs as git-gate-ssh (a link made in --data-dir)");
        }
        _ => {}
    }
    let cli = Cli::parse();
    bottle_core::cli::init_tracing();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return exit_err(format!("cannot start runtime: {e}")),
    };
    rt.block_on(serve(cli))
}

fn prepare_data_dir(
    dir: &Path,
    upstream_ca: Option<&Path>,
) -> Result<(PathBuf, Option<PathBuf>), String> {
    for sub in ["", "hooks", "bin", "home", "ssh", "mirrors"] {
        std::fs::create_dir_all(dir.join(sub))
            .map_err(|e| format!("cannot create {}: {e}", dir.join(sub).display()))?;
    }
    let exe = std::env::current_exe().map_err(|e| format!("cannot find own executable: {e}"))?;
    link(&exe, &dir.join("hooks").join("pre-receive"))
        .map_err(|e| format!("cannot install hook: {e}"))?;
    let ssh = dir.join("bin").join("git-gate-ssh");
    link(&exe, &ssh).map_err(|e| format!("cannot install ssh wrapper: {e}"))?;
    let bundle = match upstream_ca {
        None => None,
        Some(ca) => {
            let extra =
                std::fs::read(ca).map_err(|e| format!("cannot read {}: {e}", ca.display()))?;
            let mut all = Vec::new();
            for sys in [
                "/etc/ssl/certs/ca-certificates.crt",
                "/etc/pki/tls/certs/ca-bundle.crt",
                "/etc/ssl/cert.pem",
            ] {
                if let Ok(b) = std::fs::read(sys) {
                    all.extend_from_slice(&b);
                    all.push(b'\n');
                    break;
                }
            }
            all.extend_from_slice(&extra);
            let path = dir.join("ca-bundle.pem");
            std::fs::write(&path, all)
                .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
            Some(path)
        }
    };
    Ok((ssh, bundle))
}

async fn serve(cli: Cli) -> ExitCode {
    let data_dir = if cli.data_dir.is_absolute() {
        cli.data_dir.clone()
    } else {
        match std::env::current_dir() {
            Ok(d) => d.join(&cli.data_dir),
            Err(e) => return exit_err(e),
        }
    };
    let (ssh_wrapper, ca_bundle) =
        match prepare_data_dir(&data_dir, cli.common.upstream_ca.as_deref()) {
            Ok(v) => v,
            Err(e) => return exit_err(e),
        };
    let mut runner = GitRunner::new(data_dir.join("home"));
    runner.git = cli.git.clone();
    match std::process::Command::new(&runner.git)
        .arg("--version")
        .output()
    {
        Ok(o) if o.status.success() => {}
        _ => {
            return exit_err(format!(
                "cannot run {} --version (git is required)",
                runner.git.display()
            ))
        }
    }
    let settings = UpstreamSettings {
        ca_bundle,
        resolve: cli
            .common
            .resolve
            .iter()
            .map(|r| (r.name.clone(), r.addr))
            .collect(),
        ssh_wrapper,
        ssh_dir: data_dir.join("ssh"),
    };
    let metrics = Arc::new(Metrics::new());
    let gate_metrics = Arc::new(GateMetrics::register(&metrics));
    let status = cli
        .common
        .status_file
        .clone()
        .map(|p| StatusFile::new(p, "git-gate"));
    let config_dir = cli.common.config_dir.clone();
    let loader_settings = settings.clone();
    let reloadable = match bottle_core::reload::start(
        "git-gate",
        move || git_gate::config::load(&config_dir, &loader_settings),
        status,
        &metrics,
    ) {
        Ok(r) => r,
        Err(e) => return exit_err(e),
    };
    let audit = match AuditLog::from_args(&cli.common) {
        Ok(a) => a,
        Err(e) => return exit_err(format!("cannot open audit log: {e}")),
    };
    let source: git_gate::state::ConfigSource = {
        let r = reloadable.clone();
        Arc::new(move || r.current())
    };
    let gate = Arc::new(
        State::new(
            source,
            data_dir.clone(),
            runner,
            settings,
            Duration::from_secs(cli.refresh_interval),
            audit,
            gate_metrics,
            Arc::new(DetectorScanner(bottle_dlp::Detector::builtin())),
        )
        .with_push_limits(&cli.push)
        .with_supervise_url(cli.common.supervise_url.clone()),
    );
    let _ = std::fs::remove_file(&gate.hook_socket);
    let hook_listener = match tokio::net::UnixListener::bind(&gate.hook_socket) {
        Ok(l) => l,
        Err(e) => return exit_err(format!("cannot bind {}: {e}", gate.hook_socket.display())),
    };
    // handlers installed before the port is announced (see shutdown_signal)
    let signalled = bottle_core::cli::shutdown_signal();
    let listen = match bottle_core::peer::listen_addr(
        cli.common.listen,
        cli.listen_via.as_deref(),
        Duration::from_secs(120),
    )
    .await
    {
        Ok(a) => a,
        Err(e) => return exit_err(e),
    };
    let listener = match tokio::net::TcpListener::bind(listen).await {
        Ok(l) => l,
        Err(e) => return exit_err(format!("cannot listen on {listen}: {e}")),
    };
    if let Ok(addr) = listener.local_addr() {
        tracing::info!(%addr, data_dir = %data_dir.display(), "git-gate listening");
    }
    if let Some(admin) = cli.common.admin_listen {
        let m = metrics.clone();
        match tokio::net::TcpListener::bind(admin).await {
            Ok(l) => {
                if let Ok(a) = l.local_addr() {
                    tracing::info!(addr = %a, "git-gate admin listening");
                }
                tokio::spawn(async move {
                    if let Err(e) = bottle_core::admin::serve_admin_on(l, || true, m).await {
                        tracing::error!(error = %e, "admin server failed");
                    }
                });
            }
            Err(e) => return exit_err(format!("cannot listen on {admin}: {e}")),
        }
    }
    tokio::spawn(git_gate::hook_server::serve_hooks(
        gate.clone(),
        hook_listener,
    ));
    git_gate::front_end::serve(gate, listener, cli.limits.clone(), signalled).await;
    tracing::info!("git-gate stopped");
    ExitCode::SUCCESS
}
