//! Stores written by chatvault-local 0.1 stay readable: `tests/fixtures/v0.1/` holds a
//! `LocalMessages` store (`messages/`) and a `LocalFiles` store (`files/`) written by the
//! 0.1 code, plus `expected.json`, what that code was given and answered. The test copies
//! the fixture into a temporary directory (opening a store may upgrade it in place) and
//! reads everything back with the current code.
//!
//! # How the fixture was made
//!
//! With the 0.1 code, by the ignored test `generator_writes_the_v0_1_fixture` of this
//! file, once:
//!
//! ```text
//! cargo test -p chatvault-local --test compat_v0_1 -- --ignored generator_writes_the_v0_1_fixture
//! ```
//!
//! The generator is in this file as it was at commit 8bdc190 of this repository
//! (`git show 8bdc190:chatvault-local/tests/compat_v0_1.rs`), where it ran: several users
//! (one needing encoding), a conversation with no user, an archived one with an explicit
//! title, auto-titles, unicode, metadata with exact numbers (`u64::MAX`, `i64::MIN`, 0.1,
//! 9007199254740993), system/user/assistant/tool/custom roles, attachments (bytes in
//! `LocalFiles`, records in the messages), an empty conversation, and a record left past
//! its header as a crash between an append's two writes leaves it. It was removed when
//! the crate moved to the 0.2 API, which it cannot be compiled against.
#![allow(clippy::unwrap_used)] // tests may unwrap

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use chatvault_core::backend::MessagesBackendExt;
use chatvault_core::backend::{FilesBackendExt, StoredConversation};
use chatvault_core::{
    ConversationId, ListOptions, MessageRange, MessagesBackend, NewMessage, Role, StorageKey,
    UserId,
};
use chatvault_local::{LocalFiles, LocalMessages};
use serde::Deserialize;
use serde_json::json;

fn fixture_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/v0.1")
}

/// What the generator stored: every conversation as the 0.1 code read it back, and the
/// bytes of every key in the files store.
#[derive(Debug, Deserialize)]
struct Expected {
    conversations: Vec<StoredConversation>,
    /// Storage key -> bytes (as UTF-8 text: the fixture's files are text).
    files: BTreeMap<String, String>,
    /// `list_conversations(user, include_archived)` ids per user (`null` key: everyone).
    listings: BTreeMap<String, Vec<String>>,
}

fn exact_numbers() -> chatvault_core::Metadata {
    let mut m = serde_json::Map::new();
    m.insert("u64_max".into(), json!(u64::MAX));
    m.insert("i64_min".into(), json!(i64::MIN));
    m.insert("zero_point_one".into(), json!(0.1));
    m.insert("above_2_53".into(), json!(9_007_199_254_740_993_u64));
    m.insert(
        "nested".into(),
        json!({"list": [1, -2, 3.5, null, true, "ünïcødé ✓ 🦀"], "empty": {}}),
    );
    m
}

fn cid(id: &str) -> ConversationId {
    ConversationId::parse(id).unwrap()
}

async fn listing_ids(store: &LocalMessages, user: Option<&str>) -> Vec<String> {
    let user = user.map(|u| UserId::parse(u).unwrap());
    let mut out = Vec::new();
    let mut options = ListOptions::new().limit(2).unwrap().include_archived(true);
    loop {
        let page = store
            .list_conversations(user.as_ref(), &options)
            .await
            .unwrap();
        out.extend(page.items.iter().map(|s| s.id.to_string()));
        match page.next_cursor {
            Some(c) => options = options.cursor(&c).unwrap(),
            None => return out,
        }
    }
}

