//! The live config of egress: `LiveConfig` plus, for every route with `auth`, the
//! secret read from the environment, the header value to inject and the
//! compiled scrub patterns. A route whose `token_env` is unset or empty makes
//! the whole load fail (at start: exit 2; at reload: the old config is kept).

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use base64::Engine as _;
use bottle_core::live::{LiveConfig, ROUTES_FILE};
use bottle_core::routes::{AuthScheme, Route, RouteAuth};
use bottle_core::{ConfigError, Secret};
use http::header::{HeaderName, HeaderValue, AUTHORIZATION};

use crate::scrub::Patterns;

/// Where `token_env` values come from.
#[derive(Clone)]
pub enum EnvSource {
    /// The process environment, read at each load.
    Process,
    /// A fixed map (in-process use and tests).
    Map(Arc<HashMap<String, Secret>>),
}

impl std::fmt::Debug for EnvSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            EnvSource::Process => f.write_str("EnvSource::Process"),
            EnvSource::Map(m) => write!(f, "EnvSource::Map({} vars)", m.len()),
        }
    }
}

impl EnvSource {
    /// A map source from plain strings (values are moved into [`Secret`]s).
    pub fn from_map(env: HashMap<String, String>) -> EnvSource {
        EnvSource::Map(Arc::new(
            env.into_iter().map(|(k, v)| (k, Secret::new(v))).collect(),
        ))
    }

    /// The value of `name`, `None` if unset or empty.
    pub fn get(&self, name: &str) -> Option<Secret> {
        match self {
            EnvSource::Process => Secret::from_env(name),
            EnvSource::Map(m) => m.get(name).filter(|s| !s.is_empty()).cloned(),
        }
    }
}

/// What egress injects for one route.
pub struct Credential {
    /// The raw secret (`token_env`'s value).
    pub secret: Secret,
    /// Header to set (bearer/basic: Authorization; header: the custom header).
    pub header: Option<(HeaderName, HeaderValue)>,
    /// For scheme query: the parameter name.
    pub param: Option<String>,
    /// Every form of the injected value, for scrubbing responses.
    pub patterns: Arc<Patterns>,
    /// The values whose forms are scrubbed (the secret; for basic also
    /// `username:secret` and its base64).
    pub scrub_values: Vec<Secret>,
}

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Credential([REDACTED])")
    }
}

/// One loaded generation of egress's config.
#[derive(Debug)]
pub struct EgressConfig {
    pub live: LiveConfig,
    /// Indexed like `live.routes.routes`.
    pub creds: Vec<Option<Arc<Credential>>>,
    /// Forms of every secret of every route: responses on *every* route are
    /// scrubbed with it (a secret stored upstream through one route must not
    /// come back through another host). `None` when no route injects.
    pub all_patterns: Option<Arc<Patterns>>,
}

fn route_err(dir: &Path, route: &Route, msg: String) -> ConfigError {
    ConfigError::invalid(
        dir.join(ROUTES_FILE),
        Some(route.line),
        format!("route {} (host {}): {msg}", route.index, route.host),
    )
}

/// Build the credential of one route.
pub fn credential(
    dir: &Path,
    route: &Route,
    auth: &RouteAuth,
    env: &EnvSource,
) -> Result<Credential, ConfigError> {
    let secret = env.get(&auth.token_env).ok_or_else(|| {
        route_err(
            dir,
            route,
            format!(
                "token_env {} is unset or empty in egress's environment",
                auth.token_env
            ),
        )
    })?;
    let bad_value = |what: &str| {
        route_err(
            dir,
            route,
            format!(
                "the value of {} cannot be used in {what} (control characters or non-ASCII)",
                auth.token_env
            ),
        )
    };
    let mut secrets: Vec<Secret> = vec![secret.clone()];
    let (header, param) = match auth.scheme {
        AuthScheme::Bearer => {
            let prefix = auth.prefix.as_deref().unwrap_or("Bearer ");
            let mut v = HeaderValue::from_str(&format!("{prefix}{}", secret.expose()))
                .map_err(|_| bad_value("a header"))?;
            v.set_sensitive(true);
            (Some((AUTHORIZATION, v)), None)
        }
        AuthScheme::Basic => {
            let user = auth.username.as_deref().unwrap_or("");
            let pair = Secret::new(format!("{user}:{}", secret.expose()));
            let b64 = Secret::new(
                base64::engine::general_purpose::STANDARD.encode(pair.expose().as_bytes()),
            );
            let mut v = HeaderValue::from_str(&format!("Basic {}", b64.expose()))
                .map_err(|_| bad_value("a header"))?;
            v.set_sensitive(true);
            secrets.push(pair);
            secrets.push(b64);
            (Some((AUTHORIZATION, v)), None)
        }
        AuthScheme::Header => {
            let name = auth
                .header
                .as_deref()
                .ok_or_else(|| route_err(dir, route, "scheme header needs `header`".into()))?;
            let name = HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| route_err(dir, route, format!("invalid header name `{name}`")))?;
            let prefix = auth.prefix.as_deref().unwrap_or("");
            let mut v = HeaderValue::from_str(&format!("{prefix}{}", secret.expose()))
                .map_err(|_| bad_value("a header"))?;
            v.set_sensitive(true);
            (Some((name, v)), None)
        }
        AuthScheme::Query => {
            let p = auth
                .param
                .clone()
                .filter(|p| !p.is_empty())
                .ok_or_else(|| route_err(dir, route, "scheme query needs `param`".into()))?;
            (None, Some(p))
        }
    };
    let patterns = Patterns::new(&secrets.iter().map(|s| s.expose()).collect::<Vec<_>>())
        .map_err(|e| route_err(dir, route, format!("scrub patterns: {e}")))?;
    Ok(Credential {
        secret,
        header,
        param,
        patterns: Arc::new(patterns),
        scrub_values: secrets,
    })
}

