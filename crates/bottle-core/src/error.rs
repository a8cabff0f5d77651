//! Configuration errors: always name the file, and the line when there is one.

use std::path::PathBuf;

/// An error in a configuration file. Display: `{file}:{line}: {message}` (no line if `None`).
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The content is invalid.
    #[error("{}{}: {message}", file.display(), line.map(|l| format!(":{l}")).unwrap_or_default())]
    Invalid {
        /// The file that holds the error.
        file: PathBuf,
        /// 1-based line number, when known.
        line: Option<usize>,
        /// What is wrong and what to do about it.
        message: String,
    },
    /// The file could not be read.
    #[error("{}: cannot read: {source}", file.display())]
    Io {
        /// The file that could not be read.
        file: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
}

impl ConfigError {
    /// Shorthand for [`ConfigError::Invalid`].
    pub fn invalid(
        file: impl Into<PathBuf>,
        line: Option<usize>,
        message: impl Into<String>,
    ) -> Self {
        ConfigError::Invalid {
            file: file.into(),
            line,
            message: message.into(),
        }
    }

    /// The line number, if any.
    pub fn line(&self) -> Option<usize> {
        match self {
            ConfigError::Invalid { line, .. } => *line,
            ConfigError::Io { .. } => None,
        }
    }
}

/// The first error of type `T` in `e`'s source chain (`e` itself included), e.g. a
/// connector's own error inside a hyper client error.
pub fn find_source<'a, T: std::error::Error + 'static>(
    e: &'a (dyn std::error::Error + 'static),
) -> Option<&'a T> {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        if let Some(t) = err.downcast_ref::<T>() {
            return Some(t);
        }
        cur = err.source();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_with_and_without_line() {
        let e = ConfigError::invalid("/etc/bottle/allowlist", Some(7), "bad host");
        assert_eq!(e.to_string(), "/etc/bottle/allowlist:7: bad host");
        let e = ConfigError::invalid("routes.yaml", None, "empty");
        assert_eq!(e.to_string(), "routes.yaml: empty");
        assert_eq!(e.line(), None);
    }

    #[test]
    fn find_source_walks_the_chain() {
        #[derive(Debug, thiserror::Error)]
        #[error("inner {0}")]
        struct Inner(u8);
        #[derive(Debug, thiserror::Error)]
        #[error("outer")]
        struct Outer(#[source] Inner);
        let outer = Outer(Inner(7));
        assert_eq!(find_source::<Inner>(&outer).map(|i| i.0), Some(7));
        assert!(find_source::<Outer>(&outer).is_some());
        assert!(find_source::<std::fmt::Error>(&outer).is_none());
    }
}
