//! The read path: the conversation item, messages (by range and by id) and GSI listings.

use aws_sdk_dynamodb::operation::query::builders::QueryFluentBuilder;
use aws_sdk_dynamodb::types::{AttributeValue, PutRequest, WriteRequest};
use chatvault_core::{
    ConversationId, ConversationRecord, ConversationSummary, Error, FileAttachment, Message,
    MessageId, MessageRange, Page, Result,
};

use super::chunks::{MAX_CHUNK_MESSAGES, decode_stored, decode_tail};
use super::item::*;
use super::seen::Seen;
use super::{BACKEND, DynamoMessages};
use crate::sdk::sdk_error;

/// Reads of a window before giving up on other writers sealing under it.
const READ_ATTEMPTS: u32 = 8;

/// Items of messages from which a page is decoded on two threads (about 380 messages in
/// full chunks); smaller pages decode faster than a thread hand-off.
const PARALLEL_DECODE_ITEMS: usize = 8;

/// The messages of each of `items` (see [`decode_stored`]), in the items' order.
///
/// Decoding is the client's part of a long read (about 1 µs a message, near a third of a
/// 2,000-message load on DynamoDB Local), so a page of many items is decoded on two
/// threads: the later half on Tokio's blocking pool while this task decodes the first.
/// Outside a Tokio runtime everything is decoded here.
async fn decode_items(mut items: Vec<Item>) -> Result<Vec<Vec<Message>>> {
    let handle = match tokio::runtime::Handle::try_current() {
        Ok(handle) if items.len() >= PARALLEL_DECODE_ITEMS => handle,
        _ => return items.iter().map(decode_stored).collect(),
    };
    let later = items.split_off(items.len() / 2);
    #[cfg(test)]
    tests::HAND_OFFS.with(|n| n.set(n.get() + 1));
    let later =
        handle.spawn_blocking(move || later.iter().map(decode_stored).collect::<Result<Vec<_>>>());
    let first = items.iter().map(decode_stored).collect::<Result<Vec<_>>>();
    let later = later.await.map_err(|e| Error::backend(BACKEND, e))?;
    let mut decoded = first?;
    decoded.extend(later?);
    Ok(decoded)
}

/// A sealed message's item as read: its messages, and where the message is among them.
pub(super) struct SealedLocation {
    pub(super) item: Item,
    pub(super) messages: Vec<Message>,
    pub(super) index: usize,
}

