//! Unit tests: one true positive and at least one near miss per detector,
//! encodings, known secrets, streaming, URLs, headers and redaction.

use super::*;
use base64::Engine as _;

/// Deterministic filler so test tokens look random (validators check entropy).
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn pick(&mut self, set: &[u8], n: usize) -> String {
        (0..n)
            .map(|_| set[(self.next() % set.len() as u64) as usize] as char)
            .collect()
    }
}

const ALNUM: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

/// Expand `{k:n}` placeholders: A alnum, a [a-z0-9], h hex, u [A-Z0-9],
/// U base32 [A-Z2-7], d digits, b base64, w base64url, 5 base58, g bech32.
pub(crate) fn fill(t: &str, seed: u64) -> String {
    let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
    let mut out = String::new();
    let mut rest = t;
    while let Some(i) = rest.find('{') {
        let Some(j) = rest[i..].find('}') else { break };
        let spec = &rest[i + 1..i + j];
        let Some((k, n)) = spec.split_once(':') else {
            out.push_str(&rest[..i + j + 1]);
            rest = &rest[i + j + 1..];
            continue;
        };
        let Ok(n) = n.parse::<usize>() else {
            out.push_str(&rest[..i + j + 1]);
            rest = &rest[i + j + 1..];
            continue;
        };
        out.push_str(&rest[..i]);
        let set: &[u8] = match k {
            "A" => ALNUM,
            "a" => b"abcdefghijklmnopqrstuvwxyz0123456789",
            "h" => b"0123456789abcdef",
            "u" => b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789",
            "U" => b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567",
            "d" => b"0123456789",
            "b" => b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/",
            "w" => b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_",
            "5" => b"123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz",
            "g" => b"QPZRY9X8GF2TVDW0S3JN54KHCE6MUA7L",
            _ => ALNUM,
        };
        out.push_str(&rng.pick(set, n));
        rest = &rest[i + j + 1..];
    }
    out.push_str(rest);
    out
}

