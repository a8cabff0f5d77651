//! Inline styles and class names that hide an element's text from a human reader while a
//! model still reads it. Parsed one declaration at a time with bounded buffers, so padding a
//! `style` attribute does not push `display:none` out of view.

/// Longest property or value kept (whitespace and comments are not counted).
const DECL_CAP: usize = 64;

#[derive(Default)]
pub(crate) struct StyleState {
    prop: Vec<u8>,
    value: Vec<u8>,
    in_value: bool,
    in_comment: bool,
    last: u8,
    color: Vec<u8>,
    background: Vec<u8>,
    zero_width: bool,
    zero_height: bool,
    overflow_hidden: bool,
    /// A declaration seen so far hides the element.
    pub(crate) hidden: bool,
}

impl StyleState {
    pub(crate) fn reset(&mut self) {
        self.prop.clear();
        self.value.clear();
        self.in_value = false;
        self.in_comment = false;
        self.last = 0;
        self.color.clear();
        self.background.clear();
        self.zero_width = false;
        self.zero_height = false;
        self.overflow_hidden = false;
        self.hidden = false;
    }

    /// One character of a `style` attribute value.
    pub(crate) fn push(&mut self, c: char) {
        let b = if c.is_ascii() {
            (c as u8).to_ascii_lowercase()
        } else {
            b'?'
        };
        if self.in_comment {
            if self.last == b'*' && b == b'/' {
                self.in_comment = false;
            }
            self.last = b;
            return;
        }
        if self.last == b'/' && b == b'*' {
            self.in_comment = true;
            // The '/' was kept: take it back.
            let buf = if self.in_value {
                &mut self.value
            } else {
                &mut self.prop
            };
            if buf.last() == Some(&b'/') {
                buf.pop();
            }
            self.last = 0;
            return;
        }
        self.last = b;
        match b {
            b';' => self.end_declaration(),
            b':' if !self.in_value => self.in_value = true,
            b' ' | b'\t' | b'\n' | b'\r' => {}
            _ => {
                let buf = if self.in_value {
                    &mut self.value
                } else {
                    &mut self.prop
                };
                if buf.len() < DECL_CAP {
                    buf.push(b);
                }
            }
        }
    }

    /// The attribute value ended.
    pub(crate) fn end(&mut self) {
        self.end_declaration();
        let same_colour = !self.color.is_empty()
            && !self.background.is_empty()
            && canonical_colour(&self.color) == canonical_colour(&self.background);
        if same_colour
            || (self.zero_width && self.zero_height)
            || ((self.zero_width || self.zero_height) && self.overflow_hidden)
        {
            self.hidden = true;
        }
    }

    fn end_declaration(&mut self) {
        let prop = std::mem::take(&mut self.prop);
        let mut value = std::mem::take(&mut self.value);
        self.in_value = false;
        if let Some(stripped) = value.strip_suffix(b"!important") {
            value = stripped.to_vec();
        }
        let v = value.as_slice();
        let hides = match prop.as_slice() {
            b"display" => v == b"none",
            b"visibility" => v == b"hidden" || v == b"collapse",
            b"opacity" => {
                number(v).is_some_and(|(n, unit)| if unit == b"%" { n <= 5.0 } else { n <= 0.05 })
            }
            b"font-size" => tiny_length(v, 1.0),
            b"color" => {
                self.color = v.to_vec();
                v == b"transparent" || transparent_function(v)
            }
            b"background" | b"background-color" => {
                self.background = v.to_vec();
                false
            }
            b"text-indent" | b"left" | b"top" | b"right" | b"bottom" | b"margin-left"
            | b"margin-top" => far_negative(v),
            b"clip" => v.starts_with(b"rect(0") || v.starts_with(b"rect(1px"),
            b"clip-path" => {
                v.starts_with(b"inset(50%")
                    || v.starts_with(b"inset(100%")
                    || v.starts_with(b"circle(0")
            }
            b"transform" => v.starts_with(b"scale(0)") || v.starts_with(b"scale(0,"),
            b"width" | b"max-width" => {
                self.zero_width |= tiny_length(v, 1.0);
                false
            }
            b"height" | b"max-height" => {
                self.zero_height |= tiny_length(v, 1.0);
                false
            }
            b"overflow" => {
                self.overflow_hidden |= v == b"hidden" || v == b"clip";
                false
            }
            _ => false,
        };
        self.hidden |= hides;
    }
}

/// A number and its unit (`0.5em` -> (0.5, "em")).
fn number(v: &[u8]) -> Option<(f32, &[u8])> {
    let split = v
        .iter()
        .position(|b| !(b.is_ascii_digit() || *b == b'.' || *b == b'-' || *b == b'+'))
        .unwrap_or(v.len());
    let n: f32 = std::str::from_utf8(&v[..split]).ok()?.parse().ok()?;
    Some((n, &v[split..]))
}

/// A length at most `px` pixels (or an equally small em/rem/pt/%).
fn tiny_length(v: &[u8], px: f32) -> bool {
    number(v).is_some_and(|(n, unit)| match unit {
        b"" | b"px" | b"pt" => n <= px,
        b"em" | b"rem" | b"ex" | b"ch" | b"vw" | b"vh" => n <= 0.1,
        b"%" => n <= 5.0,
        _ => false,
    })
}

/// Far off-screen (`-9999px`, `-100em`).
fn far_negative(v: &[u8]) -> bool {
    number(v).is_some_and(|(n, unit)| match unit {
        b"px" | b"pt" | b"" => n <= -500.0,
        b"em" | b"rem" | b"vw" | b"vh" | b"%" => n <= -50.0,
        _ => false,
    })
}

