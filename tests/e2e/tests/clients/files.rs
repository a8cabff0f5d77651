//! The package origin (`files_origin.py`): a container of the clients image on the echo
//! origin's network, serving HTTPS under a leaf it mints from the echo origin's CA (which the
//! bottle trusts through `upstream_ca:`). What it serves is generated at start from a fresh
//! nonce and described in `served.json`; every request it gets is one JSON line in its log.

use std::time::{Duration, Instant};

use bottle_e2e::*;
use serde_json::Value;

/// The origin script, written into the container's /out at start.
const SCRIPT: &str = include_str!("files_origin.py");

/// Names the package origin's certificate covers; the harness pins all of them to it.
/// `pypi-mirror.e2e.test` is never allowed: a client pointed at it must be refused by
/// pipelock, and since the name would work if it were allowed, the refusal is the policy's.
pub const FILES_NAMES: &[&str] = &[
    "pypi.e2e.test",
    "npm.e2e.test",
    "crates.e2e.test",
    "goproxy.e2e.test",
    "git.e2e.test",
    "pypi-mirror.e2e.test",
];

/// The running package origin; removed (with its anonymous volumes) on drop.
pub struct FilesOrigin {
    /// Container name (`bottle-e2e-files-*`, labelled `bottle-e2e=1`).
    pub container: String,
    /// Its address on the echo origin's network.
    pub ip: String,
    /// Mounted at /out: the script and `served.json`.
    pub out: TempDir,
    /// `served.json`: `nonce`, `files` (path under the web root -> sha256) and per-client
    /// facts (`pip`, `npm`, `cargo`, `go`, `git`).
    pub served: Value,
}

impl FilesOrigin {
    /// Start it on `echo`'s network and wait until it has written `served.json`.
    pub fn start(echo: &Origin) -> FilesOrigin {
        let out = TempDir::new("bottle-e2e-files");
        std::fs::set_permissions(
            out.path(),
            std::os::unix::fs::PermissionsExt::from_mode(0o777),
        )
        .unwrap();
        std::fs::write(out.path().join("files_origin.py"), SCRIPT).unwrap();
        let container = format!(
            "bottle-e2e-files-{}-{:06x}",
            std::process::id(),
            rand::random::<u32>() & 0xff_ffff
        );
        let ca = format!("{}:/ca:ro", echo.tls.path().display());
        let vol = format!("{}:/out", out.path().display());
        let mut args = vec![
            "run",
            "-d",
            "--name",
            &container,
            "--network",
            &echo.network,
            "--label",
            "bottle-e2e=1",
            "--user",
            "0",
            "-v",
            &ca,
            "-v",
            &vol,
            "--entrypoint",
            "python3",
            "bottle-agent-clients:latest",
            "/out/files_origin.py",
        ];
        args.extend_from_slice(FILES_NAMES);
        let r = docker(&args);
        assert_eq!(r.code, 0, "docker run package origin: {}", r.all());
        let ip = container_ip(&container);
        let mut o = FilesOrigin {
            container,
            ip,
            out,
            served: Value::Null,
        };
        let served = o.out.path().join("served.json");
        let start = Instant::now();
        while !served.is_file() {
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "package origin did not start: {}",
                docker(&["logs", &o.container]).all()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        o.served = serde_json::from_str(&std::fs::read_to_string(served).unwrap()).unwrap();
        assert!(!o.ip.is_empty(), "no address for the package origin");
        o
    }

    /// The nonce every generated artifact carries (a client that printed it got our bytes).
    pub fn nonce(&self) -> &str {
        self.served["nonce"].as_str().unwrap_or_default()
    }

    /// A fact from `served.json`, e.g. `fact("npm", "integrity")`; "" when absent.
    pub fn fact(&self, client: &str, key: &str) -> String {
        self.served[client][key]
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    /// SHA-256 (hex) of a served file, by its path under the web root; "" when absent.
    pub fn sha256(&self, rel: &str) -> String {
        self.served["files"][rel]
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    /// Every request the origin got so far, in order (method, host, path, query, status,
    /// auth_sha256: SHA-256 of the Authorization header or null, user_agent).
    pub fn requests(&self) -> Vec<Value> {
        docker(&["logs", &self.container])
            .stdout
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|v| v.get("method").is_some())
            .collect()
    }

    /// The requests whose Host header names `host` (with or without a port).
    pub fn requests_to(&self, host: &str) -> Vec<Value> {
        self.requests()
            .into_iter()
            .filter(|v| {
                let h = v["host"].as_str().unwrap_or_default();
                h.eq_ignore_ascii_case(host)
                    || h.to_ascii_lowercase()
                        .starts_with(&format!("{}:", host.to_ascii_lowercase()))
            })
            .collect()
    }

    /// `git ARGS` on the origin's repositories (cwd /srv/git), e.g. `["-C", "repo.git",
    /// "rev-parse", "main"]`.
    pub fn git(&self, args: &[&str]) -> Run {
        let mut a = vec!["exec", "-w", "/srv/git", &self.container, "git"];
        a.extend_from_slice(args);
        docker(&a)
    }

    /// The origin's whole log (for failure details).
    pub fn logs(&self) -> String {
        docker(&["logs", &self.container]).all()
    }
}

impl Drop for FilesOrigin {
    fn drop(&mut self) {
        let _ = docker(&["rm", "-f", "-v", &self.container]);
    }
}
