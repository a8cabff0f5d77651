//! The ref rules of one repository: ordered rules on full ref names (first match wins, no
//! match = denied), `protected` refs that are never forced or deleted, tags denied unless a
//! rule written for `refs/tags/...` allows them. The repository's limits live here too; the
//! push-wide checks that use them are in `push.rs`.

use globset::{Glob, GlobMatcher};

use crate::refname;

/// What a ref update does, once classified.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    Create,
    /// A fast-forward update.
    Update,
    /// A non-fast-forward update (or any move of a tag).
    Force,
    Delete,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Create => "create",
            Action::Update => "update",
            Action::Force => "force",
            Action::Delete => "delete",
        }
    }
}

#[derive(Debug, Clone)]
pub struct Rule {
    pub index: usize,
    pub pattern: String,
    matcher: GlobMatcher,
    pub allow: Vec<Action>,
}

impl Rule {
    pub fn new(index: usize, pattern: &str, allow: Vec<Action>) -> Result<Rule, String> {
        let glob = globset::GlobBuilder::new(pattern)
            .literal_separator(true)
            .backslash_escape(true)
            .build()
            .map_err(|e| format!("bad ref pattern {pattern:?}: {e}"))?;
        Ok(Rule {
            index,
            pattern: pattern.to_string(),
            matcher: glob.compile_matcher(),
            allow,
        })
    }

    pub fn matches(&self, name: &str) -> bool {
        self.matcher.is_match(name)
    }

    pub fn id(&self) -> String {
        format!("rules[{}] {}", self.index, self.pattern)
    }
}

/// A protected entry: a glob, plus its lookalike skeleton when it is a literal name.
#[derive(Debug, Clone)]
struct Protected {
    pattern: String,
    matcher: GlobMatcher,
    skeleton: Option<String>,
}

/// The policy of one repository (one snapshot; never mutated after construction).
#[derive(Debug, Clone)]
pub struct RepoPolicy {
    pub rules: Vec<Rule>,
    protected: Vec<Protected>,
    pub push_options: bool,
    pub max_pack_bytes: u64,
    pub max_refs: usize,
    pub max_object_bytes: u64,
}

/// The rule named by [`Verdict::not_pushed`].
pub const ATOMIC_RULE: &str = "atomic";

/// The outcome for one ref.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    pub allowed: bool,
    /// Which rule decided: `rules[i] <glob>`, `protected <glob>`, `ref-name`, `default-deny`, ...
    pub rule: String,
    /// Human reason for refusals (printed in `ng` and `remote:`), empty when allowed.
    pub reason: String,
}

impl Verdict {
    fn allow(rule: String) -> Verdict {
        Verdict {
            allowed: true,
            rule,
            reason: String::new(),
        }
    }

    pub fn deny(rule: impl Into<String>, reason: impl Into<String>) -> Verdict {
        Verdict {
            allowed: false,
            rule: rule.into(),
            reason: reason.into(),
        }
    }

    /// A ref that passed on its own, refused because another ref of the same push was:
    /// pushes are all or nothing.
    pub fn not_pushed() -> Verdict {
        Verdict::deny(
            ATOMIC_RULE,
            "not pushed: another ref in this push was refused",
        )
    }

    /// Whether this is [`Verdict::not_pushed`] (the reason is another ref's, not this one's).
    pub fn is_not_pushed(&self) -> bool {
        !self.allowed && self.rule == ATOMIC_RULE
    }
}

impl RepoPolicy {
    pub fn new(
        rules: Vec<Rule>,
        protected: &[String],
        push_options: bool,
        max_pack_bytes: u64,
        max_refs: usize,
        max_object_bytes: u64,
    ) -> Result<RepoPolicy, String> {
        let mut prot = Vec::new();
        for p in protected {
            let glob = Glob::new(p).map_err(|e| format!("bad protected pattern {p:?}: {e}"))?;
            let literal = !p.contains(['*', '?', '[', '{']);
            prot.push(Protected {
                pattern: p.clone(),
                matcher: globset::GlobBuilder::new(glob.glob())
                    .literal_separator(true)
                    .build()
                    .map_err(|e| format!("bad protected pattern {p:?}: {e}"))?
                    .compile_matcher(),
                skeleton: literal.then(|| refname::skeleton(p)),
            });
        }
        Ok(RepoPolicy {
            rules,
            protected: prot,
            push_options,
            max_pack_bytes,
            max_refs,
            max_object_bytes,
        })
    }

