//! Rendering: `live-config/` (allowlist, routes.yaml), the agent's environment and the
//! per-bottle compose file (the fragment in compose/sidecars.yml plus the agent service).

use serde_yaml::{Mapping, Value};

use crate::manifest::Loaded;

pub mod supervise;
// The live config is rendered under `manifest` (loading a manifest checks it); these are
// re-exported so that `render` still offers everything `bottle start` writes.
pub use crate::manifest::live_config::{allowlist, routes_file, routes_tree, routes_yaml};

/// The sidecar fragment, compiled in.
pub const FRAGMENT: &str = include_str!("../../../compose/sidecars.yml");

/// Where the agent finds its CA files.
pub const AGENT_CA_DIR: &str = "/etc/bottle-ca";
/// The agent's bundle (web roots + bottle CA).
pub const AGENT_BUNDLE: &str = "/etc/bottle-ca/bundle.pem";
/// The bottle CA alone.
pub const AGENT_CA_CERT: &str = "/etc/bottle-ca/ca.crt";
/// The proxy URL the agent uses.
pub const PROXY_URL: &str = "http://pipelock:8888";
/// git-gate base URL as the agent sees it.
pub const GIT_GATE_URL: &str = "http://git-gate:8080";
/// The agent's DNS server as given to Docker (see `compose`): its own namespace.
pub const AGENT_DNS: &str = "0.0.0.0";
/// The variable (in the `docker compose` process env) holding the pipelock -> egress key.
pub const EGRESS_KEY_ENV: &str = "BOTTLE_EGRESS_KEY";

