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

use bottle_dlp::{Detector, StreamScanner, STREAM_OVERLAP};
use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// Largest client frame accepted (bigger frames close the connection).
pub const MAX_FRAME: u64 = 1 << 20;
/// Frame bytes of an unfinished data message held back before the oldest fragments are
/// released (each of them scanned, with [`STREAM_OVERLAP`] payload bytes still held behind).
pub const HOLD_LIMIT: usize = 1 << 20;
/// Close code for a policy violation (RFC 6455 7.4.1).
pub const POLICY_VIOLATION: u16 = 1008;
/// Close code for a frame over [`MAX_FRAME`].
pub const MESSAGE_TOO_BIG: u16 = 1009;

#[derive(Debug, thiserror::Error)]
pub enum WsScanError {
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("WebSocket frame of {0} bytes exceeds the limit")]
    TooLarge(u64),
    #[error("secret detected in a WebSocket message: {0}")]
    Secret(&'static str),
    #[error("WebSocket frame with reserved bits set (an extension such as compression) cannot be scanned")]
    Reserved,
}

impl WsScanError {
    /// The close frame the agent gets (unmasked), if this error refuses the session.
    pub fn close_for_agent(&self) -> Option<Vec<u8>> {
        let code = match self {
            WsScanError::Secret(_) | WsScanError::Reserved => POLICY_VIOLATION,
            WsScanError::TooLarge(_) => MESSAGE_TOO_BIG,
            WsScanError::Io(_) => return None,
        };
        Some(close_frame(
            code,
            &format!("blocked by pipelock: {self}"),
            None,
        ))
    }
}

/// Parses a frame header: (header length, payload length, mask key).
fn header(buf: &[u8]) -> Option<(usize, u64, Option<[u8; 4]>)> {
    let b1 = *buf.get(1)?;
    let masked = b1 & 0x80 != 0;
    let (mut hlen, len) = match b1 & 0x7f {
        126 => (4, u16::from_be_bytes([*buf.get(2)?, *buf.get(3)?]) as u64),
        127 => {
            let b: [u8; 8] = buf.get(2..10)?.try_into().ok()?;
            (10, u64::from_be_bytes(b))
        }
        n => (2, n as u64),
    };
    let mask = if masked {
        let m: [u8; 4] = buf.get(hlen..hlen + 4)?.try_into().ok()?;
        hlen += 4;
        Some(m)
    } else {
        None
    };
    Some((hlen, len, mask))
}

/// A close frame with `code` and `reason` (cut to fit a control frame), masked with
/// `mask` when sent as a client (towards the origin), unmasked towards the agent.
pub fn close_frame(code: u16, reason: &str, mask: Option<[u8; 4]>) -> Vec<u8> {
    let mut payload = code.to_be_bytes().to_vec();
    let mut cut = reason.len().min(123);
    while !reason.is_char_boundary(cut) {
        cut -= 1;
    }
    payload.extend_from_slice(&reason.as_bytes()[..cut]);
    let mut f = vec![0x88u8];
    match mask {
        Some(m) => {
            f.push(0x80 | payload.len() as u8);
            f.extend_from_slice(&m);
            f.extend(payload.iter().enumerate().map(|(i, b)| b ^ m[i % 4]));
        }
        None => {
            f.push(payload.len() as u8);
            f.extend_from_slice(&payload);
        }
    }
    f
}

/// Closes the upstream side with 1008 (best effort; a partial message never completes).
/// The reason does not say what was found: the origin may be the agent's accomplice.
async fn refuse_upstream<W: AsyncWrite + Unpin>(to: &mut W) {
    let close = close_frame(POLICY_VIOLATION, "policy violation", Some(rand::random()));
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
        let parsed = header(&buf);
        let need = match parsed {
            Some((hlen, len, _)) => {
                if len > MAX_FRAME {
                    return Err(WsScanError::TooLarge(len));
                }
                hlen + len as usize
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
        let Some((hlen, _len, mask)) = parsed else {
            continue;
        };
        // No extension is negotiated (pipelock strips the offer), so RSV bits must be clear;
        // a hostile origin could still read them as permessage-deflate: unscannable.
        if buf[0] & 0x70 != 0 {
            refuse_upstream(&mut to).await;
            return Err(WsScanError::Reserved);
        }
        let frame = buf.split_to(need);
        payload.clear();
        payload.extend_from_slice(&frame[hlen..]);
        if let Some(m) = mask {
            for (i, b) in payload.iter_mut().enumerate() {
                *b ^= m[i % 4];
            }
        }
        let is_control = frame[0] & 0x08 != 0;
        let stream = if is_control { &mut control } else { &mut data };
        let findings = stream.check(&payload);
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
        let fin = frame[0] & 0x80 != 0;
        if is_control {
            if frame[0] & 0x0f == 0x8 {
                // Close: no data may follow it, so a message still held never completes.
                held.clear();
            }
            sent += frame.len() as u64;
            to.write_all(&frame).await?;
        } else if frame[0] & 0x0f == 0 && !fin && payload.is_empty() {
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
    /// Header bytes of the frame being written (while incomplete).
    head: Vec<u8>,
    /// Payload bytes of the current frame still to come.
    remaining: u64,
}

impl<W> FrameTracking<W> {
    pub fn new(inner: W) -> Self {
        FrameTracking {
            inner,
            head: Vec::new(),
            remaining: 0,
        }
    }

    /// Whether everything written so far ends on a frame boundary.
    pub fn at_boundary(&self) -> bool {
        self.head.is_empty() && self.remaining == 0
    }

    fn feed(&mut self, mut b: &[u8]) {
        while !b.is_empty() {
            if self.remaining > 0 {
                let k = (self.remaining.min(b.len() as u64)) as usize;
                self.remaining -= k as u64;
                b = &b[k..];
                continue;
            }
            self.head.push(b[0]);
            b = &b[1..];
            // header() answers once exactly its bytes are present.
            if let Some((_, len, _)) = header(&self.head) {
                self.head.clear();
                self.remaining = len;
            }
        }
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
            self.feed(&buf[..n]);
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
        let mut f = vec![0x81u8];
        if payload.len() < 126 {
            f.push(0x80 | payload.len() as u8);
        } else {
            f.push(0x80 | 126);
            f.extend_from_slice(&(payload.len() as u16).to_be_bytes());
        }
        f.extend_from_slice(&mask);
        f.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        f
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
        let mut f = frame(payload, mask);
        f[0] = if fin { 0x80 } else { 0 } | op;
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
            header(&out[ping.len()..]).unwrap().1 as usize + 6 + ping.len(),
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
}
