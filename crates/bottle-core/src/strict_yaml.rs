//! A small strict YAML reader with line numbers, on yaml-rust2's marked events: nodes keep
//! their line, mappings refuse unknown keys with the nearest known one, anchors, aliases and
//! second documents are refused. `routes.yaml` (`routes_parse`) is read with it.

use std::path::Path;

use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::{Marker, TScalarStyle};

use crate::error::ConfigError;

const MAX_TEXT: usize = 4 * 1024 * 1024;
const MAX_DEPTH: usize = 32;

/// A hint for the commonest YAML mistake here: an unquoted value starting with `*` (an alias).
pub(crate) fn yaml_hint(text: &str, line: usize) -> String {
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

#[derive(Debug)]
pub(crate) enum Value {
    Null,
    Scalar(String, bool),
    Seq(Vec<Node>),
    Map(Vec<(String, usize, Node)>),
}

#[derive(Debug)]
pub(crate) struct Node {
    pub(crate) v: Value,
    pub(crate) line: usize,
}

#[derive(Default)]
struct Events(Vec<(Event, usize)>);

impl MarkedEventReceiver for Events {
    fn on_event(&mut self, ev: Event, mark: Marker) {
        self.0.push((ev, mark.line()));
    }
}

pub(crate) struct Ctx<'a> {
    pub(crate) file: &'a Path,
}

impl Ctx<'_> {
    pub(crate) fn err(&self, line: usize, msg: impl Into<String>) -> ConfigError {
        ConfigError::invalid(self.file, Some(line.max(1)), msg)
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
            Event::Scalar(s, style, anchor, _) => {
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
            Event::SequenceStart(anchor, _) => {
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
            Event::MappingStart(anchor, _) => {
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

pub(crate) fn levenshtein(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != *cb);
            cur.push(sub.min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}

/// The known key nearest to `key`, if it is reasonably near.
pub(crate) fn nearest<'k>(key: &str, known: &[&'k str]) -> Option<&'k str> {
    let key_l = key.to_ascii_lowercase().replace('-', "_");
    if key_l.len() >= 3 {
        if let Some(k) = known
            .iter()
            .filter(|k| k.starts_with(key_l.as_str()))
            .min_by_key(|k| k.len())
        {
            return Some(k);
        }
    }
    known
        .iter()
        .map(|k| (levenshtein(&key_l, k), *k))
        .min()
        .filter(|(d, k)| *d <= (k.len().max(key.len()) / 2).max(2))
        .map(|(_, k)| k)
}

pub(crate) fn kind(n: &Node) -> &'static str {
    match n.v {
        Value::Null => "nothing",
        Value::Scalar(..) => "a scalar",
        Value::Seq(_) => "a list",
        Value::Map(_) => "a mapping",
    }
}

pub(crate) struct Map<'n> {
    what: &'static str,
    pub(crate) line: usize,
    pub(crate) entries: &'n [(String, usize, Node)],
}

impl<'n> Map<'n> {
    pub(crate) fn new(
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
                let hint = match nearest(k, known) {
                    Some(n) => format!(" (did you mean `{n}`?)"),
                    None => format!(
                        " (known keys: {})",
                        known
                            .iter()
                            .map(|k| format!("`{k}`"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                };
                return Err(ctx.err(*line, format!("unknown key `{k}` in {what}{hint}")));
            }
        }
        Ok(Map {
            what,
            line: node.line,
            entries,
        })
    }

    pub(crate) fn get(&self, key: &str) -> Option<&'n Node> {
        self.entries
            .iter()
            .find(|(k, _, _)| k == key)
            .map(|(_, _, n)| n)
            .filter(|n| !matches!(n.v, Value::Null))
    }

    pub(crate) fn req(&self, ctx: &Ctx<'_>, key: &str) -> Result<&'n Node, ConfigError> {
        self.get(key)
            .ok_or_else(|| ctx.err(self.line, format!("{} is missing `{key}`", self.what)))
    }

    pub(crate) fn str(&self, ctx: &Ctx<'_>, key: &str) -> Result<Option<String>, ConfigError> {
        self.get(key).map(|n| scalar(ctx, n, key)).transpose()
    }

    pub(crate) fn req_str(&self, ctx: &Ctx<'_>, key: &str) -> Result<(String, usize), ConfigError> {
        let n = self.req(ctx, key)?;
        Ok((scalar(ctx, n, key)?, n.line))
    }

    pub(crate) fn bool(
        &self,
        ctx: &Ctx<'_>,
        key: &str,
        default: bool,
    ) -> Result<bool, ConfigError> {
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

    pub(crate) fn u64(&self, ctx: &Ctx<'_>, key: &str, default: u64) -> Result<u64, ConfigError> {
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

pub(crate) fn short(s: &str) -> String {
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

pub(crate) fn scalar(ctx: &Ctx<'_>, n: &Node, key: &str) -> Result<String, ConfigError> {
    match &n.v {
        Value::Scalar(s, _) => Ok(s.clone()),
        _ => Err(ctx.err(n.line, format!("`{key}` must be a string, not {}", kind(n)))),
    }
}

/// A list of strings; a single string is accepted as a list of one.
pub(crate) fn str_list(
    ctx: &Ctx<'_>,
    n: &Node,
    key: &str,
) -> Result<Vec<(String, usize)>, ConfigError> {
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

pub(crate) fn seq<'n>(
    ctx: &Ctx<'_>,
    n: Option<&'n Node>,
    key: &str,
) -> Result<&'n [Node], ConfigError> {
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
pub(crate) fn load(text: &str, ctx: &Ctx<'_>) -> Result<Option<Node>, ConfigError> {
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
