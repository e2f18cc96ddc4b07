//! [`Bucket`]: the client, the bucket's name and the key prefix, and the requests on
//! one object (or the bucket) that every part of [`S3Files`](super::S3Files) sends.

use aws_sdk_s3::Client;
use aws_sdk_s3::operation::get_object::GetObjectOutput;
use aws_sdk_s3::primitives::ByteStream as SdkByteStream;
use aws_sdk_s3::types::{BucketLocationConstraint, CreateBucketConfiguration};
use bytes::Bytes;
use chatvault_core::backend::{ContentType, Error, ObjectMeta, Result, StorageKey};

use super::{BACKEND, MAX_OBJECT_KEY_LEN};
use crate::sdk::sdk_error;

/// The bucket, as every part of the backend reaches it (cheap to clone: the client is
/// shared).
#[derive(Clone)]
pub(super) struct Bucket {
    client: Client,
    name: String,
    /// Empty, or ending with `/`.
    prefix: String,
}

impl Bucket {
    /// The bucket `name` through `client`, every key under `prefix` (empty, or ending
    /// with `/`).
    pub(super) fn new(client: Client, name: String, prefix: String) -> Self {
        Bucket {
            client,
            name,
            prefix,
        }
    }

    /// The SDK client.
    pub(super) fn client(&self) -> &Client {
        &self.client
    }

    /// The bucket's name.
    pub(super) fn name(&self) -> &str {
        &self.name
    }

    /// The key prefix (empty, or ending with `/`).
    pub(super) fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The object key of a storage key: the prefix, then the key.
    pub(super) fn object_key(&self, key: &StorageKey) -> String {
        format!("{}{key}", self.prefix)
    }

    /// The object key of a storage key given to a
    /// [`FilesBackend`](chatvault_core::FilesBackend) method, checked to be within S3's
    /// [`MAX_OBJECT_KEY_LEN`] under the prefix (the key itself is valid by its type).
    pub(super) fn checked_object_key(&self, key: &StorageKey) -> Result<String> {
        let object_key = self.object_key(key);
        if object_key.len() > MAX_OBJECT_KEY_LEN {
            return Err(Error::TooLarge {
                what: format!(
                    "the S3 object key of storage key {key:?} under the prefix {:?}",
                    self.prefix
                ),
                size: object_key.len() as u64,
                limit: MAX_OBJECT_KEY_LEN as u64,
            });
        }
        Ok(object_key)
    }

    /// Creates the bucket unless it exists already: `HeadBucket`, then `CreateBucket` (in
    /// the client's region outside `us-east-1`); one created meanwhile is accepted.
    pub(super) async fn create_if_missing(&self) -> Result<()> {
        match self.client.head_bucket().bucket(&self.name).send().await {
            Ok(_) => return Ok(()),
            Err(e) if e.as_service_error().is_some_and(|e| e.is_not_found()) => {}
            Err(e) => return Err(sdk_error(BACKEND, e)),
        }
        let mut request = self.client.create_bucket().bucket(&self.name);
        if let Some(region) = self.client.config().region()
            && region.as_ref() != "us-east-1"
        {
            request = request.create_bucket_configuration(
                CreateBucketConfiguration::builder()
                    .location_constraint(BucketLocationConstraint::from(region.as_ref()))
                    .build(),
            );
        }
        match request.send().await {
            Ok(_) => Ok(()),
            // Created by a concurrent caller, or by us earlier.
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_bucket_already_owned_by_you()) =>
            {
                Ok(())
            }
            Err(e) => Err(sdk_error(BACKEND, e)),
        }
    }

    /// One `PutObject` of `data` under `object_key`.
    pub(super) async fn put_object(
        &self,
        object_key: &str,
        data: Bytes,
        content_type: &str,
    ) -> Result<()> {
        self.client
            .put_object()
            .bucket(&self.name)
            .key(object_key)
            .content_type(content_type)
            .body(SdkByteStream::from(data))
            .send()
            .await
            .map_err(|e| sdk_error(BACKEND, e))?;
        Ok(())
    }

    /// `GetObject` of `key`; `None` when nothing is stored under it.
    pub(super) async fn get_object(&self, key: &StorageKey) -> Result<Option<GetObjectOutput>> {
        let object_key = self.checked_object_key(key)?;
        match self
            .client
            .get_object()
            .bucket(&self.name)
            .key(object_key)
            .send()
            .await
        {
            Ok(out) => Ok(Some(out)),
            Err(e) if e.as_service_error().is_some_and(|s| s.is_no_such_key()) => Ok(None),
            Err(e) => Err(sdk_error(BACKEND, e)),
        }
    }

    /// `HeadObject` of `key`: the size and the content type stored with the object;
    /// `None` when nothing is stored under it, [`Error::Corrupt`] when S3 gives no size
    /// or an invalid content type.
    pub(super) async fn head(&self, key: &StorageKey) -> Result<Option<ObjectMeta>> {
        let object_key = self.checked_object_key(key)?;
        let out = match self
            .client
            .head_object()
            .bucket(&self.name)
            .key(&object_key)
            .send()
            .await
        {
            Ok(out) => out,
            Err(e) if e.as_service_error().is_some_and(|s| s.is_not_found()) => return Ok(None),
            Err(e) => return Err(sdk_error(BACKEND, e)),
        };
        let corrupt =
            |what: String| Error::corrupt(BACKEND, format!("object {object_key:?}"), what);
        let size = out
            .content_length()
            .and_then(|n| u64::try_from(n).ok())
            .ok_or_else(|| corrupt("HeadObject gave no size".to_owned()))?;
        let content_type = match out.content_type() {
            None => ContentType::octet_stream(),
            Some(text) => ContentType::parse(text)
                .map_err(|e| corrupt(format!("its content type is not valid: {e}")))?,
        };
        Ok(Some(ObjectMeta::new(size, content_type)))
    }

    /// Deletes the object of `key`: `HeadObject` first (S3's `DeleteObject` answers the
    /// same whether or not the key existed), then `DeleteObject`; whether it existed.
    pub(super) async fn delete(&self, key: &StorageKey) -> Result<bool> {
        if self.head(key).await?.is_none() {
            return Ok(false);
        }
        self.client
            .delete_object()
            .bucket(&self.name)
            .key(self.checked_object_key(key)?)
            .send()
            .await
            .map_err(|e| sdk_error(BACKEND, e))?;
        Ok(true)
    }
}
