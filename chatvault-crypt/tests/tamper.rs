//! Ciphertexts moved where they do not belong fail to open with `ErrorKind::Corrupt`:
//! parts swapped between messages, reordered or dropped within one, a message copied to
//! another conversation, titles swapped, attachment bytes copied to another key, cut or
//! altered. Each test first shows the untouched data reads back, so the failure is the
//! move's.
#![allow(clippy::unwrap_used)] // tests may unwrap

mod common;

use std::sync::Arc;

use bytes::Bytes;
use chatvault_core::backend::{
    FilesBackend, FilesBackendExt, MessageRange, MessageUpdate, MessagesBackend, MessagesBackendExt,
};
use chatvault_core::{
    ContentType, ConversationId, ConversationPatch, ConversationRecord, ErrorKind, Message,
    NewMessage, Part, Role, StorageKey, UserId,
};
use chatvault_crypt::{EncryptedFiles, EncryptedMessages, stream_error};
use chatvault_memory::{MemoryFiles, MemoryMessages};
use common::keyring;

fn wrapper() -> EncryptedMessages<MemoryMessages> {
    EncryptedMessages::new(
        MemoryMessages::new(),
        keyring(Arc::new(MemoryMessages::new())),
    )
}

async fn conversation(b: &EncryptedMessages<MemoryMessages>, title: &str) -> ConversationId {
    let mut r = ConversationRecord::new(Some("alice".parse::<UserId>().unwrap()));
    r.title = Some(title.into());
    b.create(&r).await.unwrap();
    r.id
}

async fn raw(b: &EncryptedMessages<MemoryMessages>, id: &ConversationId) -> Vec<Message> {
    b.inner()
        .messages(id, &MessageRange::all())
        .await
        .unwrap()
        .items
}

/// Replaces message `target`'s stored parts by `parts` in the wrapped store.
async fn store_parts(
    b: &EncryptedMessages<MemoryMessages>,
    id: &ConversationId,
    target: &Message,
    parts: Vec<Part>,
) {
    let update = MessageUpdate {
        parts: Some(parts),
        ..Default::default()
    };
    b.inner()
        .update_message(id, &target.id, target.revision, &update)
        .await
        .unwrap();
}

fn kind<T: std::fmt::Debug>(r: chatvault_core::Result<T>) -> ErrorKind {
    match r {
        Ok(v) => panic!("expected an error, read {v:?}"),
        Err(e) => e.kind(),
    }
}

#[tokio::test]
async fn parts_swapped_between_messages_fail_to_open() {
    let b = wrapper();
    let id = conversation(&b, "t").await;
    b.append_messages(
        &id,
        vec![
            NewMessage::new(Role::User, "first secret"),
            NewMessage::new(Role::Assistant, "second secret"),
        ],
    )
    .await
    .unwrap();
    let stored = raw(&b, &id).await;
    let opened = b.messages(&id, &MessageRange::all()).await.unwrap().items;
    assert_eq!(
        opened[1].content(),
        "second secret",
        "untouched, it reads back"
    );

    // The first message's ciphertext stored in the second.
    store_parts(&b, &id, &stored[1], stored[0].parts.clone()).await;
    assert_eq!(
        kind(b.message(&id, &stored[1].id).await),
        ErrorKind::Corrupt
    );
    assert_eq!(
        kind(b.messages(&id, &MessageRange::all()).await),
        ErrorKind::Corrupt
    );
    // The first still reads.
    let first = b.message(&id, &stored[0].id).await.unwrap().unwrap();
    assert_eq!(first.content(), "first secret");
}

#[tokio::test]
async fn parts_reordered_or_dropped_fail_to_open() {
    let b = wrapper();
    let id = conversation(&b, "t").await;
    let parts = vec![Part::text("one"), Part::text("two"), Part::text("three")];
    b.append_messages(&id, vec![NewMessage::with_parts(Role::User, parts.clone())])
        .await
        .unwrap();
    let m = raw(&b, &id).await.remove(0);
    let read = b.message(&id, &m.id).await.unwrap().unwrap();
    assert_eq!(read.parts, parts);

    let mut swapped = m.parts.clone();
    swapped.swap(0, 1);
    store_parts(&b, &id, &m, swapped).await;
    assert_eq!(
        kind(b.message(&id, &m.id).await),
        ErrorKind::Corrupt,
        "reordered"
    );

    let m = raw(&b, &id).await.remove(0);
    let mut cut = m.parts.clone();
    cut.truncate(2);
    cut.swap(0, 1); // back in the original order, the last part missing
    store_parts(&b, &id, &m, cut).await;
    assert_eq!(
        kind(b.message(&id, &m.id).await),
        ErrorKind::Corrupt,
        "truncated"
    );
}

