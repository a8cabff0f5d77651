//! BIP-39 seed phrases: every word on the English wordlist and a valid SHA-256 checksum.

use super::*;

// ----------------------------------------------------------- seed phrases

/// A word of up to 8 letters packed big-endian into a u64: the packing keeps
/// the lexicographic order, so the sorted wordlist stays sorted.
pub(super) fn pack(w: &[u8]) -> Option<u64> {
    if w.len() > 8 {
        return None;
    }
    // Letters of either case, folded to lower case (`| 0x20`).
    let mut k = 0u64;
    for i in 0..8 {
        k = (k << 8) | u64::from(w.get(i).map_or(0, |b| b | 0x20));
    }
    Some(k)
}

/// The wordlist packed, with the start of each two-letter prefix's slice.
struct Packed {
    words: Vec<u64>,
    /// `starts[p]..starts[p + 1]` holds the words starting with prefix `p`
    /// (`26 * first + second`).
    starts: Vec<u16>,
}

/// Two-letter prefix of a word of ASCII letters (either case).
pub(super) fn prefix2(w: &[u8]) -> usize {
    usize::from((w[0] | 0x20) - b'a') * 26 + usize::from((w[1] | 0x20) - b'a')
}

/// Index of `w` (case-folded) in the English BIP-39 wordlist (2048 sorted
/// words of 3-8 lower-case letters, so the index fits u16).
pub(super) fn word_index(w: &[u8]) -> Option<u16> {
    static PACKED: std::sync::OnceLock<Packed> = std::sync::OnceLock::new();
    let p = PACKED.get_or_init(|| {
        let words: Vec<u64> = bip39::Language::English
            .word_list()
            .iter()
            .map(|x| pack(x.as_bytes()).unwrap_or(u64::MAX))
            .collect();
        let mut starts = vec![0u16; 26 * 26 + 1];
        for (k, x) in bip39::Language::English.word_list().iter().enumerate() {
            let b = x.as_bytes();
            // every English word has 3+ lower-case letters
            if b.len() >= 2 && b[..2].iter().all(u8::is_ascii_lowercase) {
                starts[prefix2(b) + 1] = k as u16 + 1;
            }
        }
        // prefixes with no word start where the previous one ends
        for q in 1..starts.len() {
            starts[q] = starts[q].max(starts[q - 1]);
        }
        Packed { words, starts }
    });
    if w.len() < 3 || !w.iter().all(u8::is_ascii_alphabetic) {
        return None;
    }
    let q = prefix2(w);
    let (lo, hi) = (usize::from(p.starts[q]), usize::from(p.starts[q + 1]));
    let key = pack(w)?;
    p.words
        .get(lo..hi)?
        .iter()
        .position(|&x| x == key)
        .map(|k| (lo + k) as u16)
}

/// High bit set in each byte of `x` that is an ASCII letter of either case
/// (eight bytes at once: the probes of `find_phrases` measure a word per probe).
fn letter_mask(x: u64) -> u64 {
    const HI: u64 = 0x8080_8080_8080_8080;
    const ONES: u64 = 0x0101_0101_0101_0101;
    // `| 0x20` folds `A`..=`Z` onto `a`..=`z` and moves no other byte into
    // that range (bytes with the high bit keep it).
    let x = x | (ONES * 0x20);
    // Low seven bits of each byte; adding below 0x80 never carries over.
    let y = x & !HI;
    let ge_a = y + ONES * (0x80 - u64::from(b'a'));
    let gt_z = y + ONES * (0x80 - u64::from(b'z') - 1);
    ge_a & !gt_z & !x & HI
}

/// Letters (either case) right before `p`.
pub(super) fn letters_before(hay: &[u8], p: usize) -> usize {
    let mut n = 0;
    while p - n >= 8 {
        let mut w = [0u8; 8];
        w.copy_from_slice(&hay[p - n - 8..p - n]);
        // The byte right before `p - n` is the most significant.
        let other = !letter_mask(u64::from_le_bytes(w)) & 0x8080_8080_8080_8080;
        if other != 0 {
            return n + other.leading_zeros() as usize / 8;
        }
        n += 8;
    }
    n + hay[..p - n]
        .iter()
        .rev()
        .take_while(|&&c| CLASS[c as usize] & C_ALPHA != 0)
        .count()
}

