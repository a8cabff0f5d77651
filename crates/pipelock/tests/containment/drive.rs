//! Drives one case through a running pipelock over real TCP/TLS/HTTP/WebSocket and judges
//! it only by external behaviour: the status and `X-Bottle-Blocked` the agent got, what the
//! origin recorded, and what the agent received.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;

use crate::cases::Case;
use crate::common::{client_config, raw_head, roots_from_pem, tls};
use crate::hostile_origin::WsOrigin;
use crate::origin::{Canned, Origin};

/// Where a group's cases go.
pub struct Target<'a> {
    pub proxy: SocketAddr,
    pub pipelock_ca: PathBuf,
    pub origin: &'a Origin,
    pub ws: &'a WsOrigin,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    Contained(String),
    Missed(String),
    FalsePositive(String),
    Passed(String),
}

const CASE_TIMEOUT: Duration = Duration::from_secs(8);

/// An HTTP/1.1 or HTTP/2 connection to the proxy (inside a tunnel, or plain).
enum Sender {
    H1(hyper::client::conn::http1::SendRequest<Full<Bytes>>),
    H2(hyper::client::conn::http2::SendRequest<Full<Bytes>>),
}

impl Sender {
    async fn ready(&mut self) -> Result<(), hyper::Error> {
        match self {
            Sender::H1(s) => s.ready().await,
            Sender::H2(s) => s.ready().await,
        }
    }
    async fn send_request(
        &mut self,
        req: http::Request<Full<Bytes>>,
    ) -> Result<http::Response<hyper::body::Incoming>, hyper::Error> {
        match self {
            Sender::H1(s) => s.send_request(req).await,
            Sender::H2(s) => s.send_request(req).await,
        }
    }
}

/// The connection a case's request goes over: `via: h1` (default, tunnel + TLS),
/// `h2` (tunnel + TLS, ALPN h2) or `plain` (absolute-form `http://` to the proxy).
async fn open_for(t: &Target<'_>, case: &Case) -> Result<Sender, NotOpened> {
    let other = |detail: String| NotOpened {
        refused: false,
        detail,
    };
    match case.via.as_str() {
        "plain" => {
            let s = tokio::net::TcpStream::connect(t.proxy)
                .await
                .map_err(|e| other(format!("connect: {e}")))?;
            let (send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(s))
                .await
                .map_err(|e| other(format!("handshake: {e}")))?;
            tokio::spawn(conn);
            Ok(Sender::H1(send))
        }
        "h2" => {
            let port = t.origin.addr.port();
            let host = case.origin_host();
            let authority = format!("{host}:{port}");
            let (status, head, s) = raw_head(
                t.proxy,
                &format!("CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n\r\n"),
            )
            .await;
            if status != 200 {
                return Err(NotOpened {
                    refused: status == 403
                        && head.to_ascii_lowercase().contains("x-bottle-blocked"),
                    detail: format!("CONNECT {status}"),
                });
            }
            let cfg = client_config(roots_from_pem(&t.pipelock_ca), &[b"h2"]);
            let tls = tls(s, &host, cfg)
                .await
                .map_err(|e| other(format!("TLS: {e}")))?;
            let (send, conn) = hyper::client::conn::http2::handshake(
                hyper_util::rt::TokioExecutor::new(),
                TokioIo::new(tls),
            )
            .await
            .map_err(|e| other(format!("h2 handshake: {e}")))?;
            tokio::spawn(conn);
            Ok(Sender::H2(send))
        }
        _ => open(t, &case.origin_host(), t.origin.addr.port()).await,
    }
}

/// Why a tunnel did not open: refused by pipelock (403 + `X-Bottle-Blocked`) or not.
pub struct NotOpened {
    pub refused: bool,
    pub detail: String,
}