/// (detector, true positive, near misses that must yield no finding at all)
pub(crate) const TABLE: &[(&str, &str, &[&str])] = &[
    ("aws-access-key-id", "key AKIA{U:16} end", &["id=AKIAIOSFODNN7EXAMPLE", "AKIA{U:12} x", "xAKIA{U:16}"]),
    ("aws-secret-access-key", "aws_secret_access_key = {b:40}\n", &["aws_secret_access_key = {b:30}\n", "aws_secret_access_key = os.environ['AWS_KEY']"]),
    ("gcp-service-account-key", "{\"type\": \"service_account\", \"project_id\": \"p\"}", &["{\"kind\": \"service_account\"}", "the service_account type"]),
    ("google-api-key", "key=AIza{w:35}&x", &["AIza{w:20} tail"]),
    ("google-oauth-client-secret", "GOCSPX-{w:28}", &["GOCSPX-{w:12}"]),
    ("google-oauth-access-token", "Bearer ya29.{w:120}", &["ya29.{w:10}"]),
    ("google-oauth-refresh-token", "\"rt\": \"1//0{w:80}\"", &["1//0{w:20}"]),
    ("google-oauth-client-id", "123456789012-{a:32}.apps.googleusercontent.com", &["32555940559.apps.googleusercontent.com"]),
    ("azure-storage-account-key", "DefaultEndpointsProtocol=https;AccountName=a;AccountKey={b:86}==;EndpointSuffix=core.windows.net", &["AccountKey={b:40}==;"]),
    ("azure-ad-client-secret", "secret: abc8Q~{w:34} ", &["abc8Q~short"]),
    ("alibaba-access-key-id", "LTAI{A:20} ", &["LTAI{A:6} "]),
    ("digitalocean-token", "dop_v1_{h:64}", &["dop_v1_{h:30}"]),
    ("hashicorp-vault-token", "hvs.{w:90}", &["hvs.short"]),
    ("terraform-cloud-token", "{A:14}.atlasv1.{w:67}", &["{A:14}.atlasv1.{w:20}"]),
    ("vercel-token", "vercel_{A:24}", &["vercel_{A:10}"]),
    ("supabase-key", "sb_secret_{w:32}", &["sb_secret_{w:8}"]),
    ("heroku-api-key", "HRKU-{w:60}", &["HRKU-{w:30}"]),
    ("netlify-token", "nfp_{A:36}", &["nfp_{A:20}"]),
    ("fly-io-token", "FlyV1 fm2_{b:150}", &["fm2_{b:50}"]),
    ("tailscale-key", "tskey-auth-{A:12}-{A:30}", &["tskey-auth-{A:12}"]),
    ("dynatrace-token", "dt0c01.{u:24}.{u:64}", &["dt0c01.{u:24}"]),
    ("doppler-token", "dp.pt.{A:43}", &["dp.pt.{A:20}"]),
    ("1password-service-account-token", "ops_eyJ{b:200}", &["ops_eyJ{b:50}"]),
    ("github-pat", "token ghp_{A:36}\n", &["ghp_{A:35}", "ghp_{A:40}"]),
    ("github-oauth-token", "gho_{A:36}", &["gho_{A:30}"]),
    ("github-user-token", "ghu_{A:36}", &["ghu_{A:30}"]),
    ("github-app-token", "ghs_{A:36}", &["ghs_{A:30}"]),
    ("github-refresh-token", "ghr_{A:76}", &["ghr_{A:30}"]),
    ("github-fine-grained-pat", "github_pat_{A:22}_{A:59}", &["github_pat_{A:30}"]),
    ("gitlab-pat", "glpat-{w:20}", &["glpat-{w:10}"]),
    ("gitlab-token", "glrt-{w:20}", &["glrt-abc"]),
    ("bitbucket-app-password", "ATBB{A:32}", &["ATBB{A:16}"]),
    ("atlassian-api-token", "ATATT3{w:180}", &["ATATT3{w:20}"]),
    ("npm-token", "//registry.npmjs.org/:_authToken=npm_{A:36}", &["npm_{A:20}"]),
    ("pypi-token", "pypi-AgEIcHlwaS5vcmc{w:70}", &["pypi-AgE{w:10}"]),
    ("rubygems-api-key", "rubygems_{h:48}", &["rubygems_{h:20}"]),
    ("nuget-api-key", "oy2{a:43}", &["oy2{a:20}"]),
    ("crates-io-token", "token = \"cio{A:32}\"", &["cio{A:20}", "precious{A:32}"]),
    ("dockerhub-pat", "dckr_pat_{w:27}", &["dckr_pat_{w:10}"]),
    ("jfrog-token", "AKCp{A:69}", &["AKCp{A:30}"]),
    ("sonarqube-token", "sqp_{h:40}", &["sqp_{h:20}"]),
    ("buildkite-token", "bkua_{h:40}", &["bkua_{h:20}"]),
    ("circleci-token", "CCIPAT_{A:22}_{h:40}", &["CCIPAT_{A:22}"]),
    ("postman-api-key", "PMAK-{h:24}-{h:34}", &["PMAK-{h:24}"]),
    ("slack-token", "xoxb-{d:12}-{d:13}-{A:24}", &["xoxb-123"]),
    ("slack-app-token", "xapp-1-A{u:10}-{d:13}-{a:64}", &["xapp-1-abc"]),
    ("slack-webhook", "https://hooks.slack.com/services/T{u:8}/B{u:8}/{A:24}", &["https://hooks.slack.com/services/"]),
    ("discord-bot-token", "Bot MT{A:24}.{w:6}.{w:38}", &["MT{A:24}.{w:6}.{w:10}"]),
    ("discord-webhook", "https://discord.com/api/webhooks/{d:18}/{w:68}", &["https://discord.com/api/webhooks/{d:18}/short"]),
    ("telegram-bot-token", "bot{d:10}:AA{w:33}/getMe", &["{d:10}:AA{w:10}"]),
    ("twilio-api-key", "SK{h:32}", &["SK{h:31}"]),
    ("sendgrid-api-key", "SG.{w:22}.{w:43}", &["SG.{w:22}"]),
    ("mailgun-api-key", "api:key-{h:32}", &["key-{h:16}"]),
    ("mailchimp-api-key", "{h:32}-us12", &["{h:32}-usa"]),
    ("newrelic-api-key", "NRAK-{u:27}", &["NRAK-{u:10}"]),
    ("linear-api-key", "lin_api_{A:40}", &["lin_api_{A:20}"]),
    ("notion-token", "ntn_{A:46}", &["ntn_{A:20}"]),
    ("sentry-token", "sntrys_{b:120}", &["sntrys_{b:20}"]),
    ("shopify-token", "shpat_{h:32}", &["shpat_{h:16}"]),
    ("grafana-token", "glsa_{A:32}_{h:8}", &["glsa_{A:32}"]),
    ("figma-token", "figd_{w:40}", &["figd_{w:20}"]),
    ("stripe-secret-key", "sk_live_{A:24}", &["sk_live_{A:10}", "pk_live_{A:24}"]),
    ("stripe-webhook-secret", "whsec_{A:32}", &["whsec_{A:10}"]),
    ("square-token", "sq0atp-{w:22}", &["sq0atp-{w:10}"]),
    ("braintree-access-token", "access_token$production${a:16}${h:32}", &["access_token$production$abc"]),
    ("anthropic-api-key", "x-api-key: sk-ant-api03-{w:93}AA", &["sk-ant-api03-{w:10}"]),
    ("openai-api-key", "sk-proj-{w:120}", &["sk-proj-{w:10}"]),
    ("openrouter-api-key", "sk-or-v1-{h:64}", &["sk-or-v1-{h:20}"]),
    ("llm-api-key", "sk-{A:48}", &["sk-{A:20}", "task-{A:48}"]),
    ("huggingface-token", "hf_{A:34}", &["hf_{A:20}"]),
    ("replicate-api-token", "r8_{A:37}", &["r8_{A:20}"]),
    ("groq-api-key", "gsk_{A:52}", &["gsk_{A:20}"]),
    ("xai-api-key", "xai-{A:80}", &["xai-{A:20}"]),
    ("perplexity-api-key", "pplx-{A:48}", &["pplx-{A:20}"]),
    ("fireworks-api-key", "fw_{A:24}", &["fw_{A:10}"]),
    ("together-api-key", "tok_{A:40}", &["tok_{A:10}"]),
    ("pinecone-api-key", "pcsk_{A:5}_{A:60}", &["pcsk_{A:5}"]),
    ("databricks-token", "dapi{h:32}", &["dapi{h:16}"]),
    ("langsmith-api-key", "lsv2_pt_{h:32}_{h:10}", &["lsv2_pt_{h:32}"]),
    ("elevenlabs-api-key", "sk_{h:48}", &["sk_{h:20}"]),
    ("mapbox-secret-token", "sk.eyJ{w:80}.{w:22}", &["pk.eyJ{w:80}.{w:22}"]),
    ("private-key", "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA{b:64}\n", &["-----BEGIN PUBLIC KEY-----\nMIIB{b:64}\n", "if line == \"-----BEGIN RSA PRIVATE KEY-----\" {"]),
    ("private-key", "-----BEGIN OPENSSH PRIVATE KEY-----\\nb3BlbnNzaC1rZXktdjEAAAAA{b:64}\\n", &["-----BEGIN CERTIFICATE-----\n{b:64}\n"]),
    ("private-key", "-----BEGIN EC PRIVATE KEY-----\r\nMHcCAQEEI{b:64}\r\n", &["-----BEGIN EC PARAMETERS-----\n{b:64}\n"]),
    ("private-key", "-----BEGIN PGP PRIVATE KEY BLOCK-----\n\nlQdGBF{b:64}\n", &["-----BEGIN PGP PUBLIC KEY BLOCK-----\n\nmQ{b:64}\n"]),
    ("putty-private-key", "PuTTY-User-Key-File-3: ssh-ed25519\nEncryption: none\n", &["PuTTY-User-Key-File-3 is the format"]),
    ("age-secret-key", "AGE-SECRET-KEY-1{g:58}", &["AGE-SECRET-KEY-1{g:20}"]),
    ("jwt", "Authorization: Bearer eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.{w:43}", &["eyJhbGciOiJub25lIn0.eyJzdWIiOiIxIn0."]),
    ("bip32-extended-private-key", "xprv9s21ZrQH143K{5:95}", &["xpub{5:107}"]),
    ("bitcoin-wif-private-key", "wif: KwDiBf89QgGbjEhKnhXJuH7LrciVrZi3qYjgd9M7rFU73sVHnoWn\n", &["wif: KwDiBf89QgGbjEhKnhXJuH7LrciVrZi3qYjgd9M7rFU73sVHnoWm\n", "{5:51}"]),
    ("hex-private-key", "private_key: \"0x{h:64}\"", &["private_key: \"0x{h:40}\"", "tx_hash: 0x{h:64}"]),
    ("connection-string-password", "DATABASE_URL=postgres://app:{A:16}@db.internal:5432/app", &["postgres://postgres:postgres@localhost:5432/db", "postgres://user:${DB_PASSWORD}@db/app", "mongodb+srv://cluster0.example.net/db"]),
    ("url-credential-param", "GET /api?user=x&password={A:20} HTTP/1.1", &["/api?password=changeme123456", "/list?page_token={A:20}"]),
    // data classes (classes/): validated, public test values allowed
    ("payment-card-number", "card: 4442 3232 2183 4066\n", &["card: 4442 3232 2183 4067\n", "card: 4111 1111 1111 1111", "ts=1733530000000 order 4539578763621480"]),
    ("payment-card-number", "{\"pan\":\"375216760603273\",\"exp\":\"12/29\"}", &["{\"pan\":\"378282246310005\"}", "pi = 3.375216760603273"]),
    ("iban", "IBAN: DE96 4991 7850 0552 7888 73\n", &["IBAN: DE96 4991 7850 0552 7888 74\n", "IBAN: DE89 3704 0044 0532 0130 00"]),
    ("iban", "iban=GB85NWBK34068224634693&x=1", &["iban=GB85NWBK34068224634694&x=1"]),
    ("bip39-seed-phrase", "seed: work help stem burden position retire smart gorilla tackle happy bless pizza\n", &["seed: arrow rigid click pond video seed chicken journey ice milk odor despair\n", "abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon about"]),
    ("env-secret-assignment", "export OPENAI_API_KEY={A:32}\n", &["MAX_TOKENS=4096", "GITHUB_TOKEN=${{ secrets.GITHUB_TOKEN }}", "API_KEY=your_api_key_here_1234"]),
];

