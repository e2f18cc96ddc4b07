//! Forgetting through the vault: retention hides expired conversations, the purge and
//! the erase remove everything of theirs (messages on every branch, search entries,
//! attachments' bytes), a dry run removes nothing, and a run stopped part-way is finished
//! by the next.

use std::sync::Arc;

use chrono::TimeDelta;

use super::SuiteConfig;
use super::forward::Forward;
use super::util::{Recording, assert_kind, fresh_user, ok};
use crate::backend::FilesBackend;
use crate::error::ErrorKind;
use crate::ids::{ConversationId, StorageKey, UserId};
use crate::model::{
    Expiry, FileAttachment, ListOptions, Message, NewMessage, Part, Retention, Role, SearchOptions,
};
use crate::vault::{
    ChatVault, Conversation, ForgetOptions, ForgetReport, Redacted, Redaction, ReplyOptions,
};

/// A conversation of `user` with two messages holding `word`, an edit (a second branch)
/// and an attachment; returns its id and the attachment's key.
async fn stocked(vault: &ChatVault, user: &UserId, word: &str) -> (ConversationId, StorageKey) {
    let mut c = ok(vault.create_conversation(Some(user)).await, "create");
    let first = ok(
        c.add_message(Role::User, format!("{word} one")).await,
        "add",
    );
    ok(
        c.add_message(Role::Assistant, format!("{word} two")).await,
        "add",
    );
    ok(
        c.branches()
            .edit(
                &first.id,
                NewMessage::new(Role::User, format!("{word} edited")),
            )
            .await,
        "edit",
    );
    let file = ok(
        c.attach_file("notes.txt", "secret bytes", "text/plain")
            .await,
        "attach",
    );
    (c.id().clone(), file.storage_key)
}

/// Asserts that conversation `id` and its attachment's bytes are gone.
async fn gone(vault: &ChatVault, id: &ConversationId, key: &StorageKey, what: &str) {
    assert!(
        ok(vault.messages_backend().head(id).await, "head").is_none(),
        "{what}: conversation {id} is still stored"
    );
    assert!(
        ok(vault.files_backend().head(key).await, "files head").is_none(),
        "{what}: the bytes of {key} are still stored"
    );
}

/// Asserts that `user`'s search for `word` finds nothing (when the backend searches).
async fn unsearchable(vault: &ChatVault, user: &UserId, word: &str, what: &str) {
    if vault.messages_backend().capabilities().search {
        let hits = ok(
            vault.search(user, word, &SearchOptions::new()).await,
            "search",
        );
        assert!(
            hits.items.is_empty(),
            "{what}: search still finds {word:?}: {hits:?}"
        );
    }
}

/// `erase_owner`: a dry run reports and removes nothing; the erase removes every
/// conversation of the owner (archived included) with its branches, search entries and
/// attachments' bytes, and nothing of another owner; stopped by a failing delete, it is
/// finished by a rerun.
pub async fn erase_owner_removes_everything_of_theirs(vault: ChatVault, _config: SuiteConfig) {
    let (gone_user, kept_user) = (fresh_user("erased"), fresh_user("kept"));
    let (a, a_key) = stocked(&vault, &gone_user, "zebraword").await;
    let (b, b_key) = stocked(&vault, &gone_user, "zebraword").await;
    ok(vault.archive_conversation(&b).await, "archive");
    let (kept, kept_key) = stocked(&vault, &kept_user, "zebraword").await;

    let dry = ok(
        vault
            .forget()
            .erase_owner(&gone_user, &ForgetOptions::new().dry_run(true))
            .await,
        "dry run",
    );
    assert!(dry.dry_run);
    assert_eq!(dry.conversations.len(), 2, "dry run: {dry:?}");
    assert_eq!(
        (dry.messages, dry.files, dry.bytes),
        (6, 2, 24),
        "dry run: {dry:?}"
    );
    assert!(
        ok(vault.get_conversation(&a).await, "get").is_some(),
        "a dry run removed {a}"
    );

    // An erase stopped part-way: the first delete of bytes fails (one removal at a time,
    // so nothing else was under way).
    let recording = Arc::new(Forward::new(
        Arc::clone(vault.files_backend()),
        Recording::default(),
    ));
    recording.fail_next_deletes(1);
    let faulty = ChatVault::from_arcs(
        Arc::clone(vault.messages_backend()),
        Arc::clone(&recording) as Arc<dyn FilesBackend>,
    );
    assert!(
        faulty
            .forget()
            .erase_owner(&gone_user, &ForgetOptions::new().concurrency(1))
            .await
            .is_err(),
        "the erase reports the failed delete"
    );
    assert_eq!(recording.deletes_still_failing(), 0, "the fault happened");

    let report = ok(
        vault
            .forget()
            .erase_owner(&gone_user, &ForgetOptions::new())
            .await,
        "erase_owner (rerun)",
    );
    assert!(!report.dry_run);
    assert_eq!(report.conversations.len(), 2, "rerun: {report:?}");
    gone(&vault, &a, &a_key, "erased").await;
    gone(&vault, &b, &b_key, "erased (archived)").await;
    let listed = ok(
        vault
            .list_conversations(&gone_user, &ListOptions::new().include_archived(true))
            .await,
        "list",
    );
    assert!(listed.items.is_empty(), "still listed: {listed:?}");
    unsearchable(&vault, &gone_user, "zebraword", "erased").await;

    assert!(
        ok(vault.get_conversation(&kept).await, "get").is_some(),
        "another owner's was removed"
    );
    assert!(ok(vault.files_backend().head(&kept_key).await, "head").is_some());
    let again = ok(
        vault
            .forget()
            .erase_owner(&gone_user, &ForgetOptions::new())
            .await,
        "erase_owner (nothing left)",
    );
    assert_eq!(
        again,
        ForgetReport::default(),
        "a second erase finds nothing"
    );
}

