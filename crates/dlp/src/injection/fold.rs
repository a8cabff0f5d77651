//! Character folding before judging: what a model reads, not how it was spelled.
//!
//! Invisible characters are dropped, look-alike letters folded to ASCII, quotes and spaces
//! unified. Each fold says whether it was an *obfuscation* (a zero-width or bidi control, a
//! fullwidth / mathematical / Cyrillic / Greek letter standing in for a Latin one): inside an
//! instruction that is itself the signal (`injection-obfuscated`).

/// What one input character becomes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Folded {
    /// Dropped; `obfuscation` when it is an invisible control that can split a word.
    Drop { obfuscation: bool },
    /// Whitespace (collapsed later); `line` for line breaks.
    Space { line: bool },
    /// An ASCII byte (not lower-cased).
    Ascii { byte: u8, obfuscation: bool },
    /// Any other character, kept.
    Other(char),
    /// A Unicode tag character (U+E0020..U+E007E): invisible ASCII ("ASCII smuggling").
    Tag(u8),
}

/// Folds one character.
pub(crate) fn fold(c: char) -> Folded {
    let cp = c as u32;
    if cp < 0x80 {
        return match c {
            '\n' | '\r' | '\x0b' | '\x0c' => Folded::Space { line: true },
            ' ' | '\t' => Folded::Space { line: false },
            c if c.is_ascii_control() => Folded::Drop { obfuscation: false },
            _ => Folded::Ascii {
                byte: cp as u8,
                obfuscation: false,
            },
        };
    }
    let ascii = |b: u8| Folded::Ascii {
        byte: b,
        obfuscation: true,
    };
    let plain = |b: u8| Folded::Ascii {
        byte: b,
        obfuscation: false,
    };
    match cp {
        // Soft hyphen and variation selectors: ordinary typography and emoji, dropped quietly.
        0xAD | 0xFE00..=0xFE0F | 0xE0100..=0xE01EF => Folded::Drop { obfuscation: false },
        // Zero-width, joiners, bidi marks / embeddings / overrides / isolates, word joiner,
        // invisible operators, BOM, Mongolian vowel separator, Hangul fillers.
        0x200B..=0x200F
        | 0x202A..=0x202E
        | 0x2060..=0x2064
        | 0x2066..=0x2069
        | 0xFEFF
        | 0x180E
        | 0x034F
        | 0x061C
        | 0x115F
        | 0x1160
        | 0x3164
        | 0xFFA0 => Folded::Drop { obfuscation: true },
        // Combining marks stacked on letters (`i\u{301}gnore`): read the base letter.
        0x0300..=0x036F | 0x1AB0..=0x1AFF | 0x1DC0..=0x1DFF | 0x20D0..=0x20FF | 0xFE20..=0xFE2F => {
            Folded::Drop { obfuscation: true }
        }
        0xE0020..=0xE007E => Folded::Tag((cp - 0xE0000) as u8),
        // Accented Latin letters read as their base letter (ordinary in many languages, so
        // not obfuscation).
        0xC0..=0x17F => match latin_base(c) {
            Some(b) => plain(b),
            None => Folded::Other(c),
        },
        0xE0000..=0xE007F => Folded::Drop { obfuscation: true },
        0x2028 | 0x2029 | 0x85 => Folded::Space { line: true },
        0xA0 | 0x1680 | 0x2000..=0x200A | 0x202F | 0x205F | 0x3000 => Folded::Space { line: false },
        // Quotes and dashes: typographic forms of ASCII punctuation (not obfuscation).
        0x201C | 0x201D | 0x201E | 0x201F | 0xAB | 0xBB | 0x2033 => plain(b'"'),
        0x2018 | 0x2019 | 0x201A | 0x201B | 0x2032 => plain(b'\''),
        0x2010..=0x2015 | 0x2212 => plain(b'-'),
        0x2026 => plain(b'.'),
        // Fullwidth letters and digits (punctuation of CJK text stays as it is).
        0xFF10..=0xFF19 | 0xFF21..=0xFF3A | 0xFF41..=0xFF5A => ascii((cp - 0xFEE0) as u8),
        // Fullwidth punctuation that forges structure (`｜`, `＜`, `＞`, `［`, `］`).
        0xFF1C | 0xFF1E | 0xFF3B | 0xFF3D | 0xFF5C => ascii((cp - 0xFEE0) as u8),
        // Mathematical alphanumerics: 𝐢𝐠𝐧𝐨𝐫𝐞, 𝒊𝒈𝒏𝒐𝒓𝒆, ...
        0x1D400..=0x1D6A3 => {
            let i = ((cp - 0x1D400) % 52) as u8;
            ascii(if i < 26 { b'A' + i } else { b'a' + i - 26 })
        }
        0x1D7CE..=0x1D7FF => ascii(b'0' + ((cp - 0x1D7CE) % 10) as u8),
        // Circled and parenthesised letters.
        0x24B6..=0x24CF => ascii(b'A' + (cp - 0x24B6) as u8),
        0x24D0..=0x24E9 => ascii(b'a' + (cp - 0x24D0) as u8),
        0x249C..=0x24B5 => ascii(b'a' + (cp - 0x249C) as u8),
        // Regional indicators (🇮🇬🇳...): flags in pairs, letters to a model.
        0x1F1E6..=0x1F1FF => ascii(b'a' + (cp - 0x1F1E6) as u8),
        _ => match confusable(c).or_else(|| {
            // Only the blocks the table draws from (CJK and other scripts skip the search).
            matches!(cp, 0xB2..=0xB9 | 0x1EB | 0x250..=0x2FF | 0x1D00..=0x1DBF | 0x2070..=0x209F | 0x2100..=0x214F | 0x2C7C | 0xA730..=0xA731)
                .then(|| letter_form(c))
                .flatten()
        }) {
            Some(b) => ascii(b),
            None => Folded::Other(c),
        },
    }
}

