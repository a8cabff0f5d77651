//! `bottle-dlp`: secret detection for bottle's sidecars.
//!
//! pipelock calls it on every request it forwards (URL, headers, streamed
//! bodies) and git-gate on pushed blobs and commit messages.
//!
//! How a scan works:
//! 1. An Aho-Corasick automaton finds the literal anchors of ~90 provider token
//!    formats (`ghp_`, `AKIA`, `sk-ant-`, `-----BEGIN `, ...); each pattern's
//!    bounded regex only runs in a window around its anchors.
//! 2. Configured *known secrets* are searched as literal needles in raw,
//!    base64 / base64url (all three byte alignments) and base32 (all five)
//!    forms; their hex and percent forms are found in the decoded views.
//! 3. Decoded views are scanned the same way, recursively (up to 3 layers):
//!    base64/base64url and hex segments (also hex pairs joined by `:`, `-`,
//!    `,` or spaces, 8 pairs or more), and windows around percent escapes,
//!    `\xHH`/`\uXXXX` escapes, zero-width/invisible characters and
//!    fullwidth/confusable characters (normalised NFKC-style).
//!
//! A [`Finding`] never contains the matched text: only the detector id,
//! position, length and encoding. Errors never echo a secret either.
//!
//! Entry points: [`detect`] / [`Detector::detect`] (bodies, blobs),
//! [`Detector::scan_url`] + [`redact_url`] (request targets and their audit
//! form), [`Detector::scan_header`], [`Detector::scan_header_block`] (all
//! fields together: secrets split over fields), [`Detector::detect_joined`]
//! (pieces glued together, boundaries relaxed), [`Detector::scan_host`], and
//! [`Detector::stream`] for bodies of any size with bounded memory
//! ([`StreamScanner::push`] stops at the first finding;
//! [`StreamScanner::push_report`] keeps going for log-only policies;
//! [`StreamScanner::check`] holds nothing back, for protocols that forward
//! whole frames such as WebSocket).
//!
//! A streamed body whose first non-blank byte is `{` or `[` is also lexed as
//! JSON: sibling string values of one object or array are scanned joined
//! (relaxed boundaries), so a token split over `{"a": "AKIA…", "b": "…"}` is
//! found. Bounded: the token run across a junction, at most 128 bytes each
//! side, at least 16 bytes, over up to 3 earlier values; raw tokens and known
//! secrets only (no decoded views of the join); 64 nesting levels; not used
//! by [`StreamScanner::check`]. The same view applies to the values of a
//! form body (`k=v&...`, percent-decoded as it streams) and of a URL query
//! that are JSON documents (`?q={"a":"AKIA…","b":"…"}`).
//!
//! Known limits: tokens are matched case-sensitively as their providers
//! issue them; a secret encoded in a scheme not listed above (ROT13,
//! reversed, compressed) is only caught if it is a known secret in
//! one of the listed encodings; a secret longer than [`STREAM_OVERLAP`] bytes
//! in encoded form can be missed by the stream scanner if cut at the wrong
//! place; known secrets inside decoded *binary* data are only found in
//! printable-ASCII islands.
#![forbid(unsafe_code)]

pub mod anomaly;
mod classes;
mod decode;
mod engine;
pub mod entropy;
mod form_join;
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;
mod headers;
mod hit;
pub mod injection;
mod json_join;
mod known;
mod patterns;
mod prefilter;
mod stream;
mod url;

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

pub use headers::HeaderFinding;
pub use known::base64_cores;
pub use stream::{StreamScanner, STREAM_OVERLAP, STREAM_WINDOW};
pub use url::redact_url;
pub use zeroize::Zeroizing;

/// Detector id of a configured known secret.
pub const KNOWN_SECRET: &str = "known-secret";
/// Detector id of a high-entropy URL component (only with `entropy_urls`).
pub const HIGH_ENTROPY: &str = "high-entropy";
/// Detector id reported when nested decoding exceeds its work budget
/// (fail closed rather than skip the rest).
pub const DECODE_LIMIT: &str = engine::DECODE_LIMIT;

/// How the matched bytes were encoded in the scanned input (the outermost
/// layer that had to be undone).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Encoding {
    Raw,
    Base64,
    Base64Url,
    /// RFC 4648 base32 (known secrets only).
    Base32,
    Hex,
    /// Percent-encoding (URL), possibly nested.
    Percent,
    /// `\uXXXX` / `\xHH` escapes (JSON, JavaScript, C).
    Escape,
    /// Zero-width / invisible characters removed or compatibility
    /// (fullwidth, confusable) characters folded.
    Unicode,
    /// Pieces spread over several URL components and joined.
    Split,
}

