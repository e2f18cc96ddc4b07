//! Backends behind an `Arc<dyn ..>` as types of their own, so that a store the command
//! opened (whatever its kind) can be given to chatvault-crypt's wrappers, which take a
//! backend by type.

use std::sync::Arc;
use std::time::Duration;

use chatvault_core::backend::{
    Appended, ConversationHead, ConversationPatch, ConversationRecord, ConversationSummary,
    FileAttachment, FilesCapabilities, ListOptions, Message, MessageRange, MessageUpdate,
    MessageUpdated, MessagesCapabilities, NewMessage, ObjectMeta, Page, SearchHit, SearchOptions,
    async_trait,
};
use chatvault_core::{
    ByteStream, ContentType, ConversationId, FileId, FilesBackend, MessageId, MessagesBackend,
    Result, StorageKey, UserId,
};

/// A shared messages backend: every method is the wrapped backend's, unchanged.
#[derive(Debug, Clone)]
pub(crate) struct SharedMessages(pub(crate) Arc<dyn MessagesBackend>);

#[async_trait]
#[deny(clippy::missing_trait_methods)]
impl MessagesBackend for SharedMessages {
    fn capabilities(&self) -> MessagesCapabilities {
        self.0.capabilities()
    }

    async fn create(&self, record: &ConversationRecord) -> Result<()> {
        self.0.create(record).await
    }

    async fn head(&self, id: &ConversationId) -> Result<Option<ConversationHead>> {
        self.0.head(id).await
    }

    async fn append_messages_as(
        &self,
        owner: Option<&UserId>,
        id: &ConversationId,
        messages: Vec<NewMessage>,
    ) -> Result<Appended> {
        self.0.append_messages_as(owner, id, messages).await
    }

    async fn update_message(
        &self,
        id: &ConversationId,
        message_id: &MessageId,
        expected_revision: u64,
        update: &MessageUpdate,
    ) -> Result<MessageUpdated> {
        self.0
            .update_message(id, message_id, expected_revision, update)
            .await
    }

    async fn message(
        &self,
        id: &ConversationId,
        message_id: &MessageId,
    ) -> Result<Option<Message>> {
        self.0.message(id, message_id).await
    }

    async fn messages(&self, id: &ConversationId, range: &MessageRange) -> Result<Page<Message>> {
        self.0.messages(id, range).await
    }

    async fn list_conversations(
        &self,
        user_id: Option<&UserId>,
        options: &ListOptions,
    ) -> Result<Page<ConversationSummary>> {
        self.0.list_conversations(user_id, options).await
    }

    async fn update(
        &self,
        id: &ConversationId,
        patch: &ConversationPatch,
    ) -> Result<ConversationRecord> {
        self.0.update(id, patch).await
    }

    async fn add_file(
        &self,
        id: &ConversationId,
        file: &FileAttachment,
    ) -> Result<ConversationRecord> {
        self.0.add_file(id, file).await
    }

    async fn remove_file(
        &self,
        id: &ConversationId,
        file_id: &FileId,
    ) -> Result<Option<ConversationRecord>> {
        self.0.remove_file(id, file_id).await
    }

    async fn begin_delete(&self, id: &ConversationId) -> Result<Option<Vec<FileAttachment>>> {
        self.0.begin_delete(id).await
    }

    async fn delete(&self, id: &ConversationId) -> Result<bool> {
        self.0.delete(id).await
    }

    async fn search(
        &self,
        user_id: &UserId,
        query: &str,
        options: &SearchOptions,
    ) -> Result<Page<SearchHit>> {
        self.0.search(user_id, query, options).await
    }
}

/// A shared files backend: every method is the wrapped backend's, unchanged.
#[derive(Debug, Clone)]
pub(crate) struct SharedFiles(pub(crate) Arc<dyn FilesBackend>);

#[async_trait]
#[deny(clippy::missing_trait_methods)]
impl FilesBackend for SharedFiles {
    fn capabilities(&self) -> FilesCapabilities {
        self.0.capabilities()
    }

    async fn upload_stream(
        &self,
        key: &StorageKey,
        data: ByteStream,
        content_type: &ContentType,
    ) -> Result<u64> {
        self.0.upload_stream(key, data, content_type).await
    }

    async fn download_stream(&self, key: &StorageKey) -> Result<Option<ByteStream>> {
        self.0.download_stream(key).await
    }

    async fn head(&self, key: &StorageKey) -> Result<Option<ObjectMeta>> {
        self.0.head(key).await
    }

    async fn delete(&self, key: &StorageKey) -> Result<bool> {
        self.0.delete(key).await
    }

    async fn signed_url(
        &self,
        key: &StorageKey,
        expires_in: Duration,
        download_filename: Option<&str>,
    ) -> Result<String> {
        self.0.signed_url(key, expires_in, download_filename).await
    }
}
