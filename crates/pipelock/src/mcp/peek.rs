//! Keeps the first bytes of a request body as it streams (the JSON-RPC method is read from
//! them when the response comes back), without delaying it.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bottle_core::{BoxBody, BoxError};
use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};

/// At most this much of a request body is kept.
pub const PEEK_LIMIT: usize = 64 * 1024;

/// The bytes kept so far (shared with the request handler).
#[derive(Clone, Default)]
pub struct Peeked(Arc<Mutex<Vec<u8>>>);

impl Peeked {
    /// The JSON-RPC method of the body kept so far, if it parses.
    pub fn jsonrpc_method(&self) -> Option<String> {
        let kept = self.0.lock().unwrap_or_else(|p| p.into_inner());
        super::request_method(&kept)
    }
}

/// A request body passed through unchanged while its first [`PEEK_LIMIT`] bytes are kept.
pub struct PeekBody {
    inner: BoxBody,
    kept: Peeked,
}

impl PeekBody {
    pub fn new(inner: BoxBody, kept: Peeked) -> PeekBody {
        PeekBody { inner, kept }
    }
}

impl Body for PeekBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        if let Poll::Ready(Some(Ok(f))) = &polled {
            if let Some(d) = f.data_ref() {
                let mut kept = self.kept.0.lock().unwrap_or_else(|p| p.into_inner());
                let room = PEEK_LIMIT.saturating_sub(kept.len());
                kept.extend_from_slice(&d[..d.len().min(room)]);
            }
        }
        polled
    }
    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }
    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
