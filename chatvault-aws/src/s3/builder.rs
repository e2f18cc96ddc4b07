//! [`S3FilesBuilder`]: every setting of an [`S3Files`].

use aws_config::SdkConfig;
use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_sdk_s3::Client;
use aws_sdk_s3::config::{RequestChecksumCalculation, ResponseChecksumValidation};
use chatvault_core::backend::{Error, Result, StorageKey};
#[cfg(doc)]
use chatvault_core::keys;

use super::bucket::Bucket;
use super::{
    DEFAULT_MULTIPART_THRESHOLD, DEFAULT_PART_SIZE, MAX_OBJECT_KEY_LEN, MAX_PART_SIZE,
    MAX_PREFIX_LEN, MIN_PART_SIZE, S3Files,
};
use crate::sdk::{self, ClientSettings, Source};

/// Builds an [`S3Files`]; from [`S3Files::builder`].
#[derive(Clone, Debug)]
#[must_use = "call .build().await"]
pub struct S3FilesBuilder {
    bucket: String,
    settings: ClientSettings<Client>,
    force_path_style: Option<bool>,
    checksums_when_required: bool,
    prefix: Option<String>,
    multipart_threshold: usize,
    part_size: usize,
}

impl S3FilesBuilder {
    /// Every setting at its default, for the bucket `bucket`.
    pub(super) fn new(bucket: String) -> Self {
        S3FilesBuilder {
            bucket,
            settings: ClientSettings::default(),
            force_path_style: None,
            checksums_when_required: false,
            prefix: None,
            multipart_threshold: DEFAULT_MULTIPART_THRESHOLD,
            part_size: DEFAULT_PART_SIZE,
        }
    }

    /// Starts from a loaded SDK configuration (default: loaded from the environment at
    /// [`build`](Self::build)).
    pub fn sdk_config(mut self, sdk: &SdkConfig) -> Self {
        self.settings.source = Source::Sdk(Box::new(sdk.clone()));
        self
    }

    /// Starts from a ready client's configuration; the settings below are applied on top.
    pub fn client(mut self, client: Client) -> Self {
        self.settings.source = Source::Client(Box::new(client));
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
        let endpoint_set = self.settings.endpoint_url.is_some();
        let (mut config, sdk) = self.settings.config::<aws_sdk_s3::config::Builder>().await;
        let endpoint_configured = endpoint_set
            || (sdk.is_some()
                && sdk::endpoint_override_configured(sdk.as_ref(), "AWS_ENDPOINT_URL_S3"));
        match self.force_path_style {
            Some(on) => config = config.force_path_style(on),
            None if endpoint_configured => config = config.force_path_style(true),
            None => {}
        }
        if self.checksums_when_required {
            config = config
                .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
                .response_checksum_validation(ResponseChecksumValidation::WhenRequired);
        }
        let bucket = Bucket::new(Client::from_conf(config.build()), self.bucket, prefix);
        Ok(S3Files::assemble(
            bucket,
            self.multipart_threshold,
            self.part_size,
        ))
    }
}
