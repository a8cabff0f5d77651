//! pipelock's decisions, pure: a parsed CONNECT target or request head plus the live
//! config in, a [`Decision`] out (allow, with what to do; or the refusal). No I/O, no DNS,
//! no clock: the caller passes `now`, the addresses it resolved, and the strict profile's
//! memory of recent hosts ([`History`]). The server code (`connect`, `forward`) only
//! carries decisions out; `bottle why` and supervise's `/v1/check` ask [`why::would_pass`].
//!
//! Phases: [`decide_connect`] (a CONNECT), [`decide_request`] (each request, plain or
//! inside an intercepted tunnel), [`decide_addresses`] (after DNS, before dialling).

pub mod dlp;
pub mod why;

use std::net::IpAddr;
use std::path::Path;
use std::time::Instant;

use bottle_core::body::Coding;
use bottle_core::refusal::{AskAccess, RefusalKind};
use bottle_core::routes::{DlpAction, DlpProfile};
use bottle_core::{ConfigError, Host, LiveConfig, Refusal, RequestContext};
use bottle_dlp::{Detector, Finding};
use http::header::{self, HeaderMap, HeaderValue};
use http::{Method, StatusCode, Uri};

/// The name refusals and audit lines carry (`X-Bottle-Blocked: pipelock`).
pub const COMPONENT: &str = "pipelock";

/// A refusal ([`bottle_core::Refusal`]: its kind, which is the metric label, the reason,
/// the hint, the deciding rule and what the agent may ask for) plus the detectors to count.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Denied {
    pub refusal: Refusal,
    /// Detectors to count as `block` when the refusal is carried out (the body scanner
    /// counts its own, so its refusals leave this empty).
    pub blocked_by: Vec<&'static str>,
}

impl Denied {
    /// A refusal of `kind` with the kind's own status: the one way pipelock builds one (a new
    /// refusal is a new [`RefusalKind`] variant, never a label string).
    pub fn of(kind: RefusalKind, reason: impl Into<String>) -> Denied {
        Denied::from(Refusal::of(kind, reason))
    }
    /// Names the deciding rule (`allowlist: no line or route matches api.example:443`,
    /// `dlp pattern: github-pat`); never the matched value.
    pub fn rule(mut self, rule: impl Into<String>) -> Denied {
        self.refusal.rule = Some(rule.into());
        self
    }
    /// Answers with `status` instead of the kind's own.
    pub fn with_status(mut self, status: StatusCode) -> Denied {
        self.refusal.status = status;
        self
    }
    /// The metric label.
    pub fn kind(&self) -> &'static str {
        self.refusal.kind.label()
    }
}

impl From<Refusal> for Denied {
    fn from(refusal: Refusal) -> Denied {
        Denied {
            refusal,
            blocked_by: Vec::new(),
        }
    }
}

/// What an audit line describes (the request side), as the decision left it: a host,
/// method or path holding a finding is `[REDACTED]`.
pub type Subject = RequestContext;

/// A context for `event` started at `now`, every request field empty.
fn subject(event: &'static str, now: Instant) -> Subject {
    RequestContext {
        component: COMPONENT,
        event,
        started: now,
        method: String::new(),
        scheme: "",
        host: String::new(),
        port: None,
        path: String::new(),
        route: None,
        auth_scheme: None,
        extra: serde_json::Map::new(),
    }
}

/// The CONNECT target of an intercepted tunnel.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    pub host: Host,
    pub port: u16,
}

/// The live config as the decisions read it.
#[derive(Clone, Copy)]
pub struct PolicyView<'a> {
    pub live: &'a LiveConfig,
    pub detector: &'a Detector,
}

impl PolicyView<'_> {
    fn strict(&self) -> bool {
        self.live.routes.dlp.profile == DlpProfile::Strict
    }
    fn blocks(&self) -> bool {
        self.live.routes.dlp.action == DlpAction::Block
    }
}

/// A bottle's live config loaded from its directory (`allowlist`, `routes.yaml`) with the
/// built-in detectors: what `bottle why` and `/v1/check` judge against. Known secrets are
/// not loaded (they stay with the sidecar), so a request could still be refused for one.
#[derive(Clone)]
pub struct PolicyConfig {
    pub live: LiveConfig,
    pub detector: Detector,
}

