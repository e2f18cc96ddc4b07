//! The one write a read may make: repairing a derived file it found damaged.

use chatvault_core::backend::Message;

use super::ConversationLog;
use crate::log::IndexEntry;

impl ConversationLog {
    /// Writes the seq index again from `all`, the log's every message with its entry (as
    /// a replay found them), after a read found the index damaged or missing. Entries are
    /// the same whoever writes them, so a shared lock suffices. Best effort: a failure
    /// only means the next read replays the log again.
    pub(super) fn repair_index(&self, all: &[(Message, IndexEntry)]) {
        let entries: Vec<IndexEntry> = all.iter().map(|(_, e)| *e).collect();
        if let Err(e) = self.write_index(1, &entries) {
            tracing::warn!(error = %e, "could not repair an index");
        }
    }
}
