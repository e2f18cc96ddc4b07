//! Live replies within one process: the writer of a reply (and a stop) wakes the
//! followers of that reply sharing its [`ChatVault`], so that they read each checkpoint at
//! once instead of at their next poll; and stopping a reply.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::oneshot;

use super::chat_vault::{ChatVault, settle};
use super::conversation::Conversation;
use crate::error::{Error, ErrorKind, Result};
use crate::ids::{ConversationId, MessageId};
use crate::model::{ConversationRecord, Message, MessageStatus, MessageUpdate, now};

/// How many times [`ChatVault::stop_reply`] re-reads a reply whose writer checkpointed
/// between its read and its write.
const STOP_ATTEMPTS: usize = 8;

/// A reply, as the notifier knows it.
type Key = (ConversationId, MessageId);

/// The followers waiting for a checkpoint, by reply. Each waits once: a wake-up removes it,
/// and it subscribes again before its next read.
#[derive(Default)]
pub(super) struct Live {
    waiting: Mutex<Waiting>,
}

#[derive(Default)]
struct Waiting {
    by_reply: HashMap<Key, Vec<(u64, oneshot::Sender<()>)>>,
    next: u64,
}

impl std::fmt::Debug for Live {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let waiting = self.waiting.lock().unwrap_or_else(PoisonError::into_inner);
        f.debug_struct("Live")
            .field("replies_followed", &waiting.by_reply.len())
            .finish()
    }
}

impl Live {
    /// A wake-up for the next time the reply is stored through this vault. Subscribe
    /// before reading: a checkpoint stored after the read then always wakes the follower.
    pub(super) fn subscribe(
        self: &Arc<Self>,
        conversation: &ConversationId,
        message: &MessageId,
    ) -> Subscription {
        let (wake, woken) = oneshot::channel();
        let key = (conversation.clone(), message.clone());
        let mut waiting = self.waiting.lock().unwrap_or_else(PoisonError::into_inner);
        let id = waiting.next;
        waiting.next = id.wrapping_add(1);
        waiting
            .by_reply
            .entry(key.clone())
            .or_default()
            .push((id, wake));
        Subscription {
            live: Arc::clone(self),
            key,
            id,
            woken,
        }
    }

    /// Wakes every follower of the reply waiting now.
    pub(super) fn notify(&self, conversation: &ConversationId, message: &MessageId) {
        let key = (conversation.clone(), message.clone());
        let woken = {
            let mut waiting = self.waiting.lock().unwrap_or_else(PoisonError::into_inner);
            waiting.by_reply.remove(&key)
        };
        for (_, wake) in woken.into_iter().flatten() {
            let _ = wake.send(());
        }
    }
}

/// A follower's wake-up: resolves when the reply is stored through the vault; removes
/// itself from the notifier when dropped, woken or not.
pub(super) struct Subscription {
    live: Arc<Live>,
    key: Key,
    id: u64,
    woken: oneshot::Receiver<()>,
}

impl Subscription {
    /// Waits for the wake-up.
    pub(super) async fn woken(&mut self) {
        // An error means the sender was dropped without a wake-up, which the notifier
        // never does while the subscription lives; either way the follower re-reads.
        let _ = (&mut self.woken).await;
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        let mut waiting = self
            .live
            .waiting
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(list) = waiting.by_reply.get_mut(&self.key) {
            list.retain(|(id, _)| *id != self.id);
            if list.is_empty() {
                waiting.by_reply.remove(&self.key);
            }
        }
    }
}

impl ChatVault {
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
        Ok(self.stop(conversation_id, message_id).await?.0)
    }

    /// [`stop_reply`](Self::stop_reply), with the conversation's record when the stop
    /// changed it.
    async fn stop(
        &self,
        conversation_id: &ConversationId,
        message_id: &MessageId,
    ) -> Result<(Message, Option<ConversationRecord>)> {
        let mut last_conflict = None;
        for _ in 0..STOP_ATTEMPTS {
            let mut message = self
                .messages
                .message(conversation_id, message_id)
                .await?
                .ok_or_else(|| Error::message_not_found(message_id.as_str()))?;
            settle(&mut message, now());
            if !message.status.is_in_progress() {
                return Ok((message, None));
            }
            let update = MessageUpdate {
                status: Some(MessageStatus::Stopped),
                ..Default::default()
            };
            match self
                .update_message(conversation_id, message_id, message.revision, &update)
                .await
            {
                Ok(updated) => {
                    self.live.notify(conversation_id, message_id);
                    return Ok((updated.message, Some(updated.record)));
                }
                // The writer checkpointed in between: read it again.
                Err(e) if e.kind() == ErrorKind::Conflict => last_conflict = Some(e),
                Err(e) => return Err(e),
            }
        }
        Err(last_conflict.unwrap_or_else(|| Error::Conflict {
            message: format!("reply {message_id} kept changing while it was being stopped"),
        }))
    }
}

impl Conversation {
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
        let (stopped, record) = self.vault.stop(&self.record.id, message_id).await?;
        if let Some(record) = record {
            self.record = record;
        }
        Ok(stopped)
    }
}
