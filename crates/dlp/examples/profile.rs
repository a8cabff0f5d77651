//! Per-stage timings on the benchmark bodies:
#![allow(clippy::unwrap_used, clippy::expect_used)]
//! cargo run --release -p bottle-dlp --features fuzzing --example profile
#[path = "../tests/support/corpus.rs"]
mod corpus;

fn main() {
    let clean = corpus::clean_body(1 << 20);
    let image = corpus::llm_requests()
        .into_iter()
        .find(|(n, _)| n == "image-request-0")
        .map(|(_, b)| b)
        .unwrap_or_default();
    for (name, body) in [("clean 1 MiB", &clean), ("image request", &image)] {
        println!("{name} ({} bytes)", body.len());
        for _ in 0..2 {
            for (stage, ms, n) in bottle_dlp::fuzzing::profile(body) {
                println!("  {stage:<28} {ms:8.2} ms  {n}");
            }
        }
    }
}
