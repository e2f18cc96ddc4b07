//! Tells the AWS tests whether they can run.
//!
//! The tests need local AWS emulators (see `scripts/emulators.sh`). When their endpoints
//! are not configured, the tests are compiled as ignored, with the reason, so that plain
//! `cargo test` reports them as `ignored, needs the AWS emulators: ...` instead of failing
//! or passing without running. `CHATVAULT_REQUIRE_AWS=1` (set by `scripts/test.sh`) makes
//! them run whatever the environment says, so that a missing endpoint fails them.
//!
//! Only these variables are read, and the library's code does not depend on the flag:
//! changing them rebuilds this crate's test targets, nothing else changes.

fn main() {
    const VARS: [&str; 4] = [
        "AWS_ENDPOINT_URL",
        "AWS_ENDPOINT_URL_DYNAMODB",
        "AWS_ENDPOINT_URL_S3",
        "CHATVAULT_REQUIRE_AWS",
    ];
    println!("cargo::rerun-if-changed=build.rs");
    for var in VARS {
        println!("cargo::rerun-if-env-changed={var}");
    }
    println!("cargo::rustc-check-cfg=cfg(chatvault_aws_emulators)");
    let set = |name: &str| std::env::var(name).is_ok_and(|v| !v.trim().is_empty());
    let required = std::env::var("CHATVAULT_REQUIRE_AWS").is_ok_and(|v| v.trim() == "1");
    let dynamodb = set("AWS_ENDPOINT_URL_DYNAMODB") || set("AWS_ENDPOINT_URL");
    let s3 = set("AWS_ENDPOINT_URL_S3") || set("AWS_ENDPOINT_URL");
    if required || (dynamodb && s3) {
        println!("cargo::rustc-cfg=chatvault_aws_emulators");
    }
}
