//! [`Uploader`], `upload_stream`'s work: one `PutObject` up to the multipart threshold, a
//! multipart upload above it, with the guard that aborts it when it does not complete.

use aws_sdk_s3::Client;
use aws_sdk_s3::primitives::ByteStream as SdkByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use bytes::{Bytes, BytesMut};
use chatvault_core::backend::{ByteStream, ContentType, Error, Result, StorageKey};
use futures_util::StreamExt;

use super::bucket::Bucket;
use super::{BACKEND, MAX_PARTS};
use crate::sdk::sdk_error;

/// Uploads streams into a bucket: the bucket, and the sizes that choose and cut a
/// multipart upload.
#[derive(Clone)]
pub(super) struct Uploader {
    bucket: Bucket,
    /// Streams larger than this many bytes are uploaded in parts.
    multipart_threshold: usize,
    /// The size of each part (the last may be smaller).
    part_size: usize,
}

impl Uploader {
    /// Uploads into `bucket`, in parts of `part_size` bytes for streams larger than
    /// `multipart_threshold` (both checked by the builder).
    pub(super) fn new(bucket: Bucket, multipart_threshold: usize, part_size: usize) -> Self {
        Uploader {
            bucket,
            multipart_threshold,
            part_size,
        }
    }

    /// Streams larger than this many bytes are uploaded in parts.
    pub(super) fn multipart_threshold(&self) -> usize {
        self.multipart_threshold
    }

    /// The size of each part of a multipart upload (the last may be smaller).
    pub(super) fn part_size(&self) -> usize {
        self.part_size
    }

    /// `upload_stream`: streams of up to the multipart threshold go in one `PutObject`,
    /// larger ones in a multipart upload.
    pub(super) async fn upload(
        &self,
        key: &StorageKey,
        mut data: ByteStream,
        content_type: &ContentType,
    ) -> Result<u64> {
        let object_key = self.bucket.checked_object_key(key)?;
        let content_type = content_type.as_str();
        let mut buf = BytesMut::new();
        while buf.len() <= self.multipart_threshold {
            match data.next().await {
                Some(Ok(chunk)) => buf.extend_from_slice(&chunk),
                Some(Err(source)) => return Err(Error::UploadStream { source }),
                None => {
                    let len = buf.len() as u64;
                    self.bucket
                        .put_object(&object_key, buf.freeze(), content_type)
                        .await?;
                    return Ok(len);
                }
            }
        }
        self.upload_multipart(&object_key, content_type, buf, data)
            .await
    }

    /// The multipart upload of `buf` (the stream's first bytes) and the rest of `data`
    /// under `object_key`, aborted when it does not complete.
    async fn upload_multipart(
        &self,
        object_key: &str,
        content_type: &str,
        mut buf: BytesMut,
        mut data: ByteStream,
    ) -> Result<u64> {
        let created = self
            .bucket
            .client()
            .create_multipart_upload()
            .bucket(self.bucket.name())
            .key(object_key)
            .content_type(content_type)
            .send()
            .await
            .map_err(|e| sdk_error(BACKEND, e))?;
        let upload_id = created
            .upload_id()
            .ok_or_else(|| Error::backend(BACKEND, "CreateMultipartUpload returned no upload id"))?
            .to_owned();
        let mut guard = AbortGuard {
            client: self.bucket.client().clone(),
            bucket: self.bucket.name().to_owned(),
            key: object_key.to_owned(),
            upload_id: Some(upload_id.clone()),
        };
        let result = self
            .send_parts(object_key, &upload_id, &mut buf, &mut data)
            .await;
        match result {
            Ok(total) => {
                guard.disarm();
                Ok(total)
            }
            Err(e) => {
                guard.abort().await;
                Err(e)
            }
        }
    }

