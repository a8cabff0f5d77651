//! `echo-origin`: a reusable test origin for the bottle test suites.
//!
//! One [`EchoOrigin`] serves HTTP/1.1 and HTTP/2 on two listeners on 127.0.0.1: plain TCP
//! (HTTP/2 by prior knowledge) and TLS (ALPN `h2` / `http/1.1`) with a leaf issued by a
//! [`TestCa`] generated at test time. See README.md for the endpoints.
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! use echo_origin::{EchoOptions, EchoOrigin};
//! let origin = EchoOrigin::start(EchoOptions::default()).await?;
//! let url = origin.https_url("/hello?x=1"); // https://127.0.0.1:PORT/hello?x=1
//! // ... drive a client with --cacert origin.ca_path ...
//! let seen = origin.requests();
//! # let _ = (url, seen); Ok(()) }
//! ```
//!
//! Tests can also serve canned content at an exact path: [`EchoOrigin::set_page`] with a
//! [`Page`] (status, content type, headers, body chunks sent apart, optional gzip / deflate /
//! br / zstd), and [`EchoOrigin::set_jsonrpc`] / [`EchoOrigin::set_jsonrpc_endpoint`] for
//! JSON-RPC 2.0 (MCP, A2A): a POSTed request is answered with the result mapped to its
//! `method`, as JSON or as `text/event-stream` events. Requests to those paths keep their
//! body in [`RecordedRequest::body`].
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod ca;
mod canned;
mod grpc;
mod handlers;
mod http_parts;
mod reflect;
mod rsa_key;
mod server;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use serde::Serialize;

pub use ca::{parse_certs, parse_key, server_config_from_pem, TestCa};
pub use canned::{JsonRpcEndpoint, Page, PageEncoding};
pub use grpc::frame as grpc_frame;
pub use reflect::{fully_percent_encode, percent_encode_unreserved, reflect_lines};

/// Errors of this crate.
#[derive(Debug, thiserror::Error)]
pub enum EchoError {
    /// Certificate generation or parsing failed.
    #[error("certificate: {0}")]
    Cert(#[from] rcgen::Error),
    /// rustls rejected a configuration.
    #[error("tls: {0}")]
    Tls(#[from] rustls::Error),
    /// A PEM input could not be parsed.
    #[error("pem: {0}")]
    Pem(String),
    /// RSA key generation failed.
    #[error("rsa: {0}")]
    Rsa(String),
    /// The system random generator failed.
    #[error("system random generator failed")]
    Random,
    /// I/O error.
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
}

impl From<EchoError> for std::io::Error {
    fn from(e: EchoError) -> Self {
        match e {
            EchoError::Io(io) => io,
            other => std::io::Error::other(other.to_string()),
        }
    }
}

/// Options for [`EchoOrigin::start`].
#[derive(Clone, Debug)]
pub struct EchoOptions {
    /// Subject alternative names of the TLS leaf (DNS names or IP literals).
    /// Default: `["localhost", "127.0.0.1", "echo.test"]`.
    pub names: Vec<String>,
    /// The CA that issues the leaf. `None`: a fresh ECDSA CA.
    pub ca: Option<TestCa>,
}

impl Default for EchoOptions {
    fn default() -> Self {
        EchoOptions {
            names: default_names(),
            ca: None,
        }
    }
}

/// The default SANs of the TLS leaf.
pub fn default_names() -> Vec<String> {
    vec![
        "localhost".to_string(),
        "127.0.0.1".to_string(),
        "echo.test".to_string(),
    ]
}

/// One request as the origin saw it.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct RecordedRequest {
    /// Method, e.g. `GET`.
    pub method: String,
    /// Request target as received (origin-form for HTTP/1.1; for HTTP/2 the full URI).
    pub uri: String,
    /// Path without query.
    pub path: String,
    /// Raw query string (not decoded), if any.
    pub query: Option<String>,
    /// `HTTP/1.1`, `HTTP/2.0`, ...
    pub version: String,
    /// URI authority (HTTP/2 `:authority`) or the `Host` header.
    pub authority: Option<String>,
    /// Every header in order, duplicates kept; values decoded lossily as UTF-8.
    pub headers: Vec<(String, String)>,
    /// Request body bytes read by the endpoint (0 for endpoints that ignore the body).
    pub body_len: u64,
    /// Whether the request came over the TLS listener.
    pub tls: bool,
    /// SNI the client sent (TLS only).
    pub sni: Option<String>,
    /// Negotiated ALPN protocol (TLS only).
    pub alpn: Option<String>,
    /// Client address.
    pub peer: SocketAddr,
    /// Connection number (unique per origin; equal numbers = same connection).
    pub conn_id: u64,
    /// The request body, kept only for paths installed with [`EchoOrigin::set_page`] or
    /// [`EchoOrigin::set_jsonrpc`] (at most 1 MiB); empty otherwise.
    #[serde(skip)]
    pub body: Vec<u8>,
    /// Request trailers (gRPC calls only; see README.md), values lossily UTF-8.
    #[serde(skip)]
    pub trailers: Vec<(String, String)>,
}

impl RecordedRequest {
    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Every value of header `name` (case-insensitive), in order.
    pub fn header_all(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }
}

/// How many requests an origin keeps by default (oldest dropped first).
pub const DEFAULT_RECORD_LIMIT: usize = 100_000;

#[derive(Default)]
struct Recorded {
    /// Requests dropped from the front so far (absolute index of `items[0]`).
    dropped: usize,
    items: std::collections::VecDeque<RecordedRequest>,
}

/// Shared state of one origin.
pub(crate) struct State {
    requests: Mutex<Recorded>,
    record_limit: AtomicUsize,
    log_requests: std::sync::atomic::AtomicBool,
    total_requests: AtomicU64,
    open_conns: AtomicUsize,
    max_conns: AtomicUsize,
    total_conns: AtomicU64,
    canned: Mutex<std::collections::HashMap<String, canned::Canned>>,
}

impl Default for State {
    fn default() -> Self {
        State {
            requests: Mutex::new(Recorded::default()),
            record_limit: AtomicUsize::new(DEFAULT_RECORD_LIMIT),
            log_requests: std::sync::atomic::AtomicBool::new(false),
            total_requests: AtomicU64::new(0),
            open_conns: AtomicUsize::new(0),
            max_conns: AtomicUsize::new(0),
            total_conns: AtomicU64::new(0),
            canned: Mutex::new(std::collections::HashMap::new()),
        }
    }
}

impl State {
    fn lock(&self) -> std::sync::MutexGuard<'_, Recorded> {
        self.requests.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records a request; returns its absolute index (for [`State::set_body_len`]).
    pub(crate) fn record(&self, r: RecordedRequest) -> usize {
        self.total_requests.fetch_add(1, Ordering::SeqCst);
        let limit = self.record_limit.load(Ordering::SeqCst);
        let mut rec = self.lock();
        rec.items.push_back(r);
        while rec.items.len() > limit {
            rec.items.pop_front();
            rec.dropped += 1;
        }
        rec.dropped + rec.items.len() - 1
    }

