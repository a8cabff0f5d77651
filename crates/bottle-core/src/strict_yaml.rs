//! A small strict YAML reader with line numbers, on yaml-rust2's marked events: nodes keep
//! their line, mappings refuse unknown keys with the nearest known one, anchors, aliases and
//! second documents are refused. `routes.yaml` (`routes_parse`) and the launcher's manifest
//! are read with it; the launcher also builds [`Node`] trees directly (the routes.yaml it
//! writes) and checks them with the very schema the sidecars load (`RoutesFile::from_node`),
//! then writes them with [`Node::to_yaml`].

mod emit;
mod suggest;
#[cfg(test)]
mod tests;

pub use suggest::{backticked, edit_distance, hint, nearest};

use std::path::Path;

use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser, Tag};
use yaml_rust2::scanner::{Marker, TScalarStyle};

use crate::error::ConfigError;

const MAX_TEXT: usize = 4 * 1024 * 1024;
const MAX_DEPTH: usize = 32;

/// A hint for the commonest YAML mistake here: an unquoted value starting with `*` (an alias).
fn yaml_hint(text: &str, line: usize) -> String {
    let Some(l) = text.lines().nth(line.saturating_sub(1)) else {
        return String::new();
    };
    let value = l.split_once(": ").map(|(_, v)| v.trim()).unwrap_or("");
    let value = value.split(" #").next().unwrap_or("").trim();
    if value.starts_with('*') && !value.is_empty() && value.len() < 200 {
        format!(" (a value starting with `*` must be quoted: \"{value}\")")
    } else {
        String::new()
    }
}

/// What a node holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    /// Empty, `~` or `null` (plain).
    Null,
    /// Text, and whether it was plain (unquoted): only a plain scalar can be a bool or number.
    Scalar(String, bool),
    /// A list.
    Seq(Vec<Node>),
    /// A mapping: (key, key line, value), in file order, keys unique.
    Map(Vec<(String, usize, Node)>),
}

/// A YAML node and its 1-based line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    /// The value.
    pub v: Value,
    /// 1-based line (0 when built, not read, and the line is unknown).
    pub line: usize,
}

impl Node {
    /// A string (written quoted when it could be read as anything else).
    pub fn str(line: usize, s: impl Into<String>) -> Node {
        Node {
            v: Value::Scalar(s.into(), false),
            line,
        }
    }

    /// `true` or `false`.
    pub fn bool(line: usize, b: bool) -> Node {
        Node {
            v: Value::Scalar(b.to_string(), true),
            line,
        }
    }

    /// A whole number.
    pub fn u64(line: usize, n: u64) -> Node {
        Node {
            v: Value::Scalar(n.to_string(), true),
            line,
        }
    }

    /// A list.
    pub fn seq(line: usize, items: Vec<Node>) -> Node {
        Node {
            v: Value::Seq(items),
            line,
        }
    }

    /// A list of strings.
    pub fn str_seq(line: usize, items: &[String]) -> Node {
        Node::seq(line, items.iter().map(|s| Node::str(line, s)).collect())
    }

    /// A mapping from (key, value) pairs, in order; each key on its value's line.
    pub fn map(line: usize, entries: Vec<(&str, Node)>) -> Node {
        Node {
            v: Value::Map(
                entries
                    .into_iter()
                    .map(|(k, n)| (k.to_string(), n.line, n))
                    .collect(),
            ),
            line,
        }
    }

    /// The text of a scalar.
    pub fn as_str(&self) -> Option<&str> {
        match &self.v {
            Value::Scalar(s, _) => Some(s),
            _ => None,
        }
    }
}

#[derive(Default)]
struct Events(Vec<(Event, usize)>);

impl MarkedEventReceiver for Events {
    fn on_event(&mut self, ev: Event, mark: Marker) {
        self.0.push((ev, mark.line()));
    }
}

/// The file being read: named in every error.
pub struct Ctx<'a> {
    /// The file.
    pub file: &'a Path,
}

