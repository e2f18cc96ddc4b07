//! Pages, listing and search options, message ranges: what the backends exchange when
//! they read part of something.

use serde::{Deserialize, Serialize};

use super::conversation::{ConversationRecord, ConversationSummary};
use super::message::Message;
use super::options::{ListCursor, PageLimit};
use crate::error::{Error, Result};

/// One message that matched a search, with its conversation.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SearchHit {
    /// The conversation the message belongs to.
    pub conversation: ConversationSummary,
    /// The message.
    pub message: Message,
    /// A short excerpt around the match, when the backend makes one.
    pub snippet: Option<String>,
    /// Which branch the message is on: filled in by
    /// [`ChatVault::search`](crate::ChatVault::search); `None` from a backend.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub branch: Option<HitBranch>,
}

impl SearchHit {
    /// A hit as a backend returns it (no branch information).
    pub fn new(
        conversation: ConversationSummary,
        message: Message,
        snippet: Option<String>,
    ) -> Self {
        SearchHit {
            conversation,
            message,
            snippet,
            branch: None,
        }
    }
}

/// Where a search hit's message stands in its conversation's branches.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct HitBranch {
    /// Whether the message is on the active path.
    pub active: bool,
    /// The leaf a switch to the message shows (the newest message reached from it by
    /// always taking the newest follower): the branch the hit is on.
    pub leaf: u64,
}

/// One page of a listing.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Page<T> {
    /// The items of this page.
    pub items: Vec<T>,
    /// Pass this back (in [`ListOptions::cursor`](super::ListOptions::cursor) or
    /// [`MessageRange`]) for the next page; `None` when there is none.
    pub next_cursor: Option<String>,
}

impl<T> Page<T> {
    /// Whether there are more items after this page.
    pub fn has_more(&self) -> bool {
        self.next_cursor.is_some()
    }

    /// The page of `items` read with one more than `limit` asked for: the first `limit`
    /// of them, and when that one more was there, a `next_cursor` made by `cursor` from
    /// the last item kept.
    pub fn from_overfetch(
        mut items: Vec<T>,
        limit: PageLimit,
        cursor: impl FnOnce(&T) -> String,
    ) -> Self {
        let more = items.len() > limit.get();
        items.truncate(limit.get());
        let next_cursor = if more { items.last().map(cursor) } else { None };
        Page { items, next_cursor }
    }
}

impl Page<ConversationSummary> {
    /// A listing page from summaries in listing order, read with one more than `limit`
    /// asked for: [`from_overfetch`](Page::from_overfetch) with a [`ListCursor`] after the
    /// last summary kept.
    pub fn of_listing(items: Vec<ConversationSummary>, limit: PageLimit) -> Self {
        Page::from_overfetch(items, limit, |s| ListCursor::after(s).encode())
    }
}

/// Sorts summaries into listing order (newest activity first, then id descending).
pub fn sort_for_listing(items: &mut [ConversationSummary]) {
    items.sort_by(|a, b| (b.last_active, &b.id).cmp(&(a.last_active, &a.id)));
}

/// Which messages of a conversation to read, by `seq`.
///
/// Results are always in ascending `seq` order.
///
/// ```
/// use chatvault_core::MessageRange;
///
/// let everything = MessageRange::all();
/// let next_page = MessageRange::after(200).limit(100); // seq 201..=300
/// let tail = MessageRange::last(10);                    // the newest 10
/// let older = MessageRange::before(51).limit(50);       // seq 1..=50
/// # let _ = (everything, next_page, tail, older);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MessageRange {
    /// Messages with `seq > after`, oldest first, at most `limit` of them.
    After {
        /// Exclusive lower bound (0 for the start).
        after: u64,
        /// At most this many; `None` for no limit.
        limit: Option<usize>,
    },
    /// The newest `limit` messages with `seq < before` (`None`: the end), returned
    /// in ascending order.
    Before {
        /// Exclusive upper bound; `None` for the end of the conversation.
        before: Option<u64>,
        /// At most this many.
        limit: usize,
    },
}