/// Small capitals, superscript and subscript (modifier) letters and digits, and the
/// letter-like symbols that fill the holes of the mathematical alphabets.
fn letter_form(c: char) -> Option<u8> {
    const TABLE: [(&str, u8); 36] = [
        ("ᴀᵃₐ", b'a'),
        ("ʙᵇℬ", b'b'),
        ("ᴄᶜℂℭ", b'c'),
        ("ᴅᵈ", b'd'),
        ("ᴇᵉₑℯℰ", b'e'),
        ("ꜰᶠℱ", b'f'),
        ("ɢᵍℊ", b'g'),
        ("ʜʰₕℎℋℌℍ", b'h'),
        ("ɪⁱᵢℐℑ", b'i'),
        ("ᴊʲⱼ", b'j'),
        ("ᴋᵏₖ", b'k'),
        ("ʟˡₗℒ", b'l'),
        ("ᴍᵐₘℳ", b'm'),
        ("ɴⁿₙℕ", b'n'),
        ("ᴏᵒₒℴ", b'o'),
        ("ᴘᵖₚℙ", b'p'),
        ("ǫℚ", b'q'),
        ("ʀʳᵣℛℜℝ", b'r'),
        ("ꜱˢₛ", b's'),
        ("ᴛᵗₜ", b't'),
        ("ᴜᵘᵤ", b'u'),
        ("ᴠᵛᵥ", b'v'),
        ("ᴡʷ", b'w'),
        ("ˣₓ", b'x'),
        ("ʏʸ", b'y'),
        ("ᴢᶻℤℨ", b'z'),
        ("⁰₀", b'0'),
        ("¹₁", b'1'),
        ("²₂", b'2'),
        ("³₃", b'3'),
        ("⁴₄", b'4'),
        ("⁵₅", b'5'),
        ("⁶₆", b'6'),
        ("⁷₇", b'7'),
        ("⁸₈", b'8'),
        ("⁹₉", b'9'),
    ];
    TABLE
        .iter()
        .find(|(set, _)| set.contains(c))
        .map(|(_, b)| *b)
}

/// The base letter of an accented Latin-1 / Latin Extended-A letter.
fn latin_base(c: char) -> Option<u8> {
    const TABLE: [(&str, u8); 15] = [
        ("àáâãäåāăą", b'a'),
        ("çćĉċč", b'c'),
        ("ďđ", b'd'),
        ("èéêëēĕėęě", b'e'),
        ("ĝğġģ", b'g'),
        ("ĥħ", b'h'),
        ("ìíîïĩīĭįı", b'i'),
        ("ĵ", b'j'),
        ("ñńņňŉ", b'n'),
        ("òóôõöøōŏő", b'o'),
        ("ŕŗř", b'r'),
        ("śŝşšſ", b's'),
        ("ţťŧ", b't'),
        ("ùúûüũūŭůűų", b'u'),
        ("ýÿŷ", b'y'),
    ];
    let lower = c.to_lowercase().next().unwrap_or(c);
    TABLE
        .iter()
        .find(|(set, _)| set.contains(lower))
        .map(|(_, b)| *b)
}

