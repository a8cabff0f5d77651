//! Data classes beyond credentials: payment card numbers, IBANs and BIP-39
//! seed phrases. (Bitcoin WIF keys, `xprv`/`tprv` keys and labelled 64-hex
//! private keys are in the pattern table.)
//!
//! None of these has a literal anchor, so each is found by the shape of a
//! run of bytes and then *validated* (Luhn plus an IIN/length table; the
//! IBAN country length plus mod-97; the BIP-39 wordlist plus its SHA-256
//! checksum): random digits or ordinary English do not trigger.
//!
//! Well-known public test values (the card numbers every payment provider
//! documents, the IBAN examples of the standards and bank docs, the BIP-39
//! test vectors) are not reported: they fill test fixtures in real
//! repositories and leak nothing.
//!
//! Speed: the scan probes one byte per candidate length (as `find_runs`
//! does), so prose with no long digit or word runs costs little.

use sha2::{Digest, Sha256};

use crate::engine::Hit;
use crate::Encoding;

/// Detector id of payment card numbers (PAN).
pub(crate) const PAYMENT_CARD: &str = "payment-card-number";
/// Detector id of International Bank Account Numbers.
pub(crate) const IBAN: &str = "iban";
/// Detector id of BIP-39 mnemonic seed phrases.
pub(crate) const BIP39: &str = "bip39-seed-phrase";
/// All detector ids of this module.
pub(crate) const IDS: &[&str] = &[PAYMENT_CARD, IBAN, BIP39];

/// Which of this module's detectors are on.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Enabled {
    pub card: bool,
    pub iban: bool,
    pub bip39: bool,
}

impl Enabled {
    pub(crate) fn from_disabled(disabled: &[String]) -> Enabled {
        let on = |id: &str| !disabled.iter().any(|d| d == id);
        Enabled {
            card: on(PAYMENT_CARD),
            iban: on(IBAN),
            bip39: on(BIP39),
        }
    }
}

const C_DIGIT: u8 = 1;
const C_UPPER: u8 = 2;
const C_LOWER: u8 = 4;
const C_SEP: u8 = 8; // ' ' or '-' inside card numbers and IBANs
const C_WS: u8 = 16; // between BIP-39 words

static CLASS: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut i = 0;
    while i < 256 {
        let b = i as u8;
        t[i] = if b.is_ascii_digit() {
            C_DIGIT
        } else if b.is_ascii_uppercase() {
            C_UPPER
        } else if b.is_ascii_lowercase() {
            C_LOWER
        } else if b == b' ' {
            C_SEP | C_WS
        } else if b == b'-' {
            C_SEP
        } else if b == b'\n' || b == b'\t' || b == b'\r' {
            C_WS
        } else {
            0
        };
        i += 1;
    }
    t
};

/// Shortest card number (13 digits) or IBAN (15 characters).
const NUM_MIN: usize = 13;
/// Shortest phrase looked for. The shortest possible 12-word phrase has 47
/// bytes (three-letter words), but random phrases average 77 bytes with a
/// spread of about 5: one in 10,000 is shorter than 60. Probing every 60
/// bytes instead of 47 saves a fifth of the probes in prose.
const PHRASE_MIN: usize = 60;

/// Scan one view for all enabled data classes.
pub(crate) fn scan(hay: &[u8], on: Enabled, out: &mut Vec<Hit>) {
    if on.card || on.iban {
        for_runs(hay, C_DIGIT | C_UPPER | C_SEP, NUM_MIN, |s, e| {
            if on.card {
                cards_in(hay, s, e, out);
            }
            if on.iban {
                ibans_in(hay, s, e, out);
            }
        });
    }
    if on.bip39 {
        find_phrases(hay, out);
    }
}

