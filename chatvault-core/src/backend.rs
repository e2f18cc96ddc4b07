//! The two traits a storage backend implements.
//!
//! A backend author implements four required methods on each trait; every other method has
//! a correct default built on those four. The defaults read and rewrite the whole
//! conversation, and are not atomic against other writers: fine for a prototype, and the
//! reason every first-party backend overrides them. The conformance suite
//! (feature `conformance`) checks either way.

use std::fmt::Debug;
use std::io;
use std::time::Duration;

use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use futures_util::stream::{self, BoxStream, StreamExt};

use crate::error::{Error, Result};
use crate::keys;
use crate::model::{
    Appended, ConversationPatch, ConversationRecord, ConversationSummary, FileAttachment,
    ListCursor, ListOptions, Message, MessageRange, NewMessage, Page, StoredConversation, now,
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

/// Where conversations and their messages are kept.
///
/// Implement the four required methods (`save`, `get`, `get_by_user`, `delete`) and the
/// rest works: the defaults check ids and inputs before they reach your methods (but
/// `save`, `get` and `delete` are called with whatever ids the caller passed, so a backend
/// that turns ids into paths or keys checks them with [`keys::validate_id`]). Override the provided methods to make them atomic and fast; every
/// first-party backend does. Whatever you override must keep the semantics documented on
/// each method; `chatvault_core::conformance` (feature `conformance`) checks them.
///
/// The trait is dyn-compatible: [`ChatVault`](crate::ChatVault) holds an
/// `Arc<dyn MessagesBackend>`.
#[async_trait]
pub trait MessagesBackend: Send + Sync + Debug + 'static {
    /// Stores the whole conversation, replacing any stored one with the same id.
    async fn save(&self, conversation: &StoredConversation) -> Result<()>;

    /// The whole conversation with this id, or `None`.
    async fn get(&self, id: &str) -> Result<Option<StoredConversation>>;

    /// Every conversation of this user, whole, in any order.
    async fn get_by_user(&self, user_id: &str) -> Result<Vec<StoredConversation>>;

    /// Deletes the conversation and its messages (not its files' bytes: the vault deletes
    /// those first). Returns whether it existed.
    async fn delete(&self, id: &str) -> Result<bool>;

    /// Stores a new, empty conversation.
    ///
    /// Fails with [`Error::AlreadyExists`] if the id is taken. The default checks with
    /// `get` then `save`, which a concurrent creator of the same id can race.
    async fn create(&self, record: &ConversationRecord) -> Result<()> {
        record.validate()?;
        if self.get(&record.id).await?.is_some() {
            return Err(Error::AlreadyExists {
                kind: "conversation",
                id: record.id.clone(),
            });
        }
        self.save(&StoredConversation::new(record.clone())).await
    }

    /// The conversation's record, without messages or files, or `None`.
    async fn get_record(&self, id: &str) -> Result<Option<ConversationRecord>> {
        Ok(self.get(id).await?.map(|c| c.record))
    }

    /// The conversation's record and its attachments, or `None`: what
    /// [`ChatVault::get_conversation`](crate::ChatVault::get_conversation) needs, in one
    /// read where the backend can. The default calls `get_record`, then `files`.
    async fn get_record_with_files(
        &self,
        id: &str,
    ) -> Result<Option<(ConversationRecord, Vec<FileAttachment>)>> {
        let Some(record) = self.get_record(id).await? else {
            return Ok(None);
        };
        match self.files(id).await {
            Ok(files) => Ok(Some((record, files))),
            // Deleted between the two reads.
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Appends messages at the end of the conversation, atomically.
    ///
    /// Assigns `seq` values after the current last one, updates `message_count`,
    /// `last_active` and the auto-title, exactly as
    /// [`ConversationRecord::apply_append`] defines. Either every message is stored or none.
    /// Concurrent appends to one conversation must never lose, duplicate or reorder a
    /// message. Fails with [`Error::NotFound`] when the conversation does not exist.
    ///
    /// First-party backends do this at a cost independent of the conversation's length;
    /// the default rewrites the whole conversation and is not safe against concurrent
    /// writers.
    async fn append_messages(&self, id: &str, messages: Vec<NewMessage>) -> Result<Appended> {
        validate_conversation_id(id)?;
        for m in &messages {
            keys::validate_id("message id", &m.id)?;
        }
        let mut conversation = self
            .get(id)
            .await?
            .ok_or_else(|| Error::conversation_not_found(id))?;
        let stored = conversation.record.apply_append(messages, now());
        conversation.messages.extend(stored.iter().cloned());
        self.save(&conversation).await?;
        Ok(Appended {
            record: conversation.record,
            messages: stored,
        })
    }

    /// A window of the conversation's messages, in ascending `seq` order.
    ///
    /// A backend may return fewer messages than the range's limit (a page-size cap of its
    /// own); `next_cursor` is then `Some`, as it is whenever more messages lie beyond the
    /// page in the range's direction. Fails with [`Error::NotFound`] when the conversation
    /// does not exist.
    async fn messages(&self, id: &str, range: &MessageRange) -> Result<Page<Message>> {
        validate_conversation_id(id)?;
        let conversation = self
            .get(id)
            .await?
            .ok_or_else(|| Error::conversation_not_found(id))?;
        Ok(range.select(&conversation.messages))
    }

    /// A page of conversation summaries, newest activity first (ties: id descending).
    ///
    /// `user_id: None` lists every user's conversations. Archived conversations are left
    /// out unless `options.include_archived`. No messages are loaded by first-party
    /// backends. The default supports only `Some(user)`, through `get_by_user`, and
    /// answers [`Error::NotSupported`] for `None`.
    async fn list_conversations(
        &self,
        user_id: Option<&str>,
        options: &ListOptions,
    ) -> Result<Page<ConversationSummary>> {
        let Some(user_id) = user_id else {
            return Err(Error::NotSupported {
                backend: "this backend",
                operation: "listing every user's conversations",
            });
        };
        let summaries = self
            .get_by_user(user_id)
            .await?
            .into_iter()
            .map(|c| c.record.summary())
            .collect();
        paginate(summaries, options)
    }

    /// Applies a metadata-only change (title, archived, metadata) and returns the new
    /// record. Never rewrites messages in first-party backends. Fails with
    /// [`Error::NotFound`] when the conversation does not exist.
    async fn update(&self, id: &str, patch: &ConversationPatch) -> Result<ConversationRecord> {
        validate_conversation_id(id)?;
        patch.validate()?;
        let mut conversation = self
            .get(id)
            .await?
            .ok_or_else(|| Error::conversation_not_found(id))?;
        if conversation.record.apply_patch(patch) {
            self.save(&conversation).await?;
        }
        Ok(conversation.record)
    }

    /// The conversation's attachments, oldest first. Fails with [`Error::NotFound`] when
    /// the conversation does not exist.
    async fn files(&self, id: &str) -> Result<Vec<FileAttachment>> {
        validate_conversation_id(id)?;
        Ok(self
            .get(id)
            .await?
            .ok_or_else(|| Error::conversation_not_found(id))?
            .files)
    }

    /// Records an attachment whose bytes are already stored; returns the new record.
    ///
    /// Increments `file_count` and `version`, and moves `last_active` to the upload time
    /// (never backwards). Fails with [`Error::AlreadyExists`] if the file id is taken and
    /// [`Error::NotFound`] when the conversation does not exist.
    async fn add_file(&self, id: &str, file: FileAttachment) -> Result<ConversationRecord> {
        validate_conversation_id(id)?;
        keys::validate_id("file id", &file.id)?;
        let mut conversation = self
            .get(id)
            .await?
            .ok_or_else(|| Error::conversation_not_found(id))?;
        apply_add_file(&mut conversation.record, &conversation.files, &file)?;
        conversation.files.push(file);
        self.save(&conversation).await?;
        Ok(conversation.record)
    }

    /// Removes an attachment's record (not its bytes). Returns the new conversation
    /// record, or `None` if there was no such file. Fails with [`Error::NotFound`] when the
    /// conversation does not exist.
    async fn remove_file(&self, id: &str, file_id: &str) -> Result<Option<ConversationRecord>> {
        validate_conversation_id(id)?;
        let mut conversation = self
            .get(id)
            .await?
            .ok_or_else(|| Error::conversation_not_found(id))?;
        let Some(pos) = conversation.files.iter().position(|f| f.id == file_id) else {
            return Ok(None);
        };
        conversation.files.remove(pos);
        apply_remove_file(&mut conversation.record);
        self.save(&conversation).await?;
        Ok(Some(conversation.record))
    }
}

fn validate_conversation_id(id: &str) -> Result<()> {
    keys::validate_id("conversation id", id)
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
            id: file.id.clone(),
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
/// The reference listing semantics, used by the defaults and by in-memory backends.
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

/// Where attachments' bytes are kept, by storage key.
///
/// Implement the four required methods and the rest works. Keys come from
/// [`keys::storage_key`](crate::keys::storage_key); a backend that maps keys to paths must
/// reject keys that fail [`keys::validate_key`](crate::keys::validate_key).
#[async_trait]
pub trait FilesBackend: Send + Sync + Debug + 'static {
    /// Stores `data` under `key` with its content type, replacing what was there.
    ///
    /// A reader sees either the old bytes or the new, never a mix or a partial file.
    async fn upload(&self, key: &str, data: Bytes, content_type: &str) -> Result<()>;

    /// The bytes under `key`, or `None` when there are none.
    async fn download(&self, key: &str) -> Result<Option<Bytes>>;

    /// Deletes the bytes under `key`; returns whether they existed.
    async fn delete(&self, key: &str) -> Result<bool>;

    /// Whether bytes are stored under `key`.
    async fn exists(&self, key: &str) -> Result<bool>;

    /// A URL that fetches the bytes under `key` without further credentials for
    /// `expires_in`, offering `download_filename` as the saved file's name. `None` when the
    /// key does not exist or the backend has no such URLs (the default).
    async fn signed_url(
        &self,
        key: &str,
        expires_in: Duration,
        download_filename: Option<&str>,
    ) -> Result<Option<String>> {
        let _ = (key, expires_in, download_filename);
        Ok(None)
    }

    /// Stores a stream under `key`; returns the number of bytes stored.
    ///
    /// Nothing is left under `key` if the stream or the store fails part-way. The default
    /// buffers the whole stream in memory, then calls `upload`; first-party backends keep
    /// memory bounded whatever the size.
    async fn upload_stream(&self, key: &str, data: ByteStream, content_type: &str) -> Result<u64> {
        let bytes = collect_stream(data)
            .await
            .map_err(|source| Error::UploadStream { source })?;
        let len = bytes.len() as u64;
        self.upload(key, bytes, content_type).await?;
        Ok(len)
    }

    /// The bytes under `key` as a stream, or `None` when there are none.
    ///
    /// The default downloads everything, then yields it as one chunk; first-party backends
    /// stream with bounded memory.
    async fn download_stream(&self, key: &str) -> Result<Option<ByteStream>> {
        Ok(self.download(key).await?.map(bytes_stream))
    }
}
