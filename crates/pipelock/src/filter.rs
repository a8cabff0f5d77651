//! The allow decision (made before any connection) and refusals.

use bottle_core::{Host, LiveConfig, Refusal};
use http::StatusCode;

/// A refusal plus the short reason label used for metrics.
#[derive(Debug)]
pub struct Denied {
    pub refusal: Refusal,
    pub kind: &'static str,
}

impl Denied {
    pub fn new(kind: &'static str, refusal: Refusal) -> Denied {
        Denied { refusal, kind }
    }
    pub fn forbidden(kind: &'static str, reason: impl Into<String>) -> Denied {
        Denied {
            refusal: Refusal::forbidden(reason),
            kind,
        }
    }
    pub fn status(kind: &'static str, status: StatusCode, reason: impl Into<String>) -> Denied {
        let mut refusal = Refusal::forbidden(reason);
        refusal.status = status;
        Denied { refusal, kind }
    }
}

/// Is `host:port` allowed right now? Ok(true) when a `tls_passthrough` route covers it.
/// IP literals that are private are refused unless an address/CIDR line covers them.
pub fn check(cfg: &LiveConfig, host: &Host, port: u16) -> Result<bool, Denied> {
    if !cfg.host_allowed(host, port) {
        let mut refusal =
            Refusal::forbidden(format!("host not allowed: {}", host.to_authority(port)));
        if let Some(hint) = bottle_core::hint::allow_hint(host, port) {
            refusal = refusal.with_hint(hint);
        }
        return Err(Denied::new("host_not_allowed", refusal));
    }
    if let Host::Ip(ip) = host {
        if let Some(why) = bottle_core::ssrf::private_reason(*ip) {
            if !cfg.allowlist.covers_addr(*ip) {
                return Err(Denied::forbidden(
                    "private_address",
                    format!("private address: {ip} ({why})"),
                ));
            }
        }
    }
    Ok(cfg
        .routes
        .routes
        .iter()
        .any(|r| r.tls_passthrough && r.host.matches(host, port)))
}
