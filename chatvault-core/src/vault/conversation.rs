//! The handle on one stored conversation.

use std::time::{Duration, Instant};

use bytes::Bytes;

use super::branches::Branches;
use super::chat_vault::{ChatVault, settle, stalled};
use super::follow::{FollowOptions, ReplyFollower};
use super::hashing::StreamHash;
use super::path::path_page;
use super::redact::{Redacted, RedactionPlan, plan, redact};
use super::reply::{ReplyOptions, ReplyWriter};
use crate::backend::MessagesBackendExt;
use crate::backend::{ByteStream, FilesBackendExt, bytes_stream};
use crate::error::{Error, Result};
use crate::ids::{ContentType, ConversationId, FileId, MessageId, StorageKey, UserId};
use crate::keys;
use crate::model::*;

/// One conversation: read its messages, add to it, stream replies, attach files.
///
/// The handle caches the conversation's record and attachment list, and keeps them up to
/// date with its own changes; [`refresh`](Self::refresh) picks up other writers' changes.
/// Messages are never cached: each read asks the backend, a page at a time. Messages read
/// through the handle show a reply whose writer died as
/// [`MessageStatus::Interrupted`] once its lease has run out.
#[derive(Clone, Debug)]
pub struct Conversation {
    pub(super) vault: ChatVault,
    pub(super) record: ConversationRecord,
    pub(super) files: Vec<FileAttachment>,
}

impl Conversation {
    /// The conversation's id.
    pub fn id(&self) -> &ConversationId {
        &self.record.id
    }

