//! The per-class containment table and the `known_misses` file (`id  reason`, one a line,
//! `#` comments): a miss listed there is reported, any other miss fails the test.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write;
use std::path::Path;
use std::time::Duration;

use crate::cases::Case;
use crate::drive::Outcome;

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

pub fn render(
    results: &[(Case, Outcome)],
    known: &HashMap<String, String>,
    elapsed: Duration,
) -> String {
    let mut rows: BTreeMap<(String, String), Row> = BTreeMap::new();
    for (c, o) in results {
        let r = rows
            .entry((c.class.clone(), c.profile.clone()))
            .or_default();
        if c.attack() {
            r.attacks += 1;
        } else {
            r.benign += 1;
        }
        match o {
            Outcome::Contained(_) => r.contained += 1,
            Outcome::Missed(_) => r.missed += 1,
            Outcome::FalsePositive(_) => r.false_positives += 1,
            Outcome::Passed(_) => {}
        }
    }
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{} cases ({} attack, {} benign), run in {:.1} s\n",
        results.len(),
        results.iter().filter(|(c, _)| c.attack()).count(),
        results.iter().filter(|(c, _)| !c.attack()).count(),
        elapsed.as_secs_f64()
    );
    let _ = writeln!(
        s,
        "| class | profile | attacks | contained | missed | benign | false positives |"
    );
    let _ = writeln!(s, "|---|---|---|---|---|---|---|");
    let mut total = Row::default();
    for ((class, profile), r) in &rows {
        let _ = writeln!(
            s,
            "| {class} | {profile} | {} | {} | {} | {} | {} |",
            r.attacks, r.contained, r.missed, r.benign, r.false_positives
        );
        total.attacks += r.attacks;
        total.contained += r.contained;
        total.missed += r.missed;
        total.benign += r.benign;
        total.false_positives += r.false_positives;
    }
    let _ = writeln!(
        s,
        "| **all** | | {} | {} | {} | {} | {} |",
        total.attacks, total.contained, total.missed, total.benign, total.false_positives
    );
    let _ = writeln!(s, "\nMissed attacks:\n");
    for (c, o) in results {
        if let Outcome::Missed(d) = o {
            let why = known
                .get(&c.id)
                .map_or_else(|| format!("NOT IN known_misses ({d})"), Clone::clone);
            let _ = writeln!(s, "- `{}` ({}, {}): {why}", c.id, c.class, c.transport);
        }
    }
    let _ = writeln!(s, "\nFalse positives:\n");
    for (c, o) in results {
        if let Outcome::FalsePositive(d) = o {
            let _ = writeln!(
                s,
                "- `{}` ({}, {}, {}): {d}",
                c.id, c.class, c.profile, c.why
            );
        }
    }
    let stale: Vec<&String> = known
        .keys()
        .filter(|id| {
            results
                .iter()
                .any(|(c, o)| &&c.id == id && !matches!(o, Outcome::Missed(_)))
        })
        .collect();
    if !stale.is_empty() {
        let _ = writeln!(
            s,
            "\nNow contained, still in known_misses (move them off): {stale:?}"
        );
    }
    s
}
