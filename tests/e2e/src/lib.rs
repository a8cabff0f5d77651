//! Harness for the Docker end-to-end tests: runs the real `bottle` binary and `docker`,
//! starts the echo origin on a network of its own, and runs shell snippets in the agent.
//!
//! Everything here panics with a message saying what to do; a test that needs Docker fails
//! (never skips) when Docker is present, and says to run `bottle build` when images are missing.
#![forbid(unsafe_code)]
#![allow(clippy::unwrap_used, clippy::expect_used)] // test harness: a panic is a test failure

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// Output of a finished command.
#[derive(Debug, Clone)]
pub struct Run {
    /// Exit code (-1 when killed by the timeout or a signal).
    pub code: i32,
    /// Captured stdout.
    pub stdout: String,
    /// Captured stderr.
    pub stderr: String,
}

impl Run {
    /// stdout + stderr.
    pub fn all(&self) -> String {
        format!("{}{}", self.stdout, self.stderr)
    }
}

/// The repository root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

/// The cargo target dir.
pub fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("target"))
}

/// Run a command with a timeout, capturing output (through files: no pipe deadlocks).
pub fn run_cmd(mut c: Command, timeout: Duration) -> Run {
    static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    let base = std::env::temp_dir().join(format!("bottle-e2e-out-{}-{n}", std::process::id()));
    let out_p = base.with_extension("out");
    let err_p = base.with_extension("err");
    let desc = format!("{c:?}");
    c.stdin(Stdio::null())
        .stdout(std::fs::File::create(&out_p).unwrap())
        .stderr(std::fs::File::create(&err_p).unwrap());
    let mut child = c
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {desc}: {e}"));
    let start = Instant::now();
    let code = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st.code().unwrap_or(-1);
        }
        if start.elapsed() > timeout {
            let _ = child.kill();
            let _ = child.wait();
            break -1;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let stdout = std::fs::read_to_string(&out_p).unwrap_or_default();
    let stderr = std::fs::read_to_string(&err_p).unwrap_or_default();
    let _ = std::fs::remove_file(&out_p);
    let _ = std::fs::remove_file(&err_p);
    if code == -1 && start.elapsed() > timeout {
        eprintln!(
            "timed out after {}s: {desc}\n{stdout}{stderr}",
            timeout.as_secs()
        );
    }
    Run {
        code,
        stdout,
        stderr,
    }
}

/// `docker ARGS` with a 120 s timeout.
pub fn docker(args: &[&str]) -> Run {
    let mut c = Command::new("docker");
    c.args(args);
    run_cmd(c, Duration::from_secs(120))
}

/// Is a Docker daemon reachable?
pub fn docker_available() -> bool {
    Command::new("docker")
        .args(["version", "--format", "{{.Server.Version}}"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

/// Decide whether a Docker test runs. Docker present: true. Docker absent: false with a loud
/// note, unless `BOTTLE_E2E_REQUIRE_DOCKER=1` (or `CI` is set), which makes it a failure.
pub fn docker_or_skip(test: &str) -> bool {
    if docker_available() {
        return true;
    }
    let required = std::env::var_os("BOTTLE_E2E_REQUIRE_DOCKER").is_some_and(|v| v == "1")
        || std::env::var_os("CI").is_some();
    assert!(
        !required,
        "{test}: Docker is required (BOTTLE_E2E_REQUIRE_DOCKER=1 or CI) but not reachable"
    );
    eprintln!("SKIPPED {test}: no Docker daemon reachable");
    false
}

/// The `bottle` binary, built once per test process with `cargo build -p bottle`.
pub fn bottle_bin() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        if let Some(p) = std::env::var_os("BOTTLE_BIN") {
            return PathBuf::from(p);
        }
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let mut c = Command::new(cargo);
        c.current_dir(repo_root()).args(["build", "-p", "bottle"]);
        let r = run_cmd(c, Duration::from_secs(900));
        assert_eq!(r.code, 0, "cargo build -p bottle failed:\n{}", r.all());
        let p = target_dir().join("debug/bottle");
        assert!(p.is_file(), "{} missing after cargo build", p.display());
        p
    })
    .clone()
}

/// Images the e2e tests need.
pub const IMAGES: &[&str] = &[
    "bottle-pipelock:latest",
    "bottle-egress:latest",
    "bottle-git-gate:latest",
    "bottle-supervise:latest",
    "bottle-echo-origin:latest",
    "bottle-agent-test:latest",
];

/// Fail (not skip) when images are missing; `BOTTLE_E2E_BUILD=1` runs `bottle build` first.
pub fn require_images() {
    static DONE: OnceLock<()> = OnceLock::new();
    DONE.get_or_init(|| {
        if std::env::var_os("BOTTLE_E2E_BUILD").is_some_and(|v| v == "1") {
            let mut c = Command::new(bottle_bin());
            c.arg("build");
            let r = run_cmd(c, Duration::from_secs(1800));
            assert_eq!(r.code, 0, "bottle build failed:\n{}", r.all());
        }
        let missing: Vec<&str> = IMAGES
            .iter()
            .copied()
            .filter(|i| docker(&["image", "inspect", "--format", "{{.Id}}", i]).code != 0)
            .collect();
        assert!(
            missing.is_empty(),
            "Docker is present but image(s) {} are missing: run `cargo run -p bottle -- build` \
             (or set BOTTLE_E2E_BUILD=1) before the e2e tests",
            missing.join(", ")
        );
    });
}

