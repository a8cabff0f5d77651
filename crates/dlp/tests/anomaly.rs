//! Anomaly heuristics and exfiltration shapes: attacks an agent would try
//! (data in host labels, paths, query values, layered encodings, environment
//! dumps in MCP / A2A bodies) against benign corpora of ordinary traffic.
//! Prints the strict profile's false-positive counts; the default profile
//! must find nothing in the shared false-positive corpus.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support {
    pub mod corpus;
}

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use bottle_dlp::anomaly::{self, scan_body, scan_host, scan_url};
use support::corpus;

/// Ordinary host names a coding agent reaches: registries, CDNs, cloud
/// service endpoints, preview deploys, sign-in and telemetry hosts.
const BENIGN_HOSTS: &[&str] = &[
    "registry.npmjs.org",
    "pypi.org",
    "files.pythonhosted.org",
    "static.crates.io",
    "index.crates.io",
    "crates.io",
    "proxy.golang.org",
    "sum.golang.org",
    "repo1.maven.org",
    "plugins.gradle.org",
    "rubygems.org",
    "index.rubygems.org",
    "api.nuget.org",
    "registry-1.docker.io",
    "auth.docker.io",
    "production.cloudflare.docker.com",
    "ghcr.io",
    "pkg-containers.githubusercontent.com",
    "quay.io",
    "cdn01.quay.io",
    "gcr.io",
    "us-docker.pkg.dev",
    "us-central1-docker.pkg.dev",
    "europe-west4-docker.pkg.dev",
    "mcr.microsoft.com",
    "public.ecr.aws",
    "123456789012.dkr.ecr.us-east-1.amazonaws.com",
    "myregistry.azurecr.io",
    "api.github.com",
    "github.com",
    "codeload.github.com",
    "objects.githubusercontent.com",
    "raw.githubusercontent.com",
    "avatars.githubusercontent.com",
    "release-assets.githubusercontent.com",
    "uploads.github.com",
    "gist.githubusercontent.com",
    "gitlab.com",
    "bitbucket.org",
    "deb.debian.org",
    "security.debian.org",
    "archive.ubuntu.com",
    "dl-cdn.alpinelinux.org",
    "mirrors.fedoraproject.org",
    "d111111abcdef8.cloudfront.net",
    "d3h8k2m9x7q1z4.cloudfront.net",
    "dk9ps7goqoeef.cloudfront.net",
    "my-bucket.s3.amazonaws.com",
    "my-company-production-assets-2023.s3.us-east-1.amazonaws.com",
    "s3.us-west-2.amazonaws.com",
    "sts.amazonaws.com",
    "ec2.eu-central-1.amazonaws.com",
    "a1b2c3d4e5.execute-api.us-east-1.amazonaws.com",
    "vpce-0a1b2c3d4e5f6a7b8-x9y8z7w6.execute-api.us-east-1.vpce.amazonaws.com",
    "my-loadbalancer-1234567890.us-west-2.elb.amazonaws.com",
    "my-nlb-0123456789abcdef.elb.us-east-1.amazonaws.com",
    "mydb.c9akciq32.us-east-1.rds.amazonaws.com",
    "a3k7d9f2x1q8w5-ats.iot.us-east-1.amazonaws.com",
    "abcdefghijklmnopqrstuvwxyz234567.lambda-url.us-east-1.on.aws",
    "main.d2k4m6n8p0q1r3.amplifyapp.com",
    "lambda.us-east-1.amazonaws.com",
    "myaccount.blob.core.windows.net",
    "myaccount.dfs.core.windows.net",
    "login.microsoftonline.com",
    "management.azure.com",
    "graph.microsoft.com",
    "myapp-a6gqaqbthbe8ajdh.eastus-01.azurewebsites.net",
    "myendpoint-hqc3fgbzd7fvb5dq.z01.azurefd.net",
    "storage.googleapis.com",
    "www.googleapis.com",
    "oauth2.googleapis.com",
    "lh3.googleusercontent.com",
    "hello-world-2w4x5y6z7a-uc.a.run.app",
    "service-123456789012.us-central1.run.app",
    "us-central1-myproject.cloudfunctions.net",
    "myproject-default-rtdb.firebaseio.com",
    "myproject.web.app",
    "my-app-git-feature-x-team.vercel.app",
    "my-app-3k2j4h5g6-team.vercel.app",
    "deploy-preview-1234--my-site.netlify.app",
    "5f8a9b0c1d2e3f4a5b6c7d8e--my-site.netlify.app",
    "my-docs.pages.dev",
    "a1b2c3d4.my-docs.pages.dev",
    "api.my-worker.acme.workers.dev",
    "myapp-1a2b3c4d5e6f.herokuapp.com",
    "myapp.fly.dev",
    "myapp-abc1.onrender.com",
    "project-abc123def456.deno.dev",
    "1a2b-203-0-113-7.ngrok-free.app",
    "fluffy-space-giggle-q7x9j5v2w3-8080.app.github.dev",
    "abcdefghijklmnopqrst.supabase.co",
    "e1234.a.akamaiedge.net",
    "a1234.dscb.akamai.net",
    "cdn.jsdelivr.net",
    "unpkg.com",
    "cdnjs.cloudflare.com",
    "fonts.gstatic.com",
    "o4504123456789012.ingest.us.sentry.io",
    "o123456.ingest.sentry.io",
    "browser-intake-datadoghq.com",
    "http-intake.logs.datadoghq.eu",
    "api.openai.com",
    "api.anthropic.com",
    "generativelanguage.googleapis.com",
    "huggingface.co",
    "cdn-lfs.huggingface.co",
    "cdn-lfs-us-1.hf.co",
    "docs.rs",
    "doc.rust-lang.org",
    "static.rust-lang.org",
    "sh.rustup.rs",
    "nodejs.org",
    "go.dev",
    "dl.google.com",
    "developer.mozilla.org",
    "stackoverflow.com",
    "en.wikipedia.org",
    "upload.wikimedia.org",
    "123e4567-e89b-12d3-a456-426614174000.mock.pstmn.io",
    "internal-my-private-lb-987654321.eu-west-1.elb.amazonaws.com",
    "xn--bcher-kva.example",
    "www.bbc.co.uk",
    "news.ycombinator.com",
    "a.tile.openstreetmap.org",
    "i.ytimg.com",
    "marketplace.visualstudio.com",
    "open-vsx.org",
    "update.code.visualstudio.com",
    "az764295.vo.msecnd.net",
    "conda.anaconda.org",
    "repo.anaconda.com",
    "download.pytorch.org",
    "pypi.nvidia.com",
    "developer.download.nvidia.com",
    "edgedl.me.gvt1.com",
    "copilot-proxy.githubusercontent.com",
    "telemetry.individual.githubcopilot.com",
    "statsig.anthropic.com",
    "o1158394.ingest.sentry.io",
    "hub.docker.com",
    "registry.terraform.io",
    "releases.hashicorp.com",
    "get.helm.sh",
    "storage.googleapis.com.cdn.cloudflare.net",
    "k8s.gcr.io",
    "registry.k8s.io",
    "prod-registry-k8s-io-us-east-1.s3.dualstack.us-east-1.amazonaws.com",
    "d3i4yxtzktqr9n.cloudfront.example.com",
    "a1b2c3d4e5.execute-api.eu-west-1.example.com",
];

