//! [`EncryptedFiles`]: attachment bytes sealed in 64 KiB segments, file names hidden from
//! the stored keys.

use std::time::Duration;

use async_trait::async_trait;
use chatvault_core::backend::{
    ByteStream, FilesBackend, FilesCapabilities, ObjectMeta, download_error,
};
use chatvault_core::keys::MAX_KEY_LEN;
use chatvault_core::{ContentType, Error, Result, StorageKey};

use crate::cipher::DerivedKeys;
use crate::format::{Owner, corrupt, hex, shredded};
use crate::keyring::Keyring;
use crate::stream::{open_stream, plain_size, read_header, seal_stream};

/// The start of a storage key's last segment that the wrapper made (a keyed digest of the
/// key in place of the file name). No key the vault makes has a segment starting with `~`.
const SEALED_NAME: &str = "~cvc";

/// A [`FilesBackend`] that seals every byte it stores, over any other files backend.
///
/// Each upload is sealed as a STREAM of 64 KiB segments (XChaCha20-Poly1305 or
/// AES-256-GCM, see [`Algorithm`](crate::Algorithm)) under a key derived from the owner's
/// data key and a random per-file salt, the storage key bound as associated data: a file
/// copied to another key, cut, reordered or altered fails to download with
/// [`Error::Corrupt`] (inside the download stream, as an `io::Error` whose inner error is
/// ChatVault's). Memory stays bounded by about two segments both ways, whatever the size.
///
/// The owner is the first segment of the key (the vault's layout
/// `{user or _}/{conversation}/{file}/{name}`); keys of other shapes use the vault-wide
/// data key. The stored key keeps the user, conversation and file segments and replaces
/// the file name with a keyed digest (`~cvc` and 40 hex digits), so the store's object
/// names do not show file names; a key whose last segment already starts with `~cvc` is
/// taken as such a name.
///
/// Signed URLs are not offered (a URL would hand out ciphertext):
/// [`signed_url`](FilesBackend::signed_url) is [`Error::NotSupported`]; download through
/// the app instead. `head` gives the plaintext size, computed from the stored size.
#[derive(Debug)]
pub struct EncryptedFiles<F: FilesBackend> {
    inner: F,
    keyring: Keyring,
}

impl<F: FilesBackend> EncryptedFiles<F> {
    /// Seals what is stored in `inner` with keys from `keyring`.
    pub fn new(inner: F, keyring: Keyring) -> Self {
        EncryptedFiles { inner, keyring }
    }

    /// The wrapped backend (which sees only ciphertext).
    pub fn inner(&self) -> &F {
        &self.inner
    }

    /// The keyring.
    pub fn keyring(&self) -> &Keyring {
        &self.keyring
    }

    /// The key the bytes of `key` are stored under in the wrapped backend.
    pub async fn stored_key(&self, key: &StorageKey) -> Result<StorageKey> {
        sealed_key(&*self.keyring.names().await?, key)
    }
}

/// The key `key`'s bytes are stored under: the last segment replaced by `~cvc` and a
/// keyed digest of the whole key (injective but for digest collisions); the whole key so
/// replaced when the result would be too long. A key already in that form is kept.
pub(crate) fn sealed_key(names: &DerivedKeys, key: &StorageKey) -> Result<StorageKey> {
    let key = key.as_str();
    let (prefix, last) = key.rsplit_once('/').map_or(("", key), |(p, l)| (p, l));
    if last.starts_with(SEALED_NAME) {
        return StorageKey::parse(key);
    }
    let name = format!("{SEALED_NAME}{}", &hex(&names.mac(key.as_bytes()))[..40]);
    if prefix.is_empty() || prefix.len() + 1 + name.len() > MAX_KEY_LEN {
        return StorageKey::parse(name);
    }
    StorageKey::parse(format!("{prefix}/{name}"))
}

#[async_trait]
#[deny(clippy::missing_trait_methods)]
impl<F: FilesBackend> FilesBackend for EncryptedFiles<F> {
    fn capabilities(&self) -> FilesCapabilities {
        let inner = self.inner.capabilities();
        FilesCapabilities::full()
            .with_signed_urls(false)
            .with_bounded_memory(inner.bounded_memory)
            .with_max_file_bytes(inner.max_file_bytes.map(|m| plain_size(m).unwrap_or(0)))
    }

    async fn upload_stream(
        &self,
        key: &StorageKey,
        data: ByteStream,
        content_type: &ContentType,
    ) -> Result<u64> {
        let (header, keys) = self
            .keyring
            .for_writing(&Owner::of_key(key.as_str()))
            .await?;
        let stored = self.stored_key(key).await?;
        let sealed = seal_stream(data, header, &keys, key.as_str())?;
        let written = self
            .inner
            .upload_stream(&stored, sealed, content_type)
            .await?;
        plain_size(written).ok_or_else(|| corrupt(stored.as_str(), "the backend stored a cut file"))
    }

    async fn download_stream(&self, key: &StorageKey) -> Result<Option<ByteStream>> {
        let stored = self.stored_key(key).await?;
        let Some(mut data) = self.inner.download_stream(&stored).await? else {
            return Ok(None);
        };
        let location = format!("file {key}");
        let (file, rest) = read_header(&mut data, &location).await?;
        let keys = self
            .keyring
            .for_reading(&file.header)
            .await?
            .ok_or_else(|| shredded(&location))?;
        open_stream(data, &file, rest, &keys, key.as_str()).map(Some)
    }

    async fn head(&self, key: &StorageKey) -> Result<Option<ObjectMeta>> {
        let stored = self.stored_key(key).await?;
        match self.inner.head(&stored).await? {
            None => Ok(None),
            Some(meta) => Ok(Some(ObjectMeta::new(
                plain_size(meta.size).ok_or_else(|| {
                    corrupt(
                        stored.as_str(),
                        "too short to be a file sealed by chatvault-crypt",
                    )
                })?,
                meta.content_type,
            ))),
        }
    }

    async fn delete(&self, key: &StorageKey) -> Result<bool> {
        let stored = self.stored_key(key).await?;
        self.inner.delete(&stored).await
    }

    async fn signed_url(
        &self,
        _key: &StorageKey,
        _expires_in: Duration,
        _download_filename: Option<&str>,
    ) -> Result<String> {
        Err(Error::not_supported("chatvault-crypt", "signed URLs"))
    }
}

/// Turns a download stream's error back into ChatVault's (for tests and callers).
pub fn stream_error(err: std::io::Error) -> Error {
    download_error(err)
}
