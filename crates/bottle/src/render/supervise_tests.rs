//! The supervise service in the rendered compose file: present by default with its confined
//! mounts, user and limits; absent (with the agent's variable and NO_PROXY entry) when off.

use std::collections::BTreeMap;
use std::path::Path;

use serde_yaml::Value;

use super::supervise::{SERVICE, URL, URL_ENV};
use super::{compose, Options};

fn loaded(extra: &str) -> crate::manifest::Loaded {
    let text = format!("name: demo\nimage: agent:1\nallow: [example.com]\n{extra}");
    crate::manifest::parse(&text, Path::new("/tmp/m.yaml"), &BTreeMap::new()).unwrap()
}

fn opts() -> Options {
    Options {
        slug: "demo-abcde".into(),
        sidecar_user: (1000, 1001),
        tag: "t1".into(),
        agent_user: None,
    }
}

fn doc(extra: &str) -> Value {
    serde_yaml::from_str(&compose(&loaded(extra), &opts(), false).unwrap()).unwrap()
}

fn list(v: &Value) -> Vec<String> {
    v.as_sequence()
        .map(|s| {
            s.iter()
                .filter_map(|x| x.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn present_by_default_confined_and_as_the_operator() {
    let d = doc("");
    let s = &d["services"][SERVICE];
    assert_eq!(s["image"], Value::String("bottle-supervise:t1".into()));
    assert_eq!(s["user"], Value::String("1000:1001".into()));
    assert_eq!(
        list(&s["networks"]),
        ["bottle"],
        "no internet, no sidecars net"
    );
    assert_eq!(s["read_only"], Value::Bool(true));
    assert_eq!(list(&s["cap_drop"]), ["ALL"]);
    assert_eq!(list(&s["security_opt"]), ["no-new-privileges:true"]);
    assert!(s["mem_limit"].as_str().is_some());
    assert!(s["pids_limit"].as_u64().is_some_and(|p| p > 0 && p <= 256));
    assert_eq!(s["logging"]["driver"], Value::String("json-file".into()));
    assert_eq!(
        s["labels"]["org.bottle.slug"],
        Value::String("demo-abcde".into())
    );
    let cmd = list(&s["command"]);
    for want in [
        "--listen=0.0.0.0:8070",
        "--config-dir=/etc/bottle",
        "--state-dir=/var/lib/bottle/supervise",
        "--audit-dir=/var/log/bottle",
        "--mcp-allowed-host=supervise",
        "--admin-listen=127.0.0.1:9090",
    ] {
        assert!(cmd.iter().any(|c| c == want), "{want} missing in {cmd:?}");
    }
    assert!(
        !cmd.iter().any(|c| c.starts_with("--audit-log=/")),
        "its audit goes to stderr, not into audit/: {cmd:?}"
    );
    let agent = &d["services"]["agent"];
    assert_eq!(
        agent["depends_on"][SERVICE]["condition"],
        Value::String("service_healthy".into())
    );
    assert_eq!(agent["environment"][URL_ENV], Value::String(URL.into()));
    for k in ["NO_PROXY", "no_proxy"] {
        let np = agent["environment"][k].as_str().unwrap();
        assert!(np.split(',').any(|h| h == "supervise"), "{k}: {np}");
        assert!(np.split(',').any(|h| h == "git-gate"), "{k}: {np}");
    }
}

#[test]
fn requests_is_the_only_writable_mount() {
    let d = doc("");
    let vols = list(&d["services"][SERVICE]["volumes"]);
    let writable: Vec<&String> = vols.iter().filter(|v| !v.ends_with(":ro")).collect();
    assert_eq!(
        writable,
        ["./requests:/var/lib/bottle/supervise/requests"],
        "{vols:?}"
    );
    for ro in ["./live-config:/etc/bottle:ro", "./audit:/var/log/bottle:ro"] {
        assert!(vols.iter().any(|v| v == ro), "{ro} missing in {vols:?}");
    }
    // nothing that holds a key, a credential or the agent's workspace
    for v in &vols {
        assert!(
            !v.starts_with("./ca") && !v.starts_with("./status") && !v.starts_with("./git-gate"),
            "{v}"
        );
        assert!(v.starts_with("./"), "only state-dir paths: {v}");
    }
    let env = &d["services"][SERVICE]["environment"];
    assert!(env.is_null(), "no environment (no credential): {env:?}");
}

#[test]
fn absent_when_disabled_either_way() {
    for off in ["supervise: false\n", "supervise: {enabled: false}\n"] {
        let text = compose(&loaded(off), &opts(), false).unwrap();
        let d: Value = serde_yaml::from_str(&text).unwrap();
        assert!(d["services"].get(SERVICE).is_none(), "{off}");
        let agent = &d["services"]["agent"];
        assert!(agent["depends_on"].get(SERVICE).is_none(), "{off}");
        assert!(agent["environment"].get(URL_ENV).is_none(), "{off}");
        for k in ["NO_PROXY", "no_proxy"] {
            let np = agent["environment"][k].as_str().unwrap();
            assert!(!np.contains("supervise"), "{off} {k}: {np}");
        }
        assert!(!text.contains("supervise"), "{off}: nothing of it rendered");
    }
}

#[test]
fn notify_hook_stays_on_the_host() {
    let d = compose(
        &loaded("supervise:\n  notify: {webhook: \"https://hooks.example/T0/secret-path\"}\n"),
        &opts(),
        false,
    )
    .unwrap();
    assert!(
        !d.contains("hooks.example") && !d.contains("secret-path"),
        "the webhook is the launcher's, never in the compose file: {d}"
    );
    let d = compose(
        &loaded("supervise:\n  notify: {command: [/usr/bin/notify-send, hi]}\n"),
        &opts(),
        false,
    )
    .unwrap();
    assert!(!d.contains("notify-send"), "{d}");
}

#[test]
fn sidecar_refusals_name_supervise_only_when_it_runs() {
    let flag = format!("--supervise-url={URL}");
    let on: Value = serde_yaml::from_str(&compose(&loaded(GIT), &opts(), true).unwrap()).unwrap();
    for svc in ["pipelock", "egress", "git-gate"] {
        let cmd = list(&on["services"][svc]["command"]);
        assert!(cmd.contains(&flag), "{svc}: {cmd:?}");
    }
    assert!(!list(&on["services"][SERVICE]["command"]).contains(&flag));
    let off_text = format!("{GIT}supervise: false\n");
    let off: Value =
        serde_yaml::from_str(&compose(&loaded(&off_text), &opts(), true).unwrap()).unwrap();
    for svc in ["pipelock", "egress", "git-gate"] {
        let cmd = list(&off["services"][svc]["command"]);
        assert!(
            !cmd.iter().any(|c| c.starts_with("--supervise-url")),
            "{svc}: {cmd:?}"
        );
    }
}

const GIT: &str = "git:\n  - name: r\n    upstream: https://github.com/acme/r.git\n";
