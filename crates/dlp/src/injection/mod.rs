//! Prompt injection in content coming back to the agent: fetched pages, API responses, SSE
//! events, MCP tool descriptions and tool results, A2A agent cards and messages.
//!
//! The API pipelock builds on (skeleton: the detection itself grows behind it):
//! - [`ContentKind`] says what the bytes are (picks the hiding tricks that apply);
//! - [`scan_injection`] judges a whole body;
//! - [`InjectionStream`] judges a body of any size with bounded memory and says which bytes
//!   may be released to the agent: everything but a held-back tail, so that a finding is
//!   reported before any byte of it has been released.
//!
//! Findings carry a detector id, never the matched text.

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

/// Judges a whole body.
pub fn scan_injection(content: &[u8], kind: ContentKind) -> Vec<InjectionFinding> {
    let _ = kind;
    let lower = String::from_utf8_lossy(content).to_lowercase();
    let mut out = Vec::new();
    for phrase in ["ignore all previous instructions", "ignore previous instructions"] {
        if let Some(at) = lower.find(phrase) {
            out.push(InjectionFinding {
                detector: "injection-override",
                offset: at,
                len: phrase.len(),
            });
            break;
        }
    }
    out
}

/// Bytes held back at most by [`InjectionStream`] (and the context a finding may span).
pub const INJECTION_HOLD: usize = 8 * 1024;

/// A streamed body judged with bounded memory.
pub struct InjectionStream {
    kind: ContentKind,
    held: Vec<u8>,
    consumed: usize,
}

impl InjectionStream {
    /// A stream of `kind` content.
    pub fn new(kind: ContentKind) -> Self {
        InjectionStream {
            kind,
            held: Vec::new(),
            consumed: 0,
        }
    }

    /// Feeds the next chunk; returns the bytes that may now be released to the agent, or the
    /// first finding (then nothing more may be released).
    pub fn push(&mut self, chunk: &[u8]) -> Result<Vec<u8>, InjectionFinding> {
        self.held.extend_from_slice(chunk);
        if let Some(mut f) = scan_injection(&self.held, self.kind).into_iter().next() {
            f.offset += self.consumed;
            return Err(f);
        }
        if self.held.len() <= INJECTION_HOLD {
            return Ok(Vec::new());
        }
        let release = self.held.len() - INJECTION_HOLD;
        self.consumed += release;
        Ok(self.held.drain(..release).collect())
    }

    /// The body ended: the held-back rest, or a finding.
    pub fn finish(&mut self) -> Result<Vec<u8>, InjectionFinding> {
        if let Some(mut f) = scan_injection(&self.held, self.kind).into_iter().next() {
            f.offset += self.consumed;
            return Err(f);
        }
        self.consumed += self.held.len();
        Ok(std::mem::take(&mut self.held))
    }
}
