//! `bottle log`: the sidecars' audit as readable lines, merged across sidecars in time order.
//!
//! Reading is bounded and tolerant (`bottle_core::audit_read`): unknown fields are ignored,
//! malformed lines skipped, and every agent-controlled string printed inert (`format::inert`).

mod format;
mod source;

use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use bottle_core::audit_read::{self, is_refusal, live_files, parse_shown};
use clap::Args;
use serde_json::{Map, Value};

use crate::error::{Error, Result};
use crate::state::StateDir;

pub(crate) use format::{field, host_port, inert, short_time};
use source::Source;

/// How often `-f` looks for new lines.
const FOLLOW_POLL: Duration = Duration::from_millis(500);

/// Arguments of `bottle log`.
#[derive(Args, Debug)]
pub struct LogArgs {
    /// The bottle's slug (optional when one bottle runs).
    pub slug: Option<String>,
    /// Only refusals (`decision` `deny`).
    #[arg(long)]
    pub blocked: bool,
    /// Keep printing new lines as the sidecars write them (follows rotation).
    #[arg(short = 'f', long)]
    pub follow: bool,
}

/// Runs `bottle log`.
pub fn run(args: &LogArgs) -> Result<i32> {
    let slug = super::pick_bottle(args.slug.as_deref())?;
    let dir = StateDir::of(&slug)?.audit_dir();
    if !dir.is_dir() {
        return Err(Error::Usage(format!(
            "bottle `{slug}` has no audit directory at {}",
            dir.display()
        )));
    }
    let view = View {
        blocked_only: args.blocked,
        colour: std::env::var_os("NO_COLOR").is_none() && std::io::stdout().is_terminal(),
    };
    let mut feed = Feed::open(&dir);
    let stdout = std::io::stdout();
    let res = (|| -> std::io::Result<()> {
        let mut out = std::io::BufWriter::new(stdout.lock());
        feed.write_history(&mut out, view)?;
        out.flush()?;
        if !args.follow {
            return Ok(());
        }
        loop {
            std::thread::sleep(FOLLOW_POLL);
            feed.write_new(&dir, &mut out, view)?;
            out.flush()?;
        }
    })();
    match res {
        Ok(()) => Ok(0),
        // `bottle log | head`: the reader has seen enough.
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(0),
        Err(e) => Err(Error::io("writing the audit lines", e)),
    }
}

/// The `ts` of a parsed line.
pub(crate) fn ts(m: &Map<String, Value>) -> &str {
    audit_read::ts_of(m)
}

/// Which lines are printed, and how.
#[derive(Debug, Clone, Copy)]
struct View {
    blocked_only: bool,
    colour: bool,
}

impl View {
    fn shows(&self, m: &Map<String, Value>) -> bool {
        !self.blocked_only || is_refusal(m)
    }
}

/// Every sidecar's audit in one directory, keyed by its live file.
struct Feed {
    sources: BTreeMap<PathBuf, Source>,
}

impl Feed {
    fn open(dir: &Path) -> Feed {
        let sources = live_files(dir)
            .into_iter()
            .map(|p| {
                let s = Source::new(&p);
                (p, s)
            })
            .collect();
        Feed { sources }
    }

    /// Everything already on disk, merged by time. Each sidecar's lines are in time order
    /// already, so a merge of the heads needs one parsed line per sidecar in memory.
    fn write_history(&mut self, out: &mut dyn Write, view: View) -> std::io::Result<()> {
        let mut sources: Vec<&mut Source> = self.sources.values_mut().collect();
        let mut heads: Vec<Option<Map<String, Value>>> =
            sources.iter_mut().map(|s| next_parsed(s)).collect();
        loop {
            let oldest = heads
                .iter()
                .enumerate()
                .filter_map(|(i, h)| h.as_ref().map(|m| (i, ts(m))))
                .min_by(|a, b| a.1.cmp(b.1))
                .map(|(i, _)| i);
            let Some(i) = oldest else {
                return Ok(());
            };
            let next = next_parsed(sources[i]);
            if let Some(m) = std::mem::replace(&mut heads[i], next) {
                if view.shows(&m) {
                    writeln!(out, "{}", format::format_line(&m, view.colour))?;
                }
            }
        }
    }

