//! Owner-checked appends: someone else's conversation is not found, and nothing is stored.

use std::sync::Arc;

use super::common::{head_record, user_msg};
use crate::backend::MessagesBackend;
use crate::conformance::SuiteConfig;
use crate::conformance::util::{all_messages, assert_kind, fresh_user, new_conversation, ok};
use crate::error::ErrorKind;
use crate::ids::{ConversationId, UserId};

/// `append_messages_as` stores only into the owner's own conversation: another user's, or
/// one without an owner, answers `NotFound` (as a missing one does) and stores nothing,
/// empty appends and retries of stored messages included; the owner's own appends (and
/// appends with no owner given) go through.
pub async fn append_checks_the_owner(backend: Arc<dyn MessagesBackend>, _config: SuiteConfig) {
    let b = backend.as_ref();
    let (alice, mallory) = (fresh_user("alice"), fresh_user("mallory"));
    let owned = new_conversation(b, Some(&alice)).await;
    let unowned = new_conversation(b, None).await;

    let first = user_msg("mine");
    let stored = ok(
        b.append_messages_as(Some(&alice), &owned.id, vec![first.clone()])
            .await,
        "the owner's append",
    );
    assert_eq!(stored.messages.len(), 1);
    assert_eq!(stored.messages[0].seq, 1);

    refused(b, &mallory, &owned.id, 1, "another user's conversation").await;
    refused(b, &alice, &unowned.id, 0, "a conversation without an owner").await;
    // A retry of a stored message tells another user nothing either.
    assert_kind(
        b.append_messages_as(Some(&mallory), &owned.id, vec![first.clone()])
            .await,
        ErrorKind::NotFound,
        "another user's retry of a stored message",
    );
    assert_kind(
        b.append_messages_as(Some(&mallory), &ConversationId::new(), vec![user_msg("x")])
            .await,
        ErrorKind::NotFound,
        "a missing conversation",
    );

    // No owner given: no check, as `append_messages`.
    let open = ok(
        b.append_messages_as(None, &unowned.id, vec![user_msg("anyone's")])
            .await,
        "an append without an owner check",
    );
    assert_eq!(open.messages[0].seq, 1);
    let again = ok(
        b.append_messages_as(Some(&alice), &owned.id, vec![user_msg("more")])
            .await,
        "the owner's second append",
    );
    assert_eq!(again.messages[0].seq, 2, "refused appends took no seq");
    let all = all_messages(b, &owned.id).await;
    assert_eq!(all.len(), 2);
    assert_eq!(all[0].id, first.id);
}

/// Asserts that `user`'s appends to `id` (with messages, and empty) are `NotFound` and
/// leave its `count` messages and its record as they were.
async fn refused(
    b: &dyn MessagesBackend,
    user: &UserId,
    id: &ConversationId,
    count: u64,
    what: &str,
) {
    let before = head_record(b, id).await;
    assert_kind(
        b.append_messages_as(Some(user), id, vec![user_msg("not yours")])
            .await,
        ErrorKind::NotFound,
        what,
    );
    assert_kind(
        b.append_messages_as(Some(user), id, Vec::new()).await,
        ErrorKind::NotFound,
        &format!("{what} (an empty append)"),
    );
    let after = head_record(b, id).await;
    assert_eq!(after.message_count, count, "{what}: nothing stored");
    assert_eq!(after, before, "{what}: the record is unchanged");
    assert_eq!(all_messages(b, id).await.len() as u64, count, "{what}");
}
