//! The per-class containment table and the `known_misses` file (`id  reason`, one a line,
//! `#` comments): a miss listed there is reported, any other miss fails the test.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write;
use std::path::Path;
use std::time::Duration;

use crate::cases::Case;
use crate::drive::Outcome;

/// One case run under one profile.
pub struct Run {
    pub case: Case,
    pub profile: String,
    pub outcome: Outcome,
}

pub fn known_misses(path: &Path) -> Result<HashMap<String, String>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut out = HashMap::new();
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (id, reason) = line.split_once(char::is_whitespace).unwrap_or((line, ""));
        if reason.trim().is_empty() {
            return Err(format!("known_misses: {id} has no reason"));
        }
        out.insert(id.to_string(), reason.trim().to_string());
    }
    Ok(out)
}

#[derive(Default)]
struct Row {
    attacks: usize,
    contained: usize,
    missed: usize,
    benign: usize,
    false_positives: usize,
}

impl Row {
    fn add(&mut self, o: &Row) {
        self.attacks += o.attacks;
        self.contained += o.contained;
        self.missed += o.missed;
        self.benign += o.benign;
        self.false_positives += o.false_positives;
    }
}

pub fn render(results: &[Run], known: &HashMap<String, String>, elapsed: Duration) -> String {
    let mut rows: BTreeMap<(String, String), Row> = BTreeMap::new();
    for run in results {
        let r = rows
            .entry((run.case.class.clone(), run.profile.clone()))
            .or_default();
        if run.case.attack() {
            r.attacks += 1;
        } else {
            r.benign += 1;
        }
        match run.outcome {
            Outcome::Contained(_) => r.contained += 1,
            Outcome::Missed(_) => r.missed += 1,
            Outcome::FalsePositive(_) => r.false_positives += 1,
            Outcome::Passed(_) => {}
        }
    }
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{} runs ({} attack, {} benign) in {:.1} s\n",
        results.len(),
        results.iter().filter(|r| r.case.attack()).count(),
        results.iter().filter(|r| !r.case.attack()).count(),
        elapsed.as_secs_f64()
    );
    let _ = writeln!(
        s,
        "| class | profile | attacks | contained | missed | benign | false positives |"
    );
    let _ = writeln!(s, "|---|---|---|---|---|---|---|");
    let mut totals: BTreeMap<String, Row> = BTreeMap::new();
    for ((class, profile), r) in &rows {
        let _ = writeln!(
            s,
            "| {class} | {profile} | {} | {} | {} | {} | {} |",
            r.attacks, r.contained, r.missed, r.benign, r.false_positives
        );
        totals.entry(profile.clone()).or_default().add(r);
    }
    for (profile, t) in &totals {
        let _ = writeln!(
            s,
            "| **all** | {profile} | {} | {} | {} | {} | {} |",
            t.attacks, t.contained, t.missed, t.benign, t.false_positives
        );
    }
    let _ = writeln!(s, "\nMissed attacks:\n");
    for run in results {
        let c = &run.case;
        if let Outcome::Missed(d) = &run.outcome {
            let why = known
                .get(&c.id)
                .map_or_else(|| format!("NOT IN known_misses ({d})"), Clone::clone);
            let _ = writeln!(
                s,
                "- `{}` ({}, {}, {}): {why}",
                c.id, c.class, c.transport, run.profile
            );
        }
    }
    let _ = writeln!(s, "\nFalse positives:\n");
    for run in results {
        let c = &run.case;
        if let Outcome::FalsePositive(d) = &run.outcome {
            let _ = writeln!(
                s,
                "- `{}` ({}, {}; {}): {d}",
                c.id, c.class, run.profile, c.why
            );
        }
    }
    let missed = |id: &String| {
        results
            .iter()
            .any(|r| &r.case.id == id && matches!(r.outcome, Outcome::Missed(_)))
    };
    let stale: Vec<&String> = known.keys().filter(|id| !missed(id)).collect();
    if !stale.is_empty() {
        let _ = writeln!(
            s,
            "\nContained in every profile, still in known_misses (move them off): {stale:?}"
        );
    }
    s
}
