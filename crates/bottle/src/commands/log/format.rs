//! One audit line as one readable terminal line, with every agent-controlled string inert.

use serde_json::{Map, Value};

pub(crate) use crate::commands::requests::inert;

/// A shown field as inert text: strings sanitised, numbers as written, missing/null/empty `-`.
pub(crate) fn field(m: &Map<String, Value>, key: &str) -> String {
    match m.get(key) {
        Some(Value::String(s)) if !s.is_empty() => inert(s),
        Some(Value::Number(n)) => n.to_string(),
        _ => "-".to_string(),
    }
}

/// `2026-12-07T05:00:01.123Z` as `2026-12-07 05:00:01`; anything else inert as written.
pub(crate) fn short_time(ts: &str) -> String {
    let b = ts.as_bytes();
    let looks_rfc3339 = b.len() >= 19
        && b[..19].iter().enumerate().all(|(i, c)| match i {
            4 | 7 => *c == b'-',
            10 => *c == b'T',
            13 | 16 => *c == b':',
            _ => c.is_ascii_digit(),
        });
    if looks_rfc3339 {
        format!("{} {}", &ts[..10], &ts[11..19])
    } else {
        inert(ts)
    }
}

/// `host:port`, or `host` when no port was logged.
pub(crate) fn host_port(m: &Map<String, Value>) -> String {
    let host = field(m, "host");
    match m.get("port").and_then(Value::as_u64) {
        Some(port) => format!("{host}:{port}"),
        None => host,
    }
}

/// SGR colour per decision; `None` prints plain.
fn decision_colour(decision: &str) -> Option<&'static str> {
    match decision {
        "deny" => Some("1;31"),
        "error" => Some("33"),
        "allow" => Some("32"),
        _ => None,
    }
}

/// One readable line: time, sidecar, decision, method, host, path, status, reason.
pub(crate) fn format_line(m: &Map<String, Value>, colour: bool) -> String {
    let time = short_time(super::ts(m));
    let decision = field(m, "decision");
    let padded = format!("{decision:<5}");
    let decision_shown = match (colour, decision_colour(&decision)) {
        (true, Some(code)) => format!("\x1b[{code}m{padded}\x1b[0m"),
        _ => padded,
    };
    let time_shown = if colour {
        format!("\x1b[2m{time}\x1b[0m")
    } else {
        time
    };
    let mut line = format!(
        "{time_shown} {:<8} {decision_shown} {:<7} {} {} {}",
        field(m, "component"),
        field(m, "method"),
        host_port(m),
        field(m, "path"),
        field(m, "status"),
    );
    if let Some(Value::String(reason)) = m.get("reason") {
        if !reason.is_empty() {
            line.push_str(" — ");
            line.push_str(&inert(reason));
        }
    }
    line
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use bottle_core::audit_read::parse_shown;

    #[test]
    fn a_refusal_reads_as_one_line_with_every_field() {
        let m = parse_shown(
            r#"{"ts":"2026-12-07T05:00:01.123Z","component":"pipelock","event":"connect","decision":"deny","reason":"host not allowed","method":"CONNECT","scheme":"https","host":"evil.example","port":443,"path":"","status":403,"bytes_up":0,"future_field":{"a":1}}"#,
        )
        .unwrap();
        assert_eq!(
            format_line(&m, false),
            "2026-12-07 05:00:01 pipelock deny  CONNECT evil.example:443 - 403 — host not allowed"
        );
        let coloured = format_line(&m, true);
        assert!(coloured.contains("\x1b[1;31mdeny \x1b[0m"), "{coloured:?}");
    }

    #[test]
    fn missing_fields_show_a_dash() {
        let m = parse_shown(r#"{"ts":"garbage","decision":"allow"}"#).unwrap();
        assert_eq!(
            format_line(&m, false),
            "garbage -        allow -       - - -"
        );
    }

    #[test]
    fn hostile_fields_reach_the_terminal_inert() {
        // What an agent controls: the path, the host, and DLP context quoted in the reason.
        let hostile = serde_json::json!({
            "ts": "2026-12-07T05:00:01Z\u{1b}[2J",
            "component": "egress",
            "decision": "deny",
            "method": "GET\r",
            "host": "evil\u{1b}]8;;http://x\u{7}.example",
            "path": "/a\u{1b}[31mred\u{9b}31m\nfake line\u{202e}gnp.exe\u{200b}",
            "status": 403,
            "reason": "secret in body: \u{1b}[1A\u{1b}[2Kok allowed\u{0}\u{7f}",
        });
        let m = parse_shown(&hostile.to_string()).unwrap();
        let line = format_line(&m, false);
        assert!(
            !line
                .chars()
                .any(|c| c.is_control() || matches!(c, '\u{202e}' | '\u{200b}')),
            "{line:?}"
        );
        assert!(line.contains("/a\\u{1b}[31mred\\u{9b}31m\\u{a}fake line\\u{202e}gnp.exe\\u{200b}"));
        assert!(line.contains("evil\\u{1b}]8;;http://x\\u{7}.example"));
        assert!(line.contains("\\u{1b}[1A\\u{1b}[2Kok allowed\\u{0}\\u{7f}"));
        assert!(line.starts_with("2026-12-07 05:00:01 "), "{line}");
        // Colour adds only our own escapes around the decision and the time.
        let coloured = format_line(&m, true);
        assert_eq!(coloured.matches('\x1b').count(), 4, "{coloured:?}");
    }

    #[test]
    fn short_time_only_trusts_a_well_formed_timestamp() {
        assert_eq!(short_time("2026-12-07T05:00:01Z"), "2026-12-07 05:00:01");
        assert_eq!(short_time("2026-12-07T05:00"), "2026-12-07T05:00");
        assert_eq!(short_time("é\u{1b}"), "é\\u{1b}");
        assert_eq!(
            short_time("2026\u{1b}12-07T05:00:01Z"),
            "2026\\u{1b}12-07T05:00:01Z"
        );
        // Multi-byte characters where digits belong never split a char.
        assert_eq!(short_time("2026-12-07Té0:00:01Z"), "2026-12-07Té0:00:01Z");
    }
}
