//! Every decision git-gate makes about a push, as pure functions of what was sent, what the
//! mirror says, and the repository's policy snapshot. The callers gather facts (parse, run
//! git) and carry the decision out; nothing here does I/O.
//!
//! - [`rules`]: one ref against the ordered rules, `protected` refs and tag rules
//!   ([`RepoPolicy::decide`], and [`RepoPolicy::decide_cheap`] before classification).
//! - [`push`]: the command list as a whole, before any object is read ([`decide_push`]):
//!   push slots, pack size, ref count, push options, object format, duplicate refs,
//!   secrets in ref names and push options, all or nothing.
//! - [`objects`]: the objects the push brought, once listed and scanned
//!   ([`check_object_sizes`], [`check_findings`]), and refs that are symbolic upstream
//!   ([`check_upstream_symrefs`]).
//! - [`ref_update`]: one ref once its objects are in quarantine ([`check_ref_facts`],
//!   [`classify`]): stale or forged old values, missing objects, branches to non-commits,
//!   create / fast-forward / force / delete.

pub mod objects;
pub mod push;
pub mod ref_update;
pub mod rules;

pub use objects::{check_findings, check_object_sizes, check_upstream_symrefs, MAX_FINDINGS_SHOWN};
pub use push::{decide_push, too_many_pushes_reason, Intake, PushDecision, PushRefusal};
pub use ref_update::{check_ref_facts, classify, needs_ancestry, RefFacts};
pub use rules::{Action, RepoPolicy, Rule, Verdict};
