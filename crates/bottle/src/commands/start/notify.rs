//! The notify hook (issue 15): while `bottle start` runs attached, a thread watches
//! `state/<slug>/requests/` and, for each new `<id>.json` supervise writes, runs the
//! manifest's `notify.command` with the request as JSON on stdin, or POSTs it to
//! `notify.webhook` with curl. Failures are warnings; the bottle never stops for them.
//!
//! The hook runs on the operator's host, and what supervise writes comes from the agent. So:
//! the argv is the manifest's, exactly (no shell, nothing of the request in it); the request
//! reaches the hook only as JSON on stdin plus `BOTTLE_SLUG`, `BOTTLE_REQUEST_ID` (checked
//! against the id shape) and `BOTTLE_REQUEST_KIND` (one of three words); only regular files
//! named like an id and at most 16 KiB are read (never a symlink: a hostile supervise could
//! point one at a host file). A detached bottle has no watcher: `bottle watch` is its view.

use std::collections::HashSet;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::thread;
use std::time::{Duration, Instant};

use bottle_core::access_request::{list_ids, read_pending, PendingRequest, RequestId};

use crate::manifest::Notify;
use crate::terminal_text::inert;
use crate::ui;

/// How often the requests directory is listed.
const POLL: Duration = Duration::from_millis(500);
/// How long one hook run may take before it is killed.
pub const HOOK_TIMEOUT: Duration = Duration::from_secs(10);
/// Most hook output shown when it fails.
const MAX_SHOWN_OUTPUT: usize = 2048;
/// Most hook runs a minute. supervise lets the agent ask 10 times a minute; more files than
/// that mean a supervise that no longer keeps its limits, and must not turn the operator's
/// hook (a webhook, a desktop notification) into a flood.
pub const MAX_RUNS_PER_MINUTE: usize = 20;

/// A sliding one-minute window of hook runs.
#[derive(Debug, Default)]
pub struct RunBudget {
    runs: std::collections::VecDeque<Instant>,
}

impl RunBudget {
    /// Whether one more run fits at `now` (and, if so, count it).
    pub fn take(&mut self, now: Instant) -> bool {
        while self
            .runs
            .front()
            .is_some_and(|t| now.duration_since(*t) >= Duration::from_secs(60))
        {
            self.runs.pop_front();
        }
        if self.runs.len() >= MAX_RUNS_PER_MINUTE {
            return false;
        }
        self.runs.push_back(now);
        true
    }
}

/// A running watcher; [`Watcher::stop`] ends it.
pub struct Watcher {
    stop: Arc<AtomicBool>,
    done: mpsc::Receiver<()>,
}

impl Watcher {
    /// Stop watching. Waits briefly for a hook in progress, never longer than its timeout:
    /// teardown must not hang on a hook (or on a file a hostile supervise made block).
    pub fn stop(self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = self.done.recv_timeout(HOOK_TIMEOUT + POLL);
    }
}

/// Watch `dir` (the bottle's `requests/`) and run `hook` for each new request.
pub fn spawn(dir: PathBuf, slug: String, hook: Notify) -> Watcher {
    let stop = Arc::new(AtomicBool::new(false));
    let (tx, done) = mpsc::channel();
    let flag = stop.clone();
    thread::spawn(move || {
        // Requests already there when we start were not made while we watched.
        let mut seen: HashSet<RequestId> = list_ids(&dir).into_iter().collect();
        let mut budget = RunBudget::default();
        while !flag.load(Ordering::SeqCst) {
            for id in list_ids(&dir) {
                if flag.load(Ordering::SeqCst) {
                    break;
                }
                if !seen.insert(id.clone()) {
                    continue;
                }
                if !budget.take(Instant::now()) {
                    ui::warn(&format!(
                        "notify hook: more than {MAX_RUNS_PER_MINUTE} requests a minute; not run for {id} (see `bottle requests`)"
                    ));
                    continue;
                }
                if let Err(e) = notify_one(&dir, &id, &slug, &hook) {
                    ui::warn(&format!("notify hook: {}", inert(&e)));
                }
            }
            thread::sleep(POLL);
        }
        let _ = tx.send(());
    });
    Watcher { stop, done }
}

/// Read `dir/<id>.json` through the one reader of the contract
/// (`bottle_core::access_request::read_pending`: no symlink followed, the file opened is the
/// one looked at, a FIFO cannot block, at most `MAX_PENDING_BYTES`, the id is its name).
pub fn read_request(dir: &Path, id: &RequestId) -> Result<PendingRequest, String> {
    let name = dir.join(format!("{id}.json"));
    let name = name.display();
    match read_pending(dir, id) {
        Ok(Some(req)) => Ok(req),
        Ok(None) => Err(format!("{name}: gone")),
        Err(e) => Err(format!("{name}: {e} (ignored)")),
    }
}

/// What the hook receives: `{"bottle", "text", "request"}`. `text` is one line for chat
/// webhooks that show a `text` field.
pub fn payload(slug: &str, req: &PendingRequest) -> serde_json::Value {
    let text = format!(
        "bottle {slug}: access request {} ({} {}): {}",
        req.id, req.kind, req.ask, req.reason
    );
    serde_json::json!({ "bottle": slug, "text": text, "request": req })
}

