//! Where messages live (format 2 and 3): the most recent ones in the conversation item's
//! [`TAIL`], the older ones sealed, a run at a time, into chunk items.
//!
//! - An append adds its messages to the tail with one conditional `PutItem` of the
//!   conversation item, as long as the tail stays within [`TAIL_HARD_MESSAGES`] and
//!   [`TAIL_HARD_BYTES`] and the conversation item within 400 KB.
//! - Once the tail holds [`TAIL_MAX_MESSAGES`] or [`TAIL_MAX_BYTES`], the append that
//!   takes it there marks the whole tail [`PENDING`] (format 3): a task no caller waits
//!   for copies those entries into one chunk item (tagged [`PENDING_VERSION`]) and writes
//!   their id markers, and the next append from the same process, finding the copy still
//!   equal to the tail's entries, drops them from the tail in its own `PutItem`. So no
//!   append waits for a seal, and each is still one conditional write. Until the drop,
//!   the tail's copies are the messages: readers skip chunk entries at or after the
//!   tail's first `seq`.
//! - Only when the tail would pass its hard bounds (the copy failed or lags, or a message
//!   too large for a tail of its own) does an append seal in one `TransactWriteItems`: the
//!   tail (and the new messages, when they do not fit a tail of their own) into chunk
//!   items of at most [`CHUNK_MAX_BYTES`] of messages, the pending entries cut apart from
//!   the rest so their chunk keeps its key, an id marker for each sealed message.
//! - A chunk item's sort key is `m#` and its last `seq`, the key a 0.1 message item has
//!   for its own `seq`: both sort in `seq` order, so a `Query` of a key range reads a
//!   window of either, and a conversation written by 0.1 goes on with chunks after its
//!   message items.

use std::borrow::Cow;

use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::AttributeValue;
use chatvault_core::backend::{
    ConversationId, Error, Message, MessageId, MessageStatus, Part, Result,
};
use chrono::{DateTime, Utc};

use super::item::*;
use crate::dynamo::limits::MAX_APPEND_MESSAGES;

/// The tail's messages at which its seal begins (the tail is marked pending).
pub(crate) const TAIL_MAX_MESSAGES: usize = 48;
/// The tail's bytes of messages (their JSON forms) at which its seal begins.
pub(crate) const TAIL_MAX_BYTES: u64 = 48 * 1024;
/// The most messages the tail holds while its seal is pending; past it, an append seals
/// in its own transaction.
pub(crate) const TAIL_HARD_MESSAGES: usize = 96;
/// The most bytes of messages the tail holds while its seal is pending.
pub(crate) const TAIL_HARD_BYTES: u64 = 96 * 1024;
/// Chunk items are packed with up to this many bytes of messages; a larger message gets
/// a chunk of its own (a message is at most [`MAX_MESSAGE_BYTES`](crate::MAX_MESSAGE_BYTES)).
pub(crate) const CHUNK_MAX_BYTES: u64 = 256 * 1024;
/// The most messages a chunk item holds: a whole tail and a whole append sealed together.
/// A chunk holding `seq` has a key at most this far after `seq`.
pub(crate) const MAX_CHUNK_MESSAGES: u64 = (TAIL_HARD_MESSAGES + MAX_APPEND_MESSAGES) as u64;

/// Bytes kept free in the conversation item for [`PENDING`] (its name and a number).
pub(crate) const PENDING_ROOM: u64 = PENDING.len() as u64 + 8;

/// A message with its JSON form (what the tail and chunk items store).
#[derive(Clone, Debug)]
pub(crate) struct Encoded {
    pub(crate) message: Message,
    pub(crate) json: String,
}

