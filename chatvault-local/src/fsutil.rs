//! Small file-system helpers shared by both backends.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use chatvault_core::backend::{Error, Result};

use crate::error::{BACKEND, CorruptData, corrupt, io_at};

/// Temporary entries older than this are removed when a store is opened: nothing
/// legitimately keeps one that long, and younger ones may belong to another live process.
pub(crate) const STALE_TEMP_AGE: Duration = Duration::from_secs(24 * 60 * 60);

/// Every `fsync`/`fdatasync` issued through this module's helpers, process-wide.
static FSYNCS: AtomicU64 = AtomicU64::new(0);

/// How many file or directory flushes (`fsync`, `fdatasync`) this process's stores have
/// issued through the crate's sync helpers so far.
pub(crate) fn fsync_count() -> u64 {
    FSYNCS.load(Ordering::Relaxed)
}

/// Flushes a file's data (and the metadata needed to read it back) to disk: the one
/// counted place where message logs are synced.
pub(crate) fn sync_data(file: &File, path: &Path) -> Result<()> {
    FSYNCS.fetch_add(1, Ordering::Relaxed);
    file.sync_data().map_err(io_at("sync", path))
}

/// Flushes a file's data and metadata to disk (counted like [`sync_data`]).
pub(crate) fn sync_all(file: &File, path: &Path) -> Result<()> {
    FSYNCS.fetch_add(1, Ordering::Relaxed);
    file.sync_all().map_err(io_at("sync", path))
}

/// Runs blocking file-system work on tokio's blocking pool.
pub(crate) async fn blocking<T, F>(f: F) -> Result<T>
where
    F: FnOnce() -> Result<T> + Send + 'static,
    T: Send + 'static,
{
    match tokio::task::spawn_blocking(f).await {
        Ok(result) => result,
        Err(join) if join.is_panic() => std::panic::resume_unwind(join.into_panic()),
        Err(join) => Err(Error::backend(BACKEND, join)),
    }
}

/// Flushes a directory's entries (new, renamed or removed names) to disk.
///
/// A no-op where directories cannot be opened as files (Windows).
pub(crate) fn sync_dir(dir: &Path) -> Result<()> {
    #[cfg(unix)]
    {
        FSYNCS.fetch_add(1, Ordering::Relaxed);
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(io_at("sync directory", dir))?;
    }
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

/// The directory holding `path`: its parent, with the current directory standing in for
/// the empty parent of a bare relative name (`Path::new("data").parent()` is `""`).
pub(crate) fn parent_dir(path: &Path) -> Option<&Path> {
    path.parent().map(|p| {
        if p.as_os_str().is_empty() {
            Path::new(".")
        } else {
            p
        }
    })
}

/// Creates `dir` and its parents, flushing each new entry to disk.
pub(crate) fn create_dir_all_durable(dir: &Path) -> Result<()> {
    if dir.as_os_str().is_empty() || dir.is_dir() {
        return Ok(());
    }
    if let Some(parent) = parent_dir(dir) {
        create_dir_all_durable(parent)?;
    }
    match fs::create_dir(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists && dir.is_dir() => return Ok(()),
        Err(e) => return Err(io_at("create directory", dir)(e)),
    }
    if let Some(parent) = parent_dir(dir) {
        sync_dir(parent)?;
    }
    Ok(())
}

/// Replaces `path` with `bytes` atomically: writes `tmp`, flushes it, renames it over
/// `path`; then flushes the directory when `sync_parent`.
///
/// The caller guarantees no one else writes `tmp` at the same time.
pub(crate) fn write_atomic(path: &Path, tmp: &Path, bytes: &[u8], sync_parent: bool) -> Result<()> {
    let mut guard = TempPath::new(tmp.to_owned());
    let mut file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(tmp)
        .map_err(io_at("create", tmp))?;
    file.write_all(bytes).map_err(io_at("write", tmp))?;
    sync_all(&file, tmp)?;
    drop(file);
    fs::rename(tmp, path).map_err(io_at("rename into place", path))?;
    guard.disarm();
    if sync_parent && let Some(parent) = parent_dir(path) {
        sync_dir(parent)?;
    }
    Ok(())
}

/// A path removed (file or directory tree) when dropped, unless disarmed: the cleanup of
/// a temporary that did not make it into place, on every early return and on panics.
#[derive(Debug)]
pub(crate) struct TempPath {
    path: Option<PathBuf>,
}

impl TempPath {
    pub(crate) fn new(path: PathBuf) -> Self {
        TempPath { path: Some(path) }
    }

    pub(crate) fn path(&self) -> &Path {
        self.path.as_deref().unwrap_or(Path::new(""))
    }

    /// Keeps the path: it was renamed into place.
    pub(crate) fn disarm(&mut self) {
        self.path = None;
    }
}

impl Drop for TempPath {
    fn drop(&mut self) {
        if let Some(path) = self.path.take() {
            // Best effort: a leftover is removed by the next open's sweep of stale temps.
            if fs::remove_file(&path).is_err() {
                let _ = fs::remove_dir_all(&path);
            }
        }
    }
}

/// Whether two metadata describe the same file (same device and inode on unix).
pub(crate) fn same_file(a: &fs::Metadata, b: &fs::Metadata) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        a.dev() == b.dev() && a.ino() == b.ino()
    }
    #[cfg(not(unix))]
    {
        // Windows does not let a directory with open files be renamed, so the file at a
        // path cannot change under an open, locked handle.
        let _ = (a, b);
        true
    }
}

