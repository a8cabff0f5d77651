//! The push-wide decision: everything decided from the command list alone, before git
//! receives a single object. The receive-pack handler parses the body, calls
//! [`decide_push`] and carries the answer out (a report of `ng` lines, or local
//! receive-pack into a quarantine).

use std::collections::HashSet;

use super::rules::{RepoPolicy, Verdict};
use crate::request::PushRequest;

/// How the body of a push was taken in, which decides before anything it says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Intake {
    /// The whole body was read (in memory or spilled), within the pack limit.
    Whole,
    /// The body went past the pack limit: `total` bytes were seen and the pack was dropped.
    PackTooLarge { total: u64 },
    /// Every push slot was taken (`--max-concurrent-pushes` is `limit`): the body was drained.
    NoPushSlot { limit: usize },
}

/// The answer for a push, before any object is looked at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PushDecision {
    /// Every ref passed: git may receive the pack; the judge checks the objects next.
    Receive,
    /// Nothing is received and nothing goes upstream.
    Refuse(PushRefusal),
}

/// A push refused whole.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushRefusal {
    /// One verdict per command, in order, every one a denial: a ref that passed on its own
    /// is refused as [`Verdict::not_pushed`] (pushes are all or nothing).
    pub verdicts: Vec<Verdict>,
    /// Set when the pack itself was refused (too large, no push slot): git prints it as the
    /// unpack status too.
    pub unpack_error: Option<String>,
    /// How many secrets were found in ref names and push options (for the metric).
    pub secrets_found: u64,
}

/// Why a push (or a receive-pack advertisement) finds every push slot taken.
pub fn too_many_pushes_reason(limit: usize) -> String {
    format!("too many pushes in progress (limit {limit}); try again shortly")
}

/// Decides a push from its parsed command list. `first_secret` names the first detector
/// that fires on some bytes (ref names and push options go upstream as they are, so they
/// must not carry a secret out).
///
/// Precedence, highest first: how the body was taken in (no slot, pack too large); a secret
/// in a ref name (that ref only: the other reasons may quote the name); a push-wide refusal
/// (ref count, push options, a secret in a push option, object format); duplicate refs and
/// the per-ref rules; finally every ref that passed is refused too if any was refused.
pub fn decide_push(
    req: &PushRequest,
    intake: Intake,
    policy: &RepoPolicy,
    first_secret: &dyn Fn(&[u8]) -> Option<String>,
) -> PushDecision {
    let count = req.commands.len();
    let refuse_whole_pack = |rule: &str, reason: String| {
        PushDecision::Refuse(PushRefusal {
            verdicts: vec![Verdict::deny(rule, reason.clone()); count],
            unpack_error: Some(reason),
            secrets_found: 0,
        })
    };
    match intake {
        Intake::NoPushSlot { limit } => {
            return refuse_whole_pack("max-concurrent-pushes", too_many_pushes_reason(limit))
        }
        Intake::PackTooLarge { total } => {
            let reason = format!(
                "pack too large ({total} bytes, limit {})",
                policy.max_pack_bytes
            );
            return refuse_whole_pack("max_pack_bytes", reason);
        }
        Intake::Whole => {}
    }
    let mut secrets_found = 0;
    let mut verdicts: Vec<Verdict> = req
        .commands
        .iter()
        .map(|c| policy.decide_cheap(&c.name, c.kind()))
        .collect();
    let mut seen = HashSet::new();
    for (c, v) in req.commands.iter().zip(verdicts.iter_mut()) {
        if !seen.insert(c.name.as_slice()) && v.allowed {
            *v = Verdict::deny("protocol", "ref appears twice in one push");
        }
    }
    if let Some(push_wide) = push_wide_refusal(req, policy, first_secret, &mut secrets_found) {
        verdicts.fill(push_wide);
    }
    for (c, v) in req.commands.iter().zip(verdicts.iter_mut()) {
        if let Some(detector) = first_secret(&c.name) {
            secrets_found += 1;
            *v = Verdict::deny(
                "secret-scan",
                format!("secret detected ({detector}) in ref name"),
            );
        }
    }
    if verdicts.iter().all(|v| v.allowed) {
        return PushDecision::Receive;
    }
    for v in verdicts.iter_mut().filter(|v| v.allowed) {
        *v = Verdict::not_pushed();
    }
    PushDecision::Refuse(PushRefusal {
        verdicts,
        unpack_error: None,
        secrets_found,
    })
}

