//! Appends: seq and title, concurrency, idempotent retries.

use std::collections::HashMap;
use std::sync::Arc;

use futures_util::lock::Mutex as AsyncMutex;

use super::common::{head_record, user_msg};
use crate::backend::MessagesBackend;
use crate::backend::MessagesBackendExt;
use crate::conformance::SuiteConfig;
use crate::conformance::util::{
    all_messages, assert_kind, assert_seqs, exact_metadata, fresh_user, join, metadata_with,
    new_conversation, ok,
};
use crate::error::ErrorKind;
use crate::ids::{ConversationId, MessageId};
use crate::model::{MessageUpdate, NewMessage, Part, Usage};
use crate::model::{Role, auto_title};

/// `append_messages` assigns seq 1, 2, 3..., counts, moves `last_active` forward, grows the
/// version, keeps ids, and titles the conversation from its first user message.
pub async fn append_assigns_seq_and_title(backend: Arc<dyn MessagesBackend>, _config: SuiteConfig) {
    let b = backend.as_ref();
    let record = new_conversation(b, Some(&fresh_user("user"))).await;
    let long_question = "¿Qué tiempo hará mañana en Zürich? ".repeat(4);
    let with_meta = NewMessage::new(Role::Assistant, "Sunny.").with_metadata(exact_metadata());
    let first = ok(
        b.append_messages(
            &record.id,
            vec![
                NewMessage::new(Role::System, "You are terse."),
                user_msg(long_question.clone()),
                with_meta.clone(),
            ],
        )
        .await,
        "append",
    );
    assert_seqs(&first.messages, 1..=3, "first append");
    assert_eq!(first.record.message_count, 3);
    assert_eq!(
        first.record.title,
        auto_title(&long_question),
        "the title comes from the first user message"
    );
    assert!(first.record.last_active >= record.last_active);
    assert!(
        first.record.version > record.version,
        "the version must grow"
    );
    assert_eq!(
        first.messages[2].metadata,
        exact_metadata(),
        "message metadata must round-trip exactly (numbers too)"
    );
    assert_eq!(first.messages[2].id, with_meta.id, "message ids are kept");

    let second = ok(
        b.append_messages(
            &record.id,
            vec![user_msg("a second question must not retitle")],
        )
        .await,
        "append again",
    );
    assert_seqs(&second.messages, [4], "second append");
    assert_eq!(second.record.title, first.record.title);
    assert!(second.record.last_active >= first.record.last_active);

    let empty = ok(
        b.append_messages(&record.id, Vec::new()).await,
        "an empty append",
    );
    assert!(empty.messages.is_empty(), "an empty append stores nothing");
    assert_eq!(empty.record.message_count, 4);

    let stored = all_messages(b, &record.id).await;
    assert_seqs(&stored, 1..=4, "stored messages");
    assert_eq!(
        stored[..3],
        first.messages[..],
        "stored exactly as returned"
    );
    assert_eq!(stored[3], second.messages[0], "stored exactly as returned");
    assert_eq!(stored[1].content(), long_question);
    assert_eq!(
        head_record(b, &record.id).await,
        second.record,
        "head matches the last append's record"
    );

    // A conversation opened by a non-user message waits for a user message's title.
    let other = new_conversation(b, None).await;
    let a = ok(
        b.append_messages(&other.id, vec![NewMessage::new(Role::Assistant, "Hi!")])
            .await,
        "append",
    );
    assert_eq!(a.record.title, None, "only user messages give a title");
    let custom = ok(
        b.append_messages(&other.id, vec![NewMessage::new("critic", "meh")])
            .await,
        "append a custom role",
    );
    assert_eq!(custom.messages[0].role, Role::Other("critic".into()));
    let stored = all_messages(b, &other.id).await;
    assert_eq!(stored[1].role, Role::Other("critic".into()));
}

/// Appends `messages`, retrying a Conflict (nothing written) a bounded number of times.
async fn append_retrying(
    backend: &dyn MessagesBackend,
    id: &ConversationId,
    messages: Vec<NewMessage>,
) -> crate::model::Appended {
    for attempt in 0..200u64 {
        match backend.append_messages(id, messages.clone()).await {
            // Nothing was written: back off a little and retry, as a caller would.
            Err(e) if e.kind() == ErrorKind::Conflict => {
                tokio::time::sleep(std::time::Duration::from_millis(attempt.min(20))).await;
            }
            other => return ok(other, "append"),
        }
    }
    panic!("an append met Conflict 200 times in a row")
}

