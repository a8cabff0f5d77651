//! What a refused request looks like: status, `X-Bottle-Blocked`, one actionable line, then
//! the rule that decided and, where the agent may ask for access, how (issue 15).
//!
//! The first body line is the contract (`../shared/DESIGN.md`):
//! `blocked by <component>: <reason> (<hint>)`. Further lines, each present only when known:
//! `rule: ...`, `ask: curl ...`, `ask (MCP): tool request_access at <url>/mcp, ...`,
//! `operator: ...`.

use std::fmt;

use http::{header, HeaderValue, Response, StatusCode};

use crate::audit::AuditDecision;
use crate::body::{full, BoxBody};
pub use crate::refusal_ask::{AskAccess, SuperviseUrl};
pub use crate::refusal_kind::{Askable, RefusalKind};

/// Header naming the component that refused.
pub const BLOCKED_HEADER: &str = "x-bottle-blocked";

/// The longest HTTP/1 reason phrase a refusal sends; the body always has the whole message.
pub const REASON_PHRASE_MAX: usize = 256;

/// A refusal: its kind, the HTTP status, the agent-facing reason, an optional hint, the rule
/// that decided and what the agent may ask for. Nothing secret goes in any field: a DLP
/// refusal names the detector, never the matched value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// What kind of refusal: the metric label, askability, the audit `refusal` field.
    pub kind: RefusalKind,
    /// The kind's status unless a site overrides it (`with_status`).
    pub status: StatusCode,
    /// What was refused and why (`host not allowed: evil.example:443`).
    pub reason: String,
    /// What to do (`run: bottle allow evil.example`), shown in parentheses.
    pub hint: Option<String>,
    /// Which rule decided (`allowlist: no entry matches evil.example:443`).
    pub rule: Option<String>,
    /// What the agent may ask the operator for; only ever set for an askable kind (boxed:
    /// refusals travel in `Err`s and most carry none).
    pub ask: Option<Box<AskAccess>>,
}

impl Refusal {
    /// A refusal of `kind`, with the kind's status: the only constructor, so every refusal
    /// has a kind (a new refusal is a new [`RefusalKind`] variant).
    pub fn of(kind: RefusalKind, reason: impl Into<String>) -> Self {
        Refusal {
            kind,
            status: kind.status(),
            reason: reason.into(),
            hint: None,
            rule: None,
            ask: None,
        }
    }

    /// Answer with `status` instead of the kind's own (where a site always has).
    pub fn with_status(mut self, status: StatusCode) -> Self {
        self.status = status;
        self
    }

    /// Add a hint.
    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    /// Name the rule that decided.
    pub fn with_rule(mut self, rule: impl Into<String>) -> Self {
        self.rule = Some(rule.into());
        self
    }

    /// Say what the agent may ask for. Ignored unless this kind is askable for exactly that
    /// kind of request: a DLP, injection or SSRF refusal never invites a request.
    pub fn with_ask(mut self, ask: Option<AskAccess>) -> Self {
        self.ask = ask
            .filter(|a| self.kind.askable() != Askable::No && a.askable() == self.kind.askable())
            .map(Box::new);
        self
    }

    /// `deny` for a 403, `error` for anything else (a failure, a malformed request).
    pub fn audit_decision(&self) -> AuditDecision {
        if self.status == StatusCode::FORBIDDEN {
            AuditDecision::Deny
        } else {
            AuditDecision::Error
        }
    }

    /// The one-line message, without trailing newline:
    /// `blocked by pipelock: host not allowed: evil.example:443 (run: bottle allow evil.example)`.
    pub fn message(&self, component: &str) -> String {
        let mut s = format!("blocked by {component}: {}", self.reason);
        if let Some(h) = &self.hint {
            s.push_str(" (");
            s.push_str(h);
            s.push(')');
        }
        one_line(&s)
    }

