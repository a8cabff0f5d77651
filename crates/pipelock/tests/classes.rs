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
