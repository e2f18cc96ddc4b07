//! A conversation's messages, in chunks that never move.

use std::borrow::Cow;
use std::cmp::Ordering;
use std::hash::{BuildHasher, RandomState};

use chatvault_core::backend::{Message, MessageId, MessageRange, Page};
use hashbrown::HashTable;

use crate::stored::{Stored, Texts};

/// Messages in the first chunk; chunk `k` holds `FIRST << k`.
const FIRST: usize = 8;

/// A conversation's messages in `seq` order: the message at index `i` has seq `i + 1`,
/// found by id in O(1) (a new id) or O(log n) (a stored one, while ids are in order).
///
/// Held in chunks of 8, 16, 32, ... messages, each allocated once at its full size, so an
/// append never copies the messages already held (a `Vec` copies all of them whenever it
/// outgrows its allocation: at 1,000 messages, a quarter of a megabyte), and at most half
/// the space is unused, as in a `Vec`. Each is held as a [`Stored`]: the usual message
/// in under half a `Message`'s space; reads rebuild the `Message`.
///
/// Ids are found without an index of their own while every id is greater than the one
/// before it (ids the core makes are UUID v7s, which grow): the messages are then in id
/// order too, so a look-up is a binary search, and the usual look-up, of a new id, one
/// comparison with the last. The first id out of order builds a hash table of message
/// indexes, hashed and compared through the messages themselves (no second copy of
/// every id), used from then on.
#[derive(Debug, Default)]
pub(crate) struct MessageLog<S = RandomState> {
    chunks: Vec<Vec<Stored>>,
    len: usize,
    /// The texts of the [`Stored::Text`] messages.
    texts: Texts,
    /// Hashes the ids (keyed at random per log, so ids cannot be chosen to collide).
    hasher: S,
    /// Indexes of the messages, by the hash of their id; `None` while the ids are in
    /// increasing order.
    by_id: Option<HashTable<usize>>,
}

/// The chunk that holds index `i`, and `i`'s index in it.
fn locate(i: usize) -> (usize, usize) {
    // Chunk k holds indexes FIRST * (2^k - 1) .. FIRST * (2^(k+1) - 1).
    let k = (i / FIRST + 1).ilog2() as usize;
    (k, i - FIRST * ((1 << k) - 1))
}

/// The message at index `i` of `chunks`.
fn at(chunks: &[Vec<Stored>], i: usize) -> Option<&Stored> {
    let (k, j) = locate(i);
    chunks.get(k)?.get(j)
}

/// The hash of the id of the message at index `i` of `chunks`.
fn hash_at(chunks: &[Vec<Stored>], texts: &Texts, hasher: &impl BuildHasher, i: usize) -> u64 {
    at(chunks, i)
        .and_then(|m| m.id(texts))
        .map_or(0, |id| hasher.hash_one(id))
}

/// The seq of the message at index `i`.
fn seq_of(i: usize) -> u64 {
    i as u64 + 1
}

impl<S: BuildHasher> MessageLog<S> {
    /// The message at index `i` (seq `i + 1`).
    pub(crate) fn get(&self, i: usize) -> Option<Message> {
        self.stored(i)?.to_message(seq_of(i), &self.texts)
    }

    /// The message at index `i`, as held.
    fn stored(&self, i: usize) -> Option<&Stored> {
        if i >= self.len {
            return None;
        }
        at(&self.chunks, i)
    }

    /// Replaces the message at index `i` (an update: same id, same seq); the old text is
    /// wiped ([`Stored::wipe`]).
    pub(crate) fn replace(&mut self, i: usize, message: &Message) {
        debug_assert_eq!(self.id(i), Some(message.id.as_str()));
        let (k, j) = locate(i);
        if i < self.len
            && let Some(slot) = self.chunks.get_mut(k).and_then(|c| c.get_mut(j))
        {
            slot.wipe(&mut self.texts);
            *slot = Stored::of(message, seq_of(i), &mut self.texts);
        }
    }

    /// The index of the message with id `id`.
    pub(crate) fn find(&self, id: &MessageId) -> Option<usize> {
        match &self.by_id {
            Some(by_id) => {
                let hash = self.hasher.hash_one(id.as_str());
                by_id
                    .find(hash, |&i| self.id(i) == Some(id.as_str()))
                    .copied()
            }
            None => self.search_in_order(id),
        }
    }

