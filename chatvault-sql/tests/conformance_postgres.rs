//! The core's whole conformance suite (messages and vault checks) against
//! `PostgresMessages`, each check in a fresh schema.
//!
//! Compiled when `CHATVAULT_POSTGRES_URL` is set at build time (see `build.rs`);
//! otherwise `postgres_conformance_not_run` says so (and fails under
//! `CHATVAULT_REQUIRE_POSTGRES=1`).
#![cfg(feature = "postgres")]
#![allow(clippy::unwrap_used)] // tests may unwrap

mod common;

#[cfg(chatvault_postgres_url)]
mod suite {
    use chatvault_core::ChatVault;
    use chatvault_memory::MemoryFiles;
    use chatvault_sql::PostgresMessages;

    use crate::common::pg::{schema_pool, server_url};

    async fn fresh() -> PostgresMessages {
        let url = server_url().expect(
            "CHATVAULT_POSTGRES_URL was set when these tests were built but is not set now",
        );
        let (pool, _schema) = schema_pool(&url).await;
        PostgresMessages::from_pool(pool).await.unwrap()
    }

    chatvault_core::messages_backend_tests!(fresh());
    chatvault_core::vault_tests!(async { ChatVault::new(fresh().await, MemoryFiles::new()) });
}

#[cfg(not(chatvault_postgres_url))]
#[test]
fn postgres_conformance_not_run() {
    // Prints why (or panics under CHATVAULT_REQUIRE_POSTGRES=1).
    assert!(common::pg::server_url().is_none());
    eprintln!(
        "*** The PostgreSQL conformance suite was NOT COMPILED: CHATVAULT_POSTGRES_URL was \
         not set when the tests were built ***"
    );
}
