//! Response body plumbing: the scrubbing body (content decoding for scanning is
//! `bottle_core::body::decode`),
//! and completion accounting (bytes, scrubs) reported when a body ends or is
//! dropped.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::header::{HeaderMap, HeaderName};
use http_body::{Body, Frame, SizeHint};

use crate::scrub::{Patterns, StreamScrubber};

pub use bottle_core::body::{decode, parse_codings, BoxBody, BoxError, Coding, ACCEPT_ENCODING};

/// Totals reported when a response body finishes (or is dropped).
#[derive(Debug, Clone, Copy, Default)]
pub struct BodyStats {
    pub bytes: u64,
    pub scrubs: u64,
    /// true when the body reached its end normally
    pub complete: bool,
    /// true when the body ended with an error
    pub errored: bool,
}

type Done = Box<dyn FnOnce(BodyStats) + Send + Sync>;

/// A body that optionally scrubs data (and drops trailers containing a secret),
/// counts bytes and calls `done` once.
pub struct ScrubBody {
    inner: BoxBody,
    scrubber: Option<StreamScrubber>,
    pats: Option<Arc<Patterns>>,
    pending_trailers: Option<HeaderMap>,
    inner_done: bool,
    stats: BodyStats,
    done: Option<Done>,
}

impl ScrubBody {
    pub fn new(
        inner: BoxBody,
        pats: Option<Arc<Patterns>>,
        done: impl FnOnce(BodyStats) + Send + Sync + 'static,
    ) -> ScrubBody {
        ScrubBody {
            inner,
            scrubber: pats.clone().map(StreamScrubber::new),
            pats,
            pending_trailers: None,
            inner_done: false,
            stats: BodyStats::default(),
            done: Some(Box::new(done)),
        }
    }

    fn scrubs(&self) -> u64 {
        self.scrubber.as_ref().map(|s| s.count()).unwrap_or(0) + self.stats.scrubs
    }

    fn report(&mut self) {
        if let Some(done) = self.done.take() {
            let mut st = self.stats;
            st.scrubs = self.scrubs();
            done(st);
        }
    }
}

impl Drop for ScrubBody {
    fn drop(&mut self) {
        if !self.stats.errored && self.inner.is_end_stream() {
            // hyper may skip polling a body that says it is at its end
            self.stats.complete = true;
        }
        self.report();
    }
}

/// Remove every header whose value contains a form; returns how many were removed.
pub fn scrub_headers(headers: &mut HeaderMap, pats: &Patterns) -> u64 {
    let names: Vec<HeaderName> = headers.keys().cloned().collect();
    let mut n = 0;
    for name in names {
        if headers
            .get_all(&name)
            .iter()
            .any(|v| pats.contains(v.as_bytes()))
        {
            // drop the whole header (every value of that name)
            n += headers.get_all(&name).iter().count() as u64;
            headers.remove(&name);
        }
    }
    n
}

impl Body for ScrubBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        loop {
            if this.inner_done {
                if let Some(sc) = this.scrubber.as_mut() {
                    let tail = sc.finish();
                    if !tail.is_empty() {
                        this.stats.bytes += tail.len() as u64;
                        return Poll::Ready(Some(Ok(Frame::data(tail))));
                    }
                }
                if let Some(t) = this.pending_trailers.take() {
                    return Poll::Ready(Some(Ok(Frame::trailers(t))));
                }
                this.stats.complete = true;
                this.report();
                return Poll::Ready(None);
            }
            match Pin::new(&mut this.inner).poll_frame(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(None) => this.inner_done = true,
                Poll::Ready(Some(Err(e))) => {
                    this.stats.errored = true;
                    this.inner_done = true;
                    // never release held bytes after an error: they may be half a secret
                    this.scrubber = None;
                    this.report();
                    return Poll::Ready(Some(Err(e)));
                }
                Poll::Ready(Some(Ok(frame))) => match frame.into_data() {
                    Ok(data) => {
                        let out = match this.scrubber.as_mut() {
                            Some(sc) => sc.push(data),
                            None => data,
                        };
                        if out.is_empty() {
                            continue;
                        }
                        this.stats.bytes += out.len() as u64;
                        return Poll::Ready(Some(Ok(Frame::data(out))));
                    }
                    Err(frame) => {
                        if let Ok(mut t) = frame.into_trailers() {
                            if let Some(p) = &this.pats {
                                this.stats.scrubs += scrub_headers(&mut t, p);
                            }
                            match &mut this.pending_trailers {
                                Some(existing) => existing.extend(t),
                                None => this.pending_trailers = Some(t),
                            }
                        }
                    }
                },
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.done.is_none()
            || (self.scrubber.as_ref().is_none_or(|s| s.held() == 0)
                && self.pending_trailers.is_none()
                && self.inner.is_end_stream())
    }

