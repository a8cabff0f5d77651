//! Test harness: local bare upstreams, a git-gate process on 127.0.0.1:0, the stock git client.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use git_gate::pktline::{Pkt, PktReader};

pub mod origin;

pub const SECRET: &str = "ghp_R8mQ2vX7kLp3NwT9bYc4ZdHf6JsA1eUo5gKi";
pub const ZERO: &str = "0000000000000000000000000000000000000000";

/// Runs a command with a deadline; kills it on timeout (and panics).
pub fn run_timeout(mut cmd: Command, input: Option<&[u8]>, secs: u64) -> Output {
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    cmd.stdin(if input.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    });
    let mut child = cmd.spawn().expect("spawn");
    if let Some(data) = input {
        let mut stdin = child.stdin.take().unwrap();
        let data = data.to_vec();
        std::thread::spawn(move || {
            let _ = stdin.write_all(&data);
        });
    }
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let t1 = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = out.read_to_end(&mut v);
        v
    });
    let t2 = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = err.read_to_end(&mut v);
        v
    });
    let deadline = Instant::now() + Duration::from_secs(secs);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("command timed out after {secs}s: {cmd:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Output {
        status,
        stdout: t1.join().unwrap(),
        stderr: t2.join().unwrap(),
    }
}

pub struct Env {
    pub tmp: tempfile::TempDir,
    pub home: PathBuf,
    pub config_dir: PathBuf,
    pub data_dir: PathBuf,
    pub audit: PathBuf,
    pub status: PathBuf,
    pub gate: Option<Child>,
    pub addr: Option<SocketAddr>,
    pub log: Arc<Mutex<String>>,
    pub admin: Arc<Mutex<Option<SocketAddr>>>,
    pub extra_env: Vec<(String, String)>,
    pub extra_args: Vec<String>,
}

impl Env {
    pub fn new() -> Env {
        let tmp = tempfile::Builder::new()
            .prefix("gg")
            .tempdir_in("/tmp")
            .unwrap();
        let home = tmp.path().join("home");
        std::fs::create_dir_all(&home).unwrap();
        std::fs::write(
            home.join(".gitconfig"),
            "[user]\n\tname = Agent\n\temail = agent@example.invalid\n[init]\n\tdefaultBranch = main\n[advice]\n\tdetachedHead = false\n",
        )
        .unwrap();
        let config_dir = tmp.path().join("config");
        std::fs::create_dir_all(&config_dir).unwrap();
        Env {
            home,
            config_dir,
            data_dir: tmp.path().join("data"),
            audit: tmp.path().join("audit.jsonl"),
            status: tmp.path().join("status.json"),
            tmp,
            gate: None,
            addr: None,
            log: Arc::new(Mutex::new(String::new())),
            admin: Arc::new(Mutex::new(None)),
            extra_env: Vec::new(),
            extra_args: Vec::new(),
        }
    }

    pub fn path(&self, p: &str) -> PathBuf {
        self.tmp.path().join(p)
    }

    /// The stock git client, isolated from the machine's config and proxies.
    pub fn git_cmd(&self, dir: &Path, args: &[&str]) -> Command {
        let mut c = Command::new("git");
        c.current_dir(dir)
            .args(args)
            .env("HOME", &self.home)
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_CONFIG_GLOBAL", self.home.join(".gitconfig"))
            .env("GIT_TERMINAL_PROMPT", "0")
            .env_remove("http_proxy")
            .env_remove("https_proxy")
            .env_remove("HTTP_PROXY")
            .env_remove("HTTPS_PROXY")
            .env_remove("ALL_PROXY")
            .env_remove("all_proxy")
            .env_remove("GIT_DIR");
        c
    }

    pub fn git(&self, dir: &Path, args: &[&str]) -> Output {
        run_timeout(self.git_cmd(dir, args), None, 120)
    }

