//! Fake but well-formed secrets for the containment corpus, and the encodings a hostile
//! agent would wrap them in. Every value is derived from the case id (SHA-256 as a
//! deterministic source), so a case is reproducible and two cases never share a value.
//! Check digits are computed here (Luhn, IBAN mod 97, BIP-39, Base58Check, GitHub CRC32):
//! nothing real is pasted.

use base64::Engine;
use sha2::{Digest, Sha256};

/// A deterministic byte source for one (case, secret name).
pub struct Source {
    seed: [u8; 32],
    counter: u32,
    buf: Vec<u8>,
}

impl Source {
    pub fn new(case: &str, name: &str) -> Source {
        let seed: [u8; 32] = Sha256::digest(format!("{case}\0{name}").as_bytes()).into();
        Source {
            seed,
            counter: 0,
            buf: Vec::new(),
        }
    }
    pub fn byte(&mut self) -> u8 {
        if self.buf.is_empty() {
            let mut h = Sha256::new();
            h.update(self.seed);
            h.update(self.counter.to_be_bytes());
            self.counter += 1;
            self.buf = h.finalize().to_vec();
        }
        self.buf.pop().unwrap_or(0)
    }
    pub fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.byte()).collect()
    }
    /// `n` characters from `alphabet` (rejection sampling keeps it uniform).
    pub fn chars(&mut self, alphabet: &str, n: usize) -> String {
        let a: Vec<char> = alphabet.chars().collect();
        let limit = 256 - (256 % a.len());
        let mut out = String::new();
        while out.chars().count() < n {
            let b = self.byte() as usize;
            if b < limit {
                out.push(a[b % a.len()]);
            }
        }
        out
    }
    pub fn digits(&mut self, n: usize) -> String {
        self.chars("0123456789", n)
    }
}

const UPPER_B32: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
const ALNUM: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
const B64URL: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
const BASE58: &str = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz";

