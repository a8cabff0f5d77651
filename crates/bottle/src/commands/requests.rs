//! `bottle requests`, `bottle approve`, `bottle deny`: the operator decides the agent's access
//! requests.
//!
//! supervise writes `STATE/requests/<id>.json`; this side reads it (never trusting it: the
//! agent chose every field), and answers with `<id>.decision.json`
//! (`bottle_core::access_request`, first decision wins). A host request is applied through
//! the very path `bottle allow` takes (judged again, written, SIGHUP, confirmed by the status
//! files, rolled back on refusal) before the approval is written; a time-limited one becomes
//! an allowlist line with `until=`, which the sidecars stop honouring by themselves.
//!
//! A route or git-ref request is applied to the live `routes.yaml` (`requests/live_routes.rs`:
//! judged again, checked against what the file holds, written with the sidecars' own schema,
//! SIGHUP, confirmed, put back on refusal), for the session only; a route gets no credential
//! (the operator adds one in the manifest).

use std::time::Duration;

use bottle_core::access_request::{
    self as contract, now_unix, Decision, PendingRequest, ReadError, RequestId, RequestState,
};
use bottle_core::allowlist::format_utc;
use clap::Args;
use serde_json::{Map, Value};

use super::allow;
use crate::error::{Error, Result};
use crate::state::{self, StateDir};
pub(crate) use crate::terminal_text::inert;
use crate::terminal_text::is_unsafe_char;
use crate::ui;
use live_routes::Reloader;

/// `bottle requests [SLUG]`.
#[derive(Args, Debug)]
pub struct RequestsArgs {
    /// The bottle; all running bottles when omitted.
    pub slug: Option<String>,
}

/// `bottle approve ID [--for DURATION | --session] [--bottle SLUG]`.
#[derive(Args, Debug)]
pub struct ApproveArgs {
    /// The request's id (from `bottle requests`).
    pub id: String,
    /// Grant for this long only (`30s`, `15m`, `2h`, `1d`); the sidecars drop it by themselves.
    #[arg(long = "for", value_name = "DURATION", value_parser = parse_duration, conflicts_with = "session")]
    pub for_: Option<Duration>,
    /// Grant until the bottle stops (the default).
    #[arg(long)]
    pub session: bool,
    /// The bottle, when the id is not enough to find it.
    #[arg(long, value_name = "SLUG")]
    pub bottle: Option<String>,
}

/// `bottle deny ID [--reason TEXT] [--bottle SLUG]`.
#[derive(Args, Debug)]
pub struct DenyArgs {
    /// The request's id (from `bottle requests`).
    pub id: String,
    /// Why, in a line the agent reads.
    #[arg(long, value_name = "TEXT")]
    pub reason: Option<String>,
    /// The bottle, when the id is not enough to find it.
    #[arg(long, value_name = "SLUG")]
    pub bottle: Option<String>,
}

/// A pending request as the operator sees it. Every string field except `slug` and `id` is
/// the agent's text: print it through [`inert`].
#[derive(Debug, Clone, PartialEq)]
pub struct PendingView {
    pub slug: String,
    pub id: String,
    pub kind: String,
    pub ask: Value,
    pub reason: String,
    pub created_unix: u64,
    /// Recent refusals of the asked host (newest first), one line each, already inert.
    pub blocks: Vec<String>,
}

/// How long an approval lasts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Grant {
    /// Until the bottle stops.
    Session,
    /// For this long from now.
    For(Duration),
}

/// Longest `--for` (a grant meant for longer belongs in the manifest).
const MAX_GRANT: Duration = Duration::from_secs(30 * 86_400);
/// Longest denial reason (supervise's own cap for the agent's reasons).
const MAX_REASON_BYTES: usize = 1024;
/// Refusals shown per request.
const BLOCKS_PER_REQUEST: usize = 3;
/// Refusals read from one bottle's audit directory.
const REFUSALS_READ: usize = 200;
/// Longest shown line of a refusal.
const MAX_BLOCK_CHARS: usize = 200;

