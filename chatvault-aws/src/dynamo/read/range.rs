//! [`Ranges`]: `messages`, a window of a conversation's messages, read from its chunks
//! and its tail.

use aws_sdk_dynamodb::types::AttributeValue;
use chatvault_core::backend::{ConversationId, Error, Message, MessageRange, Page, Result};

use super::decode::decode_items;
use super::head::Heads;
use crate::dynamo::layout::chunks::{MAX_CHUNK_MESSAGES, sealed_part};
use crate::dynamo::layout::item::*;
use crate::dynamo::limits::BACKEND;
use crate::dynamo::table::Table;
use crate::sdk::sdk_error;

/// Reads of a window before giving up on other writers sealing under it.
const READ_ATTEMPTS: u32 = 8;

/// Reads windows of messages.
#[derive(Clone)]
pub(crate) struct Ranges {
    table: Table,
    heads: Heads,
}

impl Ranges {
    /// Windows of `table`'s conversations, their items read through `heads`.
    pub(crate) fn new(table: Table, heads: Heads) -> Self {
        Ranges { table, heads }
    }

    /// `messages`: a window of the conversation's messages, [`Error::NotFound`] when it is
    /// missing or being deleted.
    ///
    /// Messages are numbered 1, 2, 3, ... without gaps, so a window is a range of `seq`
    /// known before reading. A forward window is one `Query` of the items holding its
    /// range (chunks and 0.1 message items, cut at DynamoDB's 1 MB page), from the
    /// conversation item on when it starts at the beginning (is it there, not being
    /// deleted, and what is its tail?), and otherwise with a `GetItem` of the conversation
    /// item at the same time. A backward window reads the conversation item first (its
    /// tail often holds the whole window), then, when needed, the items below the tail.
    ///
    /// A seal running between two reads can show a message in both (it is kept once) or,
    /// for the two reads sent together, in neither: the window is then read again.
    pub(crate) async fn read_messages(
        &self,
        id: &ConversationId,
        range: &MessageRange,
    ) -> Result<Page<Message>> {
        let Some(window) = Window::of(range) else {
            // Nothing to read but whether the conversation is there.
            return match self.table.read_item(id).await? {
                Some(item) if !is_deleting(&item) => Ok(Page {
                    items: Vec::new(),
                    next_cursor: None,
                }),
                _ => Err(Error::conversation_not_found(id.as_str())),
            };
        };
        for _ in 0..READ_ATTEMPTS {
            let page = if window.forward {
                self.read_forward(id, &window).await?
            } else {
                self.read_backward(id, &window).await?
            };
            if let Some(page) = page {
                return Ok(page);
            }
        }
        Err(Error::temporary(
            BACKEND,
            format!(
                "messages of conversation {id}: sealed by other writers while being read, {READ_ATTEMPTS} times in a row"
            ),
        ))
    }

    /// One page of the items under `m#` keys from `low` to `high`, in `forward` order
    /// (from the conversation item on when `low` is its key), after `start`.
    async fn query_items(
        &self,
        id: &ConversationId,
        low: &str,
        high: &str,
        forward: bool,
        start: Option<Item>,
    ) -> Result<(Vec<Item>, Option<Item>)> {
        let out = self
            .table
            .query_partition(id)
            .key_condition_expression("#pk = :pk AND #sk BETWEEN :low AND :high")
            .expression_attribute_values(":low", s(low))
            .expression_attribute_values(":high", s(high))
            .scan_index_forward(forward)
            .set_exclusive_start_key(start)
            .send()
            .await
            .map_err(|e| sdk_error(BACKEND, e))?;
        Ok((out.items.unwrap_or_default(), out.last_evaluated_key))
    }

    /// A forward window; `None` when a seal ran between its reads.
    async fn read_forward(
        &self,
        id: &ConversationId,
        window: &Window,
    ) -> Result<Option<Page<Message>>> {
        let low = window.low;
        let high = match window.limit {
            Some(limit) => low
                .saturating_add(limit as u64)
                .saturating_sub(1)
                .min(window.high),
            None => window.high,
        };
        let with_head = low <= 1;
        let low_key = if with_head {
            CONVERSATION_SK.to_owned()
        } else {
            message_sk(low)
        };
        // The item holding `high` has a key at most a chunk's length after it.
        let high_key = message_sk(high.saturating_add(MAX_CHUNK_MESSAGES));
        let first = self.query_items(id, &low_key, &high_key, true, None);
        let ((mut items, mut next), mut head) = if with_head {
            (first.await?, None)
        } else {
            let (page, head) =
                futures_util::future::try_join(first, self.table.read_item(id)).await?;
            (page, head)
        };
        let mut messages = Vec::new();
        let cut = loop {
            let mut stored = Vec::with_capacity(items.len());
            for item in items {
                if matches!(item.get(SK), Some(AttributeValue::S(sk)) if sk == CONVERSATION_SK) {
                    head = Some(item);
                } else {
                    stored.push(item);
                }
            }
            let decoded = decode_items(stored).await?;
            messages.reserve(decoded.iter().map(Vec::len).sum());
            messages.extend(
                decoded
                    .into_iter()
                    .flatten()
                    .filter(|m| (low..=high).contains(&m.seq)),
            );
            match next {
                Some(start) if messages.is_empty() => {
                    (items, next) = self
                        .query_items(id, &low_key, &high_key, true, Some(start))
                        .await?;
                }
                Some(_) => break true,
                None => break false,
            }
        };
        let head = self.heads.seen_writable(id, head)?;
        // A pending seal's copy of tail entries is not read: the tail's entries are.
        messages.retain(sealed_part(head.tail.first().map(|e| e.message.seq)));
        if !cut {
            messages.extend(
                head.tail
                    .iter()
                    .map(|e| &e.message)
                    .filter(|m| (low..=high).contains(&m.seq))
                    .cloned(),
            );
        }
        messages.sort_by_key(|m| m.seq);
        messages.dedup_by_key(|m| m.seq);
        let count = head
            .record
            .message_count
            .max(messages.last().map_or(0, |m| m.seq));
        // Whole from `low` on, and (unless the page was cut) up to the window's end.
        let contiguous = messages
            .iter()
            .enumerate()
            .all(|(i, m)| m.seq == low + i as u64);
        let complete = cut
            || messages
                .last()
                .map_or(low > high.min(count), |m| m.seq == high.min(count));
        if !contiguous || !complete {
            return Ok(None);
        }
        let next_cursor = messages
            .last()
            .filter(|m| cut || m.seq < window.high.min(count))
            .map(|m| m.seq.to_string());
        Ok(Some(Page {
            items: messages,
            next_cursor,
        }))
    }

