//! Package managers and git through the bottle (issue 16): pip, npm, cargo, go and git over
//! HTTPS (agent -> pipelock -> egress -> package origin), git through git-gate, and a client
//! pointed at a host the bottle does not allow. Each row checks what a user cares about: the
//! command exits 0, the bytes that arrived are the bytes the origin served (checksums), the
//! route's credential reached the origin and never the agent, a refusal reads as one.

use bottle_e2e::Checks;

use super::harness::{field, Harness, Row};

/// Identity for the agent's commits.
const GC: &str = "git -c user.name=agent -c user.email=agent@example.invalid";

/// The rows of this module, in the order they run.
pub fn rows() -> Vec<Row> {
    vec![
        Row {
            name: "pip",
            by_default: true,
            allow: &[],
            routes: &["{host: pypi.e2e.test, auth: {scheme: bearer, token_from: E2E_PYPI_TOKEN}}"],
            git: &[],
            secrets: &["E2E_PYPI_TOKEN"],
            run: pip,
        },
        Row {
            name: "npm",
            by_default: true,
            allow: &[],
            routes: &["{host: npm.e2e.test, auth: {scheme: bearer, token_from: E2E_NPM_TOKEN}}"],
            git: &[],
            secrets: &["E2E_NPM_TOKEN"],
            run: npm,
        },
        Row {
            name: "cargo",
            by_default: true,
            allow: &[],
            routes: &[
                "{host: crates.e2e.test, auth: {scheme: bearer, token_from: E2E_CRATES_TOKEN}}",
            ],
            git: &[],
            secrets: &["E2E_CRATES_TOKEN"],
            run: cargo,
        },
        Row {
            name: "go",
            by_default: true,
            allow: &[],
            routes: &[
                "{host: goproxy.e2e.test, auth: {scheme: bearer, token_from: E2E_GOPROXY_TOKEN}}",
            ],
            git: &[],
            secrets: &["E2E_GOPROXY_TOKEN"],
            run: go,
        },
        Row {
            name: "git-egress",
            by_default: true,
            allow: &[],
            routes: &["{host: git.e2e.test, paths: [\"/git/repo.git/**\"], auth: {scheme: basic, username: x-access-token, token_from: E2E_GIT_TOKEN}}"],
            git: &[],
            secrets: &["E2E_GIT_TOKEN"],
            run: git_egress,
        },
        Row {
            name: "git-gate",
            by_default: true,
            allow: &[],
            routes: &[],
            git: &["{name: gated, upstream: \"https://git.e2e.test/git/gated.git\", auth: {scheme: basic, username: x-access-token, token_from: E2E_GATE_TOKEN}, rules: [{ref: \"refs/heads/agent/**\", allow: [create, update]}], protected: [\"refs/heads/main\"]}"],
            secrets: &["E2E_GATE_TOKEN"],
            run: git_gate,
        },
        Row {
            name: "refused-host",
            by_default: true,
            allow: &[],
            routes: &[],
            git: &[],
            secrets: &[],
            run: refused_host,
        },
    ]
}

/// pip into a venv from a PEP 503 simple index over HTTPS (PIP_CERT, HTTPS_PROXY).
fn pip(h: &Harness, c: &mut Checks) {
    let r = h.run_in_agent(
        "set -e; python3 -m venv /tmp/pipvenv; P='/tmp/pipvenv/bin/pip --disable-pip-version-check'
         $P download --no-deps --no-cache-dir -d /tmp/pipdl --index-url https://pypi.e2e.test/simple/ e2e-hello==1.0.0 2>&1
         echo \"wheel=$(sha256sum /tmp/pipdl/e2e_hello-1.0.0-py3-none-any.whl | cut -d' ' -f1)\"
         $P install --no-cache-dir --index-url https://pypi.e2e.test/simple/ e2e-hello==1.0.0 2>&1
         cd /tmp && echo \"init=$(sha256sum \"$(/tmp/pipvenv/bin/python -c 'import e2e_hello; print(e2e_hello.__file__)')\" | cut -d' ' -f1)\"
         echo \"mark=$(/tmp/pipvenv/bin/python -c 'import e2e_hello; print(e2e_hello.MARK)')\"",
    );
    c.check("pip: download and install exit 0", r.code == 0, || r.all());
    let wheel = h.files.sha256(&h.files.fact("pip", "wheel"));
    c.check(
        "pip: the wheel pip downloaded is the one served (sha256)",
        !wheel.is_empty() && field(&r.stdout, "wheel") == wheel,
        || format!("served {wheel}\n{}", r.all()),
    );
    c.check(
        "pip: the installed module is the served one and imports",
        field(&r.stdout, "init") == h.files.fact("pip", "init_sha256")
            && field(&r.stdout, "mark") == h.files.nonce(),
        || r.all(),
    );
    h.check_credential_arrived(c, "pip", "pypi.e2e.test", &h.bearer("E2E_PYPI_TOKEN"));
}