/// Lists pending requests.
pub fn list(args: &RequestsArgs) -> Result<i32> {
    let dirs = bottles_to_list(args.slug.as_deref())?;
    let (views, problems) = collect_pending(&dirs, now_unix());
    for p in &problems {
        ui::warn(p);
    }
    if views.is_empty() {
        ui::note("no pending requests");
        return Ok(0);
    }
    let now = now_unix();
    for v in &views {
        println!("{}", render(v, now));
    }
    Ok(0)
}

/// Approves a request.
pub fn approve(args: &ApproveArgs) -> Result<i32> {
    let grant = args.for_.map_or(Grant::Session, Grant::For);
    let line = approve_request(args.bottle.as_deref(), &args.id, grant)?;
    ui::ok(&line);
    Ok(0)
}

/// Denies a request.
pub fn deny(args: &DenyArgs) -> Result<i32> {
    let line = deny_request(args.bottle.as_deref(), &args.id, args.reason.as_deref())?;
    ui::ok(&line);
    Ok(0)
}

/// Pending requests of `slug`, or of every running bottle, oldest first.
pub fn pending(slug: Option<&str>) -> Result<Vec<PendingView>> {
    let dirs = bottles_to_list(slug)?;
    Ok(collect_pending(&dirs, now_unix()).0)
}

/// Approves request `id` (in bottle `slug`, or wherever it is): a host request is applied as
/// `bottle allow` would, then the approval is written. Returns a one-line confirmation.
pub fn approve_request(slug: Option<&str>, id: &str, grant: Grant) -> Result<String> {
    approve_in(&bottles_to_search(slug)?, id, grant)
}

fn approve_in(dirs: &[StateDir], id: &str, grant: Grant) -> Result<String> {
    let signal = |dir: &StateDir, sidecars: &[state::Sidecar]| {
        allow::send_sighup(&crate::docker::Compose::detect()?, dir, sidecars)
    };
    let reloader = Reloader {
        signal: &signal,
        timeout: super::timeout_from_env("BOTTLE_RELOAD_TIMEOUT", 20),
    };
    approve_with(dirs, id, grant, &reloader)
}

/// [`approve_in`] with the way sidecars are made to reload routes.yaml given (tests fake it).
fn approve_with(
    dirs: &[StateDir],
    id: &str,
    grant: Grant,
    reloader: &Reloader<'_>,
) -> Result<String> {
    let found = locate(dirs, id, now_unix())?;
    match found.request.kind.as_str() {
        "host" => approve_host(&found, grant),
        "route" => {
            let change = live_routes::judge_route(found.id.as_str(), &found.request.ask)?;
            live_routes::approve(&found, grant, &change, reloader)
        }
        "git-ref" => {
            let change = live_routes::judge_git_ref(found.id.as_str(), &found.request.ask)?;
            live_routes::approve(&found, grant, &change, reloader)
        }
        other => Err(Error::Usage(format!(
            "request {} has an unknown kind `{}`; not approved",
            found.id,
            inert(other)
        ))),
    }
}

/// A host request, applied as `bottle allow` applies an entry.
fn approve_host(found: &Found, grant: Grant) -> Result<String> {
    let entry = host_entry(&found.request)?;
    let now = now_unix();
    let (until, label) = match grant {
        Grant::Session => (None, "session".to_owned()),
        Grant::For(d) => {
            check_grant(d)?;
            (Some(now + d.as_secs()), duration_label(d))
        }
    };
    let applied = allow::apply_entry(&found.dir, &entry, until, false)?;
    let decision = Decision {
        decision: "approved".into(),
        for_: Some(label.clone()),
        until_unix: until,
        reason: None,
        decided_at: state::now_rfc3339(),
    };
    if let Err(e) = record(found, &decision) {
        // Someone decided it meanwhile: what this call added must not outlive the refusal.
        if !applied.already {
            allow::restore(&found.dir, &applied.previous);
        }
        return Err(e);
    }
    let how = match until {
        None => "for the session".to_owned(),
        Some(u) => format!("for {label} (until {})", format_utc(u)),
    };
    let confirmed = if applied.already {
        "already in the allowlist".to_owned()
    } else {
        let mut c = applied.generations();
        if let Some(u) = until {
            c.push_str(&super::allow::confirm_expiry(&found.dir, u));
        }
        c
    };
    Ok(format!(
        "approved {} in {}: {} allowed {how} ({confirmed})",
        found.id,
        found.dir.slug(),
        inert(&entry)
    ))
}

