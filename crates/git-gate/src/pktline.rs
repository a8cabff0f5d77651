//! Strict pkt-line reading and writing (gitprotocol-common).
//!
//! A frame is four lowercase hex digits giving the total length (including the four
//! digits) followed by the payload. `0000` is a flush; `0001` (delim) and `0002`
//! (response-end) exist only in protocol v2; `0003` never exists. The largest frame is
//! 65520 bytes. The reader never panics and never allocates: it hands out slices of the
//! input buffer.

/// Largest total frame length, including the 4 length digits.
pub const MAX_PKT_LEN: usize = 65520;
/// Largest payload of one frame.
pub const MAX_PKT_DATA: usize = MAX_PKT_LEN - 4;
/// Largest payload of one side-band-64k frame (one byte goes to the band number).
pub const MAX_SIDEBAND_64K_DATA: usize = MAX_PKT_DATA - 1;
/// Largest payload of one old-style side-band frame.
pub const MAX_SIDEBAND_DATA: usize = 999 - 4;

/// One decoded frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pkt<'a> {
    Flush,
    Delim,
    ResponseEnd,
    Data(&'a [u8]),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PktError {
    #[error("truncated pkt-line at offset {0}")]
    Truncated(usize),
    #[error("invalid pkt-line length at offset {0}")]
    BadLength(usize),
    #[error("pkt-line length {len} at offset {offset} is not allowed here")]
    Reserved { offset: usize, len: usize },
    #[error("pkt-line payload of {0} bytes is too long")]
    TooLong(usize),
}

/// Reads frames from a complete in-memory buffer.
#[derive(Debug, Clone)]
pub struct PktReader<'a> {
    buf: &'a [u8],
    pos: usize,
    allow_v2_specials: bool,
}

fn hex_val(b: u8) -> Option<usize> {
    match b {
        b'0'..=b'9' => Some(usize::from(b - b'0')),
        b'a'..=b'f' => Some(usize::from(b - b'a' + 10)),
        _ => None,
    }
}

/// Parses the 4 length digits. Only lowercase hex is accepted (git emits lowercase).
pub fn parse_len(digits: &[u8]) -> Option<usize> {
    if digits.len() != 4 {
        return None;
    }
    let mut n = 0usize;
    for &b in digits {
        n = n * 16 + hex_val(b)?;
    }
    Some(n)
}

impl<'a> PktReader<'a> {
    /// A reader for protocol v0/v1 streams: `0001`..`0003` are errors.
    pub fn new(buf: &'a [u8]) -> Self {
        PktReader {
            buf,
            pos: 0,
            allow_v2_specials: false,
        }
    }

    /// A reader that also accepts v2 delim (`0001`) and response-end (`0002`).
    pub fn new_v2(buf: &'a [u8]) -> Self {
        PktReader {
            buf,
            pos: 0,
            allow_v2_specials: true,
        }
    }

    /// Offset of the next unread byte.
    pub fn position(&self) -> usize {
        self.pos
    }

    /// The unread rest of the buffer.
    pub fn rest(&self) -> &'a [u8] {
        self.buf.get(self.pos..).unwrap_or(&[])
    }

    pub fn is_empty(&self) -> bool {
        self.pos >= self.buf.len()
    }

    /// Reads the next frame. On error the position is unchanged.
    pub fn read(&mut self) -> Result<Pkt<'a>, PktError> {
        let start = self.pos;
        let digits = self
            .buf
            .get(start..start.saturating_add(4))
            .ok_or(PktError::Truncated(start))?;
        let len = parse_len(digits).ok_or(PktError::BadLength(start))?;
        let pkt = match len {
            0 => Pkt::Flush,
            1 | 2 if self.allow_v2_specials => {
                if len == 1 {
                    Pkt::Delim
                } else {
                    Pkt::ResponseEnd
                }
            }
            1..=3 => return Err(PktError::Reserved { offset: start, len }),
            l if l > MAX_PKT_LEN => return Err(PktError::Reserved { offset: start, len }),
            l => {
                let data = self
                    .buf
                    .get(start + 4..start + l)
                    .ok_or(PktError::Truncated(start))?;
                self.pos = start + l;
                return Ok(Pkt::Data(data));
            }
        };
        self.pos = start + 4;
        Ok(pkt)
    }

    /// Reads a data frame with one trailing LF removed; `None` for a flush.
    /// Delim/response-end are returned as errors by the caller's choice.
    pub fn read_line(&mut self) -> Result<Option<&'a [u8]>, PktError> {
        match self.read()? {
            Pkt::Data(d) => Ok(Some(strip_lf(d))),
            Pkt::Flush => Ok(None),
            Pkt::Delim | Pkt::ResponseEnd => Err(PktError::Reserved {
                offset: self.pos.saturating_sub(4),
                len: 1,
            }),
        }
    }
}

/// Removes one trailing LF.
pub fn strip_lf(d: &[u8]) -> &[u8] {
    d.strip_suffix(b"\n").unwrap_or(d)
}

/// Appends one data frame. Fails if the payload is too long for one frame.
pub fn write_data(out: &mut Vec<u8>, data: &[u8]) -> Result<(), PktError> {
    if data.len() > MAX_PKT_DATA {
        return Err(PktError::TooLong(data.len()));
    }
    out.extend_from_slice(format!("{:04x}", data.len() + 4).as_bytes());
    out.extend_from_slice(data);
    Ok(())
}

