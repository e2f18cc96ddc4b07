//! Id maps: per conversation, the seq of each message id its log holds, so that a
//! retried append finds what an earlier attempt stored.

use std::collections::HashMap;
use std::fs::{self, File};
use std::hash::Hash;
use std::ops::ControlFlow;
use std::path::Path;
use std::sync::Mutex;

use chatvault_core::backend::{ConversationId, Message, MessageId, Result};
use lru::LruCache;

use super::conversation::ConversationLog;
use super::conversation::scan::for_each_window;
use crate::error::{damaged, io_at, poisoned};
use crate::log::frame_ids;

const MAX_ID_CACHES: usize = 256;
/// At most this many message ids are kept in all the id maps together (about 90 bytes
/// each, so about 90 MiB), whatever the conversations' lengths: past it, the least
/// recently used maps are dropped, and read again from their logs when next needed.
const MAX_IDS: usize = 1 << 20;

/// The message ids of one conversation's log, as far as this process has read it.
#[derive(Debug, Default)]
struct IdCache {
    /// Which log: its generation and file identity.
    log: (u64, u64),
    /// Log bytes read.
    end: u64,
    seqs: HashMap<MessageId, u64>,
}

/// Keeps the id maps within `max_maps` conversations and `max_ids` ids in all, dropping
/// the least recently used first; the most recently used (the one in use) is kept even
/// when it alone is over.
fn trim_id_maps<K: Hash + Eq>(maps: &mut LruCache<K, IdCache>, max_maps: usize, max_ids: usize) {
    let mut ids: usize = maps.iter().map(|(_, m)| m.seqs.len()).sum();
    while maps.len() > 1 && (maps.len() > max_maps || ids > max_ids) {
        match maps.pop_lru() {
            Some((_, dropped)) => ids -= dropped.seqs.len(),
            None => break,
        }
    }
}

/// This process's id maps, the least recently used first out.
#[derive(Debug)]
pub(crate) struct IdMaps {
    maps: Mutex<LruCache<ConversationId, IdCache>>,
}

impl IdMaps {
    /// No maps yet.
    pub(crate) fn new() -> Self {
        IdMaps {
            maps: Mutex::new(LruCache::unbounded()),
        }
    }

    /// The seq of each of `ids` in a locked conversation, through this process's map of
    /// its message ids (brought up to date with the log's records it has not seen).
    fn lookup(
        &self,
        id: &ConversationId,
        view: &ConversationLog,
        ids: &[&MessageId],
    ) -> Result<Vec<Option<u64>>> {
        let log_path = view.log_path();
        let meta = fs::metadata(&log_path).map_err(io_at("stat", &log_path))?;
        let identity = (view.generation(), file_identity(&meta));
        let mut caches = self.maps.lock().map_err(|_| poisoned())?;
        let cache = caches.get_or_insert_mut(id.clone(), IdCache::default);
        if cache.log != identity || cache.end > view.valid_end() {
            *cache = IdCache {
                log: identity,
                ..IdCache::default()
            };
        }
        if cache.end < view.valid_end() {
            let mut log = File::open(&log_path).map_err(io_at("open", &log_path))?;
            // From where the map stopped; from the start if that is not a record boundary
            // any more (the log was replaced by one with the same identity).
            let mut found = ids_in(&mut log, &log_path, cache.end, view.valid_end())?;
            if found.is_none() && cache.end > 0 {
                cache.seqs.clear();
                cache.end = 0;
                found = ids_in(&mut log, &log_path, 0, view.valid_end())?;
            }
            let Some(found) = found else {
                return Err(damaged(&log_path, "a record the replay accepted changed"));
            };
            cache.seqs.extend(found);
            cache.end = view.valid_end();
        }
        let seqs = ids.iter().map(|m| cache.seqs.get(*m).copied()).collect();
        trim_id_maps(&mut caches, MAX_ID_CACHES, MAX_IDS);
        Ok(seqs)
    }

