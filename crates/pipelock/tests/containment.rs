//! The labelled adversarial corpus of issue 13, run through a real pipelock.
//!
//! Every case in `containment/cases/*.yaml` (attack or benign, one class per file) is driven
//! over its transport (HTTP URL/header/body, WebSocket message/fragments/RSV1, response
//! pages and SSE, MCP and A2A JSON-RPC, CONNECT hosts and subdomain bursts) through an
//! in-process pipelock in standalone mode, one pipelock per profile. The outcome is judged
//! only from outside: an attack is contained when pipelock refused it and its canary is
//! absent from the origin's log (outbound) or from what the agent received (inbound).
//! The per-class table is printed and written to `target/containment-report.md`.
//! Asserted: no false positive in the default profile, and every attack contained unless
//! `containment/known_misses` names it with a reason.
#![forbid(unsafe_code)]
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "containment/cases.rs"]
mod cases;
mod common;
#[path = "containment/drive.rs"]
mod drive;
#[path = "support/hostile_origin.rs"]
mod hostile_origin;
#[path = "containment/origin.rs"]
mod origin;
#[path = "containment/report.rs"]
mod report;
#[path = "containment/secrets.rs"]
mod secrets;
#[path = "containment/ws.rs"]
mod ws;

use std::collections::BTreeSet;
use std::path::PathBuf;

use common::Env;
use drive::{Outcome, Target};
use report::Run;

fn corpus_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/containment")
}

/// `--resolve NAME=127.0.0.1` for every corpus host the common fixture does not pin.
fn resolve_args(hosts: &BTreeSet<String>) -> Vec<String> {
    let pinned = ["echo.test", "a.wild.test", "b.c.wild.test", "wild.test"];
    hosts
        .iter()
        .filter(|h| !pinned.contains(&h.as_str()))
        .flat_map(|h| ["--resolve".to_string(), format!("{h}=127.0.0.1")])
        .collect()
}

/// Runs, under `profile`, the cases that profile answers for: under `strict` every case
/// (strict must not weaken the default); under `default` the default cases and the benign
/// strict ones (the default profile must not refuse any ordinary traffic).
async fn run_profile(profile: &str, cases: &[cases::Case]) -> Vec<Run> {
    let routes = format!("dlp:\n  action: block\n  profile: {profile}\n");
    let runs_here = |c: &&cases::Case| profile == "strict" || c.profile == "default" || !c.attack();
    let here: Vec<cases::Case> = cases.iter().filter(runs_here).cloned().collect();
    run_group(&routes, profile, &here).await
}

