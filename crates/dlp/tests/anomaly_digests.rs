//! Hash-sized values carry data (hostile review h10 #11): digests, UUIDs,
//! signatures, JWTs and cursors are not judged by their shape, so only the
//! alphabets real ones are written in may pass as them, each URL carries at
//! most four, and each parent a budget of new ones per minute. Also tokens
//! cut by `-`/`_` into pieces too short to judge.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod anomaly_fixtures;
mod support {
    pub mod corpus;
}

use anomaly_fixtures::{base32_lower, noise, BENIGN_URLS};
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use bottle_dlp::anomaly::{self, scan_host, scan_url};
use support::corpus;

fn uuid_from(b: &[u8]) -> String {
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

/// h10 #11: only the alphabets digests are written in pass as hash-sized.
/// Base32 (either case) at a base64 digest's length, hex in mixed case, or a
/// digest prefix in front of base32 is data, judged by its shape.
#[test]
fn digest_lengths_in_other_alphabets_are_judged_as_data() {
    let mut total = 0;
    let mut missed = Vec::new();
    for seed in 1..=20u64 {
        let data = noise(64, seed);
        let b32 = base32_lower(&data);
        let mut tokens: Vec<String> = Vec::new();
        for len in [22, 24, 27, 28, 43, 44, 64] {
            tokens.push(b32[..len].to_string());
            tokens.push(b32[..len].to_ascii_uppercase());
        }
        tokens.push(format!("sha512-{}", &b32[..88].to_ascii_uppercase()));
        tokens.push(format!("sha256:{}", &b32[..64]));
        // Hex whose letter case carries bits of its own.
        let mixed: String = hex::encode(&data[..32])
            .chars()
            .enumerate()
            .map(|(i, c)| {
                if i % 3 == 0 {
                    c.to_ascii_uppercase()
                } else {
                    c
                }
            })
            .collect();
        tokens.push(mixed);
        for t in tokens {
            total += 1;
            assert!(!anomaly::is_digest(t.as_bytes()), "{t} read as a digest");
            let u = format!("/up/{t}");
            if scan_url(&u, true).is_empty() {
                missed.push(u);
            }
        }
    }
    println!(
        "strict URL checks: {} of {total} digest-length non-digests flagged",
        total - missed.len()
    );
    assert!(missed.len() * 50 <= total, "missed:\n{}", missed.join("\n"));
    // Real digests keep passing: hex, `sha256:` hex, SRI, bare base64 MACs.
    let d = noise(64, 7);
    for ok in [
        format!("/v2/x/blobs/sha256:{}", hex::encode(&d[..32])),
        format!("/x/{}", hex::encode_upper(&d[..20])),
        format!(
            "/x?integrity=sha512-{}",
            percent(&STANDARD.encode(&d[..64]))
        ),
        format!(
            "/x?integrity=sha384-{}",
            percent(&STANDARD.encode(&d[..48]))
        ),
        format!(
            "/authorize?code_challenge={}&code_challenge_method=S256",
            URL_SAFE_NO_PAD.encode(&d[..32])
        ),
        format!("/b?sig={}", percent(&STANDARD.encode(&d[..32]))),
    ] {
        assert!(
            scan_url(&ok, true).is_empty(),
            "{ok}: {:?}",
            scan_url(&ok, true)
        );
    }
}

fn percent(s: &str) -> String {
    s.replace('+', "%2B")
        .replace('/', "%2F")
        .replace('=', "%3D")
}

/// h10 #11: more than four hash-sized values in one URL is the anomaly,
/// however they are cut: UUIDs, dotted parts of one segment, query values.
#[test]
fn hash_sized_values_are_counted_however_a_url_cuts_them() {
    let d = noise(160, 3);
    let hexes: Vec<String> = d.chunks(32).map(hex::encode).collect();
    let uuids: Vec<String> = d.chunks(16).map(uuid_from).collect();
    let urls = [
        format!("/up/{}", uuids[..5].join("/")),
        format!("/up/{}", hexes[..5].join(".")),
        format!("/up/a.{}.js", hexes[..5].join(".")),
        format!(
            "/up?{}",
            uuids[..5]
                .iter()
                .enumerate()
                .map(|(i, u)| format!("k{i}={u}"))
                .collect::<Vec<_>>()
                .join("&")
        ),
    ];
    for u in &urls {
        let f = scan_url(u, true);
        assert!(
            f.iter().any(|f| f.detector == anomaly::PATH_ENTROPY),
            "{u}: {f:?}"
        );
        assert!(scan_url(u, false).is_empty(), "default flagged {u}");
    }
    // Four ids in a REST path are ordinary.
    let rest = format!(
        "/orgs/{}/projects/{}/envs/{}/deploys/{}",
        uuids[0], uuids[1], uuids[2], uuids[3]
    );
    assert!(scan_url(&rest, true).is_empty(), "{rest}");
}

/// h10 #11: hash-sized values under the per-URL count still carry data
/// (4 x 32 bytes of "digests" a request, a new UUID host label per lookup);
/// the per-parent budget refuses the steady channel, while the whole benign
/// URL corpus sent to one parent within one window fits.
#[test]
fn a_steady_channel_of_hash_sized_values_runs_out_of_budget() {
    use bottle_dlp::anomaly::DigestBudget;
    use std::time::Instant;
    let t0 = Instant::now();
    let mut budget = DigestBudget::default();
    let mut sent = 0usize;
    let mut refused_at = None;
    for i in 0..100u64 {
        let d = noise(128, 100 + i);
        let u = format!(
            "/up/{}",
            d.chunks(32).map(hex::encode).collect::<Vec<_>>().join("/")
        );
        assert!(scan_url(&u, true).is_empty(), "per-URL checks pass it: {u}");
        match budget.observe_url("a.exfil.test", &u, t0) {
            None => sent += 128,
            Some(f) => {
                assert_eq!(f.detector, anomaly::DIGEST_BUDGET);
                refused_at = Some(i);
                break;
            }
        }
    }
    println!("digest budget: hex channel refused after {sent} bytes ({refused_at:?})");
    assert!(refused_at.is_some() && sent <= 4096, "{sent} bytes sent");
    // New UUID host labels: each passes the shape checks; 64 of them (1 KiB)
    // a minute do, the next is refused.
    let mut hosts = 0;
    for i in 0..200u64 {
        let h = format!("{}.exfil.example", uuid_from(&noise(16, 500 + i)));
        assert!(scan_host(&h).is_empty(), "{h}");
        if budget.observe_host(&h, t0).is_some() {
            break;
        }
        hosts += 1;
    }
    println!("digest budget: UUID host labels refused after {hosts}");
    assert_eq!(hosts, 64);
    // The benign URL corpus (registry blobs, wheels, commits, object ids)
    // sent to one parent at once fits, and again costs nothing.
    let mut urls: Vec<String> = corpus::urls();
    urls.extend(BENIGN_URLS.iter().map(|s| s.to_string()));
    let values: usize = urls
        .iter()
        .flat_map(|u| anomaly::digest_values(u))
        .map(|(_, d)| d.bytes)
        .sum();
    for _ in 0..2 {
        let mut fresh = DigestBudget::default();
        for u in &urls {
            assert!(
                fresh.observe_url("registry.example", u, t0).is_none(),
                "{u}"
            );
        }
        for u in &urls {
            assert!(
                fresh.observe_url("registry.example", u, t0).is_none(),
                "{u}"
            );
        }
    }
    println!(
        "digest budget: {} benign URLs carry {values} hash-sized bytes, within one parent's budget",
        urls.len()
    );
}

/// The JWT exemption went by its look (`eyJ…` parts): random bytes behind an
/// `eyJ`, or a "signature" of kilobytes, passed as a JWT. The parts must now
/// decode to JSON objects (the header naming its `alg`) and the signature be no
/// longer than an RSA-4096 one; a well-formed JWT still passes, and is charged
/// to its parent's budget by the bytes it carries.
#[test]
fn random_bytes_behind_an_eyj_are_not_a_jwt() {
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256","typ":"JWT"}"#);
    let claims = URL_SAFE_NO_PAD.encode(br#"{"sub":"1234567890","iat":1516239022}"#);
    let mut missed = Vec::new();
    for seed in 1..=20u64 {
        let data = noise(600, seed);
        let blob = |r: std::ops::Range<usize>| URL_SAFE_NO_PAD.encode(&data[r]);
        for t in [
            format!(
                "eyJ{}.eyJ{}.{}",
                blob(0..150),
                blob(150..300),
                blob(300..330)
            ),
            format!("{header}.{claims}.{}", blob(0..600)),
            format!("{header}.eyJ{}.{}", blob(0..200), blob(200..232)),
        ] {
            let u = format!("/download?token={t}");
            if scan_url(&u, true).is_empty() {
                missed.push(u);
            }
        }
    }
    assert!(missed.is_empty(), "passed as JWTs:\n{}", missed.join("\n"));
    let sig = URL_SAFE_NO_PAD.encode(noise(32, 9));
    let real = format!("/download?token={header}.{claims}.{sig}");
    assert!(scan_url(&real, true).is_empty(), "{real}");
    let charged: usize = anomaly::digest_values(&real)
        .iter()
        .map(|(_, d)| d.bytes)
        .sum();
    assert!(charged >= 90, "{charged}");
}

/// Data cut by `-` or `_` into pieces too short to judge (`6f05-f0bb-…`,
/// `n4c7b-oyjkm-…`) was too separator-heavy to look like data, at any length;
/// it is judged with its separators removed. Slugs joined still read as words.
#[test]
fn data_cut_by_dashes_or_underscores_is_judged_joined() {
    let cut = |s: &str, n: usize, sep: &str| {
        s.as_bytes()
            .chunks(n)
            .map(|c| String::from_utf8_lossy(c).to_string())
            .collect::<Vec<_>>()
            .join(sep)
    };
    let mut total = 0;
    let mut missed = Vec::new();
    for seed in 1..=20u64 {
        let d = noise(30, seed);
        let (h, b) = (hex::encode(&d), base32_lower(&d));
        for u in [
            format!("/up/{}", cut(&h, 4, "-")),
            format!("/up/{}", cut(&h, 2, "_")),
            format!("/up/{}", cut(&b, 5, "-")),
            format!("/up/x.{}.bin", cut(&b, 3, "_")),
            format!("/up?v={}", cut(&h, 3, "-")),
        ] {
            total += 1;
            if scan_url(&u, true).is_empty() {
                missed.push(u);
            }
        }
    }
    println!(
        "strict URL checks: {} of {total} dash-cut URLs flagged",
        total - missed.len()
    );
    assert!(missed.len() * 50 <= total, "missed:\n{}", missed.join("\n"));
    for ok in [
        "/questions/123/how-do-i-borrow-a-mutable-reference-twice-in-rust",
        "/en-US/docs/Web/API/Fetch_API/Using_Fetch",
        "/blog/2024-03-15-release-notes-for-the-new-build-system",
        "/wiki/List_of_programming_languages_by_type",
        "/d/left_pad_1_9_0_py3_none_any_manylinux2014_x86_64",
    ] {
        assert!(scan_url(ok, true).is_empty(), "{ok}");
    }
}