    /// A backward window; `None` when what was read does not add up (a seal between the
    /// reads).
    async fn read_backward(
        &self,
        id: &ConversationId,
        window: &Window,
    ) -> Result<Option<Page<Message>>> {
        let head = self.table.read_item(id).await?;
        let head = self.heads.seen_writable(id, head)?;
        let count = head
            .record
            .message_count
            .max(head.tail.last().map_or(0, |e| e.message.seq));
        let top = window.high.min(count);
        let limit = window.limit.unwrap_or(usize::MAX).max(1) as u64;
        if top == 0 {
            return Ok(Some(Page {
                items: Vec::new(),
                next_cursor: None,
            }));
        }
        let bottom = top.saturating_sub(limit - 1).max(1);
        let mut messages: Vec<Message> = head
            .tail
            .iter()
            .map(|e| &e.message)
            .filter(|m| (bottom..=top).contains(&m.seq))
            .cloned()
            .collect();
        let sealed_top = head
            .tail
            .first()
            .map_or(top, |e| e.message.seq.saturating_sub(1))
            .min(top);
        // A pending seal's copy of tail entries is not read: the tail's entries are.
        let sealed = sealed_part(head.tail.first().map(|e| e.message.seq));
        // Where what was read is whole from, when the page was cut.
        let mut whole_from = bottom;
        if sealed_top >= bottom {
            let low_key = message_sk(bottom);
            let high_key = message_sk(sealed_top.saturating_add(MAX_CHUNK_MESSAGES));
            let mut start = None;
            let mut found = 0;
            loop {
                let (items, next) = self
                    .query_items(id, &low_key, &high_key, false, start)
                    .await?;
                let mut lowest = None;
                for stored in decode_items(items).await? {
                    lowest = stored.first().map(|m| m.seq);
                    let before = messages.len();
                    messages.extend(
                        stored
                            .into_iter()
                            .filter(|m| (bottom..=top).contains(&m.seq))
                            .filter(&sealed),
                    );
                    found += messages.len() - before;
                }
                match next {
                    Some(key) if found == 0 => start = Some(key),
                    Some(_) => {
                        whole_from = lowest.map_or(bottom, |l| l.max(bottom));
                        break;
                    }
                    None => break,
                }
            }
        }
        messages.sort_by_key(|m| m.seq);
        messages.dedup_by_key(|m| m.seq);
        messages.retain(|m| m.seq >= whole_from);
        let contiguous = messages
            .iter()
            .enumerate()
            .all(|(i, m)| m.seq == whole_from + i as u64);
        if !contiguous || messages.last().map(|m| m.seq) != Some(top) {
            return Ok(None);
        }
        let next_cursor = messages
            .first()
            .filter(|m| m.seq > 1)
            .map(|m| m.seq.to_string());
        Ok(Some(Page {
            items: messages,
            next_cursor,
        }))
    }
}

/// The key range of a [`MessageRange`]: `seq` from `low` to `high`, read forward or
/// backward, at most `limit` messages.
struct Window {
    low: u64,
    high: u64,
    forward: bool,
    limit: Option<usize>,
}

impl Window {
    /// `None` when the range holds nothing whatever the conversation.
    fn of(range: &MessageRange) -> Option<Window> {
        match *range {
            MessageRange::After { after, limit } => {
                let first = after.checked_add(1)?;
                if limit == Some(0) {
                    return None;
                }
                Some(Window {
                    low: first,
                    high: u64::MAX,
                    forward: true,
                    limit,
                })
            }
            MessageRange::Before { before, limit } => {
                let last = match before {
                    None => u64::MAX,
                    Some(0 | 1) => return None,
                    Some(b) => b - 1,
                };
                if limit == 0 {
                    return None;
                }
                Some(Window {
                    low: 0,
                    high: last,
                    forward: false,
                    limit: Some(limit),
                })
            }
        }
    }
}
