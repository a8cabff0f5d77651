//! Running the real `git`: a clean environment (no user/system config, no inherited GIT_*
//! variables, no tokens of other repositories), bounded run time, killed on drop.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::process::Command;

use crate::GateError;

/// How to run git for this process.
#[derive(Debug, Clone)]
pub struct GitRunner {
    /// The git executable (`git` looked up on PATH by default).
    pub git: PathBuf,
    /// PATH handed to git (it needs to find its helpers and `ssh`).
    pub path_env: OsString,
    /// HOME for git (inside the data dir; holds nothing).
    pub home: PathBuf,
}

/// Output of a finished git command.
#[derive(Debug)]
pub struct GitOutput {
    pub success: bool,
    pub code: Option<i32>,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

impl GitOutput {
    pub fn stdout_str(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }
    pub fn stderr_str(&self) -> String {
        String::from_utf8_lossy(&self.stderr).into_owned()
    }
}

impl GitRunner {
    pub fn new(home: PathBuf) -> GitRunner {
        GitRunner {
            git: PathBuf::from("git"),
            path_env: std::env::var_os("PATH")
                .unwrap_or_else(|| OsString::from("/usr/local/bin:/usr/bin:/bin")),
            home,
        }
    }

    /// A `git` command on `mirror` that also sees the objects of a push's quarantine (where
    /// git's receive-pack put them before the hook decides), when there is one.
    pub fn quarantine_command(&self, mirror: &Path, quarantine: Option<&Path>) -> Command {
        let mut cmd = self.command(Some(mirror));
        if let Some(q) = quarantine {
            cmd.env("GIT_OBJECT_DIRECTORY", q);
            cmd.env("GIT_ALTERNATE_OBJECT_DIRECTORIES", mirror.join("objects"));
        }
        cmd
    }

    /// A `git` command with a scrubbed environment. `GIT_CONFIG_*` slots are left for the
    /// caller (see `upstream_access::Upstream::apply`).
    pub fn command(&self, git_dir: Option<&Path>) -> Command {
        let mut cmd = Command::new(&self.git);
        cmd.env_clear()
            .env("PATH", &self.path_env)
            .env("HOME", &self.home)
            .env("LANG", "C")
            .env("LC_ALL", "C")
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .env("GIT_TERMINAL_PROMPT", "0")
            .env("GIT_LFS_SKIP_SMUDGE", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        if let Some(dir) = git_dir {
            cmd.env("GIT_DIR", dir);
            cmd.current_dir(dir);
        }
        cmd
    }
}

/// Runs `cmd` to completion with `input` on stdin, bounded by `timeout`.
pub async fn run(
    mut cmd: Command,
    input: Option<&[u8]>,
    timeout: Duration,
) -> Result<GitOutput, GateError> {
    if input.is_some() {
        cmd.stdin(Stdio::piped());
    }
    let mut child = cmd.spawn().map_err(|e| GateError::Spawn(e.to_string()))?;
    let stdin = child.stdin.take();
    let input = input.map(<[u8]>::to_vec);
    let fut = async move {
        let writer = async move {
            if let (Some(mut s), Some(data)) = (stdin, input) {
                // The child may exit without reading everything; that is its answer.
                let _ = s.write_all(&data).await;
                let _ = s.shutdown().await;
            }
        };
        let (_, out) = tokio::join!(writer, child.wait_with_output());
        out
    };
    match tokio::time::timeout(timeout, fut).await {
        Ok(Ok(out)) => Ok(GitOutput {
            success: out.status.success(),
            code: out.status.code(),
            stdout: out.stdout,
            stderr: out.stderr,
        }),
        Ok(Err(e)) => Err(GateError::Spawn(e.to_string())),
        Err(_) => Err(GateError::Timeout),
    }
}

/// Last non-empty lines of git's stderr, for messages (never contains credentials: they are
/// only ever passed in the environment).
pub fn tail_lines(stderr: &[u8], n: usize) -> Vec<String> {
    let text = String::from_utf8_lossy(stderr);
    let lines: Vec<String> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect();
    let start = lines.len().saturating_sub(n);
    lines[start..].to_vec()
}