/// Writers (spawned tasks on a multi-thread runtime) append one message at a time to one
/// conversation: every message is stored exactly once, at the seq its append returned,
/// each writer's in its order, and the count is right.
///
/// Without `concurrent_appends`, the same writers take turns (the backend is then only
/// held to sequential appends from many tasks).
pub async fn concurrent_appends(backend: Arc<dyn MessagesBackend>, config: SuiteConfig) {
    let record = new_conversation(backend.as_ref(), Some(&fresh_user("user"))).await;
    let (writers, per_writer) = (config.concurrent_writers, config.appends_per_writer);
    let turns = (!backend.capabilities().concurrent_appends).then(|| Arc::new(AsyncMutex::new(())));
    let handles = (0..writers)
        .map(|w| {
            let backend = Arc::clone(&backend);
            let id = record.id.clone();
            let turns = turns.clone();
            tokio::spawn(async move {
                let mut sent = Vec::with_capacity(per_writer);
                for i in 0..per_writer {
                    let m = user_msg(format!("writer {w} message {i}"));
                    let _turn = match &turns {
                        Some(t) => Some(t.lock().await),
                        None => None,
                    };
                    let a = append_retrying(backend.as_ref(), &id, vec![m.clone()]).await;
                    assert_eq!(a.messages.len(), 1, "one message appended, one returned");
                    assert_eq!(a.messages[0].id, m.id);
                    sent.push((m.id, a.messages[0].seq));
                }
                sent
            })
        })
        .collect();
    let sent: Vec<(MessageId, u64)> = join(handles).await.into_iter().flatten().collect();
    let total = (writers * per_writer) as u64;
    let stored = all_messages(backend.as_ref(), &record.id).await;
    let mut count: HashMap<&MessageId, usize> = HashMap::new();
    for m in &stored {
        *count.entry(&m.id).or_default() += 1;
    }
    let lost = sent
        .iter()
        .filter(|(id, _)| !count.contains_key(id))
        .count();
    assert_eq!(
        lost, 0,
        "concurrent appends lost {lost} of {total} acknowledged messages"
    );
    let duplicated = count.values().filter(|&&n| n > 1).count();
    assert_eq!(
        duplicated, 0,
        "concurrent appends stored {duplicated} messages twice"
    );
    assert_seqs(&stored, 1..=total, "concurrent appends");
    let at: HashMap<&MessageId, u64> = stored.iter().map(|m| (&m.id, m.seq)).collect();
    for (id, seq) in &sent {
        assert_eq!(
            at.get(id),
            Some(seq),
            "message {id} is stored at the seq its append returned"
        );
    }
    assert_eq!(
        head_record(backend.as_ref(), &record.id)
            .await
            .message_count,
        total
    );
    for w in 0..writers {
        let prefix = format!("writer {w} message ");
        let mine: Vec<usize> = stored
            .iter()
            .filter_map(|m| {
                m.content()
                    .strip_prefix(&prefix)
                    .and_then(|n| n.parse().ok())
            })
            .collect();
        assert_eq!(
            mine,
            (0..per_writer).collect::<Vec<_>>(),
            "writer {w}'s messages reordered"
        );
    }
}

