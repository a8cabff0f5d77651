//! Issue 13 gaps: hex with separators, secrets split over JSON sibling
//! values, AWS keys in lower-case or split host labels.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support {
    pub mod corpus;
}

use bottle_dlp::{Detector, Encoding, Finding};
use bytes::Bytes;

/// A well-formed AWS access key id (not the documented example).
const KEY: &str = "AKIAVCODYLSA53PQK4ZA";
/// A well-formed GitHub token shape.
const GHP: &str = "ghp_R8vKq2LmX4nP7sT1wY9zB3cD5fG6hJ0kM2aQ";

fn hex_sep(s: &str, sep: &str) -> String {
    s.bytes()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(sep)
}

#[test]
fn hex_with_separators_is_decoded() {
    let d = Detector::builtin();
    for sep in ["-", ":", ",", " "] {
        for upper in [false, true] {
            let mut h = hex_sep(KEY, sep);
            if upper {
                h = h.to_ascii_uppercase();
            }
            let body = format!("{{\"blob\": \"{h}\"}}\n");
            let f = d.detect(body.as_bytes());
            assert!(
                f.iter()
                    .any(|f| f.detector == "aws-access-key-id" && f.encoding == Encoding::Hex),
                "sep {sep:?}: {f:?}"
            );
            // Offsets point at the encoded run.
            let at = body.find(&h[..2]).unwrap();
            assert_eq!(f[0].offset, at, "sep {sep:?}");
        }
    }
    // Through the stream scanner, cut in the middle of the run.
    let body = format!("x={}&y=1", hex_sep(GHP, "-"));
    let mut s = d.stream();
    let cut = body.len() / 2;
    let r = s
        .push(Bytes::copy_from_slice(&body.as_bytes()[..cut]))
        .and_then(|_| s.push(Bytes::copy_from_slice(&body.as_bytes()[cut..])))
        .and_then(|_| s.finish());
    assert_eq!(r.unwrap_err().detector, "github-pat");
}

#[test]
fn dash_separated_hex_lookalikes_stay_clean() {
    let d = Detector::builtin();
    let clean = [
        "id 123e4567-e89b-12d3-a456-426614174000 and 0b7e2f9c-1d4a-4f6e-9a3b-5c8d7e6f1a2b",
        "on 2024-01-02 at 10:11:12, mac aa:bb:cc:dd:ee:ff, fe80::1ff:fe23:4567:890a",
        "sha256 e3-b0-c4-42-98-fc-1c-14-9a-fb-f4-c8-99-6f-b9-24-27-ae-41-e4-64-9b-93-4c",
        "00 01 02 03 04 05 06 07 08 09 0a 0b 0c 0d 0e 0f 10 11 12 13 14 15 16 17",
    ];
    for c in clean {
        assert!(d.detect(c.as_bytes()).is_empty(), "{c}");
    }
}

fn stream_all(d: &Detector, body: &[u8], cut: usize) -> Result<(), Finding> {
    let mut s = d.stream();
    let cut = cut.min(body.len());
    s.push(Bytes::copy_from_slice(&body[..cut]))?;
    s.push(Bytes::copy_from_slice(&body[cut..]))?;
    s.finish().map(|_| ())
}

