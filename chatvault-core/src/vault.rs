//! [`ChatVault`] and the [`Conversation`] handle: what an application calls.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use sha2::{Digest, Sha256};

use crate::backend::{ByteStream, FilesBackend, MessagesBackend};
use crate::error::{Error, Result};
use crate::keys;
use crate::model::{
    ConversationPatch, ConversationRecord, ConversationSummary, FileAttachment, HistoryEntry,
    ListOptions, Message, MessageRange, Metadata, NewMessage, Page, Role, new_id, now,
};

/// How many messages [`Conversation::messages`] asks a backend for at a time.
const READ_PAGE: usize = 1000;

/// The entry point: a messages backend and a files backend.
///
/// Cheap to clone (two `Arc`s); share one across tasks.
///
/// ```
/// use chatvault_core::{ChatVault, Role};
/// use chatvault_memory::{MemoryFiles, MemoryMessages};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> chatvault_core::Result<()> {
/// let vault = ChatVault::new(MemoryMessages::new(), MemoryFiles::new());
/// let mut conversation = vault.create_conversation(Some("user-123")).await?;
/// conversation.add_message(Role::User, "Hello!").await?;
/// conversation.add_message(Role::Assistant, "Hi there! How can I help you?").await?;
///
/// let resumed = vault.get_conversation(conversation.id()).await?.expect("stored");
/// assert_eq!(resumed.title(), Some("Hello!"));
/// assert_eq!(resumed.history().await?.len(), 2);
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct ChatVault {
    messages: Arc<dyn MessagesBackend>,
    files: Arc<dyn FilesBackend>,
}

impl ChatVault {
    /// A vault over these two backends.
    pub fn new(messages: impl MessagesBackend, files: impl FilesBackend) -> Self {
        ChatVault {
            messages: Arc::new(messages),
            files: Arc::new(files),
        }
    }

    /// A vault over backends that are already shared.
    pub fn from_arcs(messages: Arc<dyn MessagesBackend>, files: Arc<dyn FilesBackend>) -> Self {
        ChatVault { messages, files }
    }

    /// The messages backend.
    pub fn messages_backend(&self) -> &Arc<dyn MessagesBackend> {
        &self.messages
    }

    /// The files backend.
    pub fn files_backend(&self) -> &Arc<dyn FilesBackend> {
        &self.files
    }

    /// Creates a conversation, optionally owned by a user.
    pub async fn create_conversation(&self, user_id: Option<&str>) -> Result<Conversation> {
        let mut builder = self.new_conversation();
        if let Some(user) = user_id {
            builder = builder.user(user);
        }
        builder.create().await
    }

    /// A builder for a conversation with a title, metadata or an id of your choosing.
    ///
    /// ```
    /// # use chatvault_core::ChatVault;
    /// # use chatvault_memory::{MemoryFiles, MemoryMessages};
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> chatvault_core::Result<()> {
    /// # let vault = ChatVault::new(MemoryMessages::new(), MemoryFiles::new());
    /// let conversation = vault
    ///     .new_conversation()
    ///     .user("user-123")
    ///     .title("Trip planning")
    ///     .create()
    ///     .await?;
    /// assert_eq!(conversation.title(), Some("Trip planning"));
    /// # Ok(()) }
    /// ```
    pub fn new_conversation(&self) -> NewConversation<'_> {
        NewConversation {
            vault: self,
            id: None,
            user_id: None,
            title: None,
            metadata: Metadata::new(),
        }
    }

    /// The conversation with this id, or `None`.
    pub async fn get_conversation(&self, id: &str) -> Result<Option<Conversation>> {
        keys::validate_id("conversation id", id)?;
        let Some((record, files)) = self.messages.get_record_with_files(id).await? else {
            return Ok(None);
        };
        Ok(Some(Conversation {
            vault: self.clone(),
            record,
            files,
        }))
    }

    /// The conversation with this id if `user_id` owns it; `None` if it does not exist
    /// *or belongs to someone else*, so a web handler cannot leak another user's chat.
    pub async fn get_conversation_for_user(
        &self,
        id: &str,
        user_id: &str,
    ) -> Result<Option<Conversation>> {
        keys::validate_user_id(user_id)?;
        Ok(self
            .get_conversation(id)
            .await?
            .filter(|c| c.user_id() == Some(user_id)))
    }

