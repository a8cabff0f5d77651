//! Scrubbing a gRPC response: message by message, not as a byte stream.
//!
//! The byte-stream scrubber holds back a body's tail while it could still be the start of a
//! secret's form, and replaces a form with a text of another length. Neither suits gRPC: a
//! bidirectional stream waits for each answer (a held tail stalls it), and a message whose
//! length changed no longer matches its prefix. So each whole message is checked (with the
//! end of the messages before it, for a form split across two) and released whole, or the
//! stream ends there with `grpc-status: INTERNAL` trailers naming egress: nothing of that
//! message, or after it, reaches the agent. A compressed message cannot be checked: egress
//! asks for none (`grpc-accept-encoding: identity`) and ends the stream at one.

use std::sync::Arc;

use bottle_core::grpc::{self, Messages};
use bytes::{Bytes, BytesMut};
use http::HeaderMap;
use zeroize::Zeroizing;

use crate::scrub::Patterns;

/// Why a gRPC response was cut.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Withheld {
    /// A message carried a form of an injected secret.
    Secret,
    /// A compressed message (it cannot be scrubbed).
    Compressed,
    /// Not gRPC framing egress can judge: a message over the size limit, reserved flag
    /// bits, or more unfinished messages than the process holds at once.
    Framing,
}

impl Withheld {
    /// The trailers the agent's client gets in place of the rest of the stream.
    pub fn trailers(self) -> HeaderMap {
        let why = match self {
            Withheld::Secret => "a response message carried an injected credential",
            Withheld::Compressed => "a compressed response message cannot be scrubbed",
            Withheld::Framing => {
                "a response message egress cannot scrub (too large, reserved flag bits, or too many held at once)"
            }
        };
        grpc::status_trailers(
            grpc::STATUS_INTERNAL,
            &format!("blocked by egress: {why}; the rest of the stream was withheld"),
        )
    }
}

/// Message-by-message scrubbing state of one response body.
pub struct GrpcScrub {
    pats: Arc<Patterns>,
    messages: Messages,
    /// The last bytes released (at most [`Patterns::max_hold`]: a form's longest spelling
    /// but one byte), checked with the next message.
    tail: Zeroizing<Vec<u8>>,
}

impl GrpcScrub {
    pub fn new(pats: Arc<Patterns>) -> GrpcScrub {
        GrpcScrub {
            pats,
            messages: Messages::default(),
            tail: Zeroizing::new(Vec::new()),
        }
    }

    /// Bytes of an unfinished message held.
    pub fn held(&self) -> usize {
        self.messages.held()
    }

    /// Feeds a chunk; returns the whole messages that may go to the agent, or why the stream
    /// ends (what was released before stays released; nothing of this chunk goes).
    pub fn push(&mut self, chunk: &[u8]) -> Result<Bytes, Withheld> {
        let msgs = self.messages.push(chunk).map_err(|_| Withheld::Framing)?;
        let mut out = BytesMut::new();
        for m in msgs {
            if m.compressed {
                return Err(Withheld::Compressed);
            }
            let payload = m.payload();
            let mut joined = Zeroizing::new(Vec::with_capacity(self.tail.len() + payload.len()));
            joined.extend_from_slice(&self.tail);
            joined.extend_from_slice(payload);
            if self.pats.contains_or_edge(payload)
                || self.pats.ends_in_fragment(payload)
                || self.pats.contains(&joined)
            {
                return Err(Withheld::Secret);
            }
            // a form spread over messages may be spelled in the longest escapes (an HTML
            // reference per byte is 8 bytes): keep as much as the stream scrubber holds,
            // not only the longest literal form
            let keep = self.pats.max_hold().min(joined.len());
            self.tail = Zeroizing::new(joined[joined.len() - keep..].to_vec());
            out.extend_from_slice(&m.frame);
        }
        Ok(out.freeze())
    }

