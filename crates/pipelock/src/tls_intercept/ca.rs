//! The bottle CA: `ca init` and minting leaf certificates signed by `--ca-cert`/`--ca-key`.

use std::fs::OpenOptions;
use std::io::Write;
use std::net::IpAddr;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::sync::Arc;

use bottle_core::ca::{generate_ca, random_serial};
use rcgen::{
    CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};
use rustls::crypto::ring::sign::any_supported_type;
use rustls::sign::CertifiedKey;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use sha2::{Digest, Sha256};
use time::{Duration, OffsetDateTime};

use crate::error::PipelockError;

/// Validity of minted leaves. Short enough to limit a leaked leaf, long enough for a session.
const LEAF_VALIDITY: Duration = Duration::days(30);

/// A loaded CA able to sign leaf certificates.
pub struct Ca {
    issuer: Issuer<'static, KeyPair>,
    ca_der: CertificateDer<'static>,
    /// SHA-256 of the CA certificate (DER), hex.
    pub fingerprint: String,
}

impl std::fmt::Debug for Ca {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ca")
            .field("fingerprint", &self.fingerprint)
            .finish_non_exhaustive()
    }
}

fn ca_err(msg: impl Into<String>) -> PipelockError {
    PipelockError::Ca(msg.into())
}

impl Ca {
    /// Loads a CA from PEM files. The key must be PKCS#8 ("PRIVATE KEY"), ECDSA P-256/P-384 or RSA.
    pub fn load(cert_path: &Path, key_path: &Path) -> Result<Ca, PipelockError> {
        let cert_pem = std::fs::read_to_string(cert_path)
            .map_err(|e| ca_err(format!("{}: {e}", cert_path.display())))?;
        let key_pem = std::fs::read_to_string(key_path)
            .map_err(|e| ca_err(format!("{}: {e}", key_path.display())))?;
        Self::from_pem(&cert_pem, &key_pem)
    }

    /// Builds a CA from PEM text (certificate and PKCS#8 private key).
    pub fn from_pem(cert_pem: &str, key_pem: &str) -> Result<Ca, PipelockError> {
        let key = KeyPair::from_pem(key_pem).map_err(|e| {
            let hint = if key_pem.contains("BEGIN RSA PRIVATE KEY")
                || key_pem.contains("BEGIN EC PRIVATE KEY")
            {
                " (convert it to PKCS#8: openssl pkcs8 -topk8 -nocrypt)"
            } else {
                ""
            };
            ca_err(format!("CA key: {e}{hint}"))
        })?;
        let mut cert_bytes = cert_pem.as_bytes();
        let mut certs = rustls_pemfile::certs(&mut cert_bytes);
        let ca_der = match certs.next() {
            Some(Ok(c)) => c,
            Some(Err(e)) => return Err(ca_err(format!("CA certificate: {e}"))),
            None => return Err(ca_err("CA certificate: no CERTIFICATE block")),
        };
        let (_, x509) = x509_parser::parse_x509_certificate(&ca_der)
            .map_err(|e| ca_err(format!("CA certificate: {e}")))?;
        if !x509.is_ca() {
            return Err(ca_err(
                "CA certificate is not a CA (basicConstraints CA:FALSE)",
            ));
        }
        if x509.public_key().subject_public_key.data.as_ref() != key.public_key_raw() {
            return Err(ca_err("CA key does not match the CA certificate"));
        }
        let issuer = Issuer::from_ca_cert_der(&ca_der, key)
            .map_err(|e| ca_err(format!("CA certificate: {e}")))?;
        let fingerprint = hex::encode(Sha256::digest(ca_der.as_ref()));
        Ok(Ca {
            issuer,
            ca_der,
            fingerprint,
        })
    }

