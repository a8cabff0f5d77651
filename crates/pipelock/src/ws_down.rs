//! Prompt injection in WebSocket messages the origin sends to the agent (`dlp.responses`).
//!
//! Text messages are judged as they arrive, fragments reassembled: each message is one
//! [`InjectionStream`], and its frames are held until the part of the payload they carry is
//! judged (the stream holds back at most [`bottle_dlp::injection::INJECTION_HOLD`] bytes, so
//! the hold is that plus one frame), so in block mode a refused message reaches the agent in
//! no judged-unsafe part: the copy ends and the agent gets a close (1008). Recent messages are
//! also read together ([`Window`]): an instruction sent as token deltas, one word a message,
//! is still seen. Close reasons are judged too (a client may show them). Binary messages are
//! judged by their printable runs ([`BinaryJudge`], as binary bodies are) and released
//! unchanged; from a binary frame over [`MAX_FRAME`] on, the rest of its message is copied
//! as it comes (streamed, any size). No extension is negotiated (pipelock refuses a 101
//! that names one), so a frame with an RSV bit set is refused: it could be compressed.
//! In warn mode frames go out at once and are judged on the side; each detector is reported
//! once.

use std::collections::VecDeque;

use bottle_core::routes::ScanAction;
use bottle_core::ws_frame::{apply_mask, opcode, FrameHeader, MAX_CONTROL_PAYLOAD};
use bottle_dlp::injection::{scan_injection, ContentKind, InjectionStream};
use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::response::binary::BinaryJudge;
use crate::response::judge::{Window, SSE_WINDOW};
use crate::response::sse::Pushed;
use crate::ws_scan::{WsScanError, MAX_FRAME};

/// Where findings in this direction are reported (audit line, metrics).
pub const PLACE: &str = "websocket message";

/// How a message's payload is read: text as text, binary by its printable runs.
enum Reader {
    Text(Box<InjectionStream>),
    Binary(Box<BinaryJudge>),
}

impl Reader {
    /// Payload bytes now judged (released), or the detector that found something.
    fn push(&mut self, payload: &[u8], action: ScanAction) -> Result<usize, &'static str> {
        match self {
            Reader::Text(s) => s.push(payload).map(|r| r.len()).map_err(|f| f.detector),
            Reader::Binary(b) => first_finding(b.push(payload, action)),
        }
    }

    fn finish(&mut self, action: ScanAction) -> Result<(), &'static str> {
        match self {
            Reader::Text(s) => s.finish().map(|_| ()).map_err(|f| f.detector),
            Reader::Binary(b) => first_finding(b.finish(action)).map(|_| ()),
        }
    }
}

fn first_finding(p: Pushed) -> Result<usize, &'static str> {
    match p.blocked.or(p.warned.into_iter().next()) {
        Some(h) => Err(h.detector),
        None => Ok(p.release.len()),
    }
}

/// A data message in progress.
struct TextMessage {
    reader: Reader,
    binary: bool,
    /// Frames not forwarded yet, each with the payload offset where it ends.
    held: VecDeque<(BytesMut, usize)>,
    /// Payload bytes fed to the stream, and released by it.
    fed: usize,
    released: usize,
    /// The message's last [`SSE_WINDOW`] bytes or so, for the window of recent messages.
    tail: Vec<u8>,
}

impl TextMessage {
    fn new(binary: bool) -> Self {
        TextMessage {
            reader: if binary {
                Reader::Binary(Box::default())
            } else {
                Reader::Text(Box::new(InjectionStream::new(ContentKind::Text)))
            },
            binary,
            held: VecDeque::new(),
            fed: 0,
            released: 0,
            tail: Vec::new(),
        }
    }

    fn keep_tail(&mut self, payload: &[u8]) {
        self.tail.extend_from_slice(payload);
        if self.tail.len() > 2 * SSE_WINDOW {
            let cut = self.tail.len() - SSE_WINDOW;
            self.tail.drain(..cut);
        }
    }
}

enum Message {
    None,
    Judged(Box<TextMessage>),
    /// The rest of a message passes as sent (a frame too large to judge came first).
    Passing,
}

