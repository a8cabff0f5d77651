//! The view's state machine with a fake decider, drawn into ratatui's `TestBackend`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Mutex;

use ratatui::backend::TestBackend;
use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use ratatui::Terminal;
use serde_json::json;

use super::render::{render, KEYS};
use super::*;
use crate::commands::requests::ask_summary;
use crate::error::{Error, Result};

/// Records every decision; answers like the requests API would.
#[derive(Default)]
struct FakeDecider {
    calls: Mutex<Vec<String>>,
    fail: bool,
}

impl Decider for FakeDecider {
    fn pending(&self, _slug: Option<&str>) -> Result<Vec<PendingView>> {
        Ok(Vec::new())
    }

    fn approve(&self, slug: &str, id: &str, grant: Grant) -> Result<String> {
        self.calls
            .lock()
            .unwrap()
            .push(format!("approve {slug} {id} {grant:?}"));
        if self.fail {
            return Err(Error::Bottle(
                "supervise did not answer\nsecond line".into(),
            ));
        }
        Ok(match grant {
            Grant::Session => format!("approved {id} for the session"),
            Grant::For(d) => format!("approved {id} for {}s", d.as_secs()),
        })
    }

    fn deny(&self, slug: &str, id: &str, reason: Option<&str>) -> Result<String> {
        self.calls
            .lock()
            .unwrap()
            .push(format!("deny {slug} {id} {reason:?}"));
        Ok(format!("denied {id}"))
    }
}

fn request(slug: &str, id: &str, host: &str, reason: &str) -> PendingView {
    PendingView {
        slug: slug.into(),
        id: id.into(),
        kind: "host".into(),
        ask: json!({ "host": host }),
        reason: reason.into(),
        created_unix: 0,
        blocks: Vec::new(),
    }
}

fn app_with(pending: Vec<PendingView>) -> App {
    let mut app = App::new(None);
    app.apply(Snapshot {
        pending: Ok(pending),
        refusals: Vec::new(),
        refusal_errors: Vec::new(),
    });
    app
}

fn press(app: &mut App, d: &FakeDecider, keys: &str) {
    for c in keys.chars() {
        let code = match c {
            '\n' => KeyCode::Enter,
            '\u{8}' => KeyCode::Backspace,
            '\u{1b}' => KeyCode::Esc,
            c => KeyCode::Char(c),
        };
        app.handle_key(KeyEvent::new(code, KeyModifiers::NONE), d);
    }
}

/// The screen as text, one string per row.
fn screen(app: &App) -> Vec<String> {
    let mut term = Terminal::new(TestBackend::new(120, 20)).unwrap();
    term.draw(|f| render(f, app)).unwrap();
    let buf = term.backend().buffer().clone();
    (0..buf.area.height)
        .map(|y| {
            (0..buf.area.width)
                .map(|x| buf[(x, y)].symbol().to_string())
                .collect::<String>()
        })
        .collect()
}

fn status_row(app: &App) -> String {
    screen(app).last().unwrap().trim_end().to_string()
}

#[test]
fn pending_rows_show_the_agents_reason_inert_and_the_selection() {
    let app = app_with(vec![
        request("b-1", "r-1", "pypi.org", "need \u{1b}[2Jpackages\u{202e}"),
        request("b-2", "r-2", "evil\u{7}.example", "x"),
    ]);
    let rows = screen(&app);
    let text = rows.join("\n");
    assert!(rows[0].starts_with("bottle watch · all bottles · 2 pending · 0 refusals"));
    let first = rows.iter().find(|r| r.contains("r-1")).unwrap();
    assert!(
        first.contains("> b-1  r-1  host  pypi.org  — need \\u{1b}[2Jpackages\\u{202e}"),
        "{first}"
    );
    assert!(
        text.contains("b-2  r-2  host  evil\\u{7}.example"),
        "{text}"
    );
    assert!(!text.contains('\u{1b}') && !text.contains('\u{7}') && !text.contains('\u{202e}'));
    assert!(text.contains(KEYS));
    assert!(text.contains("(no refusals)"));
}

