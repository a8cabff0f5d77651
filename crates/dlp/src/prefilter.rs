//! The literal prefilter: every pattern's anchors, searched with SIMD
//! packed searchers (Teddy) on long inputs and one automaton on short ones.
//! Used by the engine (pattern anchors) and by the known-secret set (its needles).

use crate::patterns::PatternDef;
use aho_corasick::{packed, AhoCorasick, Input, MatchKind};

/// One group of anchors: a SIMD packed searcher (Teddy) when available, an
/// Aho-Corasick automaton otherwise, or memmem for two-byte anchors.
pub(crate) enum Group {
    Packed(packed::Searcher),
    Ac(AhoCorasick),
    Memmem(memchr::memmem::Finder<'static>),
}

/// An anchor checked whole at a prefix hit: its bytes and global index.
type Whole = (zeroize::Zeroizing<Vec<u8>>, usize);

/// What a hit of one searched literal stands for.
enum Target {
    /// The anchor with this global index.
    One(usize),
    /// A three-byte prefix shared by [`MERGE_MIN`] or more long anchors:
    /// the anchors (bytes, global index), checked at the hit. Zeroized on
    /// drop: the known-secret prefilter's anchors are secrets.
    Prefix(Vec<Whole>),
}

/// The literal prefilter: anchors split into groups small enough for Teddy
/// (at most [`TEDDY_GROUP`] patterns, grouped by length so the fingerprint is long).
pub(crate) struct Prefilter {
    /// (group, what each group pattern stands for)
    groups: Vec<(Group, Vec<Target>)>,
    /// All anchors in one automaton: one pass is cheaper than several
    /// SIMD passes on short inputs (URL components, headers).
    small: AhoCorasick,
}

/// Most anchors per Teddy group. Up to 32 patterns Teddy uses its slim
/// variant (32 bytes per step, fewer false candidates): three slim passes
/// over the text cost less than two fat ones (measured, issue 13).
const TEDDY_GROUP: usize = 32;

/// Long anchors sharing a three-byte prefix with at least this many others
/// (`xoxb-`, `xoxp-`, ...; `dp.st.`, ...; `ecret_key`, `ecretKey`, ...;
/// `rivate_key`, ...) are searched as that prefix in the three-byte group
/// and checked whole at each hit. The 68 long text anchors needed three
/// Teddy passes; 45 need two, and the 4-byte fingerprints that ordinary
/// code matches most (`ecre` in every `secret`, `riva` in `private`) no
/// longer send candidates to Teddy's verification (clean 1 MiB: 22.6 M ->
/// 20.9 M instructions; 3 merged more and cost more).
const MERGE_MIN: usize = 4;

/// Inputs up to this length use the single automaton.
pub(crate) const SMALL_HAY: usize = 256;

impl Prefilter {
    pub(crate) fn new<L: AsRef<[u8]>>(lits: &[L]) -> Prefilter {
        let mut by_len: Vec<(usize, &[u8])> = lits.iter().map(AsRef::as_ref).enumerate().collect();
        by_len.sort_by_key(|(_, l)| l.len());
        let mut groups = Vec::new();
        let mut short = Vec::new();
        let mut three: Vec<(&[u8], Target)> = Vec::new();
        let mut long = Vec::new();
        // Three-byte prefixes of long anchors, by how many share each.
        let mut shared: std::collections::BTreeMap<&[u8], Vec<Whole>> = Default::default();
        for &(i, l) in &by_len {
            if l.len() > 3 {
                shared
                    .entry(&l[..3])
                    .or_default()
                    .push((zeroize::Zeroizing::new(l.to_vec()), i));
            }
        }
        // A merged prefix must not begin another anchor searched as itself
        // (anchors are prefix-free, so at most one anchor starts anywhere).
        shared.retain(|p, v| {
            v.len() >= MERGE_MIN && !by_len.iter().any(|(_, l)| l.len() <= 3 && p.starts_with(l))
        });
        for (i, l) in by_len {
            match l.len() {
                0..=2 => short.push((i, l)),
                3 => three.push((l, Target::One(i))),
                _ if shared.contains_key(&l[..3]) => {}
                _ => long.push((l, Target::One(i))),
            }
        }
        three.extend(shared.into_iter().map(|(p, v)| (p, Target::Prefix(v))));
        for (i, l) in short {
            groups.push((
                Group::Memmem(memchr::memmem::Finder::new(l).into_owned()),
                vec![Target::One(i)],
            ));
        }
        let mut chunks: Vec<Vec<(&[u8], Target)>> = Vec::new();
        split_into(three, TEDDY_GROUP, &mut chunks);
        // Spread the long anchors evenly over as few groups as possible.
        let k = long.len().div_ceil(TEDDY_GROUP).max(1);
        let per = long.len().div_ceil(k).max(1);
        split_into(long, per, &mut chunks);
        for chunk in chunks {
            let mut b = packed::Config::new()
                .match_kind(packed::MatchKind::LeftmostFirst)
                .builder();
            for (l, _) in &chunk {
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
                        .build(chunk.iter().map(|(l, _)| l))
                        .expect("anchor automaton builds");
                    Group::Ac(ac)
                }
            };
            groups.push((g, chunk.into_iter().map(|(_, t)| t).collect()));
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
                match &ids[pid] {
                    Target::One(id) => f(start, *id),
                    Target::Prefix(whole) => {
                        if let Some((_, id)) =
                            whole.iter().find(|(l, _)| hay[start..].starts_with(&l[..]))
                        {
                            f(start, *id);
                        }
                    }
                }
                pos = start + 1;
            }
        }
    }
}

