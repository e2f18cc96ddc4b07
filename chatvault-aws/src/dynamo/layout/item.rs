//! The table layout: attribute names, key encodings, and items to and from the model.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;
use chatvault_core::backend::{
    ConversationId, ConversationRecord, ConversationSummary, Error, FileAttachment, Message,
    MessageId, MessageStatus, Metadata, Part, Result, Role, Tree, Usage, UserId,
};
use chrono::{DateTime, SecondsFormat, Utc};

use crate::dynamo::limits::BACKEND;

/// An item as the SDK holds it.
pub(crate) type Item = HashMap<String, AttributeValue>;

/// Attributes a write sets on the conversation item, with their values.
pub(crate) type Attributes = Vec<(&'static str, AttributeValue)>;

/// Partition key (S): the conversation id.
pub(crate) const PK: &str = "pk";
/// Sort key (S): [`CONVERSATION_SK`] or [`message_sk`].
pub(crate) const SK: &str = "sk";
/// Sort key of the conversation item.
pub(crate) const CONVERSATION_SK: &str = "#conversation";
/// Prefix of the sort keys of the items that hold sealed messages: `m#` and the last
/// `seq` the item holds (see [`message_sk`]). A chunk item holds a run of messages; an
/// item written by 0.1 holds one.
pub(crate) const MESSAGE_PREFIX: &str = "m#";
/// Prefix of the id-marker items' sort keys: `mid#` + message id, holding the message's
/// `seq`. Sorts after every message item (`"m#" < "mid#"`), so a `Query` from the
/// conversation item through the message items never meets a marker.
pub(crate) const MARKER_PREFIX: &str = "mid#";

pub(crate) const FORMAT: &str = "format";
/// The format version written to conversation items: 2 since chatvault-aws 0.2 (the
/// recent messages in the conversation item's [`TAIL`], older ones sealed into chunk
/// items, id markers for sealed messages; message parts, status, revision, usage). Items
/// of format 1 (0.1, one item per message) read unchanged; the first write of messages
/// indexes them (id markers) and moves the conversation to format 2, which 0.1 refuses to
/// read (rather than misread its messages). Format 3 (chatvault-aws 0.3) adds the pending
/// seal ([`PENDING`]): the tail's first entries may already have a chunk item, which only
/// the tail's copy makes live, so 0.2 (which would read the chunk's copy) refuses it.
pub(crate) const FORMAT_VERSION: u64 = 3;
/// L of S, on the conversation item: the most recent messages, each as its JSON form, in
/// `seq` order. An append adds to it; when it would grow past its bounds
/// it is sealed into a chunk item.
pub(crate) const TAIL: &str = "tail";
/// S, on the conversation item: the greatest message id (as DynamoDB orders strings) of
/// the sealed messages (every message not in the tail); absent while none is sealed.
/// Ids that sort after it cannot be sealed ones, which spares an append the read of their
/// id markers.
pub(crate) const SEALED_MAX_ID: &str = "sealed_max_id";
/// N, on the conversation item: how many of the tail's first entries are being sealed
/// (format 3). Their chunk item is written outside any append (see
/// [`chunks`](super::chunks)); until an append drops them from the tail, the tail's
/// copies are the messages and a chunk item holding them is not read. Absent: none.
pub(crate) const PENDING: &str = "pending";
/// N, on a chunk item written for a pending seal: the conversation's `version` whose
/// tail it copied. Such a chunk is replaced only by a copy of a later version; a chunk
/// without it (sealed in a transaction, or rewritten by an update) never is.
pub(crate) const PENDING_VERSION: &str = "pending_version";
/// S, on chunk items written before 0.3: the JSON array of the chunk's messages, in
/// `seq` order.
pub(crate) const MESSAGES: &str = "messages";
/// B, on chunk items since 0.3: the same JSON array compressed with LZ4 (a block, its
/// length in 4 little-endian bytes first): fewer bytes to store, read and send, and no
/// JSON string to unescape.
pub(crate) const MESSAGES_LZ4: &str = "messages_lz4";
/// N, on chunk items: the `seq` of the chunk's first message.
pub(crate) const FIRST_SEQ: &str = "first_seq";
pub(crate) const USER_ID: &str = "user_id";
pub(crate) const TITLE: &str = "title";
pub(crate) const CREATED_AT: &str = "created_at";
pub(crate) const LAST_ACTIVE: &str = "last_active";
pub(crate) const ACTIVITY: &str = "activity";
pub(crate) const LIST_SHARD: &str = "list_shard";
pub(crate) const ARCHIVED: &str = "archived";
pub(crate) const METADATA: &str = "metadata";
/// N, on the conversation item: how many messages its active path holds (what listings
/// show; every stored message while it has no [`TREE`]).
pub(crate) const MESSAGE_COUNT: &str = "message_count";
/// S, on the conversation item: its branch table ([`Tree`]) as JSON, absent while the
/// conversation is one line read to its end (as every conversation written before
/// branches is). The number of stored messages is the table's when it is there, else
/// [`MESSAGE_COUNT`].
pub(crate) const TREE: &str = "tree";
pub(crate) const FILE_COUNT: &str = "file_count";
pub(crate) const VERSION: &str = "version";
pub(crate) const FILES: &str = "files";
/// BOOL, only on the conversation item of a conversation being deleted (see
/// `DynamoMessages::delete`): writers treat it as gone.
pub(crate) const DELETING: &str = "deleting";
pub(crate) const SEQ: &str = "seq";
pub(crate) const ID: &str = "id";
pub(crate) const ROLE: &str = "role";
/// 0.1 message items: the text.
pub(crate) const CONTENT: &str = "content";
/// Format 2 message items: the parts as JSON.
pub(crate) const PARTS: &str = "parts";
pub(crate) const STATUS: &str = "status";
pub(crate) const REVISION: &str = "revision";
pub(crate) const UPDATED_AT: &str = "updated_at";
/// Usage as JSON: a message's, or a conversation's totals.
pub(crate) const USAGE: &str = "usage";
pub(crate) const FAILURE: &str = "failure";
pub(crate) const LEASE_EXPIRES_AT: &str = "lease_expires_at";

/// GSI listing one user's conversations: `user_id` (HASH), `activity` (RANGE).
pub(crate) const BY_USER_INDEX: &str = "by_user";
/// GSI listing every conversation: `list_shard` (HASH), `activity` (RANGE).
pub(crate) const BY_ACTIVITY_INDEX: &str = "by_activity";
/// How many partitions of [`BY_ACTIVITY_INDEX`] conversations are spread over.
pub(crate) const LIST_SHARDS: u32 = 8;

/// Non-key attributes both GSIs project (a summary needs nothing else but `usage`, which
/// tables created by 0.1 do not project: listings read it when it is there).
pub(crate) const SUMMARY_ATTRIBUTES: &[&str] = &[
    TITLE,
    CREATED_AT,
    LAST_ACTIVE,
    ARCHIVED,
    MESSAGE_COUNT,
    FILE_COUNT,
    USAGE,
];

/// DynamoDB's item size limit: 400 KB.
pub(crate) const MAX_ITEM_SIZE: u64 = 400 * 1024;
/// DynamoDB's limit on the actions of one transaction.
pub(crate) const MAX_TRANSACTION_ITEMS: usize = 100;
/// DynamoDB's limit on a transaction's total item size: 4 MB.
pub(crate) const MAX_TRANSACTION_SIZE: u64 = 4 * 1024 * 1024;

/// The sort key of message `seq`: `m#` and 20 zero-padded digits, so that string order is
/// `seq` order for every `u64`.
pub(crate) fn message_sk(seq: u64) -> String {
    format!("{MESSAGE_PREFIX}{seq:020}")
}

/// RFC 3339 in UTC with exactly six fractional digits: fixed width, so that string order
/// is time order (for years 0000-9999).
pub(crate) fn format_time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, true)
}

