//! A table of rules compiled once into one automaton that answers both "does any rule match",
//! "which rules match" and "where does each one match".
//!
//! The regex crate's `RegexSet` only says which patterns match, so each rule used to be
//! compiled a second time on its own to find where: two copies of a large automaton (the
//! bounded word gaps of the rules expand to some 24,000 NFA states), and building the set
//! alone left ~7.5 MiB resident. Here one Thompson NFA (no reverse NFA, no per-rule copy) is
//! shared by two lazy DFAs:
//! - `which`, every (rule, end) pair: an unanchored overlapping search;
//! - `place`, leftmost-first and anchored at a start, one rule at a time.
//!
//! Each rule's matches are then exactly those of the regex crate's `find_iter` of that rule
//! alone (the unit tests compare them): the leftmost start of a rule's next match is the
//! smallest start from which an anchored search succeeds, and it lies within the rule's
//! longest match before the first end of that rule still to come, so only those few starts
//! are tried.

use regex_automata::hybrid::dfa::{Cache, OverlappingState, DFA};
use regex_automata::nfa::thompson;
use regex_automata::util::pool::Pool;
use regex_automata::util::syntax;
use regex_automata::{Anchored, Input, MatchKind, PatternID};

/// Lazy DFA cache per search thread and DFA (the regex crate's default). A cache starts at
/// ~380 KiB (sets sized to the NFA); the `which` DFA grows ~1 MiB over the first MiB of
/// random printable runs (what a compressed download's text looks like) and ~80 KiB per
/// MiB after that, so a clear (then the states in use are built again) comes every ten or
/// more MiB of such input. Unlike the regex crate's engines, these never give up on a
/// cleared cache for a slower engine.
const CACHE_CAPACITY: usize = 2 << 20;

type Caches = (Cache, Cache);
type MakeCaches = Box<dyn Fn() -> Caches + Send + Sync>;

pub(crate) struct RuleSet {
    which: DFA,
    place: DFA,
    /// Longest match of each rule, in bytes (`None`: unbounded).
    max_len: Vec<Option<usize>>,
    caches: Pool<Caches, MakeCaches>,
}

/// One match of one rule: rule index, start, end (offsets in the searched text).
pub(crate) type RuleMatch = (usize, usize, usize);

impl RuleSet {
    /// Compiles `patterns` (byte-oriented: `(?-u)` is prepended); `Err` names the pattern.
    pub(crate) fn new(patterns: &[String]) -> Result<RuleSet, String> {
        let syntax = syntax::Config::new().utf8(false);
        let mut hirs = Vec::with_capacity(patterns.len());
        for p in patterns {
            let hir = syntax::parse_with(&format!("(?-u){p}"), &syntax)
                .map_err(|e| format!("{p}: {e}"))?;
            if hir.properties().minimum_len().unwrap_or(0) == 0 {
                // An empty match would need the regex crate's rules for resuming after one.
                return Err(format!("{p}: may match the empty string"));
            }
            hirs.push(hir);
        }
        let max_len = hirs.iter().map(|h| h.properties().maximum_len()).collect();
        let nfa = thompson::Compiler::new()
            .configure(
                thompson::Config::new()
                    .utf8(false)
                    .which_captures(thompson::WhichCaptures::None)
                    .nfa_size_limit(Some(1 << 26)),
            )
            .build_many_from_hir(&hirs)
            .map_err(|e| e.to_string())?;
        drop(hirs);
        // No quit bytes (ASCII word boundaries only) and no give-up threshold: a search
        // cannot fail, it can only be slower when the cache is cleared.
        let dfa = |kind: MatchKind, per_pattern: bool| {
            DFA::builder()
                .configure(
                    DFA::config()
                        .match_kind(kind)
                        .starts_for_each_pattern(per_pattern)
                        .cache_capacity(CACHE_CAPACITY),
                )
                .build_from_nfa(nfa.clone())
                .map_err(|e| e.to_string())
        };
        let which = dfa(MatchKind::All, false)?;
        let place = dfa(MatchKind::LeftmostFirst, true)?;
        let (w, p) = (which.clone(), place.clone());
        let make: MakeCaches = Box::new(move || (w.create_cache(), p.create_cache()));
        Ok(RuleSet {
            which,
            place,
            max_len,
            caches: Pool::new(make),
        })
    }

    /// Number of rules.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.max_len.len()
    }

    /// Whether any rule matches in `hay`.
    #[cfg(test)]
    pub(crate) fn is_match(&self, hay: &[u8]) -> bool {
        let mut caches = self.caches.get();
        let input = Input::new(hay).earliest(true);
        !matches!(self.which.try_search_fwd(&mut caches.0, &input), Ok(None))
    }

    /// Every match in `hay` of every rule for which `wanted` holds: rule by rule in order,
    /// each rule's matches left to right and not overlapping (the regex crate's `find_iter`
    /// of that rule alone, run on `hay`).
    pub(crate) fn matches(&self, hay: &[u8], wanted: impl Fn(usize) -> bool) -> Vec<RuleMatch> {
        let mut out = Vec::new();
        let mut guard = self.caches.get();
        let (which_cache, place_cache) = &mut *guard;
        // Most text matches no rule: one forward pass stopping at the first match says so.
        let input = Input::new(hay).earliest(true);
        if let Ok(None) = self.which.try_search_fwd(which_cache, &input) {
            return out;
        }
        let ends = self.ends(which_cache, hay);
        let mut i = 0;
        while i < ends.len() {
            let rule = ends[i].0;
            let n = ends[i..].iter().take_while(|e| e.0 == rule).count();
            if wanted(rule) {
                let rule_ends = ends[i..i + n].iter().map(|e| e.1);
                self.place_rule(place_cache, hay, rule, rule_ends, &mut out);
            }
            i += n;
        }
        out
    }

    /// Every (rule, end) pair in `hay`, sorted.
    fn ends(&self, cache: &mut Cache, hay: &[u8]) -> Vec<(usize, usize)> {
        let mut ends = Vec::new();
        let input = Input::new(hay);
        let mut state = OverlappingState::start();
        while let Ok(()) = self
            .which
            .try_search_overlapping_fwd(cache, &input, &mut state)
        {
            match state.get_match() {
                Some(m) => ends.push((m.pattern().as_usize(), m.offset())),
                None => break,
            }
        }
        ends.sort_unstable();
        ends
    }

    /// The matches of `rule`, given the ascending ends of all its matches (from any start).
    fn place_rule(
        &self,
        cache: &mut Cache,
        hay: &[u8],
        rule: usize,
        ends: impl Iterator<Item = usize>,
        out: &mut Vec<RuleMatch>,
    ) {
        let Ok(pid) = PatternID::new(rule) else {
            return;
        };
        let longest = self.max_len.get(rule).copied().flatten();
        // Offset from which the next match is looked for (the end of the previous one).
        let mut from = 0;
        for end in ends {
            if end <= from {
                continue;
            }
            // A match starting at or after `from` ends at `end` or later, and no sooner than
            // its longest length after its start: nothing before `end - longest` can start
            // one that has not been ruled out.
            let lo = longest.map_or(from, |l| from.max(end.saturating_sub(l)));
            let mut next = end;
            for start in lo..end {
                let input = Input::new(hay)
                    .range(start..)
                    .anchored(Anchored::Pattern(pid));
                if let Ok(Some(m)) = self.place.try_search_fwd(cache, &input) {
                    out.push((rule, start, m.offset()));
                    next = m.offset();
                    break;
                }
            }
            // Either the match found, or no match of this rule starts before `end`.
            from = next;
        }
    }
}
