//! A backend behind an [`Arc`] is a backend: `Arc<dyn MessagesBackend>` (or `Arc<B>`) can
//! be given wherever a backend is taken by type, e.g. to a wrapper such as
//! chatvault-crypt's, with every method the shared backend's, unchanged.

use std::sync::Arc;
use std::time::Duration;

use super::{
    Appended, ByteStream, ContentType, ConversationHead, ConversationId, ConversationPatch,
    ConversationRecord, ConversationSummary, FileAttachment, FileId, FilesBackend,
    FilesCapabilities, ListOptions, Message, MessageId, MessageRange, MessageUpdate,
    MessageUpdated, MessagesBackend, MessagesCapabilities, NewMessage, ObjectMeta, Page, PageLimit,
    Result, SearchHit, SearchOptions, StorageKey, UserId, async_trait,
};

/// Every method is the shared backend's.
#[async_trait]
#[deny(clippy::missing_trait_methods)]
impl<T: MessagesBackend + ?Sized> MessagesBackend for Arc<T> {
    fn capabilities(&self) -> MessagesCapabilities {
        (**self).capabilities()
    }

    async fn create(&self, record: &ConversationRecord) -> Result<()> {
        (**self).create(record).await
    }

    async fn head(&self, id: &ConversationId) -> Result<Option<ConversationHead>> {
        (**self).head(id).await
    }

    async fn append_messages_as(
        &self,
        owner: Option<&UserId>,
        id: &ConversationId,
        messages: Vec<NewMessage>,
    ) -> Result<Appended> {
        (**self).append_messages_as(owner, id, messages).await
    }

    async fn update_message(
        &self,
        id: &ConversationId,
        message_id: &MessageId,
        expected_revision: u64,
        update: &MessageUpdate,
    ) -> Result<MessageUpdated> {
        (**self)
            .update_message(id, message_id, expected_revision, update)
            .await
    }

    async fn message(
        &self,
        id: &ConversationId,
        message_id: &MessageId,
    ) -> Result<Option<Message>> {
        (**self).message(id, message_id).await
    }

    async fn messages(&self, id: &ConversationId, range: &MessageRange) -> Result<Page<Message>> {
        (**self).messages(id, range).await
    }

    async fn list_conversations(
        &self,
        user_id: Option<&UserId>,
        options: &ListOptions,
    ) -> Result<Page<ConversationSummary>> {
        (**self).list_conversations(user_id, options).await
    }

    async fn update(
        &self,
        id: &ConversationId,
        patch: &ConversationPatch,
    ) -> Result<ConversationRecord> {
        (**self).update(id, patch).await
    }

    async fn add_file(
        &self,
        id: &ConversationId,
        file: &FileAttachment,
    ) -> Result<ConversationRecord> {
        (**self).add_file(id, file).await
    }

    async fn remove_file(
        &self,
        id: &ConversationId,
        file_id: &FileId,
    ) -> Result<Option<ConversationRecord>> {
        (**self).remove_file(id, file_id).await
    }

    async fn begin_delete(&self, id: &ConversationId) -> Result<Option<Vec<FileAttachment>>> {
        (**self).begin_delete(id).await
    }

    async fn delete(&self, id: &ConversationId) -> Result<bool> {
        (**self).delete(id).await
    }

    async fn list_deleting(
        &self,
        user_id: Option<&UserId>,
        limit: PageLimit,
    ) -> Result<Vec<ConversationId>> {
        (**self).list_deleting(user_id, limit).await
    }

    async fn search(
        &self,
        user_id: &UserId,
        query: &str,
        options: &SearchOptions,
    ) -> Result<Page<SearchHit>> {
        (**self).search(user_id, query, options).await
    }
}

/// Every method is the shared backend's.
#[async_trait]
#[deny(clippy::missing_trait_methods)]
impl<T: FilesBackend + ?Sized> FilesBackend for Arc<T> {
    fn capabilities(&self) -> FilesCapabilities {
        (**self).capabilities()
    }

    async fn upload_stream(
        &self,
        key: &StorageKey,
        data: ByteStream,
        content_type: &ContentType,
    ) -> Result<u64> {
        (**self).upload_stream(key, data, content_type).await
    }

    async fn download_stream(&self, key: &StorageKey) -> Result<Option<ByteStream>> {
        (**self).download_stream(key).await
    }

    async fn head(&self, key: &StorageKey) -> Result<Option<ObjectMeta>> {
        (**self).head(key).await
    }

    async fn delete(&self, key: &StorageKey) -> Result<bool> {
        (**self).delete(key).await
    }

    async fn signed_url(
        &self,
        key: &StorageKey,
        expires_in: Duration,
        download_filename: Option<&str>,
    ) -> Result<String> {
        (**self)
            .signed_url(key, expires_in, download_filename)
            .await
    }
}
