//! The world the attempts run in: the echo origin on its own network, two file:// upstream
//! repositories, a listener on every host address, and two bottles (A with a workspace,
//! B beside it). Dropping it removes every container, network, image and directory it made.

use std::io::Read;
use std::net::{TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use bottle_e2e::{
    agent_container, agent_sh, docker, project_objects, run_cmd, Home, Origin, Run, TempDir,
    ORIGIN_NAMES,
};

/// Timeout of `bottle start --detach`.
pub const START: Duration = Duration::from_secs(300);
/// Timeout of one agent snippet.
pub const SNIPPET: Duration = Duration::from_secs(120);

/// One running bottle.
pub struct Bottle {
    /// Its slug.
    pub slug: String,
    /// Compose project (`bottle-<slug>`).
    pub project: String,
    /// Agent container id.
    pub agent: String,
    /// Path of its manifest.
    pub manifest: PathBuf,
}

impl Bottle {
    /// Container id of a service.
    pub fn service(&self, service: &str) -> String {
        let f1 = format!("label=com.docker.compose.project={}", self.project);
        let f2 = format!("label=com.docker.compose.service={service}");
        docker(&["ps", "-q", "--filter", &f1, "--filter", &f2])
            .stdout
            .trim()
            .to_string()
    }

    /// Addresses of a service, every network.
    pub fn ips(&self, service: &str) -> Vec<String> {
        let c = self.service(service);
        docker(&[
            "inspect",
            "--format",
            "{{range .NetworkSettings.Networks}}{{.IPAddress}} {{end}}",
            &c,
        ])
        .stdout
        .split_whitespace()
        .map(str::to_string)
        .collect()
    }

    /// `network=address` of a service, every network.
    pub fn ips_named(&self, service: &str) -> Vec<(String, String)> {
        let c = self.service(service);
        docker(&[
            "inspect",
            "--format",
            "{{range $k, $v := .NetworkSettings.Networks}}{{$k}}={{$v.IPAddress}} {{end}}",
            &c,
        ])
        .stdout
        .split_whitespace()
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    }

    /// `StartedAt RestartCount Health` of a service: any change means it died.
    pub fn liveness(&self, service: &str) -> String {
        let c = self.service(service);
        docker(&[
            "inspect",
            "--format",
            "{{.State.StartedAt}} restarts={{.RestartCount}} {{if .State.Health}}{{.State.Health.Status}}{{end}}",
            &c,
        ])
        .stdout
        .trim()
        .to_string()
    }
}

/// What a listener on every host address received.
#[derive(Default)]
pub struct Seen {
    /// TCP connections accepted.
    pub tcp_hits: AtomicUsize,
    /// Bytes received (TCP and UDP, capped).
    pub bytes: Mutex<Vec<u8>>,
}

/// Everything the attempts need.
pub struct World {
    /// The echo origin (its request log is the proof for HTTP attempts).
    pub origin: Origin,
    /// The `$BOTTLE_HOME` of both bottles.
    pub home: Home,
    /// The credential egress injects for api.e2e.test.
    pub secret: String,
    /// Bottle A (attempts run in its agent).
    pub a: Bottle,
    /// Bottle B (for cross-bottle attempts).
    pub b: Bottle,
    /// A's workspace on the host (mounted at /workspace).
    pub workspace: PathBuf,
    /// Bare upstream repository of A's git-gate.
    pub upstream_a: PathBuf,
    /// Host listener port (TCP and UDP, all addresses).
    pub host_port: u16,
    /// What the host listener saw.
    pub seen: Arc<Seen>,
    /// Host addresses as the agent could spell them (gateways, docker0, the host's own).
    pub host_addrs: Vec<String>,
    /// The throwaway agent image whose USER is root (removed on drop).
    pub root_image: String,
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
    _dirs: Vec<TempDir>,
}

fn git(dir: &Path, args: &[&str]) -> Run {
    let mut c = Command::new("git");
    c.args(["-c", "safe.directory=*", "-C"]).arg(dir).args(args);
    run_cmd(c, Duration::from_secs(60))
}

fn must(r: Run, what: &str) -> Run {
    assert_eq!(r.code, 0, "{what}: {}", r.all());
    r
}

/// A bare repository with one commit on main, owned by git-gate's uid.
fn bare_repo(dir: &Path, name: &str) -> PathBuf {
    let bare = dir.join(format!("{name}.git"));
    let seed = dir.join(format!("{name}-seed"));
    std::fs::create_dir_all(&seed).unwrap();
    must(
        git(
            dir,
            &["init", "-q", "--bare", "-b", "main", bare.to_str().unwrap()],
        ),
        "git init --bare",
    );
    must(git(&seed, &["init", "-q", "-b", "main"]), "git init");
    must(
        git(
            &seed,
            &[
                "-c",
                "user.name=seed",
                "-c",
                "user.email=seed@example.invalid",
                "commit",
                "-q",
                "--allow-empty",
                "-m",
                "seed",
            ],
        ),
        "git commit",
    );
    must(
        git(&seed, &["push", "-q", bare.to_str().unwrap(), "main"]),
        "git push seed",
    );
    let mut c = Command::new("sh");
    c.args([
        "-c",
        &format!(
            "[ \"$(id -u)\" != 0 ] || chown -R 65532:65532 '{}'",
            bare.display()
        ),
    ]);
    must(run_cmd(c, Duration::from_secs(30)), "chown bare repo");
    bare
}

fn manifest(name: &str, image: &str, origin: &Origin, upstream: &Path, extra: &str) -> String {
    let mut m = format!("name: {name}\nimage: {image}\nallow:\n  - origin.e2e.test\n");
    m.push_str(
        "routes:\n  - host: api.e2e.test\n    auth: {scheme: bearer, token_from: ESC_API_TOKEN}\n",
    );
    m.push_str("resolve:\n");
    for n in ORIGIN_NAMES {
        m.push_str(&format!("  {n}: {}\n", origin.ip));
    }
    m.push_str(&format!("upstream_ca: {}\n", origin.ca().display()));
    m.push_str(&format!("upstream_networks: [{}]\n", origin.network));
    m.push_str(&format!(
        "git:\n  - name: demo\n    upstream: file://{}\n    rules:\n      - {{ref: \"refs/heads/agent/**\", allow: [create, update]}}\n    protected: [\"refs/heads/main\"]\n",
        upstream.display()
    ));
    m.push_str("limits: {memory: 512m, cpus: 1, pids: 512}\n");
    m.push_str(extra);
    m
}

fn gateway(network: &str) -> String {
    docker(&[
        "network",
        "inspect",
        "--format",
        "{{range .IPAM.Config}}{{.Gateway}}{{end}}",
        network,
    ])
    .stdout
    .trim()
    .to_string()
}

/// Listen on TCP and UDP `0.0.0.0:port`, recording what arrives.
fn host_listener(seen: &Arc<Seen>, stop: &Arc<AtomicBool>) -> (u16, Vec<JoinHandle<()>>) {
    let tcp = TcpListener::bind("0.0.0.0:0").unwrap();
    let port = tcp.local_addr().unwrap().port();
    tcp.set_nonblocking(true).unwrap();
    let udp = UdpSocket::bind(("0.0.0.0", port))
        .unwrap_or_else(|_| UdpSocket::bind("0.0.0.0:0").unwrap());
    assert_eq!(
        udp.local_addr().unwrap().port(),
        port,
        "UDP port {port} taken: rerun"
    );
    udp.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let (s1, st1) = (Arc::clone(seen), Arc::clone(stop));
    let t1 = std::thread::spawn(move || {
        while !st1.load(Ordering::SeqCst) {
            if let Ok((mut s, _)) = tcp.accept() {
                s1.tcp_hits.fetch_add(1, Ordering::SeqCst);
                let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
                let mut b = [0u8; 4096];
                if let Ok(n) = s.read(&mut b) {
                    let mut v = s1.bytes.lock().unwrap();
                    if v.len() < 1 << 20 {
                        v.extend_from_slice(&b[..n]);
                    }
                }
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    });
    let (s2, st2) = (Arc::clone(seen), Arc::clone(stop));
    let t2 = std::thread::spawn(move || {
        let mut b = [0u8; 2048];
        while !st2.load(Ordering::SeqCst) {
            if let Ok((n, _)) = udp.recv_from(&mut b) {
                let mut v = s2.bytes.lock().unwrap();
                if v.len() < 1 << 20 {
                    v.extend_from_slice(&b[..n]);
                }
            }
        }
    });
    (port, vec![t1, t2])
}

/// `FROM bottle-agent-test` with `USER root`: an agent image that would run as root.
fn build_root_image() -> (String, TempDir) {
    let dir = TempDir::new("bottle-escape-img");
    std::fs::write(
        dir.path().join("Dockerfile"),
        "FROM bottle-agent-test:latest\nUSER root\n",
    )
    .unwrap();
    let tag = format!("bottle-escape-root:{}", std::process::id());
    let r = docker(&[
        "build",
        "-q",
        "--label",
        "bottle-e2e=1",
        "-t",
        &tag,
        dir.path().to_str().unwrap(),
    ]);
    assert_eq!(r.code, 0, "docker build root agent image: {}", r.all());
    (tag, dir)
}

impl World {
    /// Start everything. Panics (after cleaning up what it made) when a bottle does not start.
    pub fn start() -> World {
        let origin = Origin::start();
        let tmp = TempDir::new("bottle-escape");
        let upstream_a = bare_repo(tmp.path(), "upstream-a");
        let upstream_b = bare_repo(tmp.path(), "upstream-b");
        let (root_image, img_dir) = build_root_image();
        // A's workspace: a git repository owned by uid 1000, the manifest inside it (the agent
        // can edit it: the manifest-tampering attempts).
        let ws = TempDir::new("bottle-escape-ws");
        must(git(ws.path(), &["init", "-q"]), "git init workspace");
        // No sample hooks: any file in .git/hooks afterwards was written by the agent.
        let hooks = ws.path().join(".git/hooks");
        let _ = std::fs::remove_dir_all(&hooks);
        std::fs::create_dir_all(&hooks).unwrap();
        let mut secret = String::from("esc-secret-");
        secret.push_str(&format!(
            "{:016x}{:016x}",
            rand::random::<u64>(),
            rand::random::<u64>()
        ));
        let mut home = Home::new();
        home.env.push(("ESC_API_TOKEN".into(), secret.clone()));
        let ma = ws.path().join("bottle.yaml");
        std::fs::write(
            &ma,
            manifest(
                "esca",
                &root_image,
                &origin,
                &upstream_a,
                &format!(
                    "workspace: {}\nworkspace_git: ro-hooks\n",
                    ws.path().display()
                ),
            ),
        )
        .unwrap();
        let mut c = Command::new("sh");
        c.args([
            "-c",
            &format!(
                "[ \"$(id -u)\" != 0 ] || chown -R 1000:1000 '{}'",
                ws.path().display()
            ),
        ]);
        must(run_cmd(c, Duration::from_secs(30)), "chown workspace");
        let mb = tmp.path().join("b.yaml");
        std::fs::write(
            &mb,
            manifest("escb", "bottle-agent-test:latest", &origin, &upstream_b, ""),
        )
        .unwrap();

        let seen = Arc::new(Seen::default());
        let stop = Arc::new(AtomicBool::new(false));
        let (host_port, threads) = host_listener(&seen, &stop);

        // Both bottles start at the same time.
        let spawn = |m: &Path| {
            let mut c = home.command(&["start", m.to_str().unwrap(), "--detach"]);
            c.env("NO_COLOR", "1");
            std::thread::spawn(move || run_cmd(c, START))
        };
        let (ta, tb) = (spawn(&ma), spawn(&mb));
        let (ra, rb) = (ta.join().unwrap(), tb.join().unwrap());
        let slug_of = |prefix: &str| {
            home.slugs()
                .into_iter()
                .find(|s| s.starts_with(prefix))
                .unwrap_or_default()
        };
        let mk = |slug: String, manifest: PathBuf| {
            let project = format!("bottle-{slug}");
            Bottle {
                agent: agent_container(&project),
                slug,
                project,
                manifest,
            }
        };
        let a = mk(slug_of("esca-"), ma);
        let b = mk(slug_of("escb-"), mb);
        let mut host_addrs: Vec<String> = vec![
            gateway(&format!("{}_bottle", a.project)),
            gateway(&format!("{}_sidecars", a.project)),
            gateway(&format!("{}_upstream", a.project)),
            gateway("bridge"),
            gateway(&origin.network),
        ];
        // The host's own addresses (private or documentation ranges only).
        let mut hi = Command::new("hostname");
        hi.arg("-I");
        for addr in run_cmd(hi, Duration::from_secs(10))
            .stdout
            .split_whitespace()
        {
            if let Ok(std::net::IpAddr::V4(v4)) = addr.parse::<std::net::IpAddr>() {
                let o = v4.octets();
                if v4.is_private() || (o[0] == 192 && o[1] == 0 && o[2] == 2) {
                    host_addrs.push(addr.to_string());
                }
            }
        }
        host_addrs.retain(|h| !h.is_empty());
        host_addrs.sort();
        host_addrs.dedup();
        let w = World {
            origin,
            home,
            secret,
            a,
            b,
            workspace: ws.path().to_path_buf(),
            upstream_a,
            host_port,
            seen,
            host_addrs,
            root_image,
            stop,
            threads,
            _dirs: vec![ws, tmp, img_dir],
        };
        assert!(
            ra.code == 0 && !w.a.agent.is_empty(),
            "bottle A did not start:\n{}",
            ra.all()
        );
        assert!(
            rb.code == 0 && !w.b.agent.is_empty(),
            "bottle B did not start:\n{}",
            rb.all()
        );
        w
    }

    /// A snippet in A's agent.
    pub fn a_sh(&self, script: &str) -> Run {
        agent_sh(&self.a.agent, script, SNIPPET)
    }

    /// A snippet in B's agent.
    pub fn b_sh(&self, script: &str) -> Run {
        agent_sh(&self.b.agent, script, SNIPPET)
    }

    /// The origin's request log (stdout, one JSON line per request).
    pub fn origin_log(&self) -> String {
        self.origin.logs()
    }

    /// Did the origin see this value anywhere in a request?
    pub fn origin_saw(&self, canary: &str) -> bool {
        self.origin_log().contains(canary)
    }

    /// Origin log lines holding `canary`.
    pub fn origin_lines(&self, canary: &str) -> Vec<String> {
        self.origin_log()
            .lines()
            .filter(|l| l.contains(canary))
            .map(str::to_string)
            .collect()
    }

    /// Did the host listener receive this value (TCP or UDP)?
    pub fn host_saw(&self, canary: &str) -> bool {
        // Let in-flight datagrams land before judging.
        std::thread::sleep(Duration::from_millis(300));
        let v = self.seen.bytes.lock().unwrap();
        String::from_utf8_lossy(&v).contains(canary)
    }

    /// TCP connections the host listener accepted so far.
    pub fn host_hits(&self) -> usize {
        self.seen.tcp_hits.load(Ordering::SeqCst)
    }

    /// `refname sha` lines of A's upstream.
    pub fn upstream_refs(&self) -> String {
        git(
            &self.upstream_a,
            &["for-each-ref", "--format=%(refname) %(objectname)"],
        )
        .stdout
    }
}

impl World {
    /// Stop both bottles the way an operator does (`bottle stop`: logs saved, compose down,
    /// the launcher's workspace sweep). Drop does the rest.
    pub fn stop_bottles(&self) -> Vec<Run> {
        [&self.a, &self.b]
            .iter()
            .filter(|b| !b.slug.is_empty())
            .map(|b| self.home.bottle(&["stop", &b.slug], START))
            .collect()
    }
}

impl Drop for World {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
        for b in [&self.a, &self.b] {
            if b.slug.is_empty() {
                continue;
            }
            let _ = self.home.bottle(&["stop", &b.slug], START);
        }
        // Whatever `bottle stop` left (a bottle that half-started, a tampered start).
        for slug in self.home.slugs() {
            let _ = self.home.bottle(&["stop", &slug], START);
            remove_project(&format!("bottle-{slug}"));
        }
        for b in [&self.a, &self.b] {
            remove_project(&b.project);
        }
        let _ = docker(&["rmi", "-f", &self.root_image]);
        // The workspace may hold files the agent made with other owners: removed by TempDir.
    }
}

/// Force-remove a compose project's containers, networks and volumes.
pub fn remove_project(project: &str) {
    for obj in project_objects(project) {
        let mut it = obj.split_whitespace();
        match (it.next(), it.next()) {
            (Some("container"), Some(id)) => {
                let _ = docker(&["rm", "-f", "-v", id]);
            }
            (Some("network"), Some(id)) => {
                let _ = docker(&["network", "rm", id]);
            }
            (Some("volume"), Some(id)) => {
                let _ = docker(&["volume", "rm", "-f", id]);
            }
            _ => {}
        }
    }
}
