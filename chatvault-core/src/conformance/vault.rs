//! Checks through the [`ChatVault`] over the backends under test, each a public async
//! function taking the vault and the [`SuiteConfig`]. Run them on a tokio multi-thread
//! runtime (the macro [`vault_tests!`](crate::vault_tests) does).
//!
//! These are the application-facing flows, and the rules that need both backends (a
//! deletion racing attachments) or the vault's checks in front of the backend (what the
//! core refuses is refused before anything is written).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;

use super::SuiteConfig;
use super::forward::Forward;
use super::util::{
    Recording, assert_kind, assert_seqs, batch_size, depth_limit, exact_metadata, failing_stream,
    fresh_user, generated_stream, join, message_limit, metadata_with, ok, stream_sha256,
};
use crate::backend::{FilesBackend, FilesBackendExt};
use crate::digest::sha256_hex;
use crate::error::ErrorKind;
use crate::ids::{ConversationId, FileId, UserId};
use crate::model::{
    ConversationSummary, FileAttachment, ListOptions, Message, Metadata, Page, Role,
};
use crate::model::{MAX_METADATA_BYTES, MessageStatus, MessageUpdate, NewMessage, Part, Usage};
use crate::vault::{ChatVault, Conversation, ReplyOptions};

pub use super::vault_branches::branches_through_the_vault;
pub use super::vault_forget::{
    erase_owner_removes_everything_of_theirs, redact_leaves_a_tombstone,
    retention_hides_and_purge_removes,
};

async fn reread(vault: &ChatVault, c: &Conversation) -> Conversation {
    match ok(vault.get_conversation(c.id()).await, "get_conversation") {
        Some(c) => c,
        None => panic!("conversation {} is missing", c.id()),
    }
}

/// The quick start: create, add messages, stream a reply, attach, resume; the history in
/// the form LLM APIs take; usage totals.
pub async fn quick_start_flow(vault: ChatVault, _config: SuiteConfig) {
    let user = fresh_user("user");
    let mut conversation = ok(
        vault.create_conversation(Some(&user)).await,
        "create_conversation",
    );
    ok(
        conversation.add_message(Role::User, "Hello!").await,
        "add_message",
    );
    let mut meta = Metadata::new();
    meta.insert("model".into(), "gpt-x".into());
    meta.insert("temperature".into(), serde_json::json!(0.7));
    ok(
        conversation
            .add_message_with_metadata(
                Role::Assistant,
                "Hi there! How can I help you?",
                meta.clone(),
            )
            .await,
        "add_message_with_metadata",
    );
    ok(
        conversation.add_message(Role::User, "Count to three").await,
        "add_message",
    );
    let mut reply = ok(
        conversation.begin_reply(ReplyOptions::default()).await,
        "begin_reply",
    );
    for token in ["One", ", two", ", three."] {
        ok(reply.push_text(token).await, "push_text");
    }
    let finished = ok(
        reply.finish(Some(Usage::new("gpt-4o", 12, 5))).await,
        "finish",
    );
    assert_eq!(finished.status, MessageStatus::Complete);
    let pdf = Bytes::from_static(b"%PDF-1.4 fake document");
    let file = ok(
        conversation
            .attach_file("document.pdf", pdf.clone(), "application/pdf")
            .await,
        "attach_file",
    );
    assert_eq!(file.size, pdf.len() as u64);
    assert_eq!(file.sha256, sha256_hex(&pdf));
    quick_start_resumed(&vault, &conversation, &user, &meta, &file, pdf).await;
    assert!(
        ok(
            vault.get_conversation(&crate::ConversationId::new()).await,
            "get"
        )
        .is_none(),
        "an unknown id is no conversation"
    );
    let listed = ok(
        vault.list_conversations(&user, &ListOptions::new()).await,
        "list",
    );
    assert_eq!(listed.items.len(), 1);
    assert_eq!(listed.items[0].id, *conversation.id());
    assert_eq!(
        listed.items[0].usage.output_tokens, 5,
        "the list view shows usage totals"
    );
}

