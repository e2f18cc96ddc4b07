//! The two traits a storage backend implements, and what backends share.
//!
//! Every operation the vault uses is a **required** method with documented atomicity:
//! there is no provided fallback that reads and rewrites a whole conversation behind a
//! backend author's back. A backend declares what it can do in its capabilities, which the
//! vault and the conformance suite read. For a quick prototype over a store that can only
//! save and load whole conversations, implement [`SimpleBackend`](crate::SimpleBackend)
//! instead and wrap it in [`SimpleAdapter`](crate::SimpleAdapter).

use std::fmt::Debug;
use std::io;
use std::time::Duration;

use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use futures_util::stream::{self, BoxStream, StreamExt};

use crate::error::{Error, Result};
use crate::ids::{ContentType, ConversationId, FileId, MessageId, StorageKey, UserId};
use crate::message::{MessageUpdate, MessageUpdated, NewMessage};
use crate::model::{
    Appended, ConversationHead, ConversationPatch, ConversationRecord, ConversationSummary,
    FileAttachment, ListCursor, ListOptions, Message, MessageRange, Page, SearchHit, SearchOptions,
    sort_for_listing,
};

/// A stream of bytes: what streaming uploads take and streaming downloads give.
///
/// Items are `std::io::Result<Bytes>`, so `tokio_util::io::ReaderStream` makes one from
/// any `AsyncRead`, and `tokio_util::io::StreamReader` turns one back into an `AsyncRead`.
/// A backend failure in the middle of a download arrives as an `io::Error` whose inner
/// error is a [`crate::Error`].
pub type ByteStream = BoxStream<'static, io::Result<Bytes>>;

/// A [`ByteStream`] that yields `data` in one chunk.
pub fn bytes_stream(data: Bytes) -> ByteStream {
    stream::once(async move { Ok(data) }).boxed()
}

/// Reads a whole [`ByteStream`] into memory.
pub async fn collect_stream(mut stream: ByteStream) -> io::Result<Bytes> {
    let mut buf = BytesMut::new();
    while let Some(chunk) = stream.next().await {
        buf.extend_from_slice(&chunk?);
    }
    Ok(buf.freeze())
}

/// What a [`MessagesBackend`] can do, declared by the backend itself.
///
/// The vault reads it (an operation the backend lacks is a clear
/// [`Error::NotSupported`]; a message over `max_message_bytes` is refused with
/// [`Error::TooLarge`] before anything is written), and so does the conformance suite.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct MessagesCapabilities {
    /// Concurrent appends to one conversation through this backend value never lose,
    /// duplicate or reorder a message.
    pub concurrent_appends: bool,
    /// The same holds for writers in other processes (or machines) sharing the store.
    pub multi_process: bool,
    /// `list_conversations(None, ..)` lists every user's conversations.
    pub list_all: bool,
    /// [`MessagesBackend::search`] works.
    pub search: bool,
    /// The largest message (bytes of its JSON form) the backend stores, if lower than
    /// [`MAX_MESSAGE_BYTES`](crate::message::MAX_MESSAGE_BYTES).
    pub max_message_bytes: Option<u64>,
    /// The most messages one append may carry, if limited.
    pub max_append_messages: Option<usize>,
}

impl MessagesCapabilities {
    /// Everything: atomic appends in and across processes, listing all users, search, no
    /// limits below the core's.
    pub fn full() -> Self {
        MessagesCapabilities {
            concurrent_appends: true,
            multi_process: true,
            list_all: true,
            search: true,
            max_message_bytes: None,
            max_append_messages: None,
        }
    }

    /// Nothing beyond the basics every backend must do.
    pub fn basic() -> Self {
        MessagesCapabilities {
            concurrent_appends: false,
            multi_process: false,
            list_all: false,
            search: false,
            max_message_bytes: None,
            max_append_messages: None,
        }
    }

    /// Sets [`concurrent_appends`](Self::concurrent_appends).
    pub fn with_concurrent_appends(mut self, yes: bool) -> Self {
        self.concurrent_appends = yes;
        self
    }

    /// Sets [`multi_process`](Self::multi_process).
    pub fn with_multi_process(mut self, yes: bool) -> Self {
        self.multi_process = yes;
        self
    }

    /// Sets [`list_all`](Self::list_all).
    pub fn with_list_all(mut self, yes: bool) -> Self {
        self.list_all = yes;
        self
    }

    /// Sets [`search`](Self::search).
    pub fn with_search(mut self, yes: bool) -> Self {
        self.search = yes;
        self
    }

    /// Sets [`max_message_bytes`](Self::max_message_bytes).
    pub fn with_max_message_bytes(mut self, limit: Option<u64>) -> Self {
        self.max_message_bytes = limit;
        self
    }

    /// Sets [`max_append_messages`](Self::max_append_messages).
    pub fn with_max_append_messages(mut self, limit: Option<usize>) -> Self {
        self.max_append_messages = limit;
        self
    }
}

