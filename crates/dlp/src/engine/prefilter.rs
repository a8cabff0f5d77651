//! The literal prefilter: every pattern's anchors, searched with SIMD
//! packed searchers (Teddy) on long inputs and one automaton on short ones.

use crate::patterns::PatternDef;
use aho_corasick::{packed, AhoCorasick, Input, MatchKind};

/// One group of anchors: a SIMD packed searcher (Teddy) when available, an
/// Aho-Corasick automaton otherwise, or memmem for two-byte anchors.
pub(super) enum Group {
    Packed(packed::Searcher),
    Ac(AhoCorasick),
    Memmem(memchr::memmem::Finder<'static>),
}

/// The literal prefilter: anchors split into groups small enough for Teddy
/// (at most [`TEDDY_GROUP`] patterns, grouped by length so the fingerprint is long).
pub(crate) struct Prefilter {
    /// (group, global anchor index of each group pattern)
    groups: Vec<(Group, Vec<usize>)>,
    /// All anchors in one automaton: one pass is cheaper than several
    /// SIMD passes on short inputs (URL components, headers).
    small: AhoCorasick,
}

/// Most anchors per Teddy group. Up to 32 patterns Teddy uses its slim
/// variant (32 bytes per step, fewer false candidates): three slim passes
/// over the text cost less than two fat ones (measured, issue 13).
const TEDDY_GROUP: usize = 32;

/// Inputs up to this length use the single automaton.
pub(super) const SMALL_HAY: usize = 256;

impl Prefilter {
    pub(crate) fn new<L: AsRef<[u8]>>(lits: &[L]) -> Prefilter {
        let mut by_len: Vec<(usize, &[u8])> = lits.iter().map(AsRef::as_ref).enumerate().collect();
        by_len.sort_by_key(|(_, l)| l.len());
        let mut groups = Vec::new();
        let mut short = Vec::new();
        let mut three = Vec::new();
        let mut long = Vec::new();
        for (i, l) in by_len {
            match l.len() {
                0..=2 => short.push((i, l)),
                3 => three.push((i, l)),
                _ => long.push((i, l)),
            }
        }
        for (i, l) in short {
            groups.push((
                Group::Memmem(memchr::memmem::Finder::new(l).into_owned()),
                vec![i],
            ));
        }
        let mut chunks: Vec<Vec<(usize, &[u8])>> =
            three.chunks(TEDDY_GROUP).map(<[_]>::to_vec).collect();
        // Spread the long anchors evenly over as few groups as possible.
        let k = long.len().div_ceil(TEDDY_GROUP).max(1);
        let per = long.len().div_ceil(k).max(1);
        chunks.extend(long.chunks(per).map(<[_]>::to_vec));
        for chunk in chunks {
            let ids: Vec<usize> = chunk.iter().map(|(i, _)| *i).collect();
            let mut b = packed::Config::new()
                .match_kind(packed::MatchKind::LeftmostFirst)
                .builder();
            for (_, l) in &chunk {
                b.add(l);
            }
            let g = match b.build() {
                Some(p) => Group::Packed(p),
                None => {
                    // Literal anchors from the static table: building an
                    // automaton for them cannot fail short of size limits.
                    #[allow(clippy::expect_used)]
                    let ac = AhoCorasick::builder()
                        .match_kind(MatchKind::LeftmostFirst)
                        .build(chunk.iter().map(|(_, l)| l))
                        .expect("anchor automaton builds");
                    Group::Ac(ac)
                }
            };
            groups.push((g, ids));
        }
        // Literal anchors from the static table: building an automaton for
        // them cannot fail short of size limits.
        #[allow(clippy::expect_used)]
        let small = AhoCorasick::builder()
            .match_kind(MatchKind::LeftmostFirst)
            .kind(Some(aho_corasick::AhoCorasickKind::DFA))
            .build(lits)
            .expect("anchor automaton builds");
        Prefilter { groups, small }
    }

    /// Call `f(position, anchor)` for every anchor occurrence (anchors are
    /// prefix-free, so at most one starts at any position).
    pub(crate) fn for_each(&self, hay: &[u8], mut f: impl FnMut(usize, usize)) {
        let n = hay.len();
        if n <= SMALL_HAY {
            let mut pos = 0;
            while let Some(m) = self.small.find(Input::new(hay).span(pos..n)) {
                f(m.start(), m.pattern().as_usize());
                pos = m.start() + 1;
            }
            return;
        }
        for (g, ids) in &self.groups {
            let mut pos = 0;
            while pos < n {
                let (start, pid) = match g {
                    Group::Packed(p) => match p.find_in(hay, aho_corasick::Span::from(pos..n)) {
                        Some(m) => (m.start(), m.pattern().as_usize()),
                        None => break,
                    },
                    Group::Ac(ac) => match ac.find(Input::new(hay).span(pos..n)) {
                        Some(m) => (m.start(), m.pattern().as_usize()),
                        None => break,
                    },
                    Group::Memmem(fi) => match fi.find(&hay[pos..]) {
                        Some(i) => (pos + i, 0),
                        None => break,
                    },
                };
                f(start, ids[pid]);
                pos = start + 1;
            }
        }
    }
}

/// Build the anchor list: unique literals, and no anchor that has another
/// anchor as a prefix (the shorter one takes over its patterns), so that at
/// any position at most one anchor matches.
pub(super) fn anchor_table(
    defs: &[(usize, &'static PatternDef)],
) -> (Vec<&'static str>, Vec<Vec<u16>>) {
    let mut lits: Vec<(&'static str, Vec<u16>)> = Vec::new();
    for &(i, d) in defs {
        for &a in d.anchors {
            match lits.iter_mut().find(|(l, _)| *l == a) {
                Some((_, v)) => v.push(i as u16),
                None => lits.push((a, vec![i as u16])),
            }
        }
    }
    // Shortest first so prefixes are seen before their extensions.
    lits.sort_by_key(|(l, _)| l.len());
    let mut out: Vec<(&'static str, Vec<u16>)> = Vec::new();
    for (l, pats) in lits {
        match out.iter_mut().find(|(o, _)| l.starts_with(*o)) {
            Some((_, v)) => {
                for p in pats {
                    if !v.contains(&p) {
                        v.push(p);
                    }
                }
            }
            None => out.push((l, pats)),
        }
    }
    out.into_iter().unzip()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::patterns::PATTERNS;

    #[test]
    fn anchors_are_prefix_free() {
        let defs: Vec<(usize, &'static PatternDef)> = PATTERNS.iter().enumerate().collect();
        let (lits, pats) = anchor_table(&defs);
        for a in &lits {
            for b in &lits {
                if a != b {
                    assert!(!b.starts_with(a), "{a} is a prefix of {b}");
                }
            }
        }
        // Every anchored pattern is reachable through some anchor.
        for (i, d) in PATTERNS.iter().enumerate() {
            if !d.anchors.is_empty() {
                assert!(
                    pats.iter().any(|v| v.contains(&(i as u16))),
                    "{} unreachable",
                    d.id
                );
            }
        }
    }
}
