//! HTML and markdown read one character at a time (any chunking gives the same result):
//! tags are removed (block tags become line breaks, so `ig<b></b>nore` reads `ignore`),
//! character references decoded, and every character of text is tagged with where it was
//! read: inside a hidden element, comment or attribute, inside code, inside a quotation.
//!
//! State is bounded: 128 open elements, 32-byte names, 64-byte style declarations, 256-byte
//! markdown link labels.
//!
//! This file holds the character state machine, text and the element stack; a tag's
//! attributes (names, values read as text, hiding attributes and classes) are in `attrs`.

use super::css::{StyleSheet, StyleState};
use super::elements::{element_info, AttrKind, Info, Raw};
use super::fold::html_entity;
use super::norm::{Norm, ATTRIBUTE, CODE, HIDDEN, QUOTE};

mod attrs;

const MAX_DEPTH: usize = 128;
const NAME_CAP: usize = 32;
const ENTITY_CAP: usize = 12;
const LINK_LABEL_CAP: usize = 256;
/// The scheme of a URL whose payload is read as text.
const DATA_URI: &[u8] = b"data:";

#[derive(Clone, Copy, PartialEq, Eq)]
enum AttrPhase {
    Name,
    AfterName,
    BeforeValue,
    /// In a value; the closing quote (0: unquoted).
    Value(u8),
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum State {
    Text,
    /// After `<`.
    Open,
    /// After `<!`; the number of `-` seen.
    Bang(u8),
    TagName,
    Attrs(AttrPhase),
    /// Inside `<!-- -->`; the number of trailing `-` held back.
    Comment(u8),
    /// `<!DOCTYPE ...>`, `<?xml ...?>`, a CDATA section: skipped to `>`.
    Bogus,
    /// Inside `<script>` / `<style>`; how much of the closing tag has been seen.
    RawText(u8),
    /// After `&`, collecting a character reference.
    Entity,
    /// A run of backticks or tildes at a markdown line start.
    FenceRun,
    /// Inside a fenced code block; the closing-run count at this line start.
    Fence(u8),
    /// `[` at a markdown line start, collecting a possible link reference label.
    LinkLabel,
}

struct Element {
    name: [u8; NAME_CAP],
    len: u8,
    hidden: bool,
    code: bool,
    quote: bool,
}

pub(crate) struct Markup {
    markdown: bool,
    state: State,
    /// Where the buffered construct started (its text maps to this input offset).
    start: usize,
    name: Vec<u8>,
    closing: bool,
    attr_name: Vec<u8>,
    attr_kind: AttrKind,
    attr_value: Vec<u8>,
    style: StyleState,
    sheet: StyleSheet,
    tag_hidden: bool,
    entity: Vec<u8>,
    /// State to return to after an entity.
    entity_return: State,
    stack: Vec<Element>,
    /// Elements opened beyond [`MAX_DEPTH`] (they inherit their parent's context).
    overflow: usize,
    /// Overflow level at which a hidden element was opened beyond the stack (0: none): all
    /// text is hidden until the overflow drops below it (fails closed, not open).
    overflow_hidden: usize,
    hidden_depth: usize,
    code_depth: usize,
    quote_depth: usize,
    raw_script: bool,
    line_start: bool,
    inline_code: bool,
    /// An inline tag just ended: a capital next starts a word (`text<b>Ignore`).
    after_inline_tag: bool,
    quote_line: bool,
    hidden_line: bool,
    fence_char: char,
    fence_len: u8,
    run_len: u8,
    label: Vec<(char, usize)>,
}

impl Markup {
    /// `markdown`: also read fences, backticks, `>` quotes and link reference definitions.
    pub(crate) fn new(markdown: bool) -> Markup {
        Markup {
            markdown,
            state: State::Text,
            start: 0,
            name: Vec::new(),
            closing: false,
            attr_name: Vec::new(),
            attr_kind: AttrKind::Other,
            attr_value: Vec::new(),
            style: StyleState::default(),
            sheet: StyleSheet::default(),
            tag_hidden: false,
            entity: Vec::new(),
            entity_return: State::Text,
            stack: Vec::new(),
            overflow: 0,
            overflow_hidden: 0,
            hidden_depth: 0,
            code_depth: 0,
            quote_depth: 0,
            raw_script: false,
            // Only markdown looks at line starts.
            line_start: markdown,
            inline_code: false,
            after_inline_tag: false,
            quote_line: false,
            hidden_line: false,
            fence_char: '`',
            fence_len: 0,
            run_len: 0,
            label: Vec::new(),
        }
    }