/// A message's JSON form as the tail and chunks store it: the stable JSON form of
/// [`Message`] without the fields that hold their default (which `Message`'s reader fills
/// in), and with a message of one text part as `content` (the 0.1 form, which `Message`'s
/// reader turns back into that one part): under half the whole form for a plain text
/// message, and decoded without the generic path of parts, which makes loads and appends
/// cheaper. `parent` is left out when the message follows the one before it (`seq - 1`,
/// none for the first), which is what `Message`'s reader makes of a message without one;
/// a first message elsewhere (an edit of the first) keeps `"parent": null`.
#[derive(serde::Serialize)]
struct Compact<'a> {
    id: &'a MessageId,
    seq: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    parent: Option<Option<u64>>,
    role: &'a chatvault_core::Role,
    #[serde(skip_serializing_if = "Option::is_none")]
    content: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    parts: Option<&'a [chatvault_core::Part]>,
    #[serde(skip_serializing_if = "is_complete")]
    status: MessageStatus,
    created_at: &'a DateTime<Utc>,
    #[serde(skip_serializing_if = "Option::is_none")]
    updated_at: Option<&'a DateTime<Utc>>,
    #[serde(skip_serializing_if = "is_one")]
    revision: u64,
    #[serde(skip_serializing_if = "chatvault_core::Metadata::is_empty")]
    metadata: &'a chatvault_core::Metadata,
    #[serde(skip_serializing_if = "Option::is_none")]
    usage: Option<&'a chatvault_core::Usage>,
    #[serde(skip_serializing_if = "Option::is_none")]
    failure: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    lease_expires_at: Option<&'a DateTime<Utc>>,
}

fn is_complete(status: &MessageStatus) -> bool {
    *status == MessageStatus::Complete
}

fn is_one(revision: &u64) -> bool {
    *revision == 1
}

impl Encoded {
    pub(crate) fn new(message: Message) -> Result<Self> {
        let content = match message.parts.as_slice() {
            [Part::Text { text }] => Some(text.as_str()),
            _ => None,
        };
        let follows_previous = message.parent == Message::parent_in_line(message.seq);
        let json = json(&Compact {
            id: &message.id,
            seq: message.seq,
            parent: (!follows_previous).then_some(message.parent),
            role: &message.role,
            content,
            parts: content.is_none().then_some(message.parts.as_slice()),
            status: message.status,
            created_at: &message.created_at,
            updated_at: message.updated_at.as_ref(),
            revision: message.revision,
            metadata: &message.metadata,
            usage: message.usage.as_ref(),
            failure: message.failure.as_deref(),
            lease_expires_at: message.lease_expires_at.as_ref(),
        })?;
        Ok(Encoded { message, json })
    }

    /// The bytes it adds to a list attribute.
    pub(crate) fn size(&self) -> u64 {
        1 + self.json.len() as u64
    }
}

/// The bytes the tail attribute takes with `entries_size` bytes of entries (0 when empty:
/// an empty tail is removed).
pub(crate) fn tail_attribute_size(entries_size: u64) -> u64 {
    if entries_size == 0 {
        0
    } else {
        TAIL.len() as u64 + 3 + entries_size
    }
}

/// The entries of the tail attribute holding `messages`.
pub(crate) fn tail_entries<'a>(
    messages: impl IntoIterator<Item = &'a Encoded>,
) -> Vec<AttributeValue> {
    messages.into_iter().map(|e| s(e.json.clone())).collect()
}

/// The tail of a conversation item (empty when it has none).
pub(crate) fn decode_tail(item: &Item) -> Result<Vec<Encoded>> {
    let list = match item.get(TAIL) {
        None => return Ok(Vec::new()),
        Some(AttributeValue::L(list)) => list,
        Some(_) => return Err(corrupt(item, "attribute \"tail\" is not a list")),
    };
    let mut out: Vec<Encoded> = Vec::with_capacity(list.len());
    for value in list {
        let AttributeValue::S(text) = value else {
            return Err(corrupt(item, "an entry of \"tail\" is not a string"));
        };
        let message: Message = serde_json::from_str(text)
            .map_err(|e| corrupt(item, format!("an entry of \"tail\" is not a message: {e}")))?;
        if let Some(last) = out.last()
            && message.seq != last.message.seq + 1
        {
            return Err(corrupt(
                item,
                format!(
                    "\"tail\" holds seq {} after seq {}: not consecutive",
                    message.seq, last.message.seq
                ),
            ));
        }
        out.push(Encoded {
            message,
            json: text.clone(),
        });
    }
    Ok(out)
}