pub(crate) fn parse_time(item: &Item, s: &str) -> Result<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| corrupt(item, format!("bad time {s:?}: {e}")))
}

/// The GSI sort key: `{last_active}#{id}`. Both parts compare as UTF-8 bytes, as
/// DynamoDB compares strings, and the time has a fixed width, so descending key order is
/// (last_active, id) descending: the listing order.
pub(crate) fn activity(last_active: DateTime<Utc>, id: &ConversationId) -> String {
    format!("{}#{id}", format_time(last_active))
}

/// The `by_activity` partition of a conversation: `all#0` .. `all#7`, by a stable hash
/// (FNV-1a) of its id.
pub(crate) fn list_shard(id: &ConversationId) -> String {
    format!(
        "all#{}",
        fnv1a(id.as_str().as_bytes()) % u64::from(LIST_SHARDS)
    )
}

pub(crate) fn shard_name(n: u32) -> String {
    format!("all#{n}")
}

fn fnv1a(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        hash ^= u64::from(*b);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash
}

/// The [`Error::Corrupt`] of an item that cannot be decoded: where (its key) and what.
pub(crate) fn corrupt(item: &Item, what: impl Into<String>) -> Error {
    let part = |name: &str| match item.get(name) {
        Some(AttributeValue::S(v)) => v.clone(),
        _ => "?".to_owned(),
    };
    Error::corrupt(
        BACKEND,
        format!("item pk={:?} sk={:?}", part(PK), part(SK)),
        what,
    )
}

