//! Issue 15: a refusal tells the agent which rule decided and, for what the operator could
//! grant (a host, a route), the exact access request to send to supervise; the audit line and
//! the metric come from the same refusal (issue 14).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use http::{Method, StatusCode};

const SUPERVISE: &str = "http://supervise:8070";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_say_the_rule_and_how_to_ask() {
    bounded(async {
        let fx = Fixture::with(
            &routes_yaml(),
            ALLOWLIST,
            &["--supervise-url", &format!("{SUPERVISE}/")],
        )
        .await;
        let port = fx.origin.https_addr.port();

        // A host nobody routes: the host request.
        let (st, h, body) = fx.get("evil.test", "/x", &[]).await;
        assert_eq!(st, StatusCode::FORBIDDEN);
        assert_eq!(h["x-bottle-blocked"], "egress");
        let text = String::from_utf8(body).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines,
            [
                format!("blocked by egress: host not routed: evil.test:{port} (run: bottle allow evil.test:{port})"),
                format!("rule: allowlist and routes.yaml: no entry or route matches evil.test:{port}"),
                format!("ask: curl -s -X POST '{SUPERVISE}/v1/requests' -H 'content-type: application/json' -d '{{\"kind\":\"host\",\"host\":\"evil.test:{port}\",\"reason\":\"<say why you need it>\"}}'"),
                format!("ask (MCP): tool request_access at {SUPERVISE}/mcp, arguments {{\"kind\":\"host\",\"host\":\"evil.test:{port}\",\"reason\":\"<say why you need it>\"}}"),
                format!("operator: bottle allow evil.test:{port} (or approve the agent's request: bottle requests, then bottle approve ID)"),
            ],
            "{text}"
        );

        // A method the route does not allow: the route request, and the rule names the route.
        let (st, _, body) = get(
            fx.eg.addr,
            Method::DELETE,
            &fx.url("paths.test", "/allowed/x"),
            &[],
        )
        .await;
        assert_eq!(st, StatusCode::FORBIDDEN);
        let text = String::from_utf8(body).unwrap();
        assert!(text.starts_with("blocked by egress: method not allowed: DELETE /allowed/x"), "{text}");
        assert!(
            text.contains(&format!("\nrule: routes.yaml: route 4 (line 10) for paths.test:{port}: method DELETE not in [GET, HEAD]\n")),
            "{text}"
        );
        assert!(
            text.contains(&format!("\"kind\":\"route\",\"host\":\"paths.test:{port}\",\"paths\":[\"/allowed/x\"],\"methods\":[\"DELETE\"]")),
            "{text}"
        );

        // A metadata address: refused, never an invitation to ask for it.
        let (st, _, body) = fx.get("169.254.169.254", "/latest/meta-data/", &[]).await;
        assert_eq!(st, StatusCode::FORBIDDEN);
        let text = String::from_utf8(body).unwrap();
        assert!(!text.contains("ask") && !text.contains("operator:"), "{text}");
        assert!(text.contains("\nrule: "), "{text}");

        // The audit line and the metric come from the same refusal.
        let ev = fx
            .eg
            .wait_audit(|v| v["refusal"] == "method_not_allowed")
            .await;
        assert_eq!(ev["decision"], "deny");
        assert_eq!(ev["status"], 403);
        assert_eq!(ev["method"], "DELETE");
        assert!(ev["rule"].as_str().unwrap().contains("route 4"), "{ev}");
        let ev = fx.eg.wait_audit(|v| v["refusal"] == "host_not_allowed").await;
        assert_eq!(ev["route"], "none");
        let m = fx.eg.metrics().await;
        assert!(
            m.contains("egress_refusals_total{kind=\"host_not_allowed\"} 2"),
            "{m}"
        );
        assert!(
            m.contains("egress_refusals_total{kind=\"method_not_allowed\"} 1"),
            "{m}"
        );
        fx.finish();
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_supervise_url_only_the_operator_command_is_given() {
    bounded(async {
        let fx = Fixture::new().await;
        let port = fx.origin.https_addr.port();
        let (st, _, body) = fx.get("evil.test", "/", &[]).await;
        assert_eq!(st, StatusCode::FORBIDDEN);
        let text = String::from_utf8(body).unwrap();
        assert_eq!(text.lines().count(), 3, "{text}");
        assert!(!text.contains("request_access"), "{text}");
        assert!(
            text.ends_with(&format!("\noperator: bottle allow evil.test:{port}\n")),
            "{text}"
        );
        fx.finish();
    })
    .await;
}

#[test]
fn a_supervise_url_that_could_break_quoting_is_refused_at_start() {
    let tmp = tempfile::tempdir().unwrap();
    write_config(&tmp.path().join("live-config"), &routes_yaml(), ALLOWLIST);
    let r = start_egress(
        tmp.path(),
        &[],
        None,
        &["--supervise-url", "http://s/'$(id)'"],
    );
    assert!(r.is_err(), "egress must not start");
}
