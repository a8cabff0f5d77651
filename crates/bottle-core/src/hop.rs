//! Hop-by-hop header handling (RFC 9110 §7.6.1), shared by every proxying sidecar.
//!
//! [`strip`] removes the standard hop-by-hop headers and every header named in `Connection`
//! before a message is forwarded. `Proxy-Authorization` and `Proxy-Authenticate` are always
//! removed (they are the agent's credentials for the proxy, never the origin's).
//! `TE: trailers` is the one `TE` value that survives (HTTP/2 allows it and gRPC needs it).

use http::header::{self, HeaderMap, HeaderName, HeaderValue};

/// Headers that are never forwarded (besides those named in `Connection`).
const HOP_BY_HOP: &[&str] = &[
    "connection",
    "proxy-connection",
    "keep-alive",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "proxy-authorization",
    "proxy-authenticate",
];

/// The lowercased, non-empty tokens of every `Connection` header.
fn connection_tokens(headers: &HeaderMap) -> Vec<String> {
    headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|t| t.trim().to_ascii_lowercase())
        .filter(|t| !t.is_empty())
        .collect()
}

/// True when the message asks for a protocol upgrade of any kind: an `Upgrade` header and
/// `upgrade` among the `Connection` tokens.
pub fn wants_upgrade(headers: &HeaderMap) -> bool {
    headers.contains_key(header::UPGRADE)
        && connection_tokens(headers).iter().any(|t| t == "upgrade")
}

/// True when the message asks for a WebSocket upgrade: [`wants_upgrade`] with exactly one
/// `Upgrade` header whose value is `websocket`. Other upgrades (h2c, TLS, ...) are not
/// WebSocket, so no unscanned protocol can be switched to behind a proxy's back.
pub fn is_websocket_upgrade(headers: &HeaderMap) -> bool {
    let mut ups = headers.get_all(header::UPGRADE).iter();
    let websocket = match (ups.next(), ups.next()) {
        (Some(v), None) => v
            .to_str()
            .map(|v| v.trim().eq_ignore_ascii_case("websocket"))
            .unwrap_or(false),
        _ => false,
    };
    websocket && wants_upgrade(headers)
}

/// Removes hop-by-hop headers and every header named in `Connection`. With `keep_upgrade`,
/// `Upgrade` survives and `Connection: upgrade` is set (WebSocket handshakes).
/// `Proxy-Authorization` is always removed; `TE: trailers` is kept (only that value).
pub fn strip(headers: &mut HeaderMap, keep_upgrade: bool) {
    let upgrade = if keep_upgrade {
        headers.get(header::UPGRADE).cloned()
    } else {
        None
    };
    for name in connection_tokens(headers) {
        if let Ok(n) = HeaderName::from_bytes(name.as_bytes()) {
            headers.remove(n);
        }
    }
    // looked at after the Connection-named removal: `Connection: te` drops it entirely
    let te_trailers = headers
        .get_all(header::TE)
        .iter()
        .any(|v| v.as_bytes().trim_ascii().eq_ignore_ascii_case(b"trailers"));
    for h in HOP_BY_HOP {
        headers.remove(*h);
    }
    if te_trailers {
        headers.insert(header::TE, HeaderValue::from_static("trailers"));
    }
    if let Some(u) = upgrade {
        headers.insert(header::UPGRADE, u);
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strips_listed_and_standard() {
        let mut h = HeaderMap::new();
        h.insert("connection", "keep-alive, X-Secret-Hop".parse().unwrap());
        h.insert("x-secret-hop", "1".parse().unwrap());
        h.insert("keep-alive", "timeout=5".parse().unwrap());
        h.insert("proxy-authorization", "Basic abc".parse().unwrap());
        h.insert("proxy-authenticate", "Basic".parse().unwrap());
        h.insert("proxy-connection", "keep-alive".parse().unwrap());
        h.insert("te", "gzip".parse().unwrap());
        h.insert("trailer", "x-t".parse().unwrap());
        h.insert("transfer-encoding", "chunked".parse().unwrap());
        h.insert("upgrade", "websocket".parse().unwrap());
        h.insert("x-keep", "1".parse().unwrap());
        strip(&mut h, false);
        assert_eq!(h.len(), 1, "{h:?}");
        assert!(h.contains_key("x-keep"));
    }

    #[test]
    fn te_trailers_is_the_one_te_kept() {
        let mut h = HeaderMap::new();
        h.append("te", "gzip".parse().unwrap());
        h.append("te", "trailers".parse().unwrap());
        strip(&mut h, false);
        assert_eq!(h.get_all("te").iter().count(), 1);
        assert_eq!(h["te"], "trailers");
        // a TE named in Connection goes entirely
        let mut h = HeaderMap::new();
        h.insert("connection", "TE".parse().unwrap());
        h.insert("te", "trailers".parse().unwrap());
        strip(&mut h, false);
        assert!(h.is_empty(), "{h:?}");
    }

    #[test]
    fn keeps_upgrade_for_websocket() {
        let mut h = HeaderMap::new();
        h.insert("connection", "Upgrade, x-private".parse().unwrap());
        h.insert("x-private", "1".parse().unwrap());
        h.insert("upgrade", "websocket".parse().unwrap());
        h.insert("proxy-authorization", "Basic abc".parse().unwrap());
        assert!(wants_upgrade(&h));
        assert!(is_websocket_upgrade(&h));
        let mut h2c = h.clone();
        h2c.insert("upgrade", "h2c".parse().unwrap());
        assert!(wants_upgrade(&h2c));
        assert!(!is_websocket_upgrade(&h2c));
        strip(&mut h2c, false);
        assert!(!h2c.contains_key("upgrade"));
        assert!(!h2c.contains_key("connection"));
        strip(&mut h, true);
        assert_eq!(h.get("upgrade").unwrap(), "websocket");
        assert_eq!(h.get("connection").unwrap(), "upgrade");
        assert!(!h.contains_key("x-private"));
        assert!(!h.contains_key("proxy-authorization"));
    }

    #[test]
    fn upgrade_needs_connection_token_and_one_websocket_value() {
        let mut h = HeaderMap::new();
        h.insert("upgrade", "websocket".parse().unwrap());
        assert!(!wants_upgrade(&h));
        assert!(!is_websocket_upgrade(&h));
        h.insert("connection", "keep-alive , UPGRADE".parse().unwrap());
        assert!(is_websocket_upgrade(&h));
        h.append("upgrade", "h2c".parse().unwrap());
        assert!(wants_upgrade(&h));
        assert!(!is_websocket_upgrade(&h), "smuggled second Upgrade value");
    }
}
