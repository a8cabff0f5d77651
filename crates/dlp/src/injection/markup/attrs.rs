//! Attributes of a tag: names, values read as text (`alt`, `title`, ...),
//! hiding attributes and classes (`hidden`, `style`, `class`), and character
//! references inside values.

use super::super::css::hiding_class;
use super::super::elements::{attr_kind, AttrKind};
use super::super::norm::Norm;
use super::{AttrPhase, Markup, State, DATA_URI, NAME_CAP};

impl Markup {
    pub(super) fn attrs(&mut self, phase: AttrPhase, c: char, at: usize, out: &mut Norm) -> bool {
        match phase {
            AttrPhase::Name | AttrPhase::AfterName => {
                if c == '>' {
                    self.end_attr(out, at);
                    self.end_tag(at, out);
                } else if c == '=' {
                    self.state = State::Attrs(AttrPhase::BeforeValue);
                } else if c.is_whitespace() || c == '/' {
                    if phase == AttrPhase::Name {
                        self.end_attr(out, at);
                    }
                    self.state = State::Attrs(AttrPhase::AfterName);
                } else {
                    if phase == AttrPhase::AfterName {
                        self.end_attr(out, at);
                        self.attr_name.clear();
                    }
                    if self.attr_name.len() < NAME_CAP {
                        self.attr_name.push(c.to_ascii_lowercase() as u8);
                    }
                    self.state = State::Attrs(AttrPhase::Name);
                }
                false
            }
            AttrPhase::BeforeValue => {
                if c.is_whitespace() {
                    return false;
                }
                self.begin_value(out, at);
                match c {
                    '"' | '\'' => {
                        self.state = State::Attrs(AttrPhase::Value(c as u8));
                        false
                    }
                    '>' => {
                        self.end_value_attr(out, at);
                        self.end_tag(at, out);
                        false
                    }
                    _ => {
                        self.state = State::Attrs(AttrPhase::Value(0));
                        true
                    }
                }
            }
            AttrPhase::Value(q) => {
                let ends = if q == 0 {
                    c.is_whitespace() || c == '>'
                } else {
                    c as u32 == q as u32
                };
                if ends {
                    self.end_value_attr(out, at);
                    self.state = State::Attrs(AttrPhase::AfterName);
                    self.attr_name.clear();
                    return q == 0 && c == '>';
                }
                if c == '&' && self.attr_kind != AttrKind::Other {
                    // References are decoded in every attribute value (`display&colon;none`).
                    self.start = at;
                    self.entity.clear();
                    self.entity_return = self.state;
                    self.state = State::Entity;
                } else {
                    self.attr_char(c, at, out);
                }
                false
            }
        }
    }

    /// One (decoded) character of an attribute value.
    pub(super) fn attr_char(&mut self, c: char, at: usize, out: &mut Norm) {
        match self.attr_kind {
            AttrKind::Text => self.emit_text(c, at, out),
            AttrKind::Style => self.style.push(c),
            AttrKind::Class | AttrKind::Id | AttrKind::AriaHidden | AttrKind::Type => {
                if c.is_whitespace() {
                    self.end_class_word();
                } else if self.attr_value.len() < NAME_CAP {
                    self.attr_value.push(c.to_ascii_lowercase() as u8);
                }
            }
            AttrKind::Url => {
                self.attr_value.push(c.to_ascii_lowercase() as u8);
                if self.attr_value.len() == DATA_URI.len() {
                    if self.attr_value == DATA_URI {
                        self.attr_kind = AttrKind::Text;
                        out.boundary(at);
                    } else {
                        self.attr_kind = AttrKind::Other;
                    }
                    self.attr_value.clear();
                }
            }
            AttrKind::Other => {}
        }
    }

    /// A character produced by a reference (or its raw text): text, or attribute value.
    pub(super) fn entity_char(&mut self, c: char, at: usize, out: &mut Norm) {
        if matches!(self.state, State::Attrs(AttrPhase::Value(_))) {
            self.attr_char(c, at, out);
        } else {
            self.emit_text(c, at, out);
        }
    }

    pub(super) fn begin_value(&mut self, out: &mut Norm, at: usize) {
        self.attr_kind = attr_kind(&self.attr_name);
        self.attr_value.clear();
        if self.attr_kind == AttrKind::Text {
            out.boundary(at);
        }
    }

    pub(super) fn end_class_word(&mut self) {
        match self.attr_kind {
            AttrKind::Class => {
                self.tag_hidden |=
                    hiding_class(&self.attr_value) || self.sheet.hides(b'.', &self.attr_value);
            }
            AttrKind::Id => self.tag_hidden |= self.sheet.hides(b'#', &self.attr_value),
            AttrKind::AriaHidden => self.tag_hidden |= self.attr_value == b"true",
            AttrKind::Type => self.tag_hidden |= self.attr_value == b"hidden",
            _ => {}
        }
        self.attr_value.clear();
    }

    pub(super) fn end_value_attr(&mut self, out: &mut Norm, at: usize) {
        match self.attr_kind {
            AttrKind::Text => out.boundary(at),
            AttrKind::Style => {
                self.style.end();
                self.tag_hidden |= self.style.hidden;
            }
            _ => self.end_class_word(),
        }
        self.attr_kind = AttrKind::Other;
    }

    /// An attribute without a value ended (`<div hidden>`).
    pub(super) fn end_attr(&mut self, _out: &mut Norm, _at: usize) {
        if self.attr_name == b"hidden" {
            self.tag_hidden = true;
        }
    }
}
