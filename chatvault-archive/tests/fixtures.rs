//! Archives written by earlier releases stay readable. `tests/fixtures/v<version>/` holds
//! one archive per format version, written once by `write_fixture` (ignored; run it with
//! `CHATVAULT_WRITE_FIXTURE=1 cargo test -p chatvault-archive --test fixtures -- --ignored`
//! only when a new format version is introduced) and never edited afterwards.

mod common;

use std::path::PathBuf;
use std::sync::Arc;

use chatvault_archive::{ArchiveReader, ImportOptions, import, no_progress, verify_archive};
use chatvault_core::backend::FilesBackendExt;
use chatvault_core::{ChatVault, ConversationId, MessageId, NewMessage, Part, Role, Usage, UserId};
use common::*;

fn fixture(version: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(format!("tests/fixtures/v{version}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "writes the fixture of the current format version; run once per new version"]
async fn write_fixture() {
    if std::env::var("CHATVAULT_WRITE_FIXTURE").as_deref() != Ok("1") {
        return;
    }
    let store = memory();
    let vault = ChatVault::from_arcs(Arc::clone(&store.messages), Arc::clone(&store.files));
    let user: UserId = "fixture-user".parse().unwrap();
    let mut c = vault
        .new_conversation()
        .user(user)
        .id(ConversationId::parse("conv:one@fixture").unwrap())
        .create()
        .await
        .unwrap();
    let question = NewMessage::new(Role::User, "What is in the picture? ✓")
        .with_id(MessageId::parse("m1").unwrap());
    c.add(question).await.unwrap();
    let answer = NewMessage::with_parts(
        Role::Assistant,
        vec![
            Part::text("A cat."),
            Part::tool_call("call_1", "zoom", serde_json::json!({"x": 0.5})),
        ],
    )
    .with_id(MessageId::parse("m2").unwrap())
    .with_usage(Usage::new("gpt-4o", 10, 3));
    c.add(answer).await.unwrap();
    // 1.1: branches. An edit of the question (a first message of its own), then a switch
    // back to the original, so the active leaf is not the newest message.
    let edit =
        NewMessage::new(Role::User, "And in the photo?").with_id(MessageId::parse("m3").unwrap());
    let m1 = MessageId::parse("m1").unwrap();
    c.branches().edit(&m1, edit).await.unwrap();
    c.branches().switch(&m1).await.unwrap();
    c.attach_file("cat.txt", b"not really a cat".to_vec(), "text/plain")
        .await
        .unwrap();
    let mut other = vault
        .new_conversation()
        .id(ConversationId::parse("conv-two").unwrap())
        .title("Shared bytes")
        .create()
        .await
        .unwrap();
    other
        .attach_file("again.txt", b"not really a cat".to_vec(), "text/plain")
        .await
        .unwrap();
    export_dir(
        &store,
        &fixture(chatvault_archive::FORMAT_VERSION.to_string().as_str()),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_1_0_fixture_reads_imports_and_verifies() {
    let archive = ArchiveReader::open(&fixture("1.0")).unwrap();
    assert_eq!(archive.manifest().format, "1.0");
    let counts = &archive.manifest().counts;
    assert_eq!((counts.conversations, counts.messages), (2, 2));
    assert_eq!((counts.attachments, counts.blobs), (2, 1));
    let report = verify_archive(&archive, &no_progress);
    assert!(report.is_clean(), "{:?}", report.problems);
    assert_eq!(report.messages, 2);

    let dst = memory();
    let imported = import(&archive, &dst, &ImportOptions::default(), &no_progress)
        .await
        .unwrap();
    assert_eq!(imported.conversations_created, 2);
    let id = ConversationId::parse("conv:one@fixture").unwrap();
    let head = dst.messages.head(&id).await.unwrap().unwrap();
    assert_eq!(
        head.record.user_id.as_ref().unwrap().as_str(),
        "fixture-user"
    );
    assert_eq!(head.record.usage.input_tokens, 10);
    let messages = dst
        .messages
        .messages(&id, &chatvault_core::MessageRange::all())
        .await
        .unwrap()
        .items;
    assert_eq!(messages.len(), 2);
    assert_eq!(messages[0].id.as_str(), "m1");
    assert_eq!(messages[0].content(), "What is in the picture? ✓");
    assert_eq!(messages[1].parts[1].kind(), "tool_call");
    let bytes = dst
        .files
        .download(&head.files[0].storage_key)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&bytes[..], b"not really a cat");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_1_1_fixture_keeps_its_branches() {
    let archive = ArchiveReader::open(&fixture("1.1")).unwrap();
    assert_eq!(archive.manifest().format, "1.1");
    let report = verify_archive(&archive, &no_progress);
    assert!(report.is_clean(), "{:?}", report.problems);
    let dst = memory();
    import(&archive, &dst, &ImportOptions::default(), &no_progress)
        .await
        .unwrap();
    let id = ConversationId::parse("conv:one@fixture").unwrap();
    let head = dst.messages.head(&id).await.unwrap().unwrap();
    let tree = head
        .record
        .tree
        .expect("the fixture's conversation has branches");
    assert_eq!(
        tree.leaf,
        Some(2),
        "the switch back to the original is kept"
    );
    assert_eq!(tree.siblings(1), vec![1, 3]);
    let messages = dst
        .messages
        .messages(&id, &chatvault_core::MessageRange::all())
        .await
        .unwrap()
        .items;
    let parents: Vec<_> = messages.iter().map(|m| m.parent).collect();
    assert_eq!(parents, vec![None, Some(1), None]);
    assert_eq!(messages[2].content(), "And in the photo?");
}
