//! A throw-away certificate authority generated at test time.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SerialNumber,
};
use ring::rand::{SecureRandom, SystemRandom};
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::EchoError;

/// A test CA: a self-signed CA certificate and its private key.
///
/// Cheap to clone (two strings). The key never leaves the struct except through
/// [`TestCa::key_pem`].
#[derive(Clone)]
pub struct TestCa {
    /// The CA certificate, PEM.
    pub cert_pem: String,
    key_pem: String,
}

impl std::fmt::Debug for TestCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestCa")
            .field("cert_pem", &self.cert_pem)
            .field("key_pem", &"[REDACTED]")
            .finish()
    }
}

impl Default for TestCa {
    fn default() -> Self {
        Self::new()
    }
}

fn random_serial() -> Result<SerialNumber, EchoError> {
    let mut bytes = [0u8; 16];
    SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| EchoError::Random)?;
    bytes[0] &= 0x7f; // positive
    bytes[0] |= 0x01; // no leading zero byte
    Ok(SerialNumber::from_slice(&bytes))
}

fn ca_params(common_name: &str) -> Result<CertificateParams, EchoError> {
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, common_name);
    dn.push(DnType::OrganizationName, "echo-origin tests");
    params.distinguished_name = dn;
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params.serial_number = Some(random_serial()?);
    let now = time_now();
    params.not_before = now - std::time::Duration::from_secs(86_400);
    params.not_after = now + std::time::Duration::from_secs(86_400 * 3650);
    Ok(params)
}

fn time_now() -> time::OffsetDateTime {
    time::OffsetDateTime::now_utc()
}

impl TestCa {
    /// A fresh ECDSA P-256 CA.
    ///
    /// Panics only if the system random generator fails (it cannot on Linux).
    pub fn new() -> TestCa {
        #[allow(clippy::expect_used)]
        // invariant: key generation with ring only fails without an OS RNG
        Self::try_new().expect("generating an ECDSA test CA")
    }

    /// A fresh ECDSA P-256 CA, reporting errors.
    pub fn try_new() -> Result<TestCa, EchoError> {
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
        Self::self_signed(key, "echo-origin test CA (ECDSA)")
    }

    /// A fresh RSA CA (2048-bit key, SHA-256 signatures).
    ///
    /// ring cannot generate RSA keys, so the key is generated with the pure-Rust
    /// `rsa` crate, once per process (later calls reuse the key with a fresh
    /// certificate: distinct serial and subject).
    pub fn new_rsa() -> TestCa {
        #[allow(clippy::expect_used)] // invariant: RSA generation only fails without an OS RNG
        Self::try_new_rsa().expect("generating an RSA test CA")
    }

    /// A fresh RSA CA, reporting errors.
    pub fn try_new_rsa() -> Result<TestCa, EchoError> {
        let pem = crate::rsa_key::rsa_pkcs8_pem()?;
        let key = KeyPair::from_pkcs8_pem_and_sign_algo(&pem, &rcgen::PKCS_RSA_SHA256)?;
        Self::self_signed(key, "echo-origin test CA (RSA)")
    }

