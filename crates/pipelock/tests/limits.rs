//! pipelock's listener limits are bottle-core's `serve()` (tested there and in
//! `hardening.rs`); this file checks the start-up path of the binary around it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;

/// SIGTERM as soon as the port accepts drains and exits 0: the handlers are installed
/// before the listener is bound (they were installed after, and such a SIGTERM killed it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_right_after_start_exits_cleanly() {
    let env = Env::new("echo.test:*\n", "").await;
    for _ in 0..5 {
        let mut p = Proc::start(&env, &[]);
        p.signal("TERM");
        let st = tokio::task::spawn_blocking(move || p.child.wait().unwrap())
            .await
            .unwrap();
        assert!(st.success(), "{st:?}");
    }
}
