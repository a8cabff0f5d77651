//! Request rewriting: stripping every credential the agent
//! may have sent, injecting the route's credential, git-push detection, and the
//! redacted path written to the audit log.

use bottle_core::routes::{AuthScheme, RouteAuth};
use http::header::{HeaderMap, HeaderName, AUTHORIZATION, COOKIE, PROXY_AUTHORIZATION};
use http::uri::{PathAndQuery, Uri};
use percent_encoding::{percent_decode_str, utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};

use crate::config::Credential;

/// Value written in the audit log in place of an injected query parameter.
pub const AUDIT_REDACTED: &str = "[REDACTED]";

/// Longest path+query written to the audit log.
pub const AUDIT_PATH_MAX: usize = 2048;

/// Bytes kept as-is when a secret is put in a query string (RFC 3986 unreserved).
const QUERY_VALUE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

fn decode_component(s: &str) -> String {
    let plus = s.replace('+', " ");
    percent_decode_str(&plus).decode_utf8_lossy().into_owned()
}

/// Is this a git push over smart HTTP (`git-receive-pack` in the path, or
/// `service=git-receive-pack` in the query), however it is spelled?
pub fn is_git_push_target(raw_path: &str, query: Option<&str>) -> bool {
    let path = percent_decode_str(raw_path)
        .decode_utf8_lossy()
        .to_ascii_lowercase();
    if path.contains("git-receive-pack")
        || raw_path.to_ascii_lowercase().contains("git-receive-pack")
    {
        return true;
    }
    query.is_some_and(|q| {
        q.split('&').any(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            decode_component(k).eq_ignore_ascii_case("service")
                && decode_component(v)
                    .trim()
                    .eq_ignore_ascii_case("git-receive-pack")
        })
    })
}

/// `path?query` truncated for the audit log.
pub fn audit_path(path: &str, query: Option<&str>) -> String {
    let mut s = path.to_string();
    if let Some(q) = query {
        s.push('?');
        s.push_str(q);
    }
    if s.len() > AUDIT_PATH_MAX {
        let mut cut = AUDIT_PATH_MAX;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
        s.push_str("...");
    }
    s
}

