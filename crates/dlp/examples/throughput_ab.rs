//! A/B throughput of the request-DLP workloads between this tree and another
//! build of the same example (e.g. the baseline commit in a git worktree),
//! interleaved: A, B, A, B, ... each round a fresh process, best of all rounds.
//! The machine is shared, so the best round is the stable figure.
//!
//! One build only (prints the best time per workload):
//!   cargo run -p bottle-dlp --profile bench --example throughput_ab -- --once
//! A/B (the other binary built from this same file in the other tree):
//!   cargo run -p bottle-dlp --profile bench --example throughput_ab -- \
//!       --against /tmp/dlp-base-target/release/examples/throughput_ab --rounds 8
//! Uses only the public API that existed before issue 13, so the baseline
//! builds it too.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../tests/support/corpus.rs"]
mod corpus;

use bottle_dlp::{Detector, DetectorConfig, Zeroizing};
use std::collections::BTreeMap;
use std::hint::black_box;
use std::process::Command;
use std::time::{Duration, Instant};

const MIB: usize = 1 << 20;

fn repeat_to(b: &[u8], len: usize) -> Vec<u8> {
    if b.is_empty() {
        return Vec::new();
    }
    b.repeat(len / b.len() + 1)[..len].to_vec()
}

fn corpus_file(name: &str) -> Vec<u8> {
    std::fs::read(corpus::corpus_dir().join(name)).unwrap_or_default()
}

fn stream(det: &Detector, chunks: &[bytes::Bytes]) {
    let mut s = det.stream();
    for ch in chunks {
        black_box(s.push(ch.clone()).ok());
    }
    black_box(s.finish().ok());
}

fn chunked(b: &[u8]) -> Vec<bytes::Bytes> {
    b.chunks(64 * 1024)
        .map(bytes::Bytes::copy_from_slice)
        .collect()
}