/// npm installing a tarball URL over HTTPS (npm reads HTTPS_PROXY; the bottle CA comes from
/// NODE_EXTRA_CA_CERTS).
fn npm(h: &Harness, c: &mut Checks) {
    let r = h.run_in_agent(
        "set -e; mkdir -p /tmp/npmapp && cd /tmp/npmapp
         printf '{\"name\":\"npmapp\",\"version\":\"1.0.0\",\"private\":true}\\n' > package.json
         npm install --no-audit --no-fund https://npm.e2e.test/npm/e2e-hello-1.0.0.tgz 2>&1
         echo \"integrity=$(node -p 'require(\"./package-lock.json\").packages[\"node_modules/e2e-hello\"].integrity')\"
         echo \"index=$(sha256sum node_modules/e2e-hello/index.js | cut -d' ' -f1)\"
         echo \"mark=$(node -p 'require(\"e2e-hello\").mark')\"",
    );
    c.check("npm: install exits 0", r.code == 0, || r.all());
    let integrity = h.files.fact("npm", "integrity");
    c.check(
        "npm: the tarball npm fetched is the one served (lockfile sha512 integrity)",
        !integrity.is_empty() && field(&r.stdout, "integrity") == integrity,
        || format!("served {integrity}\n{}", r.all()),
    );
    c.check(
        "npm: the installed module is the served one and loads",
        field(&r.stdout, "index") == h.files.fact("npm", "index_sha256")
            && field(&r.stdout, "mark") == h.files.nonce(),
        || r.all(),
    );
    // From the registry by name (packument, then the tarball it names), with a fresh cache
    // so the tarball is fetched again rather than taken from the first install's cache.
    let r = h.run_in_agent(
        "set -e; mkdir -p /tmp/npmreg && cd /tmp/npmreg
         printf '{\"name\":\"npmreg\",\"version\":\"1.0.0\",\"private\":true}\\n' > package.json
         npm install --no-audit --no-fund --cache /tmp/npmcache2 --registry https://npm.e2e.test/ e2e-hello@1.0.0 2>&1
         echo \"integrity=$(node -p 'require(\"./package-lock.json\").packages[\"node_modules/e2e-hello\"].integrity')\"
         echo \"mark=$(node -p 'require(\"e2e-hello\").mark')\"",
    );
    c.check(
        "npm: install by name from the registry exits 0 with the served tarball",
        r.code == 0
            && field(&r.stdout, "integrity") == integrity
            && field(&r.stdout, "mark") == h.files.nonce(),
        || r.all(),
    );
    h.check_credential_arrived(c, "npm", "npm.e2e.test", &h.bearer("E2E_NPM_TOKEN"));
}

