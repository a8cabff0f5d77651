//! Human output: concise, coloured when stderr is a terminal, never secret values.

use std::io::IsTerminal;
use std::sync::OnceLock;

fn colour() -> bool {
    static C: OnceLock<bool> = OnceLock::new();
    *C.get_or_init(|| std::env::var_os("NO_COLOR").is_none() && std::io::stderr().is_terminal())
}

fn paint(code: &str, s: &str) -> String {
    if colour() {
        format!("\x1b[{code}m{s}\x1b[0m")
    } else {
        s.to_string()
    }
}

/// A step starts (`==> ...`).
pub fn step(msg: &str) {
    eprintln!("{} {msg}", paint("1;34", "==>"));
}

/// A step finished well.
pub fn ok(msg: &str) {
    eprintln!("{} {msg}", paint("1;32", " ok"));
}

/// Something to note.
pub fn note(msg: &str) {
    eprintln!("{} {msg}", paint("2", "   "));
}

/// A warning.
pub fn warn(msg: &str) {
    eprintln!("{} {msg}", paint("1;33", "warning:"));
}

/// An error (printed by main).
pub fn error(msg: &str) {
    eprintln!("{} {msg}", paint("1;31", "error:"));
}

/// Bold text for inline use.
pub fn bold(s: &str) -> String {
    paint("1", s)
}

/// Dim text for inline use.
pub fn dim(s: &str) -> String {
    paint("2", s)
}

/// Green text for inline use.
pub fn green(s: &str) -> String {
    paint("32", s)
}
