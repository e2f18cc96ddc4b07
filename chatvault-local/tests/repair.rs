//! `LocalMessages::repair`: every derived file checked against the logs; a dry run
//! reports and writes nothing, a repair rebuilds exactly what was wrong and never touches
//! a damaged log.
#![allow(clippy::unwrap_used)] // tests may unwrap

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use chatvault_core::backend::MessagesBackendExt;
use chatvault_core::{
    ConversationId, ConversationRecord, ListOptions, MessageUpdate, MessagesBackend, NewMessage,
    Part, Role, UserId,
};
use chatvault_local::{LocalMessages, RepairReport};

fn cid(id: &str) -> ConversationId {
    ConversationId::parse(id).unwrap()
}

/// A store with conversations `a` (45 messages: its checkpoint is rewritten at least
/// once, one message updated after) and `b` (3), listed once (so the listing index has a
/// snapshot).
async fn store(root: &Path) -> LocalMessages {
    let store = LocalMessages::open(root).unwrap();
    for (id, n) in [("a", 45), ("b", 3)] {
        let mut record = ConversationRecord::new(Some(UserId::parse("u").unwrap()));
        record.id = cid(id);
        store.create(&record).await.unwrap();
        for i in 0..n {
            store
                .append_messages(
                    &cid(id),
                    vec![NewMessage::new(Role::User, format!("{id} {i}"))],
                )
                .await
                .unwrap();
        }
    }
    let all = store.get(&cid("a")).await.unwrap().unwrap().messages;
    let target = &all[1];
    let update = MessageUpdate {
        parts: Some(vec![Part::text("edited")]),
        ..Default::default()
    };
    store
        .update_message(&cid("a"), &target.id, target.revision, &update)
        .await
        .unwrap();
    listed(&store).await;
    store
}

async fn listed(store: &LocalMessages) -> Vec<String> {
    let page = store
        .list_conversations(
            Some(&UserId::parse("u").unwrap()),
            &ListOptions::new().include_archived(true),
        )
        .await
        .unwrap();
    page.items.iter().map(|s| s.id.to_string()).collect()
}

/// Every file under `root` (lock files and temp files aside) with its bytes.
fn files(root: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    fn walk(dir: &Path, out: &mut BTreeMap<PathBuf, Vec<u8>>) {
        for entry in fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(&path, out);
            } else {
                out.insert(path.clone(), fs::read(&path).unwrap());
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(root, &mut out);
    out
}

fn find(dir: &Path, prefix: &str) -> PathBuf {
    fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(prefix) && !n.ends_with(".tmp"))
        })
        .unwrap()
}

fn problems(report: &RepairReport) -> Vec<String> {
    report.rebuilt.iter().map(ToString::to_string).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clean_store_has_nothing_to_repair() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path()).await;
    let before = files(dir.path());
    let dry = store.repair(true).await.unwrap();
    assert!(dry.is_clean(), "{dry:#?}");
    assert_eq!(dry.conversations, 2);
    let real = store.repair(false).await.unwrap();
    assert!(real.is_clean(), "{real:#?}");
    assert_eq!(files(dir.path()), before, "a clean repair wrote something");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dry_run_reports_damaged_derived_files_and_a_repair_rebuilds_them() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let expected = {
        let store = store(root).await;
        store.get(&cid("a")).await.unwrap().unwrap()
    };
    let a = root.join("conversations/a");
    let b = root.join("conversations/b");
    // The checkpoint of `a` garbled, the seq index of `b` deleted, a lock file holding
    // bytes, the listing index's snapshot deleted.
    let header = a.join("header.json");
    let mut bytes = fs::read(&header).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x55;
    fs::write(&header, bytes).unwrap();
    fs::remove_file(find(&b, "index-")).unwrap();
    fs::write(b.join("lock"), b"junk").unwrap();
    fs::remove_file(root.join("index/snapshot")).unwrap();

    let store = LocalMessages::open(root).unwrap();
    let before = files(root);
    let dry = store.repair(true).await.unwrap();
    assert!(dry.dry_run);
    assert!(dry.damaged.is_empty(), "{dry:#?}");
    let found = problems(&dry);
    assert_eq!(found.len(), 4, "{found:#?}");
    for (path, what) in [
        ("a/header.json", "damaged"),
        ("b/index-", "missing"),
        ("b/lock", "holds 4 bytes"),
        ("index", "snapshot missing"),
    ] {
        assert!(
            found.iter().any(|p| p.contains(path) && p.contains(what)),
            "{path} {what}: {found:#?}"
        );
    }
    assert_eq!(files(root), before, "the dry run changed a file");

    let real = store.repair(false).await.unwrap();
    assert_eq!(
        problems(&real),
        found,
        "the repair found what the dry run did"
    );
    let again = store.repair(true).await.unwrap();
    assert!(again.is_clean(), "still wrong after the repair: {again:#?}");
    assert_eq!(fs::read(b.join("lock")).unwrap(), b"");

    // Everything reads back as it was, from a fresh handle.
    let store = LocalMessages::open(root).unwrap();
    assert_eq!(store.get(&cid("a")).await.unwrap().unwrap(), expected);
    let mut ids = listed(&store).await;
    ids.sort();
    assert_eq!(ids, ["a", "b"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_log_is_reported_and_left_as_it_is() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    drop(store(root).await);
    let log = find(&root.join("conversations/b"), "log-");
    let mut bytes = fs::read(&log).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x01;
    fs::write(&log, &bytes).unwrap();
    let store = LocalMessages::open(root).unwrap();
    let report = store.repair(false).await.unwrap();
    assert_eq!(report.damaged.len(), 1, "{report:#?}");
    assert!(
        report.damaged[0].path.ends_with("conversations/b"),
        "{report:#?}"
    );
    assert!(report.damaged[0].problem.contains("damaged"), "{report:#?}");
    assert_eq!(fs::read(&log).unwrap(), bytes, "the log was changed");
    let err = store.get(&cid("b")).await.unwrap_err();
    assert_eq!(err.kind(), chatvault_core::ErrorKind::Corrupt);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unfinished_record_is_reported_then_cut_off() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let expected = {
        let store = store(root).await;
        store.get(&cid("b")).await.unwrap().unwrap()
    };
    // What a writer killed half way through a record leaves: the start of a record.
    let log = find(&root.join("conversations/b"), "log-");
    let mut bytes = fs::read(&log).unwrap();
    let whole = bytes.len();
    let tail = bytes[whole - 60..whole - 20].to_vec();
    bytes.extend_from_slice(b"CVL1");
    bytes.extend_from_slice(&tail);
    fs::write(&log, &bytes).unwrap();
    let store = LocalMessages::open(root).unwrap();
    let dry = store.repair(true).await.unwrap();
    let found = problems(&dry);
    assert_eq!(found.len(), 1, "{dry:#?}");
    assert!(found[0].contains("unfinished record"), "{found:?}");
    assert_eq!(fs::read(&log).unwrap().len(), bytes.len());
    store.repair(false).await.unwrap();
    assert_eq!(
        fs::read(&log).unwrap().len(),
        whole,
        "the unfinished record stays"
    );
    assert!(store.repair(true).await.unwrap().is_clean());
    assert_eq!(store.get(&cid("b")).await.unwrap().unwrap(), expected);
}
