//! The WebSocket frame format (RFC 6455 section 5), shared by every sidecar that reads or
//! writes frames: pipelock scanning what the agent sends, egress scrubbing what the origin
//! answers. Pure and synchronous (no I/O, no allocation in parsing), so it can be fuzzed;
//! what a side does with a frame (hold back, scan, scrub, refuse) stays in that side.
//!
//! Parsing is structural: [`FrameHeader::parse`] reads whatever a peer sent, and the
//! protocol rules a side enforces are separate questions asked of the header
//! ([`FrameHeader::has_reserved_bits`], [`FrameHeader::is_valid_control`]), so each side
//! refuses exactly what it chose to refuse.

use bytes::BufMut;

/// Opcodes (RFC 6455 5.2). Values 3-7 are reserved data opcodes, 0xB-0xF reserved control.
pub mod opcode {
    /// A later fragment of the message in progress.
    pub const CONTINUATION: u8 = 0x0;
    /// The first frame of a UTF-8 text message.
    pub const TEXT: u8 = 0x1;
    /// The first frame of a binary message.
    pub const BINARY: u8 = 0x2;
    /// Closes the connection; payload is an optional code and reason.
    pub const CLOSE: u8 = 0x8;
    /// Asks the peer for a pong.
    pub const PING: u8 = 0x9;
    /// Answers a ping (or is sent unsolicited as a heartbeat).
    pub const PONG: u8 = 0xA;
}

/// Close status codes the sidecars send (RFC 6455 7.4.1).
pub mod close_code {
    /// The message broke the endpoint's policy (a secret, an unscannable extension).
    pub const POLICY_VIOLATION: u16 = 1008;
    /// A frame was larger than the endpoint accepts.
    pub const MESSAGE_TOO_BIG: u16 = 1009;
}

/// Largest payload of a control frame (RFC 6455 5.5).
pub const MAX_CONTROL_PAYLOAD: usize = 125;
/// Longest close reason: a control payload less the 2-byte status code.
pub const MAX_CLOSE_REASON: usize = MAX_CONTROL_PAYLOAD - 2;
/// Longest frame header: 2 bytes, an 8-byte extended length and a 4-byte mask key.
pub const MAX_HEADER_LEN: usize = 14;

const FIN_BIT: u8 = 0x80;
const RSV_BITS: u8 = 0x70;
const OPCODE_BITS: u8 = 0x0f;
const MASK_BIT: u8 = 0x80;
const LEN7_BITS: u8 = 0x7f;
const LEN7_U16: u8 = 126;
const LEN7_U64: u8 = 127;
/// Bit 3 of the opcode marks a control frame (opcodes 0x8-0xF).
const CONTROL_OPCODE_BIT: u8 = 0x08;

/// A parsed frame header, as sent: nothing is validated beyond its own structure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameHeader {
    /// The last frame of its message (always set on a valid control frame).
    pub fin: bool,
    /// The three RSV bits, shifted down (0..=7); non-zero only under a negotiated extension.
    pub rsv: u8,
    /// The opcode (0..=15), see [`opcode`].
    pub opcode: u8,
    /// The masking key: present on frames a client sends, absent on a server's.
    pub mask: Option<[u8; 4]>,
    /// Payload length as declared (up to 2^64 - 1; a side bounds it itself).
    pub payload_len: u64,
    /// Bytes of header on the wire (2 to [`MAX_HEADER_LEN`]).
    pub header_len: usize,
}

impl FrameHeader {
    /// Parses the header at the start of `buf`: `None` until all of its bytes are present,
    /// and `Some` as soon as they are (so a byte-by-byte reader knows where a header ends).
    pub fn parse(buf: &[u8]) -> Option<FrameHeader> {
        let (&b0, &b1) = (buf.first()?, buf.get(1)?);
        let (length_bytes, payload_len) = match b1 & LEN7_BITS {
            LEN7_U16 => {
                let b: [u8; 2] = buf.get(2..4)?.try_into().ok()?;
                (2, u64::from(u16::from_be_bytes(b)))
            }
            LEN7_U64 => {
                let b: [u8; 8] = buf.get(2..10)?.try_into().ok()?;
                (8, u64::from_be_bytes(b))
            }
            n => (0, u64::from(n)),
        };
        let mut header_len = 2 + length_bytes;
        let mask = if b1 & MASK_BIT != 0 {
            let key: [u8; 4] = buf.get(header_len..header_len + 4)?.try_into().ok()?;
            header_len += 4;
            Some(key)
        } else {
            None
        };
        Some(FrameHeader {
            fin: b0 & FIN_BIT != 0,
            rsv: (b0 & RSV_BITS) >> 4,
            opcode: b0 & OPCODE_BITS,
            mask,
            payload_len,
            header_len,
        })
    }

    /// Header plus payload, the bytes the whole frame takes on the wire (saturating: a
    /// declared length near 2^64 is bounded by the caller's own limit first).
    pub fn frame_len(&self) -> u64 {
        self.payload_len.saturating_add(self.header_len as u64)
    }

