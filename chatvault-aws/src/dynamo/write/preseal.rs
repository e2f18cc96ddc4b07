//! [`Presealer`]: the copy of a pending seal (the tail's first entries, marked
//! [`PENDING`]) into its chunk item and id markers, written by a task no append waits
//! for, and what this process knows of the copies it wrote, so that its next append
//! drops those entries from the tail in its own write (see
//! [`chunks`](crate::dynamo::layout::chunks)).
//!
//! Why a copy is safe to trust, and to leave behind:
//! - A copy is tagged with the conversation `version` whose tail it copied and replaces
//!   only a copy of an earlier version; a chunk a transaction sealed, or an update
//!   rewrote, has no tag and is never replaced. Entries change only by updates, which
//!   move the version, so two copies of the same version are equal.
//! - An append drops the entries only when this process wrote their copy and it is equal
//!   to the entries in the state the append's write is conditional on: any later copy is
//!   of an equal or a newer state, and a newer one is of entries no longer pending.
//! - Until the drop, readers take the tail's entries and skip chunk entries from the
//!   tail's first `seq` on; a copy left by a crash or a lost race is replaced by the next
//!   copy or seal of those entries, or deleted with the conversation.
//! - A copy finished after its conversation was deleted (or deleted and created again)
//!   is deleted by its own task, which reads the conversation item after writing.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hasher, RandomState};
use std::sync::{Arc, Mutex, PoisonError};

use chatvault_core::backend::{ConversationId, Result};
use chrono::{DateTime, Utc};

use crate::dynamo::layout::chunks::{Encoded, pending_chunk};
use crate::dynamo::layout::item::*;
use crate::dynamo::limits::BACKEND;
use crate::dynamo::seen::Seen;
use crate::dynamo::table::Table;
use crate::sdk::sdk_error;

/// The most conversations whose copies one backend tracks at once; past it, pending
/// seals are left to the append that finds the tail full (in a transaction).
const MAX_TRACKED: usize = 4096;

/// Id markers per `BatchWriteItem` of a copy (of DynamoDB's 25).
const MARKERS_PER_BATCH: usize = 8;

/// Which pending seal, with which entries: equal for copies of equal entries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Copy {
    created_at: DateTime<Utc>,
    last_seq: u64,
    count: usize,
    fingerprint: u64,
}

/// A conversation's copy: being written, or written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Slot {
    Running(Copy),
    Written(Copy),
}

/// Writes pending seals' copies in tasks and remembers those written (shared by clones).
#[derive(Clone)]
pub(crate) struct Presealer {
    table: Table,
    /// Keys the fingerprints (per process: a copy is only trusted by the process that
    /// wrote it).
    hasher: RandomState,
    slots: Arc<Mutex<HashMap<ConversationId, Slot>>>,
    /// The copy tasks started and not yet awaited by [`finish`](Self::finish).
    tasks: Arc<Mutex<Vec<tokio::task::JoinHandle<()>>>>,
}

impl Presealer {
    /// Copies into `table`.
    pub(crate) fn new(table: Table) -> Self {
        Presealer {
            table,
            hasher: RandomState::new(),
            slots: Arc::default(),
            tasks: Arc::default(),
        }
    }

