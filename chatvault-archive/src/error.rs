//! The archive's typed errors.

use std::io;
use std::path::{Path, PathBuf};

/// What went wrong reading, writing or checking an archive, or moving data between stores.
///
/// Every variant names what it was about (a path, a file in the archive, a conversation),
/// so the message alone says where to look.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ArchiveError {
    /// Reading or writing a local file or directory failed.
    #[error("{action} {path}: {source}")]
    Io {
        /// What was being done ("create", "read", ...).
        action: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: io::Error,
    },
    /// A store answered with an error.
    #[error("store: {0}")]
    Store(#[from] chatvault_core::Error),
    /// The archive was written by a newer, incompatible release.
    #[error(
        "archive format {found} is newer than this release reads ({supported}); \
         upgrade chatvault to read it"
    )]
    NewerFormat {
        /// The archive's format version.
        found: String,
        /// The newest version this release reads.
        supported: String,
    },
    /// The archive is not one: no manifest, or a file that does not parse.
    #[error("not a readable archive: {file}: {reason}")]
    Malformed {
        /// The file inside the archive (or the archive's path).
        file: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A file's bytes do not match the SHA-256 or size the manifest or record gives.
    #[error("{file}: checksum mismatch (expected {expected}, found {found})")]
    Checksum {
        /// The file inside the archive or the attachment's key.
        file: String,
        /// What the manifest or record says.
        expected: String,
        /// What the bytes are.
        found: String,
    },
    /// A file the manifest or a record names is missing.
    #[error("{file}: missing")]
    Missing {
        /// The file inside the archive, or the attachment's storage key.
        file: String,
    },
    /// The destination holds a conversation of the same id with other messages.
    #[error("conversation {conversation}: the destination differs from the source: {reason}")]
    Diverged {
        /// The conversation's id.
        conversation: String,
        /// How it differs.
        reason: String,
    },
    /// The export's destination already exists and is not empty: an archive is never
    /// written over existing data.
    #[error("{0}: already exists and is not empty; choose a new path")]
    DestinationExists(PathBuf),
}

/// The archive's result type.
pub type Result<T, E = ArchiveError> = std::result::Result<T, E>;

impl ArchiveError {
    /// Whether the error is damage (a checksum, a missing file, a malformed archive or a
    /// diverged destination) rather than an I/O or store failure.
    pub fn is_damage(&self) -> bool {
        matches!(
            self,
            ArchiveError::Malformed { .. }
                | ArchiveError::Checksum { .. }
                | ArchiveError::Missing { .. }
                | ArchiveError::Diverged { .. }
        ) || matches!(self, ArchiveError::Store(e) if e.kind() == chatvault_core::ErrorKind::Corrupt)
    }

    pub(crate) fn malformed(file: impl Into<String>, reason: impl ToString) -> Self {
        ArchiveError::Malformed {
            file: file.into(),
            reason: reason.to_string(),
        }
    }
}

/// Wraps an `io::Error` with the action and path.
pub(crate) fn io_at(action: &'static str, path: &Path) -> impl FnOnce(io::Error) -> ArchiveError {
    let path = path.to_path_buf();
    move |source| ArchiveError::Io {
        action,
        path,
        source,
    }
}
