//! The conformance suite fails deliberately broken backends: each test runs the checks that
//! must catch one fault inside a spawned task and asserts that the task panicked with the
//! message of the broken rule, and that a check unrelated to the fault passes the same
//! backend (so the failure comes from the fault, not from a backend broken everywhere).

mod common;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use chatvault_core::backend::MessagesBackendExt;
use chatvault_core::backend::{
    FilesCapabilities, MessagesCapabilities, ObjectMeta, SimpleAdapter, SimpleBackend,
    apply_add_file, async_trait, bytes_stream, check_replay, collect_stream, now,
};
use chatvault_core::conformance::{
    FilesHook, Forward, MessagesHook, SuiteConfig, files, messages, vault,
};
use chatvault_core::{
    Appended, ByteStream, ChatVault, ContentType, ConversationId, ConversationPatch,
    ConversationRecord, ConversationSummary, Error, FileAttachment, FilesBackend, ListOptions,
    Message, MessageId, MessageRange, MessageUpdate, MessageUpdated, MessagesBackend, NewMessage,
    Page, PageLimit, Parent, Result, SearchHit, SearchOptions, SearchQuery, StorageKey, UserId,
};
use chatvault_memory::MemoryFiles;
use common::MapStore;
use futures_util::StreamExt;
use futures_util::lock::Mutex as AsyncMutex;

/// One fault, injected into an otherwise correct backend.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Fault {
    /// append: read, yield, write back, without a lock, while declaring concurrent_appends.
    RacyAppend,
    /// append: stores the messages again when their ids are already stored.
    NonIdempotentAppend,
    /// list: drops the first item of every page after the first.
    SkippingListing,
    /// update_message: applies the update whatever revision the caller expected (atomically
    /// otherwise).
    IgnoresRevision,
    /// add_file: still records attachments on a conversation being deleted.
    AttachWhileDeleting,
    /// messages: a `Before` range ignores its limit.
    IgnoresRangeLimit,
    /// append_messages_as: appends whatever the owner (as a read-then-write check that
    /// was forgotten).
    IgnoresOwner,
    /// update: drops a change of the active leaf (a backend that stores only the columns
    /// it knew before branches).
    ForgetsTheLeaf,
    /// append: every message continues the active branch, whatever parent it names.
    IgnoresParents,
    /// list_deleting: finds nothing (a backend that keeps no trace of its marks).
    ForgetsMarks,
}

/// SimpleAdapter over a MapStore (which passes the suite), with one fault.
#[derive(Debug)]
struct BrokenMessages {
    fault: Fault,
    /// Serializes the non-idempotent append (its only fault is idempotency).
    append_lock: AsyncMutex<()>,
}

/// The backend the faults are injected into.
type Adapter = SimpleAdapter<MapStore>;

impl BrokenMessages {
    fn arc(fault: Fault) -> Arc<dyn MessagesBackend> {
        let hook = BrokenMessages {
            fault,
            append_lock: AsyncMutex::new(()),
        };
        // What the adapter declares: concurrent appends, no list_all, no search.
        Arc::new(Forward::new(SimpleAdapter::new(MapStore::default()), hook))
    }
}

#[async_trait]
impl MessagesHook<Adapter> for BrokenMessages {
    async fn list_deleting(
        &self,
        adapter: &Adapter,
        user_id: Option<&UserId>,
        limit: PageLimit,
    ) -> Result<Vec<ConversationId>> {
        match self.fault {
            Fault::ForgetsMarks => Ok(Vec::new()),
            _ => adapter.list_deleting(user_id, limit).await,
        }
    }

    async fn append_messages_as(
        &self,
        adapter: &Adapter,
        owner: Option<&UserId>,
        id: &ConversationId,
        messages: Vec<NewMessage>,
    ) -> Result<Appended> {
        let racy = match self.fault {
            Fault::RacyAppend => true,
            Fault::NonIdempotentAppend => false,
            Fault::IgnoresOwner => return adapter.append_messages(id, messages).await,
            Fault::IgnoresParents => {
                let line = messages
                    .into_iter()
                    .map(|m| m.with_parent(Parent::Active))
                    .collect();
                return adapter.append_messages_as(owner, id, line).await;
            }
            _ => return adapter.append_messages_as(owner, id, messages).await,
        };
        let _guard = if racy {
            None
        } else {
            Some(self.append_lock.lock().await)
        };
        let mut c = match adapter.inner().get(id).await? {
            Some(c) if !c.deleting => c,
            _ => return Err(Error::conversation_not_found(id.as_str())),
        };
        chatvault_core::backend::check_owner(&c.record, owner)?;
        if racy {
            let stored = messages
                .iter()
                .map(|m| c.messages.iter().find(|s| s.id == m.id).cloned())
                .collect();
            if let Some(replayed) = check_replay(&messages, stored)? {
                return Ok(Appended::new(c.record, replayed));
            }
            // The fault: another writer may read the same state here.
            tokio::task::yield_now().await;
        }
        let stored = c.record.apply_append(messages, now())?;
        c.messages.extend(stored.iter().cloned());
        adapter.inner().save(&c).await?;
        Ok(Appended::new(c.record, stored))
    }