#[test]
fn every_detector_has_a_true_positive_and_near_misses() {
    let det = Detector::builtin();
    let mut covered = std::collections::HashSet::new();
    let mut errors = Vec::new();
    for (i, (id, tp, misses)) in TABLE.iter().enumerate() {
        let text = fill(tp, i as u64 + 1);
        let f = det.detect(text.as_bytes());
        if !f.iter().any(|f| f.detector == *id) {
            errors.push(format!("{id}: true positive not found (got {f:?})"));
        }
        // Long inputs take the SIMD prefilter path, short ones the automaton.
        let padded = format!("{}{text}{}", " ".repeat(300), "\n".repeat(300));
        let f = det.detect(padded.as_bytes());
        if !f.iter().any(|f| f.detector == *id && f.offset >= 300) {
            errors.push(format!(
                "{id}: true positive not found in long input (got {f:?})"
            ));
        }
        covered.insert(*id);
        for (j, m) in misses.iter().enumerate() {
            let text = fill(m, (i * 10 + j) as u64 + 7);
            let f = det.detect(text.as_bytes());
            if !f.is_empty() {
                errors.push(format!("{id}: near miss #{j} fired: {f:?}"));
            }
        }
    }
    assert!(errors.is_empty(), "{}", errors.join("\n"));
    for id in det.detector_ids() {
        assert!(covered.contains(id), "detector {id} has no test row");
    }
}