/// Letters (either case) from `p` on.
pub(super) fn letters_from(hay: &[u8], p: usize) -> usize {
    let mut n = 0;
    while p + n + 8 <= hay.len() {
        let mut w = [0u8; 8];
        w.copy_from_slice(&hay[p + n..p + n + 8]);
        let other = !letter_mask(u64::from_le_bytes(w)) & 0x8080_8080_8080_8080;
        if other != 0 {
            return n + other.trailing_zeros() as usize / 8;
        }
        n += 8;
    }
    n + hay[p + n..]
        .iter()
        .take_while(|&&c| CLASS[c as usize] & C_ALPHA != 0)
        .count()
}

/// Longest separator between two words of a phrase: a newline and a deep
/// indent, `",\n    "`, `\n12. `. A longer gap ends a phrase.
pub(super) const MAX_SEP: usize = 16;

/// A JSON string escape of whitespace (`\n`, `\t`, `\r`) at `p`: in a raw
/// JSON body the words of `"a\nb"` are separated by it, not glued to its letter.
fn escape_at(hay: &[u8], p: usize) -> bool {
    hay.get(p) == Some(&b'\\') && matches!(hay.get(p + 1), Some(b'n' | b't' | b'r'))
}

/// Separator bytes (at most `MAX_SEP + 1`, escapes included) right before `p`.
pub(super) fn ws_before(hay: &[u8], p: usize) -> usize {
    let mut k = 0;
    while k <= MAX_SEP && k < p {
        let c = hay[p - k - 1];
        if CLASS[c as usize] & C_WS != 0 {
            k += 1;
        } else if matches!(c, b'n' | b't' | b'r') && k + 2 <= p && hay[p - k - 2] == b'\\' {
            k += 2;
        } else {
            break;
        }
    }
    k
}

/// Separator bytes (at most `MAX_SEP + 1`, escapes included) from `p` on.
pub(super) fn ws_from(hay: &[u8], p: usize) -> usize {
    let mut k = 0;
    while k <= MAX_SEP && p + k < hay.len() {
        let c = hay[p + k];
        if c == b'\\' && escape_at(hay, p + k) {
            k += 2;
        } else if CLASS[c as usize] & C_WS != 0 {
            k += 1;
        } else {
            break;
        }
    }
    k
}

/// Hash of a word's length and first four letters (which tell every
/// English BIP-39 word apart) into 16 bits.
pub(super) fn bloom_hash(w: &[u8]) -> usize {
    // Indexed reads, not a copy loop: this runs once per probed word.
    // Case-folded (`w` holds letters only), so `Abandon` hashes as `abandon`.
    let k = match w {
        [a, b, c, d, ..] => u32::from_le_bytes([*a, *b, *c, *d]) | 0x2020_2020,
        _ => {
            let at = |i: usize| w.get(i).map_or(0, |b| b | 0x20);
            u32::from_le_bytes([at(0), at(1), at(2), at(3)])
        }
    };
    let x = k ^ ((w.len() as u32) << 27);
    (x.wrapping_mul(0x9E37_79B1) >> 16) as usize
}

/// The 64 Kibit table of [`in_bloom`], built once.
pub(super) fn bloom_table() -> &'static [u64] {
    static BLOOM: std::sync::OnceLock<Vec<u64>> = std::sync::OnceLock::new();
    BLOOM.get_or_init(|| {
        let mut t = vec![0u64; 1024];
        for x in bip39::Language::English.word_list() {
            let h = bloom_hash(x.as_bytes());
            t[h / 64] |= 1 << (h % 64);
        }
        t
    })
}

/// Maybe on the English wordlist: 3-8 letters and the word's bit set in
/// `t`, a 64 Kibit table of the list (about 3 % of other words pass). A cheap
/// first test; `phrases_in` looks the words up for real. The probe loop
/// fetches the table once.
pub(super) fn in_bloom(t: &[u64], w: &[u8]) -> bool {
    if !(3..=8).contains(&w.len()) {
        return false;
    }
    let h = bloom_hash(w);
    t.get(h / 64).is_some_and(|x| x & (1 << (h % 64)) != 0)
}

