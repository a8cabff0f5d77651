//! Every manifest the documentation shows must load: the bundled examples (also with their
//! commented-out keys switched on) and each ```yaml block of README.md and crates/bottle's
//! README. Docs cannot drift back to an unsafe example (e.g. a git token on an API route that
//! allows every method) without this test failing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use bottle::manifest;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Every host variable the docs mention, set to dummy values (never real secrets).
fn host_env() -> BTreeMap<String, String> {
    [
        "USER",
        "GITHUB_TOKEN",
        "GH_READ_TOKEN",
        "NPM_TOKEN",
        "OPENAI_API_KEY",
        "INTERNAL_TOKEN",
    ]
    .iter()
    // Distinct values: equal values would make two variables one credential.
    .map(|k| (k.to_string(), format!("dummy-value-{k}")))
    .collect()
}

/// The ```yaml fenced blocks of a markdown file, with the line each starts on.
fn yaml_blocks(md: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut cur: Option<(usize, String)> = None;
    for (i, line) in md.lines().enumerate() {
        match (&mut cur, line.trim_start()) {
            (None, l) if l.starts_with("```yaml") => cur = Some((i + 1, String::new())),
            (Some(_), l) if l.starts_with("```") => out.extend(cur.take()),
            (Some((_, text)), _) => {
                text.push_str(line);
                text.push('\n');
            }
            (None, _) => {}
        }
    }
    out
}

/// `# key: ...` and `#   - item` lines uncommented (prose comments stay).
fn uncomment(text: &str) -> String {
    let mut out = String::new();
    for line in text.lines() {
        let indent = line.len() - line.trim_start().len();
        let body = line.trim_start();
        let code = body.strip_prefix("# ").map(|c| {
            let t = c.trim_start();
            let key = t.strip_prefix("- ").unwrap_or(t);
            let is_key = key.split_once(':').is_some_and(|(k, _)| {
                !k.is_empty() && k.chars().all(|c| c.is_ascii_lowercase() || c == '_')
            });
            let is_item = ["- {", "- [", "- \""].iter().any(|p| t.starts_with(p));
            (is_key || is_item, c)
        });
        match code {
            Some((true, c)) => {
                out.push_str(&line[..indent]);
                out.push_str(c);
            }
            _ => out.push_str(line),
        }
        out.push('\n');
    }
    out
}

#[test]
fn bundled_examples_load() {
    let dir = root().join("examples");
    let mut n = 0;
    for e in std::fs::read_dir(&dir).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "yaml" || x == "yml") {
            manifest::load(&p, &host_env()).unwrap_or_else(|e| panic!("{e}"));
            let text = std::fs::read_to_string(&p).unwrap();
            let on = uncomment(&text);
            assert_ne!(on, text, "{}: nothing commented out to check", p.display());
            let l = manifest::parse(&on, &p, &host_env())
                .unwrap_or_else(|e| panic!("{} with comments switched on: {e}\n{on}", p.display()));
            // The commented git example is complete once switched on (rules included).
            assert!(l.manifest.git.iter().all(|g| !g.rules.is_empty()), "{on}");
            assert!(!on.contains("\ngit:") || !l.manifest.git.is_empty(), "{on}");
            n += 1;
        }
    }
    assert!(n >= 1, "no example manifest found in {}", dir.display());
}

#[test]
fn readme_manifests_load() {
    let mut n = 0;
    for md in ["README.md", "crates/bottle/README.md"] {
        let path = root().join(md);
        let text = std::fs::read_to_string(&path).unwrap();
        for (line, block) in yaml_blocks(&text) {
            manifest::parse(&block, &path, &host_env())
                .unwrap_or_else(|e| panic!("{md}: yaml block at line {line}: {e}"));
            n += 1;
        }
    }
    assert!(
        n >= 2,
        "expected manifest examples in the READMEs, found {n}"
    );
}

#[test]
fn the_old_readme_example_is_refused() {
    // README.md before issue 11: the git token on an API route with no `methods:`.
    let old = "name: demo\nimage: my-agent:latest\nroutes:\n  - host: api.github.com\n    paths: [\"/repos/acme/**\"]\n    auth: {scheme: bearer, token_from: GITHUB_TOKEN}\ngit:\n  - name: demo\n    upstream: https://github.com/acme/demo.git\n    auth: {scheme: basic, username: x-access-token, token_from: GITHUB_TOKEN}\n    rules: [{ref: \"refs/heads/agent/**\", allow: [create, update]}]\n";
    let e = manifest::parse(old, Path::new("old.yaml"), &host_env())
        .unwrap_err()
        .to_string();
    assert!(e.starts_with("old.yaml:4: route `api.github.com`"), "{e}");
    assert!(!e.contains("dummy-value"), "a value is never echoed: {e}");
}
