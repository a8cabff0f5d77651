//! One ref once git has received the push into quarantine: does the claimed old value match
//! the mirror, do the objects exist and have the right type, and what exactly does the
//! update do. The judge gathers the facts with git; the rules then decide on the class
//! ([`super::RepoPolicy::decide`]).

use super::rules::{Action, Verdict};
use crate::request::{short_oid, Command, CommandKind};

/// What the mirror and the quarantine say about one pushed command.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RefFacts<'a> {
    /// The ref's tip in the mirror now; `None` when it does not exist.
    pub current: Option<&'a str>,
    /// The object type (`git cat-file`) of the claimed old value; `None` when not found.
    pub old_type: Option<&'a str>,
    /// The object type of the new value; `None` or `"missing"` when not found.
    pub new_type: Option<&'a str>,
}

/// Refuses a command whose claimed old value is not the mirror's real tip (stale or forged:
/// the lease upstream would be built on it), whose new object is missing, or that points a
/// branch at something other than a commit.
pub fn check_ref_facts(cmd: &Command, facts: &RefFacts) -> Result<(), Verdict> {
    let name = cmd.name_str();
    let kind = cmd.kind();
    let stale = match (kind, facts.current) {
        (CommandKind::Create, Some(_)) => Some(format!("{name} already exists; fetch first")),
        (CommandKind::Create, None) => None,
        (_, None) => Some(format!(
            "{name} does not exist (claimed old value {})",
            short_oid(&cmd.old)
        )),
        (_, Some(current)) if current != cmd.old => Some(format!(
            "stale or forged old value: {name} is at {}, not {}; fetch first",
            short_oid(current),
            short_oid(&cmd.old)
        )),
        _ => None,
    };
    if let Some(reason) = stale {
        return Err(Verdict::deny("old-value", reason));
    }
    if kind == CommandKind::Delete {
        return Ok(());
    }
    match facts.new_type {
        None | Some("missing") => Err(Verdict::deny(
            "objects",
            format!("new object {} is missing", short_oid(&cmd.new)),
        )),
        Some(t) if name.starts_with("refs/heads/") && t != "commit" => Err(Verdict::deny(
            "objects",
            format!("a branch must point to a commit, not a {t}"),
        )),
        _ => Ok(()),
    }
}

/// Whether classifying the command needs git's ancestry answer
/// (`merge-base --is-ancestor old new`): an update of a non-tag between two commits.
pub fn needs_ancestry(cmd: &Command, facts: &RefFacts) -> bool {
    cmd.kind() == CommandKind::Update
        && !cmd.name.starts_with(b"refs/tags/")
        && facts.old_type == Some("commit")
        && facts.new_type == Some("commit")
}

