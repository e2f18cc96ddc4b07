//! `LocalMessages` on the 0.2 contract beyond the conformance suite: what must survive a
//! new instance, a checkpoint, a lost checkpoint or index, and other processes' caches:
//! message updates (edit records), idempotent appends by message id, and the delete
//! protocol's mark.
#![allow(clippy::unwrap_used)] // tests may unwrap

use std::fs;
use std::path::Path;
use std::sync::Arc;

use chatvault_core::backend::MessagesBackendExt;
use chatvault_core::{
    ConversationId, ConversationRecord, ErrorKind, ListOptions, MessageRange, MessageUpdate,
    MessagesBackend, NewMessage, Part, Role, UserId,
};
use chatvault_local::LocalMessages;

fn cid(id: &str) -> ConversationId {
    ConversationId::parse(id).unwrap()
}

fn uid(id: &str) -> UserId {
    UserId::parse(id).unwrap()
}

async fn new_conv(store: &LocalMessages, id: &str) {
    let mut record = ConversationRecord::new(Some(uid("u")));
    record.id = cid(id);
    store.create(&record).await.unwrap();
}

fn text_update(text: &str) -> MessageUpdate {
    MessageUpdate {
        parts: Some(vec![Part::text(text)]),
        ..Default::default()
    }
}