impl DynamoMessages {
    /// One item, read consistently.
    async fn get(&self, key: Item) -> Result<Option<Item>> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| sdk_error(BACKEND, e))?;
        Ok(out.item)
    }

    /// The conversation item, read consistently.
    pub(super) async fn read_item(&self, id: &ConversationId) -> Result<Option<Item>> {
        self.get(conversation_key(id)).await
    }

    /// Whether a write of `stored` committed: its first message is stored, at its `seq`.
    pub(super) async fn committed(&self, id: &ConversationId, stored: &[Message]) -> Result<bool> {
        let Some(first) = stored.first() else {
            return Ok(false);
        };
        Ok(self
            .message_by_id(id, &first.id)
            .await?
            .is_some_and(|m| m.seq == first.seq))
    }

    /// The message stored under `message_id` in the conversation now: in the tail (the
    /// conversation item, read first, so that a message sealed meanwhile is found by its
    /// marker), or sealed.
    pub(super) async fn message_by_id(
        &self,
        id: &ConversationId,
        message_id: &MessageId,
    ) -> Result<Option<Message>> {
        let Some(item) = self.read_item(id).await? else {
            return Ok(None);
        };
        let tail = decode_tail(&item)?;
        if let Some(found) = tail.into_iter().find(|e| &e.message.id == message_id) {
            return Ok(Some(found.message));
        }
        self.sealed_message(id, message_id).await
    }

    /// A sealed message, through its id marker (two reads); `None` when it has no marker.
    pub(super) async fn sealed_message(
        &self,
        id: &ConversationId,
        message_id: &MessageId,
    ) -> Result<Option<Message>> {
        Ok(self
            .sealed_location(id, message_id)
            .await?
            .map(|mut l| l.messages.swap_remove(l.index)))
    }

    /// The item holding a sealed message (found through its id marker), as read.
    pub(super) async fn sealed_location(
        &self,
        id: &ConversationId,
        message_id: &MessageId,
    ) -> Result<Option<SealedLocation>> {
        let Some(marker) = self.get(key(id, marker_sk(message_id))).await? else {
            return Ok(None);
        };
        let seq = get_n(&marker, SEQ)?;
        let out = self
            .query_partition(id)
            .key_condition_expression("#pk = :pk AND #sk BETWEEN :low AND :high")
            .expression_attribute_values(":low", s(message_sk(seq)))
            .expression_attribute_values(
                ":high",
                s(message_sk(seq.saturating_add(MAX_CHUNK_MESSAGES))),
            )
            .limit(1)
            .send()
            .await
            .map_err(|e| sdk_error(BACKEND, e))?;
        // None: being deleted (the markers and items go item by item).
        let Some(item) = out.items.and_then(|mut items| items.pop()) else {
            return Ok(None);
        };
        let messages = decode_stored(&item)?;
        let Some(index) = messages.iter().position(|m| m.seq == seq) else {
            return Ok(None);
        };
        if &messages[index].id != message_id {
            return Err(corrupt(
                &marker,
                format!(
                    "the marker points at seq {seq}, which holds message {}",
                    messages[index].id
                ),
            ));
        }
        Ok(Some(SealedLocation {
            item,
            messages,
            index,
        }))
    }

    /// The id markers a conversation written by 0.1 lacks (one per message item), as
    /// writes, and the greatest of its message ids.
    pub(super) async fn legacy_markers(
        &self,
        id: &ConversationId,
    ) -> Result<(Vec<WriteRequest>, Option<MessageId>)> {
        let mut markers = Vec::new();
        let mut max: Option<MessageId> = None;
        let mut start = None;
        loop {
            let page = self
                .query_partition(id)
                .key_condition_expression("#pk = :pk AND begins_with(#sk, :m)")
                .projection_expression("#pk, #sk, #id, #seq")
                .expression_attribute_names("#id", ID)
                .expression_attribute_names("#seq", SEQ)
                .expression_attribute_values(":m", s(MESSAGE_PREFIX))
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(|e| sdk_error(BACKEND, e))?;
            for item in page.items() {
                let message_id =
                    MessageId::parse(get_s(item, ID)?).map_err(|e| corrupt(item, e.to_string()))?;
                let marker = marker_item(id, &message_id, get_n(item, SEQ)?);
                markers.push(
                    WriteRequest::builder()
                        .put_request(
                            PutRequest::builder()
                                .set_item(Some(marker))
                                .build()
                                .map_err(|e| Error::backend(BACKEND, e))?,
                        )
                        .build(),
                );
                if max
                    .as_ref()
                    .is_none_or(|m| m.as_str() < message_id.as_str())
                {
                    max = Some(message_id);
                }
            }
            match page.last_evaluated_key {
                Some(key) => start = Some(key),
                None => return Ok((markers, max)),
            }
        }
    }

    /// The conversation's record and attachments, `None` when it is missing or being
    /// deleted.
    pub(super) async fn read_head(
        &self,
        id: &ConversationId,
    ) -> Result<Option<(ConversationRecord, Vec<FileAttachment>)>> {
        match self.read_writable(id).await {
            Ok(head) => Ok(Some(head)),
            Err(Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The conversation as a writer sees it: [`Error::NotFound`] when it is missing or
    /// being deleted.
    pub(super) async fn read_writable(
        &self,
        id: &ConversationId,
    ) -> Result<(ConversationRecord, Vec<FileAttachment>)> {
        let item = self.read_item(id).await?;
        self.writable(id, item)
    }

    /// What an append needs of the conversation, read: [`Error::NotFound`] when it is
    /// missing or being deleted.
    pub(super) async fn read_seen(&self, id: &ConversationId) -> Result<Seen> {
        let item = self.read_item(id).await?;
        self.seen_writable(id, item)
    }

    /// A strongly consistent `Query` on one conversation's partition, with `#pk = :pk`
    /// bound and `#sk` named; the caller adds the key condition and the rest.
    pub(super) fn query_partition(&self, id: &ConversationId) -> QueryFluentBuilder {
        self.client
            .query()
            .table_name(&self.table)
            .expression_attribute_names("#pk", PK)
            .expression_attribute_names("#sk", SK)
            .expression_attribute_values(":pk", s(id.as_str()))
            .consistent_read(true)
    }

    /// The keys of every item under a conversation's partition key.
    pub(super) async fn all_keys(&self, id: &ConversationId) -> Result<Vec<Item>> {
        let mut out = Vec::new();
        let mut start = None;
        loop {
            let page = self
                .query_partition(id)
                .key_condition_expression("#pk = :pk")
                .projection_expression("#pk, #sk")
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(|e| sdk_error(BACKEND, e))?;
            out.extend(page.items.unwrap_or_default());
            match page.last_evaluated_key {
                Some(key) => start = Some(key),
                None => return Ok(out),
            }
        }
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
    pub(super) async fn read_messages(
        &self,
        id: &ConversationId,
        range: &MessageRange,
    ) -> Result<Page<Message>> {
        let Some(window) = Window::of(range) else {
            // Nothing to read but whether the conversation is there.
            return match self.read_item(id).await? {
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
            let (page, head) = futures_util::future::try_join(first, self.read_item(id)).await?;
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
            messages.extend(
                decode_items(stored)
                    .await?
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
        let head = self.seen_writable(id, head)?;
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
        let head = self.read_item(id).await?;
        let head = self.seen_writable(id, head)?;
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
                            .filter(|m| (bottom..=top).contains(&m.seq)),
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

    /// Up to `want` summaries of one GSI partition, newest activity first, strictly after
    /// `after` (an activity key).
    pub(super) async fn query_index(
        &self,
        index: &'static str,
        hash_attribute: &'static str,
        hash_value: String,
        after: Option<&str>,
        include_archived: bool,
        want: usize,
    ) -> Result<Vec<(String, ConversationSummary)>> {
        let mut out = Vec::new();
        let mut start = None;
        loop {
            let mut query = self
                .client
                .query()
                .table_name(&self.table)
                .index_name(index)
                .expression_attribute_names("#h", hash_attribute)
                .expression_attribute_values(":h", s(hash_value.clone()))
                .scan_index_forward(false)
                .limit(i32::try_from(want.clamp(1, 1000)).unwrap_or(1000))
                .set_exclusive_start_key(start);
            query = match after {
                Some(after) => query
                    .key_condition_expression("#h = :h AND #act < :after")
                    .expression_attribute_names("#act", ACTIVITY)
                    .expression_attribute_values(":after", s(after)),
                None => query.key_condition_expression("#h = :h"),
            };
            if !include_archived {
                query = query
                    .filter_expression("#archived = :false")
                    .expression_attribute_names("#archived", ARCHIVED)
                    .expression_attribute_values(":false", AttributeValue::Bool(false));
            }
            let page = query.send().await.map_err(|e| sdk_error(BACKEND, e))?;
            for item in page.items() {
                let summary = decode_summary(item)?;
                out.push((activity(summary.last_active, &summary.id), summary));
                if out.len() >= want {
                    return Ok(out);
                }
            }
            match page.last_evaluated_key {
                Some(key) => start = Some(key),
                None => return Ok(out),
            }
        }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dynamo::chunks::{Encoded, chunk_item};
    use chatvault_core::{NewMessage, Part, Role};

    thread_local! {
        /// Pages `decode_items` handed half of to the blocking pool, on this thread.
        pub(super) static HAND_OFFS: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
    }

    /// `count` chunk items of 3 messages each, seq 1 on; every other message a tool call.
    fn chunks(count: u64) -> Vec<Item> {
        let id = ConversationId::parse("c1").expect("id");
        (0..count)
            .map(|c| {
                let run: Vec<Encoded> = (c * 3 + 1..=c * 3 + 3)
                    .map(|seq| {
                        let message = if seq % 2 == 0 {
                            NewMessage::new(Role::User, format!("text {seq}"))
                        } else {
                            NewMessage::with_parts(
                                Role::Assistant,
                                vec![Part::tool_call(
                                    format!("call {seq}"),
                                    "f",
                                    serde_json::json!(seq),
                                )],
                            )
                        };
                        Encoded::new(message.into_message(seq)).expect("encodes")
                    })
                    .collect();
                chunk_item(&id, &run, 1).expect("chunk")
            })
            .collect()
    }

    fn seqs(decoded: &[Vec<Message>]) -> Vec<u64> {
        decoded.iter().flatten().map(|m| m.seq).collect()
    }

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .build()
            .expect("runtime")
    }

    #[test]
    fn pages_decode_in_order_on_two_threads_or_one() {
        let expected = |items: usize| -> Vec<u64> { (1..=3 * items as u64).collect() };
        for count in [0, 1, PARALLEL_DECODE_ITEMS - 1, PARALLEL_DECODE_ITEMS, 21] {
            let items = chunks(count as u64);
            // In a runtime: on two threads from PARALLEL_DECODE_ITEMS items on.
            let before = HAND_OFFS.with(std::cell::Cell::get);
            let decoded = runtime()
                .block_on(decode_items(items.clone()))
                .expect("decodes");
            let handed_off = HAND_OFFS.with(std::cell::Cell::get) - before;
            assert_eq!(
                handed_off,
                usize::from(count >= PARALLEL_DECODE_ITEMS),
                "{count}"
            );
            assert_eq!(decoded.len(), count);
            assert_eq!(seqs(&decoded), expected(count));
            let one_by_one: Vec<Vec<Message>> = items
                .iter()
                .map(|i| decode_stored(i).expect("decodes"))
                .collect();
            assert_eq!(decoded, one_by_one);
            // Outside one: all here, the same result.
            let here = futures_util::FutureExt::now_or_never(decode_items(items))
                .expect("ready at once outside a runtime")
                .expect("decodes");
            assert_eq!(here, one_by_one);
        }
    }

    #[test]
    fn a_damaged_item_in_either_half_is_corrupt_with_its_key() {
        for damaged in [1, 15] {
            let mut items = chunks(20);
            items[damaged].insert(MESSAGES.into(), s("not json"));
            let key = get_s(&items[damaged], SK).expect("key").to_owned();
            let before = HAND_OFFS.with(std::cell::Cell::get);
            let err = runtime()
                .block_on(decode_items(items))
                .expect_err("damaged");
            assert_eq!(HAND_OFFS.with(std::cell::Cell::get) - before, 1);
            assert_eq!(err.kind(), chatvault_core::ErrorKind::Corrupt, "{err:?}");
            assert!(err.to_string().contains(&key), "{key} in: {err}");
        }
    }
}