/// Denies request `id`; `reason` is what the agent is told. Returns a one-line confirmation.
pub fn deny_request(slug: Option<&str>, id: &str, reason: Option<&str>) -> Result<String> {
    deny_in(&bottles_to_search(slug)?, id, reason)
}

fn deny_in(dirs: &[StateDir], id: &str, reason: Option<&str>) -> Result<String> {
    let reason = reason.map(str::trim).filter(|r| !r.is_empty());
    if let Some(r) = reason {
        check_deny_reason(r)?;
    }
    let found = locate(dirs, id, now_unix())?;
    let decision = Decision {
        decision: "denied".into(),
        for_: None,
        until_unix: None,
        reason: reason.map(str::to_owned),
        decided_at: state::now_rfc3339(),
    };
    record(&found, &decision)?;
    Ok(format!(
        "denied {} in {}: {} {}",
        found.id,
        found.dir.slug(),
        inert(&found.request.kind),
        ask_summary(&found.request.ask)
    ))
}

/// A request found on disk, undecided and not expired.
#[derive(Debug)]
struct Found {
    dir: StateDir,
    id: RequestId,
    request: PendingRequest,
}

/// The bottles `bottle requests` looks at: the one named, or every running one.
fn bottles_to_list(slug: Option<&str>) -> Result<Vec<StateDir>> {
    match slug {
        Some(s) => named_bottle(s).map(|d| vec![d]),
        None => Ok(super::running_projects()?
            .iter()
            .filter_map(|p| super::manage::slug_of_project(p))
            .filter_map(|s| StateDir::of(s).ok())
            .filter(|d| d.path().is_dir())
            .collect()),
    }
}

/// The bottles an id is looked up in: the one named, or every state directory (ids are
/// random, so one found in two places was planted: then `--bottle` must say which).
fn bottles_to_search(slug: Option<&str>) -> Result<Vec<StateDir>> {
    match slug {
        Some(s) => named_bottle(s).map(|d| vec![d]),
        None => Ok(StateDir::list().into_iter().map(|(d, _)| d).collect()),
    }
}

fn named_bottle(slug: &str) -> Result<StateDir> {
    let dir = StateDir::of(slug)?;
    if !dir.exists() {
        return Err(Error::Usage(format!(
            "no bottle `{slug}` (see `bottle ls`)"
        )));
    }
    Ok(dir)
}

/// Every undecided, unexpired request in `dirs`, oldest first, and what was wrong with the
/// files that could not be read (reported, never trusted).
pub(crate) fn collect_pending(dirs: &[StateDir], now: u64) -> (Vec<PendingView>, Vec<String>) {
    let mut views = Vec::new();
    let mut problems = Vec::new();
    for dir in dirs {
        let req_dir = contract::requests_dir(dir.path());
        let mut refusals: Option<Vec<Map<String, Value>>> = None;
        for id in contract::list_ids(&req_dir) {
            let request = match contract::read_pending(&req_dir, &id) {
                Ok(Some(r)) => r,
                Ok(None) => continue,
                Err(e) => {
                    problems.push(bad_file(dir, &id, "request", &e));
                    continue;
                }
            };
            let decision = match contract::read_decision(&req_dir, &id) {
                Ok(d) => d,
                Err(e) => {
                    // supervise also treats it as undecided; say so, so the operator can clean it up.
                    problems.push(bad_file(dir, &id, "decision", &e));
                    None
                }
            };
            if !RequestState::of(&request, decision.as_ref(), now).is_pending() {
                continue;
            }
            let refusals = refusals.get_or_insert_with(|| recent_refusals(dir));
            views.push(PendingView {
                slug: dir.slug().to_owned(),
                id: id.to_string(),
                blocks: blocks_for(&request.ask, refusals),
                kind: request.kind,
                ask: request.ask,
                reason: request.reason,
                created_unix: request.created_unix,
            });
        }
    }
    views.sort_by_key(|v| v.created_unix);
    (views, problems)
}

