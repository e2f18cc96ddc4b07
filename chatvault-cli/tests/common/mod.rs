//! What the tests of the `chatvault` binary share: running it as a user would.

use std::path::Path;

use assert_cmd::Command;
use chatvault_core::ChatVault;
use chatvault_local::{LocalFiles, LocalMessages};
use serde_json::Value;

/// The `chatvault` binary, with no store, key or log setting from the environment.
pub(crate) fn chatvault() -> Command {
    let mut cmd = Command::cargo_bin("chatvault").unwrap();
    cmd.env_remove("CHATVAULT_STORE")
        .env_remove("CHATVAULT_KEY_STORE")
        .env_remove("CHATVAULT_MASTER_KEY")
        .env_remove("CHATVAULT_LOG");
    cmd
}

/// Runs `chatvault --store URL ARGS..` and returns its exit code, stdout and stderr.
pub(crate) fn run(url: &str, args: &[&str]) -> (Option<i32>, String, String) {
    let out = chatvault()
        .args(["--store", url])
        .args(args)
        .output()
        .unwrap();
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    (out.status.code(), text(&out.stdout), text(&out.stderr))
}

/// Runs a verb with `--json` that must succeed and print one JSON object.
pub(crate) fn run_json(url: &str, args: &[&str]) -> Value {
    let (code, out, err) = run(url, &[args, &["--json"]].concat());
    assert_eq!(code, Some(0), "{args:?}: {err}");
    assert_eq!(out.lines().count(), 1, "{args:?}: one line: {out}");
    serde_json::from_str(&out).unwrap()
}

/// A vault over the local store in `dir` (created if missing), which the command opens
/// as `local:DIR`.
pub(crate) fn local_vault(dir: &Path) -> ChatVault {
    ChatVault::new(
        LocalMessages::open(dir.join("messages")).unwrap(),
        LocalFiles::new(dir.join("files")).unwrap(),
    )
}
