//! [`Forward`]: a backend that passes every call to an inner backend, with hooks where a
//! test adds a fault, a counter or a tweak.
//!
//! A test that needs a backend "like this one, but ..." writes a hook instead of a wrapper
//! that forwards every trait method by hand: a type implementing [`MessagesHook`] or
//! [`FilesHook`], overriding only what it changes. Two levels, both optional:
//!
//! - [`before`](MessagesHook::before) sees every call (its method, whether it writes, its
//!   conversation or key) before it reaches the inner backend, and may refuse it with an
//!   error: fault injection and call counting in a few lines.
//! - One method per trait method, whose default forwards to the inner backend: override it
//!   to change the arguments, the answer, or the whole call (the inner backend is passed
//!   in, so the override can still use it).
//!
//! ```
//! use std::sync::atomic::{AtomicUsize, Ordering};
//!
//! use chatvault_core::backend::{MessagesBackend, MessagesBackendExt};
//! use chatvault_core::conformance::{Call, Forward, MessagesHook};
//! use chatvault_core::{ConversationRecord, Error, Result};
//! use chatvault_memory::MemoryMessages;
//!
//! /// Counts writes and fails the third.
//! #[derive(Debug, Default)]
//! struct ThirdWriteFails {
//!     writes: AtomicUsize,
//! }
//!
//! impl<B: MessagesBackend> MessagesHook<B> for ThirdWriteFails {
//!     fn before(&self, call: &Call<'_>) -> Result<()> {
//!         if call.write && self.writes.fetch_add(1, Ordering::SeqCst) == 2 {
//!             return Err(Error::temporary("test", format!("{} failed", call.method)));
//!         }
//!         Ok(())
//!     }
//! }
//!
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! let backend = Forward::new(MemoryMessages::new(), ThirdWriteFails::default());
//! let record = ConversationRecord::new(None);
//! backend.create(&record).await.unwrap();
//! backend.append_messages(&record.id, Vec::new()).await.unwrap();
//! assert!(backend.delete(&record.id).await.is_err(), "the third write fails");
//! // The wrapper derefs to its hook: the test reads its counters through it.
//! assert_eq!(backend.writes.load(Ordering::SeqCst), 3);
//! # });
//! ```

use std::fmt::Debug;
use std::ops::Deref;
use std::time::Duration;

use async_trait::async_trait;

use crate::backend::{
    ByteStream, FilesBackend, FilesCapabilities, MessagesBackend, MessagesCapabilities, ObjectMeta,
};
use crate::error::Result;
use crate::ids::{ContentType, ConversationId, FileId, MessageId, StorageKey, UserId};
use crate::model::{
    Appended, ConversationHead, ConversationPatch, ConversationRecord, ConversationSummary,
    FileAttachment, ListOptions, Message, MessageRange, MessageUpdate, MessageUpdated, NewMessage,
    Page, PageLimit, SearchHit, SearchOptions,
};

/// One call through a [`Forward`], as its hook's `before` sees it.
#[derive(Clone, Copy, Debug)]
#[non_exhaustive]
pub struct Call<'a> {
    /// The trait method's name, as spelled in [`MessagesBackend`] or [`FilesBackend`]
    /// (`"append_messages_as"`, `"upload_stream"`, ...).
    pub method: &'static str,
    /// Whether the method writes: every [`MessagesBackend`] method but `capabilities`,
    /// `head`, `message`, `messages`, `list_conversations`, `list_deleting` and `search`;
    /// [`FilesBackend`]'s `upload_stream` and `delete`.
    pub write: bool,
    /// The conversation the call is about, for the messages methods that name one
    /// (`create`: the new record's id).
    pub conversation: Option<&'a ConversationId>,
    /// The storage key, for the files methods.
    pub key: Option<&'a StorageKey>,
}

impl<'a> Call<'a> {
    fn messages(method: &'static str, write: bool, id: &'a ConversationId) -> Self {
        Call {
            method,
            write,
            conversation: Some(id),
            key: None,
        }
    }

    fn files(method: &'static str, write: bool, key: &'a StorageKey) -> Self {
        Call {
            method,
            write,
            conversation: None,
            key: Some(key),
        }
    }
}

