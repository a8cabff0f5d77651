//! The live view of refusals and pending requests (`bottle watch`), over one bottle or all.
//!
//! `app` holds the state and what each key does, `render` draws it, `poll` loads the lists on
//! a thread of its own, `decider` is the boundary to the requests API. This file is the thin
//! terminal loop: raw mode and the alternate screen, restored on exit, on panic (ratatui's
//! hook) and on Ctrl-C (a key in raw mode) or SIGTERM/SIGHUP.

mod app;
mod decider;
mod poll;
mod render;

#[cfg(test)]
mod tests;

use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use clap::Args;
use ratatui::crossterm::event::{self, Event, KeyEventKind};

use crate::error::{Error, Result};

pub use app::{App, Mode, Snapshot};
pub use decider::{Decider, Grant, PendingView, RefusalRow, RequestsApi};

pub(crate) use super::log::{field, host_port, inert, short_time, ts};

/// How long one wait for a key lasts before the lists are looked at again.
const KEY_WAIT: Duration = Duration::from_millis(100);

/// Arguments of `bottle watch`.
#[derive(Args, Debug)]
pub struct WatchArgs {
    /// The bottle to watch; every bottle with a state directory when omitted.
    pub slug: Option<String>,
}

/// Runs `bottle watch`.
pub fn run(args: &WatchArgs) -> Result<i32> {
    if !(std::io::stdin().is_terminal() && std::io::stdout().is_terminal()) {
        return Err(Error::Usage(
            "bottle watch needs a terminal; use `bottle requests`".into(),
        ));
    }
    if let Some(slug) = &args.slug {
        super::pick_bottle(Some(slug))?;
    }
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGHUP] {
        signal_hook::flag::register(sig, Arc::clone(&stop))
            .map_err(|e| Error::io("installing a signal handler", e))?;
    }
    let decider: Arc<dyn Decider> = Arc::new(RequestsApi);
    let poller = poll::Poller::start(args.slug.clone(), Arc::clone(&decider));

    // Dropped on every way out of this function, panics included.
    let _restore = RestoreTerminal;
    let mut terminal = ratatui::try_init().map_err(|e| Error::io("setting up the terminal", e))?;
    let mut app = App::new(args.slug.clone());
    let io = |e| Error::io("drawing the terminal", e);
    while !app.quit && !stop.load(Ordering::Relaxed) {
        if let Some(snap) = poller.latest() {
            app.apply(snap);
        }
        terminal.draw(|f| render::render(f, &app)).map_err(io)?;
        if event::poll(KEY_WAIT).map_err(io)? {
            if let Event::Key(key) = event::read().map_err(io)? {
                if key.kind == KeyEventKind::Press {
                    app.handle_key(key, decider.as_ref());
                }
            }
        }
        if std::mem::take(&mut app.refresh) {
            poller.refresh_now();
        }
    }
    Ok(0)
}

/// Leaves raw mode and the alternate screen when dropped.
struct RestoreTerminal;

impl Drop for RestoreTerminal {
    fn drop(&mut self) {
        ratatui::restore();
    }
}
