//! [`Ranges`]: `messages`, a window of a conversation's messages, read from its chunks
//! and its tail.

use std::borrow::Cow;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use aws_sdk_dynamodb::types::AttributeValue;
use chatvault_core::backend::{
    ConversationId, Error, Message, MessageId, MessageRange, Page, Part, Result, Role,
};
use chrono::{DateTime, Utc};

use super::head::Heads;
use crate::dynamo::layout::chunks::{MAX_CHUNK_MESSAGES, decode_stored, is_chunk};
use crate::dynamo::layout::item::*;
use crate::dynamo::limits::BACKEND;
use crate::dynamo::table::Table;
use crate::sdk::sdk_error;

/// Reads of a window before giving up on other writers sealing under it.
const READ_ATTEMPTS: u32 = 8;

/// Items of messages from which a page is decoded on several threads (about 380 messages
/// in full chunks); smaller pages decode faster than a thread hand-off.
const PARALLEL_DECODE_ITEMS: usize = 8;

/// The most threads of Tokio's blocking pool that help decode one page.
const MAX_DECODE_HELPERS: usize = 4;

/// The messages of each of `items` (see [`decode_stored`]), in the items' order.
///
/// Decoding is the client's part of a long read (the README has its measured share), so
/// a page of many items is decoded on several threads: this task and as many threads of
/// Tokio's blocking pool as the machine has cores (at most [`MAX_DECODE_HELPERS`]), each
/// taking the next item not yet taken, so that a thread the scheduler leaves waiting
/// holds back one item, not half of the page. Outside a Tokio runtime everything is
/// decoded here.
async fn decode_items(items: Vec<Item>) -> Result<Vec<Vec<Message>>> {
    let handle = match tokio::runtime::Handle::try_current() {
        Ok(handle) if items.len() >= PARALLEL_DECODE_ITEMS => handle,
        _ => return items.iter().map(decode_item).collect(),
    };
    #[cfg(test)]
    tests::HAND_OFFS.with(|n| n.set(n.get() + 1));
    let helpers = std::thread::available_parallelism()
        .map_or(1, usize::from)
        .clamp(1, MAX_DECODE_HELPERS);
    let count = items.len();
    let shared = Arc::new(Shared {
        items,
        next: AtomicUsize::new(0),
    });
    let handles: Vec<_> = (0..helpers)
        .map(|_| {
            let shared = Arc::clone(&shared);
            handle.spawn_blocking(move || shared.work())
        })
        .collect();
    let mut slots: Vec<Option<Result<Vec<Message>>>> = (0..count).map(|_| None).collect();
    let mut place = |done: Vec<(usize, Result<Vec<Message>>)>| {
        for (i, decoded) in done {
            if let Some(slot) = slots.get_mut(i) {
                *slot = Some(decoded);
            }
        }
    };
    place(shared.work());
    for helper in handles {
        place(helper.await.map_err(|e| Error::backend(BACKEND, e))?);
    }
    slots
        .into_iter()
        .map(|slot| {
            slot.unwrap_or_else(|| Err(Error::backend(BACKEND, "an item was left undecoded")))
        })
        .collect()
}

/// A page's items, shared by the threads that decode them.
struct Shared {
    items: Vec<Item>,
    /// The next item no thread has taken.
    next: AtomicUsize,
}

impl Shared {
    /// Takes and decodes items until none is left: each one's index and messages.
    fn work(&self) -> Vec<(usize, Result<Vec<Message>>)> {
        let mut done = Vec::new();
        loop {
            let i = self.next.fetch_add(1, Ordering::Relaxed);
            let Some(item) = self.items.get(i) else {
                return done;
            };
            done.push((i, decode_item(item)));
        }
    }
}

/// [`decode_stored`], through [`decode_plain_chunk`] when the item is a chunk of plain
/// messages: the same messages, or the same error.
fn decode_item(item: &Item) -> Result<Vec<Message>> {
    match decode_plain_chunk(item) {
        Some(messages) => Ok(messages),
        None => decode_stored(item),
    }
}

/// A chunk message as the chunks store most of them: one text part as `content`,
/// complete, revision 1, no metadata, usage, failure or lease (see the layout's compact
/// form). Any other field makes the whole chunk take the general path.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Plain<'a> {
    #[serde(borrow)]
    id: Cow<'a, str>,
    seq: u64,
    #[serde(default, deserialize_with = "present")]
    parent: Option<Option<u64>>,
    #[serde(borrow)]
    role: Cow<'a, str>,
    content: String,
    #[serde(borrow)]
    created_at: Cow<'a, str>,
}

/// A field that is present (even as `null`): `Some`.
fn present<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> std::result::Result<Option<Option<u64>>, D::Error> {
    <Option<u64> as serde::Deserialize>::deserialize(d).map(Some)
}

