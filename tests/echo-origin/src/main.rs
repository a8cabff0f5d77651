//! `echo-origin` binary: serves the test origin until SIGTERM/SIGINT.
#![forbid(unsafe_code)]

use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Parser;
use echo_origin::{default_names, EchoOptions, EchoOrigin, TestCa};

/// Test origin: HTTP/1.1 + HTTP/2 over plain TCP and TLS; echo, SSE, download, upload,
/// WebSocket, slow, status, redirect and reflect endpoints.
#[derive(Parser, Debug)]
#[command(name = "echo-origin", version, args_conflicts_with_subcommands = true)]
struct Cli {
    #[command(subcommand)]
    cmd: Option<Cmd>,
    #[command(flatten)]
    serve: Args,
}

#[derive(clap::Subcommand, Debug)]
enum Cmd {
    /// Exit 0 if GET URL answers 200 (for image healthchecks; no shell needed).
    Healthcheck {
        /// http://IP:PORT/path (IP literal or localhost; no name lookups).
        #[arg(long, default_value = "http://127.0.0.1:80/healthz")]
        url: String,
    },
}

#[derive(clap::Args, Debug)]
struct Args {
    /// Plain HTTP listen address (IP:PORT; port 0 = any).
    #[arg(long, default_value = "127.0.0.1:0")]
    http: SocketAddr,
    /// TLS listen address (IP:PORT; port 0 = any).
    #[arg(long, default_value = "127.0.0.1:0")]
    https: SocketAddr,
    /// Directory for ca.crt (+ ca.key). If both exist they are loaded, otherwise a fresh
    /// CA is generated and both are written there (required to serve).
    #[arg(long)]
    tls_dir: Option<PathBuf>,
    /// Extra SAN for the TLS leaf (DNS name or IP literal); repeatable. Added to
    /// localhost, 127.0.0.1 and echo.test.
    #[arg(long = "name")]
    names: Vec<String>,
    /// Print one JSON line per request on stdout (method, uri, path, query, version,
    /// authority, headers incl. credentials, body_len, tls, sni, alpn, peer, conn_id, status).
    #[arg(long)]
    log_requests: bool,
    /// Generate an RSA CA instead of ECDSA (when no CA is loaded from --tls-dir).
    #[arg(long)]
    rsa: bool,
}

fn fail(msg: impl std::fmt::Display) -> ExitCode {
    eprintln!("echo-origin: {msg}");
    ExitCode::from(2)
}

fn load_or_create_ca(args: &Args, dir: &Path) -> Result<TestCa, String> {
    let crt = dir.join("ca.crt");
    let key = dir.join("ca.key");
    if crt.exists() && key.exists() {
        let c = std::fs::read_to_string(&crt).map_err(|e| format!("{}: {e}", crt.display()))?;
        let k = std::fs::read_to_string(&key).map_err(|e| format!("{}: {e}", key.display()))?;
        return TestCa::from_pem(&c, &k).map_err(|e| format!("{}: {e}", dir.display()));
    }
    let ca = if args.rsa {
        TestCa::try_new_rsa()
    } else {
        TestCa::try_new()
    }
    .map_err(|e| e.to_string())?;
    ca.write_key(dir)
        .map_err(|e| format!("{}: {e}", key.display()))?;
    Ok(ca)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Some(Cmd::Healthcheck { url }) = cli.cmd {
        return healthcheck(&url);
    }
    let args = cli.serve;
    let Some(tls_dir) = args.tls_dir.clone() else {
        return fail("--tls-dir DIR is required");
    };
    let ca = match load_or_create_ca(&args, &tls_dir) {
        Ok(ca) => ca,
        Err(e) => return fail(e),
    };
    let mut names = default_names();
    for n in &args.names {
        if !names.contains(n) {
            names.push(n.clone());
        }
    }
    for a in [args.http.ip(), args.https.ip()] {
        let s = a.to_string();
        if !a.is_unspecified() && !names.contains(&s) {
            names.push(s);
        }
    }
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return fail(e),
    };
    rt.block_on(async move {
        let stop = match shutdown_signal() {
            Ok(s) => s,
            Err(e) => return fail(e),
        };
        let opts = EchoOptions {
            names,
            ca: Some(ca),
        };
        let origin = match EchoOrigin::start_on(opts, args.http, args.https, Some(&tls_dir)).await {
            Ok(o) => o,
            Err(e) => return fail(e),
        };
        // Nobody reads the request log of a standalone origin: keep none (bounded memory).
        origin.set_record_limit(0);
        let mut out = std::io::stdout();
        let _ = writeln!(out, "http={} https={}", origin.http_addr, origin.https_addr);
        let _ = out.flush();
        // After the address line, so that it stays the first line of stdout.
        origin.set_log_requests(args.log_requests);
        stop.await;
        drop(origin);
        ExitCode::SUCCESS
    })
}

/// Registers SIGTERM/SIGINT handlers now (before anything is announced), and returns a
/// future that resolves on the first of them.
fn shutdown_signal() -> std::io::Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    Ok(async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
    })
}

fn healthcheck(url: &str) -> ExitCode {
    use std::io::{BufRead, BufReader};
    use std::time::Duration;
    let Some(rest) = url.strip_prefix("http://") else {
        return fail("healthcheck: only http:// URLs");
    };
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let addr_text = authority.replacen("localhost", "127.0.0.1", 1);
    let addr: SocketAddr = match addr_text.parse() {
        Ok(a) => a,
        Err(_) => return fail(format!("healthcheck: {authority:?} is not IP:PORT")),
    };
    let t = Duration::from_secs(5);
    let check = || -> std::io::Result<bool> {
        let mut s = std::net::TcpStream::connect_timeout(&addr, t)?;
        s.set_read_timeout(Some(t))?;
        s.set_write_timeout(Some(t))?;
        write!(
            s,
            "GET {path} HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\n\r\n"
        )?;
        let mut line = String::new();
        BufReader::new(s).read_line(&mut line)?;
        Ok(line.split_whitespace().nth(1) == Some("200"))
    };
    match check() {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => {
            eprintln!("echo-origin: healthcheck: not 200");
            ExitCode::from(1)
        }
        Err(e) => {
            eprintln!("echo-origin: healthcheck: {e}");
            ExitCode::from(1)
        }
    }
}
