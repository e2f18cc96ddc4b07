//! The core's whole conformance suite (messages and vault checks) against
//! `PostgresMessages`, each check in a fresh schema.
//!
//! Compiled when the tests are built to run against a server (`CHATVAULT_POSTGRES_URL`
//! or `CHATVAULT_REQUIRE_POSTGRES=1` set at build time: the build script's
//! `chatvault_postgres_server` cfg). Otherwise the suite is not compiled (the core's macros
//! generate plain `#[test]`s, which cannot be marked ignored), and
//! `conformance_suite_needs_postgres` stands in for it, listed as ignored with the reason
//! (run, it fails saying what is missing).
#![cfg(feature = "postgres")]
#![allow(clippy::unwrap_used)] // tests may unwrap

mod common;

#[cfg(chatvault_postgres_server)]
mod suite {
    use chatvault_core::ChatVault;
    use chatvault_memory::MemoryFiles;
    use chatvault_sql::PostgresMessages;

    use crate::common::pg::{schema_pool, server_url};

    async fn fresh() -> PostgresMessages {
        let (pool, _schema) = schema_pool(&server_url()).await;
        PostgresMessages::from_pool(pool).await.unwrap()
    }

    chatvault_core::messages_backend_tests!(fresh());
    chatvault_core::vault_tests!(async { ChatVault::new(fresh().await, MemoryFiles::new()) });
}

#[cfg(not(chatvault_postgres_server))]
#[test]
#[ignore = "needs PostgreSQL: CHATVAULT_POSTGRES_URL was not set when the tests were built; the conformance suite's checks are not compiled; run ./scripts/test.sh, or scripts/postgres.sh start && eval \"$(scripts/postgres.sh env)\" first"]
fn conformance_suite_needs_postgres() {
    // Fails saying what is missing; past it, the URL is set now but was not at build time.
    common::pg::server_url();
    panic!("CHATVAULT_POSTGRES_URL is set now, but the tests were built without it: rebuild");
}
