//! The seal cycle on DynamoDB Local with background seals (the default): a full tail is
//! marked pending, a task copies it into a chunk item, and a later append drops it from
//! the tail in its own single write; readers never see a copy in place of the tail, a
//! copy of entries updated since is not trusted, a writer sealing in a transaction
//! replaces a copy, and a delete racing a copy leaves nothing behind.

mod common;

use chatvault_aws::DynamoMessages;
use chatvault_core::backend::MessagesBackendExt;
use chatvault_core::{
    ConversationId, ConversationRecord, Message, MessageRange, MessageUpdate, MessagesBackend,
    NewMessage, Part, Role,
};
use common::read_all;

async fn new_conversation(backend: &DynamoMessages) -> ConversationRecord {
    let record = ConversationRecord::new(None);
    backend.create(&record).await.expect("create");
    record
}

/// Appends `count` messages one at a time, numbered from `from`.
async fn append_each(backend: &DynamoMessages, id: &ConversationId, from: usize, count: usize) {
    for k in from..from + count {
        backend
            .append_messages(id, vec![NewMessage::new(Role::User, format!("m{k}"))])
            .await
            .expect("append");
    }
}

/// Checks `messages` are seq 1..=count with the texts `append_each` gave them.
fn assert_whole(messages: &[Message], count: usize) {
    let seqs: Vec<u64> = messages.iter().map(|m| m.seq).collect();
    assert_eq!(seqs, (1..=count as u64).collect::<Vec<_>>());
    for (k, m) in messages.iter().enumerate() {
        assert_eq!(m.content(), format!("m{k}"), "seq {}", m.seq);
    }
}

#[cfg_attr(
    not(chatvault_aws_emulators),
    ignore = "needs the AWS emulators: AWS_ENDPOINT_URL_DYNAMODB and AWS_ENDPOINT_URL_S3 (or AWS_ENDPOINT_URL) were not set when the tests were built; run ./scripts/test.sh, or scripts/emulators.sh start && eval \"$(scripts/emulators.sh env)\" first"
)]
#[tokio::test]
async fn a_full_tail_is_copied_outside_the_appends_and_dropped_by_the_next() {
    let (backend, requests) = common::dynamo_counted().await;
    let record = new_conversation(&backend).await;
    let id = &record.id;
    append_each(&backend, id, 0, 47).await;
    assert_eq!(common::layout(&backend, id).await.pending, 0);
    // The 48th append marks the tail pending, in its one PutItem.
    requests.reset();
    append_each(&backend, id, 47, 1).await;
    backend.finish_seals().await;
    // The copy: the chunk, the markers, the conversation item read to check it is
    // still there.
    assert!(requests.get() >= 3, "{}", requests.get());
    let copied = common::layout(&backend, id).await;
    assert_eq!(
        (copied.tail, copied.pending, copied.copies, copied.copied),
        (48, 48, 1, 48),
        "{copied:?}"
    );
    assert_eq!((copied.chunks, copied.markers), (0, 48), "{copied:?}");
    // Readers take the tail's entries, once each, with the copy in place.
    assert_whole(&read_all(&backend, id).await, 48);
    // The next append drops the copied entries: still one request.
    requests.reset();
    append_each(&backend, id, 48, 1).await;
    assert_eq!(
        requests.get(),
        1,
        "an append that drops a sealed tail: one PutItem"
    );
    let sealed = common::layout(&backend, id).await;
    assert_eq!(
        (sealed.tail, sealed.pending, sealed.chunks, sealed.chunked),
        (1, 0, 1, 48),
        "{sealed:?}"
    );
    assert_eq!((sealed.copies, sealed.markers), (0, 48), "{sealed:?}");
    assert_whole(&read_all(&backend, id).await, 49);
    // A sealed message by id, through its marker; the tail's last windows.
    let by_id = backend
        .message(id, &read_all(&backend, id).await[4].id)
        .await;
    assert_eq!(by_id.expect("message").map(|m| m.seq), Some(5));
    let last = backend
        .messages(id, &MessageRange::last(3))
        .await
        .expect("last three");
    assert_eq!(
        last.items.iter().map(|m| m.seq).collect::<Vec<_>>(),
        [47, 48, 49]
    );
    common::drop_table(&backend).await;
}

