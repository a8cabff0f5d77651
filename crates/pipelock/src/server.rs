//! The agent-facing listener: HTTP/1.1, absolute-form requests and CONNECT.

use std::convert::Infallible;
use std::sync::Arc;

use bottle_core::BoxBody;
use http::{Method, Request, Response};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::idle::IdleIo;
use crate::state::State;

/// Accepts until `shutdown` flips to true.
pub async fn accept_loop(listener: TcpListener, state: Arc<State>) {
    let conn_limit = Arc::new(Semaphore::new(state.limits.max_connections.max(1)));
    let mut shutdown = state.shutdown.clone();
    loop {
        tokio::select! {
            r = listener.accept() => {
                let (stream, _peer) = match r {
                    Ok(x) => x,
                    Err(e) => {
                        // EMFILE and friends: back off a little instead of spinning.
                        tracing::warn!("accept: {e}");
                        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                        continue;
                    }
                };
                match conn_limit.clone().try_acquire_owned() {
                    Ok(permit) => {
                        let st = state.clone();
                        tokio::spawn(serve_agent(st, stream, permit));
                    }
                    Err(_) => {
                        state.metrics.refusal("connection_limit");
                        tokio::spawn(too_busy(stream, state.limits.max_connections));
                    }
                }
            }
            _ = shutdown.changed() => break,
        }
    }
}

async fn too_busy(mut stream: TcpStream, limit: usize) {
    let body = format!("blocked by pipelock: too many connections (limit {limit}); retry later\n");
    let msg = format!(
        "HTTP/1.1 503 Service Unavailable\r\nX-Bottle-Blocked: pipelock\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = tokio::time::timeout(
        std::time::Duration::from_secs(2),
        stream.write_all(msg.as_bytes()),
    )
    .await;
    let _ = stream.shutdown().await;
}

async fn serve_agent(state: Arc<State>, stream: TcpStream, _permit: OwnedSemaphorePermit) {
    let _task = state.tasks.enter();
    let _ = stream.set_nodelay(true);
    let io = TokioIo::new(IdleIo::new(stream, state.limits.idle()));
    let st = state.clone();
    let svc = hyper::service::service_fn(move |req| {
        let st = st.clone();
        async move { Ok::<_, Infallible>(dispatch(st, req).await) }
    });
    let conn = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(state.limits.header_timeout())
        .max_buf_size(state.limits.max_header_bytes.max(8192))
        .max_headers(state.limits.max_headers)
        .serve_connection(io, svc)
        .with_upgrades();
    tokio::pin!(conn);
    let mut shutdown = state.shutdown.clone();
    tokio::select! {
        r = conn.as_mut() => { if let Err(e) = r { tracing::debug!("agent connection: {e}"); } }
        _ = shutdown.changed() => {
            conn.as_mut().graceful_shutdown();
            let _ = conn.await;
        }
    }
}

async fn dispatch(state: Arc<State>, req: Request<Incoming>) -> Response<BoxBody> {
    if req.method() == Method::CONNECT {
        crate::connect::handle(state, req).await
    } else {
        crate::forward::handle_plain(state, req).await
    }
}
