//! DLP on everything pipelock forwards: the URL (path and query, decoded forms), every header,
//! and the request body as it streams (bounded window across chunk boundaries, no buffering).
//! gzip/deflate/br/zstd request bodies are decoded for scanning (and forwarded decoded);
//! other encodings are refused. `dlp.action` in routes.yaml picks block (403 naming the
//! detector) or log. Findings never carry the secret; audited URLs are redacted.
//! Exfiltration shapes (environment dumps, credential files) run in every profile;
//! `dlp.profile: strict` adds the anomaly heuristics of `bottle_dlp::anomaly`
//! (encoded-looking host labels, paths, query values and invented `X-` headers, label
//! volume, bursts of new subdomains, a per-parent budget of new hash-sized values, layered
//! encodings), read from the live config on every request.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Instant;

use bottle_core::routes::{DlpAction, DlpProfile};
use bottle_core::{BoxBody, BoxError};
use bottle_dlp::anomaly::{self, BodyWatch, DigestBudget, SubdomainTracker};
use bottle_dlp::{Detector, DetectorConfig, Finding, StreamScanner};
use bytes::Bytes;
use http::header::{self, HeaderMap};
use http::{Request, StatusCode, Uri};
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;
use hyper::body::Incoming;

use crate::filter::Denied;
use crate::state::{State, Subject};

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
    /// Detectors found in `log` mode.
    pub fn logged(&self) -> Vec<&'static str> {
        self.lock().logged.clone()
    }
}

/// The path of a URI without its query (logged before the URL was scanned).
pub fn path_only(uri: &Uri) -> String {
    uri.path().to_string()
}

fn detectors(findings: &[Finding]) -> Vec<&'static str> {
    let mut d: Vec<&'static str> = findings.iter().map(|f| f.detector).collect();
    d.sort_unstable();
    d.dedup();
    d
}