/// cargo from a sparse registry (CARGO_HTTP_CAINFO), then an offline build with it.
fn cargo(h: &Harness, c: &mut Checks) {
    let r = h.run_in_agent(
        "set -e; mkdir -p /tmp/cargoapp/src /tmp/cargoapp/.cargo && cd /tmp/cargoapp
         printf '[registries.e2e]\\nindex = \"sparse+https://crates.e2e.test/index/\"\\n' > .cargo/config.toml
         printf '[package]\\nname = \"cargoapp\"\\nversion = \"0.1.0\"\\nedition = \"2021\"\\n\\n[dependencies]\\ne2ehello = { version = \"0.1\", registry = \"e2e\" }\\n' > Cargo.toml
         printf 'fn main() { println!(\"mark={}\", e2ehello::MARK); }\\n' > src/main.rs
         cargo generate-lockfile 2>&1
         cargo fetch 2>&1
         cargo build --offline 2>&1
         ./target/debug/cargoapp
         echo \"crate=$(sha256sum $(find ~/.cargo/registry/cache -name e2ehello-0.1.0.crate) | cut -d' ' -f1)\"
         echo \"lib=$(sha256sum $(find ~/.cargo/registry/src -path '*e2ehello-0.1.0/src/lib.rs') | cut -d' ' -f1)\"",
    );
    c.check(
        "cargo: generate-lockfile, fetch and an offline build exit 0",
        r.code == 0,
        || r.all(),
    );
    let krate = h.files.sha256(&h.files.fact("cargo", "crate"));
    c.check(
        "cargo: the .crate cargo fetched is the one served (sha256)",
        !krate.is_empty() && field(&r.stdout, "crate") == krate,
        || format!("served {krate}\n{}", r.all()),
    );
    c.check(
        "cargo: the built program uses the served crate",
        field(&r.stdout, "lib") == h.files.fact("cargo", "lib_sha256")
            && field(&r.stdout, "mark") == h.files.nonce(),
        || r.all(),
    );
    h.check_credential_arrived(c, "cargo", "crates.e2e.test", &h.bearer("E2E_CRATES_TOKEN"));
}

/// go fetching a module through GOPROXY (SSL_CERT_FILE, HTTPS_PROXY), then building with it.
fn go(h: &Harness, c: &mut Checks) {
    let r = h.run_in_agent(
        "set -e; mkdir -p /tmp/goapp && cd /tmp/goapp
         export GOPROXY=https://goproxy.e2e.test GOSUMDB=off GOFLAGS=-mod=mod
         printf 'module example.invalid/goapp\\n\\ngo 1.19\\n\\nrequire e2e.test/hello v1.0.0\\n' > go.mod
         printf 'package main\\n\\nimport (\\n\\t\"fmt\"\\n\\n\\t\"e2e.test/hello\"\\n)\\n\\nfunc main() { fmt.Println(\"mark=\" + hello.Mark) }\\n' > main.go
         go mod download e2e.test/hello 2>&1
         go build -o goapp . 2>&1
         ./goapp
         D=$(go env GOMODCACHE)
         echo \"zip=$(sha256sum $D/cache/download/e2e.test/hello/@v/v1.0.0.zip | cut -d' ' -f1)\"
         echo \"src=$(sha256sum $D/e2e.test/hello@v1.0.0/hello.go | cut -d' ' -f1)\"",
    );
    c.check("go: mod download and build exit 0", r.code == 0, || r.all());
    let zip = h.files.sha256(&h.files.fact("go", "zip"));
    c.check(
        "go: the module zip go fetched is the one served (sha256)",
        !zip.is_empty() && field(&r.stdout, "zip") == zip,
        || format!("served {zip}\n{}", r.all()),
    );
    c.check(
        "go: the built program uses the served module",
        field(&r.stdout, "src") == h.files.fact("go", "src_sha256")
            && field(&r.stdout, "mark") == h.files.nonce(),
        || r.all(),
    );
    h.check_credential_arrived(c, "go", "goproxy.e2e.test", &h.bearer("E2E_GOPROXY_TOKEN"));
}