    /// The whole body: the message, then `rule:`, `ask:`, `ask (MCP):` and `operator:` lines
    /// where known. The ask lines need supervise's URL; without it only the operator's command
    /// is given. Every line ends with `\n` and holds no control character.
    pub fn body(&self, component: &str, supervise: Option<&SuperviseUrl>) -> String {
        let mut lines = vec![self.message(component)];
        if let Some(r) = &self.rule {
            lines.push(format!("rule: {r}"));
        }
        if let Some(ask) = &self.ask {
            if let Some(url) = supervise {
                lines.push(format!("ask: {}", ask.curl_line(url)));
                lines.push(format!("ask (MCP): {}", ask.mcp_line(url)));
                lines.push(format!(
                    "operator: {} (or approve the agent's request: bottle requests, then bottle approve ID)",
                    ask.operator_line()
                ));
            } else {
                lines.push(format!("operator: {}", ask.operator_line()));
            }
        }
        let mut body = String::new();
        for l in lines {
            body.push_str(&one_line(&l));
            body.push('\n');
        }
        body
    }

    /// The HTTP response without the ask lines (see [`Refusal::response_for`]).
    pub fn response(&self, component: &str) -> Response<BoxBody> {
        self.response_for(component, None)
    }

    /// The HTTP response: status, `X-Bottle-Blocked: component`, the `text/plain` [`Refusal::body`].
    pub fn response_for(
        &self,
        component: &str,
        supervise: Option<&SuperviseUrl>,
    ) -> Response<BoxBody> {
        let body = self.body(component, supervise);
        let len = body.len();
        let mut resp = Response::new(full(body));
        *resp.status_mut() = self.status;
        let h = resp.headers_mut();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        h.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        if let Ok(v) = HeaderValue::from_str(&one_line(component)) {
            h.insert(BLOCKED_HEADER, v);
        }
        if let Some(p) = reason_phrase(&self.message(component)) {
            resp.extensions_mut().insert(p);
        }
        resp
    }
}

/// The message as the HTTP/1 reason phrase (`HTTP/1.1 403 blocked by pipelock: ...`): for a
/// refused CONNECT many clients show the status line and never the body (pip and requests:
/// `Tunnel connection failed: 403 <phrase>`; Go: `proxyconnect ...: <phrase>`; npm), so
/// without it the user reads only `403 Forbidden`. ASCII only (anything else becomes `?`, so
/// no byte can be mistaken for a line end), cut at [`REASON_PHRASE_MAX`] bytes. HTTP/2 has no
/// reason phrase; hyper ignores it there.
fn reason_phrase(message: &str) -> Option<hyper::ext::ReasonPhrase> {
    let mut s: String = message
        .chars()
        .map(|c| {
            if c == ' ' || c.is_ascii_graphic() {
                c
            } else {
                '?'
            }
        })
        .collect();
    if s.len() > REASON_PHRASE_MAX {
        // Every char is ASCII here, so any byte index is a char boundary.
        s.truncate(REASON_PHRASE_MAX - 3);
        s.push_str("...");
    }
    hyper::ext::ReasonPhrase::try_from(s).ok()
}

/// Replace control characters (CR, LF, ...) so a message is always one line.
fn one_line(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.reason)?;
        if let Some(h) = &self.hint {
            write!(f, " ({h})")?;
        }
        Ok(())
    }
}

