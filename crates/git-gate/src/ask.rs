//! How a refused ref tells the agent to ask for it: the git-ref access request for that exact
//! ref and action, as supervise's curl line and MCP tool call (`remote:` lines of the push).
//!
//! Only a ref no rule covers (`default-deny`) is askable: an approved rule is appended after
//! the manifest's first-match rules, so a ref an earlier rule already decides, a protected
//! ref, a bad name, a secret or a size limit cannot be lifted this way and gets no ask line.

use bottle_core::{AskAccess, SuperviseUrl};

use crate::in_flight::RefOutcome;

/// The `remote:` lines that say how to ask for `o` in `repo`; empty when it is not askable or
/// no supervise runs (`url` is `None`).
pub fn ask_lines(url: Option<&SuperviseUrl>, repo: &str, o: &RefOutcome) -> Vec<String> {
    let (Some(url), Some(action)) = (url, o.class) else {
        return Vec::new();
    };
    let plain = |s: &str| {
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'/' | b'-' | b'_' | b'.'))
    };
    // The names supervise takes (it judges them again); anything else is not offered.
    if o.ok
        || o.rule != "default-deny"
        || !plain(repo)
        || !plain(&o.name)
        || o.name.split('/').count() < 3
    {
        return Vec::new();
    }
    let ask = AskAccess::GitRef {
        repo: repo.to_string(),
        refname: o.name.clone(),
        allow: vec![action.as_str().to_string()],
    };
    vec![
        format!("git-gate: ask: {}", ask.curl_line(url)),
        format!("git-gate: ask (MCP): {}", ask.mcp_line(url)),
    ]
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::policy::Action;

    fn outcome(name: &str, rule: &str, class: Option<Action>) -> RefOutcome {
        RefOutcome {
            name: name.into(),
            old: "0".repeat(40),
            new: "1".repeat(40),
            class,
            rule: rule.into(),
            ok: false,
            reason: "no rule allows it".into(),
        }
    }

    #[test]
    fn only_uncovered_refs_get_an_ask_with_their_action() {
        let url: SuperviseUrl = "http://supervise:8070".parse().unwrap();
        let lines = ask_lines(
            Some(&url),
            "demo",
            &outcome("refs/heads/feature/x", "default-deny", Some(Action::Create)),
        );
        assert_eq!(lines.len(), 2, "{lines:?}");
        assert!(lines[0]
            .starts_with("git-gate: ask: curl -s -X POST 'http://supervise:8070/v1/requests'"));
        for l in &lines {
            assert!(l.contains(r#""kind":"git-ref""#), "{l}");
            assert!(l.contains(r#""repo":"demo""#), "{l}");
            assert!(l.contains(r#""ref":"refs/heads/feature/x""#), "{l}");
            assert!(l.contains(r#""allow":["create"]"#), "{l}");
        }
        assert!(lines[1].contains("request_access"), "{}", lines[1]);
        // (case, ref, rule, class, supervise runs, repo)
        type Row<'a> = (&'a str, &'a str, &'a str, Option<Action>, bool, &'a str);
        let none: &[Row] = &[
            (
                "no supervise",
                "refs/heads/f/x",
                "default-deny",
                Some(Action::Create),
                false,
                "demo",
            ),
            (
                "a rule decides it",
                "refs/heads/agent/x",
                "rules[0] refs/heads/agent/**",
                Some(Action::Force),
                true,
                "demo",
            ),
            (
                "protected",
                "refs/heads/main",
                "protected refs/heads/main",
                Some(Action::Force),
                true,
                "demo",
            ),
            (
                "unclassified (bad facts)",
                "refs/heads/f/x",
                "default-deny",
                None,
                true,
                "demo",
            ),
            (
                "too short for supervise",
                "refs/x",
                "default-deny",
                Some(Action::Create),
                true,
                "demo",
            ),
            (
                "odd ref bytes",
                "refs/heads/a b",
                "default-deny",
                Some(Action::Create),
                true,
                "demo",
            ),
            (
                "odd repo bytes",
                "refs/heads/f/x",
                "default-deny",
                Some(Action::Create),
                true,
                "de'mo",
            ),
        ];
        for (case, name, rule, class, runs, repo) in none {
            let o = outcome(name, rule, *class);
            let got = ask_lines(runs.then_some(&url), repo, &o);
            assert!(got.is_empty(), "{case}: {got:?}");
        }
    }
}
