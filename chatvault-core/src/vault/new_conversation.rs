//! The builder of a new conversation.

use super::chat_vault::ChatVault;
use super::conversation::Conversation;
use crate::error::{Error, Result};
use crate::ids::{ConversationId, UserId};
use crate::model::{ConversationRecord, Metadata};

/// A builder for a new conversation, from [`ChatVault::new_conversation`].
#[derive(Debug)]
#[must_use = "call .create() to store the conversation"]
pub struct NewConversation<'a> {
    pub(super) vault: &'a ChatVault,
    pub(super) id: Option<ConversationId>,
    pub(super) user_id: Option<UserId>,
    pub(super) title: Option<String>,
    pub(super) metadata: Metadata,
}

impl NewConversation<'_> {
    /// The owning user.
    pub fn user(mut self, user_id: UserId) -> Self {
        self.user_id = Some(user_id);
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
    pub fn id(mut self, id: ConversationId) -> Self {
        self.id = Some(id);
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

    /// [`create`](Self::create), or, when a conversation with the id set on this builder
    /// exists with the same owner, that conversation (a retried fork resumes into it).
    pub(super) async fn create_or_resume(self) -> Result<Conversation> {
        let vault = self.vault;
        let wanted = (self.id.clone(), self.user_id.clone());
        match self.create().await {
            Err(Error::AlreadyExists { kind, id }) => {
                let (Some(conversation_id), owner) = wanted else {
                    return Err(Error::AlreadyExists { kind, id });
                };
                match vault.get_conversation(&conversation_id).await? {
                    Some(c) if c.record.user_id == owner => Ok(c),
                    _ => Err(Error::AlreadyExists { kind, id }),
                }
            }
            other => other,
        }
    }
}