/// Retention: an expired conversation reads as gone through the vault (get, list, search,
/// append) while a kept owner's stays; `purge_expired` removes the expired ones with
/// their bytes (or is refused by a backend that cannot list every user).
pub async fn retention_hides_and_purge_removes(vault: ChatVault, _config: SuiteConfig) {
    let (expiring, kept_user) = (fresh_user("expiring"), fresh_user("kept"));
    let (old, old_key) = stocked(&vault, &expiring, "quokkaword").await;
    let (kept, kept_key) = stocked(&vault, &kept_user, "quokkaword").await;
    let policy = Retention::new(Expiry::Never).owner(
        expiring.clone(),
        Expiry::AfterLastActivity(TimeDelta::zero()),
    );
    let strict = vault.clone().with_retention(policy);

    assert!(
        ok(strict.get_conversation(&old).await, "get").is_none(),
        "expired reads as gone"
    );
    assert!(
        ok(strict.get_conversation(&kept).await, "get").is_some(),
        "kept owner's stays"
    );
    let listed = ok(
        strict
            .list_conversations(&expiring, &ListOptions::new().include_archived(true))
            .await,
        "list",
    );
    assert!(listed.items.is_empty(), "expired still listed: {listed:?}");
    unsearchable(&strict, &expiring, "quokkaword", "expired").await;
    assert_kind(
        strict
            .append_as(&expiring, &old, vec![NewMessage::new(Role::User, "late")])
            .await,
        ErrorKind::NotFound,
        "append to an expired conversation",
    );
    assert!(
        ok(vault.get_conversation(&old).await, "get").is_some(),
        "not removed before a purge"
    );

    let purged = strict.forget().purge_expired(&ForgetOptions::new()).await;
    if !vault.messages_backend().capabilities().list_all {
        assert_kind(purged, ErrorKind::NotSupported, "purge without list_all");
        return;
    }
    let purged = ok(purged, "purge_expired");
    // Other checks' conversations on a shared store never expire under this policy.
    assert_eq!(
        purged.conversations,
        std::slice::from_ref(&old),
        "purged: {purged:?}"
    );
    assert_eq!((purged.messages, purged.files, purged.bytes), (3, 1, 12));
    gone(&vault, &old, &old_key, "purged").await;
    assert!(ok(vault.get_conversation(&kept).await, "get").is_some());
    assert!(ok(vault.files_backend().head(&kept_key).await, "head").is_some());
}

