//! [`LocalFiles`]: attachment bytes as files under a root directory.

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use chatvault_core::{ByteStream, Error, FilesBackend, Result, async_trait, keys, new_id};
use futures_util::StreamExt;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_encode};
use serde::{Deserialize, Serialize};
use tokio::io::AsyncWriteExt;
use tokio_util::io::ReaderStream;

use crate::error::{BACKEND, CorruptData, corrupt, io_at, io_error, io_kind};
use crate::fsutil::{STALE_TEMP_AGE, TempPath, blocking, create_dir_all_durable, sweep, sync_dir};

/// Chunk size of [`LocalFiles`]' streaming downloads.
pub const DOWNLOAD_CHUNK: usize = 64 * 1024;

/// Bytes kept as they are in `file://` URLs (as Python's `pathlib.Path.as_uri` does).
const URL_SAFE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// The format of the content-type files this release writes.
const META_VERSION: u32 = 2;

/// How many times a rename into place is tried again after a concurrent upload or delete
/// changed the directories on its way.
const PLACE_ATTEMPTS: u32 = 20;

/// The sidecar kept for each blob under `meta/`: its content type, and the identity of
/// the data file it was written for.
#[derive(Debug, Serialize, Deserialize)]
struct Meta {
    v: u32,
    content_type: String,
    /// The data file this content type belongs to. A content-type file counts only while
    /// that very file is the key's data; written by every release since format 2 (format
    /// 1 had none, and is taken as it is).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    data: Option<DataIdentity>,
}

/// What tells one data file from another at the same path. A rename keeps all of it, so
/// the identity of an upload's temp file is that of the key's data once it is in place.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct DataIdentity {
    size: u64,
    /// The inode number (Unix).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    ino: Option<u64>,
    /// Last modification, in nanoseconds since the Unix epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    modified_ns: Option<u64>,
}

impl DataIdentity {
    fn of(m: &fs::Metadata) -> Self {
        #[cfg(unix)]
        let ino = {
            use std::os::unix::fs::MetadataExt;
            Some(m.ino())
        };
        #[cfg(not(unix))]
        let ino = None;
        let modified_ns = m
            .modified()
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .and_then(|d| u64::try_from(d.as_nanos()).ok());
        DataIdentity {
            size: m.len(),
            ino,
            modified_ns,
        }
    }
}

/// Attachment bytes stored as files under a root directory.
///
/// A key `u/c/f/name.pdf` is the file `ROOT/data/u/c/f/name.pdf`; its content type is kept
/// in `ROOT/meta/u/c/f/name.pdf`, a separate tree no key can reach. Keys are checked by
/// [`keys::validate_key`], so none can leave `ROOT/data`. Writes are atomic (temp file in
/// `ROOT/tmp`, fsync, rename, fsync of the directory): a reader sees the old bytes or the
/// new, and a failed or abandoned upload leaves nothing under its key.
///
/// The data tree alone says which keys exist. A content-type file records the identity
/// of the data file it was written for (inode, size and modification time) and counts
/// only while that file is the key's data, so a content-type file left behind (by a
/// crash, a failed upload or a race) is never taken for another upload's, never makes a
/// data operation fail, and is removed by the next upload that needs its place.
///
/// Like a file system (and unlike S3), a key cannot be both a file and the "directory" of
/// another key: with `a/b` stored, uploading `a` fails with [`Error::InvalidInput`], and
/// the other way round, also when the two uploads run at the same time. Keys made by
/// [`keys::storage_key`] always have four segments and never collide that way.
///
/// Clones share the same store.
#[derive(Clone, Debug)]
pub struct LocalFiles {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    root: PathBuf,
    data: PathBuf,
    meta: PathBuf,
    tmp: PathBuf,
}

