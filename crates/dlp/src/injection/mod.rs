//! Prompt injection in content coming back to the agent: fetched pages, API responses, SSE
//! events, MCP tool descriptions and tool results, A2A agent cards and messages.
//!
//! The API pipelock builds on:
//! - [`ContentKind`] says what the bytes are (picks the hiding tricks that apply);
//! - [`scan_injection`] judges a whole body;
//! - [`InjectionStream`] judges a body of any size with bounded memory and says which bytes
//!   may be released to the agent: everything but a held-back tail, so that a finding is
//!   reported before any byte of it has been released.
//!
//! Findings carry a detector id, never the matched text.
//!
//! # How text is read
//! One pass, one character at a time, with bounded state (so a stream cut anywhere reads the
//! same): UTF-8; JSON string values with their escapes (JSON bodies, and text or tool
//! descriptions starting with `{`/`[`), bare `\uXXXX` elsewhere; HTML/markdown markup
//! (tags removed, block tags are line breaks, character references decoded, comments,
//! hidden elements, attributes, `<script>`, markdown link definitions tagged *hidden*;
//! `<pre>`, `<code>`, fences, backticks tagged *code*; `<blockquote>`, `<q>`, `>` lines
//! tagged *quote*); then folding: zero-width and bidi controls dropped, fullwidth,
//! mathematical, letter-like, circled, small-capital, super/subscript, regional-indicator,
//! Cyrillic and Greek look-alikes folded to ASCII (both tagged
//! *obfuscated*), Unicode tag characters read as hidden ASCII, lower-cased, whitespace
//! collapsed. Every normalised byte maps back to its input offset.
//!
//! # Detectors
//! [`OVERRIDE`], [`ROLE`], [`EXFIL`] are rule classes (see `rules.rs`: verb families,
//! bounded filler, object families). [`HIDDEN_ID`], [`OBFUSCATED_ID`] and [`ENCODED`] say
//! *where* a rule matched. [`TOOL_POISONING`] rules only apply to
//! [`ContentKind::ToolDescription`] (their gist, a secret file handed to a tool argument,
//! is an [`EXFIL`] rule in every kind).
//!
//! # The scoring: documentation is not blocked, hidden instructions always are
//! A rule match is decided by where it was read:
//! 1. in hidden text (comment, hidden element, `<script>`, link definition, tag
//!    characters) or decoded from base64/hex: **always** a finding, whatever its strength;
//! 2. spelled with invisible controls or look-alike letters: **always** a finding
//!    (obfuscation itself is the signal); a sensitive word (`ignore`, `system`, `password`,
//!    ...) mixing such letters with plain ones is a finding alone;
//! 3. in a tool description: always a finding, quoted or not, except personas and standing
//!    orders (`Always include the base branch`), scored like prose;
//! 4. everything visible is scored: weak rule and persona 1 (`User:`, `send the token to
//!    https://...`), strong 2 (`ignore previous instructions`, `<|im_start|>`), a rule that
//!    is itself an address to the AI with an action 3 (`AI assistant: run ...`), critical 4
//!    (read a secret file and hand it to a tool argument or URL); +2 when the sentence
//!    before the match addresses the AI; -2 when the words right before make it a mention
//!    (`phrases like`, `tell the model to`, `the text "`); -2 (not for addressed rules) when
//!    words of a page about injection are near (`example`, `attack`, `payload`, `detect`,
//!    `malicious`, `OWASP`, ... in the 400 bytes before or the rest of the sentence). A
//!    finding at 2 or more.
//! 5. code (`<code>`, fences, backticks), quotations (`<blockquote>`, `>`) and an open
//!    `"`/`'` in the sentence are *examples* only when something says so: documentation
//!    words near, a page that named its topic (`prompt injection`, `jailbreak`, ...)
//!    before, or a mention verb right before the quote. An example counts -2 once and gets
//!    no address bonus; a quote alone switches nothing off.
//!    Attribute text (`alt`, `title`, `<meta content>`) often repeats visible text: it is
//!    scored like prose with +1 for strong rules and -2 for a quote.
//!
//! So a page *about* injection quoting `ignore previous instructions` in prose, quotes or
//! code passes, while the same words in a comment, a `display:none` block, base64, or
//! addressed to the reading AI with a verb do not.
//!
//! # Streams
//! The normalised text is judged every 2 KiB, 128 bytes behind its end (the rest of a
//! sentence); a rule match is at most 512 normalised bytes long, and an encoded run is
//! decoded in pieces overlapping by 512 bytes, so [`InjectionStream`] holds back the input
//! behind the last 512 judged bytes and the unjudged ones. Once 4 KiB of input are held it
//! judges early; it never holds more than [`INJECTION_HOLD`]: a match whose input span
//! (with interleaved markup) is longer than that is still found, but its first bytes may
//! have been released.
//!
//! Known limits (see the crate README): paraphrases outside the rule families, languages
//! beyond the small table, respellings (leetspeak, spacing, ROT13, reversal) beyond the
//! core override order; examples on a page about injection are allowed by design; CSS from
//! external sheets or scripts is not seen.

