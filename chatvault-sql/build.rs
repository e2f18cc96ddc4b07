//! Sets `cfg(chatvault_postgres_url)` when `CHATVAULT_POSTGRES_URL` is set at build time,
//! so the PostgreSQL conformance tests (whose test functions the core's macros generate)
//! are compiled only when there is a server to run them against; without it a single test
//! says loudly that they did not run (and fails under `CHATVAULT_REQUIRE_POSTGRES=1`).

fn main() {
    println!("cargo::rustc-check-cfg=cfg(chatvault_postgres_url)");
    println!("cargo::rerun-if-env-changed=CHATVAULT_POSTGRES_URL");
    if std::env::var("CHATVAULT_POSTGRES_URL").is_ok_and(|url| !url.is_empty()) {
        println!("cargo::rustc-cfg=chatvault_postgres_url");
    }
}