/// A temporary directory removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    /// Create one under the system temp dir.
    pub fn new(prefix: &str) -> TempDir {
        let p = std::env::temp_dir().join(format!(
            "{prefix}-{}-{:08x}",
            std::process::id(),
            rand::random::<u32>()
        ));
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
    /// The path.
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The address of a container on its (one) network; empty when it has none.
pub fn container_ip(container: &str) -> String {
    docker(&[
        "inspect",
        "--format",
        "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}",
        container,
    ])
    .stdout
    .trim()
    .to_string()
}

/// Names the origin's certificate covers (all pinned to the origin's address).
pub const ORIGIN_NAMES: &[&str] = &[
    "origin.e2e.test",
    "api.e2e.test",
    "other.e2e.test",
    "late.e2e.test",
    "badedit.e2e.test",
    "asked.e2e.test",
    "timed.e2e.test",
    "denied.e2e.test",
    "watched.e2e.test",
    "flood.e2e.test",
    "routed.e2e.test",
];

/// The echo origin, in a container on a network of its own (`upstream_networks` of the
/// manifest joins egress to it; the agent never is).
pub struct Origin {
    /// Container name.
    pub container: String,
    /// Network name.
    pub network: String,
    /// The origin's address on that network.
    pub ip: String,
    /// Holds ca.crt of the origin's CA.
    pub tls: TempDir,
}

impl Origin {
    /// Start it and wait until its CA is written and it answers.
    pub fn start() -> Origin {
        let tag = format!(
            "{}-{:06x}",
            std::process::id(),
            rand::random::<u32>() & 0xff_ffff
        );
        let network = format!("bottle-e2e-up-{tag}");
        let container = format!("bottle-e2e-origin-{tag}");
        let r = docker(&["network", "create", "--label", "bottle-e2e=1", &network]);
        assert_eq!(r.code, 0, "docker network create: {}", r.all());
        let tls = TempDir::new("bottle-e2e-tls");
        std::fs::set_permissions(
            tls.path(),
            std::os::unix::fs::PermissionsExt::from_mode(0o777),
        )
        .unwrap();
        let vol = format!("{}:/tls", tls.path().display());
        let mut args = vec![
            "run",
            "-d",
            "--name",
            &container,
            "--network",
            &network,
            "--label",
            "bottle-e2e=1",
            "-v",
            &vol,
            "bottle-echo-origin:latest",
            "--http",
            "0.0.0.0:80",
            "--https",
            "0.0.0.0:443",
            "--tls-dir",
            "/tls",
        ];
        for n in ORIGIN_NAMES {
            args.push("--name");
            args.push(n);
        }
        // Newer echo-origin binaries log every request (with its headers) on stdout.
        let help = docker(&["run", "--rm", "bottle-echo-origin:latest", "--help"]).all();
        if help.contains("--log-requests") {
            args.push("--log-requests");
        }
        let r = docker(&args);
        assert_eq!(r.code, 0, "docker run echo origin: {}", r.all());
        let ip = container_ip(&container);
        let o = Origin {
            container,
            network,
            ip,
            tls,
        };
        let start = Instant::now();
        while !(o.tls.path().join("ca.crt").is_file()
            && docker(&["logs", &o.container]).stdout.contains("https="))
        {
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "echo origin did not start: {}",
                docker(&["logs", &o.container]).all()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        assert!(!o.ip.is_empty(), "no address for the origin");
        o
    }

    /// Path of the origin CA (PEM).
    pub fn ca(&self) -> PathBuf {
        self.tls.path().join("ca.crt")
    }

    /// The origin's stdout/stderr.
    pub fn logs(&self) -> String {
        docker(&["logs", &self.container]).all()
    }
}

impl Drop for Origin {
    fn drop(&mut self) {
        let _ = docker(&["rm", "-f", "-v", &self.container]);
        let _ = docker(&["network", "rm", &self.network]);
    }
}

/// A `$BOTTLE_HOME` for one test, and the `bottle` commands run against it.
pub struct Home {
    /// The directory.
    pub dir: TempDir,
    /// Extra environment (credentials for token_from).
    pub env: Vec<(String, String)>,
}

impl Home {
    /// A fresh home.
    pub fn new() -> Home {
        Home {
            dir: TempDir::new("bottle-e2e-home"),
            env: Vec::new(),
        }
    }

    /// `bottle ARGS` with this home, captured, with a timeout.
    pub fn bottle(&self, args: &[&str], timeout: Duration) -> Run {
        let mut c = self.command(args);
        c.env("NO_COLOR", "1");
        run_cmd(c, timeout)
    }

    /// The command without running it.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(bottle_bin());
        c.args(args).env("BOTTLE_HOME", self.dir.path());
        for (k, v) in &self.env {
            c.env(k, v);
        }
        c
    }

    /// Slugs with a state dir.
    pub fn slugs(&self) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(self.dir.path().join("state"))
            .map(|rd| {
                rd.flatten()
                    .map(|e| e.file_name().to_string_lossy().to_string())
                    .collect()
            })
            .unwrap_or_default();
        v.sort();
        v
    }

    /// State dir of a slug.
    pub fn state(&self, slug: &str) -> PathBuf {
        self.dir.path().join("state").join(slug)
    }
}

