//! Tells the `chatvault` binary's server tests (`tests/redis.rs`: a store URL naming a
//! Redis server) whether they can run: the policy of chatvault-redis's build script,
//! whose cfg name it sets.
//!
//! Without `CHATVAULT_REDIS_URL` at build time, `cfg(chatvault_redis_server)` is left
//! unset and the Redis tests are compiled as ignored, with the reason.
//! `CHATVAULT_REQUIRE_REDIS=1` (set by `scripts/test.sh`) makes them run whatever the
//! environment says, so that a missing server fails them.
//!
//! Only these variables are read, and the binary's code does not depend on the flag:
//! changing them rebuilds this crate's test targets, nothing else changes.

fn main() {
    println!("cargo::rerun-if-changed=build.rs");
    println!("cargo::rerun-if-env-changed=CHATVAULT_REDIS_URL");
    println!("cargo::rerun-if-env-changed=CHATVAULT_REQUIRE_REDIS");
    println!("cargo::rustc-check-cfg=cfg(chatvault_redis_server)");
    let set = |name: &str| std::env::var(name).is_ok_and(|v| !v.trim().is_empty());
    let required = std::env::var("CHATVAULT_REQUIRE_REDIS").is_ok_and(|v| v.trim() == "1");
    if set("CHATVAULT_REDIS_URL") || required {
        println!("cargo::rustc-cfg=chatvault_redis_server");
    }
}
