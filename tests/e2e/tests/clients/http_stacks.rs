//! HTTP stacks through the bottle (issue 16): python requests, python httpx with HTTP/2, node
//! 18 fetch (undici's ProxyAgent), Go net/http, SSE token streaming (httpx and fetch) and
//! WebSocket over HTTP/1.1 (python websockets on a CONNECT tunnel opened by the script), all
//! to the echo origin on a route that injects a bearer credential; and each of them pointed at
//! a name the bottle does not allow. Each checks what a user cares about: exit 0, the bytes
//! that arrived are the bytes sent (`/download` and `/upload` checksums, WebSocket echo), the
//! credential reached the origin (its request log) and never the client (the harness's final
//! check), a refusal reads as one and nothing reached the origin. The clients are the scripts
//! `http_stacks_*` beside this file, written into the agent and run there.

use std::time::Duration;

use bottle_e2e::Checks;
use serde_json::Value;

use super::harness::{field, sha256_hex, Harness, Row};

/// The route's host (an echo origin name; no other row routes it).
const HOST: &str = "api.e2e.test";
/// A name pinned to the echo origin (its certificate covers it) that the bottle does not allow.
const REFUSED: &str = "denied.e2e.test";
/// The route's credential variable.
const TOKEN: &str = "E2E_HTTP_TOKEN";
/// Bytes of each `/download`.
const DOWNLOAD: usize = 4 * 1024 * 1024 + 13;
/// SSE: events per stream and the origin's pause between them.
const SSE_EVENTS: usize = 5;
const SSE_INTERVAL_MS: u64 = 300;
/// Where the scripts go in the agent.
const DIR: &str = "/tmp/http-stacks";

const REQUESTS_PY: &str = include_str!("http_stacks_requests.py");
const HTTPX_PY: &str = include_str!("http_stacks_httpx.py");
const FETCH_JS: &str = include_str!("http_stacks_fetch.js");
const GO_MAIN: &str = include_str!("http_stacks_go.go");
const WS_PY: &str = include_str!("http_stacks_ws.py");

/// The rows of this module.
pub fn rows() -> Vec<Row> {
    vec![Row {
        name: "http-stacks",
        by_default: true,
        allow: &[],
        routes: &["{host: api.e2e.test, auth: {scheme: bearer, token_from: E2E_HTTP_TOKEN}}"],
        git: &[],
        secrets: &[TOKEN],
        run: http_stacks,
    }]
}

fn http_stacks(h: &Harness, c: &mut Checks) {
    requests(h, c);
    httpx(h, c);
    fetch(h, c);
    go(h, c);
    websocket(h, c);
    let reached = origin_requests(h, REFUSED, "");
    c.check(
        "http refused host: no request of any client reached the origin",
        reached.is_empty(),
        || format!("{} requests for {REFUSED} at the origin", reached.len()),
    );
}

/// Writes `file` as `DIR/name` in the agent and runs `cmd` there (in `DIR`).
fn run_script(h: &Harness, name: &str, file: &str, cmd: &str) -> bottle_e2e::Run {
    h.run_in_agent(&format!(
        "set -e; mkdir -p {DIR} && cd {DIR}\ncat > {name} <<'HTTP_STACKS_EOF'\n{file}\nHTTP_STACKS_EOF\n{cmd}"
    ))
}

/// SHA-256 of what the echo origin's `/download?bytes=n` sends (byte i = i % 251).
fn download_sha256(n: usize) -> String {
    let bytes: Vec<u8> = (0..n).map(|i| (i % 251) as u8).collect();
    sha256_hex(&bytes)
}

/// The echo origin's logged requests to `host` whose query names client `client` (`c=...`).
fn origin_requests(h: &Harness, host: &str, client: &str) -> Vec<Value> {
    let tag = format!("c={client}");
    h.echo
        .logs()
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| {
            v["authority"].as_str().is_some_and(|a| a.starts_with(host))
                && (client.is_empty()
                    || v["query"]
                        .as_str()
                        .is_some_and(|q| q.split('&').any(|p| p == tag)))
        })
        .collect()
}