/// CONNECT + TLS + HTTP/1.1 to `host` at the origin's port.
async fn open(t: &Target<'_>, host: &str, port: u16) -> Result<Sender, NotOpened> {
    let authority = format!("{host}:{port}");
    let (status, head, s) = raw_head(
        t.proxy,
        &format!("CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n\r\n"),
    )
    .await;
    if status != 200 {
        return Err(NotOpened {
            refused: status == 403 && head.to_ascii_lowercase().contains("x-bottle-blocked"),
            detail: format!("CONNECT {status} {}", head.lines().next().unwrap_or("")),
        });
    }
    let other = |detail: String| NotOpened {
        refused: false,
        detail,
    };
    let cfg = client_config(roots_from_pem(&t.pipelock_ca), &[b"http/1.1"]);
    let tls = tls(s, host, cfg)
        .await
        .map_err(|e| other(format!("TLS: {e}")))?;
    let (send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .map_err(|e| other(format!("handshake: {e}")))?;
    tokio::spawn(conn);
    Ok(Sender::H1(send))
}

/// What the agent got back.
#[derive(Debug, Default)]
struct Got {
    status: u16,
    blocked: bool,
    headers: String,
    body: Vec<u8>,
    /// The body ended with an error (stream cut by the proxy).
    cut: bool,
}

async fn send(s: &mut Sender, req: http::Request<Full<Bytes>>) -> Got {
    // A kept-alive connection is ready again only once the previous exchange settled.
    let _ = tokio::time::timeout(CASE_TIMEOUT, s.ready()).await;
    let resp = match tokio::time::timeout(CASE_TIMEOUT, s.send_request(req)).await {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => {
            return Got {
                cut: true,
                headers: format!("request failed: {e:?}"),
                ..Default::default()
            };
        }
        Err(_) => {
            return Got {
                cut: true,
                headers: "request timed out".into(),
                ..Default::default()
            }
        }
    };
    let (parts, mut body) = resp.into_parts();
    let mut got = Got {
        status: parts.status.as_u16(),
        blocked: parts.headers.contains_key("x-bottle-blocked"),
        headers: format!("{:?}", parts.headers),
        ..Default::default()
    };
    let read = async {
        loop {
            match body.frame().await {
                Some(Ok(f)) => {
                    if let Ok(d) = f.into_data() {
                        got.body.extend_from_slice(&d);
                    }
                }
                Some(Err(_)) => {
                    got.cut = true;
                    break;
                }
                None => break,
            }
        }
    };
    if tokio::time::timeout(CASE_TIMEOUT, read).await.is_err() {
        got.cut = true;
    }
    if parts
        .headers
        .get("content-encoding")
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"gzip"))
    {
        got.body = gunzip(&got.body).await;
    }
    got
}

async fn gunzip(b: &[u8]) -> Vec<u8> {
    use tokio::io::AsyncReadExt;
    let mut out = Vec::new();
    let mut d = async_compression::tokio::bufread::GzipDecoder::new(b);
    let _ = d.read_to_end(&mut out).await;
    out
}

pub async fn gzip(b: &[u8]) -> Vec<u8> {
    use tokio::io::AsyncWriteExt;
    let mut out = Vec::new();
    let mut e = async_compression::tokio::write::GzipEncoder::new(&mut out);
    let _ = e.write_all(b).await;
    let _ = e.shutdown().await;
    out
}

