//! DLP on WebSocket messages the agent sends through an intercepted tunnel: client frames are
//! parsed and unmasked, and what they carry is scanned before anything is forwarded.
//! Data frames (text, binary, continuation) form one stream scanned across frame and
//! message boundaries with an overlap window ([`bottle_dlp::StreamScanner::check`]), so a
//! secret split over fragments is found wherever it is cut, and control frames (ping, pong,
//! close) interleaved between fragments do not break it up: their payloads are a second
//! stream. Fragments of a data message are held back until the frame with FIN is judged, so
//! a refused message reaches the origin in no part; control frames pass at once (RFC 6455
//! 5.4 lets them interleave). Held data is bounded ([`HOLD_LIMIT`]): past it, the oldest
//! fragments (already scanned) go on while at least [`STREAM_OVERLAP`] payload bytes stay
//! held, the most a secret found later can reach back (as request bodies do). Memory: the
//! hold plus one frame ([`MAX_FRAME`]); messages of any length are scanned. Compression
//! extensions are not negotiated (pipelock strips `Sec-WebSocket-Extensions`), so payloads
//! are scanned as sent and a frame with an RSV bit set is refused.

use std::collections::VecDeque;

use bottle_core::ws_frame::{
    apply_mask, close_code, close_frame, opcode, FrameBoundaries, FrameHeader,
};
use bottle_dlp::{Detector, StreamScanner, STREAM_OVERLAP};
use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// Largest client frame accepted (bigger frames close the connection).
pub const MAX_FRAME: u64 = 1 << 20;
/// Frame bytes of an unfinished data message held back before the oldest fragments are
/// released (each of them scanned, with [`STREAM_OVERLAP`] payload bytes still held behind).
pub const HOLD_LIMIT: usize = 1 << 20;