/// Message ids are idempotency keys: the same messages again store nothing and return the
/// stored ones; the same id with other content, or a batch only partly stored, is
/// AlreadyExists and stores nothing; a message updated since is still recognised; ids are
/// per conversation.
pub async fn idempotent_appends(backend: Arc<dyn MessagesBackend>, _config: SuiteConfig) {
    let b = backend.as_ref();
    let record = new_conversation(b, None).await;
    let a = user_msg("first").with_usage(Usage::new("m", 3, 4));
    let c = NewMessage::new(Role::Assistant, "second").with_metadata(exact_metadata());
    let first = ok(
        b.append_messages(&record.id, vec![a.clone(), c.clone()])
            .await,
        "append",
    );
    let stored = first.messages.clone();
    let again = ok(
        b.append_messages(&record.id, vec![a.clone(), c.clone()])
            .await,
        "the same append again",
    );
    assert_eq!(
        again.messages, stored,
        "a repeated append returns the stored messages"
    );
    assert_eq!(again.record.message_count, 2, "and stores nothing");
    assert_eq!(
        again.record.usage, first.record.usage,
        "nor counts usage twice"
    );
    let only_a = ok(
        b.append_messages(&record.id, vec![a.clone()]).await,
        "a stored message alone",
    );
    assert_eq!(only_a.messages, stored[..1].to_vec());
    assert_eq!(
        all_messages(b, &record.id).await,
        stored,
        "still two messages"
    );

    let mut other_text = a.clone();
    other_text.parts = vec![Part::text("not the first")];
    assert_kind(
        b.append_messages(&record.id, vec![other_text]).await,
        ErrorKind::AlreadyExists,
        "a stored id with other content",
    );
    let mut other_meta = c.clone();
    other_meta.metadata = metadata_with(serde_json::json!("changed"));
    assert_kind(
        b.append_messages(&record.id, vec![other_meta]).await,
        ErrorKind::AlreadyExists,
        "a stored id with other metadata",
    );
    let fresh = user_msg("third");
    assert_kind(
        b.append_messages(&record.id, vec![c.clone(), fresh.clone()])
            .await,
        ErrorKind::AlreadyExists,
        "a batch that is only partly stored",
    );
    let now_stored = all_messages(b, &record.id).await;
    assert_eq!(now_stored, stored, "refused appends store nothing");
    assert_eq!(head_record(b, &record.id).await.message_count, 2);

    // A message updated since (a streamed reply that went on) is still the same append.
    let updated = ok(
        b.update_message(
            &record.id,
            &c.id,
            stored[1].revision,
            &MessageUpdate {
                parts: Some(vec![Part::text("second, edited")]),
                ..Default::default()
            },
        )
        .await,
        "update_message",
    );
    let retried = ok(
        b.append_messages(&record.id, vec![c.clone()]).await,
        "re-append a message updated since",
    );
    assert_eq!(
        retried.messages,
        vec![updated.message],
        "returns it as stored now"
    );
    assert_eq!(head_record(b, &record.id).await.message_count, 2);

    // Ids are looked up in this conversation only.
    let elsewhere = new_conversation(b, None).await;
    let there = ok(
        b.append_messages(&elsewhere.id, vec![a.clone()]).await,
        "the same message id in another conversation",
    );
    assert_seqs(&there.messages, [1], "a message id of another conversation");
    assert_eq!(there.record.message_count, 1);
}

/// Many tasks retry the same batch at once (the recovery from an unknown outcome): each
/// batch is stored exactly once, and every task gets the stored messages back.
///
/// Without `concurrent_appends`, the retries take turns.
pub async fn concurrent_retries_store_once(
    backend: Arc<dyn MessagesBackend>,
    _config: SuiteConfig,
) {
    let record = new_conversation(backend.as_ref(), None).await;
    let turns = (!backend.capabilities().concurrent_appends).then(|| Arc::new(AsyncMutex::new(())));
    let rounds = 20;
    for round in 0..rounds {
        let batch: Vec<NewMessage> = (0..3)
            .map(|i| user_msg(format!("round {round} message {i}")))
            .collect();
        let handles = (0..8)
            .map(|_| {
                let backend = Arc::clone(&backend);
                let id = record.id.clone();
                let batch = batch.clone();
                let turns = turns.clone();
                tokio::spawn(async move {
                    let _turn = match &turns {
                        Some(t) => Some(t.lock().await),
                        None => None,
                    };
                    append_retrying(backend.as_ref(), &id, batch).await.messages
                })
            })
            .collect();
        let answers = join(handles).await;
        let stored = all_messages(backend.as_ref(), &record.id).await;
        assert_eq!(
            stored.len(),
            3 * (round + 1),
            "round {round}: 8 tasks appending the same batch must store it once"
        );
        let this_round = &stored[3 * round..];
        assert_eq!(
            this_round.iter().map(|m| &m.id).collect::<Vec<_>>(),
            batch.iter().map(|m| &m.id).collect::<Vec<_>>()
        );
        for answer in answers {
            assert_eq!(
                answer, this_round,
                "every retry gets the stored messages back"
            );
        }
    }
}
