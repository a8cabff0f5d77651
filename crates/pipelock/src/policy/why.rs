//! "Would this request pass pipelock, and which rule decides?": the same decisions the
//! proxy makes ([`decide_connect`], [`decide_request`], [`decide_addresses`]), run on a
//! URL and a method. For `bottle why URL` and supervise's `/v1/check`.
//!
//! What it cannot see: the body, names resolving to private addresses (no DNS here),
//! known secrets (they stay with the sidecar), the strict profile's memory of recent
//! traffic, and what egress decides after pipelock (routes' methods and paths).

use std::time::Instant;

use bottle_core::{Host, RefusalKind};
use http::header::{HeaderMap, HeaderValue, HOST};
use http::{Method, Uri};

use super::{
    decide_addresses, decide_connect, decide_request, Denied, NoHistory, PolicyConfig, RequestHead,
    Tunnel, Via,
};

/// pipelock's answer for one URL and method.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WhyVerdict {
    pub allowed: bool,
    /// The deciding rule: the allowlist line or route that allows it, or the rule that
    /// refused it (`allowlist: no line or route matches evil.example:443`, `ssrf: ...`,
    /// `dlp pattern: github-pat`).
    pub rule: String,
    /// The refusal's kind (its label: `host_not_allowed`, `private_address`, `dlp`, ...).
    pub kind: Option<bottle_core::refusal::RefusalKind>,
    /// The HTTP status the agent would get when refused.
    pub status: Option<u16>,
    /// The first body line the agent would get when refused
    /// (`blocked by pipelock: host not allowed: ...`).
    pub message: Option<String>,
    /// What the agent may ask the operator for (askable kinds only).
    pub ask: Option<bottle_core::refusal::AskAccess>,
    /// Allowed through a `tls_passthrough` route: nothing inside the tunnel is judged.
    pub passthrough: bool,
}

impl WhyVerdict {
    fn refused(d: Denied) -> WhyVerdict {
        WhyVerdict {
            allowed: false,
            rule: d
                .refusal
                .rule
                .clone()
                .unwrap_or_else(|| d.kind().to_string()),
            kind: Some(d.refusal.kind),
            status: Some(d.refusal.status.as_u16()),
            message: Some(d.refusal.message(super::COMPONENT)),
            ask: d.refusal.ask.as_deref().cloned(),
            passthrough: false,
        }
    }
    fn allowed(rule: String, passthrough: bool) -> WhyVerdict {
        WhyVerdict {
            allowed: true,
            rule,
            kind: None,
            status: None,
            message: None,
            ask: None,
            passthrough,
        }
    }
}

/// Runs the proxy's decisions on `method url` as the agent would send it: `https://`
/// as a CONNECT then a request inside the tunnel, `http://` as an absolute-form request;
/// an IP literal also through the post-DNS SSRF check.
pub fn would_pass(cfg: &PolicyConfig, method: &Method, url: &str) -> WhyVerdict {
    let view = cfg.view();
    let now = Instant::now();
    let uri: Uri = match url.parse() {
        Ok(u) => u,
        Err(e) => {
            return WhyVerdict::refused(
                Denied::of(RefusalKind::BadRequest, format!("bad URL {url:?}: {e}"))
                    .rule("request: URL is valid"),
            )
        }
    };
    let no_headers = HeaderMap::new();
    let via_tunnel;
    let mut headers = HeaderMap::new();
    let via = if uri.scheme_str() == Some("https") {
        let authority = uri.authority().map(|a| a.as_str()).unwrap_or("");
        let connect = decide_connect(authority, &no_headers, view, &NoHistory, now);
        let plan = match connect.verdict {
            Ok(p) => p,
            Err(d) => return WhyVerdict::refused(d),
        };
        if let Host::Ip(ip) = plan.target.host {
            if let Err(d) = decide_addresses(&plan.target.host, &[ip], &cfg.live, false) {
                return WhyVerdict::refused(d);
            }
        }
        if plan.tunnel == Tunnel::Passthrough {
            return WhyVerdict::allowed(plan.rule, true);
        }
        if let Ok(v) = HeaderValue::from_str(authority) {
            headers.insert(HOST, v);
        }
        via_tunnel = plan.target;
        Via::Tunnel(&via_tunnel)
    } else {
        Via::Plain
    };
    let head = RequestHead {
        method,
        uri: &uri,
        headers: &headers,
    };
    let request = decide_request(head, via, view, &NoHistory, now);
    let plan = match request.verdict {
        Ok(p) => p,
        Err(d) => return WhyVerdict::refused(d),
    };
    if let Host::Ip(ip) = plan.target.host {
        if let Err(d) = decide_addresses(&plan.target.host, &[ip], &cfg.live, false) {
            return WhyVerdict::refused(d);
        }
    }
    WhyVerdict::allowed(plan.rule, false)
}
