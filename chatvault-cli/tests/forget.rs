//! `purge --expired` and `erase --owner` driven as a user would, against a local store
//! (and a SQLite one, whose file they shrink).
#![allow(clippy::unwrap_used)] // test helpers may unwrap

use std::collections::BTreeSet;
use std::path::Path;

use chatvault_core::{ChatVault, Role};
use chatvault_local::LocalFiles;
use serde_json::Value;

mod common;
use common::{local_vault, run, run_json};

/// Alice's two attachments' bytes, then Bob's: each different, so a file's content says
/// whose it is.
fn attachment(n: usize) -> Vec<u8> {
    [vec![0xa1; 1_000], vec![0xa2; 2_000], vec![0xb0; 4_000]][n].clone()
}

/// A local store: alice has two conversations (2 and 3 messages, an attachment each),
/// bob one (1 message, an attachment). Returns the URL and alice's and bob's ids.
fn make_store(dir: &Path) -> (String, BTreeSet<String>, String) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let ids = rt.block_on(async {
        let vault = local_vault(dir);
        let mut ids = Vec::new();
        for (n, (owner, messages)) in [("alice", 2), ("alice", 3), ("bob", 1)].iter().enumerate() {
            let user = owner.parse().unwrap();
            let mut c = vault.create_conversation(Some(&user)).await.unwrap();
            for i in 0..*messages {
                c.add_message(Role::User, format!("{owner} says {i}"))
                    .await
                    .unwrap();
            }
            c.attach_file("a.bin", attachment(n), "application/octet-stream")
                .await
                .unwrap();
            ids.push(c.id().to_string());
        }
        ids
    });
    let alice = ids[..2].iter().cloned().collect();
    (format!("local:{}", dir.display()), alice, ids[2].clone())
}

/// Which of the three attachments' bytes are in a file under `dir/files`.
fn attachments_on_disk(dir: &Path) -> BTreeSet<usize> {
    fn walk(path: &Path, found: &mut BTreeSet<usize>) {
        for entry in std::fs::read_dir(path).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(&path, found);
            } else if let Ok(bytes) = std::fs::read(&path) {
                found.extend((0..3).filter(|&n| bytes == attachment(n)));
            }
        }
    }
    let mut found = BTreeSet::new();
    walk(&dir.join("files"), &mut found);
    found
}

/// The ids in a JSON report.
fn ids(report: &Value) -> BTreeSet<String> {
    let ids = report["ids"].as_array().unwrap().iter();
    ids.map(|id| id.as_str().unwrap().to_owned()).collect()
}

/// How many conversations `stat` counts (of `owner`, or everyone's).
fn conversations(url: &str, owner: Option<&str>) -> u64 {
    let stat = match owner {
        Some(owner) => run_json(url, &["stat", "--owner", owner]),
        None => run_json(url, &["stat"]),
    };
    stat["conversations"].as_u64().unwrap()
}

#[test]
fn erase_dry_run_reports_the_owners_data_and_removes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let (url, alice, _) = make_store(tmp.path());
    let report = run_json(&url, &["erase", "--owner", "alice", "--dry-run"]);
    assert_eq!(report["conversations"], 2);
    assert_eq!(ids(&report), alice);
    assert_eq!(report["messages"], 5);
    assert_eq!(report["files"], 2);
    assert_eq!(report["bytes"], 3_000);
    assert_eq!(report["dry_run"], true);
    assert!(report["reclaimed_bytes"].is_null(), "{report}");

    let (code, out, err) = run(&url, &["erase", "--owner", "alice", "--dry-run"]);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(
        out,
        "would remove 2 conversations, 5 messages, 2 attachments (3000 bytes)\n"
    );
    assert_eq!(conversations(&url, Some("alice")), 2);
    assert_eq!(conversations(&url, None), 3);
    assert_eq!(attachments_on_disk(tmp.path()), BTreeSet::from([0, 1, 2]));
}

