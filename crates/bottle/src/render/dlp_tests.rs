//! `dlp:` as rendered into routes.yaml: the sidecars' own parser (bottle-core) reads back
//! exactly the settings the manifest and the policy record say.

use std::collections::BTreeMap;
use std::path::Path;

use bottle_core::routes::{
    DlpAction as CoreAction, DlpProfile as CoreProfile, ScanAction as CoreScan,
};
use bottle_core::RoutesFile;

use super::routes_yaml;

fn rendered(dlp: &str) -> (String, RoutesFile) {
    let text = format!("name: demo\nimage: x\n{dlp}");
    let l = crate::manifest::parse(&text, Path::new("/tmp/m.yaml"), &BTreeMap::new()).unwrap();
    let yaml = routes_yaml(&l);
    let parsed = RoutesFile::parse(&yaml, Path::new("routes.yaml"))
        .unwrap_or_else(|e| panic!("{e}\n{yaml}"));
    (yaml, parsed)
}

#[test]
fn every_combination_round_trips_through_bottle_core() {
    let actions = [("block", CoreAction::Block), ("log", CoreAction::Log)];
    let profiles = [
        ("default", CoreProfile::Default),
        ("strict", CoreProfile::Strict),
    ];
    let scans = [
        ("block", CoreScan::Block),
        ("warn", CoreScan::Warn),
        ("off", CoreScan::Off),
    ];
    let mut n = 0;
    for (a, ca) in actions {
        for (p, cp) in profiles {
            for (r, cr) in scans {
                for (m, cm) in scans {
                    // `off` unquoted on purpose: a YAML 1.1 reader would make it `false`.
                    let dlp = format!(
                        "dlp:\n  action: {a}\n  profile: {p}\n  responses: {r}\n  mcp: {m}\n"
                    );
                    let (yaml, f) = rendered(&dlp);
                    assert_eq!(f.dlp.action, ca, "{yaml}");
                    assert_eq!(f.dlp.profile, cp, "{yaml}");
                    assert_eq!(f.dlp.responses, cr, "{yaml}");
                    assert_eq!(f.dlp.mcp, cm, "{yaml}");
                    n += 1;
                }
            }
        }
    }
    assert_eq!(n, 36);
}

/// Without `dlp:` (or with some keys) the file still states every setting, so a later change
/// of bottle-core's defaults cannot quietly change what an accepted policy runs with.
#[test]
fn defaults_are_written_out() {
    for dlp in ["", "dlp: {}\n", "dlp:\n  mcp: warn\n"] {
        let (yaml, f) = rendered(dlp);
        for key in ["action: block", "profile: default", "responses: block"] {
            assert!(yaml.contains(key), "{dlp:?}: {key} missing:\n{yaml}");
        }
        assert_eq!(f.dlp.action, CoreAction::Block);
        assert_eq!(f.dlp.profile, CoreProfile::Default);
        assert_eq!(f.dlp.responses, CoreScan::Block);
        let mcp = if dlp.contains("warn") {
            CoreScan::Warn
        } else {
            CoreScan::Block
        };
        assert_eq!(f.dlp.mcp, mcp, "{yaml}");
    }
}

/// The launcher's defaults are bottle-core's: the policy record compares what really runs.
#[test]
fn launcher_defaults_match_bottle_core() {
    let core = RoutesFile::parse("routes: []\n", Path::new("routes.yaml")).unwrap();
    let (_, rendered) = rendered("");
    assert_eq!(core.dlp, rendered.dlp);
}
