//! Writes a [`Node`] tree as block-style YAML that [`super::load`] reads back into the same
//! tree (values, kinds and plainness; lines aside). Strings are written plain only when
//! they cannot be read as anything else; every other string is double-quoted and escaped.

use super::{Node, Value};

impl Node {
    /// The tree as YAML text, ending in a newline.
    pub fn to_yaml(&self) -> String {
        let mut out = String::new();
        match &self.v {
            Value::Map(entries) if !entries.is_empty() => map(entries, 0, &mut out),
            Value::Seq(items) if !items.is_empty() => seq(items, 0, &mut out),
            _ => {
                out.push_str(&inline(self));
                out.push('\n');
            }
        }
        out
    }
}

fn pad(indent: usize, out: &mut String) {
    out.extend(std::iter::repeat_n(' ', indent));
}

fn is_block(n: &Node) -> bool {
    match &n.v {
        Value::Map(e) => !e.is_empty(),
        Value::Seq(i) => !i.is_empty(),
        _ => false,
    }
}

/// A scalar, null or empty collection on one line.
fn inline(n: &Node) -> String {
    match &n.v {
        Value::Null => "null".into(),
        // A plain string read from a file (`host: api.example.com`) stays plain when it can
        // only be read back as that string, so a file read and written again keeps its lines.
        Value::Scalar(s, true) if plain_is_safe(s, true) || plain_is_safe(s, false) => s.clone(),
        Value::Scalar(s, false) if plain_is_safe(s, false) => s.clone(),
        // A plain scalar that is not safe to write plain cannot be kept plain: quoted, it
        // reads back as a string (the schema then refuses it where it wanted a bool or number).
        Value::Scalar(s, _) => quoted(s),
        Value::Seq(_) => "[]".into(),
        Value::Map(_) => "{}".into(),
    }
}

fn map(entries: &[(String, usize, Node)], indent: usize, out: &mut String) {
    for (i, (k, _, v)) in entries.iter().enumerate() {
        if i > 0 {
            pad(indent, out);
        }
        entry(k, v, indent, out);
    }
}

fn entry(key: &str, v: &Node, indent: usize, out: &mut String) {
    out.push_str(&key_text(key));
    out.push(':');
    if is_block(v) {
        out.push('\n');
        pad(indent + 2, out);
        block(v, indent + 2, out);
    } else {
        out.push(' ');
        out.push_str(&inline(v));
        out.push('\n');
    }
}

fn block(n: &Node, indent: usize, out: &mut String) {
    match &n.v {
        Value::Map(e) => map(e, indent, out),
        Value::Seq(i) => seq(i, indent, out),
        _ => {
            out.push_str(&inline(n));
            out.push('\n');
        }
    }
}

fn seq(items: &[Node], indent: usize, out: &mut String) {
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            pad(indent, out);
        }
        out.push_str("- ");
        if is_block(item) {
            block(item, indent + 2, out);
        } else {
            out.push_str(&inline(item));
            out.push('\n');
        }
    }
}

fn key_text(k: &str) -> String {
    if plain_is_safe(k, false) {
        k.to_string()
    } else {
        quoted(k)
    }
}

/// Words some YAML reader takes for a boolean or null (YAML 1.1 included, so that no other
/// tool reading the file sees `off` as false either).
const RESERVED_WORDS: &[&str] = &[
    "true", "false", "yes", "no", "on", "off", "y", "n", "null", "nan", "inf",
];

/// Whether `s` written plain reads back as the same text. `bool_or_number`: a scalar meant
/// plain (true, false, a whole number), which must look like one; any other string must
/// not look like one (or like null), or it would change kind on the way back.
fn plain_is_safe(s: &str, bool_or_number: bool) -> bool {
    if bool_or_number {
        return matches!(s, "true" | "false")
            || (!s.is_empty() && s.len() <= 20 && s.bytes().all(|b| b.is_ascii_digit()));
    }
    let mut bytes = s.bytes();
    matches!(bytes.next(), Some(b) if b.is_ascii_alphabetic() || b == b'/')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b"_-./".contains(&b))
        && !RESERVED_WORDS.contains(&s.to_ascii_lowercase().as_str())
}

/// A double-quoted scalar: `"` and `\` escaped, every control or invisible line-breaking
/// character as `\uXXXX`, so the text stays one line whatever the value holds.
fn quoted(s: &str) -> String {
    let mut o = String::with_capacity(s.len() + 2);
    o.push('"');
    for c in s.chars() {
        match c {
            '"' => o.push_str("\\\""),
            '\\' => o.push_str("\\\\"),
            c if c.is_control() || matches!(c, '\u{2028}' | '\u{2029}' | '\u{feff}') => {
                o.push_str(&format!("\\u{:04x}", u32::from(c)));
            }
            c => o.push(c),
        }
    }
    o.push('"');
    o
}

#[cfg(test)]
mod tests {
    use super::super::{load, Ctx, Node, Value};

    /// A file in the writer's own layout, read and written again, is the same text: plain
    /// strings stay plain, quoted ones quoted, bools and numbers plain.
    #[test]
    fn read_then_written_is_the_same_text() {
        let text = "routes:\n  - host: api.github.com\n    paths:\n      - \"/repos/*\"\n    \
                    tls_passthrough: false\n    max: 42\n    word: \"true\"\n    empty: []\n";
        let ctx = Ctx::new(std::path::Path::new("t.yaml"));
        let tree = load(text, &ctx).unwrap().unwrap();
        assert_eq!(tree.to_yaml(), text);
        // Plainness is kept on the way back too: only a plain `true` is a bool.
        let again = load(&tree.to_yaml(), &ctx).unwrap().unwrap();
        let Value::Map(top) = &again.v else {
            panic!("{again:?}")
        };
        let Value::Seq(routes) = &top[0].2.v else {
            panic!()
        };
        let Value::Map(r) = &routes[0].v else {
            panic!()
        };
        assert_eq!(r[0].2.v, Value::Scalar("api.github.com".into(), true));
        assert_eq!(r[4].2.v, Value::Scalar("true".into(), false));
        // A plain scalar that could be read as something else is still quoted.
        let odd = Node {
            v: Value::Scalar("off".into(), true),
            line: 1,
        };
        assert_eq!(Node::map(1, vec![("k", odd)]).to_yaml(), "k: \"off\"\n");
    }
}
