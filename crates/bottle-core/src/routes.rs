//! `routes.yaml`: egress routes, git-gate repositories and DLP settings.

use std::path::PathBuf;

use globset::{Glob, GlobBuilder, GlobSet, GlobSetBuilder};

use crate::allowlist::HostPattern;
use crate::error::ConfigError;

/// Default `max_pack_bytes`: 100 MiB.
pub const DEFAULT_MAX_PACK_BYTES: u64 = 100 * 1024 * 1024;
/// Default `max_refs`.
pub const DEFAULT_MAX_REFS: usize = 100;
/// Default `max_object_bytes`: 50 MiB.
pub const DEFAULT_MAX_OBJECT_BYTES: u64 = 50 * 1024 * 1024;

/// The parsed `routes.yaml`. Equality compares what the sidecars act on (globs by their
/// patterns), lines included.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RoutesFile {
    /// Egress routes, in file order.
    pub routes: Vec<Route>,
    /// git-gate repositories.
    pub git: Vec<GitRepo>,
    /// pipelock DLP settings.
    pub dlp: DlpSettings,
}

/// One egress route.
#[derive(Debug, Clone, PartialEq)]
pub struct Route {
    /// 0-based position in `routes`.
    pub index: usize,
    /// 1-based line of the route in the file.
    pub line: usize,
    /// Which hosts and ports it covers.
    pub host: HostPattern,
    /// `None` = every path.
    pub paths: Option<PathGlobs>,
    /// `None` = every method.
    pub methods: Option<Vec<http::Method>>,
    /// Credential injection; `None` = the route only allows.
    pub auth: Option<RouteAuth>,
    /// Tunnelled, not decrypted.
    pub tls_passthrough: bool,
    /// Inject `auth` even over a plain `http://` upstream (yaml key `allow_cleartext`,
    /// default false: egress refuses to send a credential in clear text).
    pub allow_cleartext: bool,
}

impl Route {
    /// Whether the route's method and path filters accept this request (host not checked).
    pub fn accepts(&self, method: &http::Method, path: &str) -> bool {
        let method_ok = match &self.methods {
            None => true,
            Some(ms) => ms
                .iter()
                .any(|m| m.as_str().eq_ignore_ascii_case(method.as_str())),
        };
        let path_ok = match &self.paths {
            None => true,
            Some(g) => g.matches(path),
        };
        method_ok && path_ok
    }
}

/// How the credential is injected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthScheme {
    /// `Authorization: Bearer <token>` (with `prefix` replacing `Bearer `, if set).
    Bearer,
    /// `Authorization: Basic base64(username:token)`.
    Basic,
    /// `<header>: <prefix><token>`.
    Header,
    /// `?<param>=<token>`.
    Query,
}

/// A route's `auth` block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteAuth {
    /// The scheme.
    pub scheme: AuthScheme,
    /// The environment variable (of egress) that holds the secret.
    pub token_env: String,
    /// For `header`: the header name.
    pub header: Option<String>,
    /// Optional prefix of the header value.
    pub prefix: Option<String>,
    /// For `basic`: the user name.
    pub username: Option<String>,
    /// For `query`: the parameter name.
    pub param: Option<String>,
    /// Remove `Cookie` headers the agent sent (yaml key `strip_cookies`, default false).
    pub strip_cookies: bool,
}

/// Glob patterns over URL paths (without query). `*` stays within a segment, `**` crosses.
#[derive(Debug, Clone)]
pub struct PathGlobs {
    patterns: Vec<String>,
    set: GlobSet,
}

impl PathGlobs {
    /// Build from patterns; each must start with `/`.
    pub fn new(patterns: &[String]) -> Result<PathGlobs, String> {
        let mut b = GlobSetBuilder::new();
        for p in patterns {
            b.add(path_glob(p)?);
        }
        let set = b.build().map_err(|e| e.to_string())?;
        Ok(PathGlobs {
            patterns: patterns.to_vec(),
            set,
        })
    }

