//! Launcher errors: each says what went wrong and, where it can, what to do.

/// Everything that can stop a `bottle` command.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The manifest is invalid (message carries file and line).
    #[error("{0}")]
    Manifest(String),
    /// A file operation failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done, with the path.
        what: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// Docker or Compose is missing or failed.
    #[error("{0}")]
    Docker(String),
    /// The bottle did not become healthy, or failed later.
    #[error("{0}")]
    Bottle(String),
    /// A user-facing usage problem.
    #[error("{0}")]
    Usage(String),
    /// Certificate generation failed.
    #[error("CA generation failed: {0}")]
    Ca(String),
    /// Interrupted by a signal.
    #[error("interrupted")]
    Interrupted,
}

impl Error {
    /// Wrap an io::Error with what was being done.
    pub fn io(what: impl Into<String>, source: std::io::Error) -> Self {
        Error::Io {
            what: what.into(),
            source,
        }
    }
}

/// Shorthand result.
pub type Result<T, E = Error> = std::result::Result<T, E>;