fn bad_file(dir: &StateDir, id: &RequestId, what: &str, e: &ReadError) -> String {
    format!(
        "{}: ignoring the {what} file of {id}: {}",
        dir.slug(),
        inert(&e.to_string())
    )
}

/// Finds request `id` in `dirs`: it must exist once, be undecided and not expired.
fn locate(dirs: &[StateDir], id: &str, now: u64) -> Result<Found> {
    let Some(rid) = RequestId::parse(id) else {
        return Err(Error::Usage(format!(
            "`{}` is not a request id (see `bottle requests`)",
            inert(id)
        )));
    };
    let mut hits = Vec::new();
    for dir in dirs {
        let req_dir = contract::requests_dir(dir.path());
        match contract::read_pending(&req_dir, &rid) {
            Ok(Some(r)) => hits.push((dir.clone(), r)),
            Ok(None) => {}
            Err(e) => return Err(Error::Usage(bad_file(dir, &rid, "request", &e))),
        }
    }
    let (dir, request) = match hits.len() {
        0 => {
            return Err(Error::Usage(format!(
                "no request {rid} (see `bottle requests`)"
            )))
        }
        1 => hits.remove(0),
        _ => {
            let slugs: Vec<&str> = hits.iter().map(|(d, _)| d.slug()).collect();
            return Err(Error::Usage(format!(
                "request {rid} is in several bottles ({}); name one with --bottle SLUG",
                slugs.join(", ")
            )));
        }
    };
    let req_dir = contract::requests_dir(dir.path());
    let decision = contract::read_decision(&req_dir, &rid).map_err(|e| {
        Error::Usage(format!(
            "{}; remove it to decide again",
            bad_file(&dir, &rid, "decision", &e)
        ))
    })?;
    if let Some(d) = decision {
        return Err(already_decided(&rid, &d));
    }
    if RequestState::of(&request, None, now) == RequestState::Expired {
        return Err(Error::Usage(format!(
            "request {rid} expired undecided at {}; the agent can ask again",
            format_utc(request.expires_unix)
        )));
    }
    Ok(Found {
        dir,
        id: rid,
        request,
    })
}

fn already_decided(id: &RequestId, d: &Decision) -> Error {
    let what = if d.is_approval() {
        "approved"
    } else {
        "denied"
    };
    Error::Usage(format!(
        "request {id} was already {what} at {}; nothing changed",
        inert(&d.decided_at)
    ))
}

/// Writes the decision; a decision that won a race elsewhere is reported as such.
fn record(found: &Found, decision: &Decision) -> Result<()> {
    match contract::write_decision(found.dir.path(), &found.id, decision) {
        Ok(()) => {
            hand_to_supervise(found);
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            let req_dir = contract::requests_dir(found.dir.path());
            Err(match contract::read_decision(&req_dir, &found.id) {
                Ok(Some(d)) => already_decided(&found.id, &d),
                _ => Error::Usage(format!(
                    "request {} was decided meanwhile; nothing changed",
                    found.id
                )),
            })
        }
        Err(e) => Err(Error::io(
            format!("writing the decision for {}", found.id),
            e,
        )),
    }
}

