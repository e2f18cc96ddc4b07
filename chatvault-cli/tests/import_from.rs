//! `chatvault import --from FORMAT PATH --owner USER [--dry-run]`.
#![allow(clippy::unwrap_used)] // test helpers may unwrap

use std::path::{Path, PathBuf};

use assert_cmd::Command;

fn chatvault() -> Command {
    let mut cmd = Command::cargo_bin("chatvault").unwrap();
    cmd.env_remove("CHATVAULT_STORE")
        .env_remove("CHATVAULT_LOG");
    cmd
}

fn fixture(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../chatvault-archive/tests/fixtures/import")
        .join(rel)
}

fn run(store: &str, args: &[&str]) -> (Option<i32>, String) {
    let out = chatvault()
        .args(["--store", store, "import"])
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn imports_once_reports_failures_and_adds_nothing_again() {
    let tmp = tempfile::tempdir().unwrap();
    let store = format!("local:{}", tmp.path().join("store").display());
    let claude = fixture("claude/conversations.json");
    let claude = claude.to_str().unwrap();
    let (code, err) = run(&store, &["--from", "claude", claude, "--owner", "alice"]);
    // One conversation of the fixture is malformed: the others go in, the exit code says so.
    assert_eq!(code, Some(4), "{err}");
    assert!(
        err.contains("added 3 conversations (0 present already), 8 messages"),
        "{err}"
    );
    assert!(
        err.contains("FAILED conversation c-bad (\"Bad times\"): chat_messages[0].created_at"),
        "{err}"
    );
    assert!(err.contains("claude-file:diagram.png"), "{err}");
    assert!(
        err.contains("1 of 4 conversations could not be imported"),
        "{err}"
    );
    let (code, err) = run(&store, &["--from", "claude", claude, "--owner", "alice"]);
    assert_eq!(code, Some(4), "{err}");
    assert!(
        err.contains("added 0 conversations (3 present already), 0 messages (8 present)"),
        "{err}"
    );
    // The store holds them, for alice.
    let out = chatvault()
        .args([
            "--store",
            &store,
            "ls",
            "--owner",
            "alice",
            "--archived",
            "--json",
        ])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), 3);
}

#[test]
fn the_dry_run_writes_nothing_and_says_what_is_inexact() {
    let tmp = tempfile::tempdir().unwrap();
    let store = format!("local:{}", tmp.path().join("store").display());
    let webui = fixture("open-webui/chats.json");
    let (code, _) = run(
        &store,
        &[
            "--from",
            "open-webui",
            webui.to_str().unwrap(),
            "--owner",
            "bob",
        ],
    );
    assert_eq!(code, Some(4));
    let librechat = fixture("librechat/export.json");
    let librechat = librechat.to_str().unwrap();
    let (code, err) = run(
        &store,
        &[
            "--from",
            "librechat",
            librechat,
            "--owner",
            "bob",
            "--dry-run",
        ],
    );
    assert_eq!(code, Some(4), "{err}");
    assert!(err.contains("would add 2 conversations"), "{err}");
    assert!(err.contains("not carried exactly:"), "{err}");
    assert!(
        err.contains("kept as provider data: librechat agent_update: 1"),
        "{err}"
    );
    assert!(err.contains("/images/u/clock.png"), "{err}");
    let (_, err) = run(
        &store,
        &["--from", "librechat", librechat, "--owner", "bob"],
    );
    assert!(
        err.contains("added 2 conversations (0 present already), 8 messages"),
        "{err}"
    );
}

#[test]
fn usage_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let store = format!("local:{}", tmp.path().join("store").display());
    let json = fixture("claude/conversations.json");
    let json = json.to_str().unwrap();
    let (code, err) = run(&store, &["--from", "claude", json]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("--owner"), "{err}");
    let (code, err) = run(&store, &["--from", "bard", json, "--owner", "alice"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("unknown format \"bard\""), "{err}");
    let (code, err) = run(
        &store,
        &["--from", "claude", "/no/such/file", "--owner", "alice"],
    );
    assert_eq!(code, Some(2), "{err}");
    let (code, err) = run(&store, &[json, "--owner", "alice"]);
    assert_eq!(code, Some(2), "--owner needs --from: {err}");
    assert!(!tmp.path().join("store").exists());
}

#[test]
fn the_python_librarys_store_keeps_its_owners() {
    let tmp = tempfile::tempdir().unwrap();
    let store = format!("local:{}", tmp.path().join("store").display());
    let dir = fixture("chatvault-py/dynamodb-s3");
    let dir = dir.to_str().unwrap();
    let (code, err) = run(
        &store,
        &["--from", "chatvault-py", dir, "--owner", "fallback"],
    );
    assert_eq!(code, Some(0), "{err}");
    assert!(
        err.contains(
            "added 3 conversations (0 present already), 6 messages (0 present), 2 attachments"
        ),
        "{err}"
    );
    assert!(err.contains("/gone.bin"), "{err}");
    let ls = |owner: &str| {
        let out = chatvault()
            .args(["--store", &store, "ls", "--owner", owner, "--json"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).lines().count()
    };
    assert_eq!((ls("user-1"), ls("user-2"), ls("fallback")), (2, 1, 0));
}
