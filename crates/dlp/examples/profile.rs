//! Per-stage timings on the benchmark bodies, and throughput per CPU-second
//! (thread CPU time, so the figure holds on a shared, loaded machine):
//! cargo run --release -p bottle-dlp --features fuzzing --example profile
#![allow(clippy::unwrap_used, clippy::expect_used)]
#[path = "../tests/support/corpus.rs"]
mod corpus;

use bottle_dlp::{Detector, DetectorConfig, Zeroizing};

/// utime + stime of this thread in clock ticks (1/100 s).
fn cpu_ticks() -> u64 {
    let s = std::fs::read_to_string("/proc/thread-self/stat").unwrap_or_default();
    let rest = s.rsplit(')').next().unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    f.get(11).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0)
        + f.get(12).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0)
}

fn per_cpu_second(name: &str, bytes: usize, mut f: impl FnMut()) {
    let t0 = cpu_ticks();
    let w0 = std::time::Instant::now();
    let mut n = 0u64;
    while cpu_ticks() - t0 < 300 {
        for _ in 0..64 {
            f();
        }
        n += 64;
    }
    let cpu = (cpu_ticks() - t0) as f64 / 100.0;
    let wall = w0.elapsed().as_secs_f64();
    let per = cpu / n as f64;
    if bytes > 0 {
        println!(
            "{name:<40} {:8.1} MiB/CPU-s  ({:.2} ms CPU/iter, wall/cpu {:.2})",
            bytes as f64 * n as f64 / cpu / 1048576.0,
            per * 1e3,
            wall / cpu
        );
    } else {
        println!(
            "{name:<40} {:8.2} us CPU/iter (wall/cpu {:.2})",
            per * 1e6,
            wall / cpu
        );
    }
}

fn main() {
    let clean = corpus::clean_body(1 << 20);
    let dirty = corpus::dirty_body(1 << 20, 32 * 1024);
    let image = corpus::llm_requests()
        .into_iter()
        .find(|(n, _)| n == "image-request-0")
        .map(|(_, b)| b)
        .unwrap_or_default();
    if std::env::args().any(|a| a == "--stages") {
        for (name, body) in [("clean 1 MiB", &clean), ("image request", &image)] {
            println!("{name} ({} bytes)", body.len());
            for (stage, ms, n) in bottle_dlp::fuzzing::profile(body) {
                println!("  {stage:<28} {ms:8.2} ms  {n}");
            }
        }
    }
    let det = Detector::builtin();
    let known = Detector::new(DetectorConfig {
        known_secrets: (0..20)
            .map(|i| Zeroizing::new(format!("known-secret-value-{i:04}-Zq81x")))
            .collect(),
        ..Default::default()
    });
    per_cpu_second("detect clean 1 MiB", clean.len(), || {
        drop(det.detect(&clean))
    });
    per_cpu_second("detect dirty 1 MiB", dirty.len(), || {
        drop(det.detect(&dirty))
    });
    per_cpu_second("detect clean 1 MiB, 20 known secrets", clean.len(), || {
        drop(known.detect(&clean))
    });
    per_cpu_second("detect base64 image request", image.len(), || {
        drop(det.detect(&image))
    });
    for u in [
        "/repos/acme/demo/pulls?state=open&per_page=100&page=2",
        "/login/oauth/authorize?client_id=Iv1.8a61f9b3a7aba766&redirect_uri=http%3A%2F%2Flocalhost%3A8080%2Fcallback&state=af0ifjsldkj&scope=repo%20read%3Aorg&response_type=code&code_challenge=E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM&code_challenge_method=S256",
    ] {
        per_cpu_second(&format!("scan_url {}", &u[..30]), 0, || drop(det.scan_url(u)));
    }
}