    pub(crate) fn set_body_len(&self, idx: usize, n: u64) {
        let mut rec = self.lock();
        if let Some(i) = idx.checked_sub(rec.dropped) {
            if let Some(r) = rec.items.get_mut(i) {
                r.body_len = n;
            }
        }
    }

    pub(crate) fn set_body(&self, idx: usize, body: Vec<u8>) {
        let mut rec = self.lock();
        if let Some(i) = idx.checked_sub(rec.dropped) {
            if let Some(r) = rec.items.get_mut(i) {
                r.body = body;
            }
        }
    }

    pub(crate) fn set_trailers(&self, idx: usize, t: &http::HeaderMap) {
        let mut rec = self.lock();
        if let Some(i) = idx.checked_sub(rec.dropped) {
            if let Some(r) = rec.items.get_mut(i) {
                r.trailers = t
                    .iter()
                    .map(|(n, v)| {
                        (
                            n.as_str().to_string(),
                            String::from_utf8_lossy(v.as_bytes()).into_owned(),
                        )
                    })
                    .collect();
            }
        }
    }

    /// What is installed at `path`, if anything.
    pub(crate) fn canned(&self, path: &str) -> Option<canned::Canned> {
        self.canned_map().get(path).cloned()
    }

    fn canned_map(
        &self,
    ) -> std::sync::MutexGuard<'_, std::collections::HashMap<String, canned::Canned>> {
        self.canned.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn log_requests(&self) -> bool {
        self.log_requests.load(Ordering::Relaxed)
    }

    pub(crate) fn conn_opened(&self) -> u64 {
        let now = self.open_conns.fetch_add(1, Ordering::SeqCst) + 1;
        self.max_conns.fetch_max(now, Ordering::SeqCst);
        self.total_conns.fetch_add(1, Ordering::SeqCst) + 1
    }

