//! Docker and Compose invocation. Compose v2 (`docker compose`) or the standalone
//! `docker-compose` (v1 or v2), whichever is present; only features both understand.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::error::{Error, Result};

/// Which Compose we drive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Flavor {
    /// `docker compose` (the v2 plugin).
    Plugin,
    /// `docker-compose` standalone; `major` is 1 or 2.
    Standalone {
        /// Major version.
        major: u32,
    },
}

/// A detected Compose.
#[derive(Debug, Clone)]
pub struct Compose {
    /// How to call it.
    pub flavor: Flavor,
    /// Version string as reported.
    pub version: String,
}

impl Compose {
    /// Find Compose: `$BOTTLE_COMPOSE` (`plugin` or `standalone`) forces one; otherwise
    /// `docker compose` if it works, else `docker-compose`.
    pub fn detect() -> Result<Compose> {
        let force = std::env::var("BOTTLE_COMPOSE").unwrap_or_default();
        if force != "standalone" {
            if let Ok(out) = Command::new("docker")
                .args(["compose", "version", "--short"])
                .output()
            {
                if out.status.success() {
                    let v = String::from_utf8_lossy(&out.stdout).trim().to_string();
                    return Ok(Compose {
                        flavor: Flavor::Plugin,
                        version: v,
                    });
                }
            }
        }
        if force != "plugin" {
            if let Some(v) = standalone_version() {
                let major = v
                    .split('.')
                    .next()
                    .and_then(|m| m.parse().ok())
                    .unwrap_or(1);
                return Ok(Compose {
                    flavor: Flavor::Standalone { major },
                    version: v,
                });
            }
        }
        Err(Error::Docker(
            "neither `docker compose` (Compose v2 plugin) nor `docker-compose` works here; install one \
             (Debian: apt-get install docker-compose)"
                .into(),
        ))
    }

    /// A command for one project and file: `docker compose -p P -f F` / `docker-compose -p P -f F`.
    pub fn cmd(&self, project: &str, file: &Path) -> Command {
        let mut c = match self.flavor {
            Flavor::Plugin => {
                let mut c = Command::new("docker");
                c.arg("compose");
                c
            }
            Flavor::Standalone { .. } => Command::new("docker-compose"),
        };
        c.arg("--project-name").arg(project).arg("--file").arg(file);
        // The project dir is the state dir: no stray .env from the user's cwd.
        if let Some(dir) = file.parent() {
            c.current_dir(dir);
        }
        c.env_remove("COMPOSE_FILE")
            .env_remove("COMPOSE_PROJECT_NAME");
        c
    }

    /// Does `up --no-deps SERVICE` start SERVICE without waiting for its `depends_on`
    /// conditions? v1 and v2.10+ (docker/compose#9591: before 2.10, v2 failed with `no such
    /// service`). Unknown versions count as no: the caller then lets compose wait.
    pub fn no_deps_skips_conditions(&self) -> bool {
        let mut parts = self
            .version
            .trim_start_matches('v')
            .split(|c: char| !c.is_ascii_digit())
            .map(|p| p.parse::<u32>().ok());
        match (parts.next().flatten(), parts.next().flatten()) {
            (Some(1), _) => matches!(self.flavor, Flavor::Standalone { .. }),
            (Some(2), Some(minor)) => minor >= 10,
            (Some(major), Some(_)) => major > 2,
            _ => false,
        }
    }

    /// Short description for messages.
    pub fn describe(&self) -> String {
        match self.flavor {
            Flavor::Plugin => format!("docker compose {}", self.version),
            Flavor::Standalone { .. } => format!("docker-compose {}", self.version),
        }
    }
}

/// The version of the standalone `docker-compose`, or `None` when it does not run.
///
/// Asking v1 costs ~0.5 s (it starts Python), a sixth of `bottle start` (issue 17): the answer
/// is kept in `$BOTTLE_HOME/compose-version` under the binary's path, size and mtime, so it is
/// asked again only when that file changes (an upgrade replaces it).
fn standalone_version() -> Option<String> {
    let key = executable_on_path("docker-compose").and_then(|p| file_key(&p));
    let cache = crate::state::home().join(COMPOSE_VERSION_CACHE);
    if let Some(key) = &key {
        if let Some(v) = cached_version(&std::fs::read_to_string(&cache).unwrap_or_default(), key) {
            return Some(v);
        }
    }
    let out = Command::new("docker-compose")
        .arg("version")
        .arg("--short")
        .stdin(Stdio::null())
        .output()
        .ok()
        .filter(|o| o.status.success())?;
    let v = String::from_utf8_lossy(&out.stdout)
        .trim()
        .trim_start_matches('v')
        .to_string();
    // Best effort, and only into an existing home: a first run creates it later.
    if let (Some(key), true) = (&key, cache.parent().is_some_and(Path::is_dir)) {
        let _ = std::fs::write(&cache, format!("{key}\t{v}\n"));
    }
    Some(v)
}