/// How many of the tail's first entries are pending (0 when none); [`corrupt`] when more
/// than the tail's `tail_len`.
pub(crate) fn decode_pending(item: &Item, tail_len: usize) -> Result<usize> {
    let pending = get_opt_n(item, PENDING)?.unwrap_or(0);
    match usize::try_from(pending) {
        Ok(p) if p <= tail_len => Ok(p),
        _ => Err(corrupt(
            item,
            format!("\"pending\" is {pending}, beyond the tail's {tail_len} entries"),
        )),
    }
}

/// The messages a reader takes from chunk items when the tail's first message is
/// `tail_first` (`None`: the tail is empty): those before it. A chunk of a pending seal
/// holds copies of tail entries, which are the tail's until an append drops them.
pub(crate) fn sealed_part(tail_first: Option<u64>) -> impl Fn(&Message) -> bool {
    move |m| tail_first.is_none_or(|first| m.seq < first)
}

/// Packs `messages` as a seal writes them: the first `pending` apart (their chunk keeps
/// the key of the pending seal's copy, which it replaces), then the rest.
pub(crate) fn pack_sealed(mut messages: Vec<Encoded>, pending: usize) -> Vec<Vec<Encoded>> {
    let rest = messages.split_off(pending.min(messages.len()));
    let mut runs = pack(messages);
    runs.extend(pack(rest));
    runs
}

/// The chunk item of a pending seal: the run of the tail's first entries as the
/// conversation's `version` holds them.
pub(crate) fn pending_chunk(id: &ConversationId, run: &[Encoded], version: u64) -> Result<Item> {
    let mut item = chunk_item(id, run, 1)?;
    item.insert(PENDING_VERSION.into(), n(version));
    Ok(item)
}

/// The greatest id of the conversation's sealed messages, when any is sealed.
pub(crate) fn decode_sealed_max(item: &Item) -> Result<Option<MessageId>> {
    match item.get(SEALED_MAX_ID) {
        None => Ok(None),
        Some(_) => MessageId::parse(get_s(item, SEALED_MAX_ID)?)
            .map(Some)
            .map_err(|e| corrupt(item, e.to_string())),
    }
}

/// Packs messages (in `seq` order) into runs for chunk items: each run at most
/// [`CHUNK_MAX_BYTES`] of JSON, but a larger message alone.
pub(crate) fn pack(messages: Vec<Encoded>) -> Vec<Vec<Encoded>> {
    let mut runs: Vec<Vec<Encoded>> = Vec::new();
    let mut bytes = 0;
    for m in messages {
        let size = m.size();
        match runs.last_mut() {
            Some(run) if bytes + size <= CHUNK_MAX_BYTES => {
                bytes += size;
                run.push(m);
            }
            _ => {
                bytes = size;
                runs.push(vec![m]);
            }
        }
    }
    runs
}

/// The chunk item of a run of messages (consecutive, in `seq` order, not empty), at chunk
/// revision `revision`, its body compressed ([`MESSAGES_LZ4`]).
pub(crate) fn chunk_item(id: &ConversationId, run: &[Encoded], revision: u64) -> Result<Item> {
    let mut item = chunk_head(id, run, revision)?;
    let body = lz4_flex::compress_prepend_size(chunk_json(run).as_bytes());
    item.insert(MESSAGES_LZ4.into(), AttributeValue::B(Blob::new(body)));
    Ok(item)
}

/// The bytes the chunk item of `run` counts as when the layout plans with it: its size
/// with the body uncompressed, so that whether a write fits DynamoDB's limits (an item's
/// 400 KB, a transaction's 4 MB) does not depend on how well its text compresses.
pub(crate) fn planned_size(id: &ConversationId, run: &[Encoded], revision: u64) -> Result<u64> {
    let head = item_size(&chunk_head(id, run, revision)?);
    let body: u64 = run.iter().map(Encoded::size).sum::<u64>() + 1;
    Ok(head + MESSAGES_LZ4.len() as u64 + body)
}

