//! The manifest's `supervise:` section: the access-request sidecar (on by default) and the
//! optional notify hook the launcher runs on each new request.
//!
//! ```yaml
//! supervise: false                       # no sidecar, no BOTTLE_SUPERVISE_URL
//! supervise:
//!   enabled: true                        # the default
//!   notify: {command: [notify-send, "bottle"]}    # argv, never a shell string
//!   # notify: {webhook: https://hooks.example/T0/abc}
//! ```
//!
//! The hook runs on the operator's host, so its argv comes from the manifest only: request
//! fields reach it as JSON on stdin (and a few checked env vars), never inside its argv.

use bottle_core::strict_yaml::{kind, scalar, short, Ctx, Map, Node, Value};
use bottle_core::ConfigError;

const SUPERVISE_KEYS: &[&str] = &["enabled", "notify"];
const NOTIFY_KEYS: &[&str] = &["command", "webhook"];

/// The manifest's `supervise:` settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SuperviseSpec {
    /// Render the supervise sidecar (default: true).
    pub enabled: bool,
    /// Run on each new access request while `bottle start` runs attached.
    pub notify: Option<Notify>,
}

impl Default for SuperviseSpec {
    fn default() -> Self {
        SuperviseSpec {
            enabled: true,
            notify: None,
        }
    }
}

/// The notify hook.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notify {
    /// A program and its arguments, run without a shell; the request JSON on stdin.
    Command(Vec<String>),
    /// An `https://` URL (or `http://` to a loopback host) the request JSON is POSTed to.
    Webhook(String),
}

/// Read `supervise:`: a plain `true`/`false`, or a mapping of `enabled` and `notify`. The
/// returned pairs are (key path, line) for the manifest's line index.
pub(super) fn read(
    ctx: &Ctx<'_>,
    n: &Node,
) -> Result<(SuperviseSpec, Vec<(String, usize)>), ConfigError> {
    let mut lines = Vec::new();
    match &n.v {
        Value::Scalar(s, true) if matches!(s.as_str(), "true" | "True" | "TRUE") => {
            return Ok((SuperviseSpec::default(), lines))
        }
        Value::Scalar(s, true) if matches!(s.as_str(), "false" | "False" | "FALSE") => {
            return Ok((
                SuperviseSpec {
                    enabled: false,
                    notify: None,
                },
                lines,
            ))
        }
        Value::Map(_) => {}
        _ => {
            return Err(ctx.err(
                n.line,
                format!(
                    "invalid type: `supervise` must be true, false or a mapping (enabled, notify), not {}",
                    describe(n)
                ),
            ))
        }
    }
    let m = Map::new(ctx, n, "supervise", SUPERVISE_KEYS)?;
    for (k, line, _) in m.entries {
        lines.push((format!("supervise.{k}"), *line));
    }
    let enabled = m.bool(ctx, "enabled", true)?;
    let notify = match m.get("notify") {
        None => None,
        Some(nn) => {
            let nm = Map::new(ctx, nn, "supervise notify", NOTIFY_KEYS)?;
            for (k, line, _) in nm.entries {
                lines.push((format!("supervise.notify.{k}"), *line));
            }
            Some(notify(ctx, &nm)?)
        }
    };
    if notify.is_some() && !enabled {
        return Err(ctx.err(
            m.line,
            "`supervise.notify` needs the sidecar: remove `notify` or set `enabled: true`",
        ));
    }
    Ok((SuperviseSpec { enabled, notify }, lines))
}

fn notify(ctx: &Ctx<'_>, m: &Map<'_>) -> Result<Notify, ConfigError> {
    match (m.get("command"), m.get("webhook")) {
        (Some(_), Some(_)) => Err(ctx.err(
            m.line,
            "`supervise.notify` takes one of `command` or `webhook`, not both",
        )),
        (None, None) => Err(ctx.err(
            m.line,
            "`supervise.notify` needs `command` (a list of arguments) or `webhook` (an https:// URL)",
        )),
        (Some(c), None) => command(ctx, c),
        (None, Some(w)) => {
            let url = scalar(ctx, w, "webhook")?;
            webhook_ok(&url).map_err(|why| ctx.err(w.line, why))?;
            Ok(Notify::Webhook(url))
        }
    }
}

fn command(ctx: &Ctx<'_>, n: &Node) -> Result<Notify, ConfigError> {
    let Value::Seq(items) = &n.v else {
        // One string would need a shell to split it; the hook never runs through one.
        return Err(ctx.err(
            n.line,
            format!(
                "invalid type: `notify.command` must be a list of arguments (`[prog, arg]`, run without a shell), not {}",
                describe(n)
            ),
        ));
    };
    let mut argv = Vec::new();
    for item in items {
        let Value::Scalar(s, _) = &item.v else {
            return Err(ctx.err(
                item.line,
                format!(
                    "invalid type: items of `notify.command` must be strings, not {}",
                    kind(item)
                ),
            ));
        };
        if s.contains('\0') {
            return Err(ctx.err(item.line, "`notify.command` has a NUL byte"));
        }
        argv.push(s.clone());
    }
    match argv.first() {
        None => Err(ctx.err(n.line, "`notify.command` is empty")),
        Some(p) if p.trim().is_empty() => {
            Err(ctx.err(n.line, "`notify.command` starts with an empty program name"))
        }
        Some(_) => Ok(Notify::Command(argv)),
    }
}

