//! The two traits a storage backend implements: [`MessagesBackend`] and [`FilesBackend`]
//! (with its extension [`FilesBackendExt`]).

use std::fmt::Debug;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;

use super::capabilities::{FilesCapabilities, MessagesCapabilities, ObjectMeta};
use super::stream::{ByteStream, bytes_stream, collect_stream, download_error};
use crate::error::Result;
use crate::ids::{ContentType, ConversationId, FileId, MessageId, StorageKey, UserId};
use crate::model::{
    Appended, ConversationHead, ConversationPatch, ConversationRecord, ConversationSummary,
    FileAttachment, ListOptions, Message, MessageRange, MessageUpdate, MessageUpdated, NewMessage,
    Page, PageLimit, SearchHit, SearchOptions,
};

/// Where conversations and their messages are kept.
///
/// Every method is required. The vault validates what it passes (ids are valid by type;
/// records, patches, messages and updates have passed their `validate`), but a backend must
/// never let a value it is given escape its store or corrupt it. Each method says what must
/// be atomic; `chatvault_core::conformance` (feature `conformance`) checks it.
///
/// A conversation that [`begin_delete`](Self::begin_delete) has marked reads as gone to
/// every method but `begin_delete` and `delete`: `head` gives `None`, listings leave it
/// out, and writes fail with [`Error::NotFound`](crate::Error::NotFound). Its id stays
/// taken until `delete`.
///
/// The trait is dyn-compatible: [`ChatVault`](crate::ChatVault) holds an `Arc<dyn
/// MessagesBackend>`. First-party implementations carry
/// `#[deny(clippy::missing_trait_methods)]`, so none inherits a default by accident.
#[async_trait]
pub trait MessagesBackend: Send + Sync + Debug + 'static {
    /// What this backend can do.
    fn capabilities(&self) -> MessagesCapabilities;

    /// Stores a new, empty conversation (its `message_count` and `file_count` are 0).
    ///
    /// Atomic: of two concurrent creates of one id, exactly one succeeds; the other, and
    /// any create of a stored id, fails with [`Error::AlreadyExists`](crate::Error::AlreadyExists).
    async fn create(&self, record: &ConversationRecord) -> Result<()>;

    /// The conversation's record and attachments, read consistently in one call, or
    /// `None`.
    async fn head(&self, id: &ConversationId) -> Result<Option<ConversationHead>>;

    /// Appends messages at the end of the conversation, atomically and idempotently.
    ///
    /// Assigns `seq` values after the current last one and updates the record exactly as
    /// [`ConversationRecord::apply_append`] defines, in the same atomic write: either every
    /// message and the record change are stored, or nothing. Concurrent appends to one
    /// conversation never lose, duplicate or reorder a message (within what
    /// [`MessagesCapabilities::concurrent_appends`] and `multi_process` declare).
    ///
    /// Message ids are idempotency keys, decided by [`check_replay`](crate::backend::check_replay):
    /// when every message's id is already stored in this conversation with the same
    /// content, the append stores nothing and returns the stored messages (with the current
    /// record); an id stored with other content is
    /// [`Error::AlreadyExists`](crate::Error::AlreadyExists). Fails with
    /// [`Error::NotFound`](crate::Error::NotFound) when the conversation does not exist. An
    /// empty `messages` stores nothing and returns the record.
    ///
    /// `owner`: when given, the conversation must belong to that user
    /// ([`ConversationRecord::user_id`]), checked in the same atomic write as the append,
    /// not by a read before it, so an owner-checked append costs what an append costs.
    /// Someone else's conversation, or one without an owner, is
    /// [`Error::NotFound`](crate::Error::NotFound) with nothing stored: the answer for a
    /// conversation that does not exist. The rule is [`check_owner`](super::check_owner).
    async fn append_messages_as(
        &self,
        owner: Option<&UserId>,
        id: &ConversationId,
        messages: Vec<NewMessage>,
    ) -> Result<Appended>;

    /// Updates one message, atomically with the record, if it is still at
    /// `expected_revision`.
    ///
    /// Applies [`ConversationRecord::apply_message_update`] to the record and the message
    /// in one atomic write. Fails with [`Error::Conflict`](crate::Error::Conflict) (nothing
    /// written) when the message's revision is not `expected_revision`: of two writers
    /// updating from the same revision, exactly one wins.
    /// [`Error::NotFound`](crate::Error::NotFound) when the conversation or the message
    /// does not exist.
    async fn update_message(
        &self,
        id: &ConversationId,
        message_id: &MessageId,
        expected_revision: u64,
        update: &MessageUpdate,
    ) -> Result<MessageUpdated>;

    /// The stored message with this id, or `None` when the conversation holds none.
    ///
    /// One point read where the store has an index by message id. Fails with
    /// [`Error::NotFound`](crate::Error::NotFound) when the conversation does not exist.
    async fn message(&self, id: &ConversationId, message_id: &MessageId)
    -> Result<Option<Message>>;

    /// A window of the conversation's messages, in ascending `seq` order, on every
    /// branch (the vault reads a branch as the ranges of its [`Tree`](crate::Tree)
    /// segments).
    ///
    /// A backend may return fewer messages than the range's limit (a page of its own
    /// natural size: for a range without a limit, as much as one cheap read holds);
    /// `next_cursor` is then `Some`, as it is whenever more messages lie beyond the page in
    /// the range's direction. Fails with [`Error::NotFound`](crate::Error::NotFound) when
    /// the conversation does not exist.
    async fn messages(&self, id: &ConversationId, range: &MessageRange) -> Result<Page<Message>>;

    /// A page of conversation summaries, newest activity first (ties: id descending).
    ///
    /// `user_id: None` lists every user's conversations
    /// ([`Error::NotSupported`](crate::Error::NotSupported) unless
    /// [`MessagesCapabilities::list_all`]). Archived conversations are left out unless
    /// `options.include_archived`. Paging continues strictly after the cursor's position,
    /// so a conversation created or made active while a client pages is never skipped or
    /// repeated on later pages. [`paginate`](crate::backend::paginate) is the reference.
    async fn list_conversations(
        &self,
        user_id: Option<&UserId>,
        options: &ListOptions,
    ) -> Result<Page<ConversationSummary>>;

    /// Applies a metadata-only change (title, archived, metadata) atomically and returns
    /// the new record ([`ConversationRecord::apply_patch`]). Never rewrites messages.
    /// Fails with [`Error::NotFound`](crate::Error::NotFound) when the conversation does not exist.
    async fn update(
        &self,
        id: &ConversationId,
        patch: &ConversationPatch,
    ) -> Result<ConversationRecord>;

    /// Records an attachment whose bytes are already stored; returns the new record.
    ///
    /// Atomically applies [`apply_add_file`](crate::backend::apply_add_file). Fails with
    /// [`Error::AlreadyExists`](crate::Error::AlreadyExists) if the file id is taken and
    /// [`Error::NotFound`](crate::Error::NotFound) when the conversation does not exist or
    /// is being deleted (the vault then deletes the bytes it uploaded).
    async fn add_file(
        &self,
        id: &ConversationId,
        file: &FileAttachment,
    ) -> Result<ConversationRecord>;

    /// Removes an attachment's record (not its bytes). Returns the new record, or `None` if
    /// there was no such file. Fails with [`Error::NotFound`](crate::Error::NotFound) when
    /// the conversation does not exist.
    async fn remove_file(
        &self,
        id: &ConversationId,
        file_id: &FileId,
    ) -> Result<Option<ConversationRecord>>;

    /// First step of deleting a conversation: marks it as being deleted, so that no
    /// attachment can be added from now on, and returns its attachments (whose bytes the
    /// vault deletes next). `None` when there is no such conversation. Calling it again on
    /// a marked conversation returns the attachments again (a retried delete).
    async fn begin_delete(&self, id: &ConversationId) -> Result<Option<Vec<FileAttachment>>>;

    /// Removes the conversation, its messages and attachment records (not the bytes),
    /// marked or not. Returns whether it existed. Retry-safe: an interrupted delete is
    /// finished by calling it again.
    async fn delete(&self, id: &ConversationId) -> Result<bool>;

    /// At most `limit` conversations that [`begin_delete`](Self::begin_delete) has marked
    /// and [`delete`](Self::delete) has not finished, of `user_id` (every user's, and
    /// those of no user, with `None`), in no particular order. Exact after a crash at any
    /// point: a marked conversation is listed until `delete` answers, a live or deleted one
    /// never is. `delete` takes a conversation off this list, so a caller that finishes
    /// each one it gets calls again until the answer is empty (how a purge finishes what a
    /// crash between the two steps left hidden).
    async fn list_deleting(
        &self,
        user_id: Option<&UserId>,
        limit: PageLimit,
    ) -> Result<Vec<ConversationId>>;

    /// Full-text search over the text of a user's messages, best matches first.
    ///
    /// [`Error::NotSupported`](crate::Error::NotSupported) unless
    /// [`MessagesCapabilities::search`]. A backend that searches first applies
    /// [`SearchQuery::parse`](crate::SearchQuery::parse) to `query` and returns its
    /// [`Error::InvalidInput`](crate::Error::InvalidInput); every query it accepts is
    /// answered with a page (perhaps empty), its characters searched for as text, never as
    /// the store's query syntax: no query is a [`Error::Backend`](crate::Error::Backend)
    /// error.
    async fn search(
        &self,
        user_id: &UserId,
        query: &str,
        options: &SearchOptions,
    ) -> Result<Page<SearchHit>>;
}

