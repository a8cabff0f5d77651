//! Making a bottle CA: one function for the launcher (a fresh CA per bottle) and for
//! `pipelock ca init` (a CA the operator keeps), so both issue the same kind of certificate.

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, KeyPair, KeyUsagePurpose,
    SerialNumber,
};
use time::{Duration, OffsetDateTime};
use zeroize::Zeroizing;

/// A freshly generated CA, both halves PEM. The key is zeroed when dropped.
pub struct NewCa {
    /// The certificate (`ca.crt`).
    pub cert_pem: String,
    /// The PKCS#8 private key (`ca.key`; write it 0600).
    pub key_pem: Zeroizing<String>,
}

impl std::fmt::Debug for NewCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewCa")
            .field("cert_pem", &self.cert_pem)
            .field("key_pem", &"[REDACTED]")
            .finish()
    }
}

/// Generates a self-signed CA: ECDSA P-256, subject `CN=<common_name>, O=bottle`, path length
/// 0 (it signs leaves only), random serial, valid from an hour ago (clock skew between the
/// host and the containers) for `validity`.
pub fn generate_ca(common_name: &str, validity: Duration) -> Result<NewCa, rcgen::Error> {
    let key = KeyPair::generate()?;
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, common_name);
    dn.push(DnType::OrganizationName, "bottle");
    params.distinguished_name = dn;
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params.serial_number = Some(random_serial());
    let now = OffsetDateTime::now_utc();
    params.not_before = now - Duration::hours(1);
    params.not_after = now + validity;
    let cert = params.self_signed(&key)?;
    Ok(NewCa {
        cert_pem: cert.pem(),
        key_pem: Zeroizing::new(key.serialize_pem()),
    })
}

/// A random positive 128-bit certificate serial (RFC 5280: at most 20 octets, positive).
pub fn random_serial() -> SerialNumber {
    let mut bytes: [u8; 16] = rand::random();
    bytes[0] &= 0x7f; // positive
    bytes[0] |= 0x01; // no leading zero byte for DER to strip
    SerialNumber::from_slice(&bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ca_is_fresh_constrained_and_dated() {
        let a = generate_ca("bottle CA t", Duration::days(30)).unwrap();
        let b = generate_ca("bottle CA t", Duration::days(30)).unwrap();
        assert_ne!(*a.key_pem, *b.key_pem);
        assert!(a.key_pem.contains("BEGIN PRIVATE KEY"));
        assert!(!format!("{a:?}").contains("PRIVATE KEY"));

        let der = rustls_pemfile::certs(&mut a.cert_pem.as_bytes())
            .next()
            .unwrap()
            .unwrap();
        let (_, x509) = x509_parser::parse_x509_certificate(&der).unwrap();
        assert!(x509.is_ca());
        let bc = x509.basic_constraints().unwrap().unwrap().value;
        assert_eq!(bc.path_len_constraint, Some(0));
        assert!(x509.subject().to_string().contains("CN=bottle CA t"));
        let days = (x509.validity().not_after.timestamp() - x509.validity().not_before.timestamp())
            / 86_400;
        assert_eq!(
            days, 30,
            "30 days plus the hour of skew allowance rounds down to 30"
        );
        let serial = x509.raw_serial();
        assert_eq!(serial.len(), 16);
        assert!(serial[0] & 0x80 == 0 && serial[0] != 0);
    }
}
