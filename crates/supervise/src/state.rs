//! What supervise does, independent of the wire: the JSON API ([`crate::api`]) and the MCP
//! tools ([`crate::mcp`]) both call these, so they refuse, limit and audit alike.

use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

use bottle_core::{AuditDecision, AuditEvent, AuditLog};
use serde_json::{json, Value};

use crate::check::{self, Policy, Target, Verdict};
use crate::ids::RequestId;
use crate::limits::TokenBucket;
use crate::request;
use crate::store::{self, PendingRequest, RequestState, Store};

/// Settings (from the flags).
#[derive(Debug, Clone)]
pub struct Settings {
    pub state_dir: PathBuf,
    pub audit_dir: Option<PathBuf>,
    pub config_dir: PathBuf,
    /// Seconds an undecided request stays pending.
    pub request_ttl_secs: u64,
    /// Most requests pending at once; more get 429 and nothing pending is touched.
    pub max_pending: usize,
    /// Longest long-poll (`?wait=`), kept under the listener's idle timeout.
    pub max_wait_secs: u64,
    pub per_minute: u32,
    pub burst: u32,
    /// Seconds to receive a whole request body: a body trickled a byte at a time (which the
    /// idle timeout never cuts) is answered 408 and its connection closed.
    pub body_timeout_secs: u64,
}

/// The outcome of a submission.
#[derive(Debug)]
pub enum Submitted {
    Created {
        id: RequestId,
    },
    /// The same request (kind and fields) is already pending: its id, nothing new written.
    Duplicate {
        id: RequestId,
    },
    Invalid(String),
    RateLimited(Duration),
    TooManyPending,
    Failed(String),
}

pub struct State {
    pub settings: Settings,
    store: Store,
    bucket: TokenBucket,
    audit: AuditLog,
    /// Serialises the pending count and the write, so the cap holds under concurrency.
    create_lock: Mutex<()>,
    /// Long-polls waiting at once; past it a wait answers at once with the current state
    /// (a flood of waiters must not pin every connection slot).
    waiters: tokio::sync::Semaphore,
    blocks_cache: tokio::sync::Mutex<Option<(std::time::Instant, Vec<Value>)>>,
    /// When a rate-limited refusal was last audited, and how many were not since: a flood
    /// writes one line per [`RATE_AUDIT_EVERY`], not one per request, so it cannot rotate the
    /// real requests out of the operator's log.
    rate_audit: Mutex<(Option<std::time::Instant>, u64)>,
}

/// At most one audit line per this for rate-limited refusals (with the count left out).
pub const RATE_AUDIT_EVERY: Duration = Duration::from_secs(10);

/// How long one read of the audit files answers `/v1/blocks`.
const BLOCKS_CACHE_TTL: Duration = Duration::from_secs(1);

/// Most long-polls held open at once.
pub const MAX_WAITERS: usize = 32;

impl State {
    pub fn new(settings: Settings, audit: AuditLog) -> std::io::Result<State> {
        Ok(State {
            store: Store::open(&settings.state_dir)?,
            bucket: TokenBucket::new(settings.per_minute, settings.burst),
            audit,
            create_lock: Mutex::new(()),
            waiters: tokio::sync::Semaphore::new(MAX_WAITERS),
            blocks_cache: tokio::sync::Mutex::new(None),
            rate_audit: Mutex::new((None, 0)),
            settings,
        })
    }

    /// Validates and records an access request. Audited whatever the outcome; the reason
    /// text is not written to the audit log (it is the agent's prose, kept in the request file).
    pub fn submit(&self, body: &Value, via: &str) -> Submitted {
        let outcome = self.submit_inner(body);
        let mut ev = AuditEvent::new("supervise", "access-request", AuditDecision::Deny);
        ev.extra.insert("via".into(), via.into());
        if let Some(kind) = body.get("kind").and_then(Value::as_str) {
            ev.extra.insert(
                "kind".into(),
                request::inert(&bottle_core::audit::truncate_field(kind, 32)).into(),
            );
        }
        match &outcome {
            Submitted::Created { id } | Submitted::Duplicate { id } => {
                ev.decision = AuditDecision::Pending;
                if matches!(outcome, Submitted::Duplicate { .. }) {
                    ev.extra.insert("duplicate".into(), true.into());
                }
                ev.extra.insert("id".into(), id.as_str().into());
                if let Some(h) = body.get("host").and_then(Value::as_str) {
                    ev.host = request::inert(h.trim());
                }
            }
            Submitted::Invalid(why) => {
                ev.reason = Some(request::inert(&bottle_core::audit::truncate_field(
                    why, 200,
                )));
            }
            Submitted::RateLimited(_) => ev.reason = Some("rate limited".into()),
            Submitted::TooManyPending => ev.reason = Some("too many pending requests".into()),
            Submitted::Failed(why) => {
                ev.decision = AuditDecision::Error;
                ev.reason = Some(why.clone());
            }
        }
        self.record(ev, matches!(outcome, Submitted::RateLimited(_)));
        outcome
    }

