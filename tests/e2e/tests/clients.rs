//! Issue 16: the tools an agent runs work through a real bottle (agent -> pipelock -> egress
//! -> local origins; git also through git-gate), on the real Docker engine.
//!
//! Usage: `cargo nextest run -p bottle-e2e --test clients` (or `cargo test -p bottle-e2e --test
//! clients -- --nocapture` to see each check). The test builds `bottle-agent-clients` itself
//! (`bottle build --image bottle-agent-clients`, about 8 minutes once) and needs the other
//! images from `bottle build`. `BOTTLE_CLIENTS_ROWS=pip,npm` runs only those rows.
//! Adding a row: in a module under `clients/`, return a `harness::Row` from its `rows()`
//! (name, the allow/routes/git entries and credential variables it needs, a `fn(&Harness,
//! &mut Checks)`), and list the module below. In the row, `h.run_in_agent(script)` runs
//! `sh -c` in the agent; `h.files` is the package origin (served checksums, request log),
//! `h.echo` the echo origin; `h.check_credential_arrived` and the final no-leak check cover
//! credentials. Rows share one bottle, so a row must not change what another relies on.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is a failure

/// The modules under `clients/`.
mod clients {
    // The harness and the package origin are an API for every row module, not all written.
    #[allow(dead_code)]
    pub mod files;
    pub mod grpc;
    #[allow(dead_code)]
    pub mod harness;
    pub mod http_stacks;
    pub mod packages;
}

use bottle_e2e::*;
use clients::harness::{build_clients_image, select_rows, Harness, Row, ROWS_VAR};
use clients::{grpc, http_stacks, packages};

/// Every row of every module, in the order they run.
fn all_rows() -> Vec<Row> {
    let mut v = packages::rows();
    v.extend(http_stacks::rows());
    v.extend(grpc::rows());
    v
}

#[test]
fn real_clients_through_the_bottle() {
    if !docker_or_skip("real_clients_through_the_bottle") {
        return;
    }
    let filter = std::env::var(ROWS_VAR).ok();
    let rows = select_rows(all_rows(), filter.as_deref());
    require_images();
    build_clients_image();
    let h = Harness::start(&rows);
    let mut c = Checks::default();
    for row in &rows {
        eprintln!("== row {}", row.name);
        (row.run)(&h, &mut c);
    }
    h.check_no_secret_in_agent(&mut c);
    c.finish("real clients");
}
