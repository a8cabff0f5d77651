//! How git-gate reaches an upstream (for mirror fetches, `ls-remote` and forwarded pushes): only the URL from config; credentials injected through
//! the child's environment (`GIT_CONFIG_*`, never the command line, never a file); no
//! redirects; no credential helpers; only the upstream's own protocol allowed; ssh only with
//! the deploy key and a pinned known_hosts (no trust on first use).

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use base64::Engine;
use bottle_core::routes::{GitAuthScheme, GitRepo};
use bottle_core::Secret;
use bottle_dlp::Zeroizing;
use tokio::process::Command;

/// Process-wide settings for upstream access.
#[derive(Debug, Clone, Default)]
pub struct UpstreamSettings {
    /// CA bundle for https upstreams (system roots + `--upstream-ca`), if one was given.
    pub ca_bundle: Option<PathBuf>,
    /// `--resolve NAME=ADDR` overrides.
    pub resolve: Vec<(String, IpAddr)>,
    /// Path of the ssh wrapper (a link to this binary named `git-gate-ssh`).
    pub ssh_wrapper: PathBuf,
    /// Where pinned known_hosts files are written.
    pub ssh_dir: PathBuf,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    Https,
    Ssh,
    File,
}

impl Scheme {
    fn as_str(self) -> &'static str {
        match self {
            Scheme::Https => "https",
            Scheme::Ssh => "ssh",
            Scheme::File => "file",
        }
    }
}

/// One repository's upstream, resolved at config load time.
#[derive(Debug, Clone)]
pub struct Upstream {
    pub url: String,
    pub scheme: Scheme,
    host: Option<String>,
    port: u16,
    /// The full `Authorization: ...` header value to inject.
    auth_header: Option<Secret>,
    /// Finds this upstream's credential (every form the dlp crate knows) and any other
    /// secret in text the upstream sent back, before that text is shown to the agent.
    reflection_guard: Option<bottle_dlp::Detector>,
    ssh_key: Option<PathBuf>,
    known_hosts: Option<PathBuf>,
}

/// What the agent sees instead of an upstream message that held a credential or secret.
pub const WITHHELD: &str = "[upstream message withheld: it held a credential or secret]";

fn host_port(url: &str, default_port: u16) -> (Option<String>, u16) {
    let rest = url.split_once("://").map(|(_, r)| r).unwrap_or("");
    let authority = rest.split('/').next().unwrap_or("");
    let authority = authority.rsplit('@').next().unwrap_or(authority);
    if let Some(v6) = authority.strip_prefix('[') {
        let (h, after) = v6.split_once(']').unwrap_or((v6, ""));
        let port = after
            .strip_prefix(':')
            .and_then(|p| p.parse().ok())
            .unwrap_or(default_port);
        return (Some(h.to_ascii_lowercase()), port);
    }
    match authority.rsplit_once(':') {
        Some((h, p)) => (
            Some(h.to_ascii_lowercase()),
            p.parse().unwrap_or(default_port),
        ),
        None if authority.is_empty() => (None, default_port),
        None => (Some(authority.to_ascii_lowercase()), default_port),
    }
}

impl Upstream {
    /// Builds the upstream of `repo`: reads the token from the environment variable named in
    /// config and writes the pinned known_hosts file.
    pub fn from_repo(repo: &GitRepo, settings: &UpstreamSettings) -> Result<Upstream, String> {
        let url = repo.upstream.clone();
        let scheme = if url.starts_with("https://") {
            Scheme::Https
        } else if url.starts_with("ssh://") {
            Scheme::Ssh
        } else if url.starts_with("file://") {
            Scheme::File
        } else {
            return Err(format!(
                "git repository `{}`: unsupported upstream scheme",
                repo.name
            ));
        };
        let default_port = if scheme == Scheme::Ssh { 22 } else { 443 };
        let (host, port) = host_port(&url, default_port);
        let mut up = Upstream {
            url,
            scheme,
            host,
            port,
            auth_header: None,
            reflection_guard: None,
            ssh_key: None,
            known_hosts: None,
        };
        if let Some(auth) = &repo.auth {
            let token = Secret::from_env(&auth.token_env).ok_or_else(|| {
                format!(
                    "git repository `{}`: environment variable {} (token_env) is not set",
                    repo.name, auth.token_env
                )
            })?;
            let value = match auth.scheme {
                GitAuthScheme::Basic => {
                    let user = auth.username.as_deref().unwrap_or("x-access-token");
                    let raw = format!("{user}:{}", token.expose());
                    format!(
                        "Authorization: Basic {}",
                        base64::engine::general_purpose::STANDARD.encode(raw.as_bytes())
                    )
                }
                GitAuthScheme::Bearer => format!("Authorization: Bearer {}", token.expose()),
            };
            let mut known = vec![Zeroizing::new(token.expose().to_string())];
            if auth.scheme == GitAuthScheme::Basic {
                let user = auth.username.as_deref().unwrap_or("x-access-token");
                known.push(Zeroizing::new(format!("{user}:{}", token.expose())));
            }
            known.push(Zeroizing::new(value.clone()));
            up.reflection_guard = Some(bottle_dlp::Detector::new(bottle_dlp::DetectorConfig {
                known_secrets: known,
                ..Default::default()
            }));
            up.auth_header = Some(Secret::new(value));
        }
        if let Some(ssh) = &repo.ssh {
            std::fs::create_dir_all(&settings.ssh_dir)
                .map_err(|e| format!("cannot create {}: {e}", settings.ssh_dir.display()))?;
            let kh = settings.ssh_dir.join(format!("{}.known_hosts", repo.name));
            let mut text = ssh.known_hosts.trim().to_string();
            text.push('\n');
            std::fs::write(&kh, text).map_err(|e| format!("cannot write {}: {e}", kh.display()))?;
            up.ssh_key = Some(ssh.key_file.clone());
            up.known_hosts = Some(kh);
        }
        Ok(up)
    }