/// A backend that passes every call to `inner`, through the hook `H`
/// ([`MessagesHook`] for a messages backend, [`FilesHook`] for a files backend).
///
/// For each call it runs the hook's `before` (an error there is the call's answer, and the
/// inner backend is not called), then the hook's method of the same name, which forwards
/// to `inner` unless the hook overrides it. It derefs to the hook, so a test reads the
/// hook's state (counters, switches) through the wrapper. An `Arc<dyn MessagesBackend>`
/// is a backend too: `Forward<Arc<dyn MessagesBackend>, H>` wraps a shared one.
#[derive(Debug, Default)]
pub struct Forward<B, H> {
    inner: B,
    hook: H,
}

impl<B, H> Forward<B, H> {
    /// `inner` behind `hook`.
    pub fn new(inner: B, hook: H) -> Self {
        Forward { inner, hook }
    }

    /// The inner backend (calls on it skip the hook).
    pub fn inner(&self) -> &B {
        &self.inner
    }

    /// The hook.
    pub fn hook(&self) -> &H {
        &self.hook
    }
}

impl<B, H> Deref for Forward<B, H> {
    type Target = H;

    /// The hook.
    fn deref(&self) -> &H {
        &self.hook
    }
}

/// What a [`Forward`] over the messages backend `B` does around each call. Every method
/// has a default: `before` lets every call through, and the others forward to `inner`.
#[async_trait]
pub trait MessagesHook<B: MessagesBackend>: Send + Sync + Debug + 'static {
    /// Runs before every call but `capabilities`; an error is the call's answer, and the
    /// call does not reach the hook's method or the inner backend.
    fn before(&self, call: &Call<'_>) -> Result<()> {
        let _ = call;
        Ok(())
    }

    /// [`MessagesBackend::capabilities`].
    fn capabilities(&self, inner: &B) -> MessagesCapabilities {
        inner.capabilities()
    }

    /// [`MessagesBackend::create`].
    async fn create(&self, inner: &B, record: &ConversationRecord) -> Result<()> {
        inner.create(record).await
    }

    /// [`MessagesBackend::head`].
    async fn head(&self, inner: &B, id: &ConversationId) -> Result<Option<ConversationHead>> {
        inner.head(id).await
    }

    /// [`MessagesBackend::append_messages_as`].
    async fn append_messages_as(
        &self,
        inner: &B,
        owner: Option<&UserId>,
        id: &ConversationId,
        messages: Vec<NewMessage>,
    ) -> Result<Appended> {
        inner.append_messages_as(owner, id, messages).await
    }

    /// [`MessagesBackend::update_message`].
    async fn update_message(
        &self,
        inner: &B,
        id: &ConversationId,
        message_id: &MessageId,
        expected_revision: u64,
        update: &MessageUpdate,
    ) -> Result<MessageUpdated> {
        inner
            .update_message(id, message_id, expected_revision, update)
            .await
    }

    /// [`MessagesBackend::message`].
    async fn message(
        &self,
        inner: &B,
        id: &ConversationId,
        message_id: &MessageId,
    ) -> Result<Option<Message>> {
        inner.message(id, message_id).await
    }

    /// [`MessagesBackend::messages`].
    async fn messages(
        &self,
        inner: &B,
        id: &ConversationId,
        range: &MessageRange,
    ) -> Result<Page<Message>> {
        inner.messages(id, range).await
    }

    /// [`MessagesBackend::list_conversations`].
    async fn list_conversations(
        &self,
        inner: &B,
        user_id: Option<&UserId>,
        options: &ListOptions,
    ) -> Result<Page<ConversationSummary>> {
        inner.list_conversations(user_id, options).await
    }

    /// [`MessagesBackend::update`].
    async fn update(
        &self,
        inner: &B,
        id: &ConversationId,
        patch: &ConversationPatch,
    ) -> Result<ConversationRecord> {
        inner.update(id, patch).await
    }

    /// [`MessagesBackend::add_file`].
    async fn add_file(
        &self,
        inner: &B,
        id: &ConversationId,
        file: &FileAttachment,
    ) -> Result<ConversationRecord> {
        inner.add_file(id, file).await
    }

    /// [`MessagesBackend::remove_file`].
    async fn remove_file(
        &self,
        inner: &B,
        id: &ConversationId,
        file_id: &FileId,
    ) -> Result<Option<ConversationRecord>> {
        inner.remove_file(id, file_id).await
    }

    /// [`MessagesBackend::begin_delete`].
    async fn begin_delete(
        &self,
        inner: &B,
        id: &ConversationId,
    ) -> Result<Option<Vec<FileAttachment>>> {
        inner.begin_delete(id).await
    }

    /// [`MessagesBackend::delete`].
    async fn delete(&self, inner: &B, id: &ConversationId) -> Result<bool> {
        inner.delete(id).await
    }

    /// [`MessagesBackend::list_deleting`].
    async fn list_deleting(
        &self,
        inner: &B,
        user_id: Option<&UserId>,
        limit: PageLimit,
    ) -> Result<Vec<ConversationId>> {
        inner.list_deleting(user_id, limit).await
    }

    /// [`MessagesBackend::search`].
    async fn search(
        &self,
        inner: &B,
        user_id: &UserId,
        query: &str,
        options: &SearchOptions,
    ) -> Result<Page<SearchHit>> {
        inner.search(user_id, query, options).await
    }
}

