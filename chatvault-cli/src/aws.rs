//! `dynamodb://` stores.

use chatvault_archive::Store;
use chatvault_core::Result;

/// Opens `DynamoMessages` on `table` and `S3Files` on `bucket` with the standard AWS
/// environment (credentials, `AWS_ENDPOINT_URL*`), in `region` if given; with `create`,
/// creates the table and bucket if missing.
#[cfg(feature = "aws")]
pub(crate) async fn open(
    table: &str,
    bucket: &str,
    region: Option<&str>,
    create: bool,
) -> Result<Store> {
    use chatvault_aws::reexports::aws_config;
    use chatvault_aws::{DynamoMessages, S3Files};

    let mut loader = aws_config::from_env();
    if let Some(region) = region {
        loader = loader.region(aws_config::Region::new(region.to_owned()));
    }
    let sdk = loader.load().await;
    let messages = DynamoMessages::builder(table)
        .sdk_config(&sdk)
        .build()
        .await?;
    let files = S3Files::builder(bucket).sdk_config(&sdk).build().await?;
    if create {
        messages.create_table().await?;
        files.create_bucket_if_missing().await?;
    }
    Ok(Store {
        messages: std::sync::Arc::new(messages),
        files: std::sync::Arc::new(files),
    })
}

/// Without the `aws` feature: a clear refusal.
#[cfg(not(feature = "aws"))]
pub(crate) async fn open(_: &str, _: &str, _: Option<&str>, _: bool) -> Result<Store> {
    Err(crate::error::not_built("aws"))
}