#[test]
fn erase_removes_the_owners_conversations_and_bytes_only() {
    let tmp = tempfile::tempdir().unwrap();
    let (url, _, bob) = make_store(tmp.path());
    assert_eq!(attachments_on_disk(tmp.path()), BTreeSet::from([0, 1, 2]));
    let (code, out, err) = run(&url, &["erase", "--owner", "alice"]);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(
        out,
        "removed 2 conversations, 5 messages, 2 attachments (3000 bytes)\n"
    );
    assert_eq!(conversations(&url, Some("alice")), 0);
    assert_eq!(attachments_on_disk(tmp.path()), BTreeSet::from([2]));
    let (code, out, err) = run(&url, &["show", &bob]);
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("bob says 0"), "{out}");

    // Nothing left to erase: a second run removes nothing and says so.
    let report = run_json(&url, &["erase", "--owner", "alice"]);
    assert_eq!(report["conversations"], 0);
    assert_eq!(report["dry_run"], false);
    // A local store gives space back as it removes: nothing to reclaim afterwards.
    assert!(report["reclaimed_bytes"].is_null(), "{report}");
    assert_eq!(conversations(&url, None), 1);
}

#[test]
fn purge_after_creation_0s_removes_everything_and_dry_run_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let (url, alice, bob) = make_store(tmp.path());
    let all: BTreeSet<String> = alice.iter().cloned().chain([bob]).collect();
    let purge = ["purge", "--expired", "--after-creation", "0s"];

    let report = run_json(&url, &[&purge[..], &["--dry-run"]].concat());
    assert_eq!(ids(&report), all);
    assert_eq!(report["messages"], 6);
    assert_eq!(report["bytes"], 7_000);
    assert_eq!(report["dry_run"], true);
    assert_eq!(conversations(&url, None), 3);
    assert_eq!(attachments_on_disk(tmp.path()), BTreeSet::from([0, 1, 2]));

    let (code, out, err) = run(&url, &purge);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(
        out,
        "removed 3 conversations, 6 messages, 3 attachments (7000 bytes)\n"
    );
    assert_eq!(conversations(&url, None), 0);
    assert_eq!(attachments_on_disk(tmp.path()), BTreeSet::new());
}

#[test]
fn purge_with_a_long_span_removes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let (url, _, _) = make_store(tmp.path());
    for span in ["--after-creation", "--after-activity"] {
        let report = run_json(&url, &["purge", "--expired", span, "3650d"]);
        assert_eq!(report["conversations"], 0, "{span}");
        assert_eq!(report["bytes"], 0, "{span}");
    }
    assert_eq!(conversations(&url, None), 3);
    assert_eq!(attachments_on_disk(tmp.path()), BTreeSet::from([0, 1, 2]));
}

#[test]
fn purge_keeps_the_owners_it_is_told_to() {
    let tmp = tempfile::tempdir().unwrap();
    let (url, _, bob) = make_store(tmp.path());
    let args = ["purge", "--expired", "--after-activity", "0s"];
    let report = run_json(&url, &[&args[..], &["--owner-keep", "alice"]].concat());
    assert_eq!(ids(&report), BTreeSet::from([bob]));
    assert_eq!(conversations(&url, Some("alice")), 2);
    assert_eq!(conversations(&url, Some("bob")), 0);
    assert_eq!(attachments_on_disk(tmp.path()), BTreeSet::from([0, 1]));
}

