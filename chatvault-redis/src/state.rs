//! What this process last wrote to each recently written conversation, and the turn its
//! writers take.
//!
//! A write decides from the conversation as it was at a write token and sends the
//! decision with that token; the server refuses it when the token has changed. Kept here,
//! the last written state lets the next write from this process go out without reading
//! first (one round trip), and writers of this process take turns on a conversation, so
//! that they never refuse one another. A stale entry (another process wrote since) costs
//! one refused attempt, which answers with the current state. Nothing here is trusted for
//! an answer that writes nothing: such answers are decided again from a fresh read.

use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex, PoisonError};

use chatvault_core::backend::{
    Appended, ConversationId, ConversationRecord, FileAttachment, NewMessage, Result, UserId,
};

use lru::LruCache;
use tokio::sync::{Mutex as TurnLock, OwnedMutexGuard, oneshot};

/// A conversation as of one write token.
#[derive(Clone, Debug)]
pub(crate) struct Known {
    /// The write token it is at.
    pub(crate) token: String,
    /// Its record.
    pub(crate) record: ConversationRecord,
    /// Its attachments, oldest first.
    pub(crate) files: Vec<FileAttachment>,
}

/// An append waiting for its conversation's turn: what the writer that takes the turn
/// writes, and where it sends the answer.
#[derive(Debug)]
pub(crate) struct Waiting {
    /// Who the append is for (checked in the write).
    pub(crate) owner: Option<UserId>,
    /// The messages to append.
    pub(crate) messages: Vec<NewMessage>,
    /// Where the answer goes.
    pub(crate) answer: oneshot::Sender<Result<Appended>>,
}

/// What a writer holds while it has a conversation's turn: what the last writer left.
pub(crate) type Turn = OwnedMutexGuard<Option<Known>>;

/// One conversation's slot: the writers' turn, what the last of them left, and the
/// appends waiting for the turn (which its holder may write together).
#[derive(Debug, Default)]
pub(crate) struct Slot {
    turn: Arc<TurnLock<Option<Known>>>,
    waiting: Mutex<Vec<Waiting>>,
}

impl Slot {
    /// Queues an append for whoever has the turn next.
    pub(crate) fn wait(&self, append: Waiting) {
        self.waiting
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(append);
    }

    /// Takes the oldest queued appends, at most `max` of them (the rest wait for the next
    /// writer to get the turn).
    pub(crate) fn take_waiting(&self, max: usize) -> Vec<Waiting> {
        let mut waiting = self.waiting.lock().unwrap_or_else(PoisonError::into_inner);
        let n = waiting.len().min(max);
        waiting.drain(..n).collect()
    }

    /// Waits for the turn and holds it until the guard is dropped.
    pub(crate) async fn turn(&self) -> Turn {
        Arc::clone(&self.turn).lock_owned().await
    }
}

/// The slots of the most recently written conversations.
#[derive(Debug)]
pub(crate) struct Slots {
    slots: Mutex<LruCache<ConversationId, Arc<Slot>>>,
    keeps: bool,
}

impl Slots {
    /// Room for `capacity` conversations; with 0, writers still take turns (in the
    /// slots of the last 1,000) but no state is kept.
    pub(crate) fn new(capacity: usize) -> Self {
        let keeps = capacity > 0;
        let capacity = NonZeroUsize::new(capacity)
            .unwrap_or(NonZeroUsize::new(1000).unwrap_or(NonZeroUsize::MIN));
        Slots {
            slots: Mutex::new(LruCache::new(capacity)),
            keeps,
        }
    }

    /// Whether a written state is kept for the next write.
    pub(crate) fn keeps(&self) -> bool {
        self.keeps
    }

    /// `id`'s slot.
    ///
    /// A slot pushed out of the cache while in use only means that a later writer may go
    /// at the same time as its holder: the server's token check still keeps them apart.
    pub(crate) fn slot(&self, id: &ConversationId) -> Arc<Slot> {
        let mut slots = self.slots.lock().unwrap_or_else(PoisonError::into_inner);
        Arc::clone(slots.get_or_insert(id.clone(), Arc::default))
    }

    /// Waits for `id`'s turn and holds it until the guard is dropped.
    pub(crate) async fn turn(&self, id: &ConversationId) -> Turn {
        self.slot(id).turn().await
    }

    /// Forgets `id` (deleted or being deleted).
    pub(crate) async fn forget(&self, id: &ConversationId) {
        *self.turn(id).await = None;
    }
}
