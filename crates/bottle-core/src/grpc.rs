//! gRPC over HTTP/2 as the proxies see it: a body of length-prefixed messages (one flag byte,
//! a 4-byte big-endian length, the message) ending with `grpc-status` trailers.
//!
//! The byte-stream scanners (pipelock's DLP, egress's scrubber) hold back the tail of a body
//! until more bytes come, which a bidirectional stream never sends while it waits for the
//! answer: a gRPC body is judged message by message instead ([`Messages`]), each message
//! released whole once judged, nothing held past it. A compressed message (flag 1) cannot be
//! judged as sent, so the proxies ask for none and refuse one that comes anyway.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

use bytes::{Buf, Bytes, BytesMut};
use http::header::{HeaderMap, HeaderName, HeaderValue, CONTENT_TYPE};

/// Bytes of a message's prefix: the compressed flag and the length.
pub const PREFIX: usize = 5;
/// Largest message held to be judged (gRPC's own default receive limit is 4 MiB).
pub const MAX_MESSAGE: usize = 16 * 1024 * 1024;
/// Bytes of unfinished messages one process holds at once, over all streams and
/// connections: without it, an agent opening many streams that each send most of a large
/// message and never finish it makes the proxy hold all of them (100 streams a connection).
pub const HOLD_BUDGET: usize = 32 * 1024 * 1024;

/// Bytes of unfinished gRPC messages held, against a limit ([`HOLD_BUDGET`] for the process).
#[derive(Debug)]
pub struct HoldBudget {
    used: AtomicUsize,
    limit: usize,
}

impl HoldBudget {
    /// A budget of `limit` bytes (tests; the sidecars share [`HoldBudget::process`]).
    pub fn new(limit: usize) -> Arc<HoldBudget> {
        Arc::new(HoldBudget {
            used: AtomicUsize::new(0),
            limit,
        })
    }

    /// The one budget of this process.
    pub fn process() -> Arc<HoldBudget> {
        static PROCESS: OnceLock<Arc<HoldBudget>> = OnceLock::new();
        PROCESS.get_or_init(|| HoldBudget::new(HOLD_BUDGET)).clone()
    }

    /// Bytes held now.
    pub fn used(&self) -> usize {
        self.used.load(Ordering::Relaxed)
    }

    fn reserve(&self, n: usize) -> bool {
        self.used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |u| {
                u.checked_add(n).filter(|t| *t <= self.limit)
            })
            .is_ok()
    }

    fn release(&self, n: usize) {
        // never more than was reserved (Messages keeps the count), so no underflow
        self.used.fetch_sub(n, Ordering::AcqRel);
    }
}

/// `grpc-accept-encoding`: the message codings the client takes.
pub const ACCEPT_ENCODING: HeaderName = HeaderName::from_static("grpc-accept-encoding");
/// `grpc-encoding`: the coding of the sender's compressed messages.
pub const ENCODING: HeaderName = HeaderName::from_static("grpc-encoding");
/// `grpc-status` (trailer, or header of a trailers-only answer).
pub const STATUS: HeaderName = HeaderName::from_static("grpc-status");
/// `grpc-message`: the status's text, percent-encoded.
pub const MESSAGE: HeaderName = HeaderName::from_static("grpc-message");

/// gRPC status `INTERNAL`, what a proxy ends a stream with when it withholds a message.
pub const STATUS_INTERNAL: u32 = 13;
/// gRPC status `PERMISSION_DENIED`.
pub const STATUS_PERMISSION_DENIED: u32 = 7;

/// Whether a message carries gRPC framing: `Content-Type: application/grpc` or
/// `application/grpc+<codec>` (gRPC-Web's `application/grpc-web[+codec]` frames the same way;
/// `application/grpc-web-text` is base64 text, scanned as a text body is).
pub fn is_grpc(headers: &HeaderMap) -> bool {
    headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|ct| {
            ct.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        })
        .is_some_and(|m| {
            m == "application/grpc"
                || m.starts_with("application/grpc+")
                || (m.starts_with("application/grpc-web")
                    && !m.starts_with("application/grpc-web-text"))
        })
}

