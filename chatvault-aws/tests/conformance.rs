//! The core conformance suites, every check of them, against `DynamoMessages` and
//! `S3Files` on the emulators.

mod common;

use std::sync::Arc;

use chatvault_core::ChatVault;
use chatvault_core::conformance::{
    self, FilesCapabilities, MessagesCapabilities, VaultCapabilities,
};

#[cfg_attr(
    not(chatvault_aws_emulators),
    ignore = "needs the AWS emulators: AWS_ENDPOINT_URL_DYNAMODB and AWS_ENDPOINT_URL_S3 (or AWS_ENDPOINT_URL) were not set when the tests were built; run ./scripts/test.sh, or scripts/emulators.sh start && eval \"$(scripts/emulators.sh env)\" first"
)]
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn dynamo_messages_conformance() {
    let messages = common::dynamo().await;
    conformance::run_messages_suite(Arc::new(messages.clone()), MessagesCapabilities::full()).await;
    common::drop_table(&messages).await;
}

#[cfg_attr(
    not(chatvault_aws_emulators),
    ignore = "needs the AWS emulators: AWS_ENDPOINT_URL_DYNAMODB and AWS_ENDPOINT_URL_S3 (or AWS_ENDPOINT_URL) were not set when the tests were built; run ./scripts/test.sh, or scripts/emulators.sh start && eval \"$(scripts/emulators.sh env)\" first"
)]
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn s3_files_conformance() {
    let files = common::s3().await;
    conformance::run_files_suite(Arc::new(files.clone()), FilesCapabilities::full()).await;
    common::drop_bucket(&files).await;
}

#[cfg_attr(
    not(chatvault_aws_emulators),
    ignore = "needs the AWS emulators: AWS_ENDPOINT_URL_DYNAMODB and AWS_ENDPOINT_URL_S3 (or AWS_ENDPOINT_URL) were not set when the tests were built; run ./scripts/test.sh, or scripts/emulators.sh start && eval \"$(scripts/emulators.sh env)\" first"
)]
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn vault_conformance_over_dynamo_and_s3() {
    let messages = common::dynamo().await;
    let files = common::s3().await;
    let vault = ChatVault::new(messages.clone(), files.clone());
    conformance::run_vault_suite(vault, VaultCapabilities::full()).await;
    common::drop_table(&messages).await;
    common::drop_bucket(&files).await;
}