impl PolicyConfig {
    /// Loads `dir/allowlist` and `dir/routes.yaml` (a missing file counts as empty).
    pub fn load(dir: &Path) -> Result<PolicyConfig, ConfigError> {
        Ok(PolicyConfig::new(LiveConfig::load(dir)?))
    }
    pub fn new(live: LiveConfig) -> PolicyConfig {
        PolicyConfig {
            live,
            detector: Detector::builtin().clone(),
        }
    }
    pub fn view(&self) -> PolicyView<'_> {
        PolicyView {
            live: &self.live,
            detector: &self.detector,
        }
    }
}

/// The strict profile's memory of recent traffic (bursts of new subdomains, new
/// hash-sized values per parent domain). Consulted only for requests that passed every
/// other check, so a refused request spends nothing.
pub trait History {
    /// An allowed host was named: a finding when it completes a burst or spends the
    /// parent's budget.
    fn observe_host(&self, authority: &str, now: Instant) -> Option<Finding>;
    /// A request to an allowed host passed every other check: its new hash-sized values.
    fn observe_url(&self, host: &str, path_and_query: &str, now: Instant) -> Option<Finding>;
}

/// No memory: every request judged as if it were the first (`bottle why`).
pub struct NoHistory;

impl History for NoHistory {
    fn observe_host(&self, _: &str, _: Instant) -> Option<Finding> {
        None
    }
    fn observe_url(&self, _: &str, _: &str, _: Instant) -> Option<Finding> {
        None
    }
}

/// A decision: the verdict, what the audit line may show, and the detectors whose
/// findings were let through in `log` mode (counted whatever the verdict).
#[derive(Debug, Clone)]
pub struct Decision<A> {
    pub verdict: Result<A, Denied>,
    pub subject: Subject,
    pub logged: Vec<&'static str>,
}

/// How an allowed CONNECT is carried out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tunnel {
    /// Byte for byte (a `tls_passthrough` route): nothing inside is seen.
    Passthrough,
    /// Decrypted with a leaf from the bottle CA; every inner request is decided again.
    Intercept,
}

/// An allowed CONNECT.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectPlan {
    pub target: Target,
    pub tunnel: Tunnel,
    /// The allowlist line or route that let it through.
    pub rule: String,
}

/// How the request body is scanned: its coding, and `dlp.action` / `dlp.profile` as they
/// were when the request was decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BodyPlan {
    pub coding: BodyCoding,
    /// Block mode: nothing past a finding leaves (else found, counted, let through).
    pub block: bool,
    /// Strict profile: the body's anomaly heuristics too.
    pub strict: bool,
    /// gRPC framing (`Content-Type: application/grpc*`): scanned and released message by
    /// message, nothing held past a whole message (a bidirectional stream waits for the
    /// answer to what it sent); a compressed message is refused.
    pub grpc: bool,
}

/// The request body's coding as the scanner takes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BodyCoding {
    /// Scanned as sent.
    AsSent,
    /// Decoded, scanned and forwarded decoded (`Content-Encoding` and `Content-Length`
    /// removed): the scanned bytes are the sent bytes.
    Decode(Vec<Coding>),
}

/// An allowed request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestPlan {
    pub scheme: &'static str,
    pub target: Target,
    /// `host` for the scheme's default port, else `host:port`: the Host sent upstream.
    pub authority: String,
    /// The same, as the header value.
    pub host_header: HeaderValue,
    /// The absolute URL sent upstream.
    pub url: Uri,
    pub body: BodyPlan,
    /// Findings let through in `log` mode in the head (`logged: github-pat in URL`).
    pub head_logged: Option<String>,
    /// The allowlist line or route that let it through.
    pub rule: String,
}

/// A request head as the agent sent it.
#[derive(Debug, Clone, Copy)]
pub struct RequestHead<'a> {
    pub method: &'a Method,
    pub uri: &'a Uri,
    pub headers: &'a HeaderMap,
}

/// Where a request arrived.
#[derive(Debug, Clone, Copy)]
pub enum Via<'a> {
    /// Absolute-form HTTP on the proxy port.
    Plain,
    /// Decrypted inside the tunnel opened to this target.
    Tunnel(&'a Target),
}

