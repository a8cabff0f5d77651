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

#[derive(Default, Clone)]
struct Row {
    attacks: usize,
    contained: usize,
    benign: usize,
    false_positives: usize,
}

impl Row {
    fn add(&mut self, o: &Row) {
        self.attacks += o.attacks;
        self.contained += o.contained;
        self.benign += o.benign;
        self.false_positives += o.false_positives;
    }
    /// `contained/attacks`, or a dash when the profile ran no attack of the class.
    fn containment(&self) -> String {
        if self.attacks == 0 {
            "–".into()
        } else {
            format!("{}/{}", self.contained, self.attacks)
        }
    }
}

const PROFILES: [&str; 2] = ["default", "strict"];

/// The Markdown report: one row per class (containment and false positives under each
/// profile), then every miss with its reason and every false positive.
pub fn render(
    results: &[Run],
    known: &HashMap<String, String>,
    known_fps: &HashMap<String, String>,
    elapsed: Duration,
) -> String {
    let mut rows: BTreeMap<String, [Row; 2]> = BTreeMap::new();
    let mut cases: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    let mut seen = std::collections::HashSet::new();
    for run in results {
        let Some(p) = PROFILES.iter().position(|p| *p == run.profile) else {
            continue;
        };
        let r = &mut rows.entry(run.case.class.clone()).or_default()[p];
        if seen.insert(run.case.id.clone()) {
            let n = cases.entry(run.case.class.clone()).or_default();
            if run.case.attack() {
                n.0 += 1;
            } else {
                n.1 += 1;
            }
        }
        if run.case.attack() {
            r.attacks += 1;
        } else {
            r.benign += 1;
        }
        match run.outcome {
            Outcome::Contained(_) => r.contained += 1,
            Outcome::FalsePositive(_) => r.false_positives += 1,
            Outcome::Missed(_) | Outcome::Passed(_) => {}
        }
    }
    let (attacks, benign) = cases.values().fold((0, 0), |(a, b), (x, y)| (a + x, b + y));
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{} cases ({attacks} attack, {benign} benign), {} runs in {:.1} s\n",
        attacks + benign,
        results.len(),
        elapsed.as_secs_f64()
    );
    let _ = writeln!(
        s,
        "| class | attack cases | contained (default) | contained (strict) | benign cases | false positives (default) | false positives (strict) |"
    );
    let _ = writeln!(s, "|---|---|---|---|---|---|---|");
    let mut totals = [Row::default(), Row::default()];
    for (class, [d, st]) in &rows {
        let (a, b) = cases.get(class).copied().unwrap_or_default();
        let _ = writeln!(
            s,
            "| {class} | {a} | {} | {} | {b} | {} | {} |",
            d.containment(),
            st.containment(),
            d.false_positives,
            st.false_positives
        );
        totals[0].add(d);
        totals[1].add(st);
    }
    let _ = writeln!(
        s,
        "| **all** | {attacks} | {} | {} | {benign} | {} | {} |",
        totals[0].containment(),
        totals[1].containment(),
        totals[0].false_positives,
        totals[1].false_positives
    );
    let mut missed: BTreeMap<&str, (&Run, Vec<&str>)> = BTreeMap::new();
    for run in results {
        if let Outcome::Missed(_) = run.outcome {
            missed
                .entry(run.case.id.as_str())
                .or_insert((run, Vec::new()))
                .1
                .push(run.profile.as_str());
        }
    }
    let _ = writeln!(s, "\nMissed attacks ({}):\n", missed.len());
    for (id, (run, profiles)) in &missed {
        let why = match (known.get(*id), &run.outcome) {
            (Some(k), _) => k.clone(),
            (None, Outcome::Missed(d)) => format!("NOT IN known_misses ({d})"),
            (None, _) => String::new(),
        };
        let _ = writeln!(
            s,
            "- `{id}` ({}, {}; {}): {why}",
            run.case.class,
            run.case.transport,
            profiles.join(" + ")
        );
    }
    let _ = writeln!(s, "\nFalse positives:\n");
    for run in results {
        let c = &run.case;
        if let Outcome::FalsePositive(d) = &run.outcome {
            let d = known_fps
                .get(&c.id)
                .map_or_else(|| d.clone(), |why| format!("known: {why}"));
            let _ = writeln!(
                s,
                "- `{}` ({}, {}; {}): {d}",
                c.id, c.class, run.profile, c.why
            );
        }
    }
    let stale: Vec<&String> = known
        .keys()
        .filter(|id| !missed.contains_key(id.as_str()))
        .collect();
    let fp_ids: std::collections::HashSet<&str> = results
        .iter()
        .filter(|r| matches!(r.outcome, Outcome::FalsePositive(_)))
        .map(|r| r.case.id.as_str())
        .collect();
    let fixed: Vec<&String> = known_fps
        .keys()
        .filter(|id| !fp_ids.contains(id.as_str()))
        .collect();
    if !fixed.is_empty() {
        let _ = writeln!(
            s,
            "\nPassing now, still in known_false_positives (move them off): {fixed:?}"
        );
    }
    if !stale.is_empty() {
        let _ = writeln!(
            s,
            "\nContained in every profile, still in known_misses (move them off): {stale:?}"
        );
    }
    s
}