#[test]
fn finding_positions_cover_the_token() {
    let tok = fill("ghp_{A:36}", 3);
    let text = format!("xx {tok} yy");
    let f = detect(text.as_bytes());
    assert_eq!(f.len(), 1);
    assert_eq!(
        (f[0].offset, f[0].len, f[0].encoding),
        (3, 40, Encoding::Raw)
    );
}

#[test]
fn display_and_debug_never_include_the_secret() {
    let tok = fill("ghp_{A:36}", 4);
    for f in detect(tok.as_bytes()) {
        assert!(!format!("{f}").contains(&tok[4..]));
        assert!(!format!("{f:?}").contains(&tok[4..]));
    }
    let cfg = DetectorConfig {
        known_secrets: vec![Zeroizing::new("hunter2-very-secret".into())],
        ..Default::default()
    };
    assert!(!format!("{cfg:?}").contains("hunter2"));
    let d = Detector::new(cfg);
    assert!(!format!("{d:?}").contains("hunter2"));
}

fn b64(s: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(s)
}

#[test]
fn encoded_tokens_are_found() {
    let tok = fill("ghp_{A:36}", 5);
    let t = tok.as_bytes();
    let cases: Vec<(String, Encoding)> = vec![
        (format!("data={}", b64(t)), Encoding::Base64),
        (
            format!(
                "data={}",
                base64::engine::general_purpose::URL_SAFE_NO_PAD
                    .encode(format!("\u{ff}\u{fe}{tok}"))
            ),
            Encoding::Base64Url,
        ),
        (format!("x {} y", hex::encode(t)), Encoding::Hex),
        (format!("x {} y", hex::encode_upper(t)), Encoding::Hex),
        (format!("0x{}", hex::encode(t)), Encoding::Hex),
        (
            t.iter().map(|b| format!("%{b:02X}")).collect(),
            Encoding::Percent,
        ),
        (
            t.iter().map(|b| format!("%25{b:02x}")).collect(),
            Encoding::Percent,
        ),
        (
            t.iter().map(|b| format!("\\u{:04x}", b)).collect(),
            Encoding::Escape,
        ),
        (
            tok.chars().flat_map(|c| [c, '\u{200B}']).collect(),
            Encoding::Unicode,
        ),
        (
            tok.chars()
                .map(|c| {
                    if c.is_ascii_graphic() {
                        char::from_u32(c as u32 + 0xFEE0).unwrap_or(c)
                    } else {
                        c
                    }
                })
                .collect(),
            Encoding::Unicode,
        ),
        // base64 of hex of the token: two layers
        (b64(hex::encode(t).as_bytes()), Encoding::Base64),
        // base64 preceded by junk that shifts the alignment
        (format!("/v1/x{}", b64(t)), Encoding::Base64),
    ];
    for (text, enc) in cases {
        let f = detect(text.as_bytes());
        assert!(
            f.iter()
                .any(|f| f.detector == "github-pat" && f.encoding == enc),
            "{enc:?} not found in {text:?}: {f:?}"
        );
    }
}

