//! `signed_url`: presigned `GetObject` URLs that name the download's file name.

use std::time::Duration;

use aws_sdk_s3::presigning::PresigningConfig;
use chatvault_core::backend::{Error, Result, StorageKey};

use super::bucket::Bucket;
use super::{BACKEND, MAX_PRESIGNED_EXPIRY, content_disposition};
use crate::sdk::sdk_error;

/// `signed_url`: a presigned `GetObject` URL of `key` in `bucket`, valid for
/// `expires_in`, checked to be within SigV4's 1 second to 7 days, for a key that is
/// stored.
pub(super) async fn presign(
    bucket: &Bucket,
    key: &StorageKey,
    expires_in: Duration,
    download_filename: Option<&str>,
) -> Result<String> {
    let object_key = bucket.checked_object_key(key)?;
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
    if bucket.head(key).await?.is_none() {
        return Err(Error::NotFound {
            kind: "file",
            id: key.to_string(),
        });
    }
    let presigning = PresigningConfig::expires_in(expires_in)
        .map_err(|e| Error::invalid_input("expires_in", e.to_string()))?;
    let mut request = bucket
        .client()
        .get_object()
        .bucket(bucket.name())
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
