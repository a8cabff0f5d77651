//! Throughput on clean and dirty 1 MiB bodies, streaming, and URL scan latency.
#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Run: cargo bench -p bottle-dlp -- --quick   (or --warm-up-time 1 --measurement-time 3)

use bottle_dlp::{Detector, DetectorConfig, Zeroizing};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use std::hint::black_box;

#[path = "../tests/support/corpus.rs"]
mod corpus;

const MIB: usize = 1 << 20;

fn bodies(c: &mut Criterion) {
    let clean = corpus::clean_body(MIB);
    let dirty = corpus::dirty_body(MIB, 32 * 1024);
    let image = corpus::llm_requests()
        .into_iter()
        .find(|(n, _)| n == "image-request-0")
        .map(|(_, b)| b)
        .unwrap_or_default();
    let det = Detector::builtin();
    assert!(det.detect(&clean).is_empty());
    assert!(!det.detect(&dirty).is_empty());
    let known = Detector::new(DetectorConfig {
        known_secrets: (0..20)
            .map(|i| Zeroizing::new(format!("known-secret-value-{i:04}-Zq81x")))
            .collect(),
        ..Default::default()
    });

    let mut g = c.benchmark_group("body");
    g.throughput(Throughput::Bytes(MIB as u64));
    g.bench_function("detect/clean-1MiB", |b| {
        b.iter(|| black_box(det.detect(black_box(&clean))))
    });
    g.bench_function("detect/dirty-1MiB", |b| {
        b.iter(|| black_box(det.detect(black_box(&dirty))))
    });
    g.bench_function("detect/clean-1MiB-20-known-secrets", |b| {
        b.iter(|| black_box(known.detect(black_box(&clean))))
    });
    g.bench_function("stream/clean-1MiB-64KiB-chunks", |b| {
        let chunks: Vec<bytes::Bytes> = clean
            .chunks(64 * 1024)
            .map(bytes::Bytes::copy_from_slice)
            .collect();
        b.iter(|| {
            let mut s = det.stream();
            for ch in &chunks {
                black_box(s.push(ch.clone()).ok());
            }
            black_box(s.finish().ok())
        })
    });
    // JSON with many short string values (the JSON sibling view's worst
    // ordinary case): npm registry metadata, streamed.
    let npm = std::fs::read(corpus::corpus_dir().join("npm_metadata.json")).unwrap_or_default();
    g.throughput(Throughput::Bytes(npm.len() as u64));
    g.bench_function("stream/npm-metadata-json", |b| {
        let chunks: Vec<bytes::Bytes> = npm
            .chunks(64 * 1024)
            .map(bytes::Bytes::copy_from_slice)
            .collect();
        b.iter(|| {
            let mut s = det.stream();
            for ch in &chunks {
                black_box(s.push(ch.clone()).ok());
            }
            black_box(s.finish().ok())
        })
    });
    g.throughput(Throughput::Bytes(image.len() as u64));
    g.bench_function("detect/base64-image-request", |b| {
        b.iter(|| black_box(det.detect(black_box(&image))))
    });
    // The slowest input the dlp_stream fuzzer found (4 KiB of overlapping
    // env assignments, percent escapes and base64-like runs), repeated to 1 MiB:
    // the worst case we know of, bounded by the decode budget (16x input).
    let slow: Vec<u8> = include_bytes!("data/fuzz-slow-4k.bin")
        .iter()
        .copied()
        .chain(std::iter::once(b'\n'))
        .cycle()
        .take(MIB)
        .collect();
    g.throughput(Throughput::Bytes(MIB as u64));
    g.sample_size(10);
    g.bench_function("detect/adversarial-1MiB", |b| {
        b.iter(|| black_box(det.detect(black_box(&slow))))
    });
    g.finish();
}

fn urls(c: &mut Criterion) {
    let det = Detector::builtin();
    let ent = Detector::new(DetectorConfig {
        entropy_urls: true,
        ..Default::default()
    });
    let typical = "/repos/acme/demo/pulls?state=open&per_page=100&page=2";
    let long = "/login/oauth/authorize?client_id=Iv1.8a61f9b3a7aba766&redirect_uri=http%3A%2F%2Flocalhost%3A8080%2Fcallback&state=af0ifjsldkj&scope=repo%20read%3Aorg&response_type=code&code_challenge=E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM&code_challenge_method=S256";
    let secret = "/collect?v=1&d=Z2hwX1IzYUxseU4wdEFUMGtlbkJ1dEwwMGtzTGlrZU9uZTEyMzQ1Ng%3D%3D";
    let mut g = c.benchmark_group("url");
    g.bench_function("scan_url/typical", |b| {
        b.iter(|| black_box(det.scan_url(black_box(typical))))
    });
    g.bench_function("scan_url/long-oauth", |b| {
        b.iter(|| black_box(det.scan_url(black_box(long))))
    });
    g.bench_function("scan_url/typical-entropy", |b| {
        b.iter(|| black_box(ent.scan_url(black_box(typical))))
    });
    g.bench_function("scan_url/base64-secret", |b| {
        b.iter(|| black_box(det.scan_url(black_box(secret))))
    });
    g.bench_function("scan_header/authorization", |b| {
        b.iter(|| {
            black_box(det.scan_header(
                black_box("authorization"),
                black_box(b"Bearer eyJhbGciOiJSUzI1NiJ9.e30.c2ln"),
            ))
        })
    });
    g.finish();
}

/// A typical request head (a package manager's GET): per field as before, and as a block.
fn headers(c: &mut Criterion) {
    let det = Detector::builtin();
    let fields: Vec<(&str, &[u8])> = vec![
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
    let mut g = c.benchmark_group("headers");
    g.bench_function("scan_header-each/typical-10", |b| {
        b.iter(|| {
            for (n, v) in &fields {
                black_box(det.scan_header(black_box(n), black_box(v)));
            }
        })
    });
    g.bench_function("scan_header_block/typical-10", |b| {
        b.iter(|| black_box(det.scan_header_block(black_box(&fields))))
    });
    g.finish();
}

criterion_group!(benches, bodies, urls, headers);
criterion_main!(benches);