impl Encoding {
    pub fn as_str(self) -> &'static str {
        match self {
            Encoding::Raw => "raw",
            Encoding::Base64 => "base64",
            Encoding::Base64Url => "base64url",
            Encoding::Base32 => "base32",
            Encoding::Hex => "hex",
            Encoding::Percent => "percent",
            Encoding::Escape => "escape",
            Encoding::Unicode => "unicode",
            Encoding::Split => "split",
        }
    }
}

impl fmt::Display for Encoding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One detected secret. Holds no part of the secret itself.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Finding {
    /// Stable detector id, e.g. `aws-access-key-id`, `github-pat`, `known-secret`.
    pub detector: &'static str,
    /// Byte offset of the (encoded) secret in the scanned input.
    pub offset: usize,
    /// Length in bytes of the (encoded) secret in the scanned input.
    pub len: usize,
    pub encoding: Encoding,
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} at {}+{}", self.detector, self.offset, self.len)?;
        if self.encoding != Encoding::Raw {
            write!(f, " ({})", self.encoding)?;
        }
        Ok(())
    }
}

impl Finding {
    pub(crate) fn from_hit(h: hit::Hit, base: usize) -> Finding {
        Finding {
            detector: h.det,
            offset: base + h.start,
            len: h.end.saturating_sub(h.start),
            encoding: h.enc,
        }
    }
}

/// Configuration of a [`Detector`]. Build with `DetectorConfig { known_secrets, ..Default::default() }`.
#[derive(Clone)]
pub struct DetectorConfig {
    /// Values that must never leave (matched raw and encoded).
    pub known_secrets: Vec<Zeroizing<String>>,
    /// Flag URL path segments and query values with high Shannon entropy.
    pub entropy_urls: bool,
    /// Known secrets shorter than this are ignored (too many false positives).
    pub min_known_secret_len: usize,
}

impl Default for DetectorConfig {
    fn default() -> Self {
        DetectorConfig {
            known_secrets: Vec::new(),
            entropy_urls: false,
            min_known_secret_len: 8,
        }
    }
}

impl fmt::Debug for DetectorConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DetectorConfig")
            .field(
                "known_secrets",
                &format_args!("[{} redacted]", self.known_secrets.len()),
            )
            .field("entropy_urls", &self.entropy_urls)
            .field("min_known_secret_len", &self.min_known_secret_len)
            .finish()
    }
}

/// Extra knobs that are not part of [`DetectorConfig`].
#[derive(Clone, Debug)]
pub struct DetectorOptions {
    /// Detector ids to switch off (unknown ids are ignored).
    pub disabled: Vec<String>,
    /// Shannon entropy (bits/char) above which a URL component is flagged.
    pub entropy_threshold: f64,
    /// Shortest URL component checked for entropy.
    pub entropy_min_len: usize,
}

impl Default for DetectorOptions {
    fn default() -> Self {
        DetectorOptions {
            disabled: Vec::new(),
            entropy_threshold: 4.5,
            entropy_min_len: 20,
        }
    }
}

pub(crate) struct Inner {
    pub(crate) engine: engine::Engine,
    pub(crate) entropy_urls: bool,
    pub(crate) opts: DetectorOptions,
}

/// A compiled set of detectors. Cheap to clone and share (`Arc` inside).
#[derive(Clone)]
pub struct Detector {
    pub(crate) inner: Arc<Inner>,
}

impl fmt::Debug for Detector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Detector")
            .field("engine", &self.inner.engine)
            .field("entropy_urls", &self.inner.entropy_urls)
            .finish()
    }
}

impl Detector {
    pub fn new(cfg: DetectorConfig) -> Detector {
        Self::with_options(cfg, DetectorOptions::default())
    }

    pub fn with_options(cfg: DetectorConfig, opts: DetectorOptions) -> Detector {
        let known = known::KnownSet::build(&cfg.known_secrets, cfg.min_known_secret_len);
        let engine = engine::Engine::new(known, &opts.disabled);
        Detector {
            inner: Arc::new(Inner {
                engine,
                entropy_urls: cfg.entropy_urls,
                opts,
            }),
        }
    }