/// A refusal of the whole push from the command list's shape, the first that applies.
fn push_wide_refusal(
    req: &PushRequest,
    policy: &RepoPolicy,
    first_secret: &dyn Fn(&[u8]) -> Option<String>,
    secrets_found: &mut u64,
) -> Option<Verdict> {
    if req.commands.len() > policy.max_refs {
        let reason = format!(
            "too many refs in one push ({}, limit {})",
            req.commands.len(),
            policy.max_refs
        );
        return Some(Verdict::deny("max_refs", reason));
    }
    if !req.push_options.is_empty() && !policy.push_options {
        return Some(Verdict::deny(
            "push_options",
            "push options are not allowed",
        ));
    }
    // Push options are forwarded upstream.
    if let Some(detector) = req
        .push_options
        .iter()
        .find_map(|o| first_secret(o.as_bytes()))
    {
        *secrets_found += 1;
        return Some(Verdict::deny(
            "secret-scan",
            format!("secret detected ({detector}) in push option"),
        ));
    }
    // Object ids are checked and forwarded as sha1 everywhere.
    if req.caps.value("object-format").is_some_and(|f| f != "sha1") {
        return Some(Verdict::deny(
            "object-format",
            "only sha1 repositories are supported",
        ));
    }
    None
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::policy::{Action, Rule};
    use crate::request::{Capabilities, Command, ZERO_OID};
    use base64::engine::general_purpose::STANDARD;
    use base64::Engine;

    const A: &str = "1111111111111111111111111111111111111111";
    const B: &str = "2222222222222222222222222222222222222222";

    /// A realistic GitHub token, built at run time (the real detectors judge it).
    fn token() -> String {
        format!("ghp_{}", "aB3dE5gH7jK9mN1pQ3sT5vW7yZ9bC1dF3hJ5")
    }

    fn first_secret(bytes: &[u8]) -> Option<String> {
        bottle_dlp::Detector::builtin()
            .detect(bytes)
            .into_iter()
            .next()
            .map(|f| f.detector.to_string())
    }

    fn policy(push_options: bool) -> RepoPolicy {
        let all = vec![
            Action::Create,
            Action::Update,
            Action::Force,
            Action::Delete,
        ];
        let rules = vec![
            Rule::new(0, "refs/heads/agent/**", all).unwrap(),
            Rule::new(1, "refs/heads/*", vec![Action::Update]).unwrap(),
            Rule::new(2, "refs/tags/v*", vec![Action::Create]).unwrap(),
        ];
        RepoPolicy::new(
            rules,
            &["refs/heads/main".to_string()],
            push_options,
            100,
            3,
            1 << 20,
        )
        .unwrap()
    }

    fn create(name: &str) -> Command {
        Command {
            old: ZERO_OID.into(),
            new: A.into(),
            name: name.as_bytes().to_vec(),
        }
    }

    fn update(name: &str) -> Command {
        Command {
            old: A.into(),
            new: B.into(),
            name: name.as_bytes().to_vec(),
        }
    }

    fn delete(name: &str) -> Command {
        Command {
            old: A.into(),
            new: ZERO_OID.into(),
            name: name.as_bytes().to_vec(),
        }
    }

    fn request(commands: Vec<Command>, caps: &[&str], push_options: Vec<String>) -> PushRequest {
        PushRequest {
            shallow: Vec::new(),
            commands,
            caps: Capabilities(caps.iter().map(|c| c.to_string()).collect()),
            push_options,
            pack_offset: 0,
            has_pack: true,
        }
    }

    enum Want {
        Receive,
        /// The rule of every ref in order, a text the first ref's reason holds, whether the
        /// unpack status carries the reason, and the secrets counted.
        Refuse(&'static [&'static str], &'static str, bool, u64),
    }

    struct Row {
        name: &'static str,
        req: PushRequest,
        push_options_allowed: bool,
        intake: Intake,
        want: Want,
    }

    fn rows() -> Vec<Row> {
        let t = token();
        let row = |name, req, intake, want| Row {
            name,
            req,
            push_options_allowed: false,
            intake,
            want,
        };
        let with_options = |name, req, want| Row {
            name,
            req,
            push_options_allowed: true,
            intake: Intake::Whole,
            want,
        };
        let whole = Intake::Whole;
        vec![
            // Allowed.
            row(
                "one allowed create",
                request(vec![create("refs/heads/agent/x")], &[], vec![]),
                whole,
                Want::Receive,
            ),
            row(
                "two allowed refs",
                request(
                    vec![update("refs/heads/feature"), create("refs/heads/agent/y")],
                    &["report-status"],
                    vec![],
                ),
                whole,
                Want::Receive,
            ),
            row(
                "the update of a protected ref",
                request(vec![update("refs/heads/main")], &[], vec![]),
                whole,
                Want::Receive,
            ),
            row(
                "sha1 named explicitly",
                request(
                    vec![create("refs/heads/agent/x")],
                    &["object-format=sha1"],
                    vec![],
                ),
                whole,
                Want::Receive,
            ),
            row(
                "max_refs refs exactly",
                request(
                    vec![
                        create("refs/heads/agent/a"),
                        create("refs/heads/agent/b"),
                        create("refs/heads/agent/c"),
                    ],
                    &[],
                    vec![],
                ),
                whole,
                Want::Receive,
            ),
            with_options(
                "a clean push option when allowed",
                request(
                    vec![create("refs/heads/agent/x")],
                    &["push-options"],
                    vec!["ci.skip".into()],
                ),
                Want::Receive,
            ),
            // How the body was taken in decides first, whatever the commands say.
            row(
                "no push slot",
                request(
                    vec![create("refs/heads/agent/x"), delete("refs/heads/main")],
                    &[],
                    vec![],
                ),
                Intake::NoPushSlot { limit: 4 },
                Want::Refuse(
                    &["max-concurrent-pushes", "max-concurrent-pushes"],
                    "too many pushes in progress (limit 4); try again shortly",
                    true,
                    0,
                ),
            ),
            row(
                "pack too large",
                request(vec![create("refs/heads/agent/x")], &[], vec![]),
                Intake::PackTooLarge { total: 999 },
                Want::Refuse(
                    &["max_pack_bytes"],
                    "pack too large (999 bytes, limit 100)",
                    true,
                    0,
                ),
            ),
            // Push-wide refusals: every ref gets the same reason.
            row(
                "more refs than max_refs",
                request(
                    vec![
                        create("refs/heads/agent/a"),
                        create("refs/heads/agent/b"),
                        create("refs/heads/agent/c"),
                        create("refs/heads/agent/d"),
                    ],
                    &[],
                    vec![],
                ),
                whole,
                Want::Refuse(
                    &["max_refs"; 4],
                    "too many refs in one push (4, limit 3)",
                    false,
                    0,
                ),
            ),
            row(
                "push options not allowed",
                request(
                    vec![create("refs/heads/agent/x")],
                    &["push-options"],
                    vec!["ci.skip".into()],
                ),
                whole,
                Want::Refuse(&["push_options"], "push options are not allowed", false, 0),
            ),
            with_options(
                "a secret in a push option",
                request(
                    vec![create("refs/heads/agent/x"), create("refs/heads/agent/y")],
                    &["push-options"],
                    vec!["ok".into(), format!("note={t}")],
                ),
                Want::Refuse(
                    &["secret-scan", "secret-scan"],
                    "secret detected (github-pat) in push option",
                    false,
                    1,
                ),
            ),
            row(
                "sha256 object format",
                request(
                    vec![create("refs/heads/agent/x")],
                    &["object-format=sha256"],
                    vec![],
                ),
                whole,
                Want::Refuse(
                    &["object-format"],
                    "only sha1 repositories are supported",
                    false,
                    0,
                ),
            ),
            row(
                "max_refs before push options",
                request(
                    vec![
                        create("refs/heads/agent/a"),
                        create("refs/heads/agent/b"),
                        create("refs/heads/agent/c"),
                        create("refs/heads/agent/d"),
                    ],
                    &["push-options"],
                    vec!["x".into()],
                ),
                whole,
                Want::Refuse(&["max_refs"; 4], "too many refs", false, 0),
            ),
            row(
                "a push-wide refusal overrides a duplicate",
                request(
                    vec![create("refs/heads/agent/x"), create("refs/heads/agent/x")],
                    &["object-format=sha256"],
                    vec![],
                ),
                whole,
                Want::Refuse(&["object-format", "object-format"], "only sha1", false, 0),
            ),
            // Per-ref refusals; the refs that passed are refused with them.
            row(
                "the same ref twice",
                request(
                    vec![create("refs/heads/agent/x"), update("refs/heads/agent/x")],
                    &[],
                    vec![],
                ),
                whole,
                Want::Refuse(
                    &["atomic", "protocol"],
                    "not pushed: another ref in this push was refused",
                    false,
                    0,
                ),
            ),
            row(
                "deleting a protected ref",
                request(
                    vec![delete("refs/heads/main"), create("refs/heads/agent/x")],
                    &[],
                    vec![],
                ),
                whole,
                Want::Refuse(
                    &["protected refs/heads/main", "atomic"],
                    "deletion of protected ref refs/heads/main refused",
                    false,
                    0,
                ),
            ),
            row(
                "a lookalike of a protected ref",
                request(vec![update("refs/heads/MAIN")], &[], vec![]),
                whole,
                Want::Refuse(
                    &["protected refs/heads/main"],
                    "looks like protected ref refs/heads/main",
                    false,
                    0,
                ),
            ),
            row(
                "an invalid ref name",
                request(vec![create("refs/heads/agent/a..b")], &[], vec![]),
                whole,
                Want::Refuse(&["ref-name"], "invalid ref name", false, 0),
            ),
            row(
                "no rule allows it",
                request(vec![create("refs/notes/commits")], &[], vec![]),
                whole,
                Want::Refuse(
                    &["default-deny"],
                    "no rule allows refs/notes/commits",
                    false,
                    0,
                ),
            ),
            row(
                "a tag with no tag rule",
                request(vec![create("refs/tags/other")], &[], vec![]),
                whole,
                Want::Refuse(&["default-deny"], "tags are not allowed", false, 0),
            ),
            row(
                "a rule that does not allow the action",
                request(vec![delete("refs/heads/feature")], &[], vec![]),
                whole,
                Want::Refuse(
                    &["rules[1] refs/heads/*"],
                    "deleting refs/heads/feature is not allowed",
                    false,
                    0,
                ),
            ),
            // A secret in a ref name wins over every other reason for that ref.
            row(
                "a secret in an allowed ref name",
                request(
                    vec![
                        create(&format!("refs/heads/agent/{t}")),
                        create("refs/heads/agent/y"),
                    ],
                    &[],
                    vec![],
                ),
                whole,
                Want::Refuse(
                    &["secret-scan", "atomic"],
                    "secret detected (github-pat) in ref name",
                    false,
                    1,
                ),
            ),
            row(
                "a secret in a ref name and a push-wide refusal",
                request(
                    vec![
                        create(&format!("refs/tags/{t}")),
                        create("refs/heads/agent/y"),
                    ],
                    &["push-options"],
                    vec!["x".into()],
                ),
                whole,
                Want::Refuse(&["secret-scan", "push_options"], "in ref name", false, 1),
            ),
            with_options(
                "secrets in a ref name and a push option",
                request(
                    vec![create(&format!("refs/heads/agent/{t}"))],
                    &["push-options"],
                    vec![t.clone()],
                ),
                Want::Refuse(
                    &["secret-scan"],
                    "secret detected (github-pat) in ref name",
                    false,
                    2,
                ),
            ),
            // Encoded the way an agent would to slip past a literal match.
            row(
                "a base64-encoded secret in a ref name",
                request(
                    vec![create(&format!("refs/heads/agent/{}", STANDARD.encode(&t)))],
                    &[],
                    vec![],
                ),
                whole,
                Want::Refuse(
                    &["secret-scan"],
                    "secret detected (github-pat) in ref name",
                    false,
                    1,
                ),
            ),
            with_options(
                "a hex-encoded secret in a push option",
                request(
                    vec![create("refs/heads/agent/x")],
                    &["push-options"],
                    vec![format!("note={}", hex::encode(&t))],
                ),
                Want::Refuse(
                    &["secret-scan"],
                    "secret detected (github-pat) in push option",
                    false,
                    1,
                ),
            ),
        ]
    }

    #[test]
    fn decide_push_table() {
        for row in rows() {
            let policy = policy(row.push_options_allowed);
            let got = decide_push(&row.req, row.intake, &policy, &first_secret);
            match (row.want, got) {
                (Want::Receive, PushDecision::Receive) => {}
                (Want::Refuse(rules, reason, unpack, secrets), PushDecision::Refuse(r)) => {
                    let got_rules: Vec<&str> = r.verdicts.iter().map(|v| v.rule.as_str()).collect();
                    assert_eq!(got_rules, rules, "{}", row.name);
                    assert!(
                        r.verdicts
                            .iter()
                            .all(|v| !v.allowed && !v.reason.is_empty()),
                        "{}",
                        row.name
                    );
                    assert!(
                        r.verdicts[0].reason.contains(reason),
                        "{}: {:?}",
                        row.name,
                        r.verdicts[0]
                    );
                    assert_eq!(r.unpack_error.is_some(), unpack, "{}", row.name);
                    assert_eq!(r.secrets_found, secrets, "{}", row.name);
                    // A reason never carries the secret itself.
                    for v in &r.verdicts {
                        assert!(!v.reason.contains(&token()), "{}: {v:?}", row.name);
                    }
                }
                (_, got) => panic!("{}: got {got:?}", row.name),
            }
        }
    }
}