    /// Writes `ev`; a rate-limited refusal only if none was written in the last
    /// [`RATE_AUDIT_EVERY`], and then with how many were left out (`suppressed`).
    fn record(&self, mut ev: AuditEvent, rate_limited: bool) {
        if rate_limited {
            let mut st = self.rate_audit.lock().unwrap_or_else(|p| p.into_inner());
            let now = std::time::Instant::now();
            if st
                .0
                .is_some_and(|at| now.duration_since(at) < RATE_AUDIT_EVERY)
            {
                st.1 = st.1.saturating_add(1);
                return;
            }
            if st.1 > 0 {
                ev.extra.insert("suppressed".into(), st.1.into());
            }
            *st = (Some(now), 0);
        }
        self.audit.record(ev);
    }

    /// A body that never became a request (too large, not JSON, a field twice): audited and
    /// charged to the rate limit like any other submission.
    pub fn refuse_malformed(&self, why: &str, via: &str) -> Submitted {
        let outcome = match self.bucket.take() {
            Err(wait) => Submitted::RateLimited(wait),
            Ok(()) => Submitted::Invalid(why.to_owned()),
        };
        let mut ev = AuditEvent::new("supervise", "access-request", AuditDecision::Deny);
        ev.extra.insert("via".into(), via.into());
        ev.reason = Some(match &outcome {
            Submitted::RateLimited(_) => "rate limited".to_owned(),
            _ => request::inert(&bottle_core::audit::truncate_field(why, 200)),
        });
        self.record(ev, matches!(outcome, Submitted::RateLimited(_)));
        outcome
    }

    fn submit_inner(&self, body: &Value) -> Submitted {
        if let Err(wait) = self.bucket.take() {
            return Submitted::RateLimited(wait);
        }
        let req = match request::parse(body) {
            Ok(r) => r,
            Err(why) => return Submitted::Invalid(why),
        };
        let _guard = self.create_lock.lock().unwrap_or_else(|p| p.into_inner());
        let now = store::now_unix();
        if let Some(id) = self.store.find_pending(req.kind, &req.ask, now) {
            return Submitted::Duplicate { id };
        }
        if self.store.count_pending(now) >= self.settings.max_pending {
            return Submitted::TooManyPending;
        }
        let id = RequestId::random();
        let pending = PendingRequest {
            id: id.to_string(),
            kind: req.kind.to_owned(),
            ask: req.ask,
            reason: req.reason,
            created_at: bottle_core::status::now_rfc3339(),
            created_unix: now,
            expires_unix: now.saturating_add(self.settings.request_ttl_secs),
        };
        match self.store.create(&pending, &id) {
            Ok(()) => Submitted::Created { id },
            Err(e) => Submitted::Failed(format!("recording the request failed: {e}")),
        }
    }

    /// The state of the request named `id` (`None`: no such request, or not an id).
    pub fn state(&self, id: &str) -> Option<(RequestId, RequestState)> {
        let id = RequestId::parse(id)?;
        let st = self.store.state(&id, store::now_unix())?;
        Some((id, st))
    }

    /// Waits up to `secs` (capped) for `id` to leave `pending`; returns its state then.
    pub async fn wait(&self, id: &RequestId, secs: u64) -> Option<RequestState> {
        let Ok(_permit) = self.waiters.try_acquire() else {
            return self.store.state(id, store::now_unix());
        };
        let deadline = tokio::time::Instant::now()
            + Duration::from_secs(secs.min(self.settings.max_wait_secs));
        loop {
            let st = self.store.state(id, store::now_unix())?;
            if !st.is_pending() || tokio::time::Instant::now() >= deadline {
                return Some(st);
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Recent refusals, newest first. Read off the runtime's threads, one read at a time, and
    /// reused for a second: a flood of calls costs at most one read a second.
    pub async fn blocks(&self, limit: usize) -> Vec<Value> {
        let Some(dir) = self.settings.audit_dir.clone() else {
            return Vec::new();
        };
        let mut cache = self.blocks_cache.lock().await;
        let fresh = cache
            .as_ref()
            .is_some_and(|(at, _)| at.elapsed() < BLOCKS_CACHE_TTL);
        if !fresh {
            let all = tokio::task::spawn_blocking(move || {
                crate::blocks::recent_blocks(&dir, crate::blocks::MAX_BLOCKS)
            })
            .await
            .unwrap_or_default();
            *cache = Some((std::time::Instant::now(), all));
        }
        let all = cache.as_ref().map(|(_, v)| v.as_slice()).unwrap_or(&[]);
        all.iter().take(limit).cloned().collect()
    }

    /// Would `url` with `method` pass?
    pub fn check(&self, url: &str, method: Option<&str>) -> Result<Verdict, String> {
        let target = Target::parse(url, method)?;
        let policy = Policy::load(&self.settings.config_dir)?;
        Ok(check::decide(&policy, &target))
    }
}

/// The JSON for a request's state.
pub fn state_json(id: &RequestId, st: &RequestState) -> Value {
    let mut v = st.to_json();
    if let Value::Object(m) = &mut v {
        m.insert("id".into(), json!(id.as_str()));
    }
    v
}