    async fn update_message(
        &self,
        adapter: &Adapter,
        id: &ConversationId,
        message_id: &MessageId,
        expected_revision: u64,
        update: &MessageUpdate,
    ) -> Result<MessageUpdated> {
        if self.fault != Fault::IgnoresRevision {
            return adapter
                .update_message(id, message_id, expected_revision, update)
                .await;
        }
        let _guard = self.append_lock.lock().await;
        let mut c = match adapter.inner().get(id).await? {
            Some(c) if !c.deleting => c,
            _ => return Err(Error::conversation_not_found(id.as_str())),
        };
        let Some(index) = c.messages.iter().position(|m| &m.id == message_id) else {
            return Err(Error::message_not_found(message_id.as_str()));
        };
        // The fault: `expected_revision` is never compared with the stored one.
        let mut message = c.messages[index].clone();
        c.record.apply_message_update(&mut message, update, now());
        c.messages[index] = message.clone();
        adapter.inner().save(&c).await?;
        Ok(MessageUpdated::new(c.record, message))
    }

    async fn messages(
        &self,
        adapter: &Adapter,
        id: &ConversationId,
        range: &MessageRange,
    ) -> Result<Page<Message>> {
        if self.fault == Fault::IgnoresRangeLimit
            && let MessageRange::Before { before, .. } = range
        {
            let wide = MessageRange::Before {
                before: *before,
                limit: usize::MAX,
            };
            return adapter.messages(id, &wide).await;
        }
        adapter.messages(id, range).await
    }

    async fn list_conversations(
        &self,
        adapter: &Adapter,
        user_id: Option<&UserId>,
        options: &ListOptions,
    ) -> Result<Page<ConversationSummary>> {
        let mut page = adapter.list_conversations(user_id, options).await?;
        if self.fault == Fault::SkippingListing
            && options.cursor.is_some()
            && !page.items.is_empty()
        {
            page.items.remove(0);
        }
        Ok(page)
    }

    async fn update(
        &self,
        adapter: &Adapter,
        id: &ConversationId,
        patch: &ConversationPatch,
    ) -> Result<ConversationRecord> {
        if self.fault == Fault::ForgetsTheLeaf {
            let mut known = patch.clone();
            known.active = None;
            return adapter.update(id, &known).await;
        }
        adapter.update(id, patch).await
    }

    async fn add_file(
        &self,
        adapter: &Adapter,
        id: &ConversationId,
        file: &FileAttachment,
    ) -> Result<ConversationRecord> {
        if self.fault != Fault::AttachWhileDeleting {
            return adapter.add_file(id, file).await;
        }
        let _guard = self.append_lock.lock().await;
        // The fault: the deleting mark is not looked at.
        let Some(mut c) = adapter.inner().get(id).await? else {
            return Err(Error::conversation_not_found(id.as_str()));
        };
        apply_add_file(&mut c.record, &c.files, file)?;
        c.files.push(file.clone());
        adapter.inner().save(&c).await?;
        Ok(c.record)
    }
}

/// One fault in a files backend.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum FilesFault {
    /// Keys are case-folded (a case-insensitive file system).
    CaseFolding,
    /// Keys are cut at 200 bytes (a store with a short key limit, truncating silently).
    Truncating,
    /// Uploads become visible chunk by chunk, and a failed one leaves its partial bytes.
    PartialUploads,
}

/// MemoryFiles with one fault.
#[derive(Debug)]
struct BrokenFiles {
    fault: FilesFault,
}

impl BrokenFiles {
    fn arc(fault: FilesFault) -> Arc<dyn FilesBackend> {
        Arc::new(Forward::new(MemoryFiles::new(), BrokenFiles { fault }))
    }

