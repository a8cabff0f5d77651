//! Exfiltration shapes in text: environment dumps and credential files.
//!
//! Works on windows of text around anchor words (found by one Aho-Corasick
//! pass), so a body costs one automaton pass plus a few small regex runs.

use std::sync::OnceLock;

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, MatchKind};
use regex::bytes::Regex;

use super::{CREDENTIAL_FILE, ENV_DUMP};
use crate::entropy::shannon;
use crate::{Encoding, Finding};

/// Credential-like `NAME=value` pairs (distinct names) that make an
/// environment dump in the default profile; the strict profile needs one.
pub const ENV_DUMP_PAIRS: usize = 2;
/// Pairs further apart than this (bytes) are not one dump.
pub const ENV_DUMP_SPAN: usize = 8 * 1024;
/// Longest `NAME=value` pair the pattern takes (name, quotes, value).
const MAX_PAIR_LEN: usize = 600;

/// Anchor kinds, in the order of the anchor words.
const ENV: usize = 0;
const AWS: usize = 1;
const NETRC: usize = 2;
const URL: usize = 3;
/// Text examined (before, after) an anchor of each kind (the last: shadow lines).
const WINDOWS: [(usize, usize); 5] = [(96, 700), (0, 120), (256, 300), (48, 420), (40, 200)];

/// Kind of anchor word `i` (see `patterns`).
fn anchor_kind(i: usize) -> usize {
    match i {
        0..=6 => ENV,
        7 => AWS,
        8 => NETRC,
        9 => URL,
        _ => 4,
    }
}

/// The first match of `re` in `w` whose value (group 1) could be a credential.
fn credential(re: &Regex, w: &[u8]) -> Option<(usize, usize, &'static str)> {
    re.captures_iter(w).find_map(|c| {
        let (all, v) = (c.get(0)?, c.get(1)?);
        secret_value(v.as_bytes()).then(|| (all.start(), all.len(), CREDENTIAL_FILE))
    })
}

struct Patterns {
    anchors: AhoCorasick,
    env_pair: Regex,
    aws_ini: Regex,
    netrc: Regex,
    url_cred: Regex,
    shadow: Regex,
}

fn patterns() -> &'static Patterns {
    static P: OnceLock<Patterns> = OnceLock::new();
    P.get_or_init(|| {
        // Upper-case words anchor environment names (`AWS_SECRET_ACCESS_KEY=`
        // too); the others anchor credential files. Order: see `anchor_kind`.
        let words = [
            "TOKEN",
            "SECRET",
            "PASSW",
            "KEY",
            "CREDENTIAL",
            "_PWD",
            "_PAT",
            "aws_secret_access_key",
            "password",
            "://",
            ":$1$",
            ":$2a$",
            ":$2b$",
            ":$2y$",
            ":$5$",
            ":$6$",
            ":$y$",
            ":$7$",
        ];
        let anchors = AhoCorasickBuilder::new()
            .match_kind(MatchKind::LeftmostFirst)
            .build(words)
            .unwrap_or_else(|_| unreachable_automaton());
        // The patterns are constants, compiled on first use and covered by the
        // tests below: a failure here is a programming error, not input.
        let re = |s: &str| Regex::new(s).unwrap_or_else(|e| panic!("anomaly regex {s}: {e}"));
        Patterns {
            anchors,
            env_pair: re(
                r#"(?:^|[^A-Za-z0-9_])(?:export[ \t]+)?["']?([A-Z][A-Z0-9_]{1,63})["']?[ \t]*[:=][ \t]*["']?([^\s"'`,;&}\]\)]{8,512})"#,
            ),
            aws_ini: re(r#"\baws_secret_access_key["']?[ \t]*[=:][ \t]*["']?([A-Za-z0-9/+]{30,64})"#),
            netrc: re(r"(?s)\bmachine[ \t\n]+\S+.{0,200}?\bpassword[ \t\n]+(\S{1,256})"),
            url_cred: re(
                r"(?i)\b(?:https?|git|ftp|postgres(?:ql)?|mysql|mongodb(?:\+srv)?|redis|amqps?)://[^\s:/@'\x22]{1,128}:([^\s@/'\x22]{1,256})@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*",
            ),
            shadow: re(
                r"(?:^|[\s\x22'=>])[a-z_][a-z0-9_.-]{0,31}:\$(?:1|2[abxy]|5|6|y|7)\$[./A-Za-z0-9$=]{8,}:[0-9]*:",
            ),
        }
    })
}

