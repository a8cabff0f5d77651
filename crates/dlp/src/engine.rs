//! The scanning engine: prefilter, windowed regexes, known secrets and the
//! recursive decoded views.

use crate::decode::{self, C_DIGIT, C_HEX, C_STD, C_URLSAFE};
use crate::hit::Hit;
use crate::known::KnownSet;
use crate::patterns::{Boundary, PatternDef, DISCORD_BOT_TOKEN, PATTERNS};
use crate::prefilter::{anchor_table, Prefilter, SMALL_HAY};
use crate::Encoding;
use aho_corasick::{AhoCorasick, Input, MatchKind};
use regex::bytes::Regex;

mod segments;

#[cfg(feature = "fuzzing")]
use segments::find_runs;
use segments::{
    dash_runs_sep_hex, find_segments, find_triggers, hex_stretches, plausible_text_alignment,
};

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
/// Run anchors are searched with SIMD over the whole view when runs make up
/// at least `1 / RUNS_DENSE_DIV` of it (else run by run with the automaton).
const RUNS_DENSE_DIV: usize = 4;
/// Shortest printable island scanned inside decoded binary data.
const ISLAND_MIN: usize = 8;

/// Per byte: 1 printable ASCII (with `\n`, `\r`, `\t`), 2 any byte of
/// UTF-8 text (those and bytes >= 0x80). One lookup per decoded byte: every
/// decoded view is measured.
static TEXT_CLASS: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut i = 0;
    while i < 256 {
        let b = i as u8;
        t[i] = if (0x20 <= b && b < 0x7f) || b == b'\n' || b == b'\r' || b == b'\t' {
            3
        } else if b >= 0x80 {
            2
        } else {
            0
        };
        i += 1;
    }
    t
};

fn printable(b: u8) -> bool {
    TEXT_CLASS[b as usize] & 1 != 0
}

/// Mostly printable ASCII or UTF-8 text (as opposed to binary data).
fn texty(b: &[u8]) -> bool {
    let p: usize = b
        .iter()
        .map(|&c| usize::from(TEXT_CLASS[c as usize] >> 1))
        .sum();
    p * 10 >= b.len() * 9
}

/// Id of the finding reported when nested decoding exceeds its budget.
pub(crate) const DECODE_LIMIT: &str = "decode-limit";
/// At most this many findings are kept per scan.
const MAX_HITS: usize = 10_000;

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
    /// The same anchors for SIMD passes over a whole view that is mostly
    /// runs (a join batch, a base64 body), with each anchor's length.
    run_anchors: Prefilter,
    run_lens: Vec<usize>,
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
        let run_anchors = Prefilter::new(&run_lits);
        let run_lens = run_lits.iter().map(|l| l.len()).collect();
        let small = dfa(&all_lits);
        let discord = pats.iter().position(|c| c.def.id == DISCORD_BOT_TOKEN);
        PatternSet {
            pats,
            anchors,
            anchor_pats,
            run_ac,
            run_pats,
            run_anchors,
            run_lens,
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

    /// Call `f(position, anchor)` for every run anchor lying wholly inside a
    /// run. `dense` (the view is mostly runs: a join batch, a base64 body):
    /// one SIMD pass over the whole view, keeping the anchors inside a run;
    /// else the automaton run by run. Anchors are prefix-free, so both find
    /// the same set.
    fn run_anchors_in(
        &self,
        hay: &[u8],
        runs: &[(usize, usize, u8)],
        dense: bool,
        mut f: impl FnMut(usize, usize),
    ) {
        if dense {
            self.run_anchors.for_each(hay, |a, anchor| {
                let k = runs.partition_point(|r| r.0 <= a);
                if k > 0 && a + self.run_lens[anchor] <= runs[k - 1].1 {
                    f(a, anchor);
                }
            });
            return;
        }
        for &(s, e, _) in runs {
            let mut pos = s;
            while let Some(m) = self.run_ac.find(Input::new(hay).span(pos..e)) {
                f(m.start(), m.pattern().as_usize());
                pos = m.start() + 1;
            }
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
            let run_bytes: usize = runs.iter().map(|&(s, e, _)| e - s).sum();
            let dense = run_bytes * RUNS_DENSE_DIV >= n;
            self.run_anchors_in(hay, runs, dense, |a, anchor| add(&self.run_pats, a, anchor));
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
            hex_stretches(hay, s, e, |hs, he| {
                self.hex_view(hay, hs, he, depth, budget, &mut buf, out)
            });
            self.discord_check(hay, s, e, relaxed, out);
        }
        // Hex pairs with separators (`41:4b:49:..`, `41-4b-49-..`).
        dash_runs_sep_hex(hay, &runs, &mut sep_hex);
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
mod text_class_tests {
    /// The table classes every byte as the range tests did.
    #[test]
    fn text_class_matches_the_range_tests() {
        for b in 0..=255u8 {
            let p = (0x20..0x7f).contains(&b) || b == b'\n' || b == b'\r' || b == b'\t';
            assert_eq!(super::printable(b), p, "{b}");
            assert_eq!(super::texty(&[b]), p || b >= 0x80, "{b}");
        }
        assert!(super::texty(b"plain text\n\xc3\xa9"));
        assert!(!super::texty(b"\x00\x01\x02text"));
    }
}
