//! The [`MessagesBackend`] impl: one call into the store per method, on the blocking pool.

use chatvault_core::backend::*;

use super::LocalMessages;
use super::changes::Changes;
use super::whole::Whole;
use crate::error::BACKEND;

#[async_trait]
#[deny(clippy::missing_trait_methods)]
impl MessagesBackend for LocalMessages {
    fn capabilities(&self) -> MessagesCapabilities {
        // Appends from any number of tasks and processes; no search index.
        MessagesCapabilities::full().with_search(false)
    }

    async fn create(&self, record: &ConversationRecord) -> Result<()> {
        let record = record.clone();
        self.run(move |s| Whole::new(s).create(&record)).await
    }

    async fn head(&self, id: &ConversationId) -> Result<Option<ConversationHead>> {
        let id = id.clone();
        self.run(move |s| Changes::new(s).head(&id)).await
    }

    async fn append_messages_as(
        &self,
        owner: Option<&UserId>,
        id: &ConversationId,
        messages: Vec<NewMessage>,
    ) -> Result<Appended> {
        let (owner, id) = (owner.cloned(), id.clone());
        self.run(move |s| Changes::new(s).append(owner.as_ref(), &id, messages))
            .await
    }

    async fn update_message(
        &self,
        id: &ConversationId,
        message_id: &MessageId,
        expected_revision: u64,
        update: &MessageUpdate,
    ) -> Result<MessageUpdated> {
        let id = id.clone();
        let message_id = message_id.clone();
        let update = update.clone();
        self.run(move |s| {
            Changes::new(s).update_message(&id, &message_id, expected_revision, &update)
        })
        .await
    }

    async fn message(
        &self,
        id: &ConversationId,
        message_id: &MessageId,
    ) -> Result<Option<Message>> {
        let id = id.clone();
        let message_id = message_id.clone();
        self.run(move |s| Changes::new(s).message(&id, &message_id))
            .await
    }

    async fn messages(&self, id: &ConversationId, range: &MessageRange) -> Result<Page<Message>> {
        let id = id.clone();
        let range = range.clone();
        self.run(move |s| Changes::new(s).messages(&id, &range))
            .await
    }

    async fn list_conversations(
        &self,
        user_id: Option<&UserId>,
        options: &ListOptions,
    ) -> Result<Page<ConversationSummary>> {
        let user = user_id.map(UserId::to_string);
        let options = options.clone();
        self.run(move |s| s.list(user.as_deref(), &options)).await
    }

    async fn update(
        &self,
        id: &ConversationId,
        patch: &ConversationPatch,
    ) -> Result<ConversationRecord> {
        let id = id.clone();
        let patch = patch.clone();
        self.run(move |s| Changes::new(s).update(&id, &patch)).await
    }

    async fn add_file(
        &self,
        id: &ConversationId,
        file: &FileAttachment,
    ) -> Result<ConversationRecord> {
        let id = id.clone();
        let file = file.clone();
        self.run(move |s| Changes::new(s).add_file(&id, file)).await
    }

    async fn remove_file(
        &self,
        id: &ConversationId,
        file_id: &FileId,
    ) -> Result<Option<ConversationRecord>> {
        let id = id.clone();
        let file_id = file_id.clone();
        self.run(move |s| Changes::new(s).remove_file(&id, &file_id))
            .await
    }

    async fn begin_delete(&self, id: &ConversationId) -> Result<Option<Vec<FileAttachment>>> {
        let id = id.clone();
        self.run(move |s| Changes::new(s).begin_delete(&id)).await
    }

    async fn delete(&self, id: &ConversationId) -> Result<bool> {
        let id = id.clone();
        self.run(move |s| Whole::new(s).delete(&id)).await
    }

    async fn list_deleting(
        &self,
        user_id: Option<&UserId>,
        limit: PageLimit,
    ) -> Result<Vec<ConversationId>> {
        LocalMessages::list_deleting(self, user_id, limit).await
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