#[tokio::test]
async fn a_message_copied_to_another_conversation_fails_to_open() {
    let b = wrapper();
    let one = conversation(&b, "one").await;
    let two = conversation(&b, "two").await;
    b.append_messages(&one, vec![NewMessage::new(Role::User, "secret")])
        .await
        .unwrap();
    let m = raw(&b, &one).await.remove(0);
    // The stored form appended as is to the other conversation (same message id).
    b.inner()
        .append_messages(&two, vec![m.to_new()])
        .await
        .unwrap();
    assert_eq!(kind(b.message(&two, &m.id).await), ErrorKind::Corrupt);
    assert_eq!(
        b.message(&one, &m.id).await.unwrap().unwrap().content(),
        "secret"
    );
}

#[tokio::test]
async fn titles_swapped_between_conversations_fail_to_open() {
    let b = wrapper();
    let one = conversation(&b, "first title").await;
    let two = conversation(&b, "second title").await;
    let stored_one = b.inner().head(&one).await.unwrap().unwrap().record;
    assert_eq!(
        b.head(&two).await.unwrap().unwrap().record.title.as_deref(),
        Some("second title")
    );
    let patch = ConversationPatch {
        title: stored_one.title,
        ..Default::default()
    };
    b.inner().update(&two, &patch).await.unwrap();
    assert_eq!(kind(b.head(&two).await), ErrorKind::Corrupt);
}

#[tokio::test]
async fn attachment_bytes_moved_cut_or_altered_fail_to_open() {
    let files = EncryptedFiles::new(MemoryFiles::new(), keyring(Arc::new(MemoryMessages::new())));
    let key = |name: &str| -> StorageKey { format!("alice/c1/f1/{name}").parse().unwrap() };
    let data: Bytes = (0..200_000u32)
        .map(|i| (i % 251) as u8)
        .collect::<Vec<_>>()
        .into();
    let octets = ContentType::octet_stream();
    files
        .upload(&key("a.bin"), data.clone(), &octets)
        .await
        .unwrap();
    assert_eq!(
        files.download(&key("a.bin")).await.unwrap(),
        Some(data.clone())
    );
    let stored_a = files.stored_key(&key("a.bin")).await.unwrap();
    let sealed = files.inner().download(&stored_a).await.unwrap().unwrap();

    // Copied under another key.
    let stored_b = files.stored_key(&key("b.bin")).await.unwrap();
    files
        .inner()
        .upload(&stored_b, sealed.clone(), &octets)
        .await
        .unwrap();
    assert_eq!(
        kind(files.download(&key("b.bin")).await),
        ErrorKind::Corrupt
    );

    // Cut right after the first whole segment (header 77 bytes, segment 64 KiB + tag):
    // the STREAM's last-segment flag tells a cut file from a short one.
    files
        .inner()
        .upload(&stored_a, sealed.slice(..77 + 65_552), &octets)
        .await
        .unwrap();
    assert_eq!(
        kind(files.download(&key("a.bin")).await),
        ErrorKind::Corrupt
    );

    // One bit flipped in the second segment: the first arrives, then a typed error.
    let mut flipped = sealed.to_vec();
    flipped[77 + 65_552 + 10] ^= 1;
    files
        .inner()
        .upload(&stored_a, Bytes::from(flipped), &octets)
        .await
        .unwrap();
    let stream = files.download_stream(&key("a.bin")).await.unwrap().unwrap();
    let err = chatvault_core::backend::collect_stream(stream)
        .await
        .unwrap_err();
    assert_eq!(stream_error(err).kind(), ErrorKind::Corrupt);
}
