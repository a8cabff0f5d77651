//! Waiting until the sidecars are really ready, before the agent starts (issue 17).
//!
//! Docker runs a container's first healthcheck one `interval` (2 s) after it starts, and
//! Engine 20.10 has no `start_interval`: waiting on Docker's health state (compose's
//! `service_healthy`) cost ~2 s of every start. Instead the launcher watches each sidecar's
//! status file, which the sidecar writes the moment its config is loaded, and accepts it only
//! when it is fresh (written since this start began: never a file left from an earlier run or
//! an earlier incarnation of the container), names the right component and reports a loaded
//! config. A status file is written *before* the listeners are bound, so the launcher then
//! runs the image's own healthcheck once (`docker exec C /<sidecar> healthcheck`, the probe
//! Docker itself runs: `/healthz` answers only once every listener is bound) and the agent
//! starts only after it passes. supervise has no status file (it may not write `status/`:
//! it could forge the others'); its probe alone decides.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use crate::docker::{self, Container};
use crate::error::Error;
use crate::render;
use crate::signals::Interrupt;

/// `BOTTLE_START_TIMEOUT`, counted from when the sidecars were started: every phase of the
/// start shares it, and a message names the whole limit, not what was left of it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Deadline {
    /// When the start began.
    pub t0: Instant,
    /// The limit.
    pub limit: Duration,
}

impl Deadline {
    /// Time left (zero once passed).
    pub fn remaining(&self) -> Duration {
        self.limit.saturating_sub(self.t0.elapsed())
    }

    /// Past the limit?
    pub fn passed(&self) -> bool {
        self.t0.elapsed() > self.limit
    }

    /// `not ready within 180s (...); raise BOTTLE_START_TIMEOUT ...`-style ending.
    pub fn exceeded(&self, what: &str, detail: &str) -> Error {
        Error::Bottle(format!(
            "{what} within {}s ({detail}); raise BOTTLE_START_TIMEOUT if the machine is slow",
            self.limit.as_secs()
        ))
    }
}

/// What one look at a sidecar's status file says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Status {
    /// Fresh, this component, config loaded.
    Loaded,
    /// Not yet (why, for the timeout message).
    Waiting(String),
    /// The sidecar refused its config: waiting cannot help.
    Failed(String),
}

/// The sidecars of a bottle, in start order (egress needs pipelock's name).
pub(crate) fn sidecars(git_gate: bool, supervise: bool) -> Vec<&'static str> {
    let mut v = vec!["pipelock", "egress"];
    if git_gate {
        v.push("git-gate");
    }
    if supervise {
        v.push(render::supervise::SERVICE);
    }
    v
}

/// Whether `service` writes `status/<service>.json` (see the module doc for supervise).
pub(crate) fn has_status_file(service: &str) -> bool {
    service != render::supervise::SERVICE
}

/// The healthcheck the image runs (compose `healthcheck.test` minus `CMD`): each sidecar's
/// binary is `/<service>` (a test holds this against the rendered compose file).
pub(crate) fn probe_argv(service: &str) -> [String; 2] {
    [format!("/{service}"), "healthcheck".to_string()]
}

/// The file system's "now" in `dir`: the mtime of a file created there and removed at once.
///
/// Status files are stamped by the file system's clock (an NFS server's, say), not the
/// launcher's, so freshness is judged against this. Falls back to the launcher's clock when
/// `dir` is not writable.
pub(crate) fn fs_now(dir: &Path) -> SystemTime {
    let marker = dir.join(format!(".start-{}", std::process::id()));
    let stamped = std::fs::File::create_new(&marker).and_then(|f| f.metadata()?.modified());
    let _ = std::fs::remove_file(&marker);
    stamped.unwrap_or_else(|_| SystemTime::now())
}

/// Judge `status/<service>.json` for a start that began at `since` ([`fs_now`] of the status
/// dir just before the sidecars were started).
///
/// Fresh means modified at or after `since`; anything older (a file left by an earlier run or
/// an earlier incarnation of the state dir) is ignored, whatever it says. On a file system with
/// coarse timestamps both round down alike, so a new file never looks old.
pub(crate) fn judge_status(service: &str, path: &Path, since: SystemTime) -> Status {
    let meta = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Status::Waiting("no status file yet".into())
        }
        Err(e) => return Status::Waiting(format!("status file: {e}")),
    };
    match meta.modified() {
        Ok(m) if m >= since => {}
        Ok(_) => return Status::Waiting("status file older than this start".into()),
        Err(e) => return Status::Waiting(format!("status file: {e}")),
    }
    let s = match bottle_core::status::Status::read(path) {
        Ok(s) => s,
        Err(e) => return Status::Waiting(format!("status file unreadable: {e}")),
    };
    if s.component != service {
        return Status::Waiting(format!("status file names `{}`", s.component));
    }
    match (&s.loaded_at, &s.last_error) {
        (Some(_), _) => Status::Loaded,
        (None, Some(e)) => Status::Failed(format!("{service} refused its config: {e}")),
        (None, None) => Status::Waiting("config not loaded yet".into()),
    }
}

