//! RSA key generation for [`crate::TestCa::new_rsa`].
//!
//! ring (rcgen's backend here) cannot generate RSA keys, so the key comes from the pure-Rust
//! `rsa` crate. Generating a 2048-bit key in a debug build takes seconds, so the key is made
//! once per process and cached in a file in the temp dir (written atomically, mode 0600) so
//! the many test processes of one run share it. The CA certificate around it is fresh on
//! every call.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;
use std::sync::OnceLock;

use rsa::pkcs8::{DecodePrivateKey, EncodePrivateKey, LineEnding};

use crate::EchoError;

static KEY: OnceLock<String> = OnceLock::new();

fn cache_path() -> PathBuf {
    std::env::temp_dir().join("echo-origin-test-rsa2048-v1.pem")
}

fn load_cached() -> Option<String> {
    let pem = std::fs::read_to_string(cache_path()).ok()?;
    // Accept it only if it parses as an RSA PKCS#8 key.
    rsa::RsaPrivateKey::from_pkcs8_pem(&pem).ok()?;
    Some(pem)
}

fn generate() -> Result<String, EchoError> {
    let mut rng = rsa::rand_core::OsRng;
    let key = rsa::RsaPrivateKey::new(&mut rng, 2048).map_err(|e| EchoError::Rsa(e.to_string()))?;
    let pem = key
        .to_pkcs8_pem(LineEnding::LF)
        .map_err(|e| EchoError::Rsa(e.to_string()))?;
    let pem: String = pem.as_str().to_string();
    // Best effort cache: a failure to write only costs time later.
    let dir = std::env::temp_dir();
    let tmp = dir.join(format!(
        "echo-origin-test-rsa2048-v1.{}.tmp",
        std::process::id()
    ));
    let written = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .and_then(|mut f| f.write_all(pem.as_bytes()))
        .and_then(|()| std::fs::rename(&tmp, cache_path()));
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    Ok(pem)
}

/// A 2048-bit RSA private key, PKCS#8 PEM.
pub(crate) fn rsa_pkcs8_pem() -> Result<String, EchoError> {
    if let Some(k) = KEY.get() {
        return Ok(k.clone());
    }
    let pem = match load_cached() {
        Some(p) => p,
        None => generate()?,
    };
    Ok(KEY.get_or_init(|| pem).clone())
}