impl Default for Home {
    fn default() -> Self {
        Home::new()
    }
}

/// Docker objects (containers, networks, volumes) of a compose project.
pub fn project_objects(project: &str) -> Vec<String> {
    let f = format!("label=com.docker.compose.project={project}");
    let mut out = Vec::new();
    for (kind, args) in [
        ("container", vec!["ps", "-aq", "--filter", f.as_str()]),
        (
            "network",
            vec!["network", "ls", "-q", "--filter", f.as_str()],
        ),
        ("volume", vec!["volume", "ls", "-q", "--filter", f.as_str()]),
    ] {
        for id in docker(&args).stdout.split_whitespace() {
            out.push(format!("{kind} {id}"));
        }
    }
    out
}

/// The agent container of a project.
pub fn agent_container(project: &str) -> String {
    let f1 = format!("label=com.docker.compose.project={project}");
    docker(&[
        "ps",
        "-q",
        "--filter",
        &f1,
        "--filter",
        "label=com.docker.compose.service=agent",
    ])
    .stdout
    .trim()
    .to_string()
}

/// Run a shell snippet in the agent container (as the image's user).
pub fn agent_sh(container: &str, script: &str, timeout: Duration) -> Run {
    let mut c = Command::new("docker");
    c.args(["exec", container, "sh", "-c", script]);
    run_cmd(c, timeout)
}

/// Encodings of a secret the agent must never see.
pub fn secret_spellings(secret: &str) -> Vec<String> {
    use base64::Engine;
    vec![
        secret.to_string(),
        base64::engine::general_purpose::STANDARD.encode(secret),
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(secret),
        hex::encode(secret),
        hex::encode_upper(secret),
    ]
}

/// Collects failed checks so one run of a long scenario reports all of them.
#[derive(Default)]
pub struct Checks {
    /// What failed, with detail.
    pub failed: Vec<String>,
    /// How many passed.
    pub passed: usize,
}

impl Checks {
    /// Records one check; `detail` is computed only on failure.
    pub fn check(&mut self, name: &str, ok: bool, detail: impl FnOnce() -> String) {
        if ok {
            self.passed += 1;
            eprintln!("  ok   {name}");
        } else {
            let d = detail();
            eprintln!("  FAIL {name}\n{d}");
            self.failed.push(format!("{name}: {d}"));
        }
    }

    /// Panics with every failure, if any.
    pub fn finish(self, what: &str) {
        eprintln!(
            "{what}: {} passed, {} failed",
            self.passed,
            self.failed.len()
        );
        assert!(
            self.failed.is_empty(),
            "{what}: failed checks:\n{}",
            self.failed.join("\n---\n")
        );
    }
}

/// `git -C dir ARGS` on the host. The bare upstreams belong to git-gate's uid, so every
/// directory is trusted (`safe.directory=*`).
pub fn host_git(dir: &Path, args: &[&str]) -> Run {
    let mut cmd = Command::new("git");
    cmd.args(["-c", "safe.directory=*", "-C"])
        .arg(dir)
        .args(args);
    run_cmd(cmd, Duration::from_secs(60))
}

/// A bare upstream `dir/upstream.git` whose one commit on `main` holds `file` with `content`,
/// given to git-gate's uid (65532) when the tests run as root; serve it as `file://`.
pub fn seeded_upstream(dir: &Path, file: &str, content: &str) -> PathBuf {
    let bare = dir.join("upstream.git");
    let seed = dir.join("seed");
    std::fs::create_dir_all(&seed).expect("seed dir");
    let r = host_git(
        dir,
        &[
            "init",
            "-q",
            "--bare",
            "-b",
            "main",
            &bare.display().to_string(),
        ],
    );
    assert_eq!(r.code, 0, "{}", r.all());
    std::fs::write(seed.join(file), content).expect("seed file");
    for args in [
        vec!["init", "-q", "-b", "main"],
        vec!["add", file],
        vec![
            "-c",
            "user.name=seed",
            "-c",
            "user.email=seed@example.invalid",
            "commit",
            "-q",
            "-m",
            "seed",
        ],
        vec![
            "push",
            "-q",
            bare.to_str().expect("utf-8 temp path"),
            "main",
        ],
    ] {
        let r = host_git(&seed, &args);
        assert_eq!(r.code, 0, "git {args:?}: {}", r.all());
    }
    let mut chown = Command::new("sh");
    chown.args([
        "-c",
        &format!(
            "[ \"$(id -u)\" != 0 ] || chown -R 65532:65532 '{}'",
            bare.display()
        ),
    ]);
    assert_eq!(run_cmd(chown, Duration::from_secs(60)).code, 0);
    bare
}
