//! The core's whole conformance suite (messages and vault checks) against `RedisMessages`,
//! each check under a key prefix of its own.
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
}

#[cfg(not(chatvault_redis_server))]
#[test]
#[ignore = "needs Redis: CHATVAULT_REDIS_URL was not set when the tests were built; the conformance suite's checks are not compiled; run ./scripts/test.sh, or scripts/redis.sh start && eval \"$(scripts/redis.sh env)\" first"]
fn conformance_suite_needs_redis() {
    // Fails saying what is missing; past it, the URL is set now but was not at build time.
    common::server_url();
    panic!("CHATVAULT_REDIS_URL is set now, but the tests were built without it: rebuild");
}
