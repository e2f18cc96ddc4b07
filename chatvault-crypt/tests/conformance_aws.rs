//! The core's whole conformance suite through the encrypting wrappers over `DynamoMessages`
//! and `S3Files` on the local emulators (never real AWS), the key store inside the data
//! table.
//!
//! Built without the emulators' endpoints (see `build.rs`), the suite is not compiled and
//! `conformance_over_dynamodb_needs_the_aws_emulators` stands in for it, ignored with the
//! reason. `./scripts/test.sh` starts the emulators and sets `CHATVAULT_REQUIRE_AWS=1`.
#![allow(clippy::unwrap_used)] // tests may unwrap

#[cfg(chatvault_crypt_aws)]
mod suite {
    use std::sync::Arc;

    use chatvault_aws::reexports::aws_config::{self, BehaviorVersion, Region, SdkConfig};
    use chatvault_aws::{DynamoMessages, S3Files};
    use chatvault_core::ChatVault;
    use chatvault_crypt::{EncryptedFiles, EncryptedMessages, Keyring, StaticKeyProvider};
    use chatvault_memory::MemoryMessages;

    fn require(var: &str) {
        let set = |v: &str| std::env::var(v).is_ok_and(|s| !s.trim().is_empty());
        assert!(
            set(var) || set("AWS_ENDPOINT_URL"),
            "CHATVAULT_REQUIRE_AWS=1 or the build asked for the AWS emulators, but neither {var} \
             nor AWS_ENDPOINT_URL is set: scripts/emulators.sh start && eval \"$(scripts/emulators.sh env)\""
        );
    }

    async fn sdk() -> SdkConfig {
        let mut loader = aws_config::defaults(BehaviorVersion::latest());
        if std::env::var("AWS_REGION").is_err() {
            loader = loader.region(Region::new("us-east-1"));
        }
        if std::env::var("AWS_ACCESS_KEY_ID").is_err() {
            use chatvault_aws::reexports::aws_sdk_dynamodb::config::Credentials;
            let creds = Credentials::new("test", "test", None, None, "tests");
            loader = loader.credentials_provider(creds);
        }
        loader.load().await
    }

    fn unique(what: &str) -> String {
        format!("cv-crypt-{what}-{}", chatvault_core::ConversationId::new())
    }

    /// A fresh table, and a keyring whose key store is the same table.
    async fn dynamo() -> (DynamoMessages, Keyring) {
        require("AWS_ENDPOINT_URL_DYNAMODB");
        let messages = DynamoMessages::from_sdk_config(&sdk().await, unique("table"));
        messages.create_table().await.unwrap();
        let keys = Keyring::new(Arc::new(messages.clone()), StaticKeyProvider::new([5; 32]));
        (messages, keys)
    }

    async fn s3(keys: Keyring) -> EncryptedFiles<S3Files> {
        require("AWS_ENDPOINT_URL_S3");
        let files = S3Files::from_sdk_config(&sdk().await, unique("bucket"));
        files.create_bucket_if_missing().await.unwrap();
        EncryptedFiles::new(files, keys)
    }

    chatvault_core::messages_backend_tests!(async {
        let (messages, keys) = dynamo().await;
        EncryptedMessages::new(messages, keys)
    });
    chatvault_core::files_backend_tests!(async {
        s3(Keyring::new(
            Arc::new(MemoryMessages::new()),
            StaticKeyProvider::new([5; 32]),
        ))
        .await
    });
    chatvault_core::vault_tests!(async {
        let (messages, keys) = dynamo().await;
        ChatVault::new(
            EncryptedMessages::new(messages, keys.clone()),
            s3(keys).await,
        )
    });
}

#[cfg(not(chatvault_crypt_aws))]
#[test]
#[ignore = "needs the AWS emulators: AWS_ENDPOINT_URL_DYNAMODB and AWS_ENDPOINT_URL_S3 (or AWS_ENDPOINT_URL) were not set when the tests were built; run ./scripts/test.sh, or scripts/emulators.sh start && eval \"$(scripts/emulators.sh env)\" first"]
fn conformance_over_dynamodb_needs_the_aws_emulators() {
    panic!("built without the AWS emulators' endpoints: rebuild with them set");
}
