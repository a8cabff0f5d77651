//! Data classes beyond credentials (issue 13) through pipelock with real traffic: a
//! payment card number, an IBAN or a BIP-39 seed phrase in a request body is refused
//! before any byte of the body reaches the origin; a published test card number passes.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;

/// Luhn-valid Visa / IBAN / seed phrase made up for this test (no real account).
const CARD: &str = "4442 3232 2183 4066";
const IBAN: &str = "DE96 4991 7850 0552 7888 73";
const SEED: &str = "work help stem burden position retire smart gorilla tackle happy bless pizza";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn card_iban_and_seed_phrase_in_a_post_body_never_reach_the_origin() {
    let env = Env::new("echo.test:*\n127.0.0.1/32\n", "").await;
    let p = env.spawn(&[]).await;
    let url = format!("https://echo.test:{}/checkout", env.tls_port());
    for (body, det) in [
        (
            format!("{{\"card\":\"{CARD}\",\"exp\":\"12/29\"}}"),
            "payment-card-number",
        ),
        (format!("name=A+User&iban={IBAN}"), "iban"),
        (format!("{{\"mnemonic\":\"{SEED}\"}}"), "bip39-seed-phrase"),
    ] {
        let (code, text, err) = curl(
            p.addr,
            &env.ca_cert(),
            &url,
            &["-i", "-X", "POST", "--data-binary", &body],
        );
        assert_eq!(code, 403, "{det}: {text} {err}");
        assert!(
            text.to_ascii_lowercase()
                .contains("x-bottle-blocked: pipelock"),
            "{text}"
        );
        assert!(
            text.contains(&format!("secret detected in request body: {det}")),
            "{det}: {text}"
        );
    }
    // pipelock forwards a request's head while it scans the streamed body; the
    // origin may see the head of a refused request but not one byte of its body.
    let refused = env.origin.requests();
    assert!(
        refused.iter().all(|r| r.body_len == 0),
        "no body byte arrived at the origin: {refused:?}"
    );
    // The same request with the published test card (and a Luhn-failing number)
    // passes: fixtures and ordinary numbers are not data.
    for body in [
        "{\"card\":\"4111 1111 1111 1111\",\"exp\":\"12/29\"}",
        "{\"card\":\"4442 3232 2183 4067\",\"exp\":\"12/29\"}",
    ] {
        let (code, text, err) = curl(
            p.addr,
            &env.ca_cert(),
            &url,
            &["-X", "POST", "--data-binary", body],
        );
        assert_eq!(code, 200, "{body}: {text} {err}");
    }
    let seen = env.origin.requests();
    let passed: Vec<_> = seen.iter().filter(|r| r.body_len > 0).collect();
    assert_eq!(passed.len(), 2, "{seen:?}");
    assert!(passed.iter().all(|r| r.body_len == 44), "{seen:?}");
    p.stop().await;
}

// ---- h10 #9: the same data in the spellings a person (or an agent) uses ----

/// Luhn-valid Visa, valid IBAN and checksum-valid phrase made up for the review
/// (no real account, not published test values).
const CARD2: &str = "4539445394591043";
const IBAN2: &str = "DE59038224099979443526";
const SEED2: &str =
    "truth escape trigger rug project capital used bronze work absent eight illegal";

fn groups(s: &str, sep: &str) -> String {
    s.as_bytes()
        .chunks(4)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect::<Vec<_>>()
        .join(sep)
}

