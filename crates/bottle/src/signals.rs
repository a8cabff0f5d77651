//! Ctrl-C / SIGTERM / SIGHUP: set a flag instead of dying, so teardown always runs.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// A flag set when the launcher is asked to stop.
#[derive(Clone)]
pub struct Interrupt(Arc<AtomicBool>);

impl Interrupt {
    /// Install handlers for SIGINT, SIGTERM and SIGHUP.
    pub fn install() -> Interrupt {
        let flag = Arc::new(AtomicBool::new(false));
        for sig in [
            signal_hook::consts::SIGINT,
            signal_hook::consts::SIGTERM,
            signal_hook::consts::SIGHUP,
        ] {
            // If registration fails the default action stays: we lose graceful teardown
            // (bottle cleanup still finds the strays), which is not worth aborting for.
            let _ = signal_hook::flag::register(sig, Arc::clone(&flag));
        }
        Interrupt(flag)
    }

    /// Was a signal received?
    pub fn is_set(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}
