//! [`LocalFiles`]: attachment bytes as files under a root directory.

mod meta;
mod stream;
mod tree;

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use cap_std::ambient_authority;
use cap_std::fs::Dir;
use chatvault_core::backend::{
    ByteStream, ContentType, Error, ErrorKind, FilesBackend, FilesCapabilities, ObjectMeta, Result,
    StorageKey, async_trait,
};
use futures_util::StreamExt;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_encode};
use tokio_util::io::ReaderStream;

use crate::error::{BACKEND, CorruptData, corrupt, io_at, io_error};
use crate::fsutil::{STALE_TEMP_AGE, blocking, create_dir_all_durable, unique_name};
use meta::{DataIdentity, MAX_META_BYTES, META_VERSION, Meta, inode};
use stream::{DirectIo, StreamWriter};
use tree::{Entry, Route, link_error};

/// Chunk size of [`LocalFiles`]' streaming downloads.
pub const DOWNLOAD_CHUNK: usize = 64 * 1024;

/// Bytes kept as they are in `file://` URLs (as Python's `pathlib.Path.as_uri` does).
const URL_SAFE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// How many times a rename into place is tried again after a concurrent upload or delete
/// changed the directories on its way.
const PLACE_ATTEMPTS: u32 = 20;

/// The three trees under the root.
const DATA: &str = "data";
const META: &str = "meta";
const TMP: &str = "tmp";

/// Attachment bytes stored as files under a root directory.
///
/// A key `u/c/f/name.pdf` is the file `ROOT/data/u/c/f/name.pdf`, its content type kept
/// apart in `ROOT/meta/`. Writes are atomic: a reader sees the old bytes or the new, and
/// a failed or abandoned upload leaves nothing under its key.
///
/// Like a file system (and unlike S3), a key cannot be both a file and the "directory" of
/// another key: with `a/b` stored, uploading `a` fails with [`Error::InvalidInput`], and
/// the other way round, also when the two uploads run at the same time. Keys made by
/// [`keys::storage_key`](chatvault_core::keys::storage_key) always have four segments
/// and never collide that way.
///
/// A symbolic link, or a key's file with other hard links, planted anywhere inside the
/// store is never followed, written through, removed or replaced: an operation that meets
/// one fails with [`Error::PermissionDenied`] naming the link's path (its source is an
/// [`IoError`](crate::IoError) on that path). The [crate documentation](crate#attachments-on-disk)
/// has the layout and how each of these guarantees is kept.
///
/// Clones share the same store.
#[derive(Clone, Debug)]
pub struct LocalFiles {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    root: PathBuf,
    /// The root directory, open: every path inside the store is walked from it.
    dir: Dir,
    /// Whether streamed uploads try direct I/O.
    direct_io: DirectIo,
}

impl LocalFiles {
    /// Opens (creating it if needed) the store in directory `root`.
    ///
    /// Removes temporary files more than a day old (left by a process killed during an
    /// upload). Fails with [`Error::PermissionDenied`] if `data`, `meta` or `tmp` under
    /// the root is a link.
    pub fn new(root: impl AsRef<Path>) -> Result<Self> {
        Self::open(root.as_ref(), DirectIo::Try)
    }

    /// [`LocalFiles::new`], with streamed uploads' direct I/O as `direct_io` says.
    fn open(root: &Path, direct_io: DirectIo) -> Result<Self> {
        create_dir_all_durable(root)?;
        let root = fs::canonicalize(root).map_err(io_at("resolve", root))?;
        let dir = Dir::open_ambient_dir(&root, ambient_authority())
            .map_err(io_at("open directory", &root))?;
        let inner = Inner {
            root,
            dir,
            direct_io,
        };
        for tree in [DATA, META, TMP] {
            let path = inner.root.join(tree);
            tree::open_or_create_dir(&inner.dir, tree, &path)?;
        }
        inner.sweep_temps(STALE_TEMP_AGE);
        Ok(LocalFiles {
            inner: Arc::new(inner),
        })
    }

    /// The directory this store lives in (absolute).
    pub fn root(&self) -> &Path {
        &self.inner.root
    }

