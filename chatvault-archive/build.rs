//! Tells the archive's server tests (`tests/servers.rs`: round trips through PostgreSQL,
//! DynamoDB + S3 and Redis) whether they can run: the policy of chatvault-sql's,
//! chatvault-aws's and chatvault-redis's build scripts, whose cfg names it sets.
//!
//! Without `CHATVAULT_POSTGRES_URL` at build time, `cfg(chatvault_postgres_server)` is
//! left unset and the PostgreSQL round trip is compiled as ignored, with the reason;
//! without the emulators' endpoints (`AWS_ENDPOINT_URL_DYNAMODB` and
//! `AWS_ENDPOINT_URL_S3`, or `AWS_ENDPOINT_URL`), `cfg(chatvault_aws_emulators)` is left
//! unset and the DynamoDB round trip likewise; without `CHATVAULT_REDIS_URL`,
//! `cfg(chatvault_redis_server)` is left unset and the Redis round trip likewise.
//! `CHATVAULT_REQUIRE_POSTGRES=1`, `CHATVAULT_REQUIRE_AWS=1` and
//! `CHATVAULT_REQUIRE_REDIS=1` (set by `scripts/test.sh`) make them run whatever the
//! environment says, so that a missing server fails them.
//!
//! Only these variables are read, and the library's code does not depend on the flags:
//! changing them rebuilds this crate's test targets, nothing else changes.

fn main() {
    const VARS: [&str; 8] = [
        "CHATVAULT_POSTGRES_URL",
        "CHATVAULT_REQUIRE_POSTGRES",
        "AWS_ENDPOINT_URL",
        "AWS_ENDPOINT_URL_DYNAMODB",
        "AWS_ENDPOINT_URL_S3",
        "CHATVAULT_REQUIRE_AWS",
        "CHATVAULT_REDIS_URL",
        "CHATVAULT_REQUIRE_REDIS",
    ];
    println!("cargo::rerun-if-changed=build.rs");
    for var in VARS {
        println!("cargo::rerun-if-env-changed={var}");
    }
    println!("cargo::rustc-check-cfg=cfg(chatvault_postgres_server)");
    println!("cargo::rustc-check-cfg=cfg(chatvault_aws_emulators)");
    println!("cargo::rustc-check-cfg=cfg(chatvault_redis_server)");
    let set = |name: &str| std::env::var(name).is_ok_and(|v| !v.trim().is_empty());
    let required = |name: &str| std::env::var(name).is_ok_and(|v| v.trim() == "1");
    if set("CHATVAULT_POSTGRES_URL") || required("CHATVAULT_REQUIRE_POSTGRES") {
        println!("cargo::rustc-cfg=chatvault_postgres_server");
    }
    let dynamodb = set("AWS_ENDPOINT_URL_DYNAMODB") || set("AWS_ENDPOINT_URL");
    let s3 = set("AWS_ENDPOINT_URL_S3") || set("AWS_ENDPOINT_URL");
    if required("CHATVAULT_REQUIRE_AWS") || (dynamodb && s3) {
        println!("cargo::rustc-cfg=chatvault_aws_emulators");
    }
    if set("CHATVAULT_REDIS_URL") || required("CHATVAULT_REQUIRE_REDIS") {
        println!("cargo::rustc-cfg=chatvault_redis_server");
    }
}
