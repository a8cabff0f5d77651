//! Loading what `bottle watch` shows, on a thread of its own so slow or failing I/O never
//! freezes the keys: a snapshot every `POLL`, or at once when asked.

use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::Arc;
use std::time::Duration;

use bottle_core::audit_read::recent_refusals_in_tail;

use super::app::Snapshot;
use super::decider::{Decider, RefusalRow};
use crate::state::StateDir;

/// How often the lists are reloaded.
pub const POLL: Duration = Duration::from_millis(500);
/// Refusals kept per bottle and in all.
const REFUSALS_PER_BOTTLE: usize = 50;
const REFUSALS_SHOWN: usize = 100;
/// Tail of each audit file read per poll: recent refusals only, cheap twice a second.
const WATCH_TAIL_BYTES: u64 = 128 * 1024;

/// The loading thread's end of the channels.
pub struct Poller {
    snapshots: Receiver<Snapshot>,
    wake: Sender<()>,
}

impl Poller {
    /// Start loading `scope` (one bottle, or all with a state dir) through `decider`.
    pub fn start(scope: Option<String>, decider: Arc<dyn Decider>) -> Poller {
        let (tx, snapshots) = mpsc::channel();
        let (wake, woken) = mpsc::channel::<()>();
        std::thread::spawn(move || loop {
            let snap = load(scope.as_deref(), decider.as_ref());
            if tx.send(snap).is_err() {
                return;
            }
            match woken.recv_timeout(POLL) {
                Ok(()) | Err(RecvTimeoutError::Timeout) => while woken.try_recv().is_ok() {},
                Err(RecvTimeoutError::Disconnected) => return,
            }
        });
        Poller { snapshots, wake }
    }

    /// The newest snapshot since the last call, if any.
    pub fn latest(&self) -> Option<Snapshot> {
        self.snapshots.try_iter().last()
    }

    /// Reload now instead of at the next tick.
    pub fn refresh_now(&self) {
        // The thread gone means the view keeps its last lists; nothing to do.
        let _ = self.wake.send(());
    }
}

/// One snapshot: pending requests from `decider`, refusals from the audit directories.
pub fn load(scope: Option<&str>, decider: &dyn Decider) -> Snapshot {
    let pending = decider.pending(scope).map_err(|e| e.to_string());
    let dirs: Vec<StateDir> = match scope {
        Some(slug) => StateDir::of(slug).into_iter().collect(),
        None => StateDir::list().into_iter().map(|(d, _)| d).collect(),
    };
    let (refusals, refusal_errors) = refusals_in(&dirs);
    Snapshot {
        pending,
        refusals,
        refusal_errors,
    }
}

/// Recent refusals of each bottle, newest first; unreadable directories named in the errors.
pub fn refusals_in(dirs: &[StateDir]) -> (Vec<RefusalRow>, Vec<String>) {
    let mut rows = Vec::new();
    let mut errors = Vec::new();
    for d in dirs {
        let audit = d.audit_dir();
        match std::fs::read_dir(&audit) {
            Ok(_) => {}
            // A bottle still starting has none yet.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => {
                errors.push(format!("cannot read {}: {e}", audit.display()));
                continue;
            }
        }
        rows.extend(
            recent_refusals_in_tail(&audit, REFUSALS_PER_BOTTLE, WATCH_TAIL_BYTES)
                .into_iter()
                .map(|fields| RefusalRow {
                    slug: d.slug().to_string(),
                    fields,
                }),
        );
    }
    rows.sort_by(|a, b| super::ts(&b.fields).cmp(super::ts(&a.fields)));
    rows.truncate(REFUSALS_SHOWN);
    (rows, errors)
}