    /// Input offset of the earliest character read but not yet written to the text, if any
    /// (the stream must not release it yet).
    pub(crate) fn pending_from(&self) -> Option<usize> {
        match self.state {
            State::Text | State::Comment(0) | State::RawText(_) | State::Fence(_) => None,
            State::Attrs(_) | State::Bogus if self.known_or_custom() => None,
            State::LinkLabel => self.label.first().map(|(_, at)| *at),
            _ => Some(self.start),
        }
    }

    /// The context flags when ordinary text may be written straight through (no construct
    /// open, not at a markdown line start).
    pub(crate) fn plain_flags(&self) -> Option<u8> {
        (self.state == State::Text && !self.line_start && !self.after_inline_tag)
            .then(|| self.flags())
    }

    fn flags(&self) -> u8 {
        let mut f = 0;
        if self.hidden_depth > 0
            || self.hidden_line
            || self.overflow_hidden > 0
            || matches!(self.state, State::Comment(_))
        {
            f |= HIDDEN;
        }
        if self.raw_script && matches!(self.state, State::RawText(_)) {
            f |= HIDDEN;
        }
        if self.code_depth > 0 || self.inline_code || matches!(self.state, State::Fence(_)) {
            f |= CODE;
        }
        if self.quote_depth > 0 || self.quote_line {
            f |= QUOTE;
        }
        f
    }

    /// A JSON string value ended: constructs do not continue into the next value.
    pub(crate) fn end_value(&mut self, at: usize, out: &mut Norm) {
        self.flush(at, out);
        self.reset();
        out.boundary(at);
    }

    /// Back to the start state, keeping buffers' capacity.
    fn reset(&mut self) {
        self.state = State::Text;
        self.closing = false;
        self.name.clear();
        self.attr_name.clear();
        self.attr_value.clear();
        self.attr_kind = AttrKind::Other;
        self.style.reset();
        self.tag_hidden = false;
        self.entity.clear();
        self.stack.clear();
        self.overflow = 0;
        self.overflow_hidden = 0;
        self.hidden_depth = 0;
        self.code_depth = 0;
        self.quote_depth = 0;
        self.raw_script = false;
        self.line_start = self.markdown;
        self.inline_code = false;
        self.quote_line = false;
        self.hidden_line = false;
        self.fence_len = 0;
        self.label.clear();
    }

    /// The body ended.
    pub(crate) fn finish(&mut self, at: usize, out: &mut Norm) {
        self.flush(at, out);
    }

    /// Writes out whatever is buffered as plain text.
    fn flush(&mut self, at: usize, out: &mut Norm) {
        match self.state {
            State::Entity => {
                self.state = self.entity_return;
                self.write_raw_entity(out);
            }
            State::LinkLabel => {
                self.state = State::Text;
                self.replay_label(out);
            }
            State::Comment(n) => {
                for _ in 0..n {
                    out.push_char('-', at, HIDDEN);
                }
            }
            _ => {}
        }
        self.state = State::Text;
    }

    /// Reads one character at input offset `at`.
    pub(crate) fn push(&mut self, c: char, at: usize, out: &mut Norm) {
        // Fast path: ordinary text outside any construct.
        if self.state == State::Text
            && !self.line_start
            && !self.after_inline_tag
            && !matches!(c, '<' | '&' | '`' | '\n')
        {
            out.push_char(c, at, self.flags());
            return;
        }
        // A character may need a second look after the state it ended (at most twice more).
        let mut again = true;
        while again {
            again = self.step(c, at, out);
        }
    }

