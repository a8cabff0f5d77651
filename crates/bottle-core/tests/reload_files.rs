//! Reload of the real live-config directory through `reload_now` (no signals here).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use bottle_core::reload;
use bottle_core::{parse_host, LiveConfig, Metrics, StatusFile};

fn status(path: &std::path::Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[tokio::test]
async fn invalid_reload_keeps_old_config() {
    let dir = tempfile::tempdir().unwrap();
    let cfg_dir = dir.path().join("live-config");
    std::fs::create_dir(&cfg_dir).unwrap();
    std::fs::write(cfg_dir.join("allowlist"), "old.example\n").unwrap();
    let status_path = dir.path().join("status.json");
    let metrics = Metrics::new();
    let r = reload::build(
        "pipelock",
        LiveConfig::loader(cfg_dir.clone()),
        Some(StatusFile::new(&status_path, "pipelock")),
        &metrics,
    )
    .unwrap();
    let old = parse_host("old.example").unwrap();
    let new = parse_host("new.example").unwrap();
    assert!(r.current().host_allowed(&old, 443));
    let first_sha = r.sha256();
    assert_eq!(status(&status_path)["config_sha256"], first_sha.as_str());

    // Save by rename, as editors and `bottle allow` do.
    let tmp = cfg_dir.join(".allowlist.tmp");
    std::fs::write(&tmp, "old.example\nnew.example\n").unwrap();
    std::fs::rename(&tmp, cfg_dir.join("allowlist")).unwrap();
    r.reload_now().await.unwrap();
    assert!(r.current().host_allowed(&new, 443));
    assert_eq!(r.generation(), 2);
    let good_sha = r.sha256();
    assert_ne!(good_sha, first_sha);

    // An invalid routes.yaml: nothing changes, the error is in the status file with file:line.
    std::fs::write(
        cfg_dir.join("routes.yaml"),
        "routes:\n  - host: a.example\n    tokn_env: X\n",
    )
    .unwrap();
    let e = r.reload_now().await.unwrap_err().to_string();
    assert!(
        e.ends_with(
            "routes.yaml:3: unknown key `tokn_env` in route (did you mean `tls_passthrough`?)"
        ) || e.contains("routes.yaml:3: unknown key `tokn_env`"),
        "{e}"
    );
    assert!(r.current().host_allowed(&new, 443));
    assert_eq!(r.generation(), 2);
    let st = status(&status_path);
    assert_eq!(st["generation"], 2);
    assert_eq!(st["config_sha256"], good_sha.as_str());
    assert!(st["last_error"]
        .as_str()
        .unwrap()
        .contains("routes.yaml:3:"));

    // An invalid allowlist never widens: even a "*" line is refused as a whole.
    std::fs::write(cfg_dir.join("routes.yaml"), "").unwrap();
    std::fs::write(cfg_dir.join("allowlist"), "evil.example\n*\n").unwrap();
    assert!(r.reload_now().await.is_err());
    assert!(!r
        .current()
        .host_allowed(&parse_host("evil.example").unwrap(), 443));

    // Fixed: accepted again, error cleared.
    std::fs::write(cfg_dir.join("allowlist"), "evil.example\n").unwrap();
    r.reload_now().await.unwrap();
    assert!(r
        .current()
        .host_allowed(&parse_host("evil.example").unwrap(), 443));
    assert!(!r.current().host_allowed(&old, 443));
    assert!(status(&status_path)["last_error"].is_null());
    let m = metrics.encode();
    assert!(m.contains("bottle_reloads_total{result=\"ok\"} 2"), "{m}");
    assert!(
        m.contains("bottle_reloads_total{result=\"error\"} 2"),
        "{m}"
    );
}

#[tokio::test]
async fn unreadable_config_on_start_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    // `allowlist` is a directory: reading it fails with an I/O error naming the file.
    std::fs::create_dir(dir.path().join("allowlist")).unwrap();
    let e = reload::start(
        "egress",
        LiveConfig::loader(dir.path().to_path_buf()),
        None,
        &Metrics::new(),
    )
    .unwrap_err();
    assert!(e.to_string().contains("allowlist"), "{e}");
}