impl LocalFiles {
    /// Opens (creating it if needed) the store in directory `root`.
    ///
    /// Removes temporary files more than a day old (left by a process killed during an
    /// upload).
    pub fn new(root: impl AsRef<Path>) -> Result<Self> {
        let root = root.as_ref();
        create_dir_all_durable(root)?;
        let root = fs::canonicalize(root).map_err(io_at("resolve", root))?;
        let inner = Inner {
            data: root.join("data"),
            meta: root.join("meta"),
            tmp: root.join("tmp"),
            root,
        };
        for dir in [&inner.data, &inner.meta, &inner.tmp] {
            create_dir_all_durable(dir)?;
        }
        sweep(&inner.tmp, STALE_TEMP_AGE);
        Ok(LocalFiles {
            inner: Arc::new(inner),
        })
    }

    /// The directory this store lives in (absolute).
    pub fn root(&self) -> &Path {
        &self.inner.root
    }

    /// The file that holds (or would hold) the bytes of `key`.
    ///
    /// Fails with [`Error::InvalidInput`] for a key [`keys::validate_key`] rejects.
    pub fn path_of(&self, key: &str) -> Result<PathBuf> {
        self.inner.data_path(key)
    }

    /// The content type stored with `key`, or `None` when the key does not exist.
    ///
    /// Also `None` when the key's content type is unknown: when the upload that wrote
    /// the bytes did not get to store it (a crash or failure just after the bytes'
    /// commit), while a replacement of the key is between its two renames, or when
    /// uploads of the same key raced and the last bytes and the last content type came
    /// from different ones. A content type is never reported for bytes it was not
    /// uploaded with.
    pub async fn content_type(&self, key: &str) -> Result<Option<String>> {
        let inner = Arc::clone(&self.inner);
        let key = key.to_owned();
        blocking(move || inner.content_type(&key)).await
    }
}

/// Writes the content-type file for the data temp file whose metadata is `data`.
fn write_meta(tmp: &Path, content_type: &str, data: &fs::Metadata) -> Result<TempPath> {
    let guard = TempPath::new(tmp.to_owned());
    let body = serde_json::to_vec(&Meta {
        v: META_VERSION,
        content_type: content_type.to_owned(),
        data: Some(DataIdentity::of(data)),
    })
    .map_err(|e| Error::backend(BACKEND, e))?;
    let mut file = File::create(tmp).map_err(io_at("create", tmp))?;
    file.write_all(&body).map_err(io_at("write", tmp))?;
    file.sync_all().map_err(io_at("sync", tmp))?;
    Ok(guard)
}

impl Inner {
    fn data_path(&self, key: &str) -> Result<PathBuf> {
        keys::validate_key(key)?;
        Ok(self.data.join(key))
    }

    fn meta_path(&self, key: &str) -> PathBuf {
        self.meta.join(key)
    }

    fn temp(&self, what: &str) -> PathBuf {
        self.tmp.join(format!("{what}-{}", new_id()))
    }

    /// Fails with `InvalidInput` when `key` cannot be stored because it, or one of its
    /// prefixes, is on the wrong side of the file/directory divide.
    fn check_shape(&self, key: &str) -> Result<()> {
        let collides = |reason: String| {
            Err(Error::invalid_input(
                "storage key",
                format!("{key:?}: {reason}"),
            ))
        };
        let mut prefix = self.data.clone();
        let segments: Vec<&str> = key.split('/').collect();
        for (i, segment) in segments.iter().enumerate() {
            prefix.push(segment);
            let last = i + 1 == segments.len();
            match fs::metadata(&prefix) {
                Ok(m) if !last && m.is_file() => {
                    return collides(format!(
                        "{:?} is a stored key, so it cannot be a prefix of another",
                        segments[..=i].join("/")
                    ));
                }
                Ok(m) if last && m.is_dir() && holds_a_key(&prefix) => {
                    return collides("it is a prefix of other stored keys".into());
                }
                Ok(_) => {}
                Err(_) => break,
            }
        }
        Ok(())
    }

