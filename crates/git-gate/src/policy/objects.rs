//! The objects a push brought, as a whole, once the judge has listed and scanned them (and
//! asked upstream which pushed refs are symbolic there): each check refuses the whole push.

use super::rules::Verdict;
use crate::request::short_oid;
use crate::scan::{Finding, NewObject};

/// How many secret findings are named to the client, one `remote:` line each.
pub const MAX_FINDINGS_SHOWN: usize = 10;

/// Refuses the push when an object it brought is over `max_object_bytes` (the first one is
/// named), whether or not a ref reaches it.
pub fn check_object_sizes(objects: &[NewObject], max_object_bytes: u64) -> Result<(), Verdict> {
    match objects.iter().find(|o| o.size > max_object_bytes) {
        None => Ok(()),
        Some(big) => Err(Verdict::deny(
            "max_object_bytes",
            format!(
                "object {} ({}) is {} bytes, limit {max_object_bytes}",
                short_oid(&big.oid),
                big.kind,
                big.size
            ),
        )),
    }
}

/// Refuses the push when the scan found a secret anywhere in it; the reason names the first
/// finding's detector and place, never the secret.
pub fn check_findings(findings: &[Finding]) -> Result<(), Verdict> {
    match findings.first() {
        None => Ok(()),
        Some(first) => Err(Verdict::deny("secret-scan", first.reason())),
    }
}

/// Refuses every pushed ref that is a symbolic ref upstream (`(ref, target)`): pushing it
/// would move its target instead, e.g. a `master -> main` alias would move a protected main.
pub fn check_upstream_symrefs(aliased: &[(String, String)]) -> Result<(), Vec<(String, Verdict)>> {
    if aliased.is_empty() {
        return Ok(());
    }
    Err(aliased
        .iter()
        .map(|(name, target)| {
            let reason = format!("{name} is a symbolic ref to {target} upstream");
            (name.clone(), Verdict::deny("symref", reason))
        })
        .collect())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn object(oid_digit: char, kind: &str, size: u64) -> NewObject {
        NewObject {
            oid: oid_digit.to_string().repeat(40),
            kind: kind.into(),
            size,
        }
    }

    #[test]
    fn check_object_sizes_table() {
        // (case, objects, limit, None when allowed or a part of the reason)
        let rows: Vec<(&str, Vec<NewObject>, u64, Option<&str>)> = vec![
            ("no objects (a delete)", vec![], 10, None),
            (
                "all under",
                vec![object('a', "blob", 9), object('b', "tree", 1)],
                10,
                None,
            ),
            ("exactly the limit", vec![object('a', "blob", 10)], 10, None),
            (
                "an unreferenced blob over",
                vec![object('a', "commit", 5), object('b', "blob", 11)],
                10,
                Some("object bbbbbbbbbbbb (blob) is 11 bytes, limit 10"),
            ),
            (
                "the first of two over is named",
                vec![object('c', "tree", 50), object('d', "blob", 60)],
                10,
                Some("object cccccccccccc (tree) is 50 bytes"),
            ),
        ];
        for (case, objects, limit, want) in rows {
            match (check_object_sizes(&objects, limit), want) {
                (Ok(()), None) => {}
                (Err(v), Some(reason)) => {
                    assert_eq!(v.rule, "max_object_bytes", "{case}");
                    assert!(!v.allowed && v.reason.contains(reason), "{case}: {v:?}");
                }
                (got, _) => panic!("{case}: got {got:?}"),
            }
        }
    }

    #[test]
    fn check_findings_table() {
        let finding = |location: &'static str, kind: &str| Finding {
            oid: "e".repeat(40),
            kind: kind.into(),
            location,
            detector: "github-pat".into(),
        };
        // (case, findings, None when allowed or the reason)
        let rows: Vec<(&str, Vec<Finding>, Option<&str>)> = vec![
            ("nothing found", vec![], None),
            (
                "a blob",
                vec![finding("blob", "blob")],
                Some("secret detected (github-pat) in blob eeeeeeeeeeee"),
            ),
            (
                "a tree entry name, then a blob: the first is named",
                vec![finding("tree entry name", "tree"), finding("blob", "blob")],
                Some("secret detected (github-pat) in tree entry name (tree eeeeeeeeeeee)"),
            ),
        ];
        for (case, findings, want) in rows {
            match (check_findings(&findings), want) {
                (Ok(()), None) => {}
                (Err(v), Some(reason)) => {
                    assert_eq!(v.rule, "secret-scan", "{case}");
                    assert_eq!(v.reason, reason, "{case}");
                }
                (got, _) => panic!("{case}: got {got:?}"),
            }
        }
    }

    #[test]
    fn check_upstream_symrefs_table() {
        assert_eq!(check_upstream_symrefs(&[]), Ok(()));
        let aliased = vec![
            (
                "refs/heads/master".to_string(),
                "refs/heads/main".to_string(),
            ),
            ("refs/heads/dev".to_string(), "refs/heads/main".to_string()),
        ];
        let refused = check_upstream_symrefs(&aliased).unwrap_err();
        assert_eq!(refused.len(), 2);
        assert_eq!(refused[0].0, "refs/heads/master");
        assert_eq!(refused[0].1.rule, "symref");
        assert_eq!(
            refused[0].1.reason,
            "refs/heads/master is a symbolic ref to refs/heads/main upstream"
        );
        assert_eq!(refused[1].0, "refs/heads/dev");
        assert!(refused.iter().all(|(_, v)| !v.allowed));
    }
}