    /// [`find`](Self::find) while the ids are in increasing order: a binary search.
    fn search_in_order(&self, id: &MessageId) -> Option<usize> {
        // The usual look-up, of an id not stored yet, stops at the last message.
        let id = id.as_str();
        if self.last_id().is_none_or(|last| last < id) {
            return None;
        }
        let (mut low, mut high) = (0, self.len);
        while low < high {
            let middle = low + (high - low) / 2;
            match self.id(middle)?.cmp(id) {
                Ordering::Less => low = middle + 1,
                Ordering::Greater => high = middle,
                Ordering::Equal => return Some(middle),
            }
        }
        None
    }

    /// The id of the message at index `i`.
    fn id(&self, i: usize) -> Option<&str> {
        self.stored(i)?.id(&self.texts)
    }

    /// The last message's id.
    fn last_id(&self) -> Option<&str> {
        self.len.checked_sub(1).and_then(|i| self.id(i))
    }

    /// Adds a copy of `message` at the end; its id must not be held already, its seq is
    /// the next one.
    pub(crate) fn push(&mut self, message: &Message) {
        let id = message.id.as_str();
        if self.by_id.is_none() && self.last_id().is_some_and(|last| last >= id) {
            self.index_by_hash();
        }
        let hash = self.by_id.as_ref().map(|_| self.hasher.hash_one(id));
        let stored = Stored::of(message, seq_of(self.len), &mut self.texts);
        debug_assert_eq!(
            stored.to_message(seq_of(self.len), &self.texts).as_ref(),
            Some(message)
        );
        let (k, _) = locate(self.len);
        if k == self.chunks.len() {
            self.chunks.push(Vec::with_capacity(FIRST << k));
        }
        self.chunks[k].push(stored);
        if let (Some(by_id), Some(hash)) = (&mut self.by_id, hash) {
            let (chunks, texts, hasher) = (&self.chunks, &self.texts, &self.hasher);
            by_id.insert_unique(hash, self.len, |&i| hash_at(chunks, texts, hasher, i));
        }
        self.len += 1;
    }

    /// Builds the hash table of the ids held (once they are out of order).
    fn index_by_hash(&mut self) {
        let mut by_id = HashTable::with_capacity(self.len);
        let (chunks, texts, hasher) = (&self.chunks, &self.texts, &self.hasher);
        for i in 0..self.len {
            by_id.insert_unique(hash_at(chunks, texts, hasher, i), i, |&i| {
                hash_at(chunks, texts, hasher, i)
            });
        }
        self.by_id = Some(by_id);
    }

    /// The messages' indexes and [contents](Message::content), oldest first.
    pub(crate) fn contents(&self) -> impl DoubleEndedIterator<Item = (usize, Cow<'_, str>)> {
        (0..self.len).filter_map(|i| Some((i, self.stored(i)?.content(&self.texts))))
    }