    fn self_signed(key: KeyPair, name: &str) -> Result<TestCa, EchoError> {
        let mut suffix = [0u8; 4];
        SystemRandom::new()
            .fill(&mut suffix)
            .map_err(|_| EchoError::Random)?;
        let params = ca_params(&format!("{name} {}", hex::encode(suffix)))?;
        let cert = params.self_signed(&key)?;
        Ok(TestCa {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }

    /// Loads a CA from its certificate and private key (PKCS#8, SEC1 or PKCS#1 PEM).
    pub fn from_pem(cert_pem: &str, key_pem: &str) -> Result<TestCa, EchoError> {
        let key = KeyPair::from_pem(key_pem)?;
        // Check that the certificate parses as an issuer.
        Issuer::from_ca_cert_pem(cert_pem, key)?;
        Ok(TestCa {
            cert_pem: cert_pem.to_string(),
            key_pem: key_pem.to_string(),
        })
    }

    /// The CA private key, PEM.
    pub fn key_pem(&self) -> String {
        self.key_pem.clone()
    }

    /// The CA certificate, DER.
    pub fn cert_der(&self) -> Result<CertificateDer<'static>, EchoError> {
        first_cert(&self.cert_pem)
    }

    /// Issues a server (and client) leaf certificate for `names` (DNS names or IP literals,
    /// all put in the SAN). Returns (chain PEM = leaf then CA, leaf key PEM). The leaf key is
    /// ECDSA P-256.
    ///
    /// Panics only if a name is not a valid DNS name / IP literal, or the OS RNG fails.
    pub fn issue(&self, names: &[&str]) -> (String, String) {
        #[allow(clippy::expect_used)] // documented: panics on invalid names (test helper)
        self.try_issue(names)
            .expect("issuing a test leaf certificate")
    }

    /// Like [`TestCa::issue`], reporting errors.
    pub fn try_issue(&self, names: &[&str]) -> Result<(String, String), EchoError> {
        let ca_key = KeyPair::from_pem(&self.key_pem)?;
        let issuer = Issuer::from_ca_cert_pem(&self.cert_pem, ca_key)?;
        let sans: Vec<String> = names
            .iter()
            .map(|n| n.trim_start_matches('[').trim_end_matches(']').to_string())
            .collect();
        let mut params = CertificateParams::new(sans)?;
        let mut dn = DistinguishedName::new();
        dn.push(
            DnType::CommonName,
            names.first().copied().unwrap_or("echo-origin"),
        );
        params.distinguished_name = dn;
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        params.use_authority_key_identifier_extension = true;
        params.serial_number = Some(random_serial()?);
        let now = time_now();
        params.not_before = now - std::time::Duration::from_secs(86_400);
        params.not_after = now + std::time::Duration::from_secs(86_400 * 365);
        let leaf_key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
        let leaf = params.signed_by(&leaf_key, &issuer)?;
        let mut chain = leaf.pem();
        if !chain.ends_with('\n') {
            chain.push('\n');
        }
        chain.push_str(&self.cert_pem);
        Ok((chain, leaf_key.serialize_pem()))
    }

    /// Writes `ca.crt` (the CA certificate PEM) into `dir` and returns its path.
    ///
    /// Panics if the file cannot be written (test helper); see [`TestCa::try_write_cert`].
    pub fn write_cert(&self, dir: &Path) -> PathBuf {
        #[allow(clippy::expect_used)] // documented: test helper panics on I/O errors
        self.try_write_cert(dir).expect("writing ca.crt")
    }

    /// Like [`TestCa::write_cert`], reporting errors.
    pub fn try_write_cert(&self, dir: &Path) -> std::io::Result<PathBuf> {
        std::fs::create_dir_all(dir)?;
        let path = dir.join("ca.crt");
        // Leave an identical file alone (the directory may be a read-only mount).
        if std::fs::read_to_string(&path).is_ok_and(|s| s == self.cert_pem) {
            return Ok(path);
        }
        std::fs::write(&path, &self.cert_pem)?;
        Ok(path)
    }

    /// Writes `ca.key` (mode 0600) into `dir` and returns its path.
    pub fn write_key(&self, dir: &Path) -> std::io::Result<PathBuf> {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        std::fs::create_dir_all(dir)?;
        let path = dir.join("ca.key");
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&path)?;
        f.write_all(self.key_pem.as_bytes())?;
        Ok(path)
    }

    /// A rustls client config (ring provider) that trusts only this CA, with the given ALPN
    /// protocols (e.g. `&[b"h2", b"http/1.1"]`).
    pub fn client_config(&self, alpn: &[&[u8]]) -> Result<Arc<rustls::ClientConfig>, EchoError> {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(self.cert_der()?)?;
        let mut cfg = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
        cfg.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        Ok(Arc::new(cfg))
    }

    /// A rustls server config (ring provider) presenting a leaf for `names` issued by this CA,
    /// offering ALPN `h2` and `http/1.1`.
    pub fn server_config(&self, names: &[&str]) -> Result<Arc<rustls::ServerConfig>, EchoError> {
        let (chain_pem, key_pem) = self.try_issue(names)?;
        server_config_from_pem(&chain_pem, &key_pem)
    }
}

/// A rustls server config (ring provider) from a chain and key PEM, offering ALPN `h2` and
/// `http/1.1`.
pub fn server_config_from_pem(
    chain_pem: &str,
    key_pem: &str,
) -> Result<Arc<rustls::ServerConfig>, EchoError> {
    let chain = parse_certs(chain_pem)?;
    let key = parse_key(key_pem)?;
    let mut cfg = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_no_client_auth()
    .with_single_cert(chain, key)?;
    cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(cfg))
}

/// Parses every certificate in a PEM string.
pub fn parse_certs(pem: &str) -> Result<Vec<CertificateDer<'static>>, EchoError> {
    let mut rd = pem.as_bytes();
    let certs = rustls_pemfile::certs(&mut rd)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| EchoError::Pem(e.to_string()))?;
    if certs.is_empty() {
        return Err(EchoError::Pem("no CERTIFICATE block".into()));
    }
    Ok(certs)
}

fn first_cert(pem: &str) -> Result<CertificateDer<'static>, EchoError> {
    parse_certs(pem)?
        .into_iter()
        .next()
        .ok_or_else(|| EchoError::Pem("no CERTIFICATE block".into()))
}

/// Parses the first private key in a PEM string.
pub fn parse_key(pem: &str) -> Result<PrivateKeyDer<'static>, EchoError> {
    let mut rd = pem.as_bytes();
    rustls_pemfile::private_key(&mut rd)
        .map_err(|e| EchoError::Pem(e.to_string()))?
        .ok_or_else(|| EchoError::Pem("no private key block".into()))
}