/// Removes the entries of `dir` last modified more than `older_than` ago (all of them
/// when `older_than` is zero). Best effort: errors are ignored.
pub(crate) fn sweep(dir: &Path, older_than: Duration) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    let now = SystemTime::now();
    for entry in entries.flatten() {
        let path = entry.path();
        let old_enough = older_than.is_zero()
            || entry
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| now.duration_since(t).ok())
                .is_some_and(|age| age > older_than);
        if old_enough && fs::remove_file(&path).is_err() {
            let _ = fs::remove_dir_all(&path);
        }
    }
}

/// Flushes every file in each of `dirs` and the directories themselves (all under
/// `within`): one `syncfs` of `within`'s file system on Linux, a flush per file and per
/// directory elsewhere.
pub(crate) fn sync_tree<'a>(within: &Path, dirs: impl Iterator<Item = &'a Path>) -> Result<()> {
    #[cfg(target_os = "linux")]
    {
        let _ = dirs.count();
        FSYNCS.fetch_add(1, Ordering::Relaxed);
        let fd = File::open(within).map_err(io_at("open", within))?;
        rustix::fs::syncfs(&fd).map_err(|e| io_at("sync file system of", within)(e.into()))
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = within;
        for dir in dirs {
            for entry in fs::read_dir(dir).map_err(io_at("list", dir))? {
                let path = entry.map_err(io_at("list", dir))?.path();
                if path.is_file() {
                    let file = File::open(&path).map_err(io_at("open", &path))?;
                    sync_all(&file, &path)?;
                }
            }
            sync_dir(dir)?;
        }
        Ok(())
    }
}

/// Replaces `path` with `bytes` through `tmp` and a rename, without flushing anything: for
/// derived files (checkpoints, caches) that are verified when read and rebuilt when found
/// missing or damaged, so that a crash may lose or tear them harmlessly.
pub(crate) fn write_replace_unsynced(path: &Path, tmp: &Path, bytes: &[u8]) -> Result<()> {
    let mut guard = TempPath::new(tmp.to_owned());
    let mut file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(tmp)
        .map_err(io_at("create", tmp))?;
    file.write_all(bytes).map_err(io_at("write", tmp))?;
    drop(file);
    fs::rename(tmp, path).map_err(io_at("rename into place", path))?;
    guard.disarm();
    Ok(())
}

/// A fresh unique name for a temporary file or directory (a UUID v7).
pub(crate) fn unique_name() -> String {
    chatvault_core::ConversationId::new().to_string()
}

/// Whether an I/O error says the path (or one of its parents) does not exist.
pub(crate) fn is_not_found(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::NotFound
}

/// Whether an error opening a conversation's file means there is no conversation there:
/// the path is missing, or runs through a file (a stray file in `conversations/`).
pub(crate) fn is_absent(e: &io::Error) -> bool {
    is_not_found(e) || e.kind() == io::ErrorKind::NotADirectory
}

/// Opens `path` for reading and writing.
pub(crate) fn open_rw(path: &Path) -> Result<File> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .map_err(io_at("open", path))
}

/// Reads `len` bytes at `offset` of `file` (damage when `len` cannot be held).
pub(crate) fn read_at(file: &mut File, path: &Path, offset: u64, len: u64) -> Result<Vec<u8>> {
    let len = usize::try_from(len).map_err(|_| {
        corrupt(CorruptData::new(
            path,
            format!("a read of {len} bytes is too large"),
        ))
    })?;
    let mut buf = vec![0; len];
    file.seek(SeekFrom::Start(offset))
        .and_then(|_| file.read_exact(&mut buf))
        .map_err(io_at("read", path))?;
    Ok(buf)
}

/// Writes `bytes` at `offset` of `file`.
pub(crate) fn write_at(file: &mut File, path: &Path, offset: u64, bytes: &[u8]) -> Result<()> {
    file.seek(SeekFrom::Start(offset))
        .and_then(|_| file.write_all(bytes))
        .map_err(io_at("write", path))
}
