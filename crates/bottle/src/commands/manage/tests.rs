//! `ls`, `cleanup` and project names, without Docker.

use super::*;

#[test]
fn ls_state_and_width_ignore_colour() {
    assert_eq!(ls_state(true, true), "running");
    assert_eq!(ls_state(false, true), "kept");
    assert_eq!(ls_state(false, false), "stopped");
    assert_eq!(console_len("\x1b[32mrunning\x1b[0m"), 7);
    assert_eq!(console_len("kept"), 4);
}

#[test]
fn project_slug_strips_the_prefix_once() {
    assert_eq!(slug_of_project("bottle-demo-ab12c"), Some("demo-ab12c"));
    assert_eq!(slug_of_project("bottle-bottle-ab12c"), Some("bottle-ab12c"));
    assert_eq!(slug_of_project("other-demo"), None);
}

/// Other compose projects are never in the plan; a kept state dir is never removed.
#[test]
fn cleanup_plan_touches_only_bottles_and_spares_kept_dirs() {
    let root = tempfile::tempdir().unwrap();
    let mk = |slug: &str, keep: bool| {
        let s = StateDir::new(root.path(), slug).unwrap();
        std::fs::create_dir(s.path()).unwrap();
        if keep {
            s.preserve();
        }
        s
    };
    let dirs = vec![mk("a-1", false), mk("b-2", true), mk("c-3", false)];
    let found = [
        "bottle-x-9",
        "mydb",
        "bottle-a-1",
        "bottle-x-9",
        "notbottle-a-1",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let plan = cleanup_plan(found, dirs);
    assert_eq!(plan.projects, ["bottle-a-1", "bottle-x-9"]);
    let slugs = |v: &[StateDir]| v.iter().map(|s| s.slug().to_string()).collect::<Vec<_>>();
    assert_eq!(slugs(&plan.remove), ["a-1", "c-3"]);
    assert_eq!(slugs(&plan.kept), ["b-2"]);
    assert!(cleanup_plan(Vec::new(), Vec::new()).projects.is_empty());
}

/// `bottle stop` / `logs` / `exec` with a slug that is a path: refused before any file or
/// Docker call (no Docker here; a refusal about Docker would mean the slug got through).
#[test]
fn stop_logs_exec_refuse_path_slugs() {
    for bad in ["../../home", "/", "a/b", ".."] {
        for e in [
            stop(bad, false).unwrap_err(),
            logs(bad, false).unwrap_err(),
            exec(bad, &[]).unwrap_err(),
        ] {
            assert!(
                matches!(e, Error::Usage(ref m) if m.contains("not a bottle slug")),
                "{bad:?}: {e}"
            );
        }
    }
}