/// The cache file of [`standalone_version`], under `$BOTTLE_HOME`.
pub const COMPOSE_VERSION_CACHE: &str = "compose-version";

/// The version `text` (a cache file: `KEY<TAB>VERSION`) holds for `key`.
pub(crate) fn cached_version(text: &str, key: &str) -> Option<String> {
    let v = text.trim_end().strip_prefix(key)?.strip_prefix('\t')?;
    (!v.is_empty() && !v.contains('\t')).then(|| v.to_string())
}

/// `PATH<TAB>SIZE<TAB>MTIME_NS` of the file `p` leads to (symlinks followed).
pub(crate) fn file_key(p: &Path) -> Option<String> {
    let real = p.canonicalize().ok()?;
    let meta = std::fs::metadata(&real).ok()?;
    let mtime = meta
        .modified()
        .ok()?
        .duration_since(std::time::UNIX_EPOCH)
        .ok()?
        .as_nanos();
    Some(format!("{}\t{}\t{mtime}", real.display(), meta.len()))
}

/// The first executable file named `name` in `$PATH`, as `Command` would find it.
fn executable_on_path(name: &str) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|d| d.join(name))
        .find(|p| {
            std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
}

/// Run a command, capture output.
pub fn output(mut c: Command) -> Result<Output> {
    let desc = format!("{c:?}");
    c.stdin(Stdio::null())
        .output()
        .map_err(|e| Error::Docker(format!("cannot run {desc}: {e}")))
}

/// Run `docker ARGS`, return stdout; error with stderr on failure.
pub fn docker(args: &[&str]) -> Result<String> {
    let mut c = Command::new("docker");
    c.args(args);
    let out = output(c)?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).to_string())
    } else {
        Err(Error::Docker(format!(
            "docker {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        )))
    }
}

/// Docker daemon reachable?
pub fn check_daemon() -> Result<()> {
    docker(&["version", "--format", "{{.Server.Version}}"])
        .map(|_| ())
        .map_err(|e| {
            Error::Docker(format!(
                "the Docker daemon is not reachable ({e}); is docker running and may you use it?"
            ))
        })
}

/// Does a local image exist?
pub fn image_exists(image: &str) -> bool {
    let mut c = Command::new("docker");
    c.args(["image", "inspect", "--format", "{{.Id}}", image]);
    matches!(output(c), Ok(o) if o.status.success())
}

/// A container of a compose project.
#[derive(Debug, Clone)]
pub struct Container {
    /// Container id.
    pub id: String,
    /// Compose service.
    pub service: String,
    /// Compose project.
    pub project: String,
    /// `running`, `exited`, ...
    pub state: String,
    /// Human status, e.g. `Up 3 seconds (healthy)`.
    pub status: String,
}

impl Container {
    /// Health from the status text.
    pub fn health(&self) -> Option<&'static str> {
        if self.status.contains("(healthy)") {
            Some("healthy")
        } else if self.status.contains("(unhealthy)") {
            Some("unhealthy")
        } else if self.status.contains("(health: starting)") {
            Some("starting")
        } else {
            None
        }
    }
}

/// Containers with a compose project label; `project` filters to one project.
pub fn containers(project: Option<&str>) -> Result<Vec<Container>> {
    let filter = match project {
        Some(p) => format!("label=com.docker.compose.project={p}"),
        None => "label=com.docker.compose.project".to_string(),
    };
    let fmt = "{{.ID}}\t{{.Label \"com.docker.compose.service\"}}\t{{.Label \"com.docker.compose.project\"}}\t{{.State}}\t{{.Status}}";
    let out = docker(&[
        "ps",
        "-a",
        "--no-trunc",
        "--filter",
        &filter,
        "--format",
        fmt,
    ])?;
    Ok(out
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            (f.len() == 5).then(|| Container {
                id: f[0].into(),
                service: f[1].into(),
                project: f[2].into(),
                state: f[3].into(),
                status: f[4].into(),
            })
        })
        .collect())
}

