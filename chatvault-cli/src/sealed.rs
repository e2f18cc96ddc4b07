//! Encrypted stores: with `--key-store` (and the key-encryption key in
//! `CHATVAULT_MASTER_KEY`) a store is opened through chatvault-crypt's wrappers, so that
//! every verb reads and writes through the encryption.

use std::sync::Arc;

use chatvault_archive::{ConversationIds, Scope, Store};
use chatvault_core::{FilesBackend, MessagesBackend};
use chatvault_crypt::{EncryptedFiles, EncryptedMessages, Keyring, StaticKeyProvider};
use tokio::sync::OnceCell;

use crate::error::{CliError, Result};
use crate::url::{Open, Reclaim, StoreUrl, open_messages, open_reclaimable};

/// Where an encrypted store's wrapped data keys live (`--key-store`).
#[derive(Clone, Debug, PartialEq, Eq)]
enum KeyStore {
    /// `same`: in the data store's own messages backend (for `copy`, each store in its
    /// own).
    Same,
    /// In the messages backend of another store.
    Url(StoreUrl),
}

/// The encryption the command line asks for: where the keys are, and the keyring over a
/// separate key store once it is open (a `copy` opens it once for both stores).
#[derive(Debug)]
pub(crate) struct Encryption {
    key_store: KeyStore,
    shared: OnceCell<Keyring>,
}

impl Encryption {
    /// The encryption `--key-store` asks for (`None` without it): `same`, or a store URL.
    /// A bad URL, or `memory:` (its keys would die with the command, leaving what it
    /// wrote unreadable), is a usage error.
    pub(crate) fn from_arg(arg: Option<&str>) -> Result<Option<Self>> {
        let key_store = match arg {
            None => return Ok(None),
            Some("same") => KeyStore::Same,
            Some(url) => match StoreUrl::parse(url) {
                Ok(StoreUrl::Memory) => {
                    return Err(CliError::Usage(
                        "--key-store memory: would hold the keys only while the command runs, \
                         and nothing it encrypted could be read again: give a lasting store's \
                         URL, or same"
                            .into(),
                    ));
                }
                Ok(url) => KeyStore::Url(url),
                Err(e) => return Err(CliError::Usage(format!("--key-store: {e}"))),
            },
        };
        Ok(Some(Encryption {
            key_store,
            shared: OnceCell::new(),
        }))
    }

    /// The keyring for the data store `url` (open as `store`): over its own messages
    /// backend for `same` (or a key store named by the same URL), else over the key
    /// store, opened once in `mode` (a key store to read must exist).
    async fn keyring(&self, url: &StoreUrl, store: &Store, mode: Open) -> Result<Keyring> {
        let key_url = match &self.key_store {
            KeyStore::Url(key_url) if key_url != url => key_url,
            _ => return Ok(Keyring::new(store.messages.clone(), master_key()?)),
        };
        let open = || async {
            let keys = open_messages(key_url, mode).await.map_err(|e| match e {
                CliError::Unreachable { url, source } => CliError::Unreachable {
                    url: format!("{url} (the key store)"),
                    source,
                },
                e => e,
            })?;
            Ok::<_, CliError>(Keyring::new(keys, master_key()?))
        };
        self.shared.get_or_try_init(open).await.cloned()
    }
}

/// The key-encryption key from `CHATVAULT_MASTER_KEY`; without it (or malformed) a usage
/// error that says what is expected, never the value.
fn master_key() -> Result<StaticKeyProvider> {
    StaticKeyProvider::from_env(StaticKeyProvider::ENV).map_err(|e| {
        CliError::Usage(format!(
            "an encrypted store (--key-store) needs its master key: {e}; set {} to the \
             key-encryption key, 64 hex digits or the base64 of 32 bytes",
            StaticKeyProvider::ENV
        ))
    })
}

/// A store opened through the encryption wrappers, which share one keyring.
#[derive(Debug, Clone)]
pub(crate) struct Sealed {
    /// The messages, sealed.
    pub(crate) messages: Arc<EncryptedMessages<Arc<dyn MessagesBackend>>>,
    /// The attachments' bytes, sealed.
    pub(crate) files: Arc<EncryptedFiles<Arc<dyn FilesBackend>>>,
}

impl Sealed {
    /// The keyring both wrappers seal with.
    pub(crate) fn keyring(&self) -> &Keyring {
        self.messages.keyring()
    }

    /// The wrappers as a store the verbs use as any other.
    pub(crate) fn store(&self) -> Store {
        Store {
            messages: self.messages.clone(),
            files: self.files.clone(),
        }
    }
}

/// Opens the store `url` names through the encryption wrappers. The master key is checked
/// first: without it nothing is opened (nor created).
pub(crate) async fn open_sealed(
    url: &StoreUrl,
    encryption: &Encryption,
    mode: Open,
) -> Result<(Sealed, Reclaim)> {
    master_key()?;
    let (store, reclaim) = open_reclaimable(url, mode).await?;
    let keyring = encryption.keyring(url, &store, mode).await?;
    let sealed = Sealed {
        messages: Arc::new(EncryptedMessages::new(store.messages, keyring.clone())),
        files: Arc::new(EncryptedFiles::new(store.files, keyring)),
    };
    Ok((sealed, reclaim))
}

/// Opens the store `url` names: through the encryption wrappers when `encryption` is
/// given, as it is stored otherwise.
pub(crate) async fn open(
    url: &StoreUrl,
    encryption: Option<&Encryption>,
    mode: Open,
) -> Result<(Store, Reclaim)> {
    match encryption {
        None => open_reclaimable(url, mode).await,
        Some(encryption) => {
            let (sealed, reclaim) = open_sealed(url, encryption, mode).await?;
            Ok((sealed.store(), reclaim))
        }
    }
}

/// The prefix of the ids chatvault-crypt reserves for its key conversations in a store
/// that is its own key store (`same`).
const KEY_CONVERSATIONS: &str = "chatvault-crypt.";

/// Refuses to let `verb` run over a store read as stored that holds chatvault-crypt's
/// data keys (its own key store): its keys are conversations without an owner, which a
/// purge would remove as expired, leaving everything in the store unreadable.
pub(crate) async fn refuse_keys(store: &Store, verb: &str) -> Result<()> {
    let mut ids = ConversationIds::new(store, Scope::All);
    while let Some(id) = ids.next().await? {
        if id.as_str().starts_with(KEY_CONVERSATIONS) {
            return Err(CliError::Usage(format!(
                "this store holds the data keys of its encrypted conversations ({id}): \
                 {verb} it with --key-store same (and CHATVAULT_MASTER_KEY), which leaves \
                 the keys alone"
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests may unwrap
mod tests {
    use super::*;

    #[test]
    fn a_key_store_is_same_or_a_lasting_store() {
        assert!(Encryption::from_arg(None).unwrap().is_none());
        let same = Encryption::from_arg(Some("same")).unwrap().unwrap();
        assert_eq!(same.key_store, KeyStore::Same);
        let local = Encryption::from_arg(Some("local:/srv/keys"))
            .unwrap()
            .unwrap();
        assert_eq!(
            local.key_store,
            KeyStore::Url(StoreUrl::Local("/srv/keys".into()))
        );
        for (arg, why) in [
            ("memory:", "only while the command runs"),
            ("mysql://x", "--key-store: bad store URL"),
        ] {
            let err = Encryption::from_arg(Some(arg)).unwrap_err();
            assert!(matches!(err, CliError::Usage(_)), "{arg}");
            assert!(err.to_string().contains(why), "{arg}: {err}");
        }
    }
}
