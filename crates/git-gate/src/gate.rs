//! The gate's shared state and the push pipeline:
//! cheap policy on the command list -> `git receive-pack` into a quarantine on the mirror ->
//! pre-receive hook (this binary) asks us over a unix socket -> exact classification, policy,
//! size limits, secret scan -> leased atomic push upstream -> verdict back to the hook.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bottle_core::{AuditEvent, AuditLog};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::config::{GateConfig, RepoConfig};
use crate::git::{run, tail_lines, GitRunner};
use crate::intake::{PushArgs, PushSlots, Spill};
use crate::metrics::GateMetrics;
use crate::mirror::Mirror;
use crate::policy::{check_ref_facts, classify, needs_ancestry, Action, RefFacts, Verdict};
use crate::request::{short_oid, Command, CommandKind, ZERO_OID};
use crate::scan::{self, SecretScanner};
use crate::upstream::UpstreamSettings;
use crate::GateError;

/// How long a push may wait for another push/refresh of the same repository.
pub const LOCK_WAIT: Duration = Duration::from_secs(120);
/// How long an advertisement waits for a busy mirror before serving it unrefreshed.
pub const BUSY_WAIT: Duration = Duration::from_secs(1);
/// How long the whole receive (pack + checks + upstream push) may take.
pub const PUSH_TIMEOUT: Duration = Duration::from_secs(900);
/// How long the upstream push may take.
pub const UPSTREAM_PUSH_TIMEOUT: Duration = Duration::from_secs(600);

/// Source of the current config snapshot (a `Reloadable` in the binary).
pub type ConfigSource = Arc<dyn Fn() -> Arc<GateConfig> + Send + Sync>;

/// Everything the request handlers share.
pub struct Gate {
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
    mirrors: Mutex<HashMap<String, Arc<Mirror>>>,
    pushes: Mutex<HashMap<String, Arc<PushCtx>>>,
}

/// One push in flight, as the hook handler sees it.
pub struct PushCtx {
    pub repo: Arc<RepoConfig>,
    pub mirror: Arc<Mirror>,
    pub commands: Vec<Command>,
    pub push_options: Vec<String>,
    pub verdict: Mutex<Option<HookVerdict>>,
}

/// Per-ref outcome, for the audit log.
#[derive(Debug, Clone)]
pub struct RefOutcome {
    pub name: String,
    pub old: String,
    pub new: String,
    pub class: Option<Action>,
    pub rule: String,
    pub ok: bool,
    pub reason: String,
}

#[derive(Debug, Clone, Default)]
pub struct HookVerdict {
    pub accept: bool,
    pub messages: Vec<String>,
    pub outcomes: Vec<RefOutcome>,
    /// The upstream has the new refs (so the mirror must follow, or be refreshed).
    pub upstream_updated: bool,
    /// The upstream refused or failed: the mirror may be behind it, refresh next time.
    pub upstream_failed: bool,
}

/// What the hook sends us.
#[derive(Debug, Serialize, Deserialize)]
pub struct HookRequest {
    pub push_id: String,
    pub updates: Vec<(String, String, String)>,
    pub object_dir: String,
    pub push_options: Vec<String>,
}

/// What we send the hook, one JSON object per line.
#[derive(Debug, Serialize, Deserialize)]
pub struct HookReply {
    pub messages: Vec<String>,
    pub accept: bool,
}

pub fn class_str(c: Option<Action>) -> &'static str {
    c.map(Action::as_str).unwrap_or("unknown")
}