#[test]
fn cyrillic_confusables_are_folded() {
    let tok = fill("ghp_{A:36}", 6);
    let spoofed = tok.replacen('p', "\u{0440}", 1);
    assert!(detect(spoofed.as_bytes())
        .iter()
        .any(|f| f.detector == "github-pat"));
}

#[test]
fn known_secrets_in_every_encoding() {
    let secret = "Zq8-my-db-password-77!";
    let det = Detector::new(DetectorConfig {
        known_secrets: vec![Zeroizing::new(secret.into())],
        ..Default::default()
    });
    assert_eq!(det.known_secret_count(), 1);
    let s = secret.as_bytes();
    let mut texts = vec![
        format!("pw {secret} end"),
        hex::encode(s),
        hex::encode_upper(s),
        s.iter().map(|b| format!("%{b:02X}")).collect::<String>(),
        secret.replace('-', "%2D").replace('!', "%21"),
        secret.chars().flat_map(|c| [c, '\u{200D}']).collect(),
    ];
    for pre in 0..3 {
        let mut data = vec![b'a'; pre];
        data.extend_from_slice(s);
        texts.push(b64(&data));
        texts.push(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&data));
        texts.push(format!("prefix{}", b64(&data)));
    }
    texts.push(format!("x {} y", known_b32(s)));
    for t in &texts {
        let f = det.detect(t.as_bytes());
        assert!(
            f.iter().any(|f| f.detector == KNOWN_SECRET),
            "not found in {t:?}"
        );
    }
    // A detector without the secret does not flag it; short ones are ignored.
    assert!(Detector::builtin().detect(secret.as_bytes()).is_empty());
    let det = Detector::new(DetectorConfig {
        known_secrets: vec![Zeroizing::new("short".into())],
        ..Default::default()
    });
    assert_eq!(det.known_secret_count(), 0);
    assert!(det.detect(b"a short text").is_empty());
}

