//! WebSocket transports: one text message, a message in fragments (optionally a ping
//! between), and a deflated frame with RSV1 set although no extension was negotiated.
//! The origin (`WsOrigin`) records the unmasked payload of every data frame it got.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};
use tokio_tungstenite::tungstenite::protocol::frame::Frame;
use tokio_tungstenite::tungstenite::Message;

use crate::cases::Case;
use crate::common::{client_config, raw_head, roots_from_pem, tls};
use crate::drive::{Outcome, Target};

async fn deflate(b: &[u8]) -> Vec<u8> {
    use tokio::io::AsyncWriteExt;
    let mut out = Vec::new();
    let mut e = async_compression::tokio::write::DeflateEncoder::new(&mut out);
    let _ = e.write_all(b).await;
    let _ = e.shutdown().await;
    out
}

async fn frames(case: &Case) -> Vec<Frame> {
    match case.transport.as_str() {
        "ws-rsv1" => {
            let mut f = Frame::message(
                deflate(case.payload.as_bytes()).await,
                OpCode::Data(Data::Text),
                true,
            );
            f.header_mut().rsv1 = true;
            vec![f]
        }
        "ws-fragments" => {
            let n = case.parts.len();
            let mut out = Vec::new();
            for (i, p) in case.parts.iter().enumerate() {
                let op = if i == 0 {
                    OpCode::Data(Data::Text)
                } else {
                    OpCode::Data(Data::Continue)
                };
                out.push(Frame::message(p.as_bytes().to_vec(), op, i + 1 == n));
                if case.ping_between && i + 1 < n {
                    out.push(Frame::ping(b"keepalive".to_vec()));
                }
            }
            out
        }
        // A ping's payload is echoed in the pong and forwarded: a channel of its own.
        "ws-ping" => vec![Frame::ping(case.payload.as_bytes().to_vec())],
        "ws-binary" => vec![Frame::message(
            case.payload.as_bytes().to_vec(),
            OpCode::Data(Data::Binary),
            true,
        )],
        _ => vec![Frame::message(
            case.payload.as_bytes().to_vec(),
            OpCode::Data(Data::Text),
            true,
        )],
    }
}

/// The whole message text (what a benign case must deliver).
fn message(case: &Case) -> String {
    if case.transport == "ws-fragments" {
        case.parts.concat()
    } else {
        case.payload.clone()
    }
}

pub async fn run(t: &Target<'_>, case: &Case) -> Outcome {
    let judge = |refused: bool, leaked: bool, d: String| match (case.attack(), refused, leaked) {
        (true, true, false) => Outcome::Contained(d.clone()),
        (true, _, _) => Outcome::Missed(format!("refused={refused} leaked={leaked} {d}")),
        (false, false, _) => Outcome::Passed(d.clone()),
        (false, true, _) => Outcome::FalsePositive(d),
    };
    let before = t.ws.sessions().len();
    let authority = format!("echo.test:{}", t.ws.port());
    let (status, _, s) = raw_head(
        t.proxy,
        &format!("CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n\r\n"),
    )
    .await;
    if status != 200 {
        return judge(true, false, format!("CONNECT {status}"));
    }
    let cfg = client_config(roots_from_pem(&t.pipelock_ca), &[b"http/1.1"]);
    let Ok(stream) = tls(s, "echo.test", cfg).await else {
        return judge(!case.attack(), false, "TLS failed".into());
    };
    let Ok((mut ws, _)) =
        tokio_tungstenite::client_async(format!("wss://{authority}/ws?case={}", case.id), stream)
            .await
    else {
        return judge(!case.attack(), false, "upgrade refused".into());
    };
    for f in frames(case).await {
        if ws.send(Message::Frame(f)).await.is_err() {
            break;
        }
    }
    // The proxy either closes (refusal) or stays silent; the origin does not answer.
    let mut closed: Option<String> = None;
    let expected = message(case);
    // An attack gets 3 s to be refused; a benign message up to 10 s to arrive (it ends the
    // wait as soon as it does), so a loaded machine does not turn into a false positive.
    let wait = if case.attack() { 3 } else { 10 };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(wait);
    loop {
        let session = t.ws.sessions().get(before).cloned();
        let delivered = session
            .as_ref()
            .is_some_and(|s| String::from_utf8_lossy(&s.data).contains(&expected));
        if !case.attack() && delivered {
            break;
        }
        match tokio::time::timeout(Duration::from_millis(100), ws.next()).await {
            Ok(Some(Ok(Message::Close(c)))) => {
                closed = Some(c.map_or("close".into(), |c| {
                    format!("close {} {}", u16::from(c.code), c.reason)
                }));
                break;
            }
            Ok(Some(Ok(_))) => {}
            Ok(Some(Err(e))) => {
                closed = Some(format!("error {e}"));
                break;
            }
            Ok(None) => {
                closed = Some("eof".into());
                break;
            }
            Err(_) => {}
        }
        if tokio::time::Instant::now() > deadline {
            break;
        }
    }
    let _ = ws.close(None).await;
    // Let the origin record whatever pipelock forwarded before the close.
    tokio::time::sleep(Duration::from_millis(50)).await;
    let data =
        t.ws.sessions()
            .get(before)
            .map(|s| [s.data.clone(), s.control.clone()].concat())
            .unwrap_or_default();
    let text = String::from_utf8_lossy(&data).to_lowercase();
    let leaked = if case.transport == "ws-rsv1" {
        !data.is_empty()
    } else {
        text.contains(&case.canary.to_lowercase())
    };
    let delivered = text.contains(&expected.to_lowercase());
    let refused = closed.is_some() || (!case.attack() && !delivered);
    judge(
        refused,
        leaked,
        closed.unwrap_or_else(|| "not delivered".into()),
    )
}
