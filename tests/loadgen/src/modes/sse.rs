//! `--sse`: GET --url `--repeat` times, one connection each, reading the body frame by frame
//! as it streams. Measures the time from sending the request to the first complete event and
//! the gaps between consecutive complete events (an event is complete at the blank line that
//! ends it, and counts only if one of its lines is a `data` field, as an SSE client would
//! dispatch it).

use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Empty};
use serde::Serialize;

use crate::conn::{within, Dialer, Endpoint, LoadError};
use crate::stats::{ms, percentile_ms, r3, to_json, us_between, Outcome};
use crate::Args;

/// `--json` result.
#[derive(Serialize)]
struct Report {
    mode: &'static str,
    repeats: usize,
    /// Per repeat: request sent -> first complete event received.
    first_event_ms: Vec<f64>,
    first_event_p50_ms: f64,
    /// Every gap between consecutive events of a repeat, repeats in order.
    gap_ms: Vec<f64>,
    gap_p50_ms: f64,
    gap_max_ms: f64,
    /// Events counted over all repeats.
    events: usize,
}

/// Incremental SSE event boundary detector: feed it body chunks split anywhere; it counts the
/// events completed. Line ends are CRLF, LF or CR (a CRLF split between chunks is one end).
/// Only the first bytes of each line are kept: memory stays constant however long a line is.
#[derive(Debug, Default)]
pub struct SseSplitter {
    /// The previous chunk ended in CR: a leading LF in the next one is part of that line end.
    after_cr: bool,
    /// First bytes of the current line (enough to recognise `data` / `data:`).
    prefix: [u8; 5],
    line_len: usize,
    /// The current event has a `data` field.
    has_data: bool,
}

impl SseSplitter {
    /// Consumes `chunk`; returns how many events it completed.
    pub fn feed(&mut self, chunk: &[u8]) -> usize {
        let mut events = 0;
        for &b in chunk {
            if std::mem::take(&mut self.after_cr) && b == b'\n' {
                continue;
            }
            match b {
                b'\r' | b'\n' => {
                    self.after_cr = b == b'\r';
                    if self.end_line() {
                        events += 1;
                    }
                }
                _ => {
                    if self.line_len < self.prefix.len() {
                        self.prefix[self.line_len] = b;
                    }
                    self.line_len += 1;
                }
            }
        }
        events
    }

    /// Ends the current line; true if it was the blank line completing a data event.
    fn end_line(&mut self) -> bool {
        let len = std::mem::take(&mut self.line_len);
        if len == 0 {
            return std::mem::take(&mut self.has_data);
        }
        // The field name runs to the first colon (or the whole line): `data` or `data:...`.
        if (len == 4 && &self.prefix[..4] == b"data") || (len >= 5 && &self.prefix == b"data:") {
            self.has_data = true;
        }
        false
    }
}

/// Timings of one GET, in µs: time to the first event, then each gap.
struct Repeat {
    first_us: u64,
    gaps_us: Vec<u64>,
}

async fn one(
    dialer: &Dialer,
    ep: &Endpoint,
    max_events: usize,
    limit: Duration,
) -> Result<Repeat, LoadError> {
    let (mut send, conn) =
        within(limit, "connect", dialer.http1::<Empty<bytes::Bytes>>(ep)).await?;
    let req = ep.get(dialer.proxy.is_some())?;
    let sent = Instant::now();
    let result = async {
        let resp = within(limit, "response head", async {
            Ok(send.send_request(req).await?)
        })
        .await?;
        if resp.status() != http::StatusCode::OK {
            return Err(LoadError::Msg(format!("status {}", resp.status())));
        }
        let mut body = resp.into_body();
        let mut split = SseSplitter::default();
        let (mut first_us, mut gaps_us, mut last, mut n) = (None, Vec::new(), sent, 0usize);
        while n < max_events {
            let Some(frame) = within(limit, "next event", async { Ok(body.frame().await) }).await?
            else {
                break;
            };
            let Some(data) = frame?.into_data().ok() else {
                continue;
            };
            let now = Instant::now();
            for _ in 0..split.feed(&data).min(max_events - n) {
                match first_us {
                    None => first_us = Some(us_between(sent, now)),
                    Some(_) => gaps_us.push(us_between(last, now)),
                }
                last = now;
                n += 1;
            }
        }
        let first_us = first_us.ok_or_else(|| LoadError::Msg("no SSE event in the body".into()))?;
        Ok(Repeat { first_us, gaps_us })
    }
    .await;
    drop(send);
    conn.abort();
    result
}