#[test]
fn stream_finds_secret_split_at_every_position() {
    let tok = fill("ghp_{A:36}", 8);
    let det = Detector::builtin();
    for enc in [tok.clone(), b64(tok.as_bytes()), hex::encode(&tok)] {
        let mut body = vec![b'a'; 9000];
        body.extend_from_slice(b" ");
        body.extend_from_slice(enc.as_bytes());
        body.extend_from_slice(b" ");
        body.extend(std::iter::repeat_n(b'z', 100));
        let start = 9001;
        for cut in start..=start + enc.len() {
            let mut s = det.stream();
            let a = s.push(bytes::Bytes::copy_from_slice(&body[..cut]));
            let r = a
                .and_then(|_| s.push(bytes::Bytes::copy_from_slice(&body[cut..])))
                .and_then(|_| s.finish());
            let f = r.expect_err("secret must be found");
            assert_eq!(f.detector, "github-pat", "cut {cut}");
        }
    }
}

#[test]
fn stream_releases_clean_data_and_bounds_memory() {
    let det = Detector::builtin();
    let mut s = det.stream();
    let mut body = Vec::new();
    let mut out = Vec::new();
    for i in 0..2000u32 {
        let chunk = format!("line {i}: the quick brown fox jumps over the lazy dog\n")
            .repeat((i % 7 + 1) as usize);
        body.extend_from_slice(chunk.as_bytes());
        let got = s.push(bytes::Bytes::from(chunk)).expect("clean");
        out.extend_from_slice(&got);
        assert!(s.buffered() <= STREAM_WINDOW);
    }
    out.extend_from_slice(&s.finish().expect("clean"));
    assert_eq!(out, body);
    // one big chunk
    let mut s = det.stream();
    let big = bytes::Bytes::from(vec![b'x'; 1 << 20]);
    let got = s.push(big).expect("clean");
    assert_eq!(got.len(), (1 << 20) - STREAM_OVERLAP);
    assert!(s.buffered() <= STREAM_WINDOW);
    assert_eq!(s.finish().expect("clean").len(), STREAM_OVERLAP);
}

#[test]
fn stream_reports_stream_offsets_and_stays_failed() {
    let tok = fill("ghp_{A:36}", 9);
    let mut s = Detector::builtin().stream();
    assert!(s.push(bytes::Bytes::from(vec![b' '; 10_000])).is_ok());
    let f = s
        .push(bytes::Bytes::from(format!("{}{tok}", " ".repeat(5000))))
        .expect_err("found");
    assert_eq!(f.offset, 15_000);
    assert!(s.push(bytes::Bytes::from_static(b"more")).is_err());
    assert!(s.finish().is_err());
}

#[test]
fn url_scan_and_redaction() {
    let tok = fill("ghp_{A:36}", 10);
    let det = Detector::builtin();
    let cases = [
        format!("/search?q={tok}"),
        format!("/x/{tok}/y"),
        format!("/x?a={}", b64(tok.as_bytes())),
        format!(
            "/x/{}",
            b64(tok.as_bytes()).replace('/', "%2F").replace('+', "%2B")
        ),
        format!("/x?a={}&b=1&c={}", &tok[..20], &tok[20..]),
        format!("/x/{}.{}/y", &tok[..15], &tok[15..]),
        format!(
            "/x?a={}",
            tok.bytes()
                .map(|b| format!("%25{b:02X}"))
                .collect::<String>()
        ),
    ];
    for u in &cases {
        let f = det.scan_url(u);
        assert!(f.iter().any(|f| f.detector == "github-pat"), "{u}: {f:?}");
        let red = redact_url(u, &f);
        assert!(red.contains("[REDACTED]"), "{red}");
        assert!(
            !red.contains(&tok[4..14]) && !red.contains(&tok[24..34]),
            "{u} -> {red}"
        );
    }
    assert!(det
        .scan_url("/repos/acme/demo/pulls?state=open&per_page=100")
        .is_empty());
    assert_eq!(redact_url("/a/b", &[]), "/a/b");
}