/// Strip the agent's credentials for this route and inject the real one.
/// Returns the path (with query) to write in the audit log, the injected
/// value redacted.
pub fn inject(
    headers: &mut HeaderMap,
    uri: &mut Uri,
    auth: &RouteAuth,
    cred: &Credential,
) -> Result<String, http::Error> {
    headers.remove(AUTHORIZATION);
    headers.remove(PROXY_AUTHORIZATION);
    if let Some(h) = auth.header.as_deref() {
        if let Ok(name) = HeaderName::from_bytes(h.as_bytes()) {
            headers.remove(name);
        }
    }
    if auth.strip_cookies {
        headers.remove(COOKIE);
    }
    if let Some((name, value)) = &cred.header {
        headers.insert(name.clone(), value.clone());
    }
    // the agent's own copy of the query parameter (if any) is removed on every
    // scheme that names one; scheme query then sets the real one
    let param = match (auth.scheme, auth.param.as_deref()) {
        (_, Some(p)) => Some(p),
        _ => None,
    };
    let Some(param) = param else {
        return Ok(audit_path(uri.path(), uri.query()));
    };
    let kept: Vec<&str> = uri
        .query()
        .unwrap_or("")
        .split('&')
        .filter(|pair| !pair.is_empty())
        .filter(|pair| {
            let k = pair.split_once('=').map(|(k, _)| k).unwrap_or(pair);
            decode_component(k) != param
        })
        .collect();
    let mut q = kept.join("&");
    let mut audit_q = q.clone();
    let enc_name = utf8_percent_encode(param, QUERY_VALUE).to_string();
    if auth.scheme == AuthScheme::Query {
        for s in [&mut q, &mut audit_q] {
            if !s.is_empty() {
                s.push('&');
            }
            s.push_str(&enc_name);
            s.push('=');
        }
        q.push_str(&utf8_percent_encode(cred.secret.expose(), QUERY_VALUE).to_string());
        audit_q.push_str(AUDIT_REDACTED);
    }
    let pq = if q.is_empty() {
        uri.path().to_string()
    } else {
        format!("{}?{q}", uri.path())
    };
    let audit = audit_path(
        uri.path(),
        if audit_q.is_empty() {
            None
        } else {
            Some(&audit_q)
        },
    );
    let mut parts = std::mem::take(uri).into_parts();
    parts.path_and_query = Some(PathAndQuery::try_from(pq)?);
    *uri = Uri::from_parts(parts)?;
    Ok(audit)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use crate::config::{credential, EnvSource};
    use bottle_core::routes::RoutesFile;
    use std::path::Path;

    /// [`is_git_push_target`] on a whole URL.
    fn is_git_push(url: &str) -> bool {
        let uri: Uri = url.parse().unwrap();
        is_git_push_target(uri.path(), uri.query())
    }

    fn setup(yaml: &str, secret: &str) -> (RouteAuth, Credential) {
        let rf = RoutesFile::parse(yaml, Path::new("routes.yaml")).unwrap();
        let route = rf.routes[0].clone();
        let auth = route.auth.clone().unwrap();
        let env = EnvSource::from_map([("T".to_string(), secret.to_string())].into());
        let cred = credential(Path::new("."), &route, &auth, &env).unwrap();
        (auth, cred)
    }

    #[test]
    fn query_is_replaced_not_appended() {
        let (auth, cred) = setup(
            "routes:\n  - host: a.example\n    auth: {scheme: query, param: api_key, token_env: T}\n",
            "s3cr et/&=",
        );
        let mut h = HeaderMap::new();
        h.insert(AUTHORIZATION, "Bearer agent".parse().unwrap());
        let mut uri: Uri = "https://a.example/p?x=1&api_key=agent&api%5Fkey=again&y=2"
            .parse()
            .unwrap();
        let audit = inject(&mut h, &mut uri, &auth, &cred).unwrap();
        assert_eq!(
            uri.to_string(),
            "https://a.example/p?x=1&y=2&api_key=s3cr%20et%2F%26%3D"
        );
        assert_eq!(audit, "/p?x=1&y=2&api_key=[REDACTED]");
        assert!(!h.contains_key(AUTHORIZATION));
        let mut uri: Uri = "http://a.example/p".parse().unwrap();
        inject(&mut h, &mut uri, &auth, &cred).unwrap();
        assert_eq!(
            uri.to_string(),
            "http://a.example/p?api_key=s3cr%20et%2F%26%3D"
        );
    }

    #[test]
    fn header_schemes_replace_agent_values() {
        let (auth, cred) = setup(
            "routes:\n  - host: a.example\n    auth: {scheme: header, header: X-Api-Key, prefix: 'token ', token_env: T, strip_cookies: true}\n",
            "real-secret-1",
        );
        let mut h = HeaderMap::new();
        h.append("x-api-key", "agent1".parse().unwrap());
        h.append("X-API-KEY", "agent2".parse().unwrap());
        h.insert(AUTHORIZATION, "Bearer agent".parse().unwrap());
        h.insert(PROXY_AUTHORIZATION, "Basic x".parse().unwrap());
        h.insert(COOKIE, "session=agent".parse().unwrap());
        let mut uri: Uri = "https://a.example/p?q=1".parse().unwrap();
        let audit = inject(&mut h, &mut uri, &auth, &cred).unwrap();
        assert_eq!(audit, "/p?q=1");
        assert_eq!(h.get_all("x-api-key").iter().count(), 1);
        assert_eq!(h["x-api-key"], "token real-secret-1");
        assert!(h["x-api-key"].is_sensitive());
        assert!(!h.contains_key(AUTHORIZATION));
        assert!(!h.contains_key(PROXY_AUTHORIZATION));
        assert!(!h.contains_key(COOKIE));

        let (auth, cred) = setup(
            "routes:\n  - host: a.example\n    auth: {scheme: basic, username: x-access-token, token_env: T}\n",
            "real-secret-1",
        );
        let mut h = HeaderMap::new();
        h.append(AUTHORIZATION, "Bearer agent".parse().unwrap());
        h.append(AUTHORIZATION, "Basic YWdlbnQ6eA==".parse().unwrap());
        h.insert(COOKIE, "keep=1".parse().unwrap());
        inject(&mut h, &mut uri, &auth, &cred).unwrap();
        assert_eq!(h.get_all(AUTHORIZATION).iter().count(), 1);
        assert_eq!(
            h[AUTHORIZATION],
            "Basic eC1hY2Nlc3MtdG9rZW46cmVhbC1zZWNyZXQtMQ=="
        );
        assert!(h.contains_key(COOKIE));
    }

    #[test]
    fn git_push_in_every_spelling() {
        for u in [
            "https://h/acme/repo.git/git-receive-pack",
            "https://h/acme/repo.git/GIT-RECEIVE-PACK",
            "https://h/acme/repo.git/git%2Dreceive%2Dpack",
            "https://h/acme/repo.git/info/refs?service=git-receive-pack",
            "https://h/acme/repo.git/info/refs?x=1&SERVICE=git%2dreceive-pack",
            "https://h/acme/repo.git/info/refs?service=git+receive-pack&service=git-receive-pack",
        ] {
            assert!(is_git_push(u), "{u}");
        }
        for u in [
            "https://h/acme/repo.git/info/refs?service=git-upload-pack",
            "https://h/acme/repo.git/git-upload-pack",
        ] {
            assert!(!is_git_push(u), "{u}");
        }
    }
}
