//! The body type every sidecar uses for responses it builds itself, and content decoding
//! (`Content-Encoding`) for the bodies a sidecar has to scan.

use async_compression::tokio::bufread::{
    BrotliDecoder, DeflateDecoder, GzipDecoder, ZlibDecoder, ZstdDecoder,
};
use bytes::Bytes;
use futures_util::TryStreamExt as _;
use http::header::HeaderMap;
use http_body::{Body, Frame, SizeHint};
use http_body_util::{BodyDataStream, BodyExt, Empty, Full, StreamBody};
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::io::{AsyncBufRead, AsyncBufReadExt as _, BufReader};
use tokio_util::io::{ReaderStream, StreamReader};

/// A boxed, thread-safe error.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
/// A boxed body of `Bytes` frames.
pub type BoxBody = http_body_util::combinators::BoxBody<Bytes, BoxError>;

/// A body holding exactly these bytes.
pub fn full(b: impl Into<Bytes>) -> BoxBody {
    Full::new(b.into()).map_err(|never| match never {}).boxed()
}

/// An empty body.
pub fn empty() -> BoxBody {
    Empty::<Bytes>::new()
        .map_err(|never| match never {})
        .boxed()
}

/// What an [`ObservedBody`] reports about the frames passing through it.
pub trait BodyObserver {
    /// A data frame of `len` bytes passed.
    fn on_data(&mut self, len: usize) {
        let _ = len;
    }
    /// The inner body failed (the error is passed on after this).
    fn on_error(&mut self, error: &BoxError) {
        let _ = error;
    }
}

pin_project_lite::pin_project! {
    /// Passes `inner`'s frames through unchanged (errors boxed), telling `observer` about
    /// each data frame and error. End-of-body work belongs in the observer's `Drop`, which
    /// runs whether the body ended or was dropped early.
    pub struct ObservedBody<B, O> {
        #[pin]
        inner: B,
        observer: O,
    }
}

impl<B, O> ObservedBody<B, O> {
    pub fn new(inner: B, observer: O) -> Self {
        ObservedBody { inner, observer }
    }
}

impl<B, O> Body for ObservedBody<B, O>
where
    B: Body<Data = Bytes>,
    B::Error: Into<BoxError>,
    O: BodyObserver,
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
                    this.observer.on_data(d.len());
                }
                Poll::Ready(Some(Ok(f)))
            }
            Poll::Ready(Some(Err(e))) => {
                let e: BoxError = e.into();
                this.observer.on_error(&e);
                Poll::Ready(Some(Err(e)))
            }
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

/// A content coding we can decode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Coding {
    Gzip,
    Deflate,
    Br,
    Zstd,
}

/// Parse every `Content-Encoding` header (in order). `identity` is skipped.
/// Err(name) for the first coding we cannot decode.
pub fn parse_codings(headers: &HeaderMap) -> Result<Vec<Coding>, String> {
    let mut out = Vec::new();
    for v in headers.get_all(http::header::CONTENT_ENCODING) {
        let s = v.to_str().map_err(|_| "non-ASCII".to_string())?;
        for c in s.split(',') {
            let c = c.trim().to_ascii_lowercase();
            match c.as_str() {
                "" | "identity" => {}
                "gzip" | "x-gzip" => out.push(Coding::Gzip),
                "deflate" => out.push(Coding::Deflate),
                "br" => out.push(Coding::Br),
                "zstd" => out.push(Coding::Zstd),
                other => return Err(truncate(other, 40)),
            }
        }
    }
    Ok(out)
}

fn truncate(s: &str, n: usize) -> String {
    s.chars().filter(|c| c.is_ascii_graphic()).take(n).collect()
}

/// An `Accept-Encoding` naming exactly the codings [`decode`] understands.
pub const ACCEPT_ENCODING: &str = "gzip, deflate, br, zstd";

type Reader = Box<dyn AsyncBufRead + Send + Sync + Unpin>;

