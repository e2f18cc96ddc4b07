//! The Python library's four-method backend shape, and an adapter that makes a full
//! [`MessagesBackend`] of it.
//!
//! [`SimpleBackend`] is the fastest way to a working prototype over any store that can save
//! and load a whole conversation (a JSON file per conversation, a key-value store, a
//! document database). [`SimpleAdapter`] implements every [`MessagesBackend`] method over
//! it, with exactly these guarantees:
//!
//! - **Atomic within one adapter value.** Every operation holds one adapter-wide async lock
//!   while it reads and rewrites a conversation, so concurrent tasks sharing the adapter
//!   (one `Arc`, one process) never lose, duplicate or reorder a message. The lock is fair
//!   (first come, first served: tokio's runtime-agnostic `Mutex`), so a delete is never
//!   starved by a stream of appends or attachments.
//! - **Not atomic across processes**, nor across two adapters over the same store: each
//!   rewrites whole conversations, and the last writer wins. Its capabilities say so
//!   (`multi_process: false`).
//! - **Cost grows with the conversation**: every append, update and read loads (and writes)
//!   the whole conversation; listing loads every conversation of the user; there is no
//!   listing of all users and no search.
//!
//! When a prototype outgrows this, implement [`MessagesBackend`] directly: one method at a
//! time, each with the store's own atomic write (a conditional put, a transaction, a file
//! lock), as `chatvault-memory` and `chatvault-local` do.
//!
//! ```
//! use std::collections::HashMap;
//! use std::sync::Mutex;
//!
//! use chatvault_core::backend::{
//!     ConversationId, Result, SimpleAdapter, SimpleBackend, StoredConversation, UserId,
//!     async_trait,
//! };
//! use chatvault_core::{ChatVault, Role};
//! # use chatvault_memory::MemoryFiles;
//!
//! /// Conversations in a HashMap: the smallest possible backend.
//! #[derive(Debug, Default)]
//! struct MapStore(Mutex<HashMap<ConversationId, StoredConversation>>);
//!
//! #[async_trait]
//! impl SimpleBackend for MapStore {
//!     async fn save(&self, conversation: &StoredConversation) -> Result<()> {
//!         let mut map = self.0.lock().expect("not poisoned");
//!         map.insert(conversation.record.id.clone(), conversation.clone());
//!         Ok(())
//!     }
//!     async fn get(&self, id: &ConversationId) -> Result<Option<StoredConversation>> {
//!         Ok(self.0.lock().expect("not poisoned").get(id).cloned())
//!     }
//!     async fn get_by_user(&self, user_id: &UserId) -> Result<Vec<StoredConversation>> {
//!         let map = self.0.lock().expect("not poisoned");
//!         Ok(map
//!             .values()
//!             .filter(|c| c.record.user_id.as_ref() == Some(user_id))
//!             .cloned()
//!             .collect())
//!     }
//!     async fn delete(&self, id: &ConversationId) -> Result<bool> {
//!         Ok(self.0.lock().expect("not poisoned").remove(id).is_some())
//!     }
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> chatvault_core::Result<()> {
//! let vault = ChatVault::new(SimpleAdapter::new(MapStore::default()), MemoryFiles::new());
//! let mut chat = vault.create_conversation(None).await?;
//! chat.add_message(Role::User, "Hello!").await?;
//! assert_eq!(chat.messages().await?.len(), 1);
//! # Ok(()) }
//! ```

use std::fmt::Debug;

use async_trait::async_trait;
use tokio::sync::Mutex;

use super::capabilities::MessagesCapabilities;
use super::rules::{apply_add_file, apply_remove_file, check_owner, check_replay, paginate};
use super::traits::MessagesBackend;
use crate::error::{Error, Result};
use crate::ids::{ConversationId, FileId, MessageId, UserId};
use crate::model::{
    Appended, ConversationHead, ConversationPatch, ConversationRecord, ConversationSummary,
    FileAttachment, ListOptions, Message, MessageRange, MessageUpdate, MessageUpdated, NewMessage,
    Page, PageLimit, SearchHit, SearchOptions, StoredConversation, now,
};

/// A store that saves and loads whole conversations: the Python library's backend shape.
///
/// Wrap it in [`SimpleAdapter`] to use it as a [`MessagesBackend`]; see the
/// [module docs](crate::backend::simple) for what that guarantees.
#[async_trait]
pub trait SimpleBackend: Send + Sync + Debug + 'static {
    /// Stores the whole conversation, replacing any stored one with the same id.
    async fn save(&self, conversation: &StoredConversation) -> Result<()>;

    /// The whole conversation with this id, or `None`.
    async fn get(&self, id: &ConversationId) -> Result<Option<StoredConversation>>;

    /// Every conversation of this user, whole, in any order.
    async fn get_by_user(&self, user_id: &UserId) -> Result<Vec<StoredConversation>>;

    /// Deletes the conversation; returns whether it existed.
    async fn delete(&self, id: &ConversationId) -> Result<bool>;
}