    fn key(&self, key: &StorageKey) -> StorageKey {
        let mapped = match self.fault {
            FilesFault::CaseFolding => key.as_str().to_lowercase(),
            FilesFault::Truncating => {
                let mut cut = key.as_str().len().min(200);
                while !key.as_str().is_char_boundary(cut) {
                    cut -= 1;
                }
                key.as_str()[..cut].trim_end_matches('/').to_owned()
            }
            FilesFault::PartialUploads => key.as_str().to_owned(),
        };
        StorageKey::parse(mapped).expect("a lowercased or cut key is still a key")
    }
}

/// Every key goes through `BrokenFiles::key`.
#[async_trait]
impl FilesHook<MemoryFiles> for BrokenFiles {
    async fn upload_stream(
        &self,
        inner: &MemoryFiles,
        key: &StorageKey,
        mut data: ByteStream,
        content_type: &ContentType,
    ) -> Result<u64> {
        let key = self.key(key);
        if self.fault != FilesFault::PartialUploads {
            return inner.upload_stream(&key, data, content_type).await;
        }
        let mut so_far = Vec::new();
        inner
            .upload_stream(&key, bytes_stream(Bytes::new()), content_type)
            .await?;
        while let Some(chunk) = data.next().await {
            let chunk = chunk.map_err(|source| Error::UploadStream { source })?;
            so_far.extend_from_slice(&chunk);
            // The fault: what arrived so far is what readers see.
            inner
                .upload_stream(
                    &key,
                    bytes_stream(Bytes::from(so_far.clone())),
                    content_type,
                )
                .await?;
            tokio::task::yield_now().await;
        }
        Ok(so_far.len() as u64)
    }

    async fn download_stream(
        &self,
        inner: &MemoryFiles,
        key: &StorageKey,
    ) -> Result<Option<ByteStream>> {
        inner.download_stream(&self.key(key)).await
    }

    async fn head(&self, inner: &MemoryFiles, key: &StorageKey) -> Result<Option<ObjectMeta>> {
        inner.head(&self.key(key)).await
    }

    async fn delete(&self, inner: &MemoryFiles, key: &StorageKey) -> Result<bool> {
        inner.delete(&self.key(key)).await
    }

    async fn signed_url(
        &self,
        inner: &MemoryFiles,
        key: &StorageKey,
        expires_in: Duration,
        download_filename: Option<&str>,
    ) -> Result<String> {
        inner
            .signed_url(&self.key(key), expires_in, download_filename)
            .await
    }
}

fn config() -> SuiteConfig {
    SuiteConfig::default()
        .concurrent_appends(8, 50)
        .long_conversation(300)
}

/// Runs `check` in a spawned task and asserts that it panicked with a message containing
/// `expected` (or one of several: `"a|b"`).
async fn must_fail<F>(what: &str, check: F, expected: &str)
where
    F: Future<Output = ()> + Send + 'static,
{
    let err = match tokio::spawn(check).await {
        Ok(()) => panic!("{what}: the check passed a broken backend"),
        Err(e) => e,
    };
    assert!(
        err.is_panic(),
        "{what}: the check was cancelled, not failed"
    );
    let payload = err.into_panic();
    let message = payload
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| payload.downcast_ref::<&str>().map(|s| (*s).to_owned()))
        .unwrap_or_default();
    assert!(
        expected.split('|').any(|e| message.contains(e)),
        "{what}: the check failed, but not for the injected fault: {message}"
    );
}