/// git over HTTPS through pipelock and egress: clone and fetch work with the route's
/// credential; a push is refused by egress with a reason git shows, and the origin's
/// repository (which would take the push: receive-pack is on) is unchanged.
fn git_egress(h: &Harness, c: &mut Checks) {
    let head = h.files.served["git"]["repo"]["head"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let r = h.run_in_agent(
        "set -e; cd /tmp && git clone -q https://git.e2e.test/git/repo.git gitwork 2>&1
         echo \"readme=$(sha256sum gitwork/README | cut -d' ' -f1)\"
         echo \"head=$(git -C gitwork rev-parse HEAD)\"
         git -C gitwork fetch origin 2>&1 && echo fetch=ok",
    );
    c.check(
        "git over egress: clone and fetch exit 0",
        r.code == 0,
        || r.all(),
    );
    c.check(
        "git over egress: the clone has the origin's commit and bytes",
        !head.is_empty()
            && field(&r.stdout, "head") == head
            && field(&r.stdout, "readme")
                == h.files.served["git"]["repo"]["readme_sha256"]
                    .as_str()
                    .unwrap_or_default(),
        || format!("origin head {head}\n{}", r.all()),
    );
    let r = h.run_in_agent(&format!(
        "cd /tmp/gitwork && echo change > change && git add change && {GC} commit -q -m change \
         && git push origin main 2>&1; echo \"push_rc=$?\""
    ));
    c.check(
        "git over egress: a push fails, and git shows egress's reason",
        field(&r.stdout, "push_rc") != "0"
            && !field(&r.stdout, "push_rc").is_empty()
            && r.stdout.contains("git push over HTTPS is refused"),
        || r.all(),
    );
    let now = h.files.git(&["-C", "repo.git", "rev-parse", "main"]);
    c.check(
        "git over egress: the origin's repository is unchanged after the push",
        now.stdout.trim() == head,
        || format!("origin main {} (was {head})", now.all()),
    );
    let reached: Vec<_> = h
        .files
        .requests_to("git.e2e.test")
        .into_iter()
        .filter(|v| {
            let s = format!("{}?{}", v["path"], v["query"]);
            s.contains("receive-pack")
        })
        .collect();
    c.check(
        "git over egress: no receive-pack request reached the origin",
        reached.is_empty(),
        || format!("{reached:?}"),
    );
    let cred = h.basic("x-access-token", "E2E_GIT_TOKEN");
    let want = super::harness::sha256_hex(cred.as_bytes());
    let repo_reqs: Vec<_> = h
        .files
        .requests_to("git.e2e.test")
        .into_iter()
        .filter(|v| {
            v["path"]
                .as_str()
                .unwrap_or_default()
                .starts_with("/git/repo.git/")
        })
        .collect();
    c.check(
        "git over egress: egress injected the basic credential into every request",
        !repo_reqs.is_empty()
            && repo_reqs
                .iter()
                .all(|v| v["auth_sha256"].as_str() == Some(want.as_str())),
        || format!("{repo_reqs:?}"),
    );
}

/// git through git-gate, whose upstream is the origin over HTTPS: the agent clones the
/// upstream URL (rewritten to git-gate by GIT_CONFIG_* insteadOf), a push the policy allows
/// lands in the origin's repository, a push to protected main does not.
fn git_gate(h: &Harness, c: &mut Checks) {
    let gated = &h.files.served["git"]["gated"];
    let main_before = gated["head"].as_str().unwrap_or_default().to_string();
    let r = h.run_in_agent(&format!(
        "set -e; cd /tmp && git clone -q https://git.e2e.test/git/gated.git gated 2>&1
         echo \"readme=$(sha256sum gated/README | cut -d' ' -f1)\"
         cd gated && git checkout -q -b agent/e2e && echo work > work && git add work \
           && {GC} commit -q -m work
         git push origin agent/e2e 2>&1; echo \"head=$(git rev-parse HEAD)\""
    ));
    c.check(
        "git-gate: clone through the gate and an allowed push exit 0",
        r.code == 0,
        || r.all(),
    );
    c.check(
        "git-gate: the clone has the origin's bytes",
        field(&r.stdout, "readme") == gated["readme_sha256"].as_str().unwrap_or_default(),
        || r.all(),
    );
    let head = field(&r.stdout, "head");
    let landed = h.files.git(&[
        "-C",
        "gated.git",
        "rev-parse",
        "--verify",
        "-q",
        "refs/heads/agent/e2e",
    ]);
    c.check(
        "git-gate: the allowed push landed in the origin's repository",
        !head.is_empty() && landed.stdout.trim() == head,
        || format!("origin agent/e2e: {}\n{}", landed.all(), r.all()),
    );
    let r = h.run_in_agent("cd /tmp/gated && git push origin agent/e2e:main 2>&1; echo \"rc=$?\"");
    let main_now = h.files.git(&["-C", "gated.git", "rev-parse", "main"]);
    c.check(
        "git-gate: a push to protected main is refused with a reason, main unchanged",
        field(&r.stdout, "rc") != "0"
            && r.stdout.contains("[remote rejected] agent/e2e -> main (")
            && main_now.stdout.trim() == main_before,
        || format!("origin main {}\n{}", main_now.all(), r.all()),
    );
    let cred = h.basic("x-access-token", "E2E_GATE_TOKEN");
    let want = super::harness::sha256_hex(cred.as_bytes());
    let gate_reqs: Vec<_> = h
        .files
        .requests_to("git.e2e.test")
        .into_iter()
        .filter(|v| {
            v["path"]
                .as_str()
                .unwrap_or_default()
                .starts_with("/git/gated.git/")
        })
        .collect();
    c.check(
        "git-gate: the origin got the gate's credential (and the push) from git-gate",
        gate_reqs.iter().any(|v| {
            v["path"]
                .as_str()
                .unwrap_or_default()
                .ends_with("git-receive-pack")
        }) && gate_reqs
            .iter()
            .filter(|v| v["status"].as_i64() != Some(401))
            .all(|v| v["auth_sha256"].as_str() == Some(want.as_str())),
        || format!("{gate_reqs:?}"),
    );
}

/// Clients pointed at a host the bottle does not allow: pip with another index, npm and go.
/// Each fails, the user reads pipelock's reason, and nothing reached the origin (which would
/// answer: its certificate covers the name and the name is pinned to it).
fn refused_host(h: &Harness, c: &mut Checks) {
    let r = h.run_in_agent(
        "python3 -m venv /tmp/pipvenv2 >/dev/null 2>&1; /tmp/pipvenv2/bin/pip --disable-pip-version-check \
         download --no-deps --no-cache-dir --timeout 20 -d /tmp/pipdl2 \
         --index-url https://pypi-mirror.e2e.test/simple/ e2e-hello==1.0.0 2>&1; echo \"rc=$?\"",
    );
    c.check(
        "refused host: pip fails",
        !field(&r.stdout, "rc").is_empty() && field(&r.stdout, "rc") != "0",
        || r.all(),
    );
    c.check(
        "refused host: pip's output carries pipelock's reason (host not allowed, the fix)",
        r.stdout.contains("host not allowed")
            && r.stdout.contains("bottle allow pypi-mirror.e2e.test"),
        || r.all(),
    );
    // npm and go show the status line of the refused CONNECT too (the reason phrase).
    let r = h.run_in_agent(
        "mkdir -p /tmp/npmrefused && cd /tmp/npmrefused && echo '{}' > package.json
         npm install --no-audit --no-fund --fetch-retries 0 https://pypi-mirror.e2e.test/npm/e2e-hello-1.0.0.tgz 2>&1
         echo \"rc=$?\"",
    );
    c.check(
        "refused host: npm fails and shows pipelock's reason",
        !field(&r.stdout, "rc").is_empty()
            && field(&r.stdout, "rc") != "0"
            && r.stdout.contains("host not allowed: pypi-mirror.e2e.test"),
        || r.all(),
    );
    let r = h.run_in_agent(
        "mkdir -p /tmp/gorefused && cd /tmp/gorefused
         printf 'module example.invalid/gorefused\\n\\ngo 1.19\\n' > go.mod
         export GOMODCACHE=/tmp/gorefused/cache GOFLAGS=-modcacherw GOSUMDB=off
         GOPROXY=https://pypi-mirror.e2e.test go mod download e2e.test/hello@v1.0.0 2>&1
         echo \"rc=$?\"",
    );
    c.check(
        "refused host: go fails and shows pipelock's reason",
        !field(&r.stdout, "rc").is_empty()
            && field(&r.stdout, "rc") != "0"
            && r.stdout.contains("host not allowed: pypi-mirror.e2e.test"),
        || r.all(),
    );
    let reached = h.files.requests_to("pypi-mirror.e2e.test");
    c.check(
        "refused host: nothing reached the origin",
        reached.is_empty(),
        || format!("{reached:?}"),
    );
}
