//! SIGHUP to this test process reloads. Its own test binary: signals hit the whole process.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use bottle_core::reload;
use bottle_core::{parse_host, LiveConfig, Metrics};

fn hup_self() {
    let st = std::process::Command::new("kill")
        .args(["-HUP", &std::process::id().to_string()])
        .status()
        .unwrap();
    assert!(st.success());
}

async fn wait_for(mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if f() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reloads_and_bad_config_is_kept_out() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("allowlist"), "a.example\n").unwrap();
    let r = reload::start(
        "test",
        LiveConfig::loader(dir.path().to_path_buf()),
        None,
        &Metrics::new(),
    )
    .unwrap();
    assert_eq!(r.generation(), 1);

    std::fs::write(dir.path().join("allowlist"), "a.example\nb.example\n").unwrap();
    hup_self();
    assert!(
        wait_for(|| r.generation() == 2).await,
        "SIGHUP did not reload"
    );
    assert!(r
        .current()
        .host_allowed(&parse_host("b.example").unwrap(), 443));

    std::fs::write(dir.path().join("allowlist"), "c.example\nbad*\n").unwrap();
    hup_self();
    assert!(
        wait_for(|| r.last_error().is_some()).await,
        "SIGHUP did not attempt a reload"
    );
    assert_eq!(r.generation(), 2);
    assert!(!r
        .current()
        .host_allowed(&parse_host("c.example").unwrap(), 443));

    // Several signals in a row: the process survives and ends on the newest file.
    std::fs::write(dir.path().join("allowlist"), "d.example\n").unwrap();
    for _ in 0..5 {
        hup_self();
    }
    assert!(
        wait_for(|| r
            .current()
            .host_allowed(&parse_host("d.example").unwrap(), 443))
        .await
    );
    assert!(r.generation() >= 3);
}
