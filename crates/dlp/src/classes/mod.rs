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

use crate::hit::Hit;
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
/// Between BIP-39 words: whitespace, digits and the punctuation a person
/// lists words with (`,` `-` `+` `"` `[` `1.` `%20` ...); not code's `=` `{`
/// `<` `&` `\` (a probe there need not look at the next word).
const C_WS: u8 = 16;
/// Other separators of printed card groups: `.` `/` `_` `,` a quote (array
/// elements `"4539", "4459"`), a tab, `+` (a space in a form body).
const C_NSEP: u8 = 32;
/// Either letter case (BIP-39 words are looked up case-folded).
const C_ALPHA: u8 = C_UPPER | C_LOWER;

static CLASS: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut i = 0;
    while i < 256 {
        let b = i as u8;
        t[i] = if b.is_ascii_digit() {
            C_DIGIT | C_WS
        } else if b.is_ascii_uppercase() {
            C_UPPER
        } else if b.is_ascii_lowercase() {
            C_LOWER
        } else if b == b' ' || b == b'-' {
            C_SEP | C_WS
        } else if matches!(b, b'.' | b'/' | b'_' | b',' | b'"' | b'\'' | b'\t' | b'+') {
            C_NSEP | C_WS
        } else if matches!(
            b,
            b'\n' | b'\r' | b'[' | b']' | b'(' | b')' | b':' | b';' | b'|' | b'*' | b'#' | b'%'
        ) {
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
    // Most decoded views (a JWT's header, a cookie's pieces) are too short
    // for any class.
    if hay.len() < NUM_MIN {
        return;
    }
    if on.card || on.iban {
        let mut groups = Vec::new();
        for_runs(hay, C_DIGIT | C_UPPER | C_SEP | C_NSEP, NUM_MIN, |s, e| {
            if on.card {
                cards_in(hay, s, e, &mut groups, out);
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
        // A number never ends in a separator: a space, dash or other
        // separator at j not followed by a digit, letter or another separator
        // (`4539  4459`, `4539", "4459`) is no part of one (most spaces in prose).
        if CLASS[hay[j] as usize] & (C_SEP | C_NSEP) != 0
            && hay
                .get(j + 1)
                .is_none_or(|&c| CLASS[c as usize] & (C_DIGIT | C_UPPER | C_SEP | C_NSEP) == 0)
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

mod cards;
mod iban;
mod seed;

use cards::*;
use iban::*;
use seed::*;

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
    fn word_lengths_match_a_byte_by_byte_count() {
        let hay = b"Ab abandon zoo{x} abcdefghijklmnopq`z\xffab\x80cd ability able";
        for p in 0..=hay.len() {
            let before = hay[..p]
                .iter()
                .rev()
                .take_while(|c| c.is_ascii_alphabetic())
                .count();
            let from = hay[p..]
                .iter()
                .take_while(|c| c.is_ascii_alphabetic())
                .count();
            assert_eq!(letters_before(hay, p), before, "before {p}");
            assert_eq!(letters_from(hay, p), from, "from {p}");
        }
        for b in 0..=255u8 {
            let hay = [b'a', b, b'a', b'a', b'a', b'a', b'a', b'a', b'a'];
            assert_eq!(
                letters_from(&hay, 0),
                if b.is_ascii_alphabetic() { 9 } else { 1 },
                "{b}"
            );
            assert_eq!(
                letters_before(&hay, 9),
                if b.is_ascii_alphabetic() { 9 } else { 7 },
                "{b}"
            );
        }
    }

    /// The probe's quick test passes every wordlist word in any case (so a
    /// phrase is never skipped by it), and the four-byte read hashes as the
    /// byte-by-byte form did.
    #[test]
    fn bloom_passes_every_listed_word() {
        let t = bloom_table();
        for w in bip39::Language::English.word_list() {
            let upper = w.to_ascii_uppercase();
            for form in [w.as_bytes(), upper.as_bytes()] {
                assert!(in_bloom(t, form), "{w}");
                let at = |i: usize| form.get(i).map_or(0, |b| b | 0x20);
                let x =
                    u32::from_le_bytes([at(0), at(1), at(2), at(3)]) ^ ((form.len() as u32) << 27);
                assert_eq!(
                    bloom_hash(form),
                    (x.wrapping_mul(0x9E37_79B1) >> 16) as usize
                );
            }
        }
        assert!(!in_bloom(t, b"ab") && !in_bloom(t, b"abandoned"));
    }

    /// The skips inside a run (two bytes on when the second is no letter;
    /// no start group with fewer than 13 digits after it) miss no IBAN or
    /// card, whatever the parity of its start inside the run.
    #[test]
    fn skips_inside_runs_miss_no_iban_or_card() {
        let on = Enabled {
            card: true,
            iban: true,
            bip39: false,
        };
        let found = |hay: &[u8], det: &str| {
            let mut out = Vec::new();
            scan(hay, on, &mut out);
            out.iter().any(|h| h.det == det)
        };
        for pad in 0..9 {
            let digits = "7".repeat(pad);
            for iban in [
                "GB55WEST12345698765433",
                "DE94 3704 0044 0532 0130 07",
                "de94370400440532013007",
            ] {
                for lead in ["REF 1234", "ID", "", "X-9 "] {
                    let hay = format!("{lead}{digits} {iban} end");
                    assert!(found(hay.as_bytes(), IBAN), "{hay}");
                }
            }
            for card in ["4539 5787 6362 1486", "4539-5787-6362-1486"] {
                let hay = format!("paid {digits} {card} ok");
                assert!(found(hay.as_bytes(), PAYMENT_CARD), "{hay}");
                let hay = format!("card {digits}{}", card.replace([' ', '-'], ""));
                assert_eq!(found(hay.as_bytes(), PAYMENT_CARD), pad == 0, "{hay}");
            }
        }
    }

    #[test]
    fn wordlist_is_sorted_english() {
        assert_eq!(word_index(b"abandon"), Some(0));
        assert_eq!(word_index(b"zoo"), Some(2047));
        assert_eq!(word_index(b"Abandon"), Some(0));
        assert_eq!(word_index(b"ZOO"), Some(2047));
        assert_eq!(word_index(b"the"), None);
    }
}
