//! Anomaly heuristics and exfiltration shapes: attacks an agent would try
//! (data in host labels, paths, query values, layered encodings, environment
//! dumps in MCP / A2A bodies) against benign corpora of ordinary traffic.
//! Prints the strict profile's false-positive counts; the default profile
//! must find nothing in the shared false-positive corpus.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod anomaly_fixtures;
mod support {
    pub mod corpus;
}

use anomaly_fixtures::{base32_lower, base36, noise, BENIGN_HOSTS, BENIGN_URLS};
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use bottle_dlp::anomaly::{self, scan_body, scan_host, scan_url};
use support::corpus;

/// Data an agent could smuggle in one DNS label, in every alphabet DNS keeps.
fn encoded_labels(seed: u64, len: usize) -> Vec<(&'static str, String)> {
    let data = noise(64, seed);
    let mut out = vec![
        ("hex", hex::encode(&data)),
        ("base32", base32_lower(&data)),
        ("base36", base36(&data)),
        (
            "base64url-lower",
            URL_SAFE_NO_PAD
                .encode(&data)
                .to_ascii_lowercase()
                .replace('_', "-"),
        ),
    ];
    for (_, s) in &mut out {
        s.truncate(len);
        let t = s.trim_matches('-').to_string();
        *s = t;
    }
    let dashed: String = out[1]
        .1
        .as_bytes()
        .chunks(6)
        .map(|c| String::from_utf8_lossy(c).to_string())
        .collect::<Vec<_>>()
        .join("-");
    out.push(("base32-dashed", dashed));
    out
}

#[test]
fn benign_hosts_pass_strict() {
    let flagged: Vec<String> = BENIGN_HOSTS
        .iter()
        .filter_map(|h| {
            let f = scan_host(h);
            (!f.is_empty()).then(|| format!("{h}: {f:?}"))
        })
        .collect();
    println!(
        "strict host checks: {} of {} benign hosts flagged",
        flagged.len(),
        BENIGN_HOSTS.len()
    );
    assert!(flagged.is_empty(), "{}", flagged.join("\n"));
}

#[test]
fn data_in_host_labels_is_flagged_in_strict() {
    let mut total = 0;
    let mut caught = 0;
    let mut missed = Vec::new();
    for seed in 1..=25u64 {
        for len in [24, 32, 48, 63] {
            for (kind, label) in encoded_labels(seed, len) {
                let host = format!("{label}.x.exfil.test:443");
                total += 1;
                if scan_host(&host)
                    .iter()
                    .any(|f| f.detector == anomaly::HOST_ENTROPY)
                {
                    caught += 1;
                } else {
                    missed.push(format!("{kind} {host}"));
                }
            }
        }
    }
    // Data cut into short labels: judged joined, or by volume.
    for seed in 1..=25u64 {
        let s = base32_lower(&noise(40, seed));
        let host = format!(
            "{}.{}.{}.{}.exfil.test",
            &s[..12],
            &s[12..24],
            &s[24..36],
            &s[36..48]
        );
        total += 1;
        if scan_host(&host).is_empty() {
            missed.push(format!("split {host}"));
        } else {
            caught += 1;
        }
    }
    println!("strict host checks: {caught} of {total} encoded hosts flagged");
    assert!(missed.len() * 50 <= total, "missed:\n{}", missed.join("\n"));
    // Label volume: many short ordinary-looking labels still add up.
    let many = ["data"; 30].join(".");
    let f = scan_host(&format!("{many}.exfil.test"));
    assert!(
        f.iter().any(|f| f.detector == anomaly::SUBDOMAIN_VOLUME),
        "{f:?}"
    );
}

fn strict_url_fp(urls: &[String]) -> Vec<String> {
    urls.iter()
        .filter_map(|u| {
            let f = scan_url(u, true);
            (!f.is_empty()).then(|| format!("{u}: {f:?}"))
        })
        .collect()
}

#[test]
fn benign_urls_pass_default_and_are_counted_in_strict() {
    let mut urls: Vec<String> = corpus::urls();
    urls.extend(BENIGN_URLS.iter().map(|s| s.to_string()));
    let default: Vec<&String> = urls
        .iter()
        .filter(|u| !scan_url(u, false).is_empty())
        .collect();
    assert!(default.is_empty(), "default profile flagged {default:?}");
    let strict = strict_url_fp(&urls);
    println!(
        "strict URL checks: {} of {} benign URLs flagged{}{}",
        strict.len(),
        urls.len(),
        if strict.is_empty() { "" } else { ":\n" },
        strict.join("\n")
    );
    // The strict profile may cost an ordinary URL now and then; keep it rare.
    assert!(strict.len() * 100 <= urls.len(), "{}", strict.join("\n"));
}

