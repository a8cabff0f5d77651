//! DLP on the request body as it streams (bounded window across chunk boundaries, no
//! buffering), and the scanner's state: the detector (built-in plus known secrets) and the
//! strict profile's memory of recent hosts ([`History`]). What is decided on the host, the
//! method, the URL and the headers is decided in [`crate::policy::dlp`].
//! gzip/deflate/br/zstd request bodies are decoded for scanning (and forwarded decoded);
//! other encodings are refused ([`crate::policy::body_coding`]). `dlp.action` in routes.yaml
//! picks block (403 naming the detector) or log. Findings never carry the secret.
//! Exfiltration shapes (environment dumps, credential files) run in every profile;
//! `dlp.profile: strict` adds the anomaly heuristics of `bottle_dlp::anomaly`.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Instant;

use bottle_core::{BoxBody, BoxError, RefusalKind};
use bottle_dlp::anomaly::{BodyWatch, DigestBudget, SubdomainTracker};
use bottle_dlp::{Detector, DetectorConfig, Finding, StreamScanner};
use bytes::Bytes;
use http::header::{self, HeaderMap};
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;
use hyper::body::Incoming;

use crate::metrics::PipelockMetrics;
use crate::policy::dlp::{describe, detectors, dlp_denied, scan_block};
use crate::policy::{BodyCoding, BodyPlan, Denied, History};

/// What the body scan found (shared with the request handler and the audit line).
#[derive(Clone, Default)]
pub struct FindingSlot(Arc<Mutex<SlotInner>>);

#[derive(Default)]
struct SlotInner {
    denied: Option<Denied>,
    logged: Vec<&'static str>,
}

impl FindingSlot {
    fn lock(&self) -> std::sync::MutexGuard<'_, SlotInner> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
    pub fn set(&self, d: Denied) {
        self.lock().denied = Some(d);
    }
    pub fn take_denied(&self) -> Option<Denied> {
        self.lock().denied.take()
    }
    /// The refusal, left in place (a streamed answer and its audit line both read it).
    pub fn denied(&self) -> Option<Denied> {
        self.lock().denied.clone()
    }
    /// Detectors found in `log` mode.
    pub fn logged(&self) -> Vec<&'static str> {
        self.lock().logged.clone()
    }
}

pub struct DlpScanner {
    detector: Detector,
    /// New subdomains per registrable parent (strict profile); bounded, see
    /// [`SubdomainTracker`] (at most 1024 parents x 64 subdomains).
    burst: Mutex<SubdomainTracker>,
    /// New hash-sized bytes (digests, UUIDs) per registrable parent (strict profile);
    /// bounded, see [`DigestBudget`] (at most 256 parents x 256 value hashes).
    digests: Mutex<DigestBudget>,
}

impl Default for DlpScanner {
    fn default() -> Self {
        DlpScanner::new(Vec::new())
    }
}

/// The strict profile's memory, asked by the decisions only for allowed hosts.
impl History for DlpScanner {
    fn observe_host(&self, authority: &str, now: Instant) -> Option<Finding> {
        let mut burst = self.burst.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(f) = burst.observe(authority, now) {
            return Some(f);
        }
        drop(burst);
        // A UUID label passes the shape check but carries 16 bytes per lookup.
        let mut digests = self.digests.lock().unwrap_or_else(|p| p.into_inner());
        digests.observe_host(authority, now)
    }

    fn observe_url(&self, host: &str, path_and_query: &str, now: Instant) -> Option<Finding> {
        let mut digests = self.digests.lock().unwrap_or_else(|p| p.into_inner());
        digests.observe_url(host, path_and_query, now)
    }
}

impl DlpScanner {
    /// Built-in detectors plus `known_secrets` (values that must never leave).
    pub fn new(known_secrets: Vec<bottle_dlp::Zeroizing<String>>) -> DlpScanner {
        let detector = if known_secrets.is_empty() {
            Detector::builtin().clone()
        } else {
            Detector::new(DetectorConfig {
                known_secrets,
                ..Default::default()
            })
        };
        DlpScanner {
            detector,
            burst: Mutex::new(SubdomainTracker::default()),
            digests: Mutex::new(DigestBudget::default()),
        }
    }

    /// The detector in use (shared with the decisions and the WebSocket scanner).
    pub fn detector(&self) -> &Detector {
        &self.detector
    }

    /// Last line of defence for audit fields: text holding a finding becomes `[REDACTED]`.
    pub fn scrub(&self, text: String) -> String {
        if text.is_empty() || self.detector.detect(text.as_bytes()).is_empty() {
            text
        } else {
            "[REDACTED]".into()
        }
    }

