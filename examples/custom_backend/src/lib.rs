//! A ChatVault backend written the way a third-party crate would write one: only the four
//! required methods of each trait, everything else left to the defaults.
//!
//! - [`JsonDirMessages`] keeps each conversation as one JSON file in a directory.
//! - [`MapFiles`] keeps attachments in a `HashMap`.
//!
//! `tests/conformance.rs` runs ChatVault's conformance suite against them with
//! `MessagesCapabilities::minimal()`: the default methods rewrite the whole conversation
//! and are not atomic across concurrent writers, so that check is left out, as is listing
//! every user's conversations (the required methods cannot do it).

#![forbid(unsafe_code)]

use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use bytes::Bytes;
use chatvault_core::{
    Error, FilesBackend, MessagesBackend, Result, StoredConversation, async_trait, keys,
};

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

    fn path(&self, id: &str) -> Result<PathBuf> {
        // Ids become file names: let core's rules make sure they are harmless ones.
        keys::validate_id("conversation id", id)?;
        Ok(self.dir.join(format!("{id}.json")))
    }
}

fn io_error(e: io::Error) -> Error {
    Error::backend("json-dir", e)
}

async fn read_json(path: &Path) -> Result<Option<StoredConversation>> {
    match tokio::fs::read(path).await {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| Error::backend("json-dir", e)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io_error(e)),
    }
}

#[async_trait]
impl MessagesBackend for JsonDirMessages {
    async fn save(&self, conversation: &StoredConversation) -> Result<()> {
        conversation.record.validate()?;
        let path = self.path(&conversation.record.id)?;
        let json = serde_json::to_vec(conversation).map_err(|e| Error::backend("json-dir", e))?;
        // Write aside, then rename: a reader never sees half a file.
        let tmp = path.with_extension("json.tmp");
        tokio::fs::write(&tmp, json).await.map_err(io_error)?;
        tokio::fs::rename(&tmp, &path).await.map_err(io_error)
    }

    async fn get(&self, id: &str) -> Result<Option<StoredConversation>> {
        read_json(&self.path(id)?).await
    }

    async fn get_by_user(&self, user_id: &str) -> Result<Vec<StoredConversation>> {
        let mut out = Vec::new();
        let mut entries = tokio::fs::read_dir(&self.dir).await.map_err(io_error)?;
        while let Some(entry) = entries.next_entry().await.map_err(io_error)? {
            let path = entry.path();
            if path.extension().is_some_and(|e| e == "json")
                && let Some(c) = read_json(&path).await?
                && c.record.user_id.as_deref() == Some(user_id)
            {
                out.push(c);
            }
        }
        Ok(out)
    }

    async fn delete(&self, id: &str) -> Result<bool> {
        match tokio::fs::remove_file(self.path(id)?).await {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(io_error(e)),
        }
    }
}

/// Attachments in a `HashMap` (bytes and content type by key).
#[derive(Debug, Default)]
pub struct MapFiles {
    blobs: Mutex<HashMap<String, (Bytes, String)>>,
}

impl MapFiles {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn with<T>(&self, f: impl FnOnce(&mut HashMap<String, (Bytes, String)>) -> T) -> T {
        let mut guard = self
            .blobs
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        f(&mut guard)
    }
}

#[async_trait]
impl FilesBackend for MapFiles {
    async fn upload(&self, key: &str, data: Bytes, content_type: &str) -> Result<()> {
        keys::validate_key(key)?;
        keys::validate_content_type(content_type)?;
        self.with(|m| m.insert(key.to_owned(), (data, content_type.to_owned())));
        Ok(())
    }

    async fn download(&self, key: &str) -> Result<Option<Bytes>> {
        keys::validate_key(key)?;
        Ok(self.with(|m| m.get(key).map(|(data, _)| data.clone())))
    }

    async fn delete(&self, key: &str) -> Result<bool> {
        keys::validate_key(key)?;
        Ok(self.with(|m| m.remove(key).is_some()))
    }

    async fn exists(&self, key: &str) -> Result<bool> {
        keys::validate_key(key)?;
        Ok(self.with(|m| m.contains_key(key)))
    }
}