/// One pipelock with `routes`, one origin, the `cases` in order.
async fn run_group(routes: &str, label: &str, cases: &[cases::Case]) -> Vec<Run> {
    let mut allow = String::from("echo.test:*\n127.0.0.1/32\n");
    for site in cases.iter().filter_map(cases::Case::site) {
        allow.push_str(&site);
        allow.push('\n');
    }
    let env = Env::new(&allow, routes).await;
    let hosts: BTreeSet<String> = cases
        .iter()
        .flat_map(|c| c.hosts())
        .map(|h| h.to_ascii_lowercase())
        .collect();
    let args = resolve_args(&hosts);
    let argv: Vec<&str> = args.iter().map(String::as_str).collect();
    let p = env.spawn(&argv).await;
    let mut names: Vec<String> = vec!["echo.test".into()];
    names.extend(hosts.iter().cloned());
    let origin = origin::Origin::start(&env.origin.ca, &names).await;
    let ws = hostile_origin::WsOrigin::start(&env.origin.ca).await;
    let target = Target {
        proxy: p.addr,
        pipelock_ca: env.ca_cert(),
        origin: &origin,
        ws: &ws,
    };
    // CONTAINMENT_ONLY=<id prefix> runs a subset (debugging; the assertions still apply).
    let only = std::env::var("CONTAINMENT_ONLY").ok();
    let mut out = Vec::new();
    for c in cases {
        if only.as_deref().is_some_and(|o| !c.id.starts_with(o)) {
            continue;
        }
        let o = drive::run(&target, c).await;
        if std::env::var_os("CONTAINMENT_VERBOSE").is_some() {
            println!("{} [{label}] {o:?}", c.id);
        }
        out.push(Run {
            case: c.clone(),
            profile: label.to_string(),
            outcome: o,
        });
    }
    p.stop().await;
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corpus_is_contained_without_false_positives() {
    let dir = corpus_dir();
    let all = cases::load(&dir.join("cases")).unwrap();
    let known = report::known_misses(&dir.join("known_misses")).unwrap();
    // Default-profile false positives found by the corpus and not fixed yet: listed with a
    // reason, shown in the table, never silent; any other one fails.
    let known_fps = report::known_misses(&dir.join("known_false_positives")).unwrap();
    let started = std::time::Instant::now();
    let mut results = run_profile("default", &all).await;
    results.extend(run_profile("strict", &all).await);
    let elapsed = started.elapsed();
    let table = report::render(&results, &known, &known_fps, elapsed);
    println!("{table}");
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target"));
    std::fs::create_dir_all(&target).unwrap();
    std::fs::write(target.join("containment-report.md"), &table).unwrap();

    let benign = all.iter().filter(|c| !c.attack()).count();
    assert!(all.len() >= 150, "{} cases", all.len());
    assert!(
        benign * 10 >= all.len() * 4,
        "{benign} of {} benign",
        all.len()
    );
    let fps: Vec<String> = results
        .iter()
        .filter(|r| r.profile == "default" && matches!(r.outcome, Outcome::FalsePositive(_)))
        .filter(|r| !known_fps.contains_key(&r.case.id))
        .map(|r| format!("{} ({:?})", r.case.id, r.outcome))
        .collect();
    assert!(
        fps.is_empty(),
        "false positives in the default profile: {fps:#?}"
    );
    let unexpected: Vec<String> = results
        .iter()
        .filter(|r| matches!(r.outcome, Outcome::Missed(_)) && !known.contains_key(&r.case.id))
        .map(|r| format!("{} [{}]: {:?}", r.case.id, r.profile, r.outcome))
        .collect();
    assert!(
        unexpected.is_empty(),
        "attacks missed and not in known_misses: {unexpected:#?}"
    );
    let unknown: Vec<&String> = known
        .keys()
        .chain(known_fps.keys())
        .filter(|id| !all.iter().any(|c| &c.id == *id))
        .collect();
    assert!(
        unknown.is_empty(),
        "known_misses / known_false_positives name no case: {unknown:?}"
    );
}

/// The harness itself must see a leak: with pipelock only logging (`action: log`, response
/// and MCP scanning off), one attack per transport (and per way to the proxy) is judged missed with its canary found
/// at the origin or at the agent. (RSV1 frames are refused in every mode, and the
/// subdomain bursts need the strict profile, so those transports are left out.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn harness_sees_every_leak_when_pipelock_only_logs() {
    let all = cases::load(&corpus_dir().join("cases")).unwrap();
    let mut seen = BTreeSet::new();
    let sample: Vec<cases::Case> = all
        .into_iter()
        .filter(|c| c.attack() && c.profile == "default" && c.transport != "ws-rsv1")
        .filter(|c| seen.insert((c.transport.clone(), c.via.clone())))
        .collect();
    assert!(sample.len() >= 14, "{} transports", sample.len());
    let routes = "dlp:\n  action: log\n  responses: off\n  mcp: off\n";
    for run in run_group(routes, "log", &sample).await {
        match &run.outcome {
            Outcome::Missed(d) => assert!(d.contains("leaked=true"), "{}: {d}", run.case.id),
            other => panic!("{} ({}): {other:?}", run.case.id, run.case.transport),
        }
    }
}