#[test]
fn secret_split_over_json_siblings_is_found_in_a_stream() {
    let d = Detector::builtin();
    let (a, b) = KEY.split_at(9);
    let (g1, g2) = GHP.split_at(17);
    let bodies = [
        format!(r#"{{"a": "{a}", "b": "{b}"}}"#),
        format!(r#"{{"model": "m", "x": "{a}", "y": "{b}", "z": 3}}"#),
        format!(r#"{{"x": "{a}", "n": 12, "o": {{"k": "v"}}, "y": "{b}"}}"#),
        format!(r#"[1, {{"q": ["{g1}", "{g2}"]}}, "tail"]"#),
        format!(
            r#"{{"a": "{}", "b": "{}", "c": "{}"}}"#,
            &KEY[..6],
            &KEY[6..12],
            &KEY[12..]
        ),
        format!(
            r#"  {{"pad": "{}", "a": "{a}", "b": "{b}"}}"#,
            "p".repeat(9000)
        ),
        format!(
            r#"{{"a": "{} {a}", "b": "{b} {}"}}"#,
            "x".repeat(5000),
            "y".repeat(5000)
        ),
    ];
    for body in &bodies {
        for cut in [1, body.len() / 3, body.len() / 2, body.len() - 2] {
            let r = stream_all(d, body.as_bytes(), cut);
            let f = r.expect_err(&format!(
                "not found at cut {cut}: {}",
                &body[..80.min(body.len())]
            ));
            assert!(
                f.detector == "aws-access-key-id" || f.detector == "github-pat",
                "{f:?}"
            );
            assert_eq!(f.encoding, Encoding::Split);
        }
        // Apart, neither piece is a finding.
        assert!(d.detect(body.as_bytes()).is_empty(), "{body}");
    }
    // Log-only mode reports it too.
    let mut s = d.stream();
    let (_, mut found) = s.push_report(Bytes::from(bodies[0].clone()));
    found.extend(s.finish_report().1);
    assert!(found.iter().any(|f| f.detector == "aws-access-key-id"));
}

#[test]
fn json_join_leaves_keys_and_non_json_alone() {
    let d = Detector::builtin();
    let (a, b) = KEY.split_at(9);
    // Not JSON: pieces in quotes are not joined (no relaxed view of prose).
    let prose = format!(r#"say "{a}" then "{b}""#);
    assert!(stream_all(d, prose.as_bytes(), 5).is_ok());
    // Ordinary JSON with short sibling values.
    let ok = r#"{"name": "AKIA", "version": "1.0.0", "list": ["A", "KIA", "abcdefghijklmnop"]}"#;
    assert!(stream_all(d, ok.as_bytes(), 7).is_ok());
}

fn hosts_all_splits(key: &str, suffix: &str) -> Vec<String> {
    let mut out = Vec::new();
    for i in 1..key.len() {
        out.push(format!("{}.{}{suffix}", &key[..i], &key[i..]));
        for j in i + 1..key.len() {
            out.push(format!(
                "{}.{}.{}{suffix}",
                &key[..i],
                &key[i..j],
                &key[j..]
            ));
        }
    }
    out
}

#[test]
fn aws_key_in_host_labels_every_split_and_case() {
    let d = Detector::builtin();
    let mut n = 0;
    for suffix in ["", ".attacker.example", ".x.y.z.example.com"] {
        for prefix in ["", "a1.", "cdn.www."] {
            for h in hosts_all_splits(KEY, suffix) {
                for host in [
                    format!("{prefix}{h}"),
                    format!("{prefix}{h}").to_ascii_lowercase(),
                ] {
                    let f = d.scan_host(&host);
                    assert!(
                        f.iter().any(|f| f.detector == "aws-access-key-id"),
                        "{host}: {f:?}"
                    );
                    n += 1;
                }
            }
        }
    }
    assert!(n > 1000);
    // One label, lower case, with more labels around it.
    assert!(!d
        .scan_host(&format!("x.{}.example.com", KEY.to_ascii_lowercase()))
        .is_empty());
}

#[test]
fn ordinary_hosts_stay_clean() {
    let d = Detector::builtin();
    let mut hosts: Vec<String> = [
        "api.github.com",
        "objects.githubusercontent.com",
        "registry.npmjs.org",
        "pypi.org",
        "files.pythonhosted.org",
        "static.crates.io",
        "index.crates.io",
        "s3.us-east-1.amazonaws.com",
        "akiapress.s3.eu-west-2.amazonaws.com",
        "akiaflowersandgardens.example.com",
        "cdn.akiastudio.net",
        "my-bucket-2024.s3.eu-west-2.amazonaws.com",
        "d111111abcdef8.cloudfront.net",
        "ec2-203-0-113-25.compute-1.amazonaws.com",
        "api.anthropic.com",
        "generativelanguage.googleapis.com",
        "abcdefghijklmnop.supabase.co",
        "xn--bcher-kva.example",
        "localhost",
        "127.0.0.1",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    // Every host named in the corpus (package locks, metadata, docs).
    for (_, bytes) in support::corpus::files() {
        let text = String::from_utf8_lossy(&bytes);
        for part in text.split("://").skip(1) {
            let host: String = part
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '.' || *c == '-')
                .collect();
            if host.contains('.') {
                hosts.push(host);
            }
        }
    }
    hosts.sort();
    hosts.dedup();
    assert!(hosts.len() > 15, "{}", hosts.len());
    let bad: Vec<String> = hosts
        .iter()
        .filter(|h| !d.scan_host(h).is_empty())
        .map(|h| format!("{h}: {:?}", d.scan_host(h)))
        .collect();
    assert!(bad.is_empty(), "{bad:?}");
    // Known limit: labels that start with `akia` and glue to exactly 16 more
    // base32 characters with a digit read as a key id (upper-cased view).
    assert!(!d.scan_host("akiapress.s3.amazonaws.com").is_empty());
}

#[test]
fn separated_hex_is_found_at_every_offset_and_length_bound() {
    let d = Detector::builtin();
    let h = hex_sep(KEY, "-");
    for pad in 0..40 {
        for tail in ["", "z", " more text"] {
            let body = format!("{}{h}{tail}", "z ".repeat(pad / 2) + &"z".repeat(pad % 2));
            assert!(
                d.detect(body.as_bytes())
                    .iter()
                    .any(|f| f.detector == "aws-access-key-id"),
                "pad {pad} tail {tail:?}"
            );
        }
    }
    // A stray hex digit glued to either end does not hide the run.
    assert!(!d.detect(format!("a{h}b").as_bytes()).is_empty());
}

/// `s` percent-encoded as a form or query value (every byte but unreserved
/// ones; a space as `+` when `plus`).
fn pct(s: &str, plus: bool) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            b' ' if plus => "+".to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// JSON objects and arrays whose sibling values carry a split token.
fn split_json_values() -> Vec<String> {
    let (a, b) = KEY.split_at(9);
    let (g1, g2) = GHP.split_at(17);
    vec![
        format!(r#"{{"a":"{a}","b":"{b}"}}"#),
        format!(r#"{{"q": "find", "x": "{a}", "y": "{b}", "n": 3}}"#),
        format!(r#"["{g1}", "{g2}"]"#),
        format!(
            r#"{{"a":"{}","b":"{}","c":"{}"}}"#,
            &KEY[..6],
            &KEY[6..12],
            &KEY[12..]
        ),
    ]
}

#[test]
fn secret_split_over_json_siblings_in_a_query_value_is_found() {
    let d = Detector::builtin();
    for json in split_json_values() {
        for (form, plus) in [("raw", false), ("percent", false), ("plus", true)] {
            let value = if form == "raw" {
                json.replace(' ', "%20")
            } else {
                pct(&json, plus)
            };
            let url = format!("/api/search?page=2&q={value}&lang=en");
            let f = d.scan_url(&url);
            assert!(
                f.iter()
                    .any(|f| f.detector == "aws-access-key-id" || f.detector == "github-pat"),
                "{form}: {url}: {f:?}"
            );
            // The finding covers the value, and redaction removes it.
            let red = bottle_dlp::redact_url(&url, &f);
            assert!(
                !red.contains(&KEY[..9]) && !red.contains(&GHP[..17]),
                "{red}"
            );
        }
        // Each piece alone in its own parameter is no finding: only the
        // JSON siblings inside one value are joined this way.
        assert!(d
            .scan_url("/api/search?q=%7B%22a%22%3A%22x%22%7D")
            .is_empty());
    }
}

#[test]
fn secret_split_over_json_siblings_in_a_form_value_is_found() {
    let d = Detector::builtin();
    for json in split_json_values() {
        for (form, plus) in [("raw", false), ("percent", false), ("plus", true)] {
            let value = if form == "raw" {
                json.clone()
            } else {
                pct(&json, plus)
            };
            let body = format!("csrf=k3J9x&payload={value}&submit=Send");
            // Apart from the join, neither piece is a finding.
            assert!(d.detect(body.as_bytes()).is_empty(), "{body}");
            for cut in [1, 9, body.len() / 2, body.len() - 3] {
                let f = stream_all(d, body.as_bytes(), cut)
                    .expect_err(&format!("{form} cut {cut}: {body}"));
                assert_eq!(f.encoding, Encoding::Split, "{f:?}");
            }
            // Log-only mode reports it too.
            let mut s = d.stream();
            let (_, mut found) = s.push_report(Bytes::from(body.clone()));
            found.extend(s.finish_report().1);
            assert!(!found.is_empty(), "{form} report: {body}");
        }
    }
}

#[test]
fn form_and_query_json_view_leaves_ordinary_values_alone() {
    let d = Detector::builtin();
    let ok_form = [
        r#"name=Ada&filter={"status":"open","labels":["bug","help wanted"],"per_page":100}"#,
        "a=1&b=%7B%22sha%22%3A%225f8ac1ac41dd2c7eb591%22%2C%22ref%22%3A%22main%22%7D",
        // Not a form: prose with an equals sign and JSON-looking pieces.
        r#"x = {"a": "AKIAVCODY", "b": "LSA53PQK4ZA"} is how not to do it"#,
    ];
    for body in ok_form {
        assert!(stream_all(d, body.as_bytes(), 7).is_ok(), "{body}");
    }
    let ok_url =
        "/search?q=%7B%22author%22%3A%22ada%22%2C%22tags%22%3A%5B%22rust%22%2C%22dlp%22%5D%7D";
    assert!(d.scan_url(ok_url).is_empty());
}

#[test]
fn secret_split_over_plain_form_fields_or_ndjson_lines_is_found_wherever_cut() {
    let d = Detector::builtin();
    let (g1, g2) = GHP.split_at(17);
    let (k1, k2) = KEY.split_at(9);
    let bodies = [
        format!("a={g1}&b={g2}"),
        format!("q=search&a={g1}&b={g2}&page=2"),
        format!("a={k1}&b=%{:02X}{}", k2.as_bytes()[0], &k2[1..]),
        format!("a={g1}&b=&c={}", g2.replace('M', "%4D")),
        format!("{{\"a\":\"{g1}\"}}\n{{\"b\":\"{g2}\"}}\n"),
        format!("{{\"a\":\"{k1}\",\"n\":1}}\r\n{{\"n\":2}}\r\n{{\"b\":\"{k2}\"}}"),
    ];
    for body in &bodies {
        for cut in 0..=body.len() {
            let f = stream_all(d, body.as_bytes(), cut).expect_err(body);
            assert_eq!(f.encoding, Encoding::Split, "{body} cut {cut}");
        }
    }
    // Ordinary forms and logs: values that end and start with words.
    let ok = [
        "grant_type=authorization_code&redirect_uri=https%3A%2F%2Fexample.com%2Fcallback&state=af0ifjsldkj",
        "name=Ada+Lovelace&email=ada%40example.com&message=Hello+there&submit=Send",
        "{\"level\":\"info\",\"msg\":\"request handled\"}\n{\"level\":\"debug\",\"msg\":\"cache miss for user_profile\"}\n",
    ];
    for body in ok {
        assert!(stream_all(d, body.as_bytes(), 5).is_ok(), "{body}");
    }
}
