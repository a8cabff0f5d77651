//! The order `bottle start` keeps (issue 17): the agent's container starts only once every
//! sidecar is ready, and a sidecar that dies after loading its config stops the start with
//! its name and logs, before any agent container exists.

use std::path::Path;

use bottle_e2e::*;

use super::*;

/// `2026-12-07T18:01:02.5Z` and `...02.123456789Z` as one comparable key (fraction padded to
/// nanoseconds): Docker trims trailing zeros, the status files keep 3 digits.
fn instant_key(ts: &str) -> Option<String> {
    let ts = ts.trim().strip_suffix('Z')?;
    let (whole, frac) = ts.split_once('.').unwrap_or((ts, ""));
    (whole.len() == 19 && frac.len() <= 9 && frac.bytes().all(|b| b.is_ascii_digit()))
        .then(|| format!("{whole}.{frac:0<9}"))
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Right after `bottle start --detach` returned: the agent started after every status file
/// reported a loaded config, and the launcher says how long each phase took.
pub fn agent_started_after_sidecars(c: &mut Checks, start: &Run, project: &str, state: &Path) {
    c.check(
        "bottle start reports the sidecars ready, then the agent started",
        start.stderr.contains("sidecars ready in") && start.stderr.contains("agent started in"),
        || start.all(),
    );
    let agent = instant_key(&started_at(&agent_container(project)));
    for sidecar in ["pipelock", "egress"] {
        let loaded = status_of(state, sidecar)["loaded_at"]
            .as_str()
            .and_then(instant_key);
        c.check(
            &format!("the agent started after {sidecar} had loaded its config"),
            matches!((&loaded, &agent), (Some(l), Some(a)) if l < a),
            || format!("{sidecar} loaded_at {loaded:?}, agent StartedAt {agent:?}"),
        );
    }
}

/// egress loads its config (a fresh status file says so) but cannot use `upstream_ca`, so it
/// exits before it listens: the start fails naming egress, shows its logs, creates no agent
/// container and leaves nothing behind.
pub fn dying_sidecar_stops_the_start(c: &mut Checks, home: &Home, origin: &Origin) {
    let bad_ca = home.dir.path().join("not-a-ca.pem");
    std::fs::write(
        &bad_ca,
        "-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydA==\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    let good = format!("upstream_ca: {}", origin.ca().display());
    let text = manifest(origin, "").replace(&good, &format!("upstream_ca: {}", bad_ca.display()));
    assert!(text.contains("not-a-ca.pem"), "{text}");
    let p = write_manifest(home, &text);
    // Docker runs on this host: its event times are this clock's.
    let since = (unix_now() - 1).to_string();
    let before = home.slugs();
    let r = home.bottle(&["start", &p, "--detach", "--yes"], START);
    c.check(
        "a dying sidecar fails the start (exit 1)",
        r.code == 1,
        || r.all(),
    );
    c.check(
        "the error names egress and says it stopped",
        r.stderr.contains("egress stopped"),
        || r.stderr.clone(),
    );
    c.check(
        "egress's last log lines are shown",
        r.stderr.contains("last logs of egress"),
        || r.stderr.clone(),
    );
    let slugs = home.slugs();
    let Some(slug) = slugs.iter().find(|s| !before.contains(s)) else {
        c.check("the failed start kept its state dir", false, || {
            format!("{slugs:?}")
        });
        return;
    };
    let project = format!("bottle-{slug}");
    let until = (unix_now() + 1).to_string();
    let f = format!("label=com.docker.compose.project={project}");
    let created = docker(&[
        "events",
        "--since",
        &since,
        "--until",
        &until,
        "--filter",
        "type=container",
        "--filter",
        "event=create",
        "--filter",
        &f,
        "--format",
        "{{index .Actor.Attributes \"com.docker.compose.service\"}}",
    ]);
    c.check(
        "egress's container was created, the agent's never",
        created.code == 0 && created.stdout.contains("egress") && !created.stdout.contains("agent"),
        || created.all(),
    );
    let left = project_objects(&project);
    c.check(
        "the failed start leaves no container, network or volume",
        left.is_empty(),
        || format!("{left:?}"),
    );
    let _ = std::fs::remove_dir_all(home.state(slug));
}

#[test]
fn instant_keys_compare_across_precisions() {
    let k = |s| instant_key(s).unwrap();
    assert!(k("2026-12-07T18:01:02.9Z") > k("2026-12-07T18:01:02.123456789Z"));
    assert!(k("2026-12-07T18:01:02.900Z") == k("2026-12-07T18:01:02.9Z"));
    assert!(k("2026-12-07T18:01:03Z") > k("2026-12-07T18:01:02.999Z"));
    assert_eq!(instant_key("2026-12-07 18:01:02"), None);
    assert_eq!(
        instant_key("0001-01-01T00:00:00Z").as_deref(),
        Some("0001-01-01T00:00:00.000000000")
    );
}