/// The quick start's conversation read again: its record, history, messages and file.
async fn quick_start_resumed(
    vault: &ChatVault,
    conversation: &Conversation,
    user: &UserId,
    meta: &Metadata,
    file: &FileAttachment,
    pdf: Bytes,
) {
    let resumed = reread(vault, conversation).await;
    assert_eq!(resumed.user_id(), Some(user));
    assert_eq!(resumed.title(), Some("Hello!"));
    assert_eq!(resumed.message_count(), 4);
    assert_eq!(resumed.record().file_count, 1);
    assert_eq!(
        (resumed.usage().input_tokens, resumed.usage().output_tokens),
        (12, 5)
    );
    let history = ok(resumed.history().await, "history");
    assert_eq!(
        serde_json::to_value(&history).ok(),
        Some(serde_json::json!([
            {"role": "user", "content": "Hello!"},
            {"role": "assistant", "content": "Hi there! How can I help you?"},
            {"role": "user", "content": "Count to three"},
            {"role": "assistant", "content": "One, two, three."}
        ]))
    );
    let messages = ok(resumed.messages().await, "messages");
    assert_eq!(messages[1].metadata, *meta);
    assert_eq!(messages[3].status, MessageStatus::Complete);
    assert_eq!(messages[3].usage, Some(Usage::new("gpt-4o", 12, 5)));
    assert_eq!(resumed.files(), &[file.clone()][..]);
    assert_eq!(
        ok(resumed.file_content(&file.id).await, "file_content"),
        Some(pdf)
    );
    assert_kind(
        resumed.file_content(&FileId::new()).await,
        ErrorKind::NotFound,
        "file_content of an unknown file id",
    );
}

/// Two messages with one id in one append are InvalidInput, and nothing is stored.
pub async fn duplicate_ids_in_one_append_are_refused(vault: ChatVault, _config: SuiteConfig) {
    let mut c = ok(vault.create_conversation(None).await, "create");
    let m = NewMessage::new(Role::User, "twice");
    let mut other = NewMessage::new(Role::User, "other text, same id");
    other.id = m.id.clone();
    assert_kind(
        c.append(vec![m.clone(), m.clone()]).await,
        ErrorKind::InvalidInput,
        "the same message twice in one append",
    );
    assert_kind(
        c.append(vec![m, other]).await,
        ErrorKind::InvalidInput,
        "two messages with one id in one append",
    );
    assert!(
        ok(c.messages().await, "messages").is_empty(),
        "nothing stored"
    );
    assert_eq!(reread(&vault, &c).await.message_count(), 0);
}

/// What the core refuses (JSON nested deeper than it allows, a message over the backend's
/// `max_message_bytes`, an append over `max_append_messages`, conversation metadata over
/// `MAX_METADATA_BYTES`) is refused with InvalidInput
/// or TooLarge before anything is written: the conversation is unchanged afterwards.
pub async fn refused_messages_store_nothing(vault: ChatVault, _config: SuiteConfig) {
    let limit = message_limit(vault.messages_backend().as_ref());
    let user = fresh_user("user");
    let mut c = ok(vault.create_conversation(Some(&user)).await, "create");
    ok(c.add_message(Role::User, "kept").await, "add");
    let reply = ok(
        c.add(NewMessage::new(Role::Assistant, "also kept")).await,
        "add",
    );
    let before_record = reread(&vault, &c).await.record().clone();
    let before = ok(c.messages().await, "messages");

    refused_messages(&vault, &mut c, &reply, limit).await;
    refused_conversation_metadata(&vault, &mut c, &user).await;

    assert_eq!(
        reread(&vault, &c).await.record(),
        &before_record,
        "refused writes must leave the record unchanged"
    );
    assert_eq!(
        ok(c.messages().await, "messages"),
        before,
        "and the messages"
    );
    let listed = ok(
        vault
            .list_conversations(&user, &ListOptions::new().include_archived(true))
            .await,
        "list",
    );
    assert_eq!(
        listed.items.len(),
        1,
        "a refused create stores no conversation"
    );
}

