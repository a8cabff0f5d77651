//! WebSocket (RFC 6455) scrubbing of the server-to-client direction on routes
//! that inject a credential. Frames are parsed as they stream; the payload of
//! each data message goes through a [`StreamScrubber`] and is re-emitted as
//! (possibly more) fragments with corrected lengths, so memory stays bounded
//! whatever the message size. Extensions (compression) are not negotiated on
//! these routes: a frame with RSV bits set, or a masked server frame, ends the
//! connection.

use std::sync::Arc;

use bottle_core::ws_frame::{encode_frame, opcode, FrameHeader};
use bytes::{Buf, Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::scrub::{Patterns, StreamScrubber};

/// Why the WebSocket stream was cut.
#[derive(Debug, thiserror::Error)]
pub enum WsError {
    #[error("frame with RSV bits (an extension egress did not negotiate)")]
    Reserved,
    #[error("masked frame from the server")]
    Masked,
    #[error("continuation frame outside a message")]
    Continuation,
    #[error("invalid control frame")]
    Control,
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
}

enum State {
    Header,
    Data {
        remaining: u64,
        fin: bool,
    },
    Control {
        remaining: usize,
        fin: bool,
        opcode: u8,
        payload: Vec<u8>,
    },
}

struct Message {
    opcode: u8,
    scrubber: StreamScrubber,
    started: bool,
}

/// Streaming frame scrubber for server-to-client bytes.
pub struct WsScrubber {
    pats: Arc<Patterns>,
    inbuf: BytesMut,
    state: State,
    msg: Option<Message>,
    scrubs: u64,
}

impl WsScrubber {
    pub fn new(pats: Arc<Patterns>) -> WsScrubber {
        WsScrubber {
            pats,
            inbuf: BytesMut::new(),
            state: State::Header,
            msg: None,
            scrubs: 0,
        }
    }

    /// Occurrences replaced so far.
    pub fn scrubs(&self) -> u64 {
        self.scrubs + self.msg.as_ref().map(|m| m.scrubber.count()).unwrap_or(0)
    }

    /// Feed server bytes; returns the bytes to send to the client.
    pub fn push(&mut self, data: &[u8]) -> Result<BytesMut, WsError> {
        self.inbuf.extend_from_slice(data);
        let mut out = BytesMut::new();
        loop {
            match &mut self.state {
                State::Header => {
                    let Some(header) = FrameHeader::parse(&self.inbuf) else {
                        return Ok(out);
                    };
                    if header.has_reserved_bits() {
                        return Err(WsError::Reserved);
                    }
                    if header.mask.is_some() {
                        return Err(WsError::Masked);
                    }
                    self.inbuf.advance(header.header_len);
                    let (fin, op, len) = (header.fin, header.opcode, header.payload_len);
                    if header.is_control() {
                        if !header.is_valid_control() {
                            return Err(WsError::Control);
                        }
                        // A valid control payload is at most 125 bytes.
                        self.state = State::Control {
                            remaining: len as usize,
                            fin,
                            opcode: op,
                            payload: Vec::with_capacity(len as usize),
                        };
                    } else {
                        if op == opcode::CONTINUATION {
                            if self.msg.is_none() {
                                return Err(WsError::Continuation);
                            }
                        } else {
                            if self.msg.is_some() {
                                return Err(WsError::Continuation);
                            }
                            self.msg = Some(Message {
                                opcode: op,
                                scrubber: StreamScrubber::new(Arc::clone(&self.pats)),
                                started: false,
                            });
                        }
                        self.state = State::Data {
                            remaining: len,
                            fin,
                        };
                    }
                }
                State::Control {
                    remaining,
                    fin,
                    opcode: op,
                    payload,
                } => {
                    let n = (*remaining).min(self.inbuf.len());
                    payload.extend_from_slice(&self.inbuf[..n]);
                    self.inbuf.advance(n);
                    *remaining -= n;
                    if *remaining > 0 {
                        return Ok(out);
                    }
                    let mut p = std::mem::take(payload);
                    // a close reason is cut at 123 bytes: a truncated echo counts too
                    if self.pats.contains_or_edge(&p) {
                        self.scrubs += 1;
                        // a close frame keeps its status code, loses its reason
                        p.truncate(if *op == opcode::CLOSE {
                            p.len().min(2)
                        } else {
                            0
                        });
                    }
                    encode_frame(&mut out, *fin, *op, None, &p);
                    self.state = State::Header;
                }
                State::Data { remaining, fin } => {
                    let n = usize::try_from(*remaining)
                        .unwrap_or(usize::MAX)
                        .min(self.inbuf.len());
                    let chunk: Bytes = self.inbuf.split_to(n).freeze();
                    *remaining -= n as u64;
                    let done = *remaining == 0;
                    let fin = *fin;
                    let Some(msg) = self.msg.as_mut() else {
                        return Err(WsError::Continuation);
                    };
                    let mut payload = BytesMut::new();
                    payload.extend_from_slice(&msg.scrubber.push(chunk));
                    let last = done && fin;
                    if last {
                        payload.extend_from_slice(&msg.scrubber.finish());
                    }
                    if !payload.is_empty() || last {
                        let op = if msg.started {
                            opcode::CONTINUATION
                        } else {
                            msg.opcode
                        };
                        encode_frame(&mut out, last, op, None, &payload);
                        msg.started = true;
                    }
                    if last {
                        if let Some(m) = self.msg.take() {
                            self.scrubs += m.scrubber.count();
                        }
                    }
                    if done {
                        self.state = State::Header;
                    } else {
                        return Ok(out);
                    }
                }
            }
        }
    }
}

/// Copy `server` -> `client` through a [`WsScrubber`]; returns (bytes read, scrubs).
pub async fn pump<R, W>(mut server: R, mut client: W, pats: Arc<Patterns>) -> (u64, u64)
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut sc = WsScrubber::new(pats);
    let mut buf = vec![0u8; 16 * 1024];
    let mut total = 0u64;
    loop {
        let n = match server.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        total += n as u64;
        match sc.push(&buf[..n]) {
            Ok(out) => {
                if !out.is_empty() && client.write_all(&out).await.is_err() {
                    break;
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "websocket stream cut");
                break;
            }
        }
    }
    let _ = client.shutdown().await;
    (total, sc.scrubs())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    const S: &str = "ws-secret-token-123456";

    /// Decode unmasked frames into (fin, opcode, payload).
    fn frames(mut b: &[u8]) -> Vec<(bool, u8, Vec<u8>)> {
        let mut v = Vec::new();
        while !b.is_empty() {
            let h = FrameHeader::parse(b).unwrap();
            assert!(h.mask.is_none() && !h.has_reserved_bits(), "{h:?}");
            let end = h.header_len + h.payload_len as usize;
            v.push((h.fin, h.opcode, b[h.header_len..end].to_vec()));
            b = &b[end..];
        }
        v
    }

    fn message(fr: &[(bool, u8, Vec<u8>)]) -> Vec<u8> {
        fr.iter()
            .filter(|f| f.1 < 8)
            .flat_map(|f| f.2.clone())
            .collect()
    }

    #[test]
    fn text_message_split_anywhere_is_scrubbed() {
        let pats = Arc::new(Patterns::new(&[S]).unwrap());
        let text = format!("hello {S} and {} bye", hex::encode(S)).repeat(300);
        // fragmented by the server into two frames, with a ping between them
        let (a, b) = text.as_bytes().split_at(4000);
        let mut wire = BytesMut::new();
        encode_frame(&mut wire, false, 1, None, a);
        encode_frame(&mut wire, true, 9, None, b"ping");
        encode_frame(&mut wire, true, 0, None, b);
        encode_frame(&mut wire, true, 8, None, &[3, 232, b'b', b'y', b'e']);
        for step in [1usize, 7, 100, 5000, wire.len()] {
            let mut sc = WsScrubber::new(pats.clone());
            let mut out = BytesMut::new();
            for c in wire.chunks(step) {
                out.extend_from_slice(&sc.push(c).unwrap());
            }
            let fr = frames(&out);
            let msg = String::from_utf8(message(&fr)).unwrap();
            assert!(
                !msg.contains(S) && !msg.contains(&hex::encode(S)),
                "step {step}"
            );
            assert_eq!(msg.matches("[REDACTED by egress]").count(), 600);
            assert_eq!(sc.scrubs(), 600);
            assert_eq!(fr[0].1, 1, "first fragment keeps the text opcode");
            assert!(fr.iter().filter(|f| f.1 < 8).skip(1).all(|f| f.1 == 0));
            let data: Vec<_> = fr.iter().filter(|f| f.1 < 8).collect();
            assert!(data.last().unwrap().0, "last fragment is final");
            assert!(data[..data.len() - 1].iter().all(|f| !f.0));
            assert!(fr.iter().any(|f| f.1 == 9 && f.2 == b"ping"));
            assert!(fr
                .iter()
                .any(|f| f.1 == 8 && f.2 == [3, 232, b'b', b'y', b'e']));
        }
    }

    #[test]
    fn control_frames_and_protocol_errors() {
        let pats = Arc::new(Patterns::new(&[S]).unwrap());
        let mut wire = BytesMut::new();
        let mut reason = vec![3u8, 232];
        reason.extend_from_slice(S.as_bytes());
        encode_frame(&mut wire, true, 8, None, &reason);
        let mut sc = WsScrubber::new(pats.clone());
        let fr = frames(&sc.push(&wire).unwrap());
        assert_eq!(fr, vec![(true, 8, vec![3, 232])]);
        // a reason cut inside the secret (close reasons stop at 123 bytes)
        let mut wire = BytesMut::new();
        let mut reason = vec![3u8, 232];
        reason.extend_from_slice(b"bad token: ");
        reason.extend_from_slice(&S.as_bytes()[..12]);
        encode_frame(&mut wire, true, 8, None, &reason);
        let mut sc = WsScrubber::new(pats.clone());
        let fr = frames(&sc.push(&wire).unwrap());
        assert_eq!(fr, vec![(true, 8, vec![3, 232])]);
        let mut sc = WsScrubber::new(pats.clone());
        assert!(matches!(sc.push(&[0xC1, 0x00]), Err(WsError::Reserved)));
        let mut sc = WsScrubber::new(pats.clone());
        assert!(matches!(
            sc.push(&[0x81, 0x80, 0, 0, 0, 0]),
            Err(WsError::Masked)
        ));
        let mut sc = WsScrubber::new(pats);
        assert!(matches!(sc.push(&[0x80, 0x00]), Err(WsError::Continuation)));
        // an empty final text frame passes through
        let mut sc = WsScrubber::new(Arc::new(Patterns::new(&[S]).unwrap()));
        assert_eq!(
            frames(&sc.push(&[0x81, 0x00]).unwrap()),
            vec![(true, 1, vec![])]
        );
    }

    /// A hostile origin picks header forms the scrubber might mis-split: a non-minimal
    /// 64-bit length and a 16-bit one, cut at every offset (inside the header too). The
    /// credential never reaches the agent and the output does not depend on the cut.
    #[test]
    fn extended_length_headers_cut_at_every_offset_are_scrubbed_alike() {
        let pats = Arc::new(Patterns::new(&[S]).unwrap());
        let small = format!("echo {S}!");
        let mut wire = vec![0x81u8, 127];
        wire.extend_from_slice(&(small.len() as u64).to_be_bytes());
        wire.extend_from_slice(small.as_bytes());
        let big = format!("{} {S} tail", "x".repeat(200));
        encode_frame(&mut wire, true, opcode::BINARY, None, big.as_bytes());
        let whole = frames(&WsScrubber::new(pats.clone()).push(&wire).unwrap());
        assert_eq!(whole.len(), 2);
        assert_eq!((whole[0].1, whole[1].1), (opcode::TEXT, opcode::BINARY));
        let clean = message(&whole);
        assert!(!clean.windows(S.len()).any(|w| w == S.as_bytes()));
        for cut in 0..=wire.len() {
            let mut sc = WsScrubber::new(pats.clone());
            let mut out = sc.push(&wire[..cut]).unwrap();
            out.extend_from_slice(&sc.push(&wire[cut..]).unwrap());
            // Re-fragmenting may differ with the cut; the messages may not.
            let fr = frames(&out);
            assert_eq!(message(&fr), clean, "cut {cut}");
            let starts: Vec<u8> = fr.iter().map(|f| f.1).filter(|&op| op != 0).collect();
            assert_eq!(starts, [opcode::TEXT, opcode::BINARY], "cut {cut}");
            assert_eq!(fr.iter().filter(|f| f.0).count(), 2, "cut {cut}");
            assert_eq!(sc.scrubs(), 2, "cut {cut}");
        }
    }

    /// Frames the scrubber refuses (masked, oversized or fragmented control) let none of
    /// their payload out, whatever it carries.
    #[test]
    fn refused_frames_emit_nothing_of_their_payload() {
        let pats = Arc::new(Patterns::new(&[S]).unwrap());
        let secret_payload = format!("{S} {}", "y".repeat(120));
        let mut masked = Vec::new();
        encode_frame(&mut masked, true, 1, Some([1, 2, 3, 4]), S.as_bytes());
        let mut long_ping = Vec::new();
        encode_frame(
            &mut long_ping,
            true,
            opcode::PING,
            None,
            secret_payload.as_bytes(),
        );
        let mut fragmented_pong = Vec::new();
        encode_frame(
            &mut fragmented_pong,
            false,
            opcode::PONG,
            None,
            S.as_bytes(),
        );
        let cases = [
            (masked, "masked"),
            (long_ping, "control"),
            (fragmented_pong, "control"),
        ];
        for (wire, why) in cases {
            for step in [1usize, 3, wire.len()] {
                let mut sc = WsScrubber::new(pats.clone());
                let mut out = BytesMut::new();
                let mut refused = None;
                for c in wire.chunks(step) {
                    match sc.push(c) {
                        Ok(o) => out.extend_from_slice(&o),
                        Err(e) => {
                            refused = Some(e);
                            break;
                        }
                    }
                }
                assert!(out.is_empty(), "{why} step {step}: {out:?}");
                match (why, refused) {
                    ("masked", Some(WsError::Masked)) | ("control", Some(WsError::Control)) => {}
                    (_, other) => panic!("{why} step {step}: {other:?}"),
                }
            }
        }
    }
}
