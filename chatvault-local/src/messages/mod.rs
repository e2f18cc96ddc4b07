//! [`LocalMessages`]: conversations in append-only logs on the local file system.
//!
//! [`LocalMessages`]' own methods are all here, each a thin call into the parts, each
//! owning its state. The parts are layered, each using only those below it:
//!
//! - at the bottom, [`format`](mod@format) (the files beside the log records, and the
//!   names of a conversation's directory and files), [`report`] (what a repair
//!   reports) and [`group`] (group commit);
//! - [`conversation`] (one conversation's log: open, replay, commit, index,
//!   checkpoint, 0.1 upgrade, repair), then [`ids`] (message id maps), [`generation`]
//!   (a log written whole, as a new generation) and [`rewrite`] (the log rewritten
//!   without superseded versions after a redaction);
//! - [`store`] (directories, conversations' locks, the listing glue);
//! - the operations on a store, each given it: [`deleting`] (the markers of
//!   conversations marked for deletion, for
//!   [`list_deleting`](LocalMessages::list_deleting)), [`whole`] (whole-conversation
//!   operations), [`changes`] (changes to one conversation) and [`repair`] (every
//!   derived file checked and rebuilt on request);
//! - on top, [`LocalMessages`], holding the store, and [`backend`] (the trait impl).

mod backend;
mod changes;
mod conversation;
mod deleting;
mod format;
mod generation;
mod group;
mod ids;
mod repair;
mod report;
mod rewrite;
mod store;
mod whole;

use std::path::Path;
use std::sync::Arc;

use chatvault_core::backend::{ConversationId, PageLimit, Result, StoredConversation, UserId};

use crate::fsutil::blocking;
use deleting::Markers;
use store::Store;
use whole::Whole;

pub use conversation::MAX_PAGE;
pub use format::FORMAT_VERSION;
pub use report::{RepairItem, RepairReport};

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
        self.run(move |s| Whole::new(s).import(conversations)).await
    }

    /// Runs `f` on the store on tokio's blocking pool.
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
        self.run(move |s| Whole::new(s).get(&id)).await
    }

    /// Stores a whole conversation, replacing any with its id (a new log generation,
    /// switched to atomically). Its messages must have seq 1, 2, 3, ... and its record must
    /// count them (`InvalidInput` otherwise).
    pub async fn save(&self, conversation: &StoredConversation) -> Result<()> {
        let conversation = conversation.clone();
        self.run(move |s| Whole::new(s).save(&conversation)).await
    }

    /// Every conversation of `user`, whole (see [`get`](Self::get)).
    pub async fn get_by_user(&self, user: &UserId) -> Result<Vec<StoredConversation>> {
        let user = user.to_string();
        self.run(move |s| Whole::new(s).get_by_user(&user)).await
    }

    /// Checks every derived file of the store against the logs, and (unless `dry_run`)
    /// writes again the ones that are wrong: each conversation's checkpoint
    /// (`header.json`) and seq index, its lock file, and the listing index. Never changes
    /// user data: a conversation whose log is damaged is reported in
    /// [`RepairReport::damaged`] and left as it is. An unfinished record after a log's
    /// last one (a write that never returned) is cut off, as the next write to that
    /// conversation would. A rewrite of a log after a redaction that was interrupted
    /// (its `rewrite` mark is still there) is finished, as the next operation on that
    /// conversation would: the versions the redaction superseded are removed. A
    /// conversation marked for deletion without its marker in `deleting/` (marked by an
    /// earlier release) gets it, so that `list_deleting` finds it; a marker whose
    /// conversation is gone is removed.
    ///
    /// The store rebuilds these files by itself when a read finds them damaged; this
    /// does it for all of them at once, and says what it found. Each conversation is
    /// checked under its exclusive lock (taking a lock creates a missing lock file, also
    /// in a dry run, as every operation does). Run it on a quiet store: the listing
    /// index is compared with the conversations as they are read, so a change made
    /// meanwhile may be reported as a disagreement (and only costs a rebuild).
    pub async fn repair(&self, dry_run: bool) -> Result<RepairReport> {
        self.run(move |s| repair::repair(s, dry_run)).await
    }

    /// At most `limit` conversations marked by `begin_delete` and not yet deleted, of
    /// `user_id` (every user's, and those of no user, with `None`), in no particular
    /// order. `delete` takes a conversation off this list, so a caller that finishes each
    /// conversation it gets calls again until the answer is empty.
    ///
    /// Exact after any crash for conversations marked by this release (each has a
    /// marker in `deleting/`, written before its mark); one marked by an earlier release
    /// has no marker and is not found until `begin_delete` is called on it again or
    /// [`repair`](Self::repair) runs. Reads the `deleting/` directory and the checkpoint
    /// of each marker's conversation (taking its exclusive lock): no message, and no
    /// conversation without a marker. Stale markers (left by a crash before a mark was
    /// committed, or after a delete's commit) are removed on the way.
    pub(crate) async fn list_deleting(
        &self,
        user_id: Option<&UserId>,
        limit: PageLimit,
    ) -> Result<Vec<ConversationId>> {
        let user = user_id.cloned();
        self.run(move |s| Markers::new(s).list(user.as_ref(), limit.get()))
            .await
    }
}
