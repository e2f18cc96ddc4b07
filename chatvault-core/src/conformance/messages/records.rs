//! Records: create, read back, missing conversations, metadata updates, attachment records,
//! deletion.

use std::sync::Arc;

use super::common::{attachment, head_record, user_msg};
use crate::backend::MessagesBackend;
use crate::backend::MessagesBackendExt;
use crate::conformance::SuiteConfig;
use crate::conformance::util::{
    all_messages, assert_kind, exact_metadata, fresh_user, join, list_everything, new_conversation,
    ok,
};
use crate::error::{ErrorKind, Result};
use crate::ids::{ConversationId, FileId, MessageId, UserId};
use crate::model::{ConversationPatch, ConversationRecord, MessageRange};
use crate::model::{MessageStatus, MessageUpdate};

/// `create` stores the record exactly (times, unicode title, metadata with exact numbers);
/// a second `create` of the same id is AlreadyExists and changes nothing; an unknown id has
/// no head.
pub async fn create_and_read_back(backend: Arc<dyn MessagesBackend>, _config: SuiteConfig) {
    let b = backend.as_ref();
    let mut record = ConversationRecord::new(Some(fresh_user("user")));
    record.title = Some("Réunion 📅".into());
    record.metadata = exact_metadata();
    ok(b.create(&record).await, "create");
    let head = ok(b.head(&record.id).await, "head");
    let head = match head {
        Some(h) => h,
        None => panic!("a created conversation must have a head"),
    };
    assert_eq!(head.record, record, "the record must round-trip exactly");
    assert!(head.files.is_empty(), "a new conversation has no files");

    let mut again = ConversationRecord::new(None);
    again.id = record.id.clone();
    assert_kind(
        b.create(&again).await,
        ErrorKind::AlreadyExists,
        "create with a taken id",
    );
    assert_eq!(
        head_record(b, &record.id).await,
        record,
        "a refused create must not change the record"
    );
    assert_eq!(
        ok(
            b.head(&ConversationId::new()).await,
            "head of an unknown id"
        ),
        None
    );
    // Two concurrent creates of one id: exactly one wins.
    let contested = ConversationRecord::new(None);
    let handles = (0..8)
        .map(|_| {
            let backend = Arc::clone(&backend);
            let record = contested.clone();
            tokio::spawn(async move { backend.create(&record).await })
        })
        .collect();
    let results = join(handles).await;
    let wins = results.iter().filter(|r| r.is_ok()).count();
    assert_eq!(
        wins, 1,
        "of 8 racing creates of one id, exactly one succeeds"
    );
    for r in results.into_iter().filter(Result::is_err) {
        assert_kind(r, ErrorKind::AlreadyExists, "a racing create that lost");
    }
}

/// Every operation on a conversation that does not exist fails with NotFound (a head is
/// `None`, a delete `false`), and none creates it.
pub async fn missing_conversations_are_not_found(
    backend: Arc<dyn MessagesBackend>,
    _config: SuiteConfig,
) {
    let b = backend.as_ref();
    let id = ConversationId::new();
    assert_kind(
        b.append_messages(&id, vec![user_msg("x")]).await,
        ErrorKind::NotFound,
        "append to a missing conversation",
    );
    assert_kind(
        b.messages(&id, &MessageRange::all()).await,
        ErrorKind::NotFound,
        "messages of a missing conversation",
    );
    assert_kind(
        b.update(
            &id,
            &ConversationPatch {
                archived: Some(true),
                ..Default::default()
            },
        )
        .await,
        ErrorKind::NotFound,
        "update of a missing conversation",
    );
    assert_kind(
        b.update_message(&id, &MessageId::new(), 1, &MessageUpdate::default())
            .await,
        ErrorKind::NotFound,
        "update_message in a missing conversation",
    );
    assert_kind(
        b.add_file(&id, &attachment(None, &id, "x.pdf")).await,
        ErrorKind::NotFound,
        "add_file to a missing conversation",
    );
    assert_kind(
        b.remove_file(&id, &FileId::new()).await,
        ErrorKind::NotFound,
        "remove_file of a missing conversation",
    );
    assert_eq!(ok(b.begin_delete(&id).await, "begin_delete"), None);
    assert!(!ok(b.delete(&id).await, "delete of a missing conversation"));
    assert_eq!(
        ok(b.head(&id).await, "head"),
        None,
        "failed calls must not create the conversation"
    );
}