pub(crate) fn s(value: impl Into<String>) -> AttributeValue {
    AttributeValue::S(value.into())
}

pub(crate) fn n(value: u64) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

pub(crate) fn key(id: &ConversationId, sk: impl Into<String>) -> Item {
    HashMap::from([(PK.to_owned(), s(id.as_str())), (SK.to_owned(), s(sk))])
}

pub(crate) fn conversation_key(id: &ConversationId) -> Item {
    key(id, CONVERSATION_SK)
}

/// The sort key of the id marker of message `id`.
pub(crate) fn marker_sk(id: &MessageId) -> String {
    format!("{MARKER_PREFIX}{id}")
}

pub(crate) fn json<T: serde::Serialize + ?Sized>(value: &T) -> Result<String> {
    serde_json::to_string(value).map_err(|e| Error::backend(BACKEND, e))
}

pub(crate) fn get_s<'a>(item: &'a Item, name: &str) -> Result<&'a str> {
    match item.get(name) {
        Some(AttributeValue::S(v)) => Ok(v),
        _ => Err(corrupt(item, format!("string attribute {name:?} missing"))),
    }
}

fn get_opt_s<'a>(item: &'a Item, name: &str) -> Result<Option<&'a str>> {
    match item.get(name) {
        None | Some(AttributeValue::Null(_)) => Ok(None),
        Some(AttributeValue::S(v)) => Ok(Some(v)),
        Some(_) => Err(corrupt(item, format!("attribute {name:?} is not a string"))),
    }
}

pub(crate) fn get_n(item: &Item, name: &str) -> Result<u64> {
    match item.get(name) {
        Some(AttributeValue::N(v)) => v
            .parse()
            .map_err(|_| corrupt(item, format!("attribute {name:?} = {v:?} is not a u64"))),
        _ => Err(corrupt(item, format!("number attribute {name:?} missing"))),
    }
}

/// A number attribute, `None` when absent.
pub(crate) fn get_opt_n(item: &Item, name: &str) -> Result<Option<u64>> {
    match item.get(name) {
        None => Ok(None),
        Some(_) => get_n(item, name).map(Some),
    }
}

fn get_bool(item: &Item, name: &str) -> Result<bool> {
    match item.get(name) {
        None => Ok(false),
        Some(AttributeValue::Bool(b)) => Ok(*b),
        Some(_) => Err(corrupt(
            item,
            format!("attribute {name:?} is not a boolean"),
        )),
    }
}

