//! The core's whole conformance suite (messages and vault checks) against `RedisMessages`,
//! each check under a key prefix of its own: with the default settings, and again with key
//! expiry on (`suite::expiring`).
//!
//! Compiled when the tests are built to run against a server (`CHATVAULT_REDIS_URL` or
//! `CHATVAULT_REQUIRE_REDIS=1` set at build time: the build script's
//! `chatvault_redis_server` cfg). Otherwise the suite is not compiled (the core's macros
//! generate plain `#[test]`s, which cannot be marked ignored), and
//! `conformance_suite_needs_redis` stands in for it, listed as ignored with the reason (run,
//! it fails saying what is missing).
#![allow(clippy::unwrap_used)] // tests may unwrap

mod common;

#[cfg(chatvault_redis_server)]
mod suite {
    use chatvault_core::ChatVault;
    use chatvault_memory::MemoryFiles;

    use crate::common::fresh;

    chatvault_core::messages_backend_tests!(fresh());
    chatvault_core::vault_tests!(async { ChatVault::new(fresh().await, MemoryFiles::new()) });

    /// The suite again with key expiry on, at spans no check outlives: every write also
    /// sets its conversation's keys' deadline, and nothing else changes.
    mod expiring {
        use std::time::Duration;

        use chatvault_core::{ChatVault, Expiry, Retention};
        use chatvault_memory::MemoryFiles;
        use chatvault_redis::RedisMessages;
        use chrono::TimeDelta;

        use crate::common::fresh_expiring;

        async fn backend() -> RedisMessages {
            let policy = Retention::new(Expiry::AfterLastActivity(TimeDelta::days(30)));
            fresh_expiring(policy, Duration::from_secs(3600)).await
        }

        chatvault_core::messages_backend_tests!(backend());
        chatvault_core::vault_tests!(async { ChatVault::new(backend().await, MemoryFiles::new()) });
    }
}

#[cfg(not(chatvault_redis_server))]
#[test]
#[ignore = "needs Redis: CHATVAULT_REDIS_URL was not set when the tests were built; the conformance suite's checks are not compiled; run ./scripts/test.sh, or scripts/redis.sh start && eval \"$(scripts/redis.sh env)\" first"]
fn conformance_suite_needs_redis() {
    // Fails saying what is missing; past it, the URL is set now but was not at build time.
    common::server_url();
    panic!("CHATVAULT_REDIS_URL is set now, but the tests were built without it: rebuild");
}