/// Title, archive flag and metadata change without touching messages or `last_active`; a
/// later user message never replaces a title.
pub async fn metadata_updates_leave_messages_alone(
    backend: Arc<dyn MessagesBackend>,
    _config: SuiteConfig,
) {
    let b = backend.as_ref();
    let record = new_conversation(b, Some(&fresh_user("user"))).await;
    let appended = ok(
        b.append_messages(&record.id, vec![user_msg("hello"), user_msg("world")])
            .await,
        "append",
    );
    let before = all_messages(b, &record.id).await;

    let updated = ok(
        b.update(
            &record.id,
            &ConversationPatch {
                title: Some("New title ✓".into()),
                archived: Some(true),
                metadata: Some(exact_metadata()),
                active: None,
            },
        )
        .await,
        "update",
    );
    assert_eq!(updated.title.as_deref(), Some("New title ✓"));
    assert!(updated.archived);
    assert_eq!(updated.metadata, exact_metadata());
    assert_eq!(
        updated.last_active, appended.record.last_active,
        "last_active is kept"
    );
    assert_eq!(updated.message_count, 2);
    assert!(
        updated.version > appended.record.version,
        "the version grows"
    );
    assert_eq!(
        head_record(b, &record.id).await,
        updated,
        "stored as returned"
    );
    assert_eq!(
        all_messages(b, &record.id).await,
        before,
        "messages untouched"
    );

    let unarchived = ok(
        b.update(
            &record.id,
            &ConversationPatch {
                archived: Some(false),
                ..Default::default()
            },
        )
        .await,
        "unarchive",
    );
    assert!(!unarchived.archived);
    assert_eq!(
        unarchived.title.as_deref(),
        Some("New title ✓"),
        "title kept"
    );
    assert_eq!(unarchived.metadata, exact_metadata(), "metadata kept");

    let a = ok(
        b.append_messages(&record.id, vec![user_msg("later")]).await,
        "append",
    );
    assert_eq!(a.record.title.as_deref(), Some("New title ✓"));
}

/// Attachment records: two files of the same name are both kept, exactly, oldest first;
/// a taken file id is AlreadyExists; `file_count` follows; removing a missing file is
/// `None`.
pub async fn file_records(backend: Arc<dyn MessagesBackend>, _config: SuiteConfig) {
    let b = backend.as_ref();
    let user = fresh_user("user");
    let record = new_conversation(b, Some(&user)).await;
    let a = attachment(Some(&user), &record.id, "report.pdf");
    let c = attachment(Some(&user), &record.id, "report.pdf");
    let r1 = ok(b.add_file(&record.id, &a).await, "add a");
    assert_eq!(r1.file_count, 1);
    assert!(r1.last_active >= record.last_active);
    let r2 = ok(b.add_file(&record.id, &c).await, "add c");
    assert_eq!(r2.file_count, 2);
    assert!(r2.version > r1.version);
    let head = ok(b.head(&record.id).await, "head");
    assert_eq!(
        head.map(|h| (h.record, h.files)),
        Some((r2.clone(), vec![a.clone(), c.clone()])),
        "head: the record and both same-named files, oldest first, exactly"
    );
    assert_kind(
        b.add_file(&record.id, &a).await,
        ErrorKind::AlreadyExists,
        "adding a file id twice",
    );
    let removed = ok(b.remove_file(&record.id, &a.id).await, "remove");
    let removed = match removed {
        Some(r) => r,
        None => panic!("remove_file of a stored attachment must return the record"),
    };
    assert_eq!(removed.file_count, 1);
    let head = ok(b.head(&record.id).await, "head");
    assert_eq!(head.map(|h| h.files), Some(vec![c.clone()]));
    assert_eq!(
        ok(b.remove_file(&record.id, &a.id).await, "remove again"),
        None
    );
}