/// POSTs `body` over plain HTTP through the proxy; returns the status and
/// whether any byte of the body reached the origin.
async fn post_plain(
    env: &Env,
    p: &pipelock::Running,
    path: &str,
    ctype: &str,
    body: String,
) -> (u16, bool) {
    use bytes::Bytes;
    use http_body_util::Full;
    let auth = format!("echo.test:{}", env.http_port());
    let req = http::Request::post(format!("http://{auth}{path}"))
        .header("host", &auth)
        .header("content-type", ctype)
        .body(Full::new(Bytes::from(body)))
        .unwrap();
    let s = tokio::net::TcpStream::connect(p.addr).await.unwrap();
    let r = h1(s, req).await;
    let arrived = env
        .origin
        .requests()
        .iter()
        .any(|q| q.path == path && q.body_len > 0);
    (r.status, arrived)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cards_ibans_and_seed_phrases_in_ordinary_spellings_never_reach_the_origin() {
    let env = Env::new("echo.test:*\n127.0.0.1/32\n", "").await;
    let p = env.spawn(&[]).await;
    let (j, form) = ("application/json", "application/x-www-form-urlencoded");
    let words: Vec<&str> = SEED2.split(' ').collect();
    let cap: Vec<String> = words
        .iter()
        .map(|w| w[..1].to_uppercase() + &w[1..])
        .collect();
    let cases: Vec<(&str, String)> = vec![
        (j, serde_json::json!({ "x": cap.join(" ") }).to_string()),
        (
            j,
            serde_json::json!({ "x": SEED2.to_uppercase() }).to_string(),
        ),
        (
            j,
            serde_json::json!({ "x": SEED2.replace(' ', "\t") }).to_string(),
        ),
        (
            j,
            serde_json::json!({ "x": SEED2.replace(' ', "   ") }).to_string(),
        ),
        (
            j,
            serde_json::json!({ "x": SEED2.replace(' ', "\n    ") }).to_string(),
        ),
        (j, serde_json::json!({ "x": words }).to_string()),
        (
            j,
            serde_json::json!({ "x": SEED2.replace(' ', "-") }).to_string(),
        ),
        (
            j,
            serde_json::json!({ "x": SEED2.replace(' ', ", ") }).to_string(),
        ),
        (form, format!("x={}", SEED2.replace(' ', "+"))),
        (
            j,
            serde_json::json!({ "x": groups(CARD2, ".") }).to_string(),
        ),
        (
            j,
            serde_json::json!({ "x": groups(CARD2, "/") }).to_string(),
        ),
        (
            j,
            serde_json::json!({ "x": groups(CARD2, "_") }).to_string(),
        ),
        (
            j,
            serde_json::json!({ "x": groups(CARD2, "  ") }).to_string(),
        ),
        (j, format!("{{\"x\": [\"{}\"]}}", groups(CARD2, "\", \""))),
        (j, serde_json::json!({ "cc": CARD2 }).to_string()),
        (form, format!("name=A&n={}", groups(CARD2, "+"))),
        (
            j,
            serde_json::json!({ "x": groups(IBAN2, "-") }).to_string(),
        ),
        (
            j,
            serde_json::json!({ "x": IBAN2.to_lowercase() }).to_string(),
        ),
        (form, format!("name=A&iban={}", groups(IBAN2, "+"))),
    ];
    let mut leaks = Vec::new();
    for (k, (ctype, body)) in cases.into_iter().enumerate() {
        let path = format!("/spell{k}");
        let (status, arrived) = post_plain(&env, &p, &path, ctype, body.clone()).await;
        if status != 403 || arrived {
            leaks.push(format!("{body:?}: {status}, reached the origin: {arrived}"));
        }
    }
    assert!(leaks.is_empty(), "leaked:\n{}", leaks.join("\n"));
    // Controls: ordinary numbers and word lists of the same shapes pass.
    for (k, body) in [
        serde_json::json!({ "x": "1.2.3.4", "order": "112-4567890-1234567" }).to_string(),
        serde_json::json!({ "pixels": [4539, 4453, 9459, 1043] }).to_string(),
        serde_json::json!({ "tags": ["border-left", "border-left-color", "border-left-style"] })
            .to_string(),
    ]
    .into_iter()
    .enumerate()
    {
        let (status, arrived) = post_plain(&env, &p, &format!("/ok{k}"), j, body.clone()).await;
        assert!(status == 200 && arrived, "{body}: {status}");
    }
    p.stop().await;
}
