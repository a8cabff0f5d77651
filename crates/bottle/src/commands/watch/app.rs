//! The state of `bottle watch` and what each key does; pure apart from the `Decider` calls, so
//! it is tested with a fake decider and ratatui's `TestBackend`.

use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

use super::decider::{parse_duration, Decider, Grant, PendingView, RefusalRow};
use super::inert;

/// What `t` offers when Enter is pressed on an empty answer.
pub const DEFAULT_GRANT: &str = "1h";
/// Longest answer typed into a prompt, in characters.
const MAX_INPUT_CHARS: usize = 200;

/// A request a prompt is about, fixed when the prompt opens so a refresh cannot move it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The request's bottle.
    pub slug: String,
    /// The request's id.
    pub id: String,
}

/// Whether keys move the selection or fill a prompt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mode {
    /// Keys select and decide.
    Browse,
    /// `t`: how long to approve for.
    ForHowLong { target: Target, input: String },
    /// `d`: an optional reason for the denial.
    DenyReason { target: Target, input: String },
}

/// What the poller last brought in.
#[derive(Debug, Clone)]
pub struct Snapshot {
    /// Pending requests, or the error listing them.
    pub pending: Result<Vec<PendingView>, String>,
    /// Recent refusals, newest first.
    pub refusals: Vec<RefusalRow>,
    /// Problems reading audit directories (shown, never fatal).
    pub refusal_errors: Vec<String>,
}

/// The whole view state.
#[derive(Debug)]
pub struct App {
    /// `Some(slug)` when watching one bottle.
    pub scope: Option<String>,
    /// Pending requests, in the order listed.
    pub pending: Vec<PendingView>,
    /// Recent refusals, newest first.
    pub refusals: Vec<RefusalRow>,
    /// Index into `pending`.
    pub selected: usize,
    /// Browsing or prompting.
    pub mode: Mode,
    /// The result of the last action (or the last load error), one line, inert.
    pub status: String,
    /// Set by `q` / Ctrl-C.
    pub quit: bool,
    /// Set when the lists should be reloaded now (after `r` or a decision).
    pub refresh: bool,
    /// The last error listing requests, as shown (not repeated while it persists).
    load_error: Option<String>,
}

impl App {
    /// An empty view of `scope`.
    pub fn new(scope: Option<String>) -> App {
        App {
            scope,
            pending: Vec::new(),
            refusals: Vec::new(),
            selected: 0,
            mode: Mode::Browse,
            status: "loading…".into(),
            quit: false,
            refresh: false,
            load_error: None,
        }
    }

    /// The selected request, if any.
    pub fn selected_request(&self) -> Option<&PendingView> {
        self.pending.get(self.selected)
    }

    /// Take in new lists, keeping the selection on the same request when it is still there.
    pub fn apply(&mut self, snap: Snapshot) {
        let keep = self
            .selected_request()
            .map(|p| (p.slug.clone(), p.id.clone()));
        match snap.pending {
            Ok(p) => {
                self.pending = p;
                if self.status == "loading…"
                    || self.load_error.take().as_ref() == Some(&self.status)
                {
                    self.status = String::new();
                }
            }
            Err(e) => {
                // Said once: a failure repeated every poll must not hide an action's result.
                let shown = inert(&format!("cannot list requests: {e}"));
                if self.load_error.as_ref() != Some(&shown) {
                    self.status = shown.clone();
                    self.load_error = Some(shown);
                }
            }
        }
        self.refusals = snap.refusals;
        if let Some(e) = snap.refusal_errors.first() {
            if self.status.is_empty() {
                self.status = inert(e);
            }
        }
        self.selected = keep
            .and_then(|(slug, id)| {
                self.pending
                    .iter()
                    .position(|p| p.slug == slug && p.id == id)
            })
            .unwrap_or(self.selected)
            .min(self.pending.len().saturating_sub(1));
    }

