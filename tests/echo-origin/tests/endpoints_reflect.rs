//! Endpoint tests: `/reflect` (the credential a request carried, in every spelling,
//! split and compressed).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::BodyExt;

mod support;
use support::*;

// ---------------------------------------------------------------- reflect

#[tokio::test]
async fn reflect_authorization_in_every_spelling() {
    let o = start().await;
    let secret = "s3cr+t/tok en?";
    let auth = format!("Authorization: Bearer {secret}");
    let out = curl(&["-D", "-", "-H", &auth, &o.http_url("/reflect")]).await;
    let s = stdout(&out);
    let (head, body) = s.split_once("\r\n\r\n").unwrap();
    let head = head.to_ascii_lowercase();
    assert!(head.contains(&format!(
        "x-reflect: bearer {}",
        secret.to_ascii_lowercase()
    )));
    assert!(head.contains(&format!("x-reflect-token: {}", secret.to_ascii_lowercase())));
    assert_eq!(body, reflect_expected(&format!("Bearer {secret}")));
    let lines: Vec<&str> = body.lines().collect();
    assert_eq!(lines.len(), 8);
    assert_eq!(lines[1], secret);
    assert_eq!(lines[2], "czNjcit0L3RvayBlbj8=");
    assert_eq!(lines[3], "czNjcit0L3RvayBlbj8");
    assert_eq!(lines[4], "s3cr%2Bt%2Ftok%20en%3F");
    assert!(lines[5].starts_with("%73%33%63%72%2B"));
    assert_eq!(lines[6], hex::encode(secret));
    assert_eq!(lines[7], hex::encode_upper(secret));
    // Basic: the whole value and the part after the space.
    let out = curl(&["-u", "user:pass", &o.http_url("/reflect")]).await;
    let body = stdout(&out);
    assert!(body.starts_with("Basic dXNlcjpwYXNz\ndXNlcjpwYXNz\n"));
}

#[tokio::test]
async fn reflect_from_query_and_from_header() {
    let o = start().await;
    let out = curl(&[&o.http_url("/reflect?from_query=key&key=abc%2Bdef")]).await;
    assert_eq!(stdout(&out), reflect_expected("abc+def"));
    let out = curl(&[
        "-H",
        "X-Api-Key: k-123",
        &o.http_url("/reflect?from_header=x-api-key"),
    ])
    .await;
    assert_eq!(stdout(&out), reflect_expected("k-123"));
    // Several sources at once: Authorization first, then the header.
    let out = curl(&[
        "-D",
        "-",
        "-H",
        "Authorization: token A1",
        "-H",
        "X-Api-Key: k-2",
        &o.http_url("/reflect?from_header=X-Api-Key"),
    ])
    .await;
    let s = stdout(&out);
    let (head, body) = s.split_once("\r\n\r\n").unwrap();
    assert!(head.contains("x-reflect-count: 2"));
    assert_eq!(
        body,
        reflect_expected("token A1") + &reflect_expected("k-2")
    );
    // Nothing to reflect.
    let out = curl(&["-D", "-", &o.http_url("/reflect")]).await;
    let s = stdout(&out);
    assert!(s.contains("x-reflect-count: 0"));
    assert!(s.ends_with("no credential\n"));
}

#[tokio::test]
async fn reflect_split_sends_the_token_in_two_frames() {
    let o = start().await;
    for proto in [Proto::H1, Proto::H2] {
        let asked = Instant::now();
        let r = rust_request(
            o.https_addr,
            Some((&o.ca, "localhost")),
            proto,
            "GET",
            "/reflect?split=1",
            &[("authorization", "Bearer SPLITTOKEN123456")],
            full(Bytes::new()),
        )
        .await;
        let mut body = r.into_body();
        let mut frames = Vec::new();
        while let Some(f) = tokio::time::timeout(T, body.frame()).await.unwrap() {
            // (HTTP/2 may end the stream with an empty DATA frame.)
            if let Ok(d) = f.unwrap().into_data() {
                if !d.is_empty() {
                    frames.push((Instant::now(), d));
                }
            }
        }
        // The two server frames stay distinct frames for the client (HTTP/2 DATA frames,
        // HTTP/1.1 chunks), though a read may cut one further: so there is a frame boundary
        // exactly in the middle of the token.
        let mut offsets = Vec::new();
        let mut at = 0;
        for (_, d) in &frames {
            at += d.len();
            offsets.push(at);
        }
        assert!(
            offsets.contains(&"Bearer SPLITTOK".len()),
            "{proto:?}: boundaries {offsets:?}"
        );
        // The second frame is sent 100 ms after the first (causal lower bound).
        assert!(frames.last().unwrap().0 - asked >= Duration::from_millis(100));
        let all: Vec<u8> = frames.iter().flat_map(|(_, d)| d.to_vec()).collect();
        assert_eq!(
            String::from_utf8(all).unwrap(),
            reflect_expected("Bearer SPLITTOKEN123456")
        );
    }
}

#[tokio::test]
async fn reflect_compressed_bodies_decode_to_the_same_text() {
    let o = start().await;
    let want = reflect_expected("Bearer zz-top-secret");
    for q in [
        "gzip=1",
        "encoding=gzip",
        "encoding=br",
        "encoding=deflate",
        "encoding=zstd",
        "encoding=gzip&split=1",
    ] {
        let url = o.http_url(&format!("/reflect?{q}"));
        // Without --compressed the raw body must not contain the token.
        let raw = curl(&["-H", "Authorization: Bearer zz-top-secret", &url]).await;
        assert!(raw.status.success());
        assert!(
            !String::from_utf8_lossy(&raw.stdout).contains("zz-top-secret"),
            "{q}"
        );
        let out = curl(&[
            "--compressed",
            "-D",
            "-",
            "-H",
            "Authorization: Bearer zz-top-secret",
            &url,
        ])
        .await;
        let s = stdout(&out);
        let (head, body) = s.split_once("\r\n\r\n").unwrap();
        let label = q
            .split('&')
            .next()
            .unwrap()
            .trim_start_matches("encoding=")
            .replace("gzip=1", "gzip");
        assert!(
            head.to_ascii_lowercase()
                .contains(&format!("content-encoding: {label}")),
            "{q}: {head}"
        );
        assert_eq!(body, want, "{q}");
    }
    // x-unknown: labelled, undecodable random bytes.
    let out = curl(&["-D", "-", &o.http_url("/reflect?encoding=x-unknown")]).await;
    assert!(out.status.success());
    let s = String::from_utf8_lossy(&out.stdout).to_ascii_lowercase();
    assert!(s.contains("content-encoding: x-unknown"));
    assert!(s.contains("content-length: 64"));
    // Unknown name.
    let out = curl(&[
        "-w",
        "%{http_code}",
        "-o",
        "/dev/null",
        &o.http_url("/reflect?encoding=lzma"),
    ])
    .await;
    assert_eq!(stdout(&out), "400");
}