    /// Wraps the request body in a streaming scanner, decoded first when the decision
    /// says so (then forwarded decoded: the scanned bytes are the sent bytes).
    pub async fn wrap_body(
        &self,
        body: Incoming,
        headers: &mut HeaderMap,
        plan: &BodyPlan,
        metrics: PipelockMetrics,
        slot: FindingSlot,
    ) -> BoxBody {
        let raw: BoxBody = body.map_err(|e| -> BoxError { Box::new(e) }).boxed();
        let body = match &plan.coding {
            BodyCoding::AsSent => raw,
            BodyCoding::Decode(codings) => {
                let decoded = bottle_core::body::decode(raw, codings).await;
                headers.remove(header::CONTENT_ENCODING);
                headers.remove(header::CONTENT_LENGTH);
                decoded
            }
        };
        ScanBody {
            inner: body,
            scanner: Some(self.detector.stream()),
            watch: Some(BodyWatch::new(plan.strict)),
            detector: self.detector.clone(),
            head: headers.clone(),
            block: plan.block,
            // log mode holds nothing back: only block mode needs the message framing
            messages: (plan.grpc && plan.block).then(bottle_core::grpc::Messages::default),
            glued: Glued::default(),
            slot,
            metrics,
            pending: None,
            done: false,
        }
        .boxed()
    }
}

/// A body that only releases bytes the scanner has cleared.
struct ScanBody {
    inner: BoxBody,
    scanner: Option<StreamScanner>,
    /// Exfiltration shapes (and, strict, anomalies), judged before the
    /// scanner releases the bytes that complete them.
    watch: Option<BodyWatch>,
    /// For the trailers, scanned joined with the request's header block.
    detector: Detector,
    head: HeaderMap,
    block: bool,
    /// gRPC in block mode: whole messages scanned eagerly and released at once
    /// ([`ScanBody::messages`]).
    messages: Option<bottle_core::grpc::Messages>,
    /// gRPC: the end of the messages before, for the boundary-relaxed scan ([`Glued`]).
    glued: Glued,
    slot: FindingSlot,
    metrics: PipelockMetrics,
    pending: Option<Frame<Bytes>>,
    done: bool,
}

/// Bytes of the messages before kept for [`Glued`]: a relaxable token (a provider prefix of
/// four or more characters) split after them is still seen whole.
const GLUE_TAIL: usize = 512;
/// Bytes of a message's start scanned glued to that tail (the longest token pattern fits).
const GLUE_SPAN: usize = 4096;

/// gRPC messages are binary (protobuf): a string field's length byte sits right before its
/// value, and when it reads as a letter or digit (lengths 48-57, 65-90, 97-122) a token
/// starting the value has a word character glued to its start, which the bounded scan
/// takes for a longer word. Each message is scanned glued to the end of the messages
/// before it with token boundaries relaxed ([`Detector::detect_joined`]), as pieces glued
/// together are.
#[derive(Default)]
struct Glued {
    tail: Vec<u8>,
}

impl Glued {
    /// On its own (what the tail's last byte could hide from a bounded pattern), then its
    /// start glued to the tail (a token across the boundary; the rest of a large message
    /// was just scanned); keeps the new tail.
    fn find(&mut self, det: &Detector, payload: &[u8]) -> Option<Finding> {
        let mut found = det.detect_joined(payload).into_iter().next();
        let mut joined = std::mem::take(&mut self.tail);
        if found.is_none() && !joined.is_empty() {
            let start = payload.len().min(GLUE_SPAN);
            joined.extend_from_slice(&payload[..start]);
            found = det.detect_joined(&joined).into_iter().next();
            joined.truncate(joined.len() - start);
        }
        // the last GLUE_TAIL bytes of the tail and the payload
        let from_payload = payload.len().min(GLUE_TAIL);
        let from_tail = (GLUE_TAIL - from_payload).min(joined.len());
        joined.drain(..joined.len() - from_tail);
        joined.extend_from_slice(&payload[payload.len() - from_payload..]);
        self.tail = joined;
        found
    }
}