/// A fresh pipelock -> egress key: 32 random bytes, base64url (43 characters). Never written
/// by us; passed to compose in its environment only.
pub fn new_egress_key() -> String {
    use base64::Engine;
    let bytes: [u8; 32] = rand::random();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// Choices that are not in the manifest.
#[derive(Debug, Clone)]
pub struct Options {
    /// The slug.
    pub slug: String,
    /// uid:gid the sidecars run as.
    pub sidecar_user: (u32, u32),
    /// Image tag suffix (`latest`).
    pub tag: String,
    /// The agent's `user:` (`None`: the image's own; see `agent_user::pick`).
    pub agent_user: Option<String>,
}

/// The agent's environment: the runtime contract, then the manifest's `env`.
pub fn agent_env(l: &Loaded, git_gate: bool) -> Vec<(String, String)> {
    let mut env: Vec<(String, String)> = Vec::new();
    for k in ["HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"] {
        env.push((k.into(), PROXY_URL.into()));
    }
    // supervise is answered directly: through pipelock it would be an unlisted host.
    let no_proxy = if l.manifest.supervise.enabled {
        "git-gate,supervise,localhost,127.0.0.1"
    } else {
        "git-gate,localhost,127.0.0.1"
    };
    for k in ["NO_PROXY", "no_proxy"] {
        env.push((k.into(), no_proxy.into()));
    }
    for k in [
        "SSL_CERT_FILE",
        "REQUESTS_CA_BUNDLE",
        "CURL_CA_BUNDLE",
        "GIT_SSL_CAINFO",
        "PIP_CERT",
        "CARGO_HTTP_CAINFO",
        "AWS_CA_BUNDLE",
    ] {
        env.push((k.into(), AGENT_BUNDLE.into()));
    }
    env.push(("NODE_EXTRA_CA_CERTS".into(), AGENT_CA_CERT.into()));
    let rewrites: Vec<(String, String)> = if git_gate {
        l.manifest
            .git
            .iter()
            .map(|g| {
                (
                    format!("url.{GIT_GATE_URL}/{}.git.insteadOf", g.name),
                    g.upstream.clone(),
                )
            })
            .collect()
    } else {
        Vec::new()
    };
    env.push(("GIT_CONFIG_COUNT".into(), rewrites.len().to_string()));
    for (i, (k, v)) in rewrites.into_iter().enumerate() {
        env.push((format!("GIT_CONFIG_KEY_{i}"), k));
        env.push((format!("GIT_CONFIG_VALUE_{i}"), v));
    }
    env.push(("BOTTLE_SLUG".into(), String::new())); // filled by compose()
    if l.manifest.supervise.enabled {
        env.push((supervise::URL_ENV.into(), supervise::URL.into()));
    }
    for (k, v) in &l.manifest.env {
        env.push((k.clone(), v.clone()));
    }
    env
}

/// Render the compose file. `git_gate`: include the git-gate service.
pub fn compose(l: &Loaded, opts: &Options, git_gate: bool) -> Result<String, String> {
    let m = &l.manifest;
    let mut doc: Value =
        serde_yaml::from_str(FRAGMENT).map_err(|e| format!("compose fragment: {e}"))?;
    let user = format!("{}:{}", opts.sidecar_user.0, opts.sidecar_user.1);
    let resolve_args: Vec<String> = l
        .resolve
        .iter()
        .map(|(n, a)| {
            // Manifest pins are the operator's: a private address is trusted for that name
            // only (`,private`); the literal address stays refused unless an allowlist line
            // covers it.
            let o = bottle_core::ResolveOverride {
                name: n.clone(),
                addr: *a,
                private_ok: bottle_core::ssrf::private_reason(*a).is_some(),
            };
            format!("--resolve={o}")
        })
        .collect();

    // extra upstream networks (external)
    let ext_keys: Vec<String> = (0..m.upstream_networks.len())
        .map(|i| format!("upstream-extra-{i}"))
        .collect();
    {
        let nets = mapping_mut(&mut doc, "networks")?;
        for (key, name) in ext_keys.iter().zip(&m.upstream_networks) {
            let mut n = Mapping::new();
            n.insert("external".into(), true.into());
            n.insert("name".into(), name.clone().into());
            nets.insert(key.clone().into(), Value::Mapping(n));
        }
    }

    let services = mapping_mut(&mut doc, "services")?;
    if !git_gate {
        services.remove("git-gate");
    }
    if m.supervise.enabled {
        services.insert(supervise::SERVICE.into(), supervise::service());
    }
    let names: Vec<String> = services
        .keys()
        .filter_map(|k| k.as_str().map(str::to_string))
        .collect();
    for name in &names {
        let svc = services
            .get_mut(name.as_str())
            .and_then(Value::as_mapping_mut)
            .ok_or_else(|| format!("compose fragment: service {name} is not a mapping"))?;
        svc.insert("user".into(), user.clone().into());
        if let Some(Value::String(img)) = svc.get_mut("image") {
            if let Some((repo, _)) = img.rsplit_once(':') {
                *img = format!("{repo}:{}", opts.tag);
            }
        }
        let mut labels = Mapping::new();
        labels.insert("org.bottle.slug".into(), opts.slug.clone().into());
        svc.insert("labels".into(), Value::Mapping(labels));
        if m.supervise.enabled && name != supervise::SERVICE {
            // Their 403 bodies then tell the agent where to ask for access.
            seq_mut(svc, "command")?.push(format!("--supervise-url={}", supervise::URL).into());
        }
        let upstream_side = name == "egress" || name == "git-gate";
        if upstream_side {
            let cmd = seq_mut(svc, "command")?;
            for a in &resolve_args {
                cmd.push(a.clone().into());
            }
            if m.upstream_ca.is_some() {
                cmd.push("--upstream-ca=/etc/bottle-upstream-ca/ca.pem".into());
                seq_mut(svc, "volumes")?.push("./upstream-ca:/etc/bottle-upstream-ca:ro".into());
            }
            let nets = seq_mut(svc, "networks")?;
            for k in &ext_keys {
                nets.push(k.clone().into());
            }
            let slots = if name == "egress" {
                &l.route_tokens
            } else {
                &l.git_tokens
            };
            let envs = seq_mut(svc, "environment")?;
            for (slot, _) in slots {
                envs.push(slot.clone().into()); // by name: the value comes from compose's env
            }
            if name == "git-gate" {
                // file:// upstreams (local bare repositories) are mounted at the same path.
                let vols = seq_mut(svc, "volumes")?;
                for p in file_upstreams(l) {
                    let p = escape_dollars(&p);
                    vols.push(format!("{p}:{p}").into());
                }
            }
        }
    }

    // the agent
    let mut agent = Mapping::new();
    agent.insert("image".into(), m.image.clone().into());
    agent.insert(
        "command".into(),
        strings(&["sleep".to_string(), "infinity".to_string()]),
    );
    agent.insert("init".into(), true.into());
    agent.insert("networks".into(), strings(&["bottle".to_string()]));
    // Docker's embedded resolver answers the service names and forwards every other name to
    // the container's configured servers. Configured as 0.0.0.0 it forwards them into the
    // agent's own network namespace (nothing of ours listens there): no external name is
    // resolved and no query leaves the agent, whatever the host's resolv.conf says (the
    // CVE-2024-29018 path, host-loopback resolvers queried from the host). Not a 127/8
    // address: some engines query those from the host's namespace.
    agent.insert("dns".into(), strings(&[AGENT_DNS.to_string()]));
    // No IPv6 at all in the agent (no link-local neighbour probing of the host or of other
    // bottles); the networks have no IPv6 either.
    let mut sysctls = Mapping::new();
    for k in [
        "net.ipv6.conf.all.disable_ipv6",
        "net.ipv6.conf.default.disable_ipv6",
    ] {
        sysctls.insert(k.into(), "1".into());
    }
    agent.insert("sysctls".into(), Value::Mapping(sysctls));
    let mut env = Mapping::new();
    for (k, v) in agent_env(l, git_gate) {
        let v = if k == "BOTTLE_SLUG" {
            opts.slug.clone()
        } else {
            v
        };
        env.insert(k.into(), escape_dollars(&v).into());
    }
    agent.insert("environment".into(), Value::Mapping(env));
    let mut vols = vec![format!("./agent-ca:{AGENT_CA_DIR}:ro")];
    let workdir = m.workdir.clone().unwrap_or_else(|| "/workspace".into());
    if let Some(ws) = &m.workspace {
        vols.push(format!(
            "{}:{workdir}",
            escape_dollars(&ws.display().to_string())
        ));
        for v in crate::agent_user::git_volumes(l, &workdir) {
            vols.push(escape_dollars(&v));
        }
    }
    if let Some(u) = &opts.agent_user {
        agent.insert("user".into(), u.clone().into());
    }
    agent.insert("volumes".into(), strings(&vols));
    if m.workdir.is_some() || m.workspace.is_some() {
        agent.insert("working_dir".into(), workdir.into());
    }
    let mut deps = Mapping::new();
    for d in names.iter().filter(|n| {
        matches!(
            n.as_str(),
            "pipelock" | "egress" | "git-gate" | supervise::SERVICE
        )
    }) {
        let mut c = Mapping::new();
        c.insert("condition".into(), "service_healthy".into());
        deps.insert(d.clone().into(), Value::Mapping(c));
    }
    agent.insert("depends_on".into(), Value::Mapping(deps));
    agent.insert("mem_limit".into(), m.limits.memory.clone().into());
    agent.insert("cpus".into(), m.limits.cpus.into());
    agent.insert("pids_limit".into(), u64::from(m.limits.pids).into());
    agent.insert(
        "security_opt".into(),
        strings(&["no-new-privileges:true".to_string()]),
    );
    // No capability at all: root in the agent (`user: root`) cannot chown, mknod or bypass
    // file permissions in the workspace; no-new-privileges makes setuid binaries inert.
    agent.insert("cap_drop".into(), strings(&["ALL".to_string()]));
    let mut labels = Mapping::new();
    labels.insert("org.bottle.slug".into(), opts.slug.clone().into());
    agent.insert("labels".into(), Value::Mapping(labels));
    services.insert("agent".into(), Value::Mapping(agent));
    // Every service logs to a bounded, rotated file whatever the daemon's default is: the
    // agent can make itself or a sidecar log without end (a refusal per request, `yes`), and
    // an unbounded json-file log fills the host's disk.
    for (_, svc) in services.iter_mut() {
        if let Some(svc) = svc.as_mapping_mut() {
            svc.insert("logging".into(), bounded_logging());
        }
    }

    let body = serde_yaml::to_string(&doc).map_err(|e| format!("rendering compose file: {e}"))?;
    Ok(format!(
        "# bottle {} (project {}), rendered by `bottle` from {}\n# Secrets are listed by name only; their values are passed in the environment of docker compose.\n{body}",
        opts.slug,
        crate::state::project(&opts.slug),
        l.path.display()
    ))
}

/// Per-container log bound: `LOG_MAX_FILES` files of `LOG_MAX_SIZE` each.
pub const LOG_MAX_SIZE: &str = "10m";
pub const LOG_MAX_FILES: &str = "3";

fn bounded_logging() -> Value {
    let mut options = Mapping::new();
    options.insert("max-size".into(), LOG_MAX_SIZE.into());
    options.insert("max-file".into(), LOG_MAX_FILES.into());
    let mut logging = Mapping::new();
    logging.insert("driver".into(), "json-file".into());
    logging.insert("options".into(), Value::Mapping(options));
    Value::Mapping(logging)
}

/// Host paths of the `file://` git upstreams.
pub fn file_upstreams(l: &Loaded) -> Vec<String> {
    let mut v: Vec<String> = l
        .manifest
        .git
        .iter()
        .filter_map(|g| g.upstream.strip_prefix("file://").map(str::to_string))
        .collect();
    v.sort();
    v.dedup();
    v
}

/// Compose interpolates `$`: a literal `$` must be written `$$`.
pub fn escape_dollars(s: &str) -> String {
    s.replace('$', "$$")
}

fn strings(v: &[String]) -> Value {
    Value::Sequence(v.iter().map(|s| Value::String(s.clone())).collect())
}

fn mapping_mut<'a>(doc: &'a mut Value, key: &str) -> Result<&'a mut Mapping, String> {
    doc.get_mut(key)
        .and_then(Value::as_mapping_mut)
        .ok_or_else(|| format!("compose fragment: `{key}` missing"))
}