pub async fn run(args: &Args) -> Result<Outcome, LoadError> {
    let ep = args.endpoint()?;
    let dialer = args.dialer()?;
    let repeats = args.repeat.max(1);
    let max_events = args.events.max(1);
    let (mut firsts, mut gaps) = (Vec::new(), Vec::new());
    for i in 0..repeats {
        let r = one(&dialer, &ep, max_events, args.step_timeout())
            .await
            .map_err(|e| LoadError::Msg(format!("repeat {}: {e}", i + 1)))?;
        firsts.push(r.first_us);
        gaps.extend(r.gaps_us);
    }
    let events = firsts.len() + gaps.len();
    let as_ms = |v: &[u64]| v.iter().map(|&us| ms(us)).collect::<Vec<f64>>();
    let (first_list, gap_list) = (as_ms(&firsts), as_ms(&gaps));
    firsts.sort_unstable();
    gaps.sort_unstable();
    let first_p50 = percentile_ms(&firsts, 0.5);
    let gap_p50 = percentile_ms(&gaps, 0.5);
    let gap_max = percentile_ms(&gaps, 1.0);
    let text = format!(
        "mode=sse repeats={repeats} events={events} first_event_p50_ms={first_p50:.2} gap_p50_ms={gap_p50:.2} gap_max_ms={gap_max:.2}"
    );
    let json = to_json(&Report {
        mode: "sse",
        repeats,
        first_event_ms: first_list,
        first_event_p50_ms: r3(first_p50),
        gap_ms: gap_list,
        gap_p50_ms: r3(gap_p50),
        gap_max_ms: r3(gap_max),
        events,
    });
    Ok(Outcome {
        json,
        text,
        failure: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `stream` cut at every pair of positions; the total must not depend on the cuts.
    fn count_all_splits(stream: &[u8]) -> usize {
        let mut whole = SseSplitter::default();
        let expected = whole.feed(stream);
        for a in 0..=stream.len() {
            for b in a..=stream.len() {
                let mut s = SseSplitter::default();
                let n = s.feed(&stream[..a]) + s.feed(&stream[a..b]) + s.feed(&stream[b..]);
                assert_eq!(n, expected, "cuts at {a},{b}");
            }
        }
        expected
    }

    #[test]
    fn events_with_every_line_ending() {
        assert_eq!(count_all_splits(b"data: a\n\ndata: b\n\n"), 2);
        assert_eq!(count_all_splits(b"data: a\r\n\r\ndata: b\r\n\r\n"), 2);
        assert_eq!(count_all_splits(b"data: a\r\rdata: b\r\r"), 2);
        assert_eq!(count_all_splits(b"data: a\r\n\ndata: b\n\r\n"), 2);
        // Multi-line event with other fields: one event.
        assert_eq!(
            count_all_splits(b"event: x\r\nid: 7\r\ndata: 1\r\ndata: 2\r\n\r\n"),
            1
        );
    }

    #[test]
    fn only_data_events_count() {
        // Comments, keep-alives and field-only blocks are not dispatched.
        assert_eq!(count_all_splits(b": ping\n\nevent: x\n\nretry: 5\n\n"), 0);
        // `data` without a colon is a data field (empty value); `database:` is not.
        assert_eq!(count_all_splits(b"data\n\n"), 1);
        assert_eq!(count_all_splits(b"database: x\n\ndat\n\n"), 0);
        // Repeated blank lines do not repeat the event.
        assert_eq!(count_all_splits(b"data: a\n\n\n\n\r\n"), 1);
    }

    #[test]
    fn incomplete_event_is_not_counted_until_its_blank_line() {
        let mut s = SseSplitter::default();
        assert_eq!(s.feed(b"data: event-0\n"), 0);
        assert_eq!(s.feed(b"\n"), 1);
        assert_eq!(s.feed(b"data: event-1\r\n\r"), 1); // a CR alone ends the blank line
        assert_eq!(s.feed(b"\n"), 0); // ... and this LF belongs to it
        assert_eq!(s.feed(b"data: event-2\n\ndata: event-3\n\ndata: 4"), 2);
        assert_eq!(s.feed(b"\n\n"), 1);
    }

    #[test]
    fn long_lines_stay_cheap() {
        let mut s = SseSplitter::default();
        let mut big = b"data: ".to_vec();
        big.extend(vec![b'x'; 100_000]);
        assert_eq!(s.feed(&big), 0);
        assert_eq!(s.feed(b"\n\n"), 1);
    }
}
