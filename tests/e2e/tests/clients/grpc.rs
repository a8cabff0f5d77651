//! gRPC (python grpcio over HTTP/2) and WebSocket over HTTP/2 (RFC 8441, python h2) through
//! the bottle, to the echo origin's gRPC endpoint and `/ws` on a route that injects a bearer
//! credential. gRPC: unary and bidirectional streaming answer message by message, a non-OK
//! status and its message arrive, the credential reaches the origin as metadata, a secret in a
//! message is refused by pipelock with a gRPC status, the origin reflecting the credential is
//! cut by egress. WebSocket over HTTP/2: the stream opens (200), frames echo, a secret in a
//! frame closes it with 1008 and is never echoed.

use bottle_e2e::Checks;
use serde_json::Value;

use super::harness::{field, sha256_hex, Harness, Row};

/// The route's host (an origin name; no other row routes it).
const HOST: &str = "other.e2e.test";
/// The route's credential variable.
const TOKEN: &str = "E2E_GRPC_TOKEN";

/// The rows of this module.
pub fn rows() -> Vec<Row> {
    vec![
        Row {
            name: "grpc",
            by_default: true,
            allow: &[],
            routes: &["{host: other.e2e.test, auth: {scheme: bearer, token_from: E2E_GRPC_TOKEN}}"],
            git: &[],
            secrets: &[TOKEN],
            run: grpc,
        },
        Row {
            name: "ws-h2",
            by_default: true,
            allow: &[],
            routes: &["{host: other.e2e.test, auth: {scheme: bearer, token_from: E2E_GRPC_TOKEN}}"],
            git: &[],
            secrets: &[TOKEN],
            run: ws_h2,
        },
    ]
}

/// The grpcio client: generic bytes methods (no generated code), the bottle's CA bundle,
/// HTTPS_PROXY from the runtime contract (grpcio sends CONNECT to pipelock). Prints
/// `key=value` lines; never a credential (the agent has none).
const GRPC_CLIENT: &str = r#"
import os, queue, grpc
with open(os.environ["SSL_CERT_FILE"], "rb") as f:
    creds = grpc.ssl_channel_credentials(root_certificates=f.read())
ch = grpc.secure_channel("other.e2e.test:443", creds)
r, call = ch.unary_unary("/demo.Echo/Unary").with_call(b"ping", timeout=30)
print("unary=" + r.decode())
print("unary_code=" + call.code().name)
q = queue.Queue()
def reqs():
    while True:
        m = q.get()
        if m is None:
            return
        yield m
it = ch.stream_stream("/demo.Echo/Bidi")(reqs(), timeout=30)
got = []
for m in [b"one", b"two", b"three"]:
    q.put(m)
    got.append(next(it).decode())
q.put(None)
print("bidi=" + ",".join(got))
print("bidi_code=" + it.code().name)
token = "ghp_" + "Zq8Lr3Tx6Wv1Np9Ks4Hb7Jd2Mf5Gc0Ye8Ua3Io6Pl"[:36]
for name, method, msg, md in [
    ("fail", "/demo.Echo/Unary", b"x", (("x-grpc-status", "5"), ("x-grpc-message", "no such thing"))),
    ("secret", "/demo.Echo/Unary", b"key=" + token.encode(), ()),
    ("reflect", "/demo.Echo/Reflect", b"x", ()),
]:
    try:
        ch.unary_unary(method)(msg, metadata=md, timeout=30)
        print(name + "=OK")
    except grpc.RpcError as e:
        print(name + "=" + e.code().name + ":" + (e.details() or "").replace("\n", " ")[:120])
"#;

/// An RFC 8441 client on python h2: CONNECT to pipelock, TLS (ALPN h2), extended CONNECT
/// `:protocol websocket` to `/ws`, masked frames by hand.
const WS_H2_CLIENT: &str = r#"
import os, socket, ssl, struct, urllib.parse
import h2.config, h2.connection, h2.events, h2.settings
p = urllib.parse.urlsplit(os.environ["HTTPS_PROXY"])
s = socket.create_connection((p.hostname, p.port or 80), timeout=30)
s.sendall(b"CONNECT other.e2e.test:443 HTTP/1.1\r\nHost: other.e2e.test:443\r\n\r\n")
head = b""
while b"\r\n\r\n" not in head:
    head += s.recv(1)
print("connect=" + head.split(b" ")[1].decode())
ctx = ssl.create_default_context(cafile=os.environ["SSL_CERT_FILE"])
ctx.set_alpn_protocols(["h2"])
t = ctx.wrap_socket(s, server_hostname="other.e2e.test")
c = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
c.initiate_connection()
t.sendall(c.data_to_send())
buf = b""
state = {"connect_protocol": False, "status": None, "ended": False}
def pump():
    global buf
    data = t.recv(65536)
    if not data:
        state["ended"] = True
        return
    for ev in c.receive_data(data):
        if isinstance(ev, h2.events.RemoteSettingsChanged):
            v = ev.changed_settings.get(h2.settings.SettingCodes.ENABLE_CONNECT_PROTOCOL)
            if v is not None and v.new_value == 1:
                state["connect_protocol"] = True
        elif isinstance(ev, h2.events.ResponseReceived):
            state["status"] = dict(ev.headers).get(b":status", b"").decode()
        elif isinstance(ev, h2.events.DataReceived):
            buf += ev.data
            c.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
        elif isinstance(ev, (h2.events.StreamEnded, h2.events.StreamReset)):
            state["ended"] = True
    t.sendall(c.data_to_send())
while not state["connect_protocol"]:
    pump()
