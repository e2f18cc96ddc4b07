//! The core's whole conformance suite (messages, files and vault checks) through the
//! encrypting wrappers, over the memory, local and SQLite backends.
#![allow(clippy::unwrap_used)] // tests may unwrap

mod common;

use std::sync::Arc;

use chatvault_core::ChatVault;
use chatvault_crypt::{EncryptedFiles, EncryptedMessages, Keyring};
use common::{fresh_dir, fresh_sqlite_url, keyring};

/// Over memory, the key store a separate memory backend.
mod memory {
    use super::*;
    use chatvault_memory::{MemoryFiles, MemoryMessages};

    fn keys() -> Keyring {
        keyring(Arc::new(MemoryMessages::new()))
    }

    chatvault_core::messages_backend_tests!(async {
        EncryptedMessages::new(MemoryMessages::new(), keys())
    });
    chatvault_core::files_backend_tests!(async { EncryptedFiles::new(MemoryFiles::new(), keys()) });
    chatvault_core::vault_tests!(async {
        let keys = keys();
        ChatVault::new(
            EncryptedMessages::new(MemoryMessages::new(), keys.clone()),
            EncryptedFiles::new(MemoryFiles::new(), keys),
        )
    });
}

/// Over memory behind `Arc<dyn ..>` (a backend chosen at run time, as the `chatvault`
/// command opens it): the core's `Arc` impls forward every method.
mod shared {
    use super::*;
    use chatvault_core::{FilesBackend, MessagesBackend};
    use chatvault_memory::{MemoryFiles, MemoryMessages};

    fn messages() -> Arc<dyn MessagesBackend> {
        Arc::new(MemoryMessages::new())
    }

    fn files() -> Arc<dyn FilesBackend> {
        Arc::new(MemoryFiles::new())
    }

    chatvault_core::messages_backend_tests!(async {
        EncryptedMessages::new(messages(), keyring(messages()))
    });
    chatvault_core::files_backend_tests!(async {
        EncryptedFiles::new(files(), keyring(messages()))
    });
}

/// Over local: the key store is the wrapped messages store itself.
mod local {
    use super::*;
    use chatvault_local::{LocalFiles, LocalMessages};

    fn messages(dir: &std::path::Path) -> (LocalMessages, Keyring) {
        let store = LocalMessages::open(dir).unwrap();
        let keys = keyring(Arc::new(store.clone()));
        (store, keys)
    }

    chatvault_core::messages_backend_tests!(async {
        let (store, keys) = messages(&fresh_dir());
        EncryptedMessages::new(store, keys)
    });
    chatvault_core::files_backend_tests!(async {
        let dir = fresh_dir();
        let (_, keys) = messages(&dir.join("keys"));
        EncryptedFiles::new(LocalFiles::new(dir.join("files")).unwrap(), keys)
    });
    chatvault_core::vault_tests!(async {
        let dir = fresh_dir();
        let (store, keys) = messages(&dir.join("messages"));
        ChatVault::new(
            EncryptedMessages::new(store, keys.clone()),
            EncryptedFiles::new(LocalFiles::new(dir.join("files")).unwrap(), keys),
        )
    });
}

/// Over SQLite: the key store is a second connection to the same database file.
mod sqlite {
    use super::*;
    use chatvault_local::LocalFiles;
    use chatvault_sql::SqliteMessages;

    async fn messages() -> (SqliteMessages, Keyring) {
        let url = fresh_sqlite_url();
        let store = SqliteMessages::connect(&url).await.unwrap();
        let keys = keyring(Arc::new(SqliteMessages::connect(&url).await.unwrap()));
        (store, keys)
    }

    chatvault_core::messages_backend_tests!(async {
        let (store, keys) = messages().await;
        EncryptedMessages::new(store, keys)
    });
    chatvault_core::vault_tests!(async {
        let (store, keys) = messages().await;
        ChatVault::new(
            EncryptedMessages::new(store, keys.clone()),
            EncryptedFiles::new(LocalFiles::new(fresh_dir()).unwrap(), keys),
        )
    });
}
