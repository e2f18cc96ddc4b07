//! [`S3Files`]: attachments in an S3 bucket (or any S3-compatible store).

use std::fmt;
use std::io;
use std::time::Duration;

use aws_config::SdkConfig;
use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_sdk_s3::Client;
use aws_sdk_s3::config::{RequestChecksumCalculation, ResponseChecksumValidation};
use aws_sdk_s3::presigning::PresigningConfig;
use aws_sdk_s3::primitives::ByteStream as SdkByteStream;
use aws_sdk_s3::types::{BucketLocationConstraint, CompletedMultipartUpload, CompletedPart};
use bytes::{Bytes, BytesMut};
use chatvault_core::{
    ByteStream, ContentType, Error, FilesBackend, FilesCapabilities, ObjectMeta, Result,
    StorageKey, async_trait, keys,
};
use futures_util::StreamExt;

use crate::sdk::{self, ClientSettings, sdk_error};

const BACKEND: &str = "s3";

/// The smallest part S3 accepts in a multipart upload (every part but the last).
pub const MIN_PART_SIZE: usize = 5 * 1024 * 1024;
/// The largest part S3 accepts in a multipart upload.
pub const MAX_PART_SIZE: usize = 5 * 1024 * 1024 * 1024;
/// The most parts one multipart upload may have.
pub const MAX_PARTS: u32 = 10_000;
/// The default part size of multipart uploads: 8 MiB.
pub const DEFAULT_PART_SIZE: usize = 8 * 1024 * 1024;
/// The default multipart threshold: streams of up to 8 MiB go in one `PutObject`.
pub const DEFAULT_MULTIPART_THRESHOLD: usize = 8 * 1024 * 1024;
/// The longest lifetime of a presigned URL S3 accepts (SigV4): 7 days.
pub const MAX_PRESIGNED_EXPIRY: Duration = Duration::from_secs(604_800);
/// The longest object key S3 accepts, in bytes of UTF-8.
pub const MAX_OBJECT_KEY_LEN: usize = 1024;
/// The longest storage key [`keys::storage_key`] makes: three segments of at most
/// [`keys::MAX_SEGMENT_LEN`] bytes, a file name of at most [`keys::MAX_KEY_FILENAME_LEN`],
/// and three `/`.
const MAX_STORAGE_KEY_LEN: usize = 3 * keys::MAX_SEGMENT_LEN + keys::MAX_KEY_FILENAME_LEN + 3;
/// The longest key prefix [`S3FilesBuilder::prefix`] takes, in bytes, without its trailing
/// `/`: with it, every key [`keys::storage_key`] makes still fits S3's
/// [`MAX_OBJECT_KEY_LEN`].
pub const MAX_PREFIX_LEN: usize = MAX_OBJECT_KEY_LEN - MAX_STORAGE_KEY_LEN - 1;

/// Attachment bytes in an S3 bucket, or in any S3-compatible store (LocalStack, MinIO,
/// Cloudflare R2, Ceph, ...).
///
/// - Keys (valid by their type, [`StorageKey`]) are stored under an optional prefix (at
///   most [`MAX_PREFIX_LEN`] bytes, so that every key [`keys::storage_key`] makes fits);
///   a key that does not fit S3's [`MAX_OBJECT_KEY_LEN`] under the prefix is refused with
///   [`Error::TooLarge`] before any request.
/// - `upload_stream` sends streams of up to the multipart threshold in one `PutObject`,
///   larger ones as a multipart upload with parts of `part_size` bytes, holding about one
///   part in memory; the upload is aborted on any failure (the stream's, a part's, the
///   completion's, or the future being dropped), so nothing is left under the key.
/// - `download_stream` streams the object's body.
/// - `signed_url` presigns a `GetObject` whose response carries
///   `Content-Disposition: attachment` with the download file name (RFC 6266 / RFC 5987
///   encoding, so non-ASCII names survive; see [`content_disposition`]).
///
/// ```no_run
/// use chatvault_aws::S3Files;
///
/// # async fn example() -> chatvault_core::Result<()> {
/// // Endpoint, region and credentials from the SDK's own configuration
/// // (AWS_ENDPOINT_URL_S3 points it at LocalStack).
/// let files = S3Files::from_env("my-chat-files").await;
///
/// // Or with explicit settings:
/// let files = S3Files::builder("my-chat-files")
///     .endpoint_url("http://localhost:4566")
///     .force_path_style(true)
///     .prefix("chatvault")
///     .part_size(16 * 1024 * 1024)
///     .build()
///     .await?;
/// # let _ = files; Ok(()) }
/// ```
///
/// A bucket lifecycle rule with `AbortIncompleteMultipartUpload` is still recommended: a
/// process killed in the middle of an upload cannot abort it.
#[derive(Clone)]
pub struct S3Files {
    client: Client,
    bucket: String,
    prefix: String,
    multipart_threshold: usize,
    part_size: usize,
}