/// What a [`Forward`] over the files backend `F` does around each call. Every method has
/// a default: `before` lets every call through, and the others forward to `inner`.
#[async_trait]
pub trait FilesHook<F: FilesBackend>: Send + Sync + Debug + 'static {
    /// Runs before every call but `capabilities`; an error is the call's answer, and the
    /// call does not reach the hook's method or the inner backend (an upload's stream is
    /// dropped unread).
    fn before(&self, call: &Call<'_>) -> Result<()> {
        let _ = call;
        Ok(())
    }

    /// [`FilesBackend::capabilities`].
    fn capabilities(&self, inner: &F) -> FilesCapabilities {
        inner.capabilities()
    }

    /// [`FilesBackend::upload_stream`].
    async fn upload_stream(
        &self,
        inner: &F,
        key: &StorageKey,
        data: ByteStream,
        content_type: &ContentType,
    ) -> Result<u64> {
        inner.upload_stream(key, data, content_type).await
    }

    /// [`FilesBackend::download_stream`].
    async fn download_stream(&self, inner: &F, key: &StorageKey) -> Result<Option<ByteStream>> {
        inner.download_stream(key).await
    }

    /// [`FilesBackend::head`].
    async fn head(&self, inner: &F, key: &StorageKey) -> Result<Option<ObjectMeta>> {
        inner.head(key).await
    }

    /// [`FilesBackend::delete`].
    async fn delete(&self, inner: &F, key: &StorageKey) -> Result<bool> {
        inner.delete(key).await
    }

    /// [`FilesBackend::signed_url`].
    async fn signed_url(
        &self,
        inner: &F,
        key: &StorageKey,
        expires_in: Duration,
        download_filename: Option<&str>,
    ) -> Result<String> {
        inner.signed_url(key, expires_in, download_filename).await
    }
}

/// Each call: the hook's `before`, then the hook's method of the same name.
#[async_trait]
#[deny(clippy::missing_trait_methods)]
impl<B: MessagesBackend, H: MessagesHook<B>> MessagesBackend for Forward<B, H> {
    fn capabilities(&self) -> MessagesCapabilities {
        self.hook.capabilities(&self.inner)
    }

    async fn create(&self, record: &ConversationRecord) -> Result<()> {
        self.hook
            .before(&Call::messages("create", true, &record.id))?;
        self.hook.create(&self.inner, record).await
    }

    async fn head(&self, id: &ConversationId) -> Result<Option<ConversationHead>> {
        self.hook.before(&Call::messages("head", false, id))?;
        MessagesHook::head(&self.hook, &self.inner, id).await
    }

    async fn append_messages_as(
        &self,
        owner: Option<&UserId>,
        id: &ConversationId,
        messages: Vec<NewMessage>,
    ) -> Result<Appended> {
        self.hook
            .before(&Call::messages("append_messages_as", true, id))?;
        self.hook
            .append_messages_as(&self.inner, owner, id, messages)
            .await
    }

    async fn update_message(
        &self,
        id: &ConversationId,
        message_id: &MessageId,
        expected_revision: u64,
        update: &MessageUpdate,
    ) -> Result<MessageUpdated> {
        self.hook
            .before(&Call::messages("update_message", true, id))?;
        self.hook
            .update_message(&self.inner, id, message_id, expected_revision, update)
            .await
    }

    async fn message(
        &self,
        id: &ConversationId,
        message_id: &MessageId,
    ) -> Result<Option<Message>> {
        self.hook.before(&Call::messages("message", false, id))?;
        self.hook.message(&self.inner, id, message_id).await
    }

    async fn messages(&self, id: &ConversationId, range: &MessageRange) -> Result<Page<Message>> {
        self.hook.before(&Call::messages("messages", false, id))?;
        self.hook.messages(&self.inner, id, range).await
    }