    /// Whether `path` (no query) matches. Paths with dot segments (`/../`, `/./`) or
    /// percent-encoded `/`, `\` or `.` never match: they could name something outside
    /// the glob once the origin decodes them. egress passes the output of
    /// [`crate::path::normalise`] (and refuses what it calls ambiguous).
    pub fn matches(&self, path: &str) -> bool {
        let path = path.split('?').next().unwrap_or("");
        if !path.starts_with('/') || path.contains('\\') {
            return false;
        }
        let lower = path.to_ascii_lowercase();
        if lower.contains("%2f") || lower.contains("%5c") || lower.contains("%2e") {
            return false;
        }
        if path.split('/').any(|seg| seg == "." || seg == "..") {
            return false;
        }
        self.set.is_match(path)
    }

    /// The patterns as written.
    pub fn patterns(&self) -> &[String] {
        &self.patterns
    }
}

/// The same patterns compile to the same set.
impl PartialEq for PathGlobs {
    fn eq(&self, other: &Self) -> bool {
        self.patterns == other.patterns
    }
}

fn path_glob(p: &str) -> Result<Glob, String> {
    if !p.starts_with('/') {
        return Err(format!("path glob `{p}` must start with `/`"));
    }
    GlobBuilder::new(p)
        .literal_separator(true)
        .backslash_escape(true)
        .build()
        .map_err(|e| format!("invalid path glob `{p}`: {e}"))
}

/// A git-gate repository.
#[derive(Debug, Clone, PartialEq)]
pub struct GitRepo {
    /// Served as `/<name>.git`; `[A-Za-z0-9._-]+`, unique.
    pub name: String,
    /// 1-based line of the entry.
    pub line: usize,
    /// `https://`, `ssh://` or `file://`.
    pub upstream: String,
    /// Credentials for https upstreams.
    pub auth: Option<GitAuth>,
    /// Key and pinned host key for ssh upstreams.
    pub ssh: Option<GitSsh>,
    /// Ordered ref rules; first match wins; no match = denied.
    pub rules: Vec<RefRule>,
    /// Refs never forced or deleted.
    pub protected: Vec<String>,
    /// Whether push options are passed on (default false).
    pub push_options: bool,
    /// Largest accepted pack.
    pub max_pack_bytes: u64,
    /// Most refs in one push.
    pub max_refs: usize,
    /// Largest accepted object.
    pub max_object_bytes: u64,
}

/// git upstream credentials.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GitAuth {
    /// basic or bearer.
    pub scheme: GitAuthScheme,
    /// For basic; default `x-access-token` is left to git-gate.
    pub username: Option<String>,
    /// Environment variable holding the token.
    pub token_env: String,
}

/// git auth scheme.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GitAuthScheme {
    /// HTTP basic.
    Basic,
    /// Bearer token.
    Bearer,
}

/// ssh upstream settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GitSsh {
    /// Private key file.
    pub key_file: PathBuf,
    /// Pinned host key line(s), known_hosts format.
    pub known_hosts: String,
}

/// One ref rule.
#[derive(Debug, Clone)]
pub struct RefRule {
    /// The glob as written (`refs/heads/agent/**`).
    pub r#ref: String,
    /// Compiled glob (`*` within a path segment, `**` across).
    pub glob: globset::GlobMatcher,
    /// What the rule allows.
    pub allow: Vec<RefAction>,
}

/// The glob is compiled from `r#ref`: equal patterns, equal globs.
impl PartialEq for RefRule {
    fn eq(&self, other: &Self) -> bool {
        self.r#ref == other.r#ref && self.allow == other.allow
    }
}

impl RefRule {
    /// Whether the rule's glob matches `refname`.
    pub fn matches(&self, refname: &str) -> bool {
        self.glob.is_match(refname)
    }
}

