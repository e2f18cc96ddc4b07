//! [`LocalMessages`]: conversations in append-only logs on the local file system.
//!
//! The parts, each owning its state: [`store`] (directories, the listing glue),
//! [`whole`] (whole-conversation operations), [`changes`] (changes to one conversation),
//! [`deleting`] (the markers of conversations marked for deletion), [`group`] (group
//! commit), [`ids`] (message id maps), [`conversation`] (one
//! conversation's log: open, replay, commit, index, checkpoint, 0.1 upgrade, repair),
//! [`generation`] (a log written whole, as a new generation), [`rewrite`] (the log
//! rewritten without superseded versions after a redaction), [`format`](mod@format) (the
//! files beside the log records), [`repair`] (every derived file checked and rebuilt on
//! request), and [`backend`] (the trait impl).

mod backend;
mod changes;
mod conversation;
mod deleting;
mod format;
mod generation;
mod group;
mod ids;
mod repair;
mod rewrite;
mod store;
mod whole;

use std::path::Path;
use std::sync::Arc;

use chatvault_core::backend::{ConversationId, Result, StoredConversation, UserId};

use crate::fsutil::blocking;
use store::Store;

pub use conversation::MAX_PAGE;
pub use format::FORMAT_VERSION;
pub use repair::{RepairItem, RepairReport};

/// Conversations stored in a directory on the local file system: durable, crash-safe,
/// safe to share between threads, tasks and processes.
///
/// Each conversation is a directory holding an append-only log (the truth: messages and
/// every state change), a seq index and a checkpoint; listings go through an ordered
/// index. See the [crate documentation](crate) for the layout and the guarantees. Every
/// method runs its file I/O on tokio's blocking pool, so it needs a tokio runtime.
///
/// Clones share the same store.
#[derive(Clone, Debug)]
pub struct LocalMessages {
    store: Arc<Store>,
}

impl LocalMessages {
    /// Opens (creating it if needed) the store in directory `root`.
    ///
    /// Removes leftovers of interrupted deletes, and temporary files more than a day old.
    /// Fails if `root` holds a store written by a newer, incompatible release.
    pub fn open(root: impl AsRef<Path>) -> Result<Self> {
        Ok(LocalMessages {
            store: Arc::new(Store::open(root.as_ref())?),
        })
    }

    /// The directory this store lives in.
    pub fn root(&self) -> &Path {
        &self.store.root
    }

    /// Stores many new conversations at once, with two flushes in all instead of several
    /// per conversation: for imports and migrations.
    ///
    /// Each conversation is written whole into the store's `tmp/`, everything is flushed,
    /// then each is renamed into place. Fails with `AlreadyExists` (storing nothing more)
    /// at the first id already taken; the conversations before it are stored. Returns how
    /// many were stored. Records are validated like [`LocalMessages::save`]'s.
    pub async fn import(&self, conversations: Vec<StoredConversation>) -> Result<u64> {
        self.run(move |s| s.whole().import(conversations)).await
    }

    async fn run<T, F>(&self, f: F) -> Result<T>
    where
        F: FnOnce(&Store) -> Result<T> + Send + 'static,
        T: Send + 'static,
    {
        let store = Arc::clone(&self.store);
        blocking(move || f(&store)).await
    }

    /// A whole conversation: record, every message, attachments (`None` when it does not
    /// exist or is being deleted). Reads the whole log: for exports and tests.
    pub async fn get(&self, id: &ConversationId) -> Result<Option<StoredConversation>> {
        let id = id.clone();
        self.run(move |s| s.whole().get(&id)).await
    }

    /// Stores a whole conversation, replacing any with its id (a new log generation,
    /// switched to atomically). Its messages must have seq 1, 2, 3, ... and its record must
    /// count them (`InvalidInput` otherwise).
    pub async fn save(&self, conversation: &StoredConversation) -> Result<()> {
        let conversation = conversation.clone();
        self.run(move |s| s.whole().save(&conversation)).await
    }

    /// Every conversation of `user`, whole (see [`get`](Self::get)).
    pub async fn get_by_user(&self, user: &UserId) -> Result<Vec<StoredConversation>> {
        let user = user.to_string();
        self.run(move |s| s.get_by_user(&user)).await
    }
}
