//! Tells the browser tests whether they can run.
//!
//! They need headless Chromium (`scripts/browser.sh install`). When none is configured at
//! build time (`CHATVAULT_CHROMIUM` or `CHROMIUM` naming it, as
//! `eval "$(scripts/browser.sh env)"` does, or a `chromium` on `PATH`),
//! `cfg(chatvault_browser)` is left unset and the browser tests are compiled as ignored,
//! with the reason, so that plain `cargo test` reports them as `ignored, needs headless
//! Chromium: ...` instead of passing without running. `CHATVAULT_REQUIRE_BROWSER=1` (set
//! by `scripts/test.sh`) makes them run whatever the machine has, so that a missing
//! browser fails them. The same policy as the AWS and PostgreSQL tests.
//!
//! Reruns when those variables change (not on every change of `PATH`, which differs
//! between shells and would rebuild the tests back and forth): a browser installed later
//! counts once `CHROMIUM` names it.

use std::path::Path;

fn main() {
    const VARS: [&str; 3] = [
        "CHATVAULT_CHROMIUM",
        "CHROMIUM",
        "CHATVAULT_REQUIRE_BROWSER",
    ];
    println!("cargo::rerun-if-changed=build.rs");
    for var in VARS {
        println!("cargo::rerun-if-env-changed={var}");
    }
    println!("cargo::rustc-check-cfg=cfg(chatvault_browser)");
    let required = std::env::var("CHATVAULT_REQUIRE_BROWSER").is_ok_and(|v| v.trim() == "1");
    let named = ["CHATVAULT_CHROMIUM", "CHROMIUM"]
        .iter()
        .filter_map(std::env::var_os)
        .any(|path| !path.is_empty() && Path::new(&path).is_file());
    let on_path = std::env::var_os("PATH").is_some_and(|path| {
        std::env::split_paths(&path).any(|dir| {
            ["chromium", "chromium-browser", "google-chrome"]
                .iter()
                .any(|name| dir.join(name).is_file())
        })
    });
    if required || named || on_path {
        println!("cargo::rustc-cfg=chatvault_browser");
    }
}
