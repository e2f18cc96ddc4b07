//! Stores written by chatvault-local 0.1 stay readable: `tests/fixtures/v0.1/` holds a
//! `LocalMessages` store (`messages/`) and a `LocalFiles` store (`files/`) written by the
//! 0.1 code, plus `expected.json`, what that code was given and answered. The test copies
//! the fixture into a temporary directory (opening a store may upgrade it in place) and
//! reads everything back with the current code.
//!
//! # How the fixture was made
//!
//! With the 0.1 code (commit 47a59e4 of this repository), once:
//!
//! ```text
//! cargo test -p chatvault-local --test compat_v0_1 -- --ignored generator_writes_the_v0_1_fixture
//! ```
//!
//! The generator is an ignored test only because it must not run again: it is kept so that
//! anyone can see exactly what went into the fixture. Running it with later code would
//! overwrite the 0.1 data with data in the newer format, so it refuses when the fixture
//! exists.
#![allow(clippy::unwrap_used)] // tests may unwrap

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use chatvault_core::{
    ConversationPatch, ConversationRecord, FileAttachment, FilesBackend, ListOptions, MessageRange,
    MessagesBackend, NewMessage, Role, StoredConversation, keys,
};
use chatvault_local::{LocalFiles, LocalMessages};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;

fn fixture_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/v0.1")
}

/// What the generator stored: every conversation as the 0.1 code read it back, and the
/// bytes of every key in the files store.
#[derive(Debug, Serialize, Deserialize)]
struct Expected {
    conversations: Vec<StoredConversation>,
    /// Storage key -> bytes (as UTF-8 text: the fixture's files are text).
    files: BTreeMap<String, String>,
    /// `list_conversations(user, include_archived)` ids per user (`null` key: everyone).
    listings: BTreeMap<String, Vec<String>>,
}

fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
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

fn message(id: &str, role: Role, content: &str, created: &str) -> NewMessage {
    let mut m = NewMessage::new(role, content).with_id(id);
    m.created_at = at(created);
    m
}

async fn listing_ids(store: &LocalMessages, user: Option<&str>) -> Vec<String> {
    let mut out = Vec::new();
    let mut options = ListOptions::new().limit(2).include_archived(true);
    loop {
        let page = store.list_conversations(user, &options).await.unwrap();
        out.extend(page.items.iter().map(|s| s.id.clone()));
        match page.next_cursor {
            Some(c) => options = options.cursor(c),
            None => return out,
        }
    }
}

