//! Tells the Redis tests whether they can run.
//!
//! They need a server (see `scripts/redis.sh`). When `CHATVAULT_REDIS_URL` is not set at
//! build time, `cfg(chatvault_redis_server)` is left unset and every Redis test is compiled
//! as ignored, with the reason, so that plain `cargo test` reports them as
//! `ignored, needs Redis: ...` instead of failing or passing without running (the
//! conformance suite, whose tests the core's macros generate, is not compiled: one ignored
//! test stands in for it). `CHATVAULT_REQUIRE_REDIS=1` (set by `scripts/test.sh`) makes them
//! run whatever the environment says, so that a missing URL fails them. The same policy as
//! chatvault-sql's build script for PostgreSQL.
//!
//! The cluster tests (`tests/cluster.rs`) need a Redis Cluster the same way:
//! `cfg(chatvault_redis_cluster)` is set when `CHATVAULT_REDIS_CLUSTER_URL` (the cluster's
//! nodes, comma-separated URLs) is set at build time, or `CHATVAULT_REQUIRE_REDIS=1`.
//!
//! The replica tests (`tests/replica.rs`) need the server's replica (and `redis-server` on
//! `PATH`, to start a pair of their own for the failover): `cfg(chatvault_redis_replica)`
//! is set when `CHATVAULT_REDIS_REPLICA_URL` is set at build time, or
//! `CHATVAULT_REQUIRE_REDIS=1`.
//!
//! Only these variables are read, and the library's code does not depend on the flag:
//! changing them rebuilds this crate, nothing else changes.

fn main() {
    println!("cargo::rerun-if-changed=build.rs");
    println!("cargo::rerun-if-env-changed=CHATVAULT_REDIS_URL");
    println!("cargo::rerun-if-env-changed=CHATVAULT_REDIS_CLUSTER_URL");
    println!("cargo::rerun-if-env-changed=CHATVAULT_REDIS_REPLICA_URL");
    println!("cargo::rerun-if-env-changed=CHATVAULT_REQUIRE_REDIS");
    println!("cargo::rustc-check-cfg=cfg(chatvault_redis_server)");
    println!("cargo::rustc-check-cfg=cfg(chatvault_redis_cluster)");
    println!("cargo::rustc-check-cfg=cfg(chatvault_redis_replica)");
    let set = |name: &str| std::env::var(name).is_ok_and(|v| !v.trim().is_empty());
    let required = std::env::var("CHATVAULT_REQUIRE_REDIS").is_ok_and(|v| v.trim() == "1");
    if set("CHATVAULT_REDIS_URL") || required {
        println!("cargo::rustc-cfg=chatvault_redis_server");
    }
    if set("CHATVAULT_REDIS_CLUSTER_URL") || required {
        println!("cargo::rustc-cfg=chatvault_redis_cluster");
    }
    if set("CHATVAULT_REDIS_REPLICA_URL") || required {
        println!("cargo::rustc-cfg=chatvault_redis_replica");
    }
}
