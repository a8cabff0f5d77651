//! Fixtures shared by the anomaly tests: ordinary hosts and request targets,
//! and deterministic random bytes in the alphabets an agent would use.
#![allow(dead_code)]

/// Ordinary host names a coding agent reaches: registries, CDNs, cloud
/// service endpoints, preview deploys, sign-in and telemetry hosts.
pub const BENIGN_HOSTS: &[&str] = &[
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
pub fn noise(len: usize, seed: u64) -> Vec<u8> {
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

pub fn base32_lower(b: &[u8]) -> String {
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

pub fn base36(b: &[u8]) -> String {
    b.iter()
        .map(|&x| b"0123456789abcdefghijklmnopqrstuvwxyz"[x as usize % 36] as char)
        .collect()
}

/// Ordinary request targets beyond the shared URL corpus: signed downloads,
/// API pagination, sign-in redirects, registries.
pub const BENIGN_URLS: &[&str] = &[
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