/// Decode `body` through `codings` (applied in header order, so decoded in reverse).
pub async fn decode(body: BoxBody, codings: &[Coding]) -> BoxBody {
    if codings.is_empty() {
        return body;
    }
    let stream = BodyDataStream::new(body).map_err(std::io::Error::other);
    let mut reader: Reader = Box::new(StreamReader::new(stream));
    for c in codings.iter().rev() {
        reader = match c {
            Coding::Gzip => {
                let mut d = GzipDecoder::new(reader);
                d.multiple_members(true);
                Box::new(BufReader::new(d))
            }
            Coding::Br => Box::new(BufReader::new(BrotliDecoder::new(reader))),
            Coding::Zstd => Box::new(BufReader::new(ZstdDecoder::new(reader))),
            Coding::Deflate => {
                // "deflate" should be zlib-wrapped; some servers send raw deflate.
                let zlib = match reader.fill_buf().await {
                    Ok(b) if b.len() >= 2 => {
                        b[0] & 0x0f == 8 && ((u16::from(b[0]) << 8) | u16::from(b[1])) % 31 == 0
                    }
                    _ => true,
                };
                if zlib {
                    Box::new(BufReader::new(ZlibDecoder::new(reader)))
                } else {
                    Box::new(BufReader::new(DeflateDecoder::new(reader)))
                }
            }
        };
    }
    let frames = ReaderStream::with_capacity(reader, 16 * 1024)
        .map_ok(Frame::data)
        .map_err(|e| -> BoxError { Box::new(e) });
    StreamBody::new(frames).boxed()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn full_and_empty_collect() {
        let b = full("hello").collect().await.map(|c| c.to_bytes()).ok();
        assert_eq!(b.as_deref(), Some(&b"hello"[..]));
        let e = empty().collect().await.map(|c| c.to_bytes()).ok();
        assert_eq!(e.map(|b| b.len()), Some(0));
    }

    async fn collect(b: BoxBody) -> Vec<u8> {
        b.collect().await.unwrap().to_bytes().to_vec()
    }

    async fn compress(c: Coding, data: &[u8]) -> Vec<u8> {
        use async_compression::tokio::write::{
            BrotliEncoder, GzipEncoder, ZlibEncoder, ZstdEncoder,
        };
        use tokio::io::AsyncWriteExt as _;
        async fn run<W: tokio::io::AsyncWrite + Unpin>(mut e: W, data: &[u8]) -> W {
            e.write_all(data).await.unwrap();
            e.shutdown().await.unwrap();
            e
        }
        match c {
            Coding::Gzip => run(GzipEncoder::new(Vec::new()), data).await.into_inner(),
            Coding::Deflate => run(ZlibEncoder::new(Vec::new()), data).await.into_inner(),
            Coding::Br => run(BrotliEncoder::new(Vec::new()), data).await.into_inner(),
            Coding::Zstd => run(ZstdEncoder::new(Vec::new()), data).await.into_inner(),
        }
    }

    #[tokio::test]
    async fn decodes_every_coding() {
        let plain = b"hello body bytes ".repeat(5000);
        for c in [Coding::Gzip, Coding::Deflate, Coding::Br, Coding::Zstd] {
            let z = compress(c, &plain).await;
            assert_ne!(z, plain);
            assert_eq!(collect(decode(full(z), &[c]).await).await, plain, "{c:?}");
        }
        assert_eq!(collect(decode(full("as is"), &[]).await).await, b"as is");
    }

    #[tokio::test]
    async fn raw_deflate_chained_codings_and_gzip_members() {
        let mut e = async_compression::tokio::write::DeflateEncoder::new(Vec::new());
        tokio::io::AsyncWriteExt::write_all(&mut e, b"raw deflate body")
            .await
            .unwrap();
        tokio::io::AsyncWriteExt::shutdown(&mut e).await.unwrap();
        let out = collect(decode(full(e.into_inner()), &[Coding::Deflate]).await).await;
        assert_eq!(out, b"raw deflate body");
        let inner = compress(Coding::Gzip, b"twice").await;
        let outer = compress(Coding::Br, &inner).await;
        let out = collect(decode(full(outer), &[Coding::Gzip, Coding::Br]).await).await;
        assert_eq!(out, b"twice");
        // a second gzip member is decoded too (nothing after the first is lost)
        let mut two = compress(Coding::Gzip, b"first ").await;
        two.extend(compress(Coding::Gzip, b"second").await);
        let out = collect(decode(full(two), &[Coding::Gzip]).await).await;
        assert_eq!(out, b"first second");
    }

    #[tokio::test]
    async fn corrupt_input_is_an_error_not_a_short_body() {
        let body = decode(full("not gzip at all"), &[Coding::Gzip]).await;
        assert!(body.collect().await.is_err());
    }

    #[test]
    fn parse_codings_rejects_unknown() {
        let mut h = HeaderMap::new();
        assert_eq!(parse_codings(&h).unwrap(), vec![]);
        h.append("content-encoding", "gzip".parse().unwrap());
        h.append("content-encoding", "identity, BR".parse().unwrap());
        assert_eq!(parse_codings(&h).unwrap(), vec![Coding::Gzip, Coding::Br]);
        h.append("content-encoding", "x-unknown".parse().unwrap());
        assert_eq!(parse_codings(&h).unwrap_err(), "x-unknown");
        let mut h = HeaderMap::new();
        h.insert(
            "content-encoding",
            http::HeaderValue::from_bytes(b"gz\xffip").unwrap(),
        );
        assert_eq!(parse_codings(&h).unwrap_err(), "non-ASCII");
    }

    #[tokio::test]
    async fn observed_body_counts_data_and_sees_errors() {
        #[derive(Default)]
        struct Seen {
            bytes: usize,
            frames: usize,
            errors: Vec<String>,
        }
        impl BodyObserver for &mut Seen {
            fn on_data(&mut self, len: usize) {
                self.bytes += len;
                self.frames += 1;
            }
            fn on_error(&mut self, e: &BoxError) {
                self.errors.push(e.to_string());
            }
        }
        let mut seen = Seen::default();
        let out = ObservedBody::new(full("hello world"), &mut seen)
            .collect()
            .await
            .unwrap()
            .to_bytes();
        assert_eq!(&out[..], b"hello world");
        assert_eq!((seen.bytes, seen.frames), (11, 1));
        assert!(seen.errors.is_empty());

        let mut seen = Seen::default();
        let bad = decode(full("not gzip"), &[Coding::Gzip]).await;
        assert!(ObservedBody::new(bad, &mut seen).collect().await.is_err());
        assert_eq!(seen.errors.len(), 1);
        assert_eq!(seen.bytes, 0);
    }
}
