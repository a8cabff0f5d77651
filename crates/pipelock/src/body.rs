//! Body wrappers: byte counting, and an audit line written when a response body ends.

use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use bottle_core::BoxError;
use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;

use crate::state::{State, Subject};

pin_project! {
    /// Counts data bytes into a shared counter.
    pub struct CountingBody<B> {
        #[pin]
        inner: B,
        count: Arc<AtomicU64>,
    }
}

impl<B> CountingBody<B> {
    pub fn new(inner: B, count: Arc<AtomicU64>) -> Self {
        CountingBody { inner, count }
    }
}

impl<B: Body<Data = Bytes>> Body for CountingBody<B>
where
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.project();
        match this.inner.poll_frame(cx) {
            Poll::Ready(Some(Ok(f))) => {
                if let Some(d) = f.data_ref() {
                    this.count.fetch_add(d.len() as u64, Ordering::Relaxed);
                }
                Poll::Ready(Some(Ok(f)))
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(e.into()))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    }
    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }
    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Writes the request's audit line once the response body is done (or dropped).
pub struct AuditOnEnd {
    state: Arc<State>,
    subject: Subject,
    status: u16,
    up: Arc<AtomicU64>,
    down: u64,
    started: Instant,
    extra: serde_json::Map<String, serde_json::Value>,
    error: Option<String>,
    dlp: Option<crate::dlp_scan::FindingSlot>,
}

impl AuditOnEnd {
    pub fn new(
        state: Arc<State>,
        subject: Subject,
        status: u16,
        up: Arc<AtomicU64>,
        started: Instant,
        extra: serde_json::Map<String, serde_json::Value>,
    ) -> Self {
        AuditOnEnd {
            state,
            subject,
            status,
            up,
            down: 0,
            started,
            extra,
            error: None,
            dlp: None,
        }
    }

    /// Adds body findings let through in `log` mode to the audit line.
    pub fn with_dlp(mut self, slot: crate::dlp_scan::FindingSlot) -> Self {
        self.dlp = Some(slot);
        self
    }
}

impl Drop for AuditOnEnd {
    fn drop(&mut self) {
        let reason = self.error.take();
        let mut extra = std::mem::take(&mut self.extra);
        if let Some(slot) = &self.dlp {
            let logged = slot.logged();
            if !logged.is_empty() {
                extra.insert(
                    "dlp_body".into(),
                    format!("logged: {}", logged.join(", ")).into(),
                );
            }
        }
        self.state.audit(
            &self.subject,
            "allow",
            reason,
            Some(self.status),
            self.up.load(Ordering::Relaxed),
            self.down,
            self.started,
            extra,
        );
    }
}

pin_project! {
    /// The response body towards the agent.
    pub struct ResponseBody<B> {
        #[pin]
        inner: B,
        audit: AuditOnEnd,
    }
}

impl<B> ResponseBody<B> {
    pub fn new(inner: B, audit: AuditOnEnd) -> Self {
        ResponseBody { inner, audit }
    }
}

impl<B: Body<Data = Bytes>> Body for ResponseBody<B>
where
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.project();
        match this.inner.poll_frame(cx) {
            Poll::Ready(Some(Ok(f))) => {
                if let Some(d) = f.data_ref() {
                    this.audit.down += d.len() as u64;
                }
                Poll::Ready(Some(Ok(f)))
            }
            Poll::Ready(Some(Err(e))) => {
                let e: BoxError = e.into();
                this.audit.error = Some(format!("response body: {e}"));
                Poll::Ready(Some(Err(e)))
            }
            other => other.map(|o| o.map(|r| r.map_err(Into::into))),
        }
    }
    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }
    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
