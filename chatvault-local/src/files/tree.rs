//! Walking `LocalFiles`' trees one path component at a time, never following a link.
//!
//! Every component is opened relative to the directory handle of its parent
//! ([`cap_std::fs::Dir`]: `openat` and friends on Unix), as a single name, with links not
//! followed (`O_NOFOLLOW`, `O_DIRECTORY`). So whatever is renamed or planted in the tree
//! meanwhile, a walk either ends inside the handles it opened or fails: there is no moment
//! at which a path is resolved again from the top, and so nothing to race.

use std::io::{self, Read};
use std::path::{Path, PathBuf};

use cap_fs_ext::{DirExt, FollowSymlinks, OpenOptionsFollowExt};
use cap_std::fs::{Dir, Metadata, OpenOptions};
use chatvault_core::backend::{Error, Result};

use crate::error::{io_error, io_kind};

/// What is at a name inside a directory, links not followed.
#[derive(Debug)]
pub(super) enum Entry {
    /// Nothing.
    Missing,
    /// A plain file with a single link.
    File,
    /// A directory.
    Dir,
    /// A symbolic link, or a file with more than one (hard) link: never used.
    Link,
    /// Anything else (a FIFO, a socket, a device).
    Other,
}

/// Whether `m` (of an entry, links not followed) is a link: symbolic, or a file that has
/// other names (hard links) somewhere, maybe outside the store.
fn is_link(m: &Metadata) -> bool {
    if m.file_type().is_symlink() {
        return true;
    }
    #[cfg(unix)]
    {
        use cap_std::fs::MetadataExt;
        m.is_file() && m.nlink() > 1
    }
    #[cfg(not(unix))]
    false
}

/// Whether `m` (of an open file) is a file with more than one link.
pub(super) fn has_other_links(m: &std::fs::Metadata) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        m.nlink() > 1
    }
    #[cfg(not(unix))]
    {
        let _ = m;
        false
    }
}

/// The error for a link met inside the store: a `PermissionDenied` I/O error on its path,
/// inside [`Error::Backend`]. The link is neither followed nor removed.
pub(super) fn link_error(path: &Path) -> Error {
    io_error(
        "use",
        path,
        io::Error::new(
            io::ErrorKind::PermissionDenied,
            "a link (symbolic, or a file with other hard links) inside the store: \
             LocalFiles never follows or removes links",
        ),
    )
}

/// What is at `name` in `dir` (the path `path`, for errors).
pub(super) fn entry(dir: &Dir, name: &str, path: &Path) -> Result<Entry> {
    match dir.symlink_metadata(name) {
        Ok(m) if is_link(&m) => Ok(Entry::Link),
        Ok(m) if m.is_file() => Ok(Entry::File),
        Ok(m) if m.is_dir() => Ok(Entry::Dir),
        Ok(_) => Ok(Entry::Other),
        Err(e) if is_absent(&e) => Ok(Entry::Missing),
        Err(e) => Err(io_error("stat", path, e)),
    }
}

/// Whether an error of a single-name operation means "nothing there" (missing, or a file
/// where a directory was needed).
pub(super) fn is_absent(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::NotFound | io::ErrorKind::NotADirectory
    )
}

/// Opens the directory `name` in `dir`, not following a link.
///
/// `Ok(None)` when there is none (missing, or not a directory); a link is [`link_error`].
///
/// The open and the look that explains its failure are two steps: a concurrent upload
/// may create the directory between them (the open found nothing, the look finds a
/// directory). That answer is looked at again, a bounded number of times, rather than
/// taken for a directory that cannot be opened.
pub(super) fn open_dir(dir: &Dir, name: &str, path: &Path) -> Result<Option<Dir>> {
    let mut attempts = 0;
    loop {
        match dir.open_dir_nofollow(name) {
            Ok(d) => return Ok(Some(d)),
            Err(e) => match entry(dir, name, path)? {
                Entry::Link => return Err(link_error(path)),
                Entry::Missing | Entry::File | Entry::Other => return Ok(None),
                // Missing when opened, a directory when looked at: created meanwhile.
                Entry::Dir if is_absent(&e) && attempts < RECREATED_ATTEMPTS => attempts += 1,
                // A directory that could not be opened (permissions).
                Entry::Dir => return Err(io_error("open directory", path, e)),
            },
        }
    }
}

/// How many times [`open_dir`] opens a directory again that appeared while it looked
/// for why the open failed.
const RECREATED_ATTEMPTS: u32 = 20;

