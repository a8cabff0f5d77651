//! The harness of the real-clients test: one bottle of the `bottle-agent-clients` image, the
//! echo origin and the package origin on one test network, rows that add checks, and the
//! helpers rows share (running a script in the agent, what an origin received, whether a
//! credential arrived, whether any credential leaked to the agent).

use std::io::Write;
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use base64::Engine;
use bottle_e2e::*;
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::files::{FilesOrigin, FILES_NAMES};

/// The image every row's commands run in.
pub const CLIENTS_IMAGE: &str = "bottle-agent-clients:latest";
/// How long `bottle start` may take.
pub const START: Duration = Duration::from_secs(300);
/// Default time for one `run_in_agent` script (installs compile: cargo, go).
pub const ROW_TIMEOUT: Duration = Duration::from_secs(600);
/// The variable that selects rows by name, comma-separated (`BOTTLE_CLIENTS_ROWS=pip,npm`).
pub const ROWS_VAR: &str = "BOTTLE_CLIENTS_ROWS";

/// One row of the clients table: a client, what the bottle must allow for it, its checks.
/// What the rows declare is merged into the one manifest the harness starts.
pub struct Row {
    /// Its name for `BOTTLE_CLIENTS_ROWS` (`pip`, `npm`, `grpc`, ...), unique.
    pub name: &'static str,
    /// Runs when `BOTTLE_CLIENTS_ROWS` is unset; `false` only for rows not written yet,
    /// which then run (and fail) only when named.
    pub by_default: bool,
    /// `allow:` entries of the manifest.
    pub allow: &'static [&'static str],
    /// `routes:` items, each a YAML flow mapping:
    /// `{host: pypi.e2e.test, auth: {scheme: bearer, token_from: E2E_PYPI_TOKEN}}`.
    pub routes: &'static [&'static str],
    /// `git:` items (git-gate repositories), each a YAML flow mapping.
    pub git: &'static [&'static str],
    /// Variables of the launcher that `token_from` names; the harness gives each a fresh
    /// random value (`Harness::secret`) and checks that none reaches the agent.
    pub secrets: &'static [&'static str],
    /// Adds the row's checks.
    pub run: fn(&Harness, &mut Checks),
}

/// The rows `BOTTLE_CLIENTS_ROWS` selects from `all` (every `by_default` row when unset or
/// empty). An unknown name panics with the known ones: a typo must not pass silently.
pub fn select_rows(all: Vec<Row>, filter: Option<&str>) -> Vec<Row> {
    let names: Vec<&str> = filter
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect();
    if names.is_empty() {
        return all.into_iter().filter(|r| r.by_default).collect();
    }
    for n in &names {
        assert!(
            all.iter().any(|r| r.name == *n),
            "{ROWS_VAR}: no row named {n:?}; rows: {}",
            all.iter().map(|r| r.name).collect::<Vec<_>>().join(", ")
        );
    }
    all.into_iter()
        .filter(|r| names.contains(&r.name))
        .collect()
}

/// A check for a row that nobody has written yet: fails loudly, naming who fills it.
pub fn not_written(c: &mut Checks, row: &str, owner: &str) {
    c.check(&format!("{row}: row not written yet"), false, || {
        format!("the {row} row is a placeholder ({owner} fills it); do not select it yet")
    });
}

/// `bottle build --image bottle-agent-clients`: built only for this test (about 8 minutes
/// the first time, seconds when the Dockerfile and base are unchanged). Fails the test when
/// the engine is there but the image cannot be built.
pub fn build_clients_image() {
    let mut c = Command::new(bottle_bin());
    c.args(["build", "--image", "bottle-agent-clients"]);
    let t = Instant::now();
    let r = run_cmd(c, Duration::from_secs(2400));
    assert_eq!(
        r.code,
        0,
        "bottle build --image bottle-agent-clients failed:\n{}",
        r.all()
    );
    eprintln!("clients image ready in {:.0?}", t.elapsed());
}

/// Stops the bottle on drop (also when a check panics), before the origins go.
struct BottleGuard {
    home: Home,
    slug: String,
}

impl Drop for BottleGuard {
    fn drop(&mut self) {
        let r = self.home.bottle(&["stop", &self.slug], START);
        if r.code != 0 {
            eprintln!("bottle stop {} failed:\n{}", self.slug, r.all());
        }
    }
}

/// Everything started once for all rows. Drops in field order: the bottle stops first, then
/// the package origin, then the echo origin and its network.
pub struct Harness {
    guard: BottleGuard,
    /// The package origin (pip, npm, cargo, go, git).
    pub files: FilesOrigin,
    /// The echo origin (`bottle_e2e::Origin`: HTTP/1.1, HTTP/2, SSE, WebSocket, reflection),
    /// its names (`ORIGIN_NAMES`) pinned to it.
    pub echo: Origin,
    /// The agent container.
    pub agent: String,
    secrets: Vec<(String, String)>,
    outputs: Mutex<Vec<String>>,
}

