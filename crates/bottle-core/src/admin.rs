//! The admin listener (`/healthz`, `/metrics`) and the `healthcheck` client.

use std::convert::Infallible;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use http::{header, HeaderValue, Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

use crate::body::{full, BoxBody};
pub use crate::metrics::Metrics;

/// Default healthcheck URL.
pub const DEFAULT_HEALTH_URL: &str = "http://127.0.0.1:9090/healthz";

fn text(
    status: StatusCode,
    body: impl Into<bytes::Bytes>,
    ctype: &'static str,
) -> Response<BoxBody> {
    let mut r = Response::new(full(body));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(ctype));
    r
}

/// Answer one admin request.
pub fn admin_response(
    req: &Request<Incoming>,
    ready: bool,
    metrics: &Metrics,
) -> Response<BoxBody> {
    admin_route(req.method(), req.uri().path(), ready, metrics)
}

fn admin_route(method: &Method, path: &str, ready: bool, metrics: &Metrics) -> Response<BoxBody> {
    if method != Method::GET && method != Method::HEAD {
        return text(
            StatusCode::METHOD_NOT_ALLOWED,
            "method not allowed\n",
            "text/plain; charset=utf-8",
        );
    }
    match path {
        "/healthz" if ready => text(StatusCode::OK, "ok\n", "text/plain; charset=utf-8"),
        "/healthz" => text(
            StatusCode::SERVICE_UNAVAILABLE,
            "not ready\n",
            "text/plain; charset=utf-8",
        ),
        "/metrics" => text(
            StatusCode::OK,
            metrics.encode(),
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        ),
        _ => text(
            StatusCode::NOT_FOUND,
            "not found\n",
            "text/plain; charset=utf-8",
        ),
    }
}

/// Bind `addr` and serve the admin endpoints until the task is dropped.
pub async fn serve_admin(
    addr: SocketAddr,
    ready: impl Fn() -> bool + Send + Sync + 'static,
    metrics: Arc<Metrics>,
) -> std::io::Result<()> {
    let listener = TcpListener::bind(addr).await?;
    serve_admin_on(listener, ready, metrics).await
}

/// Serve the admin endpoints on an already bound listener (tests bind port 0).
pub async fn serve_admin_on(
    listener: TcpListener,
    ready: impl Fn() -> bool + Send + Sync + 'static,
    metrics: Arc<Metrics>,
) -> std::io::Result<()> {
    let ready = Arc::new(ready);
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "admin accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let ready = ready.clone();
        let metrics = metrics.clone();
        tokio::spawn(async move {
            let svc = service_fn(move |req: Request<Incoming>| {
                let resp = admin_response(&req, ready(), &metrics);
                async move { Ok::<_, Infallible>(resp) }
            });
            let conn = http1::Builder::new()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(Duration::from_secs(10))
                .serve_connection(TokioIo::new(stream), svc);
            if let Err(e) = tokio::time::timeout(Duration::from_secs(60), conn)
                .await
                .unwrap_or(Ok(()))
            {
                tracing::debug!(error = %e, "admin connection ended with an error");
            }
        });
    }
}

/// Parse `http://host:port/path`, `host:port/path` or `host:port` into (authority, path).
fn split_url(url: &str) -> Option<(String, String)> {
    let rest = url.strip_prefix("http://").unwrap_or(url);
    if rest.contains("://") {
        return None;
    }
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/healthz"),
    };
    if authority.is_empty() {
        return None;
    }
    let authority = if authority.contains(':') && !authority.ends_with(']') {
        authority.to_string()
    } else {
        format!("{authority}:80")
    };
    Some((authority, path.to_string()))
}