    /// Runs git and asserts success; returns trimmed stdout.
    pub fn git_ok(&self, dir: &Path, args: &[&str]) -> String {
        let o = self.git(dir, args);
        assert!(
            o.status.success(),
            "git {args:?} failed: {}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8_lossy(&o.stdout).trim().to_string()
    }

    /// A bare upstream with one commit on main (README) and the given file contents.
    pub fn make_upstream(&self, name: &str) -> PathBuf {
        let up = self.path(&format!("{name}-up.git"));
        self.git_ok(
            self.tmp.path(),
            &["init", "--bare", "-q", "-b", "main", up.to_str().unwrap()],
        );
        let seed = self.path(&format!("{name}-seed"));
        self.git_ok(
            self.tmp.path(),
            &["init", "-q", "-b", "main", seed.to_str().unwrap()],
        );
        std::fs::write(seed.join("README"), "hello\n").unwrap();
        self.git_ok(&seed, &["add", "README"]);
        self.git_ok(&seed, &["commit", "-q", "-m", "initial"]);
        self.git_ok(&seed, &["push", "-q", up.to_str().unwrap(), "main"]);
        up
    }

    pub fn write_routes(&self, yaml: &str) {
        let tmp = self.config_dir.join(".routes.yaml.tmp");
        std::fs::write(&tmp, yaml).unwrap();
        std::fs::rename(&tmp, self.config_dir.join("routes.yaml")).unwrap();
    }

    pub fn start(&mut self) {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_git-gate"));
        cmd.args([
            "--listen",
            "127.0.0.1:0",
            "--config-dir",
            self.config_dir.to_str().unwrap(),
            "--data-dir",
            self.data_dir.to_str().unwrap(),
            "--audit-log",
            self.audit.to_str().unwrap(),
            "--status-file",
            self.status.to_str().unwrap(),
        ])
        .args(&self.extra_args)
        .env("RUST_LOG", "info")
        .envs(self.extra_env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
        let mut child = cmd.spawn().unwrap();
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = mpsc::channel();
        let log = self.log.clone();
        let admin = self.admin.clone();
        std::thread::spawn(move || {
            let mut tx = Some(tx);
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                let line = strip_ansi(&line);
                if let Some(pos) = line.find("git-gate listening addr=") {
                    let rest = &line[pos + "git-gate listening addr=".len()..];
                    let addr: String = rest.chars().take_while(|c| !c.is_whitespace()).collect();
                    if let Some(t) = tx.take() {
                        let _ = t.send(addr);
                    }
                }
                if let Some(pos) = line.find("git-gate admin listening addr=") {
                    let rest = &line[pos + "git-gate admin listening addr=".len()..];
                    let addr: String = rest.chars().take_while(|c| !c.is_whitespace()).collect();
                    *admin.lock().unwrap() = addr.parse().ok();
                }
                log.lock().unwrap().push_str(&line);
                log.lock().unwrap().push('\n');
            }
        });
        self.gate = Some(child);
        match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(a) => self.addr = Some(a.parse().unwrap()),
            Err(_) => panic!("git-gate did not start: {}", self.log.lock().unwrap()),
        }
    }

    pub fn url(&self, repo: &str) -> String {
        format!("http://{}/{repo}.git", self.addr.unwrap())
    }