    /// Sends `buf` and the rest of `data` as parts of `upload_id`, then completes it;
    /// the bytes sent. [`Error::TooLarge`] past [`MAX_PARTS`] parts.
    async fn send_parts(
        &self,
        object_key: &str,
        upload_id: &str,
        buf: &mut BytesMut,
        data: &mut ByteStream,
    ) -> Result<u64> {
        let mut parts = Vec::new();
        let mut total: u64 = 0;
        let mut ended = false;
        loop {
            while buf.len() >= self.part_size || (ended && !buf.is_empty()) {
                let take = self.part_size.min(buf.len());
                let part = buf.split_to(take).freeze();
                total += part.len() as u64;
                let number = parts.len() as u32 + 1;
                if number > MAX_PARTS {
                    return Err(Error::TooLarge {
                        what: format!(
                            "multipart upload to {object_key:?} (parts of {} bytes)",
                            self.part_size
                        ),
                        size: u64::from(number),
                        limit: u64::from(MAX_PARTS),
                    });
                }
                parts.push(
                    self.upload_part(object_key, upload_id, number, part)
                        .await?,
                );
            }
            if ended {
                break;
            }
            match data.next().await {
                Some(Ok(chunk)) => buf.extend_from_slice(&chunk),
                Some(Err(source)) => return Err(Error::UploadStream { source }),
                None => ended = true,
            }
        }
        self.bucket
            .client()
            .complete_multipart_upload()
            .bucket(self.bucket.name())
            .key(object_key)
            .upload_id(upload_id)
            .multipart_upload(
                CompletedMultipartUpload::builder()
                    .set_parts(Some(parts))
                    .build(),
            )
            .send()
            .await
            .map_err(|e| sdk_error(BACKEND, e))?;
        Ok(total)
    }

    /// Sends `part` as part `number` of `upload_id`.
    async fn upload_part(
        &self,
        object_key: &str,
        upload_id: &str,
        number: u32,
        part: Bytes,
    ) -> Result<CompletedPart> {
        let number = i32::try_from(number)
            .map_err(|_| Error::backend(BACKEND, "part number out of range"))?;
        let out = self
            .bucket
            .client()
            .upload_part()
            .bucket(self.bucket.name())
            .key(object_key)
            .upload_id(upload_id)
            .part_number(number)
            .content_length(part.len() as i64)
            .body(SdkByteStream::from(part))
            .send()
            .await
            .map_err(|e| sdk_error(BACKEND, e))?;
        Ok(CompletedPart::builder()
            .part_number(number)
            .set_e_tag(out.e_tag().map(str::to_owned))
            .build())
    }
}

/// Aborts a multipart upload that did not complete: awaited on errors, spawned on the
/// current Tokio runtime when the upload's future is dropped part-way.
struct AbortGuard {
    client: Client,
    bucket: String,
    key: String,
    upload_id: Option<String>,
}

impl AbortGuard {
    /// Leaves the upload alone: it completed.
    fn disarm(&mut self) {
        self.upload_id = None;
    }

    /// The `AbortMultipartUpload` request of `upload_id`.
    fn request(
        &self,
        upload_id: String,
    ) -> aws_sdk_s3::operation::abort_multipart_upload::builders::AbortMultipartUploadFluentBuilder
    {
        self.client
            .abort_multipart_upload()
            .bucket(&self.bucket)
            .key(&self.key)
            .upload_id(upload_id)
    }

    /// Aborts the upload, unless disarmed or aborted already; a failure is logged.
    async fn abort(&mut self) {
        if let Some(upload_id) = self.upload_id.take() {
            // Best effort: the caller gets the error that made us abort. A lifecycle rule
            // cleans up uploads that could not be aborted; say which one it is.
            if let Err(e) = self.request(upload_id.clone()).send().await {
                tracing::warn!(
                    bucket = %self.bucket, key = %self.key, upload_id = %upload_id, error = %e,
                    "could not abort a failed multipart upload; its parts stay billed until a lifecycle rule removes them"
                );
            }
        }
    }
}

impl Drop for AbortGuard {
    fn drop(&mut self) {
        if let Some(upload_id) = self.upload_id.take()
            && let Ok(handle) = tokio::runtime::Handle::try_current()
        {
            let request = self.request(upload_id.clone());
            let (bucket, key) = (self.bucket.clone(), self.key.clone());
            handle.spawn(async move {
                if let Err(e) = request.send().await {
                    tracing::warn!(
                        %bucket, %key, %upload_id, error = %e,
                        "could not abort an abandoned multipart upload; its parts stay billed until a lifecycle rule removes them"
                    );
                }
            });
        }
    }
}