/// Where attachments' bytes are kept, by [`StorageKey`].
///
/// Streaming upload and download are the primitives; [`FilesBackendExt`] builds the
/// buffered conveniences (`upload`, `download`, `exists`) on them for every backend. Keys
/// and content types arrive validated by their types: a backend stores the content type as
/// given and returns it unchanged; it is safe to put in an HTTP header.
#[async_trait]
pub trait FilesBackend: Send + Sync + Debug + 'static {
    /// What this backend can do.
    fn capabilities(&self) -> FilesCapabilities;

    /// Stores a stream under `key` with its content type, replacing what was there;
    /// returns the number of bytes stored.
    ///
    /// A reader sees the old bytes or the new, never a mix or a partial file; nothing new
    /// is left under `key` if the stream or the store fails part-way (a failing stream is
    /// [`Error::UploadStream`](crate::Error::UploadStream)).
    async fn upload_stream(
        &self,
        key: &StorageKey,
        data: ByteStream,
        content_type: &ContentType,
    ) -> Result<u64>;

    /// The bytes under `key` as a stream, or `None` when there are none.
    async fn download_stream(&self, key: &StorageKey) -> Result<Option<ByteStream>>;

    /// Size and content type of the bytes under `key`, or `None` when there are none.
    async fn head(&self, key: &StorageKey) -> Result<Option<ObjectMeta>>;

    /// Deletes the bytes under `key`; returns whether they existed.
    async fn delete(&self, key: &StorageKey) -> Result<bool>;

    /// A URL that fetches the bytes under `key` without further credentials for
    /// `expires_in`, offering `download_filename` as the saved file's name (RFC 6266).
    ///
    /// [`Error::NotSupported`](crate::Error::NotSupported) when the backend has no such
    /// URLs (see [`FilesCapabilities::signed_urls`]);
    /// [`Error::NotFound`](crate::Error::NotFound) when nothing is stored under `key`: the
    /// two answers are never confused.
    async fn signed_url(
        &self,
        key: &StorageKey,
        expires_in: Duration,
        download_filename: Option<&str>,
    ) -> Result<String>;
}

