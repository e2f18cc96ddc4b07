//! A files backend for a store without an attachments location.

use std::time::Duration;

use chatvault_core::backend::{FilesCapabilities, ObjectMeta, async_trait};
use chatvault_core::{ByteStream, ContentType, Error, FilesBackend, Result, StorageKey};

/// Holds nothing and stores nothing: reads find no bytes, writes fail with
/// [`Error::NotSupported`] (saying to give the store a `files=DIR`). Used for a
/// PostgreSQL store without `files=`, and for reading a SQLite store whose attachments
/// directory does not exist (so reading creates nothing).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct NoFiles;

#[async_trait]
impl FilesBackend for NoFiles {
    fn capabilities(&self) -> FilesCapabilities {
        FilesCapabilities::basic()
    }

    async fn upload_stream(
        &self,
        _key: &StorageKey,
        _data: ByteStream,
        _content_type: &ContentType,
    ) -> Result<u64> {
        Err(Error::not_supported(
            "this store (no attachments location: add ?files=DIR to its URL)",
            "storing attachment bytes",
        ))
    }

    async fn download_stream(&self, _key: &StorageKey) -> Result<Option<ByteStream>> {
        Ok(None)
    }

    async fn head(&self, _key: &StorageKey) -> Result<Option<ObjectMeta>> {
        Ok(None)
    }

    async fn delete(&self, _key: &StorageKey) -> Result<bool> {
        Ok(false)
    }

    async fn signed_url(
        &self,
        _key: &StorageKey,
        _expires_in: Duration,
        _download_filename: Option<&str>,
    ) -> Result<String> {
        Err(Error::not_supported("this store", "signed URLs"))
    }
}
