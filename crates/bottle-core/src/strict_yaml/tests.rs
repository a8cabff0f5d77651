//! The reader's refusals and the writer's round trip: whatever a tree holds, the text
//! written for it reads back as the same tree, one scalar per line, nothing injected.

use std::path::Path;

use super::*;

fn read(text: &str) -> Option<Node> {
    load(text, &Ctx::new(Path::new("t.yaml"))).unwrap_or_else(|e| panic!("{e}\n{text}"))
}

/// What a scalar means to a schema: only a plain one can be a bool or a number.
fn meaning(s: &str, plain: bool) -> &'static str {
    match (plain, s) {
        (true, "true" | "false") => "bool",
        (true, s) if s.bytes().all(|b| b.is_ascii_digit() || b == b'_') => "number",
        _ => "string",
    }
}

/// Values and what they mean equal, lines ignored.
fn same(a: &Node, b: &Node) -> bool {
    match (&a.v, &b.v) {
        (Value::Null, Value::Null) => true,
        (Value::Scalar(x, px), Value::Scalar(y, py)) => {
            x == y && meaning(x, *px) == meaning(y, *py)
        }
        (Value::Seq(x), Value::Seq(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(a, b)| same(a, b))
        }
        (Value::Map(x), Value::Map(y)) => {
            x.len() == y.len()
                && x.iter()
                    .zip(y)
                    .all(|((ka, _, a), (kb, _, b))| ka == kb && same(a, b))
        }
        _ => false,
    }
}

fn round_trip(n: &Node) -> String {
    let text = n.to_yaml();
    let back = read(&text).unwrap_or(Node {
        v: Value::Null,
        line: 0,
    });
    assert!(same(n, &back), "written:\n{text}\nread back: {back:?}");
    text
}

/// Strings an agent (or a careless manifest) could put in a value to change the file's
/// meaning when it is written: new keys, comments, anchors, documents, other kinds.
const HOSTILE: &[&str] = &[
    "a\nauth: {scheme: bearer, token_env: X}",
    "x # comment",
    "x\r\n- y",
    "*alias",
    "&anchor v",
    "---",
    "...",
    "- item",
    "key: value",
    "\"quoted\"",
    "'single'",
    "back\\slash\\n",
    "tab\there",
    "nul\0byte",
    "line\u{2028}separator",
    "bom\u{feff}",
    "\u{85}next-line",
    "true",
    "False",
    "off",
    "yes",
    "null",
    "~",
    "",
    " leading space",
    "trailing space ",
    "123",
    "0x1F",
    "1e3",
    ".inf",
    "{a: b}",
    "[a, b]",
    "!tag v",
    "%directive",
    "@at",
    "`tick",
    "|",
    ">",
    "?",
    "ünïcødé",
    "日本語",
];

#[test]
fn hostile_strings_are_written_so_they_read_back_as_the_same_string() {
    for s in HOSTILE {
        let tree = Node::map(
            1,
            vec![
                ("value", Node::str(1, *s)),
                (
                    "list",
                    Node::seq(1, vec![Node::str(1, *s), Node::str(1, "ok")]),
                ),
                ("after", Node::str(1, "still-here")),
            ],
        );
        let text = round_trip(&tree);
        // One line per scalar: no value spilled onto a line of its own.
        assert_eq!(text.lines().count(), 5, "{s:?}:\n{text}");
    }
}

#[test]
fn hostile_keys_round_trip_too() {
    for s in HOSTILE.iter().filter(|s| !s.is_empty()) {
        round_trip(&Node::map(1, vec![(*s, Node::str(1, "v"))]));
    }
}

#[test]
fn bools_and_numbers_stay_plain_and_strings_that_look_like_them_stay_strings() {
    let tree = Node::map(
        1,
        vec![
            ("flag", Node::bool(1, true)),
            ("off", Node::bool(1, false)),
            ("size", Node::u64(1, 104_857_600)),
            ("text_true", Node::str(1, "true")),
            ("text_num", Node::str(1, "42")),
        ],
    );
    let text = round_trip(&tree);
    assert!(text.contains("flag: true\n"), "{text}");
    assert!(text.contains("size: 104857600\n"), "{text}");
    assert!(text.contains("\"off\": false\n"), "{text}");
    assert!(text.contains("text_true: \"true\"\n"), "{text}");
    assert!(text.contains("text_num: \"42\"\n"), "{text}");
}

#[test]
fn a_plain_scalar_that_is_not_a_bool_or_number_is_quoted_and_reads_back_as_a_string() {
    let sneaky = Node {
        v: Value::Scalar("true\nx: 1".into(), true),
        line: 1,
    };
    let text = Node::map(1, vec![("k", sneaky)]).to_yaml();
    let back = read(&text).unwrap();
    let Value::Map(e) = &back.v else { panic!() };
    assert_eq!(e.len(), 1, "{text}");
    assert_eq!(e[0].2.v, Value::Scalar("true\nx: 1".into(), false));
}

