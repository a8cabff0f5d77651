//! What the data-class detectors (cards, IBANs, seed phrases) cost: the same
//! bodies scanned with them on and off, interleaved, best of many rounds (the
//! machine is shared, so the best round is the stable figure).
//! Run: cargo run -p bottle-dlp --profile bench --example classes_cost
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../tests/support/corpus.rs"]
mod corpus;

use bottle_dlp::{Detector, DetectorOptions};
use std::hint::black_box;
use std::time::Instant;

fn best(det: &Detector, body: &[u8], best: &mut f64) {
    let t = Instant::now();
    black_box(det.detect(black_box(body)));
    *best = best.min(t.elapsed().as_secs_f64());
}

fn main() {
    // CLASSES_ON=card,iban measures a subset (default: all three).
    let keep = std::env::var("CLASSES_ON").unwrap_or_default();
    let on = &Detector::with_options(
        Default::default(),
        DetectorOptions {
            disabled: ["payment-card-number", "iban", "bip39-seed-phrase"]
                .iter()
                .filter(|id| !keep.is_empty() && !keep.split(',').any(|k| id.starts_with(k)))
                .map(|s| s.to_string())
                .collect(),
            ..Default::default()
        },
    );
    let off = Detector::with_options(
        Default::default(),
        DetectorOptions {
            disabled: vec![
                "payment-card-number".into(),
                "iban".into(),
                "bip39-seed-phrase".into(),
            ],
            ..Default::default()
        },
    );
    let mib = 1 << 20;
    let mut bodies = vec![
        ("clean-1MiB", corpus::clean_body(mib)),
        ("dirty-1MiB", corpus::dirty_body(mib, 32 * 1024)),
    ];
    for name in ["data_classes.txt", "prose_wordlist.md", "identifiers.txt"] {
        let b = std::fs::read(corpus::corpus_dir().join(name)).unwrap();
        bodies.push((name, b.repeat(mib / b.len() + 1)[..mib].to_vec()));
    }
    println!("| body (1 MiB) | classes off | classes on | cost |");
    println!("|---|---|---|---|");
    for (name, body) in &bodies {
        let (mut a, mut b) = (f64::MAX, f64::MAX);
        for _ in 0..400 {
            best(&off, body, &mut a);
            best(on, body, &mut b);
        }
        println!(
            "| {name} | {:.2} ms | {:.2} ms | {:+.1} % |",
            a * 1e3,
            b * 1e3,
            (b / a - 1.0) * 100.0
        );
    }
}
