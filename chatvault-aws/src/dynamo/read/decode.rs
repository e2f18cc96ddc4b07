//! Decoding a page of items under `m#` keys (chunks and 0.1 message items) into their
//! messages, on several threads, with a direct reader for chunks of plain messages.

use std::borrow::Cow;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use chatvault_core::backend::{Error, Message, MessageId, Part, Result, Role};
use chrono::{DateTime, Utc};

use crate::dynamo::layout::chunks::{check_run, chunk_body, decode_chunk, decode_stored, is_chunk};
use crate::dynamo::layout::item::*;
use crate::dynamo::limits::BACKEND;

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
pub(crate) async fn decode_items(items: Vec<Item>) -> Result<Vec<Vec<Message>>> {
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
/// messages: the same messages, or the same error. A chunk's body is decompressed once.
fn decode_item(item: &Item) -> Result<Vec<Message>> {
    if !is_chunk(item) {
        return decode_stored(item);
    }
    let body = chunk_body(item)?;
    match decode_plain_chunk(item, &body) {
        Some(messages) => Ok(messages),
        None => decode_chunk(item, &body),
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

/// The messages of chunk `item`, whose body is `body`, when they are all [`Plain`],
/// decoded without the general reader's generic paths (parts, optional fields, any RFC
/// 3339 time), which make most of a long read's client time; `None` for anything else
/// (another field, a time in another form, a chunk that does not add up), which
/// [`decode_chunk`] then decodes, or refuses, as always.
fn decode_plain_chunk(item: &Item, body: &str) -> Option<Vec<Message>> {
    let plain: Vec<Plain<'_>> = serde_json::from_str(body).ok()?;
    check_run(item, plain.iter().map(|m| m.seq)).ok()?;
    let mut messages = Vec::with_capacity(plain.len());
    for m in plain {
        messages.push(Message::new(
            MessageId::parse(m.id).ok()?,
            m.seq,
            m.parent.unwrap_or_else(|| Message::parent_in_line(m.seq)),
            Role::from(&*m.role),
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dynamo::layout::chunks::{Encoded, chunk_item};
    use chatvault_core::backend::{ConversationId, NewMessage};

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
            assert_eq!(
                decode_plain_chunk(&item, &chunk_body(&item).expect("body")),
                Some(general.clone()),
                "{from}"
            );
            assert_eq!(decode_item(&item).expect("decodes"), general);
        }
        // A first message moved under none (an edit of the first): `"parent": null`.
        let mut messages = plain_messages(1);
        messages[3].parent = None;
        let item = chunk_of(messages.clone());
        assert!(chunk_body(&item).expect("json").contains("\"parent\":null"));
        assert_eq!(
            decode_plain_chunk(&item, &chunk_body(&item).expect("body")),
            Some(messages)
        );
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
            assert_eq!(
                decode_plain_chunk(&item, &chunk_body(&item).expect("body")),
                None,
                "{what}"
            );
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
            assert_eq!(
                decode_plain_chunk(&damaged, &chunk_body(&damaged).expect("body")),
                None
            );
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
