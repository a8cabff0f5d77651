//! The route decision: a pure function from the request and the config to a
//! decision (which route, which path to forward) or the refusal saying why not.
//!
//! Three ways an agent could dodge a route's rules are closed here rather than in
//! the handler: a credential sent over cleartext `http://`, a method override
//! (`X-HTTP-Method-Override: DELETE` on a POST, `?_method=DELETE`) naming a method
//! the route does not allow, and a path an origin would read differently from the
//! glob we matched (`/repos/acme/..;/admin`, `%2e%2e`, `%2f`, `\`).

use bottle_core::body::{full, BoxBody};
use bottle_core::path::{normalise, Ambiguity};
use bottle_core::routes::Route;
use bottle_core::{hop, AskAccess, Host, Refusal, RefusalKind};
use http::uri::{PathAndQuery, Uri};
use http::{HeaderMap, Method};
use http_body_util::BodyExt as _;
use percent_encoding::percent_decode_str;

use crate::config::EgressConfig;

/// Headers frameworks (Rails, Laravel, Express method-override, ASP.NET, ...) read as
/// "the real method".
pub const OVERRIDE_HEADERS: &[&str] = &[
    "x-http-method-override",
    "x-http-method",
    "x-method-override",
];

/// Query (and form) parameter with the same meaning.
pub const OVERRIDE_PARAM: &str = "_method";

/// Headers some servers route by instead of the request line (IIS URL Rewrite and
/// Symfony read `X-Original-URL` / `X-Rewrite-URL`; Spring, Envoy and forward-auth
/// gateways the others): on a route with path rules the path judged would not be the
/// path served.
pub const PATH_OVERRIDE_HEADERS: &[&str] = &[
    "x-original-url",
    "x-rewrite-url",
    "x-original-uri",
    "x-forwarded-prefix",
    "x-forwarded-path",
    "x-forwarded-uri",
    "x-envoy-original-path",
];

/// What a request was matched to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Matched {
    Route(usize),
    Allowlist,
}

impl Matched {
    pub fn label(self) -> String {
        match self {
            Matched::Route(i) => i.to_string(),
            Matched::Allowlist => "allowlist".into(),
        }
    }
}

/// The parts of a request the decision looks at.
#[derive(Debug, Clone, Copy)]
pub struct Target<'a> {
    /// `https://` (egress originates TLS) or `http://` (cleartext upstream).
    pub https: bool,
    pub host: &'a Host,
    pub port: u16,
    pub method: &'a Method,
    /// The path as the agent sent it (no query).
    pub path: &'a str,
    pub query: Option<&'a str>,
    pub headers: &'a HeaderMap,
}

/// A request that may go on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub matched: Matched,
    /// `Some`: forward this path instead of the agent's (the normalised path the
    /// route's globs judged), so the origin sees exactly what was matched.
    pub path: Option<String>,
    /// A POST on a route with `methods:` whose body a framework may read `_method`
    /// from (see [`body_in_scope`]): the caller buffers it (at most
    /// [`MAX_CHECKED_BODY`]) and refuses it if [`body_names_override`].
    pub check_body: bool,
}

/// Largest request body egress buffers to look for a `_method` field.
pub const MAX_CHECKED_BODY: usize = 1024 * 1024;

/// Whether a framework may read `_method` from this body: Rack reads form bodies and
/// POSTs without `Content-Type`, Laravel/Symfony also JSON.
pub fn body_in_scope(headers: &HeaderMap) -> bool {
    let Some(v) = headers.get(http::header::CONTENT_TYPE) else {
        return true;
    };
    let Ok(v) = v.to_str() else {
        return true;
    };
    let v = v.to_ascii_lowercase();
    let mt = v.split(';').next().unwrap_or("").trim();
    mt.is_empty()
        || mt == "application/x-www-form-urlencoded"
        || mt == "multipart/form-data"
        || mt.ends_with("/json")
        || mt.ends_with("+json")
}