/// A chunk item without its body: its key, [`FIRST_SEQ`] and [`REVISION`].
fn chunk_head(id: &ConversationId, run: &[Encoded], revision: u64) -> Result<Item> {
    let (Some(first), Some(last)) = (run.first(), run.last()) else {
        return Err(Error::backend(
            crate::dynamo::limits::BACKEND,
            "a chunk item of no messages was asked for",
        ));
    };
    let mut item = key(id, message_sk(last.message.seq));
    item.insert(FIRST_SEQ.into(), n(first.message.seq));
    item.insert(REVISION.into(), n(revision));
    Ok(item)
}

/// The JSON array of `run`'s messages, as a chunk holds it.
fn chunk_json(run: &[Encoded]) -> String {
    let mut body = String::with_capacity(run.iter().map(|m| m.json.len() + 1).sum::<usize>() + 1);
    body.push('[');
    for (i, m) in run.iter().enumerate() {
        if i > 0 {
            body.push(',');
        }
        body.push_str(&m.json);
    }
    body.push(']');
    body
}

/// Whether an item holding messages is a chunk (rather than a 0.1 message item).
pub(crate) fn is_chunk(item: &Item) -> bool {
    item.contains_key(MESSAGES) || item.contains_key(MESSAGES_LZ4)
}

/// The most bytes a chunk's body may claim to hold once decompressed: a chunk holds at
/// most [`CHUNK_MAX_BYTES`] of messages, or one message of at most
/// [`MAX_MESSAGE_BYTES`](crate::MAX_MESSAGE_BYTES); a larger claim is damage, refused
/// before anything is allocated.
const MAX_BODY_BYTES: usize = 1024 * 1024;

/// A chunk's JSON array of messages: [`MESSAGES`] as stored (chunks written before 0.3),
/// or [`MESSAGES_LZ4`] decompressed; [`corrupt`] when neither reads.
pub(crate) fn chunk_body(item: &Item) -> Result<Cow<'_, str>> {
    if item.contains_key(MESSAGES) {
        return get_s(item, MESSAGES).map(Cow::Borrowed);
    }
    let Some(AttributeValue::B(blob)) = item.get(MESSAGES_LZ4) else {
        return Err(corrupt(
            item,
            "a chunk without \"messages\" or \"messages_lz4\"",
        ));
    };
    let bytes = blob.as_ref();
    let claimed = bytes
        .get(..4)
        .and_then(|b| <[u8; 4]>::try_from(b).ok())
        .map(u32::from_le_bytes);
    match claimed {
        Some(len) if (len as usize) <= MAX_BODY_BYTES => {}
        _ => {
            return Err(corrupt(
                item,
                format!("\"messages_lz4\" claims more than {MAX_BODY_BYTES} bytes, or none"),
            ));
        }
    }
    let body = lz4_flex::decompress_size_prepended(bytes)
        .map_err(|e| corrupt(item, format!("\"messages_lz4\" does not decompress: {e}")))?;
    String::from_utf8(body)
        .map(Cow::Owned)
        .map_err(|e| corrupt(item, format!("\"messages_lz4\" is not UTF-8: {e}")))
}

/// The messages of an item under `m#`: a chunk's run, or a 0.1 item's one message.
pub(crate) fn decode_stored(item: &Item) -> Result<Vec<Message>> {
    if !is_chunk(item) {
        return Ok(vec![decode_message(item)?]);
    }
    decode_chunk(item, &chunk_body(item)?)
}

/// The messages of chunk `item`, whose body ([`chunk_body`]) is `body`.
pub(crate) fn decode_chunk(item: &Item, body: &str) -> Result<Vec<Message>> {
    let messages: Vec<Message> = serde_json::from_str(body)
        .map_err(|e| corrupt(item, format!("the chunk's messages are not valid: {e}")))?;
    check_run(item, messages.iter().map(|m| m.seq))?;
    Ok(messages)
}