impl std::error::Error for Refusal {}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    #[tokio::test]
    async fn response_shape() {
        let r = Refusal::of(
            RefusalKind::HostNotAllowed,
            "host not allowed: evil.example:443",
        )
        .with_hint("run: bottle allow evil.example");
        let resp = r.response("pipelock");
        assert_eq!(resp.status(), StatusCode::FORBIDDEN);
        assert_eq!(resp.headers()["x-bottle-blocked"], "pipelock");
        assert!(resp.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain"));
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(
            &body[..],
            b"blocked by pipelock: host not allowed: evil.example:443 (run: bottle allow evil.example)\n"
        );
    }

    fn supervise() -> SuperviseUrl {
        "http://supervise:8070".parse().unwrap()
    }

    fn host_refusal() -> Refusal {
        let host = crate::host::parse_host("evil.example").unwrap();
        Refusal::of(
            RefusalKind::HostNotAllowed,
            "host not routed: evil.example:443",
        )
        .with_hint("run: bottle allow evil.example")
        .with_rule("allowlist: no entry matches evil.example:443")
        .with_ask(AskAccess::host(&host, 443))
    }

    #[tokio::test]
    async fn body_names_rule_ask_and_operator_after_the_contract_line() {
        let r = host_refusal();
        let resp = r.response_for("egress", Some(&supervise()));
        assert_eq!(resp.status(), StatusCode::FORBIDDEN);
        assert_eq!(resp.headers()["x-bottle-blocked"], "egress");
        let len: usize = resp.headers()["content-length"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(len, body.len());
        let text = String::from_utf8(body.to_vec()).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines,
            [
                "blocked by egress: host not routed: evil.example:443 (run: bottle allow evil.example)",
                "rule: allowlist: no entry matches evil.example:443",
                r#"ask: curl -s -X POST 'http://supervise:8070/v1/requests' -H 'content-type: application/json' -d '{"kind":"host","host":"evil.example","reason":"<say why you need it>"}'"#,
                r#"ask (MCP): tool request_access at http://supervise:8070/mcp, arguments {"kind":"host","host":"evil.example","reason":"<say why you need it>"}"#,
                "operator: bottle allow evil.example (or approve the agent's request: bottle requests, then bottle approve ID)",
            ]
        );
        assert!(text.ends_with('\n'));
        // Without supervise's URL: no ask lines, the operator's command still.
        let text = r.body("egress", None);
        assert_eq!(text.lines().count(), 3, "{text}");
        assert!(!text.contains("ask"), "{text}");
        assert!(text.ends_with("operator: bottle allow evil.example\n"));
        // The first line is the message, unchanged.
        assert_eq!(text.lines().next().unwrap(), r.message("egress"));
    }

    #[test]
    fn findings_never_invite_a_request() {
        let host = crate::host::parse_host("paste.example").unwrap();
        for kind in RefusalKind::ALL {
            let r = Refusal::of(kind, "x").with_ask(AskAccess::host(&host, 443));
            assert_eq!(r.ask.is_some(), kind.askable() == Askable::Host, "{kind:?}");
            let body = r.body("pipelock", Some(&supervise()));
            assert_eq!(body.contains("request_access"), r.ask.is_some(), "{kind:?}");
        }
        // A route request on a host refusal (or the reverse) is not what the kind asks for.
        let route = AskAccess::route(&host, 443, Some("/x"), Some("GET"));
        assert!(Refusal::of(RefusalKind::HostNotAllowed, "x")
            .with_ask(route.clone())
            .ask
            .is_none());
        assert!(Refusal::of(RefusalKind::MethodNotAllowed, "x")
            .with_ask(route)
            .ask
            .is_some());
        // A DLP refusal carries only the detector names its site gives it: no ask, no rule
        // with the value, nothing else added.
        let dlp = Refusal::of(
            RefusalKind::Dlp,
            "secret detected in request header x-a: aws_access_key",
        )
        .with_ask(AskAccess::host(&host, 443));
        assert_eq!(
            dlp.body("pipelock", Some(&supervise())),
            "blocked by pipelock: secret detected in request header x-a: aws_access_key\n"
        );
    }

    #[test]
    fn hostile_fields_stay_on_their_lines() {
        let r = Refusal::of(RefusalKind::PathNotAllowed, "a\nask: curl evil")
            .with_rule("r\r\nSet-Cookie: x")
            .with_hint("h\u{0}\n");
        let body = r.body("egress", Some(&supervise()));
        assert_eq!(body.lines().count(), 2, "{body:?}");
        assert!(body.lines().all(|l| !l.chars().any(char::is_control)));
        assert!(!body.lines().any(|l| l.starts_with("ask")), "{body:?}");
    }

    #[test]
    fn kinds_set_status_and_sites_may_override_it() {
        assert_eq!(
            Refusal::of(RefusalKind::UpstreamTimeout, "x").status,
            StatusCode::GATEWAY_TIMEOUT
        );
        let r = Refusal::of(RefusalKind::BodyTooLarge, "big");
        assert_eq!(
            (r.kind, r.status),
            (RefusalKind::BodyTooLarge, StatusCode::PAYLOAD_TOO_LARGE)
        );
        assert_eq!(r.audit_decision(), AuditDecision::Error);
        let r = Refusal::of(RefusalKind::BadTarget, "x").with_status(StatusCode::FORBIDDEN);
        assert_eq!(
            (r.kind, r.status),
            (RefusalKind::BadTarget, StatusCode::FORBIDDEN)
        );
        assert_eq!(r.audit_decision(), AuditDecision::Deny);
    }

    fn phrase_of(r: &Refusal, component: &str) -> String {
        let resp = r.response(component);
        let p = resp
            .extensions()
            .get::<hyper::ext::ReasonPhrase>()
            .expect("a reason phrase");
        String::from_utf8(p.as_bytes().to_vec()).unwrap()
    }

    #[test]
    fn the_reason_phrase_is_the_message_in_ascii_and_bounded() {
        let r = host_refusal();
        assert_eq!(phrase_of(&r, "pipelock"), r.message("pipelock"));
        let r = Refusal::of(
            RefusalKind::HostNotAllowed,
            "host not allowed: b\u{fc}cher.example\u{7f}:443",
        );
        assert_eq!(
            phrase_of(&r, "pipelock"),
            "blocked by pipelock: host not allowed: b?cher.example :443"
        );
        let r = Refusal::of(RefusalKind::PathNotAllowed, "p".repeat(5000));
        let p = phrase_of(&r, "egress");
        assert_eq!(p.len(), REASON_PHRASE_MAX);
        assert!(
            p.starts_with("blocked by egress: ppp") && p.ends_with("p..."),
            "{p}"
        );
    }

    /// On the wire: hyper's HTTP/1 server writes the phrase in the status line.
    #[tokio::test]
    async fn the_status_line_carries_the_reason() {
        use hyper_util::rt::TokioIo;
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let (client, server) = tokio::io::duplex(64 * 1024);
        let svc = hyper::service::service_fn(|_req: http::Request<hyper::body::Incoming>| async {
            Ok::<_, std::convert::Infallible>(host_refusal().response("pipelock"))
        });
        let serve = tokio::spawn(
            hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(server), svc),
        );
        let mut client = client;
        client
            .write_all(b"CONNECT evil.example:443 HTTP/1.1\r\nHost: evil.example:443\r\n\r\n")
            .await
            .unwrap();
        let mut got = Vec::new();
        let mut buf = [0u8; 4096];
        while !got.windows(4).any(|w| w == b"\r\n\r\n") {
            let n = client.read(&mut buf).await.unwrap();
            assert!(n > 0, "connection closed early: {got:?}");
            got.extend_from_slice(&buf[..n]);
        }
        let text = String::from_utf8_lossy(&got);
        assert!(
            text.starts_with(
                "HTTP/1.1 403 blocked by pipelock: host not routed: evil.example:443 (run: bottle allow evil.example)\r\n"
            ),
            "{text}"
        );
        drop(client);
        serve.abort();
    }

    #[test]
    fn injection_stays_one_line() {
        let r = Refusal::of(RefusalKind::UpstreamError, "x\r\nSet-Cookie: a=b");
        assert_eq!(r.message("egress"), "blocked by egress: x  Set-Cookie: a=b");
        let resp = r.response("eg\r\nress");
        assert_eq!(resp.status(), StatusCode::BAD_GATEWAY);
        assert_eq!(resp.headers()["x-bottle-blocked"], "eg  ress");
        assert_eq!(r.to_string(), "x\r\nSet-Cookie: a=b");
    }
}
