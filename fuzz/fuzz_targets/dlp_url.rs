//! `scan_url`, `redact_url` and `scan_header` on arbitrary strings.
#![no_main]
use bottle_dlp::{redact_url, Detector, DetectorConfig};
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

fuzz_target!(|data: &[u8]| {
    static ENT: OnceLock<Detector> = OnceLock::new();
    let ent = ENT.get_or_init(|| {
        Detector::new(DetectorConfig {
            entropy_urls: true,
            ..Default::default()
        })
    });
    let Ok(url) = std::str::from_utf8(data) else {
        let _ = Detector::builtin().scan_header("authorization", data);
        let _ = Detector::builtin().scan_header("cookie", data);
        return;
    };
    let f = ent.scan_url(url);
    for x in &f {
        assert!(x.offset + x.len <= url.len(), "{x}");
    }
    let red = redact_url(url, &f);
    if !f.is_empty() {
        assert!(red.contains("[REDACTED]"));
    }
    let _ = Detector::builtin().scan_header(url, url.as_bytes());
});
