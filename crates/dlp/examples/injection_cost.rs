//! Cost of the prompt-injection detector: MB/s of `scan_injection` and of `InjectionStream`
//! (16 KiB and 64-byte pushes) on a 1 MiB HTML page and a 1 MiB JSON body built from the
//! false-positive corpus (tests/corpus/pages/). Time is this thread's CPU time where the
//! system reports it.
//!
//! `cargo run -p bottle-dlp --profile bench --example injection_cost [label, e.g. log]`
#![forbid(unsafe_code)]

use bottle_dlp::injection::{scan_injection, ContentKind, InjectionStream};
use std::path::PathBuf;
use std::time::Instant;

const MIB: usize = 1 << 20;

fn page(name: &str) -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/corpus/pages")
        .join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// 1 MiB of HTML: the corpus pages' bodies repeated inside one document.
fn html_mib() -> Vec<u8> {
    let parts: Vec<Vec<u8>> = [
        "docs_site.html",
        "shop_product.html",
        "blog_post.html",
        "news_article.html",
        "readme_render.html",
    ]
    .iter()
    .map(|n| page(n))
    .collect();
    let mut out = b"<!DOCTYPE html><html><body>".to_vec();
    let mut i = 0;
    while out.len() < MIB {
        out.extend_from_slice(&parts[i % parts.len()]);
        i += 1;
    }
    out.truncate(MIB);
    out
}

/// 1 MiB of JSON: an array of the corpus API responses.
fn json_mib() -> Vec<u8> {
    let parts: Vec<Vec<u8>> = [
        "github_issues.json",
        "npm_package.json",
        "mcp_tools_list.json",
        "a2a_agent_card.json",
    ]
    .iter()
    .map(|n| page(n))
    .collect();
    let mut out = b"[".to_vec();
    let mut i = 0;
    while out.len() < MIB - 12_000 {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(&parts[i % parts.len()]);
        i += 1;
    }
    out.push(b']');
    out
}

fn mb_per_s(bytes: usize, secs: f64) -> f64 {
    bytes as f64 / MIB as f64 / secs
}

/// On-CPU time of this thread (Linux `schedstat`), so that other processes sharing the
/// cores do not count; wall time where it is not available.
fn cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    let ns: u64 = stat.split_whitespace().next()?.parse().ok()?;
    Some(ns as f64 / 1e9)
}

fn time<F: FnMut() -> usize>(mut f: F) -> f64 {
    // Warm up (rule compilation), then the best of 5.
    let _ = f();
    (0..5)
        .map(|_| {
            let (cpu, wall) = (cpu_seconds(), Instant::now());
            std::hint::black_box(f());
            match (cpu, cpu_seconds()) {
                (Some(a), Some(b)) if b > a => b - a,
                _ => wall.elapsed().as_secs_f64(),
            }
        })
        .fold(f64::MAX, f64::min)
}

fn stream(body: &[u8], kind: ContentKind, chunk: usize) -> usize {
    let mut s = InjectionStream::new(kind);
    let mut released = 0;
    for c in body.chunks(chunk) {
        match s.push(c) {
            Ok(r) => released += r.len(),
            Err(f) => panic!("unexpected finding {f:?}"),
        }
    }
    released + s.finish().map(|r| r.len()).unwrap_or(0)
}

/// Worst cases for the decoders: one base64 run of English text (every piece decodes to
/// printable text and is read again), and tag soup (a construct every few bytes).
fn adversarial_mib() -> (Vec<u8>, Vec<u8>) {
    use base64::Engine as _;
    let prose = page("changelog.txt");
    let mut text = Vec::new();
    while text.len() < MIB * 3 / 4 {
        text.extend_from_slice(&prose);
    }
    let b64 = base64::engine::general_purpose::STANDARD
        .encode(&text)
        .into_bytes();
    let mut soup = Vec::new();
    while soup.len() < MIB {
        soup.extend_from_slice(b"<b a=1>x</b><i style='color:red'>&amp;</i><!-- c -->");
    }
    (b64[..MIB.min(b64.len())].to_vec(), soup)
}

/// 1 MiB of Chinese and Japanese prose (the CJK rules run only over such text).
fn cjk_mib() -> Vec<u8> {
    let para =
        "本文介绍如何配置代理服务器以及日志的轮换策略。请先阅读安装说明，然后按照步骤启动服务。\
        設定ファイルを編集してから、サービスを再起動してください。詳しくはドキュメントを参照。\n";
    let mut out = Vec::new();
    while out.len() < MIB {
        out.extend_from_slice(para.as_bytes());
    }
    out
}

/// 1 MiB of plain log lines (the text case of pipelock's binary judge: no markup at all).
fn log_mib() -> Vec<u8> {
    "a line of ordinary log text with numbers 12345 and words\n"
        .repeat(MIB / 57 + 1)
        .into_bytes()[..MIB]
        .to_vec()
}

/// 1 MiB of what pipelock's binary judge feeds the stream for a compressed download: short
/// runs of random printable bytes (4 to 15), one per line.
fn strings_mib() -> Vec<u8> {
    let mut x = 99u32;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        x
    };
    let mut out = Vec::with_capacity(MIB);
    while out.len() < MIB {
        let n = 4 + next() % 12;
        out.extend((0..n).map(|_| b' ' + (next() % 95) as u8));
        out.push(b'\n');
    }
    out.truncate(MIB);
    out
}

fn main() {
    // An argument picks the bodies whose label holds it (for a profile of one case).
    let only = std::env::args().nth(1).unwrap_or_default();
    let (b64, soup) = adversarial_mib();
    for (label, body, kind) in [
        ("1 MiB log", log_mib(), ContentKind::Text),
        ("1 MiB strings", strings_mib(), ContentKind::Text),
        ("1 MiB HTML", html_mib(), ContentKind::Html),
        ("1 MiB JSON", json_mib(), ContentKind::Json),
        ("1 MiB b64", b64, ContentKind::Text),
        ("1 MiB tags", soup, ContentKind::Html),
        ("1 MiB CJK", cjk_mib(), ContentKind::Text),
    ] {
        if !label.contains(&only) {
            continue;
        }
        let findings = scan_injection(&body, kind);
        assert!(findings.is_empty(), "{label}: {findings:?}");
        let whole = time(|| scan_injection(&body, kind).len());
        let big = time(|| stream(&body, kind, 16 * 1024));
        let small = time(|| stream(&body, kind, 64));
        println!(
            "{label:<13} scan_injection {:>6.1} MB/s | InjectionStream 16 KiB pushes {:>6.1} MB/s | 64 B pushes {:>6.1} MB/s",
            mb_per_s(body.len(), whole),
            mb_per_s(body.len(), big),
            mb_per_s(body.len(), small),
        );
    }
}
