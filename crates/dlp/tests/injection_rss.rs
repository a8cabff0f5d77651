//! Memory of the prompt-injection detector (a measurement, not a check): resident set size
//! before the rules are built, after the first (tiny) body, and after the corpus pages and
//! a few MiB of text have warmed the matching caches.
//!
//! `cargo test -p bottle-dlp --profile bench --test injection_rss -- --ignored --nocapture`
//! (alone in its binary, so that nothing else in the process allocates meanwhile).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use bottle_dlp::injection::{scan_injection, ContentKind, InjectionStream};

/// `VmRSS` and `VmHWM` of this process, in KiB.
fn rss_kib() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

#[test]
#[ignore = "measurement: prints the detector's resident memory"]
fn injection_detector_rss() {
    let pages = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus/pages");
    let mut bodies: Vec<(Vec<u8>, ContentKind)> = std::fs::read_dir(&pages)
        .expect("corpus")
        .map(|e| {
            let path = e.expect("entry").path();
            let kind = match path.extension().and_then(|x| x.to_str()) {
                Some("html") => ContentKind::Html,
                Some("md") => ContentKind::Markdown,
                Some("json") => ContentKind::Json,
                _ => ContentKind::Text,
            };
            (std::fs::read(&path).expect("page"), kind)
        })
        .collect();
    bodies.push((
        "a line of ordinary log text with numbers 12345 and words\n"
            .repeat(40_000)
            .into_bytes(),
        ContentKind::Text,
    ));
    let before = rss_kib();
    std::hint::black_box(scan_injection(b"hello", ContentKind::Text));
    let built = rss_kib();
    for (body, kind) in &bodies {
        std::hint::black_box(scan_injection(body, *kind));
        let mut s = InjectionStream::new(*kind);
        for c in body.chunks(16 * 1024) {
            let _ = std::hint::black_box(s.push(c));
        }
        let _ = std::hint::black_box(s.finish());
    }
    let warm = rss_kib();
    let mib = |k: u64| k as f64 / 1024.0;
    eprintln!(
        "VmRSS before {:.1} MiB, rules built +{:.1} MiB, after the corpus +{:.1} MiB; VmHWM {:.1} MiB",
        mib(before.0),
        mib(built.0.saturating_sub(before.0)),
        mib(warm.0.saturating_sub(before.0)),
        mib(warm.1),
    );
}
