//! Tells the DynamoDB + S3 conformance test whether it can run, as chatvault-aws's build
//! script does: with the emulators' endpoints (see `scripts/emulators.sh`) or
//! `CHATVAULT_REQUIRE_AWS=1` (set by `scripts/test.sh`) it is compiled to run; without,
//! it is compiled as one ignored test that says what is missing.
//!
//! Only these variables are read, and the library's code does not depend on the flag.

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
    println!("cargo::rustc-check-cfg=cfg(chatvault_crypt_aws)");
    let set = |name: &str| std::env::var(name).is_ok_and(|v| !v.trim().is_empty());
    let required = std::env::var("CHATVAULT_REQUIRE_AWS").is_ok_and(|v| v.trim() == "1");
    let dynamodb = set("AWS_ENDPOINT_URL_DYNAMODB") || set("AWS_ENDPOINT_URL");
    let s3 = set("AWS_ENDPOINT_URL_S3") || set("AWS_ENDPOINT_URL");
    if required || (dynamodb && s3) {
        println!("cargo::rustc-cfg=chatvault_crypt_aws");
    }
}
