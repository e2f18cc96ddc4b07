//! What the backend remembers of the conversations it last wrote or read, so that an
//! append can write against the version it knows without reading it first.

use std::fmt;
use std::sync::{Mutex, PoisonError};

use chatvault_core::backend::{
    ConversationId, ConversationRecord, FileAttachment, MessageId, Result,
};
use lru::LruCache;

use super::layout::chunks::{
    Encoded, PENDING_ROOM, decode_pending, decode_sealed_max, decode_tail, tail_attribute_size,
};
use super::layout::item::{
    FILES, FORMAT, Item, PENDING, TAIL, TOMBSTONE_ROOM, attribute_size, decode_conversation, get_n,
    get_s, item_size,
};

/// The default of [`DynamoMessagesBuilder::seen_cache_bytes`](crate::DynamoMessagesBuilder::seen_cache_bytes).
pub const DEFAULT_SEEN_CACHE_BYTES: u64 = 4 * 1024 * 1024;

/// Bytes an entry costs beyond its record's item size (key, map slot, struct).
const ENTRY_OVERHEAD: u64 = 128;

/// A conversation as the backend last saw it: enough to append to it without a read.
#[derive(Clone, Debug)]
pub(super) struct Seen {
    pub(super) record: ConversationRecord,
    /// Bytes of the conversation item without `files` and `tail`.
    pub(super) base_size: u64,
    /// The messages in the conversation item's tail, in `seq` order, with their JSON.
    pub(super) tail: Vec<Encoded>,
    /// The `files` attribute's JSON (the attachment list), as stored.
    pub(super) files_json: String,
    /// The greatest id of the sealed messages, if any is sealed.
    pub(super) sealed_max: Option<MessageId>,
    /// How many of the tail's first entries are being sealed ([`PENDING`]).
    pub(super) pending: usize,
    /// A conversation written by 0.1 (format 1) with messages: its message items have no
    /// id markers yet, which the next write of messages adds first.
    pub(super) legacy: bool,
}

impl Seen {
    /// A conversation item, decoded; with its attachments.
    pub(super) fn from_item(item: &Item) -> Result<(Seen, Vec<FileAttachment>)> {
        let (record, files) = decode_conversation(item)?;
        let tail = decode_tail(item)?;
        let pending = decode_pending(item, tail.len())?;
        let files_size = attribute_size(item, FILES);
        let legacy = get_n(item, FORMAT)? < 2 && record.message_count > 0;
        let files_json = match item.get(FILES) {
            Some(_) => get_s(item, FILES)?.to_owned(),
            None => "[]".to_owned(),
        };
        let seen = Seen {
            files_json,
            base_size: item_size(item)
                .saturating_sub(files_size)
                .saturating_sub(attribute_size(item, TAIL))
                .saturating_sub(attribute_size(item, PENDING)),
            record,
            tail,
            sealed_max: decode_sealed_max(item)?,
            pending,
            legacy,
        };
        Ok((seen, files))
    }

    /// Bytes the `files` attribute (its name and JSON) adds to the conversation item.
    pub(super) fn files_size(&self) -> u64 {
        (FILES.len() + self.files_json.len()) as u64
    }

    /// The size the conversation item counts against DynamoDB's 400 KB.
    pub(super) fn item_size(&self) -> u64 {
        self.item_size_with(self.base_size, self.tail_size())
    }

    /// Bytes of the tail's entries (see [`tail_attribute_size`]).
    pub(super) fn tail_size(&self) -> u64 {
        self.tail.iter().map(Encoded::size).sum()
    }

    /// [`item_size`](Self::item_size) with another base (`base_size`) and a tail of
    /// `tail_size` bytes of entries (room counted for [`PENDING`] whether set or not).
    pub(super) fn item_size_with(&self, base_size: u64, tail_size: u64) -> u64 {
        base_size
            + self.files_size()
            + tail_attribute_size(tail_size)
            + TOMBSTONE_ROOM
            + PENDING_ROOM
    }

    fn cost(&self) -> u64 {
        self.base_size + 2 * self.tail_size() + self.files_json.len() as u64 + ENTRY_OVERHEAD
    }
}