/// The request's content coding other than `identity`, if any (shortened for refusals).
fn body_coding(headers: &HeaderMap) -> Option<String> {
    let codings: Vec<String> = headers
        .get_all(http::header::CONTENT_ENCODING)
        .iter()
        .flat_map(|v| {
            String::from_utf8_lossy(v.as_bytes())
                .split(',')
                .map(|c| c.trim().to_ascii_lowercase())
                .collect::<Vec<_>>()
        })
        .filter(|c| !c.is_empty() && c != "identity")
        .collect();
    (!codings.is_empty()).then(|| short(&codings.join(", ")))
}

/// Whether the body holds a `_method` field, any case: a standalone `_method` key
/// (`payment_method` is not one) in the raw or percent-decoded bytes (form fields,
/// multipart `name="_method"`), or a top-level JSON key (however escaped).
pub fn body_names_override(body: &[u8]) -> bool {
    let standalone = |hay: &[u8]| {
        let hay = hay.to_ascii_lowercase();
        let word = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
        hay.windows(OVERRIDE_PARAM.len()).enumerate().any(|(i, w)| {
            w == OVERRIDE_PARAM.as_bytes()
                && (i == 0 || !word(hay[i - 1]))
                && hay.get(i + w.len()).is_none_or(|b| !word(*b))
        })
    };
    if standalone(body) {
        return true;
    }
    let plus: Vec<u8> = body
        .iter()
        .map(|b| if *b == b'+' { b' ' } else { *b })
        .collect();
    let decoded: Vec<u8> = percent_encoding::percent_decode(&plus).collect();
    if standalone(&decoded) {
        return true;
    }
    match serde_json::from_slice::<serde_json::Value>(body) {
        Ok(serde_json::Value::Object(m)) => {
            m.keys().any(|k| k.eq_ignore_ascii_case(OVERRIDE_PARAM))
        }
        _ => false,
    }
}

/// A method override the request carries.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Override {
    None,
    /// The method named (upper case) and where it was found.
    One(String, String),
    /// Malformed, or more than one: the reason.
    Bad(String),
}

fn decode_component(s: &str) -> String {
    percent_decode_str(&s.replace('+', " "))
        .decode_utf8_lossy()
        .into_owned()
}

/// Every override header value (comma lists split) and every `_method` parameter
/// (any percent-spelling or case of the name; `&` and `;` separators).
fn method_override(headers: &HeaderMap, query: Option<&str>) -> Override {
    let mut found: Vec<(String, Option<String>)> = Vec::new();
    for (name, v) in headers {
        if !is_one_of(name, OVERRIDE_HEADERS) {
            continue;
        }
        let name = name.as_str();
        match v.to_str() {
            Ok(s) => found.extend(
                s.split(',')
                    .map(|p| (name.to_string(), Some(p.trim().to_string()))),
            ),
            Err(_) => found.push((name.to_string(), None)),
        }
    }
    for pair in query.unwrap_or("").split(['&', ';']) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        if decode_component(k)
            .trim()
            .eq_ignore_ascii_case(OVERRIDE_PARAM)
        {
            found.push((
                format!("query parameter {OVERRIDE_PARAM}"),
                Some(decode_component(v).trim().to_string()),
            ));
        }
    }
    match found.as_slice() {
        [] => Override::None,
        [(src, Some(v))] => {
            let token = !v.is_empty()
                && v.len() <= 32
                && v.bytes()
                    .all(|b| b.is_ascii_alphabetic() || b == b'-' || b == b'_');
            if token {
                Override::One(v.to_ascii_uppercase(), src.clone())
            } else {
                Override::Bad(format!("{src} `{}` is not an HTTP method", short(v)))
            }
        }
        [(src, None)] => Override::Bad(format!("{src} is not text")),
        _ => Override::Bad(format!(
            "{} method overrides ({}); send at most one",
            found.len(),
            found
                .iter()
                .map(|(s, _)| s.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )),
    }
}

/// Whether header `name` is one of `list` as a CGI-style server reads it: PHP's
/// `$_SERVER` and WSGI's `environ` map `_` and `-` alike (`X_HTTP_METHOD_OVERRIDE`
/// reads as `X-HTTP-Method-Override`). Names arrive lowercased.
fn is_one_of(name: &http::header::HeaderName, list: &[&str]) -> bool {
    let n = name.as_str();
    list.iter().any(|h| {
        h.len() == n.len()
            && h.bytes()
                .zip(n.bytes())
                .all(|(a, b)| a == b || (a == b'-' && b == b'_'))
    })
}