/// Every value of header `name` in a logged request.
fn header_values(v: &Value, name: &str) -> Vec<String> {
    v["headers"]
        .as_array()
        .map(|hs| {
            hs.iter()
                .filter(|h| h[0].as_str().is_some_and(|n| n.eq_ignore_ascii_case(name)))
                .filter_map(|h| h[1].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// The client's requests reached the origin (at least `min` of them), each with exactly the
/// route's credential (compared by hash, never printed).
fn credential_arrived(h: &Harness, c: &mut Checks, label: &str, client: &str, min: usize) {
    let want = sha256_hex(h.bearer(TOKEN).as_bytes());
    let reqs = origin_requests(h, HOST, client);
    let bad = reqs
        .iter()
        .filter(|v| {
            let a = header_values(v, "authorization");
            a.len() != 1 || sha256_hex(a[0].as_bytes()) != want
        })
        .count();
    let versions: Vec<&str> = reqs.iter().filter_map(|v| v["version"].as_str()).collect();
    eprintln!(
        "  {label}: origin got {} requests ({versions:?})",
        reqs.len()
    );
    c.check(
        &format!(
            "{label}: egress injected the route's credential into every request the origin got"
        ),
        reqs.len() >= min && bad == 0,
        || {
            format!(
                "{} requests (want >= {min}), {bad} without exactly the credential",
                reqs.len()
            )
        },
    );
}

/// The refusal the client showed names pipelock's reason and the fix.
fn check_refused(c: &mut Checks, label: &str, out: &str, show: impl FnOnce() -> String) {
    let refused = field(out, "refused");
    eprintln!("  {label} refused host: {refused}");
    c.check(
        &format!("{label}: a host the bottle does not allow is refused with pipelock's reason"),
        refused.contains(&format!("host not allowed: {REFUSED}"))
            && refused.contains(&format!("bottle allow {REFUSED}")),
        show,
    );
}

/// GET `/download` and POST `/upload` checks shared by the clients.
fn check_bytes(c: &mut Checks, label: &str, out: &str, show: impl Fn() -> String) {
    let want = download_sha256(DOWNLOAD);
    c.check(
        &format!("{label}: GET /download is 200 with the origin's bytes (sha256)"),
        field(out, "get_status") == "200" && field(out, "get_sha") == want,
        &show,
    );
    let sent = field(out, "post_sent_sha");
    c.check(
        &format!("{label}: POST /upload is 200 and the origin got the body intact (sha256)"),
        field(out, "post_status") == "200"
            && !sent.is_empty()
            && field(out, "post_origin_sha") == sent,
        &show,
    );
}

/// SSE: the events came in order, spread over the stream (not all at its end), and the first
/// event of a stream whose second one comes ten minutes later arrived (nothing buffers).
fn check_sse(c: &mut Checks, label: &str, out: &str, prefix: &str, show: impl Fn() -> String) {
    let want: Vec<String> = (0..SSE_EVENTS).map(|i| format!("event-{i}")).collect();
    let events = field(out, &format!("{prefix}_events"));
    let arrivals: Vec<f64> = field(out, &format!("{prefix}_arrivals_ms"))
        .split(',')
        .filter_map(|t| t.parse().ok())
        .collect();
    let end: f64 = field(out, &format!("{prefix}_end_ms"))
        .parse()
        .unwrap_or(0.0);
    let gaps: Vec<f64> = arrivals.windows(2).map(|w| w[1] - w[0]).collect();
    eprintln!(
        "  {label}: origin sends an event every {SSE_INTERVAL_MS} ms; first event at {:?} ms, \
         gaps {gaps:?} ms, stream ended at {end} ms; held stream's first event at {} ms",
        arrivals.first(),
        field(out, &format!("{prefix}_held_first_ms"))
    );
    c.check(
        &format!("{label}: all events arrived, in order"),
        events == want.join(",") && arrivals.len() == SSE_EVENTS,
        &show,
    );
    // The origin sleeps (n-1) intervals between the first and the last event: arrivals spread
    // by less than one interval would mean something held them and let them go together.
    c.check(
        &format!("{label}: events arrived one by one, the first well before the stream ended"),
        arrivals.len() == SSE_EVENTS
            && arrivals[SSE_EVENTS - 1] - arrivals[0] >= SSE_INTERVAL_MS as f64
            && end - arrivals[0] >= SSE_INTERVAL_MS as f64,
        &show,
    );
    c.check(
        &format!("{label}: the first event arrived while the next was ten minutes away"),
        field(out, &format!("{prefix}_held_first")) == "event-0",
        &show,
    );
}

fn requests(h: &Harness, c: &mut Checks) {
    let r = run_script(
        h,
        "req_client.py",
        REQUESTS_PY,
        &format!("python3 req_client.py {HOST} {REFUSED} {DOWNLOAD}"),
    );
    let out = r.stdout.clone();
    let show = || r.all();
    eprintln!("  requests {}", field(&out, "version"));
    c.check("requests: the script exits 0", r.code == 0, show);
    check_bytes(c, "requests", &out, show);
    c.check(
        "requests: /reflect answered and the origin saw exactly one credential (egress's)",
        field(&out, "reflect_status") == "200" && field(&out, "reflect_count") == "1",
        show,
    );
    check_refused(c, "requests", &out, show);
    credential_arrived(h, c, "requests", "requests", 3);
}

fn httpx(h: &Harness, c: &mut Checks) {
    let r = run_script(
        h,
        "httpx_client.py",
        HTTPX_PY,
        &format!(
            "python3 httpx_client.py {HOST} {REFUSED} {DOWNLOAD} {SSE_EVENTS} {SSE_INTERVAL_MS}"
        ),
    );
    let out = r.stdout.clone();
    let show = || r.all();
    eprintln!("  httpx {}", field(&out, "version"));
    c.check("httpx: the script exits 0", r.code == 0, show);
    c.check(
        "httpx: http2=True negotiated HTTP/2 with pipelock (r.http_version)",
        field(&out, "get_http_version") == "HTTP/2" && field(&out, "post_http_version") == "HTTP/2",
        show,
    );
    check_bytes(c, "httpx h2", &out, show);
    check_refused(c, "httpx", &out, show);
    for (prefix, version) in [("sse_h1", "HTTP/1.1"), ("sse_h2", "HTTP/2")] {
        let label = format!("SSE httpx {version}");
        c.check(
            &format!("{label}: text/event-stream over {version}"),
            field(&out, &format!("{prefix}_http_version")) == version
                && field(&out, &format!("{prefix}_content_type")).starts_with("text/event-stream"),
            show,
        );
        check_sse(c, &label, &out, prefix, show);
    }
    credential_arrived(h, c, "httpx", "httpx", 2);
    credential_arrived(h, c, "SSE httpx HTTP/1.1", "httpx-sse_h1", 1);
    credential_arrived(h, c, "SSE httpx HTTP/2", "httpx-sse_h2", 1);
}

fn fetch(h: &Harness, c: &mut Checks) {
    let r = run_script(
        h,
        "fetch.js",
        FETCH_JS,
        &format!("node fetch.js {HOST} {REFUSED} {DOWNLOAD} {SSE_EVENTS} {SSE_INTERVAL_MS}"),
    );
    let out = r.stdout.clone();
    let show = || r.all();
    eprintln!(
        "  node {} fetch, undici {} ProxyAgent",
        field(&out, "node"),
        field(&out, "undici")
    );
    c.check("node fetch: the script exits 0", r.code == 0, show);
    check_bytes(c, "node fetch", &out, show);
    check_sse(c, "SSE node fetch", &out, "sse", show);
    // undici's ProxyAgent keeps only the status code of a refused CONNECT and fails it as an
    // abort, which fetch reports as `fetch failed (cause: Request was cancelled.)`: pipelock's
    // reason cannot reach a fetch user, who reads it from `bottle why` instead.
    let refused = field(&out, "refused");
    eprintln!("  node fetch refused host: {refused}");
    c.check(
        "node fetch: a host the bottle does not allow fails the fetch (undici shows no reason)",
        refused.starts_with("fetch failed"),
        show,
    );
    let why = h.home().bottle(
        &[
            "why",
            &format!("https://{REFUSED}/download"),
            "--bottle",
            h.slug(),
        ],
        Duration::from_secs(60),
    );
    eprintln!(
        "  bottle why https://{REFUSED}/download: {}",
        why.all().trim()
    );
    c.check(
        "node fetch: bottle why gives the reason for the refused host",
        why.all().contains("not allowed") || why.all().contains("not in the allowlist"),
        || why.all(),
    );
    credential_arrived(h, c, "node fetch", "fetch", 3);
}

fn go(h: &Harness, c: &mut Checks) {
    let r = run_script(
        h,
        "main.go",
        GO_MAIN,
        &format!("go run main.go {HOST} {REFUSED} {DOWNLOAD} 2>&1"),
    );
    let out = r.stdout.clone();
    let show = || r.all();
    eprintln!(
        "  {} net/http: {} to pipelock",
        field(&out, "go"),
        field(&out, "get_proto")
    );
    c.check("go net/http: go run exits 0", r.code == 0, show);
    check_bytes(c, "go net/http", &out, show);
    check_refused(c, "go net/http", &out, show);
    credential_arrived(h, c, "go net/http", "go", 2);
}

fn websocket(h: &Harness, c: &mut Checks) {
    let r = run_script(
        h,
        "ws.py",
        WS_PY,
        &format!("python3 ws.py {HOST} {REFUSED}"),
    );
    let out = r.stdout.clone();
    let show = || r.all();
    eprintln!("  websockets {}", field(&out, "version"));
    c.check("websocket: the script exits 0", r.code == 0, show);
    c.check(
        "websocket: the tunnel opens and text, a 200 kB binary message and text again echo intact",
        field(&out, "connect").starts_with("HTTP/1.1 200")
            && field(&out, "echo_text") == "hello over http/1.1"
            && field(&out, "echo_binary_same") == "True"
            && field(&out, "echo_after") == "after binary",
        show,
    );
    c.check(
        "websocket: a secret in a frame closes the connection with 1008 and pipelock's reason",
        field(&out, "secret_close") == "1008"
            && field(&out, "secret_reason").starts_with("blocked by pipelock"),
        show,
    );
    let refused = field(&out, "refused");
    eprintln!("  websocket refused host: {refused}");
    c.check(
        "websocket: the CONNECT to a host the bottle does not allow is refused with the reason",
        refused.starts_with("HTTP/1.1 403")
            && refused.contains(&format!("host not allowed: {REFUSED}")),
        show,
    );
    credential_arrived(h, c, "websocket", "ws", 1);
    // The origin logs each message it receives before echoing it. A moment for a forwarded
    // secret frame to be logged (the origin would log it even while pipelock closed on us).
    std::thread::sleep(Duration::from_secs(1));
    let got = origin_ws_messages(h, "ws");
    let texts: Vec<&str> = got.iter().filter_map(|m| m["payload"].as_str()).collect();
    eprintln!(
        "  websocket: the origin received {} messages: {texts:?} and {} binary",
        got.len(),
        got.iter()
            .filter(|m| m["payload_base64"].is_string())
            .count()
    );
    c.check(
        "websocket: the origin received the text and binary messages, and never the secret frame",
        texts.contains(&"hello over http/1.1")
            && texts.contains(&"after binary")
            && got.iter().any(|m| m["len"] == 200_000)
            && !got.iter().any(|m| m.to_string().contains("ghp_")),
        || format!("{got:?}"),
    );
}

/// The WebSocket messages the echo origin logged (`ws_message` lines) on connections whose
/// request to `HOST` named client `client`.
fn origin_ws_messages(h: &Harness, client: &str) -> Vec<Value> {
    let tag = format!("c={client}");
    h.echo
        .logs()
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter_map(|v| v.get("ws_message").cloned())
        .filter(|m| {
            m["authority"].as_str().is_some_and(|a| a.starts_with(HOST))
                && m["query"]
                    .as_str()
                    .is_some_and(|q| q.split('&').any(|p| p == tag))
        })
        .collect()
}