/// An `https://` URL with a host, or `http://` to a loopback host (a local relay); no
/// whitespace or control characters (it goes to curl's config, one quoted line).
pub fn webhook_ok(url: &str) -> Result<(), String> {
    if url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("`notify.webhook` must not contain spaces or control characters".into());
    }
    let (rest, https) = if let Some(r) = url.strip_prefix("https://") {
        (r, true)
    } else if let Some(r) = url.strip_prefix("http://") {
        (r, false)
    } else {
        return Err(format!(
            "`notify.webhook` must be an https:// URL, not `{}`",
            short(url)
        ));
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let host = if let Some(v6) = host_port.strip_prefix('[') {
        v6.split(']').next().unwrap_or("")
    } else {
        host_port.split(':').next().unwrap_or("")
    };
    if host.is_empty() {
        return Err("`notify.webhook` has no host".into());
    }
    let loopback = matches!(host, "localhost" | "127.0.0.1" | "::1");
    if !https && !loopback {
        return Err(
            "`notify.webhook` must use https:// (http:// only to localhost, 127.0.0.1 or [::1])"
                .into(),
        );
    }
    Ok(())
}

fn describe(n: &Node) -> String {
    match &n.v {
        Value::Scalar(s, false) => format!("the string `{}`", short(s)),
        Value::Scalar(s, true) => format!("`{}`", short(s)),
        _ => kind(n).to_string(),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use std::collections::BTreeMap;
    use std::path::Path;

    use super::*;

    fn parse(extra: &str) -> Result<SuperviseSpec, String> {
        let text = format!("name: d\nimage: a\n{extra}");
        crate::manifest::parse(&text, Path::new("/tmp/m.yaml"), &BTreeMap::new())
            .map(|l| l.manifest.supervise)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn on_by_default_and_off_both_ways() {
        assert_eq!(parse("").unwrap(), SuperviseSpec::default());
        assert!(parse("").unwrap().enabled);
        assert!(!parse("supervise: false\n").unwrap().enabled);
        assert!(!parse("supervise: {enabled: false}\n").unwrap().enabled);
        assert!(parse("supervise: true\n").unwrap().enabled);
        assert!(parse("supervise: {}\n").unwrap().enabled);
    }

    #[test]
    fn notify_command_and_webhook() {
        let s =
            parse("supervise:\n  notify:\n    command: [notify-send, \"bottle: $x\"]\n").unwrap();
        assert_eq!(
            s.notify,
            Some(Notify::Command(vec![
                "notify-send".into(),
                "bottle: $x".into()
            ]))
        );
        let s =
            parse("supervise:\n  notify: {webhook: \"https://hooks.example/T/abc\"}\n").unwrap();
        assert_eq!(
            s.notify,
            Some(Notify::Webhook("https://hooks.example/T/abc".into()))
        );
        assert!(parse("supervise:\n  notify: {webhook: \"http://127.0.0.1:9/x\"}\n").is_ok());
    }

    #[test]
    fn strict_keys_types_and_lines() {
        let e = parse("supervise:\n  enabeld: false\n").unwrap_err();
        assert!(e.contains("/tmp/m.yaml") && e.contains(":4"), "{e}");
        assert!(e.contains("enabled"), "did-you-mean: {e}");
        let e = parse("supervise:\n  notify:\n    comand: [x]\n").unwrap_err();
        assert!(e.contains("command") && e.contains(":5"), "{e}");
        let e = parse("supervise: maybe\n").unwrap_err();
        assert!(e.contains("supervise") && e.contains(":3"), "{e}");
        // one string would need a shell: refused
        let e =
            parse("supervise:\n  notify: {command: \"notify-send hi; rm -rf ~\"}\n").unwrap_err();
        assert!(e.contains("list of arguments"), "{e}");
        for bad in [
            "supervise:\n  notify: {command: []}\n",
            "supervise:\n  notify: {command: [\"\"]}\n",
            "supervise:\n  notify: {command: [[a]]}\n",
            "supervise:\n  notify: {}\n",
            "supervise:\n  notify: {command: [a], webhook: \"https://h/x\"}\n",
            "supervise:\n  notify: {webhook: \"http://hooks.example/x\"}\n",
            "supervise:\n  notify: {webhook: \"ftp://hooks.example/x\"}\n",
            "supervise:\n  notify: {webhook: \"https:///x\"}\n",
            "supervise:\n  notify: {webhook: \"https://h/x\\ny\"}\n",
            "supervise:\n  enabled: false\n  notify: {command: [a]}\n",
            "supervise:\n  enabled: nope\n",
        ] {
            assert!(parse(bad).is_err(), "accepted: {bad}");
        }
    }

    #[test]
    fn webhook_hosts() {
        assert!(webhook_ok("https://hooks.example").is_ok());
        assert!(webhook_ok("http://localhost:8080/x").is_ok());
        assert!(webhook_ok("http://[::1]:8080/x").is_ok());
        // userinfo does not make a remote host loopback
        assert!(webhook_ok("http://localhost@evil.example/x").is_err());
        assert!(webhook_ok("http://127.0.0.1.evil.example/x").is_err());
        assert!(webhook_ok("https://h/a b").is_err());
        assert!(webhook_ok("https://h/a\"b").is_ok());
    }
}