/// The exact class of a command. `fast_forward` is git's ancestry answer; it only counts
/// where [`needs_ancestry`] holds: moving a tag, or anything between non-commits, is a force.
pub fn classify(cmd: &Command, facts: &RefFacts, fast_forward: bool) -> Action {
    match cmd.kind() {
        CommandKind::Create => Action::Create,
        CommandKind::Delete => Action::Delete,
        CommandKind::Update if needs_ancestry(cmd, facts) && fast_forward => Action::Update,
        CommandKind::Update => Action::Force,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::request::ZERO_OID;

    const OLD: &str = "1111111111111111111111111111111111111111";
    const NEW: &str = "2222222222222222222222222222222222222222";
    const OTHER: &str = "3333333333333333333333333333333333333333";

    fn cmd(old: &str, new: &str, name: &str) -> Command {
        Command {
            old: old.into(),
            new: new.into(),
            name: name.as_bytes().to_vec(),
        }
    }

    fn facts<'a>(
        current: Option<&'a str>,
        old: Option<&'a str>,
        new: Option<&'a str>,
    ) -> RefFacts<'a> {
        RefFacts {
            current,
            old_type: old,
            new_type: new,
        }
    }

    /// (case, command, facts, `None` when allowed or the rule and a part of the reason)
    type FactsRow<'a> = (&'a str, Command, RefFacts<'a>, Option<(&'a str, &'a str)>);

    #[test]
    fn check_ref_facts_table() {
        let commit = Some("commit");
        let rows: Vec<FactsRow> = vec![
            (
                "create of a new branch",
                cmd(ZERO_OID, NEW, "refs/heads/a"),
                facts(None, None, commit),
                None,
            ),
            (
                "update from the real tip",
                cmd(OLD, NEW, "refs/heads/a"),
                facts(Some(OLD), commit, commit),
                None,
            ),
            (
                "delete from the real tip, new type ignored",
                cmd(OLD, ZERO_OID, "refs/heads/a"),
                facts(Some(OLD), commit, None),
                None,
            ),
            (
                "a tag may point at a tree",
                cmd(ZERO_OID, NEW, "refs/tags/t"),
                facts(None, None, Some("tree")),
                None,
            ),
            (
                "create of a ref that exists",
                cmd(ZERO_OID, NEW, "refs/heads/a"),
                facts(Some(OLD), None, commit),
                Some(("old-value", "refs/heads/a already exists; fetch first")),
            ),
            (
                "update of a ref that does not exist",
                cmd(OLD, NEW, "refs/heads/a"),
                facts(None, commit, commit),
                Some((
                    "old-value",
                    "refs/heads/a does not exist (claimed old value 111111111111)",
                )),
            ),
            (
                "delete of a ref that does not exist",
                cmd(OLD, ZERO_OID, "refs/heads/a"),
                facts(None, commit, None),
                Some(("old-value", "does not exist")),
            ),
            (
                "a forged old value",
                cmd(OLD, NEW, "refs/heads/a"),
                facts(Some(OTHER), commit, commit),
                Some((
                    "old-value",
                    "stale or forged old value: refs/heads/a is at 333333333333, not 111111111111",
                )),
            ),
            (
                "a forged old value on delete",
                cmd(OLD, ZERO_OID, "refs/heads/a"),
                facts(Some(OTHER), commit, None),
                Some(("old-value", "stale or forged")),
            ),
            (
                "a new object not in the push",
                cmd(OLD, NEW, "refs/heads/a"),
                facts(Some(OLD), commit, None),
                Some(("objects", "new object 222222222222 is missing")),
            ),
            (
                "a new object git calls missing",
                cmd(ZERO_OID, NEW, "refs/tags/t"),
                facts(None, None, Some("missing")),
                Some(("objects", "is missing")),
            ),
            (
                "a branch at a tree",
                cmd(ZERO_OID, NEW, "refs/heads/a"),
                facts(None, None, Some("tree")),
                Some(("objects", "a branch must point to a commit, not a tree")),
            ),
            (
                "a branch at an annotated tag",
                cmd(OLD, NEW, "refs/heads/a"),
                facts(Some(OLD), commit, Some("tag")),
                Some(("objects", "not a tag")),
            ),
        ];
        for (case, c, f, want) in rows {
            match (check_ref_facts(&c, &f), want) {
                (Ok(()), None) => {}
                (Err(v), Some((rule, reason))) => {
                    assert!(!v.allowed, "{case}");
                    assert_eq!(v.rule, rule, "{case}");
                    assert!(v.reason.contains(reason), "{case}: {}", v.reason);
                }
                (got, _) => panic!("{case}: got {got:?}"),
            }
        }
    }

    #[test]
    fn classify_table() {
        let commit = Some("commit");
        // (case, command, facts, git's ancestry answer, class, whether git is asked)
        let rows: Vec<(&str, Command, RefFacts, bool, Action, bool)> = vec![
            (
                "create",
                cmd(ZERO_OID, NEW, "refs/heads/a"),
                facts(None, None, commit),
                true,
                Action::Create,
                false,
            ),
            (
                "delete",
                cmd(OLD, ZERO_OID, "refs/heads/a"),
                facts(Some(OLD), commit, None),
                true,
                Action::Delete,
                false,
            ),
            (
                "fast-forward",
                cmd(OLD, NEW, "refs/heads/a"),
                facts(Some(OLD), commit, commit),
                true,
                Action::Update,
                true,
            ),
            (
                "rewrite",
                cmd(OLD, NEW, "refs/heads/a"),
                facts(Some(OLD), commit, commit),
                false,
                Action::Force,
                true,
            ),
            (
                "a tag moved forward is a force",
                cmd(OLD, NEW, "refs/tags/v1"),
                facts(Some(OLD), commit, commit),
                true,
                Action::Force,
                false,
            ),
            (
                "from a non-commit is a force",
                cmd(OLD, NEW, "refs/notes/x"),
                facts(Some(OLD), Some("tree"), commit),
                true,
                Action::Force,
                false,
            ),
            (
                "to a non-commit is a force",
                cmd(OLD, NEW, "refs/notes/x"),
                facts(Some(OLD), commit, Some("blob")),
                true,
                Action::Force,
                false,
            ),
        ];
        for (case, c, f, ff, class, asks) in rows {
            assert_eq!(needs_ancestry(&c, &f), asks, "{case}");
            assert_eq!(classify(&c, &f, ff), class, "{case}");
        }
    }
}