#[derive(Debug, thiserror::Error)]
#[error("request body refused by DLP: {0}")]
pub struct DlpBlocked(&'static str);

impl ScanBody {
    /// Block mode: records the refusal and ends the body with an error.
    fn block(&mut self, f: Finding) -> BoxError {
        self.metrics.dlp(f.detector, "block");
        self.slot.set(dlp_denied("body", &[f.detector]));
        self.done = true;
        Box::new(DlpBlocked(f.detector))
    }

    /// Findings in the trailers (alone or joined with the header block), recorded; in
    /// block mode the error that ends the body, so the upstream request never completes
    /// (HTTP/1.1: no last chunk; HTTP/2: the stream is reset).
    fn check_trailers(&mut self, trailers: &HeaderMap) -> Option<BoxError> {
        let hits = scan_block(&self.detector, &self.head, Some(trailers));
        if hits.is_empty() {
            return None;
        }
        let all: Vec<Finding> = hits.iter().flat_map(|(_, f)| f.iter().cloned()).collect();
        let dets = detectors(&all);
        if !self.block {
            self.record(all);
            return None;
        }
        let what: Vec<String> = hits.iter().map(|(n, _)| describe("trailer", n)).collect();
        for d in &dets {
            self.metrics.dlp(d, "block");
        }
        self.slot.set(dlp_denied(&what.join(", "), &dets));
        self.done = true;
        self.scanner = None;
        self.pending = None;
        Some(Box::new(DlpBlocked(dets.first().copied().unwrap_or("dlp"))))
    }

    /// A body that cannot be scanned as sent (a compressed gRPC message): refused.
    fn block_unscannable(&mut self, why: String) -> BoxError {
        let d = Denied::of(RefusalKind::DlpEncoding, why.clone())
            .rule("dlp: request bodies must be scannable");
        self.slot.set(d);
        self.done = true;
        self.scanner = None;
        self.watch = None;
        self.pending = None;
        Box::<dyn std::error::Error + Send + Sync>::from(why)
    }

    /// gRPC, block mode: the whole messages `data` completes, each scanned in context
    /// ([`StreamScanner::check`]: the overlap before it, nothing held after it) and by the
    /// exfiltration watch, released together; None at the end of the body. Err ends it.
    fn messages(&mut self, data: Option<Bytes>) -> Result<Option<Bytes>, BoxError> {
        let (Some(m), Some(sc)) = (self.messages.as_mut(), self.scanner.as_mut()) else {
            return Ok(None);
        };
        let Some(data) = data else {
            // a message cut by the body's end is dropped: the origin sees the stream end
            let _ = m.finish();
            if let Some(f) = self.watch.as_mut().and_then(|w| w.finish()) {
                return Err(self.block(f));
            }
            return Ok(None);
        };
        let msgs = match m.push(&data) {
            Ok(v) => v,
            Err(e) => return Err(self.block_unscannable(format!("request body: {e}"))),
        };
        let mut out = bytes::BytesMut::new();
        for msg in msgs {
            if msg.compressed {
                return Err(self.block_unscannable(
                    "a compressed gRPC request message cannot be scanned (send it uncompressed)"
                        .into(),
                ));
            }
            let shape = self.watch.as_mut().and_then(|w| w.push(msg.payload()));
            // joined with the messages before it (a secret split over two, decoded views),
            // and glued with boundaries relaxed: a protobuf field's length byte (or a word
            // character ending the previous message) touches the value, and `h` + `ghp_...`
            // read `hghp_...`, which the bounded scan skips
            let found = shape
                .or_else(|| sc.check(msg.payload()).into_iter().next())
                .or_else(|| self.glued.find(&self.detector, msg.payload()));
            if let Some(f) = found {
                return Err(self.block(f));
            }
            out.extend_from_slice(&msg.frame);
        }
        Ok(Some(out.freeze()))
    }

    /// The inner body ended: nothing more to scan; trailers (if any) go out last.
    fn end(&mut self, trailers: Option<Frame<Bytes>>) {
        self.scanner = None;
        self.watch = None;
        self.done = trailers.is_none();
        self.pending = trailers;
    }

    /// Log mode: records every finding (each detector once per body).
    fn record(&mut self, found: Vec<Finding>) {
        let mut slot = self.slot.lock();
        for f in found {
            if !slot.logged.contains(&f.detector) {
                self.metrics.dlp(f.detector, "log");
                slot.logged.push(f.detector);
            }
        }
    }
}

impl Body for ScanBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        loop {
            if let Some(f) = this.pending.take() {
                return Poll::Ready(Some(Ok(f)));
            }
            if this.done {
                return Poll::Ready(None);
            }
            let frame = match Pin::new(&mut this.inner).poll_frame(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Some(Err(e))) => return Poll::Ready(Some(Err(e))),
                Poll::Ready(Some(Ok(frame))) => Some(frame),
                Poll::Ready(None) => None,
            };
            if this.scanner.is_some() {
                if let Some(t) = frame.as_ref().and_then(|f| f.trailers_ref()) {
                    if let Some(e) = this.check_trailers(t) {
                        return Poll::Ready(Some(Err(e)));
                    }
                }
            }
            let Some(sc) = this.scanner.as_mut() else {
                return Poll::Ready(frame.map(Ok));
            };
            let (data, after) = match frame {
                None => (None, None),
                Some(f) => match f.into_data() {
                    Ok(d) => (Some(d), None),
                    Err(trailers) => (None, Some(trailers)),
                },
            };

            if !this.block {
                // Log mode: forward as is, scan a copy, keep scanning after a finding.
                let mut found = match &data {
                    Some(d) => sc.push_report(d.clone()).1,
                    None => sc.finish_report().1,
                };
                if let Some(w) = this.watch.as_mut() {
                    let shape = match &data {
                        Some(d) => w.push(d),
                        None => w.finish(),
                    };
                    if let Some(f) = shape {
                        // Reported once: the watch repeats its first finding.
                        this.watch = None;
                        found.push(f);
                    }
                }
                this.record(found);
                if data.is_none() {
                    this.end(after);
                }
                match data {
                    Some(d) if !d.is_empty() => return Poll::Ready(Some(Ok(Frame::data(d)))),
                    _ => continue,
                }
            }
            if this.messages.is_some() {
                let end = data.is_none();
                match this.messages(data) {
                    Err(e) => return Poll::Ready(Some(Err(e))),
                    Ok(Some(out)) if !out.is_empty() => {
                        return Poll::Ready(Some(Ok(Frame::data(out))))
                    }
                    Ok(_) if end => this.end(after),
                    Ok(_) => {}
                }
                continue;
            }
            // Block mode: release only what the scanner cleared.
            if let Some(w) = this.watch.as_mut() {
                let shape = match &data {
                    Some(d) => w.push(d),
                    None => w.finish(),
                };
                if let Some(f) = shape {
                    this.scanner = None;
                    this.watch = None;
                    this.pending = None;
                    return Poll::Ready(Some(Err(this.block(f))));
                }
            }
            let result = match data {
                Some(d) => sc.push(d),
                None => {
                    let r = sc.finish();
                    this.end(after);
                    r
                }
            };
            match result {
                Ok(out) if !out.is_empty() => return Poll::Ready(Some(Ok(Frame::data(out)))),
                Ok(_) => {}
                Err(f) => {
                    this.scanner = None;
                    this.pending = None;
                    return Poll::Ready(Some(Err(this.block(f))));
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.pending.is_none()
            && (self.done
                || (self.inner.is_end_stream()
                    && self.messages.as_ref().is_none_or(|m| m.held() == 0)
                    && self.scanner.as_ref().is_none_or(|s| s.buffered() == 0)))
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token() -> String {
        format!("ghp_{}", &"Zq8Lr3Tx6Wv1Np9Ks4Hb7Jd2Mf5Gc0Ye8Ua3Io6Pl"[..36])
    }

    #[test]
    fn a_token_glued_to_a_protobuf_length_byte_is_found() {
        let det = Detector::builtin();
        let tok = token();
        // field 1, a string of 104 bytes: the length byte is `h`
        let mut value = tok.clone().into_bytes();
        value.resize(104, b' ');
        let mut pb = vec![0x0a, 104];
        pb.extend_from_slice(&value);
        assert!(det.detect(&pb).is_empty(), "the bounded scan skips it");
        assert!(Glued::default().find(det, &pb).is_some());
        // split over two messages, the first ending in a letter
        let mut g = Glued::default();
        assert!(g
            .find(det, format!("note x{}", &tok[..12]).as_bytes())
            .is_none());
        assert!(g.find(det, &tok.as_bytes()[12..]).is_some());
        // clean messages pass, and the tail stays bounded
        let mut g = Glued::default();
        for _ in 0..10 {
            assert!(g.find(det, &[b'a'; 300]).is_none());
        }
        assert_eq!(g.tail.len(), GLUE_TAIL);
        // the tail is the last bytes, across messages
        let mut g = Glued::default();
        assert!(g.find(det, &[b'a'; 500]).is_none());
        assert!(g.find(det, b"0123456789xy").is_none());
        assert_eq!(g.tail.len(), GLUE_TAIL);
        assert!(g.tail.ends_with(b"aaa0123456789xy"));
        // a large message: the token glued across its start is found, and its tail kept
        let mut g = Glued::default();
        assert!(g.find(det, format!("x{}", &tok[..10]).as_bytes()).is_none());
        let big = [&tok.as_bytes()[10..], &[b' '; 10_000][..]].concat();
        assert!(g.find(det, &big).is_some());
    }
}
