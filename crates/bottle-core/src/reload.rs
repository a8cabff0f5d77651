//! Live reload: SIGHUP re-runs the loader; a success is swapped in atomically, a failure
//! keeps the last good config. Either way the status file is rewritten and counted.
//!
//! Time-limited allowlist entries (`until=`) stop matching by themselves (matching reads the
//! clock). So that the status file confirms it, a timer next to the SIGHUP task re-publishes
//! the status file when the earliest end passes: same generation, the allowlist report
//! showing one entry fewer in force.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;

use crate::error::ConfigError;
use crate::metrics::{Metrics, ReloadLabels};
use crate::status::StatusFile;

type Loader<T> = Box<dyn Fn() -> Result<(T, String), ConfigError> + Send + Sync>;

/// The current config plus its generation (1 after the first load).
pub struct Reloadable<T> {
    component: &'static str,
    current: ArcSwap<T>,
    generation: AtomicU64,
    sha256: Mutex<String>,
    last_error: Mutex<Option<String>>,
    loader: Loader<T>,
    status: Option<StatusFile>,
    reloads: Family<ReloadLabels, Counter>,
    gauge: Gauge,
    // Serialises reloads (signal task and reload_now callers).
    reload_lock: tokio::sync::Mutex<()>,
    // Wakes the expiry timer when a load changed the allowlist's ends.
    expiry_changed: Arc<tokio::sync::Notify>,
}

impl<T> std::fmt::Debug for Reloadable<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reloadable")
            .field("component", &self.component)
            .field("generation", &self.generation.load(Ordering::SeqCst))
            .finish_non_exhaustive()
    }
}

impl<T: Send + Sync + 'static> Reloadable<T> {
    /// The config in use. Hold the `Arc` for the whole request: a reload never changes it.
    pub fn current(&self) -> Arc<T> {
        self.current.load_full()
    }

    /// 1 after the first load, +1 per successful reload.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::SeqCst)
    }

    /// SHA-256 of the config in use.
    pub fn sha256(&self) -> String {
        lock(&self.sha256).clone()
    }

    /// The error of the last reload attempt, if it failed.
    pub fn last_error(&self) -> Option<String> {
        lock(&self.last_error).clone()
    }

    /// Reload now (what SIGHUP does). Returns the error if the new config was rejected.
    pub async fn reload_now(&self) -> Result<(), ConfigError> {
        let _guard = self.reload_lock.lock().await;
        crate::live::clear_loaded_untils();
        let result = (self.loader)();
        let untils = crate::live::take_loaded_untils();
        match result {
            Ok((value, sha)) => {
                self.current.store(Arc::new(value));
                if let Some(s) = &self.status {
                    s.set_allowlist(untils);
                }
                self.expiry_changed.notify_one();
                let gen = self.generation.fetch_add(1, Ordering::SeqCst) + 1;
                *lock(&self.sha256) = sha.clone();
                *lock(&self.last_error) = None;
                self.gauge.set(i64::try_from(gen).unwrap_or(i64::MAX));
                self.reloads
                    .get_or_create(&ReloadLabels {
                        result: "ok".into(),
                    })
                    .inc();
                tracing::info!(component = self.component, generation = gen, config_sha256 = %sha, "config reloaded");
                self.write_status(gen, &sha, None);
                Ok(())
            }
            Err(e) => {
                let msg = e.to_string();
                *lock(&self.last_error) = Some(msg.clone());
                self.reloads
                    .get_or_create(&ReloadLabels {
                        result: "error".into(),
                    })
                    .inc();
                let gen = self.generation();
                tracing::error!(component = self.component, error = %msg, generation = gen, "config reload rejected; keeping the previous config");
                let sha = self.sha256();
                self.write_status(gen, &sha, Some(&msg));
                Err(e)
            }
        }
    }

    fn write_status(&self, gen: u64, sha: &str, err: Option<&str>) {
        if let Some(s) = &self.status {
            if let Err(e) = s.write(gen, sha, err) {
                tracing::warn!(path = %s.path().display(), error = %e, "cannot write status file");
            }
        }
    }
}

fn lock<V>(m: &Mutex<V>) -> std::sync::MutexGuard<'_, V> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Load once (an error is returned: print it and exit 2), then reload on every SIGHUP.
///
/// Must be called inside a tokio runtime to get the SIGHUP task; outside one, only
/// [`Reloadable::reload_now`] reloads. The SIGHUP handler is installed before this returns,
/// so a SIGHUP arriving afterwards never kills the process.
pub fn start<T: Send + Sync + 'static>(
    component: &'static str,
    loader: impl Fn() -> Result<(T, String), ConfigError> + Send + Sync + 'static,
    status: Option<StatusFile>,
    metrics: &Metrics,
) -> Result<Arc<Reloadable<T>>, ConfigError> {
    let r = build(component, loader, status, metrics)?;
    spawn_sighup_task(&r);
    spawn_expiry_task(&r);
    Ok(r)
}

