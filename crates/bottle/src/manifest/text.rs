//! Text helpers of manifest messages: serde error wording, did-you-mean, and the line a key,
//! value or variable is on.

/// Turn a serde_yaml error into a message without the trailing location, plus a did-you-mean.
pub(super) fn describe_serde_error(e: &serde_yaml::Error) -> String {
    let mut msg = e.to_string();
    // serde_yaml appends " at line X column Y"; the line is reported separately.
    if let Some(i) = msg.find(" at line ") {
        msg.truncate(i);
    }
    if let Some(s) = did_you_mean(&msg) {
        msg.push_str(&format!(" (did you mean `{s}`?)"));
    }
    msg
}

/// For "unknown field `x`, expected one of `a`, `b`" (and variants), the nearest candidate.
pub fn did_you_mean(msg: &str) -> Option<String> {
    let kind = if msg.starts_with("unknown field") || msg.contains("unknown field `") {
        "field"
    } else if msg.contains("unknown variant `") {
        "variant"
    } else {
        return None;
    };
    let marker = format!("unknown {kind} `");
    let start = msg.find(&marker)? + marker.len();
    let end = start + msg[start..].find('`')?;
    let bad = &msg[start..end];
    let rest = &msg[end + 1..];
    let candidates: Vec<&str> = rest.split('`').skip(1).step_by(2).collect();
    nearest(bad, &candidates).map(str::to_string)
}

/// The candidate closest to `word` by edit distance, if it is close enough.
pub fn nearest<'a>(word: &str, candidates: &[&'a str]) -> Option<&'a str> {
    let w = word.to_ascii_lowercase();
    candidates
        .iter()
        .map(|c| (levenshtein(&w, &c.to_ascii_lowercase()), *c))
        .filter(|(d, c)| *d <= (c.len().max(w.len()) / 3).max(2))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

fn levenshtein(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.iter().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != cb);
            cur[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

/// 1-based line of the first `key:` (at any indentation).
pub(super) fn key_line(text: &str, key: &str) -> Option<usize> {
    text.lines()
        .position(|l| {
            let t = l.trim_start().trim_start_matches("- ");
            t.strip_prefix(key)
                .is_some_and(|r| r.trim_start().starts_with(':'))
                || t.strip_prefix(&format!("\"{key}\""))
                    .is_some_and(|r| r.trim_start().starts_with(':'))
        })
        .map(|i| i + 1)
}

/// 1-based line holding `key: value` or `- value`.
pub(super) fn value_line(text: &str, key: &str, value: &str) -> Option<usize> {
    text.lines()
        .position(|l| {
            let t = l.trim_start();
            (t.contains(key) || key == "-") && (t.contains(value)) && !t.starts_with('#')
        })
        .map(|i| i + 1)
}

/// 1-based line where a host variable is mentioned.
pub(super) fn var_line(text: &str, var: &str) -> Option<usize> {
    text.lines()
        .position(|l| {
            let code = l.split('#').next().unwrap_or("");
            code.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .any(|w| w == var)
        })
        .map(|i| i + 1)
}
