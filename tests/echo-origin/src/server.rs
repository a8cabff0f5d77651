//! Accept loops and per-connection serving.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use crate::handlers::ConnInfo;
use crate::State;

/// Decrements the open-connection gauge when the connection task ends.
struct ConnGuard(Arc<State>);

impl Drop for ConnGuard {
    fn drop(&mut self) {
        self.0.conn_closed();
    }
}

const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(20);

pub(crate) async fn accept_loop(
    listener: TcpListener,
    tls: Option<Arc<rustls::ServerConfig>>,
    state: Arc<State>,
    mut shutdown: watch::Receiver<bool>,
) {
    let acceptor = tls.map(tokio_rustls::TlsAcceptor::from);
    loop {
        let accepted = tokio::select! {
            _ = shutdown.changed() => break,
            r = listener.accept() => r,
        };
        let (stream, peer) = match accepted {
            Ok(x) => x,
            Err(_) => {
                // EMFILE and friends: back off briefly instead of spinning.
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let conn_id = state.conn_opened();
        let guard = ConnGuard(state.clone());
        let state = state.clone();
        let acceptor = acceptor.clone();
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            let _guard = guard;
            serve_conn(stream, peer, conn_id, acceptor, state, shutdown).await;
        });
    }
}

async fn serve_conn(
    stream: TcpStream,
    peer: SocketAddr,
    conn_id: u64,
    acceptor: Option<tokio_rustls::TlsAcceptor>,
    state: Arc<State>,
    shutdown: watch::Receiver<bool>,
) {
    match acceptor {
        None => {
            let info = ConnInfo {
                tls: false,
                sni: None,
                alpn: None,
                peer,
                conn_id,
            };
            serve_io(TokioIo::new(stream), info, state, shutdown).await;
        }
        Some(acceptor) => {
            let tls =
                match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                    Ok(Ok(s)) => s,
                    _ => return,
                };
            let (_, session) = tls.get_ref();
            let info = ConnInfo {
                tls: true,
                sni: session.server_name().map(str::to_string),
                alpn: session
                    .alpn_protocol()
                    .map(|p| String::from_utf8_lossy(p).into_owned()),
                peer,
                conn_id,
            };
            serve_io(TokioIo::new(tls), info, state, shutdown).await;
        }
    }
}

async fn serve_io<I>(
    io: TokioIo<I>,
    info: ConnInfo,
    state: Arc<State>,
    mut shutdown: watch::Receiver<bool>,
) where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let info = Arc::new(info);
    let svc_shutdown = shutdown.clone();
    let svc = service_fn(move |req| {
        let info = info.clone();
        let state = state.clone();
        let shutdown = svc_shutdown.clone();
        async move {
            Ok::<_, std::convert::Infallible>(
                crate::handlers::handle(req, info, state, shutdown).await,
            )
        }
    });
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .keep_alive(true)
        .max_buf_size(1024 * 1024);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(1000)
        .adaptive_window(true)
        .max_header_list_size(1024 * 1024)
        .enable_connect_protocol();
    let conn = builder.serve_connection_with_upgrades(io, svc);
    tokio::select! {
        _ = conn => {}
        _ = shutdown.changed() => {}
    }
}