/// A JSON attribute (S), decoded; `None` when absent.
fn get_json<T: serde::de::DeserializeOwned>(item: &Item, name: &str) -> Result<Option<T>> {
    get_opt_s(item, name)?
        .map(|text| {
            serde_json::from_str(text)
                .map_err(|e| corrupt(item, format!("attribute {name:?} is not valid: {e}")))
        })
        .transpose()
}

fn get_metadata(item: &Item) -> Result<Metadata> {
    Ok(get_json(item, METADATA)?.unwrap_or_default())
}

fn get_time(item: &Item, name: &str) -> Result<DateTime<Utc>> {
    parse_time(item, get_s(item, name)?)
}

fn get_opt_time(item: &Item, name: &str) -> Result<Option<DateTime<Utc>>> {
    get_opt_s(item, name)?
        .map(|t| parse_time(item, t))
        .transpose()
}

fn get_conversation_id(item: &Item) -> Result<ConversationId> {
    ConversationId::parse(get_s(item, PK)?).map_err(|e| corrupt(item, e.to_string()))
}

fn get_user_id(item: &Item) -> Result<Option<UserId>> {
    get_opt_s(item, USER_ID)?
        .map(|u| UserId::parse(u).map_err(|e| corrupt(item, e.to_string())))
        .transpose()
}

/// The conversation item of `record` with its attachments.
pub(crate) fn conversation_item(
    record: &ConversationRecord,
    files: &[FileAttachment],
) -> Result<Item> {
    let mut item = conversation_key(&record.id);
    item.insert(FORMAT.into(), n(FORMAT_VERSION));
    if let Some(user) = &record.user_id {
        item.insert(USER_ID.into(), s(user.as_str()));
    }
    if let Some(title) = &record.title {
        item.insert(TITLE.into(), s(title));
    }
    item.insert(CREATED_AT.into(), s(format_time(record.created_at)));
    item.insert(LAST_ACTIVE.into(), s(format_time(record.last_active)));
    item.insert(ACTIVITY.into(), s(activity(record.last_active, &record.id)));
    item.insert(LIST_SHARD.into(), s(list_shard(&record.id)));
    item.insert(ARCHIVED.into(), AttributeValue::Bool(record.archived));
    item.insert(METADATA.into(), s(json(&record.metadata)?));
    let (branches, _) = branch_attributes(record)?;
    item.extend(
        branches
            .into_iter()
            .map(|(name, value)| (name.to_owned(), value)),
    );
    item.insert(FILE_COUNT.into(), n(record.file_count));
    item.insert(VERSION.into(), n(record.version));
    if record.usage != Usage::default() {
        item.insert(USAGE.into(), s(json(&record.usage)?));
    }
    item.insert(FILES.into(), s(json(files)?));
    Ok(item)
}

/// The attributes that store `record`'s branches: [`MESSAGE_COUNT`] (the active path's
/// length) and, when it has a branch table, [`TREE`]; with the attribute to remove when it
/// has none (`tree`, which a write of the whole item simply leaves out).
pub(crate) fn branch_attributes(
    record: &ConversationRecord,
) -> Result<(Attributes, Option<&'static str>)> {
    let mut set = vec![(MESSAGE_COUNT, n(record.path_len()))];
    match &record.tree {
        Some(tree) => {
            set.push((TREE, s(json(tree)?)));
            Ok((set, None))
        }
        None => Ok((set, Some(TREE))),
    }
}