#[test]
fn a_bad_or_missing_duration_is_a_usage_error() {
    let tmp = tempfile::tempdir().unwrap();
    let (url, _, _) = make_store(tmp.path());
    let (code, out, err) = run(&url, &["purge", "--expired", "--after-activity", "30x"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(out.is_empty(), "{out}");
    assert!(err.contains("invalid value '30x'"), "{err}");
    assert!(err.contains("unknown unit \"x\""), "{err}");
    assert!(err.contains("30d, 12h, 90m, 45s"), "{err}");

    for args in [
        &["purge", "--expired"][..],
        &["purge", "--after-creation", "0s"],
        &[
            "purge",
            "--expired",
            "--after-creation",
            "0s",
            "--after-activity",
            "0s",
        ],
        &["erase"],
    ] {
        let (code, _, err) = run(&url, args);
        assert_eq!(code, Some(2), "{args:?}: {err}");
        assert!(err.contains("Usage: chatvault"), "{args:?}: {err}");
    }
    assert_eq!(conversations(&url, None), 3);
    assert_eq!(attachments_on_disk(tmp.path()), BTreeSet::from([0, 1, 2]));
}

#[test]
fn forgetting_in_a_store_that_does_not_exist_creates_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let url = format!("local:{}", tmp.path().join("none").display());
    for args in [
        &["erase", "--owner", "alice"][..],
        &["purge", "--expired", "--after-creation", "0s"],
    ] {
        let (code, _, err) = run(&url, args);
        assert_eq!(code, Some(3), "{args:?}: {err}");
        assert!(err.contains("cannot open store"), "{args:?}: {err}");
    }
    assert!(!tmp.path().join("none").exists());
}

/// A SQLite store (created by `connect`, so with incremental auto-vacuum): alice has
/// `n` conversations of two ~50 KB messages, bob one small one. The database is
/// checkpointed, so its file holds every page. Returns the URL, the database file and
/// bob's conversation.
fn make_sqlite_store(dir: &Path, n: usize) -> (String, std::path::PathBuf, String) {
    let file = dir.join("chats.db");
    let rt = tokio::runtime::Runtime::new().unwrap();
    let bob = rt.block_on(async {
        let db = chatvault_sql::SqliteMessages::connect(&format!("sqlite://{}", file.display()))
            .await
            .unwrap();
        let vault = ChatVault::new(db.clone(), LocalFiles::new(dir.join("files")).unwrap());
        let alice = "alice".parse().unwrap();
        for i in 0..n {
            let mut c = vault.create_conversation(Some(&alice)).await.unwrap();
            for j in 0..2 {
                let text = format!("{i}.{j} ").repeat(10_000);
                c.add_message(Role::User, text).await.unwrap();
            }
        }
        let mut c = vault
            .create_conversation(Some(&"bob".parse().unwrap()))
            .await
            .unwrap();
        c.add_message(Role::User, "bob says hi").await.unwrap();
        // Nothing freed yet: this only moves the WAL into the file.
        db.reclaim_space().await.unwrap();
        c.id().to_string()
    });
    let url = format!(
        "sqlite:{}?files={}",
        file.display(),
        dir.join("files").display()
    );
    (url, file, bob)
}

fn file_size(path: &Path) -> u64 {
    std::fs::metadata(path).unwrap().len()
}

#[test]
fn erase_on_a_sqlite_store_shrinks_its_file_and_says_by_how_much() {
    let tmp = tempfile::tempdir().unwrap();
    let (url, file, bob) = make_sqlite_store(tmp.path(), 6);
    let before = file_size(&file);
    assert!(before > 500_000, "the messages are in the file: {before}");

    // A dry run reclaims nothing and says so.
    let report = run_json(&url, &["erase", "--owner", "alice", "--dry-run"]);
    assert_eq!(report["conversations"], 6);
    assert!(report["reclaimed_bytes"].is_null(), "{report}");
    assert_eq!(file_size(&file), before);

    let (code, out, err) = run(&url, &["erase", "--owner", "alice"]);
    assert_eq!(code, Some(0), "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 2, "{out}");
    assert_eq!(
        lines[0],
        "removed 6 conversations, 12 messages, 0 attachments (0 bytes)"
    );
    let reclaimed: u64 = lines[1]
        .strip_prefix("reclaimed ")
        .and_then(|rest| rest.strip_suffix(" bytes: the database file shrank by that much"))
        .unwrap_or_else(|| panic!("{out}"))
        .parse()
        .unwrap();
    let after = file_size(&file);
    assert!(
        reclaimed > 500_000,
        "reclaimed only {reclaimed} of {before} bytes"
    );
    assert_eq!(before - after, reclaimed, "{before} -> {after}");
    let (code, out, err) = run(&url, &["show", &bob]);
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("bob says hi"), "{out}");
}

#[test]
fn purge_on_a_sqlite_store_reports_reclaimed_bytes_in_json() {
    let tmp = tempfile::tempdir().unwrap();
    let (url, file, _) = make_sqlite_store(tmp.path(), 3);
    let before = file_size(&file);
    let report = run_json(&url, &["purge", "--expired", "--after-creation", "0s"]);
    assert_eq!(report["conversations"], 4);
    let reclaimed = report["reclaimed_bytes"].as_u64().unwrap();
    assert!(reclaimed > 200_000, "{report}");
    assert_eq!(before - file_size(&file), reclaimed);
    assert_eq!(conversations(&url, None), 0);

    // Nothing removed, nothing left to give back: 0, not null.
    let report = run_json(&url, &["purge", "--expired", "--after-creation", "0s"]);
    assert_eq!(report["conversations"], 0);
    assert_eq!(report["reclaimed_bytes"], 0, "{report}");
}
