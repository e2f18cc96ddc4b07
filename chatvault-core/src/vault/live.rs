//! Live replies within one process: the writer of a reply (and a stop) wakes the
//! followers of that reply sharing its [`ChatVault`], so that they read each checkpoint at
//! once instead of at their next poll; and stopping a reply.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::oneshot;

use super::chat_vault::{ChatVault, settle};
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

/// [`ChatVault::stop_reply`], with the conversation's record when the stop
/// changed it.
pub(super) async fn stop(
    vault: &ChatVault,
    conversation_id: &ConversationId,
    message_id: &MessageId,
) -> Result<(Message, Option<ConversationRecord>)> {
    let mut last_conflict = None;
    for _ in 0..STOP_ATTEMPTS {
        let mut message = vault
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
        match vault
            .update_message(conversation_id, message_id, message.revision, &update)
            .await
        {
            Ok(updated) => {
                vault.live.notify(conversation_id, message_id);
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
