//! Checks run on a pattern's match or around its anchor (the `near`,
//! `validate` and placeholder filters of the table in `patterns.rs`), and
//! the Bitcoin WIF checksum.

use crate::entropy::shannon;

/// `scheme://` right after the anchor (`postgres`, `mongodb+srv`, ...).
pub(super) fn scheme_then_slashes(hay: &[u8], a: usize) -> bool {
    let rest = &hay[a..hay.len().min(a + 24)];
    let k = rest
        .iter()
        .take_while(|b| b.is_ascii_alphabetic() || **b == b'+')
        .count();
    rest[k..].starts_with(b"://")
}

/// An upper-case name continues to `=` or `:` (optionally quoted).
pub(super) fn name_then_assign(hay: &[u8], a: usize) -> bool {
    let rest = &hay[a..hay.len().min(a + 48)];
    let mut k = rest
        .iter()
        .take_while(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || **b == b'_')
        .count();
    if rest.get(k) == Some(&b'\\') {
        k += 1;
    }
    if matches!(rest.get(k), Some(b'"' | b'\'')) {
        k += 1;
    }
    while matches!(rest.get(k), Some(b' ' | b'\t')) {
        k += 1;
    }
    matches!(rest.get(k), Some(b'=' | b':'))
}

/// Detector id of Bitcoin WIF private keys (found by run shape, not anchors).
pub(crate) const BITCOIN_WIF: &str = "bitcoin-wif-private-key";

pub(super) const B58: &[u8] = b"123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz";

/// Base58check-decode and verify a mainnet WIF key (0x80 version byte,
/// 32-byte key, optional 0x01 compression flag, 4-byte checksum).
pub(crate) fn is_wif(s: &[u8]) -> bool {
    use sha2::{Digest, Sha256};
    // big-endian base-256 accumulator
    let mut bytes: Vec<u8> = Vec::with_capacity(40);
    for &c in s {
        let Some(mut carry) = B58.iter().position(|&x| x == c).map(|v| v as u32) else {
            return false;
        };
        for b in bytes.iter_mut().rev() {
            carry += u32::from(*b) * 58;
            *b = (carry & 0xff) as u8;
            carry >>= 8;
        }
        while carry > 0 {
            bytes.insert(0, (carry & 0xff) as u8);
            carry >>= 8;
        }
    }
    if !(bytes.len() == 37 || (bytes.len() == 38 && bytes[33] == 0x01)) || bytes[0] != 0x80 {
        return false;
    }
    let (payload, check) = bytes.split_at(bytes.len() - 4);
    let d = Sha256::digest(Sha256::digest(payload));
    d[..4] == *check
}

pub(super) fn not_aws_example(m: &[u8]) -> bool {
    !m.ends_with(b"EXAMPLE")
}

/// The value after the last separator, with quotes and escapes trimmed.
pub(super) fn assigned_value(m: &[u8]) -> &[u8] {
    let pos = m.iter().rposition(|&b| {
        b == b'='
            || b == b':'
            || b == b'>'
            || b == b'"'
            || b == b'\''
            || b == b' '
            || b == b'\t'
            || b == b'\\'
    });
    match pos {
        Some(i) => &m[i + 1..],
        None => m,
    }
}

pub(super) fn aws_secret_value(m: &[u8]) -> bool {
    let v = &m[m.len().saturating_sub(40)..];
    classes(v) >= 2 && shannon(v) >= 3.5 && memchr::memmem::find(v, b"EXAMPLE").is_none()
}

/// Documentation placeholders that have the shape of a token: long runs of
/// one character (`ghp_xxxx...`, `sk_test_0000...`) or little variety overall.
pub(crate) fn placeholder_like(m: &[u8]) -> bool {
    let mut run = 1;
    for w in m.windows(2) {
        if w[0] == w[1] && w[0].is_ascii_alphanumeric() {
            run += 1;
            if run >= 8 {
                return true;
            }
        } else {
            run = 1;
        }
    }
    m.len() >= 20 && shannon(m) < 3.0
}

/// The example token printed on jwt.io and in countless tutorials.
pub(super) const JWT_IO_SIGNATURE: &[u8] = b"SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c";

pub(super) fn not_jwt_io_example(m: &[u8]) -> bool {
    !m.ends_with(JWT_IO_SIGNATURE)
}

/// Number of character classes (lower, upper, digit, other) present.
pub(crate) fn classes(v: &[u8]) -> usize {
    let mut c = [false; 4];
    for &b in v {
        let i = if b.is_ascii_lowercase() {
            0
        } else if b.is_ascii_uppercase() {
            1
        } else if b.is_ascii_digit() {
            2
        } else {
            3
        };
        c[i] = true;
    }
    c.iter().filter(|x| **x).count()
}

