//! The live configuration directory: `allowlist` + `routes.yaml`.

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::allowlist::Allowlist;
use crate::error::ConfigError;
use crate::host::Host;
use crate::routes::RoutesFile;

/// Name of the allowlist file inside the config dir.
pub const ALLOWLIST_FILE: &str = "allowlist";
/// Name of the routes file inside the config dir.
pub const ROUTES_FILE: &str = "routes.yaml";

/// Everything a sidecar reloads on SIGHUP.
#[derive(Debug, Clone, Default)]
pub struct LiveConfig {
    /// The `allowlist` file.
    pub allowlist: Allowlist,
    /// The `routes.yaml` file.
    pub routes: RoutesFile,
    /// Hex SHA-256 over both files (`allowlist`, a NUL byte, `routes.yaml`).
    pub sha256: String,
}

thread_local! {
    // The `until` of each entry of the allowlist the last `LiveConfig::load` on this thread
    // read. A side channel to `reload`, which calls the loader on its own thread and takes it
    // right after: every sidecar whose loader goes through `LiveConfig::load` (pipelock
    // directly, egress inside its own config type) gets the expiry report and timer without
    // its config type having to expose the allowlist.
    static LOADED_UNTILS: std::cell::RefCell<Option<Vec<Option<u64>>>> =
        const { std::cell::RefCell::new(None) };
}

/// Clears what [`take_loaded_untils`] returns (before a loader runs).
pub(crate) fn clear_loaded_untils() {
    LOADED_UNTILS.with(|u| u.borrow_mut().take());
}

/// The `until` of each allowlist entry read by the last successful [`LiveConfig::load`] on
/// this thread since [`clear_loaded_untils`], if any.
pub(crate) fn take_loaded_untils() -> Option<Vec<Option<u64>>> {
    LOADED_UNTILS.with(|u| u.borrow_mut().take())
}

fn read_optional(path: &Path) -> Result<String, ConfigError> {
    match std::fs::read(path) {
        Ok(bytes) => String::from_utf8(bytes)
            .map_err(|_| ConfigError::invalid(path, None, "not valid UTF-8 text")),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(String::new()),
        Err(e) => Err(ConfigError::Io {
            file: path.to_path_buf(),
            source: e,
        }),
    }
}

impl LiveConfig {
    /// Load `dir/allowlist` and `dir/routes.yaml`; a missing file counts as empty.
    pub fn load(dir: &Path) -> Result<LiveConfig, ConfigError> {
        let allow_path = dir.join(ALLOWLIST_FILE);
        let routes_path = dir.join(ROUTES_FILE);
        let allow_text = read_optional(&allow_path)?;
        let routes_text = read_optional(&routes_path)?;
        let allowlist = Allowlist::parse(&allow_text, &allow_path)?;
        let routes = RoutesFile::parse(&routes_text, &routes_path)?;
        let mut h = Sha256::new();
        h.update(allow_text.as_bytes());
        h.update([0u8]);
        h.update(routes_text.as_bytes());
        let untils = allowlist.untils().collect();
        LOADED_UNTILS.with(|u| *u.borrow_mut() = Some(untils));
        Ok(LiveConfig {
            allowlist,
            routes,
            sha256: hex::encode(h.finalize()),
        })
    }

    /// A loader for [`crate::reload::start`]: loads `dir` each time it is called.
    pub fn loader(
        dir: PathBuf,
    ) -> impl Fn() -> Result<(LiveConfig, String), ConfigError> + Send + Sync + 'static {
        move || {
            let cfg = LiveConfig::load(&dir)?;
            let sha = cfg.sha256.clone();
            Ok((cfg, sha))
        }
    }

    /// Allowed by the allowlist or by the host of any route.
    pub fn host_allowed(&self, host: &Host, port: u16) -> bool {
        self.allowlist.allows(host, port) || self.route_hosts_allow(host, port)
    }

    /// Allowed by the host of any route.
    pub fn route_hosts_allow(&self, host: &Host, port: u16) -> bool {
        self.routes
            .routes
            .iter()
            .any(|r| r.host.matches(host, port))
    }

    /// The first route whose host matches (method/path not checked).
    pub fn route_for_host(&self, host: &Host, port: u16) -> Option<&crate::routes::Route> {
        self.routes
            .routes
            .iter()
            .find(|r| r.host.matches(host, port))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::parse_host;

    #[test]
    fn load_missing_files_is_empty_and_hash_changes() {
        let dir = tempfile::tempdir().unwrap();
        let empty = LiveConfig::load(dir.path()).unwrap();
        assert_eq!(empty.allowlist.len(), 0);
        assert_eq!(empty.sha256.len(), 64);
        std::fs::write(dir.path().join("allowlist"), "example.com\n").unwrap();
        std::fs::write(
            dir.path().join("routes.yaml"),
            "routes:\n  - host: api.example.org\n",
        )
        .unwrap();
        let c = LiveConfig::load(dir.path()).unwrap();
        assert_ne!(c.sha256, empty.sha256);
        assert!(c.host_allowed(&parse_host("example.com").unwrap(), 443));
        assert!(c.host_allowed(&parse_host("api.example.org").unwrap(), 443));
        assert!(c.route_hosts_allow(&parse_host("api.example.org").unwrap(), 443));
        assert!(!c.route_hosts_allow(&parse_host("example.com").unwrap(), 443));
        assert!(!c.host_allowed(&parse_host("evil.example").unwrap(), 443));
        assert!(c
            .route_for_host(&parse_host("api.example.org").unwrap(), 443)
            .is_some());
    }

    #[test]
    fn errors_carry_full_path() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("allowlist"), "ok.example\nbad*host\n").unwrap();
        let e = LiveConfig::load(dir.path()).unwrap_err().to_string();
        assert!(
            e.starts_with(&format!("{}:2: ", dir.path().join("allowlist").display())),
            "{e}"
        );
        std::fs::write(dir.path().join("allowlist"), "").unwrap();
        std::fs::write(dir.path().join("routes.yaml"), "routes:\n  - hots: a\n").unwrap();
        let e = LiveConfig::load(dir.path()).unwrap_err().to_string();
        assert!(e.contains("routes.yaml:2: unknown key `hots`"), "{e}");
        std::fs::write(dir.path().join("routes.yaml"), [0xff, 0xfe]).unwrap();
        assert!(LiveConfig::load(dir.path()).is_err());
    }
}
