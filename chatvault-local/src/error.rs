//! The errors this crate puts inside [`chatvault_core::Error::Backend`].

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

use chatvault_core::backend::Error;

/// The backend name in [`Error::Backend`].
pub(crate) const BACKEND: &str = "local";

/// A file-system operation that failed, with the path it failed on.
///
/// This is the [`source`](std::error::Error::source) of the [`Error::Backend`] that
/// `chatvault-local` returns for I/O failures; its own source is the `std::io::Error`.
///
/// ```
/// use std::error::Error as _;
///
/// use chatvault_local::{IoError, LocalFiles};
///
/// // A store cannot live under a plain file.
/// let file = std::env::temp_dir().join(format!("chatvault-doc-{}", chatvault_core::FileId::new()));
/// std::fs::write(&file, b"not a directory").unwrap();
/// let err = LocalFiles::new(file.join("store")).unwrap_err();
/// assert!(!err.is_temporary());
/// let io = err.source().and_then(|s| s.downcast_ref::<IoError>()).expect("an IoError");
/// assert!(io.path().starts_with(&file));
/// # std::fs::remove_file(&file).unwrap();
/// ```
#[derive(Debug)]
pub struct IoError {
    action: &'static str,
    path: PathBuf,
    source: io::Error,
}

impl IoError {
    /// What was being done: `"open"`, `"write"`, `"rename"`, ...
    pub fn action(&self) -> &'static str {
        self.action
    }

    /// The path it was done to.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The operating system's error.
    pub fn io_error(&self) -> &io::Error {
        &self.source
    }
}

impl fmt::Display for IoError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "could not {} {}", self.action, self.path.display())
    }
}

impl std::error::Error for IoError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.source)
    }
}

/// Stored data this crate cannot read: a damaged file, or one written by a newer release.
///
/// Reported as [`Error::Corrupt`] (its location is [`CorruptData::path`]). A torn *last*
/// record of a message log (an append cut short by a crash) is not corruption: it is
/// ignored and repaired silently.
#[derive(Debug)]
pub struct CorruptData {
    path: PathBuf,
    reason: String,
    source: Option<Box<dyn std::error::Error + Send + Sync + 'static>>,
}

impl CorruptData {
    pub(crate) fn new(path: &Path, reason: impl Into<String>) -> Self {
        CorruptData {
            path: path.to_owned(),
            reason: reason.into(),
            source: None,
        }
    }

    pub(crate) fn with_source(
        path: &Path,
        reason: impl Into<String>,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        CorruptData {
            path: path.to_owned(),
            reason: reason.into(),
            source: Some(Box::new(source)),
        }
    }

    /// The file that could not be read.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl fmt::Display for CorruptData {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "unreadable {}: {}", self.path.display(), self.reason)
    }
}

impl std::error::Error for CorruptData {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_deref()
            .map(|s| s as &(dyn std::error::Error + 'static))
    }
}

/// Whether a retry of the same call may succeed after this I/O error.
fn is_transient(err: &io::Error) -> bool {
    matches!(
        err.kind(),
        io::ErrorKind::Interrupted
            | io::ErrorKind::WouldBlock
            | io::ErrorKind::TimedOut
            | io::ErrorKind::ResourceBusy
            | io::ErrorKind::Deadlock
    )
}

/// Wraps an I/O error on `path` into a ChatVault error, temporary when a retry may help;
/// a refusal by the operating system is [`Error::PermissionDenied`].
pub(crate) fn io_error(action: &'static str, path: &Path, source: io::Error) -> Error {
    let temporary = is_transient(&source);
    let denied = source.kind() == io::ErrorKind::PermissionDenied;
    let err = IoError {
        action,
        path: path.to_owned(),
        source,
    };
    if denied {
        return Error::PermissionDenied {
            backend: BACKEND,
            message: err.to_string(),
            source: Some(Box::new(err)),
        };
    }
    if temporary {
        Error::temporary(BACKEND, err)
    } else {
        Error::backend(BACKEND, err)
    }
}

/// A ChatVault error for unreadable stored data: [`Error::Corrupt`], at the file's path.
pub(crate) fn corrupt(err: CorruptData) -> Error {
    let message = match &err.source {
        Some(source) => format!("{}: {source}", err.reason),
        None => err.reason.clone(),
    };
    Error::corrupt(BACKEND, err.path.display().to_string(), message)
}

/// A [`CorruptData`] error for `path`.
pub(crate) fn damaged(path: &Path, reason: impl Into<String>) -> Error {
    corrupt(CorruptData::new(path, reason))
}

/// The error of an operation that found a lock poisoned: a thread panicked holding an
/// append queue (or an id map).
pub(crate) fn poisoned() -> Error {
    Error::backend(
        BACKEND,
        io::Error::other("a thread panicked holding an append queue"),
    )
}

/// Whether `err` reports damaged stored data: a file that cannot be read
/// ([`Error::Corrupt`]) or one that is missing.
pub(crate) fn is_damage(err: &Error) -> bool {
    if matches!(err, Error::Corrupt { .. }) {
        return true;
    }
    let Error::Backend { source, .. } = err else {
        return false;
    };
    source.downcast_ref::<CorruptData>().is_some()
        || source
            .downcast_ref::<IoError>()
            .is_some_and(|e| e.source.kind() == io::ErrorKind::NotFound)
}

/// The kind of the I/O error inside `err`, if it reports one.
pub(crate) fn io_kind(err: &Error) -> Option<io::ErrorKind> {
    let Error::Backend { source, .. } = err else {
        return None;
    };
    source.downcast_ref::<IoError>().map(|e| e.source.kind())
}

/// `map_err` helper: `.map_err(io_at("open", &path))`.
pub(crate) fn io_at<'a>(
    action: &'static str,
    path: &'a Path,
) -> impl FnOnce(io::Error) -> Error + 'a {
    move |e| io_error(action, path, e)
}