    /// Moves finished temp files into place: the bytes first, then the content type, then
    /// flushes both directories.
    ///
    /// The bytes' rename is the commit point: from then on the key holds the new bytes,
    /// whatever happens next. The content type follows; it names its data file, so a
    /// crash or failure between the two renames leaves the new bytes with no known
    /// content type (the old content-type file names the old bytes), never the old bytes
    /// with the new type. (The other order would be as consistent; this one only ever
    /// writes in `meta/` for a key whose bytes are in place, which makes whatever
    /// occupies that place there garbage.)
    fn place(&self, key: &str, data: TempPath, meta: TempPath) -> Result<()> {
        let data_path = self.data_path(key)?;
        let meta_path = self.meta_path(key);
        let (mut data, mut meta) = (data, meta);
        let mut attempts = 0;
        loop {
            self.check_shape(key)?;
            let renamed = self.rename_data(&data_path, data.path());
            let Err(err) = renamed else { break };
            let kind = io_kind(&err);
            // Failing because of the shape of the tree means a colliding key was stored
            // meanwhile: the same answer as `check_shape`'s before the upload.
            self.check_shape(key)?;
            let raced = kind.is_some_and(|k| is_not_found_kind(k) || is_shape_kind(k));
            if raced && attempts < PLACE_ATTEMPTS {
                // A concurrent delete pruned a directory on the way, or the colliding
                // key is gone again: try again.
                attempts += 1;
                continue;
            }
            prune_empty_parents(&data_path, &self.data);
            if kind.is_some_and(is_shape_kind) {
                return Err(Error::invalid_input(
                    "storage key",
                    format!("{key:?}: collides with keys being stored at the same time"),
                ));
            }
            return Err(err);
        }
        data.disarm();
        let mut attempts = 0;
        loop {
            // The bytes are in place: nothing in `meta/` may stand in the way of their
            // content type.
            self.clear_meta_place(key)?;
            let placed = match meta_path.parent() {
                Some(parent) => create_dir_all_durable(parent),
                None => Ok(()),
            }
            .and_then(|()| {
                fs::rename(meta.path(), &meta_path).map_err(io_at("rename into place", &meta_path))
            });
            match placed {
                Ok(()) => break,
                Err(e)
                    if attempts < PLACE_ATTEMPTS
                        && io_kind(&e)
                            .is_some_and(|k| is_not_found_kind(k) || is_shape_kind(k)) =>
                {
                    attempts += 1;
                }
                Err(e) => return Err(e),
            }
        }
        meta.disarm();
        for path in [&data_path, &meta_path] {
            if let Some(parent) = path.parent() {
                sync_dir(parent)?;
            }
        }
        Ok(())
    }

    /// Renames the data temp file `tmp` to `path`, creating its parents. A directory
    /// holding no key at `path` (left by a crash between a delete and its pruning of
    /// emptied directories) is removed first: `check_shape` has just passed.
    fn rename_data(&self, path: &Path, tmp: &Path) -> Result<()> {
        if fs::symlink_metadata(path).is_ok_and(|m| m.is_dir()) {
            remove_empty_tree(path);
        }
        if let Some(parent) = path.parent() {
            create_dir_all_durable(parent)?;
        }
        fs::rename(tmp, path).map_err(io_at("rename into place", path))
    }

    /// Removes what occupies the place of `key`'s content-type file in `meta/`: a file
    /// on one of its prefixes, or a directory on the key itself. Called once the key's
    /// bytes are in place, when the data tree shows that all of it is garbage: no key
    /// is a prefix of a stored key, nor has stored keys under it.
    fn clear_meta_place(&self, key: &str) -> Result<()> {
        let segments: Vec<&str> = key.split('/').collect();
        let mut path = self.meta.clone();
        for (i, segment) in segments.iter().enumerate() {
            path.push(segment);
            let last = i + 1 == segments.len();
            let Ok(m) = fs::symlink_metadata(&path) else {
                break;
            };
            let removed = if !last && !m.is_dir() {
                fs::remove_file(&path)
            } else if last && m.is_dir() {
                fs::remove_dir_all(&path)
            } else {
                continue;
            };
            match removed {
                Ok(()) => {}
                Err(e) if is_absent(&e) => {}
                Err(e) => return Err(io_error("remove", &path, e)),
            }
            break;
        }
        Ok(())
    }