    /// `text` from the upstream (its stderr, a per-ref reason), or [`WITHHELD`] when it holds
    /// this upstream's credential in any form, or any other secret: an upstream that echoes
    /// the token it was sent must not hand it to the agent through git-gate's messages.
    pub fn guard_message(&self, text: &str) -> String {
        let detector = self
            .reflection_guard
            .as_ref()
            .unwrap_or_else(|| bottle_dlp::Detector::builtin());
        if detector.detect(text.as_bytes()).is_empty() {
            text.to_string()
        } else {
            WITHHELD.to_string()
        }
    }

    /// A file:// upstream without credentials (tests, local mirrors).
    pub fn file(url: &str) -> Upstream {
        Upstream {
            url: url.to_string(),
            scheme: Scheme::File,
            host: None,
            port: 0,
            auth_header: None,
            reflection_guard: None,
            ssh_key: None,
            known_hosts: None,
        }
    }

    /// Adds the environment that lets `cmd` (a git command from `GitRunner`) reach this
    /// upstream and nothing else.
    pub fn apply(&self, cmd: &mut Command, settings: &UpstreamSettings) {
        let mut cfg: Vec<(String, String)> = vec![
            ("credential.helper".into(), String::new()),
            ("http.followRedirects".into(), "false".into()),
            ("http.lowSpeedLimit".into(), "1000".into()),
            ("http.lowSpeedTime".into(), "60".into()),
            ("protocol.allow".into(), "never".into()),
            (
                format!("protocol.{}.allow", self.scheme.as_str()),
                "always".into(),
            ),
            ("transfer.bundleURI".into(), "false".into()),
        ];
        if self.scheme == Scheme::Https {
            if let Some(ca) = &settings.ca_bundle {
                cfg.push(("http.sslCAInfo".into(), ca.display().to_string()));
            }
            if let Some(host) = &self.host {
                for (name, addr) in &settings.resolve {
                    if name.eq_ignore_ascii_case(host) {
                        let addr = match addr {
                            IpAddr::V6(a) => format!("[{a}]"),
                            IpAddr::V4(a) => a.to_string(),
                        };
                        cfg.push((
                            "http.curloptResolve".into(),
                            format!("{host}:{}:{addr}", self.port),
                        ));
                    }
                }
            }
        }
        let mut n = cfg.len();
        for (i, (k, v)) in cfg.iter().enumerate() {
            cmd.env(format!("GIT_CONFIG_KEY_{i}"), k);
            cmd.env(format!("GIT_CONFIG_VALUE_{i}"), v);
        }
        if let Some(h) = &self.auth_header {
            cmd.env(format!("GIT_CONFIG_KEY_{n}"), "http.extraHeader");
            cmd.env(format!("GIT_CONFIG_VALUE_{n}"), h.expose());
            n += 1;
        }
        cmd.env("GIT_CONFIG_COUNT", n.to_string());
        if self.scheme == Scheme::Ssh {
            cmd.env("GIT_SSH", &settings.ssh_wrapper);
            cmd.env("GIT_SSH_VARIANT", "ssh");
            if let Some(k) = &self.ssh_key {
                cmd.env("GIT_GATE_SSH_KEY", k);
            }
            if let Some(k) = &self.known_hosts {
                cmd.env("GIT_GATE_SSH_KNOWN_HOSTS", k);
            }
            if let Some(host) = &self.host {
                let host = host.rsplit('@').next().unwrap_or(host);
                if let Some((_, addr)) = settings
                    .resolve
                    .iter()
                    .find(|(n, _)| n.eq_ignore_ascii_case(host))
                {
                    cmd.env("GIT_GATE_SSH_ADDR", addr.to_string());
                }
            }
        }
    }
}