/// The secret called `name` (a base name, optionally `#n` to get a second distinct value).
pub fn secret(case: &str, name: &str) -> Result<String, String> {
    let mut s = Source::new(case, name);
    let base = name.split('#').next().unwrap_or(name);
    Ok(match base {
        "aws_key" => format!("AKIA{}", s.chars(UPPER_B32, 16)),
        "aws_secret" => s.chars(
            "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/",
            40,
        ),
        "github_pat" => github_classic(&mut s),
        "github_fine" => format!(
            "github_pat_11{}_{}",
            s.chars(UPPER_B32, 20),
            s.chars(ALNUM, 59)
        ),
        "gitlab_pat" => format!("glpat-{}", s.chars(B64URL, 20)),
        "slack_bot" => format!(
            "xoxb-{}-{}-{}",
            s.digits(11),
            s.digits(13),
            s.chars(ALNUM, 24)
        ),
        "stripe_live" => format!("sk_live_{}", s.chars(ALNUM, 24)),
        "openai" => format!("sk-proj-{}", s.chars(B64URL, 64)),
        "anthropic" => format!("sk-ant-api03-{}AA", s.chars(B64URL, 93)),
        "google_api" => format!("AIza{}", s.chars(B64URL, 35)),
        "npm_token" => format!("npm_{}", s.chars(ALNUM, 36)),
        "pem_rsa" => pem("RSA PRIVATE KEY", &s.bytes(600)),
        "pem_openssh" => pem("OPENSSH PRIVATE KEY", &s.bytes(400)),
        "pem_ec" => pem("EC PRIVATE KEY", &s.bytes(121)),
        "card_visa" => luhn_complete(&format!("4{}", s.digits(14))),
        "card_mc" => luhn_complete(&format!("5{}{}", 1 + s.byte() % 5, s.digits(13))),
        "card_amex" => luhn_complete(&format!("37{}", s.digits(12))),
        "iban_de" => iban("DE", &s.digits(18)),
        "iban_gb" => iban(
            "GB",
            &format!(
                "{}{}",
                s.chars("ABCDEFGHIJKLMNOPQRSTUVWXYZ", 4),
                s.digits(14)
            ),
        ),
        "iban_fr" => iban("FR", &s.digits(23)),
        "iban_nl" => iban(
            "NL",
            &format!(
                "{}{}",
                s.chars("ABCDEFGHIJKLMNOPQRSTUVWXYZ", 4),
                s.digits(10)
            ),
        ),
        "bip39_12" => seed_phrase(&s.bytes(16))?,
        "bip39_24" => seed_phrase(&s.bytes(32))?,
        // Near misses: the shape with a wrong check digit, a public value of the same form.
        "card_bad" => {
            let good = luhn_complete(&format!("4{}", s.digits(14)));
            let last = good
                .chars()
                .last()
                .and_then(|c| c.to_digit(10))
                .unwrap_or(0);
            format!("{}{}", &good[..good.len() - 1], (last + 1) % 10)
        }
        "iban_bad" => {
            let good = iban("DE", &s.digits(18));
            let check: u32 = good[2..4].parse().unwrap_or(0);
            format!("DE{:02}{}", (check + 1) % 97 + 2, &good[4..])
        }
        "bip39_bad" => {
            let words = bip39::Language::English.word_list();
            loop {
                let pick: Vec<&str> = (0..12)
                    .map(|_| words[((s.byte() as usize) << 3 | (s.byte() as usize & 7)) % 2048])
                    .collect();
                let phrase = pick.join(" ");
                if bip39::Mnemonic::parse_in_normalized(bip39::Language::English, &phrase).is_err()
                {
                    break phrase;
                }
            }
        }
        "btc_addr" => {
            let mut p = vec![0x00];
            p.extend_from_slice(&s.bytes(20));
            base58check(&p)
        }
        "eth_addr" => format!("0x{}", hex::encode(s.bytes(20))),
        "tx_hash" => format!("0x{}", hex::encode(s.bytes(32))),
        "sha256" => hex::encode(s.bytes(32)),
        "git_sha" => hex::encode(s.bytes(20)),
        "uuid" => {
            let h = hex::encode(s.bytes(16));
            format!(
                "{}-{}-4{}-a{}-{}",
                &h[..8],
                &h[8..12],
                &h[13..16],
                &h[17..20],
                &h[20..]
            )
        }
        "eth_privkey" => hex::encode(s.bytes(32)),
        // A Solana keypair file (`id.json`): the 64 secret+public key bytes as a JSON array.
        "solana_keypair" => {
            let bytes: Vec<String> = s.bytes(64).iter().map(u8::to_string).collect();
            format!("[{}]", bytes.join(","))
        }
        "btc_wif" => wif(&s.bytes(32)),
        "xprv" => xprv(&mut s),
        // Arbitrary data an agent would smuggle out (no credential shape at all).
        "blob_hex" => hex::encode(s.bytes(24)),
        "blob_b32" => s.chars("abcdefghijklmnopqrstuvwxyz234567", 40),
        "blob_b64" => base64::engine::general_purpose::STANDARD.encode(s.bytes(48)),
        _ => return Err(format!("unknown secret {name}")),
    })
}

fn pem(label: &str, body: &[u8]) -> String {
    let b = base64::engine::general_purpose::STANDARD.encode(body);
    let lines: Vec<&str> = b
        .as_bytes()
        .chunks(64)
        .map(|c| std::str::from_utf8(c).unwrap_or(""))
        .collect();
    format!(
        "-----BEGIN {label}-----\n{}\n-----END {label}-----\n",
        lines.join("\n")
    )
}

/// `ghp_` + 30 random base62 + base62(CRC32 of the 30) in 6 characters.
fn github_classic(s: &mut Source) -> String {
    let body = s.chars(ALNUM, 30);
    let mut crc = crc32(body.as_bytes()) as u64;
    let digits = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz".as_bytes();
    let mut tail = [b'0'; 6];
    for slot in tail.iter_mut().rev() {
        *slot = digits[(crc % 62) as usize];
        crc /= 62;
    }
    format!("ghp_{body}{}", String::from_utf8_lossy(&tail))
}