#[test]
fn nested_blocks_and_empty_collections_round_trip() {
    let tree = Node::map(
        1,
        vec![
            (
                "routes",
                Node::seq(
                    1,
                    vec![
                        Node::map(
                            1,
                            vec![
                                ("host", Node::str(1, "api.example.com:8443")),
                                ("paths", Node::str_seq(1, &["/v1/**".into()])),
                                (
                                    "auth",
                                    Node::map(
                                        1,
                                        vec![
                                            ("scheme", Node::str(1, "bearer")),
                                            ("token_env", Node::str(1, "BOTTLE_TOKEN_0")),
                                        ],
                                    ),
                                ),
                            ],
                        ),
                        Node::map(1, vec![("host", Node::str(1, "b.example"))]),
                    ],
                ),
            ),
            ("empty_list", Node::seq(1, vec![])),
            ("empty_map", Node::map(1, vec![])),
            (
                "nested",
                Node::seq(1, vec![Node::seq(1, vec![Node::str(1, "x")])]),
            ),
            (
                "nothing",
                Node {
                    v: Value::Null,
                    line: 1,
                },
            ),
        ],
    );
    let text = round_trip(&tree);
    assert!(text.contains("token_env: BOTTLE_TOKEN_0\n"), "{text}");
}

#[test]
fn an_unknown_key_gets_the_shared_suggestion_or_the_list() {
    let ctx = Ctx::new(Path::new("t.yaml"));
    let n = read("acton: block\n").unwrap();
    let e = Map::new(&ctx, &n, "dlp", &["action", "mcp"]).err().unwrap();
    assert_eq!(
        e.to_string(),
        "t.yaml:1: unknown key `acton` in dlp (did you mean `action`?)"
    );
    let n = read("a: 1\nqqqqqq: 2\n").unwrap();
    let e = Map::new(&ctx, &n, "dlp", &["a", "mcp"]).err().unwrap();
    assert_eq!(
        e.to_string(),
        "t.yaml:2: unknown key `qqqqqq` in dlp (known keys: `a`, `mcp`)"
    );
}

#[test]
fn a_word_outside_the_allowed_ones_names_them_and_the_nearest() {
    let ctx = Ctx::new(Path::new("t.yaml"));
    let n = read("v: wran\n").unwrap();
    let Value::Map(e) = &n.v else { panic!() };
    let err = word(&ctx, &e[0].2, "`v`", &["block", "warn", "off"])
        .err()
        .unwrap();
    assert_eq!(
        err.to_string(),
        "t.yaml:1: `v` must be `block` or `warn` or `off`, not `wran` (did you mean `warn`?)"
    );
    let n = read("v: [a]\n").unwrap();
    let Value::Map(e) = &n.v else { panic!() };
    let err = word(&ctx, &e[0].2, "`v`", &["block"]).err().unwrap();
    assert!(err.to_string().contains("not a list"), "{err}");
    assert_eq!(
        word(&ctx, &Node::str(3, "off"), "`v`", &["off"]).unwrap(),
        "off"
    );
}

#[test]
fn anchors_aliases_and_second_documents_are_refused() {
    let ctx = Ctx::new(Path::new("t.yaml"));
    for t in [
        "a: &x 1\nb: *x\n",
        "a: 1\n---\nb: 2\n",
        "a: [&x 1]\n",
        "a: 1\na: 2\n",
    ] {
        assert!(load(t, &ctx).is_err(), "{t}");
    }
}

#[test]
fn tags_are_refused_wherever_they_are() {
    let ctx = Ctx::new(Path::new("t.yaml"));
    for (t, line) in [
        ("a: !!str true\n", "t.yaml:1:"),
        ("a: 1\nb: !!binary aGk=\n", "t.yaml:2:"),
        ("a: !custom [1]\n", "t.yaml:1:"),
        ("a: 1\nb: !!map {c: d}\n", "t.yaml:2:"),
        ("--- !!map\na: 1\n", "t.yaml:"),
    ] {
        let e = load(t, &ctx)
            .err()
            .unwrap_or_else(|| panic!("accepted {t:?}"));
        let e = e.to_string();
        assert!(e.starts_with(line) && e.contains("tags"), "{t:?}: {e}");
    }
}

/// A small deterministic generator (xorshift): no dependency, same cases every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

fn random_text(rng: &mut Rng) -> String {
    const ALPHABET: &[char] = &[
        'a', 'Z', '0', '9', ' ', ':', '#', '-', '?', '*', '&', '!', '%', '@', '`', '|', '>', '\'',
        '"', '\\', '\n', '\r', '\t', '{', '}', '[', ']', ',', '.', '~', '\u{0}', '\u{85}',
        '\u{2028}', '\u{feff}', 'é', '日',
    ];
    (0..rng.below(8))
        .map(|_| ALPHABET[rng.below(ALPHABET.len())])
        .collect()
}

fn random_tree(rng: &mut Rng, depth: usize) -> Node {
    match if depth > 3 {
        rng.below(3)
    } else {
        rng.below(6)
    } {
        0 => Node::str(1, random_text(rng)),
        1 => Node::bool(1, rng.below(2) == 0),
        2 => Node::u64(1, rng.next() >> rng.below(64)),
        3 => Node::seq(
            1,
            (0..rng.below(4))
                .map(|_| random_tree(rng, depth + 1))
                .collect(),
        ),
        _ => {
            let mut keys: Vec<String> = (0..rng.below(4)).map(|_| random_text(rng)).collect();
            keys.sort();
            keys.dedup();
            Node {
                v: Value::Map(
                    keys.into_iter()
                        .map(|k| (k, 1, random_tree(rng, depth + 1)))
                        .collect(),
                ),
                line: 1,
            }
        }
    }
}

#[test]
fn random_trees_round_trip() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for _ in 0..3000 {
        let tree = Node::map(1, vec![("root", random_tree(&mut rng, 0))]);
        round_trip(&tree);
    }
}
