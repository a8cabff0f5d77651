//! Command line: `pipelock [flags]`, `pipelock ca init --out DIR`, `pipelock healthcheck [--url URL]`.

use std::path::PathBuf;

use bottle_core::cli::CommonArgs;
use bottle_core::serve::ServeLimits;
use clap::Parser;

/// The proxy's flags.
#[derive(Parser, Debug, Clone)]
#[command(
    name = "pipelock",
    version,
    about = "bottle's forward proxy: TLS interception with the bottle CA, host allowlist, SSRF checks, DLP",
    after_help = "Subcommands:\n  pipelock ca init --out DIR          write a fresh CA (ca.crt, ca.key mode 0600)\n  pipelock healthcheck [--url URL]    GET the admin /healthz (exit 0 on 200)"
)]
pub struct Args {
    #[command(flatten)]
    pub common: CommonArgs,
    /// PEM certificate of the bottle CA that signs intercepted leaves.
    #[arg(long, value_name = "PEM")]
    pub ca_cert: PathBuf,
    /// PEM (PKCS#8) private key of the bottle CA: ECDSA P-256/P-384 or RSA.
    #[arg(long, value_name = "PEM")]
    pub ca_key: PathBuf,
    /// Send every decrypted request to this HTTP proxy (egress) as absolute-form HTTP/1.1 and
    /// passthrough tunnels as CONNECT, e.g. http://egress:9099. Without it pipelock connects to
    /// origins itself.
    #[arg(long, value_name = "URL")]
    pub upstream_proxy: Option<String>,
    /// Send `Proxy-Authorization: Bottle <key>` on every request and CONNECT to the upstream
    /// proxy, the key being the value of this environment variable (given by name). egress
    /// started with the same key (`--client-key-env`) refuses anything without it.
    #[arg(long, value_name = "NAME", requires = "upstream_proxy")]
    pub upstream_proxy_key_env: Option<String>,
    /// File of known secret values (one per line) that must never leave, in any encoding.
    #[arg(long, value_name = "FILE", hide = true)]
    pub dlp_known_secrets: Option<PathBuf>,
    #[command(flatten)]
    pub limits: Limits,
}

/// Tuning knobs (hidden: the defaults are the product; tests lower them).
#[derive(clap::Args, Debug, Clone)]
pub struct Limits {
    /// The listener limits every sidecar shares (`--max-connections`, `--idle-timeout-secs`,
    /// `--header-timeout-secs`, `--max-header-bytes`, `--max-headers`, `--drain-secs`).
    #[command(flatten)]
    pub serve: ServeLimits,
    /// Maximum concurrent CONNECT tunnels; more get 503.
    #[arg(long, default_value_t = 1024, hide = true)]
    pub max_tunnels: usize,
    /// Leaf certificate cache capacity.
    #[arg(long, default_value_t = 10_000, hide = true)]
    pub cert_cache_size: usize,
}

/// `limits.max_header_bytes`, `limits.idle()` etc. keep reading as before the listener limits
/// moved to bottle-core (the intercepted-TLS server in connect.rs applies the same caps).
impl std::ops::Deref for Limits {
    type Target = ServeLimits;
    fn deref(&self) -> &ServeLimits {
        &self.serve
    }
}

/// `pipelock ca init`.
#[derive(Parser, Debug)]
#[command(
    name = "pipelock ca init",
    about = "Write a fresh ECDSA P-256 CA: DIR/ca.crt and DIR/ca.key (mode 0600)"
)]
pub struct CaInitArgs {
    /// Output directory (created if missing; existing files are not overwritten).
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
}

/// `pipelock healthcheck`.
#[derive(Parser, Debug)]
#[command(
    name = "pipelock healthcheck",
    about = "GET the admin /healthz; exit 0 on 200"
)]
pub struct HealthArgs {
    #[arg(long, default_value = "http://127.0.0.1:9090/healthz")]
    pub url: String,
}

/// What the command line asked for.
#[derive(Debug)]
pub enum Invocation {
    Run(Box<Args>),
    CaInit(CaInitArgs),
    Healthcheck(HealthArgs),
}

/// Parses argv (including argv[0]). Errors are clap errors (print + exit 2 via `exit()`).
pub fn parse_from(argv: Vec<String>) -> Result<Invocation, clap::Error> {
    match argv.get(1).map(String::as_str) {
        Some("ca") => {
            if argv.get(2).map(String::as_str) != Some("init") {
                return Err(clap::Error::raw(
                    clap::error::ErrorKind::InvalidSubcommand,
                    "usage: pipelock ca init --out DIR\n",
                ));
            }
            let rest =
                std::iter::once("pipelock ca init".to_string()).chain(argv.into_iter().skip(3));
            Ok(Invocation::CaInit(CaInitArgs::try_parse_from(rest)?))
        }
        Some("healthcheck") => {
            let rest =
                std::iter::once("pipelock healthcheck".to_string()).chain(argv.into_iter().skip(2));
            Ok(Invocation::Healthcheck(HealthArgs::try_parse_from(rest)?))
        }
        _ => Ok(Invocation::Run(Box::new(Args::try_parse_from(argv)?))),
    }
}
