//! The [`FilesBackend`] implementation.

use std::io;
use std::time::Duration;

use chatvault_core::backend::{
    ByteStream, ContentType, Error, FilesBackend, FilesCapabilities, ObjectMeta, Result,
    StorageKey, async_trait,
};
use futures_util::StreamExt;

use super::urls::presign;
use super::{BACKEND, MAX_PARTS, S3Files};

#[async_trait]
#[deny(clippy::missing_trait_methods)]
impl FilesBackend for S3Files {
    /// Signed URLs (presigned `GetObject`), bounded memory (about one part buffered), and
    /// at most [`MAX_PARTS`] parts of [`part_size`](S3Files::part_size) per file.
    fn capabilities(&self) -> FilesCapabilities {
        FilesCapabilities::full()
            .with_max_file_bytes(Some(self.uploader.part_size() as u64 * MAX_PARTS as u64))
    }

    /// `HeadObject` first (S3's `DeleteObject` answers the same whether or not the key
    /// existed), then `DeleteObject`.
    async fn delete(&self, key: &StorageKey) -> Result<bool> {
        self.bucket.delete(key).await
    }

    /// `HeadObject`: the size and the content type stored with the object.
    async fn head(&self, key: &StorageKey) -> Result<Option<ObjectMeta>> {
        self.bucket.head(key).await
    }

    /// A presigned `GetObject` URL, valid for `expires_in` (at least 1 second, since
    /// SigV4 counts whole seconds, and at most [`MAX_PRESIGNED_EXPIRY`](super::MAX_PRESIGNED_EXPIRY): 7 days), whose
    /// response carries
    /// `Content-Disposition: attachment` with `download_filename` (see
    /// [`content_disposition`](super::content_disposition)). [`Error::NotFound`] when nothing is stored under `key`
    /// (checked with `HeadObject`).
    async fn signed_url(
        &self,
        key: &StorageKey,
        expires_in: Duration,
        download_filename: Option<&str>,
    ) -> Result<String> {
        presign(&self.bucket, key, expires_in, download_filename).await
    }

    /// Streams of up to [`multipart_threshold`](S3Files::multipart_threshold) bytes go in
    /// one `PutObject`; larger ones in a multipart upload, holding about one part in
    /// memory, aborted on any failure.
    async fn upload_stream(
        &self,
        key: &StorageKey,
        data: ByteStream,
        content_type: &ContentType,
    ) -> Result<u64> {
        self.uploader.upload(key, data, content_type).await
    }

    /// The object's body as it arrives, chunk by chunk. A failure part-way arrives as an
    /// `io::Error` wrapping a [`chatvault_core::Error`].
    async fn download_stream(&self, key: &StorageKey) -> Result<Option<ByteStream>> {
        let Some(out) = self.bucket.get_object(key).await? else {
            return Ok(None);
        };
        let stream = futures_util::stream::unfold(Some(out.body), |body| async move {
            let mut body = body?;
            match body.next().await {
                Some(Ok(chunk)) => Some((Ok(chunk), Some(body))),
                Some(Err(e)) => Some((Err(io::Error::from(Error::temporary(BACKEND, e))), None)),
                None => None,
            }
        });
        Ok(Some(stream.boxed()))
    }
}
