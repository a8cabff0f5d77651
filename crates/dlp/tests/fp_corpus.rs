//! False-positive corpus: ordinary coding-agent traffic must produce no
#![allow(clippy::unwrap_used, clippy::expect_used)]
//! finding. Prints the false-positive rate (findings per MB and per request).

mod support {
    pub mod corpus;
}

use bottle_dlp::{Detector, DetectorConfig, Finding};
use std::process::Command;
use support::corpus;

/// A real git pack: a temporary repository with the corpus committed in a
/// few commits, packed by `git gc`. Returns None (and says so) if git is missing.
fn git_pack() -> Option<Vec<u8>> {
    let dir = tempfile::tempdir().expect("tempdir");
    let git = |args: &[&str]| {
        Command::new("git")
            .args(args)
            .current_dir(dir.path())
            .env("GIT_AUTHOR_NAME", "Dev")
            .env("GIT_AUTHOR_EMAIL", "dev@example.com")
            .env("GIT_COMMITTER_NAME", "Dev")
            .env("GIT_COMMITTER_EMAIL", "dev@example.com")
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("HOME", dir.path())
            .output()
    };
    let out = git(&["init", "-q", "-b", "main"]).ok()?;
    if !out.status.success() {
        eprintln!("git init failed; skipping git pack corpus");
        return None;
    }
    for (i, (name, bytes)) in corpus::files().into_iter().enumerate() {
        std::fs::write(dir.path().join(&name), &bytes).expect("write");
        assert!(git(&["add", &name]).expect("git add").status.success());
        let msg = format!("Add {name}\n\nPart {i} of the corpus: refactor request parsing, bump deps,\nfix flaky test (see #{i}).");
        assert!(git(&["commit", "-q", "-m", &msg])
            .expect("git commit")
            .status
            .success());
    }
    assert!(git(&["gc", "-q", "--aggressive"])
        .expect("git gc")
        .status
        .success());
    let packdir = dir.path().join(".git/objects/pack");
    let mut pack = Vec::new();
    for e in std::fs::read_dir(packdir).expect("pack dir").flatten() {
        let p = e.path();
        if p.extension().is_some_and(|x| x == "pack" || x == "idx") {
            pack.extend(std::fs::read(&p).expect("read pack"));
        }
    }
    assert!(
        pack.starts_with(b"PACK") || pack.starts_with(b"\xfftOc"),
        "unexpected pack format"
    );
    Some(pack)
}

fn scan_streaming(det: &Detector, body: &[u8], seed: usize) -> Vec<Finding> {
    let mut s = det.stream();
    let mut pos = 0;
    let mut k = seed;
    while pos < body.len() {
        k = k
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let n = ((k >> 33) % 20_000 + 1).min(body.len() - pos);
        if let Err(f) = s.push(bytes::Bytes::copy_from_slice(&body[pos..pos + n])) {
            return vec![f];
        }
        pos += n;
    }
    match s.finish() {
        Ok(_) => vec![],
        Err(f) => vec![f],
    }
}

#[test]
fn corpus_has_no_false_positives() {
    let det = Detector::builtin();
    let mut items: Vec<(String, Vec<u8>)> = corpus::files();
    items.extend(corpus::llm_requests());
    items.push(("clean-body-1MiB".into(), corpus::clean_body(1 << 20)));
    match git_pack() {
        Some(p) => items.push(("git-pack".into(), p)),
        None => eprintln!("NOTE: git unavailable, git pack not in corpus"),
    }
    let mut total_bytes = 0usize;
    let mut failures = Vec::new();
    let mut findings = 0usize;
    for (i, (name, body)) in items.iter().enumerate() {
        total_bytes += body.len();
        let f = det.detect(body);
        let s = scan_streaming(det, body, i);
        findings += f.len() + s.len();
        if !f.is_empty() || !s.is_empty() {
            failures.push(format!("{name}: detect {f:?} stream {s:?}"));
        }
    }
    let mb = total_bytes as f64 / (1024.0 * 1024.0);
    println!(
        "FP corpus: {} requests, {:.2} MiB, {} findings => {:.3} findings/MiB, {:.4} findings/request",
        items.len(),
        mb,
        findings,
        findings as f64 / mb,
        findings as f64 / items.len() as f64
    );
    assert!(
        failures.is_empty(),
        "false positives:\n{}",
        failures.join("\n")
    );
}

#[test]
fn corpus_urls_have_no_false_positives() {
    let urls = corpus::urls();
    let det = Detector::builtin();
    let bad: Vec<String> = urls
        .iter()
        .filter(|u| !det.scan_url(u).is_empty())
        .map(|u| format!("{u}: {:?}", det.scan_url(u)))
        .collect();
    let ent = Detector::new(DetectorConfig {
        entropy_urls: true,
        ..Default::default()
    });
    let ent_hits = urls.iter().filter(|u| !ent.scan_url(u).is_empty()).count();
    println!(
        "URL corpus: {} URLs, {} flagged by patterns, {} flagged with entropy_urls on ({:.2}%)",
        urls.len(),
        bad.len(),
        ent_hits,
        100.0 * ent_hits as f64 / urls.len() as f64
    );
    assert!(bad.is_empty(), "false positives:\n{}", bad.join("\n"));
    assert_eq!(ent_hits, 0, "entropy flagged ordinary URLs");
}
