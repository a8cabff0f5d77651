//! The state dir `bottle start` writes, and its decisions that need no Docker.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use super::*;

const TOKEN_VALUE: &str = "route-token-canary-5e1d";

fn env() -> BTreeMap<String, String> {
    [("API_TOKEN", TOKEN_VALUE), ("USER", "op")]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn load(text: &str, dir: &Path) -> Loaded {
    let path = dir.join("bottle.yaml");
    std::fs::write(&path, text).unwrap();
    manifest::load(&path, &env()).unwrap()
}

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o7777
}

fn files_under(p: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(p).unwrap().flatten() {
        let t = e.file_type().unwrap();
        if t.is_dir() {
            files_under(&e.path(), out);
        } else {
            out.push(e.path());
        }
    }
}

/// Every `./name` bind-mount source of a compose file.
fn bind_sources(compose: &str) -> Vec<String> {
    let doc: serde_yaml::Value = serde_yaml::from_str(compose).unwrap();
    let mut out = Vec::new();
    for (_, svc) in doc["services"].as_mapping().unwrap() {
        for v in svc["volumes"].as_sequence().into_iter().flatten() {
            if let Some(src) = v.as_str().and_then(|s| s.split(':').next()) {
                if let Some(rel) = src.strip_prefix("./") {
                    out.push(rel.to_string());
                }
            }
        }
    }
    out
}

const FULL: &str = "name: demo\nimage: agent:1\nworkspace: ./ws\nworkspace_git: hide-hooks\nupstream_ca: ./corp.pem\nallow: [example.com]\nroutes:\n  - host: api.example.com\n    auth: {scheme: bearer, token_from: API_TOKEN}\ngit:\n  - name: demo\n    upstream: https://github.com/acme/demo.git\n    rules: [{ref: \"refs/heads/agent/**\", allow: [create]}]\ndlp: {responses: warn}\n";

#[test]
fn prepare_state_writes_the_whole_layout_with_its_modes() {
    let m = tempfile::tempdir().unwrap();
    std::fs::create_dir(m.path().join("ws")).unwrap();
    std::fs::write(m.path().join("corp.pem"), "-----BEGIN CERTIFICATE-----\n").unwrap();
    let l = load(FULL, m.path());
    let root = tempfile::tempdir().unwrap();
    let s = StateDir::new(&root.path().join("state"), "demo-ab12c").unwrap();
    let meta = prepare_state(&l, &s, true, false, None).unwrap();
    assert_eq!(meta.compose_project, "bottle-demo-ab12c");
    assert_eq!(s.read_metadata().unwrap().slug, "demo-ab12c");
    for (p, want) in [
        (s.path().parent().unwrap().to_path_buf(), 0o700),
        (s.path().to_path_buf(), 0o711),
        (s.ca_dir(), 0o700),
        (s.ca_key(), 0o600),
        (s.ca_cert(), 0o644),
        (s.agent_ca_cert(), 0o644),
        (s.agent_bundle(), 0o644),
        (s.allowlist(), 0o644),
        (s.routes(), 0o644),
        (s.metadata_file(), 0o600),
        (s.git_gate_data_dir(), 0o700),
        (s.upstream_ca(), 0o644),
        (s.empty_hooks_dir(), 0o555),
        (s.compose_file(), 0o644),
        (requests_dir(&s), 0o700),
    ] {
        assert_eq!(mode(&p), want, "{}", p.display());
    }
    assert!(s.status_dir().is_dir() && s.audit_dir().is_dir());
    // The agent's CA dir holds no key: the bundle ends with the bottle CA.
    let agent_files: Vec<_> = std::fs::read_dir(s.agent_ca_dir())
        .unwrap()
        .flatten()
        .collect();
    assert_eq!(agent_files.len(), 2);
    let key = std::fs::read_to_string(s.ca_key()).unwrap();
    for f in agent_files {
        assert!(!std::fs::read_to_string(f.path())
            .unwrap()
            .contains(key.trim()));
    }
    let bundle = std::fs::read_to_string(s.agent_bundle()).unwrap();
    assert!(bundle.ends_with(&std::fs::read_to_string(s.ca_cert()).unwrap()));
    // The live config loads in the sidecars' parser, with the manifest's dlp settings.
    let routes = std::fs::read_to_string(s.routes()).unwrap();
    let parsed = bottle_core::RoutesFile::parse(&routes, Path::new("routes.yaml")).unwrap();
    assert_eq!(parsed.dlp.responses, bottle_core::routes::ScanAction::Warn);
    // No credential value anywhere in the state dir.
    let mut all = Vec::new();
    files_under(s.path(), &mut all);
    assert!(all.len() >= 9, "{all:?}");
    for f in all {
        let bytes = std::fs::read(&f).unwrap();
        let text = String::from_utf8_lossy(&bytes);
        assert!(!text.contains(TOKEN_VALUE), "credential in {}", f.display());
    }
}