type Workload = (&'static str, Box<dyn Fn()>);

fn workloads() -> Vec<Workload> {
    let det = Detector::builtin();
    let clean = corpus::clean_body(MIB);
    let dirty = corpus::dirty_body(MIB, 32 * 1024);
    let image = corpus::llm_requests()
        .into_iter()
        .find(|(n, _)| n == "image-request-0")
        .map(|(_, b)| b)
        .unwrap_or_default();
    // A clean LLM request body (JSON) of 1 MiB: the JSON sibling view's
    // ordinary case.
    let llm_json = {
        let reqs = corpus::llm_requests();
        let text = reqs
            .iter()
            .find(|(n, _)| !n.starts_with("image"))
            .map(|(_, b)| b.clone())
            .unwrap_or_default();
        let mut body = b"{\"messages\": [".to_vec();
        let mut first = true;
        while body.len() < MIB {
            if !first {
                body.push(b',');
            }
            first = false;
            body.extend_from_slice(&text);
        }
        body.extend_from_slice(b"]}");
        body
    };
    let npm = corpus_file("npm_metadata.json");
    let classes = repeat_to(&corpus_file("data_classes.txt"), MIB);
    let wordlist = repeat_to(&corpus_file("prose_wordlist.md"), MIB);
    let clean_chunks = chunked(&clean);
    let llm_chunks = chunked(&llm_json);
    let npm_chunks = chunked(&npm);
    let fields: Vec<(&'static str, &'static [u8])> = vec![
        ("host", b"registry.npmjs.org"),
        (
            "user-agent",
            b"npm/10.2.4 node/v20.11.0 linux x64 workspaces/false",
        ),
        ("npm-command", b"install"),
        ("npm-session", b"4c1a7e5f3b2d9e80"),
        (
            "accept",
            b"application/vnd.npm.install-v1+json; q=1.0, application/json; q=0.8, */*",
        ),
        ("accept-encoding", b"gzip,deflate"),
        ("if-none-match", b"\"4d8c1f0e9b7a6c5d3e2f1a0b9c8d7e6f\""),
        ("if-modified-since", b"Tue, 14 May 2024 09:12:44 GMT"),
        ("authorization", b"Bearer eyJhbGciOiJSUzI1NiJ9.e30.c2ln"),
        (
            "traceparent",
            b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        ),
    ];
    let hosts = [
        "registry.npmjs.org",
        "api.github.com",
        "objects.githubusercontent.com",
        "pypi.org",
        "files.pythonhosted.org",
    ];
    // The rest of the criterion bench's rows at dde98fe: 20 known secrets,
    // the fuzzer's slowest input, entropy URLs and a base64 secret in a URL.
    let known: &'static Detector = Box::leak(Box::new(Detector::new(DetectorConfig {
        known_secrets: (0..20)
            .map(|i| Zeroizing::new(format!("known-secret-value-{i:04}-Zq81x")))
            .collect(),
        ..Default::default()
    })));
    let entropy: &'static Detector = Box::leak(Box::new(Detector::new(DetectorConfig {
        entropy_urls: true,
        ..Default::default()
    })));
    let slow: Vec<u8> = include_bytes!("../benches/data/fuzz-slow-4k.bin")
        .iter()
        .copied()
        .chain(std::iter::once(b'\n'))
        .cycle()
        .take(MIB)
        .collect();
    let clean_known = clean.clone();
    let secret_url = "/collect?v=1&d=Z2hwX1IzYUxseU4wdEFUMGtlbkJ1dEwwMGtzTGlrZU9uZTEyMzQ1Ng%3D%3D";
    let typical = "/repos/acme/demo/pulls?state=open&per_page=100&page=2";
    let long = "/login/oauth/authorize?client_id=Iv1.8a61f9b3a7aba766&redirect_uri=http%3A%2F%2Flocalhost%3A8080%2Fcallback&state=af0ifjsldkj&scope=repo%20read%3Aorg&response_type=code&code_challenge=E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM&code_challenge_method=S256";
    vec![
        (
            "detect clean-1MiB",
            Box::new(move || drop(black_box(det.detect(black_box(&clean))))),
        ),
        (
            "detect dirty-1MiB",
            Box::new(move || drop(black_box(det.detect(black_box(&dirty))))),
        ),
        (
            "stream clean-1MiB 64KiB chunks",
            Box::new(move || stream(det, &clean_chunks)),
        ),
        (
            "stream LLM JSON 1MiB 64KiB chunks",
            Box::new(move || stream(det, &llm_chunks)),
        ),
        (
            "stream npm metadata JSON",
            Box::new(move || stream(det, &npm_chunks)),
        ),
        (
            "detect base64-image-request",
            Box::new(move || drop(black_box(det.detect(black_box(&image))))),
        ),
        (
            "detect data_classes.txt 1MiB",
            Box::new(move || drop(black_box(det.detect(black_box(&classes))))),
        ),
        (
            "detect prose_wordlist.md 1MiB",
            Box::new(move || drop(black_box(det.detect(black_box(&wordlist))))),
        ),
        (
            "scan_url typical",
            Box::new(move || drop(black_box(det.scan_url(black_box(typical))))),
        ),
        (
            "scan_url long-oauth",
            Box::new(move || drop(black_box(det.scan_url(black_box(long))))),
        ),
        (
            "detect clean-1MiB 20 known secrets",
            Box::new(move || drop(black_box(known.detect(black_box(&clean_known))))),
        ),
        (
            "detect adversarial-1MiB",
            Box::new(move || drop(black_box(det.detect(black_box(&slow))))),
        ),
        (
            "scan_url typical-entropy",
            Box::new(move || drop(black_box(entropy.scan_url(black_box(typical))))),
        ),
        (
            "scan_url base64-secret",
            Box::new(move || drop(black_box(det.scan_url(black_box(secret_url))))),
        ),
        (
            "scan_header authorization",
            Box::new(move || {
                drop(black_box(det.scan_header(
                    black_box("authorization"),
                    black_box(b"Bearer eyJhbGciOiJSUzI1NiJ9.e30.c2ln"),
                )))
            }),
        ),
        (
            "scan_header_block typical-10",
            Box::new(move || drop(black_box(det.scan_header_block(black_box(&fields))))),
        ),
        (
            "scan_host 5 hosts",
            Box::new(move || {
                for h in hosts {
                    drop(black_box(det.scan_host(black_box(h))));
                }
            }),
        ),
    ]
}

