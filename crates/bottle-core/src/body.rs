//! The body type every sidecar uses for responses it builds itself.

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Full};

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
}
