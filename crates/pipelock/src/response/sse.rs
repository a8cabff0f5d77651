//! Server-sent events judged one event at a time: a complete event is judged and released
//! at once, a partial one is held (bounded).

use std::sync::Arc;

use bottle_core::routes::ScanAction;

use super::judge::{Hit, Judge, Window};

/// A partial event held longer than this ends the stream (block) or stops judging (warn).
pub const SSE_EVENT_MAX: usize = 1024 * 1024;

/// Detector id of an event too large to hold.
pub const EVENT_TOO_LARGE: &str = "sse-event-too-large";

/// Splits a byte stream into events (each ending with an empty line; `\n`, `\r\n`, `\r`).
#[derive(Default)]
pub struct Framer {
    buf: Vec<u8>,
    /// Next byte to look at.
    pos: usize,
    /// Start of the line `pos` is in.
    line_start: usize,
}

impl Framer {
    pub fn push(&mut self, chunk: &[u8]) {
        self.buf.extend_from_slice(chunk);
    }

    pub fn pending(&self) -> usize {
        self.buf.len()
    }

    /// The next complete event (with its terminating empty line), if one is buffered.
    pub fn next_event(&mut self) -> Option<Vec<u8>> {
        while self.pos < self.buf.len() {
            let at = self.pos;
            let len = match self.buf[at] {
                b'\n' => 1,
                b'\r' => match self.buf.get(at + 1) {
                    Some(b'\n') => 2,
                    Some(_) => 1,
                    // A CR at the end may be the first half of CRLF: wait for more.
                    None => return None,
                },
                _ => {
                    self.pos += 1;
                    continue;
                }
            };
            self.pos = at + len;
            if at == self.line_start {
                let event: Vec<u8> = self.buf.drain(..self.pos).collect();
                self.pos = 0;
                self.line_start = 0;
                return Some(event);
            }
            self.line_start = self.pos;
        }
        None
    }

    /// Whatever is left when the stream ends.
    pub fn take_rest(&mut self) -> Vec<u8> {
        self.pos = 0;
        self.line_start = 0;
        std::mem::take(&mut self.buf)
    }
}

/// The `data:` lines of an event, joined with `\n` (as a client would see the data).
pub fn event_data(event: &[u8]) -> String {
    let text = String::from_utf8_lossy(event);
    let mut data = String::new();
    for line in text.split(['\n', '\r']) {
        if let Some(rest) = line.strip_prefix("data") {
            let value = match rest.strip_prefix(':') {
                Some(v) => v.strip_prefix(' ').unwrap_or(v),
                None if rest.is_empty() => "",
                None => continue,
            };
            if !data.is_empty() {
                data.push('\n');
            }
            data.push_str(value);
        }
    }
    data
}

/// What one push released, and what was found.
#[derive(Default)]
pub struct Pushed {
    pub release: Vec<u8>,
    pub warned: Vec<Hit>,
    pub blocked: Option<Hit>,
}

impl Pushed {
    /// Every finding, warnings first (the order they are recorded in).
    pub fn findings(&self) -> impl Iterator<Item = &Hit> {
        self.warned.iter().chain(&self.blocked)
    }

    /// The findings of a body judged on the side (its bytes already gone): all are
    /// warnings, nothing is released or cut.
    pub fn on_the_side(self) -> Pushed {
        Pushed {
            release: Vec::new(),
            warned: self.warned.into_iter().chain(self.blocked).collect(),
            blocked: None,
        }
    }
}

/// Judges an event stream event by event.
pub struct SseJudge {
    framer: Framer,
    window: Window,
    judge: Arc<Judge>,
    /// Stopped judging (an event too large in warn mode).
    gave_up: bool,
}

impl SseJudge {
    pub fn new(judge: Arc<Judge>) -> SseJudge {
        SseJudge {
            framer: Framer::default(),
            window: Window::default(),
            judge,
            gave_up: false,
        }
    }

    pub fn push(&mut self, chunk: &[u8]) -> Pushed {
        let mut out = Pushed::default();
        if self.gave_up {
            out.release = chunk.to_vec();
            return out;
        }
        self.framer.push(chunk);
        while let Some(event) = self.framer.next_event() {
            if self.judge_event(&event, &mut out) {
                return out;
            }
        }
        if self.framer.pending() > SSE_EVENT_MAX {
            let action = self.strictest();
            let hit = Hit {
                detector: EVENT_TOO_LARGE,
                place: "sse event",
                action,
            };
            if action == ScanAction::Block {
                out.blocked = Some(hit);
            } else {
                out.warned.push(hit);
                self.gave_up = true;
                out.release.extend(self.framer.take_rest());
            }
        }
        out
    }

    /// The stream ended: an unterminated last event is judged too.
    pub fn finish(&mut self) -> Pushed {
        let mut out = Pushed::default();
        let rest = self.framer.take_rest();
        if !rest.is_empty() {
            self.judge_event(&rest, &mut out);
        }
        out
    }

    /// Judges one event into `out`; true when it is blocked (nothing more may pass).
    fn judge_event(&mut self, event: &[u8], out: &mut Pushed) -> bool {
        let data = event_data(event);
        let hits = self.judge.sse_event(event, &data, &mut self.window);
        if let Some(b) = hits.iter().find(|h| h.action == ScanAction::Block) {
            out.blocked = Some(b.clone());
            return true;
        }
        out.warned.extend(hits);
        out.release.extend_from_slice(event);
        false
    }

    /// Whether some finding would block (then events are held until judged).
    pub fn blocks(&self) -> bool {
        self.strictest() == ScanAction::Block
    }

    fn strictest(&self) -> ScanAction {
        if self.judge.responses == ScanAction::Block || self.judge.mcp == ScanAction::Block {
            ScanAction::Block
        } else {
            ScanAction::Warn
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_split_on_any_line_ending_and_partial_events_wait() {
        let mut f = Framer::default();
        f.push(b"data: a\n\ndata: b\r\n\r\ndata: c\r\rdata: d\r");
        assert_eq!(f.next_event().unwrap(), b"data: a\n\n");
        assert_eq!(f.next_event().unwrap(), b"data: b\r\n\r\n");
        assert_eq!(f.next_event().unwrap(), b"data: c\r\r");
        assert_eq!(f.next_event(), None);
        f.push(b"\n");
        assert_eq!(
            f.next_event(),
            None,
            "CRLF then nothing: the event is not over"
        );
        f.push(b"\r\n");
        assert_eq!(f.next_event().unwrap(), b"data: d\r\n\r\n");
    }

    #[test]
    fn data_lines_are_joined() {
        assert_eq!(
            event_data(b"event: x\ndata: one\ndata:two\nid: 3\n\n"),
            "one\ntwo"
        );
        assert_eq!(event_data(b"database: no\n\n"), "");
    }
}