/// Stretches of 12 or more words that may be on the wordlist (one or two
/// separator bytes apart), handed to `phrases_in`. Probes one byte per `PHRASE_MIN` as
/// `for_runs` does, and also skips when the word at the probe is not on the
/// list: every phrase starting in `[i, j]` covers `j`, so it would contain
/// that word. Most English words (`the`, `of`, `and`, most long words) are
/// not on the list, so most probes look at one or two words.
pub(super) fn find_phrases(hay: &[u8], out: &mut Vec<Hit>) {
    let n = hay.len();
    if n < PHRASE_MIN {
        return;
    }
    let bloom = bloom_table();
    let maybe_listed = |w: &[u8]| in_bloom(bloom, w);
    let mut i = 0;
    while i + PHRASE_MIN <= n {
        let j = i + PHRASE_MIN - 1;
        // a separator at j: the phrase holds the word after it (most probes
        // land on a letter: no separator to measure)
        let w = if CLASS[hay[j] as usize] & C_ALPHA != 0 {
            j
        } else {
            j + ws_from(hay, j)
        };
        if w >= n || CLASS[hay[w] as usize] & C_ALPHA == 0 {
            i = w + 1;
            continue;
        }
        let mut a = w - letters_before(hay, w);
        if a > 0 && escape_at(hay, a - 1) {
            a += 1;
        }
        let b = w + letters_from(hay, w);
        if !maybe_listed(&hay[a..b]) {
            i = b;
            continue;
        }
        // extend over neighbouring words that may be on the list
        let mut count = 1;
        let mut l = a;
        loop {
            let k = ws_before(hay, l);
            if k == 0 || k > MAX_SEP {
                break;
            }
            let mut ws = l - k - letters_before(hay, l - k);
            if ws > 0 && escape_at(hay, ws - 1) {
                ws += 1;
            }
            if !maybe_listed(&hay[ws..l - k]) {
                break;
            }
            l = ws;
            count += 1;
        }
        let mut r = b;
        loop {
            let k = ws_from(hay, r);
            if k == 0 || k > MAX_SEP {
                break;
            }
            let len = letters_from(hay, r + k);
            if !maybe_listed(&hay[r + k..r + k + len]) {
                break;
            }
            r += k + len;
            count += 1;
        }
        if count >= 12 {
            phrases_in(hay, l, r, out);
        }
        i = r.max(i + 1);
    }
}

/// Seed phrases in a run of words (either case): a maximal stretch of 12 or
/// more wordlist words (3-8 letters) whose whole, or first or last 12/15/18/21/24
/// words with at most two words to spare, carry a valid checksum.
pub(super) fn phrases_in(hay: &[u8], s: usize, e: usize, out: &mut Vec<Hit>) {
    // Words of the right shape (3-8 letters) are collected first; only a
    // stretch of 12 or more is looked up in the wordlist, which keeps prose
    // (full of short and long words) cheap.
    let mut shaped: Vec<(usize, usize)> = Vec::new();
    let mut words: Vec<(usize, usize, u16)> = Vec::new();
    let mut i = s;
    while i < e {
        if CLASS[hay[i] as usize] & C_ALPHA == 0 {
            // a separator longer than `MAX_SEP` ends a phrase
            let ws = i;
            while i < e && (CLASS[hay[i] as usize] & C_ALPHA == 0 || escape_at(hay, i - 1)) {
                i += 1;
            }
            if i - ws > MAX_SEP {
                lookup_stretch(hay, &mut shaped, &mut words, out);
            }
            continue;
        }
        let ws = i;
        while i < e && CLASS[hay[i] as usize] & C_ALPHA != 0 {
            i += 1;
        }
        if (3..=8).contains(&(i - ws)) {
            shaped.push((ws, i));
        } else {
            lookup_stretch(hay, &mut shaped, &mut words, out);
        }
    }
    lookup_stretch(hay, &mut shaped, &mut words, out);
}

/// Look up a stretch of well-shaped words and check each maximal run of
/// wordlist words in it.
pub(super) fn lookup_stretch(
    hay: &[u8],
    shaped: &mut Vec<(usize, usize)>,
    words: &mut Vec<(usize, usize, u16)>,
    out: &mut Vec<Hit>,
) {
    if shaped.len() >= 12 {
        for &(ws, we) in shaped.iter() {
            match word_index(&hay[ws..we]) {
                Some(k) => words.push((ws, we, k)),
                None => flush_phrase(hay, words, out),
            }
        }
        flush_phrase(hay, words, out);
    }
    shaped.clear();
}

