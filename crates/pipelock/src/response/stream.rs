//! A response body judged as it streams. In block mode only judged bytes are released, and a
//! finding ends the body with an error (the agent gets a truncated transfer, never the
//! instruction); otherwise bytes pass at once and are judged on the side.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bottle_core::routes::ScanAction;
use bottle_core::{BoxBody, BoxError};
use bottle_dlp::injection::{ContentKind, InjectionStream};
use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};

use super::judge::{Hit, Judge};
use super::sse::{Pushed, SseJudge};
use super::InjectionSlot;

/// How a stream is judged.
pub enum Scanner {
    /// Any textual body, with the detector's bounded hold-back.
    Plain {
        stream: Box<InjectionStream>,
        action: ScanAction,
    },
    /// Server-sent events, event by event.
    Sse(SseJudge),
    /// A binary body: its printable runs, judged as text.
    Binary {
        judge: Box<super::binary::BinaryJudge>,
        action: ScanAction,
    },
    /// Not judged (binary content, or the action is off).
    Pass,
}

impl Scanner {
    pub fn plain(kind: ContentKind, action: ScanAction) -> Scanner {
        if action == ScanAction::Off {
            return Scanner::Pass;
        }
        Scanner::Plain {
            stream: Box::new(InjectionStream::new(kind)),
            action,
        }
    }

    pub fn binary(action: ScanAction) -> Scanner {
        if action == ScanAction::Off {
            return Scanner::Pass;
        }
        Scanner::Binary {
            judge: Box::default(),
            action,
        }
    }

    pub fn sse(judge: Arc<Judge>) -> Scanner {
        Scanner::Sse(SseJudge::new(judge))
    }

    /// Whether bytes must be held until judged (some finding would block).
    pub fn holds(&self) -> bool {
        match self {
            Scanner::Plain { action, .. } | Scanner::Binary { action, .. } => {
                *action == ScanAction::Block
            }
            Scanner::Sse(j) => j.blocks(),
            Scanner::Pass => false,
        }
    }

    pub fn push(&mut self, chunk: &[u8]) -> Pushed {
        match self {
            Scanner::Plain { stream, action } => match stream.push(chunk) {
                Ok(release) => Pushed {
                    release,
                    ..Pushed::default()
                },
                Err(f) => found(f.detector, *action),
            },
            Scanner::Sse(j) => j.push(chunk),
            Scanner::Binary { judge, action } => judge.push(chunk, *action),
            Scanner::Pass => Pushed {
                release: chunk.to_vec(),
                ..Pushed::default()
            },
        }
    }

    pub fn finish(&mut self) -> Pushed {
        match self {
            Scanner::Plain { stream, action } => match stream.finish() {
                Ok(release) => Pushed {
                    release,
                    ..Pushed::default()
                },
                Err(f) => found(f.detector, *action),
            },
            Scanner::Sse(j) => j.finish(),
            Scanner::Binary { judge, action } => judge.finish(*action),
            Scanner::Pass => Pushed::default(),
        }
    }
}

pub(super) fn found(detector: &'static str, action: ScanAction) -> Pushed {
    let hit = Hit {
        detector,
        place: "body",
        action,
    };
    if action == ScanAction::Block {
        Pushed {
            blocked: Some(hit),
            ..Pushed::default()
        }
    } else {
        Pushed {
            warned: vec![hit],
            ..Pushed::default()
        }
    }
}

/// The error a cut body ends with (hyper then aborts the transfer).
#[derive(Debug, thiserror::Error)]
#[error("response withheld by pipelock: prompt injection in {place} ({detector})")]
pub struct ResponseWithheld {
    pub detector: &'static str,
    pub place: &'static str,
}

/// The response body towards the agent, judged as it streams.
pub struct ScanStream {
    inner: BoxBody,
    scanner: Scanner,
    hold: bool,
    /// Judged on the side (not holding): stops at the first finding.
    side_done: bool,
    slot: InjectionSlot,
    /// Bytes read before streaming began (judged first).
    prefix: Option<Bytes>,
    queue: VecDeque<Frame<Bytes>>,
    ended: bool,
    /// A cut, delivered once the sleep ends: the server first flushes what was released
    /// (else a cut right after clean bytes could drop them, and the response head, unsent).
    cut: Option<(Pin<Box<tokio::time::Sleep>>, BoxError)>,
}