#[derive(Debug, thiserror::Error)]
pub enum WsScanError {
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("WebSocket frame of {0} bytes exceeds the limit")]
    TooLarge(u64),
    #[error("secret detected in a WebSocket message: {0}")]
    Secret(&'static str),
    #[error("prompt injection in a WebSocket message from the origin: {0}")]
    Injection(&'static str),
    #[error("WebSocket frame with reserved bits set (an extension such as compression) cannot be scanned")]
    Reserved,
}

impl WsScanError {
    /// The close frame the agent gets (unmasked), if this error refuses the session.
    pub fn close_for_agent(&self) -> Option<Vec<u8>> {
        let code = match self {
            WsScanError::Secret(_) | WsScanError::Reserved | WsScanError::Injection(_) => {
                close_code::POLICY_VIOLATION
            }
            WsScanError::TooLarge(_) => close_code::MESSAGE_TOO_BIG,
            WsScanError::Io(_) => return None,
        };
        Some(close_frame(
            code,
            &format!("blocked by pipelock: {self}"),
            None,
        ))
    }
}

/// Closes the upstream side with 1008 (best effort; a partial message never completes).
/// The reason does not say what was found: the origin may be the agent's accomplice.
async fn refuse_upstream<W: AsyncWrite + Unpin>(to: &mut W) {
    let close = close_frame(
        close_code::POLICY_VIOLATION,
        "policy violation",
        Some(rand::random()),
    );
    let _ = to.write_all(&close).await;
    let _ = to.shutdown().await;
}

/// Fragments of the data message in progress, not yet forwarded.
#[derive(Default)]
struct Held {
    /// Raw frames as received, with their payload lengths.
    frames: VecDeque<(BytesMut, usize)>,
    raw: usize,
    payload: usize,
}

impl Held {
    fn push(&mut self, frame: BytesMut, payload: usize) {
        self.raw += frame.len();
        self.payload += payload;
        self.frames.push_back((frame, payload));
    }

    /// The oldest fragment, if the hold is over its bound and what stays behind still
    /// covers the overlap a later finding can reach back into.
    fn release_one(&mut self) -> Option<BytesMut> {
        let &(ref f, n) = self.frames.front()?;
        if self.raw <= HOLD_LIMIT || self.payload - n < STREAM_OVERLAP {
            return None;
        }
        self.raw -= f.len();
        self.payload -= n;
        self.frames.pop_front().map(|(f, _)| f)
    }

    fn clear(&mut self) {
        *self = Held::default();
    }
}

/// Copies agent -> upstream frame by frame, scanning each payload in its stream (data or
/// control). Control frames are forwarded once scanned; data fragments are held until
/// their message's FIN frame is scanned (see [`HOLD_LIMIT`] for long messages). In `block`
/// mode a finding ends the copy: nothing held is forwarded, the upstream gets a close
/// frame (1008) and the error says which detector; otherwise `on_log` is told (once per
/// detector) and copying goes on. Returns the bytes forwarded.
pub async fn pump<R, W>(
    mut from: R,
    mut to: W,
    detector: &Detector,
    block: bool,
    mut on_log: impl FnMut(&'static str),
) -> Result<u64, WsScanError>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut buf = BytesMut::with_capacity(16 * 1024);
    let mut data: StreamScanner = detector.stream();
    let mut control: StreamScanner = detector.stream();
    let mut logged: Vec<&'static str> = Vec::new();
    let mut payload: Vec<u8> = Vec::new();
    let mut held = Held::default();
    let mut sent = 0u64;
    loop {
        let parsed = FrameHeader::parse(&buf);
        let need = match parsed {
            Some(h) => {
                if h.payload_len > MAX_FRAME {
                    return Err(WsScanError::TooLarge(h.payload_len));
                }
                // At most MAX_FRAME plus a header: fits a usize.
                h.frame_len() as usize
            }
            None => buf.len() + 1,
        };
        if buf.len() < need {
            if from.read_buf(&mut buf).await? == 0 {
                // An unfinished message is never forwarded.
                to.shutdown().await.ok();
                return Ok(sent);
            }
            continue;
        }
        let Some(h) = parsed else {
            continue;
        };
        // No extension is negotiated (pipelock strips the offer), so RSV bits must be clear;
        // a hostile origin could still read them as permessage-deflate: unscannable.
        if h.has_reserved_bits() {
            refuse_upstream(&mut to).await;
            return Err(WsScanError::Reserved);
        }
        let frame = buf.split_to(need);
        payload.clear();
        payload.extend_from_slice(&frame[h.header_len..]);
        if let Some(key) = h.mask {
            apply_mask(&mut payload, key, 0);
        }
        let is_control = h.is_control();
        let stream = if is_control { &mut control } else { &mut data };
        let mut findings = stream.check(&payload);
        if findings.is_empty() {
            // the frame on its own too: joined, a word character ending the previous frame
            // would hide a token's start (`hi` + `ghp_...` reads `highp_...`)
            findings = detector.detect(&payload);
        }
        if let Some(f) = findings.first() {
            if block {
                refuse_upstream(&mut to).await;
                return Err(WsScanError::Secret(f.detector));
            }
            for f in &findings {
                if !logged.contains(&f.detector) {
                    logged.push(f.detector);
                    on_log(f.detector);
                }
            }
        }
        let fin = h.fin;
        if is_control {
            if h.is_close() {
                // Close: no data may follow it, so a message still held never completes.
                held.clear();
            }
            sent += frame.len() as u64;
            to.write_all(&frame).await?;
        } else if h.opcode == opcode::CONTINUATION && !fin && payload.is_empty() {
            // An empty middle fragment carries nothing: not held, so hold memory is
            // bounded by payload rather than by a count of frames.
            continue;
        } else {
            held.push(frame, payload.len());
            if fin {
                for (f, _) in held.frames.drain(..) {
                    sent += f.len() as u64;
                    to.write_all(&f).await?;
                }
                held.clear();
            } else {
                let mut released = false;
                while let Some(f) = held.release_one() {
                    sent += f.len() as u64;
                    to.write_all(&f).await?;
                    released = true;
                }
                if !released {
                    continue;
                }
            }
        }
        to.flush().await?;
    }
}

/// The agent-side writer of a WebSocket session: tracks where the frames written through
/// it begin and end, so a refusal's close frame goes out only between frames (the
/// origin -> agent copy may be cut anywhere; a close inside a frame would be garbage).
pub struct FrameTracking<W> {
    inner: W,
    boundaries: FrameBoundaries,
}

impl<W> FrameTracking<W> {
    pub fn new(inner: W) -> Self {
        FrameTracking {
            inner,
            boundaries: FrameBoundaries::default(),
        }
    }

    /// Whether everything written so far ends on a frame boundary.
    pub fn at_boundary(&self) -> bool {
        self.boundaries.at_boundary()
    }
}

impl<W: AsyncWrite + Unpin> AsyncWrite for FrameTracking<W> {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        let r = std::pin::Pin::new(&mut self.inner).poll_write(cx, buf);
        if let std::task::Poll::Ready(Ok(n)) = &r {
            let n = *n;
            self.boundaries.feed(&buf[..n]);
        }
        r
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(payload: &[u8], mask: [u8; 4]) -> Vec<u8> {
        raw(opcode::TEXT, true, payload, mask)
    }

    #[tokio::test]
    async fn forwards_clean_and_blocks_split_secret() {
        let tok = format!("ghp_{}", &"Zq8Lr3Tx6Wv1Np9Ks4Hb7Jd2Mf5Gc0Ye8Ua3Io6Pl"[..36]);
        let clean = [
            frame(b"hello", [1, 2, 3, 4]),
            frame(&[b'a'; 300], [9, 8, 7, 6]),
        ]
        .concat();
        let mut out = Vec::new();
        let n = pump(&clean[..], &mut out, Detector::builtin(), true, |_| {})
            .await
            .unwrap();
        assert_eq!(n as usize, clean.len());
        assert_eq!(out, clean);
        let (a, b) = tok.split_at(17);
        let dirty = [
            frame(format!("token {a}").as_bytes(), [5, 5, 5, 5]),
            frame(format!("{b} end").as_bytes(), [7, 1, 7, 1]),
        ]
        .concat();
        let mut out = Vec::new();
        let err = pump(&dirty[..], &mut out, Detector::builtin(), true, |_| {})
            .await
            .unwrap_err();
        assert!(matches!(err, WsScanError::Secret(_)), "{err}");
        let first = frame(format!("token {a}").as_bytes(), [5, 5, 5, 5]);
        assert_eq!(&out[..first.len()], &first[..]);
        assert_eq!(
            out[first.len()],
            0x88,
            "then a close frame, not the second half"
        );
    }

    #[tokio::test]
    async fn a_token_after_a_frame_ending_in_a_word_character_is_found() {
        // joined, `hi` + `ghp_...` reads `highp_...`: no token starts there
        let tok = format!("ghp_{}", &"Zq8Lr3Tx6Wv1Np9Ks4Hb7Jd2Mf5Gc0Ye8Ua3Io6Pl"[..36]);
        let frames = [
            frame(b"hi", [1, 2, 3, 4]),
            frame(tok.as_bytes(), [4, 3, 2, 1]),
        ]
        .concat();
        let mut out = Vec::new();
        let err = pump(&frames[..], &mut out, Detector::builtin(), true, |_| {})
            .await
            .unwrap_err();
        assert!(matches!(err, WsScanError::Secret(_)), "{err}");
        let first = frame(b"hi", [1, 2, 3, 4]);
        assert_eq!(&out[..first.len()], &first[..]);
        assert_eq!(out[first.len()], 0x88, "then a close frame, not the token");
    }

    #[tokio::test]
    async fn frame_tracking_knows_the_boundaries_of_what_was_written() {
        let frames = [
            raw(0x1, true, b"hi", [1, 1, 1, 1]),
            raw(0x2, true, &[7u8; 300], [2, 2, 2, 2]),
            raw(0x9, true, b"", [3, 3, 3, 3]),
        ]
        .concat();
        // Every prefix: on a boundary exactly at the frames' ends.
        let ends = [8usize, 8 + 4 + 4 + 300, frames.len()];
        for cut in 0..=frames.len() {
            let mut w = FrameTracking::new(Vec::new());
            w.write_all(&frames[..cut]).await.unwrap();
            assert_eq!(
                w.at_boundary(),
                cut == 0 || ends.contains(&cut),
                "cut {cut}"
            );
        }
        // Byte by byte too.
        let mut w = FrameTracking::new(Vec::new());
        for b in &frames {
            w.write_all(std::slice::from_ref(b)).await.unwrap();
        }
        assert!(w.at_boundary());
    }

    fn raw(op: u8, fin: bool, payload: &[u8], mask: [u8; 4]) -> Vec<u8> {
        let mut f = Vec::new();
        bottle_core::ws_frame::encode_frame(&mut f, fin, op, Some(mask), payload);
        f
    }

    #[tokio::test]
    async fn fragments_with_interleaved_pings_are_one_stream_at_every_offset() {
        let tok = format!("ghp_{}", &"Zq8Lr3Tx6Wv1Np9Ks4Hb7Jd2Mf5Gc0Ye8Ua3Io6Pl"[..36]);
        for cut in 1..tok.len() {
            let (a, b) = tok.split_at(cut);
            let dirty = [
                raw(0x1, false, format!("k={a}").as_bytes(), [1, 2, 3, 4]),
                raw(0x9, true, b"ping!", [4, 3, 2, 1]),
                raw(0xA, true, b"pong", [9, 9, 9, 9]),
                raw(0x0, true, b.as_bytes(), [7, 7, 7, 7]),
            ]
            .concat();
            let mut out = Vec::new();
            let err = pump(&dirty[..], &mut out, Detector::builtin(), true, |_| {})
                .await
                .unwrap_err();
            assert!(matches!(err, WsScanError::Secret(_)), "cut {cut}: {err}");
            let unsent = raw(0x0, true, b.as_bytes(), [7, 7, 7, 7]);
            assert!(
                !out.windows(unsent.len()).any(|w| w == &unsent[..]),
                "cut {cut}: last fragment forwarded"
            );
        }
    }

    #[tokio::test]
    async fn a_refused_fragmented_message_is_forwarded_in_no_part() {
        let tok = format!("ghp_{}", &"Zq8Lr3Tx6Wv1Np9Ks4Hb7Jd2Mf5Gc0Ye8Ua3Io6Pl"[..36]);
        let ping = raw(0x9, true, b"ping!", [4, 3, 2, 1]);
        let dirty = [
            raw(
                0x1,
                false,
                format!("k={}", &tok[..12]).as_bytes(),
                [1, 2, 3, 4],
            ),
            ping.clone(),
            raw(0x0, false, &tok.as_bytes()[12..25], [5, 6, 7, 8]),
            raw(
                0x0,
                true,
                format!("{} end", &tok[25..]).as_bytes(),
                [7, 7, 7, 7],
            ),
        ]
        .concat();
        let mut out = Vec::new();
        let err = pump(&dirty[..], &mut out, Detector::builtin(), true, |_| {})
            .await
            .unwrap_err();
        assert!(matches!(err, WsScanError::Secret(_)), "{err}");
        // Only the ping went on, then the close: no fragment of the message.
        assert_eq!(&out[..ping.len()], &ping[..]);
        assert_eq!(out[ping.len()], 0x88, "{out:?}");
        assert_eq!(
            FrameHeader::parse(&out[ping.len()..]).unwrap().frame_len() as usize + ping.len(),
            out.len()
        );
    }

    #[tokio::test]
    async fn a_long_message_is_held_within_the_bound_and_arrives_whole() {
        let chunk = |i: usize| format!("clean line {i:05} of a long message\n").repeat(1500);
        let mut frames = vec![raw(0x2, false, chunk(0).as_bytes(), [1, 2, 3, 4])];
        for i in 1..48 {
            frames.push(raw(0x0, false, chunk(i).as_bytes(), [9, 8, 7, 6]));
            // Empty middle fragments are dropped, never held.
            frames.push(raw(0x0, false, b"", [1, 1, 1, 1]));
        }
        let unfinished = frames.concat();
        let mut out = Vec::new();
        pump(&unfinished[..], &mut out, Detector::builtin(), true, |_| {})
            .await
            .unwrap();
        let kept = unfinished.len() - out.len();
        assert!(!out.is_empty(), "the oldest fragments were released");
        assert!(
            kept <= HOLD_LIMIT + chunk(0).len() + 14 && kept >= STREAM_OVERLAP,
            "held {kept}"
        );
        frames.retain(|f| f.len() > 6);
        frames.push(raw(0x0, true, b"the end", [3, 3, 3, 3]));
        let whole = frames.concat();
        let with_empties = [unfinished, raw(0x0, true, b"the end", [3, 3, 3, 3])].concat();
        let mut out = Vec::new();
        pump(
            &with_empties[..],
            &mut out,
            Detector::builtin(),
            true,
            |_| {},
        )
        .await
        .unwrap();
        assert_eq!(out, whole, "every non-empty fragment arrives as sent");
    }

    #[tokio::test]
    async fn a_message_still_open_at_close_or_end_of_stream_is_never_forwarded() {
        let open = raw(0x1, false, b"half a message", [1, 2, 3, 4]);
        let close = raw(0x8, true, &1000u16.to_be_bytes(), [5, 6, 7, 8]);
        let input = [open.clone(), close.clone()].concat();
        let mut out = Vec::new();
        pump(&input[..], &mut out, Detector::builtin(), true, |_| {})
            .await
            .unwrap();
        assert_eq!(out, close, "only the close went on");
        let mut out = Vec::new();
        pump(&open[..], &mut out, Detector::builtin(), true, |_| {})
            .await
            .unwrap();
        assert!(out.is_empty(), "{out:?}");
    }

    /// A frame the agent sends with a non-minimal 64-bit length, delivered one byte per
    /// read so every header and payload offset is a read boundary: still parsed, still
    /// scanned, and only the close reaches the origin.
    #[tokio::test]
    async fn a_secret_behind_an_odd_header_arriving_byte_by_byte_is_blocked() {
        let tok = format!("ghp_{}", &"Zq8Lr3Tx6Wv1Np9Ks4Hb7Jd2Mf5Gc0Ye8Ua3Io6Pl"[..36]);
        let payload = format!("token={tok}");
        let key = [3, 1, 4, 1];
        let mut wire = vec![0x81u8, 0x80 | 127];
        wire.extend_from_slice(&(payload.len() as u64).to_be_bytes());
        wire.extend_from_slice(&key);
        let mut masked = payload.into_bytes();
        apply_mask(&mut masked, key, 0);
        wire.extend_from_slice(&masked);
        let (mut agent, from) = tokio::io::duplex(1);
        let writer = tokio::spawn(async move {
            let _ = agent.write_all(&wire).await;
        });
        let mut out = Vec::new();
        let err = pump(from, &mut out, Detector::builtin(), true, |_| {})
            .await
            .unwrap_err();
        writer.abort();
        assert!(matches!(err, WsScanError::Secret(_)), "{err}");
        let h = FrameHeader::parse(&out).unwrap();
        assert!(h.is_close() && h.mask.is_some(), "{h:?}");
        assert_eq!(h.frame_len() as usize, out.len(), "nothing but the close");
    }

    /// A declared length over the bound (here with the top bit set, which RFC 6455 forbids)
    /// ends the session before any of the frame is read or forwarded.
    #[tokio::test]
    async fn an_oversized_declared_length_forwards_nothing() {
        for len in [MAX_FRAME + 1, u64::MAX] {
            let mut wire = vec![0x82u8, 0x80 | 127];
            wire.extend_from_slice(&len.to_be_bytes());
            wire.extend_from_slice(&[0, 0, 0, 0]);
            wire.extend_from_slice(b"payload that never ends");
            let mut out = Vec::new();
            let err = pump(&wire[..], &mut out, Detector::builtin(), true, |_| {})
                .await
                .unwrap_err();
            assert!(matches!(err, WsScanError::TooLarge(n) if n == len), "{err}");
            assert!(out.is_empty(), "{out:?}");
            let close = err.close_for_agent().unwrap();
            let h = FrameHeader::parse(&close).unwrap();
            assert!(h.is_close() && h.mask.is_none());
            assert_eq!(
                &close[h.header_len..h.header_len + 2],
                &1009u16.to_be_bytes()
            );
        }
    }
}