/// A launcher run as root writes its decision as root, mode 0600; supervise (then the
/// sidecar user, owner of `requests/`) must be able to read it, so it is given to the
/// directory's owner. Until then supervise reads the request as still pending.
fn hand_to_supervise(found: &Found) {
    use std::os::unix::fs::MetadataExt;
    if state::euid() != 0 {
        return;
    }
    let dir = contract::requests_dir(found.dir.path());
    let file = dir.join(format!("{}.decision.json", found.id));
    let owner = std::fs::symlink_metadata(&dir).map(|m| (m.uid(), m.gid()));
    let result = owner.and_then(|(u, g)| std::os::unix::fs::lchown(&file, Some(u), Some(g)));
    if let Err(e) = result {
        ui::warn(&format!(
            "cannot give {} to the owner of requests/ ({e}); supervise may not read it",
            file.display()
        ));
    }
}

/// The allowlist entry a host request asks for.
fn host_entry(req: &PendingRequest) -> Result<String> {
    let host =
        req.ask.get("host").and_then(Value::as_str).ok_or_else(|| {
            Error::Usage(format!("request {} names no host; not approved", req.id))
        })?;
    // The file is the agent's side of the fence: the entry is judged from scratch below (as
    // `bottle allow` judges it), and anything but one printable ASCII word is refused first so
    // no message built from it can carry terminal controls.
    if host.is_empty() || !host.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(Error::Usage(format!(
            "request {} asks for `{}`, which is not one allowlist entry; not approved",
            req.id,
            inert(host)
        )));
    }
    allow::judge_entry(host, false).map_err(|e| {
        Error::Usage(format!(
            "request {} not approved: {}",
            req.id,
            e.to_string()
                .replace("; pass --force if you really mean it", "")
        ))
    })?;
    Ok(host.to_owned())
}

fn check_grant(d: Duration) -> Result<()> {
    if d.is_zero() || d > MAX_GRANT {
        return Err(Error::Usage(format!(
            "--for must be between 1s and {}d",
            MAX_GRANT.as_secs() / 86_400
        )));
    }
    Ok(())
}

fn check_deny_reason(r: &str) -> Result<()> {
    if r.len() > MAX_REASON_BYTES {
        return Err(Error::Usage(format!(
            "--reason is longer than {MAX_REASON_BYTES} bytes"
        )));
    }
    if r.chars().any(is_unsafe_char) {
        return Err(Error::Usage(
            "--reason must be one line without control characters".into(),
        ));
    }
    Ok(())
}

/// `30s`, `15m`, `2h`, `1d`: a positive whole number and one unit.
pub(crate) fn parse_duration(s: &str) -> std::result::Result<Duration, String> {
    let bad = || format!("`{s}`: write a duration like 30s, 15m, 2h or 1d");
    let s = s.trim();
    let split = s.len().checked_sub(1).ok_or_else(bad)?;
    let (n, unit) = s.split_at(split);
    if n.is_empty() || !n.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    let n: u64 = n.parse().map_err(|_| bad())?;
    let per = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err(bad()),
    };
    let secs = n.checked_mul(per).ok_or_else(bad)?;
    if secs == 0 {
        return Err(bad());
    }
    Ok(Duration::from_secs(secs))
}

/// A duration as the operator would type it (the largest unit that divides it).
pub(crate) fn duration_label(d: Duration) -> String {
    let s = d.as_secs();
    for (per, unit) in [(86_400, "d"), (3600, "h"), (60, "m")] {
        if s >= per && s.is_multiple_of(per) {
            return format!("{}{unit}", s / per);
        }
    }
    format!("{s}s")
}

/// `5s`, `12m`, `3h`, `2d`: how long ago.
pub(crate) fn age(now: u64, then: u64) -> String {
    let s = now.saturating_sub(then);
    match s {
        0..=119 => format!("{s}s"),
        120..=7199 => format!("{}m", s / 60),
        7200..=172_799 => format!("{}h", s / 3600),
        _ => format!("{}d", s / 86_400),
    }
}

