//! The one did-you-mean of bottle: routes.yaml, the allowlist tools and the launcher's
//! manifest all suggest with this rule, so a typo gets the same help everywhere.
//!
//! The rule: words are compared case-insensitively with `-` and `_` alike. A known word is
//! suggested when
//! - the typed word (3 or more characters) is the start of it (`max_pack` → `max_pack_bytes`;
//!   the shortest such word wins), or else
//! - it is within `max(1, n / 3)` edits, `n` the length of the longer of the two words, where
//!   an edit inserts, deletes or replaces one character or swaps two neighbours (`imgae` →
//!   `image` is one edit). The nearest wins; on a tie, the first in `known`.

/// Lower case, `-` as `_`: how words are compared.
fn fold(word: &str) -> Vec<char> {
    word.chars()
        .map(|c| {
            if c == '-' {
                '_'
            } else {
                c.to_ascii_lowercase()
            }
        })
        .collect()
}

/// Edit distance with adjacent swaps (optimal string alignment).
pub fn edit_distance(a: &str, b: &str) -> usize {
    distance(&fold(a), &fold(b))
}

fn distance(a: &[char], b: &[char]) -> usize {
    // Three rows: the one before last is needed for swaps.
    let mut before: Vec<usize> = vec![0; b.len() + 1];
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for i in 1..=a.len() {
        let mut cur = vec![i; b.len() + 1];
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut d = (prev[j - 1] + cost).min(prev[j] + 1).min(cur[j - 1] + 1);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                d = d.min(before[j - 2] + 1);
            }
            cur[j] = d;
        }
        before = std::mem::replace(&mut prev, cur);
    }
    prev[b.len()]
}

/// The known word `word` was most likely meant to be, by the rule above; `None` when no
/// known word is near enough (then list them all instead).
pub fn nearest<'k>(word: &str, known: &[&'k str]) -> Option<&'k str> {
    let w = fold(word);
    if w.len() >= 3 {
        let prefixed = known
            .iter()
            .filter(|k| {
                let k = fold(k);
                k.len() > w.len() && k.starts_with(&w)
            })
            .min_by_key(|k| k.len());
        if let Some(k) = prefixed {
            return Some(k);
        }
    }
    known
        .iter()
        .map(|k| {
            let kf = fold(k);
            let limit = (w.len().max(kf.len()) / 3).max(1);
            (distance(&w, &kf), limit, *k)
        })
        .filter(|(d, limit, _)| d <= limit)
        .min_by_key(|(d, _, _)| *d)
        .map(|(_, _, k)| k)
}

/// ` (did you mean `x`?)` for the nearest known word, or ` (known: `a`, `b`)` listing them
/// all when none is near: the tail of an "unknown ..." message.
pub fn hint(word: &str, known: &[&str], what: &str) -> String {
    match nearest(word, known) {
        Some(k) => format!(" (did you mean `{k}`?)"),
        None => format!(" ({what}: {})", backticked(known, ", ")),
    }
}

/// `` `a`, `b` `` (with `sep` between).
pub fn backticked(words: &[&str], sep: &str) -> String {
    words
        .iter()
        .map(|w| format!("`{w}`"))
        .collect::<Vec<_>>()
        .join(sep)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ROUTE_KEYS: &[&str] = &[
        "host",
        "paths",
        "methods",
        "auth",
        "tls_passthrough",
        "allow_cleartext",
    ];

    #[test]
    fn distance_counts_a_swap_as_one_edit() {
        assert_eq!(edit_distance("imgae", "image"), 1);
        assert_eq!(edit_distance("baerer", "bearer"), 1);
        assert_eq!(edit_distance("abc", "abc"), 0);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("Token-Env", "token_env"), 0);
    }

    #[test]
    fn one_edit_is_always_near_even_for_short_words() {
        assert_eq!(nearest("hots", ROUTE_KEYS), Some("host"));
        assert_eq!(nearest("ath", ROUTE_KEYS), Some("auth"));
        assert_eq!(nearest("mcp", &["mcp", "action"]), Some("mcp"));
        assert_eq!(nearest("of", &["off", "warn"]), Some("off"));
    }

    #[test]
    fn the_limit_grows_with_length_a_third_of_the_longer_word() {
        // 15 characters: up to 5 edits.
        assert_eq!(nearest("tls_pssthrgh", ROUTE_KEYS), Some("tls_passthrough"));
        // 4 characters: 1 edit, not 2.
        assert_eq!(nearest("hxsx", ROUTE_KEYS), None);
        // 6 characters: 2 edits.
        assert_eq!(nearest("pahts", ROUTE_KEYS), Some("paths"));
        assert_eq!(nearest("mthds", ROUTE_KEYS), Some("methods"));
    }

    #[test]
    fn case_and_dashes_do_not_count() {
        assert_eq!(nearest("Host", ROUTE_KEYS), Some("host"));
        assert_eq!(
            nearest("TLS-PASSTHROUGH", ROUTE_KEYS),
            Some("tls_passthrough")
        );
        assert_eq!(
            nearest("ro_hooks", &["rw", "ro-hooks", "hide-hooks"]),
            Some("ro-hooks")
        );
    }

    #[test]
    fn a_prefix_of_three_or_more_names_the_shortest_word_it_starts() {
        let git = &["max_pack_bytes", "max_refs", "max_object_bytes"];
        assert_eq!(nearest("max_pack", git), Some("max_pack_bytes"));
        assert_eq!(nearest("max", git), Some("max_refs"));
        assert_eq!(nearest("ro", &["rw", "ro-hooks"]), Some("rw"));
        assert_eq!(nearest("r", &["ro-hooks"]), None);
    }

    #[test]
    fn far_words_get_no_suggestion_but_the_list() {
        assert_eq!(nearest("xyzzy", ROUTE_KEYS), None);
        assert_eq!(nearest("zzzzzz", &["image", "name"]), None);
        assert_eq!(nearest("", ROUTE_KEYS), None);
        assert_eq!(
            hint("zzzz", &["block", "log"], "known"),
            " (known: `block`, `log`)"
        );
        assert_eq!(
            hint("blok", &["block", "log"], "known"),
            " (did you mean `block`?)"
        );
    }

    #[test]
    fn ties_go_to_the_first_known_word() {
        assert_eq!(nearest("bar", &["baz", "bat"]), Some("baz"));
        assert_eq!(nearest("bar", &["bat", "baz"]), Some("bat"));
    }
}
