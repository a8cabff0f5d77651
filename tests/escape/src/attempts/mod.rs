//! The attempt table, by category. Each builder returns data: name, expected refusal, and a
//! closure that runs the attempt and checks its host-side proof.

use crate::{attempt, canary, outcome, Attempt, Outcome, World};

mod git;
mod host;
pub mod http;
mod network;
mod outside;

/// Every attempt, in report order.
pub fn all(w: &World) -> Vec<Attempt> {
    let mut v = Vec::new();
    v.extend(network::attempts(w));
    v.extend(http::attempts(w));
    v.extend(git::attempts(w));
    v.extend(outside::attempts(w));
    v.extend(host::attempts(w));
    v
}

/// `curl` options for a direct attempt (no proxy, short timeouts).
pub const DIRECT: &str = "curl -sS --noproxy '*' --connect-timeout 4 --max-time 6";
/// `curl` options for an attempt through pipelock (the agent's HTTP(S)_PROXY), headers shown.
/// The proxy is forced (`NO_PROXY` in the agent lists git-gate and loopback).
pub const PROXIED: &str = "curl -sS -i --max-time 20 --proxy http://pipelock:8888 --noproxy ''";

/// Did the snippet's marked commands all fail? (`... ; echo " rc=$?"` after each.)
pub fn none_succeeded(out: &str) -> bool {
    out.contains(" rc=") && !out.contains(" rc=0")
}

/// A refusal by a sidecar: 4xx with `X-Bottle-Blocked`, or the proxy tunnel refused.
pub fn blocked(out: &str) -> bool {
    let l = out.to_ascii_lowercase();
    l.contains("x-bottle-blocked") || l.contains("connect tunnel failed, response 4")
}

/// First status line seen in curl -i output, or the curl error.
pub fn gist(out: &str) -> String {
    let status = out
        .lines()
        .rfind(|l| l.starts_with("HTTP/"))
        .map(str::to_string);
    let err = out
        .lines()
        .find(|l| l.starts_with("curl: "))
        .map(str::to_string);
    let blocked_by = out
        .lines()
        .find(|l| l.to_ascii_lowercase().starts_with("x-bottle-blocked"))
        .map(|l| l.trim().to_string());
    let rc = out
        .split_whitespace()
        .filter(|t| t.starts_with("rc="))
        .collect::<Vec<_>>()
        .join(",");
    [status, blocked_by, err, Some(rc)]
        .into_iter()
        .flatten()
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join("; ")
}

/// A URL fetched through pipelock must be refused by a sidecar, and the origin (and host
/// listener) must never see the attempt's canary.
pub fn via_proxy_blocked(
    category: &'static str,
    name: impl Into<String>,
    url: impl Fn(&str) -> String + Send + Sync + 'static,
) -> Attempt {
    attempt(
        category,
        name,
        "403 X-Bottle-Blocked from a sidecar; canary never at origin or host",
        move |w: &World| {
            let c = canary("");
            let u = url(&c);
            let r = w.a_sh(&format!("{PROXIED} '{u}'; echo \" rc=$?\""));
            let leaked = w.origin_saw(&c) || w.host_saw(&c);
            outcome(
                blocked(&r.all()) && !leaked,
                format!(
                    "{u} -> {}{}",
                    gist(&r.all()),
                    if leaked { " CANARY ARRIVED" } else { "" }
                ),
            )
        },
    )
}

/// A direct connection (no proxy) must fail, and nothing may arrive at origin or host.
pub fn direct_refused(
    category: &'static str,
    name: impl Into<String>,
    url: impl Fn(&str) -> String + Send + Sync + 'static,
) -> Attempt {
    attempt(
        category,
        name,
        "no connection (no route); canary never at origin or host",
        move |w: &World| {
            let c = canary("");
            let u = url(&c);
            let hits = w.host_hits();
            let r = w.a_sh(&format!("{DIRECT} '{u}'; echo \" rc=$?\""));
            let leaked = w.origin_saw(&c) || w.host_saw(&c) || w.host_hits() != hits;
            outcome(
                none_succeeded(&r.stdout) && !leaked,
                format!(
                    "{u} -> {}{}",
                    gist(&r.all()),
                    if leaked { " ARRIVED" } else { "" }
                ),
            )
        },
    )
}

/// Run a snippet in A's agent; pass when `ok(stdout+stderr)` holds.
pub fn in_agent(
    category: &'static str,
    name: impl Into<String>,
    expect: impl Into<String>,
    script: String,
    ok: impl Fn(&str) -> bool + Send + Sync + 'static,
) -> Attempt {
    attempt(category, name, expect, move |w: &World| {
        let r = w.a_sh(&script);
        let all = r.all();
        outcome(ok(&all), &all)
    })
}

/// Pass-through for builders that need the full closure.
pub fn custom(
    category: &'static str,
    name: impl Into<String>,
    expect: impl Into<String>,
    run: impl Fn(&World) -> Outcome + Send + Sync + 'static,
) -> Attempt {
    attempt(category, name, expect, run)
}
