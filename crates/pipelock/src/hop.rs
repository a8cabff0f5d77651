//! Hop-by-hop header handling (RFC 9110 §7.6.1).

use http::header::{self, HeaderMap, HeaderName};

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

/// True when the request asks for a WebSocket upgrade. Other upgrades (h2c, TLS, ...) are
/// not honoured: their `Upgrade` header is stripped like any hop-by-hop header, so no
/// unscanned protocol can be switched to behind pipelock's back.
pub fn is_upgrade(headers: &HeaderMap) -> bool {
    let mut ups = headers.get_all(header::UPGRADE).iter();
    let websocket = match (ups.next(), ups.next()) {
        (Some(v), None) => v
            .to_str()
            .map(|v| v.trim().eq_ignore_ascii_case("websocket"))
            .unwrap_or(false),
        _ => false,
    };
    websocket && connection_tokens(headers).iter().any(|t| t == "upgrade")
}

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

/// Removes hop-by-hop headers and every header named in `Connection`. With `keep_upgrade`,
/// `Upgrade` survives and `Connection: upgrade` is re-added (WebSocket handshakes).
/// `Proxy-Authorization` is always removed.
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
    for h in HOP_BY_HOP {
        headers.remove(*h);
    }
    if let Some(u) = upgrade {
        headers.insert(header::UPGRADE, u);
        headers.insert(
            header::CONNECTION,
            header::HeaderValue::from_static("upgrade"),
        );
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
        h.insert("proxy-authorization", "Basic abc".parse().unwrap());
        h.insert("te", "trailers".parse().unwrap());
        h.insert("x-keep", "1".parse().unwrap());
        strip(&mut h, false);
        assert_eq!(h.len(), 1);
        assert!(h.contains_key("x-keep"));
    }

    #[test]
    fn keeps_upgrade_for_websocket() {
        let mut h = HeaderMap::new();
        h.insert("connection", "Upgrade".parse().unwrap());
        h.insert("upgrade", "websocket".parse().unwrap());
        h.insert("proxy-authorization", "Basic abc".parse().unwrap());
        assert!(is_upgrade(&h));
        let mut h2c = h.clone();
        h2c.insert("upgrade", "h2c".parse().unwrap());
        assert!(!is_upgrade(&h2c));
        strip(&mut h2c, false);
        assert!(!h2c.contains_key("upgrade"));
        strip(&mut h, true);
        assert_eq!(h.get("upgrade").unwrap(), "websocket");
        assert_eq!(h.get("connection").unwrap(), "upgrade");
        assert!(!h.contains_key("proxy-authorization"));
    }
}