/// Writes the fixture with the code of this commit. See the module documentation.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "generator of tests/fixtures/v0.1, run once with the 0.1 code"]
async fn generator_writes_the_v0_1_fixture() {
    let root = fixture_dir();
    assert!(
        !root.exists(),
        "{} exists: the fixture is written once, by the 0.1 code",
        root.display()
    );
    let messages = LocalMessages::open(root.join("messages")).unwrap();
    let files = LocalFiles::new(root.join("files")).unwrap();

    let conversation = |id: &str, user: Option<&str>, created: &str| {
        let mut r = ConversationRecord::new(user.map(str::to_owned));
        r.id = id.to_owned();
        r.created_at = at(created);
        r.last_active = at(created);
        r
    };

    // alice: an auto-titled conversation with unicode, exact numbers, a custom role and
    // two attachments; an archived one with an explicit title.
    let c1 = conversation(
        "conv-alice-1",
        Some("alice@example.com"),
        "2026-01-02T03:04:05.123456Z",
    );
    messages.create(&c1).await.unwrap();
    messages
        .append_messages(
            &c1.id,
            vec![
                message(
                    "m1",
                    Role::System,
                    "You are terse.",
                    "2026-01-02T03:04:05.200000Z",
                ),
                message(
                    "m2",
                    Role::User,
                    "Grüße aus Köln 🦀 — how are\nyou? 日本語も大丈夫",
                    "2026-01-02T03:04:06.000001Z",
                )
                .with_metadata(exact_numbers()),
            ],
        )
        .await
        .unwrap();
    messages
        .append_messages(
            &c1.id,
            vec![
                message(
                    "m3",
                    Role::Assistant,
                    "Fine, thanks.",
                    "2026-01-02T03:04:07Z",
                ),
                message(
                    "m4",
                    Role::Other("tool".into()),
                    "{\"result\": 42}",
                    "2026-01-02T03:04:08Z",
                ),
                message(
                    "m5",
                    Role::Other("critic".into()),
                    "Too terse.",
                    "2026-01-02T03:04:09Z",
                ),
            ],
        )
        .await
        .unwrap();
    for (id, name, body, ct) in [
        ("f1", "notes ü.txt", "remember the milk\n", "text/plain"),
        ("f2", "data.json", "{\"a\": [1, 2, 3]}", "application/json"),
    ] {
        let key = keys::storage_key(c1.user_id.as_deref(), &c1.id, id, name).unwrap();
        files
            .upload(&key, bytes::Bytes::from(body), ct)
            .await
            .unwrap();
        let mut meta = serde_json::Map::new();
        meta.insert("pages".into(), json!(1));
        let attachment = FileAttachment {
            id: id.into(),
            filename: name.into(),
            content_type: ct.into(),
            size: body.len() as u64,
            sha256: format!("{:0>64}", body.len()),
            storage_key: key,
            uploaded_at: at("2026-01-02T03:05:00Z"),
            metadata: meta,
        };
        messages.add_file(&c1.id, attachment).await.unwrap();
    }
    messages
        .update(
            &c1.id,
            &ConversationPatch {
                title: None,
                archived: None,
                metadata: Some(exact_numbers()),
            },
        )
        .await
        .unwrap();

    let c2 = conversation(
        "conv-alice-2",
        Some("alice@example.com"),
        "2026-01-03T00:00:00Z",
    );
    messages.create(&c2).await.unwrap();
    messages
        .append_messages(
            &c2.id,
            vec![message(
                "m1",
                Role::User,
                "archive me",
                "2026-01-03T00:00:01Z",
            )],
        )
        .await
        .unwrap();
    messages
        .update(
            &c2.id,
            &ConversationPatch {
                title: Some("Explicit title ✓".into()),
                archived: Some(true),
                metadata: None,
            },
        )
        .await
        .unwrap();

    // bob (a user id that needs encoding), and a conversation with no user.
    let c3 = conversation("conv-bob-1", Some("bob/ü ñ"), "2026-01-04T00:00:00Z");
    messages.create(&c3).await.unwrap();
    messages
        .append_messages(
            &c3.id,
            vec![
                message("b1", Role::User, "  ", "2026-01-04T00:00:01Z"),
                message(
                    "b2",
                    Role::User,
                    "second user message titles it",
                    "2026-01-04T00:00:02Z",
                ),
                message("b3", Role::Assistant, "", "2026-01-04T00:00:03Z"),
            ],
        )
        .await
        .unwrap();
    let key = keys::storage_key(c3.user_id.as_deref(), &c3.id, "f9", "empty.bin").unwrap();
    files
        .upload(&key, bytes::Bytes::new(), "application/octet-stream")
        .await
        .unwrap();

    let c4 = conversation("conv-nouser", None, "2026-01-05T00:00:00Z");
    messages.create(&c4).await.unwrap();
    messages
        .append_messages(
            &c4.id,
            vec![message(
                "n1",
                Role::Assistant,
                "no user here",
                "2026-01-05T00:00:01Z",
            )],
        )
        .await
        .unwrap();
    // A crash between an append's log write and its header write: the record past the
    // header is rolled forward by readers.
    let header = root.join("messages/conversations/conv-nouser/header.json");
    let before = fs::read(&header).unwrap();
    messages
        .append_messages(
            &c4.id,
            vec![message(
                "n2",
                Role::User,
                "rolled forward",
                "2026-01-05T00:00:02Z",
            )],
        )
        .await
        .unwrap();
    fs::write(&header, before).unwrap();
    // An empty conversation.
    let c5 = conversation("conv-empty", Some("carol"), "2026-01-06T00:00:00Z");
    messages.create(&c5).await.unwrap();

    let mut expected = Expected {
        conversations: Vec::new(),
        files: BTreeMap::new(),
        listings: BTreeMap::new(),
    };
    for c in [&c1, &c2, &c3, &c4, &c5] {
        expected
            .conversations
            .push(messages.get(&c.id).await.unwrap().unwrap());
    }
    for user in ["alice@example.com", "bob/ü ñ", "carol", "nobody"] {
        expected
            .listings
            .insert(user.into(), listing_ids(&messages, Some(user)).await);
    }
    expected
        .listings
        .insert("null".into(), listing_ids(&messages, None).await);
    for key in [
        keys::storage_key(c1.user_id.as_deref(), &c1.id, "f1", "notes ü.txt").unwrap(),
        keys::storage_key(c1.user_id.as_deref(), &c1.id, "f2", "data.json").unwrap(),
        key,
    ] {
        let bytes = files.download(&key).await.unwrap().unwrap();
        expected
            .files
            .insert(key, String::from_utf8(bytes.to_vec()).unwrap());
    }
    fs::write(
        root.join("expected.json"),
        serde_json::to_vec_pretty(&expected).unwrap(),
    )
    .unwrap();
    // The stores need no temp or trash leftovers in the fixture.
    for dir in ["messages/tmp", "messages/trash", "files/tmp"] {
        let _ = fs::remove_dir_all(root.join(dir));
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
        assert_eq!(
            messages.get_record(id).await.unwrap().as_ref(),
            Some(&want.record),
            "get_record({id})"
        );
        assert_eq!(messages.files(id).await.unwrap(), want.files, "files({id})");
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
        let bytes = files.download(key).await.unwrap().unwrap();
        assert_eq!(bytes.as_ref(), text.as_bytes(), "bytes of {key}");
    }

    // Spot checks that do not depend on expected.json: what the fixture must hold.
    let c1 = messages.get("conv-alice-1").await.unwrap().unwrap();
    assert_eq!(c1.record.user_id.as_deref(), Some("alice@example.com"));
    assert_eq!(
        c1.record.title.as_deref(),
        Some("Grüße aus Köln 🦀 — how are you? 日本語も大丈夫")
    );
    let seqs: Vec<u64> = c1.messages.iter().map(|m| m.seq).collect();
    assert_eq!(seqs, [1, 2, 3, 4, 5]);
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
    let c2 = messages.get_record("conv-alice-2").await.unwrap().unwrap();
    assert!(c2.archived);
    assert_eq!(c2.title.as_deref(), Some("Explicit title ✓"));
    let c3 = messages.get_record("conv-bob-1").await.unwrap().unwrap();
    assert_eq!(c3.title.as_deref(), Some("second user message titles it"));
    let c4 = messages.get("conv-nouser").await.unwrap().unwrap();
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
        .list_conversations(Some("alice@example.com"), &ListOptions::new())
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
    assert_eq!(got.messages.last().unwrap().content, "after");
    assert_eq!(got.files, want.files);
    assert_eq!(got.record.metadata, want.record.metadata);
}