    /// A page of a user's conversations, newest activity first.
    ///
    /// ```
    /// # use chatvault_core::{ChatVault, ListOptions};
    /// # use chatvault_memory::{MemoryFiles, MemoryMessages};
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> chatvault_core::Result<()> {
    /// # let vault = ChatVault::new(MemoryMessages::new(), MemoryFiles::new());
    /// let mut options = ListOptions::new().limit(20);
    /// loop {
    ///     let page = vault.list_conversations("user-123", &options).await?;
    ///     for summary in &page.items {
    ///         println!("{} {:?}", summary.id, summary.title);
    ///     }
    ///     match page.next_cursor {
    ///         Some(cursor) => options = options.cursor(cursor),
    ///         None => break,
    ///     }
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn list_conversations(
        &self,
        user_id: &str,
        options: &ListOptions,
    ) -> Result<Page<ConversationSummary>> {
        keys::validate_user_id(user_id)?;
        self.messages
            .list_conversations(Some(user_id), options)
            .await
    }

    /// A page of every user's conversations, newest activity first.
    pub async fn list_all_conversations(
        &self,
        options: &ListOptions,
    ) -> Result<Page<ConversationSummary>> {
        self.messages.list_conversations(None, options).await
    }

    /// Archives a conversation: it stays readable but leaves listings unless asked for.
    pub async fn archive_conversation(&self, id: &str) -> Result<ConversationRecord> {
        self.update(
            id,
            ConversationPatch {
                archived: Some(true),
                ..Default::default()
            },
        )
        .await
    }

    /// Brings an archived conversation back into listings.
    pub async fn unarchive_conversation(&self, id: &str) -> Result<ConversationRecord> {
        self.update(
            id,
            ConversationPatch {
                archived: Some(false),
                ..Default::default()
            },
        )
        .await
    }

    async fn update(&self, id: &str, patch: ConversationPatch) -> Result<ConversationRecord> {
        keys::validate_id("conversation id", id)?;
        self.messages.update(id, &patch).await
    }

    /// Deletes a conversation: first its attachments' bytes, then its record and messages.
    ///
    /// Returns whether the conversation existed. If it fails part-way, the record is still
    /// there and calling it again finishes the job.
    pub async fn delete_conversation(&self, id: &str) -> Result<bool> {
        keys::validate_id("conversation id", id)?;
        let files = match self.messages.files(id).await {
            Ok(files) => files,
            Err(e) if e.is_not_found() => return Ok(false),
            Err(e) => return Err(e),
        };
        for file in &files {
            self.files.delete(&file.storage_key).await?;
        }
        self.messages.delete(id).await
    }
}

/// A builder for a new conversation, from [`ChatVault::new_conversation`].
#[derive(Debug)]
#[must_use = "call .create() to store the conversation"]
pub struct NewConversation<'a> {
    vault: &'a ChatVault,
    id: Option<String>,
    user_id: Option<String>,
    title: Option<String>,
    metadata: Metadata,
}

impl NewConversation<'_> {
    /// The owning user.
    pub fn user(mut self, user_id: impl Into<String>) -> Self {
        self.user_id = Some(user_id.into());
        self
    }

    /// A title (otherwise the first user message gives one).
    pub fn title(mut self, title: impl Into<String>) -> Self {
        self.title = Some(title.into());
        self
    }

    /// Metadata.
    pub fn metadata(mut self, metadata: Metadata) -> Self {
        self.metadata = metadata;
        self
    }

    /// An id of your choosing (default: a new UUID v7).
    pub fn id(mut self, id: impl Into<String>) -> Self {
        self.id = Some(id.into());
        self
    }

    /// Stores the conversation. Fails with [`Error::AlreadyExists`] if the id is taken.
    pub async fn create(self) -> Result<Conversation> {
        let mut record = ConversationRecord::new(self.user_id);
        if let Some(id) = self.id {
            record.id = id;
        }
        record.title = self.title;
        record.metadata = self.metadata;
        record.validate()?;
        self.vault.messages.create(&record).await?;
        Ok(Conversation {
            vault: self.vault.clone(),
            record,
            files: Vec::new(),
        })
    }
}

/// One conversation: read its messages, add to it, attach files.
///
/// The handle caches the conversation's record and attachment list, and keeps them up to
/// date with its own changes; [`refresh`](Self::refresh) picks up other writers' changes.
/// Messages are never cached: each read asks the backend, a page at a time.
#[derive(Clone, Debug)]
pub struct Conversation {
    vault: ChatVault,
    record: ConversationRecord,
    files: Vec<FileAttachment>,
}