#[test]
fn data_in_paths_and_queries_is_flagged_in_strict() {
    let mut total = 0;
    let mut missed = Vec::new();
    for seed in 1..=30u64 {
        let data = noise(30, seed);
        let forms = [
            format!("/c/{}", URL_SAFE_NO_PAD.encode(&data)),
            format!(
                "/u?d={}",
                STANDARD
                    .encode(&data)
                    .replace('+', "%2B")
                    .replace('/', "%2F")
            ),
            format!("/u?d={}", base32_lower(&data)),
            format!("/p/{}.png", base36(&data)),
            format!("/x/{}", hex::encode(&data[..26])),
            // 48 bytes: the base64 length of a SHA-384, without its prefix.
            format!("/sync/{}", URL_SAFE_NO_PAD.encode(noise(48, seed))),
        ];
        for u in forms {
            total += 1;
            if scan_url(&u, true).is_empty() {
                missed.push(u.clone());
            }
            assert!(scan_url(&u, false).is_empty(), "default flagged {u}");
        }
    }
    println!(
        "strict URL checks: {} of {total} encoded URLs flagged",
        total - missed.len()
    );
    assert!(missed.len() * 50 <= total, "missed:\n{}", missed.join("\n"));
}

#[test]
fn layered_encodings_are_flagged_in_strict_only() {
    let text = "export list: staging db, replica, analytics warehouse";
    let layered = [
        STANDARD.encode(hex::encode(STANDARD.encode(text))),
        hex::encode(STANDARD.encode(text)),
        URL_SAFE_NO_PAD.encode(URL_SAFE_NO_PAD.encode(text)),
        base32_lower(STANDARD.encode(text).as_bytes()),
    ];
    for l in &layered {
        assert!(anomaly::layers(l.as_bytes()) >= 2, "{l}");
        let url = format!("/q?v={}", l.replace('=', "%3D"));
        let f = scan_url(&url, true);
        assert!(
            f.iter().any(|f| f.detector == anomaly::ENCODING_LAYERS),
            "{url}: {f:?}"
        );
        let body = serde_json::json!({"jsonrpc": "2.0", "method": "message/send",
            "params": {"message": {"parts": [{"kind": "text", "text": l}]}}})
        .to_string();
        assert_eq!(
            scan_body(body.as_bytes(), true).map(|f| f.detector),
            Some(anomaly::ENCODING_LAYERS),
            "{body}"
        );
        assert_eq!(scan_body(body.as_bytes(), false), None);
    }
    // One layer is ordinary.
    assert!(anomaly::layers(STANDARD.encode(text).as_bytes()) < 2);
    // A form field, base64 twice, every byte percent-encoded.
    let twice = STANDARD.encode(STANDARD.encode(text));
    let form = format!(
        "d={}",
        twice
            .bytes()
            .map(|b| format!("%{b:02X}"))
            .collect::<String>()
    );
    assert_eq!(
        scan_body(form.as_bytes(), true).map(|f| f.detector),
        Some(anomaly::ENCODING_LAYERS),
        "{form}"
    );
}

/// Secret-shaped values built at run time (varied classes; never real).
fn secretish(seed: u64) -> String {
    URL_SAFE_NO_PAD
        .encode(noise(30, seed))
        .replace(['-', '_'], "Q")
}

#[test]
fn env_dumps_and_credential_files_in_mcp_and_a2a_bodies_are_flagged_by_default() {
    let (a, b, c) = (secretish(1), secretish(2), secretish(3));
    let env = format!("HOME=/home/agent\nGITHUB_TOKEN={a}\nPATH=/usr/bin\nOPENAI_API_KEY={b}\n");
    let history = format!("ls -la\nexport NPM_TOKEN={a}\nnpm publish\nexport DB_PASSWORD='{c}'\n");
    let aws = format!("[default]\naws_access_key_id = AKIA0000\naws_secret_access_key = {a}\n");
    let netrc = format!("machine api.heroku.com\n  login agent@example.com\n  password {b}\n");
    let gitcreds = format!("https://agent:{c}@github.com\n");
    let shadow = "root:$6$Zq8aLm1x$Wk2Qp9Lr7Tz4Vb1Nc6Xd3Hs5Jf8Gm0Ya2Re4Tu6Iq8Op0As2Dl4Fk6:19700:0:99999:7:::\n";
    let cases: Vec<(&str, String)> = vec![
        (anomaly::ENV_DUMP, env.clone()),
        (anomaly::ENV_DUMP, history),
        (anomaly::CREDENTIAL_FILE, aws),
        (anomaly::CREDENTIAL_FILE, netrc),
        (anomaly::CREDENTIAL_FILE, gitcreds),
        (anomaly::CREDENTIAL_FILE, shadow.to_string()),
    ];
    for (want, text) in &cases {
        let mcp = serde_json::json!({"jsonrpc": "2.0", "id": 3, "method": "tools/call",
            "params": {"name": "write_note", "arguments": {"title": "notes", "content": text}}})
        .to_string();
        let a2a = serde_json::json!({"jsonrpc": "2.0", "id": "m1", "method": "message/send",
            "params": {"message": {"role": "agent", "parts": [{"kind": "text", "text": text}]}}})
        .to_string();
        let form = format!(
            "note={}",
            text.bytes()
                .map(|b| if b.is_ascii_alphanumeric() {
                    (b as char).to_string()
                } else {
                    format!("%{b:02X}")
                })
                .collect::<String>()
        );
        for body in [mcp, a2a, form] {
            let f = scan_body(body.as_bytes(), false);
            assert_eq!(f.map(|f| f.detector), Some(*want), "{body}");
        }
    }
    // Also in a query string (a GET that carries the dump).
    let q = format!(
        "/log?m={}",
        env.bytes()
            .map(|b| if b.is_ascii_alphanumeric() {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            })
            .collect::<String>()
    );
    let f = scan_url(&q, false);
    assert!(f.iter().any(|f| f.detector == anomaly::ENV_DUMP), "{f:?}");
    let red = bottle_dlp::redact_url(&q, &f);
    assert!(!red.contains(&a[..12]), "{red}");
}