    /// The file that holds (or would hold) the bytes of `key`.
    pub fn path_of(&self, key: &StorageKey) -> PathBuf {
        self.inner.root.join(DATA).join(key.as_str())
    }

    /// The content type stored with `key`, or `None` when the key does not exist.
    ///
    /// Also `None` when the key's content type is unknown: when the upload that wrote
    /// the bytes did not get to store it (a crash or failure just after the bytes'
    /// commit), while a replacement of the key is between its two renames, or when
    /// uploads of the same key raced and the last bytes and the last content type came
    /// from different ones. A content type is never reported for bytes it was not
    /// uploaded with.
    ///
    /// A content-type file that cannot be read is [`Error::Corrupt`] here (and
    /// `application/octet-stream` in [`FilesBackend::head`], which never lets a damaged
    /// side file hide the bytes).
    pub async fn content_type(&self, key: &StorageKey) -> Result<Option<ContentType>> {
        let inner = Arc::clone(&self.inner);
        let key = key.clone();
        blocking(move || inner.content_type(key.as_str())).await
    }
}

/// A file in `tmp/`, removed (through the directory handle, so never anywhere else) when
/// dropped, unless it was renamed into place.
#[derive(Debug)]
struct TempFile {
    dir: Dir,
    name: String,
    path: PathBuf,
    armed: bool,
}

impl TempFile {
    /// Creates a new, empty temp file whose name starts with `what`.
    fn create(inner: &Inner, what: &str) -> Result<(TempFile, File)> {
        let dir = inner.top(TMP)?;
        let name = format!("{what}-{}", unique_name());
        let path = inner.root.join(TMP).join(&name);
        let file = tree::create_new(&dir, &name, &path)?;
        let guard = TempFile {
            dir,
            name,
            path,
            armed: true,
        };
        Ok((guard, file))
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if self.armed {
            // Best effort: a leftover is removed by a later open's sweep of stale temps.
            let _ = self.dir.remove_file(&self.name);
        }
    }
}

/// Writes the content-type file for the data temp file whose metadata is `data`.
fn write_meta(
    inner: &Inner,
    key: &str,
    content_type: &str,
    data: &fs::Metadata,
) -> Result<TempFile> {
    let (guard, mut file) = TempFile::create(inner, "meta")?;
    let this = file.metadata().map_err(io_at("stat", &guard.path))?;
    let body = serde_json::to_vec(&Meta {
        v: META_VERSION,
        content_type: content_type.to_owned(),
        data: Some(DataIdentity::of(data)),
        this: inode(&this),
        key: Some(key.to_owned()),
    })
    .map_err(|e| Error::backend(BACKEND, e))?;
    file.write_all(&body).map_err(io_at("write", &guard.path))?;
    file.sync_all().map_err(io_at("sync", &guard.path))?;
    Ok(guard)
}

impl Inner {
    /// The top directory of one of the three trees, open.
    fn top(&self, tree: &'static str) -> Result<Dir> {
        let path = self.root.join(tree);
        tree::open_dir(&self.dir, tree, &path)?.ok_or_else(|| {
            io_error(
                "open directory",
                &path,
                io::Error::from(io::ErrorKind::NotFound),
            )
        })
    }

