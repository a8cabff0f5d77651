//! Who may talk to a sidecar: the pipelock -> egress key, and binding a listener to the one
//! network a peer is on.
//!
//! egress injects the operator's credentials, so a request reaching it from anything but its
//! own pipelock (the host, a container on an `upstream_networks` network) must get nothing.
//! The launcher generates a per-bottle key at start and hands it to both containers through
//! the environment (by name); pipelock sends it as `Proxy-Authorization: Bottle <key>` on
//! every request and CONNECT, egress compares it in constant time and strips it.

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use http::header::PROXY_AUTHORIZATION;
use http::{HeaderMap, HeaderValue};

use crate::Secret;

/// The `Proxy-Authorization` scheme pipelock uses towards egress.
pub const KEY_SCHEME: &str = "Bottle";

/// Keys shorter than this are refused at startup (the launcher sends 43 base64url chars).
pub const MIN_KEY_LEN: usize = 32;

/// The shared key. `Debug` never prints it.
#[derive(Clone)]
pub struct PeerKey {
    secret: Secret,
    header: HeaderValue,
}

impl std::fmt::Debug for PeerKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PeerKey([REDACTED])")
    }
}

impl PeerKey {
    /// A key from its value: at least [`MIN_KEY_LEN`] visible ASCII characters.
    pub fn new(value: Secret) -> Result<PeerKey, String> {
        let v = value.expose();
        if v.len() < MIN_KEY_LEN || !v.bytes().all(|b| b.is_ascii_graphic()) {
            // the value itself is never part of the message
            return Err(format!(
                "the key must be at least {MIN_KEY_LEN} visible ASCII characters (got {} bytes)",
                v.len()
            ));
        }
        let mut header = HeaderValue::from_str(&format!("{KEY_SCHEME} {v}"))
            .map_err(|_| "the key is not a valid header value".to_string())?;
        header.set_sensitive(true);
        Ok(PeerKey {
            secret: value,
            header,
        })
    }

    /// The key from the environment variable `name` (set, non-empty, well-formed: else an
    /// error naming the variable, never its value).
    pub fn from_env(name: &str) -> Result<PeerKey, String> {
        let v = Secret::from_env(name)
            .ok_or_else(|| format!("environment variable {name} (the key) is unset or empty"))?;
        PeerKey::new(v).map_err(|e| format!("environment variable {name}: {e}"))
    }

    /// The `Proxy-Authorization` value to send (marked sensitive).
    pub fn header_value(&self) -> HeaderValue {
        self.header.clone()
    }

    /// Replace whatever `Proxy-Authorization` the headers carry with the key.
    pub fn set(&self, headers: &mut HeaderMap) {
        headers.remove(PROXY_AUTHORIZATION);
        headers.insert(PROXY_AUTHORIZATION, self.header_value());
    }

    /// True when the headers carry exactly one `Proxy-Authorization` and it is the key.
    /// Compared in constant time (for a given length).
    pub fn verify(&self, headers: &HeaderMap) -> bool {
        let mut vals = headers.get_all(PROXY_AUTHORIZATION).iter();
        let (Some(v), None) = (vals.next(), vals.next()) else {
            return false;
        };
        let Some(presented) = v.as_bytes().strip_prefix(KEY_SCHEME.as_bytes()) else {
            return false;
        };
        let Some(presented) = presented.strip_prefix(b" ") else {
            return false;
        };
        ct_eq(presented, self.secret.expose().as_bytes())
    }
}

/// Constant-time equality: the time depends on the lengths only, not on where bytes differ.
pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    let mut diff = u8::from(a.len() != b.len());
    for (i, &y) in b.iter().enumerate() {
        let x = a.get(i).copied().unwrap_or(0);
        diff |= x ^ y;
    }
    std::hint::black_box(diff) == 0
}

/// The address this host uses to reach `peer` (`HOST:PORT`): a UDP socket is "connected" to
/// the peer (no packet is sent) and the kernel's choice of source address is read back. On a
/// container with several networks, that is its address on the network it shares with `peer`.
pub async fn local_addr_towards(peer: &str) -> std::io::Result<IpAddr> {
    let mut last = std::io::Error::new(std::io::ErrorKind::NotFound, "no address");
    for addr in tokio::net::lookup_host(peer).await? {
        let any: SocketAddr = if addr.is_ipv4() {
            SocketAddr::from(([0, 0, 0, 0], 0))
        } else {
            SocketAddr::from(([0u16; 8], 0))
        };
        let sock = tokio::net::UdpSocket::bind(any).await?;
        match sock.connect(addr).await {
            Ok(()) => return Ok(sock.local_addr()?.ip()),
            Err(e) => last = e,
        }
    }
    Err(last)
}