    pub(crate) fn conn_closed(&self) {
        self.open_conns.fetch_sub(1, Ordering::SeqCst);
    }
}

/// A running origin. Dropping it stops both listeners and closes open connections.
pub struct EchoOrigin {
    /// Plain HTTP listener (HTTP/1.1 and h2c prior knowledge).
    pub http_addr: SocketAddr,
    /// TLS listener (ALPN h2 and http/1.1).
    pub https_addr: SocketAddr,
    /// The CA that issued the TLS leaf.
    pub ca: TestCa,
    /// A file holding the CA certificate PEM (in a temp dir owned by this origin).
    pub ca_path: PathBuf,
    leaf_pem: String,
    state: Arc<State>,
    shutdown: tokio::sync::watch::Sender<bool>,
    _tmp: Option<tempfile::TempDir>,
    /// Own runtime, for [`EchoOrigin::start_blocking`].
    rt: Option<tokio::runtime::Runtime>,
}

impl Drop for EchoOrigin {
    fn drop(&mut self) {
        let _ = self.shutdown.send(true);
        if let Some(rt) = self.rt.take() {
            // Does not block, and is allowed inside an async context.
            rt.shutdown_background();
        }
    }
}

impl std::fmt::Debug for EchoOrigin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EchoOrigin")
            .field("http_addr", &self.http_addr)
            .field("https_addr", &self.https_addr)
            .field("ca_path", &self.ca_path)
            .finish()
    }
}

impl EchoOrigin {
    /// Starts an origin on 127.0.0.1 (two ephemeral ports). Needs a tokio runtime.
    pub async fn start(opts: EchoOptions) -> std::io::Result<EchoOrigin> {
        let lo = SocketAddr::from(([127, 0, 0, 1], 0));
        Self::start_on(opts, lo, lo, None).await
    }

    /// Starts an origin on the given addresses. `ca_dir`: where to write `ca.crt`
    /// (`None`: a temp dir owned by the origin).
    pub async fn start_on(
        opts: EchoOptions,
        http_bind: SocketAddr,
        https_bind: SocketAddr,
        ca_dir: Option<&Path>,
    ) -> std::io::Result<EchoOrigin> {
        let ca = match opts.ca {
            Some(ca) => ca,
            None => TestCa::try_new()?,
        };
        let names: Vec<&str> = opts.names.iter().map(String::as_str).collect();
        let (leaf_pem, leaf_key) = ca.try_issue(&names)?;
        let tls = server_config_from_pem(&leaf_pem, &leaf_key)?;
        let (tmp, dir) = match ca_dir {
            Some(d) => (None, d.to_path_buf()),
            None => {
                let t = tempfile::Builder::new().prefix("echo-origin-").tempdir()?;
                let p = t.path().to_path_buf();
                (Some(t), p)
            }
        };
        let ca_path = ca.try_write_cert(&dir)?;
        let http = tokio::net::TcpListener::bind(http_bind).await?;
        let https = tokio::net::TcpListener::bind(https_bind).await?;
        let http_addr = http.local_addr()?;
        let https_addr = https.local_addr()?;
        let state = Arc::new(State::default());
        let (tx, rx) = tokio::sync::watch::channel(false);
        tokio::spawn(server::accept_loop(http, None, state.clone(), rx.clone()));
        tokio::spawn(server::accept_loop(https, Some(tls), state.clone(), rx));
        Ok(EchoOrigin {
            http_addr,
            https_addr,
            ca,
            ca_path,
            leaf_pem,
            state,
            shutdown: tx,
            _tmp: tmp,
            rt: None,
        })
    }