impl<'a> Ctx<'a> {
    /// Errors will name `file`.
    pub fn new(file: &'a Path) -> Ctx<'a> {
        Ctx { file }
    }

    /// `file:line: msg` (line 0, unknown, is reported as line 1).
    pub fn err(&self, line: usize, msg: impl Into<String>) -> ConfigError {
        ConfigError::invalid(self.file, Some(line.max(1)), msg)
    }
}

/// A tag (`!!str`, `!custom`) would change what a value is for some readers and not for
/// others: refused, so that the file means one thing.
fn refuse_tag(ctx: &Ctx<'_>, line: usize, tag: Option<&Tag>) -> Result<(), ConfigError> {
    match tag {
        None => Ok(()),
        Some(t) => Err(ctx.err(
            line,
            format!(
                "YAML tags (`{}{}`) are not supported here; write the plain value",
                short(&t.handle),
                short(&t.suffix)
            ),
        )),
    }
}

struct Tree<'e> {
    events: &'e [(Event, usize)],
    pos: usize,
}

impl Tree<'_> {
    fn node(&mut self, ctx: &Ctx<'_>, depth: usize) -> Result<Node, ConfigError> {
        let Some((ev, line)) = self.events.get(self.pos) else {
            return Err(ctx.err(1, "unexpected end of YAML"));
        };
        let line = *line;
        self.pos += 1;
        if depth > MAX_DEPTH {
            return Err(ctx.err(line, "nested too deeply"));
        }
        match ev {
            Event::Scalar(s, style, anchor, tag) => {
                refuse_tag(ctx, line, tag.as_ref())?;
                if *anchor != 0 {
                    return Err(ctx.err(
                        line,
                        "YAML anchors and aliases are not supported here; write the value out",
                    ));
                }
                let plain = *style == TScalarStyle::Plain;
                if plain && (s.is_empty() || s == "~" || s == "null" || s == "Null" || s == "NULL")
                {
                    Ok(Node {
                        v: Value::Null,
                        line,
                    })
                } else {
                    Ok(Node {
                        v: Value::Scalar(s.clone(), plain),
                        line,
                    })
                }
            }
            Event::SequenceStart(anchor, tag) => {
                refuse_tag(ctx, line, tag.as_ref())?;
                if *anchor != 0 {
                    return Err(ctx.err(
                        line,
                        "YAML anchors and aliases are not supported here; write the value out",
                    ));
                }
                let mut items = Vec::new();
                loop {
                    match self.events.get(self.pos) {
                        Some((Event::SequenceEnd, _)) => {
                            self.pos += 1;
                            break;
                        }
                        Some(_) => items.push(self.node(ctx, depth + 1)?),
                        None => return Err(ctx.err(line, "unterminated list")),
                    }
                }
                Ok(Node {
                    v: Value::Seq(items),
                    line,
                })
            }
            Event::MappingStart(anchor, tag) => {
                refuse_tag(ctx, line, tag.as_ref())?;
                if *anchor != 0 {
                    return Err(ctx.err(
                        line,
                        "YAML anchors and aliases are not supported here; write the value out",
                    ));
                }
                let mut entries: Vec<(String, usize, Node)> = Vec::new();
                loop {
                    match self.events.get(self.pos) {
                        Some((Event::MappingEnd, _)) => {
                            self.pos += 1;
                            break;
                        }
                        Some(_) => {
                            let key = self.node(ctx, depth + 1)?;
                            let k = match key.v {
                                Value::Scalar(s, _) => s,
                                Value::Null => String::new(),
                                _ => return Err(ctx.err(key.line, "a key must be a plain word")),
                            };
                            let value = self.node(ctx, depth + 1)?;
                            if entries.iter().any(|(e, _, _)| *e == k) {
                                return Err(ctx.err(key.line, format!("duplicate key `{k}`")));
                            }
                            entries.push((k, key.line, value));
                        }
                        None => return Err(ctx.err(line, "unterminated mapping")),
                    }
                }
                Ok(Node {
                    v: Value::Map(entries),
                    line,
                })
            }
            Event::Alias(_) => Err(ctx.err(
                line,
                "YAML anchors and aliases are not supported here; write the value out",
            )),
            other => Err(ctx.err(line, format!("unexpected YAML event {other:?}"))),
        }
    }
}

/// "a scalar", "a list", ...: for messages.
pub fn kind(n: &Node) -> &'static str {
    match n.v {
        Value::Null => "nothing",
        Value::Scalar(..) => "a scalar",
        Value::Seq(_) => "a list",
        Value::Map(_) => "a mapping",
    }
}

