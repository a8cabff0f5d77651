//! `detect` on arbitrary bytes: no panics, findings inside the input.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    for f in bottle_dlp::detect(data) {
        assert!(f.offset <= data.len(), "{f}");
        assert!(f.offset + f.len <= data.len(), "{f}");
    }
});
