//! What one `/v1/blocks` and one `/v1/check` cost, on full-size inputs: four audit files each
//! larger than the tail read (512 KiB), and a 500-entry allowlist with 50 routes.
//!
//! `cargo run -p supervise --profile bench --example read_cost`
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fmt::Write as _;
use std::time::Instant;

fn main() {
    let dir = tempfile::tempdir().unwrap();
    let audit = dir.path().join("audit");
    std::fs::create_dir_all(&audit).unwrap();
    for comp in ["pipelock", "egress", "git-gate", "supervise"] {
        let mut text = String::new();
        let mut i = 0u64;
        while text.len() < 768 * 1024 {
            let decision = if i.is_multiple_of(3) { "deny" } else { "allow" };
            writeln!(
                text,
                r#"{{"ts":"2026-01-01T00:{:02}:{:02}Z","component":"{comp}","event":"request","decision":"{decision}","reason":"host not allowed","method":"GET","scheme":"https","host":"h{i}.example","port":443,"path":"/some/path?q=1","status":403,"bytes_up":0,"bytes_down":0,"duration_ms":1}}"#,
                (i / 60) % 60,
                i % 60
            )
            .unwrap();
            i += 1;
        }
        std::fs::write(audit.join(format!("{comp}.log")), text).unwrap();
    }
    let n = 50;
    let t = Instant::now();
    let mut found = 0;
    for _ in 0..n {
        found = supervise::blocks::recent_blocks(&audit, 50).len();
    }
    let per = t.elapsed() / n;
    println!("blocks: {found} of 4 x 768 KiB audit files (512 KiB tail each): {per:?} per call");

    let config = dir.path().join("config");
    std::fs::create_dir_all(&config).unwrap();
    let allow: String = (0..500).map(|i| format!("host{i}.example.com\n")).collect();
    std::fs::write(config.join("allowlist"), allow).unwrap();
    let mut routes = String::from("routes:\n");
    for i in 0..50 {
        writeln!(
            routes,
            "  - host: api{i}.example.net\n    paths: [\"/v1/**\"]\n    methods: [GET]"
        )
        .unwrap();
    }
    std::fs::write(config.join("routes.yaml"), routes).unwrap();
    let target = supervise::check::Target::parse("https://host499.example.com/x", None).unwrap();
    let n = 200;
    let t = Instant::now();
    let mut allowed = false;
    for _ in 0..n {
        let policy = supervise::check::Policy::load(&config).unwrap();
        allowed = supervise::check::decide(&policy, &target).allowed;
    }
    let per = t.elapsed() / n;
    println!("check: load 500-entry allowlist + 50 routes and decide (last entry, allowed={allowed}): {per:?} per call");
}