impl Conversation {
    /// The conversation's id.
    pub fn id(&self) -> &str {
        &self.record.id
    }

    /// The owning user, if any.
    pub fn user_id(&self) -> Option<&str> {
        self.record.user_id.as_deref()
    }

    /// The title, if any.
    pub fn title(&self) -> Option<&str> {
        self.record.title.as_deref()
    }

    /// The metadata.
    pub fn metadata(&self) -> &Metadata {
        &self.record.metadata
    }

    /// Whether the conversation is archived.
    pub fn is_archived(&self) -> bool {
        self.record.archived
    }

    /// How many messages it holds (as of the last change or refresh).
    pub fn message_count(&self) -> u64 {
        self.record.message_count
    }

    /// The whole cached record.
    pub fn record(&self) -> &ConversationRecord {
        &self.record
    }

    /// The attachments, oldest first.
    pub fn files(&self) -> &[FileAttachment] {
        &self.files
    }

    /// The attachment with this id.
    pub fn file(&self, file_id: &str) -> Option<&FileAttachment> {
        self.files.iter().find(|f| f.id == file_id)
    }

    /// Reloads the record and the attachment list from the backend.
    ///
    /// Fails with [`Error::NotFound`] if the conversation was deleted.
    pub async fn refresh(&mut self) -> Result<()> {
        let fresh = self
            .vault
            .get_conversation(&self.record.id)
            .await?
            .ok_or_else(|| Error::conversation_not_found(&self.record.id))?;
        *self = fresh;
        Ok(())
    }

    /// Appends a message and returns it as stored.
    pub async fn add_message(
        &mut self,
        role: impl Into<Role>,
        content: impl Into<String>,
    ) -> Result<Message> {
        self.add_message_with_metadata(role, content, Metadata::new())
            .await
    }

    /// Appends a message with metadata and returns it as stored.
    pub async fn add_message_with_metadata(
        &mut self,
        role: impl Into<Role>,
        content: impl Into<String>,
        metadata: Metadata,
    ) -> Result<Message> {
        let mut stored = self
            .append(vec![NewMessage::new(role, content).with_metadata(metadata)])
            .await?;
        stored.pop().ok_or_else(|| {
            Error::backend(
                "messages",
                "append_messages returned no message for one appended",
            )
        })
    }

    /// Appends several messages atomically (all or none) and returns them as stored.
    pub async fn append(&mut self, messages: Vec<NewMessage>) -> Result<Vec<Message>> {
        for m in &messages {
            keys::validate_id("message id", &m.id)?;
        }
        let appended = self
            .vault
            .messages
            .append_messages(&self.record.id, messages)
            .await?;
        self.record = appended.record;
        Ok(appended.messages)
    }

    /// Every message, in order (read from the backend a page at a time).
    ///
    /// A backend whose pages stop moving forward (a cursor with an empty page, or one
    /// that does not advance) gets an error, not an endless loop.
    pub async fn messages(&self) -> Result<Vec<Message>> {
        let mut out = Vec::new();
        let mut after = 0;
        loop {
            let range = MessageRange::after(after).limit(READ_PAGE);
            let page = self.messages_page(&range).await?;
            let got = page.items.len();
            out.extend(page.items);
            let Some(cursor) = page.next_cursor else {
                return Ok(out);
            };
            match range.continue_from(&cursor)? {
                MessageRange::After { after: next, .. } if got > 0 && next > after => {
                    after = next;
                }
                _ => return Err(stalled(&cursor)),
            }
        }
    }

    /// One window of messages by `seq`; see [`MessageRange`].
    pub async fn messages_page(&self, range: &MessageRange) -> Result<Page<Message>> {
        self.vault.messages.messages(&self.record.id, range).await
    }

    /// The newest `n` messages, in order.
    pub async fn last_messages(&self, n: usize) -> Result<Vec<Message>> {
        let mut out: Vec<Message> = Vec::new();
        let mut before = None;
        // A backend may cap its pages: keep reading older pages until n are in hand.
        while out.len() < n {
            let wanted = n - out.len();
            let range = MessageRange::Before {
                before,
                limit: wanted,
            };
            let page = self.messages_page(&range).await?;
            let mut items = page.items;
            // Never more than asked for: keep the newest.
            if items.len() > wanted {
                items.drain(..items.len() - wanted);
            }
            let got = items.len();
            items.append(&mut out);
            out = items;
            let Some(cursor) = page.next_cursor else {
                break;
            };
            if out.len() == n {
                break;
            }
            match range.continue_from(&cursor)? {
                MessageRange::Before {
                    before: Some(next), ..
                } if got > 0 && before.is_none_or(|b| next < b) => {
                    before = Some(next);
                }
                _ => return Err(stalled(&cursor)),
            }
        }
        Ok(out)
    }

