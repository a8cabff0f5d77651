//! WebSocket (RFC 6455) scrubbing of the server-to-client direction on routes
//! that inject a credential. Frames are parsed as they stream; the payload of
//! each data message goes through a [`StreamScrubber`] and is re-emitted as
//! (possibly more) fragments with corrected lengths, so memory stays bounded
//! whatever the message size. Extensions (compression) are not negotiated on
//! these routes: a frame with RSV bits set, or a masked server frame, ends the
//! connection.

use std::sync::Arc;

use bytes::{Buf, BufMut, Bytes, BytesMut};
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

/// Encode one unmasked (server) frame.
pub fn encode_frame(out: &mut BytesMut, fin: bool, opcode: u8, payload: &[u8]) {
    out.put_u8(if fin { 0x80 } else { 0 } | (opcode & 0x0f));
    let n = payload.len();
    if n < 126 {
        out.put_u8(n as u8);
    } else if n <= usize::from(u16::MAX) {
        out.put_u8(126);
        out.put_u16(n as u16);
    } else {
        out.put_u8(127);
        out.put_u64(n as u64);
    }
    out.extend_from_slice(payload);
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
                    if self.inbuf.len() < 2 {
                        return Ok(out);
                    }
                    let b0 = self.inbuf[0];
                    let b1 = self.inbuf[1];
                    if b0 & 0x70 != 0 {
                        return Err(WsError::Reserved);
                    }
                    if b1 & 0x80 != 0 {
                        return Err(WsError::Masked);
                    }
                    let len7 = b1 & 0x7f;
                    let hlen = match len7 {
                        126 => 4,
                        127 => 10,
                        _ => 2,
                    };
                    if self.inbuf.len() < hlen {
                        return Ok(out);
                    }
                    let len: u64 = match len7 {
                        126 => u64::from(u16::from_be_bytes([self.inbuf[2], self.inbuf[3]])),
                        127 => {
                            let mut b = [0u8; 8];
                            b.copy_from_slice(&self.inbuf[2..10]);
                            u64::from_be_bytes(b)
                        }
                        n => u64::from(n),
                    };
                    self.inbuf.advance(hlen);
                    let fin = b0 & 0x80 != 0;
                    let opcode = b0 & 0x0f;
                    if opcode >= 8 {
                        if len > 125 || !fin {
                            return Err(WsError::Control);
                        }
                        self.state = State::Control {
                            remaining: len as usize,
                            fin,
                            opcode,
                            payload: Vec::with_capacity(len as usize),
                        };
                    } else {
                        if opcode == 0 {
                            if self.msg.is_none() {
                                return Err(WsError::Continuation);
                            }
                        } else {
                            if self.msg.is_some() {
                                return Err(WsError::Continuation);
                            }
                            self.msg = Some(Message {
                                opcode,
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
                    opcode,
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
                        p.truncate(if *opcode == 8 { p.len().min(2) } else { 0 });
                    }
                    encode_frame(&mut out, *fin, *opcode, &p);
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
                        let op = if msg.started { 0 } else { msg.opcode };
                        encode_frame(&mut out, last, op, &payload);
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
            let fin = b[0] & 0x80 != 0;
            let op = b[0] & 0x0f;
            let l7 = b[1] & 0x7f;
            let (len, h) = match l7 {
                126 => (usize::from(u16::from_be_bytes([b[2], b[3]])), 4),
                127 => (
                    u64::from_be_bytes(b[2..10].try_into().unwrap()) as usize,
                    10,
                ),
                n => (usize::from(n), 2),
            };
            v.push((fin, op, b[h..h + len].to_vec()));
            b = &b[h + len..];
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
        encode_frame(&mut wire, false, 1, a);
        encode_frame(&mut wire, true, 9, b"ping");
        encode_frame(&mut wire, true, 0, b);
        encode_frame(&mut wire, true, 8, &[3, 232, b'b', b'y', b'e']);
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
        encode_frame(&mut wire, true, 8, &reason);
        let mut sc = WsScrubber::new(pats.clone());
        let fr = frames(&sc.push(&wire).unwrap());
        assert_eq!(fr, vec![(true, 8, vec![3, 232])]);
        // a reason cut inside the secret (close reasons stop at 123 bytes)
        let mut wire = BytesMut::new();
        let mut reason = vec![3u8, 232];
        reason.extend_from_slice(b"bad token: ");
        reason.extend_from_slice(&S.as_bytes()[..12]);
        encode_frame(&mut wire, true, 8, &reason);
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
}