/// The messages of a chunk whose messages are all [`Plain`], decoded without the
/// general reader's generic paths (parts, optional fields, any RFC 3339 time), which
/// make most of a long read's client time; `None` for anything else (a 0.1 message
/// item, another field, a time in another form, a chunk that does not add up), which
/// [`decode_stored`] then decodes, or refuses, as always.
fn decode_plain_chunk(item: &Item) -> Option<Vec<Message>> {
    if !is_chunk(item) {
        return None;
    }
    let first = get_n(item, FIRST_SEQ).ok()?;
    let plain: Vec<Plain<'_>> = serde_json::from_str(get_s(item, MESSAGES).ok()?).ok()?;
    let keyed = plain
        .last()
        .is_some_and(|m| get_s(item, SK).is_ok_and(|sk| sk == message_sk(m.seq)));
    if !keyed {
        return None;
    }
    let mut messages = Vec::with_capacity(plain.len());
    for (i, m) in plain.into_iter().enumerate() {
        if Some(m.seq) != first.checked_add(i as u64) {
            return None;
        }
        let role = match &*m.role {
            "user" => Role::User,
            "assistant" => Role::Assistant,
            "system" => Role::System,
            "tool" => Role::Tool,
            other => Role::from(other),
        };
        let parent = m
            .parent
            .unwrap_or_else(|| m.seq.checked_sub(1).filter(|&p| p > 0));
        messages.push(Message::new(
            MessageId::parse(m.id).ok()?,
            m.seq,
            parent,
            role,
            vec![Part::text(m.content)],
            utc_time(&m.created_at)?,
        ));
    }
    Some(messages)
}

