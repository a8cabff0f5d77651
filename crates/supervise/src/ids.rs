//! Request ids: 128 random bits in lowercase base32 (RFC 4648 alphabet, no padding), 26
//! characters. Unguessable, so one request's id reveals no other; and checked on every use
//! before it becomes part of a path, so `../`, separators, long or non-ASCII ids never reach
//! the file system.

use std::fmt;

/// Characters of an id (RFC 4648 base32, lowercase).
const ALPHABET: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";
/// 128 bits in 5-bit characters: 26 (the first one carries 3 bits).
pub const ID_LEN: usize = 26;

/// A validated request id: only ever built by [`RequestId::random`] or [`RequestId::parse`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RequestId(String);

impl RequestId {
    /// A fresh id from the thread-local CSPRNG (seeded from the OS).
    pub fn random() -> RequestId {
        let bytes: [u8; 16] = rand::random();
        let mut bits = u128::from_be_bytes(bytes);
        let mut out = vec![0u8; ID_LEN];
        for slot in out.iter_mut().rev() {
            *slot = ALPHABET[(bits & 31) as usize];
            bits >>= 5;
        }
        RequestId(out.into_iter().map(char::from).collect())
    }

    /// `s` as an id, if it has exactly the shape [`random`](Self::random) makes.
    pub fn parse(s: &str) -> Option<RequestId> {
        let ok = s.len() == ID_LEN && s.bytes().all(|b| ALPHABET.contains(&b));
        ok.then(|| RequestId(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_ids_parse_and_differ() {
        let a = RequestId::random();
        let b = RequestId::random();
        assert_ne!(a, b);
        assert_eq!(RequestId::parse(a.as_str()), Some(a));
    }

    #[test]
    fn hostile_ids_refused() {
        let long = "a".repeat(27);
        for bad in [
            "",
            "..",
            "../../etc/passwd",
            "aaaaaaaaaaaaaaaaaaaaaaaaa/",
            "AAAAAAAAAAAAAAAAAAAAAAAAAA",
            "aaaaaaaaaaaaaaaaaaaaaaaaa\u{e9}",
            "aaaaaaaaaaaaaaaaaaaaaaaa.j",
            "aaaaaaaaaaaaaaaaaaaaaaaa%2",
            long.as_str(),
        ] {
            assert_eq!(RequestId::parse(bad), None, "{bad:?}");
        }
    }
}
