//! Network isolation of a real bottle (issue 12, items 3, 4, 5, 7), each attempt checked on
//! the receiving side:
//! - DNS: the agent resolves the service names, but an external canary name is answered by
//!   nobody and never arrives at a DNS listener the test runs on the host's 127.0.0.1:53
//!   (where an engine forwarding "host loopback" resolvers from the host would send it);
//! - egress and git-gate are not reachable from the host or from a container on an
//!   `upstream_networks` network (connection refused: they listen on their bottle-side
//!   address only); nothing arrives at the origin with the credential, no mirror content;
//! - egress without the per-bottle key (even from inside its own network namespace): 407;
//! - admin ports: not reachable from the agent;
//! - IPv6: the agent has no IPv6 address and cannot reach the host's link-local address.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Read;
use std::net::{TcpListener, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bottle_e2e::{
    agent_container, agent_sh, docker, docker_or_skip, project_objects, require_images,
    seeded_upstream, Checks, Home, Origin, Run, TempDir, ORIGIN_NAMES,
};

const START: Duration = Duration::from_secs(300);
const SHORT: Duration = Duration::from_secs(90);

/// A DNS listener (UDP and TCP) recording the query names it receives.
struct DnsTrap {
    names: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
}

fn qname(b: &[u8]) -> String {
    let mut i = 12;
    let mut parts = Vec::new();
    while i < b.len() && b[i] != 0 {
        let l = b[i] as usize;
        let end = (i + 1 + l).min(b.len());
        parts.push(String::from_utf8_lossy(&b[i + 1..end]).to_string());
        i += 1 + l;
    }
    parts.join(".").to_ascii_lowercase()
}

fn query(name: &str) -> Vec<u8> {
    let mut q = vec![0x12, 0x34, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0];
    for l in name.split('.') {
        q.push(l.len() as u8);
        q.extend_from_slice(l.as_bytes());
    }
    q.extend_from_slice(&[0, 0, 1, 0, 1]);
    q
}

impl DnsTrap {
    fn start(addr: &str) -> Option<DnsTrap> {
        let udp = UdpSocket::bind(addr).ok()?;
        let tcp = TcpListener::bind(addr).ok()?;
        udp.set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        tcp.set_nonblocking(true).unwrap();
        let names = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (n1, s1) = (names.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while !s1.load(Ordering::SeqCst) {
                if let Ok((n, _)) = udp.recv_from(&mut buf) {
                    n1.lock().unwrap().push(qname(&buf[..n]));
                }
            }
        });
        let (n2, s2) = (names.clone(), stop.clone());
        std::thread::spawn(move || {
            while !s2.load(Ordering::SeqCst) {
                match tcp.accept() {
                    Ok((mut s, _)) => {
                        let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
                        let mut buf = [0u8; 4096];
                        let n = s.read(&mut buf).unwrap_or(0);
                        if n > 2 {
                            n2.lock().unwrap().push(qname(&buf[2..n]));
                        } else {
                            n2.lock().unwrap().push("<tcp connection>".into());
                        }
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(50)),
                }
            }
        });
        Some(DnsTrap { names, stop })
    }

    fn names(&self) -> Vec<String> {
        self.names.lock().unwrap().clone()
    }
}

