//! Payment card numbers: Luhn plus the IIN/length table, published test cards allowed.

use super::*;

// ------------------------------------------------------------------ cards

/// Card numbers in a run: groups of digits joined by one separator
/// (`' '`, `'-'`, or a printed form's `.` `/` `_` double space or quoted
/// array elements), the same between every two groups, 13-19 digits in all,
/// starting and ending at group boundaries.
pub(super) fn cards_in(
    hay: &[u8],
    s: usize,
    e: usize,
    groups: &mut Vec<(usize, usize)>,
    out: &mut Vec<Hit>,
) {
    // digit groups (start, end) of the run (the buffer is the caller's, reused)
    groups.clear();
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
    // Digits from each group to the end of the run: a start group with
    // fewer than 13 after it (itself included) can begin no card.
    let mut left: usize = groups.iter().map(|&(gs, ge)| ge - gs).sum();
    for a in 0..groups.len() {
        let (gs, ge) = groups[a];
        if left < 13 {
            break;
        }
        left -= ge - gs;
        // Inside a hyphenated id (`112-4567890-1234567`) a number is a part,
        // not a card; after a space it may well be one (`2024-05-01 4539 ...`).
        if !clean_left(hay, gs) || (gs >= 2 && hay[gs - 1] == b'-' && hay[gs - 2].is_ascii_digit())
        {
            continue;
        }
        let mut digits = 0;
        let mut sep: &[u8] = &[];
        for b in a..groups.len() {
            let (bs, be) = groups[b];
            if b > a {
                // one separator between groups, always the same
                let this = &hay[groups[b - 1].1..bs];
                if !(b == a + 1 && card_separator(this) || this == sep) {
                    break;
                }
                sep = this;
                // A printed form other than ` ` / `-` has groups of 3-6 digits
                // (what a person types), not the digits of a version or a date.
                if !matches!(sep, b" " | b"-" | b"+")
                    && !(3..=6).contains(&(groups[b - 1].1 - groups[b - 1].0))
                {
                    break;
                }
            }
            digits += be - bs;
            if digits > 19 {
                break;
            }
            // A bare 17-19 digit number is far more often a 64-bit id than
            // one of the rare long card numbers: those count only grouped.
            // A bare 13-16 digit number passes Luhn and the IIN table about
            // one time in 50 by chance (ids, random data): it counts only
            // after a card word, and so do numbers split as elements of an
            // unquoted list (`[4539, 4459, ...]`: any list of 4-digit numbers).
            // Grouped digits are a card's printed form.
            let bare = b == a || matches!(sep, b"," | b", ");
            let long_bare = digits > 16 && b == a;
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

/// Bytes that may stand between two printed card groups: one of ` ` `-` `.`
/// `/` `_` `\t` `+`, two spaces, or the junction of list elements (`", "`,
/// `","`, `', '`, `, `).
fn card_separator(sep: &[u8]) -> bool {
    match sep {
        [c] => matches!(c, b' ' | b'-' | b'.' | b'/' | b'_' | b'\t' | b',' | b'+'),
        b"  " | b", " => true,
        [q, b',', q2] | [q, b',', b' ', q2] => q == q2 && matches!(q, b'"' | b'\''),
        _ => false,
    }
}

/// A card word (`card`, `pan`, `cvv`, `visa`, ...) in the 48 bytes before `s`.
pub(super) fn card_context(hay: &[u8], s: usize) -> bool {
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
        || short_card_key(w)
}

/// `cc` as a word of its own (`{"cc": "4539..."}`, `cc=4539...`): a short key
/// that is no part of a longer word (`acc`, `ccache`).
fn short_card_key(w: &[u8]) -> bool {
    w.windows(2).enumerate().any(|(k, x)| {
        x.eq_ignore_ascii_case(b"cc")
            && (k == 0 || !w[k - 1].is_ascii_alphanumeric())
            && !w.get(k + 2).is_some_and(u8::is_ascii_alphanumeric)
    })
}

/// Luhn-valid, issued by a known network at a length it uses, and not a
/// published test number. `s` holds digits and separators only.
pub(super) fn is_card(s: &[u8]) -> bool {
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

pub(super) fn luhn(d: &[u8]) -> bool {
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

pub(super) fn prefix(d: &[u8], k: usize) -> u32 {
    d.iter().take(k).fold(0, |a, &x| a * 10 + u32::from(x))
}

/// The IIN ranges and lengths of Visa, Mastercard (51-55 and 2221-2720),
/// Amex, Discover, JCB, Diners Club and UnionPay.
pub(super) fn known_network(d: &[u8]) -> bool {
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
pub(super) fn test_card(d: &[u8]) -> bool {
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