    /// One transition; true when `c` must be read again in the new state.
    fn step(&mut self, c: char, at: usize, out: &mut Norm) -> bool {
        match self.state {
            State::Text => self.text(c, at, out),
            State::Open => {
                match c {
                    '!' => self.state = State::Bang(0),
                    '/' if !self.closing => self.closing = true,
                    '?' => self.state = State::Bogus,
                    c if c.is_ascii_alphabetic() => {
                        self.name.clear();
                        self.name.push(c.to_ascii_lowercase() as u8);
                        self.state = State::TagName;
                    }
                    _ => {
                        // Not a tag: `a < b`, `<|im_start|>`.
                        self.state = State::Text;
                        self.emit_str(if self.closing { "</" } else { "<" }, out);
                        return true;
                    }
                }
                false
            }
            State::Bang(n) => {
                if c == '-' && n < 2 {
                    self.state = State::Bang(n + 1);
                    if n == 1 {
                        self.state = State::Comment(0);
                        out.boundary(at);
                    }
                    false
                } else {
                    self.state = State::Bogus;
                    c == '>'
                }
            }
            State::Comment(dashes) => {
                match c {
                    '-' => self.state = State::Comment(dashes.saturating_add(1).min(3)),
                    '>' if dashes >= 2 => {
                        self.state = State::Text;
                        out.boundary(at);
                    }
                    _ => {
                        for _ in 0..dashes {
                            out.push_char('-', at, HIDDEN);
                        }
                        self.state = State::Comment(0);
                        out.push_char(c, at, HIDDEN);
                    }
                }
                false
            }
            State::Bogus => {
                if c == '>' {
                    self.state = State::Text;
                    out.boundary(at);
                } else {
                    // `<![CDATA[...]]>`, `<?...?>`: never shown, read by a model.
                    out.push_char(c, at, self.flags() | HIDDEN);
                }
                false
            }
            State::TagName => {
                match c {
                    c if c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == ':' => {
                        if self.name.len() < NAME_CAP {
                            self.name.push(c.to_ascii_lowercase() as u8);
                        }
                    }
                    '>' => self.end_tag(at, out),
                    '/' => self.state = State::Attrs(AttrPhase::AfterName),
                    c if c.is_whitespace() => self.state = State::Attrs(AttrPhase::AfterName),
                    _ => {
                        // `<system|...`: not markup, text.
                        self.state = State::Text;
                        let name = String::from_utf8_lossy(&self.name).into_owned();
                        self.emit_str(if self.closing { "</" } else { "<" }, out);
                        self.emit_str(&name, out);
                        self.closing = false;
                        return true;
                    }
                }
                false
            }
            State::Attrs(phase) => self.attrs(phase, c, at, out),
            State::RawText(matched) => {
                let close: &[u8] = if self.raw_script {
                    b"</script"
                } else {
                    b"</style"
                };
                let b = if c.is_ascii() {
                    (c as u8).to_ascii_lowercase()
                } else {
                    0
                };
                let m = matched as usize;
                if m < close.len() && b == close[m] {
                    self.state = State::RawText(matched + 1);
                } else if m == close.len() && (b == b'>' || c.is_whitespace()) {
                    self.pop_named(if self.raw_script { b"script" } else { b"style" });
                    self.raw_script = false;
                    self.state = if b == b'>' { State::Text } else { State::Bogus };
                    out.boundary(at);
                    return false;
                } else {
                    self.state = State::RawText(if b == b'<' { 1 } else { 0 });
                }
                if !self.raw_script {
                    self.sheet.push(c);
                }
                // Script and style text is never shown but a model reading the page sees it.
                out.push_char(c, at, self.flags() | HIDDEN);
                false
            }
            State::Entity => {
                if c == ';' && !self.entity.is_empty() {
                    self.state = self.entity_return;
                    match html_entity(&self.entity) {
                        Some(decoded) => self.entity_char(decoded, self.start, out),
                        None => {
                            self.write_raw_entity(out);
                            self.entity_char(';', at, out);
                        }
                    }
                    self.entity.clear();
                    false
                } else if (c.is_ascii_alphanumeric() || c == '#') && self.entity.len() < ENTITY_CAP
                {
                    self.entity.push(c as u8);
                    false
                } else {
                    self.state = self.entity_return;
                    self.write_raw_entity(out);
                    true
                }
            }
            State::FenceRun => {
                if c == self.fence_char && self.run_len < u8::MAX {
                    self.run_len += 1;
                    return false;
                }
                if self.run_len >= 3 {
                    self.fence_len = self.run_len;
                    self.state = State::Fence(u8::MAX);
                    out.boundary(at);
                    // The info string (` ```rust`) is code too: fall through as fence text.
                    return true;
                }
                self.state = State::Text;
                if self.fence_char == '`' {
                    if self.run_len % 2 == 1 {
                        self.inline_code = !self.inline_code;
                    }
                } else {
                    for _ in 0..self.run_len {
                        out.push_char('~', self.start, self.flags());
                    }
                }
                self.line_start = false;
                true
            }
            State::Fence(run) => {
                if c == '\n' {
                    out.push_char(c, at, CODE | self.flags());
                    self.state = State::Fence(0);
                    return false;
                }
                if run != u8::MAX {
                    if c == self.fence_char {
                        let run = run + 1;
                        self.state = State::Fence(run);
                        if run >= self.fence_len {
                            // Closing fence; a rare trailing text on its line reads as text.
                            self.fence_len = 0;
                            self.line_start = false;
                            self.state = State::Text;
                            out.boundary(at);
                        }
                        return false;
                    }
                    if !(c == ' ' && run == 0) {
                        self.state = State::Fence(u8::MAX);
                    }
                }
                out.push_char(c, at, CODE | self.flags());
                false
            }
            State::LinkLabel => {
                match c {
                    ']' => {
                        self.label.push((c, at));
                    }
                    ':' if self.label.last().is_some_and(|(p, _)| *p == ']') => {
                        // `[label]: url "title"`: a definition, never rendered.
                        self.label.push((c, at));
                        self.state = State::Text;
                        self.hidden_line = true;
                        self.line_start = false;
                        self.replay_label(out);
                        return false;
                    }
                    '\n' => {
                        self.state = State::Text;
                        self.replay_label(out);
                        return true;
                    }
                    _ if self.label.last().is_some_and(|(p, _)| *p == ']')
                        || self.label.len() >= LINK_LABEL_CAP =>
                    {
                        self.state = State::Text;
                        self.replay_label(out);
                        return true;
                    }
                    _ => self.label.push((c, at)),
                }
                false
            }
        }
    }

