//! `LocalMessages::list_deleting`: conversations marked by `begin_delete` and not yet
//! deleted, found through their markers in `deleting/`, exactly, after crashes too.
#![allow(clippy::unwrap_used)] // tests may unwrap

use std::collections::BTreeSet;
use std::fs;
use std::path::Path;

use chatvault_core::backend::{PageLimit, StoredConversation};
use chatvault_core::keys::{MAX_SEGMENT_LEN, encode_component};
use chatvault_core::{
    ConversationId, ConversationRecord, ListOptions, MessagesBackend, NewMessage, Role, UserId,
};
use chatvault_local::LocalMessages;

fn cid(id: &str) -> ConversationId {
    ConversationId::parse(id).unwrap()
}

fn uid(id: &str) -> UserId {
    UserId::parse(id).unwrap()
}

fn limit(n: usize) -> PageLimit {
    PageLimit::new(n).unwrap()
}

fn marker(root: &Path, id: &str) -> std::path::PathBuf {
    root.join("deleting")
        .join(encode_component(id, MAX_SEGMENT_LEN))
}

async fn new_conv(store: &LocalMessages, id: &str, user: Option<&str>) {
    let mut record = ConversationRecord::new(user.map(uid));
    record.id = cid(id);
    store.create(&record).await.unwrap();
    store
        .append_messages_as(
            user.map(uid).as_ref(),
            &cid(id),
            vec![NewMessage::new(Role::User, "hello")],
        )
        .await
        .unwrap();
}

async fn deleting(store: &LocalMessages, user: Option<&str>) -> BTreeSet<String> {
    let user = user.map(uid);
    store
        .list_deleting(user.as_ref(), limit(1000))
        .await
        .unwrap()
        .iter()
        .map(ToString::to_string)
        .collect()
}

fn set(ids: &[&str]) -> BTreeSet<String> {
    ids.iter().map(|s| (*s).to_owned()).collect()
}