/// Trailers ending a gRPC stream with `status` and `message` (percent-encoded as gRPC wants:
/// bytes outside printable ASCII, and `%`).
pub fn status_trailers(status: u32, message: &str) -> HeaderMap {
    let mut t = HeaderMap::new();
    t.insert(STATUS, HeaderValue::from(status));
    let mut enc = String::with_capacity(message.len());
    for b in message.bytes() {
        if (0x20..0x7f).contains(&b) && b != b'%' {
            enc.push(char::from(b));
        } else {
            enc.push_str(&format!("%{b:02X}"));
        }
    }
    if let Ok(v) = HeaderValue::from_str(&enc) {
        t.insert(MESSAGE, v);
    }
    t
}

/// The gRPC status a client library reports for an HTTP status (gRPC's own mapping, for
/// answers without `grpc-status`).
pub fn status_for_http(status: http::StatusCode) -> u32 {
    match status.as_u16() {
        400 => 13, // INTERNAL
        401 => 16, // UNAUTHENTICATED
        403 => STATUS_PERMISSION_DENIED,
        404 => 12,             // UNIMPLEMENTED
        429 | 502..=504 => 14, // UNAVAILABLE
        _ => 2,                // UNKNOWN
    }
}

/// A sidecar's refusal (`X-Bottle-Blocked`, a non-2xx status) of a gRPC request, as the
/// client library can show it: gRPC clients report only a status for an HTTP error and drop
/// its body, so the refusal becomes a trailers-only answer (`200`, `grpc-status` from the
/// HTTP status, `grpc-message` the refusal's first line); `X-Bottle-Blocked` stays. Anything
/// else is returned as it is.
pub async fn refusal_as_grpc(
    resp: http::Response<crate::BoxBody>,
) -> http::Response<crate::BoxBody> {
    use http_body_util::BodyExt;
    let blocked = resp.headers().get(crate::refusal::BLOCKED_HEADER).cloned();
    let (Some(blocked), false) = (blocked, resp.status().is_success()) else {
        return resp;
    };
    let status = resp.status();
    // a refusal body is a few lines; more is not read
    let mut body = resp.into_body();
    let mut bytes = Vec::new();
    while bytes.len() < 64 * 1024 {
        match body.frame().await {
            Some(Ok(f)) => {
                if let Ok(d) = f.into_data() {
                    bytes.extend_from_slice(&d);
                }
            }
            _ => break,
        }
    }
    let text = String::from_utf8_lossy(&bytes);
    let line = text.lines().next().unwrap_or("blocked");
    let mut r = http::Response::new(crate::body::empty());
    let h = r.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static("application/grpc"));
    h.insert(crate::refusal::BLOCKED_HEADER, blocked);
    h.extend(status_trailers(status_for_http(status), line));
    r
}

/// One whole message as it was framed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// Prefix and payload, as received (forwarded as is).
    pub frame: Bytes,
    /// The compressed flag was set: the payload is coded (`grpc-encoding`).
    pub compressed: bool,
}

impl Message {
    /// The message without its prefix.
    pub fn payload(&self) -> &[u8] {
        self.frame.get(PREFIX..).unwrap_or_default()
    }
}

/// Why a body is not a stream of gRPC messages the proxies can judge.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("gRPC message of {0} bytes exceeds the {MAX_MESSAGE}-byte limit")]
    TooLarge(usize),
    #[error("gRPC body ended inside a message")]
    Truncated,
    #[error("gRPC message flag {0:#04x} has reserved bits set")]
    ReservedFlag(u8),
    #[error("too many unfinished gRPC messages held at once (over {0} bytes in all)")]
    OverBudget(usize),
}

/// Splits a body into whole messages as its bytes arrive. Memory: at most one message plus
/// the bytes of the chunk that completed it; the bytes of an unfinished message count against
/// a [`HoldBudget`] shared by every stream of the process.
#[derive(Debug)]
pub struct Messages {
    buf: BytesMut,
    budget: Arc<HoldBudget>,
    /// Bytes of `budget` this splitter holds (what `buf` held after the last push).
    reserved: usize,
}

impl Default for Messages {
    fn default() -> Messages {
        Messages::with_budget(HoldBudget::process())
    }
}

impl Drop for Messages {
    fn drop(&mut self) {
        self.budget.release(self.reserved);
    }
}