    /// The built-in detectors with no known secrets and no entropy check.
    pub fn builtin() -> &'static Detector {
        static B: OnceLock<Detector> = OnceLock::new();
        B.get_or_init(|| Detector::new(DetectorConfig::default()))
    }

    /// Number of known secrets in use (after the minimum-length filter).
    pub fn known_secret_count(&self) -> usize {
        self.inner.engine.known.as_ref().map_or(0, |k| k.count)
    }

    /// Ids of the active pattern detectors (plus `known-secret`,
    /// `high-entropy` and `decode-limit`, which are always possible).
    pub fn detector_ids(&self) -> Vec<&'static str> {
        let mut v: Vec<&'static str> = self.inner.engine.detector_ids().collect();
        v.push(patterns::BITCOIN_WIF);
        v.extend(
            classes::IDS
                .iter()
                .filter(|id| !self.inner.opts.disabled.iter().any(|d| d == *id)),
        );
        v
    }

    /// Scan bytes (a body, a blob, a commit message): raw and decoded views.
    pub fn detect(&self, bytes: &[u8]) -> Vec<Finding> {
        self.inner
            .engine
            .scan(bytes, false)
            .into_iter()
            .map(|h| Finding::from_hit(h, 0))
            .collect()
    }

    /// Like [`detect`](Self::detect), for bytes made by gluing pieces together
    /// (a method and its path, fields of a header block): token boundaries are
    /// relaxed at the top level, since a neighbour may touch the secret.
    pub fn detect_joined(&self, bytes: &[u8]) -> Vec<Finding> {
        self.inner
            .engine
            .scan_opts(bytes, false, true)
            .into_iter()
            .map(|h| Finding::from_hit(h, 0))
            .collect()
    }

    /// Scan a request target (`/path?query`); offsets refer to `path_and_query`.
    pub fn scan_url(&self, path_and_query: &str) -> Vec<Finding> {
        url::scan_url(self, path_and_query)
    }

    /// Scan a host name (CONNECT authority, Host header, SNI): raw, plus every
    /// contiguous run of labels joined without dots (a secret split over DNS
    /// labels, with other labels around it); upper-case-shaped tokens (AWS key
    /// ids) are also looked for in an upper-cased copy, since DNS ignores case.
    pub fn scan_host(&self, host: &str) -> Vec<Finding> {
        url::scan_host(self, host)
    }

    /// Scan one header. Findings in the value have offsets into `value`;
    /// findings in the name (rare) are reported with offsets into `name`.
    pub fn scan_header(&self, name: &str, value: &[u8]) -> Vec<Finding> {
        url::scan_header(self, name, value)
    }

    /// Scan a request's whole header block (or trailer block): every field on its
    /// own as [`scan_header`](Self::scan_header) does, plus the fields joined in
    /// the given order (values back to back, values one per line, names and values
    /// back to back), so a secret split over several fields is found. Each finding
    /// names the fields it touches.
    pub fn scan_header_block(&self, fields: &[(&str, &[u8])]) -> Vec<HeaderFinding> {
        headers::scan_header_block(self, fields)
    }

    /// A streaming scanner over this detector (bounded memory).
    pub fn stream(&self) -> StreamScanner {
        StreamScanner::new(self.clone())
    }
}

/// [`Detector::builtin`]`.detect(bytes)`.
pub fn detect(bytes: &[u8]) -> Vec<Finding> {
    Detector::builtin().detect(bytes)
}

#[derive(Debug, thiserror::Error)]
pub enum DlpError {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}:{line}: {message}", path.display())]
    Invalid {
        path: PathBuf,
        line: usize,
        message: &'static str,
    },
}

/// Longest accepted known-secret line.
pub const MAX_KNOWN_SECRET_LEN: usize = 4096;
/// Most known secrets accepted from one file.
pub const MAX_KNOWN_SECRETS: usize = 10_000;

/// Read known secrets: one value per line; blank lines and lines starting
/// with `#` (after leading whitespace) are skipped; surrounding whitespace
/// (including `\r`) is trimmed. Errors name the file and line, never the value.
pub fn load_known_secrets(path: &Path) -> Result<Vec<Zeroizing<String>>, DlpError> {
    let raw = Zeroizing::new(std::fs::read(path).map_err(|source| DlpError::Io {
        path: path.to_path_buf(),
        source,
    })?);
    let invalid = |line, message| DlpError::Invalid {
        path: path.to_path_buf(),
        line,
        message,
    };
    let mut out = Vec::new();
    for (i, line) in raw.split(|&b| b == b'\n').enumerate() {
        let text = std::str::from_utf8(line).map_err(|_| invalid(i + 1, "not valid UTF-8"))?;
        let text = text.trim();
        if text.is_empty() || text.starts_with('#') {
            continue;
        }
        if text.len() > MAX_KNOWN_SECRET_LEN {
            return Err(invalid(i + 1, "value longer than 4096 bytes"));
        }
        if out.len() >= MAX_KNOWN_SECRETS {
            return Err(invalid(i + 1, "more than 10000 values"));
        }
        out.push(Zeroizing::new(text.to_string()));
    }
    Ok(out)
}

#[cfg(test)]
mod tests;