    /// Waits until the copy tasks started so far have ended.
    pub(crate) async fn finish(&self) {
        loop {
            let tasks =
                std::mem::take(&mut *self.tasks.lock().unwrap_or_else(PoisonError::into_inner));
            if tasks.is_empty() {
                return;
            }
            for task in tasks {
                // A task that panicked has nothing left to wait for.
                let _ = task.await;
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<ConversationId, Slot>> {
        // Each statement leaves the map whole: a panic elsewhere cannot break it.
        self.slots.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The pending seal of `seen`, with its entries' fingerprint; `None` when none.
    fn copy_of(&self, seen: &Seen) -> Option<Copy> {
        let entries = seen.tail.get(..seen.pending).filter(|e| !e.is_empty())?;
        let mut hasher = self.hasher.build_hasher();
        for entry in entries {
            hasher.write(entry.json.as_bytes());
            hasher.write_u8(0xff);
        }
        Some(Copy {
            created_at: seen.record.created_at,
            last_seq: entries.last()?.message.seq,
            count: entries.len(),
            fingerprint: hasher.finish(),
        })
    }

    /// How many of `current`'s first tail entries an append may drop: all pending ones
    /// when this process wrote their copy and it equals them, else 0.
    pub(crate) fn written(&self, id: &ConversationId, current: &Seen) -> usize {
        match (self.lock().get(id), self.copy_of(current)) {
            (Some(Slot::Written(written)), Some(copy)) if *written == copy => copy.count,
            _ => 0,
        }
    }

    /// After a write left the conversation as `after`: starts the copy of its pending
    /// seal unless one of the same entries is written or being written (needs a Tokio
    /// runtime; without one, or past [`MAX_TRACKED`], the seal is left to a transaction).
    pub(crate) fn after_write(&self, id: &ConversationId, after: &Seen) {
        let Some(copy) = self.copy_of(after) else {
            self.lock().remove(id);
            return;
        };
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        {
            let mut slots = self.lock();
            match slots.get(id) {
                Some(Slot::Running(c) | Slot::Written(c)) if *c == copy => return,
                None if slots.len() >= MAX_TRACKED => return,
                _ => {}
            }
            slots.insert(id.clone(), Slot::Running(copy));
        }
        let entries = after.tail[..after.pending].to_vec();
        let version = after.record.version;
        let this = self.clone();
        let id = id.clone();
        let task = runtime.spawn(async move {
            let written = match this.write_copy(&id, &entries, version, copy).await {
                Ok(written) => written,
                Err(e) => {
                    tracing::warn!(conversation = %id, error = %e, "pending seal's copy failed; the append that finds the tail full seals it");
                    false
                }
            };
            let mut slots = this.lock();
            if slots.get(&id) == Some(&Slot::Running(copy)) {
                if written {
                    slots.insert(id, Slot::Written(copy));
                } else {
                    slots.remove(&id);
                }
            }
        });
        let mut tasks = self.tasks.lock().unwrap_or_else(PoisonError::into_inner);
        tasks.retain(|t| !t.is_finished());
        tasks.push(task);
    }

    /// Writes the copy of `entries` (the pending entries at `version`) and their id
    /// markers; `false` when it is not to be trusted: a copy of a later version is there,
    /// it would not fit an item, or the conversation is gone (the copy is then deleted).
    async fn write_copy(
        &self,
        id: &ConversationId,
        entries: &[Encoded],
        version: u64,
        copy: Copy,
    ) -> Result<bool> {
        let chunk = pending_chunk(id, entries, version)?;
        if item_size(&chunk) > MAX_ITEM_SIZE {
            return Ok(false);
        }
        let chunk_key = key(id, message_sk(copy.last_seq));
        let put = self
            .table
            .client
            .put_item()
            .table_name(&self.table.name)
            .set_item(Some(chunk))
            .condition_expression("attribute_not_exists(#pk) OR #pv < :pv")
            .expression_attribute_names("#pk", PK)
            .expression_attribute_names("#pv", PENDING_VERSION)
            .expression_attribute_values(":pv", n(version))
            .send()
            .await;
        if let Err(e) = put {
            if e.as_service_error()
                .is_some_and(|e| e.is_conditional_check_failed_exception())
            {
                return Ok(false);
            }
            return Err(sdk_error(BACKEND, e));
        }
        let markers = entries
            .iter()
            .map(|e| Table::put_request(marker_item(id, &e.message.id, e.message.seq)))
            .collect::<Result<Vec<_>>>()?;
        // Small batches, one after another: each holds the appends it meets for less.
        let mut markers = markers.into_iter().peekable();
        while markers.peek().is_some() {
            let batch = markers.by_ref().take(MARKERS_PER_BATCH).collect();
            self.table.batch_write(batch).await?;
        }
        let now = self.table.read_item(id).await?;
        let gone = now.as_ref().is_none_or(is_deleting);
        let alive = !gone
            && now.as_ref().is_some_and(|item| {
                get_s(item, CREATED_AT).is_ok_and(|c| c == format_time(copy.created_at))
            });
        if !alive {
            self.remove_copy(id, entries, chunk_key, version, gone)
                .await?;
        }
        Ok(alive)
    }

    /// Deletes a copy written for a conversation deleted meanwhile: the chunk if it is
    /// still this copy, and, when the conversation is `gone` (not created again, whose
    /// messages may have the same ids), the id markers.
    async fn remove_copy(
        &self,
        id: &ConversationId,
        entries: &[Encoded],
        chunk_key: Item,
        version: u64,
        gone: bool,
    ) -> Result<()> {
        let deleted = self
            .table
            .client
            .delete_item()
            .table_name(&self.table.name)
            .set_key(Some(chunk_key))
            .condition_expression("#pv = :pv")
            .expression_attribute_names("#pv", PENDING_VERSION)
            .expression_attribute_values(":pv", n(version))
            .send()
            .await;
        if let Err(e) = deleted
            && !e
                .as_service_error()
                .is_some_and(|e| e.is_conditional_check_failed_exception())
        {
            return Err(sdk_error(BACKEND, e));
        }
        if !gone {
            return Ok(());
        }
        let markers = entries
            .iter()
            .map(|e| Table::delete_request(key(id, marker_sk(&e.message.id))))
            .collect::<Result<Vec<_>>>()?;
        self.table.batch_write(markers).await
    }
}