#[test]
fn a_approves_the_selected_request_for_the_session() {
    let d = FakeDecider::default();
    let mut app = app_with(vec![
        request("b-1", "r-1", "a.example", "x"),
        request("b-2", "r-2", "b.example", "y"),
    ]);
    press(&mut app, &d, "ja");
    assert_eq!(*d.calls.lock().unwrap(), ["approve b-2 r-2 Session"]);
    assert_eq!(status_row(&app), "approved r-2 for the session");
    assert!(app.refresh, "a decision reloads the lists");
    // Selection stays within the list at both ends.
    press(&mut app, &d, "jjjkkkk");
    assert_eq!(app.selected, 0);
}

#[test]
fn t_prompts_with_a_default_and_enter_confirms() {
    let d = FakeDecider::default();
    let mut app = app_with(vec![request("b-1", "r-1", "a.example", "x")]);
    press(&mut app, &d, "t");
    assert_eq!(status_row(&app), "Approve r-1 for how long? [1h]:");
    press(&mut app, &d, "\n");
    assert_eq!(status_row(&app), "approved r-1 for 3600s");
    press(&mut app, &d, "t30x\u{8}m");
    assert_eq!(status_row(&app), "Approve r-1 for how long? [1h]: 30m");
    press(&mut app, &d, "\n");
    assert_eq!(status_row(&app), "approved r-1 for 1800s");
    press(&mut app, &d, "tsoon\n");
    assert_eq!(
        status_row(&app),
        "error: `soon`: write a duration like 30s, 15m, 2h or 1d"
    );
    assert_eq!(
        *d.calls.lock().unwrap(),
        ["approve b-1 r-1 For(3600s)", "approve b-1 r-1 For(1800s)"]
    );
    assert_eq!(app.mode, Mode::Browse);
}

#[test]
fn d_prompts_for_an_optional_reason_and_esc_cancels() {
    let d = FakeDecider::default();
    let mut app = app_with(vec![request("b-1", "r-1", "a.example", "x")]);
    press(&mut app, &d, "dnot needed");
    assert_eq!(status_row(&app), "Deny r-1, reason (optional): not needed");
    // Keys typed into a prompt are text, not commands.
    assert!(!app.quit);
    press(&mut app, &d, "\u{1b}");
    assert_eq!(status_row(&app), "cancelled");
    press(&mut app, &d, "d\n");
    press(&mut app, &d, "d no \n");
    assert_eq!(
        *d.calls.lock().unwrap(),
        ["deny b-1 r-1 None", "deny b-1 r-1 Some(\"no\")"]
    );
    assert_eq!(status_row(&app), "denied r-1");
}

#[test]
fn errors_show_on_one_status_line_and_nothing_selected_is_said() {
    let d = FakeDecider {
        fail: true,
        ..Default::default()
    };
    let mut app = app_with(vec![request("b-1", "r-1", "a.example", "x")]);
    press(&mut app, &d, "a");
    assert_eq!(status_row(&app), "error: supervise did not answer");
    let mut empty = app_with(Vec::new());
    press(&mut empty, &d, "a");
    assert_eq!(status_row(&empty), "no pending request to decide");
    assert!(screen(&empty).join("\n").contains("(no pending requests)"));
    press(&mut empty, &d, "q");
    assert!(empty.quit);
    let mut app = app_with(Vec::new());
    app.handle_key(KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL), &d);
    assert!(app.quit, "Ctrl-C quits (raw mode delivers it as a key)");
}

