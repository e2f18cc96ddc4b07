//! What the history tests share: a memory backend with short pages that counts the
//! messages it returns.

// Test support code: its unwraps are test assertions.
#![allow(dead_code, unreachable_pub, clippy::unwrap_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use chatvault_core::backend::{ConversationHead, MessagesCapabilities, async_trait};
use chatvault_core::{
    Appended, ChatVault, ConversationId, ConversationPatch, ConversationRecord,
    ConversationSummary, FileAttachment, FileId, ListOptions, Message, MessageId, MessageRange,
    MessageUpdate, MessageUpdated, MessagesBackend, NewMessage, Page, Result, SearchHit,
    SearchOptions, UserId,
};
use chatvault_memory::{MemoryFiles, MemoryMessages};

/// MemoryMessages whose pages of messages hold at most `page_cap`, counting the messages
/// it returns.
#[derive(Debug)]
pub struct Paged {
    pub inner: MemoryMessages,
    pub page_cap: usize,
    /// How many messages `messages` has returned.
    pub read: AtomicUsize,
}

#[async_trait]
#[deny(clippy::missing_trait_methods)]
impl MessagesBackend for Paged {
    fn capabilities(&self) -> MessagesCapabilities {
        self.inner.capabilities()
    }
    async fn create(&self, record: &ConversationRecord) -> Result<()> {
        self.inner.create(record).await
    }
    async fn message(&self, id: &ConversationId, m: &MessageId) -> Result<Option<Message>> {
        self.inner.message(id, m).await
    }
    async fn head(&self, id: &ConversationId) -> Result<Option<ConversationHead>> {
        self.inner.head(id).await
    }
    async fn append_messages_as(
        &self,
        owner: Option<&UserId>,
        id: &ConversationId,
        m: Vec<NewMessage>,
    ) -> Result<Appended> {
        self.inner.append_messages_as(owner, id, m).await
    }
    async fn update_message(
        &self,
        id: &ConversationId,
        message_id: &MessageId,
        expected_revision: u64,
        update: &MessageUpdate,
    ) -> Result<MessageUpdated> {
        self.inner
            .update_message(id, message_id, expected_revision, update)
            .await
    }
    async fn messages(&self, id: &ConversationId, range: &MessageRange) -> Result<Page<Message>> {
        let cap = self.page_cap;
        let capped = match range {
            MessageRange::After { after, limit } => MessageRange::After {
                after: *after,
                limit: Some(limit.unwrap_or(cap).min(cap)),
            },
            MessageRange::Before { before, limit } => MessageRange::Before {
                before: *before,
                limit: (*limit).min(cap),
            },
        };
        let page = self.inner.messages(id, &capped).await?;
        self.read.fetch_add(page.items.len(), Ordering::SeqCst);
        Ok(page)
    }
    async fn list_conversations(
        &self,
        user_id: Option<&UserId>,
        options: &ListOptions,
    ) -> Result<Page<ConversationSummary>> {
        self.inner.list_conversations(user_id, options).await
    }
    async fn update(
        &self,
        id: &ConversationId,
        patch: &ConversationPatch,
    ) -> Result<ConversationRecord> {
        self.inner.update(id, patch).await
    }
    async fn add_file(
        &self,
        id: &ConversationId,
        file: &FileAttachment,
    ) -> Result<ConversationRecord> {
        self.inner.add_file(id, file).await
    }
    async fn remove_file(
        &self,
        id: &ConversationId,
        file_id: &FileId,
    ) -> Result<Option<ConversationRecord>> {
        self.inner.remove_file(id, file_id).await
    }
    async fn begin_delete(&self, id: &ConversationId) -> Result<Option<Vec<FileAttachment>>> {
        self.inner.begin_delete(id).await
    }
    async fn delete(&self, id: &ConversationId) -> Result<bool> {
        self.inner.delete(id).await
    }
    async fn search(
        &self,
        user_id: &UserId,
        query: &str,
        options: &SearchOptions,
    ) -> Result<Page<SearchHit>> {
        self.inner.search(user_id, query, options).await
    }
}

/// A new conversation on a backend whose pages hold at most `cap` messages.
pub async fn paged(cap: usize) -> (chatvault_core::Conversation, Arc<Paged>) {
    let backend = Arc::new(Paged {
        inner: MemoryMessages::new(),
        page_cap: cap,
        read: AtomicUsize::new(0),
    });
    let vault = ChatVault::from_arcs(backend.clone(), Arc::new(MemoryFiles::new()));
    (
        vault.create_conversation(None).await.expect("create"),
        backend,
    )
}