    /// The whole history in the form LLM APIs take: `[{"role": ..., "content": ...}]`.
    pub async fn history(&self) -> Result<Vec<HistoryEntry>> {
        Ok(self
            .messages()
            .await?
            .iter()
            .map(HistoryEntry::from)
            .collect())
    }

    /// The newest `n` messages in LLM form: a context window.
    pub async fn history_last(&self, n: usize) -> Result<Vec<HistoryEntry>> {
        Ok(self
            .last_messages(n)
            .await?
            .iter()
            .map(HistoryEntry::from)
            .collect())
    }

    /// Renames the conversation (its messages are not rewritten).
    pub async fn rename(&mut self, title: impl Into<String>) -> Result<()> {
        self.patch(ConversationPatch {
            title: Some(title.into()),
            ..Default::default()
        })
        .await
    }

    /// Replaces the conversation's metadata.
    pub async fn set_metadata(&mut self, metadata: Metadata) -> Result<()> {
        self.patch(ConversationPatch {
            metadata: Some(metadata),
            ..Default::default()
        })
        .await
    }

    /// Archives the conversation.
    pub async fn archive(&mut self) -> Result<()> {
        self.patch(ConversationPatch {
            archived: Some(true),
            ..Default::default()
        })
        .await
    }

    /// Unarchives the conversation.
    pub async fn unarchive(&mut self) -> Result<()> {
        self.patch(ConversationPatch {
            archived: Some(false),
            ..Default::default()
        })
        .await
    }

    async fn patch(&mut self, patch: ConversationPatch) -> Result<()> {
        self.record = self.vault.messages.update(&self.record.id, &patch).await?;
        Ok(())
    }

    /// Attaches a file held in memory.
    ///
    /// Its bytes go to the files backend under a key of their own (two files of the same
    /// name never overwrite each other), then its record joins the conversation. If the
    /// second step fails, the bytes are deleted again.
    pub async fn attach_file(
        &mut self,
        filename: &str,
        data: impl Into<Bytes>,
        content_type: &str,
    ) -> Result<FileAttachment> {
        let data = data.into();
        let (file_id, key) = self.prepare_attachment(filename, content_type)?;
        let sha256 = hex(&Sha256::digest(&data));
        let size = data.len() as u64;
        self.vault.files.upload(&key, data, content_type).await?;
        self.record_attachment(file_id, key, filename, content_type, size, sha256)
            .await
    }

    /// Attaches a file from a stream, with memory bounded by the files backend's streaming.
    ///
    /// The size and SHA-256 are computed as the bytes pass through.
    pub async fn attach_file_stream(
        &mut self,
        filename: &str,
        data: ByteStream,
        content_type: &str,
    ) -> Result<FileAttachment> {
        let (file_id, key) = self.prepare_attachment(filename, content_type)?;
        let state = Arc::new(Mutex::new((Sha256::new(), 0u64)));
        let tap = Arc::clone(&state);
        let hashed: ByteStream = data
            .inspect(move |chunk| {
                if let Ok(bytes) = chunk {
                    let mut guard = tap.lock().unwrap_or_else(PoisonError::into_inner);
                    guard.0.update(bytes);
                    guard.1 += bytes.len() as u64;
                }
            })
            .boxed();
        self.vault
            .files
            .upload_stream(&key, hashed, content_type)
            .await?;
        let (hasher, size) = {
            let mut guard = state.lock().unwrap_or_else(PoisonError::into_inner);
            std::mem::replace(&mut *guard, (Sha256::new(), 0))
        };
        let sha256 = hex(&hasher.finalize());
        self.record_attachment(file_id, key, filename, content_type, size, sha256)
            .await
    }

    fn prepare_attachment(&self, filename: &str, content_type: &str) -> Result<(String, String)> {
        keys::validate_filename(filename)?;
        keys::validate_content_type(content_type)?;
        let file_id = new_id();
        let key = keys::storage_key(self.user_id(), self.id(), &file_id, filename)?;
        Ok((file_id, key))
    }

