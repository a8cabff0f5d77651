//! Deciding which rule matches are findings (the scoring written down in the module doc),
//! plus the obfuscated-word check.

use super::encoded;
use super::norm::{CODE, HIDDEN, OBFUSCATED, QUOTE};
use super::rules::{rules, Class, Strength, MAX_MATCH};
use super::scanner::Scanner;
use super::{ContentKind, InjectionFinding, HIDDEN_ID, OBFUSCATED_ID};

/// Text before a match searched for words of a page about injection.
const CUE_BEFORE: usize = 400;
/// Findings kept per body at most.
pub(crate) const MAX_FINDINGS: usize = 256;
/// Longest sentence looked at around a match.
const SENTENCE: usize = 300;

/// Judges matches whose last byte lies in normalised positions `[from, to)`.
pub(crate) fn judge(s: &mut Scanner, from: usize, to: usize) {
    let base = s.norm.base;
    let scan_from = from.saturating_sub(MAX_MATCH).max(base);
    let end = s.norm.end();
    let region = &s.norm.lower[scan_from - base..end - base];
    let rs = rules();
    let mut found: Vec<(usize, usize, &'static str)> = Vec::new();
    let topic = !s.doc_page && rs.topic.is_match(region);
    s.doc_page |= topic;
    let cjk = s.norm.non_ascii_from(scan_from) && super::rules::has_cjk(region);
    let mut sets = vec![(&rs.set, &rs.rules)];
    if cjk {
        sets.push((&rs.cjk_set, &rs.cjk_rules));
    }
    let region = &s.norm.lower[scan_from - base..end - base];
    for (set, set_rules) in sets {
        let wanted = |i: usize| {
            set_rules[i].class != Class::ToolPoisoning || s.kind == ContentKind::ToolDescription
        };
        for (i, a, b) in set.matches(region, wanted) {
            let rule = &set_rules[i];
            let (start, stop) = (scan_from + a, scan_from + b);
            if stop <= from || stop > to {
                continue;
            }
            if let Some(id) = decide(s, rule.class, rule.strength, start, stop) {
                found.push((start, stop, id));
            }
        }
    }
    obfuscated_words(s, from, to, &mut found);
    for (start, stop, id) in found {
        push(s, start, stop, id);
    }
    if s.depth < super::scanner::MAX_DEPTH {
        for (start, stop) in encoded::find(s, from, to) {
            push(s, start, stop, super::ENCODED);
        }
    }
}

fn push(s: &mut Scanner, start: usize, stop: usize, detector: &'static str) {
    let (Some(a), Some(b)) = (s.norm.orig_at(start), s.norm.orig_at(stop - 1)) else {
        return;
    };
    let f = InjectionFinding {
        detector,
        offset: a,
        len: b + 1 - a,
    };
    // Bounded: a body full of attacks costs no more than a clean one (the first finding is
    // what blocks; the rest only illustrate).
    if s.findings.len() >= MAX_FINDINGS {
        return;
    }
    if !s
        .findings
        .iter()
        .any(|g| g.detector == f.detector && g.offset == f.offset)
    {
        s.findings.push(f);
    }
}

fn span_flags(s: &Scanner, start: usize, stop: usize) -> u8 {
    let b = s.norm.base;
    s.norm.flags[start - b..stop - b]
        .iter()
        .fold(0, |acc, f| acc | f)
}

/// The scoring: hidden always fires; obfuscation always fires; in tool descriptions strong
/// and poisoning matches fire; everything else is scored (module doc, "The scoring").
fn decide(
    s: &Scanner,
    class: Class,
    strength: Strength,
    start: usize,
    stop: usize,
) -> Option<&'static str> {
    let flags = span_flags(s, start, stop);
    let attribute = flags & HIDDEN != 0 && flags & super::norm::ATTRIBUTE != 0;
    if s.all_hidden || (flags & HIDDEN != 0 && !attribute) {
        return Some(HIDDEN_ID);
    }
    if flags & OBFUSCATED != 0 {
        return Some(OBFUSCATED_ID);
    }
    // Text addressed to a model by design: any match but a persona or standing order is an
    // attack however it is quoted; imperative but honest wording ("Always include the base
    // branch") is scored like prose.
    if s.kind == ContentKind::ToolDescription && strength != Strength::Persona {
        return Some(class.detector());
    }
    let (sentence_start, sentence_end) = sentence(s, start, stop);
    let rs = rules();
    let lower = |a: usize, b: usize| &s.norm.lower[a - s.norm.base..b - s.norm.base];
    let open_quote = quote_opened_at(lower(sentence_start, start)).map(|i| sentence_start + i);
    let mut score: i32 = match strength {
        Strength::Strong => 2,
        Strength::Weak | Strength::Persona => 1,
        Strength::Addressed => 3,
        Strength::Critical => 4,
    };
    if attribute && strength == Strength::Strong {
        score += 1;
    }
    let before = start.saturating_sub(40).max(s.norm.base);
    if rs.mention.is_match(lower(before, start)) {
        score -= 2;
    }
    let doc_near = strength != Strength::Addressed && {
        let cue_from = start.saturating_sub(CUE_BEFORE).max(s.norm.base);
        has_doc_cue(lower(cue_from, sentence_end))
    };
    // A quotation, code block or open quote is a mention only where something says so: words
    // of a page about injection near it or anywhere on the page, or a mention verb right
    // before the quote (`the message said "...`). Quoting alone switches nothing off.
    let code_or_quote = flags & (CODE | QUOTE) != 0;
    let quote_mention = open_quote.is_some_and(|q| {
        let from = q.saturating_sub(40).max(s.norm.base);
        rs.mention.is_match(lower(from, q + 1))
    });
    if attribute && open_quote.is_some() {
        score -= 2;
    }
    let example =
        (code_or_quote || open_quote.is_some()) && (s.doc_page || doc_near || quote_mention);
    // In an example an address to the AI is part of what is shown.
    if !example
        && strength != Strength::Addressed
        && rs.address.is_match(lower(sentence_start, start))
    {
        score += 2;
    }
    if doc_near || example {
        score -= 2;
    }
    let id = if attribute {
        HIDDEN_ID
    } else {
        class.detector()
    };
    (score >= 2).then_some(id)
}

