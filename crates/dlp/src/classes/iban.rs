//! IBANs: the country length table plus mod 97, published examples allowed.

use super::*;

// ------------------------------------------------------------------ IBANs

/// IBAN length by country code (ISO 13616 registry).
pub(super) const IBAN_LEN: &[(&[u8; 2], usize)] = &[
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
pub(super) const TEST_IBANS: &[&[u8]] = &[
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

/// IBANs in a run: two letters, two check digits, then the BBAN of the
/// country's length, either solid or in groups of four split by single
/// spaces, dashes or `+` (a form's space); either letter case (`de89 3704 …` is the same account).
/// A lower-case IBAN starts before the run (lower-case letters are not part
/// of runs: prose would be one long run), so up to an IBAN's length of
/// letters and digits before `s` is looked at too.
pub(super) fn ibans_in(hay: &[u8], s: usize, e: usize, out: &mut Vec<Hit>) {
    let back = hay[s.saturating_sub(MAX_IBAN)..s]
        .iter()
        .rev()
        .take_while(|b| b.is_ascii_alphanumeric() || matches!(b, b' ' | b'-' | b'+'))
        .count();
    let mut i = s - back;
    while i + 4 <= e {
        let c = &hay[i..i + 4];
        // Neither here nor one byte on can an IBAN start when the second
        // byte is no letter (most bytes of a run of digits).
        if !c[1].is_ascii_alphabetic() {
            i += 2;
            continue;
        }
        if !(c[0].is_ascii_alphabetic()
            && c[1].is_ascii_alphabetic()
            && c[2].is_ascii_digit()
            && c[3].is_ascii_digit()
            && (i == 0 || !(hay[i - 1].is_ascii_alphanumeric() || hay[i - 1] == b'_')))
        {
            i += 1;
            continue;
        }
        let country = [c[0].to_ascii_uppercase(), c[1].to_ascii_uppercase()];
        let Some(&(_, len)) = IBAN_LEN.iter().find(|(cc, _)| **cc == country) else {
            i += 1;
            continue;
        };
        let mut buf = [0u8; 34];
        let mut n = 0;
        let mut j = i;
        let mut sep = 0u8;
        while j < hay.len() && n < len {
            let b = hay[j];
            if b.is_ascii_alphanumeric() {
                buf[n] = b.to_ascii_uppercase();
                n += 1;
                j += 1;
            } else if matches!(b, b' ' | b'-' | b'+')
                && (sep == 0 || sep == b)
                && n % 4 == 0
                && alnum_at(hay, j + 1)
            {
                // printed form: groups of four split by one kind of separator
                sep = b;
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

/// Longest IBAN printed in groups (34 characters and 8 separators).
const MAX_IBAN: usize = 42;

/// ISO 7064 mod 97-10: the country and check digits moved to the end,
/// letters as 10..35, the number is 1 mod 97.
pub(super) fn iban_checksum(s: &[u8]) -> bool {
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