/// Messages, batches and message updates the core refuses (too deep, over the backend's
/// limits) are refused through `c`.
async fn refused_messages(vault: &ChatVault, c: &mut Conversation, reply: &Message, limit: usize) {
    let (_, too_deep) = depth_limit(|v| {
        NewMessage::new(Role::User, "x")
            .with_metadata(metadata_with(v.clone()))
            .validate()
            .is_ok()
    });
    assert_kind(
        c.add(NewMessage::new(Role::User, "deep").with_metadata(metadata_with(too_deep.clone())))
            .await,
        ErrorKind::InvalidInput,
        "message metadata nested deeper than the core allows",
    );
    let (_, args_too_deep) = depth_limit(|v| {
        NewMessage::with_parts(Role::Assistant, vec![Part::tool_call("c", "f", v.clone())])
            .validate()
            .is_ok()
    });
    assert_kind(
        c.add(NewMessage::with_parts(
            Role::Assistant,
            vec![Part::tool_call("c", "f", args_too_deep)],
        ))
        .await,
        ErrorKind::InvalidInput,
        "tool arguments nested deeper than the core allows",
    );
    let over = "x".repeat(limit + 1);
    assert_kind(
        c.add(NewMessage::new(Role::User, over.clone())).await,
        ErrorKind::TooLarge,
        "a message over the backend's max_message_bytes",
    );
    assert_kind(
        c.append(vec![
            NewMessage::new(Role::User, "fine"),
            NewMessage::new(Role::User, over.clone()),
        ])
        .await,
        ErrorKind::TooLarge,
        "a batch holding one message over the limit",
    );
    assert_kind(
        c.update_message(
            &reply.id,
            reply.revision,
            &MessageUpdate {
                parts: Some(vec![Part::text(over)]),
                ..Default::default()
            },
        )
        .await,
        ErrorKind::TooLarge,
        "an update making a message larger than the limit",
    );
    assert_kind(
        c.update_message(
            &reply.id,
            reply.revision,
            &MessageUpdate {
                metadata: Some(metadata_with(too_deep)),
                ..Default::default()
            },
        )
        .await,
        ErrorKind::InvalidInput,
        "an update with metadata nested too deep",
    );
    if let Some(max) = vault.messages_backend().capabilities().max_append_messages {
        let batch = (0..=max)
            .map(|i| NewMessage::new(Role::User, format!("m{i}")))
            .collect();
        assert_kind(
            c.append(batch).await,
            ErrorKind::TooLarge,
            "an append over the backend's max_append_messages",
        );
    }
}

/// Conversation metadata the core refuses (too deep, too large) is refused, on an update
/// and on a create.
async fn refused_conversation_metadata(vault: &ChatVault, c: &mut Conversation, user: &UserId) {
    let (_, conversation_too_deep) =
        depth_limit(|v| crate::model::validate_metadata(&metadata_with(v.clone())).is_ok());
    assert_kind(
        c.set_metadata(metadata_with(conversation_too_deep.clone()))
            .await,
        ErrorKind::InvalidInput,
        "conversation metadata nested too deep",
    );
    assert_kind(
        vault
            .new_conversation()
            .user(user.clone())
            .metadata(metadata_with(conversation_too_deep))
            .create()
            .await,
        ErrorKind::InvalidInput,
        "a new conversation with metadata nested too deep",
    );

    let mut huge = Metadata::new();
    huge.insert("blob".into(), "x".repeat(MAX_METADATA_BYTES + 1).into());
    assert_kind(
        c.set_metadata(huge).await,
        ErrorKind::TooLarge,
        "conversation metadata over MAX_METADATA_BYTES",
    );
}

/// A message just under the backend's declared `max_message_bytes`, and conversation
/// metadata just under the core's `MAX_METADATA_BYTES`, are stored and read back exactly.
pub async fn largest_accepted_message_reads_back(vault: ChatVault, _config: SuiteConfig) {
    let limit = message_limit(vault.messages_backend().as_ref());
    let mut c = ok(vault.create_conversation(None).await, "create");
    let probe = NewMessage::new(Role::User, "");
    let overhead = probe.json_len();
    let mut message = probe;
    message.parts = vec![Part::text("é".repeat((limit - overhead - 64) / 2))];
    assert!(message.json_len() <= limit && message.json_len() + 128 >= limit);
    let stored = ok(
        c.add(message.clone()).await,
        "add the largest message the backend accepts",
    );
    assert_eq!(stored.parts, message.parts);
    let read = ok(c.messages().await, "messages");
    assert_eq!(
        read,
        vec![stored],
        "the largest accepted message reads back"
    );

    // The largest conversation metadata the core accepts reads back too.
    let mut big = Metadata::new();
    big.insert(
        "blob".into(),
        "ü".repeat((MAX_METADATA_BYTES - 64) / 2).into(),
    );
    assert!(crate::model::validate_metadata(&big).is_ok());
    ok(
        c.set_metadata(big.clone()).await,
        "set the largest accepted metadata",
    );
    assert_eq!(reread(&vault, &c).await.metadata(), &big, "it reads back");
}