/// Appends a text frame with a trailing LF, truncating text that would not fit.
pub fn write_text(out: &mut Vec<u8>, text: &str) {
    let mut t = text.as_bytes();
    if t.len() > MAX_PKT_DATA - 1 {
        t = &t[..MAX_PKT_DATA - 1];
    }
    out.extend_from_slice(format!("{:04x}", t.len() + 5).as_bytes());
    out.extend_from_slice(t);
    out.push(b'\n');
}

pub fn write_flush(out: &mut Vec<u8>) {
    out.extend_from_slice(b"0000");
}

/// Side-band flavour negotiated by the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sideband {
    None,
    Small,
    Large,
}

impl Sideband {
    fn max_chunk(self) -> usize {
        match self {
            Sideband::Small => MAX_SIDEBAND_DATA,
            _ => MAX_SIDEBAND_64K_DATA,
        }
    }
}

/// Appends `data` on `band` (1 data, 2 progress, 3 fatal), split into frames.
/// With `Sideband::None` band 1 is written raw and bands 2/3 are dropped.
pub fn write_band(out: &mut Vec<u8>, sb: Sideband, band: u8, data: &[u8]) {
    if sb == Sideband::None {
        if band == 1 {
            out.extend_from_slice(data);
        }
        return;
    }
    for chunk in data.chunks(sb.max_chunk()) {
        out.extend_from_slice(format!("{:04x}", chunk.len() + 5).as_bytes());
        out.push(band);
        out.extend_from_slice(chunk);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn reads_frames() {
        let buf = b"0009hello0000000ahello\n";
        let mut r = PktReader::new(buf);
        assert_eq!(r.read(), Ok(Pkt::Data(b"hello")));
        assert_eq!(r.read(), Ok(Pkt::Flush));
        assert_eq!(r.read_line(), Ok(Some(&b"hello"[..])));
        assert!(r.is_empty());
        assert_eq!(r.read(), Err(PktError::Truncated(23)));
    }

    #[test]
    fn rejects_bad_lengths() {
        for bad in [
            &b"0001"[..],
            b"0002",
            b"0003",
            b"000A",
            b"00G0",
            b"fff1",
            b"ffff",
        ] {
            let mut r = PktReader::new(bad);
            assert!(r.read().is_err(), "{:?}", String::from_utf8_lossy(bad));
            assert_eq!(r.position(), 0);
        }
        assert!(PktReader::new(b"0010short").read().is_err());
        assert!(PktReader::new(b"00").read().is_err());
        assert!(PktReader::new(b"").read().is_err());
    }

    #[test]
    fn v2_specials() {
        let mut r = PktReader::new_v2(b"000100020000");
        assert_eq!(r.read(), Ok(Pkt::Delim));
        assert_eq!(r.read(), Ok(Pkt::ResponseEnd));
        assert_eq!(r.read(), Ok(Pkt::Flush));
        assert!(PktReader::new_v2(b"0003").read().is_err());
    }

    #[test]
    fn max_length_frame() {
        let mut buf = b"fff0".to_vec();
        buf.extend(std::iter::repeat_n(b'x', MAX_PKT_DATA));
        let mut r = PktReader::new(&buf);
        assert!(matches!(r.read(), Ok(Pkt::Data(d)) if d.len() == MAX_PKT_DATA));
    }

    #[test]
    fn writer_roundtrip() {
        let mut out = Vec::new();
        write_text(&mut out, "unpack ok");
        write_data(&mut out, b"").unwrap();
        write_flush(&mut out);
        assert_eq!(out, b"000eunpack ok\n00040000");
        assert!(write_data(&mut out, &vec![0u8; MAX_PKT_DATA + 1]).is_err());
    }

    #[test]
    fn sideband_splits() {
        let mut out = Vec::new();
        let data = vec![b'a'; MAX_SIDEBAND_64K_DATA + 10];
        write_band(&mut out, Sideband::Large, 2, &data);
        let mut r = PktReader::new(&out);
        let Ok(Pkt::Data(first)) = r.read() else {
            panic!("frame")
        };
        assert_eq!(first.len(), MAX_SIDEBAND_64K_DATA + 1);
        assert_eq!(first[0], 2);
        let Ok(Pkt::Data(second)) = r.read() else {
            panic!("frame")
        };
        assert_eq!(second.len(), 11);
        let mut raw = Vec::new();
        write_band(&mut raw, Sideband::None, 2, b"dropped");
        write_band(&mut raw, Sideband::None, 1, b"kept");
        assert_eq!(raw, b"kept");
    }

    #[test]
    fn never_panics_on_garbage() {
        // A tiny deterministic fuzz: every prefix/suffix of mixed input.
        let inputs: [&[u8]; 4] = [
            b"0004000500060007abcd",
            b"ffff0000",
            b"00100000ff\xff",
            b"\x00\x01\x02\x03",
        ];
        for input in inputs {
            for i in 0..input.len() {
                for v2 in [false, true] {
                    let slice = &input[i..];
                    let mut r = if v2 {
                        PktReader::new_v2(slice)
                    } else {
                        PktReader::new(slice)
                    };
                    for _ in 0..10 {
                        if r.read().is_err() {
                            break;
                        }
                    }
                }
            }
        }
    }
}