fn seq_mut<'a>(svc: &'a mut Mapping, key: &str) -> Result<&'a mut Vec<Value>, String> {
    if !matches!(svc.get(key), Some(Value::Sequence(_))) {
        svc.insert(key.into(), Value::Sequence(Vec::new()));
    }
    svc.get_mut(key)
        .and_then(Value::as_sequence_mut)
        .ok_or_else(|| format!("compose fragment: `{key}` is not a list"))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod dlp_tests;

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod supervise_tests;

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;
    use std::path::Path;

    const M: &str = "name: demo\nimage: agent:1\nenv:\n  PRICE: \"5$$\"\nallow:\n  - example.com\n  - \"*.example.org:8443\"\nroutes:\n  - host: api.example.com\n    paths: [\"/v1/**\"]\n    auth: {scheme: bearer, token_from: API_TOKEN}\ngit:\n  - name: demo\n    upstream: https://github.com/acme/demo.git\n    auth: {scheme: basic, username: x-access-token, token_from: GIT_TOKEN}\n    rules:\n      - {ref: \"refs/heads/agent/**\", allow: [create, update]}\nresolve:\n  origin.test: 172.30.99.10\nupstream_networks: [e2e-net]\n";

    fn loaded() -> Loaded {
        let env: BTreeMap<String, String> = [
            ("API_TOKEN", "sekrit-api-value"),
            ("GIT_TOKEN", "sekrit-git-value"),
        ]
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
        crate::manifest::parse(M, Path::new("/tmp/m.yaml"), &env).unwrap()
    }

    fn opts() -> Options {
        Options {
            slug: "demo-abcde".into(),
            sidecar_user: (65532, 65532),
            tag: "latest".into(),
            agent_user: None,
        }
    }

    #[test]
    fn compose_has_topology_and_no_secret_values() {
        let l = loaded();
        let text = compose(&l, &opts(), true).unwrap();
        assert!(
            !text.contains("sekrit"),
            "secret value leaked into compose file"
        );
        let doc: Value = serde_yaml::from_str(&text).unwrap();
        let s = &doc["services"];
        assert_eq!(
            s["agent"]["networks"],
            serde_yaml::from_str::<Value>("[bottle]").unwrap()
        );
        assert_eq!(
            s["pipelock"]["networks"],
            serde_yaml::from_str::<Value>("[bottle, sidecars]").unwrap()
        );
        let egress_nets = serde_yaml::to_string(&s["egress"]["networks"]).unwrap();
        assert!(egress_nets.contains("upstream") && egress_nets.contains("upstream-extra-0"));
        assert!(!egress_nets.contains("bottle"));
        assert_eq!(doc["networks"]["bottle"]["internal"], Value::Bool(true));
        assert_eq!(doc["networks"]["sidecars"]["internal"], Value::Bool(true));
        assert_eq!(
            doc["networks"]["upstream-extra-0"]["name"],
            Value::String("e2e-net".into())
        );
        assert!(serde_yaml::to_string(&s["egress"]["environment"])
            .unwrap()
            .contains("BOTTLE_TOKEN_0"));
        assert!(serde_yaml::to_string(&s["git-gate"]["environment"])
            .unwrap()
            .contains("BOTTLE_GIT_TOKEN_0"));
        assert!(serde_yaml::to_string(&s["egress"]["command"])
            .unwrap()
            .contains("--resolve=origin.test=172.30.99.10,private"));
        assert_eq!(
            s["agent"]["environment"]["PRICE"],
            Value::String("5$$".into())
        );
        assert_eq!(
            s["agent"]["environment"]["HTTPS_PROXY"],
            Value::String(PROXY_URL.into())
        );
        assert_eq!(
            s["agent"]["environment"]["GIT_CONFIG_KEY_0"],
            Value::String("url.http://git-gate:8080/demo.git.insteadOf".into())
        );
        assert_eq!(
            s["agent"]["depends_on"]["pipelock"]["condition"],
            Value::String("service_healthy".into())
        );
        for svc in ["pipelock", "egress", "git-gate"] {
            assert_eq!(s[svc]["read_only"], Value::Bool(true), "{svc}");
            assert_eq!(s[svc]["cap_drop"][0], Value::String("ALL".into()), "{svc}");
            assert_eq!(s[svc]["user"], Value::String("65532:65532".into()), "{svc}");
        }
    }

    #[test]
    fn network_isolation_of_agent_and_sidecars() {
        let doc: Value = serde_yaml::from_str(&compose(&loaded(), &opts(), true).unwrap()).unwrap();
        let s = &doc["services"];
        let a = &s["agent"];
        assert_eq!(
            a["dns"],
            serde_yaml::from_str::<Value>("[\"0.0.0.0\"]").unwrap()
        );
        assert_eq!(
            a["sysctls"]["net.ipv6.conf.all.disable_ipv6"],
            Value::String("1".into())
        );
        // A hand-run `docker compose up` starts the agent only once every sidecar is healthy
        // (`bottle start` waits itself, then starts the agent with --no-deps).
        for d in ["pipelock", "egress", "git-gate"] {
            assert_eq!(
                a["depends_on"][d]["condition"],
                Value::String("service_healthy".into()),
                "{d}"
            );
        }
        let deps: Vec<&str> = a["depends_on"]
            .as_mapping()
            .unwrap()
            .keys()
            .filter_map(Value::as_str)
            .collect();
        let sidecars: Vec<&str> = s
            .as_mapping()
            .unwrap()
            .keys()
            .filter_map(Value::as_str)
            .filter(|k| *k != "agent")
            .collect();
        assert_eq!(deps, sidecars, "the agent depends on every sidecar");
        // The sidecars start side by side (egress and git-gate retry their --listen-via peer's
        // name): no sidecar waits for another in compose (issue 17).
        let cmd = |svc: &str| serde_yaml::to_string(&s[svc]["command"]).unwrap();
        for svc in ["pipelock", "egress", "git-gate"] {
            assert!(s[svc].get("depends_on").is_none(), "{svc}");
            assert_eq!(
                cmd(svc).contains("--listen-via=pipelock:8888"),
                svc != "pipelock",
                "{svc}"
            );
        }
        for svc in ["pipelock", "egress", "git-gate"] {
            assert!(cmd(svc).contains("--admin-listen=127.0.0.1:9090"), "{svc}");
            assert!(!cmd(svc).contains("0.0.0.0:9090"), "{svc}");
        }
        assert!(cmd("egress").contains("--listen-via=pipelock:8888"));
        assert!(cmd("egress").contains("--client-key-env=BOTTLE_EGRESS_KEY"));
        assert!(cmd("git-gate").contains("--listen-via=pipelock:8888"));
        assert!(cmd("pipelock").contains("--upstream-proxy-key-env=BOTTLE_EGRESS_KEY"));
        for svc in ["pipelock", "egress"] {
            let env = serde_yaml::to_string(&s[svc]["environment"]).unwrap();
            assert!(
                env.contains("- BOTTLE_EGRESS_KEY\n"),
                "{svc}: by name: {env}"
            );
        }
        for svc in ["agent", "git-gate"] {
            let env = serde_yaml::to_string(&s[svc]["environment"]).unwrap();
            assert!(!env.contains(EGRESS_KEY_ENV), "{svc}: {env}");
        }
        let k1 = new_egress_key();
        let k2 = new_egress_key();
        assert_eq!(k1.len(), 43);
        assert_ne!(k1, k2);
        assert!(bottle_core::peer::PeerKey::new(bottle_core::Secret::new(k1)).is_ok());
    }

    #[test]
    fn git_gate_absent_without_git() {
        let l = loaded();
        let text = compose(&l, &opts(), false).unwrap();
        let doc: Value = serde_yaml::from_str(&text).unwrap();
        assert!(doc["services"].get("git-gate").is_none());
        assert!(doc["services"]["agent"]["depends_on"]
            .get("git-gate")
            .is_none());
        assert_eq!(
            doc["services"]["agent"]["environment"]["GIT_CONFIG_COUNT"],
            Value::String("0".into())
        );
    }

    #[test]
    fn file_upstream_is_mounted_into_git_gate_only() {
        let dir = std::env::temp_dir().join(format!("bottle-render-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let text = format!(
            "name: demo\nimage: a\ngit:\n  - name: r\n    upstream: file://{}\n",
            dir.display()
        );
        let l = crate::manifest::parse(&text, Path::new("/tmp/m.yaml"), &BTreeMap::new()).unwrap();
        let out = compose(&l, &opts(), true).unwrap();
        let doc: Value = serde_yaml::from_str(&out).unwrap();
        let mount = format!("{0}:{0}", dir.display());
        let gg = serde_yaml::to_string(&doc["services"]["git-gate"]["volumes"]).unwrap();
        let agent = serde_yaml::to_string(&doc["services"]["agent"]["volumes"]).unwrap();
        assert!(gg.contains(&mount), "{gg}");
        assert!(!agent.contains(&mount), "{agent}");
        let _ = std::fs::remove_dir_all(&dir);
        let bad =
            "name: demo\nimage: a\ngit:\n  - name: r\n    upstream: file:///nonexistent/x.git\n";
        assert!(crate::manifest::parse(bad, Path::new("/tmp/m.yaml"), &BTreeMap::new()).is_err());
    }

    #[test]
    fn internal_networks_have_no_host_address() {
        let doc: Value =
            serde_yaml::from_str(&compose(&loaded(), &opts(), false).unwrap()).unwrap();
        for n in ["bottle", "sidecars"] {
            assert_eq!(
                doc["networks"][n]["driver_opts"]["com.docker.network.bridge.inhibit_ipv4"],
                Value::String("true".into()),
                "{n}"
            );
        }
    }

    #[test]
    fn every_service_logs_to_a_bounded_file() {
        let doc: Value = serde_yaml::from_str(&compose(&loaded(), &opts(), true).unwrap()).unwrap();
        let services = doc["services"].as_mapping().unwrap();
        assert_eq!(services.len(), 5, "agent and four sidecars");
        for (name, svc) in services {
            let l = &svc["logging"];
            assert_eq!(l["driver"], Value::String("json-file".into()), "{name:?}");
            assert_eq!(
                l["options"]["max-size"],
                Value::String("10m".into()),
                "{name:?}"
            );
            assert_eq!(
                l["options"]["max-file"],
                Value::String("3".into()),
                "{name:?}"
            );
        }
    }

    #[test]
    fn routes_yaml_names_slots_only() {
        let l = loaded();
        let r = routes_yaml(&l);
        assert!(r.contains("token_env: BOTTLE_TOKEN_0"), "{r}");
        assert!(r.contains("token_env: BOTTLE_GIT_TOKEN_0"), "{r}");
        assert!(!r.contains("sekrit") && !r.contains("API_TOKEN"), "{r}");
        let a = allowlist(&l);
        assert!(a.contains("example.com\n") && a.contains("*.example.org:8443\n"));
    }

    #[test]
    fn agent_has_no_capabilities_and_runs_as_given_user() {
        let mut o = opts();
        o.agent_user = Some("1000:1000".into());
        let doc: Value = serde_yaml::from_str(&compose(&loaded(), &o, false).unwrap()).unwrap();
        let a = &doc["services"]["agent"];
        assert_eq!(
            a["cap_drop"],
            serde_yaml::from_str::<Value>("[ALL]").unwrap()
        );
        assert!(a.get("cap_add").is_none());
        assert_eq!(
            a["security_opt"],
            serde_yaml::from_str::<Value>("[\"no-new-privileges:true\"]").unwrap()
        );
        assert_eq!(a["user"], Value::String("1000:1000".into()));
        // No user chosen (no workspace): the image's own.
        let doc: Value =
            serde_yaml::from_str(&compose(&loaded(), &opts(), false).unwrap()).unwrap();
        assert!(doc["services"]["agent"].get("user").is_none());
    }

    #[test]
    fn workspace_git_mounts_hooks_and_config_read_only() {
        let ws = std::env::temp_dir().join(format!("bottle-render-ws-{}", std::process::id()));
        std::fs::create_dir_all(ws.join(".git/hooks")).unwrap();
        std::fs::write(ws.join(".git/config"), "[core]\n").unwrap();
        let ws = ws.canonicalize().unwrap();
        let w = ws.display();
        for (mode, hooks) in [
            (
                "ro-hooks",
                format!("{w}/.git/hooks:/workspace/.git/hooks:ro"),
            ),
            (
                "hide-hooks",
                "./empty-hooks:/workspace/.git/hooks:ro".to_string(),
            ),
        ] {
            let text = format!("name: d\nimage: a\nworkspace: {w}\nworkspace_git: {mode}\n");
            let l =
                crate::manifest::parse(&text, Path::new("/tmp/m.yaml"), &BTreeMap::new()).unwrap();
            let doc: Value = serde_yaml::from_str(&compose(&l, &opts(), false).unwrap()).unwrap();
            let vols = serde_yaml::to_string(&doc["services"]["agent"]["volumes"]).unwrap();
            for want in [
                format!("{w}:/workspace"),
                format!("{w}/.git:/workspace/.git"),
                hooks.clone(),
                format!("{w}/.git/config:/workspace/.git/config:ro"),
            ] {
                assert!(vols.contains(&want), "{mode}: {want} missing in {vols}");
            }
        }
        let text = format!("name: d\nimage: a\nworkspace: {w}\n");
        let l = crate::manifest::parse(&text, Path::new("/tmp/m.yaml"), &BTreeMap::new()).unwrap();
        let out = compose(&l, &opts(), false).unwrap();
        assert!(!out.contains(".git"), "rw mounts nothing extra: {out}");
        let _ = std::fs::remove_dir_all(&ws);
    }
}