async fn listed(store: &LocalMessages, user: &str) -> BTreeSet<String> {
    store
        .list_conversations(Some(&uid(user)), &ListOptions::new())
        .await
        .unwrap()
        .items
        .iter()
        .map(|c| c.id.to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lists_marked_conversations_by_user_until_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let store = LocalMessages::open(dir.path()).unwrap();
    assert!(deleting(&store, None).await.is_empty(), "fresh store");
    new_conv(&store, "a1", Some("A")).await;
    new_conv(&store, "a2", Some("A")).await;
    new_conv(&store, "b1", Some("B")).await;
    new_conv(&store, "n1", None).await;
    assert!(
        deleting(&store, None).await.is_empty(),
        "nothing marked yet"
    );

    assert!(store.begin_delete(&cid("a1")).await.unwrap().is_some());
    assert!(store.begin_delete(&cid("b1")).await.unwrap().is_some());
    assert_eq!(deleting(&store, Some("A")).await, set(&["a1"]));
    assert_eq!(deleting(&store, Some("B")).await, set(&["b1"]));
    assert!(deleting(&store, Some("C")).await.is_empty());
    assert_eq!(deleting(&store, None).await, set(&["a1", "b1"]));
    let one = store.list_deleting(None, limit(1)).await.unwrap();
    assert_eq!(one.len(), 1);
    assert!(["a1", "b1"].contains(&one[0].as_str()));
    assert_eq!(listed(&store, "A").await, set(&["a2"]));
    assert!(listed(&store, "B").await.is_empty());

    // Marking again changes nothing; a conversation of no user is listed under `None`.
    assert!(store.begin_delete(&cid("a1")).await.unwrap().is_some());
    assert!(store.begin_delete(&cid("n1")).await.unwrap().is_some());
    assert_eq!(deleting(&store, None).await, set(&["a1", "b1", "n1"]));
    assert_eq!(deleting(&store, Some("A")).await, set(&["a1"]));

    for id in ["a1", "b1", "n1"] {
        assert!(store.delete(&cid(id)).await.unwrap());
        assert!(!marker(dir.path(), id).exists(), "{id}: marker left");
    }
    assert!(deleting(&store, None).await.is_empty());
    assert!(!store.delete(&cid("a1")).await.unwrap());
    assert_eq!(listed(&store, "A").await, set(&["a2"]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mark_without_its_delete_is_listed_after_reopening() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = LocalMessages::open(dir.path()).unwrap();
        new_conv(&store, "c", Some("u")).await;
        new_conv(&store, "d", Some("u")).await;
        store.begin_delete(&cid("c")).await.unwrap();
        // The process dies here, before `delete`.
    }
    let store = LocalMessages::open(dir.path()).unwrap();
    assert_eq!(deleting(&store, Some("u")).await, set(&["c"]));
    assert_eq!(deleting(&store, None).await, set(&["c"]));
    assert!(marker(dir.path(), "c").exists());
    // Also after the listing index is lost.
    fs::remove_dir_all(dir.path().join("index")).unwrap();
    let store = LocalMessages::open(dir.path()).unwrap();
    assert_eq!(deleting(&store, None).await, set(&["c"]));
    assert!(store.delete(&cid("c")).await.unwrap());
    assert!(deleting(&store, None).await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_marker_without_its_mark_is_not_listed_and_never_hides_a_later_mark() {
    let dir = tempfile::tempdir().unwrap();
    let store = LocalMessages::open(dir.path()).unwrap();
    new_conv(&store, "c", Some("u")).await;
    // A crash between the marker and the mark's commit: the marker as begin_delete
    // writes it (an empty file named like the conversation's directory).
    fs::create_dir_all(dir.path().join("deleting")).unwrap();
    fs::write(marker(dir.path(), "c"), b"").unwrap();
    let store = LocalMessages::open(dir.path()).unwrap();
    assert!(deleting(&store, None).await.is_empty());
    assert!(deleting(&store, Some("u")).await.is_empty());
    assert!(store.head(&cid("c")).await.unwrap().is_some(), "still live");
    // The stale marker is removed on the way; a later mark writes it again.
    assert!(!marker(dir.path(), "c").exists());
    store.begin_delete(&cid("c")).await.unwrap();
    assert_eq!(deleting(&store, None).await, set(&["c"]));

    // Again, with the stale marker still there when the real mark comes.
    new_conv(&store, "e", Some("u")).await;
    fs::write(marker(dir.path(), "e"), b"").unwrap();
    store.begin_delete(&cid("e")).await.unwrap();
    assert_eq!(deleting(&store, Some("u")).await, set(&["c", "e"]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delete_cut_after_its_commit_leaves_nothing_listed() {
    let dir = tempfile::tempdir().unwrap();
    let store = LocalMessages::open(dir.path()).unwrap();
    new_conv(&store, "c", Some("u")).await;
    store.begin_delete(&cid("c")).await.unwrap();
    // `delete`'s commit (the directory moved to trash/), then a crash before the marker
    // was removed.
    fs::rename(
        dir.path().join("conversations/c"),
        dir.path().join("trash/c"),
    )
    .unwrap();
    assert!(marker(dir.path(), "c").exists());
    let store = LocalMessages::open(dir.path()).unwrap();
    assert!(deleting(&store, None).await.is_empty());
    assert!(!marker(dir.path(), "c").exists(), "stale marker removed");

    // The same id, created and marked again after such a crash, is listed.
    new_conv(&store, "d", Some("u")).await;
    store.begin_delete(&cid("d")).await.unwrap();
    fs::rename(
        dir.path().join("conversations/d"),
        dir.path().join("trash/d"),
    )
    .unwrap();
    new_conv(&store, "d", Some("v")).await;
    store.begin_delete(&cid("d")).await.unwrap();
    assert_eq!(deleting(&store, Some("v")).await, set(&["d"]));
    // `delete` of a missing conversation removes a stale marker too.
    fs::write(marker(dir.path(), "gone"), b"").unwrap();
    assert!(!store.delete(&cid("gone")).await.unwrap());
    assert!(!marker(dir.path(), "gone").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_marker_is_written_before_the_mark() {
    let dir = tempfile::tempdir().unwrap();
    let store = LocalMessages::open(dir.path()).unwrap();
    new_conv(&store, "c", Some("u")).await;
    // A marker cannot be written: `deleting` is a file.
    fs::write(dir.path().join("deleting"), b"in the way").unwrap();
    assert!(store.begin_delete(&cid("c")).await.is_err());
    assert!(
        store.head(&cid("c")).await.unwrap().is_some(),
        "marked without a marker"
    );
    fs::remove_file(dir.path().join("deleting")).unwrap();
    store.begin_delete(&cid("c")).await.unwrap();
    assert!(store.head(&cid("c")).await.unwrap().is_none());
    assert_eq!(deleting(&store, None).await, set(&["c"]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mark_without_a_marker_is_found_again_by_begin_delete_or_repair() {
    // A conversation marked by an earlier release has no marker: not listed (the
    // listing does not scan every conversation) until begin_delete or repair runs.
    let dir = tempfile::tempdir().unwrap();
    let store = LocalMessages::open(dir.path()).unwrap();
    new_conv(&store, "c", Some("u")).await;
    new_conv(&store, "d", Some("u")).await;
    store.begin_delete(&cid("c")).await.unwrap();
    store.begin_delete(&cid("d")).await.unwrap();
    fs::remove_dir_all(dir.path().join("deleting")).unwrap();
    assert!(deleting(&store, None).await.is_empty());

    store.begin_delete(&cid("c")).await.unwrap();
    assert_eq!(deleting(&store, None).await, set(&["c"]));

    let report = store.repair(true).await.unwrap();
    assert!(
        report
            .rebuilt
            .iter()
            .any(|r| r.path == marker(dir.path(), "d")),
        "{report:?}"
    );
    assert!(deleting(&store, None).await.len() == 1, "dry run wrote");
    let report = store.repair(false).await.unwrap();
    assert_eq!(report.rebuilt.len(), 1, "{report:?}");
    assert_eq!(deleting(&store, None).await, set(&["c", "d"]));
    assert!(store.repair(true).await.unwrap().is_clean());

    // A marker of a gone conversation is reported and removed by repair.
    fs::write(marker(dir.path(), "gone"), b"").unwrap();
    let report = store.repair(false).await.unwrap();
    assert_eq!(report.rebuilt.len(), 1, "{report:?}");
    assert!(!marker(dir.path(), "gone").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_ids_saved_and_imported_marks_are_listed() {
    let dir = tempfile::tempdir().unwrap();
    let store = LocalMessages::open(dir.path()).unwrap();
    // A directory name shortened with a hash: the id comes from the record.
    let long = format!("x{}", ":".repeat(127));
    assert!(encode_component(&long, MAX_SEGMENT_LEN).contains('~'));
    new_conv(&store, &long, Some("u")).await;
    store.begin_delete(&cid(&long)).await.unwrap();
    assert_eq!(deleting(&store, Some("u")).await, set(&[&long]));

    let marked = |id: &str| {
        let mut record = ConversationRecord::new(Some(uid("u")));
        record.id = cid(id);
        let mut c = StoredConversation::new(record);
        c.deleting = true;
        c
    };
    store.save(&marked("saved")).await.unwrap();
    assert_eq!(store.import(vec![marked("imported")]).await.unwrap(), 1);
    let store = LocalMessages::open(dir.path()).unwrap();
    assert_eq!(
        deleting(&store, Some("u")).await,
        set(&[&long, "saved", "imported"])
    );
    for id in [long.as_str(), "saved", "imported"] {
        assert!(store.delete(&cid(id)).await.unwrap());
    }
    assert!(deleting(&store, None).await.is_empty());
    assert_eq!(
        fs::read_dir(dir.path().join("deleting")).unwrap().count(),
        0
    );
}