    fn upload(&self, key: &str, bytes: &[u8], content_type: &str) -> Result<()> {
        self.data_path(key)?;
        keys::validate_content_type(content_type)?;
        self.check_shape(key)?;
        let tmp = self.temp("data");
        let data = TempPath::new(tmp.clone());
        let mut file = File::create(&tmp).map_err(io_at("create", &tmp))?;
        file.write_all(bytes).map_err(io_at("write", &tmp))?;
        file.sync_all().map_err(io_at("sync", &tmp))?;
        let written = file.metadata().map_err(io_at("stat", &tmp))?;
        drop(file);
        let meta = write_meta(&self.temp("meta"), content_type, &written)?;
        self.place(key, data, meta)
    }

    /// The blob file of `key` opened for reading, or `None`.
    fn open_blob(&self, key: &str) -> Result<Option<(File, PathBuf)>> {
        let path = self.data_path(key)?;
        let file = match File::open(&path) {
            Ok(f) => f,
            Err(e) if is_absent(&e) => return Ok(None),
            Err(e) => return Err(io_error("open", &path, e)),
        };
        let meta = file.metadata().map_err(io_at("stat", &path))?;
        Ok(meta.is_file().then_some((file, path)))
    }

    fn download(&self, key: &str) -> Result<Option<Bytes>> {
        let Some((mut file, path)) = self.open_blob(key)? else {
            return Ok(None);
        };
        let mut buf = Vec::new();
        file.read_to_end(&mut buf).map_err(io_at("read", &path))?;
        Ok(Some(Bytes::from(buf)))
    }

    fn exists(&self, key: &str) -> Result<bool> {
        let path = self.data_path(key)?;
        match fs::metadata(&path) {
            Ok(m) => Ok(m.is_file()),
            Err(e) if is_absent(&e) => Ok(false),
            Err(e) => Err(io_error("stat", &path, e)),
        }
    }

    fn delete(&self, key: &str) -> Result<bool> {
        if !self.exists(key)? {
            return Ok(false);
        }
        let data_path = self.data_path(key)?;
        match fs::remove_file(&data_path) {
            Ok(()) => {}
            Err(e) if is_absent(&e) => return Ok(false),
            Err(e) => return Err(io_error("remove", &data_path, e)),
        }
        // The key is gone. Its content-type file goes next, best effort: one left behind
        // names a data file that no longer exists, so it counts for nothing.
        let meta_path = self.meta_path(key);
        match fs::remove_file(&meta_path) {
            Ok(()) => {}
            Err(e) if is_absent(&e) => {}
            Err(e) => tracing::warn!(
                path = %meta_path.display(),
                error = %e,
                "could not remove the content-type file of a deleted key"
            ),
        }
        for (path, top) in [(&data_path, &self.data), (&meta_path, &self.meta)] {
            prune_empty_parents(path, top);
        }
        Ok(true)
    }

