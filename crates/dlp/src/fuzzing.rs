//! Entry points for the fuzz targets in `fuzz/` (feature `fuzzing`): the
//! internal decoders, with their invariants checked by assertions.

use crate::decode;

/// Normalise and check the offset map is consistent.
pub fn normalize(input: &[u8]) {
    if let Some((out, map)) = decode::normalize(input, 4) {
        assert_eq!(out.len(), map.len());
        assert!(out.len() <= input.len(), "normalisation grew the input");
        assert!(map.iter().all(|&m| (m as usize) < input.len()));
        assert!(
            map.windows(2).all(|w| w[0] <= w[1]),
            "offset map not monotonic"
        );
    }
}

/// base64 / hex / percent decoders: never longer than the input.
pub fn decoders(input: &[u8]) {
    let mut out = Vec::new();
    decode::b64_decode(input, &mut out);
    assert!(out.len() <= input.len() * 3 / 4 + 1);
    for (i, _) in out.iter().enumerate() {
        let (s, e) = decode::b64_span(i, i + 1);
        assert!(s < e && e <= input.len().max(e));
    }
    decode::hex_decode(input, &mut out);
    assert!(out.len() <= input.len() / 2);
    assert!(decode::percent_decode(input, true).len() <= input.len());
    assert!(decode::percent_decode(input, false).len() <= input.len());
    for i in 0..input.len().min(64) {
        let _ = decode::is_trigger(&input[i..]);
        let _ = decode::utf8_at(&input[i..]);
    }
}

/// Rough per-stage timings and counts, for tuning (`examples/profile.rs`).
pub fn profile(data: &[u8]) -> Vec<(&'static str, f64, usize)> {
    use std::time::Instant;
    let det = crate::Detector::builtin();
    let e = &det.inner.engine;
    let mut out = Vec::new();
    let t = Instant::now();
    let hits = e.count_anchor_hits(data);
    out.push(("anchor hits", t.elapsed().as_secs_f64() * 1e3, hits));
    let t = Instant::now();
    let mut v = Vec::new();
    e.scan_patterns_pub(data, &mut v);
    out.push((
        "patterns (anchors+regex)",
        t.elapsed().as_secs_f64() * 1e3,
        v.len(),
    ));
    let t = Instant::now();
    let (runs, trig) = e.count_runs(data);
    out.push(("run scan: runs", t.elapsed().as_secs_f64() * 1e3, runs));
    out.push(("run scan: triggers", 0.0, trig));
    let t = Instant::now();
    let n = det.detect(data).len();
    out.push(("detect total", t.elapsed().as_secs_f64() * 1e3, n));
    out
}
