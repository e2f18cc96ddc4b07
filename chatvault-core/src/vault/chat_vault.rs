//! The [`ChatVault`]: the two backends, and what an application does across
//! conversations (listing, search, archive, delete).
use std::collections::HashMap;
use std::sync::Arc;

use super::conversation::Conversation;
use super::follow::{FollowOptions, ReplyFollower};
use super::forget::{Forgetting, delete_with_files};
use super::live::Live;
use super::new_conversation::NewConversation;
use crate::backend::{FilesBackend, MessagesBackend, check_unique_ids};
use crate::error::{Error, Result};
use crate::ids::{ConversationId, MessageId, UserId};
use crate::model::*;

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
/// let user = "user-123".parse()?;
/// let mut conversation = vault.create_conversation(Some(&user)).await?;
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
    pub(super) messages: Arc<dyn MessagesBackend>,
    pub(super) files: Arc<dyn FilesBackend>,
    /// Wakes the followers of a reply when a writer of this vault (or a clone) stores it.
    pub(super) live: Arc<Live>,
    /// When conversations expire: an expired one reads as gone (see [`Retention`]).
    pub(super) retention: Arc<Retention>,
}

impl ChatVault {
    /// A vault over these two backends.
    pub fn new(messages: impl MessagesBackend, files: impl FilesBackend) -> Self {
        ChatVault::from_arcs(Arc::new(messages), Arc::new(files))
    }

    /// A vault over backends that are already shared.
    pub fn from_arcs(messages: Arc<dyn MessagesBackend>, files: Arc<dyn FilesBackend>) -> Self {
        ChatVault {
            messages,
            files,
            live: Arc::default(),
            retention: Arc::default(),
        }
    }

    /// This vault with a retention policy: from now on a conversation past its expiry
    /// reads as gone, as a deleted one does (not found, not listed, not searched, not
    /// written to), until [`Forgetting::purge_expired`](crate::Forgetting::purge_expired)
    /// removes it. The default policy keeps everything. See `docs/forgetting.md`.
    ///
    /// With a policy that expires anything, [`append_as`](Self::append_as) and
    /// [`update_message`](Self::update_message) read the conversation's head first (one
    /// read more per write).
    pub fn with_retention(mut self, retention: Retention) -> Self {
        self.retention = Arc::new(retention);
        self
    }