/// The argv for `ssh` when git-gate runs as its ssh wrapper (`git-gate-ssh ARGS...`).
/// Pinned host key, deploy key only, no agent, no prompts, no user config.
pub fn ssh_argv(
    args: &[String],
    key: Option<&Path>,
    known_hosts: Option<&Path>,
    addr: Option<&str>,
) -> Vec<String> {
    let mut v = vec![
        "-F".to_string(),
        "/dev/null".into(),
        "-o".into(),
        "BatchMode=yes".into(),
        "-o".into(),
        "StrictHostKeyChecking=yes".into(),
        "-o".into(),
        "GlobalKnownHostsFile=/dev/null".into(),
        "-o".into(),
        "IdentitiesOnly=yes".into(),
        "-o".into(),
        "IdentityAgent=none".into(),
        "-o".into(),
        "ConnectTimeout=20".into(),
        "-o".into(),
        "ServerAliveInterval=15".into(),
        "-o".into(),
        "UpdateHostKeys=no".into(),
    ];
    v.push("-o".into());
    v.push(format!(
        "UserKnownHostsFile={}",
        known_hosts
            .map(|p| p.display().to_string())
            .unwrap_or_else(|| "/dev/null".into())
    ));
    if let Some(k) = key {
        v.push("-i".into());
        v.push(k.display().to_string());
    }
    if let Some(a) = addr {
        v.push("-o".into());
        v.push(format!("HostName={a}"));
    }
    v.extend(args.iter().cloned());
    v
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn host_port_parsing() {
        assert_eq!(
            host_port("https://Example.com/a.git", 443),
            (Some("example.com".into()), 443)
        );
        assert_eq!(
            host_port("https://h:8443/a.git", 443),
            (Some("h".into()), 8443)
        );
        assert_eq!(
            host_port("ssh://git@h:2222/a.git", 22),
            (Some("h".into()), 2222)
        );
        assert_eq!(host_port("https://[::1]:9/a", 443), (Some("::1".into()), 9));
        assert_eq!(host_port("file:///srv/a.git", 443), (None, 443));
    }

    #[test]
    fn credentials_only_in_env() {
        let mut up = Upstream::file("https://h.example/a.git");
        up.scheme = Scheme::Https;
        up.host = Some("h.example".into());
        up.port = 443;
        up.auth_header = Some(Secret::new("Authorization: Basic c2VjcmV0"));
        let settings = UpstreamSettings {
            resolve: vec![("h.example".into(), "::1".parse().unwrap())],
            ..Default::default()
        };
        let mut cmd = Command::new("git");
        cmd.arg("fetch");
        up.apply(&mut cmd, &settings);
        let std = cmd.as_std();
        assert!(std
            .get_args()
            .all(|a| !a.to_string_lossy().contains("c2VjcmV0")));
        let envs: std::collections::HashMap<String, String> = std
            .get_envs()
            .filter_map(|(k, v)| {
                Some((
                    k.to_string_lossy().into_owned(),
                    v?.to_string_lossy().into_owned(),
                ))
            })
            .collect();
        let n: usize = envs["GIT_CONFIG_COUNT"].parse().unwrap();
        let pairs: Vec<(String, String)> = (0..n)
            .map(|i| {
                (
                    envs[&format!("GIT_CONFIG_KEY_{i}")].clone(),
                    envs[&format!("GIT_CONFIG_VALUE_{i}")].clone(),
                )
            })
            .collect();
        let get = |k: &str| {
            pairs
                .iter()
                .find(|(kk, _)| kk == k)
                .map(|(_, v)| v.as_str())
        };
        assert_eq!(
            get("http.extraHeader"),
            Some("Authorization: Basic c2VjcmV0")
        );
        assert_eq!(get("credential.helper"), Some(""));
        assert_eq!(get("http.followRedirects"), Some("false"));
        assert_eq!(get("protocol.allow"), Some("never"));
        assert_eq!(get("protocol.https.allow"), Some("always"));
        assert_eq!(get("http.curloptResolve"), Some("h.example:443:[::1]"));
        assert!(format!("{up:?}").contains("[REDACTED]"));
    }

    #[test]
    fn ssh_is_pinned() {
        let v = ssh_argv(
            &[
                "-p".into(),
                "22".into(),
                "git@h".into(),
                "git-receive-pack 'a'".into(),
            ],
            Some(Path::new("/k")),
            Some(Path::new("/kh")),
            None,
        );
        let s = v.join(" ");
        assert!(s.contains("StrictHostKeyChecking=yes"));
        assert!(s.contains("UserKnownHostsFile=/kh"));
        assert!(s.contains("-i /k"));
        assert!(s.ends_with("git@h git-receive-pack 'a'"));
        assert!(!s.contains("accept-new"));
    }
}