/// `v` cut into pieces of `per` (the last may be shorter), appended to `out`.
fn split_into<T>(mut v: Vec<T>, per: usize, out: &mut Vec<Vec<T>>) {
    while !v.is_empty() {
        let rest = v.split_off(per.min(v.len()));
        out.push(std::mem::replace(&mut v, rest));
    }
}

/// Build the anchor list: unique literals, and no anchor that has another
/// anchor as a prefix (the shorter one takes over its patterns), so that at
/// any position at most one anchor matches.
pub(crate) fn anchor_table(
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

    /// The SIMD passes (with the long anchors that share a three-byte
    /// prefix searched as it) report every anchor occurrence a naive search
    /// finds, no other, on long texts dense in anchors, their prefixes and
    /// near misses; and some prefixes are merged, so the path is taken.
    #[test]
    fn merged_prefixes_find_every_anchor() {
        let defs: Vec<(usize, &'static PatternDef)> = PATTERNS.iter().enumerate().collect();
        let is_text = |d: &PatternDef| crate::patterns::TEXT_IDS.contains(&d.id);
        let text: Vec<_> = defs.iter().copied().filter(|(_, d)| is_text(d)).collect();
        let run: Vec<_> = defs.iter().copied().filter(|(_, d)| !is_text(d)).collect();
        let mut seed = 0x6A09_E667_F3BC_C908u64;
        let mut rnd = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let mut merged = 0;
        let mut found = 0;
        for set in [text, run] {
            let (lits, _) = anchor_table(&set);
            let pre = Prefilter::new(&lits);
            merged += pre
                .groups
                .iter()
                .flat_map(|(_, t)| t)
                .filter(|t| matches!(t, Target::Prefix(_)))
                .count();
            for round in 0..200 {
                let mut hay = Vec::new();
                while hay.len() < SMALL_HAY + 1 + round * 7 {
                    let a = lits[(rnd() as usize) % lits.len()].as_bytes();
                    match rnd() % 4 {
                        0 => hay.extend_from_slice(a),
                        // a prefix or a near miss of an anchor
                        1 => hay.extend_from_slice(&a[..(rnd() as usize) % a.len()]),
                        2 => {
                            hay.extend_from_slice(a);
                            let k = (rnd() as usize) % hay.len();
                            hay[k] ^= 1;
                        }
                        _ => hay.extend_from_slice(b" x_-."),
                    }
                }
                let mut want = Vec::new();
                for p in 0..hay.len() {
                    for (k, l) in lits.iter().enumerate() {
                        if hay[p..].starts_with(l.as_bytes()) {
                            want.push((p, k));
                        }
                    }
                }
                let mut got = Vec::new();
                pre.for_each(&hay, |p, k| got.push((p, k)));
                got.sort_unstable();
                assert_eq!(got, want, "{}", String::from_utf8_lossy(&hay));
                found += want.len();
            }
        }
        assert!(merged >= 2, "only {merged} merged prefixes");
        assert!(found > 10_000, "only {found} anchors");
    }

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