    async fn record_attachment(
        &mut self,
        id: String,
        storage_key: String,
        filename: &str,
        content_type: &str,
        size: u64,
        sha256: String,
    ) -> Result<FileAttachment> {
        let file = FileAttachment {
            id,
            filename: filename.to_owned(),
            content_type: content_type.to_owned(),
            size,
            sha256,
            storage_key,
            uploaded_at: now(),
            metadata: Metadata::new(),
        };
        match self
            .vault
            .messages
            .add_file(&self.record.id, file.clone())
            .await
        {
            Ok(record) => {
                self.record = record;
                self.files.push(file.clone());
                Ok(file)
            }
            // A temporary error may hide a write that committed (its answer was lost):
            // look before deleting bytes that a stored attachment may point to.
            Err(e) if e.is_temporary() => match self
                .vault
                .messages
                .get_record_with_files(&self.record.id)
                .await
            {
                Ok(Some((record, files))) if files.iter().any(|f| f.id == file.id) => {
                    self.record = record;
                    self.files = files;
                    Ok(file)
                }
                Ok(_) => {
                    self.discard_bytes(&file.storage_key).await;
                    Err(e)
                }
                // Still unknown: keep the bytes (at worst an orphan, never a dangling
                // attachment) and report the original error.
                Err(_) => Err(e),
            },
            Err(e) => {
                self.discard_bytes(&file.storage_key).await;
                Err(e)
            }
        }
    }

    /// Best effort: the bytes must not outlive a failed attach. The caller gets the error
    /// that made the attach fail; an orphan is worth a warning.
    async fn discard_bytes(&self, key: &str) {
        if let Err(cleanup) = self.vault.files.delete(key).await {
            tracing::warn!(
                key = %key, error = %cleanup,
                "could not delete the bytes of a failed attachment; they are orphaned"
            );
        }
    }

    fn require_file(&self, file_id: &str) -> Result<&FileAttachment> {
        self.file(file_id).ok_or_else(|| Error::NotFound {
            kind: "file",
            id: file_id.to_owned(),
        })
    }

    /// An attachment's bytes; `None` if the bytes are missing from the files backend.
    /// Fails with [`Error::NotFound`] for a file id this conversation does not have.
    pub async fn file_content(&self, file_id: &str) -> Result<Option<Bytes>> {
        let file = self.require_file(file_id)?;
        self.vault.files.download(&file.storage_key).await
    }

    /// An attachment's bytes as a stream (bounded memory in first-party backends).
    pub async fn file_stream(&self, file_id: &str) -> Result<Option<ByteStream>> {
        let file = self.require_file(file_id)?;
        self.vault.files.download_stream(&file.storage_key).await
    }

    /// A URL that downloads the attachment for `expires_in`, saved under its original
    /// file name; `None` when the files backend has no such URLs.
    pub async fn file_url(&self, file_id: &str, expires_in: Duration) -> Result<Option<String>> {
        let file = self.require_file(file_id)?;
        self.vault
            .files
            .signed_url(&file.storage_key, expires_in, Some(&file.filename))
            .await
    }

    /// Deletes an attachment: its bytes, then its record. Returns whether it existed.
    ///
    /// An attachment this handle has not seen yet (added through another handle) is
    /// looked up in the backend first.
    pub async fn delete_file(&mut self, file_id: &str) -> Result<bool> {
        if self.file(file_id).is_none() {
            self.refresh().await?;
        }
        let Some(file) = self.file(file_id).cloned() else {
            return Ok(false);
        };
        self.vault.files.delete(&file.storage_key).await?;
        let removed = self
            .vault
            .messages
            .remove_file(&self.record.id, file_id)
            .await?;
        self.files.retain(|f| f.id != file_id);
        match removed {
            Some(record) => {
                self.record = record;
                Ok(true)
            }
            None => Ok(false),
        }
    }
}

/// The error for a messages backend whose pages do not move on.
fn stalled(cursor: &str) -> Error {
    Error::backend(
        "messages",
        format!("a page ended with cursor {cursor:?} but did not move past the previous one"),
    )
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

/// SHA-256 of `data` as lowercase hex, the form of [`FileAttachment::sha256`].
pub fn sha256_hex(data: &[u8]) -> String {
    hex(&Sha256::digest(data))
}
