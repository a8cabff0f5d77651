//! The listener limits hold for git-gate (bottle-core `serve`): connection cap, head caps,
//! header-read and idle timeouts, bounded drain. Real TCP to the real binary; the upstream's
//! refs and the audit log prove what never arrived.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use common::*;

/// A generous bound for "git-gate closed it": a liveness check, not a speed assertion.
const LIVENESS: Duration = Duration::from_secs(10);

fn started(extra: &[&str]) -> (Env, std::path::PathBuf) {
    let mut env = Env::new();
    let up = env.make_upstream("demo");
    env.write_routes(&routes(&up, AGENT_RULES));
    env.extra_args.extend(extra.iter().map(|s| s.to_string()));
    env.start();
    (env, up)
}

fn addr(env: &Env) -> SocketAddr {
    env.addr.unwrap()
}

/// Everything git-gate sends until it closes the connection; panics if it stays open.
fn read_to_close(s: &mut TcpStream) -> String {
    s.set_read_timeout(Some(LIVENESS)).unwrap();
    let mut out = Vec::new();
    let mut b = [0u8; 4096];
    loop {
        match s.read(&mut b) {
            Ok(0) => break,
            Ok(n) => out.extend_from_slice(&b[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                panic!(
                    "git-gate kept the connection open: {}",
                    String::from_utf8_lossy(&out)
                )
            }
            Err(_) => break,
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn advertise(extra: &str) -> String {
    format!("GET /demo.git/info/refs?service=git-upload-pack HTTP/1.1\r\nHost: gate\r\n{extra}\r\n")
}

fn count_events(env: &Env, event: &str) -> usize {
    env.audit_lines()
        .iter()
        .filter(|a| a["event"] == event)
        .count()
}

fn sigterm(env: &Env) {
    let st = std::process::Command::new("kill")
        .args(["-TERM", &env.pid().to_string()])
        .status()
        .unwrap();
    assert!(st.success());
}

fn wait_exit(env: &mut Env) -> std::process::ExitStatus {
    let mut child = env.gate.take().unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(s) = child.try_wait().unwrap() {
            return s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("git-gate did not exit after SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn over_the_connection_cap_the_next_connection_gets_a_503() {
    let (env, _up) = started(&["--max-connections", "2", "--admin-listen", "127.0.0.1:0"]);
    let held = [
        TcpStream::connect(addr(&env)).unwrap(),
        TcpStream::connect(addr(&env)).unwrap(),
    ];
    let mut extra = TcpStream::connect(addr(&env)).unwrap();
    extra.write_all(advertise("").as_bytes()).unwrap();
    let text = read_to_close(&mut extra);
    assert!(text.starts_with("HTTP/1.1 503 "), "{text}");
    assert!(
        text.contains("\r\nX-Bottle-Blocked: git-gate\r\n"),
        "{text}"
    );
    assert!(
        text.ends_with(
            "\r\n\r\nblocked by git-gate: too many connections (limit 2); retry later\n"
        ),
        "{text}"
    );
    assert_eq!(count_events(&env, "advertise"), 0);
    let (_, _, metrics) = http(env.admin_addr(), "GET", "/metrics", &[], b"");
    let metrics = String::from_utf8_lossy(&metrics).into_owned();
    assert!(
        metrics.contains(
            "git_gate_requests_total{endpoint=\"connection\",result=\"connection_limit\"} 1"
        ),
        "{metrics}"
    );
    // once the cap's connections go, git-gate serves again
    drop(held);
    let end = Instant::now() + LIVENESS;
    loop {
        let mut s = TcpStream::connect(addr(&env)).unwrap();
        let _ = s.write_all(advertise("Connection: close\r\n").as_bytes());
        let text = read_to_close(&mut s);
        if text.starts_with("HTTP/1.1 200 ") {
            break;
        }
        assert!(text.starts_with("HTTP/1.1 503 "), "{text}");
        assert!(Instant::now() < end, "git-gate never served again");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(count_events(&env, "advertise"), 1);
}

/// A receive-pack request body creating `refs/heads/agent/<branch>` (one commit on main).
fn push_request(env: &Env, up: &std::path::Path, work: &std::path::Path, branch: &str) -> Vec<u8> {
    let main = upstream_ref(up, "refs/heads/main").unwrap();
    env.git_ok(work, &["checkout", "-q", "-B", branch, &main]);
    let new = env.commit_file(work, "f.txt", branch, branch);
    let pack = make_pack(env, work, &[&new, &format!("^{main}")]);
    let name = format!("refs/heads/agent/{branch}");
    push_body(&[(ZERO, &new, name.as_bytes())], CAPS, None, &pack)
}

/// POSTs a receive-pack `body` with `extra` header lines; what git-gate answered.
fn post_push(env: &Env, body: &[u8], extra: &str) -> String {
    let mut s = TcpStream::connect(addr(env)).unwrap();
    let head = format!(
        "POST /demo.git/git-receive-pack HTTP/1.1\r\nHost: gate\r\nConnection: close\r\nContent-Type: application/x-git-receive-pack-request\r\nContent-Length: {}\r\n{extra}\r\n",
        body.len()
    );
    let _ = s.write_all(head.as_bytes());
    let _ = s.write_all(body);
    read_to_close(&mut s)
}

#[test]
fn a_head_over_the_header_caps_gets_431_and_nothing_reaches_the_upstream() {
    let (env, up) = started(&["--max-header-bytes", "16384", "--max-headers", "20"]);
    let work = env.clone_work("demo", "w");
    let small = push_request(&env, &up, &work, "small");
    let big = push_request(&env, &up, &work, "big");
    let many = push_request(&env, &up, &work, "many");
    // control: a push with a padded head under the caps lands
    let text = post_push(&env, &small, &format!("X-Pad: {}\r\n", "a".repeat(4000)));
    assert!(text.starts_with("HTTP/1.1 200 "), "{text}");
    assert!(upstream_ref(&up, "refs/heads/agent/small").is_some());
    let before = upstream_refs(&up);
    let audited = env.audit_lines().len();
    // 20 000 bytes of one header: under hyper's own default cap, over ours
    let text = post_push(&env, &big, &format!("X-Pad: {}\r\n", "a".repeat(20_000)));
    assert!(text.starts_with("HTTP/1.1 431 "), "{text}");
    // 40 small header fields: over --max-headers 20
    let fields: String = (0..40).map(|i| format!("X-H{i}: v\r\n")).collect();
    let text = post_push(&env, &many, &fields);
    assert!(text.starts_with("HTTP/1.1 431 "), "{text}");
    assert_eq!(upstream_refs(&up), before);
    assert!(upstream_ref(&up, "refs/heads/agent/big").is_none());
    assert!(upstream_ref(&up, "refs/heads/agent/many").is_none());
    assert_eq!(env.audit_lines().len(), audited, "{:?}", env.audit_lines());
}

#[test]
fn a_slowloris_head_is_cut_off_after_the_header_timeout() {
    let (env, _up) = started(&["--header-timeout-secs", "1"]);
    let mut s = TcpStream::connect(addr(&env)).unwrap();
    s.write_all(b"GET /demo.git/info/refs?service=git-upload-pack HTTP/1.1\r\n")
        .unwrap();
    s.set_read_timeout(Some(Duration::from_millis(10))).unwrap();
    // one header line every 200 ms: never silent, never complete
    let end = Instant::now() + LIVENESS;
    let mut i = 0;
    loop {
        assert!(
            Instant::now() < end,
            "git-gate let a head trickle in for {LIVENESS:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
        if s.write_all(format!("X-Drip-{i}: a\r\n").as_bytes())
            .is_err()
        {
            break;
        }
        i += 1;
        let mut b = [0u8; 512];
        match s.read(&mut b) {
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            // closed, reset, or an error response before the close
            _ => break,
        }
    }
    assert_eq!(count_events(&env, "advertise"), 0);
}

#[test]
fn a_silent_kept_alive_connection_is_closed_after_the_idle_timeout() {
    // header timeout at its 30 s default: only the idle timeout can close it within LIVENESS
    let (env, _up) = started(&["--idle-timeout-secs", "1"]);
    let mut s = TcpStream::connect(addr(&env)).unwrap();
    s.write_all(advertise("").as_bytes()).unwrap();
    let text = read_to_close(&mut s);
    assert!(text.starts_with("HTTP/1.1 200 "), "{text}");
    assert_eq!(count_events(&env, "advertise"), 1);
}

/// Sends a fetch request head and half its 4-byte body; git-gate's handler waits for the rest.
fn half_a_fetch(env: &Env) -> TcpStream {
    // an advertisement first, so the mirror is ready and the fetch can succeed
    let (status, _, _) = http(
        addr(env),
        "GET",
        "/demo.git/info/refs?service=git-upload-pack",
        &[],
        b"",
    );
    assert_eq!(status, 200);
    let mut s = TcpStream::connect(addr(env)).unwrap();
    s.write_all(b"POST /demo.git/git-upload-pack HTTP/1.1\r\nHost: gate\r\nContent-Type: application/x-git-upload-pack-request\r\nContent-Length: 4\r\n\r\n00")
        .unwrap();
    // Lets git-gate read the head before SIGTERM: a too-short wait fails the test (the idle
    // connection is closed at once), it cannot make it pass.
    std::thread::sleep(Duration::from_secs(1));
    s
}

#[test]
fn sigterm_lets_an_in_flight_request_finish_within_the_drain_time() {
    let (mut env, _up) = started(&["--drain-secs", "30"]);
    let mut s = half_a_fetch(&env);
    sigterm(&env);
    std::thread::sleep(Duration::from_millis(500));
    s.write_all(b"00").unwrap();
    let text = read_to_close(&mut s);
    assert!(text.starts_with("HTTP/1.1 200 "), "{text}");
    assert!(wait_exit(&mut env).success());
    assert!(TcpStream::connect(addr(&env)).is_err());
    assert_eq!(count_events(&env, "fetch"), 1, "{:?}", env.audit_lines());
}

#[test]
fn the_drain_time_bounds_a_request_that_never_finishes() {
    let (mut env, _up) = started(&["--drain-secs", "1"]);
    let mut s = half_a_fetch(&env);
    sigterm(&env);
    assert!(wait_exit(&mut env).success());
    assert_eq!(read_to_close(&mut s), "");
}

/// SIGTERM as soon as the port is announced drains and exits 0: the handlers are installed
/// before the `listening` line (they were installed later, and such a SIGTERM killed it).
#[test]
fn sigterm_right_after_start_exits_cleanly() {
    for _ in 0..3 {
        let (mut env, _up) = started(&[]);
        sigterm(&env);
        assert!(wait_exit(&mut env).success());
    }
}
