//! Errors: one detailed enum whose variants carry structured fields, and a small
//! [`ErrorKind`] that tells a caller what to do (fix the request, look elsewhere,
//! retry after reading newer state, or report a bug). Every transport maps the kind
//! once: HTTP status in the host and the edge worker, `error.kind` in JavaScript.

use alloc::string::String;
use serde::{Deserialize, Serialize};

/// What the caller should do about an [`Error`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// The request is wrong; retrying it unchanged fails again (HTTP 400).
    Invalid,
    /// A named library, document or chunk does not exist (HTTP 404).
    NotFound,
    /// The request clashes with current state (HTTP 409).
    Conflict,
    /// A bug or corrupted state (HTTP 500).
    Internal,
}

impl ErrorKind {
    /// The name used in JSON error bodies and on JavaScript errors.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Invalid => "invalid",
            ErrorKind::NotFound => "not_found",
            ErrorKind::Conflict => "conflict",
            ErrorKind::Internal => "internal",
        }
    }

    /// The HTTP status code for this kind.
    pub fn http_status(self) -> u16 {
        match self {
            ErrorKind::Invalid => 400,
            ErrorKind::NotFound => 404,
            ErrorKind::Conflict => 409,
            ErrorKind::Internal => 500,
        }
    }
}

/// Everything the engine can refuse. The `Display` text is the message clients see,
/// identical in every runtime.
#[derive(Debug, Clone, PartialEq, thiserror::Error, Serialize, Deserialize)]
pub enum Error {
    #[error("library `{0}` not found")]
    LibraryNotFound(String),
    #[error("library `{0}` already exists")]
    LibraryExists(String),
    #[error("document `{document}` not found in library `{library}`")]
    DocumentNotFound { library: String, document: String },
    #[error("chunk id `{chunk}` already belongs to document `{document}`")]
    ChunkIdTaken { chunk: String, document: String },
    #[error("wrong vector dimension: expected {expected}, got {received}")]
    WrongDimension { expected: u32, received: usize },
    #[error("{field} contains a non-finite number (NaN or infinity) at position {position}")]
    NonFinite { field: String, position: usize },
    #[error("{0}")]
    Invalid(String),
    #[error("malformed JSON: {0}")]
    MalformedJson(String),
    #[error("{what} is not supported yet")]
    Unsupported { what: String },
    #[error(
        "record out of order for library `{library}`: expected sequence {expected}, got {received}"
    )]
    OutOfOrder {
        library: String,
        expected: u64,
        received: u64,
    },
    #[error("corrupt {what}: {reason}")]
    Corrupt { what: &'static str, reason: String },
    #[error("unsupported {what} format version {version} (this build reads up to {supported})")]
    UnknownVersion {
        what: &'static str,
        version: u16,
        supported: u16,
    },
    #[error("internal error: {0}")]
    Internal(String),
}

impl Error {
    /// What the caller should do about this error.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::LibraryNotFound(_) | Error::DocumentNotFound { .. } => ErrorKind::NotFound,
            Error::LibraryExists(_) | Error::ChunkIdTaken { .. } | Error::OutOfOrder { .. } => {
                ErrorKind::Conflict
            }
            Error::WrongDimension { .. }
            | Error::NonFinite { .. }
            | Error::Invalid(_)
            | Error::MalformedJson(_)
            | Error::Unsupported { .. } => ErrorKind::Invalid,
            Error::Corrupt { .. } | Error::UnknownVersion { .. } | Error::Internal(_) => {
                ErrorKind::Internal
            }
        }
    }

    pub(crate) fn invalid(message: impl Into<String>) -> Self {
        Error::Invalid(message.into())
    }
}

/// Result alias used throughout the engine.
pub type Result<T, E = Error> = core::result::Result<T, E>;