/// The record and attachments of a conversation item.
pub(crate) fn decode_conversation(
    item: &Item,
) -> Result<(ConversationRecord, Vec<FileAttachment>)> {
    let format = get_n(item, FORMAT)?;
    if format > FORMAT_VERSION {
        return Err(corrupt(
            item,
            format!(
                "conversation item of format {format}, written by a newer chatvault-aws; this one reads up to {FORMAT_VERSION}"
            ),
        ));
    }
    let tree: Option<Tree> = get_json(item, TREE)?;
    let message_count = match &tree {
        Some(tree) => tree.message_count(),
        None => get_n(item, MESSAGE_COUNT)?,
    };
    let mut record = ConversationRecord::with_id(
        get_conversation_id(item)?,
        get_user_id(item)?,
        get_time(item, CREATED_AT)?,
    );
    record.title = get_opt_s(item, TITLE)?.map(str::to_owned);
    record.last_active = get_time(item, LAST_ACTIVE)?;
    record.archived = get_bool(item, ARCHIVED)?;
    record.metadata = get_metadata(item)?;
    record.message_count = message_count;
    record.file_count = get_n(item, FILE_COUNT)?;
    record.usage = get_json(item, USAGE)?.unwrap_or_default();
    record.version = get_n(item, VERSION)?;
    record.tree = tree;
    let files = get_json(item, FILES)?.unwrap_or_default();
    Ok((record, files))
}

/// Whether a conversation item carries the tombstone of a deletion in progress.
pub(crate) fn is_deleting(item: &Item) -> bool {
    matches!(item.get(DELETING), Some(AttributeValue::Bool(true)))
}

/// A summary from a GSI item (the projected attributes) or a whole conversation item.
pub(crate) fn decode_summary(item: &Item) -> Result<ConversationSummary> {
    let mut summary = ConversationSummary::new(
        get_conversation_id(item)?,
        get_user_id(item)?,
        get_time(item, CREATED_AT)?,
    );
    summary.title = get_opt_s(item, TITLE)?.map(str::to_owned);
    summary.last_active = get_time(item, LAST_ACTIVE)?;
    summary.archived = get_bool(item, ARCHIVED)?;
    summary.message_count = get_n(item, MESSAGE_COUNT)?;
    summary.file_count = get_n(item, FILE_COUNT)?;
    summary.usage = get_json(item, USAGE)?.unwrap_or_default();
    Ok(summary)
}

/// The item of one message with its parts as JSON, as 0.1 laid messages out (one item
/// each); 0.2 writes chunk items, and reads these.
#[cfg(test)]
pub(crate) fn message_item(conversation_id: &ConversationId, message: &Message) -> Result<Item> {
    let mut item = key(conversation_id, message_sk(message.seq));
    item.insert(SEQ.into(), n(message.seq));
    item.insert(ID.into(), s(message.id.as_str()));
    item.insert(ROLE.into(), s(message.role.as_str()));
    item.insert(PARTS.into(), s(json(&message.parts)?));
    item.insert(CREATED_AT.into(), s(format_time(message.created_at)));
    item.insert(REVISION.into(), n(message.revision));
    item.extend(message_fields(message)?);
    Ok(item)
}

/// The attributes of a message that an update may change, but `parts` and `revision`:
/// `(name, Some(value))` to set, `(name, None)` to remove.
#[cfg(test)]
pub(crate) fn message_fields(message: &Message) -> Result<Vec<(String, AttributeValue)>> {
    Ok(optional_message_fields(message)?
        .into_iter()
        .filter_map(|(name, value)| value.map(|v| (name.to_owned(), v)))
        .collect())
}

/// Every optional attribute of a message item, set or not.
pub(crate) fn optional_message_fields(
    message: &Message,
) -> Result<Vec<(&'static str, Option<AttributeValue>)>> {
    let status = serde_json::to_value(message.status)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .ok_or_else(|| Error::backend(BACKEND, "a message status without a name"))?;
    Ok(vec![
        (
            STATUS,
            (message.status != MessageStatus::Complete).then(|| s(status)),
        ),
        (
            METADATA,
            (!message.metadata.is_empty())
                .then(|| json(&message.metadata))
                .transpose()?
                .map(s),
        ),
        (USAGE, message.usage.as_ref().map(json).transpose()?.map(s)),
        (UPDATED_AT, message.updated_at.map(|t| s(format_time(t)))),
        (FAILURE, message.failure.as_ref().map(s)),
        (
            LEASE_EXPIRES_AT,
            message.lease_expires_at.map(|t| s(format_time(t))),
        ),
    ])
}

