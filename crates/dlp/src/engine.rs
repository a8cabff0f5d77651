//! The scanning engine: prefilter, windowed regexes, known secrets and the
//! recursive decoded views.

use crate::decode::{self, CLASS, C_B64, C_DIGIT, C_HEX, C_STD, C_URLSAFE};
use crate::known::KnownSet;
use crate::patterns::{Boundary, PatternDef, DISCORD_BOT_TOKEN, PATTERNS};
use crate::Encoding;
use aho_corasick::{packed, AhoCorasick, Input, MatchKind};
use regex::bytes::Regex;

/// Shortest base64/hex run that is decoded.
pub(crate) const MIN_RUN: usize = 16;
/// How many decoding layers are undone (base64 inside percent inside ...).
pub(crate) const MAX_DEPTH: u8 = 3;
/// Runs up to this length are decoded at all four base64 alignments.
const ALIGN_ALL_MAX: usize = 512;
/// Context kept on each side of a normalisation trigger.
const TRIGGER_CONTEXT: usize = 256;
/// How far a normalisation window is stretched to reach token boundaries.
const STRETCH_MAX: usize = 4096;
/// Runs made only of letters, `_` and `-` shorter than this are not decoded.
const LETTERS_ONLY_MIN: usize = 40;
/// Shortest printable island scanned inside decoded binary data.
const ISLAND_MIN: usize = 8;

fn printable(b: u8) -> bool {
    (0x20..0x7f).contains(&b) || b == b'\n' || b == b'\r' || b == b'\t'
}

/// Mostly printable ASCII or UTF-8 text (as opposed to binary data).
fn texty(b: &[u8]) -> bool {
    let p = b.iter().filter(|&&c| printable(c) || c >= 0x80).count();
    p * 10 >= b.len() * 9
}

/// Id of the finding reported when nested decoding exceeds its budget.
pub(crate) const DECODE_LIMIT: &str = "decode-limit";
/// At most this many findings are kept per scan.
const MAX_HITS: usize = 10_000;

#[derive(Clone, Copy, Debug)]
pub(crate) struct Hit {
    pub det: &'static str,
    pub start: usize,
    pub end: usize,
    pub enc: Encoding,
}

struct Compiled {
    def: &'static PatternDef,
    re: Regex,
    /// Boundaries may be ignored in joined views only for patterns whose
    /// anchors are distinctive (4+ bytes).
    relaxable: bool,
}

/// The compiled pattern detectors (regexes, prefilter). The built-in set is
/// compiled once per process and shared by every `Detector`.
pub(crate) struct PatternSet {
    pats: Vec<Compiled>,
    /// Anchors of text patterns, searched in the whole input.
    anchors: Prefilter,
    anchor_pats: Vec<Vec<u16>>,
    /// Anchors of run patterns, searched only inside base64-alphabet runs.
    run_ac: AhoCorasick,
    run_pats: Vec<Vec<u16>>,
    /// Every anchor, for short inputs (one automaton pass).
    small: AhoCorasick,
    small_pats: Vec<Vec<u16>>,
    discord: Option<usize>,
    /// Data-class detectors (cards, IBANs, seed phrases) left on.
    classes: crate::classes::Enabled,
}

pub(crate) struct Engine {
    set: std::sync::Arc<PatternSet>,
    pub(crate) known: Option<KnownSet>,
}

impl std::ops::Deref for Engine {
    type Target = PatternSet;
    fn deref(&self) -> &PatternSet {
        &self.set
    }
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("patterns", &self.pats.len())
            .field("anchors", &self.anchor_pats.len())
            .field("known", &self.known)
            .finish()
    }
}