impl MessageRange {
    /// Every message.
    pub fn all() -> Self {
        MessageRange::After {
            after: 0,
            limit: None,
        }
    }

    /// Messages after `seq` (exclusive).
    pub fn after(seq: u64) -> Self {
        MessageRange::After {
            after: seq,
            limit: None,
        }
    }

    /// Messages before `seq` (exclusive); set how many with [`limit`](Self::limit).
    pub fn before(seq: u64) -> Self {
        MessageRange::Before {
            before: Some(seq),
            limit: usize::MAX,
        }
    }

    /// The newest `n` messages.
    pub fn last(n: usize) -> Self {
        MessageRange::Before {
            before: None,
            limit: n,
        }
    }

    /// Caps how many messages are returned.
    pub fn limit(self, n: usize) -> Self {
        match self {
            MessageRange::After { after, .. } => MessageRange::After {
                after,
                limit: Some(n),
            },
            MessageRange::Before { before, .. } => MessageRange::Before { before, limit: n },
        }
    }

    /// The range continuing in the same direction from a page's `next_cursor`.
    pub fn continue_from(&self, cursor: &str) -> Result<Self> {
        let seq: u64 = cursor.parse().map_err(|_| {
            Error::invalid_input("cursor", format!("not a message cursor: {cursor:?}"))
        })?;
        Ok(match self {
            MessageRange::After { limit, .. } => MessageRange::After {
                after: seq,
                limit: *limit,
            },
            MessageRange::Before { limit, .. } => MessageRange::Before {
                before: Some(seq),
                limit: *limit,
            },
        })
    }

    /// The seq bounds `(first, last)`, inclusive, that this range selects in a
    /// conversation of `count` messages; `None` when it selects nothing. Whether more
    /// messages lie beyond them is [`next_cursor`](Self::next_cursor)'s answer.
    ///
    /// Backends that store messages by `seq` use this to turn a range into a key range.
    pub fn resolve(&self, count: u64) -> Option<(u64, u64)> {
        match *self {
            MessageRange::After { after, limit } => {
                let first = after.checked_add(1)?;
                if first > count {
                    return None;
                }
                let last = match limit {
                    Some(0) => return None,
                    Some(n) => count.min(first.saturating_add(n as u64 - 1)),
                    None => count,
                };
                Some((first, last))
            }
            MessageRange::Before { before, limit } => {
                let last = match before {
                    Some(b) => b.saturating_sub(1).min(count),
                    None => count,
                };
                if last == 0 || limit == 0 {
                    return None;
                }
                let first = last.saturating_sub(limit as u64 - 1).max(1);
                Some((first, last))
            }
        }
    }

    /// The `next_cursor` for a page that returned seq `first..=last` of this range
    /// (before any backend-side truncation): `Some` when more messages lie beyond.
    pub fn next_cursor(&self, first: u64, last: u64, count: u64) -> Option<String> {
        match self {
            MessageRange::After { .. } => (last < count).then(|| last.to_string()),
            MessageRange::Before { .. } => (first > 1).then(|| first.to_string()),
        }
    }

    /// Selects this range from messages held in `seq` order with seq `1..=len`
    /// (the reference implementation used by in-memory backends and the defaults).
    pub fn select(&self, messages: &[Message]) -> Page<Message> {
        let count = messages.len() as u64;
        match self.resolve(count) {
            None => Page {
                items: Vec::new(),
                next_cursor: None,
            },
            Some((first, last)) => Page {
                items: messages[(first - 1) as usize..last as usize].to_vec(),
                next_cursor: self.next_cursor(first, last, count),
            },
        }
    }
}

/// The result of [`MessagesBackend::append_messages_as`](crate::MessagesBackend::append_messages_as).
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct Appended {
    /// The conversation's record after the append.
    pub record: ConversationRecord,
    /// The messages as stored, with their `seq`.
    pub messages: Vec<Message>,
}

impl Appended {
    /// What an append of `messages` returns, with the record it left.
    pub fn new(record: ConversationRecord, messages: Vec<Message>) -> Self {
        Appended { record, messages }
    }
}
