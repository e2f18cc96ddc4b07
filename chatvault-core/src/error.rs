//! The one error type every ChatVault operation returns.

use std::error::Error as StdError;

/// A boxed error from a backend's own stack (an SDK, `std::io`, a database driver).
pub type BoxError = Box<dyn StdError + Send + Sync + 'static>;

/// `Result<T, chatvault_core::Error>`.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in ChatVault.
///
/// The variants say *what kind* of failure happened, so callers can match on them; the
/// [`Backend`](Error::Backend) variant keeps the original error as its
/// [`source`](std::error::Error::source), never flattened to a string.
///
/// ```
/// use chatvault_core::Error;
///
/// let err = Error::invalid_input("filename", "must not be empty");
/// assert!(!err.is_temporary());
/// assert_eq!(err.to_string(), "invalid filename: must not be empty");
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The conversation, message or file that an operation needs does not exist.
    #[error("{kind} not found: {id}")]
    NotFound {
        /// What was looked for: `"conversation"`, `"file"`, ...
        kind: &'static str,
        /// The id or key that was looked for.
        id: String,
    },

    /// Something with this id already exists (creating a conversation with a taken id).
    #[error("{kind} already exists: {id}")]
    AlreadyExists {
        /// What already exists: `"conversation"`, ...
        kind: &'static str,
        /// The id that is taken.
        id: String,
    },

    /// A concurrent writer changed the same record first and retries ran out.
    ///
    /// Nothing was written by the failed call; retrying it is safe.
    #[error("conflict: {message}")]
    Conflict {
        /// What conflicted.
        message: String,
    },

    /// An argument was rejected before anything was stored.
    #[error("invalid {field}: {reason}")]
    InvalidInput {
        /// The argument that was wrong: `"user_id"`, `"filename"`, `"storage key"`, ...
        field: &'static str,
        /// Why it was rejected.
        reason: String,
    },

    /// A value exceeds a limit of ChatVault or of the backend's store.
    #[error("{what} is too large: {size} exceeds the limit of {limit}")]
    TooLarge {
        /// What was too large.
        what: String,
        /// Its size (bytes, items, seconds: whatever `what` says).
        size: u64,
        /// The limit it exceeded.
        limit: u64,
    },

    /// The backend cannot do this operation at all.
    #[error("{backend} does not support {operation}")]
    NotSupported {
        /// The backend's name.
        backend: &'static str,
        /// The operation it refused.
        operation: &'static str,
    },

    /// The byte stream given to a streaming upload failed; nothing was stored.
    #[error("the upload stream failed: {source}")]
    UploadStream {
        /// The stream's error.
        #[source]
        source: std::io::Error,
    },

    /// The store behind a backend failed (I/O, network, the service).
    #[error("{backend} backend error: {source}")]
    Backend {
        /// The backend's name: `"local"`, `"s3"`, `"dynamodb"`, ...
        backend: &'static str,
        /// Whether retrying the same call may succeed (timeouts, throttling, 5xx).
        temporary: bool,
        /// The backend's own error.
        #[source]
        source: BoxError,
    },
}

impl Error {
    /// A permanent backend failure wrapping `source`.
    pub fn backend(backend: &'static str, source: impl Into<BoxError>) -> Self {
        Error::Backend {
            backend,
            temporary: false,
            source: source.into(),
        }
    }

    /// A backend failure that a retry may cure (timeout, throttling, a 5xx).
    pub fn temporary(backend: &'static str, source: impl Into<BoxError>) -> Self {
        Error::Backend {
            backend,
            temporary: true,
            source: source.into(),
        }
    }

    /// An [`InvalidInput`](Error::InvalidInput) error for `field`.
    pub fn invalid_input(field: &'static str, reason: impl Into<String>) -> Self {
        Error::InvalidInput {
            field,
            reason: reason.into(),
        }
    }

    /// A [`NotFound`](Error::NotFound) error for a conversation id.
    pub fn conversation_not_found(id: impl Into<String>) -> Self {
        Error::NotFound {
            kind: "conversation",
            id: id.into(),
        }
    }

    /// Whether retrying the failed call may succeed.
    ///
    /// True for [`Conflict`](Error::Conflict) and for [`Backend`](Error::Backend) errors
    /// the backend marked as temporary; false for everything caused by the input.
    pub fn is_temporary(&self) -> bool {
        match self {
            Error::Conflict { .. } => true,
            Error::Backend { temporary, .. } => *temporary,
            _ => false,
        }
    }

    /// Whether this is a [`NotFound`](Error::NotFound) error.
    pub fn is_not_found(&self) -> bool {
        matches!(self, Error::NotFound { .. })
    }
}

impl From<Error> for std::io::Error {
    fn from(err: Error) -> Self {
        let kind = match &err {
            Error::NotFound { .. } => std::io::ErrorKind::NotFound,
            Error::AlreadyExists { .. } => std::io::ErrorKind::AlreadyExists,
            Error::InvalidInput { .. } => std::io::ErrorKind::InvalidInput,
            Error::NotSupported { .. } => std::io::ErrorKind::Unsupported,
            _ => std::io::ErrorKind::Other,
        };
        std::io::Error::new(kind, err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backend_error_keeps_its_source() {
        let io = std::io::Error::new(std::io::ErrorKind::TimedOut, "slow disk");
        let err = Error::temporary("local", io);
        assert!(err.is_temporary());
        let source = StdError::source(&err).expect("source kept");
        let io = source
            .downcast_ref::<std::io::Error>()
            .expect("source is the io::Error");
        assert_eq!(io.kind(), std::io::ErrorKind::TimedOut);
    }

    #[test]
    fn input_errors_are_not_temporary() {
        assert!(!Error::invalid_input("x", "y").is_temporary());
        assert!(!Error::conversation_not_found("c").is_temporary());
        assert!(
            Error::Conflict {
                message: "m".into()
            }
            .is_temporary()
        );
    }

    #[test]
    fn converts_to_io_error_with_kind() {
        let io: std::io::Error = Error::conversation_not_found("c1").into();
        assert_eq!(io.kind(), std::io::ErrorKind::NotFound);
        assert!(io.get_ref().is_some_and(|e| e.is::<Error>()));
    }
}
