//! The core conformance suite, every check of it, against `DynamoMessages` and `S3Files`
//! on the emulators.
//!
//! Without the emulators' endpoints (see the crate docs: the build script's
//! `chatvault_aws_emulators` cfg) the suite is not compiled, and
//! `conformance_suite_needs_the_aws_emulators` stands in for it, listed as ignored with the
//! reason (run, it fails saying what is missing).

mod common;

#[cfg(chatvault_aws_emulators)]
mod suite {
    use super::common;
    use chatvault_core::ChatVault;

    chatvault_core::messages_backend_tests!(async { common::dynamo().await });
    chatvault_core::files_backend_tests!(async { common::s3().await });
    chatvault_core::vault_tests!(async {
        ChatVault::new(common::dynamo().await, common::s3().await)
    });
}

#[cfg(not(chatvault_aws_emulators))]
#[test]
#[ignore = "needs the AWS emulators: AWS_ENDPOINT_URL_DYNAMODB and AWS_ENDPOINT_URL_S3 (or AWS_ENDPOINT_URL) were not set when the tests were built; the conformance suite's checks are not compiled; run ./scripts/test.sh, or scripts/emulators.sh start && eval \"$(scripts/emulators.sh env)\" first"]
fn conformance_suite_needs_the_aws_emulators() {
    common::require_endpoint("AWS_ENDPOINT_URL_DYNAMODB");
    common::require_endpoint("AWS_ENDPOINT_URL_S3");
    panic!("the endpoints are set now, but the tests were built without them: rebuild");
}
