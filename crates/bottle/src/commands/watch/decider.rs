//! What `bottle watch` asks of the outside world: pending requests, decisions on them, and
//! refusals. A trait so the view's state machine is tested with a fake.

use std::time::Duration;

use serde_json::{Map, Value};

use crate::error::{Error, Result};

// TODO(issue 15): once `crate::commands::requests` exports `PendingView`, `Grant`, `pending`,
// `approve_request` and `deny_request`, replace these two mirrors with
// `pub use crate::commands::requests::{Grant, PendingView};` and forward `RequestsApi` to them.

/// A pending access request, as the requests helper lists it.
#[derive(Debug, Clone, PartialEq)]
pub struct PendingView {
    /// The bottle it belongs to.
    pub slug: String,
    /// The request's id.
    pub id: String,
    /// `host`, `route`, `git-ref`.
    pub kind: String,
    /// What is asked for (agent-controlled).
    pub ask: Value,
    /// Why, in the agent's words (agent-controlled).
    pub reason: String,
    /// When it was made.
    pub created_unix: u64,
    /// Refusals the request refers to.
    pub blocks: Vec<String>,
}

/// How long an approval lasts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Grant {
    /// Until the bottle stops.
    Session,
    /// For this long.
    For(Duration),
}

/// One refusal from a bottle's audit (the shown fields of its line).
#[derive(Debug, Clone, PartialEq)]
pub struct RefusalRow {
    /// The bottle whose sidecar refused.
    pub slug: String,
    /// The line's shown fields (`bottle_core::audit_read::SHOWN_FIELDS`).
    pub fields: Map<String, Value>,
}

/// Pending requests and the decisions on them.
pub trait Decider: Send + Sync {
    /// Pending requests of `slug`, or of every running bottle.
    fn pending(&self, slug: Option<&str>) -> Result<Vec<PendingView>>;
    /// Approve; the one-line confirmation.
    fn approve(&self, slug: &str, id: &str, grant: Grant) -> Result<String>;
    /// Deny; the one-line confirmation.
    fn deny(&self, slug: &str, id: &str, reason: Option<&str>) -> Result<String>;
}

/// The real decider: `crate::commands::requests`.
pub struct RequestsApi;

const NOT_YET: &str = "the requests API is not built into this bottle yet (issue 15)";

impl Decider for RequestsApi {
    fn pending(&self, _slug: Option<&str>) -> Result<Vec<PendingView>> {
        Err(Error::Usage(NOT_YET.into()))
    }

    fn approve(&self, _slug: &str, _id: &str, _grant: Grant) -> Result<String> {
        Err(Error::Usage(NOT_YET.into()))
    }

    fn deny(&self, _slug: &str, _id: &str, _reason: Option<&str>) -> Result<String> {
        Err(Error::Usage(NOT_YET.into()))
    }
}

/// `90s`, `30m`, `1h`, `2d`, `1h30m`: a positive duration.
pub fn parse_duration(s: &str) -> std::result::Result<Duration, String> {
    let s = s.trim();
    let bad = || format!("`{}` is not a duration like 30m, 1h or 2d", super::inert(s));
    if s.is_empty() {
        return Err(bad());
    }
    let mut total: u64 = 0;
    let mut digits = String::new();
    for c in s.chars() {
        if c.is_ascii_digit() {
            digits.push(c);
            continue;
        }
        let unit: u64 = match c {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86_400,
            _ => return Err(bad()),
        };
        let n: u64 = digits.parse().map_err(|_| bad())?;
        digits.clear();
        total = n
            .checked_mul(unit)
            .and_then(|v| total.checked_add(v))
            .ok_or_else(bad)?;
    }
    if !digits.is_empty() || total == 0 {
        return Err(bad());
    }
    Ok(Duration::from_secs(total))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("1h").unwrap(), Duration::from_secs(3600));
        assert_eq!(
            parse_duration(" 1h30m ").unwrap(),
            Duration::from_secs(5400)
        );
        assert_eq!(parse_duration("2d").unwrap(), Duration::from_secs(172_800));
        assert_eq!(parse_duration("45s").unwrap(), Duration::from_secs(45));
        for bad in [
            "",
            "0h",
            "h",
            "10",
            "1x",
            "-1h",
            "1.5h",
            "99999999999999999999d",
            "1h\u{1b}",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad:?}");
        }
        let e = parse_duration("1\u{1b}[2J").unwrap_err();
        assert!(!e.contains('\u{1b}'), "{e:?}");
    }
}