/// Bounds of the sentence around `[start, stop)` in what is kept.
fn sentence(s: &Scanner, start: usize, stop: usize) -> (usize, usize) {
    let base = s.norm.base;
    let text = &s.norm.lower;
    let lo = start.saturating_sub(SENTENCE).max(base);
    let mut a = start;
    while a > lo {
        let c = text[a - 1 - base];
        if c == b'\n'
            || ((c == b' ') && a >= 2 + base && matches!(text[a - 2 - base], b'.' | b'!' | b'?'))
        {
            break;
        }
        a -= 1;
    }
    let hi = (stop + SENTENCE).min(s.norm.end());
    let mut b = stop;
    while b < hi {
        let c = text[b - base];
        if c == b'\n' || matches!(c, b'.' | b'!' | b'?') {
            break;
        }
        b += 1;
    }
    (a, b)
}

/// Where the quotation left open by the text from the sentence start began (index into
/// `before`), if one is open.
fn quote_opened_at(before: &[u8]) -> Option<usize> {
    let mut double = None;
    let mut singles: Vec<usize> = Vec::new();
    for (i, &c) in before.iter().enumerate() {
        match c {
            b'"' => double = if double.is_some() { None } else { Some(i) },
            b'\'' => {
                let prev = if i == 0 { b' ' } else { before[i - 1] };
                let next = before.get(i + 1).copied().unwrap_or(b' ');
                if matches!(prev, b' ' | b'\n' | b'(' | b':') {
                    singles.push(i);
                } else if !next.is_ascii_alphanumeric() {
                    singles.pop();
                }
            }
            _ => {}
        }
    }
    // The earlier of the open quotes holds the match.
    match (double, singles.first().copied()) {
        (Some(d), Some(q)) => Some(d.min(q)),
        (d, q) => d.or(q),
    }
}

/// A word of the sensitive vocabulary spelled with an invisible control or a look-alike
/// letter among ordinary ones (`ig\u{200b}nore`, `sуstem` with a Cyrillic у).
fn obfuscated_words(
    s: &Scanner,
    from: usize,
    to: usize,
    found: &mut Vec<(usize, usize, &'static str)>,
) {
    if !s.norm.obfuscated_from(from) {
        return;
    }
    let base = s.norm.base;
    let flags = &s.norm.flags[from - base..to - base];
    let text = &s.norm.lower;
    let is_word = |c: u8| c.is_ascii_alphanumeric();
    let mut last_word_end = 0;
    for (i, f) in flags.iter().enumerate() {
        let p = from + i;
        if f & OBFUSCATED == 0 || p < last_word_end || !is_word(text[p - base]) {
            continue;
        }
        let mut a = p;
        while a > base && is_word(text[a - 1 - base]) && p - a < 40 {
            a -= 1;
        }
        let mut b = p + 1;
        while b < s.norm.end() && is_word(text[b - base]) && b - p < 40 {
            b += 1;
        }
        last_word_end = b;
        let word_flags = &s.norm.flags[a - base..b - base];
        let mixed = word_flags.iter().any(|f| f & OBFUSCATED == 0);
        if mixed && rules().sensitive.is_match(&text[a - base..b - base]) {
            found.push((a, b, OBFUSCATED_ID));
        }
    }
}

/// Words of a page about injection, as words of prose: not inside a URL, path or domain
/// (`https://attacker.example` is no example).
fn has_doc_cue(text: &[u8]) -> bool {
    rules().doc_cue.find_iter(text).any(|m| {
        let before = m.start().checked_sub(1).map(|i| text[i]);
        let after = text.get(m.end()).copied();
        let glued =
            |c: Option<u8>| matches!(c, Some(b'/' | b'.' | b'@' | b'_' | b'-' | b'=' | b'?'));
        let domain_dot = after == Some(b'.')
            && text
                .get(m.end() + 1)
                .is_some_and(|c| c.is_ascii_alphanumeric());
        !(glued(before) || domain_dot || (after != Some(b'.') && glued(after)))
    })
}
