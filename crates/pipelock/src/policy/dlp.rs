//! The DLP part of the decisions: the host the agent named, a request's method, URL and
//! header block. Findings name detectors, never the matched value; the body is scanned as
//! it streams (`crate::dlp_scan`), with the helpers here.

use std::time::Instant;

use bottle_dlp::anomaly;
use bottle_dlp::{Detector, Finding};
use http::header::{self, HeaderMap};

use bottle_core::refusal::RefusalKind;

use super::{admit, Denied, History, PolicyView};

/// A DLP judgement: whether anything was found (the field is then redacted in the audit
/// line), what was let through in `log` mode, and the verdict.
pub struct Judged<T> {
    pub found: bool,
    pub logged: Vec<&'static str>,
    pub verdict: Result<T, Denied>,
}

/// The request head judged: the path as the audit line may show it, and whether the
/// method must be hidden too.
pub struct HeadJudged {
    pub path: String,
    pub method_redacted: bool,
    pub logged: Vec<&'static str>,
    /// Ok(Some(text)) describes findings let through in `log` mode.
    pub verdict: Result<Option<String>, Denied>,
}

/// Detector ids, sorted, each once.
pub fn detectors(findings: &[Finding]) -> Vec<&'static str> {
    let mut d: Vec<&'static str> = findings.iter().map(|f| f.detector).collect();
    d.sort_unstable();
    d.dedup();
    d
}