    async fn list_conversations(
        &self,
        user_id: Option<&UserId>,
        options: &ListOptions,
    ) -> Result<Page<ConversationSummary>> {
        self.hook.before(&Call {
            method: "list_conversations",
            write: false,
            conversation: None,
            key: None,
        })?;
        self.hook
            .list_conversations(&self.inner, user_id, options)
            .await
    }

    async fn update(
        &self,
        id: &ConversationId,
        patch: &ConversationPatch,
    ) -> Result<ConversationRecord> {
        self.hook.before(&Call::messages("update", true, id))?;
        self.hook.update(&self.inner, id, patch).await
    }

    async fn add_file(
        &self,
        id: &ConversationId,
        file: &FileAttachment,
    ) -> Result<ConversationRecord> {
        self.hook.before(&Call::messages("add_file", true, id))?;
        self.hook.add_file(&self.inner, id, file).await
    }

    async fn remove_file(
        &self,
        id: &ConversationId,
        file_id: &FileId,
    ) -> Result<Option<ConversationRecord>> {
        self.hook.before(&Call::messages("remove_file", true, id))?;
        self.hook.remove_file(&self.inner, id, file_id).await
    }

    async fn begin_delete(&self, id: &ConversationId) -> Result<Option<Vec<FileAttachment>>> {
        self.hook
            .before(&Call::messages("begin_delete", true, id))?;
        self.hook.begin_delete(&self.inner, id).await
    }

    async fn delete(&self, id: &ConversationId) -> Result<bool> {
        self.hook.before(&Call::messages("delete", true, id))?;
        MessagesHook::delete(&self.hook, &self.inner, id).await
    }

    async fn list_deleting(
        &self,
        user_id: Option<&UserId>,
        limit: PageLimit,
    ) -> Result<Vec<ConversationId>> {
        self.hook.before(&Call {
            method: "list_deleting",
            write: false,
            conversation: None,
            key: None,
        })?;
        self.hook.list_deleting(&self.inner, user_id, limit).await
    }

    async fn search(
        &self,
        user_id: &UserId,
        query: &str,
        options: &SearchOptions,
    ) -> Result<Page<SearchHit>> {
        self.hook.before(&Call {
            method: "search",
            write: false,
            conversation: None,
            key: None,
        })?;
        self.hook.search(&self.inner, user_id, query, options).await
    }
}

/// Each call: the hook's `before`, then the hook's method of the same name.
#[async_trait]
#[deny(clippy::missing_trait_methods)]
impl<F: FilesBackend, H: FilesHook<F>> FilesBackend for Forward<F, H> {
    fn capabilities(&self) -> FilesCapabilities {
        self.hook.capabilities(&self.inner)
    }

    async fn upload_stream(
        &self,
        key: &StorageKey,
        data: ByteStream,
        content_type: &ContentType,
    ) -> Result<u64> {
        self.hook.before(&Call::files("upload_stream", true, key))?;
        self.hook
            .upload_stream(&self.inner, key, data, content_type)
            .await
    }

    async fn download_stream(&self, key: &StorageKey) -> Result<Option<ByteStream>> {
        self.hook
            .before(&Call::files("download_stream", false, key))?;
        self.hook.download_stream(&self.inner, key).await
    }

    async fn head(&self, key: &StorageKey) -> Result<Option<ObjectMeta>> {
        self.hook.before(&Call::files("head", false, key))?;
        FilesHook::head(&self.hook, &self.inner, key).await
    }

    async fn delete(&self, key: &StorageKey) -> Result<bool> {
        self.hook.before(&Call::files("delete", true, key))?;
        FilesHook::delete(&self.hook, &self.inner, key).await
    }

    async fn signed_url(
        &self,
        key: &StorageKey,
        expires_in: Duration,
        download_filename: Option<&str>,
    ) -> Result<String> {
        self.hook.before(&Call::files("signed_url", false, key))?;
        self.hook
            .signed_url(&self.inner, key, expires_in, download_filename)
            .await
    }
}

/// `range` asking for at most `cap` messages: what a hook's
/// [`messages`](MessagesHook::messages) passes on to simulate a backend with short pages.
#[must_use]
pub fn cap_range(range: &MessageRange, cap: usize) -> MessageRange {
    match range {
        MessageRange::After { after, limit } => MessageRange::After {
            after: *after,
            limit: Some(limit.unwrap_or(cap).min(cap)),
        },
        MessageRange::Before { before, limit } => MessageRange::Before {
            before: *before,
            limit: (*limit).min(cap),
        },
    }
}