impl EgressConfig {
    /// Load `dir` and resolve every route's credential from `env`.
    pub fn load(dir: &Path, env: &EnvSource) -> Result<EgressConfig, ConfigError> {
        let live = LiveConfig::load(dir)?;
        let mut creds = Vec::with_capacity(live.routes.routes.len());
        for route in &live.routes.routes {
            match &route.auth {
                Some(auth) if !route.tls_passthrough => {
                    creds.push(Some(Arc::new(credential(dir, route, auth, env)?)))
                }
                Some(_) => {
                    return Err(route_err(
                        dir,
                        route,
                        "tls_passthrough routes cannot inject a credential (the tunnel is not decrypted); remove `auth` or tls_passthrough".into(),
                    ))
                }
                None => creds.push(None),
            }
        }
        let values: Vec<&str> = creds
            .iter()
            .flatten()
            .flat_map(|c| c.scrub_values.iter().map(|s| s.expose()))
            .collect();
        let all_patterns = if values.is_empty() {
            None
        } else {
            let p = Patterns::new(&values).map_err(|e| {
                ConfigError::invalid(dir.join(ROUTES_FILE), None, format!("scrub patterns: {e}"))
            })?;
            Some(Arc::new(p))
        };
        Ok(EgressConfig {
            live,
            creds,
            all_patterns,
        })
    }

    /// An empty config (nothing routed).
    pub fn empty() -> EgressConfig {
        EgressConfig {
            live: LiveConfig::default(),
            creds: Vec::new(),
            all_patterns: None,
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> EnvSource {
        EnvSource::from_map(
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        )
    }

    #[test]
    fn missing_env_names_variable_and_route_not_value() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("routes.yaml"),
            "routes:\n  - host: a.example\n  - host: api.example\n    auth: {scheme: bearer, token_env: TOK_A}\n",
        )
        .unwrap();
        let e = EgressConfig::load(dir.path(), &env(&[]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("TOK_A"), "{e}");
        assert!(e.contains("route 1"), "{e}");
        assert!(e.contains("api.example"), "{e}");
        assert!(e.contains(":3:"), "{e}");
        let e = EgressConfig::load(dir.path(), &env(&[("TOK_A", "")])).unwrap_err();
        assert!(e.to_string().contains("unset or empty"));
        let c = EgressConfig::load(dir.path(), &env(&[("TOK_A", "s3cret-value-1")])).unwrap();
        assert!(c.creds[0].is_none());
        let cred = c.creds[1].as_ref().unwrap();
        let (name, v) = cred.header.as_ref().unwrap();
        assert_eq!(name, AUTHORIZATION);
        assert!(v.is_sensitive());
        assert_eq!(v, "Bearer s3cret-value-1");
        assert!(!format!("{c:?}").contains("s3cret"));
    }

    #[test]
    fn bad_value_is_reported_without_value() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("routes.yaml"),
            "routes:\n  - host: api.example\n    auth: {scheme: header, header: X-Key, token_env: T}\n",
        )
        .unwrap();
        let e = EgressConfig::load(dir.path(), &env(&[("T", "abc\ndef-secret")]))
            .unwrap_err()
            .to_string();
        assert!(!e.contains("def-secret"), "{e}");
        assert!(e.contains("T "), "{e}");
    }
}