/// Like [`start`] without the SIGHUP task (tests, or callers with their own trigger).
pub fn build<T: Send + Sync + 'static>(
    component: &'static str,
    loader: impl Fn() -> Result<(T, String), ConfigError> + Send + Sync + 'static,
    status: Option<StatusFile>,
    metrics: &Metrics,
) -> Result<Arc<Reloadable<T>>, ConfigError> {
    crate::live::clear_loaded_untils();
    let first = loader();
    if let Some(s) = &status {
        s.set_allowlist(crate::live::take_loaded_untils());
    }
    let (value, sha) = match first {
        Ok(v) => v,
        Err(e) => {
            if let Some(s) = &status {
                let _ = s.write(0, "", Some(&e.to_string()));
            }
            return Err(e);
        }
    };
    let r = Arc::new(Reloadable {
        component,
        current: ArcSwap::from_pointee(value),
        generation: AtomicU64::new(1),
        sha256: Mutex::new(sha.clone()),
        last_error: Mutex::new(None),
        loader: Box::new(loader),
        status,
        reloads: metrics.reloads.clone(),
        gauge: metrics.config_generation.clone(),
        reload_lock: tokio::sync::Mutex::new(()),
        expiry_changed: Arc::new(tokio::sync::Notify::new()),
    });
    r.gauge.set(1);
    tracing::info!(component, generation = 1, config_sha256 = %sha, "config loaded");
    r.write_status(1, &sha, None);
    Ok(r)
}

fn spawn_sighup_task<T: Send + Sync + 'static>(r: &Arc<Reloadable<T>>) {
    if tokio::runtime::Handle::try_current().is_err() {
        tracing::warn!("reload::start called outside a tokio runtime; SIGHUP reload disabled");
        return;
    }
    let mut sig = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "cannot install the SIGHUP handler; reload disabled");
            return;
        }
    };
    // Weak: the task ends once the Reloadable is dropped.
    let weak = Arc::downgrade(r);
    tokio::spawn(async move {
        while sig.recv().await.is_some() {
            let Some(r) = weak.upgrade() else { break };
            tracing::info!(component = r.component, "SIGHUP: reloading config");
            let _ = r.reload_now().await;
        }
    });
}

/// Past an entry's end second by this much before re-publishing, so the report (which
/// compares whole seconds) already counts it as lapsed.
const EXPIRY_SLACK: std::time::Duration = std::time::Duration::from_millis(20);

/// Longest the expiry timer sleeps before looking again.
const MAX_EXPIRY_WAIT: std::time::Duration = std::time::Duration::from_secs(3600);