impl Harness {
    /// Start both origins and one bottle whose manifest merges what `rows` declare.
    pub fn start(rows: &[Row]) -> Harness {
        let echo = Origin::start();
        let files = FilesOrigin::start(&echo);
        let mut home = Home::new();
        let mut secrets = Vec::new();
        for var in rows.iter().flat_map(|r| r.secrets.iter()) {
            if !secrets.iter().any(|(k, _): &(String, String)| k == var) {
                let v = format!(
                    "e2e-clients-{:016x}{:016x}",
                    rand::random::<u64>(),
                    rand::random::<u64>()
                );
                home.env.push((var.to_string(), v.clone()));
                secrets.push((var.to_string(), v));
            }
        }
        let mpath = home.dir.path().join("clients.yaml");
        std::fs::write(&mpath, manifest(rows, &echo, &files)).unwrap();
        let r = home.bottle(&["start", &mpath.display().to_string(), "--detach"], START);
        assert_eq!(r.code, 0, "bottle start --detach failed:\n{}", r.all());
        let slug = home.slugs().pop().expect("a state dir");
        // The guard exists before anything else can panic, so the bottle is always stopped.
        let guard = BottleGuard { home, slug };
        let agent = agent_container(&format!("bottle-{}", guard.slug));
        assert!(
            !agent.is_empty(),
            "no agent container for bottle-{}",
            guard.slug
        );
        Harness {
            guard,
            files,
            echo,
            agent,
            secrets,
            outputs: Mutex::new(Vec::new()),
        }
    }

    /// Run `script` with `sh -c` in the agent, as its user (uid 1000, HOME /home/agent),
    /// with the runtime contract's environment; [`ROW_TIMEOUT`]. The output is kept for the
    /// final check that no credential ever reached the agent.
    pub fn run_in_agent(&self, script: &str) -> Run {
        self.run_in_agent_for(script, ROW_TIMEOUT)
    }

    /// [`Harness::run_in_agent`] with another timeout.
    pub fn run_in_agent_for(&self, script: &str, timeout: Duration) -> Run {
        let r = agent_sh(&self.agent, script, timeout);
        self.outputs.lock().unwrap().push(r.all());
        r
    }

    /// The bottle's `$BOTTLE_HOME` and `bottle` commands (`bottle why`, `bottle log`, ...).
    pub fn home(&self) -> &Home {
        &self.guard.home
    }

    /// The bottle's slug (`bottle-<slug>` is the compose project).
    pub fn slug(&self) -> &str {
        &self.guard.slug
    }

    /// The value the harness gave the launcher's variable `var` (a row's `secrets`).
    pub fn secret(&self, var: &str) -> &str {
        self.secrets
            .iter()
            .find(|(k, _)| k == var)
            .map(|(_, v)| v.as_str())
            .unwrap_or_else(|| panic!("{var} is not in any selected row's secrets"))
    }

    /// The Authorization header egress injects for `scheme: bearer, token_from: var`.
    pub fn bearer(&self, var: &str) -> String {
        format!("Bearer {}", self.secret(var))
    }