/// The refusal for findings in `what` (`host`, `URL`, `header x-a`, `body`).
pub fn dlp_denied(what: &str, dets: &[&'static str]) -> Denied {
    // The anomaly and exfiltration detectors judge a shape, not a secret.
    let suspected = dets.iter().all(|d| anomaly::IDS.contains(d));
    let (found, rule) = if suspected {
        ("suspected exfiltration", "dlp anomaly")
    } else {
        ("secret detected", "dlp pattern")
    };
    Denied::of(
        RefusalKind::Dlp,
        format!("{found} in request {what}: {}", dets.join(", ")),
    )
    .rule(format!("{rule}: {}", dets.join(", ")))
}

/// `header x-a` for one field, `headers x-a + x-b` for a secret split over several.
pub fn describe(kind: &str, names: &[String]) -> String {
    match names {
        [one] => format!("{kind} {one}"),
        many => format!("{kind}s {}", many.join(" + ")),
    }
}

/// The header block (plus the trailer block, when given, after it) scanned as one:
/// each field alone and the fields joined, so a secret split over fields is found.
/// With trailers, only findings touching a trailer are returned (the head was scanned
/// before the request left). Returns (field names, findings) per group of fields.
pub fn scan_block(
    det: &Detector,
    head: &HeaderMap,
    trailers: Option<&HeaderMap>,
) -> Vec<(Vec<String>, Vec<Finding>)> {
    let mut fields: Vec<(&str, &[u8])> = head
        .iter()
        .filter(|(n, _)| *n != header::HOST)
        .map(|(n, v)| (n.as_str(), v.as_bytes()))
        .collect();
    let first_trailer = trailers.map(|t| {
        let at = fields.len();
        fields.extend(t.iter().map(|(n, v)| (n.as_str(), v.as_bytes())));
        at
    });
    let mut out: Vec<(Vec<String>, Vec<Finding>)> = Vec::new();
    for hit in det.scan_header_block(&fields) {
        if let Some(t) = first_trailer {
            if hit.fields.iter().all(|&i| i < t) {
                continue;
            }
        }
        let mut names: Vec<String> = Vec::new();
        for &i in &hit.fields {
            if let Some((n, _)) = fields.get(i) {
                if !names.iter().any(|x| x == n) {
                    names.push(n.to_string());
                }
            }
        }
        match out.iter_mut().find(|(n, _)| *n == names) {
            Some((_, f)) => f.push(hit.finding),
            None => out.push((names, vec![hit.finding])),
        }
    }
    out
}

fn scan_headers(det: &Detector, headers: &HeaderMap) -> Vec<(String, Vec<Finding>)> {
    scan_block(det, headers, None)
        .into_iter()
        .map(|(names, f)| (describe("header", &names), f))
        .collect()
}

/// Block: the refusal (its detectors counted as `block`); log: let through, counted.
fn act<T>(cfg: PolicyView<'_>, what: &str, dets: Vec<&'static str>, logged: T) -> Judged<T> {
    if cfg.blocks() {
        let mut d = dlp_denied(what, &dets);
        d.blocked_by = dets;
        Judged {
            found: true,
            logged: Vec::new(),
            verdict: Err(d),
        }
    } else {
        Judged {
            found: true,
            logged: dets,
            verdict: Ok(logged),
        }
    }
}

/// The authority the agent named (before parsing): a secret in a host name would leak
/// through DNS and logs. `scan_host` also joins the labels: a token split over labels
/// leaks through DNS too. Strict: encoded-looking labels, label volume, and (allowed
/// hosts only, so refused ones cannot evict the parents that matter) the [`History`].
pub fn judge_host(
    authority: &str,
    cfg: PolicyView<'_>,
    history: &dyn History,
    now: Instant,
) -> Judged<()> {
    let mut f = cfg.detector.scan_host(authority);
    if f.is_empty() && cfg.strict() {
        f = anomaly::scan_host(authority);
        if f.is_empty() {
            let allowed = bottle_core::split_host_port(authority, 443)
                .ok()
                .is_some_and(|(h, p)| admit(cfg.live, &h, p).is_ok());
            if allowed {
                f.extend(history.observe_host(authority, now));
            }
        }
    }
    if f.is_empty() {
        return Judged {
            found: false,
            logged: Vec::new(),
            verdict: Ok(()),
        };
    }
    act(cfg, "host", detectors(&f), ())
}

/// A CONNECT's own headers.
pub fn judge_headers(headers: &HeaderMap, cfg: PolicyView<'_>) -> Judged<()> {
    let hits = scan_headers(cfg.detector, headers);
    if hits.is_empty() {
        return Judged {
            found: false,
            logged: Vec::new(),
            verdict: Ok(()),
        };
    }
    let all: Vec<Finding> = hits.iter().flat_map(|(_, f)| f.iter().cloned()).collect();
    let names: Vec<&str> = hits.iter().map(|(n, _)| n.as_str()).collect();
    act(cfg, &names.join(", "), detectors(&all), ())
}

/// The request method: hyper accepts extension methods, so a token can be one. Also
/// scanned joined with the path (its leading `/` dropped), where a server could glue
/// them back together.
fn scan_method(
    det: &Detector,
    method: &str,
    path_and_query: &str,
    url_clean: bool,
) -> Vec<Finding> {
    let mut f = det.detect(method.as_bytes());
    let standard = matches!(
        method,
        "GET" | "HEAD" | "POST" | "PUT" | "DELETE" | "OPTIONS" | "PATCH" | "TRACE" | "CONNECT"
    );
    if f.is_empty() && !standard && url_clean {
        let rest = path_and_query.strip_prefix('/').unwrap_or(path_and_query);
        f = det.detect_joined(format!("{method}{rest}").as_bytes());
    }
    f
}

/// Method, URL and headers (strict: URL anomalies and invented `X-` headers; every
/// profile: dumps and credential files in headers). The strict per-parent budget of new
/// hash-sized values is charged last, so a request refused for another reason spends
/// nothing.
pub fn judge_head(
    method: &str,
    path_and_query: &str,
    headers: &HeaderMap,
    host: &str,
    cfg: PolicyView<'_>,
    history: &dyn History,
    now: Instant,
) -> HeadJudged {
    let strict = cfg.strict();
    let mut url_f = cfg.detector.scan_url(path_and_query);
    url_f.extend(anomaly::scan_url(path_and_query, strict));
    let method_f = scan_method(cfg.detector, method, path_and_query, url_f.is_empty());
    let method_redacted = !method_f.is_empty();
    let mut path = if method_redacted {
        // The path may hold the rest of a token split over method and path.
        "[REDACTED]".into()
    } else if url_f.is_empty() {
        path_and_query.to_string()
    } else {
        bottle_dlp::redact_url(path_and_query, &url_f)
    };
    let mut hits = scan_headers(cfg.detector, headers);
    if hits.is_empty() {
        // Dumps and credential files in headers (not cookies or credentials);
        // strict: invented `X-` headers holding encoded data.
        let fields: Vec<(&str, &[u8])> = headers
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_bytes()))
            .collect();
        if let Some((i, f)) = anomaly::scan_header_block(&fields, strict) {
            let name = fields.get(i).map_or("", |(n, _)| *n);
            hits.push((format!("header {name}"), vec![f]));
        }
    }
    if method_f.is_empty() && url_f.is_empty() && hits.is_empty() {
        let budget = if strict {
            history.observe_url(host, path_and_query, now)
        } else {
            None
        };
        let Some(f) = budget else {
            return HeadJudged {
                path,
                method_redacted,
                logged: Vec::new(),
                verdict: Ok(None),
            };
        };
        path = bottle_dlp::redact_url(path_and_query, std::slice::from_ref(&f));
        url_f.push(f);
    }
    let mut parts = Vec::new();
    let mut all = method_f;
    if method_redacted {
        parts.push("method".to_string());
    }
    all.extend(url_f.iter().cloned());
    if !url_f.is_empty() {
        parts.push("URL".to_string());
    }
    for (n, f) in &hits {
        parts.push(n.clone());
        all.extend(f.iter().cloned());
    }
    let dets = detectors(&all);
    let what = parts.join(", ");
    let text = format!("logged: {} in {what}", dets.join(", "));
    let judged = act(cfg, &what, dets, Some(text));
    HeadJudged {
        path,
        method_redacted,
        logged: judged.logged,
        verdict: judged.verdict,
    }
}