    fn size_hint(&self) -> SizeHint {
        if self.scrubber.is_some() {
            SizeHint::default()
        } else {
            self.inner.size_hint()
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use async_compression::tokio::write::{BrotliEncoder, GzipEncoder, ZlibEncoder, ZstdEncoder};
    use tokio::io::AsyncWriteExt as _;

    use bottle_core::body::full;
    use http_body_util::BodyExt as _;

    async fn collect(b: impl Body<Data = Bytes, Error = BoxError>) -> Vec<u8> {
        b.collect().await.unwrap().to_bytes().to_vec()
    }

    async fn compress(c: Coding, data: &[u8]) -> Vec<u8> {
        match c {
            Coding::Gzip => {
                let mut e = GzipEncoder::new(Vec::new());
                e.write_all(data).await.unwrap();
                e.shutdown().await.unwrap();
                e.into_inner()
            }
            Coding::Deflate => {
                let mut e = ZlibEncoder::new(Vec::new());
                e.write_all(data).await.unwrap();
                e.shutdown().await.unwrap();
                e.into_inner()
            }
            Coding::Br => {
                let mut e = BrotliEncoder::new(Vec::new());
                e.write_all(data).await.unwrap();
                e.shutdown().await.unwrap();
                e.into_inner()
            }
            Coding::Zstd => {
                let mut e = ZstdEncoder::new(Vec::new());
                e.write_all(data).await.unwrap();
                e.shutdown().await.unwrap();
                e.into_inner()
            }
        }
    }

    #[tokio::test]
    async fn decodes_and_scrubs_every_coding() {
        let pats = Arc::new(Patterns::new(&["s3cr3t-token-value"]).unwrap());
        for c in [Coding::Gzip, Coding::Deflate, Coding::Br, Coding::Zstd] {
            let plain = b"hello s3cr3t-token-value bye".repeat(1000);
            let z = compress(c, &plain).await;
            let decoded = decode(full(z), &[c]).await;
            let (tx, rx) = std::sync::mpsc::channel();
            let body = ScrubBody::new(decoded, Some(pats.clone()), move |st| {
                tx.send(st).unwrap();
            });
            let out = collect(body).await;
            let s = String::from_utf8(out).unwrap();
            assert!(!s.contains("s3cr3t"), "{c:?}");
            assert_eq!(s.matches("[REDACTED by egress]").count(), 1000);
            let st = rx.recv().unwrap();
            assert_eq!(st.scrubs, 1000);
            assert!(st.complete);
            assert_eq!(st.bytes, s.len() as u64);
        }
    }

    #[test]
    fn header_with_a_form_is_dropped() {
        let pats = Patterns::new(&["s3cr3t-token-value"]).unwrap();
        let mut h = HeaderMap::new();
        h.insert("x-echo", "Bearer s3cr3t-token-value".parse().unwrap());
        h.append("x-multi", "fine".parse().unwrap());
        h.append(
            "x-multi",
            hex::encode("s3cr3t-token-value").parse().unwrap(),
        );
        h.insert("x-ok", "ok".parse().unwrap());
        assert_eq!(scrub_headers(&mut h, &pats), 3);
        assert_eq!(h.len(), 1);
        assert!(h.contains_key("x-ok"));
    }
}
