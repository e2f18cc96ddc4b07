//! A conversation's lock file.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::path::Path;

use chatvault_core::backend::Result;

use crate::error::{io_at, io_error};
use crate::fsutil::{is_absent, same_file};

/// The lock file in a conversation's directory.
const LOCK: &str = "lock";

/// Whether a lock is shared (readers) or exclusive (writers).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Mode {
    /// For readers.
    Shared,
    /// For writers.
    Exclusive,
}

/// Locks a conversation directory. `None` when there is no directory there.
///
/// A missing lock file is created again (people delete stale lock files). The lock
/// file lives in the directory, which a delete renames away while holding the lock;
/// so after locking, the file at the path must still be the one locked, else the lock
/// was taken on a deleted conversation (or a deleted lock file) and is taken again.
pub(crate) fn lock_dir(dir: &Path, mode: Mode) -> Result<Option<File>> {
    let path = dir.join(LOCK);
    loop {
        let opened = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path);
        let file = match opened {
            Ok(f) => f,
            Err(e) if is_absent(&e) => return Ok(None),
            // A read-only store: locks work on read-only handles too.
            Err(e) if e.kind() == io::ErrorKind::PermissionDenied => match File::open(&path) {
                Ok(f) => f,
                Err(e) if is_absent(&e) => return Ok(None),
                Err(e) => return Err(io_error("open", &path, e)),
            },
            Err(e) => return Err(io_error("open", &path, e)),
        };
        match mode {
            Mode::Shared => file.lock_shared(),
            Mode::Exclusive => file.lock(),
        }
        .map_err(io_at("lock", &path))?;
        let held = file.metadata().map_err(io_at("stat", &path))?;
        match fs::metadata(&path) {
            Ok(now) if same_file(&held, &now) => return Ok(Some(file)),
            Ok(_) => continue,
            Err(e) if is_absent(&e) => continue,
            Err(e) => return Err(io_error("stat", &path, e)),
        }
    }
}