/// Conveniences for callers, built on the [`MessagesBackend`] methods; every messages
/// backend (and `dyn MessagesBackend`) has them.
#[async_trait]
pub trait MessagesBackendExt: MessagesBackend {
    /// [`append_messages_as`](MessagesBackend::append_messages_as) without an owner check.
    async fn append_messages(
        &self,
        id: &ConversationId,
        messages: Vec<NewMessage>,
    ) -> Result<Appended> {
        self.append_messages_as(None, id, messages).await
    }
}

impl<T: MessagesBackend + ?Sized> MessagesBackendExt for T {}

/// Buffered conveniences for callers, built on the [`FilesBackend`] primitives; every
/// files backend (and `dyn FilesBackend`) has them.
#[async_trait]
pub trait FilesBackendExt: FilesBackend {
    /// Stores `data` under `key` (through [`FilesBackend::upload_stream`]).
    async fn upload(
        &self,
        key: &StorageKey,
        data: Bytes,
        content_type: &ContentType,
    ) -> Result<u64> {
        self.upload_stream(key, bytes_stream(data), content_type)
            .await
    }

    /// The whole of the bytes under `key`, or `None`.
    async fn download(&self, key: &StorageKey) -> Result<Option<Bytes>> {
        match self.download_stream(key).await? {
            None => Ok(None),
            Some(stream) => Ok(Some(collect_stream(stream).await.map_err(download_error)?)),
        }
    }

    /// Whether bytes are stored under `key`.
    async fn exists(&self, key: &StorageKey) -> Result<bool> {
        Ok(self.head(key).await?.is_some())
    }
}

impl<T: FilesBackend + ?Sized> FilesBackendExt for T {}