    /// React to one key press.
    pub fn handle_key(&mut self, key: KeyEvent, decider: &dyn Decider) {
        let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
        if ctrl && matches!(key.code, KeyCode::Char('c') | KeyCode::Char('d')) {
            self.quit = true;
            return;
        }
        match std::mem::replace(&mut self.mode, Mode::Browse) {
            Mode::Browse => self.browse_key(key, decider),
            Mode::ForHowLong { target, input } => {
                if let Some(answer) = self.prompt_key(key, input, |input| Mode::ForHowLong {
                    target: target.clone(),
                    input,
                }) {
                    let text = if answer.trim().is_empty() {
                        DEFAULT_GRANT.to_string()
                    } else {
                        answer
                    };
                    match parse_duration(&text) {
                        Ok(d) => {
                            self.decided(decider.approve(&target.slug, &target.id, Grant::For(d)))
                        }
                        Err(e) => self.status = format!("error: {}", inert(&e)),
                    }
                }
            }
            Mode::DenyReason { target, input } => {
                if let Some(answer) = self.prompt_key(key, input, |input| Mode::DenyReason {
                    target: target.clone(),
                    input,
                }) {
                    let reason = answer.trim();
                    let reason = (!reason.is_empty()).then_some(reason);
                    self.decided(decider.deny(&target.slug, &target.id, reason));
                }
            }
        }
    }

    fn browse_key(&mut self, key: KeyEvent, decider: &dyn Decider) {
        match key.code {
            KeyCode::Char('q') | KeyCode::Esc => self.quit = true,
            KeyCode::Up | KeyCode::Char('k') => self.selected = self.selected.saturating_sub(1),
            KeyCode::Down | KeyCode::Char('j') => {
                self.selected = (self.selected + 1).min(self.pending.len().saturating_sub(1));
            }
            KeyCode::Char('r') => {
                self.refresh = true;
                self.status = "refreshing…".into();
            }
            KeyCode::Char('a') => {
                if let Some(t) = self.target() {
                    self.decided(decider.approve(&t.slug, &t.id, Grant::Session));
                }
            }
            KeyCode::Char('t') => {
                if let Some(target) = self.target() {
                    self.mode = Mode::ForHowLong {
                        target,
                        input: String::new(),
                    };
                }
            }
            KeyCode::Char('d') => {
                if let Some(target) = self.target() {
                    self.mode = Mode::DenyReason {
                        target,
                        input: String::new(),
                    };
                }
            }
            _ => {}
        }
    }

    /// Edit a prompt's `input`; `Some(answer)` on Enter, `None` otherwise (the mode is put
    /// back by `reopen` unless Esc cancelled it).
    fn prompt_key(
        &mut self,
        key: KeyEvent,
        mut input: String,
        reopen: impl Fn(String) -> Mode,
    ) -> Option<String> {
        match key.code {
            KeyCode::Enter => return Some(input),
            KeyCode::Esc => {
                self.status = "cancelled".into();
                return None;
            }
            KeyCode::Backspace => {
                input.pop();
            }
            KeyCode::Char(c) if !c.is_control() && input.chars().count() < MAX_INPUT_CHARS => {
                input.push(c);
            }
            _ => {}
        }
        self.mode = reopen(input);
        None
    }

    /// The selected request as a prompt target, or a note that there is none.
    fn target(&mut self) -> Option<Target> {
        match self.selected_request() {
            Some(p) => Some(Target {
                slug: p.slug.clone(),
                id: p.id.clone(),
            }),
            None => {
                self.status = "no pending request to decide".into();
                None
            }
        }
    }

    fn decided(&mut self, result: crate::error::Result<String>) {
        self.status = match result {
            Ok(confirmation) => inert(first_line(&confirmation)),
            Err(e) => format!("error: {}", inert(first_line(&e.to_string()))),
        };
        self.refresh = true;
    }

    /// The prompt text while prompting (what the status line shows instead of the status).
    pub fn prompt(&self) -> Option<String> {
        match &self.mode {
            Mode::Browse => None,
            Mode::ForHowLong { target, input } => Some(format!(
                "Approve {} for how long? [{DEFAULT_GRANT}]: {}",
                inert(&target.id),
                inert(input)
            )),
            Mode::DenyReason { target, input } => Some(format!(
                "Deny {}, reason (optional): {}",
                inert(&target.id),
                inert(input)
            )),
        }
    }
}

fn first_line(s: &str) -> &str {
    s.lines().next().unwrap_or("")
}