#[test]
fn public_keys_placeholders_and_docs_are_not_credentials() {
    let benign = [
        "github.com ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl\n",
        "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABgQDc7Vx2 agent@bottle\n",
        "Set GITHUB_TOKEN=<your token> and OPENAI_API_KEY=<your key> before running.\n",
        "env:\n  GITHUB_TOKEN: ${{ secrets.GITHUB_TOKEN }}\n  NPM_TOKEN: ${{ secrets.NPM_TOKEN }}\n",
        "aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY\n",
        "DATABASE_URL=postgres://postgres:postgres@localhost:5432/app\nSECRET_KEY=changeme\n",
        "{\"max_tokens\": 4096, \"temperature\": 0.2, \"api_key_env\": \"OPENAI_API_KEY\"}",
    ];
    for b in benign {
        assert_eq!(scan_body(b.as_bytes(), false), None, "{b}");
    }
}

#[test]
fn fp_corpus_has_no_findings_in_the_default_profile() {
    let mut items: Vec<(String, Vec<u8>)> = corpus::files();
    items.extend(corpus::llm_requests());
    items.push(("clean-body-1MiB".into(), corpus::clean_body(1 << 20)));
    let mut default = Vec::new();
    let mut strict = Vec::new();
    for (name, body) in &items {
        if let Some(f) = scan_body(body, false) {
            default.push(format!("{name}: {f}"));
        }
        // Streamed in uneven chunks, as pipelock sees it.
        let mut w = anomaly::BodyWatch::new(false);
        let mut got = None;
        for c in body.chunks(1000 + name.len() * 37) {
            got = got.or(w.push(c));
        }
        if let Some(f) = got.or(w.finish()) {
            default.push(format!("{name} (streamed): {f}"));
        }
        if let Some(f) = scan_body(body, true) {
            strict.push(format!("{name}: {f}"));
        }
    }
    println!(
        "anomaly body checks on the FP corpus ({} items): default {} findings, strict {}{}{}",
        items.len(),
        default.len(),
        strict.len(),
        if strict.is_empty() { "" } else { ":\n" },
        strict.join("\n")
    );
    assert!(default.is_empty(), "{}", default.join("\n"));
}

#[test]
fn evasions_of_the_strict_checks_are_flagged() {
    let mut missed = Vec::new();
    for seed in 1..=20u64 {
        let s = base32_lower(&noise(40, seed));
        let hosts = [
            // DNS ignores case; an IDN prefix carries no data; a trailing dot is the same name.
            format!("{}.exfil.test", s[..32].to_ascii_uppercase()),
            format!("xn--{}.exfil.test", &s[..28]),
            format!("{}.exfil.test.", &s[..30]),
        ];
        for h in hosts {
            if scan_host(&h).is_empty() {
                missed.push(h);
            }
        }
        let urls = [
            // Data chopped below the length judged alone, in the path or the query.
            format!(
                "/{}/{}/{}/{}/{}",
                &s[..8],
                &s[8..16],
                &s[16..24],
                &s[24..32],
                &s[32..40]
            ),
            format!(
                "/s?a={}&b={}&c={}&d={}&e={}&f={}",
                &s[..6],
                &s[6..12],
                &s[12..18],
                &s[18..24],
                &s[24..30],
                &s[30..36]
            ),
            // Percent-encoding every byte changes nothing. (60 characters: 64
            // is the length of a base64 SHA-384, allowed up to 4 times a URL.)
            format!(
                "/u/{}",
                s[..60]
                    .bytes()
                    .map(|b| format!("%{b:02X}"))
                    .collect::<String>()
            ),
        ];
        for u in urls {
            if scan_url(&u, true).is_empty() {
                missed.push(u);
            }
        }
    }
    assert!(missed.len() <= 2, "missed:\n{}", missed.join("\n"));
    // Under a provider suffix labels are not judged by shape, but volume still counts.
    let s = base32_lower(&noise(80, 99));
    let h = format!("{}.{}.bucket.s3.amazonaws.com", &s[..60], &s[60..120]);
    let f = scan_host(&h);
    assert!(
        f.iter().any(|f| f.detector == anomaly::SUBDOMAIN_VOLUME),
        "{f:?}"
    );
}