impl Drop for DnsTrap {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

/// A TCP listener counting the connections it accepts.
struct TcpTrap {
    port: u16,
    hits: Arc<Mutex<usize>>,
    stop: Arc<AtomicBool>,
}

impl TcpTrap {
    fn start(addr: &str) -> TcpTrap {
        let l = TcpListener::bind(addr).unwrap();
        let port = l.local_addr().unwrap().port();
        l.set_nonblocking(true).unwrap();
        let hits = Arc::new(Mutex::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (h, s) = (hits.clone(), stop.clone());
        std::thread::spawn(move || {
            while !s.load(Ordering::SeqCst) {
                match l.accept() {
                    Ok(_) => *h.lock().unwrap() += 1,
                    Err(_) => std::thread::sleep(Duration::from_millis(50)),
                }
            }
        });
        TcpTrap { port, hits, stop }
    }
    fn hits(&self) -> usize {
        *self.hits.lock().unwrap()
    }
}

impl Drop for TcpTrap {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

/// A bare upstream whose only commit holds a file with `canary` in it.
fn upstream_repo(tmp: &TempDir, canary: &str) -> std::path::PathBuf {
    seeded_upstream(tmp.path(), "private.txt", canary)
}

/// The container of a compose service.
fn service(project: &str, svc: &str) -> String {
    docker(&[
        "ps",
        "-q",
        "--filter",
        &format!("label=com.docker.compose.project={project}"),
        "--filter",
        &format!("label=com.docker.compose.service={svc}"),
    ])
    .stdout
    .trim()
    .to_string()
}

/// (network name, IPv4 address) of a container.
fn addresses(container: &str) -> Vec<(String, String)> {
    docker(&[
        "inspect",
        "--format",
        "{{range $k, $v := .NetworkSettings.Networks}}{{$k}} {{$v.IPAddress}}\n{{end}}",
        container,
    ])
    .stdout
    .lines()
    .filter_map(|l| {
        let (n, ip) = l.trim().split_once(' ')?;
        (!ip.is_empty()).then(|| (n.to_string(), ip.to_string()))
    })
    .collect()
}

/// A shell snippet in a throwaway container from the test agent image.
fn container_sh(network: &str, script: &str) -> Run {
    docker(&[
        "run",
        "--rm",
        "--label",
        "bottle-e2e=1",
        "--network",
        network,
        "--entrypoint",
        "sh",
        "bottle-agent-test:latest",
        "-c",
        script,
    ])
}

/// Engines before 26.0.0, 25.0.5 and 23.0.11 (same rule as the launcher's engine.rs).
fn cve_2024_29018_affected(v: &str) -> bool {
    let n: Vec<u32> = v
        .trim()
        .split('.')
        .map(|p| {
            p.chars()
                .take_while(char::is_ascii_digit)
                .collect::<String>()
                .parse()
                .unwrap_or(0)
        })
        .collect();
    match (
        n.first().copied().unwrap_or(0),
        n.get(1).copied().unwrap_or(0),
        n.get(2).copied().unwrap_or(0),
    ) {
        (m, _, _) if m >= 26 => false,
        (25, 0, p) => p < 5,
        (25, _, _) => false,
        (24, _, _) => true,
        (23, 0, p) => p < 11,
        (23, _, _) => false,
        _ => true,
    }
}

fn connected(r: &Run) -> bool {
    r.stdout.contains(" rc=0")
}

#[test]
fn network_isolation() {
    if !docker_or_skip("network_isolation") {
        return;
    }
    require_images();
    let origin = Origin::start();
    let tmp = TempDir::new("bottle-e2e-iso");
    let canary = format!("iso-canary-{:016x}", rand::random::<u64>());
    let bare = upstream_repo(&tmp, &canary);
    let secret = format!(
        "iso-secret-{:016x}{:016x}",
        rand::random::<u64>(),
        rand::random::<u64>()
    );
    let mut home = Home::new();
    home.env.push(("E2E_API_TOKEN".into(), secret.clone()));
    let mut m = String::from("name: iso\nimage: bottle-agent-test:latest\n");
    m.push_str("allow:\n  - origin.e2e.test\n");
    m.push_str(
        "routes:\n  - host: api.e2e.test\n    auth: {scheme: bearer, token_from: E2E_API_TOKEN}\n",
    );
    m.push_str("resolve:\n");
    for n in ORIGIN_NAMES {
        m.push_str(&format!("  {n}: {}\n", origin.ip));
    }
    m.push_str(&format!("upstream_ca: {}\n", origin.ca().display()));
    m.push_str(&format!("upstream_networks: [{}]\n", origin.network));
    m.push_str(&format!(
        "git:\n  - name: demo\n    upstream: file://{}\n    rules:\n      - {{ref: \"refs/heads/agent/**\", allow: [create]}}\n",
        bare.display()
    ));
    let mpath = tmp.path().join("iso.yaml");
    std::fs::write(&mpath, m).unwrap();

    // The host's 127.0.0.1:53: where a resolver queried from the host's namespace would land.
    let trap = DnsTrap::start("127.0.0.1:53");
    let mut c = Checks::default();
    if let Some(t) = &trap {
        // the trap works: a query sent to it is recorded
        let s = UdpSocket::bind("127.0.0.1:0").unwrap();
        s.send_to(&query("control.trap.test"), "127.0.0.1:53")
            .unwrap();
        std::thread::sleep(Duration::from_millis(500));
        c.check(
            "DNS trap on 127.0.0.1:53 records queries",
            t.names().contains(&"control.trap.test".to_string()),
            || format!("{:?}", t.names()),
        );
    } else {
        eprintln!(
            "NOTE: 127.0.0.1:53 is taken on this host; the host-loopback DNS trap is not run"
        );
    }

    let r = home.bottle(
        &["start", mpath.to_str().unwrap(), "--detach", "--yes"],
        START,
    );
    assert_eq!(r.code, 0, "bottle start --detach failed:\n{}", r.all());
    let engine = docker(&["version", "--format", "{{.Server.Version}}"]).stdout;
    let affected = cve_2024_29018_affected(&engine);
    c.check(
        "start warns on an engine affected by CVE-2024-29018 (and only then)",
        r.all().contains("CVE-2024-29018") == affected,
        || format!("engine {engine}: {}", r.all()),
    );
    let slug = home.slugs().pop().expect("a state dir");
    let project = format!("bottle-{slug}");
    let agent = agent_container(&project);
    let egress = service(&project, "egress");
    let gate = service(&project, "git-gate");
    assert!(!agent.is_empty() && !egress.is_empty() && !gate.is_empty());
    let sh = |s: &str| agent_sh(&agent, s, SHORT);
    let eg_addrs = addresses(&egress);
    let gate_addrs = addresses(&gate);
    eprintln!("egress {eg_addrs:?}\ngit-gate {gate_addrs:?}");
    let on = |addrs: &[(String, String)], suffix: &str| -> Option<String> {
        addrs
            .iter()
            .find(|(n, _)| n.ends_with(suffix))
            .map(|(_, ip)| ip.clone())
    };
    let eg_sidecars = on(&eg_addrs, "_sidecars").expect("egress on sidecars");
    let eg_upstream = on(&eg_addrs, "_upstream").expect("egress on upstream");
    let eg_extra = on(&eg_addrs, &origin.network).expect("egress on the origin network");
    let gate_upstream = on(&gate_addrs, "_upstream").expect("git-gate on upstream");
    let gate_extra = on(&gate_addrs, &origin.network).expect("git-gate on the origin network");
    let secrets_at_origin = |o: &Origin| o.logs().matches(secret.as_str()).count();

    // --- the bottle works: the credential route through pipelock -> egress (with the key),
    // git through git-gate on the agent's network
    let r = sh("curl -sS --max-time 30 -o /dev/null -w '%{http_code}' https://api.e2e.test/reflect; echo \" rc=$?\"");
    c.check(
        "agent -> pipelock -> egress (keyed) -> origin works",
        r.stdout.starts_with("200"),
        || r.all(),
    );
    let injected = secrets_at_origin(&origin);
    c.check(
        "egress injected the credential for the agent",
        injected >= 1,
        || origin.logs(),
    );
    let r = sh("git ls-remote http://git-gate:8080/demo.git 2>&1; echo \" rc=$?\"");
    c.check(
        "agent reaches git-gate on its network",
        r.stdout.contains("refs/heads/main"),
        || r.all(),
    );

    // --- item 3: DNS
    let r = sh("getent hosts pipelock && getent hosts git-gate; echo \" rc=$?\"");
    c.check(
        "service names resolve in the agent",
        r.stdout.contains(" rc=0") && r.stdout.contains("pipelock"),
        || r.all(),
    );
    let name = format!(
        "{:012x}.exfil.test",
        rand::random::<u64>() & 0xffff_ffff_ffff
    );
    let r = sh(&format!(
        "dig +time=3 +tries=1 u{name}; dig +tcp +time=3 +tries=1 t{name}; getent hosts g{name}; echo \" getent=$?\"; curl -sS --noproxy '*' --max-time 5 http://c{name}/; echo \" rc=$?\""
    ));
    c.check(
        "external canary name does not resolve in the agent",
        !r.stdout.contains("status: NOERROR") && r.stdout.contains(" getent=2"),
        || r.all(),
    );
    std::thread::sleep(Duration::from_secs(2));
    if let Some(t) = &trap {
        let got = t.names();
        c.check(
            "the canary name never reached the host's 127.0.0.1:53",
            !got.iter().any(|n| n.contains(&name)),
            || format!("{got:?}"),
        );
    }
    let r = docker(&["inspect", "--format", "{{json .HostConfig.Dns}}", &agent]);
    c.check(
        "agent DNS server is its own namespace (0.0.0.0)",
        r.stdout.contains("\"0.0.0.0\""),
        || r.all(),
    );

    // --- item 5: admin ports, from the agent (direct and through the proxy)
    for (host, what) in [
        ("pipelock", "pipelock admin"),
        ("git-gate", "git-gate admin"),
    ] {
        let r = sh(&format!("curl -sS --noproxy '*' --connect-timeout 5 --max-time 8 http://{host}:9090/metrics; echo \" rc=$?\""));
        c.check(
            &format!("{what} unreachable from the agent"),
            !connected(&r),
            || r.all(),
        );
    }

    // --- item 4: egress and git-gate from the host
    for (ip, port, what) in [
        (&eg_upstream, 9099, "egress on upstream"),
        (&eg_extra, 9099, "egress on the upstream_networks network"),
        (&eg_upstream, 9090, "egress admin on upstream"),
        (&gate_upstream, 8080, "git-gate on upstream"),
        (
            &gate_extra,
            8080,
            "git-gate on the upstream_networks network",
        ),
        (&gate_upstream, 9090, "git-gate admin on upstream"),
    ] {
        let ok = std::net::TcpStream::connect_timeout(
            &format!("{ip}:{port}").parse().unwrap(),
            Duration::from_secs(3),
        )
        .is_err();
        c.check(
            &format!("{what} ({ip}:{port}) refused from the host"),
            ok,
            String::new,
        );
    }
    // ... and from a container on the upstream_networks network (by address and by name)
    let r = container_sh(
        &origin.network,
        &format!(
            "for u in http://{eg_extra}:9099 http://egress:9099; do curl -sS --connect-timeout 5 --max-time 10 -x $u https://api.e2e.test/reflect -o /dev/null; echo \" rc=$?\"; curl -sS --connect-timeout 5 --max-time 10 -x $u http://api.e2e.test/reflect -o /dev/null; echo \" rc=$?\"; curl -sS --connect-timeout 5 --max-time 10 --request-target https://api.e2e.test/reflect -H 'Host: api.e2e.test' $u/ -o /dev/null; echo \" rc=$?\"; done; \
             for u in http://{gate_extra}:8080 http://git-gate:8080; do curl -sS --connect-timeout 5 --max-time 10 \"$u/demo.git/info/refs?service=git-upload-pack\"; echo \" rc=$?\"; git ls-remote $u/demo.git; echo \" rc=$?\"; done"
        ),
    );
    c.check(
        "egress and git-gate unreachable from a container on the upstream network",
        !connected(&r)
            && !r.stdout.contains("refs/heads")
            && !r.stdout.contains("service=git-upload-pack"),
        || r.all(),
    );
    // ... and even in egress's own network namespace, without the key: 407, nothing forwarded
    let r = docker(&[
        "run", "--rm", "--label", "bottle-e2e=1", "--network", &format!("container:{egress}"),
        "--entrypoint", "sh", "bottle-agent-test:latest", "-c",
        &format!(
            "curl -sS --max-time 10 -D - -o /dev/null -x http://{eg_sidecars}:9099 http://api.e2e.test/reflect; \
             curl -sS --max-time 10 -D - -o /dev/null -x http://{eg_sidecars}:9099 -H 'Proxy-Authorization: Bottle forged-forged-forged-forged-forged' http://api.e2e.test/reflect; \
             curl -sS --max-time 10 -D - -o /dev/null --request-target https://api.e2e.test/reflect -H 'Host: api.e2e.test' http://{eg_sidecars}:9099/; \
             curl -sS --max-time 10 -x http://{eg_sidecars}:9099 https://api.e2e.test/reflect; echo \" rc=$?\""
        ),
    ]);
    c.check(
        "egress without the bottle key: 407 from egress",
        r.stdout.matches("407").count() >= 3
            && r.stdout
                .to_ascii_lowercase()
                .contains("x-bottle-blocked: egress")
            && !connected(&r),
        || r.all(),
    );
    std::thread::sleep(Duration::from_secs(1));
    c.check(
        "no request with the credential reached the origin from outside the bottle",
        secrets_at_origin(&origin) == injected,
        || origin.logs(),
    );

    // --- item 7: IPv6
    let r =
        sh("cat /proc/net/if_inet6; echo \" v6=$(cat /proc/sys/net/ipv6/conf/all/disable_ipv6)\"");
    c.check(
        "agent has no IPv6 address and IPv6 disabled",
        r.stdout.trim() == "v6=1",
        || r.all(),
    );
    let bridge_ll = docker(&[
        "network",
        "inspect",
        "--format",
        "{{.Id}}",
        &format!("{project}_bottle"),
    ])
    .stdout
    .trim()
    .chars()
    .take(12)
    .collect::<String>();
    let ll = std::fs::read_to_string("/proc/net/if_inet6")
        .unwrap_or_default()
        .lines()
        .find(|l| {
            l.ends_with(&format!("br-{bridge_ll}"))
                && l.split_whitespace()
                    .next()
                    .is_some_and(|a| a.starts_with("fe80"))
        })
        .map(|l| {
            let hex = l.split_whitespace().next().unwrap();
            (0..8)
                .map(|i| hex[i * 4..i * 4 + 4].to_string())
                .collect::<Vec<_>>()
                .join(":")
        });
    let v6trap = TcpTrap::start("[::]:0");
    let target = ll.clone().unwrap_or_else(|| "fe80::1".into());
    let r = sh(&format!(
        "nc -6 -z -w 3 {target}%eth0 {p}; echo \" rc=$?\"; curl -sS -g --noproxy '*' --connect-timeout 3 --max-time 5 'http://[ff02::1%eth0]:{p}/'; echo \" rc=$?\"",
        p = v6trap.port
    ));
    std::thread::sleep(Duration::from_millis(500));
    c.check(
        &format!("agent cannot reach the host over IPv6 link-local ({target})"),
        !connected(&r) && v6trap.hits() == 0,
        || format!("{} hits={}", r.all(), v6trap.hits()),
    );

    // --- teardown
    let r = home.bottle(&["stop", &slug], SHORT);
    c.check("bottle stop", r.code == 0, || r.all());
    let left = project_objects(&project);
    c.check("nothing left", left.is_empty(), || format!("{left:?}"));
    drop(trap);
    c.finish("network isolation");
}
