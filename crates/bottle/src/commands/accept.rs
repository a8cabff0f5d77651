//! The operator accepts a manifest's policy before anything starts: a first start shows it,
//! a widening since the last accepted start is shown as a diff and needs a "y" on a terminal
//! or `--yes`; narrowing is recorded silently. `bottle check` runs this alone.

use std::io::{IsTerminal, Write};
use std::path::Path;

use crate::error::{Error, Result};
use crate::manifest::{self, Loaded, ProcessEnv};
use crate::policy::{self, Policy};
use crate::ui;

/// How the operator answers.
pub trait Confirm {
    /// Whether a person can be asked.
    fn interactive(&self) -> bool;
    /// Ask `question`; true on yes.
    fn ask(&self, question: &str) -> bool;
}

/// stdin when it is a terminal.
pub struct Terminal;

impl Confirm for Terminal {
    fn interactive(&self) -> bool {
        std::io::stdin().is_terminal()
    }
    fn ask(&self, question: &str) -> bool {
        eprint!("{question} [y/N] ");
        let _ = std::io::stderr().flush();
        let mut line = String::new();
        let _ = std::io::stdin().read_line(&mut line);
        matches!(line.trim(), "y" | "Y" | "yes")
    }
}

/// Compare the manifest's policy with the accepted one and record it when accepted.
/// `yes`: accept a widening without asking.
pub fn accept_policy(l: &Loaded, yes: bool, confirm: &dyn Confirm) -> Result<()> {
    let new = Policy::of(l);
    let shown = l.path.display();
    let old = match policy::read_record(&l.path) {
        Ok(r) => r.map(|r| r.policy),
        Err(e) if yes => {
            ui::warn(&format!("{e}; replacing it (--yes)"));
            None
        }
        Err(e) => return Err(e),
    };
    let Some(old) = old else {
        ui::step(&format!(
            "first start of {shown}: this policy is recorded, and any later widening will be asked for"
        ));
        for line in new.summary() {
            ui::note(&line);
        }
        return policy::write_record(&l.path, &new);
    };
    let widened = policy::widenings(&old, &new);
    if widened.is_empty() {
        if old != new {
            ui::note(&format!(
                "{shown}: policy narrowed or unchanged in effect; recorded"
            ));
            policy::write_record(&l.path, &new)?;
        }
        return Ok(());
    }
    ui::warn(&format!(
        "{shown} grants more than the policy you last accepted for it (was it edited, perhaps by the agent?):"
    ));
    for w in &widened {
        ui::note(&format!("+ {w}"));
    }
    let accepted = if yes {
        ui::note("accepted with --yes");
        true
    } else if confirm.interactive() {
        confirm.ask("accept the wider policy?")
    } else {
        let list: Vec<String> = widened.iter().map(|w| w.what.clone()).collect();
        return Err(Error::Usage(format!(
            "not started: {shown} widened since the last accepted start ({}); review the file, then pass --yes to accept",
            list.join(", ")
        )));
    };
    if !accepted {
        return Err(Error::Usage(format!(
            "not started: the wider policy of {shown} was not accepted"
        )));
    }
    policy::write_record(&l.path, &new)
}

/// `bottle check MANIFEST [--yes] [--force-allow]`: validate, show, accept; start nothing.
pub fn check(path: &Path, yes: bool, force_allow: bool) -> Result<()> {
    let l = manifest::load_opts(path, &ProcessEnv, force_allow)?;
    accept_policy(&l, yes, &Terminal)?;
    ui::ok(&format!("{}: policy accepted", path.display()));
    Ok(())
}
