//! Why authentication could not be set up. These stop berth at start (or, for a reload, keep the last good
//! state and are logged), so each names the file and line or the configuration key at fault. None carries
//! a password, a hash or a token: a broken htpasswd line is described by its number and hash type only.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file named by the configuration could not be read.
    #[error("{key} {path}: {source}")]
    Read {
        key: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    /// The htpasswd file holds a line berth refuses.
    #[error("htpasswd file {path}, line {line}: {reason}")]
    HtpasswdLine {
        path: PathBuf,
        line: usize,
        reason: String,
    },
    /// A key file (certificate bundle or JWKS) holds no usable key.
    #[error("{key} {path}: {reason}")]
    Keys {
        key: &'static str,
        path: PathBuf,
        reason: String,
    },
    /// A configuration value is out of bounds; `key` is its dotted path.
    #[error("{key}: {reason}")]
    Config { key: String, reason: String },
}

impl Error {
    pub(crate) fn config(key: impl Into<String>, reason: impl Into<String>) -> Error {
        Error::Config {
            key: key.into(),
            reason: reason.into(),
        }
    }
}