/// How long a cut waits for released bytes to be flushed.
const CUT_FLUSH: std::time::Duration = std::time::Duration::from_millis(20);

impl ScanStream {
    pub fn new(inner: BoxBody, scanner: Scanner, slot: InjectionSlot, prefix: Bytes) -> Self {
        let hold = scanner.holds();
        ScanStream {
            inner,
            scanner,
            hold,
            side_done: false,
            slot,
            prefix: (!prefix.is_empty()).then_some(prefix),
            queue: VecDeque::new(),
            ended: false,
            cut: None,
        }
    }

    /// A stream whose first bytes were judged already (`released` goes out first).
    pub fn after(inner: BoxBody, scanner: Scanner, slot: InjectionSlot, released: Bytes) -> Self {
        let mut s = ScanStream::new(inner, scanner, slot, Bytes::new());
        if !released.is_empty() {
            s.queue.push_back(Frame::data(released));
        }
        s
    }

    /// Applies what a push found; Err when the body must end now.
    fn apply(&mut self, p: Pushed) -> Result<(), BoxError> {
        for h in &p.warned {
            self.slot.record(h);
        }
        if !p.warned.is_empty() && !self.hold {
            self.side_done = true;
        }
        if self.hold && !p.release.is_empty() {
            self.queue.push_back(Frame::data(Bytes::from(p.release)));
        }
        if let Some(hit) = p.blocked {
            self.slot.cut(&hit);
            // What was judged clean before the finding still goes out, then the cut.
            self.ended = true;
            return Err(Box::new(ResponseWithheld {
                detector: hit.detector,
                place: hit.place,
            }));
        }
        Ok(())
    }

    fn data(&mut self, chunk: Bytes) -> Result<(), BoxError> {
        if self.hold {
            let p = self.scanner.push(&chunk);
            return self.apply(p);
        }
        if !self.side_done {
            let p = self.scanner.push(&chunk);
            self.apply(p.on_the_side())?;
        }
        self.queue.push_back(Frame::data(chunk));
        Ok(())
    }

    fn end(&mut self) -> Result<(), BoxError> {
        if self.hold {
            let p = self.scanner.finish();
            return self.apply(p);
        }
        if !self.side_done {
            let p = self.scanner.finish();
            self.apply(p.on_the_side())?;
        }
        Ok(())
    }
}

impl Body for ScanStream {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        loop {
            if let Some(f) = this.queue.pop_front() {
                return Poll::Ready(Some(Ok(f)));
            }
            if let Some((sleep, _)) = &mut this.cut {
                if sleep.as_mut().poll(cx).is_pending() {
                    return Poll::Pending;
                }
                if let Some((_, e)) = this.cut.take() {
                    return Poll::Ready(Some(Err(e)));
                }
            }
            if this.ended {
                return Poll::Ready(None);
            }
            let step = if let Some(prefix) = this.prefix.take() {
                this.data(prefix)
            } else {
                match Pin::new(&mut this.inner).poll_frame(cx) {
                    Poll::Pending => return Poll::Pending,
                    Poll::Ready(Some(Ok(frame))) => match frame.into_data() {
                        Ok(chunk) => this.data(chunk),
                        Err(trailers) => {
                            let r = this.end();
                            if r.is_ok() {
                                this.queue.push_back(trailers);
                                this.ended = true;
                            }
                            r
                        }
                    },
                    Poll::Ready(Some(Err(e))) => {
                        this.ended = true;
                        return Poll::Ready(Some(Err(e)));
                    }
                    Poll::Ready(None) => {
                        let r = this.end();
                        this.ended = true;
                        r
                    }
                }
            };
            if let Err(e) = step {
                this.cut = Some((Box::pin(tokio::time::sleep(CUT_FLUSH)), e));
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.ended && self.queue.is_empty() && self.cut.is_none()
    }

    fn size_hint(&self) -> SizeHint {
        if self.hold || self.prefix.is_some() {
            // Bytes are regrouped (and may be cut), or some were read already.
            SizeHint::default()
        } else {
            self.inner.size_hint()
        }
    }
}