    fn text(&mut self, c: char, at: usize, out: &mut Norm) -> bool {
        if self.markdown {
            if c == '\n' {
                self.line_start = true;
                self.quote_line = false;
                self.hidden_line = false;
                self.inline_code = false;
                out.push_char(c, at, self.flags());
                return false;
            }
            if self.line_start {
                match c {
                    ' ' | '\t' => {
                        out.push_char(c, at, self.flags());
                        return false;
                    }
                    '`' | '~' => {
                        self.fence_char = c;
                        self.run_len = 1;
                        self.start = at;
                        self.state = State::FenceRun;
                        return false;
                    }
                    '>' => {
                        self.quote_line = true;
                        return false;
                    }
                    '[' => {
                        self.line_start = false;
                        self.label.clear();
                        self.label.push((c, at));
                        self.state = State::LinkLabel;
                        return false;
                    }
                    _ => self.line_start = false,
                }
            } else if c == '`' {
                self.inline_code = !self.inline_code;
                return false;
            }
        }
        if c != '<' && std::mem::take(&mut self.after_inline_tag) && c.is_ascii_uppercase() {
            out.word_break(at);
        }
        match c {
            '<' if !(self.markdown && self.inline_code) => {
                self.start = at;
                self.closing = false;
                self.state = State::Open;
            }
            // Markdown code spans show references literally.
            '&' if !(self.markdown && self.inline_code) => {
                self.start = at;
                self.entity.clear();
                self.entity_return = State::Text;
                self.state = State::Entity;
            }
            _ => out.push_char(c, at, self.flags()),
        }
        false
    }