    pub fn admin_addr(&self) -> SocketAddr {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(a) = *self.admin.lock().unwrap() {
                return a;
            }
            assert!(
                Instant::now() < deadline,
                "no admin listener: {}",
                self.log.lock().unwrap()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn pid(&self) -> u32 {
        self.gate.as_ref().unwrap().id()
    }

    pub fn sighup(&self) {
        let st = Command::new("kill")
            .args(["-HUP", &self.pid().to_string()])
            .status()
            .unwrap();
        assert!(st.success());
    }

    pub fn status_generation(&self) -> u64 {
        let text = std::fs::read_to_string(&self.status).unwrap_or_default();
        let v: serde_json::Value = serde_json::from_str(&text).unwrap_or(serde_json::Value::Null);
        v["generation"].as_u64().unwrap_or(0)
    }

    pub fn wait_generation(&self, g: u64) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while self.status_generation() < g {
            assert!(
                Instant::now() < deadline,
                "reload to generation {g} did not happen"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Clones through the gate into a fresh work dir.
    pub fn clone_work(&self, repo: &str, dir: &str) -> PathBuf {
        let work = self.path(dir);
        self.git_ok(
            self.tmp.path(),
            &["clone", "-q", &self.url(repo), work.to_str().unwrap()],
        );
        work
    }

    pub fn commit_file(&self, work: &Path, file: &str, content: &str, msg: &str) -> String {
        if let Some(parent) = Path::new(file).parent() {
            std::fs::create_dir_all(work.join(parent)).unwrap();
        }
        std::fs::write(work.join(file), content).unwrap();
        self.git_ok(work, &["add", file]);
        self.git_ok(work, &["commit", "-q", "-m", msg]);
        self.git_ok(work, &["rev-parse", "HEAD"])
    }

    /// `git push` through the gate; returns (success, stdout+stderr).
    pub fn push(&self, work: &Path, args: &[&str]) -> (bool, String) {
        let mut full = vec!["push"];
        full.extend_from_slice(args);
        let o = self.git(work, &full);
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        (o.status.success(), text)
    }

    pub fn audit_lines(&self) -> Vec<serde_json::Value> {
        std::fs::read_to_string(&self.audit)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        if let Some(mut c) = self.gate.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// The value of `name` in bare repo `up`, if it exists.
pub fn upstream_ref(up: &Path, name: &str) -> Option<String> {
    let o = run_timeout(
        {
            let mut c = Command::new("git");
            c.args([
                "--git-dir",
                up.to_str().unwrap(),
                "rev-parse",
                "--verify",
                "--quiet",
                name,
            ]);
            c
        },
        None,
        30,
    );
    o.status
        .success()
        .then(|| String::from_utf8_lossy(&o.stdout).trim().to_string())
}

/// All refs of bare repo `up` (`<oid> <ref>` lines).
pub fn upstream_refs(up: &Path) -> String {
    let mut c = Command::new("git");
    c.args([
        "--git-dir",
        up.to_str().unwrap(),
        "for-each-ref",
        "--format=%(objectname) %(refname)",
    ]);
    String::from_utf8_lossy(&run_timeout(c, None, 30).stdout).to_string()
}

pub fn upstream_has(up: &Path, oid: &str) -> bool {
    let mut c = Command::new("git");
    c.args(["--git-dir", up.to_str().unwrap(), "cat-file", "-e", oid]);
    run_timeout(c, None, 30).status.success()
}

/// Builds a receive-pack request body.
pub fn push_body(
    cmds: &[(&str, &str, &[u8])],
    caps: &str,
    options: Option<&[&str]>,
    pack: &[u8],
) -> Vec<u8> {
    let mut out = Vec::new();
    for (i, (old, new, name)) in cmds.iter().enumerate() {
        let mut line = format!("{old} {new} ").into_bytes();
        line.extend_from_slice(name);
        if i == 0 {
            line.push(0);
            line.extend_from_slice(caps.as_bytes());
        }
        line.push(b'\n');
        git_gate::pktline::write_data(&mut out, &line).unwrap();
    }
    out.extend_from_slice(b"0000");
    if let Some(opts) = options {
        for o in opts {
            git_gate::pktline::write_data(&mut out, format!("{o}\n").as_bytes()).unwrap();
        }
        out.extend_from_slice(b"0000");
    }
    out.extend_from_slice(pack);
    out
}

/// A minimal HTTP/1.1 client: one request, `Connection: close`, returns (status, headers, body).
pub fn http(
    addr: SocketAddr,
    method: &str,
    target: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> (u16, String, Vec<u8>) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(120))).unwrap();
    let mut req = format!(
        "{method} {target} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).unwrap();
    s.write_all(body).unwrap();
    let mut resp = Vec::new();
    let _ = s.read_to_end(&mut resp);
    let split = resp
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("response head");
    let head = String::from_utf8_lossy(&resp[..split]).to_string();
    let status: u16 = head.split(' ').nth(1).unwrap().parse().unwrap();
    let mut body = resp[split + 4..].to_vec();
    if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        body = dechunk(&body);
    }
    (status, head, body)
}

pub fn strip_ansi(s: &str) -> String {
    let mut out = String::new();
    let mut it = s.chars().peekable();
    while let Some(c) = it.next() {
        if c == '\x1b' {
            for d in it.by_ref() {
                if d.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

fn dechunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(nl) = b.windows(2).position(|w| w == b"\r\n") {
        let size = usize::from_str_radix(String::from_utf8_lossy(&b[..nl]).trim(), 16).unwrap_or(0);
        if size == 0 {
            break;
        }
        out.extend_from_slice(&b[nl + 2..nl + 2 + size]);
        b = &b[nl + 2 + size + 2..];
    }
    out
}

/// Posts a raw receive-pack request; returns (report lines from band 1, band-2 text).
pub fn raw_push(addr: SocketAddr, repo: &str, body: &[u8]) -> (Vec<String>, String) {
    let (status, _, resp) = http(
        addr,
        "POST",
        &format!("/{repo}.git/git-receive-pack"),
        &[("Content-Type", "application/x-git-receive-pack-request")],
        body,
    );
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&resp));
    decode_report(&resp)
}

pub fn decode_report(resp: &[u8]) -> (Vec<String>, String) {
    let mut band1 = Vec::new();
    let mut band2 = String::new();
    let mut r = PktReader::new(resp);
    while let Ok(Pkt::Data(d)) = r.read() {
        match d.first() {
            Some(1) => band1.extend_from_slice(&d[1..]),
            Some(2) | Some(3) => band2.push_str(&String::from_utf8_lossy(&d[1..])),
            _ => {}
        }
    }
    let mut lines = Vec::new();
    let mut r = PktReader::new(&band1);
    while let Ok(Some(l)) = r.read_line() {
        lines.push(String::from_utf8_lossy(l).to_string());
    }
    (lines, band2)
}

/// A pack with the objects of `revs` (rev-list syntax, e.g. "new", "^old", a blob id).
pub fn make_pack(env: &Env, work: &Path, revs: &[&str]) -> Vec<u8> {
    let input = revs.join("\n") + "\n";
    let o = run_timeout(
        env.git_cmd(work, &["pack-objects", "--stdout", "--revs", "--thin"]),
        Some(input.as_bytes()),
        60,
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    o.stdout
}

pub const CAPS: &str = "report-status side-band-64k object-format=sha1 agent=test";

/// routes.yaml with one repo `demo` at `up` and the given extra keys (indented 4).
pub fn routes(up: &Path, extra: &str) -> String {
    format!(
        "git:\n  - name: demo\n    upstream: file://{}\n{extra}",
        up.display()
    )
}

pub const AGENT_RULES: &str = "    rules:\n      - {ref: \"refs/heads/agent/**\", allow: [create, update, force, delete]}\n      - {ref: \"refs/heads/feature\", allow: [create, update]}\n    protected: [\"refs/heads/main\"]\n";
