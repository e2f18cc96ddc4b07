//! The core's whole conformance suite (messages and vault checks) against
//! `SqliteMessages` on a database file (WAL, several connections).
#![cfg(feature = "sqlite")]
#![allow(clippy::unwrap_used)] // tests may unwrap

use chatvault_core::ChatVault;
use chatvault_memory::MemoryFiles;
use chatvault_sql::SqliteMessages;

/// A fresh database file under cargo's per-target temporary directory.
async fn fresh() -> SqliteMessages {
    let dir = tempfile::Builder::new()
        .prefix("conformance-")
        .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
        .unwrap()
        .keep();
    SqliteMessages::connect(&format!("sqlite://{}", dir.join("chat.db").display()))
        .await
        .unwrap()
}

chatvault_core::messages_backend_tests!(fresh());
chatvault_core::vault_tests!(async { ChatVault::new(fresh().await, MemoryFiles::new()) });

/// The same checks on an in-memory database (one connection).
mod in_memory {
    use super::*;

    async fn memory() -> SqliteMessages {
        SqliteMessages::connect("sqlite::memory:").await.unwrap()
    }

    chatvault_core::messages_backend_tests!(memory());
}