impl Messages {
    /// A splitter counting what it holds against `budget`.
    pub fn with_budget(budget: Arc<HoldBudget>) -> Messages {
        Messages {
            buf: BytesMut::new(),
            budget,
            reserved: 0,
        }
    }

    /// Adds bytes; returns every message they complete, in order. Refuses (and drops what
    /// it held) when the unfinished message left would take the budget over its limit.
    pub fn push(&mut self, chunk: &[u8]) -> Result<Vec<Message>, FrameError> {
        let out = self.split(chunk);
        let held = self.buf.len();
        if held > self.reserved {
            if !self.budget.reserve(held - self.reserved) {
                self.buf = BytesMut::new();
                self.budget.release(self.reserved);
                self.reserved = 0;
                return Err(FrameError::OverBudget(self.budget.limit));
            }
        } else {
            self.budget.release(self.reserved - held);
        }
        self.reserved = held;
        out
    }

    fn split(&mut self, chunk: &[u8]) -> Result<Vec<Message>, FrameError> {
        self.buf.extend_from_slice(chunk);
        let mut out = Vec::new();
        while self.buf.len() >= PREFIX {
            let len = u32::from_be_bytes([self.buf[1], self.buf[2], self.buf[3], self.buf[4]]);
            let len = usize::try_from(len).unwrap_or(usize::MAX);
            if len > MAX_MESSAGE {
                return Err(FrameError::TooLarge(len));
            }
            if self.buf.len() < PREFIX + len {
                break;
            }
            // bit 0 is "compressed", and gRPC-Web's trailers frame sets 0x80 (judged like a
            // message); any other bit is reserved: refused, so that no reading of the flag
            // by the receiver can differ from the one judged here
            let flag = self.buf[0];
            if flag & !0x81 != 0 {
                return Err(FrameError::ReservedFlag(flag));
            }
            let compressed = flag & 1 == 1;
            let frame = self.buf.split_to(PREFIX + len).freeze();
            out.push(Message { frame, compressed });
        }
        Ok(out)
    }

    /// Bytes of an unfinished message held.
    pub fn held(&self) -> usize {
        self.buf.len()
    }

