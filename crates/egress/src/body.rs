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

use crate::grpc::GrpcScrub;
use crate::scrub::{Patterns, StreamScrubber};

pub use bottle_core::body::{decode, parse_codings, BoxBody, BoxError, Coding, ACCEPT_ENCODING};

/// Totals reported when a response body finishes (or is dropped).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BodyStats {
    pub bytes: u64,
    pub scrubs: u64,
    /// true when the body reached its end normally
    pub complete: bool,
    /// true when the body ended with an error
    pub errored: bool,
    /// a gRPC stream cut by egress (what it withheld, see [`crate::grpc`])
    pub withheld: Option<crate::grpc::Withheld>,
}

type Done = Box<dyn FnOnce(BodyStats) + Send + Sync>;

/// A body that optionally scrubs data (and drops trailers containing a secret),
/// counts bytes and calls `done` once.
pub struct ScrubBody {
    inner: BoxBody,
    scrubber: Option<StreamScrubber>,
    /// gRPC framing: scrubbed message by message instead ([`ScrubBody::grpc`]).
    grpc: Option<GrpcScrub>,
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
            grpc: None,
            pats,
            pending_trailers: None,
            inner_done: false,
            stats: BodyStats::default(),
            done: Some(Box::new(done)),
        }
    }

    /// A gRPC response: whole messages checked and released, or the stream ended with
    /// `grpc-status` trailers at the first that cannot go (see [`crate::grpc`]).
    pub fn grpc(mut self) -> ScrubBody {
        if self.scrubber.take().is_some() {
            self.grpc = self.pats.clone().map(GrpcScrub::new);
        }
        self
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

/// Remove every header whose name or value contains a form, or whose value starts
/// with the end of one or ends with its start (an origin truncating what it echoes:
/// two such headers could hold the two halves); returns how many were removed.
pub fn scrub_headers(headers: &mut HeaderMap, pats: &Patterns) -> u64 {
    let names: Vec<HeaderName> = headers.keys().cloned().collect();
    let mut n = 0;
    for name in names {
        // names arrive lowercased: the view automaton matches any case
        if pats.contains(name.as_str().as_bytes())
            || headers
                .get_all(&name)
                .iter()
                .any(|v| pats.contains_or_edge(v.as_bytes()))
        {
            // drop the whole header (every value of that name)
            n += headers.get_all(&name).iter().count() as u64;
            headers.remove(&name);
        }
    }
    n
}

/// Parse every `Transfer-Encoding` header (in order), `chunked` (which hyper has
/// already removed) and `identity` skipped. A response with a compressed transfer
/// coding and no `Content-Encoding` would otherwise reach the agent still compressed
/// and unscanned. Err(name) for the first coding we cannot decode, and for `chunked`
/// anywhere but last (hyper then reads to close and leaves the framing in the body).
pub fn parse_transfer_codings(headers: &HeaderMap) -> Result<Vec<Coding>, String> {
    let mut names = Vec::new();
    for v in headers.get_all(http::header::TRANSFER_ENCODING) {
        let s = v.to_str().map_err(|_| "non-ASCII".to_string())?;
        names.extend(s.split(',').map(|c| c.trim().to_ascii_lowercase()));
    }
    let mut out = Vec::new();
    let last = names.len().saturating_sub(1);
    for (i, c) in names.iter().enumerate() {
        match c.as_str() {
            "" | "identity" => {}
            "chunked" if i == last => {}
            "gzip" | "x-gzip" => out.push(Coding::Gzip),
            "deflate" => out.push(Coding::Deflate),
            "br" => out.push(Coding::Br),
            "zstd" => out.push(Coding::Zstd),
            other => {
                return Err(other
                    .chars()
                    .filter(|c| c.is_ascii_graphic())
                    .take(40)
                    .collect())
            }
        }
    }
    Ok(out)
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
                Poll::Ready(None) => {
                    this.inner_done = true;
                    // a message cut by the body's end is dropped (never released)
                    if let Some(g) = this.grpc.as_mut() {
                        let _ = g.finish();
                    }
                }
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
                        let out = if let Some(g) = this.grpc.as_mut() {
                            match g.push(&data) {
                                Ok(out) => out,
                                Err(why) => {
                                    // the rest of the stream (and the origin's trailers)
                                    // never reaches the agent
                                    this.stats.withheld = Some(why);
                                    if why == crate::grpc::Withheld::Secret {
                                        this.stats.scrubs += 1;
                                    }
                                    this.grpc = None;
                                    this.inner = bottle_core::body::empty();
                                    this.inner_done = true;
                                    this.pending_trailers = Some(why.trailers());
                                    continue;
                                }
                            }
                        } else {
                            match this.scrubber.as_mut() {
                                Some(sc) => sc.push(data),
                                None => data,
                            }
                        };
                        if out.is_empty() {
                            continue;
                        }
                        this.stats.bytes += out.len() as u64;
                        return Poll::Ready(Some(Ok(Frame::data(out))));
                    }
                    Err(frame) => {
                        if let Ok(mut t) = frame.into_trailers() {
                            if this.stats.withheld.is_some() {
                                continue;
                            }
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
                && self.grpc.as_ref().is_none_or(|g| g.held() == 0)
                && self.pending_trailers.is_none()
                && self.inner.is_end_stream())
    }

    fn size_hint(&self) -> SizeHint {
        if self.scrubber.is_some() || self.grpc.is_some() {
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

    #[tokio::test]
    async fn trailers_with_a_form_in_name_or_value_are_dropped() {
        let secret = "s3cr3t-token-value";
        let pats = Arc::new(Patterns::new(&[secret]).unwrap());
        let mut t = HeaderMap::new();
        t.insert("x-ok", "fine".parse().unwrap());
        t.insert(
            HeaderName::from_bytes(format!("x-{secret}").as_bytes()).unwrap(),
            "1".parse().unwrap(),
        );
        t.insert(
            HeaderName::from_bytes(format!("x-{}", hex::encode(secret)).as_bytes()).unwrap(),
            "2".parse().unwrap(),
        );
        t.insert("x-v", "s3%63r3t-token-value".parse().unwrap());
        let inner = http_body_util::StreamBody::new(futures_util::stream::iter(vec![
            Ok::<_, BoxError>(Frame::data(Bytes::from_static(b"body"))),
            Ok(Frame::trailers(t)),
        ]));
        let body = ScrubBody::new(inner.boxed(), Some(pats), |_| {});
        let c = body.collect().await.unwrap();
        let t = c.trailers().cloned().unwrap();
        assert_eq!(t.len(), 1);
        assert_eq!(t["x-ok"], "fine");
        assert_eq!(&c.to_bytes()[..], b"body");
    }

    #[test]
    fn transfer_codings_decodable_or_named() {
        let h = |v: &[&str]| {
            let mut m = HeaderMap::new();
            for x in v {
                m.append(http::header::TRANSFER_ENCODING, x.parse().unwrap());
            }
            parse_transfer_codings(&m)
        };
        assert_eq!(h(&[]), Ok(vec![]));
        assert_eq!(h(&["chunked"]), Ok(vec![]));
        assert_eq!(h(&["gzip"]), Ok(vec![Coding::Gzip]));
        assert_eq!(h(&["GZIP, chunked"]), Ok(vec![Coding::Gzip]));
        assert_eq!(
            h(&["br", "zstd, deflate", "chunked"]),
            Ok(vec![Coding::Br, Coding::Zstd, Coding::Deflate])
        );
        assert_eq!(h(&["compress, chunked"]), Err("compress".into()));
        // chunked not last: hyper reads to close, the framing stays in the body
        assert_eq!(h(&["chunked, gzip"]), Err("chunked".into()));
        assert_eq!(h(&["gzip;q=1"]), Err("gzip;q=1".into()));
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
        // truncated echoes: the start of the secret at the end, its end at the start
        let mut h = HeaderMap::new();
        h.insert("x-a", "token s3cr3t-tok".parse().unwrap());
        h.insert("x-b", "cr3t-token-value rejected".parse().unwrap());
        h.insert("x-c", "s3cr3t".parse().unwrap());
        assert_eq!(scrub_headers(&mut h, &pats), 2);
        assert!(h.contains_key("x-c"), "under MIN_FRAGMENT bytes is kept");
    }
}