/// Run the hook for one request.
fn notify_one(dir: &Path, id: &RequestId, slug: &str, hook: &Notify) -> Result<(), String> {
    let req = read_request(dir, id)?;
    let body = payload(slug, &req).to_string();
    // Only a known word reaches the environment; the id is the checked one.
    let kind = match req.kind.as_str() {
        k @ ("host" | "route" | "git-ref") => k,
        _ => "",
    };
    match hook {
        Notify::Command(argv) => run_command(argv, slug, id.as_str(), kind, &body),
        Notify::Webhook(url) => post_webhook(url, &body),
    }
}

/// Run `argv` (no shell) with `body` on stdin and the request's id and kind in env vars.
pub fn run_command(
    argv: &[String],
    slug: &str,
    id: &str,
    kind: &str,
    body: &str,
) -> Result<(), String> {
    let Some((prog, args)) = argv.split_first() else {
        return Err("empty command".into());
    };
    let mut c = Command::new(prog);
    c.args(args)
        .env("BOTTLE_SLUG", slug)
        .env("BOTTLE_REQUEST_ID", id)
        .env("BOTTLE_REQUEST_KIND", kind);
    run_with_input(c, body.as_bytes(), prog)
}

/// POST `body` to `url` with curl; the URL (it may hold a token) goes through curl's config
/// on stdin, not its argv (other users can read argv in `ps`).
pub fn post_webhook(url: &str, body: &str) -> Result<(), String> {
    let mut c = Command::new("curl");
    // -q: no ~/.curlrc; no -L: no redirects; only http(s).
    c.args([
        "-q",
        "--silent",
        "--show-error",
        "--fail",
        "--proto",
        "=https,http",
        "--max-time",
        "8",
        "--output",
        "/dev/null",
        "--config",
        "-",
    ]);
    let config = curl_config(url, body);
    run_with_input(c, config.as_bytes(), "curl").map_err(|e| {
        if e.contains("not found") {
            "the webhook needs curl, which is not installed (or use notify.command)".into()
        } else {
            format!("webhook: {e}")
        }
    })
}

/// curl config lines: each value quoted, `\` and `"` escaped (curl unescapes them).
pub fn curl_config(url: &str, body: &str) -> String {
    let q = |s: &str| s.replace('\\', "\\\\").replace('"', "\\\"");
    format!(
        "url = \"{}\"\nrequest = \"POST\"\nheader = \"Content-Type: application/json\"\ndata-binary = \"{}\"\n",
        q(url),
        q(body)
    )
}

/// Spawn `c` with `input` on stdin, wait at most [`HOOK_TIMEOUT`]; its output is shown only
/// when it fails.
fn run_with_input(c: Command, input: &[u8], what: &str) -> Result<(), String> {
    run_with_timeout(c, input, what, HOOK_TIMEOUT)
}

/// [`run_with_input`] with a given timeout.
pub(super) fn run_with_timeout(
    mut c: Command,
    input: &[u8],
    what: &str,
    timeout: Duration,
) -> Result<(), String> {
    c.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = c.spawn().map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            format!("{what}: not found")
        } else {
            format!("{what}: cannot run: {e}")
        }
    })?;
    let output = collect_output(&mut child);
    if let Some(mut stdin) = child.stdin.take() {
        let input = input.to_vec();
        // A hook that does not read its stdin must not block us.
        thread::spawn(move || {
            let _ = stdin.write_all(&input);
        });
    }
    let started = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(st)) => break st,
            Ok(None) if started.elapsed() >= timeout => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!(
                    "{what}: did not finish within {:.1}s (killed)",
                    timeout.as_secs_f64()
                ));
            }
            Ok(None) => thread::sleep(Duration::from_millis(20)),
            Err(e) => return Err(format!("{what}: {e}")),
        }
    };
    if status.success() {
        return Ok(());
    }
    // A grandchild may keep the pipes open: wait for the output a little, not forever.
    let text = output
        .recv_timeout(Duration::from_secs(1))
        .unwrap_or_default();
    let text = text.trim();
    Err(if text.is_empty() {
        format!("{what} failed ({status})")
    } else {
        format!("{what} failed ({status}): {text}")
    })
}

/// Read stdout and stderr in threads (either may fill its pipe), capped; the joined text
/// arrives on the channel once both end.
fn collect_output(child: &mut Child) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    let out = child.stdout.take();
    let err = child.stderr.take();
    thread::spawn(move || {
        let read = |r: Option<Box<dyn Read + Send>>| {
            thread::spawn(move || {
                let mut buf = Vec::new();
                if let Some(mut r) = r {
                    let _ = Read::by_ref(&mut r).take(64 * 1024).read_to_end(&mut buf);
                    // keep draining so the hook is not blocked on a full pipe
                    let _ = std::io::copy(&mut r, &mut std::io::sink());
                }
                buf
            })
        };
        let a = read(out.map(|o| Box::new(o) as Box<dyn Read + Send>));
        let b = read(err.map(|e| Box::new(e) as Box<dyn Read + Send>));
        let mut all = a.join().unwrap_or_default();
        all.extend(b.join().unwrap_or_default());
        let mut s = String::from_utf8_lossy(&all).into_owned();
        if s.len() > MAX_SHOWN_OUTPUT {
            let mut cut = MAX_SHOWN_OUTPUT;
            while !s.is_char_boundary(cut) {
                cut -= 1;
            }
            s.truncate(cut);
            s.push_str(" …");
        }
        // The hook's output may echo the agent's reason: one inert line (its own trailing
        // newline trimmed first, so it is not shown as an escape).
        let _ = tx.send(inert(s.trim()));
    });
    rx
}