/// A mapping whose keys were checked against the known ones.
pub struct Map<'n> {
    what: &'static str,
    /// Line of the mapping.
    pub line: usize,
    /// Its entries: (key, key line, value).
    pub entries: &'n [(String, usize, Node)],
}

impl<'n> Map<'n> {
    /// `node` as a mapping called `what` (in messages) with only `known` keys; an unknown key
    /// is an error with its line and the nearest known key (or the list of them).
    pub fn new(
        ctx: &Ctx<'_>,
        node: &'n Node,
        what: &'static str,
        known: &[&str],
    ) -> Result<Map<'n>, ConfigError> {
        let Value::Map(entries) = &node.v else {
            return Err(ctx.err(
                node.line,
                format!("{what} must be a mapping of keys, not {}", kind(node)),
            ));
        };
        for (k, line, _) in entries {
            if !known.contains(&k.as_str()) {
                let hint = hint(k, known, "known keys");
                return Err(ctx.err(*line, format!("unknown key `{k}` in {what}{hint}")));
            }
        }
        Ok(Map {
            what,
            line: node.line,
            entries,
        })
    }

    /// The value of `key`; `None` when absent or null.
    pub fn get(&self, key: &str) -> Option<&'n Node> {
        self.entries
            .iter()
            .find(|(k, _, _)| k == key)
            .map(|(_, _, n)| n)
            .filter(|n| !matches!(n.v, Value::Null))
    }

    /// The value of `key`, or an error naming the mapping.
    pub fn req(&self, ctx: &Ctx<'_>, key: &str) -> Result<&'n Node, ConfigError> {
        self.get(key)
            .ok_or_else(|| ctx.err(self.line, format!("{} is missing `{key}`", self.what)))
    }

    /// The string value of `key`, if present.
    pub fn str(&self, ctx: &Ctx<'_>, key: &str) -> Result<Option<String>, ConfigError> {
        self.get(key).map(|n| scalar(ctx, n, key)).transpose()
    }

    /// The string value of `key` and its line, or an error.
    pub fn req_str(&self, ctx: &Ctx<'_>, key: &str) -> Result<(String, usize), ConfigError> {
        let n = self.req(ctx, key)?;
        Ok((scalar(ctx, n, key)?, n.line))
    }

    /// A plain `true`/`false`, `default` when absent.
    pub fn bool(&self, ctx: &Ctx<'_>, key: &str, default: bool) -> Result<bool, ConfigError> {
        let Some(n) = self.get(key) else {
            return Ok(default);
        };
        match &n.v {
            Value::Scalar(s, true) if matches!(s.as_str(), "true" | "True" | "TRUE") => Ok(true),
            Value::Scalar(s, true) if matches!(s.as_str(), "false" | "False" | "FALSE") => {
                Ok(false)
            }
            Value::Scalar(s, _) => Err(ctx.err(
                n.line,
                format!("`{key}` must be true or false, not `{}`", short(s)),
            )),
            _ => Err(ctx.err(
                n.line,
                format!("`{key}` must be true or false, not {}", kind(n)),
            )),
        }
    }

    /// A plain positive whole number, `default` when absent.
    pub fn u64(&self, ctx: &Ctx<'_>, key: &str, default: u64) -> Result<u64, ConfigError> {
        let Some(n) = self.get(key) else {
            return Ok(default);
        };
        match &n.v {
            Value::Scalar(s, true) => match s.replace('_', "").parse::<u64>() {
                Ok(v) if v > 0 => Ok(v),
                _ => Err(ctx.err(
                    n.line,
                    format!(
                        "`{key}` must be a positive whole number, not `{}`",
                        short(s)
                    ),
                )),
            },
            _ => Err(ctx.err(
                n.line,
                format!("`{key}` must be a positive whole number, not {}", kind(n)),
            )),
        }
    }
}

/// At most 60 characters of `s`, control characters as `?`: safe to quote in a message.
pub fn short(s: &str) -> String {
    let mut o: String = s
        .chars()
        .take(60)
        .map(|c| if c.is_control() { '?' } else { c })
        .collect();
    if o.len() < s.len() {
        o.push('…');
    }
    o
}