/// Where conversations and their messages are kept.
///
/// Every method is required. The vault validates what it passes (ids are valid by type;
/// records, patches, messages and updates have passed their `validate`), but a backend
/// must never let a value it is given escape its store or corrupt it. Each method says
/// what must be atomic; `chatvault_core::conformance` (feature `conformance`) checks it.
///
/// A conversation that [`begin_delete`](Self::begin_delete) has marked reads as gone to
/// every method but `begin_delete` and `delete`: `head` gives `None`, listings leave it
/// out, and writes fail with [`Error::NotFound`]. Its id stays taken until `delete`.
///
/// The trait is dyn-compatible: [`ChatVault`](crate::ChatVault) holds an
/// `Arc<dyn MessagesBackend>`. First-party implementations carry
/// `#[deny(clippy::missing_trait_methods)]`, so none inherits a default by accident.
#[async_trait]
pub trait MessagesBackend: Send + Sync + Debug + 'static {
    /// What this backend can do.
    fn capabilities(&self) -> MessagesCapabilities;

    /// Stores a new, empty conversation (its `message_count` and `file_count` are 0).
    ///
    /// Atomic: of two concurrent creates of one id, exactly one succeeds; the other, and
    /// any create of a stored id, fails with [`Error::AlreadyExists`].
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
    /// Message ids are idempotency keys, decided by [`check_replay`](crate::message::check_replay):
    /// when every message's id is already stored in this conversation with the same
    /// content, the append stores nothing and returns the stored messages (with the current
    /// record); an id stored with other content is [`Error::AlreadyExists`]. Fails with
    /// [`Error::NotFound`] when the conversation does not exist. An empty `messages` stores
    /// nothing and returns the record.
    async fn append_messages(
        &self,
        id: &ConversationId,
        messages: Vec<NewMessage>,
    ) -> Result<Appended>;

    /// Updates one message, atomically with the record, if it is still at
    /// `expected_revision`.
    ///
    /// Applies [`ConversationRecord::apply_message_update`] to the record and the message
    /// in one atomic write. Fails with [`Error::Conflict`] (nothing written) when the
    /// message's revision is not `expected_revision`: of two writers updating from the same
    /// revision, exactly one wins. [`Error::NotFound`] when the conversation or the message
    /// does not exist.
    async fn update_message(
        &self,
        id: &ConversationId,
        message_id: &MessageId,
        expected_revision: u64,
        update: &MessageUpdate,
    ) -> Result<MessageUpdated>;

    /// A window of the conversation's messages, in ascending `seq` order.
    ///
    /// A backend may return fewer messages than the range's limit (a page of its own
    /// natural size: for a range without a limit, as much as one cheap read holds);
    /// `next_cursor` is then `Some`, as it is whenever more messages lie beyond the page in
    /// the range's direction. Fails with [`Error::NotFound`] when the conversation does
    /// not exist.
    async fn messages(&self, id: &ConversationId, range: &MessageRange) -> Result<Page<Message>>;

    /// A page of conversation summaries, newest activity first (ties: id descending).
    ///
    /// `user_id: None` lists every user's conversations ([`Error::NotSupported`] unless
    /// [`MessagesCapabilities::list_all`]). Archived conversations are left out unless
    /// `options.include_archived`. Paging continues strictly after the cursor's position,
    /// so a conversation created or made active while a client pages is never skipped or
    /// repeated on later pages. [`paginate`] is the reference.
    async fn list_conversations(
        &self,
        user_id: Option<&UserId>,
        options: &ListOptions,
    ) -> Result<Page<ConversationSummary>>;

    /// Applies a metadata-only change (title, archived, metadata) atomically and returns
    /// the new record ([`ConversationRecord::apply_patch`]). Never rewrites messages.
    /// Fails with [`Error::NotFound`] when the conversation does not exist.
    async fn update(
        &self,
        id: &ConversationId,
        patch: &ConversationPatch,
    ) -> Result<ConversationRecord>;

    /// Records an attachment whose bytes are already stored; returns the new record.
    ///
    /// Atomically applies [`apply_add_file`]. Fails with [`Error::AlreadyExists`] if the
    /// file id is taken and [`Error::NotFound`] when the conversation does not exist or is
    /// being deleted (the vault then deletes the bytes it uploaded).
    async fn add_file(
        &self,
        id: &ConversationId,
        file: &FileAttachment,
    ) -> Result<ConversationRecord>;

    /// Removes an attachment's record (not its bytes). Returns the new record, or `None`
    /// if there was no such file. Fails with [`Error::NotFound`] when the conversation does
    /// not exist.
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

    /// Full-text search over the text of a user's messages, best matches first.
    ///
    /// [`Error::NotSupported`] unless [`MessagesCapabilities::search`]. A backend that
    /// searches first applies [`SearchQuery::parse`](crate::SearchQuery::parse) to `query`
    /// and returns its [`Error::InvalidInput`]; every query it accepts is answered with a
    /// page (perhaps empty), its characters searched for as text, never as the store's
    /// query syntax: no query is a [`Error::Backend`] error.
    async fn search(
        &self,
        user_id: &UserId,
        query: &str,
        options: &SearchOptions,
    ) -> Result<Page<SearchHit>>;
}