/// Best time of one call, measured for about `budget` (short calls are
/// timed in batches so the clock's resolution does not matter).
fn best_of(f: &dyn Fn(), budget: Duration) -> f64 {
    f();
    let t = Instant::now();
    f();
    let one = t.elapsed().as_secs_f64();
    let batch = ((20e-6 / one.max(1e-9)).ceil() as usize).max(1);
    let start = Instant::now();
    let mut best = f64::MAX;
    while start.elapsed() < budget {
        let t = Instant::now();
        for _ in 0..batch {
            f();
        }
        best = best.min(t.elapsed().as_secs_f64() / batch as f64);
    }
    best
}

fn once(budget: Duration, only: Option<&str>) {
    for (name, f) in workloads() {
        if only.is_some_and(|o| !name.contains(o)) {
            continue;
        }
        println!("{name}\t{:e}", best_of(&*f, budget));
    }
}

fn run(bin: &str, budget_ms: u64) -> BTreeMap<String, f64> {
    let out = Command::new(bin)
        .args(["--once", "--budget-ms", &budget_ms.to_string()])
        .output()
        .expect("run the build");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let (n, t) = l.split_once('\t')?;
            Some((n.to_string(), t.parse().ok()?))
        })
        .collect()
}

fn fmt_time(s: f64) -> String {
    if s >= 1e-3 {
        format!("{:.3} ms", s * 1e3)
    } else {
        format!("{:.2} µs", s * 1e6)
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let arg = |k: &str| {
        args.iter()
            .position(|a| a == k)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    let budget_ms: u64 = arg("--budget-ms")
        .and_then(|v| v.parse().ok())
        .unwrap_or(300);
    // --only <part of a workload name>: one workload (for perf record).
    let only = arg("--only");
    // --iters N: run the selected workloads exactly N times, untimed (for
    // `perf stat -e instructions:u`, a count the machine's load does not move).
    if let Some(iters) = arg("--iters").and_then(|v| v.parse::<usize>().ok()) {
        for (name, f) in workloads() {
            if only.as_deref().is_none_or(|o| name.contains(o)) {
                // One call first: lazy tables are built outside the count.
                f();
                for _ in 0..iters {
                    f();
                }
            }
        }
        return;
    }
    let Some(other) = arg("--against").filter(|_| !args.iter().any(|a| a == "--once")) else {
        once(Duration::from_millis(budget_ms), only.as_deref());
        return;
    };
    let rounds: usize = arg("--rounds").and_then(|v| v.parse().ok()).unwrap_or(6);
    let me = std::env::current_exe().expect("own path");
    let me = me.to_string_lossy().into_owned();
    let (mut base, mut now): (BTreeMap<String, f64>, BTreeMap<String, f64>) = Default::default();
    let merge = |acc: &mut BTreeMap<String, f64>, r: BTreeMap<String, f64>| {
        for (k, v) in r {
            let e = acc.entry(k).or_insert(f64::MAX);
            *e = e.min(v);
        }
    };
    for r in 0..rounds {
        eprintln!("round {}/{rounds}", r + 1);
        merge(&mut base, run(&other, budget_ms));
        merge(&mut now, run(&me, budget_ms));
    }
    println!("| workload | baseline | now | change |");
    println!("|---|---|---|---|");
    for (name, _) in workloads() {
        let (Some(&a), Some(&b)) = (base.get(name), now.get(name)) else {
            continue;
        };
        println!(
            "| {name} | {} | {} | {:+.1} % |",
            fmt_time(a),
            fmt_time(b),
            (b / a - 1.0) * 100.0
        );
    }
}
