//! [`Heads`]: the conversation item as readers and writers see it: decoded, remembered
//! in the seen cache (which it owns), and [`Error::NotFound`] when it is missing or being
//! deleted.

use std::fmt;
use std::sync::Arc;

use chatvault_core::backend::{
    ConversationHead, ConversationId, ConversationRecord, Error, FileAttachment, Result,
};

use crate::dynamo::layout::item::{Item, is_deleting};
use crate::dynamo::seen::{Seen, SeenCache};
use crate::dynamo::table::Table;

/// Conversation items read, decoded and remembered: what every other part starts from.
#[derive(Clone)]
pub(crate) struct Heads {
    table: Table,
    /// Conversations as last written or read, shared by clones.
    seen: Arc<SeenCache>,
}

impl fmt::Debug for Heads {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.seen.fmt(f)
    }
}

impl Heads {
    /// The heads of `table`'s conversations, with a seen cache of `seen_cache_bytes`.
    pub(crate) fn new(table: Table, seen_cache_bytes: u64) -> Self {
        Heads {
            table,
            seen: Arc::new(SeenCache::new(seen_cache_bytes)),
        }
    }

    /// Remembers the conversation as a write leaves it (see [`SeenCache::remember`]).
    pub(crate) fn remember(&self, seen: Seen) {
        self.seen.remember(seen);
    }

    /// Forgets a conversation (deleted, or being deleted).
    pub(crate) fn forget(&self, id: &ConversationId) {
        self.seen.forget(id);
    }

    /// The conversation item read by a writer, decoded and remembered: a missing item, or
    /// one carrying the tombstone of a deletion in progress, is [`Error::NotFound`].
    pub(crate) fn seen_with_files(
        &self,
        id: &ConversationId,
        item: Option<Item>,
    ) -> Result<(Seen, Vec<FileAttachment>)> {
        match item {
            Some(item) if !is_deleting(&item) => {
                let (seen, files) = Seen::from_item(&item)?;
                self.seen.remember(seen.clone());
                Ok((seen, files))
            }
            _ => {
                self.seen.forget(id);
                Err(Error::conversation_not_found(id.as_str()))
            }
        }
    }

    /// [`seen_with_files`](Self::seen_with_files), as a reader of the record sees it.
    fn writable(
        &self,
        id: &ConversationId,
        item: Option<Item>,
    ) -> Result<(ConversationRecord, Vec<FileAttachment>)> {
        let (seen, files) = self.seen_with_files(id, item)?;
        Ok((seen.record, files))
    }

    /// [`seen_with_files`](Self::seen_with_files), as what a write of messages needs.
    pub(crate) fn seen_writable(&self, id: &ConversationId, item: Option<Item>) -> Result<Seen> {
        Ok(self.seen_with_files(id, item)?.0)
    }

    /// `head`: the conversation's record and attachments (one consistent `GetItem`),
    /// `None` when it is missing or being deleted.
    pub(crate) async fn read_head(&self, id: &ConversationId) -> Result<Option<ConversationHead>> {
        match self.read_writable(id).await {
            Ok((record, files)) => Ok(Some(ConversationHead::new(record, files))),
            Err(Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The conversation as a writer sees it: [`Error::NotFound`] when it is missing or
    /// being deleted.
    pub(crate) async fn read_writable(
        &self,
        id: &ConversationId,
    ) -> Result<(ConversationRecord, Vec<FileAttachment>)> {
        let item = self.table.read_item(id).await?;
        self.writable(id, item)
    }

    /// What an append needs of the conversation, read: [`Error::NotFound`] when it is
    /// missing or being deleted.
    pub(crate) async fn read_seen(&self, id: &ConversationId) -> Result<Seen> {
        let item = self.table.read_item(id).await?;
        self.seen_writable(id, item)
    }

    /// The conversation as this backend last saw it, or read now when it has not seen
    /// it; with whether it was read now.
    pub(crate) async fn seen_or_read(&self, id: &ConversationId) -> Result<(Seen, bool)> {
        match self.seen.get(id) {
            Some(seen) => Ok((seen, false)),
            None => Ok((self.read_seen(id).await?, true)),
        }
    }

    /// The conversation to write against again after a failed write: `latest`, as
    /// DynamoDB returned it with the failure, at once (on an equal footing with the writer
    /// that won, which knows the version it wrote: sleeping first would make it stale
    /// again); or, after a conflict (or with no item returned), read after a backoff.
    pub(crate) async fn retry_from(
        &self,
        id: &ConversationId,
        latest: Option<Item>,
        attempt: u32,
    ) -> Result<Seen> {
        match latest {
            Some(item) => self.seen_writable(id, Some(item)),
            None => {
                Table::pause(attempt).await;
                self.read_seen(id).await
            }
        }
    }
}
