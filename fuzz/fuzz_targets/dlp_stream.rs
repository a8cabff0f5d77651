//! Streaming: cut the input into chunks chosen by the fuzzer; the scanner
//! never holds more than its window, forwards exactly the input when clean,
//! and (for inputs that fit in the window) agrees with `detect`.
#![no_main]
use bottle_dlp::{Detector, STREAM_WINDOW};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if data.len() < 2 {
        return;
    }
    let cuts = &data[..data.len().min(8)];
    let body = &data[cuts.len().min(data.len() - 1)..];
    let det = Detector::builtin();
    let mut s = det.stream();
    let mut out = Vec::new();
    let mut pos = 0;
    let mut k = 0;
    let mut failed = false;
    while pos < body.len() {
        let n = (usize::from(cuts[k % cuts.len()]) * 37 + 1).min(body.len() - pos);
        k += 1;
        match s.push(bytes::Bytes::copy_from_slice(&body[pos..pos + n])) {
            Ok(b) => out.extend_from_slice(&b),
            Err(f) => {
                assert!(f.offset + f.len <= body.len(), "{f}");
                failed = true;
                break;
            }
        }
        assert!(s.buffered() <= STREAM_WINDOW);
        pos += n;
    }
    if !failed {
        match s.finish() {
            Ok(b) => {
                out.extend_from_slice(&b);
                assert_eq!(out, body, "clean stream must forward the input unchanged");
            }
            Err(_) => failed = true,
        }
    }
    if body.len() <= STREAM_WINDOW {
        assert_eq!(
            failed,
            !det.detect(body).is_empty(),
            "stream and detect disagree"
        );
    }
});
