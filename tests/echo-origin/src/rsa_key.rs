//! RSA key generation for [`crate::TestCa::new_rsa`].
//!
//! ring (rcgen's backend here) cannot generate RSA keys, so the key comes from the pure-Rust
//! `rsa` crate. Generating a 2048-bit key in a debug build takes seconds, so the key is made
//! once per process and cached in a file in the temp dir (written atomically, mode 0600) so
//! the many test processes of one run share it (trusted only if owned by us with mode 0600).
//! The CA certificate around it is fresh on every call.

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

/// The real uid of this process, from /proc (no libc needed).
fn my_uid() -> Option<u32> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
}

fn load_cached() -> Option<String> {
    use std::os::unix::fs::MetadataExt;
    let path = cache_path();
    // Trust the shared temp dir only for a file we own that nobody else can read or write
    // (another user could otherwise plant a key of their choosing).
    let meta = std::fs::symlink_metadata(&path).ok()?;
    if !meta.file_type().is_file() || meta.mode() & 0o077 != 0 || Some(meta.uid()) != my_uid() {
        return None;
    }
    let pem = std::fs::read_to_string(&path).ok()?;
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

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn uid_is_readable() {
        assert!(my_uid().is_some());
    }

    #[test]
    fn key_is_rsa_2048_and_stable_within_a_process() {
        let a = rsa_pkcs8_pem().unwrap();
        let b = rsa_pkcs8_pem().unwrap();
        assert_eq!(a, b);
        let k = rsa::RsaPrivateKey::from_pkcs8_pem(&a).unwrap();
        use rsa::traits::PublicKeyParts;
        assert_eq!(k.size(), 256);
        // The cache file, if written, is private.
        if let Ok(m) = std::fs::metadata(cache_path()) {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(m.permissions().mode() & 0o077, 0);
        }
    }
}
