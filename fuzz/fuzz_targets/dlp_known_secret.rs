//! A known secret (printable, >= 8 bytes, taken from the input) embedded in
//! arbitrary surroundings, raw or base64/hex/percent encoded, is always found.
#![no_main]
use base64::Engine as _;
use bottle_dlp::{Detector, DetectorConfig, Zeroizing, KNOWN_SECRET};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if data.len() < 10 {
        return;
    }
    let mode = data[0] % 5;
    let slen = 8 + usize::from(data[1] % 24);
    if data.len() < 2 + slen {
        return;
    }
    let secret: String = data[2..2 + slen]
        .iter()
        .map(|&b| char::from(b'!' + b % 94))
        .collect();
    let rest = &data[2 + slen..];
    let split = rest.len() / 2;
    let (pre, post) = rest.split_at(split);
    let encoded: Vec<u8> = match mode {
        0 => secret.as_bytes().to_vec(),
        1 => {
            // base64 of (prefix ++ secret ++ suffix): any alignment
            let mut raw = pre.to_vec();
            raw.extend_from_slice(secret.as_bytes());
            raw.extend_from_slice(post);
            base64::engine::general_purpose::STANDARD
                .encode(raw)
                .into_bytes()
        }
        2 => base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(secret.as_bytes())
            .into_bytes(),
        3 => secret
            .bytes()
            .flat_map(|b| format!("{b:02x}").into_bytes())
            .collect(),
        _ => secret
            .bytes()
            .flat_map(|b| format!("%{b:02X}").into_bytes())
            .collect(),
    };
    let mut body = Vec::new();
    if mode != 1 {
        body.extend_from_slice(pre);
    }
    body.extend_from_slice(&encoded);
    if mode != 1 {
        body.extend_from_slice(post);
    }
    let det = Detector::new(DetectorConfig {
        known_secrets: vec![Zeroizing::new(secret)],
        ..Default::default()
    });
    let f = det.detect(&body);
    assert!(
        f.iter().any(|f| f.detector == KNOWN_SECRET),
        "known secret not found (mode {mode})"
    );
});
