//! A detached bottle: start, the agent's traffic through pipelock and egress, credential
//! injection and scrubbing, allow and reload, status files, stop.

use std::io::Read;
use std::net::TcpListener;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use bottle_e2e::*;

use super::*;

pub fn detached_bottle(c: &mut Checks, home: &Home, origin: &Origin, mpath: &str, secret: &str) {
    let r = home.bottle(&["start", mpath, "--detach"], START);
    assert_eq!(r.code, 0, "bottle start --detach failed:\n{}", r.all());
    let slugs = home.slugs();
    assert_eq!(slugs.len(), 1, "one state dir expected: {slugs:?}");
    let slug = slugs[0].clone();
    let project = format!("bottle-{slug}");
    let state = home.state(&slug);
    let agent = agent_container(&project);
    assert!(!agent.is_empty(), "no agent container for {project}");
    super::readiness::agent_started_after_sidecars(c, &r, &project, &state);
    let sh = |script: &str| agent_sh(&agent, script, Duration::from_secs(90));

    // --- state dir
    let key_mode = std::fs::metadata(state.join("ca/ca.key")).map(|m| {
        use std::os::unix::fs::PermissionsExt;
        m.permissions().mode() & 0o777
    });
    c.check("CA key is mode 0600", matches!(key_mode, Ok(0o600)), || {
        format!("{key_mode:?}")
    });
    let compose_text =
        std::fs::read_to_string(state.join("docker-compose.yml")).unwrap_or_default();
    c.check(
        "docker-compose.yml names the secret, never holds it",
        !compose_text.contains(secret) && compose_text.contains("BOTTLE_TOKEN_0"),
        || "secret value or slot missing".into(),
    );
    let mut on_disk = String::new();
    for sub in [
        "live-config/allowlist",
        "live-config/routes.yaml",
        "metadata.json",
    ] {
        on_disk.push_str(&std::fs::read_to_string(state.join(sub)).unwrap_or_default());
    }
    c.check(
        "no secret anywhere in the state dir files",
        !on_disk.contains(secret),
        || "secret on disk".into(),
    );

    // --- allowed origin through pipelock and egress, with the bottle CA
    let r = sh("curl -sS --max-time 30 'https://origin.e2e.test/hello?x=1'");
    let json: serde_json::Value =
        serde_json::from_str(r.stdout.trim()).unwrap_or(serde_json::Value::Null);
    c.check(
        "agent reaches the allowed HTTPS origin",
        r.code == 0 && json["path"] == "/hello",
        || r.all(),
    );
    c.check("origin saw TLS from egress", json["tls"] == true, || {
        r.stdout.clone()
    });
    let r =
        sh("curl -sS --max-time 30 -o /dev/null -w '%{http_code}' http://origin.e2e.test/plain");
    c.check(
        "agent reaches the allowed plain-HTTP origin",
        http_code(&r) == "200",
        || r.all(),
    );

    // --- credential injection: the origin sees it, the agent never does
    let r = sh("curl -sS --max-time 30 -D - -H 'Authorization: Bearer agent-fake-token' https://api.e2e.test/reflect");
    let lower = r.stdout.to_ascii_lowercase();
    c.check(
        "origin received an injected credential (reflect count 1)",
        r.code == 0 && lower.contains("x-reflect-count: 1"),
        || r.all(),
    );
    c.check(
        "the agent's own credential was stripped",
        !r.stdout.contains("agent-fake-token"),
        || r.stdout.clone(),
    );
    for s in secret_spellings(secret) {
        c.check(
            "no spelling of the secret in the reflected response",
            !r.all().contains(&s),
            || format!("found {s}"),
        );
    }
    let r = sh("curl -sS --max-time 30 https://api.e2e.test/echo");
    c.check(
        "secret scrubbed from the echoed request",
        r.code == 0 && !r.all().contains(secret),
        || r.all(),
    );
    let logs = origin.logs();
    if logs.contains("\"headers\"") {
        c.check(
            "origin log shows the injected credential",
            logs.contains(&format!("Bearer {secret}")),
            || "not in origin log".into(),
        );
    } else {
        eprintln!("  note: echo-origin does not log requests; reflect count is the evidence");
    }
    let r = sh("env; tr '\\0' '\\n' < /proc/1/environ");
    c.check(
        "secret not in the agent's environment",
        !r.all().contains(secret),
        || "found in env".into(),
    );
    let r = sh(&format!(
        "grep -rlsF -e '{secret}' / --exclude-dir=proc --exclude-dir=sys --exclude-dir=dev; echo grep_rc=$?"
    ));
    let found: Vec<&str> = r
        .stdout
        .lines()
        .filter(|l| !l.starts_with("grep_rc="))
        .collect();
    c.check(
        "secret not in any file the agent can read",
        r.stdout.contains("grep_rc=") && found.is_empty(),
        || r.all(),
    );
    let r = sh("printf '%s\\n' \"$HTTPS_PROXY\" \"$NO_PROXY\" \"$SSL_CERT_FILE\" \"$NODE_EXTRA_CA_CERTS\" \"$GIT_CONFIG_COUNT\"");
    c.check(
        "agent runtime contract env",
        r.stdout.contains("http://pipelock:8888")
            // This bottle runs supervise, which the agent reaches directly.
            && r.stdout.contains("git-gate,supervise,localhost,127.0.0.1")
            && r.stdout.contains("/etc/bottle-ca/bundle.pem")
            && r.stdout.contains("/etc/bottle-ca/ca.crt"),
        || r.all(),
    );
    let r = sh("test -e /etc/bottle-ca/ca.key; echo key=$?; ls /etc/bottle-ca");
    c.check(
        "CA key not visible to the agent",
        r.stdout.contains("key=1"),
        || r.all(),
    );

    // --- what the agent cannot reach
    let r = sh("curl -sS --max-time 20 -o /dev/null -w '%{http_code}' https://other.e2e.test/; echo \" rc=$?\"");
    c.check(
        "non-allowed HTTPS host refused",
        !r.stdout.contains("rc=0") || r.stdout.contains("403"),
        || r.all(),
    );
    let r = sh("curl -sS --max-time 20 -i http://other.e2e.test/");
    c.check(
        "non-allowed HTTP host: 403 with X-Bottle-Blocked and a hint",
        r.stdout.contains("403")
            && r.stdout.to_ascii_lowercase().contains("x-bottle-blocked")
            && r.stdout.contains("bottle allow other.e2e.test"),
        || r.all(),
    );
    let ip = &origin.ip;
    let r = sh(&format!(
        "curl -sS --max-time 20 -o /dev/null -w '%{{http_code}}' http://{ip}/; echo \" rc=$?\""
    ));
    c.check(
        "origin by IP through the proxy refused",
        r.stdout.contains("403") || !r.stdout.contains("rc=0"),
        || r.all(),
    );
    let r = sh(&format!(
        "curl -sS --max-time 20 https://{ip}/ ; echo \" rc=$?\""
    ));
    c.check(
        "origin by IP over HTTPS refused",
        !r.stdout.contains(" rc=0"),
        || r.all(),
    );
    let r = sh(&format!(
        "curl -sS --noproxy '*' --connect-timeout 5 --max-time 8 http://{ip}/; echo \" rc=$?\""
    ));
    c.check(
        "origin (git upstream side) by IP without proxy: no route",
        !r.stdout.contains(" rc=0"),
        || r.all(),
    );
    let r = sh("curl -sS --noproxy '*' --connect-timeout 5 --max-time 8 http://egress:9099/; echo \" rc=$?\"");
    c.check(
        "egress not addressable directly",
        !r.stdout.contains(" rc=0"),
        || r.all(),
    );
    let r = sh("curl -sS --max-time 20 -o /dev/null -w '%{http_code}' http://egress:9099/; echo \" rc=$?\"");
    c.check(
        "egress not reachable through pipelock",
        !r.stdout.contains("200"),
        || r.all(),
    );
    let r = sh("curl -sS --max-time 20 -o /dev/null -w '%{http_code}' http://pipelock:9090/metrics; echo \" rc=$?\"");
    c.check(
        "pipelock admin port through the proxy refused",
        !r.stdout.contains("200"),
        || r.all(),
    );

    // the host: a listener on every host address; the agent must not connect to it
    let listener = TcpListener::bind("0.0.0.0:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    listener.set_nonblocking(true).unwrap();
    let hits = Arc::new(AtomicUsize::new(0));
    let hits2 = Arc::clone(&hits);
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stop2 = Arc::clone(&stop);
    let th = std::thread::spawn(move || {
        while !stop2.load(Ordering::SeqCst) {
            if let Ok((mut s, _)) = listener.accept() {
                hits2.fetch_add(1, Ordering::SeqCst);
                let mut b = [0u8; 64];
                let _ = s.read(&mut b);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    });
    let bottle_net = format!("{project}_bottle");
    let gw = docker(&[
        "network",
        "inspect",
        "--format",
        "{{range .IPAM.Config}}{{.Gateway}}{{end}}",
        &bottle_net,
    ])
    .stdout
    .trim()
    .to_string();
    let docker0 = docker(&[
        "network",
        "inspect",
        "--format",
        "{{range .IPAM.Config}}{{.Gateway}}{{end}}",
        "bridge",
    ])
    .stdout
    .trim()
    .to_string();
    let up_gw = docker(&[
        "network",
        "inspect",
        "--format",
        "{{range .IPAM.Config}}{{.Gateway}}{{end}}",
        &origin.network,
    ])
    .stdout
    .trim()
    .to_string();
    let mut targets: Vec<String> = vec![
        gw.clone(),
        docker0.clone(),
        up_gw.clone(),
        "host.docker.internal".into(),
    ];
    targets.retain(|t| !t.is_empty());
    let script: String = targets
        .iter()
        .map(|t| format!("curl -sS --noproxy '*' --connect-timeout 4 --max-time 6 http://{t}:{port}/ ; echo \" {t} rc=$?\";"))
        .collect();
    let r = sh(&script);
    let reached = hits.load(Ordering::SeqCst);
    c.check(
        "the host is unreachable (gateway, docker0, other bridges)",
        reached == 0 && !r.stdout.contains(" rc=0"),
        || format!("listener hits {reached}; {}", r.all()),
    );
    let r = sh(&format!("curl -sS --max-time 10 -o /dev/null -w '%{{http_code}}' http://{docker0}:{port}/; echo \" rc=$?\""));
    c.check(
        "the host is unreachable through the proxy",
        hits.load(Ordering::SeqCst) == 0 && !r.stdout.contains("200"),
        || r.all(),
    );
    stop.store(true, Ordering::SeqCst);
    let _ = th.join();

    let r = sh("test -e /var/run/docker.sock || test -e /run/docker.sock; echo sock=$?; curl -sS --noproxy '*' --connect-timeout 4 http://172.17.0.1:2375/version; echo \" rc=$?\"");
    c.check(
        "no Docker socket, no Docker TCP API",
        r.stdout.contains("sock=1") && !r.stdout.contains(" rc=0"),
        || r.all(),
    );
    let r = sh("for p in 80 443 22 53 8080; do curl -sS --noproxy '*' --connect-timeout 3 --max-time 4 -o /dev/null http://1.1.1.1:$p/; echo \"port $p rc=$?\"; done; nc -z -w 3 8.8.8.8 53; echo \"nc rc=$?\"");
    c.check(
        "no internet on any port without the proxy",
        !r.stdout.contains(" rc=0"),
        || r.all(),
    );
    let r = sh("curl -sS --max-time 20 -o /dev/null -w '%{http_code}' http://1.1.1.1:8080/; echo \" rc=$?\"; curl -sS --max-time 20 -o /dev/null -w '%{http_code}' https://example.com/; echo \" rc=$?\"");
    c.check(
        "no internet through the proxy for unlisted hosts",
        !r.stdout.contains("200"),
        || r.all(),
    );
    let r = sh("timeout 8 getent hosts example.com; echo \"getent rc=$?\"; dig +time=2 +tries=1 +short example.com; echo \"dig rc=$?\"; dig +time=2 +tries=1 +short @8.8.8.8 example.com; echo \"dig8 rc=$?\"; timeout 8 getent hosts origin.e2e.test; echo \"pinned rc=$?\"");
    let no_answer = !r.stdout.contains("getent rc=0")
        && !r.stdout.contains("pinned rc=0")
        && !r
            .stdout
            .lines()
            .any(|l| l.parse::<std::net::IpAddr>().is_ok());
    c.check(
        "external names do not resolve in the agent (no DNS out)",
        no_answer,
        || r.all(),
    );

    // --- bottle allow: live, no restart, in-flight transfer survives
    let pipelock = service_container(&project, "pipelock");
    let egress = service_container(&project, "egress");
    let (p_start, e_start) = (started_at(&pipelock), started_at(&egress));
    let r = sh("curl -sS --max-time 20 -o /dev/null -w '%{http_code}' http://late.e2e.test/");
    c.check(
        "late.e2e.test refused before allow",
        http_code(&r) == "403",
        || r.all(),
    );
    let r = docker(&[
        "exec", "-d", &agent, "sh", "-c",
        "curl -sS --max-time 120 'https://origin.e2e.test/slow-body?chunks=16&ms=500' > /tmp/long.out 2>&1; echo \"rc=$?\" >> /tmp/long.out",
    ]);
    c.check("long download started", r.code == 0, || r.all());
    std::thread::sleep(Duration::from_millis(1500));
    let r = home.bottle(&["allow", "late.e2e.test", "--bottle", &slug], SHORT);
    c.check(
        "bottle allow late.e2e.test succeeds",
        r.code == 0 && r.stderr.contains("allowed"),
        || r.all(),
    );
    let r = sh("curl -sS --max-time 20 -o /dev/null -w '%{http_code}' https://late.e2e.test/");
    c.check(
        "late.e2e.test reachable after allow",
        http_code(&r) == "200",
        || r.all(),
    );
    c.check(
        "sidecars were not restarted",
        started_at(&pipelock) == p_start && started_at(&egress) == e_start,
        || "StartedAt changed".into(),
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut long = String::new();
    while Instant::now() < deadline {
        long = sh("cat /tmp/long.out 2>/dev/null").stdout;
        if long.contains("rc=") {
            break;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    c.check(
        "download started before the reload completed intact",
        long.contains("chunk-15") && long.contains("rc=0"),
        || long.clone(),
    );
    let r = home.bottle(&["allow", "other.e2e.test"], SHORT);
    c.check(
        "bottle allow without --bottle picks the only running bottle",
        r.code == 0,
        || r.all(),
    );
    let r = sh("curl -sS --max-time 20 -o /dev/null -w '%{http_code}' https://other.e2e.test/");
    c.check(
        "other.e2e.test reachable after allow",
        http_code(&r) == "200",
        || r.all(),
    );
    let before = std::fs::read_to_string(state.join("live-config/allowlist")).unwrap_or_default();
    let r = home.bottle(&["allow", "bad host!", "--bottle", &slug], SHORT);
    let after = std::fs::read_to_string(state.join("live-config/allowlist")).unwrap_or_default();
    c.check(
        "bottle allow rejects an invalid entry, file untouched",
        r.code == 2 && before == after,
        || r.all(),
    );

    // --- a bad edit on disk + SIGHUP keeps the old allowlist
    let gen_p = status_of(&state, "pipelock")["generation"]
        .as_u64()
        .unwrap_or(0);
    let gen_e = status_of(&state, "egress")["generation"]
        .as_u64()
        .unwrap_or(0);
    {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(state.join("live-config/allowlist"))
            .unwrap();
        f.write_all(b"badedit.e2e.test\nthis is not a host !!\n")
            .unwrap();
    }
    let _ = docker(&["kill", "-s", "HUP", &pipelock, &egress]);
    let deadline = Instant::now() + Duration::from_secs(20);
    let (mut sp, mut se) = (serde_json::Value::Null, serde_json::Value::Null);
    while Instant::now() < deadline {
        sp = status_of(&state, "pipelock");
        se = status_of(&state, "egress");
        if sp["last_error"].is_string() && se["last_error"].is_string() {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    c.check(
        "both sidecars report the bad reload in their status file",
        sp["last_error"].is_string() && se["last_error"].is_string(),
        || format!("{sp} {se}"),
    );
    c.check(
        "generation unchanged after a bad reload",
        sp["generation"].as_u64() == Some(gen_p) && se["generation"].as_u64() == Some(gen_e),
        || format!("{sp} {se}"),
    );
    let r = sh("curl -sS --max-time 20 -o /dev/null -w '%{http_code}' https://badedit.e2e.test/; echo \" rc=$?\"");
    c.check(
        "host from the bad edit stays refused",
        !r.stdout.contains("200"),
        || r.all(),
    );
    let r = sh("curl -sS --max-time 20 -o /dev/null -w '%{http_code}' https://late.e2e.test/");
    c.check(
        "old allowlist still active after the bad edit",
        http_code(&r) == "200",
        || r.all(),
    );
    std::fs::write(state.join("live-config/allowlist"), &after).unwrap();
    let _ = docker(&["kill", "-s", "HUP", &pipelock, &egress]);

    // --- `bottle allow` when the sidecars refuse the reload: clear failure, file put back
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline && !status_of(&state, "pipelock")["last_error"].is_null() {
        std::thread::sleep(Duration::from_millis(200));
    }
    let routes_path = state.join("live-config/routes.yaml");
    let routes = std::fs::read_to_string(&routes_path).unwrap_or_default();
    std::fs::write(&routes_path, "routes:\n  - hostt: broken.e2e.test\n").unwrap();
    let r = home.bottle(&["allow", "badedit.e2e.test", "--bottle", &slug], SHORT);
    let now = std::fs::read_to_string(state.join("live-config/allowlist")).unwrap_or_default();
    c.check(
        "bottle allow reports a refused reload and keeps the old allowlist",
        r.code != 0 && r.stderr.contains("old allowlist is still active") && now == after,
        || r.all(),
    );
    let r = sh("curl -sS --max-time 20 -o /dev/null -w '%{http_code}' https://badedit.e2e.test/; echo \" rc=$?\"");
    c.check(
        "host of the refused allow stays refused",
        !r.stdout.contains("200"),
        || r.all(),
    );
    std::fs::write(&routes_path, routes).unwrap();
    let _ = docker(&["kill", "-s", "HUP", &pipelock, &egress]);

    let r = home.bottle(
        &["exec", &slug, "--", "sh", "-c", "echo exec-ok; id -u"],
        SHORT,
    );
    c.check(
        "bottle exec runs in the agent",
        r.code == 0 && r.stdout.contains("exec-ok"),
        || r.all(),
    );

    // --- ls, logs, stop
    let r = home.bottle(&["ls"], SHORT);
    c.check(
        "bottle ls shows the bottle running",
        r.stdout.contains(&slug) && r.stdout.contains("running"),
        || r.all(),
    );
    let r = home.bottle(&["logs", &slug], SHORT);
    c.check(
        "bottle logs shows sidecar logs",
        r.code == 0 && r.stdout.contains("pipelock") && r.stdout.contains("egress"),
        || r.all(),
    );
    let r = home.bottle(&["stop", &slug], START);
    c.check("bottle stop succeeds", r.code == 0, || r.all());
    let left = project_objects(&project);
    c.check(
        "stop leaves no container, network or volume",
        left.is_empty(),
        || format!("{left:?}"),
    );
    c.check("stop removes the state dir", !state.exists(), || {
        state.display().to_string()
    });
}