/// Judges what the origin sends and copies it to the agent (`to`). Ok: the origin ended the
/// stream (bytes forwarded); Err(Injection) in block mode when a message is refused (nothing
/// of its unjudged part was written), other errors when the stream cannot be judged.
pub async fn pump_down<R, W>(
    mut from: R,
    to: &mut W,
    action: ScanAction,
    mut on_warn: impl FnMut(&'static str),
) -> Result<u64, WsScanError>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let block = action == ScanAction::Block;
    let mut warned: Vec<&'static str> = Vec::new();
    let mut warn = |d: &'static str| {
        if !warned.contains(&d) {
            warned.push(d);
            on_warn(d);
        }
    };
    let mut buf = BytesMut::with_capacity(16 * 1024);
    let mut window = Window::default();
    let mut message = Message::None;
    // Payload bytes of a passed-through frame still to copy as they come.
    let mut passing: u64 = 0;
    let mut sent = 0u64;
    let mut payload = Vec::new();
    loop {
        if passing > 0 {
            if buf.is_empty() && from.read_buf(&mut buf).await? == 0 {
                return Ok(sent);
            }
            let n = buf
                .len()
                .min(usize::try_from(passing).unwrap_or(usize::MAX));
            let part = buf.split_to(n);
            to.write_all(&part).await?;
            sent += n as u64;
            passing -= n as u64;
            if passing == 0 {
                to.flush().await?;
            }
            continue;
        }
        let parsed = FrameHeader::parse(&buf);
        let Some(h) = parsed else {
            if from.read_buf(&mut buf).await? == 0 {
                // A message still held never completes.
                return Ok(sent);
            }
            continue;
        };
        if h.has_reserved_bits() {
            return Err(WsScanError::Reserved);
        }
        let data_judged = match (h.opcode, &message) {
            (opcode::TEXT, _) => true,
            (opcode::BINARY, _) => h.payload_len <= MAX_FRAME,
            (opcode::CONTINUATION, Message::Judged(m)) => !m.binary || h.payload_len <= MAX_FRAME,
            _ => false,
        };
        if h.is_control() && h.payload_len > MAX_CONTROL_PAYLOAD as u64 {
            return Err(WsScanError::TooLarge(h.payload_len));
        }
        let judged = h.is_control() || data_judged;
        if !judged || (!block && h.payload_len > MAX_FRAME) {
            // A binary frame too large to judge (or, in warn mode, a text one): it and the
            // rest of its message are copied as they come, after what is held of it.
            if let Message::Judged(m) = &mut message {
                for (f, _) in m.held.drain(..) {
                    to.write_all(&f).await?;
                    sent += f.len() as u64;
                }
            }
            message = if h.fin {
                Message::None
            } else {
                Message::Passing
            };
            let head = buf.split_to(h.header_len);
            to.write_all(&head).await?;
            sent += head.len() as u64;
            passing = h.payload_len;
            if passing == 0 {
                to.flush().await?;
            }
            continue;
        }
        if h.payload_len > MAX_FRAME {
            return Err(WsScanError::TooLarge(h.payload_len));
        }
        // At most MAX_FRAME plus a header: fits a usize.
        let need = h.frame_len() as usize;
        if buf.len() < need {
            if from.read_buf(&mut buf).await? == 0 {
                return Ok(sent);
            }
            continue;
        }
        let frame = buf.split_to(need);
        payload.clear();
        payload.extend_from_slice(&frame[h.header_len..]);
        if let Some(key) = h.mask {
            apply_mask(&mut payload, key, 0);
        }
        if h.is_control() {
            if h.is_close() && payload.len() > 2 {
                if let Some(f) = scan_injection(&payload[2..], ContentKind::Text).first() {
                    if block {
                        return Err(WsScanError::Injection(f.detector));
                    }
                    warn(f.detector);
                }
            }
            to.write_all(&frame).await?;
            to.flush().await?;
            sent += frame.len() as u64;
            continue;
        }
        if h.opcode == opcode::TEXT || h.opcode == opcode::BINARY {
            // A new message: one left open is dropped (it never completed).
            let binary = h.opcode == opcode::BINARY;
            message = Message::Judged(Box::new(TextMessage::new(binary)));
        }
        let Message::Judged(msg) = &mut message else {
            continue;
        };
        if !msg.binary {
            msg.keep_tail(&payload);
        }
        msg.fed += payload.len();
        let mut finding = match msg.reader.push(&payload, action) {
            Ok(released) => {
                msg.released += released;
                None
            }
            Err(d) => Some(d),
        };
        if !block {
            to.write_all(&frame).await?;
            to.flush().await?;
            sent += frame.len() as u64;
        } else if finding.is_none() {
            msg.held.push_back((frame, msg.fed));
        }
        if h.fin && finding.is_none() {
            finding = msg.reader.finish(action).err();
            if finding.is_none() && !msg.binary {
                let text = String::from_utf8_lossy(&msg.tail).into_owned();
                if !window.is_empty() {
                    finding = window
                        .scan_with(&text, action, PLACE)
                        .first()
                        .map(|h| h.detector);
                }
                window.push(text);
            }
            if finding.is_none() {
                msg.released = msg.fed;
            }
        }
        if let Some(d) = finding {
            if block {
                return Err(WsScanError::Injection(d));
            }
            warn(d);
        }
        if block {
            let mut wrote = false;
            while msg
                .held
                .front()
                .is_some_and(|(_, end)| *end <= msg.released)
            {
                if let Some((f, _)) = msg.held.pop_front() {
                    to.write_all(&f).await?;
                    sent += f.len() as u64;
                    wrote = true;
                }
            }
            if wrote {
                to.flush().await?;
            }
        }
        if h.fin {
            message = Message::None;
        }
    }
}
