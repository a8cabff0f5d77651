//! `bottle allow`: add an allowlist entry to a running bottle, SIGHUP the sidecars and confirm
//! the reload through their status files (putting the file back if either refuses it).

use std::time::{Duration, Instant};

use bottle_core::status::Status;

use super::{pick_bottle, timeout_from_env};
use crate::docker::{self, Compose};
use crate::error::{Error, Result};
use crate::manifest;
use crate::state::{self, Sidecar, StateDir};
use crate::ui;

/// The sidecars that load the allowlist.
const ALLOWLIST_READERS: &[Sidecar] = &[Sidecar::Pipelock, Sidecar::Egress];

/// Signal the reloading sidecars and wait until each reports a new attempt.
/// Returns per component: Ok(generation) or Err(last_error / timeout).
pub fn reload_and_confirm(
    compose: &Compose,
    dir: &StateDir,
    components: &[Sidecar],
    timeout: Duration,
) -> Result<Vec<(String, std::result::Result<u64, String>)>> {
    signal_and_confirm(dir, components, timeout, || {
        send_sighup(compose, dir, components)
    })
}

/// `docker compose kill -s SIGHUP` to `components` of the bottle.
pub(crate) fn send_sighup(compose: &Compose, dir: &StateDir, components: &[Sidecar]) -> Result<()> {
    let mut kill = compose.cmd(&dir.project(), &dir.compose_file());
    kill.args(["kill", "-s", "SIGHUP"])
        .args(components.iter().map(|c| c.service()));
    let out = docker::output(kill)?;
    if !out.status.success() {
        return Err(Error::Docker(format!(
            "sending SIGHUP failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(())
}

/// Reads the status files, runs `signal` (which makes the sidecars reload), then waits until
/// each of `components` reports a new attempt (see [`reload_outcome`]) or `timeout` passes.
pub(crate) fn signal_and_confirm(
    dir: &StateDir,
    components: &[Sidecar],
    timeout: Duration,
    signal: impl FnOnce() -> Result<()>,
) -> Result<Vec<(String, std::result::Result<u64, String>)>> {
    let before: Vec<Option<Status>> = components.iter().map(|c| dir.read_status(*c)).collect();
    signal()?;
    let start = Instant::now();
    let mut results: Vec<Option<std::result::Result<u64, String>>> = vec![None; components.len()];
    loop {
        for (i, c) in components.iter().enumerate() {
            if results[i].is_none() {
                results[i] = reload_outcome(before[i].as_ref(), dir.read_status(*c).as_ref());
            }
        }
        if results.iter().all(Option::is_some) || start.elapsed() >= timeout {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok(components
        .iter()
        .zip(results)
        .map(|(c, r)| {
            (
                c.service().to_string(),
                r.unwrap_or_else(|| {
                    Err(format!("no reload reported within {}s", timeout.as_secs()))
                }),
            )
        })
        .collect())
}

/// Whether a sidecar answered the SIGHUP, judged from its status before and now: a higher
/// generation without error is a good reload; a changed status with an error is a refused
/// one; anything else (no file, no change, an old error) is no answer yet.
pub(crate) fn reload_outcome(
    before: Option<&Status>,
    now: Option<&Status>,
) -> Option<std::result::Result<u64, String>> {
    let now = now?;
    let advanced = before.is_none_or(|p| now.generation > p.generation);
    // The allowlist report alone changes when a grant lapses (the sidecar re-publishes
    // without a load attempt): not an answer to this SIGHUP.
    let attempt = |s: &Status| Status {
        allowlist: None,
        ..s.clone()
    };
    let attempted = before.is_none_or(|p| attempt(now) != attempt(p));
    match &now.last_error {
        None if advanced => Some(Ok(now.generation)),
        Some(e) if attempted => Some(Err(e.clone())),
        _ => None,
    }
}

/// `bottle allow HOST [--bottle SLUG] [--force]`.
pub fn allow(entry: &str, slug: Option<&str>, force: bool) -> Result<()> {
    let entry = entry.trim();
    // Judge the entry before looking for a bottle: a bad entry is a usage error either way.
    judge_entry(entry, force)?;
    let slug = pick_bottle(slug)?;
    let dir = StateDir::of(&slug)?;
    let applied = apply_entry(&dir, entry, None, force)?;
    if applied.already {
        ui::ok(&format!("{entry} is already in the allowlist of {slug}"));
    } else {
        ui::ok(&format!("{entry} allowed ({})", applied.generations()));
    }
    Ok(())
}

/// What [`apply_entry`] did.
#[derive(Debug)]
pub(crate) struct Applied {
    /// The entry was already allowed (no end, or an end no earlier than asked): nothing written.
    pub already: bool,
    /// Per sidecar, the generation that confirmed the new allowlist.
    pub confirmed: Vec<(String, u64)>,
    /// The allowlist before (to put back if the caller has to undo).
    pub previous: String,
}

impl Applied {
    /// `pipelock generation 3, egress generation 3`.
    pub fn generations(&self) -> String {
        let gens: Vec<String> = self
            .confirmed
            .iter()
            .map(|(c, g)| format!("{c} generation {g}"))
            .collect();
        gens.join(", ")
    }
}

/// The syntax and breadth rules every new allowlist entry meets (`bottle allow`, and
/// `bottle approve` for the agent's requests, which never passes `force`).
pub(crate) fn judge_entry(entry: &str, force: bool) -> Result<()> {
    manifest::validate_allow_entry(entry).map_err(Error::Usage)?;
    if let Some(why) = manifest::too_broad(entry) {
        if !force {
            return Err(Error::Usage(bottle_core::allow_entry::breadth_refusal(
                &why,
            )));
        }
        ui::warn(&format!("allowing {why} (--force)"));
    }
    Ok(())
}

/// Whether `text` already allows `entry` at least until `until` (`None`: with no end).
fn already_allowed(text: &str, entry: &str, until: Option<u64>) -> bool {
    let now = bottle_core::allowlist::now_unix();
    text.lines().any(|l| {
        let line = l.split('#').next().unwrap_or("").trim();
        match bottle_core::allowlist::split_line(line) {
            Ok((e, have)) if e == entry => match (have, until) {
                (None, _) => true,
                (Some(_), None) => false,
                (Some(h), Some(u)) => h >= u && h > now,
            },
            _ => false,
        }
    })
}

/// `text` without the time-limited lines already past their end (the sidecars ignore them
/// anyway; dropping them when the file is next written keeps it from growing). Every other
/// line is kept as written.
fn without_lapsed(text: &str, now: u64) -> String {
    let mut out = String::with_capacity(text.len());
    for raw in text.split_inclusive('\n') {
        let line = raw.split('#').next().unwrap_or("").trim();
        let lapsed = !line.is_empty()
            && bottle_core::allowlist::split_line(line)
                .is_ok_and(|(_, until)| until.is_some_and(|u| now >= u));
        if !lapsed {
            out.push_str(raw);
        }
    }
    out
}

/// Adds `entry` (ending at `until`, unix seconds, if given) to the bottle's allowlist the one
/// way: judged again here (whatever the caller checked), written, SIGHUP, confirmed through
/// the status files, and put back if a sidecar refuses it or does not answer.
pub(crate) fn apply_entry(
    dir: &StateDir,
    entry: &str,
    until: Option<u64>,
    force: bool,
) -> Result<Applied> {
    judge_entry(entry, force)?;
    let path = dir.allowlist();
    let old = std::fs::read_to_string(&path)
        .map_err(|e| Error::io(format!("reading {}", path.display()), e))?;
    if already_allowed(&old, entry, until) {
        return Ok(Applied {
            already: true,
            confirmed: Vec::new(),
            previous: old,
        });
    }
    let compose = Compose::detect()?;
    let mut new = without_lapsed(&old, bottle_core::allowlist::now_unix());
    if !new.is_empty() && !new.ends_with('\n') {
        new.push('\n');
    }
    match until {
        None => new.push_str(&format!("{entry}\n")),
        Some(u) => new.push_str(&format!(
            "{entry}  until={}\n",
            bottle_core::allowlist::format_utc(u)
        )),
    }
    bottle_core::Allowlist::parse(&new, &path)
        .map_err(|e| Error::Bottle(format!("new allowlist invalid: {e}")))?;
    state::replace_file(&path, new.as_bytes())?;
    ui::step(&format!("allowing {} in {}", ui::bold(entry), dir.slug()));
    let results = reload_and_confirm(
        &compose,
        dir,
        ALLOWLIST_READERS,
        timeout_from_env("BOTTLE_RELOAD_TIMEOUT", 20),
    )?;
    let failed: Vec<String> = results
        .iter()
        .filter_map(|(c, r)| r.as_ref().err().map(|e| format!("{c}: {e}")))
        .collect();
    if failed.is_empty() {
        let confirmed = results
            .into_iter()
            .filter_map(|(c, r)| r.ok().map(|g| (c, g)))
            .collect();
        Ok(Applied {
            already: false,
            confirmed,
            previous: old,
        })
    } else {
        // Put the file back so what is on disk is what runs; the sidecars kept the old config.
        restore(dir, &old);
        Err(Error::Bottle(format!(
            "reload failed, the old allowlist is still active: {}",
            failed.join("; ")
        )))
    }
}

/// `; pipelock and egress report it ending at ...` when every allowlist reader's status shows
/// an entry in force ending no later than `until`; otherwise a warning is printed and an
/// empty string returned (an older sidecar without the report still ignores the line at its
/// end: matching reads the clock).
pub(crate) fn confirm_expiry(dir: &StateDir, until: u64) -> String {
    let mut reported = Vec::new();
    for c in ALLOWLIST_READERS {
        let report = dir.read_status(*c).and_then(|s| s.allowlist);
        match report.and_then(|a| a.next_expiry_unix) {
            Some(next) if next <= until => reported.push(c.service()),
            _ => {
                ui::warn(&format!(
                    "{} does not report the grant's end in its status file",
                    c.service()
                ));
                return String::new();
            }
        }
    }
    format!(
        "; {} report it ending at {}",
        reported.join(" and "),
        bottle_core::allowlist::format_utc(until)
    )
}

/// Writes `previous` back as the allowlist and has the sidecars load it (best effort: used
/// when undoing, where the original error is the one to report).
pub(crate) fn restore(dir: &StateDir, previous: &str) {
    let _ = state::replace_file(&dir.allowlist(), previous.as_bytes());
    if let Ok(compose) = Compose::detect() {
        let _ = reload_and_confirm(&compose, dir, ALLOWLIST_READERS, Duration::from_secs(5));
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn status(generation: u64, attempted: &str, err: Option<&str>) -> Status {
        Status {
            component: "egress".into(),
            generation,
            config_sha256: format!("sha-{generation}"),
            loaded_at: Some("t0".into()),
            attempted_at: Some(attempted.into()),
            last_error: err.map(str::to_string),
            allowlist: None,
        }
    }

    /// `bottle allow` reports success only on a new generation; an old error, an unchanged
    /// file or a missing one is no answer (it keeps waiting, then fails closed on timeout).
    #[test]
    fn already_allowed_compares_entries_and_ends() {
        let far = 4_000_000_000;
        let text = "a.example  # note\nb.example until=2096-10-02T07:06:40Z\nc.example until=2000-01-01T00:00:00Z\n";
        assert!(already_allowed(text, "a.example", None));
        assert!(already_allowed(text, "a.example", Some(far)));
        assert!(!already_allowed(text, "b.example", None));
        assert!(already_allowed(text, "b.example", Some(far)));
        assert!(!already_allowed(text, "b.example", Some(far + 1)));
        // An expired grant allows nothing.
        assert!(!already_allowed(text, "c.example", Some(1)));
        assert!(!already_allowed(text, "example", None));
    }

    #[test]
    fn lapsed_lines_are_dropped_when_writing() {
        let text = "# header\na.example\nb.example until=1970-01-01T00:16:40Z # old grant\n\
                    c.example until=1970-01-01T00:33:20Z\nbroken line here\nd.example";
        assert_eq!(
            without_lapsed(text, 1000),
            "# header\na.example\nc.example until=1970-01-01T00:33:20Z\nbroken line here\nd.example"
        );
        assert_eq!(without_lapsed(text, 999), text);
        assert_eq!(without_lapsed("", 5), "");
    }

    #[test]
    fn reload_outcome_table() {
        let g1 = status(1, "t1", None);
        type Outcome = Option<std::result::Result<u64, String>>;
        let cases: [(Option<Status>, Option<Status>, Outcome); 7] = [
            (Some(g1.clone()), None, None),
            (Some(g1.clone()), Some(g1.clone()), None),
            (Some(g1.clone()), Some(status(2, "t2", None)), Some(Ok(2))),
            (
                Some(g1.clone()),
                Some(status(1, "t2", Some("allowlist:4: bad"))),
                Some(Err("allowlist:4: bad".into())),
            ),
            // The same failed attempt seen again is not a new answer.
            (
                Some(status(1, "t2", Some("old"))),
                Some(status(1, "t2", Some("old"))),
                None,
            ),
            // No file before: the first good status counts.
            (None, Some(g1.clone()), Some(Ok(1))),
            // A rewritten file with the same generation and no error is not a reload.
            (Some(g1), Some(status(1, "t9", None)), None),
        ];
        // A lapsed grant re-published next to an old error is not a new refusal.
        let old_error = status(1, "t2", Some("old"));
        let republished = Status {
            allowlist: Some(bottle_core::status::AllowlistStatus::default()),
            ..old_error.clone()
        };
        assert_eq!(reload_outcome(Some(&old_error), Some(&republished)), None);
        for (before, now, want) in cases {
            assert_eq!(
                reload_outcome(before.as_ref(), now.as_ref()),
                want,
                "{before:?} -> {now:?}"
            );
        }
    }
}
