//! The escape suite (issue 12): a real bottle A (with a workspace and git-gate) and a second
//! bottle B at the same time; every attempt runs from A's agent (a few from B's, or from the
//! host for manifest tampering). One line per attempt, then `escape: N passed, N failed`.
//! See tests/escape/README.md.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is a failure

use std::time::Instant;

use bottle_e2e::{docker_or_skip, require_images};
use bottle_escape::{attempts, report_line, summary_line, World};

#[test]
fn escape_suite() {
    if !docker_or_skip("escape_suite") {
        return;
    }
    let t0 = Instant::now();
    require_images();
    let w = World::start();
    eprintln!(
        "escape: bottles {} and {} up in {:?}; origin {} on {}; host addresses {:?}",
        w.a.slug,
        w.b.slug,
        t0.elapsed(),
        w.origin.ip,
        w.origin.network,
        w.host_addrs
    );
    let only = std::env::var("ESCAPE_ONLY").ok();
    let table = attempts::all(&w);
    let mut names = std::collections::HashSet::new();
    for a in &table {
        assert!(
            names.insert(format!("{}/{}", a.category, a.name)),
            "duplicate attempt name {}/{}",
            a.category,
            a.name
        );
    }
    let (mut passed, mut failed) = (0usize, Vec::new());
    for a in &table {
        let full = format!("{}/{}", a.category, a.name);
        if only.as_deref().is_some_and(|f| !full.contains(f)) {
            continue;
        }
        let o = (a.run)(&w);
        let line = report_line(a, &o);
        eprintln!("{line}");
        if o.pass {
            passed += 1;
        } else {
            failed.push(line);
        }
    }
    eprintln!("escape: {} attempts in {:?}", table.len(), t0.elapsed());
    eprintln!("{}", summary_line(passed, failed.len()));
    drop(w);
    assert!(
        only.is_some() || table.len() >= 50,
        "fewer than 50 attempts: {}",
        table.len()
    );
    assert!(
        failed.is_empty(),
        "escape attempts failed:\n{}",
        failed.join("\n")
    );
}