/// The text of a scalar node, or an error naming `key`.
pub fn scalar(ctx: &Ctx<'_>, n: &Node, key: &str) -> Result<String, ConfigError> {
    match &n.v {
        Value::Scalar(s, _) => Ok(s.clone()),
        _ => Err(ctx.err(n.line, format!("`{key}` must be a string, not {}", kind(n)))),
    }
}

/// A scalar that must be one of `allowed` (compared exactly): the word and its line, or an
/// error naming `what`, the allowed words and the nearest one.
pub fn word<'w>(
    ctx: &Ctx<'_>,
    n: &Node,
    what: &str,
    allowed: &[&'w str],
) -> Result<&'w str, ConfigError> {
    let v = match &n.v {
        Value::Scalar(s, _) => s.as_str(),
        _ => {
            return Err(ctx.err(
                n.line,
                format!(
                    "{what} must be {}, not {}",
                    backticked(allowed, " or "),
                    kind(n)
                ),
            ))
        }
    };
    if let Some(w) = allowed.iter().find(|a| **a == v) {
        return Ok(w);
    }
    let did_you_mean = nearest(v, allowed)
        .map(|w| format!(" (did you mean `{w}`?)"))
        .unwrap_or_default();
    Err(ctx.err(
        n.line,
        format!(
            "{what} must be {}, not `{}`{did_you_mean}",
            backticked(allowed, " or "),
            short(v)
        ),
    ))
}

/// A list of strings; a single string is accepted as a list of one.
pub fn str_list(ctx: &Ctx<'_>, n: &Node, key: &str) -> Result<Vec<(String, usize)>, ConfigError> {
    match &n.v {
        Value::Scalar(s, _) => Ok(vec![(s.clone(), n.line)]),
        Value::Seq(items) => items
            .iter()
            .map(|i| match &i.v {
                Value::Scalar(s, _) => Ok((s.clone(), i.line)),
                _ => Err(ctx.err(
                    i.line,
                    format!("items of `{key}` must be strings, not {}", kind(i)),
                )),
            })
            .collect(),
        _ => Err(ctx.err(
            n.line,
            format!("`{key}` must be a list of strings, not {}", kind(n)),
        )),
    }
}

/// The items of a list (none when absent), or an error naming `key`.
pub fn seq<'n>(ctx: &Ctx<'_>, n: Option<&'n Node>, key: &str) -> Result<&'n [Node], ConfigError> {
    match n {
        None => Ok(&[]),
        Some(Node {
            v: Value::Seq(items),
            ..
        }) => Ok(items),
        Some(n) => Err(ctx.err(
            n.line,
            format!(
                "`{key}` must be a list (each item starting with `- `), not {}",
                kind(n)
            ),
        )),
    }
}

/// Parses `text` into a tree of nodes with line numbers; `None` for an empty document.
/// Refuses anchors and aliases, more than one document, deep nesting and files over 4 MiB.
pub fn load(text: &str, ctx: &Ctx<'_>) -> Result<Option<Node>, ConfigError> {
    if text.len() > MAX_TEXT {
        return Err(ConfigError::invalid(
            ctx.file,
            None,
            "file larger than 4 MiB",
        ));
    }
    let mut events = Events::default();
    let mut parser = Parser::new_from_str(text);
    if let Err(e) = parser.load(&mut events, true) {
        let line = e.marker().line();
        return Err(ctx.err(
            line,
            format!("invalid YAML: {}{}", e.info(), yaml_hint(text, line)),
        ));
    }
    if let Some((_, line)) = events
        .0
        .iter()
        .filter(|(e, _)| matches!(e, Event::DocumentStart))
        .nth(1)
    {
        return Err(ctx.err(
            *line,
            "only one YAML document is allowed (remove the second `---`)",
        ));
    }
    // Skip StreamStart / DocumentStart; an empty stream is an empty file.
    let body: Vec<(Event, usize)> = events
        .0
        .into_iter()
        .filter(|(e, _)| {
            !matches!(
                e,
                Event::StreamStart
                    | Event::StreamEnd
                    | Event::DocumentStart
                    | Event::DocumentEnd
                    | Event::Nothing
            )
        })
        .collect();
    if body.is_empty() {
        return Ok(None);
    }
    let mut tree = Tree {
        events: &body,
        pos: 0,
    };
    let root = tree.node(ctx, 0)?;
    if matches!(root.v, Value::Null) {
        return Ok(None);
    }
    Ok(Some(root))
}
