//! From outside the bottle: the host and a container on the upstream network (where egress
//! and git-gate have addresses) must not get a credential or a repository out of them.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use bottle_e2e::{docker, Run};

use super::custom;
use crate::{outcome, Attempt, World};

/// Run a snippet in a throwaway test-agent container on `network`.
fn neighbour(network: &str, script: &str) -> Run {
    docker(&[
        "run",
        "--rm",
        "--network",
        network,
        "--label",
        "bottle-e2e=1",
        "bottle-agent-test:latest",
        "sh",
        "-c",
        script,
    ])
}

/// One raw HTTP exchange from the host (short timeouts).
fn from_host(addr: &str, req: &str) -> String {
    let Ok(sa) = addr.parse() else {
        return format!("bad address {addr}");
    };
    match TcpStream::connect_timeout(&sa, Duration::from_secs(3)) {
        Err(e) => format!("connect: {e}"),
        Ok(mut s) => {
            let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
            let _ = s.write_all(req.as_bytes());
            let mut b = Vec::new();
            let _ = s.take(64 * 1024).read_to_end(&mut b);
            let t = String::from_utf8_lossy(&b).to_string();
            format!("connected; reply: {}", t.lines().next().unwrap_or("(none)"))
        }
    }
}

/// Did the credential go out for this canary, or come back in `out`?
fn credential_out(w: &World, c: &str, out: &str) -> bool {
    w.origin_lines(c).iter().any(|l| l.contains(&w.secret))
        || crate::attempts::http::leaked_spelling(w, out).is_some()
}

/// Addresses of `service` on `network`.
fn on(w: &World, service: &str, network: &str) -> Vec<String> {
    w.a.ips_named(service)
        .into_iter()
        .filter(|(n, _)| n == network)
        .map(|(_, ip)| ip)
        .collect()
}

pub fn attempts(w: &World) -> Vec<Attempt> {
    let mut v = Vec::new();
    // Only networks with a route from the prober: the origin's network and A's upstream
    // bridge. (The internal networks have no host address: a probe there would follow the
    // host's default route off the machine.)
    let nets = [
        ("origin-net", w.origin.network.clone()),
        ("upstream-net", format!("{}_upstream", w.a.project)),
    ];
    let mut host_egress = Vec::new();
    let mut host_gate = Vec::new();
    for (label, net) in nets {
        let e = on(w, "egress", &net);
        let g = on(w, "git-gate", &net);
        host_egress.extend(e.clone());
        host_gate.extend(g.clone());
        let n = net.clone();
        v.push(custom(
            "outside",
            format!("{label}-neighbour-to-egress"),
            format!("a container on {label} gets no credential from egress ({}) and nothing forwarded", e.join(",")),
            move |w: &World| {
                let c = crate::canary("");
                let script: String = e
                    .iter()
                    .map(|ip| format!("curl -sS -i --max-time 8 --proxy http://{ip}:9099 'http://api.e2e.test/reflect?c={c}'; echo \" {ip} rc=$?\";"))
                    .collect();
                if e.is_empty() {
                    return outcome(false, "egress has no address on this network: nothing was tried");
                }
                let r = neighbour(&n, &script);
                let all = r.all();
                outcome(
                    !w.origin_saw(&c) && !credential_out(w, &c, &all),
                    super::gist(&all),
                )
            },
        ));
        let n = net.clone();
        v.push(custom(
            "outside",
            format!("{label}-neighbour-to-git-gate"),
            format!("a container on {label} cannot list or fetch through git-gate ({}) nor reach its admin port", g.join(",")),
            move |w: &World| {
                let before = w.upstream_refs();
                let script: String = g
                    .iter()
                    .map(|ip| format!("timeout 8 git ls-remote http://{ip}:8080/demo.git 2>&1; echo \" {ip}:8080 rc=$?\"; curl -sS --max-time 5 -o /dev/null -w ' {ip}:9090 code=%{{http_code}}' http://{ip}:9090/metrics; echo;"))
                    .collect();
                let r = neighbour(&n, &script);
                let all = r.all();
                let admin_answered = all
                    .split_whitespace()
                    .any(|t| t.starts_with("code=") && t != "code=000");
                outcome(
                    !all.contains(":8080 rc=0") && !all.contains("refs/heads/") && !admin_answered && before == w.upstream_refs(),
                    crate::short(&all),
                )
            },
        ));
    }
    v.push(custom(
        "outside",
        "host-to-egress-credential-route",
        "from the host, egress (its bridged addresses) injects no credential and forwards nothing",
        move |w: &World| {
            let c = crate::canary("");
            let seen: Vec<String> = host_egress
                .iter()
                .map(|ip| {
                    ip.clone() + " " + &from_host(
                        &format!("{ip}:9099"),
                        &format!("GET http://api.e2e.test/reflect?c={c} HTTP/1.1\r\nHost: api.e2e.test\r\nConnection: close\r\n\r\n"),
                    )
                })
                .collect();
            let all = seen.join(" | ");
            outcome(!w.origin_saw(&c) && !credential_out(w, &c, &all), all)
        },
    ));
    v.push(custom(
        "outside",
        "host-to-git-gate",
        "from the host, git-gate (its bridged addresses) serves no repository",
        move |_w: &World| {
            let seen: Vec<String> = host_gate
                .iter()
                .map(|ip| {
                    ip.clone() + " " + &from_host(
                        &format!("{ip}:8080"),
                        "GET /demo.git/info/refs?service=git-upload-pack HTTP/1.1\r\nHost: git-gate\r\nConnection: close\r\n\r\n",
                    )
                })
                .collect();
            let all = seen.join(" | ");
            outcome(!all.contains(" 200 "), all)
        },
    ));
    v
}
