//! One line for an error and its causes, for the operator's log and a refusal's reason.

use std::error::Error;

/// `e` and each of its sources, joined with `": "`. A source whose message is already part
/// of the line is left out: many errors repeat their cause in their own message (thiserror's
/// `#[error("...: {0}")]` with `#[source]`), and the line would otherwise say it twice.
pub fn error_chain(e: &(dyn Error + 'static)) -> String {
    let mut line = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let message = c.to_string();
        if !line.contains(&message) {
            line.push_str(": ");
            line.push_str(&message);
        }
        cause = c.source();
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("connection refused")]
    struct Root;

    #[derive(Debug, thiserror::Error)]
    #[error("tcp connect")]
    struct Middle(#[source] Root);

    #[derive(Debug, thiserror::Error)]
    #[error("client error (Connect)")]
    struct Outer(#[source] Middle);

    /// Repeats its cause in its own message, as `#[error("{0}")]` wrappers do.
    #[derive(Debug, thiserror::Error)]
    #[error("upstream: {0}")]
    struct Echoing(#[source] Root);

    #[test]
    fn every_cause_once_in_order() {
        assert_eq!(
            error_chain(&Outer(Middle(Root))),
            "client error (Connect): tcp connect: connection refused"
        );
        assert_eq!(error_chain(&Root), "connection refused");
    }

    #[test]
    fn a_cause_already_in_the_message_is_not_repeated() {
        assert_eq!(error_chain(&Echoing(Root)), "upstream: connection refused");
        let io = std::io::Error::other(Root);
        assert_eq!(error_chain(&io), "connection refused");
    }
}