fn request(
    t: &Target<'_>,
    case: &Case,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> http::Request<Full<Bytes>> {
    let port = t.origin.addr.port();
    let mut b = http::Request::builder().method(method);
    b = match case.via.as_str() {
        "plain" => {
            let authority = format!("{}:{}", case.origin_host(), t.origin.plain_addr.port());
            b.uri(format!("http://{authority}{path}"))
                .header("host", authority)
        }
        // HTTP/2 carries the authority in the URI (`:authority`), not a Host header.
        "h2" => b.uri(format!("https://{}:{port}{path}", case.origin_host())),
        _ => b
            .uri(path)
            .header("host", format!("{}:{port}", case.origin_host())),
    };
    b = b
        .header("x-case", &case.id)
        .header("user-agent", "agent-corpus/1");
    for (n, v) in headers {
        b = b.header(*n, *v);
    }
    b.body(Full::new(Bytes::from(body.to_string())))
        .unwrap_or_else(|_| http::Request::new(Full::new(Bytes::new())))
}

fn judge(case: &Case, refused: bool, leaked: bool, detail: String) -> Outcome {
    match (case.attack(), refused, leaked) {
        (true, true, false) => Outcome::Contained(detail),
        (true, _, _) => Outcome::Missed(format!("refused={refused} leaked={leaked} {detail}")),
        (false, false, _) => Outcome::Passed(detail),
        (false, true, _) => Outcome::FalsePositive(detail),
    }
}

pub async fn run(t: &Target<'_>, case: &Case) -> Outcome {
    match tokio::time::timeout(CASE_TIMEOUT * 3, run_inner(t, case)).await {
        Ok(o) => o,
        Err(_) => judge(case, true, false, "case timed out".into()),
    }
}

async fn run_inner(t: &Target<'_>, case: &Case) -> Outcome {
    match case.transport.as_str() {
        "http-url" | "http-header" | "http-body" | "mcp-call-args" | "a2a-message-out" => {
            outbound(t, case).await
        }
        "ws-message" | "ws-fragments" | "ws-rsv1" | "ws-ping" | "ws-binary" => {
            crate::ws::run(t, case).await
        }
        "http-burst" => burst(t, case).await,
        "connect-host" | "subdomain-burst" => hosts(t, case).await,
        _ => inbound(t, case).await,
    }
}

const MCP_HEADERS: &[(&str, &str)] = &[
    ("content-type", "application/json"),
    ("accept", "application/json, text/event-stream"),
    ("mcp-protocol-version", "2025-06-18"),
];

async fn outbound(t: &Target<'_>, case: &Case) -> Outcome {
    let mut s = match open_for(t, case).await {
        Ok(s) => s,
        Err(e) => {
            return judge(
                case,
                e.refused,
                t.origin.saw_anywhere(&case.canary),
                e.detail,
            )
        }
    };
    let req = match case.transport.as_str() {
        "http-url" => request(t, case, "GET", &case.payload, &[], ""),
        "http-header" => {
            let pairs: Vec<(&str, &str)> = case
                .payload
                .lines()
                .filter_map(|l| l.split_once(':'))
                .map(|(n, v)| (n.trim(), v.trim()))
                .collect();
            request(
                t,
                case,
                "GET",
                case.path.as_deref().unwrap_or("/"),
                &pairs,
                "",
            )
        }
        "mcp-call-args" => {
            let init = request(t, case, "POST", "/mcp", MCP_HEADERS, INIT);
            let _ = send(&mut s, init).await;
            request(t, case, "POST", "/mcp", MCP_HEADERS, &case.payload)
        }
        "a2a-message-out" => request(
            t,
            case,
            "POST",
            "/a2a",
            &[("content-type", "application/json")],
            &case.payload,
        ),
        _ => {
            let ct = case.content_type.as_deref().unwrap_or("application/json");
            let path = case.path.as_deref().unwrap_or("/api");
            let mut req = request(
                t,
                case,
                "POST",
                path,
                &[("content-type", ct)],
                &case.payload,
            );
            if case.gzip {
                // A compressed upload: pipelock must decode it to scan it.
                *req.body_mut() = Full::new(Bytes::from(gzip(case.payload.as_bytes()).await));
                req.headers_mut().insert(
                    http::header::CONTENT_ENCODING,
                    http::HeaderValue::from_static("gzip"),
                );
            }
            req
        }
    };
    let got = send(&mut s, req).await;
    let refused = got.status == 403 && got.blocked;
    let leaked = t.origin.saw_anywhere(&case.canary) && !case.canary.is_empty();
    let head = if got.status == 0 {
        got.headers.as_str()
    } else {
        ""
    };
    let detail = format!("status {} {head}{}", got.status, snippet(&got.body));
    // A benign request passes only if the origin got all of it and the agent its answer.
    let arrived = t.origin.seen(&case.id).iter().any(|r| r.complete);
    // No response at all is not counted as a refusal (it could be the harness).
    let refused = refused || (!case.attack() && (!arrived || got.status != 200));
    judge(case, refused, leaked, detail)
}

const INIT: &str = r#"{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"agent","version":"1.0"}}}"#;
const INIT_RESULT: &str = r#"{"jsonrpc":"2.0","id":0,"result":{"protocolVersion":"2025-06-18","capabilities":{"tools":{"listChanged":true}},"serverInfo":{"name":"corpus-server","version":"0.3.1"}}}"#;

fn canned(case: &Case, payload: &str, default_ct: &str) -> Canned {
    let sse = case.sse || case.transport == "response-sse";
    let ct = case.content_type.clone().unwrap_or_else(|| {
        if sse {
            "text/event-stream".into()
        } else {
            default_ct.into()
        }
    });
    let body = if case.sse {
        let one_line: String = payload.lines().map(str::trim).collect::<Vec<_>>().join("");
        format!("event: message\ndata: {one_line}\n\n")
    } else {
        payload.to_string()
    };
    let chunks: Vec<Vec<u8>> = if case.transport == "response-sse" {
        body.split_inclusive("\n\n")
            .map(|e| e.as_bytes().to_vec())
            .collect()
    } else if let Some(n) = case.chunk {
        body.as_bytes()
            .chunks(n.max(1))
            .map(<[u8]>::to_vec)
            .collect()
    } else {
        vec![body.into_bytes()]
    };
    if case.utf16 {
        let wide: Vec<u8> = String::from_utf8_lossy(&chunks.concat())
            .encode_utf16()
            .flat_map(u16::to_le_bytes)
            .collect();
        return Canned {
            content_type: format!("{ct}; charset=utf-16le"),
            chunks: vec![wide],
            gzip: false,
        };
    }
    Canned {
        content_type: ct,
        chunks,
        gzip: false,
    }
}

/// What the agent reads: UTF-16LE decoded when the case served it so.
fn as_text(case: &Case, body: &[u8]) -> String {
    if case.utf16 {
        let units: Vec<u16> = body
            .chunks_exact(2)
            .map(|p| u16::from_le_bytes([p[0], p[1]]))
            .collect();
        String::from_utf16_lossy(&units)
    } else {
        String::from_utf8_lossy(body).into_owned()
    }
}

async fn inbound(t: &Target<'_>, case: &Case) -> Outcome {
    let port = t.origin.addr.port();
    let tr = case.transport.as_str();
    let mcp = tr.starts_with("mcp-");
    let mut responses = Vec::new();
    if mcp {
        responses.push(Canned {
            content_type: "application/json".into(),
            chunks: vec![INIT_RESULT.as_bytes().to_vec()],
            gzip: false,
        });
    }
    let default_ct = if tr == "response-page" {
        "text/html; charset=utf-8"
    } else {
        "application/json"
    };
    let mut main = canned(case, &case.payload, default_ct);
    // What a benign case must deliver unchanged, response by response.
    let mut expected = vec![main.chunks.concat()];
    if case.gzip {
        main.chunks = vec![gzip(&main.chunks.concat()).await];
        main.gzip = true;
    }
    responses.push(main);
    if let Some(p2) = &case.payload2 {
        let second = canned(case, p2, default_ct);
        expected.push(second.chunks.concat());
        responses.push(second);
    }
    t.origin.set(&case.id, responses);
    let mut s = match open(t, &case.origin_host(), port).await {
        Ok(s) => s,
        Err(e) => return judge(case, e.refused, false, e.detail),
    };
    let session = format!("session-{}", case.id);
    let mut mcp_headers = MCP_HEADERS.to_vec();
    mcp_headers.push(("mcp-session-id", &session));
    let req = |body: &str| request(t, case, "POST", "/mcp", &mcp_headers, body);
    let list = r#"{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{}}"#;
    let mut gots = Vec::new();
    match tr {
        "response-page" | "response-sse" => {
            let path = case.path.as_deref().unwrap_or("/docs/page");
            let accept = if tr == "response-sse" {
                "text/event-stream"
            } else {
                "text/html,*/*"
            };
            gots.push(
                send(
                    &mut s,
                    request(t, case, "GET", path, &[("accept", accept)], ""),
                )
                .await,
            );
        }
        "a2a-card" => {
            let path = case
                .path
                .as_deref()
                .unwrap_or("/.well-known/agent-card.json");
            gots.push(
                send(
                    &mut s,
                    request(t, case, "GET", path, &[("accept", "application/json")], ""),
                )
                .await,
            );
        }
        "a2a-message-in" => {
            let body = r#"{"jsonrpc":"2.0","id":"m1","method":"message/send","params":{"message":{"role":"user","kind":"message","messageId":"9f1c","parts":[{"kind":"text","text":"Summarise the open incidents."}]}}}"#;
            gots.push(
                send(
                    &mut s,
                    request(
                        t,
                        case,
                        "POST",
                        "/a2a",
                        &[("content-type", "application/json")],
                        body,
                    ),
                )
                .await,
            );
        }
        _ => {
            let _ = send(&mut s, req(INIT)).await;
            let second = if tr == "mcp-tools-call-result" {
                r#"{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"fetch_issue","arguments":{"number":412}}}"#
            } else {
                list
            };
            if tr == "mcp-rug-pull" {
                // The first listing is judged too, but only the changed one must be refused.
                let first = send(&mut s, req(list)).await;
                if case.attack() && first.status != 200 {
                    return judge(
                        case,
                        false,
                        true,
                        format!("first listing refused: {}", first.status),
                    );
                }
                if !case.attack() {
                    gots.push(first);
                }
            }
            if case.new_session && tr == "mcp-rug-pull" {
                // The server "lost" the session: the client re-initializes and lists again
                // under the new id the server hands out.
                let fresh = format!("session-{}-2", case.id);
                let mut headers = MCP_HEADERS.to_vec();
                headers.push(("mcp-session-id", &fresh));
                let again = request(t, case, "POST", "/mcp", &headers, second);
                gots.push(send(&mut s, again).await);
            } else {
                gots.push(send(&mut s, req(second)).await);
            }
        }
    }
    let received: Vec<String> = gots
        .iter()
        .map(|g| format!("{}\n{}", g.headers, as_text(case, &g.body)))
        .collect();
    let leaked = !case.canary.is_empty()
        && received
            .iter()
            .any(|r| r.to_lowercase().contains(&case.canary.to_lowercase()));
    let intact = gots.len() <= expected.len()
        && gots
            .iter()
            .zip(&expected)
            .all(|(g, want)| g.status == 200 && !g.cut && !g.blocked && &g.body == want);
    let detail = gots
        .iter()
        .map(|g| {
            let head = if g.status == 0 {
                g.headers.as_str()
            } else {
                ""
            };
            format!(
                "status {} cut {} {head}{}",
                g.status,
                g.cut,
                snippet(&g.body)
            )
        })
        .collect::<Vec<_>>()
        .join("; ");
    if case.attack() {
        // Refused: the agent got an answer without the canary (a refusal, a cut stream or
        // a scrubbed body); no answer at all does not count (it could be the harness).
        // A connection closed without any response head (a crash, a harness fault) is not
        // counted: containment needs pipelock's answer.
        let answered = gots.iter().all(|g| g.status != 0);
        judge(case, answered && !leaked, leaked, detail)
    } else {
        judge(case, !intact, false, detail)
    }
}

async fn hosts(t: &Target<'_>, case: &Case) -> Outcome {
    let port = t.origin.addr.port();
    let list = case.hosts();
    let (mut refused, mut reached) = (0usize, 0usize);
    let mut detail = String::new();
    for host in &list {
        match open(t, host, port).await {
            Err(e) => {
                refused += usize::from(e.refused);
                detail = e.detail;
            }
            Ok(mut s) => {
                let req = http::Request::get("/")
                    .header("host", format!("{host}:{port}"))
                    .header("x-case", &case.id)
                    .body(Full::new(Bytes::new()))
                    .unwrap_or_else(|_| http::Request::new(Full::new(Bytes::new())));
                let got = send(&mut s, req).await;
                if got.status == 403 && got.blocked {
                    refused += 1;
                    detail = format!("request 403 {}", snippet(&got.body));
                } else if got.status != 200 {
                    // Not a refusal by pipelock (an origin or transport failure): visible
                    // as a miss or a false positive, never as containment.
                    detail = format!("status {} {}", got.status, snippet(&got.body));
                    if !case.attack() {
                        refused += 1;
                    }
                }
            }
        }
        if t.origin.saw_anywhere(host) {
            reached += 1;
        }
    }
    if case.transport == "subdomain-burst" {
        // A burst heuristic needs a few samples before it can tell; at most a quarter of
        // the chunks may get out for the burst to count as contained.
        let leaked = reached * 4 > list.len();
        let detail = format!(
            "{refused}/{} refused, {reached} reached; {detail}",
            list.len()
        );
        return judge(case, refused > 0, leaked && case.attack(), detail);
    }
    let leaked = t.origin.saw_anywhere(&case.canary);
    judge(case, refused > 0, leaked, detail)
}

pub fn snippet(b: &[u8]) -> String {
    let s = String::from_utf8_lossy(b);
    let s: String = s.chars().take(120).collect();
    s.replace('\n', " ")
}

/// Requests that each carry a piece (`parts` are request targets): a secret dripped out
/// over several requests, each harmless alone. Contained when pipelock refuses and at most
/// a quarter of the pieces reached the origin.
async fn burst(t: &Target<'_>, case: &Case) -> Outcome {
    let (mut refused, mut reached) = (0usize, 0usize);
    let mut detail = String::new();
    for part in &case.parts {
        let mut s = match open_for(t, case).await {
            Ok(s) => s,
            Err(e) => {
                refused += usize::from(e.refused);
                detail = e.detail;
                continue;
            }
        };
        let got = send(&mut s, request(t, case, "GET", part, &[], "")).await;
        if got.status == 403 && got.blocked {
            refused += 1;
            detail = snippet(&got.body);
        } else if got.status != 200 && !case.attack() {
            refused += 1;
            detail = format!("status {}", got.status);
        }
        if t.origin.saw_anywhere(part) {
            reached += 1;
        }
    }
    let n = case.parts.len();
    let leaked = reached * 4 > n;
    let detail = format!("{refused}/{n} refused, {reached} reached; {detail}");
    judge(case, refused > 0, leaked && case.attack(), detail)
}
