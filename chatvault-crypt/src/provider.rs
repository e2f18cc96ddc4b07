//! Key providers: what wraps (encrypts) and unwraps the data keys, so that the key store
//! never holds a data key in clear.

use std::fmt;

use async_trait::async_trait;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use chatvault_core::{Error, Result};
use zeroize::Zeroizing;

use crate::cipher::{DataKey, hmac, unwrap_with, wrap_with};
use crate::format::hex;

/// Which data key a wrapping is for: bound to the wrapped bytes (as associated data, or as
/// a KMS encryption context), so that a wrapped key copied to another owner or version
/// does not unwrap.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WrapContext<'a> {
    /// The owner, as the first segment of an attachment's storage key spells it (`_` for
    /// the vault-wide key of conversations without an owner; `~names` for the key that
    /// seals file names in storage keys).
    pub owner: &'a str,
    /// The data key's version (1, 2, ...).
    pub version: u32,
}

impl WrapContext<'_> {
    /// The context as bytes: `owner`, NUL, the version in decimal.
    pub fn to_bytes(&self) -> Vec<u8> {
        format!("{}\0{}", self.owner, self.version).into_bytes()
    }
}

/// Wraps and unwraps data keys with a key-encryption key the provider holds (in memory, in
/// AWS KMS, in an HSM).
///
/// The [`Keyring`](crate::Keyring) calls it when it creates a data key (wrap) and when it
/// first needs one after a start or a cache expiry (unwrap); it never stores a data key in
/// clear. Implementations are async and may call a remote service. Errors are
/// ChatVault's: [`Error::PermissionDenied`] when the service refuses,
/// [`Error::Corrupt`] when the wrapped bytes do not unwrap.
#[async_trait]
pub trait KeyProvider: Send + Sync + fmt::Debug + 'static {
    /// A stable name of the key-encryption key (`static:…`, `aws-kms:…`), stored with every
    /// key it wraps, so that the keyring can tell which provider unwraps a stored key
    /// (after a change of provider, see [`Keyring::rewrap`](crate::Keyring::rewrap)).
    fn id(&self) -> String;

    /// Wraps `key` for `context`.
    async fn wrap(&self, key: &DataKey, context: &WrapContext<'_>) -> Result<Vec<u8>>;

    /// Unwraps what [`wrap`](Self::wrap) gave for the same `context`.
    async fn unwrap(&self, wrapped: &[u8], context: &WrapContext<'_>) -> Result<DataKey>;
}

/// A key provider holding a 256-bit key-encryption key in memory: data keys are wrapped
/// with XChaCha20-Poly1305, the [`WrapContext`] as associated data.
///
/// For tests and small deployments: the key comes from code or an environment variable
/// ([`from_env`](Self::from_env)), so whoever reads the process environment or the
/// deployment's secrets can unwrap every data key. Its [`id`](KeyProvider::id) is a
/// fingerprint of the key (never the key).
///
/// ```
/// use chatvault_crypt::StaticKeyProvider;
///
/// let provider = StaticKeyProvider::new([7u8; 32]);
/// // 64 hex digits or standard base64 of 32 bytes:
/// let same = StaticKeyProvider::parse(&"07".repeat(32))?;
/// # use chatvault_crypt::KeyProvider;
/// assert_eq!(provider.id(), same.id());
/// # Ok::<(), chatvault_core::Error>(())
/// ```
pub struct StaticKeyProvider {
    kek: Zeroizing<[u8; 32]>,
    id: String,
}

impl StaticKeyProvider {
    /// The environment variable [`from_env`](Self::from_env) reads by default.
    pub const ENV: &'static str = "CHATVAULT_MASTER_KEY";

    /// A provider of this key-encryption key.
    pub fn new(kek: [u8; 32]) -> Self {
        let fingerprint = hmac(&kek, &[b"chatvault-crypt static key id"]);
        StaticKeyProvider {
            kek: Zeroizing::new(kek),
            id: format!("static:{}", hex(&fingerprint[..8])),
        }
    }

    /// A provider of the key `text` spells: 64 hex digits, or standard base64 of 32 bytes.
    /// [`Error::InvalidInput`] otherwise (the message never repeats the text).
    pub fn parse(text: &str) -> Result<Self> {
        let text = text.trim();
        let bytes = Zeroizing::new(if text.len() == 64 {
            parse_hex(text).ok_or_else(|| bad_master_key("is not 64 hex digits"))?
        } else {
            STANDARD
                .decode(text)
                .map_err(|_| bad_master_key("is neither 64 hex digits nor base64"))?
        });
        let kek: [u8; 32] = bytes
            .as_slice()
            .try_into()
            .map_err(|_| bad_master_key("must hold 32 bytes"))?;
        Ok(StaticKeyProvider::new(kek))
    }

    /// A provider of the key in the environment variable `var` (for example
    /// [`StaticKeyProvider::ENV`]); [`Error::InvalidInput`] when it is unset or malformed.
    pub fn from_env(var: &str) -> Result<Self> {
        let text = Zeroizing::new(std::env::var(var).map_err(|_| {
            Error::invalid_input(
                "master key",
                format!("the environment variable {var} is not set"),
            )
        })?);
        StaticKeyProvider::parse(&text)
    }
}

fn parse_hex(text: &str) -> Option<Vec<u8>> {
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

fn bad_master_key(reason: &str) -> Error {
    Error::invalid_input("master key", reason.to_owned())
}

impl fmt::Debug for StaticKeyProvider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StaticKeyProvider")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

#[async_trait]
impl KeyProvider for StaticKeyProvider {
    fn id(&self) -> String {
        self.id.clone()
    }

    async fn wrap(&self, key: &DataKey, context: &WrapContext<'_>) -> Result<Vec<u8>> {
        wrap_with(&self.kek, &context.to_bytes(), key)
    }

    async fn unwrap(&self, wrapped: &[u8], context: &WrapContext<'_>) -> Result<DataKey> {
        unwrap_with(&self.kek, &context.to_bytes(), wrapped).ok_or_else(|| {
            Error::corrupt(
                "chatvault-crypt",
                format!("data key {} v{}", context.owner, context.version),
                "the wrapped data key does not unwrap with this provider's key",
            )
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn parses_hex_and_base64_and_refuses_the_rest() {
        let hex_key = StaticKeyProvider::parse(&"ab".repeat(32)).unwrap();
        let b64_key = StaticKeyProvider::parse(&STANDARD.encode([0xabu8; 32])).unwrap();
        assert_eq!(hex_key.id(), b64_key.id());
        assert_ne!(hex_key.id(), StaticKeyProvider::new([0; 32]).id());
        for bad in ["", "zz".repeat(32).as_str(), "YWJj", &"ab".repeat(31)] {
            let err = StaticKeyProvider::parse(bad).err().unwrap();
            assert_eq!(err.kind(), chatvault_core::ErrorKind::InvalidInput);
        }
        assert!(!format!("{hex_key:?}").contains("abab"));
    }

    #[test]
    fn from_env_names_a_missing_or_malformed_variable() {
        let missing = StaticKeyProvider::from_env("CHATVAULT_CRYPT_TEST_SURELY_UNSET")
            .err()
            .unwrap();
        assert_eq!(missing.kind(), chatvault_core::ErrorKind::InvalidInput);
        assert!(
            missing
                .to_string()
                .contains("CHATVAULT_CRYPT_TEST_SURELY_UNSET")
        );
        // PATH is set but is no key; the message does not repeat it.
        let path = std::env::var("PATH").unwrap_or_default();
        let malformed = StaticKeyProvider::from_env("PATH").err().unwrap();
        assert_eq!(malformed.kind(), chatvault_core::ErrorKind::InvalidInput);
        assert!(path.is_empty() || !malformed.to_string().contains(&path));
    }
}