/// A [`MessagesBackend`] over a [`SimpleBackend`]: atomic within this value (one lock for
/// every operation), not across processes. See the [module docs](crate::backend::simple).
#[derive(Debug)]
pub struct SimpleAdapter<B> {
    inner: B,
    lock: Mutex<()>,
}

impl<B: SimpleBackend> SimpleAdapter<B> {
    /// Wraps `inner`.
    pub fn new(inner: B) -> Self {
        SimpleAdapter {
            inner,
            lock: Mutex::new(()),
        }
    }

    /// The wrapped store.
    pub fn inner(&self) -> &B {
        &self.inner
    }

    /// The live (not being deleted) conversation, or NotFound.
    async fn live(&self, id: &ConversationId) -> Result<StoredConversation> {
        match self.inner.get(id).await? {
            Some(c) if !c.deleting => Ok(c),
            _ => Err(Error::conversation_not_found(id.as_str())),
        }
    }
}

#[async_trait]
#[deny(clippy::missing_trait_methods)]
impl<B: SimpleBackend> MessagesBackend for SimpleAdapter<B> {
    fn capabilities(&self) -> MessagesCapabilities {
        MessagesCapabilities::basic().with_concurrent_appends(true)
    }

    async fn create(&self, record: &ConversationRecord) -> Result<()> {
        let _guard = self.lock.lock().await;
        if self.inner.get(&record.id).await?.is_some() {
            return Err(Error::AlreadyExists {
                kind: "conversation",
                id: record.id.to_string(),
            });
        }
        self.inner
            .save(&StoredConversation::new(record.clone()))
            .await
    }

    async fn head(&self, id: &ConversationId) -> Result<Option<ConversationHead>> {
        let _guard = self.lock.lock().await;
        Ok(match self.inner.get(id).await? {
            Some(c) if !c.deleting => Some(ConversationHead {
                record: c.record,
                files: c.files,
            }),
            _ => None,
        })
    }

    async fn message(
        &self,
        id: &ConversationId,
        message_id: &MessageId,
    ) -> Result<Option<Message>> {
        let _guard = self.lock.lock().await;
        let conversation = self.live(id).await?;
        Ok(conversation
            .messages
            .into_iter()
            .find(|m| &m.id == message_id))
    }

    async fn append_messages_as(
        &self,
        owner: Option<&UserId>,
        id: &ConversationId,
        messages: Vec<NewMessage>,
    ) -> Result<Appended> {
        let _guard = self.lock.lock().await;
        let mut conversation = self.live(id).await?;
        check_owner(&conversation.record, owner)?;
        let stored = messages
            .iter()
            .map(|m| conversation.messages.iter().find(|s| s.id == m.id).cloned())
            .collect();
        if let Some(replayed) = check_replay(&messages, stored)? {
            return Ok(Appended {
                record: conversation.record,
                messages: replayed,
            });
        }
        let stored = conversation.record.apply_append(messages, now())?;
        conversation.messages.extend(stored.iter().cloned());
        self.inner.save(&conversation).await?;
        Ok(Appended {
            record: conversation.record,
            messages: stored,
        })
    }