    /// What [`MessageRange::select`] answers for these messages.
    pub(crate) fn select(&self, range: &MessageRange) -> Page<Message> {
        let count = self.len as u64;
        match range.resolve(count) {
            None => Page {
                items: Vec::new(),
                next_cursor: None,
            },
            Some((first, last)) => Page {
                items: (first - 1..last)
                    .filter_map(|i| self.get(i as usize))
                    .collect(),
                next_cursor: range.next_cursor(first, last, count),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use chatvault_core::{MessageId, Role};

    use std::hash::BuildHasherDefault;

    use super::*;

    fn message(seq: u64) -> Message {
        let text = vec![chatvault_core::Part::text(format!("message {seq}"))];
        Message::new(
            MessageId::new(),
            seq,
            None,
            Role::User,
            text,
            chrono::Utc::now(),
        )
    }

    #[test]
    fn chunks_hold_every_index_once_in_order() {
        let mut log: MessageLog = MessageLog::default();
        let mut all = Vec::new();
        for seq in 1..=1_000 {
            log.push(&message(seq));
            all.push(message(seq));
        }
        assert_eq!(log.len, 1_000);
        assert!(log.by_id.is_none(), "v7 ids grow: no hash table");
        assert!(log.contents().map(|(i, _)| i).eq(0..1_000));
        assert!(
            log.chunks
                .iter()
                .flatten()
                .all(|m| matches!(m, Stored::Text { .. }))
        );
        for (i, other) in all.iter().enumerate() {
            assert_eq!(log.get(i).map(|m| m.seq), Some(i as u64 + 1));
            assert_eq!(log.find(&other.id), None, "an id never stored");
            let id = log.get(i).map(|m| m.id.clone());
            assert_eq!(id.and_then(|id| log.find(&id)), Some(i));
        }
        assert!(log.get(1_000).is_none());
        for range in [
            MessageRange::last(10),
            MessageRange::last(2_000),
            MessageRange::all(),
            MessageRange::after(990).limit(20),
            MessageRange::after(1_000),
            MessageRange::before(500).limit(30),
            MessageRange::before(3),
        ] {
            let got = log.select(&range);
            let want = range.select(&all);
            assert!(
                got.items
                    .iter()
                    .map(|m| m.seq)
                    .eq(want.items.iter().map(|m| m.seq))
            );
            assert_eq!(got.next_cursor, want.next_cursor);
        }
    }

    #[test]
    fn replaced_and_other_messages_read_back_as_they_were() {
        let mut log: MessageLog = MessageLog::default();
        let mut all = Vec::new();
        for seq in 1..=20 {
            let mut m = message(seq);
            if seq % 3 == 0 {
                m.usage = Some(chatvault_core::Usage::new("model", seq, 1));
            }
            log.push(&m);
            all.push(m);
        }
        for i in [0, 2, 19] {
            let mut updated = all[i].clone();
            updated.revision = 2;
            updated.parts = vec![chatvault_core::Part::text("changed")];
            log.replace(i, &updated);
            all[i] = updated;
        }
        let texts = log.chunks.iter().flatten();
        let texts = texts.filter(|m| matches!(m, Stored::Text { .. }));
        assert_eq!(
            texts.count(),
            20 - 6 - 2,
            "the usage ones and two updated are whole"
        );
        assert!(
            log.contents()
                .map(|(_, c)| c)
                .eq(all.iter().map(|m| m.content()))
        );
        for (i, m) in all.iter().enumerate() {
            assert_eq!(log.get(i).as_ref(), Some(m));
            assert_eq!(log.find(&m.id), Some(i));
        }
        assert_eq!(log.select(&MessageRange::all()).items, all);
    }

    /// A message whose id is `id`.
    fn with_id(seq: u64, id: &str) -> Message {
        let mut m = message(seq);
        m.id = id.parse().unwrap();
        m
    }

    #[test]
    fn ids_out_of_order_are_found_through_a_hash_table() {
        let mut log: MessageLog = MessageLog::default();
        // In order, then one that is not (and equal to none), then in order again.
        let ids = ["b", "d", "f", "h", "c", "x", "y", "a", "e"];
        for (i, id) in ids.iter().enumerate() {
            log.push(&with_id(i as u64 + 1, id));
            assert_eq!(log.by_id.is_some(), i >= 4, "after {id}");
            for (j, stored) in ids[..=i].iter().enumerate() {
                assert_eq!(log.find(&stored.parse().unwrap()), Some(j), "{stored}");
            }
            for absent in ["0", "g", "z", "cc"] {
                assert_eq!(log.find(&absent.parse().unwrap()), None, "{absent}");
            }
        }
    }

    #[test]
    fn ids_in_order_are_found_by_binary_search() {
        let mut log: MessageLog = MessageLog::default();
        let ids: Vec<String> = (0..100).map(|i| format!("id{:03}", 2 * i)).collect();
        for (i, id) in ids.iter().enumerate() {
            log.push(&with_id(i as u64 + 1, id));
        }
        assert!(log.by_id.is_none());
        for (i, id) in ids.iter().enumerate() {
            assert_eq!(log.find(&id.parse().unwrap()), Some(i));
            let between = format!("id{:03}", 2 * i + 1);
            assert_eq!(log.find(&between.parse().unwrap()), None, "{between}");
        }
        assert_eq!(log.find(&"a".parse().unwrap()), None);
        // An id equal to the last is out of order too.
        log.push(&with_id(101, "id198"));
        assert!(log.by_id.is_some());
    }

    #[test]
    fn ids_whose_hashes_collide_are_told_apart() {
        // Every id hashes alike; out of order, so that they are looked up by hash.
        let mut log = MessageLog::<BuildHasherDefault<Constant>>::default();
        let (a, b) = (message(1), message(2));
        let (a_id, b_id) = (a.id.clone(), b.id.clone());
        log.push(&b);
        log.push(&a);
        assert!(log.by_id.is_some());
        assert_eq!(log.find(&b_id), Some(0));
        assert_eq!(log.find(&a_id), Some(1));
        assert_eq!(log.hasher.hash_one(&a_id), log.hasher.hash_one(&b_id));
        assert_eq!(log.find(&MessageId::new()), None);
    }

    /// A hasher that hashes everything to one value.
    #[derive(Default)]
    struct Constant;

    impl std::hash::Hasher for Constant {
        fn finish(&self) -> u64 {
            7
        }

        fn write(&mut self, _: &[u8]) {}
    }
}