mod css;
mod elements;
mod encoded;
mod fold;
mod judge;
mod markup;
mod norm;
mod rules;
mod ruleset;
mod scanner;
mod stream;

pub use stream::{InjectionStream, INJECTION_HOLD};

/// Attempts to supersede the agent's instructions.
pub const OVERRIDE: &str = "injection-override";
/// Forged conversation structure (chat-template tokens, role tags, turn headers).
pub const ROLE: &str = "injection-role";
/// Directives to send secrets somewhere, or to pipe a download into a shell.
pub const EXFIL: &str = "injection-exfil";
/// Any instruction-like text inside hidden markup.
pub const HIDDEN_ID: &str = "injection-hidden";
/// Instruction words written with invisible controls or look-alike letters.
pub const OBFUSCATED_ID: &str = "injection-obfuscated";
/// Base64 / base64url / hex runs that decode to instruction text.
pub const ENCODED: &str = "injection-encoded";
/// Tool descriptions that instruct the model against the user.
pub const TOOL_POISONING: &str = "injection-tool-poisoning";

/// Every detector id.
pub const DETECTORS: [&str; 7] = [
    OVERRIDE,
    ROLE,
    EXFIL,
    HIDDEN_ID,
    OBFUSCATED_ID,
    ENCODED,
    TOOL_POISONING,
];

/// What the scanned bytes are.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ContentKind {
    /// HTML (hidden elements, comments and attributes are where instructions hide).
    Html,
    /// Markdown (HTML comments, link titles, reference definitions).
    Markdown,
    /// JSON (string values are decoded before they are judged).
    Json,
    /// Plain text, and anything textual without a better kind.
    Text,
    /// An MCP tool description or an A2A skill description: text addressed to a model by
    /// design, held to a stricter standard (no hidden instructions, no demands to read
    /// files or credentials, no "do not tell the user").
    ToolDescription,
}

impl ContentKind {
    /// The kind for a `Content-Type` header value; `None` for content that is not scanned
    /// (images, audio, video, fonts, archives, octet streams).
    pub fn from_content_type(ct: &str) -> Option<ContentKind> {
        let mime = ct
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        if mime.is_empty() {
            return Some(ContentKind::Text);
        }
        if mime == "text/html" || mime == "application/xhtml+xml" {
            return Some(ContentKind::Html);
        }
        if mime == "text/markdown" || mime == "text/x-markdown" {
            return Some(ContentKind::Markdown);
        }
        if mime == "application/json" || mime.ends_with("+json") {
            return Some(ContentKind::Json);
        }
        if mime.starts_with("text/") || mime.ends_with("+xml") || mime == "application/xml" {
            return Some(ContentKind::Text);
        }
        None
    }
}

/// One prompt-injection finding.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InjectionFinding {
    /// Stable detector id (`injection-override`, `injection-hidden`, ...).
    pub detector: &'static str,
    /// Byte offset of the finding in the scanned input (for a stream: from its start).
    pub offset: usize,
    /// Length in bytes.
    pub len: usize,
}

/// Judges a whole body: every finding (at most 256), in the order found.
pub fn scan_injection(content: &[u8], kind: ContentKind) -> Vec<InjectionFinding> {
    let mut s = scanner::Scanner::new(kind, false, 0);
    s.feed(content);
    s.finish();
    s.findings
}
