//! The `supervise` service (issue 15): the agent's access-request sidecar, rendered when the
//! manifest's `supervise:` is on (the default).
//!
//! What it can touch is decided here, by its mounts and networks:
//! - networks: `bottle` only (internal, no host address): it reaches nothing outside, so the
//!   agent cannot reach anything through it;
//! - the one writable mount is `state/<slug>/requests/`: it cannot write the allowlist,
//!   routes.yaml, status files or the audit logs (all read-only or not mounted);
//! - `live-config/` (for `/v1/check`) and `audit/` (for `/v1/blocks`) read-only;
//! - its own audit lines go to stderr (`--audit-log=-`, kept in `compose.log`): a writable
//!   `audit/` would let it forge the other sidecars' lines;
//! - it runs as the sidecar user (the operator's uid:gid when `bottle` is not run as root), so
//!   the 0600 request files it writes are the launcher's to read.

use serde_yaml::{Mapping, Value};

/// The compose service and host name.
pub const SERVICE: &str = "supervise";
/// The image repository (`bottle build` builds it).
pub const IMAGE: &str = "bottle-supervise";
/// The URL the agent (and the other sidecars' refusals) name.
pub const URL: &str = "http://supervise:8070";
/// The agent's variable holding [`URL`].
pub const URL_ENV: &str = "BOTTLE_SUPERVISE_URL";
/// `state/<slug>/requests/`: pending requests (supervise) and decisions (the launcher).
pub use bottle_core::access_request::REQUESTS_DIR;
/// `--state-dir` inside the container; `requests/` is mounted under it.
pub const STATE_DIR_IN_CONTAINER: &str = "/var/lib/bottle/supervise";

/// The service definition; `user`, the image tag, labels and logging are set by `compose`
/// like every sidecar's.
pub fn service() -> Value {
    let mut svc = Mapping::new();
    svc.insert("image".into(), format!("{IMAGE}:latest").into());
    svc.insert(
        "command".into(),
        strings(&[
            "--listen=0.0.0.0:8070",
            "--config-dir=/etc/bottle",
            &format!("--state-dir={STATE_DIR_IN_CONTAINER}"),
            "--audit-dir=/var/log/bottle",
            "--audit-log=-",
            "--admin-listen=127.0.0.1:9090",
            // rmcp's DNS-rebinding guard: only the name the agent uses.
            "--mcp-allowed-host=supervise",
            // 60 kB bodies on 4096 connections would outgrow its memory limit; an agent
            // needs a handful (long polls included).
            "--max-connections=128",
        ]),
    );
    svc.insert("networks".into(), strings(&["bottle"]));
    svc.insert(
        "volumes".into(),
        strings(&[
            "./live-config:/etc/bottle:ro",
            "./audit:/var/log/bottle:ro",
            &format!("./{REQUESTS_DIR}:{STATE_DIR_IN_CONTAINER}/{REQUESTS_DIR}"),
        ]),
    );
    // It resolves nothing; as for the agent, no name lookup leaves its namespace.
    svc.insert("dns".into(), strings(&[super::AGENT_DNS]));
    let mut hc = Mapping::new();
    hc.insert(
        "test".into(),
        strings(&["CMD", "/supervise", "healthcheck"]),
    );
    hc.insert("interval".into(), "2s".into());
    hc.insert("timeout".into(), "3s".into());
    hc.insert("retries".into(), 20u64.into());
    svc.insert("healthcheck".into(), Value::Mapping(hc));
    svc.insert("restart".into(), "on-failure:5".into());
    svc.insert("read_only".into(), true.into());
    svc.insert("tmpfs".into(), strings(&["/tmp"]));
    svc.insert("cap_drop".into(), strings(&["ALL"]));
    svc.insert("security_opt".into(), strings(&["no-new-privileges:true"]));
    svc.insert("mem_limit".into(), "128m".into());
    svc.insert("pids_limit".into(), 128u64.into());
    svc.insert("cpus".into(), 0.5f64.into());
    svc.insert("stop_grace_period".into(), "10s".into());
    Value::Mapping(svc)
}

fn strings(v: &[&str]) -> Value {
    Value::Sequence(v.iter().map(|s| Value::String((*s).to_string())).collect())
}
