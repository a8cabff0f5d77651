//! Terminal-safe text: the one way an agent-controlled string (a request's reason, a logged
//! path, a hook's output) is printed. Every command that shows such text calls [`inert`].

/// Characters that must not reach a terminal as they are: controls (C0 including TAB, CR and
/// LF, DEL, C1 including the CSI introducer U+009B and NEL), which covers ESC and so every
/// escape sequence; the line and paragraph separators U+2028/U+2029 (some terminals and
/// viewers break lines on them); and the bidi and invisible formatting marks that reorder or
/// hide text (U+061C, U+200B-200F, U+202A-202E, U+2060-2069, U+FEFF, U+FFF9-FFFB).
pub fn is_unsafe_char(c: char) -> bool {
    c.is_control()
        || matches!(c,
            '\u{200b}'..='\u{200f}' | '\u{2028}' | '\u{2029}' | '\u{202a}'..='\u{202e}'
            | '\u{2060}'..='\u{2069}' | '\u{061c}' | '\u{180e}' | '\u{feff}'
            | '\u{fff9}'..='\u{fffb}' | '\u{e0000}'..='\u{e007f}')
}

/// `s` with every [unsafe character](is_unsafe_char) replaced by its visible Rust escape
/// (ESC becomes the six characters `\u{1b}`, LF becomes `\u{a}`); everything else as written.
/// The result is one line that can neither move the cursor, recolour, rewrite a line with
/// CR, start a fake line, nor reorder what the operator reads; what the agent sent stays
/// legible. An escape sequence's tail (`[2J`) is left as harmless text after its `\u{1b}`.
pub fn inert(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if is_unsafe_char(c) {
            out.extend(c.escape_unicode());
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_hostile_class_is_shown_escaped() {
        for (raw, shown) in [
            // C0, including the line-breaking and cursor-moving ones.
            ("a\u{0}b", "a\\u{0}b"),
            ("a\u{7}b", "a\\u{7}b"),
            ("a\tb", "a\\u{9}b"),
            ("a\nb", "a\\u{a}b"),
            ("a\rb", "a\\u{d}b"),
            ("a\u{8}b", "a\\u{8}b"),
            // DEL.
            ("a\u{7f}b", "a\\u{7f}b"),
            // C1: NEL and the one-byte CSI.
            ("a\u{85}b", "a\\u{85}b"),
            ("a\u{9b}31mb", "a\\u{9b}31mb"),
            // ESC sequences: CSI, OSC (title, hyperlink) ending in BEL or ST.
            ("\u{1b}[2Jx", "\\u{1b}[2Jx"),
            ("\u{1b}]0;pwned\u{7}", "\\u{1b}]0;pwned\\u{7}"),
            (
                "\u{1b}]8;;http://x\u{1b}\\y",
                "\\u{1b}]8;;http://x\\u{1b}\\y",
            ),
            // Line and paragraph separators.
            ("a\u{2028}b\u{2029}c", "a\\u{2028}b\\u{2029}c"),
            // Bidi embeddings and overrides, isolates, marks.
            (
                "\u{202a}\u{202b}\u{202c}\u{202d}\u{202e}",
                "\\u{202a}\\u{202b}\\u{202c}\\u{202d}\\u{202e}",
            ),
            (
                "\u{2066}\u{2067}\u{2068}\u{2069}",
                "\\u{2066}\\u{2067}\\u{2068}\\u{2069}",
            ),
            ("\u{200e}\u{200f}\u{61c}", "\\u{200e}\\u{200f}\\u{61c}"),
            // Invisible characters that hide text.
            ("i\u{200b}gnore\u{feff}", "i\\u{200b}gnore\\u{feff}"),
            // Tag characters (text a model reads and a terminal does not show), the Mongolian
            // vowel separator, interlinear annotation marks.
            ("a\u{e0041}\u{e007f}b", "a\\u{e0041}\\u{e007f}b"),
            ("a\u{180e}b\u{fff9}c", "a\\u{180e}b\\u{fff9}c"),
        ] {
            assert_eq!(inert(raw), shown, "{raw:?}");
            assert!(!inert(raw).chars().any(is_unsafe_char), "{raw:?}");
        }
    }

    #[test]
    fn ordinary_text_is_left_as_written() {
        for s in [
            "docs.rs",
            "/v1/*?q=a b",
            "café 語 ✓ — ok",
            "\\u{1b} typed by hand",
            "",
        ] {
            assert_eq!(inert(s), s);
        }
    }
}