/// Runs `check` and lets it panic the test if it fails.
async fn must_pass<F: Future<Output = ()>>(check: F) {
    check.await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racy_appends_fail_the_concurrency_checks() {
    let c = config();
    must_fail(
        "concurrent_appends",
        messages::concurrent_appends(BrokenMessages::arc(Fault::RacyAppend), c.clone()),
        "concurrent appends lost",
    )
    .await;
    // Sequential appends are right: the idempotency checks pass it. (Racing retries of one
    // batch all write the same state, so the lost update is invisible to that check.)
    must_pass(messages::concurrent_retries_store_once(
        BrokenMessages::arc(Fault::RacyAppend),
        c.clone(),
    ))
    .await;
    must_pass(messages::idempotent_appends(
        BrokenMessages::arc(Fault::RacyAppend),
        c,
    ))
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn non_idempotent_appends_fail_the_idempotency_checks() {
    let c = config();
    must_fail(
        "idempotent_appends",
        messages::idempotent_appends(BrokenMessages::arc(Fault::NonIdempotentAppend), c.clone()),
        "a repeated append returns the stored messages",
    )
    .await;
    must_fail(
        "concurrent_retries_store_once",
        messages::concurrent_retries_store_once(
            BrokenMessages::arc(Fault::NonIdempotentAppend),
            c.clone(),
        ),
        "must store it once",
    )
    .await;
    must_pass(messages::concurrent_appends(
        BrokenMessages::arc(Fault::NonIdempotentAppend),
        c,
    ))
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_skipping_listing_fails_the_listing_checks() {
    let c = config();
    must_fail(
        "list_user_conversations",
        messages::list_user_conversations(BrokenMessages::arc(Fault::SkippingListing), c.clone()),
        // Pages of 1 lose their only item; longer pages lose one of five.
        "exactly the unarchived ones|a listing page with a next_cursor must not be empty",
    )
    .await;
    must_fail(
        "listing_pages_survive_concurrent_creation",
        messages::listing_pages_survive_concurrent_creation(
            BrokenMessages::arc(Fault::SkippingListing),
            c.clone(),
        ),
        "was skipped",
    )
    .await;
    must_fail(
        "listing_ties_break_by_id",
        messages::listing_ties_break_by_id(BrokenMessages::arc(Fault::SkippingListing), c.clone()),
        "ties in last_active|a listing page with a next_cursor must not be empty",
    )
    .await;
    must_pass(messages::create_and_read_back(
        BrokenMessages::arc(Fault::SkippingListing),
        c,
    ))
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn backends_that_lose_the_tree_fail_the_branch_checks() {
    let c = config();
    must_fail(
        "branches_edit_switch_rewind (leaf)",
        messages::branches_edit_switch_rewind(
            BrokenMessages::arc(Fault::ForgetsTheLeaf),
            c.clone(),
        ),
        "a switch goes to the newest leaf",
    )
    .await;
    must_fail(
        "branches_edit_switch_rewind (parents)",
        messages::branches_edit_switch_rewind(
            BrokenMessages::arc(Fault::IgnoresParents),
            c.clone(),
        ),
        "left: (5, Some(4))",
    )
    .await;
    must_fail(
        "racing_edits_keep_both",
        messages::racing_edits_keep_both(BrokenMessages::arc(Fault::IgnoresParents), c.clone()),
        "every racing edit is kept",
    )
    .await;
    let vault = || {
        ChatVault::from_arcs(
            BrokenMessages::arc(Fault::ForgetsTheLeaf),
            Arc::new(MemoryFiles::new()),
        )
    };
    must_fail(
        "branches_through_the_vault",
        vault::branches_through_the_vault(vault(), c.clone()),
        "left: [\"u1\", \"a1\", \"u2 edited\", \"b2\"]",
    )
    .await;
    must_pass(messages::idempotent_appends(
        BrokenMessages::arc(Fault::ForgetsTheLeaf),
        c.clone(),
    ))
    .await;
    must_pass(messages::idempotent_appends(
        BrokenMessages::arc(Fault::IgnoresParents),
        c.clone(),
    ))
    .await;
    // The faultless adapter passes them.
    must_pass(messages::branches_edit_switch_rewind(
        BrokenMessages::arc(Fault::IgnoresRangeLimit),
        c.clone(),
    ))
    .await;
    must_pass(messages::racing_edits_keep_both(
        BrokenMessages::arc(Fault::IgnoresRangeLimit),
        c,
    ))
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_append_that_ignores_the_owner_fails_the_owner_check() {
    let c = config();
    must_fail(
        "append_checks_the_owner",
        messages::append_checks_the_owner(BrokenMessages::arc(Fault::IgnoresOwner), c.clone()),
        "expected a NotFound error, got Ok",
    )
    .await;
    must_pass(messages::idempotent_appends(
        BrokenMessages::arc(Fault::IgnoresOwner),
        c.clone(),
    ))
    .await;
    // The faultless adapter passes it.
    must_pass(messages::append_checks_the_owner(
        BrokenMessages::arc(Fault::IgnoresRangeLimit),
        c,
    ))
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_backend_that_forgets_its_marks_fails_the_deleting_check() {
    let c = config();
    must_fail(
        "marked_conversations_are_listed_until_deleted",
        messages::marked_conversations_are_listed_until_deleted(
            BrokenMessages::arc(Fault::ForgetsMarks),
            c.clone(),
        ),
        "left == right",
    )
    .await;
    // The faultless adapter passes it.
    must_pass(messages::marked_conversations_are_listed_until_deleted(
        BrokenMessages::arc(Fault::IgnoresRangeLimit),
        c,
    ))
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_update_that_ignores_the_revision_fails_the_versioning_checks() {
    let c = config();
    must_fail(
        "update_message_is_versioned",
        messages::update_message_is_versioned(
            BrokenMessages::arc(Fault::IgnoresRevision),
            c.clone(),
        ),
        "expected a Conflict error",
    )
    .await;
    must_fail(
        "racing_updates_one_wins",
        messages::racing_updates_one_wins(BrokenMessages::arc(Fault::IgnoresRevision), c.clone()),
        "exactly one must win",
    )
    .await;
    must_pass(messages::message_fields_round_trip(
        BrokenMessages::arc(Fault::IgnoresRevision),
        c,
    ))
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn attaching_to_a_conversation_being_deleted_fails_the_delete_checks() {
    let c = config();
    must_fail(
        "begin_delete_then_delete",
        messages::begin_delete_then_delete(
            BrokenMessages::arc(Fault::AttachWhileDeleting),
            c.clone(),
        ),
        "add_file to a marked conversation",
    )
    .await;
    // The race, through the vault: attachments recorded after the mark are never deleted.
    let vault = ChatVault::from_arcs(
        BrokenMessages::arc(Fault::AttachWhileDeleting),
        Arc::new(MemoryFiles::new()),
    );
    must_fail(
        "delete_racing_attach_leaves_no_bytes",
        vault::delete_racing_attach_leaves_no_bytes(vault, c.clone()),
        "outlived their deleted conversation",
    )
    .await;
    must_pass(messages::file_records(
        BrokenMessages::arc(Fault::AttachWhileDeleting),
        c,
    ))
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_range_that_ignores_its_limit_fails_the_range_check() {
    let c = config();
    must_fail(
        "message_ranges_and_cursors",
        messages::message_ranges_and_cursors(
            BrokenMessages::arc(Fault::IgnoresRangeLimit),
            c.clone(),
        ),
        "never longer",
    )
    .await;
    must_pass(messages::idempotent_appends(
        BrokenMessages::arc(Fault::IgnoresRangeLimit),
        c,
    ))
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn aliasing_keys_fail_the_key_check() {
    let c = config();
    for fault in [FilesFault::CaseFolding, FilesFault::Truncating] {
        must_fail(
            &format!("odd_keys_round_trip_without_aliasing ({fault:?})"),
            files::odd_keys_round_trip_without_aliasing(BrokenFiles::arc(fault), c.clone()),
            "another key aliased it",
        )
        .await;
        must_pass(files::upload_download_delete(
            BrokenFiles::arc(fault),
            c.clone(),
        ))
        .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn partial_uploads_fail_the_atomicity_checks() {
    let c = config();
    must_fail(
        "failed_stream_uploads_store_nothing",
        files::failed_stream_uploads_store_nothing(
            BrokenFiles::arc(FilesFault::PartialUploads),
            c.clone(),
        ),
        "must leave nothing",
    )
    .await;
    must_fail(
        "overwrites_are_never_mixed",
        files::overwrites_are_never_mixed(BrokenFiles::arc(FilesFault::PartialUploads), c.clone()),
        "partial file",
    )
    .await;
    must_pass(files::odd_keys_round_trip_without_aliasing(
        BrokenFiles::arc(FilesFault::PartialUploads),
        c,
    ))
    .await;
}

/// The broken backends really are the suite's reference backend plus one fault: without
/// the fault the same checks pass.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_unbroken_base_passes_the_same_checks() {
    let c = config();
    let base = || -> Arc<dyn MessagesBackend> { Arc::new(SimpleAdapter::new(MapStore::default())) };
    messages::concurrent_appends(base(), c.clone()).await;
    messages::concurrent_retries_store_once(base(), c.clone()).await;
    messages::idempotent_appends(base(), c.clone()).await;
    messages::list_user_conversations(base(), c.clone()).await;
    messages::listing_ties_break_by_id(base(), c.clone()).await;
    messages::update_message_is_versioned(base(), c.clone()).await;
    messages::racing_updates_one_wins(base(), c.clone()).await;
    messages::begin_delete_then_delete(base(), c.clone()).await;
    messages::message_ranges_and_cursors(base(), c.clone()).await;
    let files_base = || -> Arc<dyn FilesBackend> { Arc::new(MemoryFiles::new()) };
    files::odd_keys_round_trip_without_aliasing(files_base(), c.clone()).await;
    files::overwrites_are_never_mixed(files_base(), c.clone()).await;
    files::failed_stream_uploads_store_nothing(files_base(), c.clone()).await;
    // A sanity check of the injected files fault itself.
    let partial = BrokenFiles::arc(FilesFault::PartialUploads);
    let key = StorageKey::parse("k/v").unwrap();
    partial
        .upload_stream(
            &key,
            bytes_stream(Bytes::from_static(b"abc")),
            &ContentType::octet_stream(),
        )
        .await
        .unwrap();
    let got = collect_stream(partial.download_stream(&key).await.unwrap().unwrap())
        .await
        .unwrap();
    assert_eq!(&got[..], b"abc");
}

/// Faults of honesty and exactness, injected into the full in-memory backend.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum MemFault {
    /// search: also returns the hits of every other user it has seen.
    LeakySearch,
    /// search: hands the query to a query language as it is (SQLite's FTS5 before the fix):
    /// a NUL or an unbalanced double quote is a Backend error.
    QuerySyntax,
    /// search: answers every query, also those the core's rule refuses (blank, control
    /// characters, over the length limit) with a page.
    LaxQueries,
    /// Declares no search, but answers every search with an empty page.
    SilentNoSearch,
    /// Declares no list_all, but lists nothing instead of refusing.
    SilentNoListAll,
    /// append: numbers in parts and metadata pass through f64 (a store that keeps JSON
    /// numbers as doubles).
    LossyNumbers,
    /// append: creation times are kept to the millisecond.
    MillisecondTimes,
    /// Accepts any message, but cannot read back one nested deeper than 32 levels (a store
    /// with a lower nesting limit than the core's): accepted but unreadable.
    ShallowReader,
}

/// How deep a JSON value nests.
fn depth(value: &serde_json::Value) -> usize {
    match value {
        serde_json::Value::Array(items) => 1 + items.iter().map(depth).max().unwrap_or(0),
        serde_json::Value::Object(map) => 1 + map.values().map(depth).max().unwrap_or(0),
        _ => 1,
    }
}

/// MemoryMessages with one `MemFault`.
#[derive(Debug)]
struct BrokenMemory {
    fault: MemFault,
    users: std::sync::Mutex<Vec<UserId>>,
}

impl BrokenMemory {
    fn arc(fault: MemFault) -> Arc<dyn MessagesBackend> {
        let hook = BrokenMemory {
            fault,
            users: std::sync::Mutex::new(Vec::new()),
        };
        Arc::new(Forward::new(chatvault_memory::MemoryMessages::new(), hook))
    }
}

fn lossy(value: &mut serde_json::Value) {
    match value {
        serde_json::Value::Number(n) => {
            if let Some(f) = n.as_f64().and_then(serde_json::Number::from_f64) {
                *n = f;
            }
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(lossy),
        serde_json::Value::Object(map) => map.values_mut().for_each(lossy),
        _ => {}
    }
}

type Memory = chatvault_memory::MemoryMessages;

#[async_trait]
impl MessagesHook<Memory> for BrokenMemory {
    fn capabilities(&self, inner: &Memory) -> MessagesCapabilities {
        let caps = inner.capabilities();
        match self.fault {
            MemFault::SilentNoSearch => caps.with_search(false),
            MemFault::SilentNoListAll => caps.with_list_all(false),
            _ => caps,
        }
    }
    async fn create(&self, inner: &Memory, record: &ConversationRecord) -> Result<()> {
        if let Some(user) = &record.user_id {
            self.users
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(user.clone());
        }
        inner.create(record).await
    }
    async fn append_messages_as(
        &self,
        inner: &Memory,
        owner: Option<&UserId>,
        id: &ConversationId,
        mut messages: Vec<NewMessage>,
    ) -> Result<Appended> {
        if self.fault == MemFault::MillisecondTimes {
            use chrono::SubsecRound;
            for m in &mut messages {
                m.created_at = m.created_at.trunc_subsecs(3);
            }
        }
        if self.fault == MemFault::LossyNumbers {
            for m in &mut messages {
                let mut v = serde_json::to_value(&*m).map_err(|e| Error::backend("test", e))?;
                lossy(&mut v);
                *m = serde_json::from_value(v).map_err(|e| Error::backend("test", e))?;
            }
        }
        inner.append_messages_as(owner, id, messages).await
    }
    async fn messages(
        &self,
        inner: &Memory,
        id: &ConversationId,
        range: &MessageRange,
    ) -> Result<Page<Message>> {
        let page = inner.messages(id, range).await?;
        if self.fault == MemFault::ShallowReader {
            for m in &page.items {
                let v = serde_json::to_value(m).map_err(|e| Error::backend("test", e))?;
                if depth(&v) > 32 {
                    return Err(Error::corrupt(
                        "test",
                        m.id.to_string(),
                        "nested too deep to read",
                    ));
                }
            }
        }
        Ok(page)
    }
    async fn list_conversations(
        &self,
        inner: &Memory,
        user_id: Option<&UserId>,
        options: &ListOptions,
    ) -> Result<Page<ConversationSummary>> {
        if self.fault == MemFault::SilentNoListAll && user_id.is_none() {
            return Ok(Page {
                items: Vec::new(),
                next_cursor: None,
            });
        }
        inner.list_conversations(user_id, options).await
    }
    async fn search(
        &self,
        inner: &Memory,
        user_id: &UserId,
        query: &str,
        options: &SearchOptions,
    ) -> Result<Page<SearchHit>> {
        match self.fault {
            MemFault::SilentNoSearch => Ok(Page {
                items: Vec::new(),
                next_cursor: None,
            }),
            MemFault::QuerySyntax if query.contains('\0') => {
                Err(Error::backend("test", "unterminated string"))
            }
            MemFault::QuerySyntax if query.matches('"').count() % 2 == 1 => {
                Err(Error::backend("test", "fts5: syntax error near \""))
            }
            MemFault::LaxQueries if SearchQuery::parse(query).is_err() => Ok(Page {
                items: Vec::new(),
                next_cursor: None,
            }),
            MemFault::LeakySearch => {
                let users = self.users.lock().unwrap_or_else(|e| e.into_inner()).clone();
                let own = inner.search(user_id, query, options).await?;
                let mut items = Vec::new();
                for other in users.iter().filter(|u| *u != user_id) {
                    items.extend(inner.search(other, query, options).await?.items);
                }
                items.extend(own.items);
                items.truncate(options.limit.get());
                Ok(Page {
                    items,
                    next_cursor: own.next_cursor,
                })
            }
            _ => inner.search(user_id, query, options).await,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn dishonest_capabilities_and_leaks_fail_the_capability_checks() {
    let c = config();
    must_fail(
        "search (leaky)",
        messages::search(BrokenMemory::arc(MemFault::LeakySearch), c.clone()),
        "never return another user's message",
    )
    .await;
    must_fail(
        "search (declared absent, answers anyway)",
        messages::search(BrokenMemory::arc(MemFault::SilentNoSearch), c.clone()),
        "expected a NotSupported error",
    )
    .await;
    must_fail(
        "list_all_conversations (declared absent, answers anyway)",
        messages::list_all_conversations(BrokenMemory::arc(MemFault::SilentNoListAll), c.clone()),
        "expected a NotSupported error",
    )
    .await;
    // The honest in-memory backend passes both.
    let honest =
        || -> Arc<dyn MessagesBackend> { Arc::new(chatvault_memory::MemoryMessages::new()) };
    messages::search(honest(), c.clone()).await;
    messages::list_all_conversations(honest(), c).await;
}

/// A search that errs on query syntax fails both query checks (the fixed list and the
/// property test), and so does one that answers queries the core refuses; both pass the
/// plain search check, which never sends such a query.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn searches_that_misanswer_queries_fail_the_query_checks() {
    let c = config();
    for (fault, expected) in [
        (MemFault::QuerySyntax, "got a Backend error"),
        (
            MemFault::LaxQueries,
            "expected an InvalidInput error (the rule refuses it), got a page",
        ),
    ] {
        must_fail(
            &format!("search_answers_nasty_queries ({fault:?})"),
            messages::search_answers_nasty_queries(BrokenMemory::arc(fault), c.clone()),
            expected,
        )
        .await;
        must_fail(
            &format!("search_answers_arbitrary_queries ({fault:?})"),
            messages::search_answers_arbitrary_queries(BrokenMemory::arc(fault), c.clone()),
            expected,
        )
        .await;
        must_pass(messages::search(BrokenMemory::arc(fault), c.clone())).await;
    }
    // Declared absent but answering: the query checks want NotSupported.
    let silent = || BrokenMemory::arc(MemFault::SilentNoSearch);
    must_fail(
        "search_answers_nasty_queries (declared absent, answers anyway)",
        messages::search_answers_nasty_queries(silent(), c.clone()),
        "expected a NotSupported error",
    )
    .await;
    must_fail(
        "search_answers_arbitrary_queries (declared absent, answers anyway)",
        messages::search_answers_arbitrary_queries(silent(), c.clone()),
        "expected a NotSupported error",
    )
    .await;
    // The honest in-memory backend passes them; the simple adapter (no search) too.
    let honest =
        || -> Arc<dyn MessagesBackend> { Arc::new(chatvault_memory::MemoryMessages::new()) };
    messages::search_answers_nasty_queries(honest(), c.clone()).await;
    messages::search_answers_arbitrary_queries(honest(), c.clone()).await;
    let adapter =
        || -> Arc<dyn MessagesBackend> { Arc::new(SimpleAdapter::new(MapStore::default())) };
    messages::search_answers_nasty_queries(adapter(), c.clone()).await;
    messages::search_answers_arbitrary_queries(adapter(), c).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn numbers_kept_as_doubles_fail_the_exactness_checks() {
    let c = config();
    must_fail(
        "every_part_kind_round_trips",
        messages::every_part_kind_round_trips(BrokenMemory::arc(MemFault::LossyNumbers), c.clone()),
        "changed on the way",
    )
    .await;
    must_fail(
        "append_assigns_seq_and_title",
        messages::append_assigns_seq_and_title(
            BrokenMemory::arc(MemFault::LossyNumbers),
            c.clone(),
        ),
        "must round-trip exactly (numbers too)",
    )
    .await;
    must_pass(messages::concurrent_appends(
        BrokenMemory::arc(MemFault::LossyNumbers),
        c,
    ))
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn stores_that_lose_precision_or_depth_fail_the_round_trip_checks() {
    let c = config();
    must_fail(
        "message_fields_round_trip",
        messages::message_fields_round_trip(
            BrokenMemory::arc(MemFault::MillisecondTimes),
            c.clone(),
        ),
        "to the microsecond",
    )
    .await;
    must_fail(
        "accepted_values_read_back",
        messages::accepted_values_read_back(BrokenMemory::arc(MemFault::ShallowReader), c.clone()),
        "nested too deep to read",
    )
    .await;
    must_pass(messages::message_fields_round_trip(
        BrokenMemory::arc(MemFault::ShallowReader),
        c.clone(),
    ))
    .await;
    must_pass(messages::accepted_values_read_back(
        BrokenMemory::arc(MemFault::MillisecondTimes),
        c,
    ))
    .await;
}

/// Files backends that answer `signed_url` against their declared capability.
#[derive(Debug)]
struct DishonestUrls {
    declares: bool,
}

#[async_trait]
impl FilesHook<MemoryFiles> for DishonestUrls {
    fn capabilities(&self, inner: &MemoryFiles) -> FilesCapabilities {
        inner.capabilities().with_signed_urls(self.declares)
    }
    async fn signed_url(
        &self,
        inner: &MemoryFiles,
        key: &StorageKey,
        _expires_in: Duration,
        _download_filename: Option<&str>,
    ) -> Result<String> {
        if self.declares {
            // Declared: but a URL for a missing key too (the 0.1 "None means both" mix-up).
            Ok(format!("https://files.example/{key}"))
        } else {
            // Not declared: answers NotFound for a missing key instead of NotSupported.
            match inner.head(key).await? {
                None => Err(Error::NotFound {
                    kind: "file",
                    id: key.to_string(),
                }),
                Some(_) => Err(Error::not_supported("test", "signed URLs")),
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn signed_urls_that_confuse_missing_and_unsupported_fail() {
    let c = config();
    for declares in [true, false] {
        let backend: Arc<dyn FilesBackend> =
            Arc::new(Forward::new(MemoryFiles::new(), DishonestUrls { declares }));
        must_fail(
            &format!("signed_urls (declared: {declares})"),
            files::signed_urls(backend, c.clone()),
            if declares {
                "signed_url of a missing key: expected a NotFound error"
            } else {
                "expected a NotSupported error, got NotFound"
            },
        )
        .await;
    }
}