/// Applies the record changes of [`MessagesBackend::add_file`]: checks that the file id is
/// new among `existing`, then bumps `file_count`, `version` and `last_active`.
pub fn apply_add_file(
    record: &mut ConversationRecord,
    existing: &[FileAttachment],
    file: &FileAttachment,
) -> Result<()> {
    if existing.iter().any(|f| f.id == file.id) {
        return Err(Error::AlreadyExists {
            kind: "file",
            id: file.id.to_string(),
        });
    }
    record.file_count += 1;
    record.version += 1;
    record.last_active = record.last_active.max(file.uploaded_at);
    Ok(())
}

/// Applies the record changes of [`MessagesBackend::remove_file`].
pub fn apply_remove_file(record: &mut ConversationRecord) {
    record.file_count = record.file_count.saturating_sub(1);
    record.version += 1;
}

/// Pages summaries held in memory: filters archived ones (unless asked), sorts them into
/// listing order, continues after the cursor, and cuts at the limit.
///
/// The reference listing semantics, used by in-memory backends and the simple adapter.
pub fn paginate(
    mut summaries: Vec<ConversationSummary>,
    options: &ListOptions,
) -> Result<Page<ConversationSummary>> {
    let cursor = options.validate()?;
    summaries.retain(|s| options.include_archived || !s.archived);
    if let Some(cursor) = &cursor {
        summaries.retain(|s| cursor.comes_after(s.last_active, &s.id));
    }
    sort_for_listing(&mut summaries);
    let more = summaries.len() > options.limit;
    summaries.truncate(options.limit);
    let next_cursor = if more {
        summaries.last().map(|s| ListCursor::after(s).encode())
    } else {
        None
    };
    Ok(Page {
        items: summaries,
        next_cursor,
    })
}

/// What a [`FilesBackend`] can do, declared by the backend itself.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct FilesCapabilities {
    /// [`FilesBackend::signed_url`] gives URLs (otherwise it answers
    /// [`Error::NotSupported`]).
    pub signed_urls: bool,
    /// Streaming upload and download keep memory bounded whatever the file's size.
    pub bounded_memory: bool,
    /// The largest file stored, if limited.
    pub max_file_bytes: Option<u64>,
}

impl FilesCapabilities {
    /// Signed URLs, bounded memory, no size limit.
    pub fn full() -> Self {
        FilesCapabilities {
            signed_urls: true,
            bounded_memory: true,
            max_file_bytes: None,
        }
    }

    /// No signed URLs, files held in memory.
    pub fn basic() -> Self {
        FilesCapabilities {
            signed_urls: false,
            bounded_memory: false,
            max_file_bytes: None,
        }
    }

    /// Sets [`signed_urls`](Self::signed_urls).
    pub fn with_signed_urls(mut self, yes: bool) -> Self {
        self.signed_urls = yes;
        self
    }

    /// Sets [`bounded_memory`](Self::bounded_memory).
    pub fn with_bounded_memory(mut self, yes: bool) -> Self {
        self.bounded_memory = yes;
        self
    }

    /// Sets [`max_file_bytes`](Self::max_file_bytes).
    pub fn with_max_file_bytes(mut self, limit: Option<u64>) -> Self {
        self.max_file_bytes = limit;
        self
    }
}

/// What [`FilesBackend::head`] knows about stored bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObjectMeta {
    /// Size in bytes.
    pub size: u64,
    /// The content type stored with them.
    pub content_type: ContentType,
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
    /// [`Error::UploadStream`]).
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
    /// [`Error::NotSupported`] when the backend has no such URLs (see
    /// [`FilesCapabilities::signed_urls`]); [`Error::NotFound`] when nothing is stored
    /// under `key`: the two answers are never confused.
    async fn signed_url(
        &self,
        key: &StorageKey,
        expires_in: Duration,
        download_filename: Option<&str>,
    ) -> Result<String>;
}

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

/// Turns an error met while reading a download stream back into a [`crate::Error`].
pub fn download_error(err: io::Error) -> Error {
    if err.get_ref().is_some_and(|inner| inner.is::<Error>()) {
        match err.into_inner().map(|inner| inner.downcast::<Error>()) {
            Some(Ok(inner)) => *inner,
            Some(Err(other)) => Error::backend("files", other),
            None => Error::backend("files", "download stream failed"),
        }
    } else {
        Error::backend("files", err)
    }
}

/// Boxes a stream of `Bytes` results into a [`ByteStream`].
pub fn into_byte_stream<S>(stream: S) -> ByteStream
where
    S: futures_core::Stream<Item = io::Result<Bytes>> + Send + 'static,
{
    stream.boxed()
}
