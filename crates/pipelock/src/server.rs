//! The agent-facing listener: HTTP/1.1, absolute-form requests and CONNECT, served by the
//! shared bottle-core accept loop (connection cap, idle and header timeouts, head caps, drain).

use std::sync::Arc;

use bottle_core::serve::{serve, ServeOptions};
use bottle_core::BoxBody;
use http::{Method, Request, Response};
use hyper::body::Incoming;
use tokio::net::TcpListener;

use crate::state::{State, COMPONENT};

/// Accepts until `shutdown` flips to true, then drains (bounded by `--drain-secs`).
pub async fn accept_loop(listener: TcpListener, state: Arc<State>) {
    let metrics = state.metrics.clone();
    let opts = ServeOptions::new(COMPONENT, state.limits.serve.clone())
        .on_refusal(move |kind| metrics.refusal_label(kind))
        .tracker(state.tasks.tracker());
    let mut shutdown = state.shutdown.clone();
    let st = state.clone();
    serve(
        listener,
        opts,
        move |req| dispatch(st.clone(), req),
        async move {
            let _ = shutdown.wait_for(|s| *s).await;
        },
    )
    .await;
}

async fn dispatch(state: Arc<State>, req: Request<Incoming>) -> Response<BoxBody> {
    if req.method() == Method::CONNECT {
        crate::connect::handle(state, req).await
    } else {
        crate::forward::handle_plain(state, req).await
    }
}
