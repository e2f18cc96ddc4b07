//! The one error type every ChatVault operation returns.

use std::error::Error as StdError;

/// A boxed error from a backend's own stack (an SDK, `std::io`, a database driver).
pub type BoxError = Box<dyn StdError + Send + Sync + 'static>;

/// `Result<T, chatvault_core::Error>`.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The class of an [`Error`], for matching without caring about the details.
///
/// New kinds may be added in later releases; match with a wildcard arm.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The conversation, message or file does not exist.
    NotFound,
    /// Something with this id already exists.
    AlreadyExists,
    /// A concurrent writer got there first; nothing was written.
    Conflict,
    /// An argument was rejected before anything was stored.
    InvalidInput,
    /// A value exceeds a limit of ChatVault or of the backend.
    TooLarge,
    /// The backend cannot do this at all (see its capabilities).
    NotSupported,
    /// The caller or the backend's credentials may not do this.
    PermissionDenied,
    /// Stored data failed a check.
    Corrupt,
    /// A write may or may not have been applied.
    OutcomeUnknown,
    /// The store behind the backend failed.
    Backend,
    /// The streamed reply was stopped by a reader; its writer must end.
    Stopped,
}

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

    /// The caller may not do this, or the backend's store refused it (credentials,
    /// permissions, a link inside a local store that would lead outside its root).
    #[error("{backend}: permission denied: {message}")]
    PermissionDenied {
        /// The backend's name.
        backend: &'static str,
        /// What was refused, and why.
        message: String,
        /// The store's own error, when there is one.
        #[source]
        source: Option<BoxError>,
    },

    /// Stored data failed a check (checksum, format, an impossible value): what and where.
    ///
    /// Nothing was changed by the failing call. Not temporary: retrying reads the same
    /// bytes.
    #[error("{backend}: corrupt data at {location}: {message}")]
    Corrupt {
        /// The backend's name.
        backend: &'static str,
        /// Where: a file path, a table key, an object key.
        location: String,
        /// What is wrong with it.
        message: String,
    },

    /// A write was sent but its answer was lost (a timeout, a dropped connection): it may
    /// or may not have been applied.
    ///
    /// Not [temporary](Error::is_temporary): a blind retry of an append could store the
    /// messages twice. The recovery is to retry with the same message ids, which
    /// [idempotent appends](crate::MessagesBackend::append_messages_as) make safe, or to read back.
    #[error("{backend}: the outcome of {operation} is unknown: {source}")]
    OutcomeUnknown {
        /// The backend's name.
        backend: &'static str,
        /// The operation whose outcome is unknown.
        operation: &'static str,
        /// Why it is unknown.
        #[source]
        source: BoxError,
    },

    /// The streamed reply this writer writes was stopped
    /// ([`Conversation::stop_reply`](crate::Conversation::stop_reply)): nothing was
    /// written by the failed call, and nothing more will be. The stored reply keeps what
    /// was stored when it was stopped, with status
    /// [`Stopped`](crate::MessageStatus::Stopped). Not temporary.
    #[error("reply {message_id} was stopped")]
    Stopped {
        /// The reply's message id.
        message_id: String,
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

    /// A [`PermissionDenied`](Error::PermissionDenied) error without a source.
    pub fn permission_denied(backend: &'static str, message: impl Into<String>) -> Self {
        Error::PermissionDenied {
            backend,
            message: message.into(),
            source: None,
        }
    }

    /// A [`Corrupt`](Error::Corrupt) error: what is wrong, and where.
    pub fn corrupt(
        backend: &'static str,
        location: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Error::Corrupt {
            backend,
            location: location.into(),
            message: message.into(),
        }
    }

    /// An [`OutcomeUnknown`](Error::OutcomeUnknown) error for `operation`.
    pub fn outcome_unknown(
        backend: &'static str,
        operation: &'static str,
        source: impl Into<BoxError>,
    ) -> Self {
        Error::OutcomeUnknown {
            backend,
            operation,
            source: source.into(),
        }
    }

    /// A [`NotFound`](Error::NotFound) error for a message id.
    pub fn message_not_found(id: impl Into<String>) -> Self {
        Error::NotFound {
            kind: "message",
            id: id.into(),
        }
    }

    /// A [`NotSupported`](Error::NotSupported) error.
    pub fn not_supported(backend: &'static str, operation: &'static str) -> Self {
        Error::NotSupported { backend, operation }
    }

    /// The [`NotSupported`](Error::NotSupported) error of a backend without full-text
    /// search: what its [`MessagesBackend::search`](crate::MessagesBackend::search) answers.
    pub fn search_not_supported(backend: &'static str) -> Self {
        Error::not_supported(backend, "search")
    }

    /// The class of this error.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::NotFound { .. } => ErrorKind::NotFound,
            Error::AlreadyExists { .. } => ErrorKind::AlreadyExists,
            Error::Conflict { .. } => ErrorKind::Conflict,
            Error::InvalidInput { .. } | Error::UploadStream { .. } => ErrorKind::InvalidInput,
            Error::TooLarge { .. } => ErrorKind::TooLarge,
            Error::NotSupported { .. } => ErrorKind::NotSupported,
            Error::PermissionDenied { .. } => ErrorKind::PermissionDenied,
            Error::Corrupt { .. } => ErrorKind::Corrupt,
            Error::OutcomeUnknown { .. } => ErrorKind::OutcomeUnknown,
            Error::Backend { .. } => ErrorKind::Backend,
            Error::Stopped { .. } => ErrorKind::Stopped,
        }
    }

    /// Whether retrying the failed call may succeed.
    ///
    /// True for [`Conflict`](Error::Conflict) and for [`Backend`](Error::Backend) errors
    /// the backend marked as temporary (nothing was written, a blind retry is safe); false
    /// for everything caused by the input, and for
    /// [`OutcomeUnknown`](Error::OutcomeUnknown), where a blind retry is not safe.
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
        let kind = match err.kind() {
            ErrorKind::NotFound => std::io::ErrorKind::NotFound,
            ErrorKind::AlreadyExists => std::io::ErrorKind::AlreadyExists,
            ErrorKind::InvalidInput => std::io::ErrorKind::InvalidInput,
            ErrorKind::NotSupported => std::io::ErrorKind::Unsupported,
            ErrorKind::PermissionDenied => std::io::ErrorKind::PermissionDenied,
            ErrorKind::Corrupt => std::io::ErrorKind::InvalidData,
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
    fn outcome_unknown_is_not_temporary() {
        let err = Error::outcome_unknown("dynamodb", "append", "timed out");
        assert_eq!(err.kind(), ErrorKind::OutcomeUnknown);
        assert!(!err.is_temporary());
        assert_eq!(
            Error::corrupt("local", "/x/log-1", "bad checksum").kind(),
            ErrorKind::Corrupt
        );
        assert_eq!(
            Error::permission_denied("local", "link").kind(),
            ErrorKind::PermissionDenied
        );
    }

    #[test]
    fn converts_to_io_error_with_kind() {
        let io: std::io::Error = Error::conversation_not_found("c1").into();
        assert_eq!(io.kind(), std::io::ErrorKind::NotFound);
        assert!(io.get_ref().is_some_and(|e| e.is::<Error>()));
    }
}