impl Gate {
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
    ) -> Gate {
        let spill_dir = data_dir.join("spill");
        Gate {
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
            pushes: Mutex::new(HashMap::new()),
        }
    }

    /// Sets `--max-concurrent-pushes` and `--push-spill-bytes`.
    pub fn with_push_limits(mut self, args: &PushArgs) -> Gate {
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

    /// Refreshes the mirror of `repo` (rate-limited, exclusive).
    pub async fn refresh(&self, repo: &RepoConfig) -> Result<Arc<Mirror>, GateError> {
        let mirror = self.mirror(&repo.name);
        // A push in flight holds the mirror: serve what the mirror has rather than wait
        // (its old values are checked against upstream by the lease anyway).
        let mut guard = match mirror.lock(BUSY_WAIT).await {
            Ok(g) => g,
            Err(GateError::Busy) if mirror.is_initialised() => {
                tracing::debug!(repo = %repo.name, "mirror busy; serving without refresh");
                return Ok(mirror.clone());
            }
            Err(_) => mirror.lock(LOCK_WAIT).await?,
        };
        let res = mirror
            .refresh(
                &mut guard,
                &self.runner,
                &repo.upstream,
                &self.settings,
                self.refresh_interval,
            )
            .await;
        self.metrics.refresh(res.is_ok());
        res.map(|()| mirror.clone())
    }

    pub fn register_push(&self, id: &str, ctx: Arc<PushCtx>) {
        self.pushes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id.to_string(), ctx);
    }

    pub fn unregister_push(&self, id: &str) -> Option<Arc<PushCtx>> {
        self.pushes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(id)
    }

    fn push_ctx(&self, id: &str) -> Option<Arc<PushCtx>> {
        self.pushes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(id)
            .cloned()
    }

    /// Audits one ref decision.
    pub fn audit_ref(&self, repo: &str, o: &RefOutcome, push_bytes: u64) {
        let mut ev = AuditEvent::new("git-gate", "push", if o.ok { "allow" } else { "deny" });
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

    /// Serves hook connections on the unix socket until the process ends.
    pub async fn serve_hooks(self: Arc<Self>, listener: tokio::net::UnixListener) {
        loop {
            match listener.accept().await {
                Ok((stream, _)) => {
                    let gate = self.clone();
                    tokio::spawn(async move {
                        if let Err(e) = gate.handle_hook(stream).await {
                            tracing::warn!(error = %e, "hook connection failed");
                        }
                    });
                }
                Err(e) => {
                    tracing::warn!(error = %e, "hook socket accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    }

    async fn handle_hook(&self, stream: tokio::net::UnixStream) -> Result<(), GateError> {
        use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
        let (rd, mut wr) = stream.into_split();
        let mut line = String::new();
        let mut limited = BufReader::new(rd.take(4 << 20));
        limited
            .read_line(&mut line)
            .await
            .map_err(|e| GateError::Io(e.to_string()))?;
        let reply = match serde_json::from_str::<HookRequest>(&line) {
            Err(e) => HookReply {
                messages: vec![format!("git-gate: bad hook request: {e}")],
                accept: false,
            },
            Ok(req) => match self.push_ctx(&req.push_id) {
                None => HookReply {
                    messages: vec!["git-gate: unknown push".into()],
                    accept: false,
                },
                Some(ctx) => {
                    let v = self.judge(&ctx, &req).await;
                    let reply = HookReply {
                        messages: v.messages.clone(),
                        accept: v.accept,
                    };
                    *ctx.verdict.lock().unwrap_or_else(|p| p.into_inner()) = Some(v);
                    reply
                }
            },
        };
        let mut text = serde_json::to_string(&reply).map_err(|e| GateError::Io(e.to_string()))?;
        text.push('\n');
        wr.write_all(text.as_bytes())
            .await
            .map_err(|e| GateError::Io(e.to_string()))?;
        wr.shutdown()
            .await
            .map_err(|e| GateError::Io(e.to_string()))?;
        Ok(())
    }

    /// The deep checks for one push, then the upstream push. Never panics; any error refuses.
    pub async fn judge(&self, ctx: &PushCtx, req: &HookRequest) -> HookVerdict {
        let mut v = HookVerdict {
            outcomes: ctx
                .commands
                .iter()
                .map(|c| RefOutcome {
                    name: c.name_str(),
                    old: c.old.clone(),
                    new: c.new.clone(),
                    class: None,
                    rule: String::new(),
                    ok: false,
                    reason: String::new(),
                })
                .collect(),
            ..HookVerdict::default()
        };
        // git's own parse must agree with ours, command for command.
        let ours: Vec<(String, String, String)> = ctx
            .commands
            .iter()
            .map(|c| (c.old.clone(), c.new.clone(), c.name_str()))
            .collect();
        if ours != req.updates || req.push_options != ctx.push_options {
            return refused(v, "protocol", "command list mismatch".into());
        }
        // No quarantine when the push brought no objects (delete-only pushes).
        let quarantine = (!req.object_dir.is_empty()).then(|| PathBuf::from(&req.object_dir));
        let quarantine = quarantine.as_deref();
        let mirror = ctx.mirror.dir.clone();
        if let Err(e) = self.check_refs(ctx, quarantine, &mut v.outcomes).await {
            return refused(v, "error", format!("cannot check refs: {e}"));
        }
        if v.outcomes.iter().any(|o| !o.ok) {
            for o in v.outcomes.iter().filter(|o| !o.ok) {
                v.messages
                    .push(format!("git-gate: {}: {}", o.name, o.reason));
            }
            for o in v.outcomes.iter_mut().filter(|o| o.ok) {
                o.ok = false;
                o.rule = "atomic".into();
                o.reason = "not pushed: another ref in this push was refused".into();
            }
            return v;
        }
        // Sizes and secrets over every object the push brought.
        let objects = match quarantine {
            None => Ok(Vec::new()),
            Some(q) => scan::new_objects(&self.runner, &mirror, q).await,
        };
        let objects = match objects {
            Ok(o) => o,
            Err(e) => return refused(v, "error", format!("cannot list pushed objects: {e}")),
        };
        let limit = ctx.repo.policy.max_object_bytes;
        if let Some(big) = objects.iter().find(|o| o.size > limit) {
            let reason = format!(
                "object {} ({}) is {} bytes, limit {limit}",
                short_oid(&big.oid),
                big.kind,
                big.size
            );
            return refused(v, "max_object_bytes", reason);
        }
        let findings = match quarantine {
            None => Ok(Vec::new()),
            Some(q) => {
                scan::scan_objects(&self.runner, &mirror, q, &objects, self.scanner.as_ref()).await
            }
        };
        match findings {
            Ok(findings) if !findings.is_empty() => {
                self.metrics.secrets(findings.len() as u64);
                for f in findings.iter().take(10) {
                    v.messages.push(format!("git-gate: {}", f.reason()));
                }
                return refused(v, "secret-scan", findings[0].reason());
            }
            Ok(_) => {}
            Err(e) => return refused(v, "error", format!("secret scan failed: {e}")),
        }
        // A ref that is a symbolic ref upstream would move its target instead (e.g. a
        // `master -> main` alias would move a protected main): refuse those.
        match self.upstream_symrefs(ctx).await {
            Ok(aliased) if !aliased.is_empty() => {
                let alias = |(name, target): &(String, String)| {
                    format!("{name} is a symbolic ref to {target} upstream")
                };
                for a in &aliased {
                    if let Some(o) = v.outcomes.iter_mut().find(|o| o.name == a.0) {
                        o.rule = "symref".into();
                        o.reason = alias(a);
                    }
                }
                return refused(v, "symref", alias(&aliased[0]));
            }
            Ok(_) => {}
            Err(e) => {
                v.upstream_failed = true;
                return refused(v, "upstream", format!("upstream unavailable: {e}"));
            }
        }
        // The push may have been abandoned (timeout) while we were checking.
        if self.push_ctx(&req.push_id).is_none() {
            return refused(v, "error", "push abandoned".into());
        }
        // Everything passed: push upstream, atomically, with a lease on every ref.
        match self.push_upstream(ctx, quarantine).await {
            Ok(()) => {
                v.accept = true;
                v.upstream_updated = true;
            }
            Err((per_ref, lines)) => {
                v.upstream_failed = true;
                for l in lines {
                    v.messages.push(format!("git-gate: upstream: {l}"));
                }
                for o in v.outcomes.iter_mut() {
                    o.ok = false;
                    o.rule = "upstream".into();
                    o.reason = per_ref
                        .get(&o.name)
                        .cloned()
                        .unwrap_or_else(|| "upstream refused the push".into());
                }
                v.messages
                    .push("git-gate: push refused by upstream; nothing was changed".into());
            }
        }
        v
    }

    /// Current tips, lying/stale old values, exact classification and the policy per ref.
    async fn check_refs(
        &self,
        ctx: &PushCtx,
        quarantine: Option<&Path>,
        outcomes: &mut [RefOutcome],
    ) -> Result<(), GateError> {
        let mirror = &ctx.mirror.dir;
        let mut cmd = self.runner.command(Some(mirror));
        cmd.args(["for-each-ref", "--format=%(objectname) %(refname)"]);
        let out = run(cmd, None, Duration::from_secs(60)).await?;
        if !out.success {
            return Err(GateError::Git(out.stderr_str()));
        }
        let current: HashMap<String, String> = out
            .stdout_str()
            .lines()
            .filter_map(|l| {
                l.split_once(' ')
                    .map(|(o, r)| (r.to_string(), o.to_string()))
            })
            .collect();
        // Object types of everything named.
        let mut oids: Vec<String> = Vec::new();
        for c in &ctx.commands {
            for o in [&c.old, &c.new] {
                if o != ZERO_OID && !oids.contains(o) {
                    oids.push(o.clone());
                }
            }
        }
        let mut types: HashMap<String, String> = HashMap::new();
        if !oids.is_empty() {
            let mut cmd = self.quarantine_cmd(mirror, quarantine);
            cmd.args(["cat-file", "--batch-check=%(objectname) %(objecttype)"]);
            let input: String = oids.iter().map(|o| format!("{o}\n")).collect();
            let out = run(cmd, Some(input.as_bytes()), Duration::from_secs(60)).await?;
            for l in out.stdout_str().lines() {
                if let Some((o, t)) = l.split_once(' ') {
                    types.insert(o.to_string(), t.to_string());
                }
            }
        }
        let policy = &ctx.repo.policy;
        for (c, o) in ctx.commands.iter().zip(outcomes.iter_mut()) {
            let facts = RefFacts {
                current: current.get(&c.name_str()).map(String::as_str),
                old_type: types.get(&c.old).map(String::as_str),
                new_type: types.get(&c.new).map(String::as_str),
            };
            if let Err(refused) = check_ref_facts(c, &facts) {
                o.rule = refused.rule;
                o.reason = refused.reason;
                continue;
            }
            let fast_forward = needs_ancestry(c, &facts)
                && self.is_ancestor(mirror, quarantine, &c.old, &c.new).await?;
            let action = classify(c, &facts, fast_forward);
            o.class = Some(action);
            let verdict: Verdict = policy.decide(&c.name, action);
            o.rule = verdict.rule;
            o.ok = verdict.allowed;
            o.reason = verdict.reason;
        }
        Ok(())
    }

    fn quarantine_cmd(&self, mirror: &Path, quarantine: Option<&Path>) -> tokio::process::Command {
        let mut cmd = self.runner.command(Some(mirror));
        if let Some(q) = quarantine {
            cmd.env("GIT_OBJECT_DIRECTORY", q);
            cmd.env("GIT_ALTERNATE_OBJECT_DIRECTORIES", mirror.join("objects"));
        }
        cmd
    }

    async fn is_ancestor(
        &self,
        mirror: &Path,
        quarantine: Option<&Path>,
        old: &str,
        new: &str,
    ) -> Result<bool, GateError> {
        let mut cmd = self.quarantine_cmd(mirror, quarantine);
        cmd.args(["merge-base", "--is-ancestor", old, new]);
        let out = run(cmd, None, Duration::from_secs(120)).await?;
        match out.code {
            Some(0) => Ok(true),
            Some(1) => Ok(false),
            _ => Err(GateError::Git(format!(
                "merge-base failed: {}",
                out.stderr_str().trim()
            ))),
        }
    }

    /// Which of the pushed refs are symbolic refs upstream: `(ref, target)`.
    async fn upstream_symrefs(&self, ctx: &PushCtx) -> Result<Vec<(String, String)>, GateError> {
        let mut cmd = self.runner.command(Some(&ctx.mirror.dir));
        ctx.repo.upstream.apply(&mut cmd, &self.settings);
        cmd.args(["ls-remote", "--symref"])
            .arg(&ctx.repo.upstream.url);
        let names: Vec<String> = ctx.commands.iter().map(Command::name_str).collect();
        cmd.args(&names);
        let out = run(cmd, None, crate::mirror::FETCH_TIMEOUT).await?;
        // ls-remote exits 0 with no output when nothing matches; 2 with --exit-code only.
        if !out.success {
            let detail = tail_lines(&out.stderr, 2).join(" / ");
            return Err(GateError::Upstream(
                ctx.repo.upstream.guard_message(&detail),
            ));
        }
        let mut found = Vec::new();
        for line in out.stdout_str().lines() {
            if let Some(rest) = line.strip_prefix("ref: ") {
                if let Some((target, name)) = rest.split_once('\t') {
                    if names.iter().any(|n| n == name) {
                        found.push((name.to_string(), target.to_string()));
                    }
                }
            }
        }
        Ok(found)
    }

    /// `git push --atomic --porcelain --force-with-lease=<ref>:<old>... <upstream> <new>:<ref>...`
    /// from the quarantine. Err = (reason per ref, upstream's last stderr lines).
    async fn push_upstream(
        &self,
        ctx: &PushCtx,
        quarantine: Option<&Path>,
    ) -> Result<(), (HashMap<String, String>, Vec<String>)> {
        let mirror = &ctx.mirror.dir;
        // No GIT_QUARANTINE_PATH: a local (file://) receiving side must not think it is
        // inside a quarantine. GIT_OBJECT_DIRECTORY / alternates are not passed to local
        // transports by git itself.
        let mut cmd = self.quarantine_cmd(mirror, quarantine);
        ctx.repo.upstream.apply(&mut cmd, &self.settings);
        cmd.args([
            "push",
            "--porcelain",
            "--no-verify",
            "--no-recurse-submodules",
        ]);
        if ctx.commands.len() > 1 {
            cmd.arg("--atomic");
        }
        for o in &ctx.push_options {
            cmd.arg(format!("--push-option={o}"));
        }
        let mut refspecs = Vec::new();
        for c in &ctx.commands {
            let name = c.name_str();
            match c.kind() {
                CommandKind::Create => cmd.arg(format!("--force-with-lease={name}:")),
                _ => cmd.arg(format!("--force-with-lease={name}:{}", c.old)),
            };
            refspecs.push(match c.kind() {
                CommandKind::Delete => format!(":{name}"),
                _ => format!("{}:{name}", c.new),
            });
        }
        cmd.arg(&ctx.repo.upstream.url).args(&refspecs);
        let started = Instant::now();
        let res = run(cmd, None, UPSTREAM_PUSH_TIMEOUT).await;
        let out = match res {
            Ok(o) => o,
            Err(e) => {
                self.metrics.upstream_push(false);
                return Err((HashMap::new(), vec![format!("push failed: {e}")]));
            }
        };
        tracing::info!(repo = %ctx.repo.name, ok = out.success, ms = started.elapsed().as_millis() as u64, "upstream push");
        self.metrics.upstream_push(out.success);
        if out.success {
            return Ok(());
        }
        let mut per_ref = HashMap::new();
        for line in out.stdout_str().lines() {
            let parts: Vec<&str> = line.split('\t').collect();
            if parts.len() >= 3 && parts[0] == "!" {
                if let Some((_, dst)) = parts[1].split_once(':') {
                    let said = ctx.repo.upstream.guard_message(parts[2].trim());
                    per_ref.insert(dst.to_string(), format!("upstream: {said}"));
                }
            }
        }
        let lines = tail_lines(&out.stderr, 8)
            .into_iter()
            .filter(|l| !l.starts_with("To ") && l != "Done")
            .map(|l| ctx.repo.upstream.guard_message(&l))
            .collect();
        Err((per_ref, lines))
    }
}

/// Refuses every ref of the push: each keeps the reason it already has (a more precise one),
/// the others get `rule`/`reason`; the client is told why.
fn refused(mut v: HookVerdict, rule: &str, reason: String) -> HookVerdict {
    for o in v.outcomes.iter_mut() {
        o.ok = false;
        if o.reason.is_empty() {
            o.rule = rule.to_string();
            o.reason = reason.clone();
        }
    }
    v.messages.push(format!("git-gate: push refused: {reason}"));
    v
}
