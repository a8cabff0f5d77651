//! The server side of the pre-receive hook: git's receive-pack runs the hook, the hook
//! connects to `<data-dir>/hook.sock`, and this hands the push to the judge and sends the
//! verdict back. The verdict is also kept for the receive-pack handler (report, audit).

use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};

use crate::hook_protocol::{HookReply, HookRequest};
use crate::judge::judge;
use crate::state::State;
use crate::GateError;

/// Serves hook connections on the unix socket until the process ends.
pub async fn serve_hooks(gate: Arc<State>, listener: tokio::net::UnixListener) {
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                let gate = gate.clone();
                tokio::spawn(async move {
                    if let Err(e) = handle_hook(&gate, stream).await {
                        tracing::warn!(error = %e, "hook connection failed");
                    }
                });
            }
            Err(e) => {
                tracing::warn!(error = %e, "hook socket accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

async fn handle_hook(gate: &State, stream: tokio::net::UnixStream) -> Result<(), GateError> {
    let (rd, mut wr) = stream.into_split();
    let mut line = String::new();
    let mut limited = BufReader::new(rd.take(4 << 20));
    limited
        .read_line(&mut line)
        .await
        .map_err(|e| GateError::Io(e.to_string()))?;
    let reply = match serde_json::from_str::<HookRequest>(&line) {
        Err(e) => HookReply {
            messages: vec![format!("git-gate: bad hook request: {e}")],
            accept: false,
        },
        Ok(req) => match gate.pushes.get(&req.push_id) {
            None => HookReply {
                messages: vec!["git-gate: unknown push".into()],
                accept: false,
            },
            Some(ctx) => {
                let v = judge(gate, &ctx, &req).await;
                let reply = HookReply {
                    messages: v.messages.clone(),
                    accept: v.accept,
                };
                *ctx.verdict.lock().unwrap_or_else(|p| p.into_inner()) = Some(v);
                reply
            }
        },
    };
    let mut text = serde_json::to_string(&reply).map_err(|e| GateError::Io(e.to_string()))?;
    text.push('\n');
    wr.write_all(text.as_bytes())
        .await
        .map_err(|e| GateError::Io(e.to_string()))?;
    wr.shutdown()
        .await
        .map_err(|e| GateError::Io(e.to_string()))?;
    Ok(())
}
