//! The audit log cannot be used to fill the disk: through the real egress binary, a refused
//! request with a 60 KB path writes a short line, and the file rotates at `--audit-max-bytes`
//! keeping `--audit-keep` old files, with no line lost.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use http::{Method, StatusCode};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn huge_refused_path_is_capped_and_audit_rotates() {
    bounded(async {
        let fx = Fixture::with(
            &routes_yaml(),
            ALLOWLIST,
            &["--audit-max-bytes", "8000", "--audit-keep", "50"],
        )
        .await;
        let long = "a".repeat(60_000);
        let n = 20;
        for i in 0..n {
            let uri = fx.url("evil.test", &format!("/{i}/{long}"));
            let (st, h, _) = get(fx.eg.addr, Method::GET, &uri, &[]).await;
            assert_eq!(st, StatusCode::FORBIDDEN);
            assert_eq!(h["x-bottle-blocked"], "egress");
        }
        assert!(fx.origin.requests().is_empty());
        // The last refusal is in the live file once it is there.
        let last = format!("/{}/", n - 1);
        fx.eg
            .wait_audit(|v| v["path"].as_str().is_some_and(|p| p.starts_with(&last)))
            .await;

        let mut files: Vec<_> = std::fs::read_dir(&fx.eg.dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with("audit.jsonl"))
            .collect();
        files.sort();
        assert!(files.len() >= 3, "rotated at 8000 bytes: {files:?}");
        let mut refused = Vec::new();
        for f in &files {
            let p = fx.eg.dir.join(f);
            let text = std::fs::read_to_string(&p).unwrap();
            assert!(text.len() <= 8000, "{f} is {} bytes", text.len());
            for line in text.lines() {
                assert!(line.len() < 4096, "audit line of {} bytes", line.len());
                let v: serde_json::Value = serde_json::from_str(line).unwrap();
                if v["decision"] == "deny" {
                    let p = v["path"].as_str().unwrap();
                    assert!(p.contains("…[truncated "), "{p}");
                    refused.push(p.split('/').nth(1).unwrap().parse::<usize>().unwrap());
                }
            }
        }
        refused.sort();
        assert_eq!(
            refused,
            (0..n).collect::<Vec<_>>(),
            "every refusal logged once"
        );
        fx.finish();
    })
    .await
}