fn copy_tree(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for entry in fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// Copies the fixture into a temporary directory and opens its stores there.
fn open_copy() -> (tempfile::TempDir, LocalMessages, LocalFiles, Expected) {
    let tmp = tempfile::tempdir().unwrap();
    copy_tree(&fixture_dir(), tmp.path());
    let expected: Expected =
        serde_json::from_slice(&fs::read(tmp.path().join("expected.json")).unwrap()).unwrap();
    let messages = LocalMessages::open(tmp.path().join("messages")).unwrap();
    let files = LocalFiles::new(tmp.path().join("files")).unwrap();
    (tmp, messages, files, expected)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_v0_1_fixture_reads_back_exactly() {
    let (_tmp, messages, files, expected) = open_copy();
    assert_eq!(
        expected.conversations.len(),
        5,
        "the fixture's expectations"
    );

    for want in &expected.conversations {
        let id = &want.record.id;
        let got = messages.get(id).await.unwrap().unwrap();
        assert_eq!(&got, want, "get({id})");
        let head = messages.head(id).await.unwrap().unwrap();
        assert_eq!(head.record, want.record, "head({id})");
        assert_eq!(head.files, want.files, "files({id})");
        let all = messages.messages(id, &MessageRange::all()).await.unwrap();
        assert_eq!(all.items, want.messages, "messages({id})");
        // Windows through the index, one message at a time.
        for m in &want.messages {
            let one = messages
                .messages(id, &MessageRange::after(m.seq - 1).limit(1))
                .await
                .unwrap();
            assert_eq!(one.items, vec![m.clone()], "message {} of {id}", m.seq);
        }
    }
    for (user, ids) in &expected.listings {
        let user = (user != "null").then_some(user.as_str());
        assert_eq!(
            &listing_ids(&messages, user).await,
            ids,
            "listing of {user:?}"
        );
    }
    for (key, text) in &expected.files {
        let key = StorageKey::parse(key.as_str()).unwrap();
        let bytes = files.download(&key).await.unwrap().unwrap();
        assert_eq!(bytes.as_ref(), text.as_bytes(), "bytes of {key}");
    }

    // Spot checks that do not depend on expected.json: what the fixture must hold.
    let c1 = messages.get(&cid("conv-alice-1")).await.unwrap().unwrap();
    assert_eq!(
        c1.record.user_id.as_ref().map(|u| u.as_str()),
        Some("alice@example.com")
    );
    assert_eq!(
        c1.record.title.as_deref(),
        Some("Grüße aus Köln 🦀 — how are you? 日本語も大丈夫")
    );
    let seqs: Vec<u64> = c1.messages.iter().map(|m| m.seq).collect();
    assert_eq!(seqs, [1, 2, 3, 4, 5]);
    assert_eq!(
        c1.messages[1].content(),
        "Grüße aus Köln 🦀 — how are\nyou? 日本語も大丈夫"
    );
    assert_eq!(c1.messages[3].role, Role::Tool);
    assert_eq!(c1.messages[4].role, Role::Other("critic".into()));
    let meta = &c1.messages[1].metadata;
    assert_eq!(meta["u64_max"].as_u64(), Some(u64::MAX));
    assert_eq!(meta["i64_min"].as_i64(), Some(i64::MIN));
    assert_eq!(meta["zero_point_one"].as_f64(), Some(0.1));
    assert_eq!(meta["above_2_53"].as_u64(), Some(9_007_199_254_740_993));
    assert_eq!(c1.record.metadata, exact_numbers());
    assert_eq!(c1.files.len(), 2);
    assert_eq!(c1.record.file_count, 2);
    assert_eq!(
        files
            .download(&c1.files[0].storage_key)
            .await
            .unwrap()
            .as_deref(),
        Some(&b"remember the milk\n"[..])
    );
    let c2 = messages.head(&cid("conv-alice-2")).await.unwrap().unwrap();
    assert!(c2.record.archived);
    assert_eq!(c2.record.title.as_deref(), Some("Explicit title ✓"));
    let c3 = messages.head(&cid("conv-bob-1")).await.unwrap().unwrap();
    assert_eq!(
        c3.record.title.as_deref(),
        Some("second user message titles it")
    );
    let c4 = messages.get(&cid("conv-nouser")).await.unwrap().unwrap();
    assert_eq!(c4.record.user_id, None);
    assert_eq!(
        c4.messages.len(),
        2,
        "the record past the header is rolled forward"
    );
    assert_eq!(c4.record.title.as_deref(), Some("rolled forward"));
    let alice = listing_ids(&messages, Some("alice@example.com")).await;
    assert_eq!(alice, ["conv-alice-2", "conv-alice-1"]);
    let active = messages
        .list_conversations(
            Some(&UserId::parse("alice@example.com").unwrap()),
            &ListOptions::new(),
        )
        .await
        .unwrap();
    assert_eq!(active.items.len(), 1, "the archived one is left out");
}

/// The old store keeps working for writes too: an append continues the seqs, and the
/// result reads back after reopening.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_v0_1_fixture_takes_new_appends() {
    let (tmp, messages, _files, expected) = open_copy();
    let want = &expected.conversations[0];
    let appended = messages
        .append_messages(&want.record.id, vec![NewMessage::new(Role::User, "after")])
        .await
        .unwrap();
    assert_eq!(appended.messages[0].seq, want.messages.len() as u64 + 1);
    drop(messages);
    let reopened = LocalMessages::open(tmp.path().join("messages")).unwrap();
    let got = reopened.get(&want.record.id).await.unwrap().unwrap();
    assert_eq!(&got.messages[..want.messages.len()], &want.messages[..]);
    assert_eq!(got.messages.last().unwrap().content(), "after");
    assert_eq!(got.files, want.files);
    assert_eq!(got.record.metadata, want.record.metadata);
}