    fn content_type(&self, key: &str) -> Result<Option<String>> {
        let data_path = self.data_path(key)?;
        let data = match fs::metadata(&data_path) {
            Ok(m) if m.is_file() => m,
            Ok(_) => return Ok(None),
            Err(e) if is_absent(&e) => return Ok(None),
            Err(e) => return Err(io_error("stat", &data_path, e)),
        };
        let path = self.meta_path(key);
        let bytes = match fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) if is_absent(&e) => return Ok(None),
            Err(e) => return Err(io_error("read", &path, e)),
        };
        let meta: Meta = serde_json::from_slice(&bytes).map_err(|e| {
            corrupt(CorruptData::with_source(
                &path,
                "not a content-type file",
                e,
            ))
        })?;
        let current = meta
            .data
            .is_none_or(|written_for| written_for == DataIdentity::of(&data));
        Ok(current.then_some(meta.content_type))
    }

    fn file_url(&self, key: &str) -> Result<Option<String>> {
        if !self.exists(key)? {
            return Ok(None);
        }
        let path = self.data_path(key)?;
        Ok(Some(file_url(&path)))
    }
}

/// Whether an error opening a key's file means "no such key" (missing, or a path through
/// a file or onto a directory).
fn is_absent(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::NotFound | io::ErrorKind::NotADirectory | io::ErrorKind::IsADirectory
    )
}

/// Whether an I/O error kind says the path (or a parent) is missing.
fn is_not_found_kind(kind: io::ErrorKind) -> bool {
    kind == io::ErrorKind::NotFound
}

/// Whether an I/O error kind says a path met the wrong side of the file/directory divide:
/// a file where a directory was needed, or the other way round.
fn is_shape_kind(kind: io::ErrorKind) -> bool {
    matches!(
        kind,
        io::ErrorKind::NotADirectory
            | io::ErrorKind::IsADirectory
            | io::ErrorKind::DirectoryNotEmpty
            | io::ErrorKind::AlreadyExists
    )
}

/// Whether directory `dir` holds a key: anything but directories, at any depth. An
/// unreadable directory is taken to hold one.
fn holds_a_key(dir: &Path) -> bool {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) => return !is_absent(&e),
    };
    entries.into_iter().any(|entry| match entry {
        Ok(entry) => match entry.file_type() {
            Ok(t) if t.is_dir() => holds_a_key(&entry.path()),
            _ => true,
        },
        Err(_) => true,
    })
}

/// Removes a tree of empty directories, best effort (it stops at anything else).
fn remove_empty_tree(dir: &Path) {
    if let Ok(entries) = fs::read_dir(dir) {
        for entry in entries.flatten() {
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                remove_empty_tree(&entry.path());
            }
        }
    }
    let _ = fs::remove_dir(dir);
}

/// Removes the emptied directories above `path`, up to (not including) `top`.
fn prune_empty_parents(path: &Path, top: &Path) {
    let mut dir = path.parent();
    while let Some(d) = dir {
        if d == top || !d.starts_with(top) || fs::remove_dir(d).is_err() {
            break;
        }
        if let Some(parent) = d.parent() {
            let _ = sync_dir(parent);
        }
        dir = d.parent();
    }
}

/// `file://` URL of an absolute path, every byte but ASCII letters, digits, `-_.~`
/// percent-encoded in each segment.
fn file_url(path: &Path) -> String {
    let mut url = String::from("file://");
    for component in path.components() {
        use std::path::Component;
        match component {
            Component::RootDir => {}
            Component::Normal(segment) => {
                url.push('/');
                #[cfg(unix)]
                let bytes = {
                    use std::os::unix::ffi::OsStrExt;
                    segment.as_bytes().to_vec()
                };
                #[cfg(not(unix))]
                let bytes = segment.to_string_lossy().into_owned().into_bytes();
                url.extend(percent_encode(&bytes, URL_SAFE));
            }
            // A Windows drive (`C:`) stays as it is: file:///C:/...
            Component::Prefix(prefix) => {
                url.push('/');
                url.push_str(&prefix.as_os_str().to_string_lossy());
            }
            Component::CurDir | Component::ParentDir => {}
        }
    }
    url
}

#[async_trait]
impl FilesBackend for LocalFiles {
    async fn upload(&self, key: &str, data: Bytes, content_type: &str) -> Result<()> {
        let inner = Arc::clone(&self.inner);
        let (key, content_type) = (key.to_owned(), content_type.to_owned());
        blocking(move || inner.upload(&key, &data, &content_type)).await
    }