/// `YYYY-MM-DDTHH:MM:SS[.fraction]Z`, the form `DateTime<Utc>` is written in, read
/// directly; `None` for any other form (which the general reader parses).
fn utc_time(text: &str) -> Option<DateTime<Utc>> {
    let b = text.as_bytes();
    let digits = |range: std::ops::Range<usize>| -> Option<u32> {
        b.get(range)?.iter().try_fold(0u32, |n, &c| {
            c.is_ascii_digit().then(|| n * 10 + u32::from(c - b'0'))
        })
    };
    let separators = [(4, b'-'), (7, b'-'), (10, b'T'), (13, b':'), (16, b':')];
    if b.last() != Some(&b'Z') || separators.iter().any(|&(at, c)| b.get(at) != Some(&c)) {
        return None;
    }
    let nanos = match b.get(19..b.len() - 1)? {
        [] => 0,
        [b'.', fraction @ ..] if (1..=9).contains(&fraction.len()) => {
            digits(20..b.len() - 1)? * 10u32.pow(9 - fraction.len() as u32)
        }
        _ => return None,
    };
    let (second, minute, hour) = (digits(17..19)?, digits(14..16)?, digits(11..13)?);
    if second > 59 {
        return None; // a leap second: the general reader's rules
    }
    let date = chrono::NaiveDate::from_ymd_opt(
        i32::try_from(digits(0..4)?).ok()?,
        digits(5..7)?,
        digits(8..10)?,
    )?;
    Some(
        date.and_hms_nano_opt(hour, minute, second, nanos)?
            .and_utc(),
    )
}

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
    use crate::dynamo::layout::chunks::{Encoded, chunk_item};
    use chatvault_core::backend::NewMessage;

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
                        let parent = seq.checked_sub(1).filter(|&p| p > 0);
                        Encoded::new(message.into_message(seq, parent)).expect("encodes")
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

    /// A chunk item of `messages` (consecutive, from seq `messages[0].seq`).
    fn chunk_of(messages: Vec<Message>) -> Item {
        let id = ConversationId::parse("c1").expect("id");
        let run: Vec<Encoded> = messages
            .into_iter()
            .map(|m| Encoded::new(m).expect("encodes"))
            .collect();
        chunk_item(&id, &run, 1).expect("chunk")
    }

    fn at(text: &str) -> chrono::DateTime<chrono::Utc> {
        text.parse().expect("a time")
    }

    /// Plain messages of every kind the fast path reads: escapes and non-ASCII text,
    /// every role (and one of the app's own), a first message, an edit's parent, and
    /// times with 0 to 9 fractional digits.
    fn plain_messages(from: u64) -> Vec<Message> {
        let texts = ["plain", "quotes \" and \\ and\nlines", "é 日本 🦀", ""];
        let roles = [
            Role::User,
            Role::Assistant,
            Role::System,
            Role::Tool,
            Role::from("critic"),
        ];
        let times = [
            "2026-12-07T10:17:51Z",
            "2026-12-07T10:17:51.5Z",
            "2026-12-07T10:17:51.123Z",
            "2026-12-07T10:17:51.123456Z",
            "1999-02-28T23:59:59.123456789Z",
        ];
        (from..from + 12)
            .map(|seq| {
                let k = seq as usize;
                let parent = match seq % 5 {
                    0 => seq.checked_sub(3).filter(|&p| p > 0), // an edit's
                    _ => seq.checked_sub(1).filter(|&p| p > 0),
                };
                let mut m = NewMessage::new(roles[k % roles.len()].clone(), texts[k % texts.len()])
                    .into_message(seq, parent);
                m.created_at = at(times[k % times.len()]);
                m
            })
            .collect()
    }

    #[test]
    fn plain_chunks_take_the_fast_path_to_the_same_messages() {
        for from in [1, 2, 40] {
            let item = chunk_of(plain_messages(from));
            let general = decode_stored(&item).expect("decodes");
            assert_eq!(decode_plain_chunk(&item), Some(general.clone()), "{from}");
            assert_eq!(decode_item(&item).expect("decodes"), general);
        }
        // A first message moved under none (an edit of the first): `"parent": null`.
        let mut messages = plain_messages(1);
        messages[3].parent = None;
        let item = chunk_of(messages.clone());
        assert!(
            get_s(&item, MESSAGES)
                .expect("json")
                .contains("\"parent\":null")
        );
        assert_eq!(decode_plain_chunk(&item), Some(messages));
    }

    #[test]
    fn other_chunks_take_the_general_path() {
        let plain = || plain_messages(1);
        let mut with_metadata = plain();
        with_metadata[5]
            .metadata
            .insert("k".into(), serde_json::json!(1));
        let mut streaming = plain();
        streaming[2].status = chatvault_core::MessageStatus::Streaming;
        let mut tool_call = plain();
        tool_call[7].parts = vec![Part::tool_call("call 1", "f", serde_json::json!({}))];
        let mut revised = plain();
        revised[0].revision = 2;
        for (what, messages) in [
            ("metadata", with_metadata),
            ("status", streaming),
            ("parts", tool_call),
            ("revision", revised),
        ] {
            let item = chunk_of(messages.clone());
            assert_eq!(decode_plain_chunk(&item), None, "{what}");
            assert_eq!(decode_item(&item).expect("decodes"), messages, "{what}");
        }
    }

    #[test]
    fn a_plain_chunk_that_does_not_add_up_is_corrupt_as_before() {
        let item = chunk_of(plain_messages(5));
        let mut moved = item.clone();
        moved.insert(FIRST_SEQ.into(), n(4));
        let mut rekeyed = item;
        rekeyed.insert(SK.into(), s(message_sk(99)));
        for damaged in [moved, rekeyed] {
            assert_eq!(decode_plain_chunk(&damaged), None);
            let err = decode_item(&damaged).expect_err("damaged");
            assert_eq!(err.kind(), chatvault_core::ErrorKind::Corrupt, "{err:?}");
        }
    }

    #[test]
    fn times_read_directly_are_chronos_and_other_forms_are_left_to_it() {
        for text in [
            "2026-12-07T10:17:51Z",
            "2026-12-07T10:17:51.1Z",
            "2026-12-07T10:17:51.000000001Z",
            "2026-12-07T10:17:51.999999999Z",
            "0001-01-01T00:00:00Z",
            "2024-02-29T12:00:00.25Z",
        ] {
            assert_eq!(utc_time(text), Some(at(text)), "{text}");
        }
        for text in [
            "",
            "Z",
            "2026-12-07T10:17Z",
            "2026-12-07T10:17:5Z",
            "2026-12-07T10:17:51",
            "2026-12-07T10:17:51z",
            "2026-12-07t10:17:51Z",
            "2026-12-07 10:17:51Z",
            "2026-12-07T10:17:51+01:00",
            "2026-12-07T10:17:51.Z",
            "2026-12-07T10:17:51.1234567890Z",
            "2026-12-07T10:17:60Z",
            "2026-02-30T10:17:51Z",
            "2026-12-07T24:00:00Z",
            "+2026-12-07T10:17:51Z",
            "2026-1a-07T10:17:51Z",
        ] {
            assert_eq!(utc_time(text), None, "{text}");
        }
    }

    #[test]
    fn pages_decode_in_order_on_several_threads_or_one() {
        let expected = |items: usize| -> Vec<u64> { (1..=3 * items as u64).collect() };
        for count in [0, 1, PARALLEL_DECODE_ITEMS - 1, PARALLEL_DECODE_ITEMS, 21] {
            let items = chunks(count as u64);
            // In a runtime: on several threads from PARALLEL_DECODE_ITEMS items on.
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