    /// The route to `key` (a valid [`StorageKey`]) in `tree`; `Ok(None)` when a directory
    /// on its way is missing.
    fn route<'k>(
        &self,
        tree: &'static str,
        key: &'k str,
        create: bool,
    ) -> Result<Option<Route<'k>>> {
        Route::walk(self.top(tree)?, &self.root.join(tree), key, create)
    }

    /// Removes the entries of `tmp/` last modified more than `older_than` ago. Best
    /// effort: errors are ignored; links are removed, never followed.
    fn sweep_temps(&self, older_than: Duration) {
        let Ok(dir) = self.top(TMP) else { return };
        let Ok(entries) = dir.entries() else { return };
        let now = SystemTime::now();
        for entry in entries.flatten() {
            let old_enough = entry
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| now.duration_since(t.into_std()).ok())
                .is_some_and(|age| age > older_than);
            let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
                continue;
            };
            if old_enough && dir.remove_file(&name).is_err() {
                let _ = dir.remove_dir_all(&name);
            }
        }
    }

    /// Fails with `InvalidInput` when `key` cannot be stored because it, or one of its
    /// prefixes, is on the wrong side of the file/directory divide, and with a link
    /// error when a link is on its way.
    fn check_shape(&self, key: &str) -> Result<()> {
        let collides = |reason: String| {
            Err(Error::invalid_input(
                "storage key",
                format!("{key:?}: {reason}"),
            ))
        };
        let segments: Vec<&str> = key.split('/').collect();
        let mut dir = self.top(DATA)?;
        let mut path = self.root.join(DATA);
        for (i, segment) in segments.iter().enumerate() {
            path.push(segment);
            let last = i + 1 == segments.len();
            match tree::entry(&dir, segment, &path)? {
                Entry::Link => return Err(link_error(&path)),
                Entry::Missing => break,
                Entry::File | Entry::Other if !last => {
                    return collides(format!(
                        "{:?} is a stored key, so it cannot be a prefix of another",
                        segments[..=i].join("/")
                    ));
                }
                Entry::File | Entry::Other => {}
                Entry::Dir => {
                    let Some(sub) = tree::open_dir(&dir, segment, &path)? else {
                        break;
                    };
                    if last && tree::holds_a_key(&sub) {
                        return collides("it is a prefix of other stored keys".into());
                    }
                    dir = sub;
                }
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
    fn place(&self, key: &str, mut data: TempFile, mut meta: TempFile) -> Result<()> {
        // A link on the way to the content-type file fails the upload before its bytes
        // are committed (one planted after this check fails it after: either way,
        // nothing is written through the link).
        if let Some(route) = self.route(META, key, false)?
            && let Entry::Link = route.entry()?
        {
            return Err(link_error(&route.path()));
        }
        let mut attempts = 0;
        let data_route = loop {
            self.check_shape(key)?;
            let placed = self.rename_into(DATA, key, &data);
            match placed {
                Ok(route) => break route,
                Err(err) => {
                    // Failing because of the shape of the tree means a colliding key was
                    // stored meanwhile: the same answer as `check_shape`'s before.
                    self.check_shape(key)?;
                    if tree::is_race(&err) && attempts < PLACE_ATTEMPTS {
                        // A concurrent delete pruned a directory on the way, or the
                        // colliding key is gone again: try again.
                        attempts += 1;
                        continue;
                    }
                    if let Ok(Some(route)) = self.route(DATA, key, false) {
                        // Only empty directories go: nothing to make durable.
                        let _ = route.prune(false);
                    }
                    if tree::is_race(&err) {
                        return Err(Error::invalid_input(
                            "storage key",
                            format!("{key:?}: collides with keys being stored at the same time"),
                        ));
                    }
                    return Err(err);
                }
            }
        };
        data.armed = false;
        let mut attempts = 0;
        let meta_route = loop {
            // The bytes are in place: nothing in `meta/` may stand in the way of their
            // content type.
            self.clear_meta_place(key)?;
            match self.rename_into(META, key, &meta) {
                Ok(route) => break route,
                Err(e) if attempts < PLACE_ATTEMPTS && tree::is_race(&e) => attempts += 1,
                Err(e) => return Err(e),
            }
        };
        meta.armed = false;
        for route in [&data_route, &meta_route] {
            let path = route.path();
            tree::sync(route.parent(), path.parent().unwrap_or(&path))?;
        }
        Ok(())
    }

    /// Renames the temp file `tmp` to `key` in `tree`, creating the directories on its
    /// way. A directory holding no key in the key's place (left by a crash between a
    /// delete and its pruning of emptied directories) is removed first (`check_shape`
    /// has just passed). A link in the key's place is not replaced: link error.
    fn rename_into<'k>(
        &self,
        tree: &'static str,
        key: &'k str,
        tmp: &TempFile,
    ) -> Result<Route<'k>> {
        let Some(route) = self.route(tree, key, true)? else {
            return Err(io_error(
                "create directory",
                &self.root.join(tree).join(key),
                io::Error::from(io::ErrorKind::NotFound),
            ));
        };
        match route.entry()? {
            Entry::Link => return Err(link_error(&route.path())),
            Entry::Dir => tree::remove_empty_tree(route.parent(), route.name()),
            _ => {}
        }
        tmp.dir
            .rename(&tmp.name, route.parent(), route.name())
            .map_err(|e| io_error("rename into place", &route.path(), e))?;
        Ok(route)
    }

    /// Removes what occupies the place of `key`'s content-type file in `meta/`: a file
    /// on one of its prefixes, or a directory on the key itself. Called once the key's
    /// bytes are in place, when the data tree shows that all of it is garbage: no key
    /// is a prefix of a stored key, nor has stored keys under it. A link is not removed:
    /// link error.
    fn clear_meta_place(&self, key: &str) -> Result<()> {
        let segments: Vec<&str> = key.split('/').collect();
        let mut dir = self.top(META)?;
        let mut path = self.root.join(META);
        for (i, segment) in segments.iter().enumerate() {
            path.push(segment);
            let last = i + 1 == segments.len();
            let removed = match tree::entry(&dir, segment, &path)? {
                Entry::Missing => break,
                Entry::Link => return Err(link_error(&path)),
                Entry::Dir if last => dir.remove_dir_all(segment),
                Entry::Dir => match tree::open_dir(&dir, segment, &path)? {
                    Some(sub) => {
                        dir = sub;
                        continue;
                    }
                    None => break,
                },
                Entry::File | Entry::Other if !last => dir.remove_file(segment),
                Entry::File | Entry::Other => break,
            };
            match removed {
                Ok(()) => {}
                Err(e) if tree::is_absent(&e) => {}
                Err(e) => return Err(io_error("remove", &path, e)),
            }
            break;
        }
        Ok(())
    }

    /// The blob file of `key` opened for reading, or `None`.
    fn open_blob(&self, key: &str) -> Result<Option<(File, PathBuf)>> {
        let Some(route) = self.route(DATA, key, false)? else {
            return Ok(None);
        };
        let path = route.path();
        Ok(tree::open_file(route.parent(), route.name(), &path)?.map(|f| (f, path)))
    }

    fn exists(&self, key: &str) -> Result<bool> {
        let Some(route) = self.route(DATA, key, false)? else {
            return Ok(false);
        };
        match route.entry()? {
            Entry::File => Ok(true),
            Entry::Link => Err(link_error(&route.path())),
            Entry::Missing | Entry::Dir | Entry::Other => Ok(false),
        }
    }

    fn delete(&self, key: &str) -> Result<bool> {
        let Some(data) = self.route(DATA, key, false)? else {
            return Ok(false);
        };
        match data.entry()? {
            Entry::File => {}
            Entry::Link => return Err(link_error(&data.path())),
            Entry::Missing | Entry::Dir | Entry::Other => return Ok(false),
        }
        // Links in the meta tree are refused before anything is removed.
        let meta = self.route(META, key, false)?;
        if let Some(meta) = &meta
            && let Entry::Link = meta.entry()?
        {
            return Err(link_error(&meta.path()));
        }
        match data.parent().remove_file(data.name()) {
            Ok(()) => {}
            Err(e) if tree::is_absent(&e) => return Ok(false),
            Err(e) => return Err(io_error("remove", &data.path(), e)),
        }
        // The key is gone. Its content-type file goes next, best effort: one left behind
        // names a data file that no longer exists, so it counts for nothing.
        if let Some(meta) = &meta {
            match meta.parent().remove_file(meta.name()) {
                Ok(()) => {}
                Err(e) if tree::is_absent(&e) || e.kind() == io::ErrorKind::IsADirectory => {}
                Err(e) => tracing::warn!(
                    path = %meta.path().display(),
                    error = %e,
                    "could not remove the content-type file of a deleted key"
                ),
            }
            // Best effort, as above: not flushed.
            let _ = meta.prune(false);
        }
        // One flush makes the removal durable, so that a purge that deletes the record
        // next never leaves bytes behind after a crash.
        data.prune(true)?;
        Ok(true)
    }

    /// The content type stored for the data file whose metadata is `data`, if it was
    /// stored for that very file.
    fn stored_type(&self, key: &str, data: &fs::Metadata) -> Result<Option<ContentType>> {
        let Some(route) = self.route(META, key, false)? else {
            return Ok(None);
        };
        let path = route.path();
        let Some((bytes, file)) =
            tree::read_small(route.parent(), route.name(), &path, MAX_META_BYTES)?
        else {
            return Ok(None);
        };
        let meta: Meta = serde_json::from_slice(&bytes).map_err(|e| {
            corrupt(CorruptData::with_source(
                &path,
                "not a content-type file",
                e,
            ))
        })?;
        if meta
            .key
            .as_ref()
            .is_some_and(|written_for| written_for != key)
        {
            return Ok(None);
        }
        let copied = meta.this.is_some_and(|ino| Some(ino) != inode(&file));
        let current = meta.data.is_none_or(|written_for| {
            if copied {
                written_for.size == data.len()
            } else {
                written_for == DataIdentity::of(data)
            }
        });
        if !current {
            return Ok(None);
        }
        ContentType::parse(meta.content_type)
            .map(Some)
            .map_err(|e| corrupt(CorruptData::with_source(&path, "not a content type", e)))
    }

    fn content_type(&self, key: &str) -> Result<Option<ContentType>> {
        let Some((data, path)) = self.open_blob(key)? else {
            return Ok(None);
        };
        let data = data.metadata().map_err(io_at("stat", &path))?;
        self.stored_type(key, &data)
    }

    fn head(&self, key: &str) -> Result<Option<ObjectMeta>> {
        let Some((data, path)) = self.open_blob(key)? else {
            return Ok(None);
        };
        let data = data.metadata().map_err(io_at("stat", &path))?;
        let content_type = match self.stored_type(key, &data) {
            Ok(Some(t)) => t,
            Ok(None) => ContentType::octet_stream(),
            Err(e) if e.kind() == ErrorKind::Corrupt => {
                tracing::warn!(key, error = %e, "unreadable content-type file");
                ContentType::octet_stream()
            }
            Err(e) => return Err(e),
        };
        Ok(Some(ObjectMeta::new(data.len(), content_type)))
    }

    fn file_url(&self, key: &str) -> Result<String> {
        if !self.exists(key)? {
            return Err(Error::NotFound {
                kind: "file",
                id: key.to_owned(),
            });
        }
        Ok(file_url(&self.root.join(DATA).join(key)))
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
#[deny(clippy::missing_trait_methods)]
impl FilesBackend for LocalFiles {
    /// Signed URLs (`file://` URLs, see [`signed_url`](Self::signed_url)), bounded memory,
    /// no size limit but the disk's.
    fn capabilities(&self) -> FilesCapabilities {
        FilesCapabilities::full()
    }

    /// Gathers the chunks into 8 MiB writes made on the blocking pool while the stream
    /// is polled for the next ones (memory stays under 32 MiB, plus one chunk when a
    /// single chunk is larger and direct I/O is off), with direct I/O (Linux: `O_DIRECT`,
    /// no copy into the page cache) where the file system takes it, flushes the file to
    /// disk once at the end, then moves it into place. A failing stream, a failed write,
    /// or dropping the future before it finishes leaves nothing under the key and removes
    /// the temp file.
    async fn upload_stream(
        &self,
        key: &StorageKey,
        mut data: ByteStream,
        content_type: &ContentType,
    ) -> Result<u64> {
        // Fail before reading the stream if the key cannot be stored (a few stat calls).
        self.inner.check_shape(key.as_str())?;
        // Created synchronously (one open call): were it created on the blocking pool, a
        // future dropped meanwhile would remove the name before the file appeared.
        let (guard, file) = TempFile::create(&self.inner, "data")?;
        let mut writer = StreamWriter::new(file, guard.path.clone(), self.inner.direct_io);
        let mut size = 0u64;
        while let Some(chunk) = data.next().await {
            let chunk = chunk.map_err(|source| Error::UploadStream { source })?;
            size += chunk.len() as u64;
            writer.push(chunk).await?;
        }
        let written = writer.finish().await?;
        tracing::trace!(key = %key, size, direct = written.direct, "upload written");
        let written = written.meta;
        let inner = Arc::clone(&self.inner);
        let (key, content_type) = (key.clone(), content_type.clone());
        blocking(move || {
            let meta = write_meta(&inner, key.as_str(), content_type.as_str(), &written)?;
            inner.place(key.as_str(), guard, meta)
        })
        .await?;
        Ok(size)
    }

    /// Streams the file in chunks of [`DOWNLOAD_CHUNK`] bytes. The stream reads the file
    /// that was under the key when it was opened, even if the key is replaced or deleted
    /// meanwhile.
    async fn download_stream(&self, key: &StorageKey) -> Result<Option<ByteStream>> {
        let inner = Arc::clone(&self.inner);
        let key = key.clone();
        let Some((file, path)) = blocking(move || inner.open_blob(key.as_str())).await? else {
            return Ok(None);
        };
        let stream = ReaderStream::with_capacity(tokio::fs::File::from_std(file), DOWNLOAD_CHUNK)
            .map(move |chunk| chunk.map_err(|e| io::Error::from(io_error("read", &path, e))));
        Ok(Some(stream.boxed()))
    }

    /// The file's size, and the content type it was uploaded with:
    /// `application/octet-stream` when that is unknown (see
    /// [`LocalFiles::content_type`] for when) or its file cannot be read.
    async fn head(&self, key: &StorageKey) -> Result<Option<ObjectMeta>> {
        let inner = Arc::clone(&self.inner);
        let key = key.clone();
        blocking(move || inner.head(key.as_str())).await
    }

    async fn delete(&self, key: &StorageKey) -> Result<bool> {
        let inner = Arc::clone(&self.inner);
        let key = key.clone();
        blocking(move || inner.delete(key.as_str())).await
    }

    /// A `file://` URL of the file's absolute path; [`Error::NotFound`] when nothing is
    /// stored under `key`.
    ///
    /// A file URL carries no credentials and cannot expire: `expires_in` is ignored, and
    /// so is `download_filename` (the file keeps its storage-key name). Only a process on
    /// this machine with read access to the file can use it, and it resolves the path
    /// when it opens it (links included: the store's guarantees end at the URL).
    async fn signed_url(
        &self,
        key: &StorageKey,
        expires_in: Duration,
        download_filename: Option<&str>,
    ) -> Result<String> {
        let _ = (expires_in, download_filename);
        let inner = Arc::clone(&self.inner);
        let key = key.clone();
        blocking(move || inner.file_url(key.as_str())).await
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests may unwrap
mod tests {
    use super::*;
    use bytes::Bytes;
    use chatvault_core::backend::collect_stream;

    /// A store whose file system refuses direct I/O as `direct_io` says still stores every
    /// byte, durably placed under its key.
    #[tokio::test]
    async fn uploads_where_direct_io_is_refused_store_every_byte() {
        let data: Vec<u8> = (0..20 * 1024 * 1024 + 123)
            .map(|i| (i % 251) as u8)
            .collect();
        for direct_io in [
            DirectIo::Try,
            DirectIo::RefuseFlag,
            DirectIo::RefuseWritesAfter(0),
            DirectIo::RefuseWritesAfter(8 * 1024 * 1024),
        ] {
            let dir = tempfile::tempdir().unwrap();
            let files = LocalFiles::open(dir.path(), direct_io).unwrap();
            let key = StorageKey::parse("u/c/f/big.bin").unwrap();
            let chunks: Vec<_> = data
                .chunks(100_000)
                .map(|c| Ok(Bytes::copy_from_slice(c)))
                .collect();
            let size = files
                .upload_stream(
                    &key,
                    futures_util::stream::iter(chunks).boxed(),
                    &ContentType::parse("application/pdf").unwrap(),
                )
                .await
                .unwrap();
            assert_eq!(size, data.len() as u64);
            let stored = collect_stream(files.download_stream(&key).await.unwrap().unwrap())
                .await
                .unwrap();
            assert!(stored == data, "{direct_io:?}");
            let head = files.head(&key).await.unwrap().unwrap();
            assert_eq!(head.content_type.as_str(), "application/pdf");
            assert_eq!(fs::read_dir(dir.path().join(TMP)).unwrap().count(), 0);
        }
    }
}