/// The anchor words are fixed and valid: building their automaton cannot fail.
fn unreachable_automaton() -> AhoCorasick {
    panic!("anomaly anchor automaton failed to build")
}

/// Whether an environment variable name says its value is a credential.
pub fn credential_name(name: &[u8]) -> bool {
    const NOT: [&[u8]; 16] = [
        b"_ID",
        b"_URL",
        b"_URI",
        b"_PATH",
        b"_FILE",
        b"_DIR",
        b"_HOST",
        b"_PORT",
        b"_NAME",
        b"_TYPE",
        b"_TTL",
        b"_EXPIRY",
        b"_EXPIRES",
        b"_LENGTH",
        b"_REGION",
        b"_USER",
    ];
    if NOT.iter().any(|s| name.ends_with(s)) {
        return false;
    }
    const HAS: [&[u8]; 8] = [
        b"TOKEN",
        b"SECRET",
        b"PASSWORD",
        b"PASSWD",
        b"CREDENTIAL",
        b"PRIVATE_KEY",
        b"API_KEY",
        b"ACCESS_KEY",
    ];
    let has = |w: &[u8]| name.windows(w.len()).any(|x| x == w);
    HAS.iter().any(|w| has(w))
        || name.ends_with(b"_KEY")
        || name.ends_with(b"APIKEY")
        || name.ends_with(b"_PWD")
        || name.ends_with(b"_PAT")
}

/// Whether `v` could be a real credential: long enough, varied, one token,
/// not a placeholder, a variable reference, a path or code.
pub fn secret_value(v: &[u8]) -> bool {
    let mut v = v.strip_suffix(b"\\").unwrap_or(v).trim_ascii();
    while let [b'"' | b'\'', rest @ ..] = v {
        v = rest;
    }
    while let [rest @ .., b'"' | b'\''] = v {
        v = rest;
    }
    if v.len() < 8 || v.len() > 512 {
        return false;
    }
    if matches!(v[0], b'$' | b'<' | b'{' | b'%' | b'/' | b'~' | b'.' | b'*') {
        return false;
    }
    if v.iter().any(|&b| {
        b.is_ascii_whitespace() || matches!(b, b'(' | b'[' | b'{' | b'$' | b'<' | b'>' | b'\\')
    }) {
        return false;
    }
    let lower = v.to_ascii_lowercase();
    const PLACEHOLDERS: [&[u8]; 16] = [
        b"example",
        b"xxxx",
        b"your",
        b"changeme",
        b"change_me",
        b"placeholder",
        b"redacted",
        b"dummy",
        b"replace",
        b"****",
        b"...",
        b"sample",
        b"todo",
        b"fake",
        b"here",
        b"<",
    ];
    if PLACEHOLDERS
        .iter()
        .any(|p| lower.windows(p.len()).any(|w| w == *p))
    {
        return false;
    }
    // `os.environ.get`, `settings.SECRET_KEY`: a dotted identifier is code.
    let dotted = v.contains(&b'.')
        && v.split(|&b| b == b'.').all(|p| {
            !p.is_empty()
                && !p[0].is_ascii_digit()
                && p.iter().all(|&b| b.is_ascii_alphanumeric() || b == b'_')
        });
    if dotted {
        return false;
    }
    let classes = [
        v.iter().any(u8::is_ascii_lowercase),
        v.iter().any(u8::is_ascii_uppercase),
        v.iter().any(u8::is_ascii_digit),
        v.iter().any(|b| !b.is_ascii_alphanumeric()),
    ]
    .iter()
    .filter(|&&x| x)
    .count();
    classes >= 2 && shannon(v) >= 3.0
}