/// The asked fields as one inert line: `docs.rs`, `api.example.com methods=GET paths=/v1/*`,
/// `org/repo refs/heads/agent/* allow=create`. The host, repo and ref bare and first, then
/// every other field as `key=value` by name, lists joined by commas, null fields left out;
/// any other shape (the agent chose it) as compact JSON. `bottle requests`, `bottle approve`'s
/// refusals and `bottle watch` all show this.
pub(crate) fn ask_summary(ask: &Value) -> String {
    let Value::Object(fields) = ask else {
        return inert(&ask.to_string());
    };
    let mut parts = Vec::new();
    for key in ["host", "repo", "ref"] {
        if let Some(v) = fields.get(key).and_then(Value::as_str) {
            parts.push(v.to_owned());
        }
    }
    for (key, v) in fields {
        // A host, repo or ref that is not a string was not shown bare: show it here.
        if (matches!(key.as_str(), "host" | "repo" | "ref") && v.is_string()) || v.is_null() {
            continue;
        }
        let shown = match v {
            Value::Array(items) => items
                .iter()
                .map(|i| i.as_str().map_or_else(|| i.to_string(), str::to_owned))
                .collect::<Vec<_>>()
                .join(","),
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        parts.push(format!("{key}={shown}"));
    }
    inert(&parts.join(" "))
}

/// One request for the terminal: a head line, the reason, the refusals before it.
fn render(v: &PendingView, now: u64) -> String {
    let mut out = format!(
        "{}  {}  {} ago  {}  {}\n    reason: {}",
        v.slug,
        v.id,
        age(now, v.created_unix),
        inert(&v.kind),
        ask_summary(&v.ask),
        inert(&v.reason)
    );
    for b in &v.blocks {
        out.push_str(&format!("\n    refused: {b}"));
    }
    out
}

/// The bottle's recent refusals (newest first).
fn recent_refusals(dir: &StateDir) -> Vec<Map<String, Value>> {
    bottle_core::audit_read::recent_refusals(&dir.audit_dir(), REFUSALS_READ)
}

/// The refusals (newest first, at most [`BLOCKS_PER_REQUEST`]) whose destination the asked
/// entry covers: the ones that led the agent to ask.
fn blocks_for(ask: &Value, refusals: &[Map<String, Value>]) -> Vec<String> {
    let Some(entry) = ask.get("host").and_then(Value::as_str) else {
        return Vec::new();
    };
    let Ok(list) = bottle_core::Allowlist::parse(entry, std::path::Path::new("request")) else {
        return Vec::new();
    };
    refusals
        .iter()
        .filter(|r| {
            let Some(host) = r.get("host").and_then(Value::as_str) else {
                return false;
            };
            let Ok(host) = bottle_core::parse_host(host) else {
                return false;
            };
            match r.get("port").and_then(Value::as_u64) {
                Some(p) => u16::try_from(p).is_ok_and(|p| list.allows_at(&host, p, 0)),
                None => list.allows_at(&host, 443, 0) || list.allows_at(&host, 80, 0),
            }
        })
        .take(BLOCKS_PER_REQUEST)
        .map(block_line)
        .collect()
}

/// `2026-12-07T05:01:02Z pipelock GET https://docs.rs:443/x: host not allowed`, inert, capped.
fn block_line(r: &Map<String, Value>) -> String {
    let field = |k: &str| match r.get(k) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        _ => String::new(),
    };
    let mut target = String::new();
    if !field("scheme").is_empty() {
        target.push_str(&format!("{}://", field("scheme")));
    }
    target.push_str(&field("host"));
    if !field("port").is_empty() {
        target.push_str(&format!(":{}", field("port")));
    }
    target.push_str(&field("path"));
    let line = format!(
        "{} {} {} {}: {}",
        field("ts"),
        field("component"),
        field("method"),
        target,
        field("reason")
    );
    let line = inert(
        line.split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
            .as_str(),
    );
    if line.chars().count() > MAX_BLOCK_CHARS {
        let mut cut: String = line.chars().take(MAX_BLOCK_CHARS - 1).collect();
        cut.push('…');
        cut
    } else {
        line
    }
}

mod live_routes;

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
#[path = "requests_tests.rs"]
mod tests;
