//! `echo-origin` binary: serves the test origin until SIGTERM/SIGINT.
#![forbid(unsafe_code)]

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use echo_origin::{default_names, EchoOptions, EchoOrigin, TestCa};

/// Test origin: HTTP/1.1 + HTTP/2 over plain TCP and TLS; echo, SSE, download, upload,
/// WebSocket, slow, status, redirect and reflect endpoints.
#[derive(Parser, Debug)]
#[command(name = "echo-origin", version)]
struct Args {
    /// Plain HTTP listen address (IP:PORT; port 0 = any).
    #[arg(long, default_value = "127.0.0.1:0")]
    http: SocketAddr,
    /// TLS listen address (IP:PORT; port 0 = any).
    #[arg(long, default_value = "127.0.0.1:0")]
    https: SocketAddr,
    /// Directory for ca.crt (+ ca.key). If both exist they are loaded, otherwise a fresh
    /// ECDSA CA is generated and written there.
    #[arg(long)]
    tls_dir: PathBuf,
    /// Extra SAN for the TLS leaf (DNS name or IP literal); repeatable. Added to
    /// localhost, 127.0.0.1 and echo.test.
    #[arg(long = "name")]
    names: Vec<String>,
    /// Generate an RSA CA instead of ECDSA (when no CA is loaded from --tls-dir).
    #[arg(long)]
    rsa: bool,
}

fn fail(msg: impl std::fmt::Display) -> ExitCode {
    eprintln!("echo-origin: {msg}");
    ExitCode::from(2)
}

fn load_or_create_ca(args: &Args) -> Result<TestCa, String> {
    let crt = args.tls_dir.join("ca.crt");
    let key = args.tls_dir.join("ca.key");
    if crt.exists() && key.exists() {
        let c = std::fs::read_to_string(&crt).map_err(|e| format!("{}: {e}", crt.display()))?;
        let k = std::fs::read_to_string(&key).map_err(|e| format!("{}: {e}", key.display()))?;
        return TestCa::from_pem(&c, &k).map_err(|e| format!("{}: {e}", args.tls_dir.display()));
    }
    let ca = if args.rsa {
        TestCa::try_new_rsa()
    } else {
        TestCa::try_new()
    }
    .map_err(|e| e.to_string())?;
    ca.write_key(&args.tls_dir)
        .map_err(|e| format!("{}: {e}", key.display()))?;
    Ok(ca)
}

fn main() -> ExitCode {
    let args = Args::parse();
    let ca = match load_or_create_ca(&args) {
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
        let opts = EchoOptions {
            names,
            ca: Some(ca),
        };
        let origin =
            match EchoOrigin::start_on(opts, args.http, args.https, Some(&args.tls_dir)).await {
                Ok(o) => o,
                Err(e) => return fail(e),
            };
        let mut out = std::io::stdout();
        let _ = writeln!(out, "http={} https={}", origin.http_addr, origin.https_addr);
        let _ = out.flush();
        if let Err(e) = shutdown_signal().await {
            return fail(e);
        }
        drop(origin);
        ExitCode::SUCCESS
    })
}

async fn shutdown_signal() -> std::io::Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    Ok(())
}