fn method_allowed(r: &Route, m: &str) -> bool {
    r.methods
        .as_ref()
        .is_none_or(|ms| ms.iter().any(|a| a.as_str().eq_ignore_ascii_case(m)))
}

/// `[v6]` in URLs.
fn url_host(h: &Host) -> String {
    match h {
        Host::Ip(std::net::IpAddr::V6(ip)) => format!("[{ip}]"),
        h => h.to_string(),
    }
}

/// Everything egress decides about a request before it leaves, in order:
/// 1. a git push over smart HTTP is refused whatever the routes say (pushes go through
///    git-gate, which judges refs);
/// 2. [`decide_route`]: which route (or the allowlist) lets it through, and how;
/// 3. a protocol upgrade other than WebSocket is refused when egress injects any
///    credential (it could not scrub the upgraded stream for it).
pub fn decide(cfg: &EgressConfig, t: &Target<'_>) -> Result<Decision, Refusal> {
    if crate::inject::is_git_push_target(t.path, t.query) {
        return Err(Refusal::of(
            RefusalKind::GitPushOverHttps,
            "git push over HTTPS is refused",
        )
        .with_hint("push through git-gate")
        .with_rule("egress: git pushes go through git-gate, whatever the routes say"));
    }
    let decision = decide_route(cfg, t)?;
    if cfg.all_patterns.is_some()
        && hop::wants_upgrade(t.headers)
        && !hop::is_websocket_upgrade(t.headers)
    {
        return Err(Refusal::of(
            RefusalKind::UpgradeRefused,
            "protocol upgrade other than WebSocket (egress could not scrub it)",
        )
        .with_rule("egress: only WebSocket upgrades while any route injects a credential"));
    }
    Ok(decision)
}