    /// The Authorization header for `scheme: basic, username: user, token_from: var`.
    pub fn basic(&self, user: &str, var: &str) -> String {
        let pair = format!("{user}:{}", self.secret(var));
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(pair)
        )
    }

    /// Checks that the package origin got at least one request for `host` and that every
    /// one carried exactly `authorization` (compared by SHA-256: the origin logs no value).
    pub fn check_credential_arrived(
        &self,
        c: &mut Checks,
        row: &str,
        host: &str,
        authorization: &str,
    ) {
        let want = sha256_hex(authorization.as_bytes());
        let reqs = self.files.requests_to(host);
        let bad: Vec<&Value> = reqs
            .iter()
            .filter(|v| v["auth_sha256"].as_str() != Some(want.as_str()))
            .collect();
        c.check(
            &format!("{row}: egress injected the route's credential into every request to {host}"),
            !reqs.is_empty() && bad.is_empty(),
            || format!("{} requests, without the credential: {bad:?}", reqs.len()),
        );
    }

    /// Adds the final check: no spelling (raw, base64, base64url, hex) of any credential is in
    /// anything the agent printed, in its environment, or in a file under /home, /tmp,
    /// /var/tmp, /etc or /root of the agent. The needles go to grep on stdin, never argv.
    pub fn check_no_secret_in_agent(&self, c: &mut Checks) {
        let needles: Vec<String> = self
            .secrets
            .iter()
            .flat_map(|(_, v)| secret_spellings(v))
            .collect();
        if needles.is_empty() {
            return;
        }
        let outputs = self.outputs.lock().unwrap().join("\n");
        let env = docker(&["inspect", "--format", "{{json .Config.Env}}", &self.agent]).stdout;
        let shown: Vec<&String> = needles
            .iter()
            .filter(|n| outputs.contains(n.as_str()) || env.contains(n.as_str()))
            .collect();
        c.check(
            "no credential in any output of the agent's commands or in its environment",
            shown.is_empty(),
            || format!("{} spellings found", shown.len()),
        );
        // grep runs as the agent's user: what it can read is exactly what the agent can. A
        // sentinel file proves grep ran and read /tmp (a grep that did not run finds nothing).
        let sentinel = format!("bottle-e2e-sentinel-{:016x}", rand::random::<u64>());
        let sentinel_file = "/tmp/bottle-e2e-sentinel";
        let w = agent_sh(
            &self.agent,
            &format!("echo {sentinel} > {sentinel_file}"),
            Duration::from_secs(30),
        );
        assert_eq!(w.code, 0, "writing the sentinel: {}", w.all());
        let mut cmd = Command::new("docker");
        cmd.args([
            "exec",
            "-i",
            &self.agent,
            "grep",
            "-rlsF",
            "-D",
            "skip",
            "-f",
            "-",
        ])
        .args(["/home", "/tmp", "/var/tmp", "/etc", "/root"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("docker exec grep");
        {
            let mut stdin = child.stdin.take().expect("stdin");
            let all = needles.join("\n") + "\n" + &sentinel + "\n";
            stdin.write_all(all.as_bytes()).expect("needles to grep");
        }
        let out = child.wait_with_output().expect("grep finished");
        let found = String::from_utf8_lossy(&out.stdout).to_string();
        let files: Vec<&str> = found.lines().filter(|l| *l != sentinel_file).collect();
        // grep: 0 found, 2 found but some file was unreadable (not the agent's, so fine).
        let code = out.status.code().unwrap_or(-1);
        c.check(
            "no credential in any file the agent can read",
            (code == 0 || code == 2)
                && found.lines().any(|l| l == sentinel_file)
                && files.is_empty(),
            || {
                format!(
                    "grep exit {code}, files with a credential: {files:?}, stderr: {}",
                    String::from_utf8_lossy(&out.stderr)
                )
            },
        );
    }
}

/// SHA-256 as lowercase hex.
pub fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

/// The value of the first `key=value` line in `out` ("" when absent): row scripts print
/// what they measured that way (`echo "sha=$(sha256sum f | cut -d' ' -f1)"`).
pub fn field(out: &str, key: &str) -> String {
    let prefix = format!("{key}=");
    out.lines()
        .find_map(|l| l.trim().strip_prefix(&prefix))
        .unwrap_or_default()
        .trim()
        .to_string()
}

/// The manifest: the clients image, the union of the rows' allow/routes/git, every origin
/// name pinned, the echo origin's CA trusted (it also signed the package origin's leaf).
fn manifest(rows: &[Row], echo: &Origin, files: &FilesOrigin) -> String {
    fn union(rows: &[Row], pick: fn(&Row) -> &'static [&'static str]) -> Vec<&'static str> {
        let mut v: Vec<&'static str> = Vec::new();
        for item in rows.iter().flat_map(|r| pick(r).iter().copied()) {
            if !v.contains(&item) {
                v.push(item);
            }
        }
        v
    }
    let mut m = format!("name: clients\nimage: {CLIENTS_IMAGE}\n");
    for (key, items) in [
        ("allow", union(rows, |r| r.allow)),
        ("routes", union(rows, |r| r.routes)),
        ("git", union(rows, |r| r.git)),
    ] {
        if !items.is_empty() {
            m.push_str(&format!("{key}:\n"));
            for i in items {
                m.push_str(&format!("  - {i}\n"));
            }
        }
    }
    m.push_str("resolve:\n");
    for n in ORIGIN_NAMES {
        m.push_str(&format!("  {n}: {}\n", echo.ip));
    }
    for n in FILES_NAMES {
        m.push_str(&format!("  {n}: {}\n", files.ip));
    }
    m.push_str(&format!("upstream_ca: {}\n", echo.ca().display()));
    m.push_str(&format!("upstream_networks: [{}]\n", echo.network));
    m.push_str("limits: {memory: 3g, cpus: 2, pids: 2048}\n");
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(name: &'static str, by_default: bool) -> Row {
        Row {
            name,
            by_default,
            allow: &[],
            routes: &[],
            git: &[],
            secrets: &[],
            run: |_, _| {},
        }
    }

    fn names(v: Vec<Row>) -> Vec<&'static str> {
        v.into_iter().map(|r| r.name).collect()
    }

    #[test]
    fn rows_are_selected_by_name_or_by_default() {
        let all = || vec![row("pip", true), row("grpc", false), row("npm", true)];
        assert_eq!(names(select_rows(all(), None)), ["pip", "npm"]);
        assert_eq!(names(select_rows(all(), Some(" "))), ["pip", "npm"]);
        assert_eq!(names(select_rows(all(), Some("grpc,npm"))), ["grpc", "npm"]);
    }

    #[test]
    #[should_panic(expected = "no row named \"pipp\"")]
    fn an_unknown_row_name_fails() {
        select_rows(vec![row("pip", true)], Some("pipp"));
    }

    #[test]
    fn fields_are_read_from_key_value_lines() {
        let out = "noise\nsha=abc \nsha=def\n";
        assert_eq!(field(out, "sha"), "abc");
        assert_eq!(field(out, "none"), "");
    }
}
