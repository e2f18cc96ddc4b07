//! Versioned message updates: one winner of racing writers.

use std::sync::Arc;

use super::common::head_record;
use crate::backend::MessagesBackend;
use crate::backend::MessagesBackendExt;
use crate::conformance::SuiteConfig;
use crate::conformance::util::{
    all_messages, assert_kind, exact_metadata, join, new_conversation, ok,
};
use crate::error::ErrorKind;
use crate::ids::{ConversationId, MessageId};
use crate::model::{
    Appended, Message, MessageStatus, MessageUpdate, MessageUpdated, NewMessage, Part, Usage,
};
use crate::model::{Role, now};

/// `update_message` is versioned: from the right revision it applies the update (revision
/// and record version grow, usage totals move by the difference, the lease ends with the
/// stream) atomically with the record; from a stale one it is Conflict and writes nothing;
/// a missing message is NotFound.
pub async fn update_message_is_versioned(backend: Arc<dyn MessagesBackend>, _config: SuiteConfig) {
    let b = backend.as_ref();
    let record = new_conversation(b, None).await;
    let lease = now() + chrono::Duration::seconds(60);
    let pending = NewMessage::with_parts(Role::Assistant, Vec::new())
        .with_status(MessageStatus::Pending, Some(lease))
        .with_usage(Usage::new("model-a", 10, 5));
    let appended = append_pending_and_other(b, &record.id, &pending).await;
    let checkpoint = MessageUpdate {
        parts: Some(vec![Part::text("Hel")]),
        status: Some(MessageStatus::Streaming),
        lease_expires_at: Some(lease + chrono::Duration::seconds(30)),
        ..Default::default()
    };
    let first = update_checkpoint(b, &record.id, &pending, &appended, &checkpoint).await;
    let finish = MessageUpdate {
        parts: Some(vec![Part::text("Hello!")]),
        status: Some(MessageStatus::Complete),
        usage: Some(Usage::new("model-a", 100, 50)),
        metadata: Some(exact_metadata()),
        ..Default::default()
    };
    let (done, read) = update_finish(b, &record.id, &pending.id, &first, &finish).await;
    stale_updates_write_nothing(b, &record.id, &pending.id, &done, &read).await;
    mark_failed_keeps_usage(b, &record.id, &pending.id, &done, &finish).await;

    assert_kind(
        b.update_message(&record.id, &MessageId::new(), 1, &checkpoint)
            .await,
        ErrorKind::NotFound,
        "update of a message that does not exist",
    );
    assert_eq!(
        head_record(b, &record.id).await.message_count,
        2,
        "and it creates none"
    );
}

/// Appends `pending` and one finished message; checks the usage totals and revision 1.
async fn append_pending_and_other(
    b: &dyn MessagesBackend,
    id: &ConversationId,
    pending: &NewMessage,
) -> Appended {
    let other = NewMessage::new(Role::Assistant, "done").with_usage(Usage::new("model-b", 1, 2));
    let appended = ok(
        b.append_messages(id, vec![pending.clone(), other]).await,
        "append",
    );
    assert_eq!(
        appended.record.usage.input_tokens, 11,
        "usage totals after append"
    );
    assert_eq!(appended.record.usage.output_tokens, 7);
    let stored = &appended.messages[0];
    assert_eq!(stored.revision, 1, "a new message is at revision 1");
    appended
}

/// The streaming checkpoint from revision 1: the revision grows, fields left None are kept.
async fn update_checkpoint(
    b: &dyn MessagesBackend,
    id: &ConversationId,
    pending: &NewMessage,
    appended: &Appended,
    checkpoint: &MessageUpdate,
) -> MessageUpdated {
    let first = ok(
        b.update_message(id, &pending.id, 1, checkpoint).await,
        "update from revision 1",
    );
    assert_eq!(first.message.revision, 2, "the revision grows by one");
    assert_eq!(first.message.parts, vec![Part::text("Hel")]);
    assert_eq!(first.message.status, MessageStatus::Streaming);
    assert_eq!(first.message.lease_expires_at, checkpoint.lease_expires_at);
    assert!(first.message.updated_at.is_some(), "updated_at is set");
    assert_eq!(
        first.message.usage, pending.usage,
        "fields left None are kept"
    );
    assert_eq!(first.message.seq, 1);
    assert!(
        first.record.version > appended.record.version,
        "the record version grows"
    );
    first
}

