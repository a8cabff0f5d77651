//! DLP on WebSocket messages the agent sends through an intercepted tunnel: client frames are
//! parsed, unmasked and scanned (with an overlap window across frames) before they are
//! forwarded. Compression extensions are not negotiated (pipelock strips
//! `Sec-WebSocket-Extensions` from the handshake), so payloads are scanned as sent.

use bottle_dlp::{Detector, Finding};
use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// Largest client frame accepted (bigger frames close the connection).
pub const MAX_FRAME: u64 = 1 << 20;
/// Bytes of earlier payloads re-scanned with each frame (secrets split across frames).
const OVERLAP: usize = 4096;

#[derive(Debug, thiserror::Error)]
pub enum WsScanError {
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("WebSocket frame of {0} bytes exceeds the limit")]
    TooLarge(u64),
    #[error("secret detected in a WebSocket message: {0}")]
    Secret(&'static str),
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

/// Copies agent -> upstream frame by frame, scanning each payload. In `block` mode a finding
/// ends the copy (the frame is not forwarded); otherwise `on_log` is told and copying goes on.
/// Returns the bytes forwarded.
pub async fn pump<R, W>(
    mut from: R,
    mut to: W,
    detector: &Detector,
    block: bool,
    mut on_log: impl FnMut(&Finding),
) -> Result<u64, WsScanError>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut buf = BytesMut::with_capacity(16 * 1024);
    let mut tail: Vec<u8> = Vec::new();
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
                to.shutdown().await.ok();
                return Ok(sent);
            }
            continue;
        }
        let Some((hlen, _len, mask)) = parsed else {
            continue;
        };
        let frame = buf.split_to(need);
        let mut window = std::mem::take(&mut tail);
        let start = window.len();
        window.extend_from_slice(&frame[hlen..]);
        if let Some(m) = mask {
            for (i, b) in window[start..].iter_mut().enumerate() {
                *b ^= m[i % 4];
            }
        }
        let findings = detector.detect(&window);
        if let Some(f) = findings.first() {
            if block {
                return Err(WsScanError::Secret(f.detector));
            }
            on_log(f);
        }
        let keep = window.len().saturating_sub(OVERLAP);
        tail = window.split_off(keep);
        to.write_all(&frame).await?;
        to.flush().await?;
        sent += frame.len() as u64;
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
        assert!(
            out.len() < dirty.len(),
            "the frame completing the secret was not forwarded"
        );
    }
}
