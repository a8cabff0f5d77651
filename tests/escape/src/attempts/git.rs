//! git policy by every route: each refused push leaves A's upstream repository unchanged.

use super::{custom, gist};
use crate::attempts::http::aws_key;
use crate::{outcome, Attempt, World};

const GC: &str = "git -c user.name=agent -c user.email=agent@example.invalid";

/// A refused git operation: the command fails and the upstream's refs do not move.
fn refused(
    name: &'static str,
    expect: &'static str,
    script: impl Fn() -> String + Send + Sync + 'static,
) -> Attempt {
    custom("git", name, expect, move |w: &World| {
        let before = w.upstream_refs();
        let r = w.a_sh(&format!(
            "cd /tmp/w && {{ {} ; }} 2>&1; echo \" rc=$?\"",
            script()
        ));
        let after = w.upstream_refs();
        let out = r.all();
        let reason = out
            .lines()
            .find(|l| l.contains("remote:") || l.contains("rejected") || l.contains("fatal"))
            .unwrap_or("")
            .to_string();
        outcome(
            !out.contains(" rc=0") && before == after && !before.is_empty(),
            format!(
                "{}; upstream {}",
                if reason.is_empty() {
                    gist(&out)
                } else {
                    reason
                },
                if before == after {
                    "unchanged"
                } else {
                    "CHANGED"
                }
            ),
        )
    })
}

pub fn attempts(w: &World) -> Vec<Attempt> {
    let url = format!("file://{}", w.upstream_a.display());
    let mut v = Vec::new();
    let u = url.clone();
    v.push(custom(
        "git",
        "control-allowed-push-lands",
        "control: clone through git-gate and an allowed push (agent/**) lands upstream",
        move |w: &World| {
            let r = w.a_sh(&format!(
                "rm -rf /tmp/w && git clone -q {u} /tmp/w && cd /tmp/w && git checkout -q -b agent/base && echo hi > f && git add f && {GC} commit -q -m base && git push -q origin agent/base 2>&1; echo \" rc=$?\"; git rev-parse HEAD"
            ));
            let head = r.stdout.lines().last().unwrap_or("").trim().to_string();
            let refs = w.upstream_refs();
            outcome(
                r.stdout.contains(" rc=0") && !head.is_empty() && refs.contains(&format!("refs/heads/agent/base {head}")),
                gist(&r.all()),
            )
        },
    ));
    v.push(refused(
        "push-protected-main",
        "refused: main is protected",
        || "git push origin agent/base:main".into(),
    ));
    v.push(refused("force-push-agent-branch", "refused: force is not allowed on agent/**", || {
        format!("git checkout -q -B rewrite origin/main && echo x > g && git add g && {GC} commit -q -m rewrite && git push -f origin rewrite:agent/base")
    }));
    v.push(refused(
        "delete-agent-branch",
        "refused: delete is not allowed",
        || "git push origin :agent/base".into(),
    ));
    v.push(refused(
        "push-tag",
        "refused: no rule allows refs/tags/**",
        || "git tag -f v1 agent/base && git push origin v1".into(),
    ));
    v.push(refused(
        "push-other-namespace",
        "refused: refs/heads/feature/* has no rule",
        || "git push origin agent/base:refs/heads/feature/x".into(),
    ));
    v.push(refused("secret-in-blob", "refused by git-gate's DLP; upstream unchanged", || {
        let k = aws_key();
        format!("git checkout -q agent/base && printf 'id = {k}\\n' > creds && git add creds && {GC} commit -q -m c && git push origin agent/base; rc=$?; git reset -q --hard origin/agent/base; (exit $rc)")
    }));
    v.push(refused("secret-in-file-name", "refused: secret in a tree entry name", || {
        let k = aws_key();
        format!("git checkout -q agent/base && echo x > 'key-{k}' && git add . && {GC} commit -q -m c && git push origin agent/base; rc=$?; git reset -q --hard origin/agent/base; (exit $rc)")
    }));
    v.push(refused(
        "secret-in-ref-name",
        "refused: secret in the ref name",
        || {
            let k = aws_key();
            format!("git push origin agent/base:refs/heads/agent/{k}")
        },
    ));
    v.push(refused("secret-in-commit-message", "refused: secret in the commit message", || {
        let k = aws_key();
        format!("git checkout -q agent/base && {GC} commit -q --allow-empty -m 'deploy with {k}' && git push origin agent/base; rc=$?; git reset -q --hard origin/agent/base; (exit $rc)")
    }));
    v.push(refused(
        "push-unconfigured-repo",
        "refused: repository not configured",
        || "git push http://git-gate:8080/other.git agent/base:refs/heads/agent/x".into(),
    ));
    v.push(refused("fetch-unconfigured-repo", "refused: repository not configured", || {
        "git ls-remote http://git-gate:8080/other.git && git clone -q http://git-gate:8080/other.git /tmp/o".into()
    }));
    let u = url.clone();
    v.push(refused(
        "push-upstream-url-without-rewrite",
        "the upstream path does not exist in the agent",
        move || format!("GIT_CONFIG_COUNT=0 git push {u} agent/base:refs/heads/agent/direct"),
    ));
    v.push(refused("push-via-proxy-to-git-gate", "pipelock refuses git-gate as a proxied host", || {
        "NO_PROXY= no_proxy= git -c http.proxy=http://pipelock:8888 push http://git-gate:8080/demo.git agent/base:refs/heads/agent/viaproxy".into()
    }));
    v
}