/// Whether `host:port` may be reached at all (allowlist or a route's host, and a private
/// IP literal only with an address line); Ok names the deciding rule and the tunnel.
pub fn admit(live: &LiveConfig, host: &Host, port: u16) -> Result<(Tunnel, String), Denied> {
    let authority = host.to_authority(port);
    let route = live.route_for_host(host, port);
    let line = allowlist_line(live, host, port);
    if route.is_none() && line.is_none() {
        let mut refusal = Refusal::of(
            RefusalKind::HostNotAllowed,
            format!("host not allowed: {authority}"),
        );
        if let Some(hint) = bottle_core::hint::allow_hint(host, port) {
            refusal = refusal.with_hint(hint);
        }
        let refusal = refusal
            .with_rule(format!("allowlist: no line or route matches {authority}"))
            .with_ask(AskAccess::host(host, port));
        return Err(Denied::from(refusal));
    }
    if let Host::Ip(ip) = host {
        if let Some(why) = bottle_core::ssrf::private_reason(*ip) {
            if !live.allowlist.covers_addr(*ip) {
                return Err(Denied::of(
                    RefusalKind::PrivateAddress,
                    format!("private address: {ip} ({why})"),
                )
                .rule(format!("ssrf: {why}")));
            }
        }
    }
    let passthrough = live
        .routes
        .routes
        .iter()
        .find(|r| r.tls_passthrough && r.host.matches(host, port));
    let decided_by = passthrough.or(if line.is_some() { None } else { route });
    Ok(match (passthrough, decided_by, line) {
        (Some(r), _, _) => (
            Tunnel::Passthrough,
            format!("routes.yaml line {}: {} (tls_passthrough)", r.line, r.host),
        ),
        (None, Some(r), _) => (
            Tunnel::Intercept,
            format!("routes.yaml line {}: {}", r.line, r.host),
        ),
        (None, None, Some(l)) => (Tunnel::Intercept, l),
        (None, None, None) => (Tunnel::Intercept, "allowlist".into()),
    })
}

/// The allowlist line that allows `host:port`, as rule text.
fn allowlist_line(live: &LiveConfig, host: &Host, port: u16) -> Option<String> {
    if !live.allowlist.allows(host, port) {
        return None;
    }
    Some(match host {
        Host::Name(_) => live
            .allowlist
            .patterns()
            .iter()
            .find(|p| p.matches(host, port))
            .map_or_else(|| "allowlist".into(), |p| format!("allowlist: {p}")),
        Host::Ip(ip) => format!("allowlist: an address line covering {ip}"),
    })
}

/// A CONNECT: host DLP (and, strict, host anomalies), the target, the allowlist and SSRF
/// for IP literals, DLP on the CONNECT's own headers; then passthrough or interception.
pub fn decide_connect(
    authority: &str,
    headers: &HeaderMap,
    cfg: PolicyView<'_>,
    history: &dyn History,
    now: Instant,
) -> Decision<ConnectPlan> {
    let mut subject = subject("connect", now);
    subject.method = "CONNECT".into();
    subject.scheme = "https";
    subject.host = authority.to_string();
    let mut logged = Vec::new();
    let verdict = (|| {
        let host_dlp = dlp::judge_host(authority, cfg, history, now);
        if host_dlp.found {
            subject.host = "[REDACTED]".into();
        }
        logged.extend(host_dlp.logged);
        host_dlp.verdict?;
        let (host, port) = bottle_core::split_host_port(authority, 443).map_err(|e| {
            Denied::of(
                RefusalKind::BadTarget,
                format!("bad CONNECT target {authority:?}: {e}"),
            )
            .rule("request: CONNECT target is not host:port")
        })?;
        if !host_dlp.found {
            subject.host = host.to_string();
        }
        subject.port = Some(port);
        let (tunnel, rule) = admit(cfg.live, &host, port)?;
        let head = dlp::judge_headers(headers, cfg);
        logged.extend(head.logged);
        head.verdict?;
        Ok(ConnectPlan {
            target: Target { host, port },
            tunnel,
            rule,
        })
    })();
    Decision {
        verdict,
        subject,
        logged,
    }
}

/// After DNS: refuses a name that resolved to a private address (unless an address line
/// covers it, or `--resolve` pinned the name: `pinned_private_ok`).
pub fn decide_addresses(
    host: &Host,
    addrs: &[IpAddr],
    live: &LiveConfig,
    pinned_private_ok: bool,
) -> Result<(), Denied> {
    for ip in addrs {
        let Some(why) = bottle_core::ssrf::private_reason(*ip) else {
            continue;
        };
        if pinned_private_ok || live.allowlist.covers_addr(*ip) {
            continue;
        }
        let what = match host {
            Host::Ip(_) => format!("private address: {ip} ({why})"),
            Host::Name(n) => format!("private address: {ip} ({why}) for {n}"),
        };
        return Err(Denied::from(
            Refusal::of(RefusalKind::PrivateAddress, what)
                .with_hint(format!("allow it with an address line: {ip}")),
        )
        .rule(format!("ssrf: {why}")));
    }
    Ok(())
}

