//! Tells the OpenAI client tests whether they can run.
//!
//! `tests/openai_clients.rs` runs the official OpenAI Python SDKs (installed by
//! `scripts/openai-clients.sh`) against the router. When `CHATVAULT_OPENAI_PYTHON` (the
//! virtual environment's python) is not set, those tests are compiled as ignored, with the
//! reason, so that plain `cargo test` reports them as `ignored, needs the OpenAI Python
//! clients: ...` instead of failing or passing without running.
//! `CHATVAULT_REQUIRE_OPENAI_CLIENTS=1` (set by `scripts/test.sh`) makes them run whatever
//! the environment says, so that missing clients fail them.
//!
//! Only these variables are read, and the library's code does not depend on the flag:
//! changing them rebuilds this crate's test targets, nothing else changes.

fn main() {
    const VARS: [&str; 2] = [
        "CHATVAULT_OPENAI_PYTHON",
        "CHATVAULT_REQUIRE_OPENAI_CLIENTS",
    ];
    println!("cargo::rerun-if-changed=build.rs");
    for var in VARS {
        println!("cargo::rerun-if-env-changed={var}");
    }
    println!("cargo::rustc-check-cfg=cfg(chatvault_openai_clients)");
    let set = |name: &str| std::env::var(name).is_ok_and(|v| !v.trim().is_empty());
    let required = std::env::var("CHATVAULT_REQUIRE_OPENAI_CLIENTS").is_ok_and(|v| v.trim() == "1");
    if required || set("CHATVAULT_OPENAI_PYTHON") {
        println!("cargo::rustc-cfg=chatvault_openai_clients");
    }
}
