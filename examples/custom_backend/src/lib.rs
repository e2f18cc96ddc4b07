//! A ChatVault backend written the way a third-party crate would start one: the quickest
//! path to something that works, checked by the conformance suite.
//!
//! - [`JsonDirMessages`] keeps each conversation as one JSON file in a directory. It
//!   implements the four-method [`SimpleBackend`] (the Python library's shape: save, get,
//!   get by user, delete a whole conversation), and [`SimpleAdapter`] turns it into a full
//!   `MessagesBackend`: atomic within one process (one lock), not across processes, and
//!   every append rewrites the conversation's file. Its capabilities say exactly that, and
//!   the suite holds it to them.
//! - [`MapFiles`] keeps attachments in a `HashMap`: the five [`FilesBackend`] primitives,
//!   with `upload`/`download`/`exists` coming from [`FilesBackendExt`] for free.
//!
//! The path to a production backend: implement `MessagesBackend` directly, one method at a
//! time, each with your store's own atomic write (a conditional put, a transaction, a file
//! lock), using core's shared rules (`ConversationRecord::apply_append`, `check_replay`,
//! `apply_add_file`, `paginate`) so the semantics stay identical; then declare the
//! stronger capabilities and let the suite check them.
//!
//! [`FilesBackendExt`]: chatvault_core::backend::FilesBackendExt

#![forbid(unsafe_code)]

use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use std::time::Duration;

use bytes::Bytes;
use chatvault_core::backend::{
    ByteStream, ContentType, ConversationId, Error, FilesBackend, FilesCapabilities, ObjectMeta,
    Result, SimpleBackend, StorageKey, StoredConversation, UserId, async_trait, bytes_stream,
    collect_stream,
};

pub use chatvault_core::backend::SimpleAdapter;

/// Conversations as JSON files, `<dir>/<conversation id>.json`.
#[derive(Debug)]
pub struct JsonDirMessages {
    dir: PathBuf,
}

impl JsonDirMessages {
    /// Uses (and creates) `dir`.
    pub fn new(dir: impl AsRef<Path>) -> Result<Self> {
        let dir = dir.as_ref().to_path_buf();
        std::fs::create_dir_all(&dir).map_err(io_error)?;
        Ok(JsonDirMessages { dir })
    }

    /// The conversation's file. A `ConversationId` is ASCII letters, digits and `-_.:@`,
    /// never `.` or `..`: a harmless file name by construction.
    fn path(&self, id: &ConversationId) -> PathBuf {
        self.dir.join(format!("{id}.json"))
    }
}

fn io_error(e: io::Error) -> Error {
    Error::backend("json-dir", e)
}

async fn read_json(path: &Path) -> Result<Option<StoredConversation>> {
    match tokio::fs::read(path).await {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| Error::corrupt("json-dir", path.display().to_string(), e.to_string())),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io_error(e)),
    }
}

#[async_trait]
impl SimpleBackend for JsonDirMessages {
    async fn save(&self, conversation: &StoredConversation) -> Result<()> {
        let path = self.path(&conversation.record.id);
        let json = serde_json::to_vec(conversation).map_err(|e| Error::backend("json-dir", e))?;
        // Write aside, then rename: a reader never sees half a file.
        let tmp = path.with_extension("json.tmp");
        tokio::fs::write(&tmp, json).await.map_err(io_error)?;
        tokio::fs::rename(&tmp, &path).await.map_err(io_error)
    }

    async fn get(&self, id: &ConversationId) -> Result<Option<StoredConversation>> {
        read_json(&self.path(id)).await
    }

    async fn get_by_user(&self, user_id: &UserId) -> Result<Vec<StoredConversation>> {
        let mut out = Vec::new();
        let mut entries = tokio::fs::read_dir(&self.dir).await.map_err(io_error)?;
        while let Some(entry) = entries.next_entry().await.map_err(io_error)? {
            let path = entry.path();
            if path.extension().is_some_and(|e| e == "json")
                && let Some(c) = read_json(&path).await?
                && c.record.user_id.as_ref() == Some(user_id)
            {
                out.push(c);
            }
        }
        Ok(out)
    }

    async fn delete(&self, id: &ConversationId) -> Result<bool> {
        match tokio::fs::remove_file(self.path(id)).await {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(io_error(e)),
        }
    }
}

/// Attachments in a `HashMap` (bytes and content type by key).
#[derive(Debug, Default)]
pub struct MapFiles {
    blobs: Mutex<HashMap<StorageKey, (Bytes, ContentType)>>,
}

impl MapFiles {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn with<T>(&self, f: impl FnOnce(&mut HashMap<StorageKey, (Bytes, ContentType)>) -> T) -> T {
        let mut guard = self
            .blobs
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        f(&mut guard)
    }
}

#[async_trait]
impl FilesBackend for MapFiles {
    fn capabilities(&self) -> FilesCapabilities {
        // Files are held in memory, and there are no URLs to hand out.
        FilesCapabilities::basic()
    }

    async fn upload_stream(
        &self,
        key: &StorageKey,
        data: ByteStream,
        content_type: &ContentType,
    ) -> Result<u64> {
        let bytes = collect_stream(data)
            .await
            .map_err(|source| Error::UploadStream { source })?;
        let len = bytes.len() as u64;
        self.with(|m| m.insert(key.clone(), (bytes, content_type.clone())));
        Ok(len)
    }

    async fn download_stream(&self, key: &StorageKey) -> Result<Option<ByteStream>> {
        Ok(self.with(|m| m.get(key).map(|(data, _)| bytes_stream(data.clone()))))
    }

    async fn head(&self, key: &StorageKey) -> Result<Option<ObjectMeta>> {
        Ok(self.with(|m| {
            m.get(key)
                .map(|(data, ct)| ObjectMeta::new(data.len() as u64, ct.clone()))
        }))
    }

    async fn delete(&self, key: &StorageKey) -> Result<bool> {
        Ok(self.with(|m| m.remove(key).is_some()))
    }

    async fn signed_url(
        &self,
        _key: &StorageKey,
        _expires_in: Duration,
        _download_filename: Option<&str>,
    ) -> Result<String> {
        Err(Error::not_supported("map files", "signed URLs"))
    }
}