#[test]
fn presigned_s3_credential_is_not_a_leak() {
    let u = "/bucket/file.tgz?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIAVCODYLSA53PQK4ZA%2F20240101%2Fus-east-1%2Fs3%2Faws4_request&X-Amz-Date=20240101T000000Z&X-Amz-Expires=300&X-Amz-Signature=8f2b7c0a1d9e3f4a5b6c7d8e9f0a1b2c3d4e5f60718293a4b5c6d7e8f9a0b1c2&X-Amz-SignedHeaders=host";
    assert!(
        Detector::builtin().scan_url(u).is_empty(),
        "{:?}",
        Detector::builtin().scan_url(u)
    );
    assert!(!Detector::builtin()
        .scan_url("/x?id=AKIAVCODYLSA53PQK4ZA")
        .is_empty());
}

#[test]
fn url_entropy_is_optional() {
    let rnd = fill("{A:40}", 11);
    let u = format!("/upload/{rnd}");
    assert!(Detector::builtin().scan_url(&u).is_empty());
    let det = Detector::new(DetectorConfig {
        entropy_urls: true,
        ..Default::default()
    });
    assert!(det.scan_url(&u).iter().any(|f| f.detector == HIGH_ENTROPY));
    // UUIDs, hex digests and words stay below the threshold.
    for ok in [
        "/v1/objects/0f8fad5b-d9cb-469f-a165-70867728950e",
        "/packages/ab/cd/9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08/x.whl",
        "/repos/rust-lang/rust/commits/1a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d",
        "/docs/getting-started-with-the-application-programming-interface",
    ] {
        assert!(det.scan_url(ok).is_empty(), "{ok}: {:?}", det.scan_url(ok));
    }
}

#[test]
fn header_scan() {
    let tok = fill("ghp_{A:36}", 12);
    let det = Detector::builtin();
    let f = det.scan_header("Authorization", format!("Bearer {tok}").as_bytes());
    assert_eq!(f[0].detector, "github-pat");
    let basic = b64(format!("x-access-token:{tok}").as_bytes());
    let f = det.scan_header("authorization", format!("Basic {basic}").as_bytes());
    assert!(f.iter().any(|f| f.detector == "github-pat"), "{f:?}");
    let f = det.scan_header(
        "Cookie",
        format!("a=1; s={}", tok.replace('_', "%5F")).as_bytes(),
    );
    assert!(f.iter().any(|f| f.detector == "github-pat"), "{f:?}");
    assert!(det.scan_header("Accept", b"application/json").is_empty());
    assert!(det
        .scan_header("Authorization", b"Basic dXNlcjpwYXNz")
        .is_empty());
}

#[test]
fn load_known_secrets_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let p = dir.path().join("kfile");
    std::fs::write(&p, "# comment\n\n  value-one-123  \r\nvalue-two-456\n").expect("write");
    let v = load_known_secrets(&p).expect("load");
    assert_eq!(
        v.iter().map(|s| s.as_str()).collect::<Vec<_>>(),
        ["value-one-123", "value-two-456"]
    );
    let long = "s".repeat(5000);
    std::fs::write(&p, format!("ok-value-1\n{long}\n")).expect("write");
    let e = load_known_secrets(&p).expect_err("too long").to_string();
    assert!(e.contains(":2:") && !e.contains("sss"), "{e}");
    std::fs::write(&p, b"good\n\xff\xfe hunter\n").expect("write");
    let e = load_known_secrets(&p).expect_err("utf8").to_string();
    assert!(e.contains(":2:") && !e.contains("hunter"), "{e}");
    assert!(load_known_secrets(&dir.path().join("missing")).is_err());
}

