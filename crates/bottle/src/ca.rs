//! The per-bottle CA (fresh for every bottle) and the agent's CA bundle.

use base64::Engine;
pub use bottle_core::ca::NewCa;

use crate::error::{Error, Result};

/// Generate a CA for one bottle (ECDSA P-256, valid 30 days, path length 0).
pub fn generate(slug: &str) -> Result<NewCa> {
    bottle_core::ca::generate_ca(&format!("bottle CA {slug}"), time::Duration::days(30))
        .map_err(|e| Error::Ca(e.to_string()))
}

/// PEM of the public web roots (webpki-root-certs) followed by `extra` (the bottle CA).
pub fn bundle(extra_pem: &str) -> String {
    let mut out = String::new();
    for der in webpki_root_certs::TLS_SERVER_ROOT_CERTS {
        out.push_str(&pem("CERTIFICATE", der.as_ref()));
    }
    out.push_str("# bottle CA\n");
    out.push_str(extra_pem);
    if !out.ends_with('\n') {
        out.push('\n');
    }
    out
}

fn pem(label: &str, der: &[u8]) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut s = format!("-----BEGIN {label}-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        s.push_str(&String::from_utf8_lossy(chunk));
        s.push('\n');
    }
    s.push_str(&format!("-----END {label}-----\n"));
    s
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn ca_is_fresh_and_bundle_contains_it() {
        let a = generate("t-aaaaa").unwrap();
        let b = generate("t-bbbbb").unwrap();
        assert_ne!(*a.key_pem, *b.key_pem);
        assert!(a.cert_pem.starts_with("-----BEGIN CERTIFICATE-----"));
        assert!(a.key_pem.contains("PRIVATE KEY"));
        let bundle = bundle(&a.cert_pem);
        assert!(bundle.ends_with(&a.cert_pem));
        assert!(bundle.matches("BEGIN CERTIFICATE").count() > 100);
        assert!(!bundle.contains("PRIVATE KEY"));
    }
}