impl fmt::Debug for S3Files {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("S3Files")
            .field("bucket", &self.bucket)
            .field("prefix", &self.prefix)
            .field("multipart_threshold", &self.multipart_threshold)
            .field("part_size", &self.part_size)
            .finish_non_exhaustive()
    }
}

impl S3Files {
    /// Files in `bucket`, with a client built from the SDK's own configuration
    /// (environment, `~/.aws/config`, instance metadata).
    ///
    /// `AWS_ENDPOINT_URL_S3` (or `AWS_ENDPOINT_URL`) points it at another endpoint; when one
    /// of those is set, path-style addressing is turned on, as LocalStack, MinIO and most
    /// S3-compatible stores need (use [`builder`](Self::builder) to choose otherwise).
    pub async fn from_env(bucket: impl Into<String>) -> Self {
        let sdk = sdk::load_sdk_config().await;
        Self::from_sdk_config(&sdk, bucket)
    }

    /// Files in `bucket`, with a client built from a loaded [`SdkConfig`].
    ///
    /// Path-style addressing is turned on when the configuration or the environment names
    /// an endpoint (see [`from_env`](Self::from_env)).
    pub fn from_sdk_config(sdk: &SdkConfig, bucket: impl Into<String>) -> Self {
        let mut config = aws_sdk_s3::config::Builder::from(sdk);
        if sdk::endpoint_override_configured(Some(sdk), "AWS_ENDPOINT_URL_S3") {
            config = config.force_path_style(true);
        }
        Self::from_client(Client::from_conf(config.build()), bucket)
    }

    /// Files in `bucket`, through a ready client, used as it is.
    pub fn from_client(client: Client, bucket: impl Into<String>) -> Self {
        S3Files {
            client,
            bucket: bucket.into(),
            prefix: String::new(),
            multipart_threshold: DEFAULT_MULTIPART_THRESHOLD,
            part_size: DEFAULT_PART_SIZE,
        }
    }

    /// A builder for every other setting: endpoint, path style, timeouts, retries,
    /// checksums, key prefix, multipart sizes.
    pub fn builder(bucket: impl Into<String>) -> S3FilesBuilder {
        S3FilesBuilder {
            bucket: bucket.into(),
            source: Source::Env,
            settings: ClientSettings::default(),
            force_path_style: None,
            checksums_when_required: false,
            prefix: None,
            multipart_threshold: DEFAULT_MULTIPART_THRESHOLD,
            part_size: DEFAULT_PART_SIZE,
        }
    }

    /// The SDK client.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// The bucket.
    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    /// The key prefix (empty, or ending with `/`).
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// Streams larger than this many bytes are uploaded in parts.
    pub fn multipart_threshold(&self) -> usize {
        self.multipart_threshold
    }

    /// The size of each part of a multipart upload (the last may be smaller).
    pub fn part_size(&self) -> usize {
        self.part_size
    }

    /// The object key of a storage key: the prefix, then the key.
    pub fn object_key(&self, key: &StorageKey) -> String {
        format!("{}{key}", self.prefix)
    }