/// Call `f` on every maximal run of bytes of `mask` at least `min` long.
/// A byte `min - 1` ahead is probed first: if it is outside the class, no
/// long enough run covers the bytes before it (the trick of `find_runs`).
fn for_runs(hay: &[u8], mask: u8, min: usize, mut f: impl FnMut(usize, usize)) {
    let n = hay.len();
    let is = |i: usize| CLASS[hay[i] as usize] & mask != 0;
    let mut i = 0;
    while i + min <= n {
        let j = i + min - 1;
        if !is(j) {
            i = j + 1;
            continue;
        }
        // A number never ends in a separator: a space or dash at j not
        // followed by a digit or letter is no part of one (most spaces in prose).
        if CLASS[hay[j] as usize] & C_SEP != 0
            && hay
                .get(j + 1)
                .is_none_or(|&c| CLASS[c as usize] & (C_DIGIT | C_UPPER) == 0)
        {
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
        if e - s >= min {
            f(s, e);
        }
        i = e + 1;
    }
}

fn alnum_at(hay: &[u8], i: usize) -> bool {
    hay.get(i).is_some_and(|b| b.is_ascii_alphanumeric())
}

/// Not glued to a word, a decimal fraction or a longer number on the left.
fn clean_left(hay: &[u8], s: usize) -> bool {
    s == 0 || !(hay[s - 1].is_ascii_alphanumeric() || hay[s - 1] == b'.' || hay[s - 1] == b'_')
}

/// Not glued to a word or a longer number (`1234.5` counts as glued) on the right.
fn clean_right(hay: &[u8], e: usize) -> bool {
    match hay.get(e) {
        None => true,
        Some(b) if b.is_ascii_alphanumeric() || *b == b'_' => false,
        Some(b'.') => !hay.get(e + 1).is_some_and(|b| b.is_ascii_digit()),
        Some(_) => true,
    }
}

// ------------------------------------------------------------------ cards

/// Card numbers in a run: groups of digits joined by single `' '`/`'-'`
/// (one separator kind per number), 13-19 digits in all, starting and
/// ending at group boundaries.
fn cards_in(hay: &[u8], s: usize, e: usize, out: &mut Vec<Hit>) {
    // digit groups (start, end) of the run
    let mut groups: Vec<(usize, usize)> = Vec::new();
    let mut i = s;
    while i < e {
        if hay[i].is_ascii_digit() {
            let gs = i;
            while i < e && hay[i].is_ascii_digit() {
                i += 1;
            }
            groups.push((gs, i));
        } else {
            i += 1;
        }
    }
    for a in 0..groups.len() {
        let (gs, _) = groups[a];
        // Inside a hyphenated id (`112-4567890-1234567`) a number is a part,
        // not a card; after a space it may well be one (`2024-05-01 4539 ...`).
        if !clean_left(hay, gs) || (gs >= 2 && hay[gs - 1] == b'-' && hay[gs - 2].is_ascii_digit())
        {
            continue;
        }
        let mut digits = 0;
        let mut sep = 0u8;
        for b in a..groups.len() {
            let (bs, be) = groups[b];
            if b > a {
                // exactly one separator between groups, always the same kind
                let prev_end = groups[b - 1].1;
                if bs != prev_end + 1 || (sep != 0 && hay[prev_end] != sep) {
                    break;
                }
                sep = hay[prev_end];
            }
            digits += be - bs;
            if digits > 19 {
                break;
            }
            // A bare 17-19 digit number is far more often a 64-bit id than
            // one of the rare long card numbers: those count only grouped.
            // A bare 13-16 digit number passes Luhn and the IIN table about
            // one time in 50 by chance (ids, random data): it counts only
            // after a card word. Grouped digits are a card's printed form.
            let bare = b == a;
            let long_bare = digits > 16 && bare;
            if digits >= 13
                && !long_bare
                && clean_right(hay, be)
                && is_card(&hay[gs..be])
                && (!bare || card_context(hay, gs))
            {
                out.push(Hit {
                    det: PAYMENT_CARD,
                    start: gs,
                    end: be,
                    enc: Encoding::Raw,
                });
                break;
            }
        }
    }
}

/// A card word (`card`, `pan`, `cvv`, `visa`, ...) in the 48 bytes before `s`.
fn card_context(hay: &[u8], s: usize) -> bool {
    const WORDS: &[&[u8]] = &[
        b"card",
        b"pan",
        b"ccn",
        b"cc_",
        b"cc-",
        b"ccnum",
        b"credit",
        b"debit",
        b"visa",
        b"master",
        b"amex",
        b"discover",
        b"jcb",
        b"diners",
        b"unionpay",
        b"cvv",
        b"cvc",
        b"expir",
        b"payment",
    ];
    let w = &hay[s.saturating_sub(48)..s];
    WORDS
        .iter()
        .any(|k| w.windows(k.len()).any(|x| x.eq_ignore_ascii_case(k)))
}

/// Luhn-valid, issued by a known network at a length it uses, and not a
/// published test number. `s` holds digits and separators only.
fn is_card(s: &[u8]) -> bool {
    let mut d = [0u8; 19];
    let mut n = 0;
    for &b in s {
        if b.is_ascii_digit() {
            if n == 19 {
                return false;
            }
            d[n] = b - b'0';
            n += 1;
        }
    }
    let d = &d[..n];
    known_network(d) && luhn(d) && !test_card(d)
}

fn luhn(d: &[u8]) -> bool {
    let mut sum = 0u32;
    for (k, &x) in d.iter().rev().enumerate() {
        let x = u32::from(x);
        sum += if k % 2 == 1 {
            let y = x * 2;
            if y > 9 {
                y - 9
            } else {
                y
            }
        } else {
            x
        };
    }
    sum.is_multiple_of(10)
}

fn prefix(d: &[u8], k: usize) -> u32 {
    d.iter().take(k).fold(0, |a, &x| a * 10 + u32::from(x))
}

/// The IIN ranges and lengths of Visa, Mastercard (51-55 and 2221-2720),
/// Amex, Discover, JCB, Diners Club and UnionPay.
fn known_network(d: &[u8]) -> bool {
    let n = d.len();
    let (p1, p2, p3, p4, p6) = (
        prefix(d, 1),
        prefix(d, 2),
        prefix(d, 3),
        prefix(d, 4),
        prefix(d, 6),
    );
    let visa = p1 == 4 && matches!(n, 13 | 16 | 19);
    let mastercard = ((51..=55).contains(&p2) || (2221..=2720).contains(&p4)) && n == 16;
    let amex = matches!(p2, 34 | 37) && n == 15;
    let discover =
        (p4 == 6011 || (644..=649).contains(&p3) || p2 == 65 || (622126..=622925).contains(&p6))
            && (16..=19).contains(&n);
    let jcb = (3528..=3589).contains(&p4) && (16..=19).contains(&n);
    let diners = ((300..=305).contains(&p3) || p4 == 3095 || matches!(p2, 36 | 38 | 39))
        && (14..=19).contains(&n);
    let unionpay = p2 == 62 && (16..=19).contains(&n);
    visa || mastercard || amex || discover || jcb || diners || unionpay
}

/// Published test card numbers (Stripe, Adyen, Braintree, PayPal, network
/// docs). Numbers made of three or fewer distinct digits (`4111 1111 1111
/// 1111`, `4242...`, `5555 5555 5555 4444`, `4000 0000 0000 0002`) are
/// placeholders too; a real card number has more variety.
fn test_card(d: &[u8]) -> bool {
    const LIST: &[&[u8]] = &[
        b"4012888888881881",
        b"4222222222222",
        b"4000056655665556",
        b"4000002500003155",
        b"4000002760003184",
        b"4000008400001629",
        b"4000003800000446",
        b"4917610000000000",
        b"4988438843884305",
        b"4462030000000000",
        b"4917484589897107",
        b"4035501000000008",
        b"4005519200000004",
        b"4009348888881881",
        b"4012000033330026",
        b"4012000077777777",
        b"4217651111111119",
        b"4500600000000061",
        b"4003830171874018",
        b"5105105105105100",
        b"5200828282828210",
        b"5431111111111111",
        b"5454545454545454",
        b"5425233430109903",
        b"2223003122003222",
        b"2223000048400011",
        b"2222400070000005",
        b"5101180000000007",
        b"5555555555554444",
        b"378282246310005",
        b"371449635398431",
        b"378734493671000",
        b"370000000000002",
        b"340000000000009",
        b"6011111111111117",
        b"6011000990139424",
        b"6011000000000012",
        b"6011981111111113",
        b"6445644564456445",
        b"3530111333300000",
        b"3566002020360505",
        b"3566111111111113",
        b"3569990010095841",
        b"30569309025904",
        b"38520000023237",
        b"36227206271667",
        b"36006666333344",
        b"36259600000004",
        b"6200000000000005",
        b"6205500000000000004",
        b"6243030000000001",
        b"6212345678901232",
        b"6250941006528599",
        b"6212345678901265",
    ];
    let mut seen = [false; 10];
    for &x in d {
        seen[x as usize] = true;
    }
    if seen.iter().filter(|&&v| v).count() <= 3 {
        return true;
    }
    LIST.iter()
        .any(|t| t.len() == d.len() && t.iter().zip(d).all(|(a, b)| a - b'0' == *b))
}

// ------------------------------------------------------------------ IBANs

/// IBAN length by country code (ISO 13616 registry).
const IBAN_LEN: &[(&[u8; 2], usize)] = &[
    (b"AD", 24),
    (b"AE", 23),
    (b"AL", 28),
    (b"AT", 20),
    (b"AZ", 28),
    (b"BA", 20),
    (b"BE", 16),
    (b"BG", 22),
    (b"BH", 22),
    (b"BI", 27),
    (b"BR", 29),
    (b"BY", 28),
    (b"CH", 21),
    (b"CR", 22),
    (b"CY", 28),
    (b"CZ", 24),
    (b"DE", 22),
    (b"DJ", 27),
    (b"DK", 18),
    (b"DO", 28),
    (b"EE", 20),
    (b"EG", 29),
    (b"ES", 24),
    (b"FI", 18),
    (b"FK", 18),
    (b"FO", 18),
    (b"FR", 27),
    (b"GB", 22),
    (b"GE", 22),
    (b"GI", 23),
    (b"GL", 18),
    (b"GR", 27),
    (b"GT", 28),
    (b"HN", 28),
    (b"HR", 21),
    (b"HU", 28),
    (b"IE", 22),
    (b"IL", 23),
    (b"IQ", 23),
    (b"IS", 26),
    (b"IT", 27),
    (b"JO", 30),
    (b"KW", 30),
    (b"KZ", 20),
    (b"LB", 28),
    (b"LC", 32),
    (b"LI", 21),
    (b"LT", 20),
    (b"LU", 20),
    (b"LV", 21),
    (b"LY", 25),
    (b"MC", 27),
    (b"MD", 24),
    (b"ME", 22),
    (b"MK", 19),
    (b"MN", 20),
    (b"MR", 27),
    (b"MT", 31),
    (b"MU", 30),
    (b"NI", 28),
    (b"NL", 18),
    (b"NO", 15),
    (b"OM", 23),
    (b"PK", 24),
    (b"PL", 28),
    (b"PS", 29),
    (b"PT", 25),
    (b"QA", 29),
    (b"RO", 24),
    (b"RS", 22),
    (b"RU", 33),
    (b"SA", 24),
    (b"SC", 31),
    (b"SD", 18),
    (b"SE", 24),
    (b"SI", 19),
    (b"SK", 24),
    (b"SM", 27),
    (b"SO", 23),
    (b"ST", 25),
    (b"SV", 28),
    (b"TL", 23),
    (b"TN", 24),
    (b"TR", 26),
    (b"UA", 29),
    (b"VA", 22),
    (b"VG", 24),
    (b"XK", 20),
    (b"YE", 30),
];

/// Example IBANs printed in the standard, by SWIFT and in bank docs.
const TEST_IBANS: &[&[u8]] = &[
    b"DE89370400440532013000",
    b"DE02120300000000202051",
    b"DE75512108001245126199",
    b"GB82WEST12345698765432",
    b"GB29NWBK60161331926819",
    b"GB33BUKB20201555555555",
    b"FR1420041010050500013M02606",
    b"FR7630006000011234567890189",
    b"NL91ABNA0417164300",
    b"NL02ABNA0123456789",
    b"CH9300762011623852957",
    b"BE68539007547034",
    b"ES9121000418450200051332",
    b"IT60X0542811101000000123456",
    b"AT611904300234573201",
    b"NO9386011117947",
    b"SE4550000000058398257466",
    b"PL61109010140000071219812874",
    b"IE29AIBK93115212345678",
    b"DK5000400440116243",
    b"FI2112345600000785",
];

/// IBANs in a run: two capital letters, two check digits, then the BBAN of
/// the country's length, either solid or in groups of four split by single
/// spaces.
fn ibans_in(hay: &[u8], s: usize, e: usize, out: &mut Vec<Hit>) {
    let mut i = s;
    while i + 4 <= e {
        let c = &hay[i..i + 4];
        if !(c[0].is_ascii_uppercase()
            && c[1].is_ascii_uppercase()
            && c[2].is_ascii_digit()
            && c[3].is_ascii_digit()
            && (i == 0 || !(hay[i - 1].is_ascii_alphanumeric() || hay[i - 1] == b'_')))
        {
            i += 1;
            continue;
        }
        let Some(&(_, len)) = IBAN_LEN.iter().find(|(cc, _)| cc[..] == c[..2]) else {
            i += 1;
            continue;
        };
        let mut buf = [0u8; 34];
        let mut n = 0;
        let mut j = i;
        while j < e && n < len {
            let b = hay[j];
            if b.is_ascii_digit() || b.is_ascii_uppercase() {
                buf[n] = b;
                n += 1;
                j += 1;
            } else if b == b' ' && n % 4 == 0 && alnum_at(hay, j + 1) {
                // printed form: groups of four split by single spaces
                j += 1;
            } else {
                break;
            }
        }
        if n == len
            && !alnum_at(hay, j)
            && iban_checksum(&buf[..n])
            && !TEST_IBANS.contains(&&buf[..n])
        {
            out.push(Hit {
                det: IBAN,
                start: i,
                end: j,
                enc: Encoding::Raw,
            });
            i = j;
        } else {
            i += 1;
        }
    }
}

/// ISO 7064 mod 97-10: the country and check digits moved to the end,
/// letters as 10..35, the number is 1 mod 97.
fn iban_checksum(s: &[u8]) -> bool {
    let mut r = 0u32;
    for &b in s[4..].iter().chain(&s[..4]) {
        r = match b {
            b'0'..=b'9' => (r * 10 + u32::from(b - b'0')) % 97,
            b'A'..=b'Z' => (r * 100 + u32::from(b - b'A') + 10) % 97,
            _ => return false,
        };
    }
    r == 1
}

// ----------------------------------------------------------- seed phrases

/// A word of up to 8 letters packed big-endian into a u64: the packing keeps
/// the lexicographic order, so the sorted wordlist stays sorted.
fn pack(w: &[u8]) -> Option<u64> {
    if w.len() > 8 {
        return None;
    }
    let mut k = 0u64;
    for i in 0..8 {
        k = (k << 8) | u64::from(w.get(i).copied().unwrap_or(0));
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

fn prefix2(w: &[u8]) -> usize {
    usize::from(w[0] - b'a') * 26 + usize::from(w[1] - b'a')
}

/// Index of `w` in the English BIP-39 wordlist (2048 sorted words of 3-8
/// lower-case letters, so the index fits u16).
fn word_index(w: &[u8]) -> Option<u16> {
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
    if w.len() < 3 || !w[..2].iter().all(u8::is_ascii_lowercase) {
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

/// Letters (lower-case) right before `p`.
fn letters_before(hay: &[u8], p: usize) -> usize {
    hay[..p]
        .iter()
        .rev()
        .take_while(|&&c| CLASS[c as usize] & C_LOWER != 0)
        .count()
}

/// Letters (lower-case) from `p` on.
fn letters_from(hay: &[u8], p: usize) -> usize {
    hay[p..]
        .iter()
        .take_while(|&&c| CLASS[c as usize] & C_LOWER != 0)
        .count()
}

/// Whitespace bytes (at most 3) right before `p` / from `p` on.
fn ws_before(hay: &[u8], p: usize) -> usize {
    hay[..p]
        .iter()
        .rev()
        .take(3)
        .take_while(|&&c| CLASS[c as usize] & C_WS != 0)
        .count()
}

fn ws_from(hay: &[u8], p: usize) -> usize {
    hay[p..]
        .iter()
        .take(3)
        .take_while(|&&c| CLASS[c as usize] & C_WS != 0)
        .count()
}

/// Hash of a word's length and first four letters (which tell every
/// English BIP-39 word apart) into 16 bits.
fn bloom_hash(w: &[u8]) -> usize {
    let mut k = [0u8; 4];
    for (d, c) in k.iter_mut().zip(w) {
        *d = *c;
    }
    let x = u32::from_le_bytes(k) ^ ((w.len() as u32) << 27);
    (x.wrapping_mul(0x9E37_79B1) >> 16) as usize
}

/// Maybe on the English wordlist: 3-8 letters and the word's bit set in a
/// 64 Kibit table of the list (about 3 % of other words pass). A cheap
/// first test; `phrases_in` looks the words up for real.
fn maybe_listed(w: &[u8]) -> bool {
    static BLOOM: std::sync::OnceLock<Vec<u64>> = std::sync::OnceLock::new();
    let t = BLOOM.get_or_init(|| {
        let mut t = vec![0u64; 1024];
        for x in bip39::Language::English.word_list() {
            let h = bloom_hash(x.as_bytes());
            t[h / 64] |= 1 << (h % 64);
        }
        t
    });
    if !(3..=8).contains(&w.len()) {
        return false;
    }
    let h = bloom_hash(w);
    t[h / 64] & (1 << (h % 64)) != 0
}

/// Stretches of 12 or more words that may be on the wordlist (one or two
/// whitespace bytes apart), handed to `phrases_in`. Probes one byte per `PHRASE_MIN` as
/// `for_runs` does, and also skips when the word at the probe is not on the
/// list: every phrase starting in `[i, j]` covers `j`, so it would contain
/// that word. Most English words (`the`, `of`, `and`, most long words) are
/// not on the list, so most probes look at one or two words.
fn find_phrases(hay: &[u8], out: &mut Vec<Hit>) {
    let n = hay.len();
    let mut i = 0;
    while i + PHRASE_MIN <= n {
        let j = i + PHRASE_MIN - 1;
        // whitespace at j: the phrase holds the word after it
        let w = j + ws_from(hay, j);
        if w >= n || CLASS[hay[w] as usize] & C_LOWER == 0 {
            i = w + 1;
            continue;
        }
        let a = w - letters_before(hay, w);
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
            if k == 0 || k == 3 {
                break;
            }
            let len = letters_before(hay, l - k);
            if !maybe_listed(&hay[l - k - len..l - k]) {
                break;
            }
            l -= k + len;
            count += 1;
        }
        let mut r = b;
        loop {
            let k = ws_from(hay, r);
            if k == 0 || k == 3 {
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

/// Seed phrases in a run of lower-case words: a maximal stretch of 12 or
/// more wordlist words (3-8 letters) whose whole, or first or last 12/15/18/21/24
/// words with at most two words to spare, carry a valid checksum.
fn phrases_in(hay: &[u8], s: usize, e: usize, out: &mut Vec<Hit>) {
    // Words of the right shape (3-8 letters) are collected first; only a
    // stretch of 12 or more is looked up in the wordlist, which keeps prose
    // (full of short and long words) cheap.
    let mut shaped: Vec<(usize, usize)> = Vec::new();
    let mut words: Vec<(usize, usize, u16)> = Vec::new();
    let mut i = s;
    while i < e {
        if CLASS[hay[i] as usize] & C_LOWER == 0 {
            // more than two whitespace bytes (a blank line) ends a phrase
            let ws = i;
            while i < e && CLASS[hay[i] as usize] & C_LOWER == 0 {
                i += 1;
            }
            if i - ws > 2 {
                lookup_stretch(hay, &mut shaped, &mut words, out);
            }
            continue;
        }
        let ws = i;
        while i < e && CLASS[hay[i] as usize] & C_LOWER != 0 {
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
fn lookup_stretch(
    hay: &[u8],
    shaped: &mut Vec<(usize, usize)>,
    words: &mut Vec<(usize, usize, u16)>,
    out: &mut Vec<Hit>,
) {
    if shaped.len() >= 12 {
        for &(ws, we) in shaped.iter() {
            match word_index(&hay[ws..we]) {
                Some(k) => words.push((ws, we, k)),
                None => flush_phrase(words, out),
            }
        }
        flush_phrase(words, out);
    }
    shaped.clear();
}

fn flush_phrase(words: &mut Vec<(usize, usize, u16)>, out: &mut Vec<Hit>) {
    let k = words.len();
    if k >= 12 {
        // whole stretch first, then the longest prefix / suffix that checks
        let mut found = None;
        if k <= 24 && k.is_multiple_of(3) && checksum_ok(&words[..]) {
            found = Some((0, k));
        }
        for len in [24, 21, 18, 15, 12] {
            // At most two extra words around a phrase ("wallet words ..."):
            // long keyword lists would otherwise get many tries at 1 in 16.
            if found.is_some() || len > k || k - len > 2 {
                continue;
            }
            if checksum_ok(&words[..len]) {
                found = Some((0, len));
            } else if checksum_ok(&words[k - len..]) {
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

/// The phrase's bits: 11 per word, entropy first, then `n/3` checksum bits
/// (24 words = 264 bits = 33 bytes).
fn phrase_bits(words: &[(usize, usize, u16)]) -> zeroize::Zeroizing<[u8; 33]> {
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
fn checksum_ok(words: &[(usize, usize, u16)]) -> bool {
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
fn test_vector(words: &[(usize, usize, u16)]) -> bool {
    let ent_bytes = (words.len() * 11 - words.len() / 3) / 8;
    let bits = phrase_bits(words);
    bits[..ent_bytes].iter().all(|&b| b == bits[0])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn luhn_and_networks() {
        let d = |s: &str| s.bytes().map(|b| b - b'0').collect::<Vec<_>>();
        assert!(luhn(&d("4539578763621486")));
        assert!(!luhn(&d("4539578763621487")));
        assert!(known_network(&d("2720990000000007")));
        assert!(!known_network(&d("2721000000000000")));
        assert!(!known_network(&d("1234567812345670")));
        assert!(test_card(&d("4111111111111111")));
        assert!(!test_card(&d("4539578763621486")));
    }

    #[test]
    fn iban_mod97() {
        assert!(iban_checksum(b"DE89370400440532013000"));
        assert!(!iban_checksum(b"DE89370400440532013001"));
    }

    #[test]
    fn wordlist_is_sorted_english() {
        assert_eq!(word_index(b"abandon"), Some(0));
        assert_eq!(word_index(b"zoo"), Some(2047));
        assert_eq!(word_index(b"the"), None);
    }
}