    /// The CA certificate (DER).
    pub fn cert_der(&self) -> &CertificateDer<'static> {
        &self.ca_der
    }

    /// Mints a leaf for `host` (a DNS name or an IP literal): fresh P-256 key, random serial,
    /// SAN = host, chain [leaf, CA]. CPU-bound (one keygen + one signature).
    pub fn mint(&self, host: &str) -> Result<Arc<CertifiedKey>, PipelockError> {
        let leaf_key = KeyPair::generate().map_err(|e| ca_err(format!("leaf key: {e}")))?;
        let mut params = CertificateParams::default();
        params.subject_alt_names = vec![match host.parse::<IpAddr>() {
            Ok(ip) => SanType::IpAddress(ip),
            Err(_) => SanType::DnsName(
                host.to_string()
                    .try_into()
                    .map_err(|e| ca_err(format!("leaf name {host:?}: {e}")))?,
            ),
        }];
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, host);
        params.distinguished_name = dn;
        params.serial_number = Some(random_serial());
        let now = OffsetDateTime::now_utc();
        params.not_before = now - Duration::hours(1);
        params.not_after = now + LEAF_VALIDITY;
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.use_authority_key_identifier_extension = true;
        let cert = params
            .signed_by(&leaf_key, &self.issuer)
            .map_err(|e| ca_err(format!("signing leaf for {host}: {e}")))?;
        let key_der = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf_key.serialize_der()));
        let signing = any_supported_type(&key_der).map_err(|e| ca_err(format!("leaf key: {e}")))?;
        Ok(Arc::new(CertifiedKey::new(
            vec![cert.der().clone(), self.ca_der.clone()],
            signing,
        )))
    }
}

/// `pipelock ca init --out DIR`: writes a fresh ECDSA P-256 CA as DIR/ca.crt and DIR/ca.key (0600).
pub fn init_ca(out: &Path) -> Result<(), PipelockError> {
    std::fs::create_dir_all(out).map_err(|e| ca_err(format!("{}: {e}", out.display())))?;
    let tag: [u8; 4] = rand::random();
    let ca = generate_ca(
        &format!("bottle CA {}", hex::encode(tag)),
        Duration::days(3650),
    )
    .map_err(|e| ca_err(format!("CA certificate: {e}")))?;
    write_file(&out.join("ca.crt"), ca.cert_pem.as_bytes(), 0o644)?;
    write_file(&out.join("ca.key"), ca.key_pem.as_bytes(), 0o600)?;
    Ok(())
}

fn write_file(path: &Path, data: &[u8], mode: u32) -> Result<(), PipelockError> {
    let err = |e: std::io::Error| ca_err(format!("{}: {e}", path.display()));
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .map_err(err)?;
    f.write_all(data).map_err(err)?;
    f.sync_all().map_err(err)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn init_then_load_and_mint() {
        let dir = tempfile::tempdir().unwrap();
        init_ca(dir.path()).unwrap();
        let meta = std::fs::metadata(dir.path().join("ca.key")).unwrap();
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
        // refuses to overwrite
        assert!(init_ca(dir.path()).is_err());
        let ca = Ca::load(&dir.path().join("ca.crt"), &dir.path().join("ca.key")).unwrap();
        let a = ca.mint("example.com").unwrap();
        let b = ca.mint("example.com").unwrap();
        assert_eq!(a.cert.len(), 2);
        assert_eq!(a.cert[1].as_ref(), ca.cert_der().as_ref());
        let (_, pa) = x509_parser::parse_x509_certificate(&a.cert[0]).unwrap();
        let (_, pb) = x509_parser::parse_x509_certificate(&b.cert[0]).unwrap();
        assert_ne!(pa.raw_serial(), pb.raw_serial());
        let ip = ca.mint("127.0.0.1").unwrap();
        let (_, pi) = x509_parser::parse_x509_certificate(&ip.cert[0]).unwrap();
        let san = pi.subject_alternative_name().unwrap().unwrap();
        assert!(format!("{:?}", san.value).contains("IPAddress"));
    }

    #[test]
    fn mismatched_key_is_refused() {
        let d1 = tempfile::tempdir().unwrap();
        let d2 = tempfile::tempdir().unwrap();
        init_ca(d1.path()).unwrap();
        init_ca(d2.path()).unwrap();
        let err = Ca::load(&d1.path().join("ca.crt"), &d2.path().join("ca.key")).unwrap_err();
        assert!(err.to_string().contains("does not match"), "{err}");
    }
}
