//! Attached runs, and bottles interrupted or killed.

use bottle_e2e::*;

use super::*;

pub fn attached_runs(c: &mut Checks, home: &Home, mpath: &str) {
    // failing agent: exit code propagates, state kept with compose.log, nothing left running
    let r = home.bottle(
        &[
            "start",
            mpath,
            "--",
            "sh",
            "-c",
            "curl -sS -o /dev/null -w '%{http_code}\\n' https://origin.e2e.test/ ; exit 3",
        ],
        START,
    );
    c.check(
        "failing agent's exit code is the launcher's",
        r.code == 3,
        || r.all(),
    );
    c.check(
        "the agent ran attached (its output reached the terminal)",
        r.stdout.contains("200"),
        || r.all(),
    );
    let slugs = home.slugs();
    c.check("state dir kept after a failure", slugs.len() == 1, || {
        format!("{slugs:?}")
    });
    if let Some(slug) = slugs.first() {
        let state = home.state(slug);
        c.check(
            "launcher said where the state is",
            r.stderr.contains(&state.display().to_string()),
            || r.stderr.clone(),
        );
        let log = std::fs::read_to_string(state.join("compose.log")).unwrap_or_default();
        c.check(
            "compose.log holds pipelock, egress and agent logs",
            log.contains("pipelock") && log.contains("egress") && log.contains("agent"),
            || log.chars().take(2000).collect(),
        );
        c.check(
            "compose.log has timestamps",
            log.lines().any(|l| l.contains("T") && l.contains("Z ")),
            || log.chars().take(500).collect(),
        );
        let left = project_objects(&format!("bottle-{slug}"));
        c.check(
            "teardown after failure leaves no container, network or volume",
            left.is_empty(),
            || format!("{left:?}"),
        );
        let _ = std::fs::remove_dir_all(&state);
    }
    // successful agent: state removed, nothing left
    let r = home.bottle(&["start", mpath, "--", "true"], START);
    c.check("successful agent exits 0", r.code == 0, || r.all());
    c.check(
        "state dir removed after success",
        home.slugs().is_empty(),
        || format!("{:?}", home.slugs()),
    );
    let left = docker(&["ps", "-aq", "--filter", "label=org.bottle.slug"]).stdout;
    c.check(
        "no bottle container left after success",
        left.trim().is_empty(),
        || left.clone(),
    );
}

pub fn wait_for_agent(home: &Home) -> Option<String> {
    let deadline = Instant::now() + START;
    while Instant::now() < deadline {
        if let Some(slug) = home.slugs().first() {
            let a = agent_container(&format!("bottle-{slug}"));
            if !a.is_empty()
                && agent_sh(
                    &a,
                    "for f in /proc/[0-9]*/cmdline; do tr '\\0' ' ' < $f; echo; done | grep -q '^sleep 300' && echo up",
                    SHORT,
                )
                    .stdout
                    .contains("up")
            {
                return Some(slug.clone());
            }
        }
        std::thread::sleep(Duration::from_millis(300));
    }
    None
}

pub fn interrupted_and_killed(c: &mut Checks, home: &Home, mpath: &str) {
    // Ctrl-C (SIGINT to the launcher): teardown still happens, state kept.
    let mut child = home
        .command(&["start", mpath, "--", "sleep", "300"])
        .env("NO_COLOR", "1")
        .stdin(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let slug = wait_for_agent(home);
    c.check("interrupted bottle came up", slug.is_some(), String::new);
    let _ = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status();
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut code = None;
    while Instant::now() < deadline {
        if let Some(st) = child.try_wait().unwrap() {
            code = st.code();
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    if code.is_none() {
        let _ = child.kill();
    }
    let _ = child.wait();
    c.check(
        "launcher exits after SIGINT",
        code.is_some_and(|c| c != 0),
        || format!("{code:?}"),
    );
    if let Some(slug) = &slug {
        let left = project_objects(&format!("bottle-{slug}"));
        c.check("SIGINT tears the bottle down", left.is_empty(), || {
            format!("{left:?}")
        });
        c.check(
            "SIGINT keeps the state dir with compose.log",
            home.state(slug).join("compose.log").is_file(),
            String::new,
        );
        let _ = std::fs::remove_dir_all(home.state(slug));
    }

    // SIGKILL: nothing can run; `bottle cleanup` removes the strays.
    let mut child = home
        .command(&["start", mpath, "--", "sleep", "300"])
        .env("NO_COLOR", "1")
        .stdin(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let slug = wait_for_agent(home);
    c.check("killed bottle came up", slug.is_some(), String::new);
    let _ = child.kill();
    let _ = child.wait();
    if let Some(slug) = &slug {
        let project = format!("bottle-{slug}");
        c.check(
            "strays exist after SIGKILL",
            !project_objects(&project).is_empty(),
            String::new,
        );
        let r = home.bottle(&["cleanup"], SHORT);
        c.check(
            "cleanup without --yes and without a terminal refuses",
            r.code != 0 && !project_objects(&project).is_empty(),
            || r.all(),
        );
        let r = home.bottle(&["cleanup", "--yes"], START);
        c.check("bottle cleanup --yes succeeds", r.code == 0, || r.all());
        let left = project_objects(&project);
        c.check(
            "cleanup removes every container, network and volume",
            left.is_empty(),
            || format!("{left:?}"),
        );
        c.check(
            "cleanup removes the orphan state dir",
            !home.state(slug).exists(),
            String::new,
        );
    }
}