/// Opens the directory `name` in `dir`, creating it (and flushing `dir`) when missing.
///
/// Fails with the I/O error's kind kept (`NotFound` when `dir` was removed meanwhile,
/// `NotADirectory` when a file is in the way) so callers can tell races apart; a link is
/// [`link_error`].
pub(super) fn open_or_create_dir(dir: &Dir, name: &str, path: &Path) -> Result<Dir> {
    if let Some(d) = open_dir(dir, name, path)? {
        return Ok(d);
    }
    match dir.create_dir(name) {
        Ok(()) => sync(dir, path.parent().unwrap_or(path))?,
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(io_error("create directory", path, e)),
    }
    match dir.open_dir_nofollow(name) {
        Ok(d) => Ok(d),
        Err(e) => match entry(dir, name, path)? {
            Entry::Link => Err(link_error(path)),
            Entry::File | Entry::Other => Err(io_error(
                "create directory",
                path,
                io::Error::from(io::ErrorKind::NotADirectory),
            )),
            _ => Err(io_error("open directory", path, e)),
        },
    }
}

/// Opens the file `name` in `dir` for reading, not following a link, without blocking on
/// a FIFO. `Ok(None)` when there is no plain file; a link is [`link_error`].
pub(super) fn open_file(dir: &Dir, name: &str, path: &Path) -> Result<Option<std::fs::File>> {
    let mut options = OpenOptions::new();
    options.read(true).follow(FollowSymlinks::No);
    #[cfg(unix)]
    {
        use cap_std::fs::OpenOptionsExt;
        options.custom_flags(libc::O_NONBLOCK);
    }
    let file = match dir.open_with(name, &options) {
        Ok(f) => f.into_std(),
        Err(e) => {
            return match entry(dir, name, path)? {
                Entry::Link => Err(link_error(path)),
                Entry::Missing | Entry::Dir | Entry::Other => Ok(None),
                Entry::File if is_absent(&e) => Ok(None),
                Entry::File => Err(io_error("open", path, e)),
            };
        }
    };
    let m = file.metadata().map_err(|e| io_error("stat", path, e))?;
    if !m.is_file() {
        return Ok(None);
    }
    if has_other_links(&m) {
        return Err(link_error(path));
    }
    Ok(Some(file))
}

/// Reads at most `limit` bytes of the file `name` in `dir`, as [`open_file`] opens it;
/// gives its metadata too.
pub(super) fn read_small(
    dir: &Dir,
    name: &str,
    path: &Path,
    limit: u64,
) -> Result<Option<(Vec<u8>, std::fs::Metadata)>> {
    let Some(file) = open_file(dir, name, path)? else {
        return Ok(None);
    };
    let m = file.metadata().map_err(|e| io_error("stat", path, e))?;
    let mut bytes = Vec::new();
    file.take(limit)
        .read_to_end(&mut bytes)
        .map_err(|e| io_error("read", path, e))?;
    Ok(Some((bytes, m)))
}

/// Creates the new file `name` in `dir` for writing (never an existing one, never through
/// a link).
pub(super) fn create_new(dir: &Dir, name: &str, path: &Path) -> Result<std::fs::File> {
    let mut options = OpenOptions::new();
    options
        .write(true)
        .create_new(true)
        .follow(FollowSymlinks::No);
    dir.open_with(name, &options)
        .map(cap_std::fs::File::into_std)
        .map_err(|e| io_error("create", path, e))
}

/// Flushes the entries of the directory `dir` (at `path`) to disk.
///
/// A no-op where directories cannot be opened as files (Windows).
pub(super) fn sync(dir: &Dir, path: &Path) -> Result<()> {
    #[cfg(unix)]
    {
        // Opened for reading: the directory handles themselves may be `O_PATH`
        // descriptors on Linux, which cannot be flushed.
        let handle = dir
            .open(".")
            .map_err(|e| io_error("sync directory", path, e))?;
        crate::fsutil::sync_all(&handle.into_std(), path)?;
    }
    #[cfg(not(unix))]
    let _ = (dir, path);
    Ok(())
}

/// Whether the directory `dir` holds a key: anything but directories, at any depth (a
/// link counts, and is not followed). An unreadable directory is taken to hold one.
pub(super) fn holds_a_key(dir: &Dir) -> bool {
    let Ok(entries) = dir.entries() else {
        return true;
    };
    entries.into_iter().any(|entry| {
        let Ok(entry) = entry else { return true };
        match entry.file_type() {
            Ok(t) if t.is_dir() => match entry.file_name().to_str() {
                Some(name) => match dir.open_dir_nofollow(name) {
                    Ok(sub) => holds_a_key(&sub),
                    Err(_) => true,
                },
                None => true,
            },
            _ => true,
        }
    })
}

