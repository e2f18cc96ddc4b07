//! Appends from one process to one conversation take turns.
//!
//! Appends are optimistic: each is one conditional transaction against the version last
//! seen, retried from the state DynamoDB returns when another writer got there first. Among
//! writers in one process that is wasted work, and unfair: a writer whose failed answer is
//! handled a little later than the winner's success loses round after round (four tasks
//! appending in tight loops starved one of them for 50 rounds). So writers sharing a
//! `DynamoMessages` (and its clones) queue per conversation on a fair (FIFO) lock, and only
//! writers in other processes contend through DynamoDB's conditions. There the same
//! unfairness remains possible: writers in several processes appending to one
//! conversation in tight loops can make one of them lose every round until its attempts
//! run out, which it reports as [`Error::Conflict`](chatvault_core::Error::Conflict)
//! (nothing written; temporary, so a retry is safe).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError, Weak};

use chatvault_core::backend::ConversationId;
use tokio::sync::{Mutex as FairMutex, OwnedMutexGuard};

/// Prune entries nobody holds once the map grows past this many.
const PRUNE_AT: usize = 1024;

/// One FIFO lock per conversation with appends under way in this process.
#[derive(Debug, Default)]
pub(crate) struct Turns {
    locks: Mutex<HashMap<ConversationId, Weak<FairMutex<()>>>>,
}

impl Turns {
    /// Waits for this process's turn to append to `id`; the turn ends when the guard drops.
    pub(crate) async fn take(&self, id: &ConversationId) -> OwnedMutexGuard<()> {
        let lock = {
            let mut locks = self.locks.lock().unwrap_or_else(PoisonError::into_inner);
            if locks.len() >= PRUNE_AT {
                locks.retain(|_, weak| weak.strong_count() > 0);
            }
            match locks.get(id).and_then(Weak::upgrade) {
                Some(lock) => lock,
                None => {
                    let lock = Arc::new(FairMutex::new(()));
                    locks.insert(id.clone(), Arc::downgrade(&lock));
                    lock
                }
            }
        };
        lock.lock_owned().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn turns_are_per_conversation_and_released() {
        let turns = Turns::default();
        let a = ConversationId::new();
        let b = ConversationId::new();
        let held = turns.take(&a).await;
        // Another conversation is not blocked.
        let _other = turns.take(&b).await;
        // The same one is, until the guard drops.
        let waiting = tokio::time::timeout(std::time::Duration::from_millis(20), turns.take(&a));
        assert!(
            waiting.await.is_err(),
            "a second turn on one conversation waited"
        );
        drop(held);
        let _again = turns.take(&a).await;
    }
}