    fn protected_match(&self, name: &str) -> Option<&Protected> {
        self.protected.iter().find(|p| p.matcher.is_match(name))
    }

    fn first_rule(&self, name: &str) -> Option<&Rule> {
        let is_tag = name.starts_with("refs/tags/");
        self.rules
            .iter()
            // Tags are only governed by rules written for tags.
            .filter(|r| !is_tag || r.pattern.starts_with("refs/tags/"))
            .find(|r| r.matches(name))
    }

    /// Checks a ref name and the protected-lookalike rule.
    pub fn check_name(&self, name: &[u8]) -> Result<(), Verdict> {
        refname::validate(name)
            .map_err(|why| Verdict::deny("ref-name", format!("invalid ref name: {why}")))?;
        let s = String::from_utf8_lossy(name);
        if self.protected_match(&s).is_none() {
            let sk = refname::skeleton(&s);
            if let Some(p) = self
                .protected
                .iter()
                .find(|p| p.skeleton.as_deref() == Some(sk.as_str()))
            {
                return Err(Verdict::deny(
                    format!("protected {}", p.pattern),
                    format!("ref name looks like protected ref {}", p.pattern),
                ));
            }
        }
        Ok(())
    }

    /// The full decision for a classified update.
    pub fn decide(&self, name: &[u8], action: Action) -> Verdict {
        if let Err(v) = self.check_name(name) {
            return v;
        }
        let s = String::from_utf8_lossy(name);
        let action = if s.starts_with("refs/tags/") && action == Action::Update {
            Action::Force // moving an existing tag is always a rewrite
        } else {
            action
        };
        if let Some(p) = self.protected_match(&s) {
            if matches!(action, Action::Force | Action::Delete) {
                let what = if action == Action::Force {
                    "force push"
                } else {
                    "deletion"
                };
                return Verdict::deny(
                    format!("protected {}", p.pattern),
                    format!("{what} of protected ref {s} refused"),
                );
            }
        }
        match self.first_rule(&s) {
            None if s.starts_with("refs/tags/") => Verdict::deny(
                "default-deny",
                "tags are not allowed (no rule allows refs/tags/)",
            ),
            None => Verdict::deny("default-deny", format!("no rule allows {s}")),
            Some(rule) if rule.allow.contains(&action) => Verdict::allow(rule.id()),
            Some(rule) => {
                let what = match action {
                    Action::Create => "creating",
                    Action::Update => "updating",
                    Action::Force => "force pushing (non-fast-forward)",
                    Action::Delete => "deleting",
                };
                Verdict::deny(rule.id(), format!("{what} {s} is not allowed"))
            }
        }
    }