#[cfg_attr(
    not(chatvault_aws_emulators),
    ignore = "needs the AWS emulators: AWS_ENDPOINT_URL_DYNAMODB and AWS_ENDPOINT_URL_S3 (or AWS_ENDPOINT_URL) were not set when the tests were built; run ./scripts/test.sh, or scripts/emulators.sh start && eval \"$(scripts/emulators.sh env)\" first"
)]
#[tokio::test]
async fn a_copy_of_entries_updated_since_is_neither_read_nor_trusted() {
    let backend = common::dynamo().await;
    let record = new_conversation(&backend).await;
    let id = &record.id;
    append_each(&backend, id, 0, 48).await;
    backend.finish_seals().await;
    assert_eq!(common::layout(&backend, id).await.copied, 48);
    // Updated after its copy was written: the copy holds the old text.
    let fifth = read_all(&backend, id).await[4].clone();
    let edit = MessageUpdate {
        parts: Some(vec![Part::text("edited")]),
        ..MessageUpdate::default()
    };
    backend
        .update_message(id, &fifth.id, 1, &edit)
        .await
        .expect("update a pending entry");
    let read = read_all(&backend, id).await;
    assert_eq!((read[4].content(), read[4].revision), ("edited".into(), 2));
    // The next append does not drop the entries (the copy differs from them); it copies
    // them again, and the one after drops them.
    append_each(&backend, id, 48, 1).await;
    let kept = common::layout(&backend, id).await;
    assert_eq!(
        (kept.tail, kept.pending, kept.chunks),
        (49, 48, 0),
        "{kept:?}"
    );
    backend.finish_seals().await;
    append_each(&backend, id, 49, 1).await;
    let sealed = common::layout(&backend, id).await;
    assert_eq!(
        (sealed.tail, sealed.pending, sealed.chunks, sealed.chunked),
        (2, 0, 1, 48),
        "{sealed:?}"
    );
    // What the chunk holds is the update, read by a backend that never saw it.
    let fresh = DynamoMessages::from_client(backend.client().clone(), backend.table_name());
    let read = read_all(&fresh, id).await;
    assert_eq!(read.len(), 50);
    assert_eq!((read[4].content(), read[4].revision), ("edited".into(), 2));
    assert_eq!(read[5].content(), "m5");
    common::drop_table(&backend).await;
}

#[cfg_attr(
    not(chatvault_aws_emulators),
    ignore = "needs the AWS emulators: AWS_ENDPOINT_URL_DYNAMODB and AWS_ENDPOINT_URL_S3 (or AWS_ENDPOINT_URL) were not set when the tests were built; run ./scripts/test.sh, or scripts/emulators.sh start && eval \"$(scripts/emulators.sh env)\" first"
)]
#[tokio::test]
async fn a_writer_sealing_in_a_transaction_replaces_a_copy() {
    let background = common::dynamo().await;
    let record = new_conversation(&background).await;
    let id = &record.id;
    append_each(&background, id, 0, 50).await;
    background.finish_seals().await;
    let copied = common::layout(&background, id).await;
    assert_eq!((copied.pending, copied.copied), (48, 48), "{copied:?}");
    // Another writer, sealing inside its appends, finds a tail past its bound of 48: it
    // seals the tail in a transaction, the pending entries under their copy's key.
    let inline = DynamoMessages::builder(background.table_name())
        .client(background.client().clone())
        .background_seals(false)
        .build()
        .await
        .expect("build");
    append_each(&inline, id, 50, 1).await;
    let sealed = common::layout(&inline, id).await;
    assert_eq!(
        (sealed.tail, sealed.pending, sealed.copies, sealed.chunked),
        (1, 0, 0, 50),
        "{sealed:?}"
    );
    assert_eq!(
        sealed.chunks, 2,
        "the pending entries' chunk and the rest's"
    );
    assert_eq!(sealed.markers, 50, "{sealed:?}");
    // The first writer's memory of its copy is of a state gone: its append retries
    // from the state it is given, and drops nothing twice.
    append_each(&background, id, 51, 1).await;
    assert_whole(&read_all(&background, id).await, 52);
    let fresh = DynamoMessages::from_client(background.client().clone(), background.table_name());
    assert_whole(&read_all(&fresh, id).await, 52);
    common::drop_table(&background).await;
}

#[cfg_attr(
    not(chatvault_aws_emulators),
    ignore = "needs the AWS emulators: AWS_ENDPOINT_URL_DYNAMODB and AWS_ENDPOINT_URL_S3 (or AWS_ENDPOINT_URL) were not set when the tests were built; run ./scripts/test.sh, or scripts/emulators.sh start && eval \"$(scripts/emulators.sh env)\" first"
)]
#[tokio::test]
async fn a_delete_racing_a_copy_leaves_nothing_whichever_ends_first() {
    let backend = common::dynamo().await;
    for _ in 0..8 {
        let record = new_conversation(&backend).await;
        let id = &record.id;
        append_each(&backend, id, 0, 48).await;
        // Deleted while its copy is being written, or before it starts, or after it
        // ends: a copy that finds the conversation gone deletes itself.
        assert!(backend.delete(id).await.expect("delete"));
        backend.finish_seals().await;
        let left = common::layout(&backend, id).await;
        assert_eq!(left, common::Layout::default(), "{left:?}");
    }
    common::drop_table(&backend).await;
}