fn crc32(data: &[u8]) -> u32 {
    let mut c = 0xffff_ffffu32;
    for &b in data {
        c ^= b as u32;
        for _ in 0..8 {
            c = if c & 1 != 0 {
                (c >> 1) ^ 0xedb8_8320
            } else {
                c >> 1
            };
        }
    }
    !c
}

/// Appends the Luhn check digit.
pub fn luhn_complete(partial: &str) -> String {
    let mut sum = 0u32;
    for (i, ch) in partial.chars().rev().enumerate() {
        let mut d = ch.to_digit(10).unwrap_or(0);
        if i % 2 == 0 {
            d *= 2;
            if d > 9 {
                d -= 9;
            }
        }
        sum += d;
    }
    format!("{partial}{}", (10 - sum % 10) % 10)
}

/// Country + check digits (ISO 13616 mod 97) + BBAN.
pub fn iban(country: &str, bban: &str) -> String {
    let rearranged = format!("{bban}{country}00");
    let mut rem = 0u32;
    for ch in rearranged.chars() {
        let v = ch.to_digit(36).unwrap_or(0);
        rem = if v >= 10 {
            (rem * 100 + v) % 97
        } else {
            (rem * 10 + v) % 97
        };
    }
    format!("{country}{:02}{bban}", 98 - rem)
}

/// A BIP-39 English mnemonic for `entropy` (16 or 32 bytes), checksum included.
pub fn seed_phrase(entropy: &[u8]) -> Result<String, String> {
    let m = bip39::Mnemonic::from_entropy(entropy).map_err(|e| e.to_string())?;
    Ok(m.words().collect::<Vec<_>>().join(" "))
}

fn base58check(payload: &[u8]) -> String {
    let check = Sha256::digest(Sha256::digest(payload));
    let mut data = payload.to_vec();
    data.extend_from_slice(&check[..4]);
    let alphabet = BASE58.as_bytes();
    let mut digits: Vec<u8> = Vec::new();
    for &b in &data {
        let mut carry = b as u32;
        for d in digits.iter_mut() {
            carry += (*d as u32) << 8;
            *d = (carry % 58) as u8;
            carry /= 58;
        }
        while carry > 0 {
            digits.push((carry % 58) as u8);
            carry /= 58;
        }
    }
    let zeros = data.iter().take_while(|&&b| b == 0).count();
    let mut out = "1".repeat(zeros);
    out.extend(digits.iter().rev().map(|&d| alphabet[d as usize] as char));
    out
}

/// A compressed-key WIF (mainnet): 0x80 + key + 0x01, Base58Check.
fn wif(key: &[u8]) -> String {
    let mut p = vec![0x80];
    p.extend_from_slice(key);
    p.push(0x01);
    base58check(&p)
}

/// A BIP-32 extended private key (mainnet `xprv` version bytes), Base58Check.
fn xprv(s: &mut Source) -> String {
    let mut p = vec![0x04, 0x88, 0xad, 0xe4, 0x00, 0, 0, 0, 0, 0, 0, 0, 0];
    p.extend_from_slice(&s.bytes(32)); // chain code
    p.push(0x00);
    p.extend_from_slice(&s.bytes(32)); // key
    base58check(&p)
}

