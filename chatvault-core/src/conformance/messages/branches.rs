//! Branches at the backend: parents stored with messages, the branch table kept with the
//! record in the same atomic write, active-leaf changes, racing edits, lookups by id.

use std::sync::Arc;

use super::common::{head_record, user_msg};
use crate::backend::{MessagesBackend, MessagesBackendExt};
use crate::conformance::SuiteConfig;
use crate::conformance::util::{
    all_messages, assert_kind, fresh_user, join, list_everything, new_conversation, ok,
};
use crate::error::ErrorKind;
use crate::ids::{ConversationId, MessageId};
use crate::model::{
    ActiveLeaf, ConversationPatch, ConversationRecord, Message, NewMessage, Parent, Role, Segment,
};

/// Asserts that the record's branch table and the stored messages agree: the table's runs
/// hold exactly `1..=message_count`, each message's `parent` is the one the table gives,
/// and the leaf is a stored message.
pub(crate) async fn assert_tree_consistent(
    b: &dyn MessagesBackend,
    id: &ConversationId,
) -> (ConversationRecord, Vec<Message>) {
    let record = head_record(b, id).await;
    let messages = all_messages(b, id).await;
    let tree = record.tree();
    assert_eq!(
        tree.message_count(),
        record.message_count,
        "the branch table must hold every stored message"
    );
    assert_eq!(messages.len() as u64, record.message_count);
    for m in &messages {
        assert_eq!(
            m.parent,
            tree.parent_of(m.seq),
            "message {} (seq {}) must follow what the branch table says",
            m.id,
            m.seq
        );
    }
    if let Some(leaf) = tree.leaf {
        assert!(
            tree.contains(leaf),
            "the active leaf must be a stored message"
        );
    }
    (record, messages)
}

async fn append_one(b: &dyn MessagesBackend, id: &ConversationId, m: NewMessage) -> Message {
    let mut out = ok(b.append_messages(id, vec![m]).await, "append").messages;
    match out.pop() {
        Some(m) => m,
        None => panic!("an append of one message returned none"),
    }
}

async fn set_active(
    b: &dyn MessagesBackend,
    id: &ConversationId,
    active: ActiveLeaf,
) -> ConversationRecord {
    let patch = ConversationPatch {
        active: Some(active),
        ..ConversationPatch::default()
    };
    ok(b.update(id, &patch).await, "update the active leaf")
}

/// Edits (an append following an earlier message) start a branch; appends without a parent
/// continue the active one; a switch and a rewind move the active leaf, stored with the
/// record; a parent or a leaf that is not stored is refused with nothing changed; a retried
/// edit stores nothing; `message` finds a message by id on any branch.
pub async fn branches_edit_switch_rewind(backend: Arc<dyn MessagesBackend>, _config: SuiteConfig) {
    let b = backend.as_ref();
    let user = fresh_user("brancher");
    let c = new_conversation(b, Some(&user)).await;
    let id = &c.id;
    let first = ok(
        b.append_messages(
            id,
            vec![
                user_msg("u1"),
                NewMessage::new(Role::Assistant, "a1"),
                user_msg("u2"),
                NewMessage::new(Role::Assistant, "a2"),
            ],
        )
        .await,
        "append a line of four",
    );
    assert_eq!(
        first.record.tree, None,
        "a line read to its end stores no table"
    );
    let parents: Vec<_> = first.messages.iter().map(|m| m.parent).collect();
    assert_eq!(parents, vec![None, Some(1), Some(2), Some(3)]);

    let edit = user_msg("u2, edited").with_parent(Parent::Seq(2));
    let edited = append_one(b, id, edit.clone()).await;
    assert_eq!((edited.seq, edited.parent), (5, Some(2)));
    let record = head_record(b, id).await;
    assert_eq!(record.active_leaf(), Some(5));
    assert_eq!(
        record.tree().active_path(),
        vec![Segment { first: 1, last: 2 }, Segment { first: 5, last: 5 }]
    );
    assert_eq!(record.path_len(), 3);
    assert_eq!(record.message_count, 5);

    let replay = ok(b.append_messages(id, vec![edit]).await, "retry the edit");
    assert_eq!(replay.messages[0].seq, 5, "a retried edit stores nothing");
    let reply = append_one(b, id, NewMessage::new(Role::Assistant, "a2'")).await;
    assert_eq!(
        reply.parent,
        Some(5),
        "an append continues the active branch"
    );

    let switched = set_active(b, id, ActiveLeaf::Branch(3)).await;
    assert_eq!(
        switched.active_leaf(),
        Some(4),
        "a switch goes to the newest leaf"
    );
    assert_eq!(head_record(b, id).await.active_leaf(), Some(4));
    let rewound = set_active(b, id, ActiveLeaf::At(1)).await;
    assert_eq!(rewound.active_leaf(), Some(1));
    assert_eq!(rewound.path_len(), 1);
    let after_rewind = append_one(b, id, NewMessage::new(Role::Assistant, "a1'")).await;
    assert_eq!((after_rewind.seq, after_rewind.parent), (7, Some(1)));
    let root = append_one(b, id, user_msg("new start").with_parent(Parent::Root)).await;
    assert_eq!(root.parent, None);

    refusals_change_nothing(b, id).await;

    let (record, messages) = assert_tree_consistent(b, id).await;
    assert_eq!(record.message_count, 8);
    let found = ok(b.message(id, &edited.id).await, "message by id");
    assert_eq!(
        found.as_ref().map(|m| (m.seq, m.parent)),
        Some((5, Some(2)))
    );
    assert_eq!(found.as_ref(), messages.get(4));
    assert_eq!(
        ok(b.message(id, &MessageId::new()).await, "unknown id"),
        None
    );
    assert_kind(
        b.message(&ConversationId::new(), &edited.id).await,
        ErrorKind::NotFound,
        "a message of a missing conversation",
    );
    let listed = list_everything(b, Some(&user), false, 50).await;
    assert_eq!(
        listed.iter().find(|s| &s.id == id).map(|s| s.message_count),
        Some(1),
        "a listing counts the active path"
    );
}

