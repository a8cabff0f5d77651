//! What an audit line says about the request it judges, gathered once per request and turned
//! into [`AuditEvent`]s by the sidecar at each outcome (allowed, refused, failed).

use std::time::Instant;

use serde_json::{Map, Value};

use crate::audit::{AuditDecision, AuditEvent};
use crate::refusal::Refusal;

/// The request side of an audit line: every field a sidecar knows about the request.
#[derive(Debug, Clone)]
pub struct RequestContext {
    /// `pipelock`, `egress`, `git-gate`.
    pub component: &'static str,
    /// `request`, `connect`, `tunnel`, ...
    pub event: &'static str,
    /// When handling began (for `duration_ms`).
    pub started: Instant,
    /// HTTP method.
    pub method: String,
    /// `http`, `https`, `connect`, or empty when not known yet.
    pub scheme: &'static str,
    /// Target host.
    pub host: String,
    /// Target port.
    pub port: Option<u16>,
    /// Path and query, already redacted.
    pub path: String,
    /// The route that matched (index, `allowlist`, `none`), written as `route` when set.
    pub route: Option<String>,
    /// The injected credential's scheme, written as `auth_scheme` with `injected: true`.
    pub auth_scheme: Option<&'static str>,
    /// More fields for every line of this request (`repo`, ...).
    pub extra: Map<String, Value>,
}

impl RequestContext {
    /// A context started now, every request field empty.
    pub fn new(component: &'static str, event: &'static str) -> Self {
        RequestContext {
            component,
            event,
            started: Instant::now(),
            method: String::new(),
            scheme: "",
            host: String::new(),
            port: None,
            path: String::new(),
            route: None,
            auth_scheme: None,
            extra: Map::new(),
        }
    }

    /// The audit event for this request with `decision`, `reason` and `status`.
    pub fn event(
        &self,
        decision: AuditDecision,
        reason: Option<String>,
        status: Option<u16>,
    ) -> AuditEvent {
        let mut ev = AuditEvent::new(self.component, self.event, decision);
        ev.reason = reason;
        ev.method = self.method.clone();
        ev.scheme = self.scheme.to_string();
        ev.host = self.host.clone();
        ev.port = self.port;
        ev.path = self.path.clone();
        ev.status = status;
        ev.duration_ms = u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX);
        if let Some(r) = &self.route {
            ev.extra.insert("route".into(), r.clone().into());
        }
        if let Some(a) = self.auth_scheme {
            ev.extra.insert("auth_scheme".into(), a.into());
            ev.extra.insert("injected".into(), true.into());
        }
        for (k, v) in &self.extra {
            ev.extra.entry(k.clone()).or_insert_with(|| v.clone());
        }
        ev
    }

    /// The audit event for refusing this request with `r`: its decision, reason and status,
    /// plus `refusal` (the kind's label) and `rule` when known.
    pub fn refusal_event(&self, r: &Refusal) -> AuditEvent {
        let mut ev = self.event(
            r.audit_decision(),
            Some(r.reason.clone()),
            Some(r.status.as_u16()),
        );
        ev.extra.insert("refusal".into(), r.kind.label().into());
        if let Some(rule) = &r.rule {
            ev.extra.insert("rule".into(), rule.clone().into());
        }
        ev
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::refusal::{AskAccess, RefusalKind};

    fn ctx() -> RequestContext {
        let mut c = RequestContext::new("egress", "request");
        c.method = "GET".into();
        c.scheme = "https";
        c.host = "evil.example".into();
        c.port = Some(443);
        c.path = "/x".into();
        c.route = Some("none".into());
        c
    }

    #[test]
    fn event_carries_every_request_field() {
        let mut c = ctx();
        c.auth_scheme = Some("bearer");
        c.extra.insert("repo".into(), "app".into());
        c.extra.insert("route".into(), "shadowed".into());
        let j = c.event(AuditDecision::Allow, None, Some(200)).to_json("t");
        assert_eq!(j["component"], "egress");
        assert_eq!(j["event"], "request");
        assert_eq!(j["decision"], "allow");
        assert_eq!(j["method"], "GET");
        assert_eq!(j["scheme"], "https");
        assert_eq!(j["host"], "evil.example");
        assert_eq!(j["port"], 443);
        assert_eq!(j["path"], "/x");
        assert_eq!(j["status"], 200);
        assert_eq!(j["route"], "none", "the typed field wins over extra");
        assert_eq!(j["auth_scheme"], "bearer");
        assert_eq!(j["injected"], true);
        assert_eq!(j["repo"], "app");
    }

    #[test]
    fn refusal_event_says_kind_rule_and_decision() {
        let host = crate::host::parse_host("evil.example").unwrap();
        let r = Refusal::of(
            RefusalKind::HostNotAllowed,
            "host not routed: evil.example:443",
        )
        .with_rule("allowlist: no entry matches evil.example:443")
        .with_ask(AskAccess::host(&host, 443));
        let j = ctx().refusal_event(&r).to_json("t");
        assert_eq!(j["decision"], "deny");
        assert_eq!(j["reason"], "host not routed: evil.example:443");
        assert_eq!(j["status"], 403);
        assert_eq!(j["refusal"], "host_not_allowed");
        assert_eq!(j["rule"], "allowlist: no entry matches evil.example:443");

        let r = Refusal::of(RefusalKind::UpstreamTimeout, "slow");
        let j = ctx().refusal_event(&r).to_json("t");
        assert_eq!(j["decision"], "error");
        assert_eq!(j["status"], 504);
        assert!(j.get("rule").is_none());
        let r = Refusal::of(RefusalKind::Unauthenticated, "key");
        assert_eq!(ctx().refusal_event(&r).decision, AuditDecision::Error);
    }

    #[test]
    fn decisions_keep_their_strings() {
        assert_eq!(AuditDecision::Allow.as_str(), "allow");
        assert_eq!(AuditDecision::Deny.as_str(), "deny");
        assert_eq!(AuditDecision::Error.as_str(), "error");
        // The line holds the same strings as before the field was an enum.
        for (d, s) in [
            (AuditDecision::Allow, "allow"),
            (AuditDecision::Deny, "deny"),
            (AuditDecision::Error, "error"),
            (AuditDecision::Pending, "pending"),
        ] {
            assert_eq!(AuditEvent::new("c", "e", d).to_json("t")["decision"], s);
        }
    }
}
