//! [`KmsKeyProvider`]: data keys wrapped by an AWS KMS key (feature `kms`).

use std::fmt;

use async_trait::async_trait;
use aws_sdk_kms::Client;
use aws_sdk_kms::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_kms::primitives::Blob;
use chatvault_core::{Error, Result};

use crate::cipher::DataKey;
use crate::provider::{KeyProvider, WrapContext};

/// A key provider that wraps data keys with an AWS KMS key (`Encrypt` / `Decrypt`), the
/// [`WrapContext`] as the KMS encryption context (`chatvault-owner`,
/// `chatvault-key-version`), so that CloudTrail records which owner's key was unwrapped
/// and a key policy can condition on it.
///
/// The keyring calls KMS once per data key created and once per owner and cache period
/// read (see [`Keyring::with_cache_ttl`](crate::Keyring::with_cache_ttl)), never per
/// message. Errors: an access refusal, a disabled key or a key pending deletion is
/// [`Error::PermissionDenied`]; a wrapped key KMS does not accept is [`Error::Corrupt`];
/// throttling, timeouts and KMS's internal errors are temporary [`Error::Backend`] errors.
///
/// ```no_run
/// # async fn demo(store: std::sync::Arc<dyn chatvault_core::MessagesBackend>) -> chatvault_core::Result<()> {
/// use chatvault_crypt::{Keyring, KmsKeyProvider};
///
/// let provider = KmsKeyProvider::from_env("alias/chatvault").await;
/// let keyring = Keyring::new(store, provider);
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct KmsKeyProvider {
    client: Client,
    key_id: String,
}

impl KmsKeyProvider {
    /// A provider of the KMS key `key_id` (an id, ARN, alias name or alias ARN) through
    /// `client`.
    pub fn new(client: Client, key_id: impl Into<String>) -> Self {
        KmsKeyProvider {
            client,
            key_id: key_id.into(),
        }
    }

    /// A provider of `key_id` with a client configured from the environment (region,
    /// credentials, `AWS_ENDPOINT_URL_KMS`), as the AWS SDK does by default.
    pub async fn from_env(key_id: impl Into<String>) -> Self {
        let config = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
        KmsKeyProvider::new(Client::new(&config), key_id)
    }
}

impl fmt::Debug for KmsKeyProvider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KmsKeyProvider")
            .field("key_id", &self.key_id)
            .finish_non_exhaustive()
    }
}

#[async_trait]
impl KeyProvider for KmsKeyProvider {
    fn id(&self) -> String {
        format!("aws-kms:{}", self.key_id)
    }

    async fn wrap(&self, key: &DataKey, context: &WrapContext<'_>) -> Result<Vec<u8>> {
        let out = self
            .client
            .encrypt()
            .key_id(&self.key_id)
            .plaintext(Blob::new(key.expose().to_vec()))
            .encryption_context("chatvault-owner", context.owner)
            .encryption_context("chatvault-key-version", context.version.to_string())
            .send()
            .await
            .map_err(|e| kms_error("Encrypt", e))?;
        out.ciphertext_blob()
            .map(|b| b.as_ref().to_vec())
            .ok_or_else(|| Error::backend("aws-kms", "Encrypt returned no ciphertext"))
    }

    async fn unwrap(&self, wrapped: &[u8], context: &WrapContext<'_>) -> Result<DataKey> {
        let out = self
            .client
            .decrypt()
            .key_id(&self.key_id)
            .ciphertext_blob(Blob::new(wrapped.to_vec()))
            .encryption_context("chatvault-owner", context.owner)
            .encryption_context("chatvault-key-version", context.version.to_string())
            .send()
            .await
            .map_err(|e| kms_error("Decrypt", e))?;
        let plain = out
            .plaintext()
            .ok_or_else(|| Error::backend("aws-kms", "Decrypt returned no plaintext"))?;
        DataKey::from_slice(plain.as_ref())
    }
}

/// ChatVault's error for a failed KMS call.
fn kms_error<E, R>(operation: &str, err: SdkError<E, R>) -> Error
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: fmt::Debug + Send + Sync + 'static,
{
    let code = err.code().unwrap_or_default().to_owned();
    match code.as_str() {
        "AccessDeniedException"
        | "DisabledException"
        | "KMSInvalidStateException"
        | "NotFoundException"
        | "IncorrectKeyException"
        | "InvalidKeyUsageException" => Error::PermissionDenied {
            backend: "aws-kms",
            message: format!("{operation} refused: {code}"),
            source: Some(Box::new(err)),
        },
        "InvalidCiphertextException" => Error::corrupt(
            "chatvault-crypt",
            "a wrapped data key",
            format!("KMS refused to unwrap it ({code})"),
        ),
        "ThrottlingException"
        | "DependencyTimeoutException"
        | "KMSInternalException"
        | "KeyUnavailableException" => Error::temporary("aws-kms", err),
        _ if matches!(
            err,
            SdkError::TimeoutError(_) | SdkError::DispatchFailure(_)
        ) =>
        {
            Error::temporary("aws-kms", err)
        }
        _ => Error::backend("aws-kms", err),
    }
}
