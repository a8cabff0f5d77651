//! Bodies in gzip without a `Content-Encoding` saying so (`Transfer-Encoding: gzip`, which
//! the hop-by-hop rules drop, or no label at all): text or untyped responses whose bytes
//! start with the gzip signature are decompressed for judging; the agent gets the bytes as
//! sent. Decompression is bounded ([`MAX_DECODED`]): a body that inflates past it, or that
//! is too long to hold, cannot be judged (refused in block mode).

use bottle_core::body::Coding;
use bytes::{Bytes, BytesMut};
use http_body_util::BodyExt;

/// Decompressed bytes judged at most.
pub const MAX_DECODED: usize = 8 * 1024 * 1024;

/// Whether `b` starts with the gzip signature (magic and the deflate method).
pub fn magic(b: &[u8]) -> bool {
    b.starts_with(&[0x1f, 0x8b, 0x08])
}

pub enum Gunzipped {
    Decoded(Bytes),
    /// Inflates past [`MAX_DECODED`].
    TooLarge,
    /// Not gzip after all (the signature by chance): judged as it is.
    Corrupt,
}

/// Decompresses a whole body, bounded.
pub async fn gunzip(bytes: Bytes) -> Gunzipped {
    let mut decoded =
        bottle_core::body::decode(bottle_core::body::full(bytes), &[Coding::Gzip]).await;
    let mut out = BytesMut::new();
    while let Some(frame) = decoded.frame().await {
        match frame {
            Ok(f) => {
                if let Ok(d) = f.into_data() {
                    out.extend_from_slice(&d);
                    if out.len() > MAX_DECODED {
                        return Gunzipped::TooLarge;
                    }
                }
            }
            Err(_) => return Gunzipped::Corrupt,
        }
    }
    Gunzipped::Decoded(out.freeze())
}
