//! Drawing `bottle watch`: a header, the pending requests, the recent refusals, the keys and
//! a status line. Every agent-controlled string goes through `inert` first.

use std::time::{SystemTime, UNIX_EPOCH};

use ratatui::layout::{Constraint, Layout};
use ratatui::style::{Modifier, Style};
use ratatui::text::Line;
use ratatui::widgets::{Block, List, ListItem, ListState, Paragraph};
use ratatui::Frame;
use serde_json::Value;

use super::app::App;
use super::decider::PendingView;
use super::{field, host_port, inert, short_time};

/// The key help, fixed text (an e2e test drives these keys through tmux).
pub const KEYS: &str =
    "j/k select · a approve (session) · t approve for… · d deny · r refresh · q quit";

/// Draw the whole view into `frame`.
pub fn render(frame: &mut Frame, app: &App) {
    let [header, pending, refusals, keys, status] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Percentage(50),
        Constraint::Min(3),
        Constraint::Length(1),
        Constraint::Length(1),
    ])
    .areas(frame.area());

    let scope = match &app.scope {
        Some(slug) => format!("bottle {}", inert(slug)),
        None => "all bottles".to_string(),
    };
    frame.render_widget(
        Paragraph::new(format!(
            "bottle watch · {scope} · {} pending · {} refusals",
            app.pending.len(),
            app.refusals.len()
        ))
        .style(Style::new().add_modifier(Modifier::BOLD)),
        header,
    );

    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let items: Vec<ListItem> = if app.pending.is_empty() {
        vec![ListItem::new("(no pending requests)")]
    } else {
        app.pending
            .iter()
            .map(|p| ListItem::new(pending_line(p, now)))
            .collect()
    };
    let mut state =
        ListState::default().with_selected((!app.pending.is_empty()).then_some(app.selected));
    frame.render_stateful_widget(
        List::new(items)
            .block(Block::bordered().title(" Pending requests "))
            .highlight_symbol("> ")
            .highlight_style(Style::new().add_modifier(Modifier::REVERSED)),
        pending,
        &mut state,
    );

    let rows: Vec<ListItem> = if app.refusals.is_empty() {
        vec![ListItem::new("(no refusals)")]
    } else {
        app.refusals
            .iter()
            .map(|r| {
                let m = &r.fields;
                ListItem::new(format!(
                    "{} {} {} {} {} {} — {}",
                    short_time(super::ts(m)),
                    inert(&r.slug),
                    field(m, "component"),
                    field(m, "method"),
                    host_port(m),
                    field(m, "path"),
                    field(m, "reason"),
                ))
            })
            .collect()
    };
    frame.render_widget(
        List::new(rows).block(Block::bordered().title(" Recent refusals ")),
        refusals,
    );

    frame.render_widget(
        Paragraph::new(KEYS).style(Style::new().add_modifier(Modifier::DIM)),
        keys,
    );
    let status_text = app.prompt().unwrap_or_else(|| app.status.clone());
    frame.render_widget(Paragraph::new(Line::from(status_text)), status);
}

/// `slug  id  kind  ask  — reason  (age)` for one request.
fn pending_line(p: &PendingView, now: u64) -> String {
    format!(
        "{}  {}  {}  {}  — {}  ({} ago)",
        inert(&p.slug),
        inert(&p.id),
        inert(&p.kind),
        ask_summary(&p.ask),
        inert(&p.reason),
        age(now.saturating_sub(p.created_unix)),
    )
}

/// Keys of an ask shown first, in this order (the object itself is sorted by name).
const ASK_ORDER: &[&str] = &["host", "repo", "ref", "paths", "methods", "allow"];

/// `host=a.example paths=/x,/y` from the ask object; other shapes as compact JSON. Inert.
pub fn ask_summary(ask: &Value) -> String {
    let text = match ask {
        Value::Object(o) => {
            let rank = |k: &str| ASK_ORDER.iter().position(|o| *o == k).unwrap_or(usize::MAX);
            let mut fields: Vec<(&String, &Value)> =
                o.iter().filter(|(_, v)| !v.is_null()).collect();
            fields.sort_by_key(|(k, _)| rank(k));
            fields
                .iter()
                .map(|(k, v)| format!("{k}={}", scalar_list(v)))
                .collect::<Vec<_>>()
                .join(" ")
        }
        other => other.to_string(),
    };
    inert(&text)
}

fn scalar_list(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Array(a) => a.iter().map(scalar_list).collect::<Vec<_>>().join(","),
        other => other.to_string(),
    }
}

/// `42s`, `5m`, `3h`, `2d`.
fn age(secs: u64) -> String {
    match secs {
        0..=59 => format!("{secs}s"),
        60..=3599 => format!("{}m", secs / 60),
        3600..=86_399 => format!("{}h", secs / 3600),
        _ => format!("{}d", secs / 86_400),
    }
}