/// Networks with a compose project label whose project starts with `prefix`: (name, project).
pub fn networks(prefix: &str) -> Result<Vec<(String, String)>> {
    let out = docker(&[
        "network",
        "ls",
        "--filter",
        "label=com.docker.compose.project",
        "--format",
        "{{.Name}}\t{{.Label \"com.docker.compose.project\"}}",
    ])?;
    Ok(out
        .lines()
        .filter_map(|l| l.split_once('\t'))
        .filter(|(_, p)| p.starts_with(prefix))
        .map(|(n, p)| (n.to_string(), p.to_string()))
        .collect())
}

/// Volumes with a compose project label whose project starts with `prefix`: (name, project).
pub fn volumes(prefix: &str) -> Result<Vec<(String, String)>> {
    let out = docker(&[
        "volume",
        "ls",
        "--filter",
        "label=com.docker.compose.project",
        "--format",
        "{{.Name}}\t{{.Label \"com.docker.compose.project\"}}",
    ])?;
    Ok(out
        .lines()
        .filter_map(|l| l.split_once('\t'))
        .filter(|(_, p)| p.starts_with(prefix))
        .map(|(n, p)| (n.to_string(), p.to_string()))
        .collect())
}

/// Run a child to completion with a deadline, checking `interrupted` every 20 ms (`bottle
/// start` waits on several short children in a row: a coarse poll adds up).
/// On deadline or interrupt the child is killed. Returns the exit code (None = killed).
pub fn wait_child(
    child: &mut std::process::Child,
    deadline: Option<Duration>,
    interrupted: &dyn Fn() -> bool,
) -> Result<Option<i32>> {
    let start = Instant::now();
    loop {
        match child.try_wait() {
            Ok(Some(st)) => return Ok(Some(st.code().unwrap_or(128 + 9))),
            Ok(None) => {}
            Err(e) => return Err(Error::Docker(format!("waiting for a child: {e}"))),
        }
        if interrupted() || deadline.is_some_and(|d| start.elapsed() > d) {
            let _ = child.kill();
            let _ = child.wait();
            return Ok(None);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Find the repository root (for `bottle build`): `$BOTTLE_REPO`, else walk up from the cwd
/// and from the binary looking for `images/` and `Cargo.toml`, else the compile-time path.
pub fn repo_root() -> Option<PathBuf> {
    let is_root = |p: &Path| {
        p.join("images").is_dir() && p.join("Cargo.toml").is_file() && p.join("crates").is_dir()
    };
    if let Some(r) = std::env::var_os("BOTTLE_REPO") {
        return Some(PathBuf::from(r));
    }
    let mut starts = Vec::new();
    if let Ok(c) = std::env::current_dir() {
        starts.push(c);
    }
    if let Ok(e) = std::env::current_exe() {
        starts.push(e);
    }
    for s in starts {
        for a in s.ancestors() {
            if is_root(a) {
                return Some(a.to_path_buf());
            }
        }
    }
    let compiled = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    is_root(&compiled).then(|| compiled.canonicalize().unwrap_or(compiled))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn compose_version_cache_answers_only_for_the_same_file() {
        let dir = tempfile::tempdir().unwrap();
        let bin = dir.path().join("docker-compose");
        std::fs::write(&bin, "#!/bin/sh\necho 1.29.2\n").unwrap();
        let key = file_key(&bin).unwrap();
        let text = format!("{key}\t1.29.2\n");
        assert_eq!(cached_version(&text, &key).as_deref(), Some("1.29.2"));
        // A link to it is the same file.
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&bin, &link).unwrap();
        assert_eq!(file_key(&link).unwrap(), key);
        // Rewritten (an upgrade): another size or mtime, so the cache no longer answers.
        std::fs::write(&bin, "#!/bin/sh\necho 2.24.6 # longer\n").unwrap();
        let key2 = file_key(&bin).unwrap();
        assert_ne!(key2, key);
        assert_eq!(cached_version(&text, &key2), None);
        // A key that is a prefix of the stored one, an empty or odd value: no answer.
        assert_eq!(cached_version(&format!("{key}7\t1.29.2\n"), &key), None);
        assert_eq!(cached_version(&format!("{key}\t\n"), &key), None);
        assert_eq!(cached_version(&format!("{key}\t1\t2\n"), &key), None);
        assert_eq!(cached_version("", &key), None);
        assert_eq!(file_key(&dir.path().join("missing")), None);
    }
}