fn transparent_function(v: &[u8]) -> bool {
    (v.starts_with(b"rgba(") || v.starts_with(b"hsla("))
        && (v.ends_with(b",0)") || v.ends_with(b",0.0)") || v.ends_with(b"/0)"))
}

fn canonical_colour(v: &[u8]) -> &[u8] {
    match v {
        b"white" | b"#fff" | b"#ffffff" | b"rgb(255,255,255)" => b"#ffffff",
        b"black" | b"#000" | b"#000000" | b"rgb(0,0,0)" => b"#000000",
        _ => v,
    }
}

/// Longest selector kept, and most hiding class/id names remembered per document.
const SELECTOR_CAP: usize = 256;
const NAMES_CAP: usize = 256;

/// A `<style>` element read for rules that hide a class or an id (`.promo-x{display:none}`),
/// so `<div class="promo-x">` counts as hidden. Over-approximates: the last class or id of
/// each selector is taken, whatever comes before it.
#[derive(Default)]
pub(crate) struct StyleSheet {
    selector: Vec<u8>,
    in_block: bool,
    in_comment: bool,
    last: u8,
    decl: StyleState,
    /// `.name` and `#name` selectors whose rule hides.
    names: Vec<Vec<u8>>,
}

impl StyleSheet {
    pub(crate) fn push(&mut self, c: char) {
        let b = if c.is_ascii() {
            (c as u8).to_ascii_lowercase()
        } else {
            b'?'
        };
        if self.in_comment {
            if self.last == b'*' && b == b'/' {
                self.in_comment = false;
            }
            self.last = b;
            return;
        }
        if self.last == b'/' && b == b'*' {
            self.in_comment = true;
            self.last = 0;
            if !self.in_block {
                self.selector.pop();
            }
            return;
        }
        self.last = b;
        if self.in_block {
            if b == b'}' {
                self.decl.end();
                if self.decl.hidden {
                    self.remember();
                }
                self.decl.reset();
                self.selector.clear();
                self.in_block = false;
            } else {
                self.decl.push(c);
            }
            return;
        }
        match b {
            // `@media ... {`: its rules follow; a lone `}` closes it.
            b'{' if self.selector.first() == Some(&b'@') => self.selector.clear(),
            b'{' => self.in_block = true,
            b'}' | b';' => self.selector.clear(),
            b' ' | b'\n' | b'\t' | b'\r' if self.selector.is_empty() => {}
            _ if self.selector.len() < SELECTOR_CAP => self.selector.push(b),
            _ => {}
        }
    }

    fn remember(&mut self) {
        for part in self.selector.split(|&b| b == b',') {
            let compound = part
                .rsplit(|&b| matches!(b, b' ' | b'>' | b'+' | b'~' | b'\n' | b'\t'))
                .find(|p| !p.is_empty())
                .unwrap_or(&[]);
            let cut = compound
                .iter()
                .position(|&b| b == b':' || b == b'[')
                .unwrap_or(compound.len());
            let compound = &compound[..cut];
            if let Some(i) = compound.iter().rposition(|&b| b == b'.' || b == b'#') {
                if self.names.len() < NAMES_CAP && compound.len() > i + 1 {
                    self.names.push(compound[i..].to_vec());
                }
            }
        }
    }

    /// Whether `.class` (`prefix` b'.') or `#id` (b'#') was hidden by a rule.
    pub(crate) fn hides(&self, prefix: u8, name: &[u8]) -> bool {
        self.names
            .iter()
            .any(|n| n.len() == name.len() + 1 && n[0] == prefix && n[1..] == *name)
    }
}

/// Class names of common CSS frameworks that hide an element (or keep it for screen readers
/// only, which is also invisible on screen).
pub(crate) fn hiding_class(name: &[u8]) -> bool {
    matches!(
        name,
        b"sr-only"
            | b"visually-hidden"
            | b"visuallyhidden"
            | b"screen-reader-text"
            | b"screen-reader-only"
            | b"hidden"
            | b"d-none"
            | b"invisible"
            | b"is-hidden"
            | b"hide"
            | b"u-hidden"
            | b"offscreen"
            | b"a11y-hidden"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hidden(style: &str) -> bool {
        let mut s = StyleState::default();
        for c in style.chars() {
            s.push(c);
        }
        s.end();
        s.hidden
    }

    #[test]
    fn style_sheets_remember_hiding_classes_and_ids() {
        let mut sheet = StyleSheet::default();
        let css = "body{margin:0} /* x */ .promo-x, div > #note:hover { display : none } \
                   @media (max-width: 600px) { .m1 { font-size: 0 } } .shown{color:red}";
        for c in css.chars() {
            sheet.push(c);
        }
        assert!(sheet.hides(b'.', b"promo-x"));
        assert!(sheet.hides(b'#', b"note"));
        assert!(sheet.hides(b'.', b"m1"));
        assert!(!sheet.hides(b'.', b"shown"));
        assert!(!sheet.hides(b'#', b"promo-x"));
    }

    #[test]
    fn hiding_styles_are_recognised_and_ordinary_ones_are_not() {
        for h in [
            "display:none",
            "DISPLAY : NONE !important",
            "color:red; display:/* x */none",
            "visibility: hidden",
            "opacity:0",
            "opacity: 0.01",
            "font-size:0px",
            "font-size: 0.05em",
            "position:absolute; left:-9999px",
            "text-indent:-10000px",
            "color:#fff;background:#ffffff",
            "color: transparent",
            "width:1px;height:1px;overflow:hidden",
            "clip-path: inset(50%)",
        ] {
            assert!(hidden(h), "{h}");
        }
        for v in [
            "display:block",
            "opacity:0.9",
            "font-size:14px",
            "left:10px",
            "color:#333;background:#fff",
            "width:0",
            "margin-left:-8px",
        ] {
            assert!(!hidden(v), "{v}");
        }
    }
}
