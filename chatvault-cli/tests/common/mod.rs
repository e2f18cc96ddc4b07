//! What the tests of the `chatvault` binary share: running it as a user would.
// Each test binary compiles this module whole but uses only some of it.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Output;

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

/// A finished command's stdout, as text.
pub(crate) fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A finished command's stderr, as text.
pub(crate) fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A vault over the local store in `dir` (created if missing), which the command opens
/// as `local:DIR`.
pub(crate) fn local_vault(dir: &Path) -> ChatVault {
    ChatVault::new(
        LocalMessages::open(dir.join("messages")).unwrap(),
        LocalFiles::new(dir.join("files")).unwrap(),
    )
}

/// A local store in `dir` with two owners' conversations (alice 3 messages, bob 2) and
/// one attachment of alice's, 5,000 bytes; its `local:` URL.
pub(crate) fn two_owner_store(dir: &Path) -> String {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let vault = local_vault(dir);
        for (owner, n) in [("alice", 3), ("bob", 2)] {
            let user = owner.parse().unwrap();
            let mut c = vault.create_conversation(Some(&user)).await.unwrap();
            for i in 0..n {
                c.add_message(chatvault_core::Role::User, format!("{owner} says {i}"))
                    .await
                    .unwrap();
            }
            if owner == "alice" {
                c.attach_file("a.bin", vec![1u8; 5_000], "application/octet-stream")
                    .await
                    .unwrap();
            }
        }
    });
    format!("local:{}", dir.display())
}

/// Every file under `dir` with its bytes.
pub(crate) fn files_under(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    fn walk(path: &Path, found: &mut BTreeMap<PathBuf, Vec<u8>>) {
        for entry in std::fs::read_dir(path).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(&path, found);
            } else {
                let bytes = std::fs::read(&path).unwrap();
                found.insert(path, bytes);
            }
        }
    }
    let mut found = BTreeMap::new();
    walk(dir, &mut found);
    found
}