    /// Creates the bucket unless it exists already (for tests, examples and first runs).
    ///
    /// Outside `us-east-1` the bucket is created in the client's region.
    pub async fn create_bucket_if_missing(&self) -> Result<()> {
        match self.client.head_bucket().bucket(&self.bucket).send().await {
            Ok(_) => return Ok(()),
            Err(e) if e.as_service_error().is_some_and(|e| e.is_not_found()) => {}
            Err(e) => return Err(sdk_error(BACKEND, e)),
        }
        let mut request = self.client.create_bucket().bucket(&self.bucket);
        if let Some(region) = self.client.config().region()
            && region.as_ref() != "us-east-1"
        {
            request = request.create_bucket_configuration(
                aws_sdk_s3::types::CreateBucketConfiguration::builder()
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

    /// The object key of a storage key given to a [`FilesBackend`] method, checked to be
    /// within S3's [`MAX_OBJECT_KEY_LEN`] under the prefix (the key itself is valid by its
    /// type).
    fn checked_object_key(&self, key: &StorageKey) -> Result<String> {
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

    async fn put_object(&self, object_key: &str, data: Bytes, content_type: &str) -> Result<()> {
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(object_key)
            .content_type(content_type)
            .body(SdkByteStream::from(data))
            .send()
            .await
            .map_err(|e| sdk_error(BACKEND, e))?;
        Ok(())
    }

    async fn get_object(
        &self,
        key: &StorageKey,
    ) -> Result<Option<aws_sdk_s3::operation::get_object::GetObjectOutput>> {
        let object_key = self.checked_object_key(key)?;
        match self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(object_key)
            .send()
            .await
        {
            Ok(out) => Ok(Some(out)),
            Err(e) if e.as_service_error().is_some_and(|s| s.is_no_such_key()) => Ok(None),
            Err(e) => Err(sdk_error(BACKEND, e)),
        }
    }

    /// The multipart part of `upload_stream`: `buf` holds the bytes read so far.
    async fn upload_multipart(
        &self,
        object_key: &str,
        content_type: &str,
        mut buf: BytesMut,
        mut data: ByteStream,
    ) -> Result<u64> {
        let created = self
            .client
            .create_multipart_upload()
            .bucket(&self.bucket)
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
            client: self.client.clone(),
            bucket: self.bucket.clone(),
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
        self.client
            .complete_multipart_upload()
            .bucket(&self.bucket)
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
            .client
            .upload_part()
            .bucket(&self.bucket)
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
    fn disarm(&mut self) {
        self.upload_id = None;
    }

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

#[async_trait]
#[deny(clippy::missing_trait_methods)]
impl FilesBackend for S3Files {
    /// Signed URLs (presigned `GetObject`), bounded memory (about one part buffered), and
    /// at most [`MAX_PARTS`] parts of [`part_size`](S3Files::part_size) per file.
    fn capabilities(&self) -> FilesCapabilities {
        FilesCapabilities::full()
            .with_max_file_bytes(Some(self.part_size as u64 * MAX_PARTS as u64))
    }

    /// `HeadObject` first (S3's `DeleteObject` answers the same whether or not the key
    /// existed), then `DeleteObject`.
    async fn delete(&self, key: &StorageKey) -> Result<bool> {
        if self.head(key).await?.is_none() {
            return Ok(false);
        }
        self.client
            .delete_object()
            .bucket(&self.bucket)
            .key(self.checked_object_key(key)?)
            .send()
            .await
            .map_err(|e| sdk_error(BACKEND, e))?;
        Ok(true)
    }

    /// `HeadObject`: the size and the content type stored with the object.
    async fn head(&self, key: &StorageKey) -> Result<Option<ObjectMeta>> {
        let object_key = self.checked_object_key(key)?;
        let out = match self
            .client
            .head_object()
            .bucket(&self.bucket)
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
        Ok(Some(ObjectMeta { size, content_type }))
    }

    /// A presigned `GetObject` URL, valid for `expires_in` (at least 1 second, since
    /// SigV4 counts whole seconds, and at most [`MAX_PRESIGNED_EXPIRY`]: 7 days), whose
    /// response carries
    /// `Content-Disposition: attachment` with `download_filename` (see
    /// [`content_disposition`]). [`Error::NotFound`] when nothing is stored under `key`
    /// (checked with `HeadObject`).
    async fn signed_url(
        &self,
        key: &StorageKey,
        expires_in: Duration,
        download_filename: Option<&str>,
    ) -> Result<String> {
        let object_key = self.checked_object_key(key)?;
        if expires_in < Duration::from_secs(1) {
            return Err(Error::invalid_input(
                "expires_in",
                format!(
                    "{expires_in:?} is under 1 second; presigned URLs count whole seconds (X-Amz-Expires)"
                ),
            ));
        }
        if expires_in > MAX_PRESIGNED_EXPIRY {
            return Err(Error::invalid_input(
                "expires_in",
                format!(
                    "{} s is longer than S3's limit for presigned URLs, {} s (7 days)",
                    expires_in.as_secs(),
                    MAX_PRESIGNED_EXPIRY.as_secs()
                ),
            ));
        }
        if self.head(key).await?.is_none() {
            return Err(Error::NotFound {
                kind: "file",
                id: key.to_string(),
            });
        }
        let presigning = PresigningConfig::expires_in(expires_in)
            .map_err(|e| Error::invalid_input("expires_in", e.to_string()))?;
        let mut request = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(object_key);
        if let Some(name) = download_filename {
            request = request.response_content_disposition(content_disposition(name));
        }
        let presigned = request
            .presigned(presigning)
            .await
            .map_err(|e| sdk_error(BACKEND, e))?;
        Ok(presigned.uri().to_owned())
    }

    /// Streams of up to [`multipart_threshold`](S3Files::multipart_threshold) bytes go in
    /// one `PutObject`; larger ones in a multipart upload, holding about one part in
    /// memory, aborted on any failure.
    async fn upload_stream(
        &self,
        key: &StorageKey,
        mut data: ByteStream,
        content_type: &ContentType,
    ) -> Result<u64> {
        let object_key = self.checked_object_key(key)?;
        let content_type = content_type.as_str();
        let mut buf = BytesMut::new();
        while buf.len() <= self.multipart_threshold {
            match data.next().await {
                Some(Ok(chunk)) => buf.extend_from_slice(&chunk),
                Some(Err(source)) => return Err(Error::UploadStream { source }),
                None => {
                    let len = buf.len() as u64;
                    self.put_object(&object_key, buf.freeze(), content_type)
                        .await?;
                    return Ok(len);
                }
            }
        }
        self.upload_multipart(&object_key, content_type, buf, data)
            .await
    }

    /// The object's body as it arrives, chunk by chunk. A failure part-way arrives as an
    /// `io::Error` wrapping a [`chatvault_core::Error`].
    async fn download_stream(&self, key: &StorageKey) -> Result<Option<ByteStream>> {
        let Some(out) = self.get_object(key).await? else {
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

/// Where a client for the builder comes from.
#[derive(Clone, Debug)]
enum Source {
    Env,
    Sdk(Box<SdkConfig>),
    Client(Box<Client>),
}

/// Builds an [`S3Files`]; from [`S3Files::builder`].
#[derive(Clone, Debug)]
#[must_use = "call .build().await"]
pub struct S3FilesBuilder {
    bucket: String,
    source: Source,
    settings: ClientSettings,
    force_path_style: Option<bool>,
    checksums_when_required: bool,
    prefix: Option<String>,
    multipart_threshold: usize,
    part_size: usize,
}

impl S3FilesBuilder {
    /// Starts from a loaded SDK configuration (default: loaded from the environment at
    /// [`build`](Self::build)).
    pub fn sdk_config(mut self, sdk: &SdkConfig) -> Self {
        self.source = Source::Sdk(Box::new(sdk.clone()));
        self
    }

    /// Starts from a ready client's configuration; the settings below are applied on top.
    pub fn client(mut self, client: Client) -> Self {
        self.source = Source::Client(Box::new(client));
        self
    }

    /// Sends requests to this endpoint (LocalStack: `http://localhost:4566`). Turns on
    /// path-style addressing unless [`force_path_style`](Self::force_path_style) says
    /// otherwise.
    pub fn endpoint_url(mut self, url: impl Into<String>) -> Self {
        self.settings.endpoint_url = Some(url.into());
        self
    }

    /// Path-style addressing (`http://host/bucket/key`) instead of virtual-hosted
    /// (`http://bucket.host/key`). Default: on when an endpoint is configured (in code or
    /// by `AWS_ENDPOINT_URL_S3` / `AWS_ENDPOINT_URL`), else the SDK's default.
    pub fn force_path_style(mut self, on: bool) -> Self {
        self.force_path_style = Some(on);
        self
    }

    /// Timeouts of the SDK client, e.g.
    /// `TimeoutConfig::builder().connect_timeout(Duration::from_secs(1)).operation_timeout(Duration::from_secs(30)).build()`.
    pub fn timeout_config(mut self, timeouts: TimeoutConfig) -> Self {
        self.settings.timeout_config = Some(timeouts);
        self
    }

    /// Retries of the SDK client, e.g. `RetryConfig::standard().with_max_attempts(2)`.
    pub fn retry_config(mut self, retries: RetryConfig) -> Self {
        self.settings.retry_config = Some(retries);
        self
    }

    /// Sends and checks checksums only where S3 requires them
    /// (`RequestChecksumCalculation::WhenRequired` and
    /// `ResponseChecksumValidation::WhenRequired`).
    ///
    /// Since aws-sdk-s3 1.69 uploads carry CRC32 checksums by default (streamed bodies as
    /// `aws-chunked` trailers). AWS S3 and current LocalStack accept them; several
    /// S3-compatible stores (older MinIO, Cloudflare R2, Ceph, older LocalStack) reject
    /// them. Turn this on for those, or set
    /// `AWS_REQUEST_CHECKSUM_CALCULATION=WHEN_REQUIRED` in the environment.
    pub fn checksums_when_required(mut self, on: bool) -> Self {
        self.checksums_when_required = on;
        self
    }

    /// Stores every key under this prefix (e.g. `"tenant-a"` stores `u/c/f/name` as
    /// `tenant-a/u/c/f/name`). It must itself be a valid storage key
    /// (a valid [`StorageKey`]) of at most [`MAX_PREFIX_LEN`] bytes, so that every key
    /// [`keys::storage_key`] makes fits S3's 1,024 bytes under it; a trailing `/` is
    /// optional.
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = Some(prefix.into());
        self
    }

    /// Streams larger than this go in a multipart upload (default
    /// [`DEFAULT_MULTIPART_THRESHOLD`], at most [`MAX_PART_SIZE`]). About this many bytes
    /// are buffered before the choice is made, so memory per upload is about
    /// `max(multipart_threshold, part_size)`.
    pub fn multipart_threshold(mut self, bytes: usize) -> Self {
        self.multipart_threshold = bytes;
        self
    }

    /// The part size of multipart uploads, [`MIN_PART_SIZE`]..=[`MAX_PART_SIZE`] (default
    /// [`DEFAULT_PART_SIZE`]). Memory per upload is about one part; the largest stream
    /// one upload takes is `part_size * 10,000` (78 GiB at 8 MiB).
    pub fn part_size(mut self, bytes: usize) -> Self {
        self.part_size = bytes;
        self
    }

    /// Builds the backend. Fails with [`Error::InvalidInput`] for a bad part size,
    /// threshold or prefix (one longer than [`MAX_PREFIX_LEN`] included), or an empty
    /// bucket name.
    pub async fn build(self) -> Result<S3Files> {
        if self.bucket.is_empty() {
            return Err(Error::invalid_input("bucket", "must not be empty"));
        }
        if !(MIN_PART_SIZE..=MAX_PART_SIZE).contains(&self.part_size) {
            return Err(Error::invalid_input(
                "part_size",
                format!(
                    "must be {MIN_PART_SIZE}..={MAX_PART_SIZE} bytes (S3's limits), got {}",
                    self.part_size
                ),
            ));
        }
        if self.multipart_threshold > MAX_PART_SIZE {
            return Err(Error::invalid_input(
                "multipart_threshold",
                format!(
                    "must be at most {MAX_PART_SIZE} bytes (S3's limit for one PutObject), got {}",
                    self.multipart_threshold
                ),
            ));
        }
        let prefix = match self.prefix.as_deref().map(|p| p.trim_end_matches('/')) {
            None | Some("") => String::new(),
            Some(p) => {
                StorageKey::parse(p).map_err(|_| {
                    Error::invalid_input(
                        "prefix",
                        format!("{p:?} is not a relative path of plain segments"),
                    )
                })?;
                if p.len() > MAX_PREFIX_LEN {
                    return Err(Error::invalid_input(
                        "prefix",
                        format!(
                            "is {} bytes long; the limit is {MAX_PREFIX_LEN}, so that every storage key fits S3's {MAX_OBJECT_KEY_LEN}-byte object keys under it",
                            p.len()
                        ),
                    ));
                }
                format!("{p}/")
            }
        };
        let (mut config, sdk) = match self.source {
            Source::Env => {
                let sdk = sdk::load_sdk_config().await;
                (aws_sdk_s3::config::Builder::from(&sdk), Some(sdk))
            }
            Source::Sdk(sdk) => (aws_sdk_s3::config::Builder::from(&*sdk), Some(*sdk)),
            Source::Client(client) => (client.config().to_builder(), None),
        };
        let endpoint_configured = self.settings.endpoint_url.is_some()
            || (sdk.is_some()
                && sdk::endpoint_override_configured(sdk.as_ref(), "AWS_ENDPOINT_URL_S3"));
        if let Some(url) = self.settings.endpoint_url {
            config = config.endpoint_url(url);
        }
        match self.force_path_style {
            Some(on) => config = config.force_path_style(on),
            None if endpoint_configured => config = config.force_path_style(true),
            None => {}
        }
        if let Some(timeouts) = self.settings.timeout_config {
            config = config.timeout_config(timeouts);
        }
        if let Some(retries) = self.settings.retry_config {
            config = config.retry_config(retries);
        }
        if self.checksums_when_required {
            config = config
                .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
                .response_checksum_validation(ResponseChecksumValidation::WhenRequired);
        }
        Ok(S3Files {
            client: Client::from_conf(config.build()),
            bucket: self.bucket,
            prefix,
            multipart_threshold: self.multipart_threshold,
            part_size: self.part_size,
        })
    }
}

/// The `Content-Disposition` value that makes a browser save a download as `filename`
/// (RFC 6266, with the RFC 5987 `filename*` form for non-ASCII names): core's
/// [`keys::content_disposition`](chatvault_core::keys::content_disposition), the one rule
/// every backend and the HTTP API use, re-exported here for 0.1 callers.
///
/// ```
/// use chatvault_aws::content_disposition;
///
/// assert_eq!(
///     content_disposition("résumé 2026.pdf"),
///     r#"attachment; filename="r_sum_ 2026.pdf"; filename*=UTF-8''r%C3%A9sum%C3%A9%202026.pdf"#
/// );
/// ```
pub use chatvault_core::keys::content_disposition;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_disposition_ascii() {
        assert_eq!(
            content_disposition("report.pdf"),
            "attachment; filename=\"report.pdf\"; filename*=UTF-8''report.pdf"
        );
    }

    #[test]
    fn content_disposition_non_ascii_and_specials() {
        assert_eq!(
            content_disposition("résumé 2026.pdf"),
            "attachment; filename=\"r_sum_ 2026.pdf\"; filename*=UTF-8''r%C3%A9sum%C3%A9%202026.pdf"
        );
        assert_eq!(
            content_disposition("日本.txt"),
            "attachment; filename=\"__.txt\"; filename*=UTF-8''%E6%97%A5%E6%9C%AC.txt"
        );
        // Quotes, backslashes, percent signs, slashes and control characters never reach
        // the quoted fallback; the header stays one line.
        let cd = content_disposition("a\"b\\c%d/e\r\nX-Evil: 1\t.txt");
        assert_eq!(
            cd,
            "attachment; filename=\"a_b_c_d_e__X-Evil: 1_.txt\"; \
             filename*=UTF-8''a%22b%5Cc%25d%2Fe%0D%0AX-Evil%3A%201%09.txt"
        );
        assert!(!cd.contains(['\r', '\n', '\t']));
        // RFC 5987 attr-chars stay as they are.
        assert!(content_disposition("a!#$&+-.^_`|~z").ends_with("UTF-8''a!#$&+-.^_`|~z"));
        // Emoji: 4 bytes, one fallback character.
        assert_eq!(
            content_disposition("👋.png"),
            "attachment; filename=\"_.png\"; filename*=UTF-8''%F0%9F%91%8B.png"
        );
    }

    #[test]
    fn content_disposition_output_is_printable_ascii() {
        for name in [
            "x",
            "ünïcödé",
            "a\u{0}b",
            "tab\there",
            "\u{7f}del",
            "🙂🙂🙂",
        ] {
            let cd = content_disposition(name);
            assert!(
                cd.bytes().all(|b| (0x20..0x7f).contains(&b)),
                "{name:?} -> {cd:?}"
            );
        }
    }
}
