//! The state dir's layout: fixed names, nothing outside the dir whatever the slug, and a
//! listing that only trusts what `bottle start` could have made.

use std::os::unix::fs::PermissionsExt;
use std::path::{Component, Path};

use super::*;

fn every_path(s: &StateDir) -> Vec<PathBuf> {
    let mut v = vec![
        s.metadata_file(),
        s.compose_file(),
        s.compose_log(),
        s.ca_dir(),
        s.ca_cert(),
        s.ca_key(),
        s.agent_ca_dir(),
        s.agent_ca_cert(),
        s.agent_bundle(),
        s.live_config_dir(),
        s.allowlist(),
        s.routes(),
        s.status_dir(),
        s.audit_dir(),
        s.git_gate_data_dir(),
        s.upstream_ca_dir(),
        s.upstream_ca(),
        s.empty_hooks_dir(),
    ];
    for c in [Sidecar::Pipelock, Sidecar::Egress, Sidecar::GitGate] {
        v.push(s.status_file(c));
    }
    v
}

#[test]
fn slug_shape() {
    let s = new_slug("demo");
    assert!(s.starts_with("demo-"));
    assert_eq!(s.len(), "demo-".len() + 5);
    assert!(valid_slug(&s));
    assert_ne!(new_slug("demo"), new_slug("demo"));
    assert!(!valid_slug("../etc"));
    assert!(!valid_slug("A"));
}

/// The names the e2e tests, the compose fragment's bind mounts and DESIGN.md rely on.
#[test]
fn layout_names_are_the_documented_ones() {
    let root = Path::new("/srv/bottle/state");
    let s = StateDir::new(root, "demo-ab12c").unwrap();
    let d = root.join("demo-ab12c");
    assert_eq!(s.path(), d);
    assert_eq!(s.slug(), "demo-ab12c");
    assert_eq!(s.project(), "bottle-demo-ab12c");
    for (got, want) in [
        (s.metadata_file(), "metadata.json"),
        (s.compose_file(), "docker-compose.yml"),
        (s.compose_log(), "compose.log"),
        (s.ca_cert(), "ca/ca.crt"),
        (s.ca_key(), "ca/ca.key"),
        (s.agent_ca_cert(), "agent-ca/ca.crt"),
        (s.agent_bundle(), "agent-ca/bundle.pem"),
        (s.allowlist(), "live-config/allowlist"),
        (s.routes(), "live-config/routes.yaml"),
        (s.status_file(Sidecar::Pipelock), "status/pipelock.json"),
        (s.status_file(Sidecar::Egress), "status/egress.json"),
        (s.status_file(Sidecar::GitGate), "status/git-gate.json"),
        (s.audit_dir(), "audit"),
        (s.git_gate_data_dir(), "git-gate-data"),
        (s.upstream_ca(), "upstream-ca/ca.pem"),
        (s.empty_hooks_dir(), "empty-hooks"),
    ] {
        assert_eq!(got, d.join(want));
    }
}

/// A slug from the command line (`bottle stop ../../home/op`) or a project label never
/// becomes a path: it is refused, and every accepted slug stays one plain component.
#[test]
fn hostile_slugs_never_leave_the_root() {
    let root = Path::new("/srv/bottle/state");
    let long = "a".repeat(65);
    for bad in [
        "",
        ".",
        "..",
        "../x",
        "a/../..",
        "/etc",
        "a/b",
        "a\\b",
        "-rf",
        "A",
        "demo-ABCDE",
        "a b",
        "a\nb",
        "a\0b",
        "ａ",
        "demo-ab.c",
        long.as_str(),
    ] {
        let e = StateDir::new(root, bad).unwrap_err();
        assert!(
            matches!(e, Error::Usage(ref m) if m.contains("not a bottle slug")),
            "{bad:?}: {e}"
        );
    }
    for good in ["a", "demo-ab12c", "bottle-bottle-x", "9-9", &"z".repeat(64)] {
        let s = StateDir::new(root, good).unwrap();
        for p in every_path(&s) {
            assert!(p.starts_with(root.join(good)), "{p:?}");
            let rest = p.strip_prefix(root).unwrap();
            assert!(
                rest.components().all(|c| matches!(c, Component::Normal(_))),
                "{p:?}"
            );
        }
    }
}