/// A switch to, or an append following, a seq that is not stored is refused, and the
/// record is unchanged.
async fn refusals_change_nothing(b: &dyn MessagesBackend, id: &ConversationId) {
    let before = head_record(b, id).await;
    assert_kind(
        b.update(
            id,
            &ConversationPatch {
                active: Some(ActiveLeaf::Branch(99)),
                ..ConversationPatch::default()
            },
        )
        .await,
        ErrorKind::InvalidInput,
        "a switch to a seq that is not stored",
    );
    assert_kind(
        b.append_messages(id, vec![user_msg("x").with_parent(Parent::Seq(99))])
            .await,
        ErrorKind::InvalidInput,
        "an append following a seq that is not stored",
    );
    assert_eq!(head_record(b, id).await, before, "refusals change nothing");
}

/// Racing edits of one message are both kept, as siblings, one of them active; an append
/// racing switches is stored whole, and the table stays consistent with the messages.
pub async fn racing_edits_keep_both(backend: Arc<dyn MessagesBackend>, config: SuiteConfig) {
    let b = backend.as_ref();
    let c = new_conversation(b, None).await;
    let id = c.id.clone();
    let line: Vec<NewMessage> = (0..4).map(|i| user_msg(format!("m{i}"))).collect();
    ok(b.append_messages(&id, line).await, "append a line");
    let writers = config.concurrent_writers.clamp(2, 8);
    let edits = (0..writers).map(|i| {
        let (b, id) = (backend.clone(), id.clone());
        tokio::spawn(async move {
            let edit = user_msg(format!("edit {i}")).with_parent(Parent::Seq(2));
            b.append_messages(&id, vec![edit]).await
        })
    });
    let results = join(edits.collect()).await;
    let stored: Vec<Message> = results
        .into_iter()
        .map(|r| ok(r, "a racing edit").messages.remove(0))
        .collect();
    let (record, _) = assert_tree_consistent(b, &id).await;
    let siblings = record.tree().siblings(3);
    assert_eq!(siblings.len(), writers + 1, "every racing edit is kept");
    for m in &stored {
        assert!(siblings.contains(&m.seq));
        assert_eq!(m.parent, Some(2));
    }
    let leaf = record.active_leaf();
    assert!(
        stored.iter().any(|m| Some(m.seq) == leaf),
        "one racing edit is active"
    );

    let switches = (0..writers).map(|i| {
        let (b, id) = (backend.clone(), id.clone());
        tokio::spawn(async move {
            if i % 2 == 0 {
                b.append_messages(&id, vec![user_msg(format!("after {i}"))])
                    .await
                    .map(|_| ())
            } else {
                let patch = ConversationPatch {
                    active: Some(ActiveLeaf::Branch(stored_seq(i))),
                    ..ConversationPatch::default()
                };
                b.update(&id, &patch).await.map(|_| ())
            }
        })
    });
    for r in join(switches.collect()).await {
        ok(r, "an append or a switch racing the others");
    }
    let (record, messages) = assert_tree_consistent(b, &id).await;
    let appended = writers.div_ceil(2);
    assert_eq!(messages.len(), 4 + writers + appended, "nothing is lost");
    assert!(record.tree().contains(record.active_leaf().unwrap_or(0)));
}

/// The seq a racing switch names: one of the line's first four messages.
fn stored_seq(i: usize) -> u64 {
    (i % 4) as u64 + 1
}