/// A least-recently-used map from conversation id to [`Seen`], bounded by the bytes its
/// records take (attachment lists are not kept, only their size).
pub(super) struct SeenCache {
    budget: u64,
    inner: Mutex<Inner>,
}

struct Inner {
    entries: LruCache<ConversationId, Seen>,
    bytes: u64,
}

impl fmt::Debug for SeenCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let inner = self.lock();
        f.debug_struct("SeenCache")
            .field("budget", &self.budget)
            .field("bytes", &inner.bytes)
            .field("entries", &inner.entries.len())
            .finish()
    }
}

impl SeenCache {
    /// A cache of at most `budget` bytes; 0 keeps nothing.
    pub(super) fn new(budget: u64) -> Self {
        SeenCache {
            budget,
            inner: Mutex::new(Inner {
                entries: LruCache::unbounded(),
                bytes: 0,
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // The map is consistent after every statement: a panic elsewhere cannot leave it
        // half-updated.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The conversation as last seen, if remembered.
    pub(super) fn get(&self, id: &ConversationId) -> Option<Seen> {
        self.lock().entries.get(id).cloned()
    }

    /// Remembers `seen`, unless what is remembered of the same conversation (same
    /// creation time) is of a later version. An entry over an eighth of the budget is
    /// not kept.
    pub(super) fn remember(&self, seen: Seen) {
        let mut inner = self.lock();
        let id = &seen.record.id;
        if let Some(old) = inner.entries.peek(id)
            && old.record.created_at == seen.record.created_at
            && old.record.version > seen.record.version
        {
            return;
        }
        if let Some(old) = inner.entries.pop(id) {
            inner.bytes -= old.cost();
        }
        let cost = seen.cost();
        if cost > self.budget / 8 {
            return;
        }
        inner.bytes += cost;
        inner.entries.put(id.clone(), seen);
        while inner.bytes > self.budget {
            match inner.entries.pop_lru() {
                Some((_, old)) => inner.bytes -= old.cost(),
                None => break,
            }
        }
    }

    /// Forgets a conversation (deleted, replaced, or gone).
    pub(super) fn forget(&self, id: &ConversationId) {
        let mut inner = self.lock();
        if let Some(old) = inner.entries.pop(id) {
            inner.bytes -= old.cost();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seen(id: &str, version: u64, base_size: u64) -> Seen {
        let mut record = ConversationRecord::new(None);
        record.id = ConversationId::parse(id).expect("id");
        record.version = version;
        Seen {
            record,
            base_size,
            tail: Vec::new(),
            files_json: String::new(),
            sealed_max: None,
            pending: 0,
            legacy: false,
        }
    }

    #[test]
    fn keeps_the_latest_version_within_its_budget() {
        let cache = SeenCache::new(8 * (1000 + ENTRY_OVERHEAD));
        let a3 = seen("a", 3, 1000);
        cache.remember(a3.clone());
        let mut a2 = a3.clone();
        a2.record.version = 2;
        cache.remember(a2);
        let id = |s: &str| ConversationId::parse(s).expect("id");
        assert_eq!(cache.get(&id("a")).map(|s| s.record.version), Some(3));
        // A conversation of the same id created anew replaces it, whatever its version.
        let fresh = seen("a", 1, 1000);
        cache.remember(fresh);
        assert_eq!(cache.get(&id("a")).map(|s| s.record.version), Some(1));
        // Over budget: the least recently used go first.
        for i in 0..8 {
            cache.remember(seen(&format!("c{i}"), 1, 1000));
        }
        assert!(cache.get(&id("a")).is_none());
        assert!(cache.get(&id("c7")).is_some());
        assert!(cache.lock().bytes <= 8 * (1000 + ENTRY_OVERHEAD));
        cache.forget(&id("c7"));
        assert!(cache.get(&id("c7")).is_none());
        // Entries over an eighth of the budget are not kept; a budget of 0 keeps nothing.
        cache.remember(seen("big", 1, 2000));
        assert!(cache.get(&id("big")).is_none());
        let none = SeenCache::new(0);
        none.remember(seen("a", 1, 1));
        assert!(none.get(&id("a")).is_none());
    }
}