/// The finishing update from revision 2: the lease ends, the usage totals move by the
/// difference, and the record and message are stored as returned (also returns the
/// messages read back).
async fn update_finish(
    b: &dyn MessagesBackend,
    id: &ConversationId,
    message_id: &MessageId,
    first: &MessageUpdated,
    finish: &MessageUpdate,
) -> (MessageUpdated, Vec<Message>) {
    let done = ok(
        b.update_message(id, message_id, 2, finish).await,
        "update from revision 2",
    );
    assert_eq!(done.message.revision, 3);
    assert_eq!(done.message.status, MessageStatus::Complete);
    assert_eq!(
        done.message.lease_expires_at, None,
        "a finished message has no lease"
    );
    assert_eq!(done.message.metadata, exact_metadata());
    assert_eq!(done.message.usage, finish.usage);
    assert_eq!(
        (
            done.record.usage.input_tokens,
            done.record.usage.output_tokens
        ),
        (101, 52),
        "usage totals move by the difference (10/5 replaced by 100/50, plus 1/2)"
    );
    assert!(done.record.version > first.record.version);
    assert_eq!(
        head_record(b, id).await,
        done.record,
        "the record is stored as returned"
    );
    let read = all_messages(b, id).await;
    assert_eq!(read[0], done.message, "the message is stored as returned");
    (done, read)
}

/// Updates from revisions that are not the stored one (3) are Conflict and write nothing.
async fn stale_updates_write_nothing(
    b: &dyn MessagesBackend,
    id: &ConversationId,
    message_id: &MessageId,
    done: &MessageUpdated,
    read: &[Message],
) {
    for stale in [1, 2, 4, 99] {
        assert_kind(
            b.update_message(
                id,
                message_id,
                stale,
                &MessageUpdate {
                    status: Some(MessageStatus::Failed),
                    failure: Some("stale".into()),
                    usage: Some(Usage::new("x", 1_000, 1_000)),
                    ..Default::default()
                },
            )
            .await,
            ErrorKind::Conflict,
            "update from a revision that is not the stored one",
        );
    }
    assert_eq!(all_messages(b, id).await, read, "a Conflict writes nothing");
    assert_eq!(
        head_record(b, id).await,
        done.record,
        "nor changes the record"
    );
}

/// Marking the message failed from revision 3 keeps its usage and the totals.
async fn mark_failed_keeps_usage(
    b: &dyn MessagesBackend,
    id: &ConversationId,
    message_id: &MessageId,
    done: &MessageUpdated,
    finish: &MessageUpdate,
) {
    let failed = ok(
        b.update_message(
            id,
            message_id,
            3,
            &MessageUpdate {
                status: Some(MessageStatus::Failed),
                failure: Some("the model went away".into()),
                ..Default::default()
            },
        )
        .await,
        "mark failed",
    );
    assert_eq!(
        failed.message.failure.as_deref(),
        Some("the model went away")
    );
    assert_eq!(
        failed.message.usage, finish.usage,
        "usage kept when not given"
    );
    assert_eq!(
        failed.record.usage, done.record.usage,
        "totals unchanged when usage is not given"
    );
}

/// Finishers race from one revision (spawned tasks): in every round exactly one wins, every
/// other gets Conflict, and the stored message is the winner's.
pub async fn racing_updates_one_wins(backend: Arc<dyn MessagesBackend>, _config: SuiteConfig) {
    let record = new_conversation(backend.as_ref(), None).await;
    let reply = NewMessage::with_parts(Role::Assistant, Vec::new()).with_status(
        MessageStatus::Pending,
        Some(now() + chrono::Duration::seconds(60)),
    );
    ok(
        backend
            .append_messages(&record.id, vec![reply.clone()])
            .await,
        "append",
    );
    let racers = 8;
    for round in 0..10u64 {
        let revision = round + 1;
        let handles = (0..racers)
            .map(|r| {
                let backend = Arc::clone(&backend);
                let id = record.id.clone();
                let message_id = reply.id.clone();
                tokio::spawn(async move {
                    let update = MessageUpdate {
                        parts: Some(vec![Part::text(format!("round {round} by {r}"))]),
                        usage: Some(Usage::new("m", r, round)),
                        ..Default::default()
                    };
                    (
                        r,
                        backend
                            .update_message(&id, &message_id, revision, &update)
                            .await,
                    )
                })
            })
            .collect();
        let results = join(handles).await;
        let mut winners = Vec::new();
        for (r, result) in results {
            match result {
                Ok(updated) => winners.push((r, updated)),
                Err(e) if e.kind() == ErrorKind::Conflict => {}
                Err(e) => panic!(
                    "round {round}: a racing update failed with {:?}: {e}",
                    e.kind()
                ),
            }
        }
        assert_eq!(
            winners.len(),
            1,
            "round {round}: of {racers} updates from revision {revision}, exactly one must win"
        );
        let (r, updated) = &winners[0];
        assert_eq!(updated.message.revision, revision + 1);
        let stored = all_messages(backend.as_ref(), &record.id).await;
        assert_eq!(stored.len(), 1);
        assert_eq!(
            stored[0].content(),
            format!("round {round} by {r}"),
            "the winner's content is stored"
        );
        assert_eq!(stored[0], updated.message);
        let totals = head_record(backend.as_ref(), &record.id).await.usage;
        assert_eq!(
            (totals.input_tokens, totals.output_tokens),
            (*r, round),
            "round {round}: usage totals are the winner's alone"
        );
    }
}
