//! `bottle why URL [--method M] [--bottle SLUG]`: which rule allows or refuses a request, by
//! the sidecars' own decision code, never a copy of a rule (issue 15).
//!
//! The request goes as the agent's would: pipelock first
//! ([`pipelock::policy::why::would_pass`]: allowlist, SSRF, DLP on the URL), then, when
//! pipelock lets it through, egress ([`egress::why::would_pass`]: routes' method and path
//! rules, cleartext credentials, git pushes). The config is the bottle's `live-config/`,
//! the files the sidecars read; egress's is built without credential values, which stay
//! with the operator. Exit 0 when allowed, 1 when refused, 2 on bad input.

mod lines;
#[cfg(test)]
mod tests;

use std::path::{Path, PathBuf};

use bottle_core::refusal::RefusalKind;
use bottle_core::{split_host_port, Host, LiveConfig};
use clap::Args;
use http::{Method, Uri};

use crate::error::{Error, Result};
use crate::state::StateDir;
use crate::terminal_text::inert;

/// Arguments of `bottle why`.
#[derive(Args, Debug)]
pub struct WhyArgs {
    /// The URL to ask about (`https://host/path` or `http://...`).
    pub url: String,
    /// The request's method.
    #[arg(long, default_value = "GET")]
    pub method: String,
    /// The bottle (may be omitted when exactly one runs).
    #[arg(long)]
    pub bottle: Option<String>,
    /// Judge against this live-config directory (allowlist, routes.yaml) instead of a
    /// bottle's.
    #[arg(long, value_name = "DIR", conflicts_with = "bottle")]
    pub config_dir: Option<PathBuf>,
}

/// A question: a method and an absolute http(s) URL.
#[derive(Debug, Clone)]
pub struct Question {
    pub method: Method,
    pub url: Uri,
    /// `host:port` parsed from the URL.
    pub host: Host,
    pub port: u16,
}

/// What `bottle why` prints and its exit code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub allowed: bool,
    /// Lines to print, free of control characters.
    pub lines: Vec<String>,
}

/// Runs `bottle why`.
pub fn run(args: &WhyArgs) -> Result<i32> {
    let question = Question::parse(&args.url, &args.method)?;
    let dir = match &args.config_dir {
        Some(d) => d.clone(),
        None => {
            let slug = crate::commands::pick_bottle(args.bottle.as_deref())?;
            StateDir::of(&slug)?.live_config_dir()
        }
    };
    let answer = explain(&dir, &question)?;
    for line in &answer.lines {
        println!("{line}");
    }
    Ok(if answer.allowed { 0 } else { 1 })
}

impl Question {
    /// Parses the URL and method; a usage error (exit 2) says what is wrong.
    pub fn parse(url: &str, method: &str) -> Result<Question> {
        let bad = |why: &str| {
            let shown: String = inert(url).chars().take(200).collect();
            Error::Usage(format!(
                "`{shown}` is not a URL bottle why can judge: {why}"
            ))
        };
        let uri: Uri = url
            .parse()
            .map_err(|_| bad("write e.g. https://host/path"))?;
        let https = match uri.scheme_str().map(str::to_ascii_lowercase).as_deref() {
            Some("https") => true,
            Some("http") => false,
            _ => return Err(bad("it must start with https:// or http://")),
        };
        let authority = uri.authority().ok_or_else(|| bad("it names no host"))?;
        if authority.as_str().contains('@') {
            return Err(bad("it carries credentials (user@host)"));
        }
        let (host, port) = split_host_port(authority.as_str(), if https { 443 } else { 80 })
            .map_err(|e| bad(&e.to_string()))?;
        let method = method
            .to_ascii_uppercase()
            .parse::<Method>()
            .map_err(|_| Error::Usage(format!("`{}` is not an HTTP method", inert(method))))?;
        Ok(Question {
            method,
            url: uri,
            host,
            port,
        })
    }
}

/// Judges `q` against the live config in `dir` with pipelock's decisions, then egress's.
pub fn explain(dir: &Path, q: &Question) -> Result<Answer> {
    let live = LiveConfig::load(dir)
        .map_err(|e| Error::Bottle(format!("reading {}: {e}", dir.display())))?;
    let pipelock_cfg = pipelock::policy::PolicyConfig::new(live.clone());
    let egress_cfg = egress::why::decision_config(live);
    let allowlist = lines::read_allowlist(dir)?;
    let p = pipelock::policy::why::would_pass(&pipelock_cfg, &q.method, &q.url.to_string());

    let dlp = matches!(p.kind, Some(RefusalKind::Dlp | RefusalKind::DlpEncoding));
    // a URL DLP refused holds a secret somewhere (host, path or query): never echo it
    let shown = if dlp {
        format!(
            "{}://[URL withheld: it holds a secret]",
            q.url.scheme_str().unwrap_or("?")
        )
    } else {
        q.url.to_string()
    };
    let mut out = Vec::new();
    let head = |verdict: &str| format!("{shown} {}: {verdict}", q.method);

    if !p.allowed {
        out.push(head("refused"));
        out.push(format!(
            "  pipelock: {}",
            p.message.as_deref().unwrap_or("refused")
        ));
        out.push(format!("  rule:     {}", p.rule));
        if p.kind == Some(RefusalKind::HostNotAllowed) {
            if let Host::Ip(ip) = q.host {
                // the allowlist refused first; the SSRF check would refuse too, and says
                // what an operator would need instead (an address line)
                if let Err(d) =
                    pipelock::policy::decide_addresses(&q.host, &[ip], &pipelock_cfg.live, false)
                {
                    out.push(format!(
                        "  ssrf:     {}",
                        d.refusal.message(pipelock::policy::COMPONENT)
                    ));
                    if let Some(rule) = &d.refusal.rule {
                        out.push(format!("  rule:     {rule}"));
                    }
                }
            }
            for l in lines::expired_matches(&allowlist, &q.host, q.port) {
                out.push(format!("  note:     {l}"));
            }
        }
        return Ok(finish(false, out));
    }
    let mut pipelock_line = format!("  pipelock: {}", p.rule);
    if let Some(l) = lines::in_force_match(&allowlist, &q.host, q.port) {
        pipelock_line.push_str(&format!(" ({l})"));
    }
    if p.passthrough {
        out.push(head("allowed"));
        out.push(pipelock_line);
        out.push(
            "  egress:   tls_passthrough route: tunnelled byte for byte, nothing inside judged"
                .into(),
        );
        return Ok(finish(true, out));
    }
    match egress::why::would_pass(&egress_cfg, &q.method, &q.url) {
        Ok(d) => {
            out.push(head("allowed"));
            out.push(pipelock_line);
            out.push(format!(
                "  egress:   {}",
                egress::why::rule_of(&egress_cfg, &d)
            ));
            Ok(finish(true, out))
        }
        Err(r) => {
            out.push(head("refused"));
            out.push(pipelock_line);
            out.push(format!("  egress:   {}", r.message("egress")));
            if let Some(rule) = &r.rule {
                out.push(format!("  rule:     {rule}"));
            }
            Ok(finish(false, out))
        }
    }
}

fn finish(allowed: bool, lines: Vec<String>) -> Answer {
    Answer {
        allowed,
        lines: lines.iter().map(|l| inert(l)).collect(),
    }
}
