//! The escape suite (issue 12): a real bottle A (with a workspace and git-gate) and a second
//! bottle B at the same time; every attempt runs from A's agent (a few from B's, or from the
//! host for manifest tampering). One line per attempt, then `escape: N passed, N failed`.
//! See tests/escape/README.md.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is a failure

use std::time::Instant;

use bottle_e2e::{docker_or_skip, require_images};
use bottle_escape::{attempts, report_line, summary_line, World};

/// Categories whose attempts do not disturb each other.
const PARALLEL: &[&str] = &[
    "network",
    "dns",
    "sidecar",
    "docker",
    "metadata",
    "ipv6",
    "cross-bottle",
    "smuggling",
    "reflection",
    "outside",
];
const THREADS: usize = 4;

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
    // Stateless categories run on a few threads (most of their time is spent waiting for a
    // refused connection); git, workspace, manifest and the floods run alone, in order.
    let selected: Vec<usize> = (0..table.len())
        .filter(|&i| {
            let full = format!("{}/{}", table[i].category, table[i].name);
            only.as_deref().is_none_or(|f| full.contains(f))
        })
        .collect();
    let results: Vec<std::sync::Mutex<Option<bottle_escape::Outcome>>> =
        table.iter().map(|_| std::sync::Mutex::new(None)).collect();
    let (par, seq): (Vec<usize>, Vec<usize>) = selected
        .iter()
        .partition(|&&i| PARALLEL.contains(&table[i].category));
    let next = std::sync::atomic::AtomicUsize::new(0);
    std::thread::scope(|s| {
        for _ in 0..THREADS {
            s.spawn(|| loop {
                let k = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let Some(&i) = par.get(k) else { break };
                let o = (table[i].run)(&w);
                eprintln!(
                    "  ran {}/{} ({})",
                    table[i].category,
                    table[i].name,
                    if o.pass { "ok" } else { "FAIL" }
                );
                *results[i].lock().unwrap() = Some(o);
            });
        }
    });
    for &i in &seq {
        let o = (table[i].run)(&w);
        eprintln!(
            "  ran {}/{} ({})",
            table[i].category,
            table[i].name,
            if o.pass { "ok" } else { "FAIL" }
        );
        *results[i].lock().unwrap() = Some(o);
    }
    // Teardown as the operator does it, then the proofs that need it.
    for r in w.stop_bottles() {
        if r.code != 0 {
            eprintln!("bottle stop failed: {}", r.all());
        }
    }
    for &i in &selected {
        let Some(check) = &table[i].after_teardown else {
            continue;
        };
        let o2 = check(&w);
        let mut slot = results[i].lock().unwrap();
        if let Some(o) = slot.as_mut() {
            o.pass = o.pass && o2.pass;
            o.seen = bottle_escape::short(&format!("{}; after teardown: {}", o.seen, o2.seen));
        }
    }
    // A planted command that ran on the host left a marker; later checks' `git status`
    // may have re-created earlier ones.
    if let Ok(rd) = std::fs::read_dir("/tmp") {
        for e in rd.flatten() {
            if e.file_name().to_string_lossy().starts_with("escape-pwned-") {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }
    // The report, in table order.
    let (mut passed, mut failed) = (0usize, Vec::new());
    eprintln!("---- escape report");
    for (i, a) in table.iter().enumerate() {
        let Some(o) = results[i].lock().unwrap().take() else {
            continue;
        };
        let line = report_line(a, &o);
        println!("{line}");
        if o.pass {
            passed += 1;
        } else {
            failed.push(line);
        }
    }
    eprintln!("escape: {} attempts in {:?}", table.len(), t0.elapsed());
    println!("{}", summary_line(passed, failed.len()));
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