async fn contents(store: &LocalMessages, id: &str) -> Vec<String> {
    let page = store
        .messages(&cid(id), &MessageRange::all())
        .await
        .unwrap();
    page.items.iter().map(|m| m.content()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_update_survives_new_instances_checkpoints_and_lost_derived_files() {
    let dir = tempfile::tempdir().unwrap();
    let store = LocalMessages::open(dir.path()).unwrap();
    new_conv(&store, "c").await;
    let first = store
        .append_messages(
            &cid("c"),
            vec![
                NewMessage::new(Role::User, "one"),
                NewMessage::new(Role::Assistant, "two"),
            ],
        )
        .await
        .unwrap();
    let target = first.messages[1].clone();
    let updated = store
        .update_message(&cid("c"), &target.id, 1, &text_update("two, edited"))
        .await
        .unwrap();
    assert_eq!(updated.message.revision, 2);
    assert_eq!(updated.message.seq, 2);
    assert_eq!(contents(&store, "c").await, ["one", "two, edited"]);
    // A stale revision is a conflict, a missing message NotFound; neither stores anything.
    let stale = store
        .update_message(&cid("c"), &target.id, 1, &text_update("lost"))
        .await
        .unwrap_err();
    assert_eq!(stale.kind(), ErrorKind::Conflict);
    let missing = store
        .update_message(
            &cid("c"),
            &chatvault_core::MessageId::new(),
            1,
            &text_update("x"),
        )
        .await
        .unwrap_err();
    assert_eq!(missing.kind(), ErrorKind::NotFound);
    let reopened = LocalMessages::open(dir.path()).unwrap();
    assert_eq!(contents(&reopened, "c").await, ["one", "two, edited"]);
    // Enough appends for checkpoints to cover the update, and a second update after one.
    for i in 0..70 {
        store
            .append_messages(
                &cid("c"),
                vec![NewMessage::new(Role::User, format!("m{i}"))],
            )
            .await
            .unwrap();
    }
    store
        .update_message(&cid("c"), &target.id, 2, &text_update("two, twice"))
        .await
        .unwrap();
    let want = {
        let mut v = vec!["one".to_owned(), "two, twice".to_owned()];
        v.extend((0..70).map(|i| format!("m{i}")));
        v
    };
    for s in [store.clone(), LocalMessages::open(dir.path()).unwrap()] {
        assert_eq!(contents(&s, "c").await, want);
        let one = s
            .messages(&cid("c"), &MessageRange::after(1).limit(1))
            .await
            .unwrap();
        assert_eq!(one.items[0].content(), "two, twice");
        assert_eq!(one.items[0].revision, 3);
        let whole = s.get(&cid("c")).await.unwrap().unwrap();
        assert_eq!(whole.messages[1].content(), "two, twice");
    }
    // Without checkpoint and index: the replay of the log finds the newest version.
    let conv = dir.path().join("conversations/c");
    fs::remove_file(conv.join("header.json")).unwrap();
    fs::remove_file(conv.join("index-1")).unwrap();
    let fresh = LocalMessages::open(dir.path()).unwrap();
    assert_eq!(contents(&fresh, "c").await, want);
    let head = fresh.head(&cid("c")).await.unwrap().unwrap();
    assert_eq!(head.record.message_count, 72);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retried_append_stores_nothing_new_even_in_another_instance() {
    let dir = tempfile::tempdir().unwrap();
    let store = LocalMessages::open(dir.path()).unwrap();
    new_conv(&store, "c").await;
    let batch = vec![
        NewMessage::new(Role::User, "a"),
        NewMessage::new(Role::Assistant, "b"),
    ];
    let first = store
        .append_messages(&cid("c"), batch.clone())
        .await
        .unwrap();
    for s in [store.clone(), LocalMessages::open(dir.path()).unwrap()] {
        let again = s.append_messages(&cid("c"), batch.clone()).await.unwrap();
        assert_eq!(again.messages, first.messages);
        let head = s.head(&cid("c")).await.unwrap().unwrap();
        assert_eq!(head.record.message_count, 2);
    }
    // Appended by another instance since this one last looked: still found.
    let other = LocalMessages::open(dir.path()).unwrap();
    let third = vec![NewMessage::new(Role::User, "c")];
    other
        .append_messages(&cid("c"), third.clone())
        .await
        .unwrap();
    let again = store.append_messages(&cid("c"), third).await.unwrap();
    assert_eq!(again.messages[0].seq, 3);
    assert_eq!(contents(&store, "c").await, ["a", "b", "c"]);
    // The same id with other content is AlreadyExists, and stores nothing.
    let mut clash = batch[0].clone();
    clash.parts = vec![Part::text("not a")];
    let err = store
        .append_messages(&cid("c"), vec![clash])
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::AlreadyExists);
    assert_eq!(contents(&store, "c").await, ["a", "b", "c"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sixteen_tasks_retrying_one_append_store_it_once() {
    let dir = tempfile::tempdir().unwrap();
    let store = LocalMessages::open(dir.path()).unwrap();
    new_conv(&store, "c").await;
    let message = NewMessage::new(Role::User, "once");
    let mut tasks = Vec::new();
    for _ in 0..16 {
        let store = store.clone();
        let message = message.clone();
        tasks.push(tokio::spawn(async move {
            store
                .append_messages(&cid("c"), vec![message])
                .await
                .unwrap()
        }));
    }
    for t in tasks {
        let appended = t.await.unwrap();
        assert_eq!(appended.messages[0].seq, 1);
    }
    assert_eq!(contents(&store, "c").await, ["once"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_delete_mark_is_durable() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(LocalMessages::open(dir.path()).unwrap());
    new_conv(&store, "c").await;
    new_conv(&store, "d").await;
    store
        .append_messages(&cid("c"), vec![NewMessage::new(Role::User, "x")])
        .await
        .unwrap();
    let files = store.begin_delete(&cid("c")).await.unwrap();
    assert_eq!(files, Some(Vec::new()));
    let check = |s: LocalMessages| async move {
        assert!(s.head(&cid("c")).await.unwrap().is_none());
        assert!(s.get(&cid("c")).await.unwrap().is_none());
        let listed = s
            .list_conversations(Some(&uid("u")), &ListOptions::new())
            .await
            .unwrap();
        let ids: Vec<String> = listed.items.iter().map(|c| c.id.to_string()).collect();
        assert_eq!(ids, ["d"]);
        let err = s
            .append_messages(&cid("c"), vec![NewMessage::new(Role::User, "late")])
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::NotFound);
        assert_eq!(s.begin_delete(&cid("c")).await.unwrap(), Some(Vec::new()));
    };
    check((*store).clone()).await;
    check(LocalMessages::open(dir.path()).unwrap()).await;
    // Also after the listing index is lost: the rebuild leaves it out.
    fs::remove_dir_all(dir.path().join("index")).unwrap();
    check(LocalMessages::open(dir.path()).unwrap()).await;
    assert!(store.delete(&cid("c")).await.unwrap());
    assert!(!Path::new(&dir.path().join("conversations/c")).exists());
    assert!(store.begin_delete(&cid("c")).await.unwrap().is_none());
    assert!(!store.delete(&cid("c")).await.unwrap());
}

/// A log replaced in place (same file, same identity) by another conversation's log with
/// the same id: this process's map of message ids is found stale and rebuilt, so an id
/// the old log held is not taken for a retry.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_map_of_message_ids_is_rebuilt() {
    let dir = tempfile::tempdir().unwrap();
    let store = LocalMessages::open(dir.path()).unwrap();
    new_conv(&store, "c").await;
    let old = NewMessage::new(Role::User, "old");
    store
        .append_messages(&cid("c"), vec![old.clone()])
        .await
        .unwrap();
    // Another conversation "c", with more messages, elsewhere.
    let other_dir = tempfile::tempdir().unwrap();
    let other = LocalMessages::open(other_dir.path()).unwrap();
    new_conv(&other, "c").await;
    for text in ["x", "y", "z"] {
        other
            .append_messages(&cid("c"), vec![NewMessage::new(Role::User, text)])
            .await
            .unwrap();
    }
    let conv = dir.path().join("conversations/c");
    let replacement = fs::read(other_dir.path().join("conversations/c/log-1")).unwrap();
    fs::write(conv.join("log-1"), replacement).unwrap(); // same inode
    fs::remove_file(conv.join("header.json")).unwrap();
    fs::remove_file(conv.join("index-1")).unwrap();
    let mut again = old.clone();
    again.parts = vec![Part::text("old, resent")];
    let appended = store.append_messages(&cid("c"), vec![again]).await.unwrap();
    assert_eq!(appended.messages[0].seq, 4, "a new message, not a clash");
    assert_eq!(contents(&store, "c").await, ["x", "y", "z", "old, resent"]);
}
