//! The [`MessagesBackend`] implementation: one call per method into the part that does
//! it (under `read/` and `write/`).

use chatvault_core::backend::*;

use super::DynamoMessages;
use super::limits::{BACKEND, MAX_APPEND_MESSAGES, MAX_MESSAGE_BYTES};

#[async_trait]
#[deny(clippy::missing_trait_methods)]
impl MessagesBackend for DynamoMessages {
    /// Atomic appends in and across processes (conditional transactions), every user's
    /// listing (the `by_activity` index); no search; a message at most
    /// [`MAX_MESSAGE_BYTES`](crate::MAX_MESSAGE_BYTES) (one 400 KB item), an append at most
    /// [`MAX_APPEND_MESSAGES`] messages.
    fn capabilities(&self) -> MessagesCapabilities {
        MessagesCapabilities::full()
            .with_search(false)
            .with_max_message_bytes(Some(MAX_MESSAGE_BYTES))
            .with_max_append_messages(Some(MAX_APPEND_MESSAGES))
    }

    /// A transaction of one conditional put (see the crate docs' costs). When the SDK
    /// gives up with a temporary error, the item is read back: if it is the conversation
    /// written (same creation time and owner, at least the version written), the
    /// create committed and the answer is `Ok`; if that read fails, the error says that
    /// the outcome is unknown.
    async fn create(&self, record: &ConversationRecord) -> Result<()> {
        self.records.create(record).await
    }

    /// One consistent `GetItem`: the attachments live in the conversation item.
    async fn head(&self, id: &ConversationId) -> Result<Option<ConversationHead>> {
        self.heads.read_head(id).await
    }

    /// One request in the steady state, owner checked or not (see `Appender::append`).
    async fn append_messages_as(
        &self,
        owner: Option<&UserId>,
        id: &ConversationId,
        messages: Vec<NewMessage>,
    ) -> Result<Appended> {
        self.appender.append(owner, id, messages).await
    }

    async fn update_message(
        &self,
        id: &ConversationId,
        message_id: &MessageId,
        expected_revision: u64,
        update: &MessageUpdate,
    ) -> Result<MessageUpdated> {
        self.updater
            .update_message(id, message_id, expected_revision, update)
            .await
    }

    /// One consistent `GetItem` when the message is in the conversation item's tail (or
    /// is not stored at all), three reads when it is sealed (see `Lookup::read_message`).
    async fn message(
        &self,
        id: &ConversationId,
        message_id: &MessageId,
    ) -> Result<Option<Message>> {
        self.lookup.read_message(id, message_id).await
    }

    async fn messages(&self, id: &ConversationId, range: &MessageRange) -> Result<Page<Message>> {
        self.ranges.read_messages(id, range).await
    }

    /// A page of summaries from a GSI: `by_user` for one user (one `Query`, more when
    /// archived conversations are filtered out), `by_activity` for everyone (one `Query`
    /// per shard, 8, merged). GSIs are eventually consistent: a change shows up in
    /// listings a moment after it is written on AWS. A conversation being deleted has no
    /// `activity`, so neither index holds it.
    async fn list_conversations(
        &self,
        user_id: Option<&UserId>,
        options: &ListOptions,
    ) -> Result<Page<ConversationSummary>> {
        self.listing.list_conversations(user_id, options).await
    }

    async fn update(
        &self,
        id: &ConversationId,
        patch: &ConversationPatch,
    ) -> Result<ConversationRecord> {
        self.records.update(id, patch).await
    }

    /// Marks the conversation (the tombstone of `delete`'s first step) and returns its
    /// attachments, as the tombstoned item holds them.
    async fn begin_delete(&self, id: &ConversationId) -> Result<Option<Vec<FileAttachment>>> {
        self.deleter.begin_delete(id).await
    }

    /// Deletes the conversation in three steps, so that no concurrent writer can keep it
    /// alive:
    ///
    /// 1. The conversation item gets a tombstone (`deleting`) and a new `version` (what
    ///    `begin_delete` does, after writing the conversation's deletion marker item; a
    ///    second time changes nothing that matters). From then on every append and every
    ///    change fails with [`Error::NotFound`], even one that read the conversation
    ///    before: its transaction is conditional on the version it read, which is gone.
    /// 2. Every message item and id marker under the conversation's key is deleted
    ///    (`Query`, then `BatchWriteItem`s, retrying unprocessed items).
    /// 3. The conversation item and its deletion marker are deleted in one transaction,
    ///    conditional on the tombstone's version.
    ///
    /// If it fails part-way, the conversation stays marked (it reads as gone, and
    /// `list_deleting` names it) and calling `delete` again finishes the job and answers
    /// `true`. For a conversation that does not exist it answers `false`, after deleting
    /// any message items left under the id.
    async fn delete(&self, id: &ConversationId) -> Result<bool> {
        self.deleter.delete(id).await
    }

    async fn add_file(
        &self,
        id: &ConversationId,
        file: &FileAttachment,
    ) -> Result<ConversationRecord> {
        self.records.add_file(id, file).await
    }

    async fn remove_file(
        &self,
        id: &ConversationId,
        file_id: &FileId,
    ) -> Result<Option<ConversationRecord>> {
        self.records.remove_file(id, file_id).await
    }

    /// At most `limit` conversations marked by `begin_delete` (or by a `delete` that has
    /// not finished) and not yet deleted, of `user_id` (every user's, and those of no
    /// user, with `None`), in no particular order. `delete` takes a conversation off this
    /// list, so a caller that finishes each conversation it gets calls again until the
    /// answer is empty. Exact after any crash: the mark's deletion marker is put before the
    /// tombstone and deleted in the same transaction as the conversation item.
    ///
    /// Costs one consistent `Query` of the markers' partition (more for a page of over
    /// 1 MB) and consistent `BatchGetItem`s of the markers' conversation items (100 a
    /// request); it never reads live conversations or messages. A marker whose conversation is gone is
    /// removed on the way. A conversation marked by an earlier release of chatvault-aws
    /// (which wrote no marker) cannot be found and is not listed; `begin_delete` on it
    /// again puts its marker.
    async fn list_deleting(
        &self,
        user_id: Option<&UserId>,
        limit: PageLimit,
    ) -> Result<Vec<ConversationId>> {
        self.deleting.list_deleting(user_id, limit).await
    }

    async fn search(
        &self,
        _user_id: &UserId,
        _query: &str,
        _options: &SearchOptions,
    ) -> Result<Page<SearchHit>> {
        Err(Error::search_not_supported(BACKEND))
    }
}
