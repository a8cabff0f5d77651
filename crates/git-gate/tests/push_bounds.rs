//! Bounded pushes: at most `--max-concurrent-pushes` are judged at once (the next one is
//! refused with a reason git prints), and push bodies past `--push-spill-bytes` go to an
//! unlinked temp file under `<data-dir>/spill`, so parallel large pushes do not grow the
//! gate's memory. Runs the real binary and measures its peak RSS (`VmHWM`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
use common::*;

use std::io::Write;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const MIB: usize = 1 << 20;
/// Parallel pushes, each of this many bytes of incompressible data.
const N: usize = 4;
const PUSH_BYTES: usize = 100 * MIB;
/// Peak RSS the gate must stay under while N such pushes run (N x 100 MiB held in memory
/// would be over 400 MiB).
const RSS_BOUND_KIB: u64 = 150 * 1024;

fn proc_status_kib(pid: u32, key: &str) -> u64 {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

/// Open descriptors of the gate that point into its spill directory.
fn spill_fds(env: &Env) -> usize {
    let spill = env.data_dir.join("spill");
    std::fs::read_dir(format!("/proc/{}/fd", env.pid()))
        .map(|d| {
            d.filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
                .filter(|t| t.starts_with(&spill))
                .count()
        })
        .unwrap_or(0)
}

fn spill_dir_entries(env: &Env) -> usize {
    std::fs::read_dir(env.data_dir.join("spill"))
        .map(|d| d.count())
        .unwrap_or(0)
}

fn in_flight(env: &Env) -> Option<u64> {
    let (_, _, body) = http(env.admin_addr(), "GET", "/metrics", &[], b"");
    String::from_utf8_lossy(&body)
        .lines()
        .find_map(|l| l.strip_prefix("git_gate_pushes_in_flight "))
        .and_then(|v| v.trim().parse().ok())
}

/// Waits (up to 60 s) for a condition the gate reaches on its own.
fn wait_for(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Fast incompressible bytes (xorshift).
fn random_file(path: &Path, len: usize, seed: u64) {
    let mut f = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    let mut x = seed | 1;
    let mut buf = vec![0u8; MIB];
    for _ in 0..len / MIB {
        for c in buf.chunks_exact_mut(8) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            c.copy_from_slice(&x.to_le_bytes());
        }
        f.write_all(&buf).unwrap();
    }
    f.flush().unwrap();
}

fn setup() -> (Env, Vec<PathBuf>) {
    let mut env = Env::new();
    let mut yaml = String::from("git:\n");
    let mut ups = Vec::new();
    for i in 0..N {
        let up = env.make_upstream(&format!("demo{i}"));
        yaml.push_str(&format!(
            "  - name: demo{i}\n    upstream: file://{}\n{AGENT_RULES}    max_pack_bytes: 314572800\n    max_object_bytes: 209715200\n",
            up.display()
        ));
        ups.push(up);
    }
    let small = env.make_upstream("small");
    yaml.push_str(&format!(
        "  - name: small\n    upstream: file://{}\n{AGENT_RULES}    max_pack_bytes: 10485760\n",
        small.display()
    ));
    ups.push(small);
    env.write_routes(&yaml);
    env.extra_args = vec![
        "--max-concurrent-pushes".into(),
        N.to_string(),
        "--admin-listen".into(),
        "127.0.0.1:0".into(),
    ];
    env.start();
    (env, ups)
}

/// A receive-pack POST that sends `first` bytes of body and then stalls, holding its slot.
fn stalled_push(env: &Env, repo: &str, first: usize) -> TcpStream {
    let mut s = TcpStream::connect(env.addr.unwrap()).unwrap();
    let head = format!(
        "POST /{repo}.git/git-receive-pack HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-git-receive-pack-request\r\nTransfer-Encoding: chunked\r\n\r\n"
    );
    s.write_all(head.as_bytes()).unwrap();
    if first > 0 {
        s.write_all(format!("{first:x}\r\n").as_bytes()).unwrap();
        s.write_all(&vec![b'x'; first]).unwrap();
        s.write_all(b"\r\n").unwrap();
    }
    s.flush().unwrap();
    s
}

fn commit_random(env: &Env, work: &Path, name: &str, len: usize, seed: u64) -> String {
    random_file(&work.join(name), len, seed);
    env.git_ok(work, &["add", name]);
    env.git_ok(work, &["commit", "-q", "-m", name]);
    env.git_ok(work, &["rev-parse", "HEAD"])
}

#[test]
fn concurrency_cap_spill_and_bounded_memory() {
    let started = Instant::now();
    let (env, ups) = setup();
    let works: Vec<PathBuf> = (0..N)
        .map(|i| {
            let w = env.clone_work(&format!("demo{i}"), &format!("w{i}"));
            // Level-0 zlib on the client: the test's own compression time is not the point.
            env.git_ok(&w, &["config", "core.compression", "0"]);
            env.git_ok(&w, &["checkout", "-q", "-b", "agent/big"]);
            w
        })
        .collect();

    // 1. N stalled pushes hold every slot; the first has sent more than the spill threshold.
    let stalled: Vec<TcpStream> = (0..N)
        .map(|i| stalled_push(&env, &format!("demo{i}"), if i == 0 { 9 * MIB } else { 10 }))
        .collect();
    wait_for("all push slots taken", || in_flight(&env) == Some(N as u64));
    wait_for("the first body to spill", || spill_fds(&env) == 1);
    assert_eq!(spill_dir_entries(&env), 0, "spill files must be unlinked");

    // Over the cap, the stock client is told at the advertisement...
    let small_commit = env.commit_file(&works[0], "s.txt", "s\n", "small");
    let before = upstream_refs(&ups[0]);
    let (ok, out) = env.push(&works[0], &["origin", "agent/big"]);
    assert!(!ok, "{out}");
    assert!(
        out.contains("too many pushes in progress (limit 4)"),
        "{out}"
    );
    // ...and a client that skips it gets every ref refused in the report.
    let main = upstream_ref(&ups[0], "refs/heads/main").unwrap();
    let pack = make_pack(&env, &works[0], &[&small_commit, &format!("^{main}")]);
    let body = push_body(
        &[(ZERO, &small_commit, b"refs/heads/agent/big")],
        CAPS,
        None,
        &pack,
    );
    let (lines, msgs) = raw_push(env.addr.unwrap(), "demo0", &body);
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("ng refs/heads/agent/big too many pushes in progress")),
        "{lines:?} {msgs}"
    );
    assert_eq!(upstream_refs(&ups[0]), before);
    assert!(!upstream_has(&ups[0], &small_commit));

    // Hanging up frees the slots and the spilled body.
    drop(stalled);
    wait_for("slots freed", || in_flight(&env) == Some(0));
    wait_for("spill released", || spill_fds(&env) == 0);
    let (ok, out) = env.push(&works[0], &["origin", "agent/big"]);
    assert!(ok, "{out}");
    assert_eq!(
        upstream_ref(&ups[0], "refs/heads/agent/big"),
        Some(small_commit)
    );

    // 2. N parallel pushes of PUSH_BYTES of incompressible data each.
    let tips: Vec<String> = works
        .iter()
        .enumerate()
        .map(|(i, w)| commit_random(&env, w, "blob.bin", PUSH_BYTES, 0x9e37_79b9 + i as u64))
        .collect();
    let hwm_before = proc_status_kib(env.pid(), "VmHWM:");
    let pushes: Vec<_> = works
        .iter()
        .map(|w| {
            let cmd = env.git_cmd(w, &["push", "-q", "origin", "agent/big"]);
            std::thread::spawn(move || run_timeout(cmd, None, 300))
        })
        .collect();
    let mut max_rss = 0;
    let mut max_spill = 0;
    while !pushes.iter().all(|p| p.is_finished()) {
        max_rss = max_rss.max(proc_status_kib(env.pid(), "VmRSS:"));
        max_spill = max_spill.max(spill_fds(&env));
        std::thread::sleep(Duration::from_millis(50));
    }
    for p in pushes {
        let o = p.join().unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    for (up, tip) in ups.iter().zip(&tips) {
        assert_eq!(upstream_ref(up, "refs/heads/agent/big").as_ref(), Some(tip));
    }
    let hwm = proc_status_kib(env.pid(), "VmHWM:");
    eprintln!(
        "push_bounds: {N} x {} MiB: VmHWM {} KiB before, {hwm} KiB after; max sampled VmRSS {max_rss} KiB; max spill files open {max_spill}",
        PUSH_BYTES / MIB,
        hwm_before
    );
    assert!(
        hwm < RSS_BOUND_KIB,
        "peak RSS {hwm} KiB over {RSS_BOUND_KIB} KiB"
    );
    assert!(max_spill >= 1, "large bodies must have spilled");
    wait_for("spill released", || spill_fds(&env) == 0);
    assert_eq!(spill_dir_entries(&env), 0);

    // 3. The size cap still holds on a spilled body (12 MiB > 10 MiB max_pack_bytes).
    let small = env.clone_work("small", "ws");
    env.git_ok(&small, &["config", "core.compression", "0"]);
    env.git_ok(&small, &["checkout", "-q", "-b", "agent/big"]);
    let big = commit_random(&env, &small, "b.bin", 12 * MIB, 7);
    let before = upstream_refs(&ups[N]);
    let (ok, out) = env.push(&small, &["origin", "agent/big"]);
    assert!(!ok, "{out}");
    assert!(out.contains("pack too large"), "{out}");
    assert_eq!(upstream_refs(&ups[N]), before);
    assert!(!upstream_has(&ups[N], &big));
    wait_for("spill released", || spill_fds(&env) == 0);
    assert_eq!(spill_dir_entries(&env), 0);
    eprintln!("push_bounds: total {:?}", started.elapsed());
}