pub(super) fn flush_phrase(hay: &[u8], words: &mut Vec<(usize, usize, u16)>, out: &mut Vec<Hit>) {
    let k = words.len();
    if k >= 12 {
        let ok = |w: &[(usize, usize, u16)]| same_separators(hay, w) && checksum_ok(w);
        // whole stretch first, then the longest prefix / suffix that checks
        let mut found = None;
        if k <= 24 && k.is_multiple_of(3) && ok(&words[..]) {
            found = Some((0, k));
        }
        for len in [24, 21, 18, 15, 12] {
            // At most two extra words around a phrase ("wallet words ..."):
            // long keyword lists would otherwise get many tries at 1 in 16.
            if found.is_some() || len > k || k - len > 2 {
                continue;
            }
            if ok(&words[..len]) {
                found = Some((0, len));
            } else if ok(&words[k - len..]) {
                found = Some((k - len, k));
            }
        }
        if let Some((a, b)) = found {
            let phrase = &words[a..b];
            if !test_vector(phrase) {
                out.push(Hit {
                    det: BIP39,
                    start: phrase[0].0,
                    end: phrase[phrase.len() - 1].1,
                    enc: Encoding::Raw,
                });
            }
        }
    }
    words.clear();
}

/// A separator with every whitespace run written as one space and every
/// digit run as one `0` (`\n12. ` reads as ` 0. `), in `buf`.
fn shape_of<'a>(sep: &[u8], buf: &'a mut [u8; MAX_SEP]) -> &'a [u8] {
    let mut n = 0;
    for &b in sep.iter().take(MAX_SEP) {
        let c = match b {
            b' ' | b'\t' | b'\n' | b'\r' => b' ',
            b'0'..=b'9' => b'0',
            _ => b,
        };
        if n > 0 && buf[n - 1] == c && (c == b' ' || c == b'0') {
            continue;
        }
        buf[n] = c;
        n += 1;
    }
    &buf[..n]
}

/// A person writes a phrase with one kind of separator (`", "`, `-`, `+`,
/// a newline and a number, spaces and line breaks mixed). Identifier lists in
/// code mix them (`'border-left', 'border-left-color'`): those are not phrases.
pub(super) fn same_separators(hay: &[u8], words: &[(usize, usize, u16)]) -> bool {
    let mut first = [0u8; MAX_SEP];
    let mut other = [0u8; MAX_SEP];
    let Some(w) = words.get(..2) else {
        return true;
    };
    let want = shape_of(&hay[w[0].1..w[1].0], &mut first);
    words
        .windows(2)
        .skip(1)
        .all(|p| shape_of(&hay[p[0].1..p[1].0], &mut other) == want)
}

/// The phrase's bits: 11 per word, entropy first, then `n/3` checksum bits
/// (24 words = 264 bits = 33 bytes).
pub(super) fn phrase_bits(words: &[(usize, usize, u16)]) -> zeroize::Zeroizing<[u8; 33]> {
    let mut bits = zeroize::Zeroizing::new([0u8; 33]);
    for (w, &(_, _, idx)) in words.iter().enumerate() {
        for b in 0..11 {
            if idx & (1 << (10 - b)) != 0 {
                let pos = w * 11 + b;
                bits[pos / 8] |= 0x80 >> (pos % 8);
            }
        }
    }
    bits
}

/// The checksum bits are the first bits of SHA-256 of the entropy.
pub(super) fn checksum_ok(words: &[(usize, usize, u16)]) -> bool {
    let n = words.len();
    if !(12..=24).contains(&n) || !n.is_multiple_of(3) {
        return false;
    }
    let cs_bits = n / 3;
    let ent_bytes = (n * 11 - cs_bits) / 8;
    let bits = phrase_bits(words);
    let hash = Sha256::digest(&bits[..ent_bytes]);
    // the checksum bits follow the entropy and are at most 8
    bits[ent_bytes] >> (8 - cs_bits) == hash[0] >> (8 - cs_bits)
}

/// The published BIP-39 test vectors that fill wallet libraries' tests
/// (`abandon ... about`, `legal winner ... yellow`, `letter advice ...
/// always`, `zoo ... wrong`) have entropy of one repeated byte.
pub(super) fn test_vector(words: &[(usize, usize, u16)]) -> bool {
    let ent_bytes = (words.len() * 11 - words.len() / 3) / 8;
    let bits = phrase_bits(words);
    bits[..ent_bytes].iter().all(|&b| b == bits[0])
}