#[test]
fn metadata_round_trips_and_is_private() {
    let root = tempfile::tempdir().unwrap();
    let s = StateDir::new(root.path(), "demo-ab12c").unwrap();
    mkdir(s.path(), 0o711, None).unwrap();
    assert!(s.read_metadata().is_err(), "no file yet");
    let m = Metadata {
        name: "demo".into(),
        slug: s.slug().into(),
        cwd: "/w".into(),
        manifest: "/w/m.yaml".into(),
        started_at: now_rfc3339(),
        compose_project: s.project(),
        git_gate: true,
        detached: false,
        guarded_git: None,
        workspace: Some("/w".into()),
    };
    s.write_metadata(&m).unwrap();
    let back = s.read_metadata().unwrap();
    assert_eq!(back.compose_project, "bottle-demo-ab12c");
    assert_eq!(back.workspace.as_deref(), Some("/w"));
    let mode = std::fs::metadata(s.metadata_file())
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    std::fs::write(s.metadata_file(), "{not json").unwrap();
    assert!(s.read_metadata().is_err());

    assert!(!s.is_preserved());
    s.preserve();
    assert!(s.is_preserved());
}

/// Only real directories named like a slug are listed: a symlink planted in the state root
/// (pointing at the operator's home, say) is neither followed nor offered to `cleanup`.
#[test]
fn listing_trusts_only_slug_named_directories() {
    let root = tempfile::tempdir().unwrap();
    let elsewhere = tempfile::tempdir().unwrap();
    let canary = elsewhere.path().join("canary");
    std::fs::write(&canary, "keep me").unwrap();
    for d in ["b-2", "a-1", "Upper", ".hidden", "a b"] {
        std::fs::create_dir(root.path().join(d)).unwrap();
    }
    std::fs::write(root.path().join("c-3"), "a file").unwrap();
    std::os::unix::fs::symlink(elsewhere.path(), root.path().join("d-4")).unwrap();
    let a = StateDir::new(root.path(), "a-1").unwrap();
    std::fs::write(
        a.metadata_file(),
        r#"{"name":"a","slug":"a-1","cwd":"/","manifest":"m","started_at":"t","compose_project":"bottle-a-1"}"#,
    )
    .unwrap();
    let listed = StateDir::list_in(root.path());
    let slugs: Vec<&str> = listed.iter().map(|(s, _)| s.slug()).collect();
    assert_eq!(slugs, ["a-1", "b-2"]);
    assert_eq!(listed[0].1.as_ref().unwrap().compose_project, "bottle-a-1");
    assert!(listed[1].1.is_none(), "b-2 has no metadata");
    assert!(canary.is_file());
    assert!(StateDir::new(root.path(), "a-1").unwrap().exists());
    assert!(
        !StateDir::new(root.path(), "d-4").unwrap().exists(),
        "symlink"
    );
    assert!(!StateDir::new(root.path(), "c-3").unwrap().exists(), "file");
    assert!(
        !StateDir::new(root.path(), "e-5").unwrap().exists(),
        "absent"
    );
    assert!(StateDir::list_in(&root.path().join("missing")).is_empty());
}

/// The launcher reads status files with the type bottle-core writes them with.
#[test]
fn status_written_by_a_sidecar_is_read_back() {
    let root = tempfile::tempdir().unwrap();
    let s = StateDir::new(root.path(), "demo-ab12c").unwrap();
    mkdir(&s.status_dir(), 0o755, None).unwrap();
    assert!(s.read_status(Sidecar::Egress).is_none());
    let w = bottle_core::StatusFile::new(s.status_file(Sidecar::Egress), "egress");
    w.write(0, "", Some("allowlist:3: bad")).unwrap();
    let first = s.read_status(Sidecar::Egress).unwrap();
    assert_eq!(first.last_error.as_deref(), Some("allowlist:3: bad"));
    assert_eq!(
        first.loaded_at, None,
        "a sidecar that never loaded still reads"
    );
    w.write(2, "abc", None).unwrap();
    let st = s.read_status(Sidecar::Egress).unwrap();
    assert_eq!((st.component.as_str(), st.generation), ("egress", 2));
    assert!(s.read_status(Sidecar::Pipelock).is_none());
}