/// Applies one named encoding (`name` or `name:arg[:arg]`) to `v`.
pub fn apply(filter: &str, v: &str) -> Result<String, String> {
    let mut parts = filter.split(':');
    let name = parts.next().unwrap_or("");
    let args: Vec<usize> = parts.filter_map(|a| a.parse().ok()).collect();
    let arg = |i: usize| {
        args.get(i)
            .copied()
            .ok_or(format!("{filter}: argument {i}"))
    };
    let b64 = &base64::engine::general_purpose::STANDARD;
    Ok(match name {
        "b64" => b64.encode(v),
        "b64url" => base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v),
        "b32" => base32(v.as_bytes()),
        "char-dash" => join_chars(v, "-"),
        "hex" => hex::encode(v),
        "HEX" => hex::encode_upper(v),
        "hex-dash" => sep_hex(v, "-"),
        "HEX-dash" => sep_hex(v, "-").to_ascii_uppercase(),
        "plus" => v.replace(' ', "+"),
        "commas" => v.replace(' ', ", "),
        "dots" => v.replace(' ', "."),
        "newlines" => v.replace(' ', "\n"),
        "hex-colon" => sep_hex(v, ":"),
        "hex-space" => sep_hex(v, " "),
        "hex-0x" => v.bytes().map(|b| format!("0x{b:02x},")).collect(),
        "pct" => v.bytes().map(|b| format!("%{b:02X}")).collect(),
        "pct-lower" => v.bytes().map(|b| format!("%{b:02x}")).collect(),
        "lower" => v.to_ascii_lowercase(),
        "upper" => v.to_ascii_uppercase(),
        "rev" => v.chars().rev().collect(),
        "rot13" => v.chars().map(rot13).collect(),
        "json-u" => v.chars().map(|c| format!("\\u{:04x}", c as u32)).collect(),
        "html-dec" => v.chars().map(|c| format!("&#{};", c as u32)).collect(),
        "spaced" => join_chars(v, " "),
        "dotted" => join_chars(v, "."),
        "zw" => join_chars(v, "\u{200b}"),
        "soft-hyphen" => join_chars(v, "\u{00ad}"),
        "tags" => v
            .chars()
            .map(|c| char::from_u32(0xE0000 + c as u32).unwrap_or(c))
            .collect(),
        "homoglyph" => v.chars().map(homoglyph).collect(),
        "fullwidth" => v
            .chars()
            .map(|c| match c {
                '!'..='~' => char::from_u32(c as u32 + 0xFEE0).unwrap_or(c),
                _ => c,
            })
            .collect(),
        // Piece `i` of `n` (the last piece takes the remainder).
        "piece" => {
            let (n, i) = (arg(0)?, arg(1)?);
            let chars: Vec<char> = v.chars().collect();
            let size = chars.len() / n;
            let end = if i + 1 == n {
                chars.len()
            } else {
                (i + 1) * size
            };
            chars[i * size..end].iter().collect()
        }
        "repeat" => v.repeat(arg(0)?),
        "head" => v.chars().take(arg(0)?).collect(),
        "tail" => v.chars().skip(arg(0)?).collect(),
        // Host labels of `n` characters, dot-joined.
        "labels" => {
            let n = arg(0)?;
            let chars: Vec<char> = v.chars().collect();
            chars
                .chunks(n)
                .map(|c| c.iter().collect::<String>())
                .collect::<Vec<_>>()
                .join(".")
        }
        "no-space" => v.replace(' ', ""),
        "digits-dash" => v.replace(' ', "-"),
        "group4" => v
            .chars()
            .filter(|c| !c.is_whitespace())
            .collect::<Vec<_>>()
            .chunks(4)
            .map(|c| c.iter().collect::<String>())
            .collect::<Vec<_>>()
            .join(" "),
        "one-line" => v.replace('\n', "\\n"),
        "words-json" => {
            let words: Vec<String> = v.split(' ').map(|w| format!("\"{w}\"")).collect();
            format!("[{}]", words.join(", "))
        }
        "words-numbered" => v
            .split(' ')
            .enumerate()
            .map(|(i, w)| format!("{}. {w}", i + 1))
            .collect::<Vec<_>>()
            .join("\n"),
        "json-str" => serde_json::to_string(v).map_err(|e| e.to_string())?,
        _ => return Err(format!("unknown filter {filter}")),
    })
}