/// Re-publishes the status file whenever the earliest `until` of the allowlist in use passes.
fn spawn_expiry_task<T: Send + Sync + 'static>(r: &Arc<Reloadable<T>>) {
    if r.status.is_none() || tokio::runtime::Handle::try_current().is_err() {
        return;
    }
    // Weak: the task ends once the Reloadable is dropped (checked at least hourly).
    let weak = Arc::downgrade(r);
    let changed = r.expiry_changed.clone();
    tokio::spawn(async move {
        loop {
            let next = {
                let Some(r) = weak.upgrade() else { break };
                r.status
                    .as_ref()
                    .and_then(|s| s.next_allowlist_expiry(crate::allowlist::now_unix()))
            };
            let wait = match next {
                Some(end) => {
                    let at = std::time::UNIX_EPOCH + std::time::Duration::from_secs(end);
                    at.duration_since(std::time::SystemTime::now())
                        .unwrap_or_default()
                        + EXPIRY_SLACK
                }
                None => MAX_EXPIRY_WAIT,
            }
            // Re-check at least hourly: a wall clock stepped meanwhile is caught up with.
            .min(MAX_EXPIRY_WAIT);
            tokio::select! {
                () = changed.notified() => continue,
                () = tokio::time::sleep(wait) => {}
            }
            let Some(r) = weak.upgrade() else { break };
            let lapsed = next.is_some_and(|end| crate::allowlist::now_unix() >= end);
            if let (Some(s), true) = (&r.status, lapsed) {
                tracing::info!(
                    component = r.component,
                    "a time-limited allowlist entry ended"
                );
                if let Err(e) = s.republish() {
                    tracing::warn!(path = %s.path().display(), error = %e, "cannot write status file");
                }
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::status::Status;
    use std::sync::atomic::AtomicUsize;

    fn cfg_err(msg: &str) -> ConfigError {
        ConfigError::invalid("allowlist", Some(3), msg)
    }

    #[tokio::test]
    async fn keeps_last_good_and_counts() {
        let dir = tempfile::tempdir().unwrap();
        let status_path = dir.path().join("status.json");
        let step = Arc::new(AtomicUsize::new(0));
        let s2 = step.clone();
        let metrics = Metrics::new();
        let r = build(
            "test",
            move || match s2.load(Ordering::SeqCst) {
                0 => Ok((10u32, "a".to_string())),
                1 => Err(cfg_err("bad")),
                n => Ok((10 + n as u32, format!("h{n}"))),
            },
            Some(StatusFile::new(&status_path, "test")),
            &metrics,
        )
        .unwrap();
        assert_eq!(*r.current(), 10);
        assert_eq!(r.generation(), 1);
        let held = r.current();
        step.store(1, Ordering::SeqCst);
        let e = r.reload_now().await.unwrap_err();
        assert_eq!(e.to_string(), "allowlist:3: bad");
        assert_eq!(*r.current(), 10);
        assert_eq!(r.generation(), 1);
        assert_eq!(r.last_error().as_deref(), Some("allowlist:3: bad"));
        let st: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&status_path).unwrap()).unwrap();
        assert_eq!(st["last_error"], "allowlist:3: bad");
        assert_eq!(st["generation"], 1);
        assert_eq!(st["config_sha256"], "a");
        step.store(2, Ordering::SeqCst);
        r.reload_now().await.unwrap();
        assert_eq!(*r.current(), 12);
        assert_eq!(*held, 10, "a held config never changes");
        assert_eq!(r.generation(), 2);
        assert_eq!(r.last_error(), None);
        let st: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&status_path).unwrap()).unwrap();
        assert!(st["last_error"].is_null());
        assert_eq!(st["generation"], 2);
        assert_eq!(st["config_sha256"], "h2");
        let text = metrics.encode();
        assert!(
            text.contains("bottle_reloads_total{result=\"ok\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("bottle_reloads_total{result=\"error\"} 1"),
            "{text}"
        );
        assert!(text.contains("bottle_config_generation 2"), "{text}");
    }

    #[tokio::test]
    async fn first_load_error_is_returned_and_recorded() {
        let dir = tempfile::tempdir().unwrap();
        let status_path = dir.path().join("s.json");
        let e = start::<u8>(
            "t",
            || Err(cfg_err("nope")),
            Some(StatusFile::new(&status_path, "t")),
            &Metrics::new(),
        )
        .unwrap_err();
        assert_eq!(e.to_string(), "allowlist:3: nope");
        let st: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&status_path).unwrap()).unwrap();
        assert_eq!(st["last_error"], "allowlist:3: nope");
        assert_eq!(st["generation"], 0);
    }

    /// Real time, about two seconds: a time-limited entry lapses with no reload and no
    /// signal, the status file says so (same generation, one entry fewer in force), and an
    /// earlier end brought in by a reload re-arms the timer.
    #[tokio::test]
    async fn status_confirms_a_lapsed_entry_by_itself() {
        let dir = tempfile::tempdir().unwrap();
        let status_path = dir.path().join("status.json");
        let now = crate::allowlist::now_unix();
        let fmt = crate::allowlist::format_utc;
        let write = |text: String| std::fs::write(dir.path().join("allowlist"), text).unwrap();
        write(format!(
            "kept.example\nlate.example until={}\n",
            fmt(now + 60)
        ));
        let r = start(
            "t",
            crate::live::LiveConfig::loader(dir.path().to_path_buf()),
            Some(StatusFile::new(&status_path, "t")),
            &Metrics::new(),
        )
        .unwrap();
        let report = || Status::read(&status_path).unwrap();
        let first = report();
        let a = first.allowlist.clone().unwrap();
        assert_eq!((a.active, a.expired), (2, 0));
        assert_eq!(a.next_expiry_unix, Some(now + 60));
        // A reload adds an entry ending in a second or two: the timer moves to it.
        write(format!(
            "kept.example\nlate.example until={}\nsoon.example until={}\n",
            fmt(now + 60),
            fmt(now + 2)
        ));
        r.reload_now().await.unwrap();
        let loaded = report();
        assert_eq!(loaded.allowlist.as_ref().map(|a| a.active), Some(3));
        let soon = crate::parse_host("soon.example").unwrap();
        assert!(r.current().allowlist.allows(&soon, 443));
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(4);
        let lapsed = loop {
            let st = report();
            if st.allowlist.as_ref().is_some_and(|a| a.active == 2) {
                break st;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "no re-publish: {st:?}"
            );
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        };
        let a = lapsed.allowlist.clone().unwrap();
        assert_eq!(a.expired, 1);
        assert_eq!(a.next_expiry_unix, Some(now + 60));
        assert_eq!(lapsed.generation, loaded.generation, "no reload happened");
        assert_eq!(lapsed.attempted_at, loaded.attempted_at);
        assert!(
            !r.current().allowlist.allows(&soon, 443),
            "the sidecar stops honouring it"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_readers_see_whole_configs() {
        let n = Arc::new(AtomicUsize::new(0));
        let n2 = n.clone();
        let r = build(
            "t",
            move || {
                let v = n2.fetch_add(1, Ordering::SeqCst) as u64;
                Ok((vec![v; 64], format!("{v}")))
            },
            None,
            &Metrics::new(),
        )
        .unwrap();
        let reader = {
            let r = r.clone();
            tokio::spawn(async move {
                for _ in 0..20_000 {
                    let c = r.current();
                    assert!(c.iter().all(|x| *x == c[0]));
                    tokio::task::yield_now().await;
                }
            })
        };
        for _ in 0..200 {
            r.reload_now().await.unwrap();
        }
        reader.await.unwrap();
        assert_eq!(r.generation(), 201);
    }
}