/// Removes the tree of empty directories `name` in `dir`, best effort: it stops at
/// anything else, and never follows a link.
pub(super) fn remove_empty_tree(dir: &Dir, name: &str) {
    if let Ok(sub) = dir.open_dir_nofollow(name)
        && let Ok(entries) = sub.entries()
    {
        for entry in entries.flatten() {
            if entry.file_type().is_ok_and(|t| t.is_dir())
                && let Some(child) = entry.file_name().to_str()
            {
                remove_empty_tree(&sub, child);
            }
        }
    }
    let _ = dir.remove_dir(name);
}

/// The open directories from a tree's top to the parent of a key's last segment, none
/// reached through a link.
#[derive(Debug)]
pub(super) struct Route<'k> {
    /// The path of the tree's top directory, for errors.
    top: PathBuf,
    segments: Vec<&'k str>,
    /// `dirs[i]` is the directory that holds `segments[i]`.
    dirs: Vec<Dir>,
}

impl<'k> Route<'k> {
    /// Walks from `top` (opened at `top_path`) to the parent of `key`'s last segment.
    ///
    /// `Ok(None)` when a directory on the way is missing or is not a directory (unless
    /// `create`, which creates the missing ones; see [`open_or_create_dir`] for its
    /// errors). A link on the way is [`link_error`].
    pub(super) fn walk(
        top: Dir,
        top_path: &Path,
        key: &'k str,
        create: bool,
    ) -> Result<Option<Self>> {
        let segments: Vec<&str> = key.split('/').collect();
        let mut route = Route {
            top: top_path.to_owned(),
            dirs: vec![top],
            segments,
        };
        for i in 0..route.segments.len() - 1 {
            let path = route.path_to(i + 1);
            let (dir, name) = (&route.dirs[i], route.segments[i]);
            let next = if create {
                open_or_create_dir(dir, name, &path)?
            } else {
                match open_dir(dir, name, &path)? {
                    Some(d) => d,
                    None => return Ok(None),
                }
            };
            route.dirs.push(next);
        }
        Ok(Some(route))
    }

    /// The path of the first `n` segments.
    pub(super) fn path_to(&self, n: usize) -> PathBuf {
        let mut path = self.top.clone();
        path.extend(&self.segments[..n]);
        path
    }

    /// The path of the key.
    pub(super) fn path(&self) -> PathBuf {
        self.path_to(self.segments.len())
    }

    /// The directory holding the key's last segment.
    pub(super) fn parent(&self) -> &Dir {
        // `walk` pushes one directory per segment but the last, and starts with the top.
        &self.dirs[self.dirs.len() - 1]
    }

    /// The key's last segment.
    pub(super) fn name(&self) -> &'k str {
        self.segments[self.segments.len() - 1]
    }

    /// What is at the key, links not followed.
    pub(super) fn entry(&self) -> Result<Entry> {
        entry(self.parent(), self.name(), &self.path())
    }

    /// Removes the directories emptied on the way to the key, deepest first, up to (not
    /// including) the top, stopping at the first that is not empty (or not a directory).
    /// With `flush`, then flushes the deepest directory left standing, once: that makes
    /// the removal of the key and of the emptied directories below it durable together
    /// (they are no longer reachable from it). Removing is best effort; the flush's error
    /// is returned.
    pub(super) fn prune(&self, flush: bool) -> Result<()> {
        let mut standing = self.dirs.len() - 1;
        for i in (1..self.dirs.len()).rev() {
            if self.dirs[i - 1].remove_dir(self.segments[i - 1]).is_err() {
                break;
            }
            standing = i - 1;
        }
        if flush {
            sync(&self.dirs[standing], &self.path_to(standing))?;
        }
        Ok(())
    }
}

/// Whether `err` says the walk met a race with a concurrent delete or upload (a directory
/// removed, or a file where a directory was needed): worth trying again.
pub(super) fn is_race(err: &Error) -> bool {
    io_kind(err).is_some_and(|k| {
        matches!(
            k,
            io::ErrorKind::NotFound
                | io::ErrorKind::NotADirectory
                | io::ErrorKind::IsADirectory
                | io::ErrorKind::DirectoryNotEmpty
                | io::ErrorKind::AlreadyExists
        )
    })
}