    /// The cheap decision before any object is seen: an update is allowed here if either a
    /// fast-forward or a force would be; the exact classification decides later.
    pub fn decide_cheap(&self, name: &[u8], kind: crate::request::CommandKind) -> Verdict {
        use crate::request::CommandKind;
        match kind {
            CommandKind::Create => self.decide(name, Action::Create),
            CommandKind::Delete => self.decide(name, Action::Delete),
            CommandKind::Update => {
                let ff = self.decide(name, Action::Update);
                if ff.allowed {
                    return ff;
                }
                let force = self.decide(name, Action::Force);
                if force.allowed {
                    force
                } else {
                    ff
                }
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::request::CommandKind;

    fn policy() -> RepoPolicy {
        let rules = vec![
            Rule::new(
                0,
                "refs/heads/agent/**",
                vec![
                    Action::Create,
                    Action::Update,
                    Action::Force,
                    Action::Delete,
                ],
            )
            .unwrap(),
            Rule::new(1, "refs/heads/*", vec![Action::Update]).unwrap(),
            Rule::new(2, "refs/tags/v*", vec![Action::Create]).unwrap(),
            Rule::new(
                3,
                "refs/**",
                vec![
                    Action::Create,
                    Action::Update,
                    Action::Force,
                    Action::Delete,
                ],
            )
            .unwrap(),
        ];
        RepoPolicy::new(
            rules,
            &["refs/heads/main".to_string()],
            false,
            1 << 20,
            10,
            1 << 20,
        )
        .unwrap()
    }

    #[test]
    fn rules_in_order() {
        let p = policy();
        assert!(p.decide(b"refs/heads/agent/x", Action::Force).allowed);
        assert!(p.decide(b"refs/heads/agent/x/y", Action::Delete).allowed);
        assert_eq!(
            p.decide(b"refs/heads/agent/x", Action::Create).rule,
            "rules[0] refs/heads/agent/**"
        );
        assert!(p.decide(b"refs/heads/feature", Action::Update).allowed);
        let v = p.decide(b"refs/heads/feature", Action::Force);
        assert!(!v.allowed);
        assert_eq!(v.rule, "rules[1] refs/heads/*");
        assert!(!p.decide(b"refs/heads/feature", Action::Create).allowed);
        // first match wins: refs/heads/x/y is not matched by refs/heads/* (single component)
        // but by refs/** below
        assert!(p.decide(b"refs/heads/x/y", Action::Create).allowed);
    }

    #[test]
    fn protected_never_forced_or_deleted() {
        let p = policy();
        assert!(p.decide(b"refs/heads/main", Action::Update).allowed);
        let v = p.decide(b"refs/heads/main", Action::Force);
        assert!(!v.allowed && v.rule == "protected refs/heads/main", "{v:?}");
        assert!(!p.decide(b"refs/heads/main", Action::Delete).allowed);
        assert!(!p.decide(b"refs/heads/Main", Action::Create).allowed);
        assert!(!p.decide(b"refs/heads/MAIN", Action::Update).allowed);
        assert!(!p.decide(b"refs/heads/rnain", Action::Update).allowed);
        assert!(
            !p.decide("refs/heads/mаin".as_bytes(), Action::Update)
                .allowed
        );
    }

    #[test]
    fn tags_need_tag_rules() {
        let p = policy();
        assert!(p.decide(b"refs/tags/v1", Action::Create).allowed);
        // moving a tag = force, even when it would be a fast-forward
        assert!(!p.decide(b"refs/tags/v1", Action::Update).allowed);
        assert!(!p.decide(b"refs/tags/v1", Action::Delete).allowed);
        // refs/** does not count for tags
        let v = p.decide(b"refs/tags/other", Action::Create);
        assert!(!v.allowed && v.rule == "default-deny");
        let no_rules = RepoPolicy::new(vec![], &[], false, 1, 1, 1).unwrap();
        assert!(!no_rules.decide(b"refs/heads/x", Action::Create).allowed);
    }

    #[test]
    fn invalid_names_denied_before_rules() {
        let p = policy();
        for n in [
            &b"refs/heads/agent/../main"[..],
            b"refs/heads/agent/a..b",
            b"refs/heads/agent/x@{1}",
            b"refs/heads/agent/\x07",
        ] {
            let v = p.decide(n, Action::Create);
            assert!(!v.allowed);
            assert_eq!(v.rule, "ref-name");
        }
    }

    #[test]
    fn cheap_update() {
        let p = policy();
        assert!(
            p.decide_cheap(b"refs/heads/agent/x", CommandKind::Update)
                .allowed
        );
        assert!(
            p.decide_cheap(b"refs/heads/feature", CommandKind::Update)
                .allowed
        );
        assert!(
            !p.decide_cheap(b"refs/heads/feature", CommandKind::Delete)
                .allowed
        );
    }

    /// Every refusal `decide` can return, and the allowed paths past each check. The
    /// policy has no catch-all for tags, so `refs/**` (rule 3) covers everything else.
    #[test]
    fn decide_table() {
        let p = policy();
        let tags_only = RepoPolicy::new(
            vec![Rule::new(0, "refs/heads/agent/*", vec![Action::Create]).unwrap()],
            &["refs/heads/release/*".to_string()],
            false,
            1,
            1,
            1,
        )
        .unwrap();
        use Action::*;
        // (case, policy, ref, action, None when allowed by that rule id, or (rule, reason))
        type Row<'a> = (
            &'a str,
            &'a RepoPolicy,
            &'a [u8],
            Action,
            Result<&'a str, (&'a str, &'a str)>,
        );
        let rows: Vec<Row> = vec![
            (
                "first rule",
                &p,
                b"refs/heads/agent/x",
                Force,
                Ok("rules[0] refs/heads/agent/**"),
            ),
            (
                "update of protected",
                &p,
                b"refs/heads/main",
                Update,
                Ok("rules[1] refs/heads/*"),
            ),
            (
                "catch-all",
                &p,
                b"refs/notes/x",
                Delete,
                Ok("rules[3] refs/**"),
            ),
            (
                "tag rule",
                &p,
                b"refs/tags/v2",
                Create,
                Ok("rules[2] refs/tags/v*"),
            ),
            (
                "invalid name",
                &p,
                b"refs/heads/agent/x.lock",
                Create,
                Err(("ref-name", "invalid ref name: ")),
            ),
            (
                "not under refs/",
                &p,
                b"HEAD",
                Update,
                Err(("ref-name", "invalid ref name: ")),
            ),
            (
                "lookalike by case",
                &p,
                b"refs/heads/Main",
                Create,
                Err((
                    "protected refs/heads/main",
                    "ref name looks like protected ref refs/heads/main",
                )),
            ),
            (
                "a non-ASCII lookalike",
                &p,
                "refs/heads/m\u{430}in".as_bytes(),
                Create,
                Err(("ref-name", "invalid ref name: ")),
            ),
            (
                "lookalike by shape",
                &p,
                b"refs/heads/rnain",
                Update,
                Err((
                    "protected refs/heads/main",
                    "ref name looks like protected ref refs/heads/main",
                )),
            ),
            (
                "force of protected",
                &p,
                b"refs/heads/main",
                Force,
                Err((
                    "protected refs/heads/main",
                    "force push of protected ref refs/heads/main refused",
                )),
            ),
            (
                "delete of protected",
                &p,
                b"refs/heads/main",
                Delete,
                Err((
                    "protected refs/heads/main",
                    "deletion of protected ref refs/heads/main refused",
                )),
            ),
            (
                "protected glob",
                &tags_only,
                b"refs/heads/release/1",
                Delete,
                Err((
                    "protected refs/heads/release/*",
                    "deletion of protected ref",
                )),
            ),
            (
                "moving a tag is a force",
                &p,
                b"refs/tags/v1",
                Update,
                Err((
                    "rules[2] refs/tags/v*",
                    "force pushing (non-fast-forward) refs/tags/v1 is not allowed",
                )),
            ),
            (
                "tag without a tag rule",
                &p,
                b"refs/tags/other",
                Create,
                Err((
                    "default-deny",
                    "tags are not allowed (no rule allows refs/tags/)",
                )),
            ),
            (
                "no rule",
                &tags_only,
                b"refs/heads/other",
                Create,
                Err(("default-deny", "no rule allows refs/heads/other")),
            ),
            (
                "creating not allowed",
                &p,
                b"refs/heads/feature",
                Create,
                Err((
                    "rules[1] refs/heads/*",
                    "creating refs/heads/feature is not allowed",
                )),
            ),
            (
                "updating not allowed",
                &tags_only,
                b"refs/heads/agent/a",
                Update,
                Err((
                    "rules[0] refs/heads/agent/*",
                    "updating refs/heads/agent/a is not allowed",
                )),
            ),
            (
                "force not allowed",
                &p,
                b"refs/heads/feature",
                Force,
                Err((
                    "rules[1] refs/heads/*",
                    "force pushing (non-fast-forward) refs/heads/feature is not allowed",
                )),
            ),
            (
                "deleting not allowed",
                &p,
                b"refs/heads/feature",
                Delete,
                Err((
                    "rules[1] refs/heads/*",
                    "deleting refs/heads/feature is not allowed",
                )),
            ),
        ];
        for (case, policy, name, action, want) in rows {
            let v = policy.decide(name, action);
            match want {
                Ok(rule) => {
                    assert!(v.allowed, "{case}: {v:?}");
                    assert_eq!(v.rule, rule, "{case}");
                    assert!(v.reason.is_empty(), "{case}");
                }
                Err((rule, reason)) => {
                    assert!(!v.allowed, "{case}: {v:?}");
                    assert_eq!(v.rule, rule, "{case}");
                    assert!(v.reason.contains(reason), "{case}: {}", v.reason);
                }
            }
        }
    }
}
