//! What `bottle start` accepts as a ready sidecar, without Docker.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, SystemTime};

use super::ready::{self, judge_status, probe_argv, running, Status};
use crate::docker::{Compose, Container, Flavor};

fn write_status(dir: &Path, name: &str, json: &str, mtime: SystemTime) -> std::path::PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, json).unwrap();
    std::fs::File::options()
        .write(true)
        .open(&p)
        .unwrap()
        .set_modified(mtime)
        .unwrap();
    p
}

const LOADED: &str = r#"{"component":"pipelock","generation":1,"config_sha256":"ab","loaded_at":"2026-12-07T17:00:00.000Z","attempted_at":"2026-12-07T17:00:00.000Z","last_error":null}"#;

#[test]
fn the_file_systems_now_is_read_without_leaving_a_file() {
    let dir = tempfile::tempdir().unwrap();
    let before = SystemTime::now() - Duration::from_secs(1);
    let t = ready::fs_now(dir.path());
    assert!(t >= before && t <= SystemTime::now() + Duration::from_secs(1));
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    // A file written after it is fresh by that clock.
    let p = dir.path().join("pipelock.json");
    std::fs::write(&p, LOADED).unwrap();
    assert_eq!(judge_status("pipelock", &p, t), Status::Loaded);
    // No such dir: the launcher's clock.
    let t = ready::fs_now(&dir.path().join("missing"));
    assert!(t >= before);
}

#[test]
fn a_fresh_loaded_status_file_is_ready_and_nothing_else_is() {
    let dir = tempfile::tempdir().unwrap();
    let since = SystemTime::now();
    let missing = judge_status("pipelock", &dir.path().join("pipelock.json"), since);
    assert_eq!(missing, Status::Waiting("no status file yet".into()));

    let p = write_status(dir.path(), "pipelock.json", LOADED, since);
    assert_eq!(judge_status("pipelock", &p, since), Status::Loaded);
    // Same content, written by an earlier run (or an earlier incarnation of the state dir),
    // even a millisecond before this start: ignored, whatever it says.
    let p = write_status(
        dir.path(),
        "pipelock.json",
        LOADED,
        since - Duration::from_millis(1),
    );
    assert!(matches!(
        judge_status("pipelock", &p, since),
        Status::Waiting(_)
    ));
    let old = since - Duration::from_secs(5);
    let p = write_status(dir.path(), "pipelock.json", LOADED, old);
    assert_eq!(
        judge_status("pipelock", &p, since),
        Status::Waiting("status file older than this start".into())
    );
    // Another component's file under this name does not count.
    let p = write_status(dir.path(), "egress.json", LOADED, since);
    assert_eq!(
        judge_status("egress", &p, since),
        Status::Waiting("status file names `pipelock`".into())
    );
    // A refused config fails the start at once, with the sidecar's own error.
    let refused = r#"{"component":"egress","generation":0,"config_sha256":"","loaded_at":null,"last_error":"routes.yaml:3: unknown key `hots`"}"#;
    let p = write_status(dir.path(), "egress.json", refused, since);
    match judge_status("egress", &p, since) {
        Status::Failed(e) => assert!(
            e.contains("egress") && e.contains("routes.yaml:3: unknown key"),
            "{e}"
        ),
        other => panic!("{other:?}"),
    }
    // The same refusal from before this start is just stale.
    let p = write_status(dir.path(), "egress.json", refused, old);
    assert!(matches!(
        judge_status("egress", &p, since),
        Status::Waiting(_)
    ));
    // Neither loaded nor refused, or not JSON: keep waiting.
    let none = r#"{"component":"egress","generation":0,"loaded_at":null,"last_error":null}"#;
    let p = write_status(dir.path(), "egress.json", none, since);
    assert!(matches!(
        judge_status("egress", &p, since),
        Status::Waiting(_)
    ));
    let p = write_status(dir.path(), "egress.json", "{\"generation\": \"x\"", since);
    match judge_status("egress", &p, since) {
        Status::Waiting(w) => assert!(w.contains("unreadable"), "{w}"),
        other => panic!("{other:?}"),
    }
}

fn container(service: &str, state: &str, status: &str) -> Container {
    Container {
        id: format!("id-{service}"),
        service: service.into(),
        project: "bottle-demo-ab12c".into(),
        state: state.into(),
        status: status.into(),
    }
}