/// One request, plain or inside a tunnel: its target (a tunnel's requests must name the
/// CONNECT target), the allowlist and SSRF, DLP on method, URL and headers (strict: URL
/// anomalies and the per-parent budget), then how its body is scanned.
pub fn decide_request(
    head: RequestHead<'_>,
    via: Via<'_>,
    cfg: PolicyView<'_>,
    history: &dyn History,
    now: Instant,
) -> Decision<RequestPlan> {
    let mut subject = subject("request", now);
    subject.method = head.method.as_str().to_string();
    let mut logged = Vec::new();
    let verdict = match via {
        Via::Tunnel(target) => {
            subject.scheme = "https";
            subject.host = target.host.to_string();
            subject.port = Some(target.port);
            subject.path = "/".into();
            inner_target(head, target).map(|()| ("https", target.clone()))
        }
        Via::Plain => {
            subject.scheme = "http";
            plain_target(head, cfg, history, now, &mut subject, &mut logged)
        }
    }
    .and_then(|(scheme, target)| {
        subject.scheme = scheme;
        subject.host = target.host.to_string();
        subject.port = Some(target.port);
        subject.path = head.uri.path().to_string();
        proceed(
            head,
            scheme,
            target,
            cfg,
            history,
            now,
            &mut subject,
            &mut logged,
        )
    });
    Decision {
        verdict,
        subject,
        logged,
    }
}

fn several_hosts() -> Denied {
    Denied::of(RefusalKind::BadRequest, "several Host headers").rule("request: one Host header")
}

/// A decrypted request must name the CONNECT target (URI authority and Host alike).
fn inner_target(head: RequestHead<'_>, target: &Target) -> Result<(), Denied> {
    if head.method == Method::CONNECT {
        return Err(Denied::of(
            RefusalKind::NestedConnect,
            "CONNECT inside an intercepted tunnel is not allowed",
        )
        .rule("tunnel: no CONNECT inside"));
    }
    let uri_auth = head.uri.authority().map(|a| a.as_str().to_string());
    let host_hdr = match head.headers.get_all(header::HOST).iter().count() {
        0 => None,
        1 => head
            .headers
            .get(header::HOST)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string),
        _ => return Err(several_hosts()),
    };
    let mut seen = 0;
    for a in [uri_auth, host_hdr].into_iter().flatten() {
        match bottle_core::split_host_port(&a, 443) {
            Ok((h, p)) if h == target.host && p == target.port => seen += 1,
            _ => {
                return Err(Denied::of(
                    RefusalKind::AuthorityMismatch,
                    format!(
                        "request authority {a:?} does not match the CONNECT target {}",
                        target.host.to_authority(target.port)
                    ),
                )
                .rule("tunnel: requests name the CONNECT target"))
            }
        }
    }
    if seen == 0 {
        return Err(Denied::of(RefusalKind::BadRequest, "request has no Host")
            .rule("request: a Host is required"));
    }
    Ok(())
}

