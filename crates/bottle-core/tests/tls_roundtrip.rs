//! Real TLS: a server with a leaf from a test CA; the upstream client config trusts it only
//! when the CA is passed as extra CA.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use bottle_core::tls::{load_certs, load_key, provider, upstream_client_config};
use bottle_core::upstream::UpstreamConn;
use hyper_util::client::legacy::connect::Connection;
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
use rustls_pki_types::ServerName;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

struct Pki {
    _dir: tempfile::TempDir,
    ca_pem: std::path::PathBuf,
    other_pem: std::path::PathBuf,
    leaf_pem: std::path::PathBuf,
    key_pem: std::path::PathBuf,
}

fn make_pki() -> Pki {
    let dir = tempfile::tempdir().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
    let mut other_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    other_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let other = CertifiedIssuer::self_signed(other_params, KeyPair::generate().unwrap()).unwrap();
    let leaf_key = KeyPair::generate().unwrap();
    let leaf = CertificateParams::new(vec!["localhost".to_string()])
        .unwrap()
        .signed_by(&leaf_key, &ca)
        .unwrap();
    let p = |n: &str| dir.path().join(n);
    // The bundle holds an unrelated CA first and ours second: every cert must be added.
    std::fs::write(p("bundle.pem"), format!("{}{}", other.pem(), ca.pem())).unwrap();
    std::fs::write(p("other.pem"), other.pem()).unwrap();
    std::fs::write(p("leaf.pem"), leaf.pem()).unwrap();
    std::fs::write(p("key.pem"), leaf_key.serialize_pem()).unwrap();
    Pki {
        ca_pem: p("bundle.pem"),
        other_pem: p("other.pem"),
        leaf_pem: p("leaf.pem"),
        key_pem: p("key.pem"),
        _dir: dir,
    }
}

async fn server(pki: &Pki) -> std::net::SocketAddr {
    let certs = load_certs(&pki.leaf_pem).unwrap();
    let key = load_key(&pki.key_pem).unwrap();
    let mut cfg = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .unwrap();
    cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(cfg));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((s, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                if let Ok(mut tls) = acceptor.accept(s).await {
                    let mut buf = [0u8; 4];
                    if tls.read_exact(&mut buf).await.is_ok() {
                        let _ = tls.write_all(&buf).await;
                        let _ = tls.shutdown().await;
                    }
                }
            });
        }
    });
    addr
}

async fn connect(
    cfg: Arc<rustls::ClientConfig>,
    addr: std::net::SocketAddr,
) -> Result<Option<Vec<u8>>, std::io::Error> {
    let tcp = TcpStream::connect(addr).await?;
    let connector = tokio_rustls::TlsConnector::from(cfg);
    let tls = connector
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await?;
    let alpn = tls.get_ref().1.alpn_protocol().map(|p| p.to_vec());
    // the shared upstream connection type: HTTP/2 exactly when ALPN chose h2, never proxied
    let conn = UpstreamConn::tls(tls);
    let c = conn.connected();
    assert_eq!(c.is_negotiated_h2(), alpn.as_deref() == Some(&b"h2"[..]));
    assert_eq!(conn.is_h2(), c.is_negotiated_h2());
    assert!(!c.is_proxied());
    let mut tls = hyper_util::rt::TokioIo::new(conn);
    tls.write_all(b"ping").await?;
    let mut buf = [0u8; 4];
    tls.read_exact(&mut buf).await?;
    assert_eq!(&buf, b"ping");
    Ok(alpn)
}

#[tokio::test]
async fn extra_ca_is_trusted_and_only_then() {
    let pki = make_pki();
    let addr = server(&pki).await;
    let t = Duration::from_secs(20);

    let with_ca = upstream_client_config(Some(&pki.ca_pem), &[b"h2", b"http/1.1"]).unwrap();
    let alpn = tokio::time::timeout(t, connect(with_ca, addr))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(alpn.as_deref(), Some(&b"h2"[..]));

    let http1 = upstream_client_config(Some(&pki.ca_pem), &[b"http/1.1"]).unwrap();
    let alpn = tokio::time::timeout(t, connect(http1, addr))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(alpn.as_deref(), Some(&b"http/1.1"[..]));

    let web_only = upstream_client_config(None, &[]).unwrap();
    let e = tokio::time::timeout(t, connect(web_only, addr))
        .await
        .unwrap()
        .unwrap_err();
    assert!(
        e.to_string().to_lowercase().contains("unknown") || e.to_string().contains("issuer"),
        "{e}"
    );

    let wrong_ca = upstream_client_config(Some(&pki.other_pem), &[]).unwrap();
    assert!(tokio::time::timeout(t, connect(wrong_ca, addr))
        .await
        .unwrap()
        .is_err());
}

#[test]
fn key_and_cert_loading() {
    let pki = make_pki();
    assert_eq!(load_certs(&pki.ca_pem).unwrap().len(), 2);
    assert!(load_key(&pki.key_pem).is_ok());
    // A certificate file is not a key, and the other way round.
    assert!(load_key(&pki.leaf_pem).is_err());
    assert!(load_certs(&pki.key_pem).is_err());
}