#[test]
fn running_waits_for_created_and_fails_on_stopped() {
    assert_eq!(running("egress", None), Ok(false));
    let c = container("egress", "created", "Created");
    assert_eq!(running("egress", Some(&c)), Ok(false));
    let c = container("egress", "restarting", "Restarting (2) 1 second ago");
    assert_eq!(running("egress", Some(&c)), Ok(false));
    let c = container("egress", "running", "Up 1 second (health: starting)");
    assert_eq!(running("egress", Some(&c)), Ok(true));
    for (state, status) in [("exited", "Exited (2) 1 second ago"), ("dead", "Dead")] {
        let c = container("egress", state, status);
        let e = running("egress", Some(&c)).unwrap_err();
        assert!(
            e.starts_with("egress stopped: ") && e.contains(status),
            "{e}"
        );
    }
}

#[test]
fn sidecars_and_their_probes_match_the_rendered_compose_file() {
    assert_eq!(ready::sidecars(false, false), ["pipelock", "egress"]);
    assert_eq!(
        ready::sidecars(true, true),
        ["pipelock", "egress", "git-gate", "supervise"]
    );
    assert!(ready::has_status_file("git-gate") && !ready::has_status_file("supervise"));
    let m = "name: demo\nimage: agent:1\ngit:\n  - name: demo\n    upstream: https://github.com/acme/demo.git\n    rules: [{ref: \"refs/heads/agent/**\", allow: [create]}]\n";
    let l = crate::manifest::parse(m, Path::new("/tmp/m.yaml"), &BTreeMap::new()).unwrap();
    let opts = crate::render::Options {
        slug: "demo-abcde".into(),
        sidecar_user: (65532, 65532),
        tag: "latest".into(),
        agent_user: None,
    };
    let doc: serde_yaml::Value =
        serde_yaml::from_str(&crate::render::compose(&l, &opts, true).unwrap()).unwrap();
    for svc in ready::sidecars(true, true) {
        let s = &doc["services"][svc];
        let test: Vec<String> = serde_yaml::from_value(s["healthcheck"]["test"].clone()).unwrap();
        assert_eq!(test[0], "CMD", "{svc}");
        assert_eq!(
            test[1..],
            probe_argv(svc),
            "{svc}: the probe is the image's own"
        );
        let status_flag = s["command"]
            .as_sequence()
            .unwrap()
            .iter()
            .filter_map(|a| a.as_str())
            .find(|a| a.starts_with("--status-file="))
            .map(str::to_string);
        let want = ready::has_status_file(svc)
            .then(|| format!("--status-file=/var/lib/bottle/status/{svc}.json"));
        assert_eq!(
            status_flag, want,
            "{svc}: where the launcher reads its status"
        );
    }
}

#[test]
fn no_deps_is_used_only_where_it_skips_the_health_wait() {
    let c = |flavor, v: &str| Compose {
        flavor,
        version: v.into(),
    };
    let v1 = Flavor::Standalone { major: 1 };
    let v2 = Flavor::Standalone { major: 2 };
    assert!(c(v1.clone(), "1.29.2").no_deps_skips_conditions());
    assert!(c(Flavor::Plugin, "2.10.0").no_deps_skips_conditions());
    assert!(c(Flavor::Plugin, "v2.24.6-desktop.1").no_deps_skips_conditions());
    assert!(c(v2.clone(), "2.39.4").no_deps_skips_conditions());
    assert!(c(Flavor::Plugin, "5.0.0").no_deps_skips_conditions());
    assert!(!c(Flavor::Plugin, "2.9.0").no_deps_skips_conditions());
    assert!(!c(v2, "v2.6.1").no_deps_skips_conditions());
    assert!(!c(Flavor::Plugin, "dev").no_deps_skips_conditions());
    assert!(!c(v1, "").no_deps_skips_conditions());
}

#[test]
fn the_deadline_names_the_whole_limit_and_the_hint() {
    let d = ready::Deadline {
        t0: std::time::Instant::now() - Duration::from_secs(5),
        limit: Duration::from_secs(3),
    };
    assert!(d.passed());
    assert_eq!(d.remaining(), Duration::ZERO);
    let e = d
        .exceeded("sidecars not ready", "egress: healthcheck not passing yet")
        .to_string();
    assert!(
        e.contains("sidecars not ready within 3s (egress: healthcheck not passing yet)")
            && e.contains("raise BOTTLE_START_TIMEOUT"),
        "{e}"
    );
    let d = ready::Deadline {
        t0: std::time::Instant::now(),
        limit: Duration::from_secs(60),
    };
    assert!(!d.passed() && d.remaining() > Duration::from_secs(50));
}