/// Deterministic pseudo-random bytes.
fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

fn base32_lower(b: &[u8]) -> String {
    const A: &[u8] = b"abcdefghijklmnopqrstuvwxyz234567";
    let (mut out, mut acc, mut bits) = (String::new(), 0u32, 0u32);
    for &x in b {
        acc = (acc << 8) | u32::from(x);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(A[((acc >> bits) & 31) as usize] as char);
        }
        acc &= (1 << bits) - 1;
    }
    if bits > 0 {
        out.push(A[((acc << (5 - bits)) & 31) as usize] as char);
    }
    out
}

fn base36(b: &[u8]) -> String {
    b.iter()
        .map(|&x| b"0123456789abcdefghijklmnopqrstuvwxyz"[x as usize % 36] as char)
        .collect()
}

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

/// Ordinary request targets beyond the shared URL corpus: signed downloads,
/// API pagination, sign-in redirects, registries.
const BENIGN_URLS: &[&str] = &[
    "/repos/acme/app/compare/6b810c90aa9a99858230c3d5ed479096a190fa4b...901466a5bb52ee6de63e3e385285e690d5cba424",
    "/repos/acme/app/git/trees/16c385a6cbd7c6ad06cd6a7195aafae4932fcf3d?recursive=1",
    "/acme/app/archive/refs/tags/v1.2.3.tar.gz",
    "/github-production-release-asset/12345/abc?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Date=20240101T000000Z&X-Amz-Expires=300&X-Amz-Signature=2202109512a0599270bc34e7d0dd96bd680f120b6a3e37eca942c2b2164e6e95&X-Amz-SignedHeaders=host",
    "/blob/x.tgz?sv=2021-08-06&se=2024-01-01T00%3A00%3A00Z&sr=b&sp=r&sig=q0Yx3xJ1mC9%2Bk7s2Lr8Vn4Wd6Hf0Tz5Pb1Ga3Ue9Io%3D",
    "/download/app.zip?jwt=eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIiwiaWF0IjoxNTE2MjM5MDIyfQ.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c",
    "/graphql?after=Y3Vyc29yOnYyOpHOAAw3xA%3D%3D&first=100",
    "/oauth/authorize?client_id=Iv1.8a61f9b3a7aba766&redirect_uri=http%3A%2F%2Flocalhost%3A8080%2Fcallback&state=af0ifjsldkj&scope=repo",
    "/api/v1/search?q=how+to+configure+tokio+runtime&limit=20&offset=40",
    "/simple/requests/",
    "/packages/source/r/requests/requests-2.31.0.tar.gz#sha256=942c5a758f98d790eaed1a29cb6eefc7ffb0d1cf7af05c3d2791656dbd6ad1e1",
    "/@types/node/-/node-20.11.5.tgz",
    "/v2/library/python/manifests/3.12-slim-bookworm",
    "/crates/serde/serde-1.0.195.crate",
    "/wiki/Shannon%E2%80%93Hartley_theorem",
    "/en-US/docs/Web/API/Fetch_API/Using_Fetch",
    "/questions/12345678/how-do-i-borrow-a-mutable-reference-twice-in-rust",
    "/v1/chat/completions",
    "/npm/lodash@4.17.21/lodash.min.js",
    "/ajax/libs/jquery/3.7.1/jquery.min.js",
    "/_next/static/chunks/pages/_app-4f0a6a7f1e2d3c4b.js",
    "/assets/index-BqK9x2Lm.js",
    "/gh/acme/app@6b810c90aa9a99858230c3d5ed479096a190fa4b/dist/app.js",
    "/api/v4/projects/acme%2Fapp/repository/files/src%2Fmain.rs/raw?ref=main",
    "/rustup/dist/x86_64-unknown-linux-gnu/rustup-init",
    "/x/sys/@v/v0.16.0.mod",
    "/storage/v1/b/my-bucket/o/path%2Fto%2Fobject.txt?alt=media",
    "/maven2/org/apache/commons/commons-lang3/3.14.0/commons-lang3-3.14.0.pom",
    "/api/v2/issues?cursor=eyJhZnRlciI6OTg3Niwic29ydCI6ImNyZWF0ZWQiLCJkaXIiOiJkZXNjIn0&per_page=50",
    "/address/1BoatSLRHtKNngkdXEeobR76b53LETtpyT/balance",
];

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