/// GET the URL with HTTP/1.0 over plain TCP (3 s timeout) and report whether it answered 200.
pub fn healthcheck_ok(url_or_addr: &str) -> Result<(), String> {
    let (authority, path) =
        split_url(url_or_addr).ok_or_else(|| format!("bad healthcheck url `{url_or_addr}`"))?;
    let timeout = Duration::from_secs(3);
    let addr = authority
        .to_socket_addrs()
        .map_err(|e| format!("{authority}: {e}"))?
        .next()
        .ok_or_else(|| format!("{authority}: no address"))?;
    let mut s =
        TcpStream::connect_timeout(&addr, timeout).map_err(|e| format!("connect {addr}: {e}"))?;
    s.set_read_timeout(Some(timeout))
        .map_err(|e| e.to_string())?;
    s.set_write_timeout(Some(timeout))
        .map_err(|e| e.to_string())?;
    let req = format!("GET {path} HTTP/1.0\r\nHost: {authority}\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes())
        .map_err(|e| format!("write: {e}"))?;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 512];
    while buf.len() < 64 * 1024 {
        match s.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) if buf.is_empty() => return Err(format!("read: {e}")),
            Err(_) => break,
        }
        if buf.windows(2).any(|w| w == b"\r\n") {
            break;
        }
    }
    let status_line = String::from_utf8_lossy(&buf);
    let status_line = status_line.lines().next().unwrap_or("");
    let mut parts = status_line.split_whitespace();
    match (parts.next(), parts.next()) {
        (Some(v), Some("200")) if v.starts_with("HTTP/") => Ok(()),
        _ => Err(format!("unhealthy: {status_line}")),
    }
}

/// For the `healthcheck` subcommand: exit 0 when the URL answers 200, else 1 (reason on stderr).
pub fn healthcheck(url_or_addr: &str) -> ExitCode {
    match healthcheck_ok(url_or_addr) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("healthcheck: {e}");
            ExitCode::from(1)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, Ordering};

    #[test]
    fn url_forms() {
        assert_eq!(
            split_url("http://127.0.0.1:9090/healthz"),
            Some(("127.0.0.1:9090".into(), "/healthz".into()))
        );
        assert_eq!(
            split_url("127.0.0.1:9090"),
            Some(("127.0.0.1:9090".into(), "/healthz".into()))
        );
        assert_eq!(
            split_url("localhost/x"),
            Some(("localhost:80".into(), "/x".into()))
        );
        assert_eq!(split_url("https://x/"), None);
        assert_eq!(split_url(""), None);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn healthz_metrics_and_healthcheck() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let ready = Arc::new(AtomicBool::new(false));
        let r2 = ready.clone();
        let metrics = Arc::new(Metrics::new());
        metrics.count_reload(true);
        let task = tokio::spawn(serve_admin_on(
            listener,
            move || r2.load(Ordering::SeqCst),
            metrics,
        ));
        let url = format!("http://{addr}/healthz");
        let u = url.clone();
        let res = tokio::task::spawn_blocking(move || healthcheck_ok(&u))
            .await
            .unwrap();
        let e = res.unwrap_err();
        assert!(e.contains("503"), "{e}");
        ready.store(true, Ordering::SeqCst);
        let u = url.clone();
        assert_eq!(
            tokio::task::spawn_blocking(move || healthcheck(&u))
                .await
                .unwrap(),
            ExitCode::SUCCESS
        );
        let u = format!("{addr}/metrics");
        tokio::task::spawn_blocking(move || healthcheck_ok(&u))
            .await
            .unwrap()
            .unwrap();
        let u = format!("{addr}/nope");
        let e = tokio::task::spawn_blocking(move || healthcheck_ok(&u))
            .await
            .unwrap()
            .unwrap_err();
        assert!(e.contains("404"), "{e}");
        // Read the metrics body with a raw request.
        let body = tokio::task::spawn_blocking(move || {
            let mut s = TcpStream::connect(addr).unwrap();
            s.write_all(b"GET /metrics HTTP/1.0\r\n\r\n").unwrap();
            let mut out = String::new();
            s.read_to_string(&mut out).unwrap();
            out
        })
        .await
        .unwrap();
        assert!(
            body.contains("bottle_reloads_total{result=\"ok\"} 1"),
            "{body}"
        );
        task.abort();
        // Nothing listening: exit code 1.
        let dead = TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap()
            .local_addr()
            .unwrap();
        let e = tokio::task::spawn_blocking(move || healthcheck(&format!("http://{dead}/healthz")))
            .await
            .unwrap();
        assert_eq!(e, ExitCode::from(1));
    }
}