    /// The owning user, if any.
    pub fn user_id(&self) -> Option<&UserId> {
        self.record.user_id.as_ref()
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

    /// Token usage totals (as of the last change or refresh).
    pub fn usage(&self) -> &Usage {
        &self.record.usage
    }

    /// The whole cached record.
    pub fn record(&self) -> &ConversationRecord {
        &self.record
    }

    /// The vault this conversation lives in.
    pub fn vault(&self) -> &ChatVault {
        &self.vault
    }

    /// The attachments, oldest first.
    pub fn files(&self) -> &[FileAttachment] {
        &self.files
    }

    /// The attachment with this id.
    pub fn file(&self, file_id: &FileId) -> Option<&FileAttachment> {
        self.files.iter().find(|f| &f.id == file_id)
    }

    /// Reloads the record and the attachment list from the backend.
    ///
    /// Fails with [`Error::NotFound`] if the conversation was deleted.
    pub async fn refresh(&mut self) -> Result<()> {
        let fresh = self
            .vault
            .get_conversation(&self.record.id)
            .await?
            .ok_or_else(|| Error::conversation_not_found(self.record.id.as_str()))?;
        *self = fresh;
        Ok(())
    }

    /// Appends a text message and returns it as stored.
    pub async fn add_message(
        &mut self,
        role: impl Into<Role>,
        text: impl Into<String>,
    ) -> Result<Message> {
        self.add(NewMessage::new(role, text)).await
    }

    /// Appends a text message with metadata and returns it as stored.
    pub async fn add_message_with_metadata(
        &mut self,
        role: impl Into<Role>,
        text: impl Into<String>,
        metadata: Metadata,
    ) -> Result<Message> {
        self.add(NewMessage::new(role, text).with_metadata(metadata))
            .await
    }

    /// Appends one message (any parts) and returns it as stored.
    pub async fn add(&mut self, message: NewMessage) -> Result<Message> {
        let mut stored = self.append(vec![message]).await?;
        stored.pop().ok_or_else(|| {
            Error::backend(
                "messages",
                "append_messages returned no message for one appended",
            )
        })
    }

    /// Appends several messages atomically (all or none) and returns them as stored.
    ///
    /// Idempotent by message id: after an [`Error::OutcomeUnknown`] (or any failure),
    /// calling it again with the same messages (same ids) stores them at most once and
    /// returns them as stored.
    pub async fn append(&mut self, messages: Vec<NewMessage>) -> Result<Vec<Message>> {
        self.vault.check_append(&messages)?;
        let appended = self
            .vault
            .messages
            .append_messages(&self.record.id, messages)
            .await?;
        self.record = appended.record;
        Ok(appended.messages)
    }

    /// Updates a stored message if it is still at `expected_revision` (its
    /// [`Message::revision`]); [`Error::Conflict`] when another writer updated it first.
    pub async fn update_message(
        &mut self,
        message_id: &MessageId,
        expected_revision: u64,
        update: &MessageUpdate,
    ) -> Result<Message> {
        let updated = self
            .vault
            .update_message(&self.record.id, message_id, expected_revision, update)
            .await?;
        self.record = updated.record;
        Ok(updated.message)
    }

    /// Starts a streamed reply: stores an empty assistant message (status
    /// [`MessageStatus::Pending`]) at its `seq` now, before the first token, and returns
    /// the writer that fills it in.
    ///
    /// ```
    /// use chatvault_core::{ChatVault, MessageStatus, ReplyOptions, Role, Usage};
    /// # use chatvault_memory::{MemoryFiles, MemoryMessages};
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> chatvault_core::Result<()> {
    /// # let vault = ChatVault::new(MemoryMessages::new(), MemoryFiles::new());
    /// let mut chat = vault.create_conversation(None).await?;
    /// chat.add_message(Role::User, "Count to three").await?;
    /// let mut reply = chat.begin_reply(ReplyOptions::default()).await?;
    /// for token in ["One", ", two", ", three."] {
    ///     reply.push_text(token).await?; // checkpointed at a bounded rate, not per token
    /// }
    /// let message = reply.finish(Some(Usage::new("gpt-4o", 12, 5))).await?;
    /// assert_eq!(message.content(), "One, two, three.");
    /// assert_eq!(message.status, MessageStatus::Complete);
    /// # Ok(()) }
    /// ```
    pub async fn begin_reply(&mut self, options: ReplyOptions) -> Result<ReplyWriter> {
        let lease = chrono::Duration::from_std(options.lease)
            .map_err(|_| Error::invalid_input("lease", "is longer than a timestamp can hold"))?;
        let message = NewMessage::with_parts(options.role.clone(), Vec::new())
            .with_parent(options.parent)
            .with_metadata(options.metadata.clone())
            .with_status(MessageStatus::Pending, Some(now() + lease));
        let stored = self.add(message).await?;
        Ok(ReplyWriter {
            vault: self.vault.clone(),
            conversation_id: self.record.id.clone(),
            message: stored,
            dirty_bytes: 0,
            dirty: false,
            last_checkpoint: Instant::now(),
            options,
        })
    }

    /// Every message, in order, read from the backend in its natural pages.
    ///
    /// A backend whose pages stop moving forward (a cursor with an empty page, or one
    /// that does not advance) gets an error, not an endless loop.
    pub async fn messages(&self) -> Result<Vec<Message>> {
        let mut out = Vec::new();
        let mut after = 0;
        loop {
            let range = MessageRange::after(after);
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

    /// One window of the active path's messages, by `seq`; see [`MessageRange`].
    ///
    /// The path is the one of the branch table the handle holds: its own writes keep it
    /// current, [`refresh`](Self::refresh) picks up other writers' edits and switches. In
    /// a conversation without branches this is one range read; otherwise one per path
    /// segment the window crosses.
    pub async fn messages_page(&self, range: &MessageRange) -> Result<Page<Message>> {
        match &self.record.tree {
            None => self.all_messages_page(range).await,
            Some(tree) => self.path_page(tree.active_path(), range).await,
        }
    }

    /// One window of the branch that ends at `leaf` (a `seq`; any message, on any
    /// branch): the messages from the first to `leaf`, paged like
    /// [`messages_page`](Self::messages_page).
    pub async fn branch_page(&self, leaf: u64, range: &MessageRange) -> Result<Page<Message>> {
        let path = self.record.tree().path_to(leaf);
        self.path_page(path, range).await
    }

    /// One window of the stored messages of every branch, in `seq` (storage) order.
    pub async fn all_messages_page(&self, range: &MessageRange) -> Result<Page<Message>> {
        let mut page = self.vault.messages.messages(&self.record.id, range).await?;
        let at = now();
        for m in &mut page.items {
            settle(m, at);
        }
        Ok(page)
    }

    async fn path_page(&self, path: Vec<Segment>, range: &MessageRange) -> Result<Page<Message>> {
        let backend = self.vault.messages.as_ref();
        let mut page = path_page(backend, &self.record.id, &path, range).await?;
        let at = now();
        for m in &mut page.items {
            settle(m, at);
        }
        Ok(page)
    }

    /// The stored message with this id (on any branch), or `None`.
    pub async fn message(&self, message_id: &MessageId) -> Result<Option<Message>> {
        let mut found = self
            .vault
            .messages
            .message(&self.record.id, message_id)
            .await?;
        if let Some(m) = &mut found {
            settle(m, now());
        }
        Ok(found)
    }

    /// Redacts a message (on any branch): its content and metadata are replaced by a
    /// tombstone holding only the [`Redaction`](crate::Redaction) (`reason`, time), which
    /// keeps its place (id, seq, parent, role, times, usage); the attachments only it
    /// referenced are deleted, bytes and records; a title made from its text becomes
    /// [`REDACTED_TITLE`](crate::REDACTED_TITLE). The old content is not kept by any
    /// first-party backend (see `docs/forgetting.md`).
    ///
    /// [`Error::InvalidInput`] for a blank reason or one over
    /// [`MAX_REDACTION_REASON`](crate::MAX_REDACTION_REASON) bytes; [`Error::NotFound`]
    /// for a message the conversation does not hold; [`Error::Conflict`] while it is a
    /// reply still being written, or when another writer changed it meanwhile.
    pub async fn redact(&mut self, message_id: &MessageId, reason: &str) -> Result<Redacted> {
        self.refresh().await?;
        let vault = &self.vault;
        let redacted = redact(
            vault.messages.as_ref(),
            vault.files.as_ref(),
            &self.record,
            &self.files,
            message_id,
            reason,
        )
        .await?;
        self.refresh().await?;
        Ok(redacted)
    }

    /// What [`redact`](Self::redact) would do with these arguments, with the same
    /// refusals, writing nothing: the message as stored and the attachments it would
    /// delete. For a dry run or a confirmation prompt.
    pub async fn plan_redaction(
        &self,
        message_id: &MessageId,
        reason: &str,
    ) -> Result<RedactionPlan> {
        let messages = self.vault.messages.as_ref();
        plan(messages, &self.files, &self.record.id, message_id, reason).await
    }

    /// The branch operations: edit, regenerate, switch, rewind, siblings, fork.
    pub fn branches(&mut self) -> Branches<'_> {
        Branches { conversation: self }
    }

    /// Where the message `seq` stands among its versions: `(index, count)`, from the
    /// branch table the handle holds (no read); `(0, 0)` for a `seq` it does not hold.
    pub fn version_of(&self, seq: u64) -> (usize, usize) {
        self.record.tree().version_of(seq)
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

    /// The whole history as plain text entries: `[{"role": ..., "content": ...}]`, the
    /// Python library's form (each message's text parts joined).
    pub async fn history(&self) -> Result<Vec<HistoryEntry>> {
        Ok(self
            .messages()
            .await?
            .iter()
            .map(HistoryEntry::from)
            .collect())
    }

    /// The newest `n` messages as plain text entries.
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

    /// Applies a metadata-only change (title, archived, metadata).
    pub async fn patch(&mut self, patch: ConversationPatch) -> Result<()> {
        patch.validate()?;
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
        self.attach_file_stream(filename, bytes_stream(data.into()), content_type)
            .await
    }

    /// Attaches a file from a stream, with memory bounded by the files backend's streaming.
    ///
    /// The size and SHA-256 are computed as the bytes pass through: past the first MiB,
    /// on a thread of its own, beside the upload (at most 1 MiB behind it).
    pub async fn attach_file_stream(
        &mut self,
        filename: &str,
        data: ByteStream,
        content_type: &str,
    ) -> Result<FileAttachment> {
        keys::validate_filename(filename)?;
        let content_type = ContentType::parse(content_type)?;
        let file_id = FileId::new();
        let key = keys::storage_key(self.user_id(), self.id(), &file_id, filename)?;
        let (hashed, hash) = StreamHash::tap(data);
        self.vault
            .files
            .upload_stream(&key, hashed, &content_type)
            .await?;
        let Some((sha256, size)) = hash.finish().await else {
            // The hashing thread died (it cannot, short of a panic): the bytes are stored
            // but their digest is unknown, so they must not be attached.
            self.discard_bytes(&key).await;
            return Err(Error::backend(
                "chatvault",
                "the SHA-256 of the attachment could not be computed",
            ));
        };
        let file = FileAttachment {
            id: file_id,
            filename: filename.to_owned(),
            content_type,
            size,
            sha256,
            storage_key: key,
            uploaded_at: now(),
            metadata: Metadata::new(),
        };
        self.record_attachment(file).await
    }

    async fn record_attachment(&mut self, file: FileAttachment) -> Result<FileAttachment> {
        match self.vault.messages.add_file(&self.record.id, &file).await {
            Ok(record) => {
                self.record = record;
                self.files.push(file.clone());
                Ok(file)
            }
            // A temporary or unknown outcome may hide a write that committed (its answer
            // was lost): look before deleting bytes that a stored attachment may point to.
            Err(e) if e.is_temporary() || e.kind() == crate::ErrorKind::OutcomeUnknown => {
                match self.vault.messages.head(&self.record.id).await {
                    Ok(Some(head)) if head.files.iter().any(|f| f.id == file.id) => {
                        self.record = head.record;
                        self.files = head.files;
                        Ok(file)
                    }
                    Ok(_) => {
                        self.discard_bytes(&file.storage_key).await;
                        Err(e)
                    }
                    // Still unknown: keep the bytes (at worst an orphan, never a dangling
                    // attachment) and report the original error.
                    Err(_) => Err(e),
                }
            }
            Err(e) => {
                self.discard_bytes(&file.storage_key).await;
                Err(e)
            }
        }
    }

    /// Best effort: the bytes must not outlive a failed attach. The caller gets the error
    /// that made the attach fail; an orphan is worth a warning.
    async fn discard_bytes(&self, key: &StorageKey) {
        if let Err(cleanup) = self.vault.files.delete(key).await {
            tracing::warn!(
                key = %key, error = %cleanup,
                "could not delete the bytes of a failed attachment; they are orphaned"
            );
        }
    }

    fn require_file(&self, file_id: &FileId) -> Result<&FileAttachment> {
        self.file(file_id).ok_or_else(|| Error::NotFound {
            kind: "file",
            id: file_id.to_string(),
        })
    }

    /// An attachment's bytes; `None` if the bytes are missing from the files backend.
    /// Fails with [`Error::NotFound`] for a file id this conversation does not have.
    pub async fn file_content(&self, file_id: &FileId) -> Result<Option<Bytes>> {
        let file = self.require_file(file_id)?;
        self.vault.files.download(&file.storage_key).await
    }

    /// An attachment's bytes as a stream (bounded memory in first-party backends).
    pub async fn file_stream(&self, file_id: &FileId) -> Result<Option<ByteStream>> {
        let file = self.require_file(file_id)?;
        self.vault.files.download_stream(&file.storage_key).await
    }

    /// A URL that downloads the attachment for `expires_in`, saved under its original
    /// file name. [`Error::NotSupported`] when the files backend has no such URLs;
    /// [`Error::NotFound`] when the attachment or its bytes are missing.
    pub async fn file_url(&self, file_id: &FileId, expires_in: Duration) -> Result<String> {
        let file = self.require_file(file_id)?;
        if !self.vault.files.capabilities().signed_urls {
            return Err(Error::not_supported("this files backend", "signed URLs"));
        }
        self.vault
            .files
            .signed_url(&file.storage_key, expires_in, Some(&file.filename))
            .await
    }

    /// Deletes an attachment: its bytes, then its record. Returns whether it existed.
    ///
    /// An attachment this handle has not seen yet (added through another handle) is
    /// looked up in the backend first.
    pub async fn delete_file(&mut self, file_id: &FileId) -> Result<bool> {
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
        self.files.retain(|f| &f.id != file_id);
        match removed {
            Some(record) => {
                self.record = record;
                Ok(true)
            }
            None => Ok(false),
        }
    }

    /// Follows one of this conversation's replies from byte `offset` of its text; see
    /// [`ReplyFollower`].
    ///
    /// ```
    /// use chatvault_core::{ChatVault, FollowOptions, ReplyEvent, ReplyOptions, Role};
    /// # use chatvault_memory::{MemoryFiles, MemoryMessages};
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> chatvault_core::Result<()> {
    /// # let vault = ChatVault::new(MemoryMessages::new(), MemoryFiles::new());
    /// let mut chat = vault.create_conversation(None).await?;
    /// chat.add_message(Role::User, "Count to three").await?;
    /// let mut reply = chat.begin_reply(ReplyOptions::default()).await?;
    /// reply.push_text("One").await?;
    /// reply.checkpoint().await?;
    /// let id = reply.message_id().clone();
    /// let writer = tokio::spawn(async move {
    ///     for token in [", two", ", three."] {
    ///         reply.push_text(token).await?;
    ///         reply.checkpoint().await?;
    ///     }
    ///     reply.finish(None).await
    /// });
    ///
    /// // A reader that already has the first 3 bytes ("One") resumes from there.
    /// let mut follower = chat.follow_reply(&id, 3, FollowOptions::default());
    /// let mut text = String::from("One");
    /// while let Some(event) = follower.next().await? {
    ///     match event {
    ///         ReplyEvent::Delta { text: delta, .. } => text.push_str(&delta),
    ///         ReplyEvent::End(message) => assert_eq!(message.content(), text),
    ///         _ => {}
    ///     }
    /// }
    /// assert_eq!(text, "One, two, three.");
    /// # writer.await.expect("the writer ran")?;
    /// # Ok(()) }
    /// ```
    pub fn follow_reply(
        &self,
        message_id: &MessageId,
        offset: u64,
        options: FollowOptions,
    ) -> ReplyFollower {
        self.vault
            .follow_reply(&self.record.id, message_id, offset, options)
    }

    /// Stops one of this conversation's replies while it streams; see
    /// [`ChatVault::stop_reply`].
    ///
    /// ```
    /// use chatvault_core::{ChatVault, ErrorKind, MessageStatus, ReplyOptions, Role};
    /// # use chatvault_memory::{MemoryFiles, MemoryMessages};
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> chatvault_core::Result<()> {
    /// # let vault = ChatVault::new(MemoryMessages::new(), MemoryFiles::new());
    /// let mut chat = vault.create_conversation(None).await?;
    /// chat.add_message(Role::User, "Tell me a long story").await?;
    /// let mut reply = chat.begin_reply(ReplyOptions::default()).await?;
    /// reply.push_text("Once upon a time").await?;
    /// reply.checkpoint().await?;
    ///
    /// // The person presses Stop (another task, or another process).
    /// let stopped = chat.stop_reply(reply.message_id()).await?;
    /// assert_eq!(stopped.status, MessageStatus::Stopped);
    /// assert_eq!(stopped.content(), "Once upon a time");
    ///
    /// // The writer's next write (its next checkpoint, or its end) stores nothing and
    /// // says why.
    /// let err = reply.finish(None).await.unwrap_err();
    /// assert_eq!(err.kind(), ErrorKind::Stopped);
    /// # Ok(()) }
    /// ```
    pub async fn stop_reply(&mut self, message_id: &MessageId) -> Result<Message> {
        let (stopped, record) = super::live::stop(&self.vault, &self.record.id, message_id).await?;
        if let Some(record) = record {
            self.record = record;
        }
        Ok(stopped)
    }

    /// Stores a compaction checkpoint: `summary` (made by `by`) stands for the messages
    /// of the active branch from the first through `through`, for a model; the messages
    /// themselves stay as they are, and [`messages`](Self::messages) still returns every
    /// one. The checkpoint is appended at the end of the active branch (one append; a
    /// [`Role::System`] message whose metadata is a [`Checkpoint`](crate::Checkpoint)) and returned. Several
    /// compactions stack: the latest checkpoint on a branch is the one that counts.
    ///
    /// Reads the record (for the current branch) and the message after `through`.
    /// [`Error::InvalidInput`] when the summary is blank, when `through` is not on the
    /// active branch, is still being written, or is followed by the results of its tool
    /// calls (a checkpoint never separates a tool call from its result: compact through
    /// the results instead); [`Error::NotFound`] when there is no such message.
    ///
    /// ```
    /// use chatvault_core::{ChatVault, Checkpoint, Role};
    /// # use chatvault_memory::{MemoryFiles, MemoryMessages};
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> chatvault_core::Result<()> {
    /// # let vault = ChatVault::new(MemoryMessages::new(), MemoryFiles::new());
    /// let mut chat = vault.create_conversation(None).await?;
    /// chat.add_message(Role::User, "I'm planning a trip to Oslo in May.").await?;
    /// let answer = chat.add_message(Role::Assistant, "Lovely! For how long?").await?;
    /// chat.add_message(Role::User, "Five days.").await?;
    ///
    /// let checkpoint = chat
    ///     .compact("The user plans a trip to Oslo in May.", &answer.id, "summarizer")
    ///     .await?;
    /// let info = Checkpoint::of(&checkpoint).expect("a checkpoint");
    /// assert_eq!((info.through, info.covers), (answer.id, 2));
    /// assert_eq!(chat.messages().await?.len(), 4); // nothing replaced
    /// # Ok(()) }
    /// ```
    pub async fn compact(
        &mut self,
        summary: impl Into<String>,
        through: &MessageId,
        by: impl Into<String>,
    ) -> Result<Message> {
        super::compact::compact(self, summary.into(), through, by.into()).await
    }
}