pub(super) const PLACEHOLDERS: &[&str] = &[
    "your",
    "example",
    "xxxx",
    "changeme",
    "change_me",
    "placeholder",
    "dummy",
    "fake",
    "redacted",
    "todo",
    "insert",
    "replace",
    "sample",
    "<",
    "${",
    "{{",
    "****",
    "....",
    "1234567",
    "abcdef",
    "password",
    "secret",
    "token",
    "testing",
    "foobar",
    "lorem",
];

pub(super) fn is_placeholder(v: &[u8]) -> bool {
    let lower = v.to_ascii_lowercase();
    PLACEHOLDERS
        .iter()
        .any(|p| memchr::memmem::find(&lower, p.as_bytes()).is_some())
}

/// A value that looks like a random credential rather than prose, code or a placeholder.
pub(crate) fn looks_random(v: &[u8]) -> bool {
    if v.len() < 12 || is_placeholder(v) {
        return false;
    }
    let has_digit = v.iter().any(u8::is_ascii_digit);
    let has_alpha = v.iter().any(u8::is_ascii_alphabetic);
    has_digit && has_alpha && classes(v) >= 2 && shannon(v) >= 3.0
}

pub(super) fn env_assignment(m: &[u8]) -> bool {
    // The name must contain one of the secret-ish words (the anchor may have
    // hit a longer name whose regex match started elsewhere).
    let name_end = m
        .iter()
        .position(|&b| !(b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_'))
        .unwrap_or(m.len());
    let name = &m[..name_end];
    const WORDS: &[&[u8]] = &[
        b"SECRET",
        b"PASSWORD",
        b"PASSWD",
        b"TOKEN",
        b"API_KEY",
        b"APIKEY",
        b"ACCESS_KEY",
        b"PRIVATE_KEY",
        b"AUTH_KEY",
    ];
    if !WORDS
        .iter()
        .any(|w| memchr::memmem::find(name, w).is_some())
    {
        return false;
    }
    // Token counts/limits are not secrets.
    const NOT: &[&[u8]] = &[
        b"TOKENS",
        b"TOKEN_LIMIT",
        b"TOKEN_COUNT",
        b"TOKENIZER",
        b"TOKEN_URL",
        b"TOKEN_TYPE",
        b"TOKEN_FILE",
        b"_PATH",
        b"_ENDPOINT",
        b"_URI",
        b"_HOST",
    ];
    if NOT.iter().any(|w| memchr::memmem::find(name, w).is_some()) {
        return false;
    }
    looks_random(assigned_value(m))
}

pub(super) fn credential_param(m: &[u8]) -> bool {
    let v = match m.iter().position(|&b| b == b'=') {
        Some(i) => &m[i + 1..],
        None => return false,
    };
    looks_random(v)
}

pub(super) const DEV_PASSWORDS: &[&str] = &[
    "password",
    "pass",
    "passwd",
    "secret",
    "changeme",
    "example",
    "postgres",
    "root",
    "admin",
    "test",
    "guest",
    "mysecretpassword",
    "pwd",
    "redis",
    "mongo",
    "mysql",
    "user",
    "xxx",
    "xxxx",
    "yourpassword",
    "your_password",
    "pw",
    "dev",
    "local",
    "default",
    "mariadb",
    "rabbitmq",
    "sa",
    "123456",
    "12345678",
    "qwerty",
];

pub(super) fn connection_string_password(m: &[u8]) -> bool {
    let Some(scheme_end) = memchr::memmem::find(m, b"://") else {
        return false;
    };
    let rest = &m[scheme_end + 3..];
    let Some(at) = memchr::memrchr(b'@', rest) else {
        return false;
    };
    let userinfo = &rest[..at];
    let Some(colon) = memchr::memchr(b':', userinfo) else {
        return false;
    };
    let user = &userinfo[..colon];
    let pass = &userinfo[colon + 1..];
    if pass.len() < 4 || pass == user {
        return false;
    }
    if matches!(pass[0], b'$' | b'<' | b'{' | b'%' | b'*' | b'[') {
        return false;
    }
    if pass
        .iter()
        .all(|&b| b == b'*' || b == b'x' || b == b'X' || b == b'.')
    {
        return false;
    }
    let lower = pass.to_ascii_lowercase();
    !DEV_PASSWORDS
        .iter()
        .any(|d| d.as_bytes() == lower.as_slice())
}