    /// The stored messages with `ids` in a locked conversation (`None` for ids it does not
    /// hold). Every hit of the id map is checked against the message it names; a map that
    /// disagrees (its log was replaced by one that happens to have the same identity) is
    /// dropped and built again from the log.
    pub(crate) fn stored(
        &self,
        id: &ConversationId,
        view: &ConversationLog,
        ids: &[&MessageId],
    ) -> Result<Vec<Option<Message>>> {
        for attempt in 0..2 {
            let seqs = self.lookup(id, view, ids)?;
            let mut out = Vec::with_capacity(ids.len());
            let mut stale = false;
            for (want, seq) in ids.iter().zip(seqs) {
                let Some(seq) = seq else {
                    out.push(None);
                    continue;
                };
                if seq == 0 || seq > view.count() {
                    stale = true;
                    break;
                }
                match view.read_positions(seq, seq)?.pop() {
                    Some(m) if &m.id == *want => out.push(Some(m)),
                    _ => {
                        stale = true;
                        break;
                    }
                }
            }
            if !stale {
                return Ok(out);
            }
            if attempt == 0 {
                self.forget(id);
            }
        }
        Err(damaged(
            &view.log_path(),
            "the message ids read from the log do not match its messages",
        ))
    }

    /// Notes the messages a commit appended (the map then covers the log to its end).
    pub(crate) fn note(
        &self,
        id: &ConversationId,
        view: &ConversationLog,
        before: u64,
        messages: &[Message],
    ) {
        if let Ok(mut caches) = self.maps.lock()
            && let Some(cache) = caches.get_mut(id)
        {
            if cache.end == before {
                cache
                    .seqs
                    .extend(messages.iter().map(|m| (m.id.clone(), m.seq)));
                cache.end = view.valid_end();
            } else {
                caches.pop(id);
            }
        }
    }

    /// Drops the map of conversation `id` (deleted, or found stale).
    pub(crate) fn forget(&self, id: &ConversationId) {
        if let Ok(mut caches) = self.maps.lock() {
            caches.pop(id);
        }
    }
}

/// The `(id, seq)` of every message appended in `from..to` of a log; `None` when
/// `from` does not start a run of intact records up to `to`.
///
/// Reads the log a window at a time ([`for_each_window`]).
fn ids_in(
    log: &mut File,
    path: &Path,
    from: u64,
    to: u64,
) -> Result<Option<Vec<(MessageId, u64)>>> {
    let mut out = Vec::new();
    let mut intact = true;
    for_each_window(log, path, from, to, |buf, base| {
        let mut pos = 0usize;
        while pos < buf.len() {
            let Some((ids, end)) = frame_ids(buf, pos, base) else {
                intact = false;
                return Ok(ControlFlow::Break(()));
            };
            out.extend(ids);
            pos = (end - base) as usize;
        }
        Ok(ControlFlow::Continue(()))
    })?;
    Ok(intact.then_some(out))
}

/// The identity of a file (its inode on Unix), to tell a log from its replacement.
fn file_identity(meta: &fs::Metadata) -> u64 {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        meta.ino()
    }
    #[cfg(not(unix))]
    {
        let _ = meta;
        0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(ids: usize) -> IdCache {
        IdCache {
            seqs: (1..=ids as u64)
                .map(|seq| (MessageId::new(), seq))
                .collect(),
            ..IdCache::default()
        }
    }

    #[test]
    fn id_maps_stay_within_their_bounds_dropping_the_least_recently_used() {
        let mut maps: LruCache<String, IdCache> = LruCache::unbounded();
        let keys = |maps: &LruCache<String, IdCache>| {
            let mut keys: Vec<String> = maps.iter().map(|(k, _)| k.clone()).collect();
            keys.sort();
            keys
        };
        for c in ["a", "b", "c"] {
            maps.put(c.to_owned(), map(10));
            trim_id_maps(&mut maps, 3, 30);
        }
        assert_eq!(keys(&maps), ["a", "b", "c"], "within both bounds: all kept");
        // "a" is used again; "b" grows by one id, one too many: the least recently used
        // ("c") goes, and only it.
        maps.get_mut("a");
        if let Some(m) = maps.get_mut("b") {
            m.seqs.insert(MessageId::new(), 11);
        }
        trim_id_maps(&mut maps, 3, 30);
        assert_eq!(keys(&maps), ["a", "b"]);
        // A fourth map: one map too many, the least recently used ("a") goes.
        maps.put("d".to_owned(), map(1));
        maps.put("e".to_owned(), map(1));
        trim_id_maps(&mut maps, 3, 30);
        assert_eq!(keys(&maps), ["b", "d", "e"]);
        // The map in use is kept even when it alone is over the bound.
        maps.put("big".to_owned(), map(40));
        trim_id_maps(&mut maps, 3, 30);
        assert_eq!(keys(&maps), ["big"]);
        assert_eq!(maps.peek("big").map(|m| m.seqs.len()), Some(40));
    }
}