#[test]
fn three_base64_layers_are_undone() {
    let tok = fill("ghp_{A:36}", 13);
    let mut layered = tok.into_bytes();
    for _ in 0..3 {
        layered = b64(&layered).into_bytes();
    }
    // three layers of base64 are undone
    assert!(detect(&layered).iter().any(|f| f.detector == "github-pat"));
}

#[test]
fn detector_is_send_sync_and_cheap_to_clone() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Detector>();
    assert_send_sync::<StreamScanner>();
    let d = Detector::builtin().clone();
    assert!(std::sync::Arc::ptr_eq(&d.inner, &Detector::builtin().inner));
}

#[test]
fn stream_report_mode_keeps_going_and_reports_each_secret_once() {
    let t1 = fill("ghp_{A:36}", 21);
    let t2 = fill("npm_{A:36}", 22);
    let mut body = vec![b' '; 20_000];
    body[5_000..5_040].copy_from_slice(t1.as_bytes());
    body[12_300..12_340].copy_from_slice(t2.as_bytes());
    for chunk in [1000usize, 4096, 7000, 20_000] {
        let mut s = Detector::builtin().stream();
        let mut out = Vec::new();
        let mut found = Vec::new();
        for c in body.chunks(chunk) {
            let (b, f) = s.push_report(bytes::Bytes::copy_from_slice(c));
            out.extend_from_slice(&b);
            found.extend(f);
            assert!(s.buffered() <= STREAM_WINDOW);
        }
        let (b, f) = s.finish_report();
        out.extend_from_slice(&b);
        found.extend(f);
        assert_eq!(out, body);
        let ids: Vec<(&str, usize)> = found.iter().map(|f| (f.detector, f.offset)).collect();
        assert_eq!(
            ids,
            [("github-pat", 5_000), ("npm-token", 12_300)],
            "chunk {chunk}"
        );
    }
}

#[test]
fn host_scan_joins_labels() {
    let tok = fill("ghp_{A:36}", 23);
    let host = format!(
        "{}.{}.{}.evil.example",
        &tok[..12],
        &tok[12..30],
        &tok[30..]
    )
    .to_ascii_lowercase();
    // DNS is case-insensitive, so use a token that survives lowercasing: known secrets.
    let det = Detector::new(DetectorConfig {
        known_secrets: vec![Zeroizing::new(tok.to_ascii_lowercase())],
        ..Default::default()
    });
    assert!(det
        .scan_host(&host)
        .iter()
        .any(|f| f.detector == KNOWN_SECRET && f.encoding == Encoding::Split));
    let host2 = format!("{}.{}.example.com", &tok[..20], &tok[20..]);
    assert!(Detector::builtin()
        .scan_host(&host2)
        .iter()
        .any(|f| f.detector == "github-pat"));
    assert!(Detector::builtin().scan_host("api.github.com").is_empty());
    assert!(Detector::builtin()
        .scan_host("objects.githubusercontent.com")
        .is_empty());
}

fn known_b32(data: &[u8]) -> String {
    const A: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let mut bits = 0u32;
    let mut acc = 0u64;
    let mut out = String::new();
    for &b in data {
        acc = (acc << 8) | u64::from(b);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(A[((acc >> bits) & 31) as usize] as char);
        }
    }
    out
}

#[test]
fn known_secret_containing_percent_escape_is_found_percent_encoded() {
    // After one decoding round the secret appears; a second round would
    // change its own "%3B" and must not be the only view scanned.
    let secret = "Zq8%3Bvalue-with-escape";
    let det = Detector::new(DetectorConfig {
        known_secrets: vec![Zeroizing::new(secret.into())],
        ..Default::default()
    });
    let enc: String = secret.bytes().map(|b| format!("%{b:02X}")).collect();
    let body = format!("\u{1}\u{2}{enc}\u{3}");
    assert!(det
        .detect(body.as_bytes())
        .iter()
        .any(|f| f.detector == KNOWN_SECRET));
    let url = format!("/x?a={enc}");
    assert!(det
        .scan_url(&url)
        .iter()
        .any(|f| f.detector == KNOWN_SECRET));
}
