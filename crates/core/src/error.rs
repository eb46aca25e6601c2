//! The crate's one error type: configuration that cannot be used.
//!
//! Bad *input* is not an error here: it is a [`Rejection`](crate::envelope::Rejection), a normal
//! outcome that goes to the dead-letter topic. Errors are for what an operator must fix before
//! anything runs, so every message is one line that names the offending key.

/// A configuration (file, environment or pattern) that cannot be used.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ConfigError {
    /// The document is not TOML.
    #[error("line {line}: {message}")]
    Syntax {
        /// 1-based line of the document where parsing failed.
        line: usize,
        /// The parser's explanation.
        message: String,
    },
    /// A key holds a value it cannot hold; `key` is its dotted TOML path.
    #[error("{key}: {message}")]
    Invalid {
        /// The dotted TOML path of the key, e.g. `kafka.batch_max_records`.
        key: String,
        /// What is wrong with its value, and what it may hold.
        message: String,
    },
    /// A type pattern is malformed (docs/topics-and-records.md); whoever read it names the key.
    #[error("`{pattern}` is not a valid type pattern: {reason}")]
    InvalidPattern {
        /// The pattern as written.
        pattern: String,
        /// Which rule of the pattern syntax it breaks.
        reason: String,
    },
}

impl ConfigError {
    /// An error about the value at `key` (a dotted path, see [`key_path`]).
    pub fn invalid(key: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Invalid {
            key: key.into(),
            message: one_line(message.into()),
        }
    }

    /// Attributes this error to `key` (keeps an existing key).
    pub fn at(self, key: impl Into<String>) -> Self {
        match self {
            Self::Invalid { .. } => self,
            other => Self::invalid(key, other.to_string()),
        }
    }
}

/// Joins TOML keys into a dotted path, quoting those that are not bare keys:
/// `["sampling", "user.page.view"]` → `sampling."user.page.view"`.
pub fn key_path<S: AsRef<str>>(keys: &[S]) -> String {
    let mut path = String::new();
    for (i, key) in keys.iter().enumerate() {
        let key = key.as_ref();
        if i > 0 {
            path.push('.');
        }
        let bare = !key.is_empty()
            && key
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        if bare {
            path.push_str(key);
        } else {
            path.push_str(&serde_json::to_string(key).unwrap_or_default());
        }
    }
    path
}

/// Messages from parsers sometimes span lines; ours must not.
pub(crate) fn one_line(message: String) -> String {
    if message.contains('\n') {
        message.split_whitespace().collect::<Vec<_>>().join(" ")
    } else {
        message
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_paths_quote_keys_that_are_not_bare() {
        assert_eq!(
            key_path(&["limits", "max_record_bytes"]),
            "limits.max_record_bytes"
        );
        assert_eq!(
            key_path(&["sampling", "user.page.view"]),
            "sampling.\"user.page.view\""
        );
        assert_eq!(key_path(&["sampling", "**"]), "sampling.\"**\"");
    }

    #[test]
    fn messages_are_one_line() {
        let err = ConfigError::invalid("a.b", "first\n  second");
        assert_eq!(err.to_string(), "a.b: first second");
    }
}