/// What a push may do to a ref.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RefAction {
    /// New ref.
    Create,
    /// Fast-forward.
    Update,
    /// Non-fast-forward.
    Force,
    /// Deletion.
    Delete,
}

/// DLP settings (`dlp:` in routes.yaml; pipelock applies them).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DlpSettings {
    /// What to do on a secret found in a request.
    pub action: DlpAction,
    /// Which detectors run: `strict` adds the anomaly heuristics.
    pub profile: DlpProfile,
    /// Prompt injection in responses (pages, API bodies, SSE).
    pub responses: ScanAction,
    /// MCP and A2A traffic (JSON-RPC over HTTP and SSE): poisoned tool lists, injected tool
    /// results, tool definitions changed within a session.
    pub mcp: ScanAction,
}

/// Which detector set pipelock runs on requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DlpProfile {
    /// Credentials, known secrets and data classes: no false positive on ordinary traffic.
    #[default]
    Default,
    /// Also the anomaly heuristics (high-entropy host labels and path segments, many
    /// subdomains of one domain, repeated multi-layer encodings), which ordinary traffic
    /// can trip now and then.
    Strict,
}

/// What pipelock does with a finding in content coming back to the agent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ScanAction {
    /// Refuse (before the first byte when the body is small, else cut the stream before the
    /// finding reaches the agent).
    #[default]
    Block,
    /// Pass it and annotate the audit line.
    Warn,
    /// Do not scan.
    Off,
}

/// DLP action.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DlpAction {
    /// Refuse the request (default).
    #[default]
    Block,
    /// Log and let it through.
    Log,
}

/// A DLP setting spelled as one lowercase word in routes.yaml and the manifest. The words
/// live once, in the tables below: parsing, printing and serde all read them.
pub trait SettingWord: Sized + Copy + 'static {
    /// Every accepted word, in the order error messages list them.
    const WORDS: &'static [&'static str];
    /// The value a word names; `None` for any other text.
    fn from_word(word: &str) -> Option<Self>;
}

/// A word that names no value of the setting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownWord {
    /// What was given.
    pub given: String,
    /// What is accepted.
    pub allowed: &'static [&'static str],
}

impl std::fmt::Display for UnknownWord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let allowed: Vec<String> = self.allowed.iter().map(|w| format!("`{w}`")).collect();
        write!(f, "must be {}, not `{}`", allowed.join(" or "), self.given)
    }
}

impl std::error::Error for UnknownWord {}