/// A message from its item: format 2 (`parts`), or 0.1 (`content`: one text part). Items
/// of one message are written by 0.1 only, in one line: each follows the message before.
pub(crate) fn decode_message(item: &Item) -> Result<Message> {
    let parts = match get_json::<Vec<Part>>(item, PARTS)? {
        Some(parts) => parts,
        None => vec![Part::text(get_s(item, CONTENT)?)],
    };
    let status = match get_opt_s(item, STATUS)? {
        None => MessageStatus::Complete,
        Some(name) => serde_json::from_value(serde_json::Value::String(name.to_owned()))
            .map_err(|e| corrupt(item, format!("status {name:?}: {e}")))?,
    };
    let seq = get_n(item, SEQ)?;
    let mut message = Message::new(
        MessageId::parse(get_s(item, ID)?).map_err(|e| corrupt(item, e.to_string()))?,
        seq,
        Message::parent_in_line(seq),
        Role::from(get_s(item, ROLE)?),
        parts,
        get_time(item, CREATED_AT)?,
    );
    message.status = status;
    message.updated_at = get_opt_time(item, UPDATED_AT)?;
    message.revision = get_opt_n(item, REVISION)?.unwrap_or(1);
    message.metadata = get_metadata(item)?;
    message.usage = get_json(item, USAGE)?;
    message.failure = get_opt_s(item, FAILURE)?.map(str::to_owned);
    message.lease_expires_at = get_opt_time(item, LEASE_EXPIRES_AT)?;
    Ok(message)
}

/// The id marker of message `message_id`: its `seq`.
pub(crate) fn marker_item(
    conversation_id: &ConversationId,
    message_id: &MessageId,
    seq: u64,
) -> Item {
    let mut item = key(conversation_id, marker_sk(message_id));
    item.insert(SEQ.into(), n(seq));
    item
}

/// Room every conversation item keeps free for the tombstone `delete` adds to it
/// (`deleting`: 9 bytes, and a `version` that may grow by a digit), so that a full
/// conversation can always be deleted.
pub(crate) const TOMBSTONE_ROOM: u64 = 16;

/// The size a conversation item counts against DynamoDB's 400 KB: its [`item_size`] plus
/// [`TOMBSTONE_ROOM`].
pub(crate) fn conversation_item_size(item: &Item) -> u64 {
    item_size(item) + TOMBSTONE_ROOM
}

/// The bytes one attribute (name and value) adds to an item; 0 when it is absent.
pub(crate) fn attribute_size(item: &Item, name: &str) -> u64 {
    item.get(name)
        .map_or(0, |value| name.len() as u64 + value_size(value))
}

/// An upper bound of an item's size as DynamoDB counts it: attribute names plus values
/// (strings in UTF-8 bytes, numbers at most 21 bytes, booleans 1 byte).
pub(crate) fn item_size(item: &Item) -> u64 {
    item.iter()
        .map(|(name, value)| name.len() as u64 + value_size(value))
        .sum()
}

