//! Drawing `bottle watch`: a header, the pending requests, the recent refusals, the keys and
//! a status line. Every agent-controlled string goes through `inert` first.

use std::time::{SystemTime, UNIX_EPOCH};

use super::app::App;
use super::decider::PendingView;
use super::{field, host_port, inert, short_time};
use crate::commands::requests::{age, ask_summary};
use ratatui::layout::{Constraint, Layout};
use ratatui::style::{Modifier, Style};
use ratatui::text::Line;
use ratatui::widgets::{Block, List, ListItem, ListState, Paragraph};
use ratatui::Frame;

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
        age(now, p.created_unix),
    )
}
