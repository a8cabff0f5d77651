//! The pre-receive hook side: `git receive-pack` runs this binary (through a link named
//! `pre-receive` in git-gate's hooks dir, or as `git-gate hook pre-receive`). It reads the
//! updates git parsed, hands them to the gate process over its unix socket together with the
//! quarantine location, prints the gate's messages (they reach the client as `remote:`
//! lines) and exits 0 to accept or 1 to refuse every ref.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::time::Duration;

use crate::hook_protocol::{HookReply, HookRequest, ENV_PUSH_ID, ENV_SOCKET};

fn fail(msg: &str) -> i32 {
    eprintln!("git-gate: {msg}");
    1
}

/// Runs the hook; returns the process exit code.
pub fn run_pre_receive() -> i32 {
    let (Some(socket), Some(push_id)) = (
        std::env::var_os(ENV_SOCKET),
        std::env::var(ENV_PUSH_ID).ok(),
    ) else {
        return fail("hook started outside git-gate");
    };
    // Absent when the push brought no objects (delete-only).
    let mut object_dir = std::env::var_os("GIT_OBJECT_DIRECTORY")
        .map(PathBuf::from)
        .unwrap_or_default();
    if !object_dir.as_os_str().is_empty() && object_dir.is_relative() {
        match std::env::current_dir() {
            Ok(cwd) => object_dir = cwd.join(object_dir),
            Err(_) => return fail("cannot resolve quarantine directory"),
        }
    }
    let mut input = String::new();
    if std::io::stdin()
        .take(64 << 20)
        .read_to_string(&mut input)
        .is_err()
    {
        return fail("cannot read updates");
    }
    let mut updates = Vec::new();
    for line in input.lines() {
        let mut it = line.splitn(3, ' ');
        match (it.next(), it.next(), it.next()) {
            (Some(o), Some(n), Some(r)) => {
                updates.push((o.to_string(), n.to_string(), r.to_string()))
            }
            _ => return fail("malformed update line"),
        }
    }
    let count: usize = std::env::var("GIT_PUSH_OPTION_COUNT")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let push_options = (0..count)
        .map(|i| std::env::var(format!("GIT_PUSH_OPTION_{i}")).unwrap_or_default())
        .collect();
    let req = HookRequest {
        push_id,
        updates,
        object_dir: object_dir.display().to_string(),
        push_options,
    };
    let Ok(mut stream) = UnixStream::connect(&socket) else {
        return fail("cannot reach the gate");
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(1800)));
    let Ok(mut text) = serde_json::to_string(&req) else {
        return fail("cannot encode request");
    };
    text.push('\n');
    if stream.write_all(text.as_bytes()).is_err() {
        return fail("cannot reach the gate");
    }
    let mut line = String::new();
    if BufReader::new(stream.take(16 << 20))
        .read_line(&mut line)
        .is_err()
    {
        return fail("no answer from the gate");
    }
    let Ok(reply) = serde_json::from_str::<HookReply>(&line) else {
        return fail("bad answer from the gate");
    };
    let mut err = std::io::stderr().lock();
    for m in &reply.messages {
        let _ = writeln!(err, "{m}");
    }
    if reply.accept {
        0
    } else {
        1
    }
}