    /// Lines written since the last call (sidecar files that appeared since are read from
    /// their start), in time order.
    fn write_new(&mut self, dir: &Path, out: &mut dyn Write, view: View) -> std::io::Result<()> {
        for p in live_files(dir) {
            self.sources
                .entry(p.clone())
                .or_insert_with(|| Source::new(&p));
        }
        let mut batch: Vec<Map<String, Value>> = self
            .sources
            .values_mut()
            .flat_map(|s| s.poll())
            .filter_map(|l| parse_shown(&l))
            .filter(|m| view.shows(m))
            .collect();
        batch.sort_by(|a, b| ts(a).cmp(ts(b)));
        for m in &batch {
            writeln!(out, "{}", format::format_line(m, view.colour))?;
        }
        Ok(())
    }
}

/// The next well-formed line of `s`, skipping malformed ones.
fn next_parsed(s: &mut Source) -> Option<Map<String, Value>> {
    loop {
        let line = s.next_line()?;
        if let Some(m) = parse_shown(&line) {
            return Some(m);
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn line(ts: &str, component: &str, decision: &str, host: &str) -> String {
        format!(
            "{{\"ts\":\"{ts}\",\"component\":\"{component}\",\"decision\":\"{decision}\",\"host\":\"{host}\",\"method\":\"GET\",\"path\":\"/\",\"status\":200}}\n"
        )
    }

    fn text(feed: &mut Feed, blocked_only: bool) -> String {
        let mut out = Vec::new();
        let view = View {
            blocked_only,
            colour: false,
        };
        feed.write_history(&mut out, view).unwrap();
        String::from_utf8(out).unwrap()
    }

    fn hosts(s: &str) -> Vec<&str> {
        s.lines()
            .map(|l| l.split_whitespace().nth(5).unwrap_or(""))
            .collect()
    }

    #[test]
    fn history_merges_sidecars_and_rotated_files_in_time_order() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::write(
            d.join("egress.jsonl.1"),
            line("2026-01-01T00:00:01.000Z", "egress", "allow", "e1"),
        )
        .unwrap();
        std::fs::write(
            d.join("egress.jsonl"),
            line("2026-01-01T00:00:04.000Z", "egress", "deny", "e4"),
        )
        .unwrap();
        let pipelock = [
            line("2026-01-01T00:00:02.000Z", "pipelock", "deny", "p2"),
            "not json\n".to_string(),
            line("2026-01-01T00:00:03.000Z", "pipelock", "error", "p3"),
            line("2026-01-01T00:00:05.000Z", "pipelock", "allow", "p5"),
        ]
        .concat();
        std::fs::write(d.join("pipelock.jsonl"), pipelock).unwrap();
        std::fs::write(d.join("notes.txt"), line("2026", "x", "deny", "not-audit")).unwrap();

        let all = text(&mut Feed::open(d), false);
        assert_eq!(hosts(&all), ["e1", "p2", "p3", "e4", "p5"], "{all}");
        let blocked = text(&mut Feed::open(d), true);
        assert_eq!(hosts(&blocked), ["p2", "e4"], "{blocked}");
        assert!(blocked.lines().all(|l| l.contains(" deny ")), "{blocked}");
    }

    #[test]
    fn follow_prints_new_lines_from_old_and_new_sidecars_after_rotation() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let live = d.join("egress.jsonl");
        std::fs::write(&live, line("2026-01-01T00:00:01Z", "egress", "deny", "old")).unwrap();
        let mut feed = Feed::open(d);
        assert_eq!(hosts(&text(&mut feed, false)), ["old"]);
        let view = View {
            blocked_only: true,
            colour: false,
        };
        std::fs::rename(&live, d.join("egress.jsonl.1")).unwrap();
        std::fs::write(&live, line("2026-01-01T00:00:03Z", "egress", "deny", "e3")).unwrap();
        std::fs::write(
            d.join("git-gate.jsonl"),
            [
                line("2026-01-01T00:00:02Z", "git-gate", "deny", "g2"),
                line("2026-01-01T00:00:02Z", "git-gate", "allow", "g2-allowed"),
            ]
            .concat(),
        )
        .unwrap();
        let mut out = Vec::new();
        feed.write_new(d, &mut out, view).unwrap();
        assert_eq!(hosts(&String::from_utf8(out).unwrap()), ["g2", "e3"]);
        let mut out = Vec::new();
        feed.write_new(d, &mut out, view).unwrap();
        assert!(out.is_empty(), "nothing printed twice");
    }
}
