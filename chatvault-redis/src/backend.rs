//! The [`MessagesBackend`] implementation: one call per method.

use chatvault_core::backend::*;

use crate::conn::BACKEND;
use crate::messages::RedisMessages;

#[async_trait]
#[deny(clippy::missing_trait_methods)]
impl MessagesBackend for RedisMessages {
    fn capabilities(&self) -> MessagesCapabilities {
        // No full-text search (plain Redis has none); listing every user's conversations
        // as the builder says.
        MessagesCapabilities::full()
            .with_search(false)
            .with_list_all(self.listings().lists_all())
    }

    async fn create(&self, record: &ConversationRecord) -> Result<()> {
        self.writer().create(record).await
    }

    async fn head(&self, id: &ConversationId) -> Result<Option<ConversationHead>> {
        self.reader().head(id).await
    }

    async fn append_messages_as(
        &self,
        owner: Option<&UserId>,
        id: &ConversationId,
        messages: Vec<NewMessage>,
    ) -> Result<Appended> {
        self.appender().append(owner, id, messages).await
    }

    async fn update_message(
        &self,
        id: &ConversationId,
        message_id: &MessageId,
        expected_revision: u64,
        update: &MessageUpdate,
    ) -> Result<MessageUpdated> {
        self.writer()
            .update_message(id, message_id, expected_revision, update)
            .await
    }

    async fn message(
        &self,
        id: &ConversationId,
        message_id: &MessageId,
    ) -> Result<Option<Message>> {
        self.reader().message(id, message_id).await
    }

    async fn messages(&self, id: &ConversationId, range: &MessageRange) -> Result<Page<Message>> {
        self.reader().messages(id, range).await
    }

    async fn list_conversations(
        &self,
        user_id: Option<&UserId>,
        options: &ListOptions,
    ) -> Result<Page<ConversationSummary>> {
        self.listings().page(user_id, options).await
    }

    async fn update(
        &self,
        id: &ConversationId,
        patch: &ConversationPatch,
    ) -> Result<ConversationRecord> {
        self.writer().patch(id, patch).await
    }

    async fn add_file(
        &self,
        id: &ConversationId,
        file: &FileAttachment,
    ) -> Result<ConversationRecord> {
        self.writer().attach(id, file).await
    }

    async fn remove_file(
        &self,
        id: &ConversationId,
        file_id: &FileId,
    ) -> Result<Option<ConversationRecord>> {
        self.writer().detach(id, file_id).await
    }

    async fn begin_delete(&self, id: &ConversationId) -> Result<Option<Vec<FileAttachment>>> {
        self.deleter().begin(id).await
    }

    async fn delete(&self, id: &ConversationId) -> Result<bool> {
        self.deleter().delete(id).await
    }

    async fn list_deleting(
        &self,
        user_id: Option<&UserId>,
        limit: PageLimit,
    ) -> Result<Vec<ConversationId>> {
        self.markers().list_deleting(user_id, limit).await
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