/// Cyrillic, Greek and Latin-extension letters that render like a Latin letter.
fn confusable(c: char) -> Option<u8> {
    Some(match c {
        'а' | 'А' | 'α' | 'Α' | 'ɑ' => b'a',
        'В' | 'Β' | 'ь' => b'b',
        'с' | 'С' | 'ϲ' | 'Ϲ' => b'c',
        'ԁ' => b'd',
        'е' | 'Е' | 'Ε' | 'ҽ' => b'e',
        'ɡ' => b'g',
        'һ' | 'Н' | 'Η' => b'h',
        'і' | 'І' | 'ι' | 'Ι' | 'ı' | 'Ӏ' | 'ӏ' => b'i',
        'ј' | 'Ј' | 'ϳ' => b'j',
        'к' | 'К' | 'κ' | 'Κ' => b'k',
        'ℓ' => b'l',
        'М' | 'Μ' => b'm',
        'Ν' | 'ո' => b'n',
        'о' | 'О' | 'ο' | 'Ο' | 'σ' | 'օ' => b'o',
        'р' | 'Р' | 'ρ' | 'Ρ' => b'p',
        'ԛ' => b'q',
        'г' => b'r',
        'ѕ' | 'Ѕ' => b's',
        'Т' | 'Τ' | 'т' => b't',
        'υ' | 'ս' => b'u',
        'ν' | 'ѵ' => b'v',
        'ԝ' | 'ѡ' => b'w',
        'х' | 'Х' | 'χ' | 'Χ' => b'x',
        'у' | 'У' | 'Υ' | 'γ' => b'y',
        'Ζ' => b'z',
        _ => return None,
    })
}

/// Decodes an HTML character reference body (between `&` and `;`).
pub(crate) fn html_entity(name: &[u8]) -> Option<char> {
    if let Some(num) = name.strip_prefix(b"#") {
        let (digits, radix) = match num.first() {
            Some(b'x' | b'X') => (&num[1..], 16),
            _ => (num, 10),
        };
        let text = std::str::from_utf8(digits).ok()?;
        if text.is_empty() || text.len() > 8 {
            return None;
        }
        return char::from_u32(u32::from_str_radix(text, radix).ok()?);
    }
    Some(match name {
        b"amp" => '&',
        b"lt" => '<',
        b"gt" => '>',
        b"quot" => '"',
        b"apos" => '\'',
        b"nbsp" => '\u{a0}',
        b"shy" => '\u{ad}',
        b"zwj" => '\u{200d}',
        b"zwnj" => '\u{200c}',
        b"lrm" => '\u{200e}',
        b"rlm" => '\u{200f}',
        b"ndash" => '–',
        b"mdash" => '—',
        b"lsquo" => '‘',
        b"rsquo" => '’',
        b"ldquo" => '“',
        b"rdquo" => '”',
        b"laquo" => '«',
        b"raquo" => '»',
        b"hellip" => '…',
        b"verbar" | b"vert" => '|',
        b"lsqb" | b"lbrack" => '[',
        b"rsqb" | b"rbrack" => ']',
        b"sol" => '/',
        b"colon" => ':',
        b"period" => '.',
        b"num" => '#',
        b"excl" => '!',
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folds_lookalikes_and_drops_invisibles() {
        assert_eq!(
            fold('і'),
            Folded::Ascii {
                byte: b'i',
                obfuscation: true
            }
        );
        assert_eq!(
            fold('Ｉ'),
            Folded::Ascii {
                byte: b'I',
                obfuscation: true
            }
        );
        assert_eq!(fold('\u{200b}'), Folded::Drop { obfuscation: true });
        assert_eq!(fold('\u{ad}'), Folded::Drop { obfuscation: false });
        assert_eq!(fold('\u{e0069}'), Folded::Tag(b'i'));
        assert_eq!(
            fold('é'),
            Folded::Ascii {
                byte: b'e',
                obfuscation: false
            }
        );
        assert_eq!(fold('\u{301}'), Folded::Drop { obfuscation: true });
        assert_eq!(fold('語'), Folded::Other('語'));
        assert_eq!(html_entity(b"#x69"), Some('i'));
        assert_eq!(html_entity(b"#105"), Some('i'));
        assert_eq!(html_entity(b"bogus"), None);
    }
}