/// One table per setting: `as_str`, `FromStr`, `Display` and serde (as the word) from it.
macro_rules! setting_words {
    ($ty:ident { $($variant:ident => $word:literal),+ $(,)? }) => {
        impl $ty {
            /// The word used in routes.yaml and the manifest.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($ty::$variant => $word,)+
                }
            }
        }

        impl SettingWord for $ty {
            const WORDS: &'static [&'static str] = &[$($word),+];
            fn from_word(word: &str) -> Option<Self> {
                match word {
                    $($word => Some($ty::$variant),)+
                    _ => None,
                }
            }
        }

        impl std::str::FromStr for $ty {
            type Err = UnknownWord;
            fn from_str(s: &str) -> Result<Self, UnknownWord> {
                <$ty as SettingWord>::from_word(s).ok_or_else(|| UnknownWord {
                    given: s.to_string(),
                    allowed: <$ty as SettingWord>::WORDS,
                })
            }
        }

        impl std::fmt::Display for $ty {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl serde::Serialize for $ty {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl<'de> serde::Deserialize<'de> for $ty {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let word = String::deserialize(d)?;
                word.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}

setting_words!(DlpAction { Block => "block", Log => "log" });
setting_words!(DlpProfile { Default => "default", Strict => "strict" });
setting_words!(ScanAction { Block => "block", Warn => "warn", Off => "off" });

/// The `dlp` map's `key`, when present, read as its setting's word (an unknown word is an
/// error naming the accepted ones, with a did-you-mean). Shared by routes.yaml and the
/// manifest so both accept and reject the same words with the same messages.
pub fn dlp_setting<T: SettingWord>(
    ctx: &crate::strict_yaml::Ctx<'_>,
    dlp: &crate::strict_yaml::Map<'_>,
    key: &str,
) -> Result<Option<T>, ConfigError> {
    let Some(node) = dlp.get(key) else {
        return Ok(None);
    };
    let word = crate::strict_yaml::word(ctx, node, &format!("dlp `{key}`"), T::WORDS)?;
    // `word` only returns one of `T::WORDS`, each of which names a value.
    T::from_word(word)
        .map(Some)
        .ok_or_else(|| ctx.err(node.line, format!("dlp `{key}`: unknown word `{word}`")))
}

// `RoutesFile::parse` and `RoutesFile::from_node` are in routes_parse, so that the schema
// here does not depend on its parser.
impl RoutesFile {
    /// No routes, no repositories, default DLP.
    pub fn empty() -> RoutesFile {
        RoutesFile::default()
    }

    /// The repository called `name`.
    pub fn git_repo(&self, name: &str) -> Option<&GitRepo> {
        self.git.iter().find(|g| g.name == name)
    }
}

pub(crate) fn ref_glob(pattern: &str) -> Result<globset::GlobMatcher, String> {
    if pattern.is_empty() {
        return Err("empty ref pattern".into());
    }
    if !pattern.starts_with("refs/") {
        return Err(format!(
            "ref pattern `{pattern}` must start with `refs/` (e.g. `refs/heads/**`)"
        ));
    }
    GlobBuilder::new(pattern)
        .literal_separator(true)
        .backslash_escape(true)
        .build()
        .map(|g| g.compile_matcher())
        .map_err(|e| format!("invalid ref pattern `{pattern}`: {e}"))
}

#[cfg(test)]
mod setting_word_tests {
    use super::*;

    fn round_trips<T>()
    where
        T: SettingWord + std::str::FromStr + std::fmt::Display + PartialEq + std::fmt::Debug,
        T: serde::Serialize + serde::de::DeserializeOwned,
        <T as std::str::FromStr>::Err: std::fmt::Debug,
    {
        for word in T::WORDS {
            let v: T = word.parse().unwrap();
            assert_eq!(v.to_string(), *word);
            assert_eq!(serde_json::to_string(&v).unwrap(), format!("\"{word}\""));
            let back: T = serde_json::from_str(&format!("\"{word}\"")).unwrap();
            assert_eq!(back, v);
        }
    }

    #[test]
    fn every_word_parses_prints_and_serializes_as_itself() {
        round_trips::<DlpAction>();
        round_trips::<DlpProfile>();
        round_trips::<ScanAction>();
        assert_eq!(ScanAction::WORDS, ["block", "warn", "off"]);
        assert_eq!(DlpAction::WORDS, ["block", "log"]);
        assert_eq!(DlpProfile::WORDS, ["default", "strict"]);
    }

    #[test]
    fn unknown_and_miscased_words_are_refused_naming_the_accepted_ones() {
        let err = "Block".parse::<ScanAction>().unwrap_err();
        assert_eq!(
            err.to_string(),
            "must be `block` or `warn` or `off`, not `Block`"
        );
        assert!("log".parse::<ScanAction>().is_err());
        assert!("warn".parse::<DlpAction>().is_err());
        assert!("".parse::<DlpProfile>().is_err());
        let serde_err = serde_json::from_str::<DlpProfile>("\"paranoid\"").unwrap_err();
        assert!(serde_err.to_string().contains("`default` or `strict`"));
    }

    #[test]
    fn the_defaults_are_the_strictest_words() {
        assert_eq!(DlpAction::default(), DlpAction::Block);
        assert_eq!(DlpProfile::default(), DlpProfile::Default);
        assert_eq!(ScanAction::default(), ScanAction::Block);
    }
}