    /// Purging expired conversations and erasing an owner: see [`Forgetting`].
    pub fn forget(&self) -> Forgetting<'_> {
        Forgetting::new(&*self.messages, &*self.files, &self.retention)
    }

    /// The retention policy in force.
    pub fn retention(&self) -> &Retention {
        &self.retention
    }

    /// Whether `record`'s conversation has expired under this vault's policy.
    pub(super) fn expired(&self, record: &ConversationRecord) -> bool {
        self.retention.is_expired(record, now())
    }

    /// `page` without the conversations that have expired.
    fn unexpired(&self, mut page: Page<ConversationSummary>) -> Page<ConversationSummary> {
        if !self.retention.keeps_everything() {
            let at = now();
            page.items
                .retain(|summary| !self.retention.summary_expired(summary, at));
        }
        page
    }

    /// [`Error::NotFound`] when conversation `id` has expired (read only when the policy
    /// expires anything).
    async fn check_unexpired(&self, id: &ConversationId) -> Result<()> {
        if self.retention.keeps_everything() {
            return Ok(());
        }
        match self.messages.head(id).await? {
            Some(head) if self.expired(&head.record) => {
                Err(Error::conversation_not_found(id.as_str()))
            }
            _ => Ok(()),
        }
    }

    /// The messages backend.
    pub fn messages_backend(&self) -> &Arc<dyn MessagesBackend> {
        &self.messages
    }

    /// The files backend.
    pub fn files_backend(&self) -> &Arc<dyn FilesBackend> {
        &self.files
    }

    /// A page of a user's conversations, newest activity first. Expired conversations
    /// are left out (so a page may hold fewer than the limit; follow its cursor).
    ///
    /// ```
    /// # use chatvault_core::{ChatVault, ListOptions, UserId};
    /// # use chatvault_memory::{MemoryFiles, MemoryMessages};
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> chatvault_core::Result<()> {
    /// # let vault = ChatVault::new(MemoryMessages::new(), MemoryFiles::new());
    /// let user: UserId = "user-123".parse()?;
    /// let mut options = ListOptions::new().limit(20)?;
    /// loop {
    ///     let page = vault.list_conversations(&user, &options).await?;
    ///     for summary in &page.items {
    ///         println!("{} {:?}", summary.id, summary.title);
    ///     }
    ///     match page.next_cursor {
    ///         Some(cursor) => options = options.cursor(&cursor)?,
    ///         None => break,
    ///     }
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn list_conversations(
        &self,
        user_id: &UserId,
        options: &ListOptions,
    ) -> Result<Page<ConversationSummary>> {
        let page = self
            .messages
            .list_conversations(Some(user_id), options)
            .await?;
        Ok(self.unexpired(page))
    }

    /// A page of every user's conversations, newest activity first, expired ones left
    /// out as in [`list_conversations`](Self::list_conversations).
    ///
    /// [`Error::NotSupported`] when the messages backend cannot list all users.
    pub async fn list_all_conversations(
        &self,
        options: &ListOptions,
    ) -> Result<Page<ConversationSummary>> {
        if !self.messages.capabilities().list_all {
            return Err(Error::not_supported(
                "this messages backend",
                "listing every user's conversations",
            ));
        }
        let page = self.messages.list_conversations(None, options).await?;
        Ok(self.unexpired(page))
    }

    /// Full-text search over a user's messages, best matches first.
    ///
    /// [`Error::InvalidInput`] for a query [`SearchQuery::parse`] refuses (blank, over
    /// 1024 bytes, control characters); every other query is searched for as plain words.
    /// [`Error::NotSupported`] when the messages backend has no search.
    pub async fn search(
        &self,
        user_id: &UserId,
        query: &str,
        options: &SearchOptions,
    ) -> Result<Page<SearchHit>> {
        SearchQuery::parse(query)?;
        if !self.messages.capabilities().search {
            return Err(Error::not_supported("this messages backend", "search"));
        }
        let mut page = self.messages.search(user_id, query, options).await?;
        let at = now();
        page.items
            .retain(|hit| !self.retention.summary_expired(&hit.conversation, at));
        for hit in &mut page.items {
            settle(&mut hit.message, at);
        }
        self.place_hits(&mut page.items).await?;
        Ok(page)
    }

    /// Fills in each hit's branch, from one head read per conversation among the hits.
    async fn place_hits(&self, hits: &mut [SearchHit]) -> Result<()> {
        let mut trees: HashMap<ConversationId, Option<Tree>> = HashMap::new();
        for hit in hits.iter_mut() {
            let id = &hit.conversation.id;
            if !trees.contains_key(id) {
                let head = self.messages.head(id).await?;
                let tree = head.map(|h| h.record.tree().into_owned());
                trees.insert(id.clone(), tree);
            }
            if let Some(Some(tree)) = trees.get(id) {
                let seq = hit.message.seq;
                hit.branch = Some(HitBranch {
                    active: tree.is_on_path(seq, tree.leaf),
                    leaf: tree.newest_leaf_from(seq),
                });
            }
        }
        Ok(())
    }

    /// Archives a conversation: it stays readable but leaves listings unless asked for.
    pub async fn archive_conversation(&self, id: &ConversationId) -> Result<ConversationRecord> {
        self.messages
            .update(
                id,
                &ConversationPatch {
                    archived: Some(true),
                    ..Default::default()
                },
            )
            .await
    }

    /// Brings an archived conversation back into listings.
    pub async fn unarchive_conversation(&self, id: &ConversationId) -> Result<ConversationRecord> {
        self.messages
            .update(
                id,
                &ConversationPatch {
                    archived: Some(false),
                    ..Default::default()
                },
            )
            .await
    }

    /// Deletes a conversation and everything in it; returns whether it existed.
    ///
    /// First the conversation is marked as being deleted, so no attachment can be added
    /// any more ([`MessagesBackend::begin_delete`]); then its attachments' bytes are
    /// deleted; then its record and messages. An attach racing the delete either lands
    /// before the mark (its bytes are deleted here) or fails and deletes its own bytes:
    /// no blob is left behind. If this fails part-way, calling it again finishes the job.
    pub async fn delete_conversation(&self, id: &ConversationId) -> Result<bool> {
        let deleted = delete_with_files(&*self.messages, &*self.files, id, &[]).await?;
        Ok(deleted.is_some())
    }

    /// Checks `messages` against the core's rules and the backend's declared limits.
    pub(super) fn check_append(&self, messages: &[NewMessage]) -> Result<()> {
        check_unique_ids(messages)?;
        let caps = self.messages.capabilities();
        if let Some(max) = caps.max_append_messages
            && messages.len() > max
        {
            return Err(Error::TooLarge {
                what: "one append (messages)".into(),
                size: messages.len() as u64,
                limit: max as u64,
            });
        }
        let limit = message_limit(&caps);
        for m in messages {
            let size = m.validate_sized(usize::try_from(limit).unwrap_or(usize::MAX))?;
            check_message_size(&m.id, size, limit)?;
        }
        Ok(())
    }

    /// Appends `messages` to `user`'s conversation `id` without reading it first: the
    /// owner is checked in the backend's write
    /// ([`MessagesBackend::append_messages_as`]), so this costs one append. What a server
    /// answering for a signed-in user calls; [`Error::NotFound`] for another user's
    /// conversation (nothing stored), as for a missing one. Atomic and idempotent by
    /// message id like [`Conversation::append`](crate::Conversation::append).
    pub async fn append_as(
        &self,
        user: &UserId,
        id: &ConversationId,
        messages: Vec<NewMessage>,
    ) -> Result<Appended> {
        self.check_append(&messages)?;
        self.check_unexpired(id).await?;
        self.messages
            .append_messages_as(Some(user), id, messages)
            .await
    }

    /// Updates a stored message if it is still at `expected_revision`; see
    /// [`Conversation::update_message`](crate::Conversation::update_message).
    pub async fn update_message(
        &self,
        conversation_id: &ConversationId,
        message_id: &MessageId,
        expected_revision: u64,
        update: &MessageUpdate,
    ) -> Result<MessageUpdated> {
        update.validate()?;
        if let Some(parts) = &update.parts {
            let size = serde_json::to_vec(parts).map_or(usize::MAX, |v| v.len());
            check_message_size(
                message_id,
                size,
                message_limit(&self.messages.capabilities()),
            )?;
        }
        self.check_unexpired(conversation_id).await?;
        let mut updated = self
            .messages
            .update_message(conversation_id, message_id, expected_revision, update)
            .await?;
        settle(&mut updated.message, now());
        Ok(updated)
    }

    /// Creates a conversation, optionally owned by a user.
    pub async fn create_conversation(&self, user_id: Option<&UserId>) -> Result<Conversation> {
        let mut builder = self.new_conversation();
        if let Some(user) = user_id {
            builder = builder.user(user.clone());
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
    ///     .user("user-123".parse()?)
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

    /// The conversation with this id, or `None` (also when it has expired under the
    /// vault's [`Retention`](crate::Retention)).
    pub async fn get_conversation(&self, id: &ConversationId) -> Result<Option<Conversation>> {
        let Some(head) = self.messages.head(id).await? else {
            return Ok(None);
        };
        if self.expired(&head.record) {
            return Ok(None);
        }
        Ok(Some(Conversation {
            vault: self.clone(),
            record: head.record,
            files: head.files,
        }))
    }

    /// The conversation with this id if `user_id` owns it; `None` if it does not exist
    /// *or belongs to someone else*, so a web handler cannot leak another user's chat.
    pub async fn get_conversation_for_user(
        &self,
        id: &ConversationId,
        user_id: &UserId,
    ) -> Result<Option<Conversation>> {
        Ok(self
            .get_conversation(id)
            .await?
            .filter(|c| c.user_id() == Some(user_id)))
    }

    /// Follows the reply `message_id` of conversation `conversation_id` from byte
    /// `offset` of its text (0: from the start); see [`ReplyFollower`]. Reads nothing
    /// until the follower's first [`next`](ReplyFollower::next). Who may follow it is the
    /// caller's check (see [`Conversation::follow_reply`] for the owner's handle).
    pub fn follow_reply(
        &self,
        conversation_id: &ConversationId,
        message_id: &MessageId,
        offset: u64,
        options: FollowOptions,
    ) -> ReplyFollower {
        ReplyFollower::new(
            self.clone(),
            conversation_id.clone(),
            message_id.clone(),
            offset,
            options,
        )
    }

    /// Stops a reply that is streaming: stores it as [`MessageStatus::Stopped`], keeping
    /// the content stored at that moment (its last checkpoint: what its followers have
    /// seen), and returns it. Its writer learns of it at its next write, which stores
    /// nothing and fails with [`Error::Stopped`]; followers get the end of the reply.
    ///
    /// A reply that is no longer in progress (complete, failed, interrupted, already
    /// stopped) is returned as it is, unchanged: stopping twice is harmless, and a reply
    /// that finished first stays finished. [`Error::NotFound`] when the conversation or
    /// the message does not exist. The check of who may stop it is the caller's (see
    /// [`Conversation::stop_reply`] for the owner's handle).
    pub async fn stop_reply(
        &self,
        conversation_id: &ConversationId,
        message_id: &MessageId,
    ) -> Result<Message> {
        Ok(super::live::stop(self, conversation_id, message_id)
            .await?
            .0)
    }
}

/// The largest message the backend with these capabilities stores, in bytes of JSON.
fn message_limit(caps: &crate::backend::MessagesCapabilities) -> u64 {
    caps.max_message_bytes
        .unwrap_or(MAX_MESSAGE_BYTES as u64)
        .min(MAX_MESSAGE_BYTES as u64)
}

/// [`Error::TooLarge`] when a message of `size` bytes exceeds `limit`.
fn check_message_size(id: &MessageId, size: usize, limit: u64) -> Result<()> {
    if size as u64 > limit {
        return Err(Error::TooLarge {
            what: format!("message {id}"),
            size: size as u64,
            limit,
        });
    }
    Ok(())
}

/// Marks a stored in-progress message whose lease has run out as interrupted.
pub(super) fn settle(message: &mut Message, at: chrono::DateTime<chrono::Utc>) {
    message.status = message.status_at(at);
}

/// The error for a messages backend whose pages do not move on.
pub(super) fn stalled(cursor: &str) -> Error {
    Error::backend(
        "messages",
        format!("a page ended with cursor {cursor:?} but did not move past the previous one"),
    )
}