/// `redact`: the message keeps its place with no content and only its reason; search no
/// longer finds it; the attachment only it referenced is deleted (bytes and record), one
/// another message also references stays; bad reasons, unknown messages and a reply
/// still streaming are refused with nothing written.
pub async fn redact_leaves_a_tombstone(vault: ChatVault, _config: SuiteConfig) {
    let user = fresh_user("redact");
    let mut c = ok(vault.create_conversation(Some(&user)).await, "create");
    let only = ok(
        c.attach_file("only.txt", "only bytes", "text/plain").await,
        "attach",
    );
    let shared = ok(
        c.attach_file("shared.txt", "shared", "text/plain").await,
        "attach",
    );
    let secret = ok(
        c.add(NewMessage::with_parts(
            Role::User,
            vec![
                Part::text("my key is wombatword"),
                Part::attachment(only.id.clone(), None),
                Part::attachment(shared.id.clone(), None),
            ],
        ))
        .await,
        "add the secret",
    );
    ok(
        c.add(NewMessage::with_parts(
            Role::Assistant,
            vec![
                Part::text("noted"),
                Part::attachment(shared.id.clone(), None),
            ],
        ))
        .await,
        "add the reply",
    );

    assert_eq!(
        c.title(),
        Some("my key is wombatword"),
        "the title is made from it"
    );
    assert_kind(
        c.redact(&secret.id, " ").await,
        ErrorKind::InvalidInput,
        "a blank reason",
    );
    let long = "x".repeat(crate::vault::MAX_REDACTION_REASON + 1);
    assert_kind(
        c.redact(&secret.id, &long).await,
        ErrorKind::InvalidInput,
        "a long reason",
    );
    let unknown = crate::ids::MessageId::new();
    assert_kind(
        c.redact(&unknown, "why").await,
        ErrorKind::NotFound,
        "an unknown message",
    );

    let plan = ok(
        c.plan_redaction(&secret.id, "pasted a secret").await,
        "plan",
    );
    assert_eq!(plan.message, secret, "the plan shows the message as stored");
    let planned: Vec<_> = plan.files.iter().map(|f| &f.id).collect();
    assert_eq!(
        planned,
        [&only.id],
        "the plan names the only-referenced attachment"
    );
    assert_kind(
        c.plan_redaction(&secret.id, "").await,
        ErrorKind::InvalidInput,
        "plan, blank",
    );
    let done = ok(c.redact(&secret.id, "pasted a secret").await, "redact");
    check_tombstone(&done, &secret, &only);
    check_redacted_reads(&vault, &c, &done.message, [&only, &shared]).await;
    unsearchable(&vault, &user, "wombatword", "redacted").await;

    let mut streaming = ok(c.begin_reply(ReplyOptions::default()).await, "begin_reply");
    ok(streaming.push_text("half").await, "push");
    ok(streaming.checkpoint().await, "checkpoint");
    let id = streaming.message_id().clone();
    assert_kind(
        c.redact(&id, "why").await,
        ErrorKind::Conflict,
        "a reply being written",
    );
    ok(streaming.finish(None).await, "finish");
    let whole = ok(c.message(&id).await, "message").expect("stored");
    assert_eq!(
        whole.content(),
        "half",
        "the refused redaction wrote nothing"
    );
}

/// The redaction of `secret` left a tombstone in its place and deleted `only`.
fn check_tombstone(done: &Redacted, secret: &Message, only: &FileAttachment) {
    let tomb = &done.message;
    assert!(
        tomb.parts.is_empty(),
        "the tombstone keeps content: {tomb:?}"
    );
    let redaction = Redaction::of(tomb).expect("the tombstone holds its redaction");
    assert_eq!(redaction.reason, "pasted a secret");
    assert_eq!(
        tomb.metadata.len(),
        1,
        "only the redaction stays in its metadata"
    );
    assert_eq!(
        (&tomb.id, tomb.seq, tomb.parent, &tomb.role, tomb.created_at),
        (
            &secret.id,
            secret.seq,
            secret.parent,
            &secret.role,
            secret.created_at
        ),
        "the tombstone keeps its place"
    );
    assert!(
        tomb.revision > secret.revision,
        "the redaction is a new version"
    );
    assert_eq!(
        done.files_deleted.len(),
        1,
        "deleted: {:?}",
        done.files_deleted
    );
    assert_eq!(done.files_deleted[0].id, only.id);
}

/// What reads back after the redaction of `tomb`'s message: its tombstone, a title no
/// longer made from it, the attachment only it referenced gone, the shared one kept.
async fn check_redacted_reads(
    vault: &ChatVault,
    c: &Conversation,
    tomb: &Message,
    [only, shared]: [&FileAttachment; 2],
) {
    let secret = tomb;
    let fresh = ok(vault.get_conversation(c.id()).await, "get").expect("still there");
    assert_eq!(
        fresh.title(),
        Some(crate::vault::REDACTED_TITLE),
        "the title made from the redacted message goes too"
    );
    let stored = ok(fresh.message(&secret.id).await, "message").expect("still stored");
    assert_eq!(&stored, tomb, "the tombstone reads back");
    let history = ok(fresh.messages().await, "messages");
    assert_eq!(
        history.len(),
        2,
        "the tombstone keeps its place on the path"
    );
    assert!(
        fresh.file(&only.id).is_none(),
        "the only-referenced record is gone"
    );
    assert!(
        fresh.file(&shared.id).is_some(),
        "the shared attachment stays"
    );
    assert!(ok(vault.files_backend().head(&only.storage_key).await, "head").is_none());
    assert!(
        ok(
            vault.files_backend().head(&shared.storage_key).await,
            "head"
        )
        .is_some()
    );
}