/// An absolute-form request: its scheme, host DLP, and a Host header (if any) naming the
/// same target (else it is a fronting attempt).
fn plain_target(
    head: RequestHead<'_>,
    cfg: PolicyView<'_>,
    history: &dyn History,
    now: Instant,
    subject: &mut Subject,
    logged: &mut Vec<&'static str>,
) -> Result<(&'static str, Target), Denied> {
    let (scheme, default_port): (&'static str, u16) = match head.uri.scheme_str() {
        Some("http") => ("http", 80),
        Some("https") => ("https", 443),
        None => {
            return Err(Denied::of(RefusalKind::BadRequest,
                "pipelock is a forward proxy: send absolute-form requests (http://host/path) or CONNECT",
            )
            .rule("request: absolute form"))
        }
        Some(other) => {
            return Err(Denied::of(RefusalKind::BadRequest,
                format!("unsupported scheme {other:?}"),
            )
            .rule("request: http or https"))
        }
    };
    subject.scheme = scheme;
    let auth = head.uri.authority().map(|a| a.as_str()).unwrap_or("");
    subject.host = auth.to_string();
    let host_dlp = dlp::judge_host(auth, cfg, history, now);
    if host_dlp.found {
        subject.host = "[REDACTED]".into();
    }
    logged.extend(host_dlp.logged);
    host_dlp.verdict?;
    let (host, port) = bottle_core::split_host_port(auth, default_port).map_err(|e| {
        // 403, not the kind's 400: what this refusal has always answered.
        Denied::of(RefusalKind::BadTarget, format!("bad host {auth:?}: {e}"))
            .with_status(StatusCode::FORBIDDEN)
            .rule("request: URL host is not host[:port]")
    })?;
    subject.host = host.to_string();
    subject.port = Some(port);
    let hosts: Vec<_> = head.headers.get_all(header::HOST).iter().collect();
    if hosts.len() > 1 {
        return Err(several_hosts());
    }
    if let Some(h) = hosts.first() {
        let same = h
            .to_str()
            .ok()
            .and_then(|h| bottle_core::split_host_port(h, default_port).ok())
            .is_some_and(|(hh, hp)| hh == host && hp == port);
        if !same {
            return Err(Denied::of(
                RefusalKind::AuthorityMismatch,
                format!(
                    "Host header does not match the request target {}",
                    host.to_authority(port)
                ),
            )
            .rule("request: Host names the URL's host"));
        }
    }
    Ok((scheme, Target { host, port }))
}

#[allow(clippy::too_many_arguments)]
fn proceed(
    head: RequestHead<'_>,
    scheme: &'static str,
    target: Target,
    cfg: PolicyView<'_>,
    history: &dyn History,
    now: Instant,
    subject: &mut Subject,
    logged: &mut Vec<&'static str>,
) -> Result<RequestPlan, Denied> {
    let (_, rule) = admit(cfg.live, &target.host, target.port)?;
    let authority = authority_for(scheme, &target);
    let path_q = head
        .uri
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "/".into());
    let judged = dlp::judge_head(
        head.method.as_str(),
        &path_q,
        head.headers,
        &subject.host,
        cfg,
        history,
        now,
    );
    subject.path = judged.path;
    if judged.method_redacted {
        subject.method = "[REDACTED]".into();
    }
    logged.extend(judged.logged);
    let head_logged = judged.verdict?;
    let host_header = HeaderValue::from_str(&authority).map_err(|_| {
        Denied::of(RefusalKind::BadTarget, "bad authority")
            .rule("request: authority is a valid header")
    })?;
    let body = BodyPlan {
        coding: body_coding(head.headers)?,
        block: cfg.blocks(),
        strict: cfg.strict(),
        grpc: bottle_core::grpc::is_grpc(head.headers),
    };
    let url: Uri = format!("{scheme}://{authority}{path_q}")
        .parse()
        .map_err(|e| {
            Denied::of(RefusalKind::BadTarget, format!("bad URL: {e}"))
                .rule("request: URL is valid")
        })?;
    Ok(RequestPlan {
        scheme,
        target,
        authority,
        host_header,
        url,
        body,
        head_logged,
        rule,
    })
}

/// `host` for the scheme's default port, else `host:port` (IPv6 in brackets).
fn authority_for(scheme: &str, target: &Target) -> String {
    let default = matches!((scheme, target.port), ("https", 443) | ("http", 80));
    if default {
        target.host.to_url_host()
    } else {
        target.host.to_authority(target.port)
    }
}

/// The body is scanned as sent or decoded once; anything else cannot be scanned.
pub fn body_coding(headers: &HeaderMap) -> Result<BodyCoding, Denied> {
    let codings = bottle_core::body::parse_codings(headers).map_err(|one| {
        Denied::of(
            RefusalKind::DlpEncoding,
            format!("request Content-Encoding {one:?} cannot be scanned"),
        )
        .rule("dlp: request bodies must be scannable")
    })?;
    match codings.len() {
        0 => Ok(BodyCoding::AsSent),
        1 => Ok(BodyCoding::Decode(codings)),
        _ => Err(Denied::of(
            RefusalKind::DlpEncoding,
            "stacked request Content-Encodings cannot be scanned",
        )
        .rule("dlp: request bodies must be scannable")),
    }
}

#[cfg(test)]
#[path = "policy_tests.rs"]
mod tests;
