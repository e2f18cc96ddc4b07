#![doc = include_str!("../README.md")]
//!
//! With a shared [`aws_config::SdkConfig`], explicit endpoints, timeouts and retries:
//!
//! ```no_run
//! use std::time::Duration;
//!
//! use aws_config::retry::RetryConfig;
//! use aws_config::timeout::TimeoutConfig;
//! use chatvault_aws::{DynamoMessages, S3Files};
//!
//! # async fn example() -> chatvault_core::Result<()> {
//! let sdk = aws_config::load_from_env().await;
//! let timeouts = TimeoutConfig::builder()
//!     .connect_timeout(Duration::from_secs(2))
//!     .operation_timeout(Duration::from_secs(30))
//!     .build();
//! let messages = DynamoMessages::builder("chatvault")
//!     .sdk_config(&sdk)
//!     .endpoint_url("http://localhost:8000")
//!     .timeout_config(timeouts.clone())
//!     .retry_config(RetryConfig::standard().with_max_attempts(3))
//!     .build()
//!     .await?;
//! let files = S3Files::builder("my-chatvault-files")
//!     .sdk_config(&sdk)
//!     .endpoint_url("http://localhost:4566") // path-style addressing follows
//!     .timeout_config(timeouts)
//!     .checksums_when_required(true) // for MinIO, R2, Ceph, older LocalStack
//!     .build()
//!     .await?;
//! # let _ = (messages, files); Ok(()) }
//! ```
//!
#![doc = include_str!("../docs/table.md")]
#![doc = include_str!("../docs/costs.md")]
#![doc = include_str!("../docs/s3.md")]
#![doc = include_str!("../docs/testing.md")]
#![doc = include_str!("../docs/build-weight.md")]
#![forbid(unsafe_code)]

mod dynamo;
mod s3;
mod sdk;

pub use dynamo::builder::DynamoMessagesBuilder;
pub use dynamo::{
    DEFAULT_MAX_WRITE_ATTEMPTS, DEFAULT_SEEN_CACHE_BYTES, DynamoMessages, MAX_APPEND_MESSAGES,
    MAX_MESSAGE_BYTES,
};
pub use s3::builder::S3FilesBuilder;
pub use s3::{
    DEFAULT_MULTIPART_THRESHOLD, DEFAULT_PART_SIZE, MAX_OBJECT_KEY_LEN, MAX_PART_SIZE, MAX_PARTS,
    MAX_PREFIX_LEN, MAX_PRESIGNED_EXPIRY, MIN_PART_SIZE, S3Files, content_disposition,
};

/// The AWS SDK crates this one is built on, for building clients and configurations of
/// the exact versions it takes.
pub mod reexports {
    pub use aws_config;
    pub use aws_sdk_dynamodb;
    pub use aws_sdk_s3;
}