    async fn update_message(
        &self,
        id: &ConversationId,
        message_id: &MessageId,
        expected_revision: u64,
        update: &MessageUpdate,
    ) -> Result<MessageUpdated> {
        let _guard = self.lock.lock().await;
        let mut conversation = self.live(id).await?;
        let StoredConversation {
            record, messages, ..
        } = &mut conversation;
        let message = messages
            .iter_mut()
            .find(|m| &m.id == message_id)
            .ok_or_else(|| Error::message_not_found(message_id.as_str()))?;
        message.expect_revision(expected_revision)?;
        record.apply_message_update(message, update, now());
        let out = MessageUpdated {
            record: record.clone(),
            message: message.clone(),
        };
        self.inner.save(&conversation).await?;
        Ok(out)
    }

    async fn messages(&self, id: &ConversationId, range: &MessageRange) -> Result<Page<Message>> {
        let _guard = self.lock.lock().await;
        Ok(range.select(&self.live(id).await?.messages))
    }

    async fn list_conversations(
        &self,
        user_id: Option<&UserId>,
        options: &ListOptions,
    ) -> Result<Page<ConversationSummary>> {
        let Some(user_id) = user_id else {
            return Err(Error::not_supported(
                "simple adapter",
                "listing every user's conversations",
            ));
        };
        let _guard = self.lock.lock().await;
        let summaries = self
            .inner
            .get_by_user(user_id)
            .await?
            .into_iter()
            .filter(|c| !c.deleting)
            .map(|c| c.record.summary())
            .collect();
        paginate(summaries, options)
    }

    async fn update(
        &self,
        id: &ConversationId,
        patch: &ConversationPatch,
    ) -> Result<ConversationRecord> {
        let _guard = self.lock.lock().await;
        let mut conversation = self.live(id).await?;
        if conversation.record.apply_patch(patch)? {
            self.inner.save(&conversation).await?;
        }
        Ok(conversation.record)
    }

    async fn add_file(
        &self,
        id: &ConversationId,
        file: &FileAttachment,
    ) -> Result<ConversationRecord> {
        let _guard = self.lock.lock().await;
        let mut conversation = self.live(id).await?;
        apply_add_file(&mut conversation.record, &conversation.files, file)?;
        conversation.files.push(file.clone());
        self.inner.save(&conversation).await?;
        Ok(conversation.record)
    }

    async fn remove_file(
        &self,
        id: &ConversationId,
        file_id: &FileId,
    ) -> Result<Option<ConversationRecord>> {
        let _guard = self.lock.lock().await;
        let mut conversation = self.live(id).await?;
        let Some(pos) = conversation.files.iter().position(|f| &f.id == file_id) else {
            return Ok(None);
        };
        conversation.files.remove(pos);
        apply_remove_file(&mut conversation.record);
        self.inner.save(&conversation).await?;
        Ok(Some(conversation.record))
    }

    async fn begin_delete(&self, id: &ConversationId) -> Result<Option<Vec<FileAttachment>>> {
        let _guard = self.lock.lock().await;
        let Some(mut conversation) = self.inner.get(id).await? else {
            return Ok(None);
        };
        if !conversation.deleting {
            conversation.deleting = true;
            self.inner.save(&conversation).await?;
        }
        Ok(Some(conversation.files))
    }

    async fn delete(&self, id: &ConversationId) -> Result<bool> {
        let _guard = self.lock.lock().await;
        self.inner.delete(id).await
    }

    /// One user's: [`SimpleBackend::get_by_user`], filtered. Every user's: not supported,
    /// as for listings.
    async fn list_deleting(
        &self,
        user_id: Option<&UserId>,
        limit: PageLimit,
    ) -> Result<Vec<ConversationId>> {
        let Some(user_id) = user_id else {
            return Err(Error::not_supported(
                "simple adapter",
                "listing every user's conversations",
            ));
        };
        let _guard = self.lock.lock().await;
        Ok(self
            .inner
            .get_by_user(user_id)
            .await?
            .into_iter()
            .filter(|c| c.deleting)
            .take(limit.get())
            .map(|c| c.record.id)
            .collect())
    }

    async fn search(
        &self,
        _user_id: &UserId,
        _query: &str,
        _options: &SearchOptions,
    ) -> Result<Page<SearchHit>> {
        Err(Error::search_not_supported("simple adapter"))
    }
}