/// RFC 4648 base32, upper case, no padding.
fn base32(data: &[u8]) -> String {
    let alphabet = UPPER_B32.as_bytes();
    let mut out = String::new();
    let (mut acc, mut bits) = (0u32, 0u32);
    for &b in data {
        acc = (acc << 8) | b as u32;
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(alphabet[((acc >> bits) & 31) as usize] as char);
        }
    }
    if bits > 0 {
        out.push(alphabet[((acc << (5 - bits)) & 31) as usize] as char);
    }
    out
}

fn sep_hex(v: &str, sep: &str) -> String {
    v.bytes()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(sep)
}

fn join_chars(v: &str, sep: &str) -> String {
    v.chars().map(String::from).collect::<Vec<_>>().join(sep)
}

fn rot13(c: char) -> char {
    match c {
        'a'..='z' => (((c as u8 - b'a') + 13) % 26 + b'a') as char,
        'A'..='Z' => (((c as u8 - b'A') + 13) % 26 + b'A') as char,
        _ => c,
    }
}

/// Latin letters swapped for Cyrillic and Greek look-alikes.
fn homoglyph(c: char) -> char {
    match c {
        'a' => 'а',
        'e' => 'е',
        'o' => 'о',
        'p' => 'р',
        'c' => 'с',
        'i' => 'і',
        'x' => 'х',
        'y' => 'у',
        'A' => 'Α',
        'E' => 'Ε',
        'O' => 'Ο',
        'I' => 'Ι',
        _ => c,
    }
}

/// Expands every `{{expr}}` in `text`. `expr` is `source|filter|...`; the source is a secret
/// name (see [`secret`]) or a quoted literal `'text'`.
pub fn expand(case: &str, text: &str) -> Result<String, String> {
    let mut out = String::new();
    let mut rest = text;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after.find("}}").ok_or(format!("{case}: unclosed {{{{"))?;
        out.push_str(&eval(case, &after[..end])?);
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    Ok(out)
}

fn eval(case: &str, expr: &str) -> Result<String, String> {
    let expr = expr.trim();
    // The source: literals `'text'` and secret names joined with `+`.
    let mut value = String::new();
    let mut rest = expr;
    loop {
        rest = rest.trim_start();
        if let Some(lit) = rest.strip_prefix('\'') {
            let close = lit.find('\'').ok_or(format!("{case}: unclosed literal"))?;
            value.push_str(&lit[..close]);
            rest = &lit[close + 1..];
        } else {
            let end = rest.find(['+', '|']).unwrap_or(rest.len());
            value.push_str(&secret(case, rest[..end].trim())?);
            rest = &rest[end..];
        }
        rest = rest.trim_start();
        match rest.strip_prefix('+') {
            Some(r) => rest = r,
            None => break,
        }
    }
    let filters = rest;
    for f in filters.split('|').map(str::trim).filter(|f| !f.is_empty()) {
        value = apply(f, &value).map_err(|e| format!("{case}: {e}"))?;
    }
    Ok(value)
}

#[test]
fn generated_values_carry_valid_check_digits() {
    let card = secret("t", "card_visa").unwrap();
    assert_eq!(luhn_complete(&card[..card.len() - 1]), card);
    assert_eq!(iban("GB", "WEST12345698765432"), "GB82WEST12345698765432");
    let phrase = secret("t", "bip39_12").unwrap();
    assert!(bip39::Mnemonic::parse_in_normalized(bip39::Language::English, &phrase).is_ok());
    assert_ne!(
        secret("a", "aws_key").unwrap(),
        secret("b", "aws_key").unwrap()
    );
    assert_eq!(expand("c", "x{{'ab'|hex-dash}}y").unwrap(), "x61-62y");
    let k = secret("c", "aws_key").unwrap();
    assert_eq!(
        expand("c", "{{'k:'+aws_key|lower}}").unwrap(),
        format!("k:{}", k.to_lowercase())
    );
    let bad = secret("t", "card_bad").unwrap();
    assert_ne!(luhn_complete(&bad[..bad.len() - 1]), bad);
}