/// First route whose host, path glob, method (and method override) all match;
/// else the allowlist (only for hosts no route names); else the refusal saying
/// what did not match. A matched route that injects over `http://` is refused
/// unless it has `allow_cleartext: true`.
fn decide_route(cfg: &EgressConfig, t: &Target<'_>) -> Result<Decision, Refusal> {
    let (host, port) = (t.host, t.port);
    let norm = normalise(t.path);
    let ov = method_override(t.headers, t.query);
    let path_ov = t
        .headers
        .keys()
        .find(|h| is_one_of(h, PATH_OVERRIDE_HEADERS))
        .map(|h| h.as_str());
    let mut path_ov_refusal: Option<String> = None;
    let mut host_hit = false;
    let mut path_hit = false;
    let mut method_hit = false;
    let mut ambiguous: Option<Ambiguity> = None;
    let mut ov_refusal: Option<String> = None;
    // routes whose host and path matched but whose methods did not, for the rule line
    let mut method_miss: Vec<&Route> = Vec::new();
    for (i, r) in cfg.live.routes.routes.iter().enumerate() {
        if !r.host.matches(host, port) {
            continue;
        }
        host_hit = true;
        // a route without path rules forwards the agent's path untouched; one with
        // path rules judges (and forwards) the normalised path, or nothing
        let path = match (&r.paths, &norm) {
            (None, _) => t.path,
            (Some(_), Ok(n)) => n.as_str(),
            (Some(_), Err(a)) => {
                ambiguous = Some(*a);
                continue;
            }
        };
        if !r.paths.as_ref().is_none_or(|g| g.matches(path)) {
            continue;
        }
        path_hit = true;
        if let (Some(_), Some(h)) = (&r.paths, path_ov) {
            path_ov_refusal = Some(format!(
                "path override header not allowed: {h} on a route with path rules on {host}:{port}"
            ));
            continue;
        }
        if !r.accepts(t.method, path) {
            method_miss.push(r);
            continue;
        }
        method_hit = true;
        if r.methods.is_some() {
            match &ov {
                Override::None => {}
                Override::One(m, _) if method_allowed(r, m) => {}
                Override::One(m, src) => {
                    ov_refusal = Some(format!(
                        "method override not allowed: {src} names {m} on {} {} on {host}:{port}",
                        t.method,
                        short(t.path)
                    ));
                    continue;
                }
                Override::Bad(why) => {
                    ov_refusal = Some(format!("malformed method override: {why} on {host}:{port}"));
                    continue;
                }
            }
        }
        if r.auth.is_some() && !t.https && !r.allow_cleartext {
            let port_part = if port == 80 {
                String::new()
            } else {
                format!(":{port}")
            };
            return Err(Refusal::of(
                RefusalKind::CleartextCredential,
                format!(
                    "route {i} ({}) injects a credential; refusing to send it over cleartext http://{}:{port}",
                    r.host,
                    url_host(host)
                ),
            )
            .with_hint(format!("use https://{}{port_part}/...", url_host(host)))
            .with_rule(format!("{}: injects a credential without allow_cleartext", route_name(r))));
        }
        let forward = match (&r.paths, &norm) {
            (Some(_), Ok(n)) if n != t.path => Some(n.clone()),
            _ => None,
        };
        // Rack, Symfony and Express's method-override only honour `_method` on POST
        let check_body = r.methods.is_some() && *t.method == Method::POST;
        // a coded body would be checked compressed, and a front end may inflate it
        // (Apache `SetInputFilter DEFLATE`) before the framework reads `_method`
        if check_body && body_in_scope(t.headers) {
            if let Some(c) = body_coding(t.headers) {
                return Err(Refusal::of(
                    RefusalKind::MethodOverride,
                    format!(
                        "POST body with Content-Encoding {c} on a route with method rules on {host}:{port}: egress cannot check it for a `_method` override"
                    ),
                )
                .with_hint("send the body uncompressed")
                .with_rule(format!("{}: has method rules", route_name(r))));
            }
        }
        return Ok(Decision {
            matched: Matched::Route(i),
            path: forward,
            check_body,
        });
    }
    if !host_hit {
        if cfg.live.allowlist.allows(host, port) {
            return Ok(Decision {
                matched: Matched::Allowlist,
                path: None,
                check_body: false,
            });
        }
        let refusal = Refusal::of(
            RefusalKind::HostNotAllowed,
            format!("host not routed: {host}:{port}"),
        )
        .with_rule(format!(
            "allowlist and routes.yaml: no entry or route matches {}",
            host.to_authority(port)
        ))
        .with_ask(AskAccess::host(host, port));
        return Err(match bottle_core::hint::allow_hint(host, port) {
            Some(hint) => refusal.with_hint(hint),
            None => refusal,
        });
    }
    if !path_hit {
        if let Some(a) = ambiguous {
            return Err(Refusal::of(
                RefusalKind::AmbiguousPath,
                format!(
                    "ambiguous path {} on {host}:{port} refused on a route with path rules: {a}",
                    short(t.path)
                ),
            )
            .with_hint("request the plain path it stands for")
            .with_rule(format!(
                "routes.yaml: routes for {} have path rules",
                host.to_authority(port)
            )));
        }
        return Err(Refusal::of(
            RefusalKind::PathNotAllowed,
            format!("path not allowed: {} on {host}:{port}", short(t.path)),
        )
        .with_rule(format!(
            "routes.yaml: no route for {} covers path {} (paths {})",
            host.to_authority(port),
            short(t.path),
            route_paths(cfg, host, port)
        ))
        .with_ask(AskAccess::route(
            host,
            port,
            norm.as_deref().ok(),
            Some(t.method.as_str()),
        )));
    }
    if let Some(reason) = path_ov_refusal {
        return Err(Refusal::of(RefusalKind::PathOverride, reason)
            .with_hint("send the path itself in the request line")
            .with_rule(format!(
                "routes.yaml: routes for {} have path rules",
                host.to_authority(port)
            )));
    }
    if let (true, Some(reason)) = (method_hit, ov_refusal) {
        return Err(
            Refusal::of(RefusalKind::MethodOverride, reason).with_rule(format!(
                "routes.yaml: routes for {} have method rules",
                host.to_authority(port)
            )),
        );
    }
    let rule = if method_miss.is_empty() {
        format!(
            "routes.yaml: no route for {} allows method {}",
            host.to_authority(port),
            t.method
        )
    } else {
        let names: Vec<String> = method_miss
            .iter()
            .map(|r| format!("{} (line {})", r.index, r.line))
            .collect();
        let mut methods: Vec<&str> = method_miss
            .iter()
            .flat_map(|r| r.methods.iter().flatten().map(Method::as_str))
            .collect();
        methods.sort_unstable();
        methods.dedup();
        format!(
            "routes.yaml: route {} for {}: method {} not in [{}]",
            names.join(", "),
            host.to_authority(port),
            t.method,
            methods.join(", ")
        )
    };
    Err(Refusal::of(
        RefusalKind::MethodNotAllowed,
        format!(
            "method not allowed: {} {} on {host}:{port}",
            t.method,
            short(t.path)
        ),
    )
    .with_rule(rule)
    .with_ask(AskAccess::route(
        host,
        port,
        norm.as_deref().ok(),
        Some(t.method.as_str()),
    )))
}

