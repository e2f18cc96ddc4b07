//! `chatvault repair [--dry-run]`: derived files damaged, reported by a dry run that
//! changes nothing, rebuilt by a repair, and `verify` clean after.
#![allow(clippy::unwrap_used)] // tests may unwrap

use std::path::{Path, PathBuf};

use chatvault_core::{ChatVault, Role};

mod common;
use common::{chatvault, files_under, local_vault, run};

/// A local store of two conversations (one of 40 messages), listed once so that its
/// listing index has a snapshot.
fn local_store(dir: &Path) -> String {
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        let vault = local_vault(dir);
        let user = "alice".parse().unwrap();
        for n in [40, 2] {
            let mut c = vault.create_conversation(Some(&user)).await.unwrap();
            for i in 0..n {
                c.add_message(Role::User, format!("message {i}"))
                    .await
                    .unwrap();
            }
        }
        let page = vault
            .list_conversations(&user, &chatvault_core::ListOptions::new())
            .await
            .unwrap();
        assert_eq!(page.items.len(), 2);
    });
    format!("local:{}", dir.display())
}

/// The directory of the conversation with the most messages (the biggest log).
fn big_conversation(messages: &Path) -> PathBuf {
    let size = |dir: &Path| -> u64 {
        std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().metadata().unwrap().len())
            .sum()
    };
    std::fs::read_dir(messages.join("conversations"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .max_by_key(|d| size(d))
        .unwrap()
}

#[test]
fn a_dry_run_reports_a_repair_rebuilds_and_verify_is_clean_after() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("store");
    let store = local_store(&dir);
    let (code, out, err) = run(&store, &["repair", "--dry-run"]);
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(
        out.contains("2 conversations checked: nothing to repair"),
        "{out}"
    );

    // The listing index's snapshot garbled, its journal deleted, a checkpoint garbled.
    let messages = dir.join("messages");
    let snapshot = messages.join("index/snapshot");
    let mut bytes = std::fs::read(&snapshot).unwrap();
    let last = bytes.len() - 2;
    bytes[last] ^= 0x20;
    std::fs::write(&snapshot, bytes).unwrap();
    let header = big_conversation(&messages).join("header.json");
    let mut bytes = std::fs::read(&header).unwrap();
    bytes.truncate(bytes.len() / 2);
    std::fs::write(&header, bytes).unwrap();

    let before = files_under(&dir);
    let (code, out, err) = run(&store, &["repair", "--dry-run"]);
    assert_eq!(code, Some(4), "{out}{err}");
    assert!(
        out.contains("WOULD REBUILD") && out.contains("header.json: damaged"),
        "{out}"
    );
    assert!(out.contains("listing index: snapshot damaged"), "{out}");
    assert!(out.contains("2 derived file(s) to rebuild"), "{out}");
    assert!(err.contains("run repair without --dry-run"), "{err}");
    assert_eq!(files_under(&dir), before, "the dry run changed a file");

    let (code, out, err) = run(&store, &["repair", "--json"]);
    assert_eq!(code, Some(0), "{out}{err}");
    let report: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(report["dry_run"], false);
    assert_eq!(report["conversations"], 2);
    assert_eq!(report["rebuilt"].as_array().unwrap().len(), 2, "{report}");
    assert_eq!(report["damaged"].as_array().unwrap().len(), 0, "{report}");

    let (code, out, err) = run(&store, &["repair", "--dry-run"]);
    assert_eq!(code, Some(0), "repaired: {out}{err}");
    let (code, out, err) = run(&store, &["verify", "--read-blobs", "--json"]);
    assert_eq!(code, Some(0), "{out}{err}");
    let report: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(report["messages"], 42);
}

#[test]
fn damaged_data_is_left_alone_and_the_exit_code_says_so() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("store");
    let store = local_store(&dir);
    let conversation = big_conversation(&dir.join("messages"));
    let log = std::fs::read_dir(&conversation)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.file_name().unwrap().to_str().unwrap().starts_with("log-"))
        .unwrap();
    let mut bytes = std::fs::read(&log).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x01;
    std::fs::write(&log, &bytes).unwrap();
    let (code, out, err) = run(&store, &["repair"]);
    assert_eq!(code, Some(4), "{out}{err}");
    assert!(
        out.contains("DAMAGED") && out.contains("damaged log"),
        "{out}"
    );
    assert!(err.contains("left as they are"), "{err}");
    assert_eq!(std::fs::read(&log).unwrap(), bytes, "the log was changed");
}

#[test]
fn a_sqlite_search_index_is_checked_and_rebuilt() {
    let tmp = tempfile::tempdir().unwrap();
    let src = local_store(&tmp.path().join("src"));
    let file = tmp.path().join("app.db");
    let db = format!("sqlite:{}", file.display());
    let out = chatvault().args(["copy", &src, &db]).output().unwrap();
    assert!(out.status.success());
    let (code, out, err) = run(&db, &["repair", "--dry-run"]);
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(out.contains("nothing to repair"), "{out}");

    let rt = tokio::runtime::Runtime::new().unwrap();
    let hits = |query: &'static str| {
        let url = format!("sqlite://{}", file.display());
        rt.block_on(async move {
            let db = chatvault_sql::SqliteMessages::connect(&url).await.unwrap();
            let options = chatvault_core::SearchOptions::new();
            let user = "alice".parse().unwrap();
            let vault = ChatVault::new(db, chatvault_memory::MemoryFiles::new());
            vault
                .search(&user, query, &options)
                .await
                .unwrap()
                .items
                .len()
        })
    };
    let found = hits("message");
    assert!(found > 0, "search finds the messages");
    rt.block_on(async {
        let url = format!("sqlite://{}", file.display());
        let db = chatvault_sql::SqliteMessages::connect(&url).await.unwrap();
        sqlx::query(
            "INSERT INTO chatvault_messages_fts (chatvault_messages_fts) VALUES ('delete-all')",
        )
        .execute(db.pool())
        .await
        .unwrap();
    });
    assert_eq!(hits("message"), 0, "the damage did not happen");

    let (code, out, err) = run(&db, &["repair", "--dry-run"]);
    assert_eq!(code, Some(4), "{out}{err}");
    assert!(out.contains("search index does not match"), "{out}");
    assert_eq!(hits("message"), 0, "the dry run rebuilt the index");
    let (code, out, err) = run(&db, &["verify"]);
    assert_eq!(code, Some(4), "{out}{err}");
    let (code, out, err) = run(&db, &["repair"]);
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(out.contains("REBUILT"), "{out}");
    assert_eq!(hits("message"), found);
    let (code, out, err) = run(&db, &["verify"]);
    assert_eq!(code, Some(0), "{out}{err}");
}

#[test]
fn a_store_that_derives_nothing_says_so() {
    let (code, out, err) = run("memory:", &["repair"]);
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(out.contains("nothing to repair"), "{out}");
    let tmp = tempfile::tempdir().unwrap();
    let missing = format!("local:{}", tmp.path().join("nope").display());
    let (code, _, err) = run(&missing, &["repair"]);
    assert_eq!(code, Some(3), "{err}");
    assert_eq!(std::fs::read_dir(tmp.path()).unwrap().count(), 0);
}