    fn end_tag(&mut self, at: usize, out: &mut Norm) {
        self.state = State::Text;
        let name = std::mem::take(&mut self.name);
        let info = element_info(&name);
        if info.is_none() && !name.contains(&b'-') {
            // Not an HTML element: text a model reads as structure (`<system>`, `</tool_result>`).
            let start = self.start;
            self.emit_text('<', start, out);
            if self.closing {
                self.emit_text('/', start, out);
            }
            for &b in &name {
                self.emit_text(b as char, start, out);
            }
            self.emit_text('>', start, out);
        }
        let info = info.unwrap_or(Info::INLINE);
        if info.block {
            out.boundary(at);
        }
        self.after_inline_tag = !info.block;
        if self.closing {
            self.pop_named(&name);
        } else if !info.void {
            self.open(&name, info);
            if info.raw != Raw::No {
                self.raw_script = info.raw == Raw::Script;
                self.state = State::RawText(0);
            }
        }
        self.closing = false;
        self.tag_hidden = false;
        self.style.reset();
        self.attr_name.clear();
        self.name = name;
        self.name.clear();
    }

    fn open(&mut self, name: &[u8], info: Info) {
        let hidden = self.tag_hidden || info.hidden;
        if self.stack.len() >= MAX_DEPTH {
            self.overflow += 1;
            if hidden && self.overflow_hidden == 0 {
                self.overflow_hidden = self.overflow;
            }
            return;
        }
        let mut buf = [0u8; NAME_CAP];
        let len = name.len().min(NAME_CAP);
        buf[..len].copy_from_slice(&name[..len]);
        self.hidden_depth += usize::from(hidden);
        self.code_depth += usize::from(info.code);
        self.quote_depth += usize::from(info.quote);
        self.stack.push(Element {
            name: buf,
            len: len as u8,
            hidden,
            code: info.code,
            quote: info.quote,
        });
    }

    fn pop_named(&mut self, name: &[u8]) {
        if self.overflow > 0 {
            if self.overflow == self.overflow_hidden {
                self.overflow_hidden = 0;
            }
            self.overflow -= 1;
            return;
        }
        let len = name.len().min(NAME_CAP);
        let Some(i) = self
            .stack
            .iter()
            .rposition(|e| e.name[..e.len as usize] == name[..len])
        else {
            return;
        };
        for e in self.stack.drain(i..) {
            self.hidden_depth -= usize::from(e.hidden);
            self.code_depth -= usize::from(e.code);
            self.quote_depth -= usize::from(e.quote);
        }
    }

    fn known_or_custom(&self) -> bool {
        element_info(&self.name).is_some() || self.name.contains(&b'-')
    }

    fn emit_str(&mut self, s: &str, out: &mut Norm) {
        for c in s.chars() {
            out.push_char(c, self.start, self.flags());
        }
    }

    /// Decoded text (an entity's character is text, never markup).
    fn emit_text(&mut self, c: char, at: usize, out: &mut Norm) {
        let mut f = self.flags();
        if matches!(self.state, State::Attrs(_)) && f & HIDDEN == 0 {
            f |= HIDDEN | ATTRIBUTE;
        }
        out.push_char(c, at, f);
    }

    fn write_raw_entity(&mut self, out: &mut Norm) {
        let start = self.start;
        self.entity_char('&', start, out);
        let entity = std::mem::take(&mut self.entity);
        for &b in &entity {
            self.entity_char(b as char, start, out);
        }
        self.entity = entity;
        self.entity.clear();
    }

    fn replay_label(&mut self, out: &mut Norm) {
        let label = std::mem::take(&mut self.label);
        let mut chars = label.into_iter();
        if let Some((c, at)) = chars.next() {
            out.push_char(c, at, self.flags());
        }
        for (c, at) in chars {
            self.push(c, at, out);
        }
    }
}