    /// For synchronous tests: starts the origin on its own runtime (one worker thread),
    /// so blocking calls in the test (e.g. `std::process::Command::new("curl")`) cannot
    /// starve it. Must not be called from inside an async context (it blocks).
    pub fn start_blocking(opts: EchoOptions) -> std::io::Result<EchoOrigin> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("echo-origin")
            .enable_all()
            .build()?;
        let mut origin = rt.block_on(Self::start(opts))?;
        origin.rt = Some(rt);
        Ok(origin)
    }

    /// `http://127.0.0.1:PORT{path}` (path should start with `/`).
    pub fn http_url(&self, path: &str) -> String {
        format!("http://{}{}", self.http_addr, path)
    }

    /// `https://127.0.0.1:PORT{path}` (the leaf covers 127.0.0.1 by default).
    pub fn https_url(&self, path: &str) -> String {
        format!("https://{}{}", self.https_addr, path)
    }

    /// `http://{host}:PORT{path}`, e.g. for `curl --resolve host:PORT:127.0.0.1`.
    pub fn http_url_host(&self, host: &str, path: &str) -> String {
        format!("http://{host}:{}{path}", self.http_addr.port())
    }

    /// `https://{host}:PORT{path}` (host should be one of the leaf's names).
    pub fn https_url_host(&self, host: &str, path: &str) -> String {
        format!("https://{host}:{}{path}", self.https_addr.port())
    }

    /// The chain the TLS listener presents (leaf then CA), PEM.
    pub fn leaf_chain_pem(&self) -> &str {
        &self.leaf_pem
    }

    /// The leaf certificate the TLS listener presents, DER (to compare with what a client
    /// saw, e.g. through a TLS passthrough tunnel).
    pub fn leaf_der(&self) -> Result<rustls_pki_types::CertificateDer<'static>, EchoError> {
        parse_certs(&self.leaf_pem)?
            .into_iter()
            .next()
            .ok_or_else(|| EchoError::Pem("no leaf".into()))
    }

    /// Every request seen so far, in arrival order (at most the record limit, newest kept;
    /// see [`EchoOrigin::set_record_limit`]).
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.state.lock().items.iter().cloned().collect()
    }

    /// Forgets the recorded requests (the total count is kept).
    pub fn clear_requests(&self) {
        let mut rec = self.state.lock();
        let n = rec.items.len();
        rec.items.clear();
        rec.dropped += n;
    }

    /// How many requests to keep for [`EchoOrigin::requests`] (default
    /// [`DEFAULT_RECORD_LIMIT`]; older ones are dropped). 0 keeps none (load tests).
    pub fn set_record_limit(&self, n: usize) {
        self.state.record_limit.store(n, Ordering::SeqCst);
        let mut rec = self.state.lock();
        while rec.items.len() > n {
            rec.items.pop_front();
            rec.dropped += 1;
        }
    }

    /// Print one JSON line per request on stdout (the [`RecordedRequest`] fields plus
    /// `status`), when the response headers are ready. Off by default. Header values are
    /// printed as received, credentials included: this is a test origin.
    pub fn set_log_requests(&self, on: bool) {
        self.state.log_requests.store(on, Ordering::Relaxed);
    }

    /// Serves `page` for any method at exactly `path` (query ignored), replacing what was
    /// there (a built-in endpoint or an earlier page). The request body is read and kept in
    /// [`RecordedRequest::body`].
    pub fn set_page(&self, path: &str, page: Page) {
        self.state
            .canned_map()
            .insert(path.to_string(), canned::Canned::Page(page));
    }

    /// Answers JSON-RPC 2.0 POSTs at exactly `path`: each request gets the result mapped
    /// to its `method` (as `application/json`, or as one `text/event-stream` event
    /// `event: message` when `as_sse`), a batch gets an array, a notification 202. The
    /// request body is kept in [`RecordedRequest::body`]. Call again to change the
    /// results (e.g. a tool list that changes between two `tools/list` calls).
    pub fn set_jsonrpc(
        &self,
        path: &str,
        methods: impl IntoIterator<Item = (String, serde_json::Value)>,
        as_sse: bool,
    ) {
        self.set_jsonrpc_endpoint(path, JsonRpcEndpoint::new(methods, as_sse));
    }

    /// Like [`EchoOrigin::set_jsonrpc`] with every option ([`JsonRpcEndpoint`]: several
    /// SSE events per method, a pause between events, an `Mcp-Session-Id`).
    pub fn set_jsonrpc_endpoint(&self, path: &str, endpoint: JsonRpcEndpoint) {
        self.state
            .canned_map()
            .insert(path.to_string(), canned::Canned::JsonRpc(endpoint));
    }

    /// Removes what [`EchoOrigin::set_page`] or [`EchoOrigin::set_jsonrpc`] installed at
    /// `path`.
    pub fn clear_page(&self, path: &str) {
        self.state.canned_map().remove(path);
    }

    /// Requests received so far, including those no longer recorded.
    pub fn total_requests(&self) -> u64 {
        self.state.total_requests.load(Ordering::SeqCst)
    }

    /// The highest number of simultaneously open connections (both listeners together).
    pub fn max_concurrent_connections(&self) -> usize {
        self.state.max_conns.load(Ordering::SeqCst)
    }

    /// Connections open right now.
    pub fn open_connections(&self) -> usize {
        self.state.open_conns.load(Ordering::SeqCst)
    }

    /// Connections accepted so far (both listeners).
    pub fn total_connections(&self) -> u64 {
        self.state.total_conns.load(Ordering::SeqCst)
    }
}

/// The byte at `offset` of every `/download` body: `(offset % 251) as u8`.
pub fn download_byte(offset: u64) -> u8 {
    // 251 is prime, so the pattern does not align with power-of-two frame sizes.
    (offset % 251) as u8
}

/// The hex SHA-256 of a `/download?bytes=n` body (computed in bounded memory).
pub fn download_sha256(n: u64) -> String {
    let mut h = ring::digest::Context::new(&ring::digest::SHA256);
    let mut pos = 0u64;
    let pattern = handlers::pattern();
    while pos < n {
        let len = (n - pos).min(handlers::FRAME as u64) as usize;
        let off = (pos % 251) as usize;
        h.update(&pattern[off..off + len]);
        pos += len as u64;
    }
    hex::encode(h.finish().as_ref())
}