/// Many tasks attach files while another deletes the conversation: afterwards no bytes of
/// any attempted upload are left in the files backend (each attach landed before the
/// deletion's mark, so the deletion removed its bytes, or failed with NotFound and removed
/// them itself).
pub async fn delete_racing_attach_leaves_no_bytes(vault: ChatVault, config: SuiteConfig) {
    // Deletes take a millisecond, as a remote store's do: a deletion of many attachments
    // then leaves attachers a real window between its mark and its end.
    let recording = Arc::new(Forward::new(
        Arc::clone(vault.files_backend()),
        Recording::default().with_delete_delay(Duration::from_millis(1)),
    ));
    let files: Arc<dyn FilesBackend> = recording.clone();
    let racing = ChatVault::from_arcs(Arc::clone(vault.messages_backend()), files);
    let conversation = ok(
        racing.create_conversation(Some(&fresh_user("user"))).await,
        "create",
    );
    let attached = Arc::new(AtomicUsize::new(0));
    // Attachers stop when this check ends, also by a panic (a failing backend must not
    // leave them running in the test's runtime).
    let stop = StopOnDrop(Arc::new(AtomicBool::new(false)));
    let attachers = config.racing_attachers.max(1);
    let deleted = Arc::new(AtomicBool::new(false));
    let handles = (0..attachers)
        .map(|t| {
            let c = conversation.clone();
            let attached = Arc::clone(&attached);
            let stop = Arc::clone(&stop.0);
            let deleted = Arc::clone(&deleted);
            tokio::spawn(attach_until_refused(c, t, attached, stop, deleted))
        })
        .collect::<Vec<_>>();
    let deleter = {
        let racing = racing.clone();
        let id = conversation.id().clone();
        let attached = Arc::clone(&attached);
        let deleted = Arc::clone(&deleted);
        tokio::spawn(delete_after_attaches(
            racing,
            id,
            attached,
            2 * attachers,
            deleted,
        ))
    };
    let deleted = join(vec![deleter]).await;
    assert_eq!(deleted, vec![true], "the deletion found the conversation");
    let stopped = join(handles).await;
    let uploaded = recording.uploaded();
    let mut left = Vec::new();
    for key in &uploaded {
        if ok(recording.exists(key).await, "exists") {
            left.push(key.clone());
        }
    }
    assert!(
        left.is_empty(),
        "{} of {} uploaded attachments' bytes outlived their deleted conversation: {:?}",
        left.len(),
        uploaded.len(),
        left.iter().take(5).collect::<Vec<_>>()
    );
    // Only now that no bytes outlived the deletion: a check that proves the race it
    // looks for happened (a backend that never refuses an attach fails the one above).
    assert!(
        uploaded.len() > attached.load(Ordering::SeqCst),
        "the race did not happen: no attach was refused after uploading its bytes"
    );
    assert!(
        stopped.iter().all(|&s| s),
        "every attacher must end with NotFound once the conversation is deleted \
         (within {ATTACHES_AFTER_DELETE} attaches of the deletion's return)"
    );
    assert!(ok(vault.get_conversation(conversation.id()).await, "get").is_none());
}

/// One attacher of [`delete_racing_attach_leaves_no_bytes`]: attaches files until one is
/// refused with NotFound (true), or it is stopped or gave up (false).
async fn attach_until_refused(
    mut c: Conversation,
    t: usize,
    attached: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    deleted: Arc<AtomicBool>,
) -> bool {
    let mut after_delete = 0;
    for i in 0..10_000 {
        if stop.load(Ordering::SeqCst) {
            return false;
        }
        // Once the deletion has returned, the next attach must be refused; a
        // few more tries allow for this task's attach already under way. A
        // backend that keeps accepting attachments (one that brought the
        // conversation back) is failed here, not after 10,000 attaches.
        if deleted.load(Ordering::SeqCst) {
            after_delete += 1;
            if after_delete > ATTACHES_AFTER_DELETE {
                return false;
            }
        }
        let data = Bytes::from(format!("task {t} file {i}"));
        match c
            .attach_file(&format!("f{t}-{i}.txt"), data, "text/plain")
            .await
        {
            Ok(_) => {
                attached.fetch_add(1, Ordering::SeqCst);
            }
            Err(e) if e.kind() == ErrorKind::NotFound => return true,
            Err(e) => {
                panic!("an attach racing a delete failed with {:?}: {e}", e.kind())
            }
        }
        tokio::task::yield_now().await;
    }
    false
}

