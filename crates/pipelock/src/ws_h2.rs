//! WebSocket over HTTP/2 (RFC 8441): the agent opens an extended CONNECT stream
//! (`:method CONNECT`, `:protocol websocket`) inside an intercepted tunnel. pipelock carries
//! it on as the HTTP/1.1 Upgrade handshake (RFC 6455) the rest of the chain already speaks:
//! the request is judged as that GET (allowlist, routes, DLP on the head), egress injects and
//! scrubs as for any upgrade, and the origin needs no RFC 8441 support. After the handshake
//! both carry the same frames (masking included), so the agent's stream and the upstream
//! connection meet in [`crate::forward`]'s WebSocket session: frames scanned by
//! [`crate::ws_scan::pump`] before they go, as over HTTP/1.1.
//!
//! Any other extended CONNECT protocol stays a CONNECT, which the tunnel refuses.

use http::header::{self, HeaderMap, HeaderValue};
use http::{Method, Version};

/// `Sec-WebSocket-Version` of RFC 6455.
const WS_VERSION: &str = "13";

/// Whether a decrypted request is an RFC 8441 WebSocket stream.
pub fn is_extended_connect(
    method: &Method,
    version: Version,
    protocol: Option<&hyper::ext::Protocol>,
) -> bool {
    method == Method::CONNECT
        && version == Version::HTTP_2
        && protocol.is_some_and(|p| p.as_str().eq_ignore_ascii_case("websocket"))
}

/// Rewrites an extended CONNECT's head into the RFC 6455 handshake upstream: `GET`, with
/// `Upgrade: websocket`, `Connection: upgrade`, a fresh `Sec-WebSocket-Key` (`key`: 16
/// random bytes) and the version. The agent's own `Sec-WebSocket-Key`, if any, is replaced.
pub fn as_upgrade(method: &mut Method, headers: &mut HeaderMap, key: [u8; 16]) {
    use base64::Engine;
    *method = Method::GET;
    headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    let key = base64::engine::general_purpose::STANDARD.encode(key);
    if let Ok(v) = HeaderValue::from_str(&key) {
        headers.insert(header::SEC_WEBSOCKET_KEY, v);
    }
    headers.insert(
        header::SEC_WEBSOCKET_VERSION,
        HeaderValue::from_static(WS_VERSION),
    );
}

/// The agent's answer for an upstream `101 Switching Protocols`: `200` on its stream, with
/// the upstream's headers minus the HTTP/1.1 handshake's own (`Upgrade`, `Connection`,
/// `Sec-WebSocket-Accept`), which mean nothing on an HTTP/2 stream.
pub fn answer_headers(upstream: &HeaderMap) -> HeaderMap {
    let mut h = upstream.clone();
    bottle_core::hop::strip(&mut h, false);
    h.remove(header::SEC_WEBSOCKET_ACCEPT);
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_websocket_over_h2_is_extended_connect() {
        let ws = hyper::ext::Protocol::from_static("websocket");
        let other = hyper::ext::Protocol::from_static("connect-udp");
        let rows = [
            (Method::CONNECT, Version::HTTP_2, Some(&ws), true),
            (Method::CONNECT, Version::HTTP_2, Some(&other), false),
            (Method::CONNECT, Version::HTTP_2, None, false),
            (Method::CONNECT, Version::HTTP_11, Some(&ws), false),
            (Method::GET, Version::HTTP_2, Some(&ws), false),
        ];
        for (m, v, p, want) in rows {
            assert_eq!(is_extended_connect(&m, v, p), want, "{m} {v:?} {p:?}");
        }
    }

    #[test]
    fn the_upgrade_head_upstream_and_the_answer_back() {
        let mut m = Method::CONNECT;
        let mut h = HeaderMap::new();
        h.insert("sec-websocket-key", "agent-chosen".parse().unwrap());
        h.insert("sec-websocket-protocol", "chat".parse().unwrap());
        as_upgrade(&mut m, &mut h, [7; 16]);
        assert_eq!(m, Method::GET);
        assert!(bottle_core::hop::is_websocket_upgrade(&h));
        assert_eq!(h["sec-websocket-key"], "BwcHBwcHBwcHBwcHBwcHBw==");
        assert_eq!(h["sec-websocket-version"], "13");
        assert_eq!(h["sec-websocket-protocol"], "chat");

        let mut up = HeaderMap::new();
        up.insert("upgrade", "websocket".parse().unwrap());
        up.insert("connection", "Upgrade".parse().unwrap());
        up.insert("sec-websocket-accept", "x".parse().unwrap());
        up.insert("sec-websocket-protocol", "chat".parse().unwrap());
        let a = answer_headers(&up);
        assert_eq!(a.len(), 1, "{a:?}");
        assert_eq!(a["sec-websocket-protocol"], "chat");
    }
}