/// `begin_delete` marks a conversation: it reads as gone (no head, not listed, every write
/// and read NotFound), its id stays taken, a second `begin_delete` returns its files again,
/// and `delete` finishes (marked or not; retry-safe).
pub async fn begin_delete_then_delete(backend: Arc<dyn MessagesBackend>, _config: SuiteConfig) {
    let b = backend.as_ref();
    let user = fresh_user("user");
    let record = new_conversation(b, Some(&user)).await;
    let keep = new_conversation(b, Some(&user)).await;
    let appended = ok(
        b.append_messages(&record.id, vec![user_msg("bye")]).await,
        "append",
    );
    let f1 = attachment(Some(&user), &record.id, "a.pdf");
    let f2 = attachment(Some(&user), &record.id, "b.pdf");
    ok(b.add_file(&record.id, &f1).await, "add_file");
    ok(b.add_file(&record.id, &f2).await, "add_file");

    let files = ok(b.begin_delete(&record.id).await, "begin_delete");
    assert_eq!(
        files,
        Some(vec![f1.clone(), f2.clone()]),
        "begin_delete returns the files"
    );
    marked_reads_as_gone(b, &user, &record.id, &keep.id).await;
    marked_refuses_writes(b, &user, &record.id, &appended.messages[0].id, &f1.id).await;
    let mut taken = ConversationRecord::new(None);
    taken.id = record.id.clone();
    assert_kind(
        b.create(&taken).await,
        ErrorKind::AlreadyExists,
        "create over a marked conversation (its id stays taken)",
    );
    assert_eq!(
        ok(b.begin_delete(&record.id).await, "begin_delete again"),
        Some(vec![f1, f2]),
        "a second begin_delete returns the files again"
    );
    assert!(ok(b.delete(&record.id).await, "delete"));
    assert_eq!(ok(b.head(&record.id).await, "head"), None);
    assert_eq!(
        ok(
            b.begin_delete(&record.id).await,
            "begin_delete after delete"
        ),
        None
    );
    assert!(
        !ok(b.delete(&record.id).await, "delete again"),
        "a second delete finds nothing"
    );
    assert!(
        ok(b.head(&keep.id).await, "head").is_some(),
        "others are untouched"
    );
    delete_unmarked_frees_the_id(b, &user, &keep.id).await;
}

/// A marked conversation has no head and leaves the listings (the user's: only `keep`).
async fn marked_reads_as_gone(
    b: &dyn MessagesBackend,
    user: &UserId,
    marked: &ConversationId,
    keep: &ConversationId,
) {
    assert_eq!(
        ok(b.head(marked).await, "head"),
        None,
        "a marked conversation has no head"
    );
    let listed = list_everything(b, Some(user), true, 10).await;
    assert_eq!(
        listed.iter().map(|s| &s.id).collect::<Vec<_>>(),
        vec![keep],
        "a marked conversation leaves listings"
    );
    if b.capabilities().list_all {
        let all = list_everything(b, None, true, 1000).await;
        assert!(all.iter().all(|s| &s.id != marked), "and the list of all");
    }
}

/// Every write to a marked conversation, and reading its messages, is NotFound.
async fn marked_refuses_writes(
    b: &dyn MessagesBackend,
    user: &UserId,
    marked: &ConversationId,
    message: &MessageId,
    file: &FileId,
) {
    assert_kind(
        b.append_messages(marked, vec![user_msg("x")]).await,
        ErrorKind::NotFound,
        "append to a marked conversation",
    );
    assert_kind(
        b.add_file(marked, &attachment(Some(user), marked, "late.pdf"))
            .await,
        ErrorKind::NotFound,
        "add_file to a marked conversation",
    );
    assert_kind(
        b.update(
            marked,
            &ConversationPatch {
                title: Some("t".into()),
                ..Default::default()
            },
        )
        .await,
        ErrorKind::NotFound,
        "update of a marked conversation",
    );
    assert_kind(
        b.update_message(
            marked,
            message,
            1,
            &MessageUpdate {
                status: Some(MessageStatus::Failed),
                ..Default::default()
            },
        )
        .await,
        ErrorKind::NotFound,
        "update_message in a marked conversation",
    );
    assert_kind(
        b.remove_file(marked, file).await,
        ErrorKind::NotFound,
        "remove_file of a marked conversation",
    );
    assert_kind(
        b.messages(marked, &MessageRange::all()).await,
        ErrorKind::NotFound,
        "messages of a marked conversation",
    );
}

/// Deleting without marking first works too, and frees the id.
async fn delete_unmarked_frees_the_id(b: &dyn MessagesBackend, user: &UserId, id: &ConversationId) {
    ok(
        b.append_messages(id, vec![user_msg("soon gone")]).await,
        "append",
    );
    assert!(ok(b.delete(id).await, "delete an unmarked conversation"));
    assert_eq!(ok(b.head(id).await, "head"), None);
    assert!(list_everything(b, Some(user), true, 10).await.is_empty());
    assert_kind(
        b.append_messages(id, vec![user_msg("x")]).await,
        ErrorKind::NotFound,
        "append after delete",
    );
    let mut reused = ConversationRecord::new(Some(user.clone()));
    reused.id = id.clone();
    ok(
        b.create(&reused).await,
        "create with the id of a deleted conversation",
    );
    assert_eq!(head_record(b, id).await, reused);
    assert!(
        all_messages(b, id).await.is_empty(),
        "a new conversation under a deleted one's id has none of its messages"
    );
}