#[test]
fn a_refresh_keeps_the_selection_on_the_same_request_and_shows_load_errors() {
    let d = FakeDecider::default();
    let mut app = app_with(vec![
        request("b-1", "r-1", "a.example", "x"),
        request("b-1", "r-2", "b.example", "y"),
    ]);
    press(&mut app, &d, "j");
    app.apply(Snapshot {
        pending: Ok(vec![
            request("b-1", "r-0", "c.example", "z"),
            request("b-1", "r-1", "a.example", "x"),
            request("b-1", "r-2", "b.example", "y"),
        ]),
        refusals: Vec::new(),
        refusal_errors: Vec::new(),
    });
    assert_eq!(app.selected_request().unwrap().id, "r-2");
    app.apply(Snapshot {
        pending: Err("cannot reach\u{1b}[31m supervise".into()),
        refusals: Vec::new(),
        refusal_errors: Vec::new(),
    });
    assert_eq!(app.pending.len(), 3, "the last good list stays");
    assert_eq!(
        status_row(&app),
        "cannot list requests: cannot reach\\u{1b}[31m supervise"
    );
    // The same failure on the next poll does not hide the result of an action.
    press(&mut app, &d, "a");
    let failing = || Snapshot {
        pending: Err("cannot reach\u{1b}[31m supervise".into()),
        refusals: Vec::new(),
        refusal_errors: Vec::new(),
    };
    app.apply(failing());
    assert_eq!(status_row(&app), "approved r-2 for the session");
    // A prompt's target does not move when the list changes under it.
    press(&mut app, &d, "t");
    app.apply(Snapshot {
        pending: Ok(vec![request("b-1", "r-9", "d.example", "w")]),
        refusals: Vec::new(),
        refusal_errors: Vec::new(),
    });
    press(&mut app, &d, "2h\n");
    assert_eq!(
        d.calls.lock().unwrap().last().unwrap(),
        "approve b-1 r-2 For(7200s)"
    );
}

#[test]
fn refusals_from_the_audit_are_listed_newest_first_and_inert() {
    let root = tempfile::tempdir().unwrap();
    let dir = crate::state::StateDir::new(root.path(), "b-1").unwrap();
    std::fs::create_dir_all(dir.audit_dir()).unwrap();
    std::fs::write(
        dir.audit_dir().join("pipelock.jsonl"),
        concat!(
            r#"{"ts":"2026-12-07T05:00:01.000Z","component":"pipelock","decision":"deny","method":"GET","host":"paste.example","port":443,"path":"/x\u001b[2J","reason":"secret in body"}"#,
            "\n",
            r#"{"ts":"2026-12-07T05:00:02.000Z","component":"pipelock","decision":"allow","host":"ok.example"}"#,
            "\n",
            r#"{"ts":"2026-12-07T05:00:03.000Z","component":"pipelock","decision":"deny","method":"CONNECT","host":"evil.example","reason":"host not allowed"}"#,
            "\n",
        ),
    )
    .unwrap();
    let missing = crate::state::StateDir::new(root.path(), "b-2").unwrap();
    let (rows, errors) = poll::refusals_in(&[dir, missing]);
    assert!(errors.is_empty(), "{errors:?}");
    let mut app = app_with(Vec::new());
    app.refusals = rows;
    let text = screen(&app).join("\n");
    let evil =
        text.find("2026-12-07 05:00:03 b-1 pipelock CONNECT evil.example - — host not allowed");
    let paste = text.find(
        "2026-12-07 05:00:01 b-1 pipelock GET paste.example:443 /x\\u{1b}[2J — secret in body",
    );
    assert!(evil.is_some() && paste.is_some() && evil < paste, "{text}");
    assert!(!text.contains("ok.example") && !text.contains('\u{1b}'));
}

#[test]
fn ask_summaries_for_each_kind() {
    assert_eq!(
        ask_summary(
            &json!({"host": "api.github.com", "paths": ["/repos/*", "/x"], "methods": null})
        ),
        "api.github.com paths=/repos/*,/x"
    );
    assert_eq!(
        ask_summary(&json!({"repo": "o/r", "ref": "refs/heads/a\u{1b}", "allow": ["push"]})),
        "o/r refs/heads/a\\u{1b} allow=push"
    );
    assert_eq!(ask_summary(&json!("x\u{7}")), "\"x\\u0007\"");
    // A host that is not a string is still shown, as JSON.
    assert_eq!(ask_summary(&json!({"host": 7})), "host=7");
}
