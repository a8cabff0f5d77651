//! The DLP decoders (percent, base64, hex, \u escapes, Unicode folding):
//! no panics, bounded output, consistent offset maps.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    bottle_dlp::fuzzing::decoders(data);
    bottle_dlp::fuzzing::normalize(data);
});