/// `routes.yaml: route 2 (line 14, api.github.com)`, naming a route in a rule line.
fn route_name(r: &Route) -> String {
    format!(
        "routes.yaml: route {} (line {}, {})",
        r.index, r.line, r.host
    )
}

/// The path globs of the routes for `host:port`, for a rule line (`any` for a route without).
fn route_paths(cfg: &EgressConfig, host: &Host, port: u16) -> String {
    let globs: Vec<String> = cfg
        .live
        .routes
        .routes
        .iter()
        .filter(|r| r.host.matches(host, port))
        .map(|r| match &r.paths {
            Some(g) => g.patterns().join(", "),
            None => "any".to_string(),
        })
        .collect();
    short(&format!("[{}]", globs.join("; ")))
}

/// Buffer a body [`Decision::check_body`] asked for (at most [`MAX_CHECKED_BODY`],
/// within `within`) and refuse it if it names a method override; else the same bytes.
pub async fn read_checked_body(
    body: hyper::body::Incoming,
    within: std::time::Duration,
) -> Result<BoxBody, Refusal> {
    let limited = http_body_util::Limited::new(body, MAX_CHECKED_BODY);
    let bytes = match tokio::time::timeout(within, limited.collect()).await {
        Err(_) => {
            return Err(Refusal::of(
                RefusalKind::BodyTimeout,
                format!(
                    "request body not received within {}s",
                    within.as_secs_f32()
                ),
            ))
        }
        Ok(Err(e)) if e.downcast_ref::<http_body_util::LengthLimitError>().is_some() => {
            return Err(Refusal::of(
                RefusalKind::BodyTooLarge,
                format!(
                    "POST body over {} KiB on a route with method rules: egress cannot check it for a `_method` override",
                    MAX_CHECKED_BODY / 1024
                ),
            ))
        }
        Ok(Err(e)) => {
            return Err(Refusal::of(
                RefusalKind::BadRequest,
                format!("request body failed: {e}"),
            ))
        }
        Ok(Ok(c)) => c.to_bytes(),
    };
    if body_names_override(&bytes) {
        return Err(Refusal::of(
            RefusalKind::MethodOverride,
            "method override in the request body (a `_method` field) refused on a route with method rules",
        )
        .with_hint("send the real method instead"));
    }
    Ok(full(bytes))
}

/// `uri` with its path replaced by `path` (query kept).
pub fn with_path(uri: &Uri, path: &str) -> Result<Uri, http::Error> {
    let pq = match uri.query() {
        Some(q) => format!("{path}?{q}"),
        None => path.to_string(),
    };
    let mut parts = uri.clone().into_parts();
    parts.path_and_query = Some(PathAndQuery::try_from(pq)?);
    Ok(Uri::from_parts(parts)?)
}

/// At most 200 characters, for refusals and logs.
pub(crate) fn short(s: &str) -> String {
    let mut out: String = s.chars().take(200).collect();
    if out.len() < s.len() {
        out.push_str("...");
    }
    out
}

#[cfg(test)]
#[path = "policy_tests.rs"]
mod tests;
