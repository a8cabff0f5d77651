//! The probing pass that finds what a view's decoders work on: base64 and
//! hex runs, separated-hex runs and normalisation triggers.

use crate::decode::{self, CLASS, C_B64, C_DASH, C_DIGIT, C_HEX, C_STD, C_URLSAFE};

use super::MIN_RUN;

/// In base64 of ASCII text every fourth character (the first of each group)
/// carries the top six bits of a byte below 0x80, so its value is below 32.
/// Random data or a wrong alignment gives about half such characters; a run
/// where more than a quarter exceed 31 is not text at this alignment.
pub(super) fn plausible_text_alignment(run: &[u8]) -> bool {
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
/// 19 bytes, where every byte is a separator with pairs around it or belongs
/// to one of its first seven pairs, whose base64 run ends at such a
/// separator (the pair's own run, or a longer one glued to the first pair).
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
        seed(e, &mut sep_end);
        if e - s >= MIN_RUN {
            let mut acc = C_HEX;
            let mut or = 0;
            for &b in &hay[s..e] {
                let c = CLASS[b as usize];
                acc &= c;
                or |= c;
            }
            runs.push((
                s,
                e,
                (acc & C_HEX) | (or & (C_URLSAFE | C_STD | C_DIGIT | C_DASH)),
            ));
        }
        i = e + 1;
    }
}

/// `f(start, end)` on every maximal stretch of hex digits at least `MIN_RUN`
/// long inside the run `hay[s..e]`, except the whole run. A byte `MIN_RUN - 1`
/// ahead is probed first, as in `find_segments`: if it is no hex digit, no
/// long enough stretch covers the bytes before it.
#[inline]
pub(super) fn hex_stretches(hay: &[u8], s: usize, e: usize, mut f: impl FnMut(usize, usize)) {
    let hex = |i: usize| CLASS[hay[i] as usize] & C_HEX != 0;
    // Invariant: hay[j - 1] is no hex digit, or j == s (a run's start).
    let mut j = s;
    while j + MIN_RUN <= e {
        let p = j + MIN_RUN - 1;
        if !hex(p) {
            j = p + 1;
            continue;
        }
        let mut hs = p;
        while hs > j && hex(hs - 1) {
            hs -= 1;
        }
        let mut he = p + 1;
        while he < e && hex(he) {
            he += 1;
        }
        if he - hs >= MIN_RUN && !(hs == s && he == e) {
            f(hs, he);
        }
        j = he + 1;
    }
}