fn value_size(value: &AttributeValue) -> u64 {
    match value {
        AttributeValue::S(v) => v.len() as u64,
        AttributeValue::N(v) => (v.len() as u64).div_ceil(2) + 1,
        AttributeValue::Bool(_) | AttributeValue::Null(_) => 1,
        AttributeValue::B(b) => b.as_ref().len() as u64,
        AttributeValue::L(list) => 3 + list.iter().map(|v| 1 + value_size(v)).sum::<u64>(),
        AttributeValue::M(map) => {
            3 + map
                .iter()
                .map(|(k, v)| 1 + k.len() as u64 + value_size(v))
                .sum::<u64>()
        }
        AttributeValue::Ss(v) => v.iter().map(|x| x.len() as u64).sum(),
        AttributeValue::Ns(v) => v.iter().map(|x| x.len() as u64 + 1).sum(),
        AttributeValue::Bs(v) => v.iter().map(|x| x.as_ref().len() as u64).sum(),
        // Attribute types added to the SDK later: count generously.
        _ => 1024,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chatvault_core::backend::NewMessage;

    #[test]
    fn message_sort_keys_sort_by_seq() {
        let seqs = [0, 1, 9, 10, 99, 100, 12_345, u64::from(u32::MAX), u64::MAX];
        let keys: Vec<String> = seqs.iter().map(|&q| message_sk(q)).collect();
        let mut sorted = keys.clone();
        sorted.sort();
        assert_eq!(keys, sorted);
        assert_eq!(message_sk(42), "m#00000000000000000042");
        assert_eq!(message_sk(u64::MAX), "m#18446744073709551615");
        // The conversation item sorts before every message.
        assert!(CONVERSATION_SK < message_sk(0).as_str());
    }

    #[test]
    fn times_are_fixed_width_and_sort() {
        let a = DateTime::from_timestamp_micros(1_700_000_000_000_000).expect("valid");
        let b = a + chrono::Duration::microseconds(1);
        let c = a + chrono::Duration::seconds(1);
        let (fa, fb, fc) = (format_time(a), format_time(b), format_time(c));
        assert_eq!(fa, "2023-11-14T22:13:20.000000Z");
        assert_eq!(fa.len(), fb.len());
        assert!(fa < fb && fb < fc);
        assert_eq!(parse_time(&Item::new(), &fb).expect("parses"), b);
    }

    #[test]
    fn activity_keys_order_like_listings() {
        let t = DateTime::from_timestamp_micros(1_700_000_000_000_000).expect("valid");
        let later = t + chrono::Duration::microseconds(1);
        // Listing order: last_active desc, then id desc; descending key order must match.
        let mut entries = vec![
            (t, "a"),
            (t, "b"),
            (t, "ab"),
            (t, "B"),
            (t, "a-1"),
            (later, "0"),
            (t, "zz"),
        ];
        let mut by_key = entries.clone();
        by_key.sort_by_key(|(time, id)| {
            std::cmp::Reverse(activity(*time, &ConversationId::parse(*id).expect("id")))
        });
        entries.sort_by(|a, b| b.cmp(a));
        assert_eq!(by_key, entries);
    }

    #[test]
    fn shards_are_stable_and_spread() {
        let abc = ConversationId::parse("abc").expect("id");
        assert_eq!(list_shard(&abc), list_shard(&abc));
        let mut seen = std::collections::HashSet::new();
        for i in 0..200 {
            seen.insert(list_shard(
                &ConversationId::parse(format!("conversation-{i}")).expect("id"),
            ));
        }
        assert_eq!(seen.len(), LIST_SHARDS as usize);
    }

    #[test]
    fn conversation_items_round_trip() {
        let mut record = ConversationRecord::new(Some(UserId::parse("user-1").expect("user")));
        record.title = Some("Ünïcode title".into());
        record.metadata.insert(
            "x".into(),
            serde_json::json!({"f": 0.1, "big": u64::MAX, "neg": i64::MIN}),
        );
        record.message_count = 7;
        record.archived = true;
        record.usage = Usage::new("m", 3, 4);
        record.usage.model = None;
        let files = vec![FileAttachment::new(
            chatvault_core::FileId::parse("f1").expect("id"),
            "a b.pdf",
            chatvault_core::ContentType::parse("application/pdf").expect("type"),
            3,
            "00",
            chatvault_core::StorageKey::parse("u/c/f1/a%20b.pdf").expect("key"),
            chatvault_core::backend::now(),
        )];
        let item = conversation_item(&record, &files).expect("encodes");
        let (back, back_files) = decode_conversation(&item).expect("decodes");
        assert_eq!(back, record);
        assert_eq!(back_files, files);
        assert_eq!(decode_summary(&item).expect("summary"), record.summary());
    }

    #[test]
    fn branch_tables_round_trip_and_listings_count_the_active_path() {
        use chatvault_core::backend::{NewMessage, Parent};
        let mut record = ConversationRecord::new(None);
        let line = (0..4).map(|i| NewMessage::new(Role::User, format!("m{i}")));
        record
            .apply_append(line.collect(), record.created_at)
            .expect("appends");
        let item = conversation_item(&record, &[]).expect("encodes");
        // One line read to its end: no table, as items written before branches.
        assert!(!item.contains_key(TREE));
        assert_eq!(decode_conversation(&item).expect("decodes").0, record);
        let edit = NewMessage::new(Role::User, "m1, edited").with_parent(Parent::Seq(1));
        record
            .apply_append(vec![edit], record.created_at)
            .expect("edits");
        assert!(record.tree.is_some());
        let item = conversation_item(&record, &[]).expect("encodes");
        assert_eq!(
            get_s(&item, TREE).expect("tree"),
            json(&record.tree).expect("json")
        );
        assert_eq!(get_n(&item, MESSAGE_COUNT).expect("count"), 2);
        let (back, _) = decode_conversation(&item).expect("decodes");
        assert_eq!(back, record);
        assert_eq!(back.message_count, 5);
        let summary = decode_summary(&item).expect("summary");
        assert_eq!((summary.message_count, summary), (2, record.summary()));
        let (set, remove) = branch_attributes(&record).expect("attributes");
        assert_eq!(remove, None);
        assert!(set.iter().any(|(name, _)| *name == TREE));
        let mut damaged = item;
        damaged.insert(TREE.into(), s("[1,"));
        let err = decode_conversation(&damaged).expect_err("corrupt");
        assert_eq!(err.kind(), chatvault_core::ErrorKind::Corrupt, "{err}");
    }

    #[test]
    fn message_items_round_trip() {
        let c1 = ConversationId::parse("c1").expect("id");
        let mut meta = Metadata::new();
        meta.insert("tiny".into(), serde_json::json!(1e-300));
        let m = NewMessage::with_parts(
            Role::from("critic"),
            vec![
                Part::text("hi"),
                Part::tool_call("c", "f", serde_json::json!({"n": 9007199254740993u64})),
            ],
        )
        .with_metadata(meta)
        .with_usage(Usage::new("gpt", 1, 2))
        .with_status(
            MessageStatus::Streaming,
            Some(chatvault_core::backend::now()),
        )
        .into_message(3, Some(2));
        let item = message_item(&c1, &m).expect("encodes");
        assert_eq!(decode_message(&item).expect("decodes"), m);
        let plain = NewMessage::new(Role::User, "x").into_message(1, None);
        let item = message_item(&c1, &plain).expect("encodes");
        assert!(!item.contains_key(METADATA) && !item.contains_key(STATUS));
        assert_eq!(decode_message(&item).expect("decodes"), plain);
        // A 0.1 item: `content`, no parts, no revision.
        let mut old = item.clone();
        old.remove(PARTS);
        old.remove(REVISION);
        old.insert(CONTENT.into(), s("x"));
        assert_eq!(decode_message(&old).expect("decodes"), plain);
        // Undecodable: Corrupt, naming the item.
        old.insert(PARTS.into(), s("not json"));
        let err = decode_message(&old).expect_err("corrupt");
        assert_eq!(err.kind(), chatvault_core::ErrorKind::Corrupt, "{err}");
        assert!(err.to_string().contains("m#00000000000000000001"), "{err}");
    }

    #[test]
    fn sizes_count_names_and_values() {
        let item = HashMap::from([
            ("ab".to_owned(), s("héllo")),                // 2 + 6
            ("n".to_owned(), n(12345)),                   // 1 + 4
            ("b".to_owned(), AttributeValue::Bool(true)), // 1 + 1
        ]);
        assert_eq!(item_size(&item), 15);
    }
}