    /// Close, ping, pong or a reserved control opcode.
    pub fn is_control(&self) -> bool {
        self.opcode & CONTROL_OPCODE_BIT != 0
    }

    /// A close frame.
    pub fn is_close(&self) -> bool {
        self.opcode == opcode::CLOSE
    }

    /// Any RSV bit set: meaningful only under an extension (e.g. permessage-deflate), so
    /// a side that negotiated none cannot read the payload as sent.
    pub fn has_reserved_bits(&self) -> bool {
        self.rsv != 0
    }

    /// A control frame obeys RFC 6455 5.5: not fragmented and at most 125 payload bytes.
    pub fn is_valid_control(&self) -> bool {
        self.fin && self.payload_len <= MAX_CONTROL_PAYLOAD as u64
    }
}

/// XORs `payload` with `key` in place (masking and unmasking are the same operation).
/// `offset` is how many payload bytes of this frame came before `payload`, so a frame
/// can be unmasked in pieces as it streams in.
pub fn apply_mask(payload: &mut [u8], key: [u8; 4], offset: u64) {
    // Only offset mod 4 matters; the cast keeps 0..=3.
    let start = (offset % 4) as usize;
    for (i, b) in payload.iter_mut().enumerate() {
        *b ^= key[(start + i) % 4];
    }
}

/// Appends one frame (no RSV bits) to `out`, with the shortest length encoding, masked
/// with `mask` when sent as a client and unmasked when sent as a server.
pub fn encode_frame(
    out: &mut impl BufMut,
    fin: bool,
    opcode: u8,
    mask: Option<[u8; 4]>,
    payload: &[u8],
) {
    let fin_bit = if fin { FIN_BIT } else { 0 };
    let mask_bit = if mask.is_some() { MASK_BIT } else { 0 };
    out.put_u8(fin_bit | (opcode & OPCODE_BITS));
    let n = payload.len();
    if n < usize::from(LEN7_U16) {
        // n < 126: fits the 7-bit length.
        out.put_u8(mask_bit | n as u8);
    } else if let Ok(medium) = u16::try_from(n) {
        out.put_u8(mask_bit | LEN7_U16);
        out.put_u16(medium);
    } else {
        out.put_u8(mask_bit | LEN7_U64);
        out.put_u64(n as u64);
    }
    match mask {
        Some(key) => {
            out.put_slice(&key);
            for (i, b) in payload.iter().enumerate() {
                out.put_u8(b ^ key[i % 4]);
            }
        }
        None => out.put_slice(payload),
    }
}

/// The payload of a close frame: `code`, then `reason` cut (on a character boundary) to
/// fit a control frame.
pub fn close_payload(code: u16, reason: &str) -> Vec<u8> {
    let mut cut = reason.len().min(MAX_CLOSE_REASON);
    while !reason.is_char_boundary(cut) {
        cut -= 1;
    }
    let mut payload = Vec::with_capacity(2 + cut);
    payload.extend_from_slice(&code.to_be_bytes());
    payload.extend_from_slice(&reason.as_bytes()[..cut]);
    payload
}

/// A whole close frame with `code` and `reason` (see [`close_payload`]), masked with
/// `mask` when sent as a client (towards an origin), unmasked towards a client.
pub fn close_frame(code: u16, reason: &str, mask: Option<[u8; 4]>) -> Vec<u8> {
    let payload = close_payload(code, reason);
    let mut frame = Vec::with_capacity(MAX_HEADER_LEN + payload.len());
    encode_frame(&mut frame, true, opcode::CLOSE, mask, &payload);
    frame
}

/// Follows frame boundaries through a byte stream written in arbitrary pieces, without
/// keeping the payload: lets a writer know when something may be inserted between frames
/// (a close frame written inside another frame would be garbage to the reader).
#[derive(Debug, Default)]
pub struct FrameBoundaries {
    /// Header bytes of the frame in progress, while its header is incomplete.
    head: Vec<u8>,
    /// Payload bytes of the current frame still to come.
    remaining: u64,
}

impl FrameBoundaries {
    /// Whether everything fed so far ends exactly at the end of a frame.
    pub fn at_boundary(&self) -> bool {
        self.head.is_empty() && self.remaining == 0
    }

    /// Accounts for `bytes`, the next bytes of the stream.
    pub fn feed(&mut self, mut bytes: &[u8]) {
        while !bytes.is_empty() {
            if self.remaining > 0 {
                let skip = self.remaining.min(bytes.len() as u64);
                self.remaining -= skip;
                // skip <= bytes.len(), so it fits a usize.
                bytes = &bytes[skip as usize..];
                continue;
            }
            // Header bytes one at a time: parse answers as soon as exactly its bytes are
            // present, so nothing of the next frame is taken as header.
            self.head.push(bytes[0]);
            bytes = &bytes[1..];
            if let Some(h) = FrameHeader::parse(&self.head) {
                self.head.clear();
                self.remaining = h.payload_len;
            }
        }
    }
}

#[cfg(test)]
#[path = "ws_frame_tests.rs"]
mod tests;