/// Separated-hex runs with `-` separators inside the base64 runs of `hay`
/// that hold a `-` (snake_case identifiers hold none).
#[inline]
pub(super) fn dash_runs_sep_hex(
    hay: &[u8],
    runs: &[(usize, usize, u8)],
    out: &mut Vec<(usize, usize)>,
) {
    for &(rs, re, flags) in runs {
        if flags & C_DASH != 0 && re - rs >= SEP_HEX_MIN_LEN {
            dash_sep_hex(&hay[..re], rs, out);
        }
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
pub(super) fn seed_sep_hex(
    hay: &[u8],
    p: usize,
    sep_end: &mut usize,
    out: &mut Vec<(usize, usize)>,
) {
    if decode::sep_hex_seed(hay, p) {
        let (s, e, _) = decode::sep_hex_extend(hay, p);
        *sep_end = e;
        if e - s >= SEP_HEX_MIN_LEN {
            out.push((s, e));
        }
    }
}

/// Views at least this long look for `\u` and `\x` with pair searches
/// (building nothing per call, but three passes); shorter ones in one pass.
const ESCAPE_FINDER_MIN: usize = 256;

type Pair = (
    memchr::memmem::Finder<'static>,
    memchr::memmem::Finder<'static>,
);

/// Searchers for the two escapes that can trigger, built once.
fn escape_finders() -> &'static Pair {
    static F: std::sync::OnceLock<Pair> = std::sync::OnceLock::new();
    F.get_or_init(|| {
        (
            memchr::memmem::Finder::new(b"\\u"),
            memchr::memmem::Finder::new(b"\\x"),
        )
    })
}

/// `f` on every `%`, `\u` and `\x` of a long view (kept out of line: short
/// views, most of a URL's, take the one-pass branch).
#[inline(never)]
fn escapes_apart(hay: &[u8], f: &mut impl FnMut(usize)) {
    let (u, x) = escape_finders();
    memchr::memchr_iter(b'%', hay).for_each(&mut *f);
    u.find_iter(hay).for_each(&mut *f);
    x.find_iter(hay).for_each(f);
}

/// Positions where the normaliser would change something: `%XX`, `\xHH`,
/// `\uXXXX` escapes and interesting non-ASCII characters.
pub(crate) fn find_triggers(hay: &[u8]) -> Vec<usize> {
    let mut trig = Vec::new();
    let mut check = |i: usize| {
        if decode::is_trigger(&hay[i..(i + 12).min(hay.len())]) {
            trig.push(i);
        }
    };
    // Only `\x` and `\u` escapes can trigger. JSON bodies hold a `\n` or
    // `\"` every few dozen bytes: one memchr call per backslash cost more
    // than two pair searches that stop at those escapes only.
    if hay.len() < ESCAPE_FINDER_MIN {
        memchr::memchr2_iter(b'%', b'\\', hay).for_each(&mut check);
    } else {
        escapes_apart(hay, &mut check);
    }
    // Non-ASCII: skip pure-ASCII stretches, 512 bytes at a time (`is_ascii`
    // tests a word at once), then 16-byte blocks inside the others.
    let mut base = 0;
    for coarse in hay.chunks(512) {
        if !coarse.is_ascii() {
            for block in coarse.chunks(16) {
                if !block.is_ascii() {
                    for (k, &b) in block.iter().enumerate() {
                        let at = base + k;
                        if b >= 0xC0 && decode::is_trigger(&hay[at..(at + 12).min(hay.len())]) {
                            trig.push(at);
                        }
                    }
                }
                base += block.len();
            }
        } else {
            base += coarse.len();
        }
    }
    trig.sort_unstable();
    trig
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Run anchors found by one SIMD pass over a view dense in runs are the
    /// ones the automaton finds run by run: anchors glued to run edges, cut
    /// by separators and at both ends of the view.
    #[test]
    fn dense_run_anchor_pass_finds_what_the_per_run_pass_finds() {
        let engine = crate::engine::Engine::new(None, &[]);
        let anchors: Vec<&[u8]> = crate::patterns::PATTERNS
            .iter()
            .flat_map(|d| d.anchors.iter().map(|a| a.as_bytes()))
            .collect();
        let mut seed = 0x2545_F491_4F6C_DD1Du64;
        let mut rnd = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let filler: &[u8] = b"AZaz09+/-_=q7Kx \n.:\"";
        let mut found = 0;
        for round in 0..400 {
            let mut hay = Vec::new();
            while hay.len() < 300 + round % 700 {
                if rnd() % 3 == 0 {
                    let a = anchors[(rnd() as usize) % anchors.len()];
                    // sometimes only a part of the anchor (cut by a separator)
                    let keep = if rnd() % 4 == 0 {
                        (rnd() as usize) % a.len()
                    } else {
                        a.len()
                    };
                    hay.extend_from_slice(&a[..keep]);
                } else {
                    for _ in 0..(rnd() % 20) {
                        hay.push(filler[(rnd() as usize) % filler.len()]);
                    }
                }
            }
            let mut runs = Vec::new();
            find_segments(&hay, &mut runs, None);
            let collect = |dense: bool| {
                let mut v = Vec::new();
                engine.run_anchors_in(&hay, &runs, dense, |a, k| v.push((a, k)));
                v.sort_unstable();
                v
            };
            let sparse = collect(false);
            assert_eq!(collect(true), sparse, "{}", String::from_utf8_lossy(&hay));
            found += sparse.len();
        }
        assert!(found > 1000, "only {found} anchors in runs");
    }

    /// The ASCII skip of `find_triggers` (512-byte, then 16-byte blocks)
    /// misses no trigger: a fullwidth letter and an escape placed at every
    /// offset around the block edges are found as a byte-by-byte pass finds them.
    #[test]
    fn triggers_found_at_every_block_offset() {
        let reference = |hay: &[u8]| -> Vec<usize> {
            let mut t: Vec<usize> = (0..hay.len())
                .filter(|&i| {
                    matches!(hay[i], b'%' | b'\\' | 0xC0..=0xFF)
                        && decode::is_trigger(&hay[i..(i + 12).min(hay.len())])
                })
                .collect();
            t.sort_unstable();
            t
        };
        let fullwidth_a = "\u{FF21}".as_bytes();
        let mut checked = 0;
        for at in (0..40).chain(490..540).chain(1000..1060) {
            let mut hay = b"plain ascii text, ".repeat(70);
            hay.truncate(1100);
            hay.splice(at..at, fullwidth_a.iter().copied());
            hay.splice(
                at + 700.min(hay.len() - at)..at + 700.min(hay.len() - at),
                *b"%41",
            );
            let got = find_triggers(&hay);
            assert_eq!(got, reference(&hay), "fullwidth at {at}");
            assert!(got.contains(&at), "fullwidth at {at}");
            checked += 1;
        }
        assert!(checked > 100);
    }

    /// Escapes and percent triggers are found by both passes (short views:
    /// one search for `%` and `\`; long ones: `%`, `\u`, `\x` apart) as a
    /// byte-by-byte pass finds them, among `\n` and `\\` decoys.
    #[test]
    fn escape_triggers_found_in_short_and_long_views() {
        let parts: [&[u8]; 12] = [
            b"\\u0041", b"\\x41", b"\\n", b"\\\\", b"%41", b"%zz", b"\\u00", b"\\x4", b"abc ",
            b"\\", b"%", b"\\u200b",
        ];
        let mut seed = 0x51_7CC1_B727_220Au64;
        let mut rnd = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let mut found = 0;
        for round in 0..600 {
            let len = [20, 100, 255, 256, 257, 600, 2000][round % 7];
            let mut hay = Vec::new();
            while hay.len() < len {
                hay.extend_from_slice(parts[(rnd() % 12) as usize]);
            }
            hay.truncate(len);
            let want: Vec<usize> = (0..hay.len())
                .filter(|&i| {
                    matches!(hay[i], b'%' | b'\\')
                        && decode::is_trigger(&hay[i..(i + 12).min(hay.len())])
                })
                .collect();
            assert_eq!(
                find_triggers(&hay),
                want,
                "{}",
                String::from_utf8_lossy(&hay)
            );
            found += want.len();
        }
        assert!(found > 5000, "only {found} triggers");
    }

    /// The probed hex-stretch finder gives the stretches a byte-by-byte
    /// walk of the run gives, wherever they start (runs glued to hex, hex
    /// at both ends, whole-hex runs left out).
    #[test]
    fn hex_stretches_match_a_byte_by_byte_walk() {
        let alphabet: &[u8] = b"0123456789abcdefABCDEFxyzXYZ_-+/";
        let mut seed = 0x2F69_3A1C_55D0_8E37u64;
        let mut rnd = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let mut seen = 0;
        for round in 0..3000 {
            let mut hay = Vec::new();
            while hay.len() < 16 + round % 200 {
                let long = rnd() % 3 == 0;
                for _ in 0..(rnd() % if long { 40 } else { 4 }) {
                    let pool = if long { &alphabet[..22] } else { alphabet };
                    hay.push(pool[(rnd() as usize) % pool.len()]);
                }
            }
            let (s, e) = (0, hay.len());
            let mut want = Vec::new();
            let mut j = s;
            while j < e {
                if !hay[j].is_ascii_hexdigit() {
                    j += 1;
                    continue;
                }
                let hs = j;
                while j < e && hay[j].is_ascii_hexdigit() {
                    j += 1;
                }
                if j - hs >= MIN_RUN && !(hs == s && j == e) {
                    want.push((hs, j));
                }
            }
            let mut got = Vec::new();
            hex_stretches(&hay, s, e, |a, b| got.push((a, b)));
            assert_eq!(got, want, "{}", String::from_utf8_lossy(&hay));
            seen += want.len();
        }
        assert!(seen > 1000, "only {seen} stretches");
    }

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
            dash_runs_sep_hex(&hay, &runs, &mut got);
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
}
