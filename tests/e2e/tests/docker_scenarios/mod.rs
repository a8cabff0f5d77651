//! The Docker scenarios of `docker_end_to_end`, one file each, and what they share: the
//! manifest and small readers of Docker and status files (the checks collector is the
//! library's `Checks`).

pub mod attached;
pub mod detached;
pub mod git_gate;
pub mod readiness;

use std::path::Path;
use std::time::{Duration, Instant};

use bottle_e2e::*;

pub const START: Duration = Duration::from_secs(300);
pub const SHORT: Duration = Duration::from_secs(60);

pub fn manifest(origin: &Origin, extra: &str) -> String {
    let mut m = String::from("name: e2e\nimage: bottle-agent-test:latest\n");
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
    m.push_str("limits: {memory: 512m, cpus: 1, pids: 256}\n");
    m.push_str(extra);
    m
}

pub fn write_manifest(home: &Home, text: &str) -> String {
    let p = home.dir.path().join("e2e.yaml");
    std::fs::write(&p, text).unwrap();
    p.display().to_string()
}

pub fn new_secret() -> String {
    format!(
        "e2e-secret-{:016x}{:016x}",
        rand::random::<u64>(),
        rand::random::<u64>()
    )
}

pub fn http_code(r: &Run) -> String {
    r.stdout
        .trim()
        .chars()
        .rev()
        .take(3)
        .collect::<String>()
        .chars()
        .rev()
        .collect()
}

pub fn status_of(state: &Path, component: &str) -> serde_json::Value {
    std::fs::read_to_string(state.join("status").join(format!("{component}.json")))
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or(serde_json::Value::Null)
}

pub fn started_at(container: &str) -> String {
    docker(&["inspect", "--format", "{{.State.StartedAt}}", container])
        .stdout
        .trim()
        .to_string()
}

pub fn service_container(project: &str, service: &str) -> String {
    let f1 = format!("label=com.docker.compose.project={project}");
    let f2 = format!("label=com.docker.compose.service={service}");
    docker(&["ps", "-q", "--filter", &f1, "--filter", &f2])
        .stdout
        .trim()
        .to_string()
}
