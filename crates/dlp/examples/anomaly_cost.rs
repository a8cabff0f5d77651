//! What the anomaly heuristics cost per call, strict on vs off, as pipelock
//! runs them: `scan_url` and `scan_host` of the detector alone, plus the
//! default-profile exfiltration shapes, plus the strict checks; and request
//! bodies streamed with and without the body watch. Best of many rounds (the
//! machine is shared, so the best round is the stable figure).
//! Run: cargo run -p bottle-dlp --profile bench --example anomaly_cost
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../tests/support/corpus.rs"]
mod corpus;

use bottle_dlp::anomaly::{self, BodyWatch, BudgetLimits, DigestBudget, SubdomainTracker};
use bottle_dlp::Detector;
use std::hint::black_box;
use std::time::Instant;

const HOSTS: &[&str] = &[
    "registry.npmjs.org:443",
    "files.pythonhosted.org:443",
    "static.crates.io:443",
    "objects.githubusercontent.com:443",
    "production.cloudflare.docker.com:443",
    "my-app-git-feature-x-team.vercel.app:443",
    "d111111abcdef8.cloudfront.net:443",
    "my-company-production-assets-2023.s3.us-east-1.amazonaws.com:443",
    "api.github.com:443",
    "o4504123456789012.ingest.us.sentry.io:443",
];

fn per_call(rounds: usize, items: usize, mut f: impl FnMut()) -> f64 {
    let mut best = f64::MAX;
    for _ in 0..rounds {
        let t = Instant::now();
        f();
        best = best.min(t.elapsed().as_secs_f64());
    }
    best / items as f64 * 1e9
}

fn stream(det: &Detector, body: &[u8], watch: Option<bool>) {
    let mut s = det.stream();
    let mut w = watch.map(BodyWatch::new);
    for c in body.chunks(16 * 1024) {
        if let Some(w) = w.as_mut() {
            black_box(w.push(c));
        }
        black_box(s.push(bytes::Bytes::copy_from_slice(c)).ok());
    }
    if let Some(w) = w.as_mut() {
        black_box(w.finish());
    }
    black_box(s.finish().ok());
}

fn main() {
    let det = Detector::builtin();
    let urls = corpus::urls();
    let n = urls.len();
    let base = per_call(50, n, || {
        for u in &urls {
            black_box(det.scan_url(black_box(u)));
        }
    });
    let default = per_call(50, n, || {
        for u in &urls {
            black_box(det.scan_url(black_box(u)));
            black_box(anomaly::scan_url(black_box(u), false));
        }
    });
    let strict = per_call(50, n, || {
        for u in &urls {
            black_box(det.scan_url(black_box(u)));
            black_box(anomaly::scan_url(black_box(u), true));
        }
    });
    println!(
        "scan_url ({n} corpus URLs): detector {base:.0} ns/call; + exfil shapes (default) {default:.0} ns; + strict {strict:.0} ns"
    );
    // The per-parent digest budget (strict, once per request that passed): a fresh
    // budget each round, so every value is new; then the same URLs again (familiar).
    let unlimited = BudgetLimits {
        max_bytes: usize::MAX,
        max_id_bytes: usize::MAX,
        ..BudgetLimits::default()
    };
    let fresh = per_call(50, n, || {
        let mut budget = DigestBudget::new(unlimited);
        for u in &urls {
            black_box(budget.observe_url("registry.example", black_box(u), Instant::now()));
        }
    });
    let mut warm = DigestBudget::new(unlimited);
    let familiar = per_call(50, n, || {
        for u in &urls {
            black_box(warm.observe_url("registry.example", black_box(u), Instant::now()));
        }
    });
    println!(
        "digest budget ({n} corpus URLs, one parent): new values {fresh:.0} ns/call; familiar {familiar:.0} ns"
    );

    let mut tracker = SubdomainTracker::default();
    let m = HOSTS.len();
    let base = per_call(2000, m, || {
        for h in HOSTS {
            black_box(det.scan_host(black_box(h)));
        }
    });
    let strict = per_call(2000, m, || {
        for h in HOSTS {
            black_box(det.scan_host(black_box(h)));
            black_box(anomaly::scan_host(black_box(h)));
            black_box(tracker.observe(h, Instant::now()));
        }
    });
    println!(
        "scan_host ({m} hosts): detector {base:.0} ns/call; + strict (shape, volume, burst tracker) {strict:.0} ns"
    );

    let mut bodies: Vec<(String, Vec<u8>)> = corpus::llm_requests();
    bodies.extend(
        corpus::files()
            .into_iter()
            .filter(|(n, _)| n.ends_with(".json") || n.ends_with(".md")),
    );
    bodies.push(("clean-body-1MiB".into(), corpus::clean_body(1 << 20)));
    let total: usize = bodies.iter().map(|(_, b)| b.len()).sum();
    let mib = total as f64 / (1024.0 * 1024.0);
    // Interleaved: each round runs every configuration once.
    let configs = [
        ("stream scan alone", None),
        ("+ body watch, default", Some(false)),
        ("+ body watch, strict", Some(true)),
    ];
    let mut best = [f64::MAX; 3];
    for _ in 0..20 {
        for (k, (_, watch)) in configs.iter().enumerate() {
            let t = Instant::now();
            for (_, b) in &bodies {
                stream(det, b, *watch);
            }
            best[k] = best[k].min(t.elapsed().as_secs_f64());
        }
    }
    for (k, (label, _)) in configs.iter().enumerate() {
        println!(
            "bodies ({} items, {mib:.2} MiB): {label}: {:.1} MiB/s ({:+.1}% time)",
            bodies.len(),
            mib / best[k],
            (best[k] / best[0] - 1.0) * 100.0
        );
    }
    let mut best_w = [f64::MAX; 2];
    for (k, strict) in [false, true].into_iter().enumerate() {
        for _ in 0..15 {
            let t = Instant::now();
            for (_, b) in &bodies {
                let mut w = BodyWatch::new(strict);
                for c in b.chunks(16 * 1024) {
                    black_box(w.push(c));
                }
                black_box(w.finish());
            }
            best_w[k] = best_w[k].min(t.elapsed().as_secs_f64());
        }
    }
    println!(
        "body watch alone: default {:.1} MiB/s, strict {:.1} MiB/s",
        mib / best_w[0],
        mib / best_w[1]
    );
}
