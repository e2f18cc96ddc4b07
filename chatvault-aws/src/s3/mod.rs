//! [`S3Files`]: attachments in an S3 bucket (or any S3-compatible store).

mod backend;
mod bucket;
pub(crate) mod builder;
mod upload;
mod urls;

use std::fmt;
use std::time::Duration;

use aws_config::SdkConfig;
use aws_sdk_s3::Client;
#[cfg(doc)]
use chatvault_core::backend::Error;
use chatvault_core::backend::{Result, StorageKey};
use chatvault_core::keys;

use crate::sdk;
use bucket::Bucket;
use builder::S3FilesBuilder;
use upload::Uploader;

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
/// The longest key prefix [`S3FilesBuilder::prefix`](crate::S3FilesBuilder::prefix) takes, in bytes, without its trailing
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
    /// The client, the bucket and the key prefix.
    bucket: Bucket,
    /// `upload_stream`'s work, on the same bucket.
    uploader: Uploader,
}

impl fmt::Debug for S3Files {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("S3Files")
            .field("bucket", &self.bucket.name())
            .field("prefix", &self.bucket.prefix())
            .field("multipart_threshold", &self.uploader.multipart_threshold())
            .field("part_size", &self.uploader.part_size())
            .finish_non_exhaustive()
    }
}

impl S3Files {
    /// A builder for every other setting: endpoint, path style, timeouts, retries,
    /// checksums, key prefix, multipart sizes.
    pub fn builder(bucket: impl Into<String>) -> S3FilesBuilder {
        S3FilesBuilder::new(bucket.into())
    }

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
        let bucket = Bucket::new(client, bucket.into(), String::new());
        Self::assemble(bucket, DEFAULT_MULTIPART_THRESHOLD, DEFAULT_PART_SIZE)
    }

    /// The backend on `bucket`, uploading in parts of `part_size` bytes above
    /// `multipart_threshold` (both already checked).
    fn assemble(bucket: Bucket, multipart_threshold: usize, part_size: usize) -> Self {
        S3Files {
            uploader: Uploader::new(bucket.clone(), multipart_threshold, part_size),
            bucket,
        }
    }

    /// The SDK client.
    pub fn client(&self) -> &Client {
        self.bucket.client()
    }

    /// The bucket.
    pub fn bucket(&self) -> &str {
        self.bucket.name()
    }

    /// The key prefix (empty, or ending with `/`).
    pub fn prefix(&self) -> &str {
        self.bucket.prefix()
    }

    /// Streams larger than this many bytes are uploaded in parts.
    pub fn multipart_threshold(&self) -> usize {
        self.uploader.multipart_threshold()
    }

    /// The size of each part of a multipart upload (the last may be smaller).
    pub fn part_size(&self) -> usize {
        self.uploader.part_size()
    }

    /// The object key of a storage key: the prefix, then the key.
    pub fn object_key(&self, key: &StorageKey) -> String {
        self.bucket.object_key(key)
    }

    /// Creates the bucket unless it exists already (for tests, examples and first runs).
    ///
    /// Outside `us-east-1` the bucket is created in the client's region.
    pub async fn create_bucket_if_missing(&self) -> Result<()> {
        self.bucket.create_if_missing().await
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
