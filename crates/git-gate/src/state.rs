//! The state every request handler shares: the config source, how git is run, the
//! mirrors, the pushes in flight, the push slots, the scanner, the audit log and metrics.
//! A push goes: `receive.rs` (intake, `policy::decide_push`) -> git's receive-pack into a
//! quarantine -> its pre-receive hook -> `hook_server.rs` -> `judge.rs` (exact checks) ->
//! `forward_push.rs` (leased atomic push upstream) -> the verdict back to the hook.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bottle_core::{AuditDecision, AuditEvent, AuditLog};
use serde_json::Value;

use crate::config::GateConfig;
use crate::git::GitRunner;
use crate::in_flight::{class_str, InFlightPushes, RefOutcome};
use crate::intake::{PushArgs, PushSlots, Spill};
use crate::metrics::GateMetrics;
use crate::mirror::Mirror;
use crate::scan::SecretScanner;
use crate::upstream_access::UpstreamSettings;

/// How long a push may wait for another push/refresh of the same repository.
pub const LOCK_WAIT: Duration = Duration::from_secs(120);
/// How long the whole receive (pack + checks + upstream push) may take.
pub const PUSH_TIMEOUT: Duration = Duration::from_secs(900);

/// Source of the current config snapshot (a `Reloadable` in the binary).
pub type ConfigSource = Arc<dyn Fn() -> Arc<GateConfig> + Send + Sync>;

/// Everything the request handlers share.
pub struct State {
    pub config: ConfigSource,
    pub data_dir: PathBuf,
    pub runner: GitRunner,
    pub settings: UpstreamSettings,
    pub hooks_dir: PathBuf,
    pub hook_socket: PathBuf,
    pub refresh_interval: Duration,
    pub audit: AuditLog,
    pub metrics: Arc<GateMetrics>,
    pub scanner: Arc<dyn SecretScanner>,
    pub push_slots: PushSlots,
    pub spill: Spill,
    /// The pushes between their receive-pack request and the judge.
    pub pushes: InFlightPushes,
    /// `--supervise-url`: a ref no rule covers is refused with how to ask for it there.
    pub supervise_url: Option<bottle_core::SuperviseUrl>,
    mirrors: Mutex<HashMap<String, Arc<Mirror>>>,
}

impl State {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        config: ConfigSource,
        data_dir: PathBuf,
        runner: GitRunner,
        settings: UpstreamSettings,
        refresh_interval: Duration,
        audit: AuditLog,
        metrics: Arc<GateMetrics>,
        scanner: Arc<dyn SecretScanner>,
    ) -> State {
        let spill_dir = data_dir.join("spill");
        State {
            config,
            hooks_dir: data_dir.join("hooks"),
            hook_socket: data_dir.join("hook.sock"),
            data_dir,
            runner,
            settings,
            refresh_interval,
            audit,
            push_slots: PushSlots::new(
                crate::intake::DEFAULT_MAX_CONCURRENT_PUSHES as usize,
                metrics.clone(),
            ),
            spill: Spill {
                dir: spill_dir,
                threshold: crate::intake::DEFAULT_PUSH_SPILL_BYTES,
            },
            metrics,
            scanner,
            mirrors: Mutex::new(HashMap::new()),
            pushes: InFlightPushes::default(),
            supervise_url: None,
        }
    }

    /// Sets `--supervise-url`.
    pub fn with_supervise_url(mut self, url: Option<bottle_core::SuperviseUrl>) -> State {
        self.supervise_url = url;
        self
    }

    /// Sets `--max-concurrent-pushes` and `--push-spill-bytes`.
    pub fn with_push_limits(mut self, args: &PushArgs) -> State {
        self.push_slots = PushSlots::new(args.max_concurrent_pushes as usize, self.metrics.clone());
        self.spill.threshold = args.push_spill_bytes;
        self
    }

    /// The first detector that fires on a pushed ref name or push option, if any.
    pub fn first_secret(&self, bytes: &[u8]) -> Option<String> {
        self.scanner.scan(bytes).into_iter().next()
    }

    /// A ref name as the audit log and `remote:` lines may show it: withheld when it holds
    /// a secret (the `ng` line still carries it, as git needs, to the client that sent it).
    pub fn shown_ref(&self, name: &str) -> String {
        match self.first_secret(name.as_bytes()) {
            Some(d) => format!("[ref name withheld: secret detected ({d})]"),
            None => name.to_string(),
        }
    }

    pub fn mirror(&self, name: &str) -> Arc<Mirror> {
        let mut m = self.mirrors.lock().unwrap_or_else(|p| p.into_inner());
        m.entry(name.to_string())
            .or_insert_with(|| {
                Arc::new(Mirror::new(
                    name,
                    self.data_dir.join("mirrors").join(format!("{name}.git")),
                ))
            })
            .clone()
    }

    /// Audits one ref decision.
    pub fn audit_ref(&self, repo: &str, o: &RefOutcome, push_bytes: u64) {
        let mut ev = AuditEvent::new(
            "git-gate",
            "push",
            if o.ok {
                AuditDecision::Allow
            } else {
                AuditDecision::Deny
            },
        );
        let shown = self.shown_ref(&o.name);
        // A reason may quote the ref name: never let it carry a secret to disk.
        ev.reason = (!o.ok).then(|| {
            if shown == o.name {
                o.reason.clone()
            } else {
                o.reason.replace(&o.name, &shown)
            }
        });
        ev.method = "POST".into();
        ev.path = format!("/{repo}.git/git-receive-pack");
        ev.bytes_up = push_bytes;
        let mut x = serde_json::Map::new();
        x.insert("repo".into(), Value::from(repo));
        x.insert("ref".into(), Value::from(shown));
        x.insert("old".into(), Value::from(o.old.clone()));
        x.insert("new".into(), Value::from(o.new.clone()));
        x.insert("classification".into(), Value::from(class_str(o.class)));
        x.insert("rule".into(), Value::from(o.rule.clone()));
        x.insert(
            "result".into(),
            Value::from(if o.ok { "accepted" } else { "refused" }),
        );
        ev.extra = x;
        self.audit.record(ev);
        self.metrics.ref_decision(o.ok);
    }
}