    /// End of body: an unfinished message is dropped, never released.
    pub fn finish(&mut self) -> bool {
        self.messages.finish().is_ok()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn msg(flag: u8, payload: &[u8]) -> Vec<u8> {
        let mut v = vec![flag];
        v.extend_from_slice(&(payload.len() as u32).to_be_bytes());
        v.extend_from_slice(payload);
        v
    }

    const SECRET: &str = "cnry-grpc-s3cr3t-token";

    fn scrub() -> GrpcScrub {
        GrpcScrub::new(Arc::new(Patterns::new(&[SECRET]).unwrap()))
    }

    #[test]
    fn clean_messages_pass_whole_and_at_once() {
        let mut g = scrub();
        // a message ending in the first byte of the secret is not held (the stream scrubber
        // would hold it, stalling a bidirectional stream)
        let m1 = msg(0, b"hello c");
        assert_eq!(&g.push(&m1).unwrap()[..], &m1[..]);
        let m2 = msg(0, &[0u8, 1, 2, 0xff]);
        assert_eq!(&g.push(&m2[..3]).unwrap()[..], b"");
        assert_eq!(g.held(), 3);
        assert_eq!(&g.push(&m2[3..]).unwrap()[..], &m2[..]);
        assert!(g.finish());
    }

    #[test]
    fn a_form_in_a_message_or_across_two_withholds_the_rest() {
        let b64 = {
            use base64::Engine;
            base64::engine::general_purpose::STANDARD.encode(SECRET)
        };
        for payload in [
            format!("x{SECRET}y"),
            format!("token={b64}"),
            hex::encode(SECRET),
            SECRET[..12].to_string(), // a fragment at the end
        ] {
            let mut g = scrub();
            assert_eq!(g.push(&msg(0, payload.as_bytes())), Err(Withheld::Secret));
        }
        let (a, b) = SECRET.split_at(9);
        let mut g = scrub();
        let first = msg(0, format!("ab {}", &a[..4]).as_bytes());
        assert!(g.push(&first).is_ok());
        let second = msg(0, format!("{}{b} z", &a[4..]).as_bytes());
        assert_eq!(g.push(&second), Err(Withheld::Secret));
    }

    #[test]
    fn a_form_in_the_longest_escapes_across_messages_withholds() {
        // every byte escaped: longer than any literal form, so a tail of the longest literal
        // form lost the start. Under eight bytes of it end the first message (no fragment),
        // the middle the second, the rest the third.
        let html = |b: &[u8]| -> String { b.iter().map(|c| format!("&#x{c:04x};")).collect() };
        let json = |b: &[u8]| -> String { b.iter().map(|c| format!("\\u{c:04x}")).collect() };
        let s = SECRET.as_bytes();
        for esc in [html, json] {
            for (i, j) in [(7, 15), (7, SECRET.len() - 7), (2, 9)] {
                let mut g = scrub();
                assert!(g.push(&msg(0, esc(&s[..i]).as_bytes())).is_ok(), "{i}");
                assert!(
                    g.push(&msg(0, esc(&s[i..j]).as_bytes())).is_ok(),
                    "{i}..{j}"
                );
                assert_eq!(
                    g.push(&msg(0, esc(&s[j..]).as_bytes())),
                    Err(Withheld::Secret),
                    "{j}.."
                );
            }
        }
    }

    #[test]
    fn a_message_ending_in_an_escaped_start_of_a_form_withholds() {
        // what the stream scrubber redacts when a body ends there (a fragment in the view)
        let mut st = crate::scrub::StreamScrubber::new(Arc::new(Patterns::new(&[SECRET]).unwrap()));
        let cut: String = SECRET.as_bytes()[..12]
            .iter()
            .map(|c| format!("&#x{c:04x};"))
            .collect();
        let mut out = st.push(Bytes::from(format!("token: {cut}"))).to_vec();
        out.extend_from_slice(&st.finish());
        assert!(
            !String::from_utf8_lossy(&out).contains("&#x0063;"),
            "stream scrubber"
        );
        let html: String = SECRET.as_bytes()[..12]
            .iter()
            .map(|c| format!("&#x{c:04x};"))
            .collect();
        let mut g = scrub();
        assert_eq!(
            g.push(&msg(0, format!("token: {html}").as_bytes())),
            Err(Withheld::Secret)
        );
        // under eight bytes of it is no fragment
        let mut g = scrub();
        assert!(g.push(&msg(0, b"token: &#x0063;&#x006e;&#x0072;")).is_ok());
    }

    #[test]
    fn compressed_and_truncated() {
        let mut g = scrub();
        assert_eq!(g.push(&msg(1, b"gz")), Err(Withheld::Compressed));
        let mut g = scrub();
        assert_eq!(&g.push(&msg(0, b"abc")[..6]).unwrap()[..], b"");
        assert!(!g.finish());
        let t = Withheld::Secret.trailers();
        assert_eq!(t[grpc::STATUS], "13");
        assert!(t[grpc::MESSAGE]
            .to_str()
            .unwrap()
            .starts_with("blocked by egress"));
    }
}