/// One group of anchors: a SIMD packed searcher (Teddy) when available, an
/// Aho-Corasick automaton otherwise, or memmem for two-byte anchors.
enum Group {
    Packed(packed::Searcher),
    Ac(AhoCorasick),
    Memmem(memchr::memmem::Finder<'static>),
}

/// The literal prefilter: anchors split into groups small enough for Teddy
/// (at most 64 patterns, grouped by length so the fingerprint is long).
pub(crate) struct Prefilter {
    /// (group, global anchor index of each group pattern)
    groups: Vec<(Group, Vec<usize>)>,
    /// All anchors in one automaton: one pass is cheaper than several
    /// SIMD passes on short inputs (URL components, headers).
    small: AhoCorasick,
}

/// Inputs up to this length use the single automaton.
const SMALL_HAY: usize = 256;

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
        let mut chunks: Vec<Vec<(usize, &[u8])>> = three.chunks(64).map(<[_]>::to_vec).collect();
        // Spread the long anchors evenly over as few groups as possible.
        let k = long.len().div_ceil(64).max(1);
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
fn anchor_table(defs: &[(usize, &'static PatternDef)]) -> (Vec<&'static str>, Vec<Vec<u16>>) {
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

impl Engine {
    fn compile(disabled: &[String]) -> PatternSet {
        let defs: Vec<(usize, &'static PatternDef)> = PATTERNS
            .iter()
            .filter(|d| !disabled.iter().any(|x| x == d.id))
            .enumerate()
            .collect();
        let pats: Vec<Compiled> = defs
            .iter()
            .map(|(_, d)| Compiled {
                def: d,
                // The pattern table is static and covered by tests; a bad
                // regex there is a programming error caught by `cargo test`.
                #[allow(clippy::expect_used)]
                re: Regex::new(&format!("(?-u){}", d.regex)).expect("built-in pattern compiles"),
                relaxable: !d.anchors.is_empty() && d.anchors.iter().all(|a| a.len() >= 4),
            })
            .collect();
        let is_text = |d: &PatternDef| crate::patterns::TEXT_IDS.contains(&d.id);
        let text_defs: Vec<(usize, &'static PatternDef)> =
            defs.iter().copied().filter(|(_, d)| is_text(d)).collect();
        let run_defs: Vec<(usize, &'static PatternDef)> =
            defs.iter().copied().filter(|(_, d)| !is_text(d)).collect();
        let (lits, anchor_pats) = anchor_table(&text_defs);
        let anchors = Prefilter::new(&lits);
        let (run_lits, run_pats) = anchor_table(&run_defs);
        let (all_lits, small_pats) = anchor_table(&defs);
        let dfa = |l: &[&'static str]| {
            // Literal anchors from the static table: building an automaton
            // for them cannot fail short of size limits.
            #[allow(clippy::expect_used)]
            AhoCorasick::builder()
                .match_kind(MatchKind::LeftmostFirst)
                .kind(Some(aho_corasick::AhoCorasickKind::DFA))
                .build(l)
                .expect("anchor automaton builds")
        };
        let run_ac = dfa(&run_lits);
        let small = dfa(&all_lits);
        let discord = pats.iter().position(|c| c.def.id == DISCORD_BOT_TOKEN);
        PatternSet {
            pats,
            anchors,
            anchor_pats,
            run_ac,
            run_pats,
            small,
            small_pats,
            discord,
            classes: crate::classes::Enabled::from_disabled(disabled),
        }
    }

    pub(crate) fn new(known: Option<KnownSet>, disabled: &[String]) -> Engine {
        static BUILTIN: std::sync::OnceLock<std::sync::Arc<PatternSet>> =
            std::sync::OnceLock::new();
        let set = if disabled.is_empty() {
            BUILTIN
                .get_or_init(|| std::sync::Arc::new(Self::compile(&[])))
                .clone()
        } else {
            std::sync::Arc::new(Self::compile(disabled))
        };
        Engine { set, known }
    }

    pub(crate) fn detector_ids(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.pats.iter().map(|c| c.def.id)
    }

    fn boundary_bad(b: Boundary, c: u8) -> bool {
        match b {
            Boundary::None => false,
            Boundary::Alnum => c.is_ascii_alphanumeric(),
            Boundary::Base64 => c.is_ascii_alphanumeric() || c == b'+' || c == b'/' || c == b'=',
        }
    }

    fn left_ok(b: Boundary, hay: &[u8], start: usize) -> bool {
        if start == 0 || !Self::boundary_bad(b, hay[start - 1]) {
            return true;
        }
        // `\n`, `\t`, ... escapes in JSON or source code are separators.
        start >= 2
            && hay[start - 2] == b'\\'
            && matches!(hay[start - 1], b'n' | b't' | b'r' | b'b' | b'f')
    }

    fn right_ok(b: Boundary, hay: &[u8], end: usize) -> bool {
        end >= hay.len() || !Self::boundary_bad(b, hay[end])
    }

    fn run_pattern(
        &self,
        pi: usize,
        hay: &[u8],
        ws: usize,
        we: usize,
        relaxed: bool,
        out: &mut Vec<Hit>,
    ) {
        let c = &self.pats[pi];
        for m in c.re.find_iter(&hay[ws..we]) {
            let (s, e) = (ws + m.start(), ws + m.end());
            let bounded = Self::left_ok(c.def.left, hay, s) && Self::right_ok(c.def.right, hay, e);
            if !(bounded || relaxed && c.relaxable) {
                continue;
            }
            if let Some(v) = c.def.validate {
                if !v(&hay[s..e]) {
                    continue;
                }
            }
            if crate::patterns::placeholder_like(&hay[s..e]) {
                continue;
            }
            out.push(Hit {
                det: c.def.id,
                start: s,
                end: e,
                enc: Encoding::Raw,
            });
        }
    }

    /// Literal prefilter, then each candidate pattern's regex on merged windows.
    fn scan_patterns(
        &self,
        hay: &[u8],
        runs: &[(usize, usize, u8)],
        relaxed: bool,
        out: &mut Vec<Hit>,
    ) {
        let n = hay.len();
        let mut wins: Vec<(u16, usize, usize)> = Vec::new();
        let mut add = |table: &[Vec<u16>], a: usize, anchor: usize| {
            for &pi in &table[anchor] {
                let d = self.pats[pi as usize].def;
                if let Some(near) = d.near {
                    if !near(hay, a) {
                        continue;
                    }
                }
                let ws = a.saturating_sub(d.back);
                let we = (a + d.max_len).min(n);
                wins.push((pi, ws, we));
            }
        };
        if n <= SMALL_HAY {
            let mut pos = 0;
            while let Some(m) = self.small.find(Input::new(hay).span(pos..n)) {
                add(&self.small_pats, m.start(), m.pattern().as_usize());
                pos = m.start() + 1;
            }
        } else {
            self.anchors
                .for_each(hay, |a, anchor| add(&self.anchor_pats, a, anchor));
            for &(s, e, _) in runs {
                let mut pos = s;
                while let Some(m) = self.run_ac.find(Input::new(hay).span(pos..e)) {
                    add(&self.run_pats, m.start(), m.pattern().as_usize());
                    pos = m.start() + 1;
                }
            }
        }
        if wins.is_empty() {
            return;
        }
        wins.sort_unstable();
        let mut cur = wins[0];
        for &w in &wins[1..] {
            if w.0 == cur.0 && w.1 <= cur.2 {
                cur.2 = cur.2.max(w.2);
            } else {
                self.run_pattern(cur.0 as usize, hay, cur.1, cur.2, relaxed, out);
                cur = w;
            }
        }
        self.run_pattern(cur.0 as usize, hay, cur.1, cur.2, relaxed, out);
    }

    #[cfg(feature = "fuzzing")]
    pub(crate) fn count_anchor_hits(&self, hay: &[u8]) -> usize {
        let mut c = 0;
        let mut per: std::collections::BTreeMap<&str, usize> = Default::default();
        self.anchors.for_each(hay, |_, a| {
            c += 1;
            *per.entry(self.pats[self.anchor_pats[a][0] as usize].def.id)
                .or_default() += 1;
        });
        if std::env::var_os("DLP_PROFILE_VERBOSE").is_some() {
            eprintln!("{per:?}");
        }
        c
    }

    #[cfg(feature = "fuzzing")]
    pub(crate) fn scan_patterns_pub(&self, hay: &[u8], out: &mut Vec<Hit>) {
        self.scan_patterns(hay, &find_runs(hay), false, out)
    }

    #[cfg(feature = "fuzzing")]
    pub(crate) fn count_runs(&self, hay: &[u8]) -> (usize, usize) {
        (find_runs(hay).len(), find_triggers(hay).len())
    }

    /// Scan joins of JSON sibling values (one per line), relaxed: raw tokens,
    /// cards and IBANs, known secrets; no decoded views. No seed phrases:
    /// a join is one run of token bytes (no whitespace), so it holds no
    /// phrase, and the lines are too long to be phrase words.
    pub(crate) fn scan_joins(&self, batch: &[u8], out: &mut Vec<Hit>) {
        let mut runs = Vec::new();
        find_segments(batch, &mut runs, None);
        self.scan_patterns(batch, &runs, true, out);
        let classes = crate::classes::Enabled {
            bip39: false,
            ..self.classes
        };
        crate::classes::scan(batch, classes, out);
        if let Some(k) = &self.known {
            k.find(batch, |s, e, enc| {
                out.push(Hit {
                    det: crate::KNOWN_SECRET,
                    start: s,
                    end: e,
                    enc,
                })
            });
        }
    }

    /// Scan one view. `cut_start` says the view starts in the middle of
    /// something (a stream window), so runs touching offset 0 are decoded at
    /// every alignment.
    pub(crate) fn scan_view(
        &self,
        hay: &[u8],
        depth: u8,
        cut_start: bool,
        relaxed: bool,
        budget: &mut usize,
        out: &mut Vec<Hit>,
    ) {
        if out.len() >= MAX_HITS {
            return;
        }
        let mut runs = Vec::new();
        let mut sep_hex = Vec::new();
        let want_sep_hex = depth < MAX_DEPTH;
        find_segments(hay, &mut runs, want_sep_hex.then_some(&mut sep_hex));
        self.scan_patterns(hay, &runs, relaxed, out);
        crate::classes::scan(hay, self.classes, out);
        if let Some(k) = &self.known {
            k.find(hay, |s, e, enc| {
                out.push(Hit {
                    det: crate::KNOWN_SECRET,
                    start: s,
                    end: e,
                    enc,
                })
            });
        }
        if depth >= MAX_DEPTH {
            return;
        }
        let trig = find_triggers(hay);
        let mut buf = Vec::new();
        for &(s, e, flags) in &runs {
            if out.len() >= MAX_HITS {
                return;
            }
            if flags & C_HEX != 0 {
                self.hex_view(hay, s, e, depth, budget, &mut buf, out);
                continue;
            }
            // Words and identifiers (letters, `_`, `-` only) are not decoded
            // unless long: encoded secrets of any size contain a digit, `+`
            // or `/` with overwhelming probability.
            self.wif_check(hay, s, e, out);
            if flags & (C_DIGIT | C_STD) == 0 && e - s < LETTERS_ONLY_MIN {
                self.discord_check(hay, s, e, relaxed, out);
                continue;
            }
            let enc = if flags & C_URLSAFE != 0 {
                Encoding::Base64Url
            } else {
                Encoding::Base64
            };
            let aligns = if e - s <= ALIGN_ALL_MAX || (cut_start && s == 0) {
                4
            } else {
                1
            };
            for a in 0..aligns {
                // Short runs: only decode alignments at which the run could
                // be base64 of text (see `plausible_text_alignment`).
                if e - s <= ALIGN_ALL_MAX && !plausible_text_alignment(&hay[s + a..e]) {
                    continue;
                }
                let run = &hay[s + a..e];
                decode::b64_decode(run, &mut buf);
                let mut sub = Vec::new();
                if !self.descend(&buf, depth, budget, &mut sub, out, s) {
                    return;
                }
                for h in sub {
                    let (cs, ce) = decode::b64_span(h.start, h.end);
                    out.push(Hit {
                        det: h.det,
                        start: s + a + cs,
                        end: (s + a + ce).min(e),
                        enc,
                    });
                }
            }
            // Hex inside a mixed run (e.g. after "0x" or a key name).
            let mut j = s;
            while j < e {
                if CLASS[hay[j] as usize] & C_HEX == 0 {
                    j += 1;
                    continue;
                }
                let hs = j;
                while j < e && CLASS[hay[j] as usize] & C_HEX != 0 {
                    j += 1;
                }
                if j - hs >= MIN_RUN && !(hs == s && j == e) {
                    self.hex_view(hay, hs, j, depth, budget, &mut buf, out);
                }
            }
            self.discord_check(hay, s, e, relaxed, out);
        }
        // Hex pairs with separators (`41:4b:49:..`, `41-4b-49-..`).
        for &(rs, re, flags) in &runs {
            if flags & C_URLSAFE != 0 && re - rs >= SEP_HEX_MIN_LEN {
                dash_sep_hex(&hay[..re], rs, &mut sep_hex);
            }
        }
        sep_hex.sort_unstable();
        for &(s, e) in &sep_hex {
            decode::sep_hex_decode(&hay[s..e], &mut buf);
            let mut sub = Vec::new();
            if !self.descend(&buf, depth, budget, &mut sub, out, s) {
                return;
            }
            out.extend(sub.into_iter().map(|h| Hit {
                det: h.det,
                start: s + 3 * h.start,
                end: (s + 3 * h.end).min(e),
                enc: Encoding::Hex,
            }));
        }
        if !trig.is_empty() {
            self.normalized_views(hay, &trig, depth, budget, out);
        }
    }

    /// Bitcoin WIF private keys: a 51/52-character base58 run starting with
    /// 5, K or L whose double-SHA-256 checksum verifies.
    fn wif_check(&self, hay: &[u8], s: usize, e: usize, out: &mut Vec<Hit>) {
        if (51..=52).contains(&(e - s))
            && matches!(hay[s], b'5' | b'K' | b'L')
            && crate::patterns::is_wif(&hay[s..e])
        {
            out.push(Hit {
                det: crate::patterns::BITCOIN_WIF,
                start: s,
                end: e,
                enc: Encoding::Raw,
            });
        }
    }

    /// Discord bot tokens have no literal prefix: check runs of the right
    /// shape (25-28 chars starting with M/N/O, followed by a dot).
    fn discord_check(&self, hay: &[u8], s: usize, e: usize, relaxed: bool, out: &mut Vec<Hit>) {
        if let Some(di) = self.discord {
            if e < hay.len() && hay[e] == b'.' {
                let ts = hay[s..e]
                    .iter()
                    .rposition(|&b| b == b'+' || b == b'/')
                    .map_or(s, |p| s + p + 1);
                if (23..=28).contains(&(e - ts)) && matches!(hay[ts], b'M' | b'N' | b'O') {
                    let we = (ts + self.pats[di].def.max_len).min(hay.len());
                    self.run_pattern(di, hay, ts, we, relaxed, out);
                }
            }
        }
    }

    /// Charge `decoded` against the budget and scan it one level deeper.
    /// Returns false (after recording a `decode-limit` finding) when the
    /// budget is exhausted.
    fn descend(
        &self,
        decoded: &[u8],
        depth: u8,
        budget: &mut usize,
        sub: &mut Vec<Hit>,
        out: &mut Vec<Hit>,
        at: usize,
    ) -> bool {
        if decoded.len() > *budget {
            out.push(Hit {
                det: DECODE_LIMIT,
                start: at,
                end: at,
                enc: Encoding::Raw,
            });
            return false;
        }
        *budget -= decoded.len();
        if texty(decoded) {
            self.scan_view(decoded, depth + 1, false, false, budget, sub);
            return true;
        }
        // Binary (an image, compressed data): only its printable islands can
        // hold a token.
        let mut i = 0;
        while i < decoded.len() {
            if !printable(decoded[i]) {
                i += 1;
                continue;
            }
            let s = i;
            while i < decoded.len() && printable(decoded[i]) {
                i += 1;
            }
            if i - s >= ISLAND_MIN {
                let mut isl = Vec::new();
                self.scan_view(&decoded[s..i], depth + 1, false, false, budget, &mut isl);
                sub.extend(isl.into_iter().map(|h| Hit {
                    start: h.start + s,
                    end: h.end + s,
                    ..h
                }));
            }
        }
        true
    }

    #[allow(clippy::too_many_arguments)]
    fn hex_view(
        &self,
        hay: &[u8],
        s: usize,
        e: usize,
        depth: u8,
        budget: &mut usize,
        buf: &mut Vec<u8>,
        out: &mut Vec<Hit>,
    ) {
        for a in 0..2 {
            if e - s - a < MIN_RUN {
                break;
            }
            decode::hex_decode(&hay[s + a..e], buf);
            let mut sub = Vec::new();
            if !self.descend(buf, depth, budget, &mut sub, out, s) {
                return;
            }
            for h in sub {
                out.push(Hit {
                    det: h.det,
                    start: s + a + 2 * h.start,
                    end: (s + a + 2 * h.end).min(e),
                    enc: Encoding::Hex,
                });
            }
        }
    }

    fn normalized_views(
        &self,
        hay: &[u8],
        trig: &[usize],
        depth: u8,
        budget: &mut usize,
        out: &mut Vec<Hit>,
    ) {
        let n = hay.len();
        let tokenish = |b: u8| {
            b.is_ascii_alphanumeric()
                || matches!(b, b'_' | b'-' | b'.' | b'+' | b'/' | b'=' | b'%' | b'\\')
                || b >= 0x80
        };
        let mut windows: Vec<(usize, usize)> = Vec::new();
        for &t in trig {
            let mut ws = t.saturating_sub(TRIGGER_CONTEXT);
            let mut we = (t + TRIGGER_CONTEXT).min(n);
            let lim = ws.saturating_sub(STRETCH_MAX);
            while ws > lim && tokenish(hay[ws - 1]) {
                ws -= 1;
            }
            let lim = (we + STRETCH_MAX).min(n);
            while we < lim && tokenish(hay[we]) {
                we += 1;
            }
            match windows.last_mut() {
                Some(last) if ws <= last.1 => last.1 = last.1.max(we),
                _ => windows.push((ws, we)),
            }
        }
        for (ws, we) in windows {
            let enc = if hay[ws..we].contains(&b'%') {
                Encoding::Percent
            } else if hay[ws..we].contains(&b'\\') {
                Encoding::Escape
            } else {
                Encoding::Unicode
            };
            // Every round is scanned, not only the fixed point: a secret
            // that itself contains `%41` must be seen after one decoding.
            let mut cur: Vec<u8> = hay[ws..we].to_vec();
            let mut map: Vec<u32> = (0..cur.len() as u32).collect();
            for _ in 0..4 {
                let Some((view, m2)) = decode::normalize_once(&cur) else {
                    break;
                };
                map = m2.iter().map(|&j| map[j as usize]).collect();
                cur = view;
                if cur.len() > *budget {
                    out.push(Hit {
                        det: DECODE_LIMIT,
                        start: ws,
                        end: we,
                        enc,
                    });
                    return;
                }
                *budget -= cur.len();
                let mut sub = Vec::new();
                self.scan_view(&cur, depth + 1, false, false, budget, &mut sub);
                for h in sub {
                    let s = ws + map.get(h.start).map_or(we - ws, |&x| x as usize);
                    let e = if h.end < map.len() {
                        ws + map[h.end] as usize
                    } else {
                        we
                    };
                    let enc = if h.enc == Encoding::Raw { enc } else { h.enc };
                    out.push(Hit {
                        det: h.det,
                        start: s,
                        end: e.max(s),
                        enc,
                    });
                }
            }
        }
    }

    /// Scan `hay` with every view; findings sorted by offset, one per
    /// detector and overlapping range.
    pub(crate) fn scan(&self, hay: &[u8], cut_start: bool) -> Vec<Hit> {
        self.scan_opts(hay, cut_start, false)
    }

    /// Like `scan`, but `relaxed` ignores token boundaries in the top-level
    /// view (for views made by joining pieces, where neighbours touch).
    pub(crate) fn scan_opts(&self, hay: &[u8], cut_start: bool, relaxed: bool) -> Vec<Hit> {
        let mut budget = hay.len().saturating_mul(16).saturating_add(64 * 1024);
        let mut out = Vec::new();
        self.scan_view(hay, 0, cut_start, relaxed, &mut budget, &mut out);
        dedup(out)
    }
}

/// In base64 of ASCII text every fourth character (the first of each group)
/// carries the top six bits of a byte below 0x80, so its value is below 32.
/// Random data or a wrong alignment gives about half such characters; a run
/// where more than a quarter exceed 31 is not text at this alignment.
fn plausible_text_alignment(run: &[u8]) -> bool {
    let mut hi = 0;
    let mut total = 0;
    for &c in run.iter().step_by(4) {
        total += 1;
        if decode::B64[c as usize] >= 32 {
            hi += 1;
        }
    }
    total > 0 && hi * 4 <= total
}

/// Maximal runs of base64/base64url characters at least `MIN_RUN` long, with
/// flags (all-hex, has url-safe chars, has `+`/`/`, has digits).
#[cfg(feature = "fuzzing")]
pub(crate) fn find_runs(hay: &[u8]) -> Vec<(usize, usize, u8)> {
    let mut runs = Vec::new();
    find_segments(hay, &mut runs, None);
    runs
}

/// Separated-hex runs need at least this many bytes (8 pairs).
const SEP_HEX_MIN_LEN: usize = 3 * decode::SEP_HEX_MIN_PAIRS - 1;

/// One probing pass for the encoded segments of a view: the runs of
/// [`find_runs`] and, when `sep_hex` is given, the separated-hex runs whose
/// separator is `:`, `,` or a space (`(start, end)`, see
/// `decode::find_sep_hex`; `-` is a base64url character, so those runs lie
/// inside base64 runs and are looked for there).
///
/// A position `MIN_RUN - 1` ahead is probed first: if it is not a base64
/// character no qualifying run can cover the bytes before it, which skips
/// most prose. A separated-hex run (23 bytes or more) is seen by a probe
/// too: the run probed before it ends at most two bytes into it (its pairs
/// are the only base64 bytes in it), so the next probe lands in its first
/// 19 bytes, where every byte is a separator with pairs around it or a pair
/// whose base64 run ends (or starts) next to such a separator.
pub(crate) fn find_segments(
    hay: &[u8],
    runs: &mut Vec<(usize, usize, u8)>,
    mut sep_hex: Option<&mut Vec<(usize, usize)>>,
) {
    let n = hay.len();
    let is = |i: usize| CLASS[hay[i] as usize] & C_B64 != 0;
    // End of the last separated-hex run found (its other separators are
    // not seeds again).
    let mut sep_end = 0;
    let mut seed = |p: usize, sep_end: &mut usize| {
        // Most probes stop at the first tests: no separator between two
        // hex digits (a space between words of prose often is one).
        let hex = |i: usize| CLASS[hay[i] as usize] & C_HEX != 0;
        if p >= 1
            && p < n.saturating_sub(1)
            && decode::is_hex_sep(hay[p])
            && hex(p - 1)
            && hex(p + 1)
            && p >= *sep_end
        {
            if let Some(out) = sep_hex.as_deref_mut() {
                seed_sep_hex(hay, p, sep_end, out);
            }
        }
    };
    // Invariant: hay[i - 1] is not a base64 character (or i == 0).
    let mut i = 0;
    while i + MIN_RUN <= n {
        let j = i + MIN_RUN - 1;
        if !is(j) {
            seed(j, &mut sep_end);
            i = j + 1;
            continue;
        }
        let mut s = j;
        while s > i && is(s - 1) {
            s -= 1;
        }
        let mut e = j + 1;
        while e < n && is(e) {
            e += 1;
        }
        seed(s.wrapping_sub(1), &mut sep_end);
        seed(e, &mut sep_end);
        if e - s >= MIN_RUN {
            let mut acc = C_HEX;
            let mut or = 0;
            for &b in &hay[s..e] {
                let c = CLASS[b as usize];
                acc &= c;
                or |= c;
            }
            runs.push((s, e, (acc & C_HEX) | (or & (C_URLSAFE | C_STD | C_DIGIT))));
        }
        i = e + 1;
    }
}

/// Separated-hex runs with `-` separators in `hay[from..]` (a base64url run):
/// every `-` is a possible seed, most fail at once.
fn dash_sep_hex(hay: &[u8], from: usize, out: &mut Vec<(usize, usize)>) {
    let mut pos = from;
    while let Some(k) = memchr::memchr(b'-', &hay[pos..]) {
        let p = pos + k;
        pos = p + 1;
        if p >= from + 2 && decode::sep_hex_seed(hay, p) {
            let (s, e, _) = decode::sep_hex_extend(hay, p);
            if s >= from && e - s >= SEP_HEX_MIN_LEN {
                out.push((s, e));
            }
            pos = pos.max(e);
        }
    }
}

/// A separated-hex run around the separator at `p`, if there is one.
#[cold]
fn seed_sep_hex(hay: &[u8], p: usize, sep_end: &mut usize, out: &mut Vec<(usize, usize)>) {
    if decode::sep_hex_seed(hay, p) {
        let (s, e, _) = decode::sep_hex_extend(hay, p);
        *sep_end = e;
        if e - s >= SEP_HEX_MIN_LEN {
            out.push((s, e));
        }
    }
}

/// Positions where the normaliser would change something: `%XX`, `\xHH`,
/// `\uXXXX` escapes and interesting non-ASCII characters.
pub(crate) fn find_triggers(hay: &[u8]) -> Vec<usize> {
    let mut trig = Vec::new();
    for i in memchr::memchr2_iter(b'%', b'\\', hay) {
        if decode::is_trigger(&hay[i..(i + 12).min(hay.len())]) {
            trig.push(i);
        }
    }
    // Non-ASCII: skip 16-byte blocks that are pure ASCII.
    let mut base = 0;
    for block in hay.chunks(16) {
        if !block.is_ascii() {
            for (k, &b) in block.iter().enumerate() {
                if b >= 0xC0 && decode::is_trigger(&hay[base + k..(base + k + 12).min(hay.len())]) {
                    trig.push(base + k);
                }
            }
        }
        base += block.len();
    }
    trig.sort_unstable();
    trig
}

/// Merge hits of the same detector whose ranges overlap (keeping the raw one
/// if there is one), then sort by position.
pub(crate) fn dedup(mut hits: Vec<Hit>) -> Vec<Hit> {
    if hits.len() < 2 {
        return hits;
    }
    hits.sort_unstable_by(|a, b| {
        a.det
            .cmp(b.det)
            .then(a.start.cmp(&b.start))
            .then(b.end.cmp(&a.end))
    });
    let mut out: Vec<Hit> = Vec::with_capacity(hits.len());
    for h in hits {
        if let Some(last) = out.last_mut() {
            if last.det == h.det && h.start < last.end.max(last.start + 1) {
                if h.enc == Encoding::Raw && last.enc != Encoding::Raw {
                    last.enc = Encoding::Raw;
                    last.start = h.start.min(last.start);
                    last.end = h.end.max(last.end);
                }
                continue;
            }
        }
        out.push(h);
    }
    out.sort_by_key(|h| (h.start, h.end));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The separated-hex runs found while probing for base64 runs (plus the
    /// `-` ones looked for inside base64 runs) are the ones the dedicated
    /// finder sees, on inputs dense in hex pairs, separators and glue.
    #[test]
    fn segments_find_every_separated_hex_run() {
        let alphabet: &[u8] = b"0123456789abcdefABCDEF::,, --xyzXYZ.\n+/=_";
        let mut seed = 0x9E37_79B9_7F4A_7C15u64;
        let mut rnd = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let mut seen = 0;
        for round in 0..3000 {
            let mut hay = Vec::new();
            while hay.len() < 200 + round % 300 {
                match rnd() % 4 {
                    // a run of pairs with one separator, sometimes broken
                    0 => {
                        let sep = b":, -"[(rnd() % 4) as usize];
                        for k in 0..(rnd() % 14) {
                            if k > 0 {
                                hay.push(sep);
                            }
                            hay.push(b"0123456789abcdef"[(rnd() % 16) as usize]);
                            hay.push(b"0123456789ABCDEF"[(rnd() % 16) as usize]);
                        }
                    }
                    _ => {
                        for _ in 0..(rnd() % 24) {
                            hay.push(alphabet[(rnd() as usize) % alphabet.len()]);
                        }
                    }
                }
            }
            let mut want: Vec<(usize, usize)> = decode::find_sep_hex(&hay)
                .into_iter()
                .map(|(s, e, _)| (s, e))
                .collect();
            let mut runs = Vec::new();
            let mut got = Vec::new();
            find_segments(&hay, &mut runs, Some(&mut got));
            for &(rs, re, flags) in &runs {
                if flags & C_URLSAFE != 0 && re - rs >= SEP_HEX_MIN_LEN {
                    dash_sep_hex(&hay[..re], rs, &mut got);
                }
            }
            got.sort_unstable();
            got.dedup();
            want.sort_unstable();
            seen += want.len();
            for w in &want {
                assert!(
                    got.contains(w),
                    "missed {w:?} in {:?}",
                    String::from_utf8_lossy(&hay)
                );
            }
        }
        assert!(seen > 1000, "only {seen} runs generated");
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