/// The address to bind: `listen` as given without `via`; with `via` (`HOST:PORT`), `listen`'s
/// port on the local address that reaches `via` ([`local_addr_towards`]), retried until
/// `wait` has passed (the peer's name resolves only once its container exists).
pub async fn listen_addr(
    listen: SocketAddr,
    via: Option<&str>,
    wait: Duration,
) -> Result<SocketAddr, String> {
    let Some(via) = via else {
        return Ok(listen);
    };
    let start = Instant::now();
    loop {
        match local_addr_towards(via).await {
            Ok(ip) => return Ok(SocketAddr::new(ip, listen.port())),
            Err(e) if start.elapsed() >= wait => {
                return Err(format!(
                    "--listen-via {via}: no local address reaches it after {}s: {e}",
                    wait.as_secs()
                ))
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(250)).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const K: &str = "k3y-0123456789abcdefghijklmnopqrstuvwxyz";

    fn key() -> PeerKey {
        PeerKey::new(Secret::new(K)).unwrap()
    }

    fn with(vals: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in vals {
            h.append(PROXY_AUTHORIZATION, v.parse().unwrap());
        }
        h
    }

    #[test]
    fn verify_accepts_only_the_exact_key_once() {
        let k = key();
        assert!(k.verify(&with(&[&format!("Bottle {K}")])));
        for bad in [
            vec![],
            vec![K.to_string()],
            vec![format!("Bearer {K}")],
            vec![format!("bottle {K}")],
            vec![format!("Bottle  {K}")],
            vec![format!("Bottle {K}x")],
            vec![format!("Bottle {}", &K[..K.len() - 1])],
            vec![format!("Bottle {}", K.replace('k', "K"))],
            vec![format!("Bottle {K}"), format!("Bottle {K}")],
            vec!["Basic YWdlbnQ6cHc=".to_string(), format!("Bottle {K}")],
        ] {
            let refs: Vec<&str> = bad.iter().map(String::as_str).collect();
            assert!(!k.verify(&with(&refs)), "accepted {bad:?}");
        }
    }

    #[test]
    fn set_replaces_what_the_agent_sent_and_is_sensitive() {
        let k = key();
        let mut h = with(&["Basic YWdlbnQ6cHc=", "Bottle forged"]);
        k.set(&mut h);
        assert_eq!(h.get_all(PROXY_AUTHORIZATION).iter().count(), 1);
        assert!(k.verify(&h));
        assert!(h.get(PROXY_AUTHORIZATION).unwrap().is_sensitive());
    }

    #[test]
    fn bad_keys_are_refused_without_echoing_them() {
        for bad in ["short", "has space in the middle of it 0123456789", ""] {
            let e = PeerKey::new(Secret::new(bad)).unwrap_err();
            assert!(bad.is_empty() || !e.contains(bad), "{e}");
        }
        assert!(!format!("{:?}", key()).contains(K));
        let e = PeerKey::from_env("BOTTLE_CORE_TEST_UNSET_KEY_VAR").unwrap_err();
        assert!(e.contains("BOTTLE_CORE_TEST_UNSET_KEY_VAR"), "{e}");
    }

    #[test]
    fn ct_eq_is_equality() {
        assert!(ct_eq(b"", b""));
        assert!(ct_eq(b"abc", b"abc"));
        assert!(!ct_eq(b"abc", b"abd"));
        assert!(!ct_eq(b"abc", b"ab"));
        assert!(!ct_eq(b"ab", b"abc"));
        assert!(!ct_eq(b"\0", b""));
    }

    #[tokio::test]
    async fn listen_via_picks_the_local_address_towards_the_peer() {
        let l: SocketAddr = "0.0.0.0:4321".parse().unwrap();
        assert_eq!(
            listen_addr(l, None, Duration::ZERO).await.unwrap(),
            l,
            "no via: unchanged"
        );
        let a = listen_addr(l, Some("127.0.0.1:9"), Duration::ZERO)
            .await
            .unwrap();
        assert_eq!(a, "127.0.0.1:4321".parse().unwrap());
        let a = listen_addr(l, Some("[::1]:9"), Duration::ZERO).await;
        if let Ok(a) = a {
            assert_eq!(a, "[::1]:4321".parse().unwrap());
        }
        let e = listen_addr(l, Some("no-port-given"), Duration::ZERO)
            .await
            .unwrap_err();
        assert!(e.contains("--listen-via no-port-given"), "{e}");
    }
}