/// Why the wait failed, and whose logs tell more.
#[derive(Debug)]
pub(crate) struct NotReady {
    /// The error to print.
    pub error: Error,
    /// Services whose last log lines to show.
    pub services: Vec<String>,
}

impl NotReady {
    fn new(error: Error, services: &[&str]) -> NotReady {
        NotReady {
            error,
            services: services.iter().map(|s| s.to_string()).collect(),
        }
    }
}

/// A container's state as far as waiting goes: `Ok(true)` running, `Ok(false)` not (yet),
/// `Err` stopped: exited or dead (a container Docker is about to restart under `restart:
/// on-failure` shows `restarting`, so `exited` means the policy gave up).
pub(crate) fn running(service: &str, c: Option<&Container>) -> std::result::Result<bool, String> {
    match c {
        None => Ok(false),
        Some(c) if c.state == "running" => Ok(true),
        Some(c) if c.state == "exited" || c.state == "dead" => {
            Err(format!("{service} stopped: {}", c.status))
        }
        Some(_) => Ok(false),
    }
}

/// Wait until every one of `services` of `project` is ready (module doc), polling every
/// 50 ms; `status_dir` holds their status files, `since` is when this start began.
pub(crate) fn wait(
    project: &str,
    status_dir: &Path,
    services: &[&str],
    since: SystemTime,
    deadline: &Deadline,
    intr: &Interrupt,
) -> std::result::Result<(), NotReady> {
    let mut ready: Vec<&str> = Vec::new();
    loop {
        if intr.is_set() {
            return Err(NotReady::new(Error::Interrupted, &[]));
        }
        let mut pending: Vec<String> = Vec::new();
        let mut loaded: Vec<&str> = Vec::new();
        for &svc in services.iter().filter(|s| !ready.contains(s)) {
            if !has_status_file(svc) {
                loaded.push(svc);
                continue;
            }
            match judge_status(svc, &status_dir.join(format!("{svc}.json")), since) {
                Status::Loaded => loaded.push(svc),
                Status::Waiting(why) => pending.push(format!("{svc}: {why}")),
                Status::Failed(e) => return Err(NotReady::new(Error::Bottle(e), &[svc])),
            }
        }
        // One `docker ps` per round: a sidecar that exited fails the start now, not at the
        // deadline; the probes need the container ids.
        let cs = docker::containers(Some(project)).map_err(|e| NotReady::new(e, &[]))?;
        let find = |svc: &str| cs.iter().find(|c| c.service == svc);
        for &svc in services {
            match running(svc, find(svc)) {
                Err(e) => return Err(NotReady::new(Error::Bottle(e), &[svc])),
                // Passed its probe, then went down (a crash, a restart): probe it again.
                Ok(false) => ready.retain(|r| *r != svc),
                Ok(true) => {}
            }
        }
        let mut probes = Vec::new();
        for svc in loaded {
            match find(svc) {
                Some(c) if c.state == "running" => probes.push((svc, c.id.clone())),
                Some(c) => pending.push(format!("{svc}: {}", c.state)),
                None => pending.push(format!("{svc}: not created")),
            }
        }
        for (svc, ok) in probe_all(&probes) {
            if ok {
                ready.push(svc);
            } else {
                pending.push(format!("{svc}: healthcheck not passing yet"));
            }
        }
        if ready.len() == services.len() {
            return Ok(());
        }
        if deadline.passed() {
            let names: Vec<&str> = services
                .iter()
                .copied()
                .filter(|s| !ready.contains(s))
                .collect();
            let e = deadline.exceeded("sidecars not ready", &pending.join(", "));
            return Err(NotReady::new(e, &names));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Run every probe at once (`docker exec` costs ~0.1 s each); `(service, passed)`.
fn probe_all<'a>(probes: &[(&'a str, String)]) -> Vec<(&'a str, bool)> {
    let mut running = Vec::new();
    for (svc, id) in probes {
        let mut c = Command::new("docker");
        c.arg("exec").arg(id).args(probe_argv(svc));
        c.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        running.push((*svc, c.spawn().ok()));
    }
    running
        .into_iter()
        .map(|(svc, child)| {
            // Docker's own probe timeout (compose/sidecars.yml) bounds a hung probe.
            let passed = child.is_some_and(|mut ch| {
                matches!(
                    docker::wait_child(&mut ch, Some(Duration::from_secs(3)), &|| false),
                    Ok(Some(0))
                )
            });
            (svc, passed)
        })
        .collect()
}
