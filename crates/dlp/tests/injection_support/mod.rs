//! Helpers shared by the prompt-injection test files (injection, injection_hiding,
//! injection_stream): which detectors fire on a body, and the two assertions on that.
#![allow(dead_code)]

use bottle_dlp::injection::{scan_injection, ContentKind};

/// The detectors that fire on `body` read as `kind`.
pub fn ids(body: &str, kind: ContentKind) -> Vec<&'static str> {
    scan_injection(body.as_bytes(), kind)
        .into_iter()
        .map(|f| f.detector)
        .collect()
}

/// `detector` fires on `body`.
pub fn assert_fires(body: &str, kind: ContentKind, detector: &str) {
    let found = ids(body, kind);
    assert!(
        found.contains(&detector),
        "expected {detector} in {kind:?}, got {found:?}:\n{body}"
    );
}

/// Nothing fires on `body`.
pub fn assert_quiet(body: &str, kind: ContentKind) {
    let found = scan_injection(body.as_bytes(), kind);
    assert!(
        found.is_empty(),
        "expected nothing in {kind:?}, got {found:?}:\n{body}"
    );
}