/// Every `./dir` the compose file mounts is one `prepare_state` made: a layout name changed
/// on one side only would start a bottle with an empty (Docker-created, root-owned) mount.
#[test]
fn every_bind_mount_of_the_compose_file_exists_in_the_state_dir() {
    let m = tempfile::tempdir().unwrap();
    std::fs::create_dir(m.path().join("ws")).unwrap();
    std::fs::write(m.path().join("corp.pem"), "pem\n").unwrap();
    for (text, git_gate) in [(FULL, true), ("name: lean\nimage: agent:1\n", false)] {
        let l = load(text, m.path());
        let root = tempfile::tempdir().unwrap();
        let s = StateDir::new(root.path(), "x-00000").unwrap();
        prepare_state(&l, &s, git_gate, true, None).unwrap();
        let compose = std::fs::read_to_string(s.compose_file()).unwrap();
        let sources = bind_sources(&compose);
        assert!(sources.iter().any(|x| x == "live-config"), "{sources:?}");
        for rel in &sources {
            assert!(s.path().join(rel).exists(), "{rel} not in the state dir");
        }
        assert_eq!(s.git_gate_data_dir().exists(), git_gate);
        assert!(sources.iter().any(|x| x == "requests"), "{sources:?}");
    }
    // supervise off: no requests dir, nothing mounts one.
    let l = load(
        "name: off
image: agent:1
supervise: false
",
        m.path(),
    );
    let root = tempfile::tempdir().unwrap();
    let s = StateDir::new(root.path(), "x-00001").unwrap();
    prepare_state(&l, &s, false, true, None).unwrap();
    assert!(!requests_dir(&s).exists());
    let compose = std::fs::read_to_string(s.compose_file()).unwrap();
    assert!(!bind_sources(&compose).iter().any(|x| x == "requests"));
}

#[test]
fn prepare_state_never_reuses_an_existing_dir() {
    let m = tempfile::tempdir().unwrap();
    let l = load("name: demo\nimage: agent:1\n", m.path());
    let root = tempfile::tempdir().unwrap();
    let s = StateDir::new(root.path(), "demo-ab12c").unwrap();
    std::fs::create_dir(s.path()).unwrap();
    std::fs::write(s.path().join("marker"), "theirs").unwrap();
    let e = prepare_state(&l, &s, false, false, None).unwrap_err();
    assert!(e.to_string().contains("already exists"), "{e}");
    assert_eq!(std::fs::read_dir(s.path()).unwrap().count(), 1);
}

#[test]
fn missing_images_names_each_absent_one() {
    let none = |_: &str| false;
    let all = |_: &str| true;
    assert_eq!(
        missing_images(false, false, &none),
        ["bottle-pipelock:latest", "bottle-egress:latest"]
    );
    assert_eq!(missing_images(true, false, &none).len(), 3);
    assert_eq!(missing_images(true, true, &none).len(), 4);
    assert!(missing_images(true, true, &all).is_empty());
    let no_gate = |i: &str| i != "bottle-git-gate:latest";
    assert!(missing_images(false, true, &no_gate).is_empty());
    assert_eq!(
        missing_images(true, false, &no_gate),
        ["bottle-git-gate:latest"]
    );
    let no_sup = |i: &str| i != "bottle-supervise:latest";
    assert!(missing_images(true, false, &no_sup).is_empty());
    assert_eq!(
        missing_images(false, true, &no_sup),
        ["bottle-supervise:latest"]
    );
}

#[test]
fn agent_argv_prefers_the_command_line_then_the_manifest() {
    let m = tempfile::tempdir().unwrap();
    let bare = load("name: demo\nimage: agent:1\n", m.path());
    assert_eq!(agent_argv(&[], &bare), ["sh"]);
    let shell = load(
        "name: demo\nimage: agent:1\ncommand: \"a && b\"\n",
        m.path(),
    );
    assert_eq!(agent_argv(&[], &shell), ["sh", "-c", "a && b"]);
    let cli = vec!["bash".to_string(), "-l".to_string()];
    assert_eq!(agent_argv(&cli, &shell), cli);
}