/// State of the exfiltration checks over one body (or URL).
#[derive(Default)]
pub struct ExfilState {
    /// Hashes of credential-like names seen in the current dump.
    names: Vec<u64>,
    last_pair: usize,
}

fn is_name_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

fn name_hash(n: &[u8]) -> u64 {
    // FNV-1a: only distinctness matters, within one body.
    n.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

fn finding(detector: &'static str, offset: usize, len: usize) -> Finding {
    Finding {
        detector,
        offset,
        len,
        encoding: Encoding::Raw,
    }
}

impl ExfilState {
    /// Examines `text` (already unescaped); `base` is the stream offset of
    /// `text[0]`. `pairs_needed` credential pairs make an environment dump.
    /// Each anchor kind runs only its own pattern, on a small window; an
    /// anchor already well inside the previous window of its kind is skipped.
    pub fn scan(&mut self, text: &[u8], base: usize, pairs_needed: usize) -> Option<Finding> {
        let p = patterns();
        let mut covered = [0usize; 5];
        for m in p.anchors.find_iter(text) {
            let kind = anchor_kind(m.pattern().as_usize());
            let at = m.start();
            if at < covered[kind] {
                continue;
            }
            let (before, after) = WINDOWS[kind];
            let mut s = at.saturating_sub(before);
            let e = (m.end() + after).min(text.len());
            covered[kind] = e.saturating_sub(MAX_PAIR_LEN);
            let w = &text[s..e];
            let hit = match kind {
                ENV => {
                    // Never start inside a name: a cut name would count as another one.
                    while s > 0 && s < at && is_name_byte(text[s - 1]) {
                        s += 1;
                    }
                    self.env_pairs(&text[s..e], base + s, pairs_needed)
                        .map(|(off, len)| (off, len, ENV_DUMP))
                }
                AWS => credential(&p.aws_ini, w),
                NETRC => {
                    let head = &text[s..at];
                    if memchr::memmem::find(head, b"machine").is_some() {
                        credential(&p.netrc, w)
                    } else {
                        None
                    }
                }
                URL => {
                    if memchr::memchr(b'@', &text[at..e]).is_some() {
                        credential(&p.url_cred, w)
                    } else {
                        None
                    }
                }
                _ => p
                    .shadow
                    .find(w)
                    .map(|m| (m.start(), m.len(), CREDENTIAL_FILE)),
            };
            if let Some((off, len, det)) = hit {
                return Some(finding(det, base + s + off, len));
            }
        }
        None
    }

    fn env_pairs(&mut self, w: &[u8], base: usize, needed: usize) -> Option<(usize, usize)> {
        for c in patterns().env_pair.captures_iter(w) {
            let (Some(name), Some(value)) = (c.get(1), c.get(2)) else {
                continue;
            };
            if !credential_name(name.as_bytes()) || !secret_value(value.as_bytes()) {
                continue;
            }
            let at = base + name.start();
            if at.saturating_sub(self.last_pair) > ENV_DUMP_SPAN && !self.names.is_empty() {
                self.names.clear();
            }
            self.last_pair = at;
            let h = name_hash(name.as_bytes());
            if !self.names.contains(&h) {
                self.names.push(h);
            }
            if self.names.len() >= needed.max(1) {
                return Some((name.start(), value.end() - name.start()));
            }
        }
        None
    }
}

/// One-shot form of [`ExfilState::scan`] for a whole text.
#[cfg(test)]
fn scan_text(text: &[u8], pairs_needed: usize) -> Option<Finding> {
    ExfilState::default().scan(text, 0, pairs_needed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tok(seed: u32) -> String {
        // Varied, secret-shaped values built at run time (never real ones).
        let a = b"Q7mZp2Lx9Vt4Kc8Rw1Hn6Jd3Fs5Gb0Ye";
        (0..32)
            .map(|i| a[(i * 7 + seed as usize * 5) % a.len()] as char)
            .collect()
    }

    #[test]
    fn env_dumps() {
        let (a, b) = (tok(1), tok(2));
        let hits = [
            format!("PATH=/usr/bin\nGITHUB_TOKEN={a}\nHOME=/root\nAWS_SECRET_ACCESS_KEY={b}\n"),
            format!("export OPENAI_API_KEY=\"{a}\"\nexport DB_PASSWORD='{b}'\n"),
            format!(r#"{{"STRIPE_SECRET": "{a}", "SLACK_BOT_TOKEN": "{b}"}}"#),
            format!("q=1&NPM_TOKEN={a}&SENTRY_AUTH_TOKEN={b}"),
        ];
        for h in &hits {
            let f = scan_text(h.as_bytes(), ENV_DUMP_PAIRS);
            assert_eq!(f.map(|f| f.detector), Some(ENV_DUMP), "{h}");
        }
        let misses = [
            format!("GITHUB_TOKEN={a}\nPATH=/usr/bin\n"),
            "GITHUB_TOKEN=${{ secrets.GITHUB_TOKEN }}\nNPM_TOKEN=$NPM_TOKEN\n".into(),
            "API_KEY=your-api-key-here\nSECRET_KEY=changeme123\n".into(),
            "SECRET_KEY = os.environ.get(\"SECRET_KEY\")\nAPI_KEY = settings.API_KEY\n".into(),
            "AWS_ACCESS_KEY_ID=AKIAIOSFODNN7EXAMPLE\nAWS_SECRET_ACCESS_KEY=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY\n".into(),
            "MAX_TOKENS=4096\nTOKEN_TTL=3600\nKEY_PATH=/etc/ssl/key.pem\n".into(),
        ];
        for m in &misses {
            assert_eq!(scan_text(m.as_bytes(), ENV_DUMP_PAIRS), None, "{m}");
        }
        // Strict: one pair is enough.
        assert!(scan_text(misses[0].as_bytes(), 1).is_some());
    }

    #[test]
    fn credential_files() {
        let a = tok(3);
        let hits = [
            format!("[default]\naws_access_key_id = AKIA0000\naws_secret_access_key = {a}x1/+Qq\n"),
            format!("machine api.example.net\n  login bot\n  password {a}\n"),
            format!("https://bot:{a}@github.com\n"),
            format!("{{\"creds\": \"postgres://app:{a}@db.internal:5432/app\"}}"),
            "root:$6$Zq8aLm1x$Wk2Qp9Lr7Tz4Vb1Nc6Xd3Hs5Jf8Gm0Ya2Re4Tu6Iq8Op0As2Dl4Fk6:19700:0:99999:7:::\n".into(),
        ];
        for h in &hits {
            let f = scan_text(h.as_bytes(), ENV_DUMP_PAIRS);
            assert_eq!(f.map(|f| f.detector), Some(CREDENTIAL_FILE), "{h}");
        }
        let misses = [
            "aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY\n",
            "machine example.com login myuser password mypassword\n",
            "git clone https://user:password@github.com/acme/app.git\n",
            "postgres://postgres:postgres@localhost:5432/db\n",
            "github.com ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl\n",
            "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQC7 user@host\n",
            "daemon:*:19700:0:99999:7:::\nroot:!:19700:0:99999:7:::\n",
            "see https://docs.example.com/auth for the password rules\n",
        ];
        for m in &misses {
            assert_eq!(scan_text(m.as_bytes(), ENV_DUMP_PAIRS), None, "{m}");
        }
    }
}