/// Checks that `seqs` (a chunk's messages', in order) are the consecutive run from the
/// chunk's [`FIRST_SEQ`] to the `seq` its key names; [`corrupt`] when not.
pub(crate) fn check_run(item: &Item, seqs: impl IntoIterator<Item = u64>) -> Result<()> {
    let first = get_n(item, FIRST_SEQ)?;
    let mut last = None;
    for (i, seq) in seqs.into_iter().enumerate() {
        if Some(seq) != first.checked_add(i as u64) {
            last = None;
            break;
        }
        last = Some(seq);
    }
    if last.is_some_and(|last| get_s(item, SK).is_ok_and(|sk| sk == message_sk(last))) {
        return Ok(());
    }
    Err(corrupt(
        item,
        format!("the chunk's messages are not the consecutive run from seq {first} to its key"),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chatvault_core::backend::{NewMessage, Role};

    fn encoded(seq: u64, text_len: usize) -> Encoded {
        let parent = seq.checked_sub(1).filter(|&p| p > 0);
        Encoded::new(NewMessage::new(Role::User, "x".repeat(text_len)).into_message(seq, parent))
            .expect("encodes")
    }

    #[test]
    fn packing_keeps_order_and_bounds_runs() {
        let messages: Vec<Encoded> = (1..=10)
            .map(|seq| encoded(seq, if seq == 4 { 300 * 1024 } else { 60 * 1024 }))
            .collect();
        let runs = pack(messages);
        let seqs: Vec<Vec<u64>> = runs
            .iter()
            .map(|r| r.iter().map(|m| m.message.seq).collect())
            .collect();
        assert_eq!(
            seqs,
            [vec![1, 2, 3], vec![4], vec![5, 6, 7, 8], vec![9, 10]]
        );
        for run in &runs {
            let bytes: u64 = run.iter().map(Encoded::size).sum();
            assert!(run.len() == 1 || bytes <= CHUNK_MAX_BYTES, "{bytes}");
        }
    }

    #[test]
    fn bodies_are_compressed_and_bodies_of_0_2_still_read() {
        let c = ConversationId::parse("c1").expect("id");
        let run: Vec<Encoded> = (1..=48).map(|seq| encoded(seq, 200)).collect();
        let item = chunk_item(&c, &run, 1).expect("item");
        let json: String = format!(
            "[{}]",
            run.iter()
                .map(|m| m.json.as_str())
                .collect::<Vec<_>>()
                .join(",")
        );
        assert!(!item.contains_key(MESSAGES));
        let Some(AttributeValue::B(blob)) = item.get(MESSAGES_LZ4) else {
            panic!("a compressed body");
        };
        assert!(
            blob.as_ref().len() * 3 < json.len(),
            "{} of {}",
            blob.as_ref().len(),
            json.len()
        );
        assert_eq!(chunk_body(&item).expect("body"), json);
        // A chunk as 0.2 wrote it: the JSON as a string.
        let mut old = item.clone();
        old.remove(MESSAGES_LZ4);
        old.insert(MESSAGES.into(), s(json.clone()));
        assert_eq!(
            decode_stored(&old).expect("decodes"),
            decode_stored(&item).expect("decodes")
        );
    }

    #[test]
    fn a_damaged_compressed_body_is_corrupt_before_any_allocation() {
        let c = ConversationId::parse("c1").expect("id");
        let run: Vec<Encoded> = (1..=3).map(|seq| encoded(seq, 10)).collect();
        let item = chunk_item(&c, &run, 1).expect("item");
        let Some(AttributeValue::B(blob)) = item.get(MESSAGES_LZ4) else {
            panic!("a compressed body");
        };
        let good = blob.as_ref().to_vec();
        let mut huge = good.clone();
        huge[..4].copy_from_slice(&u32::MAX.to_le_bytes());
        let mut cut = good.clone();
        cut.truncate(good.len() / 2);
        for (what, bytes) in [("huge", huge), ("cut", cut), ("short", vec![1, 0])] {
            let mut damaged = item.clone();
            damaged.insert(MESSAGES_LZ4.into(), AttributeValue::B(Blob::new(bytes)));
            let err = decode_stored(&damaged).expect_err(what);
            assert_eq!(
                err.kind(),
                chatvault_core::ErrorKind::Corrupt,
                "{what}: {err}"
            );
            assert!(err.to_string().contains(&message_sk(3)), "{what}: {err}");
        }
    }

    #[test]
    fn chunks_round_trip_and_refuse_a_broken_run() {
        let c = ConversationId::parse("c1").expect("id");
        let run: Vec<Encoded> = (5..=7).map(|seq| encoded(seq, 10)).collect();
        let item = chunk_item(&c, &run, 1).expect("item");
        assert_eq!(get_s(&item, SK).expect("sk"), message_sk(7));
        let back = decode_stored(&item).expect("decodes");
        assert_eq!(
            back,
            run.iter().map(|m| m.message.clone()).collect::<Vec<_>>()
        );
        let mut moved = item.clone();
        moved.insert(FIRST_SEQ.into(), n(4));
        let err = decode_stored(&moved).expect_err("not consecutive from 4");
        assert_eq!(err.kind(), chatvault_core::ErrorKind::Corrupt, "{err}");
        let mut rekeyed = item;
        rekeyed.insert(SK.into(), s(message_sk(8)));
        assert!(decode_stored(&rekeyed).is_err());
    }

    #[test]
    fn the_compact_form_reads_back_exactly() {
        use chatvault_core::backend::{Metadata, Usage};
        let plain = NewMessage::new(Role::User, "hi").into_message(1, None);
        let mut meta = Metadata::new();
        meta.insert("big".into(), serde_json::json!(u64::MAX));
        let mut full = NewMessage::with_parts(
            Role::from("critic"),
            vec![
                Part::text("a"),
                Part::tool_call("c", "f", serde_json::json!({"n": 1})),
            ],
        )
        .with_metadata(meta)
        .with_usage(Usage::new("m", 1, 2))
        .with_status(
            MessageStatus::Streaming,
            Some(chatvault_core::backend::now()),
        )
        .into_message(2, Some(1));
        full.revision = 7;
        full.updated_at = Some(chatvault_core::backend::now());
        full.failure = Some("why".into());
        let with_parts =
            |parts: Vec<Part>| NewMessage::with_parts(Role::Tool, parts).into_message(3, Some(2));
        // Branches: an edit following seq 1, and a new first message at seq 3.
        let text_at = |parent| NewMessage::new(Role::User, "v2").into_message(3, parent);
        let others = [
            with_parts(Vec::new()),
            with_parts(vec![Part::text("")]),
            with_parts(vec![Part::text("a"), Part::text("b")]),
            with_parts(vec![Part::tool_call("c", "f", serde_json::json!(null))]),
            text_at(Some(1)),
            text_at(None),
        ];
        for m in [plain.clone(), full].into_iter().chain(others) {
            let e = Encoded::new(m.clone()).expect("encodes");
            let back: Message = serde_json::from_str(&e.json).expect("decodes");
            assert_eq!(back, m);
            // The parent is written only where it is not the message before.
            let follows_previous = m.parent == m.seq.checked_sub(1).filter(|&p| p > 0);
            assert_eq!(
                e.json.contains("\"parent\""),
                !follows_previous,
                "{}",
                e.json
            );
            // One text part, and only that, is stored as `content`.
            let one_text = matches!(m.parts.as_slice(), [Part::Text { .. }]);
            assert_eq!(e.json.contains("\"content\""), one_text, "{}", e.json);
            assert_eq!(e.json.contains("\"parts\""), !one_text, "{}", e.json);
        }
        let whole = serde_json::to_string(&plain).expect("json").len();
        let compact = Encoded::new(plain).expect("encodes").json.len();
        assert!(compact * 2 < whole, "{compact} of {whole} bytes");
    }

    #[test]
    fn tails_decode_in_order_only() {
        let c = ConversationId::parse("c1").expect("id");
        let entries: Vec<Encoded> = (3..=5).map(|seq| encoded(seq, 10)).collect();
        let mut item = conversation_key(&c);
        item.insert(TAIL.into(), AttributeValue::L(tail_entries(&entries)));
        let tail = decode_tail(&item).expect("decodes");
        assert_eq!(tail.len(), 3);
        let size: u64 = tail.iter().map(Encoded::size).sum();
        assert_eq!(size, entries.iter().map(Encoded::size).sum::<u64>());
        assert_eq!(
            tail_attribute_size(size),
            attribute_size(&item, TAIL),
            "the size the layout counts is the size DynamoDB counts"
        );
        item.insert(
            TAIL.into(),
            AttributeValue::L(tail_entries([&entries[0], &entries[2]])),
        );
        assert!(decode_tail(&item).is_err());
    }
}