    /// End of body: Err when it stopped inside a message.
    pub fn finish(&mut self) -> Result<(), FrameError> {
        self.budget.release(self.reserved);
        self.reserved = 0;
        if self.buf.has_remaining() {
            self.buf = BytesMut::new();
            return Err(FrameError::Truncated);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(flag: u8, payload: &[u8]) -> Vec<u8> {
        let mut v = vec![flag];
        v.extend_from_slice(&(payload.len() as u32).to_be_bytes());
        v.extend_from_slice(payload);
        v
    }

    #[test]
    fn content_types() {
        for (ct, grpc) in [
            ("application/grpc", true),
            ("application/grpc+proto", true),
            ("Application/GRPC; charset=x", true),
            ("application/grpc-web+proto", true),
            ("application/grpc-web", true),
            ("application/grpc-web-text+proto", false),
            ("application/grpcx", false),
            ("application/json", false),
        ] {
            let mut h = HeaderMap::new();
            h.insert(CONTENT_TYPE, ct.parse().unwrap());
            assert_eq!(is_grpc(&h), grpc, "{ct}");
        }
        assert!(!is_grpc(&HeaderMap::new()));
    }

    #[test]
    fn messages_at_every_cut() {
        let stream = [msg(0, b"hello"), msg(0, b""), msg(1, &[7u8; 300])].concat();
        for cut in 0..=stream.len() {
            let mut m = Messages::default();
            let mut got = m.push(&stream[..cut]).unwrap();
            got.extend(m.push(&stream[cut..]).unwrap());
            assert_eq!(got.len(), 3, "cut {cut}");
            assert_eq!(got[0].payload(), b"hello");
            assert!(!got[0].compressed);
            assert_eq!(got[1].payload(), b"");
            assert!(got[2].compressed);
            assert_eq!(
                got.iter().map(|g| g.frame.len()).sum::<usize>(),
                stream.len()
            );
            assert_eq!(m.held(), 0);
            m.finish().unwrap();
        }
    }

    #[test]
    fn oversize_and_truncated_are_errors() {
        let mut m = Messages::default();
        let mut big = vec![0u8];
        big.extend_from_slice(&((MAX_MESSAGE + 1) as u32).to_be_bytes());
        assert_eq!(m.push(&big), Err(FrameError::TooLarge(MAX_MESSAGE + 1)));
        for flag in [0x02, 0x04, 0x40, 0x83] {
            let mut m = Messages::default();
            assert_eq!(
                m.push(&msg(flag, b"x")),
                Err(FrameError::ReservedFlag(flag))
            );
        }
        let mut m = Messages::default();
        assert_eq!(m.push(&msg(0x80, b"grpc-status:0")).unwrap().len(), 1);
        let mut m = Messages::default();
        assert!(m.push(&msg(0, b"abc")[..6]).unwrap().is_empty());
        assert_eq!(m.held(), 6);
        assert_eq!(m.finish(), Err(FrameError::Truncated));
    }

    #[test]
    fn unfinished_messages_share_one_budget() {
        let budget = HoldBudget::new(100);
        let mut a = Messages::with_budget(budget.clone());
        let mut b = Messages::with_budget(budget.clone());
        let big = msg(0, &[b'x'; 200]);
        // 60 bytes of one unfinished message, then 30 of another: 90 held
        assert!(a.push(&big[..60]).unwrap().is_empty());
        assert!(b.push(&big[..30]).unwrap().is_empty());
        assert_eq!(budget.used(), 90);
        // 20 more would be 110: refused, and what b held is given back
        assert_eq!(b.push(&big[30..50]), Err(FrameError::OverBudget(100)));
        assert_eq!(budget.used(), 60);
        // a small whole message passes while a still holds its part
        let mut c = Messages::with_budget(budget.clone());
        assert_eq!(c.push(&msg(0, b"hi")).unwrap().len(), 1);
        assert_eq!(budget.used(), 60);
        // a finished message frees its bytes; dropping a splitter frees what it held
        let rest = &msg(0, &[b'y'; 10]);
        let mut d = Messages::with_budget(budget.clone());
        assert!(d.push(&rest[..8]).unwrap().is_empty());
        assert_eq!(budget.used(), 68);
        assert_eq!(d.push(&rest[8..]).unwrap().len(), 1);
        assert_eq!(budget.used(), 60);
        drop(a);
        assert_eq!(budget.used(), 0);
        let mut e = Messages::with_budget(budget.clone());
        assert!(e.push(&big[..90]).unwrap().is_empty());
        assert_eq!(e.finish(), Err(FrameError::Truncated));
        assert_eq!(budget.used(), 0);
    }

    #[test]
    fn http_statuses_map_as_grpc_clients_do() {
        use http::StatusCode as S;
        for (http, grpc) in [
            (S::FORBIDDEN, 7),
            (S::UNAUTHORIZED, 16),
            (S::BAD_REQUEST, 13),
            (S::NOT_FOUND, 12),
            (S::BAD_GATEWAY, 14),
            (S::GATEWAY_TIMEOUT, 14),
            (S::TOO_MANY_REQUESTS, 14),
            (S::METHOD_NOT_ALLOWED, 2),
        ] {
            assert_eq!(status_for_http(http), grpc, "{http}");
        }
    }

    #[tokio::test]
    async fn a_refusal_becomes_trailers_only() {
        let r = crate::Refusal::of(
            crate::RefusalKind::Dlp,
            "secret detected in request body: x",
        )
        .with_rule("dlp pattern: x")
        .response("pipelock");
        let g = refusal_as_grpc(r).await;
        assert_eq!(g.status(), http::StatusCode::OK);
        assert_eq!(g.headers()["content-type"], "application/grpc");
        assert_eq!(g.headers()["x-bottle-blocked"], "pipelock");
        assert_eq!(g.headers()["grpc-status"], "7");
        assert_eq!(
            g.headers()["grpc-message"],
            "blocked by pipelock: secret detected in request body: x"
        );
        assert!(http_body::Body::is_end_stream(g.body()));
        // an answer that is no refusal is left alone
        let ok = http::Response::new(crate::body::empty());
        assert_eq!(refusal_as_grpc(ok).await.status(), http::StatusCode::OK);
    }

    #[test]
    fn status_trailers_percent_encode() {
        let t = status_trailers(7, "blocked: 100% sure é");
        assert_eq!(t[STATUS], "7");
        assert_eq!(t[MESSAGE], "blocked: 100%25 sure %C3%A9");
    }
}
