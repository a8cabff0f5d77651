//! What a refused request looks like: status, `X-Bottle-Blocked`, one actionable line.

use std::fmt;

use http::{header, HeaderValue, Response, StatusCode};

use crate::body::{full, BoxBody};

/// Header naming the component that refused.
pub const BLOCKED_HEADER: &str = "x-bottle-blocked";

/// A refusal: HTTP status, the reason and an optional hint telling the user what to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// 403, or 407/502/504 where that is what happened.
    pub status: StatusCode,
    /// What was refused and why (`host not allowed: evil.example:443`).
    pub reason: String,
    /// What to do (`run: bottle allow evil.example`), shown in parentheses.
    pub hint: Option<String>,
}

impl Refusal {
    /// A refusal with this status.
    pub fn new(status: StatusCode, reason: impl Into<String>) -> Self {
        Refusal {
            status,
            reason: reason.into(),
            hint: None,
        }
    }

    /// 403 Forbidden.
    pub fn forbidden(reason: impl Into<String>) -> Self {
        Refusal::new(StatusCode::FORBIDDEN, reason)
    }

    /// 502 Bad Gateway (the upstream failed).
    pub fn bad_gateway(reason: impl Into<String>) -> Self {
        Refusal::new(StatusCode::BAD_GATEWAY, reason)
    }

    /// 504 Gateway Timeout.
    pub fn gateway_timeout(reason: impl Into<String>) -> Self {
        Refusal::new(StatusCode::GATEWAY_TIMEOUT, reason)
    }

    /// Add a hint.
    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
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

    /// The HTTP response: status, `X-Bottle-Blocked: component`, `text/plain` body of one line.
    pub fn response(&self, component: &str) -> Response<BoxBody> {
        let body = format!("{}\n", self.message(component));
        let mut resp = Response::new(full(body.clone()));
        *resp.status_mut() = self.status;
        let h = resp.headers_mut();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        h.insert(header::CONTENT_LENGTH, HeaderValue::from(body.len()));
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        if let Ok(v) = HeaderValue::from_str(&one_line(component)) {
            h.insert(BLOCKED_HEADER, v);
        }
        resp
    }
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
        let r = Refusal::forbidden("host not allowed: evil.example:443")
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

    #[test]
    fn injection_stays_one_line() {
        let r = Refusal::bad_gateway("x\r\nSet-Cookie: a=b");
        assert_eq!(r.message("egress"), "blocked by egress: x  Set-Cookie: a=b");
        let resp = r.response("eg\r\nress");
        assert_eq!(resp.status(), StatusCode::BAD_GATEWAY);
        assert_eq!(resp.headers()["x-bottle-blocked"], "eg  ress");
        assert_eq!(r.to_string(), "x\r\nSet-Cookie: a=b");
    }
}