    async fn download(&self, key: &str) -> Result<Option<Bytes>> {
        let inner = Arc::clone(&self.inner);
        let key = key.to_owned();
        blocking(move || inner.download(&key)).await
    }

    async fn delete(&self, key: &str) -> Result<bool> {
        let inner = Arc::clone(&self.inner);
        let key = key.to_owned();
        blocking(move || inner.delete(&key)).await
    }

    async fn exists(&self, key: &str) -> Result<bool> {
        let inner = Arc::clone(&self.inner);
        let key = key.to_owned();
        blocking(move || inner.exists(&key)).await
    }

    /// A `file://` URL of the blob's absolute path, or `None` when the key does not exist.
    ///
    /// A file URL carries no credentials and cannot expire: `expires_in` is ignored, and
    /// so is `download_filename` (the file keeps its storage-key name). Only a process on
    /// this machine with read access to the file can use it.
    async fn signed_url(
        &self,
        key: &str,
        expires_in: Duration,
        download_filename: Option<&str>,
    ) -> Result<Option<String>> {
        let _ = (expires_in, download_filename);
        let inner = Arc::clone(&self.inner);
        let key = key.to_owned();
        blocking(move || inner.file_url(&key)).await
    }

    /// Writes the chunks to a temp file as they arrive (memory stays at about one chunk),
    /// then moves it into place. A failing stream, a failed write, or dropping the future
    /// before it finishes leaves nothing under the key and removes the temp file.
    async fn upload_stream(
        &self,
        key: &str,
        mut data: ByteStream,
        content_type: &str,
    ) -> Result<u64> {
        self.inner.data_path(key)?;
        keys::validate_content_type(content_type)?;
        // Fail before reading the stream if the key cannot be stored (a few stat calls).
        self.inner.check_shape(key)?;
        let tmp = self.inner.temp("data");
        let guard = TempPath::new(tmp.clone());
        // Created synchronously (one open call): were it created on the blocking pool, a
        // future dropped meanwhile would remove the path before the file appeared.
        let file = File::create(&tmp).map_err(io_at("create", &tmp))?;
        let mut file = tokio::fs::File::from_std(file);
        let mut size = 0u64;
        while let Some(chunk) = data.next().await {
            let chunk = chunk.map_err(|source| Error::UploadStream { source })?;
            file.write_all(&chunk).await.map_err(io_at("write", &tmp))?;
            size += chunk.len() as u64;
        }
        file.flush().await.map_err(io_at("write", &tmp))?;
        file.sync_all().await.map_err(io_at("sync", &tmp))?;
        let written = file.metadata().await.map_err(io_at("stat", &tmp))?;
        drop(file);
        let inner = Arc::clone(&self.inner);
        let (key, content_type) = (key.to_owned(), content_type.to_owned());
        blocking(move || {
            let meta = write_meta(&inner.temp("meta"), &content_type, &written)?;
            inner.place(&key, guard, meta)
        })
        .await?;
        Ok(size)
    }

    /// Streams the file in chunks of [`DOWNLOAD_CHUNK`] bytes. The stream reads the file
    /// that was under the key when it was opened, even if the key is replaced or deleted
    /// meanwhile.
    async fn download_stream(&self, key: &str) -> Result<Option<ByteStream>> {
        let inner = Arc::clone(&self.inner);
        let key = key.to_owned();
        let Some((file, path)) = blocking(move || inner.open_blob(&key)).await? else {
            return Ok(None);
        };
        let stream = ReaderStream::with_capacity(tokio::fs::File::from_std(file), DOWNLOAD_CHUNK)
            .map(move |chunk| chunk.map_err(|e| io::Error::from(io_error("read", &path, e))));
        Ok(Some(stream.boxed()))
    }
}