print("enable_connect_protocol=1")
sid = c.get_next_available_stream_id()
c.send_headers(sid, [(":method", "CONNECT"), (":protocol", "websocket"), (":scheme", "https"),
                     (":path", "/ws"), (":authority", "other.e2e.test"), ("sec-websocket-version", "13")])
t.sendall(c.data_to_send())
while state["status"] is None:
    pump()
print("ws_status=" + state["status"])
def send(text):
    data = text.encode()
    mask = os.urandom(4)
    n = len(data)
    head = bytes([0x81]) + (bytes([0x80 | n]) if n < 126 else bytes([0x80 | 126]) + struct.pack(">H", n))
    c.send_data(sid, head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(data)))
    t.sendall(c.data_to_send())
def frame():
    global buf
    while True:
        if len(buf) >= 2:
            n = buf[1] & 0x7F
            off = 2
            if n == 126 and len(buf) >= 4:
                n = struct.unpack(">H", buf[2:4])[0]
                off = 4
            if n < 126 or off == 4:
                if len(buf) >= off + n:
                    op, payload = buf[0] & 0x0F, buf[off:off + n]
                    buf = buf[off + n:]
                    return op, payload
        if state["ended"]:
            return None, b""
        pump()
send("hello over h2")
op, payload = frame()
print("ws_echo=" + payload.decode())
token = "ghp_" + "Zq8Lr3Tx6Wv1Np9Ks4Hb7Jd2Mf5Gc0Ye8Ua3Io6Pl"[:36]
send("key " + token)
op, payload = frame()
if op == 8 and len(payload) >= 2:
    print("ws_secret_close=" + str(struct.unpack(">H", payload[:2])[0]))
    print("ws_secret_reason=" + payload[2:].decode(errors="replace")[:80])
else:
    print("ws_secret_close=none op=" + str(op) + " echoed=" + str(token.encode() in payload))
"#;

/// The echo origin's request log lines (JSON) for `path`, on `HOST`.
fn origin_requests(h: &Harness, path_prefix: &str) -> Vec<Value> {
    h.echo
        .logs()
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| {
            v["path"]
                .as_str()
                .is_some_and(|p| p.starts_with(path_prefix))
                && v["authority"].as_str().is_some_and(|a| a.starts_with(HOST))
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

/// Whether every logged request carried exactly the injected credential (compared by hash,
/// never printed).
fn credential_check(c: &mut Checks, h: &Harness, row: &str, reqs: &[Value]) {
    let want = sha256_hex(h.bearer(TOKEN).as_bytes());
    let bad = reqs
        .iter()
        .filter(|v| {
            let a = header_values(v, "authorization");
            a.len() != 1 || sha256_hex(a[0].as_bytes()) != want
        })
        .count();
    c.check(
        &format!("{row}: the route's credential reached the origin as metadata on every call"),
        !reqs.is_empty() && bad == 0,
        || {
            format!(
                "{} calls logged, {bad} without exactly the credential",
                reqs.len()
            )
        },
    );
}

fn grpc(h: &Harness, c: &mut Checks) {
    let r = h.run_in_agent(&format!("python3 - <<'EOF'\n{GRPC_CLIENT}\nEOF"));
    let out = r.stdout.clone();
    let show = || r.all();
    c.check("grpc: the client ran", r.code == 0, show);
    c.check(
        "grpc: unary answered with status OK",
        field(&out, "unary") == "ping" && field(&out, "unary_code") == "OK",
        show,
    );
    c.check(
        "grpc: bidirectional streaming answered each message before the next was sent",
        field(&out, "bidi") == "one,two,three" && field(&out, "bidi_code") == "OK",
        show,
    );
    c.check(
        "grpc: a non-OK status and its message arrived (NOT_FOUND, no such thing)",
        field(&out, "fail") == "NOT_FOUND:no such thing",
        show,
    );
    let secret = field(&out, "secret");
    c.check(
        "grpc: a secret in a message is refused by pipelock as PERMISSION_DENIED, with the reason",
        secret.starts_with("PERMISSION_DENIED:blocked by pipelock: secret detected"),
        show,
    );
    let reflect = field(&out, "reflect");
    c.check(
        "grpc: the origin reflecting the credential is cut by egress (INTERNAL, blocked by egress)",
        reflect.starts_with("INTERNAL:blocked by egress"),
        show,
    );
    let reqs = origin_requests(h, "/demo.Echo/");
    c.check(
        "grpc: the origin got HTTP/2 calls with TE: trailers",
        !reqs.is_empty()
            && reqs
                .iter()
                .all(|v| v["version"] == "HTTP/2.0" && header_values(v, "te") == ["trailers"]),
        || format!("{} calls", reqs.len()),
    );
    credential_check(c, h, "grpc", &reqs);
}

fn ws_h2(h: &Harness, c: &mut Checks) {
    let r = h.run_in_agent(&format!("python3 - <<'EOF'\n{WS_H2_CLIENT}\nEOF"));
    let out = r.stdout.clone();
    let show = || r.all();
    c.check(
        "ws-h2: pipelock's HTTP/2 offers extended CONNECT and the stream opens (200)",
        field(&out, "enable_connect_protocol") == "1" && field(&out, "ws_status") == "200",
        show,
    );
    c.check(
        "ws-h2: a frame is echoed by the origin",
        field(&out, "ws_echo") == "hello over h2",
        show,
    );
    c.check(
        "ws-h2: a secret in a frame closes the stream with 1008 and is never echoed",
        field(&out, "ws_secret_close") == "1008"
            && field(&out, "ws_secret_reason").starts_with("blocked by pipelock"),
        show,
    );
    let reqs = origin_requests(h, "/ws");
    credential_check(c, h, "ws-h2", &reqs);
}