/// The deleter of [`delete_racing_attach_leaves_no_bytes`]: once `attaches` files are
/// attached, deletes the conversation, sets `deleted`, and returns whether it was found.
async fn delete_after_attaches(
    racing: ChatVault,
    id: ConversationId,
    attached: Arc<AtomicUsize>,
    attaches: usize,
    deleted: Arc<AtomicBool>,
) -> bool {
    let mut waited = 0;
    while attached.load(Ordering::SeqCst) < attaches {
        assert!(waited < 30_000, "the attachers made no progress in 30 s");
        tokio::time::sleep(Duration::from_millis(1)).await;
        waited += 1;
    }
    let found = ok(racing.delete_conversation(&id).await, "delete_conversation");
    deleted.store(true, Ordering::SeqCst);
    found
}

/// How many attaches an attacher of [`delete_racing_attach_leaves_no_bytes`] may still
/// start after the deletion returned before the check fails it.
const ATTACHES_AFTER_DELETE: u32 = 3;

/// Sets its flag when dropped: tells spawned helpers of a check to stop.
struct StopOnDrop(Arc<AtomicBool>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

/// Two attachments of the same name get their own keys and both survive; deleting one
/// (also through a handle that has not seen it) deletes its bytes and its record only.
pub async fn same_name_attachments(vault: ChatVault, _config: SuiteConfig) {
    let mut c = ok(
        vault.create_conversation(Some(&fresh_user("user"))).await,
        "create",
    );
    let a = ok(
        c.attach_file("notes.txt", &b"first"[..], "text/plain")
            .await,
        "attach a",
    );
    let b = ok(
        c.attach_file("notes.txt", &b"second"[..], "text/plain")
            .await,
        "attach b",
    );
    assert_ne!(a.storage_key, b.storage_key, "one key per attachment");
    assert_eq!(
        ok(c.file_content(&a.id).await, "a").as_deref(),
        Some(&b"first"[..])
    );
    assert_eq!(
        ok(c.file_content(&b.id).await, "b").as_deref(),
        Some(&b"second"[..])
    );
    assert!(ok(c.delete_file(&a.id).await, "delete_file"));
    assert!(!ok(
        vault.files_backend().exists(&a.storage_key).await,
        "exists"
    ));
    assert_eq!(c.files(), &[b.clone()][..]);
    assert_eq!(c.record().file_count, 1);
    assert!(!ok(c.delete_file(&a.id).await, "delete_file again"));
    ok(c.refresh().await, "refresh");
    assert_eq!(c.files(), &[b.clone()][..], "the deletion is stored");

    let mut stale = reread(&vault, &c).await;
    let late = ok(
        c.attach_file("late.txt", &b"late"[..], "text/plain").await,
        "attach",
    );
    assert!(ok(
        stale.delete_file(&late.id).await,
        "delete through a stale handle"
    ));
    assert!(!ok(
        vault.files_backend().exists(&late.storage_key).await,
        "exists"
    ));
    ok(c.refresh().await, "refresh");
    assert_eq!(c.files(), &[b][..]);
}

/// Attachments streamed in record their true size and SHA-256 and stream back unchanged;
/// a failing stream fails the attach and records nothing.
pub async fn streamed_attachments(vault: ChatVault, _config: SuiteConfig) {
    let mut c = ok(vault.create_conversation(None).await, "create");
    let size = 3 * 1024 * 1024 + 17;
    let (stream, expected) = generated_stream(size, 7);
    let f = ok(
        c.attach_file_stream("big.bin", stream, "application/octet-stream")
            .await,
        "attach_file_stream",
    );
    assert_eq!(f.size, size);
    assert_eq!(f.sha256, expected);
    let Some(out) = ok(c.file_stream(&f.id).await, "file_stream") else {
        panic!("a streamed attachment must stream back");
    };
    assert_eq!(stream_sha256(out).await, (size, expected));

    let r = c
        .attach_file_stream(
            "broken.bin",
            failing_stream(1000),
            "application/octet-stream",
        )
        .await;
    assert!(r.is_err(), "a failing stream fails the attach");
    assert_eq!(c.files().len(), 1, "and records nothing");
    ok(c.refresh().await, "refresh");
    assert_eq!(c.files().len(), 1);
}

/// With signed URLs: `file_url` gives one. Without: NotSupported. An unknown file id is
/// NotFound either way.
pub async fn file_urls(vault: ChatVault, _config: SuiteConfig) {
    let mut c = ok(vault.create_conversation(None).await, "create");
    let f = ok(
        c.attach_file("résumé.pdf", &b"%PDF"[..], "application/pdf")
            .await,
        "attach",
    );
    let url = c.file_url(&f.id, Duration::from_secs(60)).await;
    if vault.files_backend().capabilities().signed_urls {
        let url = ok(url, "file_url");
        assert!(url.contains("://"), "not a URL: {url}");
    } else {
        assert_kind(url, ErrorKind::NotSupported, "file_url without signed URLs");
    }
    assert_kind(
        c.file_url(&FileId::new(), Duration::from_secs(60)).await,
        ErrorKind::NotFound,
        "file_url of an unknown file id",
    );
}

/// Archived conversations leave listings unless asked for, stay readable, and come back.
pub async fn archive_and_unarchive(vault: ChatVault, _config: SuiteConfig) {
    let user = fresh_user("user");
    let mut keep = ok(vault.create_conversation(Some(&user)).await, "create");
    ok(keep.add_message(Role::User, "keep").await, "add");
    let old = ok(vault.create_conversation(Some(&user)).await, "create");
    let archived = ok(vault.archive_conversation(old.id()).await, "archive");
    assert!(archived.archived);
    let ids =
        |page: Page<ConversationSummary>| page.items.into_iter().map(|s| s.id).collect::<Vec<_>>();
    let listed = ids(ok(
        vault.list_conversations(&user, &ListOptions::new()).await,
        "list",
    ));
    assert_eq!(listed, vec![keep.id().clone()]);
    let with_archived = ids(ok(
        vault
            .list_conversations(&user, &ListOptions::new().include_archived(true))
            .await,
        "list",
    ));
    assert_eq!(with_archived.len(), 2);
    assert!(
        reread(&vault, &old).await.is_archived(),
        "archived ones stay readable"
    );
    ok(vault.unarchive_conversation(old.id()).await, "unarchive");
    let listed = ids(ok(
        vault.list_conversations(&user, &ListOptions::new()).await,
        "list",
    ));
    assert_eq!(listed.len(), 2);
    ok(keep.archive().await, "archive via the handle");
    assert!(keep.is_archived());
    ok(keep.unarchive().await, "unarchive via the handle");
    assert!(!keep.is_archived());
    let mut meta = exact_metadata();
    meta.insert("k".into(), "v".into());
    ok(keep.set_metadata(meta.clone()).await, "set_metadata");
    ok(keep.rename("Renamed").await, "rename");
    let again = reread(&vault, &keep).await;
    assert_eq!(again.metadata(), &meta);
    assert_eq!(again.title(), Some("Renamed"));
}

/// The vault's `messages()` reads a long conversation whole, whatever the backend's page
/// size; `last_messages` and `history_last` give the newest.
pub async fn reads_every_message(vault: ChatVault, config: SuiteConfig) {
    let n = config.long_conversation.max(1);
    let mut c = ok(vault.create_conversation(None).await, "create");
    let mut i = 0;
    while i < n {
        let k = (n - i).min(batch_size(vault.messages_backend().as_ref()));
        let batch = (i..i + k)
            .map(|j| {
                NewMessage::new(
                    if j % 2 == 0 {
                        Role::User
                    } else {
                        Role::Assistant
                    },
                    format!("turn {j}"),
                )
            })
            .collect();
        ok(c.append(batch).await, "append");
        i += k;
    }
    let all = ok(c.messages().await, "messages");
    assert_seqs(&all, 1..=n as u64, "messages() of a long conversation");
    let last = ok(c.last_messages(7).await, "last_messages");
    let first_of_last = (n as u64).saturating_sub(6).max(1);
    assert_seqs(&last, first_of_last..=n as u64, "last_messages(7)");
    assert_eq!(ok(c.last_messages(n + 10).await, "last_messages").len(), n);
    assert_eq!(ok(c.history().await, "history").len(), n);
    let tail = ok(c.history_last(1).await, "history_last");
    assert_eq!(tail.len(), 1);
    assert_eq!(tail[0].content, format!("turn {}", n - 1));
}