fn dlp_denied(what: &str, dets: &[&'static str]) -> Denied {
    // The anomaly and exfiltration detectors judge a shape, not a secret.
    let suspected = dets.iter().all(|d| anomaly::IDS.contains(d));
    let found = if suspected {
        "suspected exfiltration"
    } else {
        "secret detected"
    };
    Denied::forbidden(
        "dlp",
        format!("{found} in request {what}: {}", dets.join(", ")),
    )
}

/// `header x-a` for one field, `headers x-a + x-b` for a secret split over several.
fn describe(kind: &str, names: &[String]) -> String {
    match names {
        [one] => format!("{kind} {one}"),
        many => format!("{kind}s {}", many.join(" + ")),
    }
}

/// The header block (plus the trailer block, when given, after it) scanned as one:
/// each field alone and the fields joined, so a secret split over fields is found.
/// With trailers, only findings touching a trailer are returned (the head was scanned
/// before the request left). Returns (field names, findings) per group of fields.
fn scan_block(
    det: &Detector,
    head: &HeaderMap,
    trailers: Option<&HeaderMap>,
) -> Vec<(Vec<String>, Vec<Finding>)> {
    let mut fields: Vec<(&str, &[u8])> = head
        .iter()
        .filter(|(n, _)| *n != header::HOST)
        .map(|(n, v)| (n.as_str(), v.as_bytes()))
        .collect();
    let first_trailer = trailers.map(|t| {
        let at = fields.len();
        fields.extend(t.iter().map(|(n, v)| (n.as_str(), v.as_bytes())));
        at
    });
    let mut out: Vec<(Vec<String>, Vec<Finding>)> = Vec::new();
    for hit in det.scan_header_block(&fields) {
        if let Some(t) = first_trailer {
            if hit.fields.iter().all(|&i| i < t) {
                continue;
            }
        }
        let mut names: Vec<String> = Vec::new();
        for &i in &hit.fields {
            if let Some((n, _)) = fields.get(i) {
                if !names.iter().any(|x| x == n) {
                    names.push(n.to_string());
                }
            }
        }
        match out.iter_mut().find(|(n, _)| *n == names) {
            Some((_, f)) => f.push(hit.finding),
            None => out.push((names, vec![hit.finding])),
        }
    }
    out
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

    /// The detector in use (shared with the WebSocket scanner).
    pub fn detector(&self) -> &Detector {
        &self.detector
    }

    /// Whether `dlp.action` is block right now.
    pub fn blocks(state: &State) -> bool {
        Self::action(state) == DlpAction::Block
    }

    fn action(state: &State) -> DlpAction {
        state.live.current().routes.dlp.action
    }

    /// Whether `dlp.profile` is strict right now (anomaly heuristics on).
    pub fn strict(state: &State) -> bool {
        state.live.current().routes.dlp.profile == DlpProfile::Strict
    }

    /// Strict profile: encoded-looking labels, label volume, and a burst of new
    /// subdomains of one parent. Only allowed hosts count towards a burst (the
    /// others are refused anyway, and must not evict the parents that matter).
    fn host_anomalies(&self, state: &State, authority: &str) -> Vec<Finding> {
        let found = anomaly::scan_host(authority);
        if !found.is_empty() {
            return found;
        }
        let allowed = bottle_core::split_host_port(authority, 443)
            .ok()
            .is_some_and(|(h, p)| crate::filter::check(&state.live.current(), &h, p).is_ok());
        if !allowed {
            return Vec::new();
        }
        let now = Instant::now();
        let mut burst = self.burst.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(f) = burst.observe(authority, now) {
            return vec![f];
        }
        drop(burst);
        // A UUID label passes the shape check but carries 16 bytes per lookup.
        let mut digests = self.digests.lock().unwrap_or_else(|p| p.into_inner());
        digests.observe_host(authority, now).into_iter().collect()
    }

    /// Strict profile: the new hash-sized values of a request that passed every other
    /// check, charged to its host's registrable parent (only allowed hosts get here).
    fn digest_budget(&self, state: &State, host: &str, path_and_query: &str) -> Option<Finding> {
        if !Self::strict(state) {
            return None;
        }
        let mut digests = self.digests.lock().unwrap_or_else(|p| p.into_inner());
        digests.observe_url(host, path_and_query, Instant::now())
    }

    fn scan_headers(&self, headers: &HeaderMap, kind: &str) -> Vec<(String, Vec<Finding>)> {
        scan_block(&self.detector, headers, None)
            .into_iter()
            .map(|(names, f)| (describe(kind, &names), f))
            .collect()
    }

    /// The request method: hyper accepts extension methods, so a token can be one.
    /// Also scanned joined with the path (its leading `/` dropped), where a server
    /// could glue them back together.
    fn scan_method(&self, method: &str, path_and_query: &str, url_clean: bool) -> Vec<Finding> {
        let mut f = self.detector.detect(method.as_bytes());
        let standard = matches!(
            method,
            "GET" | "HEAD" | "POST" | "PUT" | "DELETE" | "OPTIONS" | "PATCH" | "TRACE" | "CONNECT"
        );
        if f.is_empty() && !standard && url_clean {
            let rest = path_and_query.strip_prefix('/').unwrap_or(path_and_query);
            f = self
                .detector
                .detect_joined(format!("{method}{rest}").as_bytes());
        }
        f
    }

    /// The authority the agent named (before parsing): a secret in a host name would leak
    /// through DNS and logs. On a finding `subject.host` becomes `[REDACTED]`.
    pub fn check_host(
        &self,
        state: &State,
        authority: &str,
        subject: &mut Subject,
    ) -> Result<(), Denied> {
        // scan_host also joins the labels: a token split over labels leaks through DNS too.
        let mut f = self.detector.scan_host(authority);
        if f.is_empty() && Self::strict(state) {
            f = self.host_anomalies(state, authority);
        }
        if f.is_empty() {
            return Ok(());
        }
        subject.host = "[REDACTED]".into();
        let dets = detectors(&f);
        match Self::action(state) {
            DlpAction::Block => {
                for d in &dets {
                    state.metrics.dlp(d, "block");
                }
                Err(dlp_denied("host", &dets))
            }
            DlpAction::Log => {
                for d in &dets {
                    state.metrics.dlp(d, "log");
                }
                Ok(())
            }
        }
    }

    /// Last line of defence for audit fields: text holding a finding becomes `[REDACTED]`.
    pub fn scrub(&self, text: String) -> String {
        if text.is_empty() || self.detector.detect(text.as_bytes()).is_empty() {
            text
        } else {
            "[REDACTED]".into()
        }
    }

    /// CONNECT request headers.
    pub fn check_connect(
        &self,
        state: &State,
        req: &Request<Incoming>,
        _subject: &Subject,
    ) -> Option<Denied> {
        let hits = self.scan_headers(req.headers(), "header");
        if hits.is_empty() {
            return None;
        }
        let all: Vec<Finding> = hits.iter().flat_map(|(_, f)| f.iter().cloned()).collect();
        let dets = detectors(&all);
        let names: Vec<&str> = hits.iter().map(|(n, _)| n.as_str()).collect();
        match Self::action(state) {
            DlpAction::Block => {
                for d in &dets {
                    state.metrics.dlp(d, "block");
                }
                Some(dlp_denied(&names.join(", "), &dets))
            }
            DlpAction::Log => {
                for d in &dets {
                    state.metrics.dlp(d, "log");
                }
                None
            }
        }
    }

    /// Method, URL and headers. Sets `subject.path` to the (redacted) path and query (and
    /// `subject.method` to `[REDACTED]` on a finding in it). Ok(Some(text)) describes
    /// findings let through in `log` mode.
    pub fn check_head(
        &self,
        state: &State,
        method: &str,
        path_and_query: &str,
        headers: &HeaderMap,
        subject: &mut Subject,
    ) -> Result<Option<String>, Denied> {
        let mut url_f = self.detector.scan_url(path_and_query);
        url_f.extend(anomaly::scan_url(path_and_query, Self::strict(state)));
        let method_f = self.scan_method(method, path_and_query, url_f.is_empty());
        subject.path = if !method_f.is_empty() {
            // The path may hold the rest of a token split over method and path.
            subject.method = "[REDACTED]".into();
            "[REDACTED]".into()
        } else if url_f.is_empty() {
            path_and_query.to_string()
        } else {
            bottle_dlp::redact_url(path_and_query, &url_f)
        };
        let mut hits = self.scan_headers(headers, "header");
        if hits.is_empty() {
            // Dumps and credential files in headers (not cookies or credentials);
            // strict: invented `X-` headers holding encoded data.
            let fields: Vec<(&str, &[u8])> = headers
                .iter()
                .map(|(n, v)| (n.as_str(), v.as_bytes()))
                .collect();
            if let Some((i, f)) = anomaly::scan_header_block(&fields, Self::strict(state)) {
                let name = fields.get(i).map_or("", |(n, _)| *n);
                hits.push((format!("header {name}"), vec![f]));
            }
        }
        if method_f.is_empty() && url_f.is_empty() && hits.is_empty() {
            // Charged last, so a request refused for another reason spends nothing.
            let Some(f) = self.digest_budget(state, &subject.host, path_and_query) else {
                return Ok(None);
            };
            subject.path = bottle_dlp::redact_url(path_and_query, std::slice::from_ref(&f));
            url_f.push(f);
        }
        let mut parts = Vec::new();
        let mut all = method_f.clone();
        if !method_f.is_empty() {
            parts.push("method".to_string());
        }
        all.extend(url_f.iter().cloned());
        if !url_f.is_empty() {
            parts.push("URL".to_string());
        }
        for (n, f) in &hits {
            parts.push(n.clone());
            all.extend(f.iter().cloned());
        }
        let dets = detectors(&all);
        let what = parts.join(", ");
        match Self::action(state) {
            DlpAction::Block => {
                for d in &dets {
                    state.metrics.dlp(d, "block");
                }
                Err(dlp_denied(&what, &dets))
            }
            DlpAction::Log => {
                for d in &dets {
                    state.metrics.dlp(d, "log");
                }
                Ok(Some(format!("logged: {} in {what}", dets.join(", "))))
            }
        }
    }

    /// Wraps the request body in a streaming scanner (decoding it first if compressed).
    pub async fn wrap_body(
        &self,
        state: &State,
        body: Incoming,
        headers: &mut HeaderMap,
        slot: FindingSlot,
    ) -> Result<BoxBody, Denied> {
        let raw: BoxBody = body.map_err(|e| -> BoxError { Box::new(e) }).boxed();
        let codings = bottle_core::body::parse_codings(headers).map_err(|one| {
            Denied::status(
                "dlp_encoding",
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                format!("request Content-Encoding {one:?} cannot be scanned"),
            )
        })?;
        let body = match codings.as_slice() {
            [] => raw,
            [_] => {
                let decoded = bottle_core::body::decode(raw, &codings).await;
                // Forwarded decoded: the scanned bytes are the sent bytes.
                headers.remove(header::CONTENT_ENCODING);
                headers.remove(header::CONTENT_LENGTH);
                decoded
            }
            _ => {
                return Err(Denied::status(
                    "dlp_encoding",
                    StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    "stacked request Content-Encodings cannot be scanned",
                ))
            }
        };
        let block = Self::action(state) == DlpAction::Block;
        Ok(ScanBody {
            inner: body,
            scanner: Some(self.detector.stream()),
            watch: Some(BodyWatch::new(Self::strict(state))),
            detector: self.detector.clone(),
            head: headers.clone(),
            block,
            slot,
            metrics: state.metrics.clone(),
            pending: None,
            done: false,
        }
        .boxed())
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
    slot: FindingSlot,
    metrics: crate::metrics::PipelockMetrics,
    pending: Option<Frame<Bytes>>,
    done: bool,
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
                    && self.scanner.as_ref().is_none_or(|s| s.buffered() == 0)))
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
