//! Throughput of the WebSocket frame codec's hot paths: unmasking a client payload,
//! following frame boundaries through a written stream, and parsing headers.
//! Run: `cargo run -p bottle-core --profile bench --example ws_frame_throughput`.
#![forbid(unsafe_code)]

use std::hint::black_box;
use std::time::Instant;

use bottle_core::ws_frame::{apply_mask, encode_frame, opcode, FrameBoundaries, FrameHeader};

fn mib_per_s(bytes: usize, rounds: usize, start: Instant) -> f64 {
    (bytes * rounds) as f64 / (1 << 20) as f64 / start.elapsed().as_secs_f64()
}

fn main() {
    let payload = vec![0x5au8; 1 << 20];
    let rounds = 200;

    let mut buf = payload.clone();
    let start = Instant::now();
    for i in 0..rounds {
        apply_mask(black_box(&mut buf), [1, 2, 3, 4], i as u64);
    }
    println!(
        "apply_mask (1 MiB frames): {:.0} MiB/s",
        mib_per_s(buf.len(), rounds, start)
    );

    // A stream of 4 KiB masked frames, written in 16 KiB pieces.
    let mut stream = Vec::new();
    while stream.len() < (1 << 20) {
        encode_frame(
            &mut stream,
            true,
            opcode::BINARY,
            Some([9, 8, 7, 6]),
            &payload[..4096],
        );
    }
    let start = Instant::now();
    for _ in 0..rounds {
        let mut b = FrameBoundaries::default();
        for piece in stream.chunks(16 * 1024) {
            b.feed(black_box(piece));
        }
        assert!(b.at_boundary());
    }
    println!(
        "FrameBoundaries::feed (4 KiB frames): {:.0} MiB/s",
        mib_per_s(stream.len(), rounds, start)
    );

    let headers: Vec<Vec<u8>> = [0usize, 125, 300, 70_000]
        .iter()
        .map(|&n| {
            let mut f = Vec::new();
            encode_frame(
                &mut f,
                true,
                opcode::TEXT,
                Some([1, 2, 3, 4]),
                &payload[..n],
            );
            f.truncate(14);
            f
        })
        .collect();
    let n = 10_000_000;
    let start = Instant::now();
    for i in 0..n {
        black_box(FrameHeader::parse(black_box(&headers[i % headers.len()])));
    }
    println!(
        "FrameHeader::parse: {:.1} ns/header",
        start.elapsed().as_nanos() as f64 / n as f64
    );
}
