//! Data written by chatvault-aws 0.1 stays readable.
//!
//! `tests/fixtures/v0.1/` holds what the 0.1 code wrote, committed before any format
//! change:
//!
//! - `items.json`: every DynamoDB item of the table, in the low-level JSON form that
//!   `Scan` returns (`{"pk": {"S": "..."}, "version": {"N": "3"}, ...}`), sorted by key;
//! - `s3_objects.json`: the S3 objects of the attachments (key, content type, bytes as hex);
//! - `expected.json`: what the 0.1 code read back: every conversation with its messages
//!   and attachments, and each user's listing.
//!
//! `v0_1_items_read_back_exactly` loads the items unchanged into a fresh table (and the
//! objects into a fresh bucket) and reads everything back through the current code.
//!
//! The fixtures were written by `generate_v0_1_fixtures` running against the 0.1 code
//! (commit b36f285); its source is kept, not compiled, in
//! `tests/fixtures/v0.1/generator.rs`, with how to run it again.
#![allow(clippy::unwrap_used)] // tests may unwrap
mod common;

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;

use aws_sdk_dynamodb::types::{AttributeValue, PutRequest, WriteRequest};
use chatvault_aws::{DynamoMessages, S3Files};
use chatvault_core::backend::ConversationHead;
use chatvault_core::backend::MessagesBackendExt;
use chatvault_core::{
    ChatVault, ConversationId, FileAttachment, FileId, ListOptions, Message, MessageRange,
    MessagesBackend, Metadata, NewMessage, Parent, Part, Role, UserId,
};
use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

fn fixtures_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/v0.1")
}

fn time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// A conversation as the 0.1 code read it back, in a form of its own (not the model's
/// serde), so that it stays readable whatever the model becomes.
#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct ExpectedConversation {
    id: String,
    user_id: Option<String>,
    title: Option<String>,
    archived: bool,
    created_at: String,
    last_active: String,
    metadata: Value,
    message_count: u64,
    file_count: u64,
    version: u64,
    messages: Vec<ExpectedMessage>,
    files: Vec<ExpectedFile>,
}

#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct ExpectedMessage {
    id: String,
    seq: u64,
    role: String,
    /// The text of the message.
    content: String,
    created_at: String,
    metadata: Value,
}

#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct ExpectedFile {
    id: String,
    filename: String,
    content_type: String,
    size: u64,
    sha256: String,
    storage_key: String,
    uploaded_at: String,
    metadata: Value,
}

#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct Expected {
    conversations: Vec<ExpectedConversation>,
    /// Each user's conversation ids as `list_conversations` gives them, archived included,
    /// newest activity first.
    listings: BTreeMap<String, Vec<String>>,
}

#[derive(Debug, Serialize, Deserialize)]
struct S3Object {
    key: String,
    content_type: String,
    hex: String,
}

fn metadata(m: &Metadata) -> Value {
    Value::Object(m.clone())
}

fn expected_message(m: &Message) -> ExpectedMessage {
    // 0.1 stored plain text: it reads as one text part.
    assert_eq!(m.parts, vec![Part::text(m.content())], "{}", m.id);
    ExpectedMessage {
        id: m.id.to_string(),
        seq: m.seq,
        role: m.role.as_str().to_owned(),
        content: m.content(),
        created_at: time(m.created_at),
        metadata: metadata(&m.metadata),
    }
}

fn expected_file(f: &FileAttachment) -> ExpectedFile {
    ExpectedFile {
        id: f.id.to_string(),
        filename: f.filename.clone(),
        content_type: f.content_type.to_string(),
        size: f.size,
        sha256: f.sha256.clone(),
        storage_key: f.storage_key.to_string(),
        uploaded_at: time(f.uploaded_at),
        metadata: metadata(&f.metadata),
    }
}

fn expected_conversation(c: &ConversationHead, messages: &[Message]) -> ExpectedConversation {
    let r = &c.record;
    ExpectedConversation {
        id: r.id.to_string(),
        user_id: r.user_id.as_ref().map(UserId::to_string),
        title: r.title.clone(),
        archived: r.archived,
        created_at: time(r.created_at),
        last_active: time(r.last_active),
        metadata: metadata(&r.metadata),
        message_count: r.message_count,
        file_count: r.file_count,
        version: r.version,
        messages: messages.iter().map(expected_message).collect(),
        files: c.files.iter().map(expected_file).collect(),
    }
}

/// An attribute value from DynamoDB's low-level JSON form (`{"S": "..."}`).
fn from_json(value: &Value) -> AttributeValue {
    let object = value.as_object().expect("an attribute value is an object");
    assert_eq!(object.len(), 1, "one type tag: {value}");
    let (tag, v) = object.iter().next().unwrap();
    match tag.as_str() {
        "S" => AttributeValue::S(v.as_str().unwrap().to_owned()),
        "N" => AttributeValue::N(v.as_str().unwrap().to_owned()),
        "BOOL" => AttributeValue::Bool(v.as_bool().unwrap()),
        "NULL" => AttributeValue::Null(v.as_bool().unwrap()),
        "L" => AttributeValue::L(v.as_array().unwrap().iter().map(from_json).collect()),
        "M" => AttributeValue::M(
            v.as_object()
                .unwrap()
                .iter()
                .map(|(k, v)| (k.clone(), from_json(v)))
                .collect(),
        ),
        other => panic!("unknown type tag {other}"),
    }
}

fn item_from_json(value: &Value) -> HashMap<String, AttributeValue> {
    value
        .as_object()
        .expect("an item is an object")
        .iter()
        .map(|(k, v)| (k.clone(), from_json(v)))
        .collect()
}

fn hex(data: &[u8]) -> String {
    data.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Vec<u8> {
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap())
        .collect()
}

fn read_fixture<T: serde::de::DeserializeOwned>(name: &str) -> T {
    let text = std::fs::read_to_string(fixtures_dir().join(name)).unwrap();
    serde_json::from_str(&text).unwrap()
}

/// Loads the 0.1 items unchanged into `messages`' fresh table.
async fn load_items(messages: &DynamoMessages) -> usize {
    let items: Vec<Value> = read_fixture("items.json");
    for chunk in items.chunks(25) {
        let mut requests: Vec<WriteRequest> = chunk
            .iter()
            .map(|item| {
                WriteRequest::builder()
                    .put_request(
                        PutRequest::builder()
                            .set_item(Some(item_from_json(item)))
                            .build()
                            .unwrap(),
                    )
                    .build()
            })
            .collect();
        while !requests.is_empty() {
            let out = messages
                .client()
                .batch_write_item()
                .request_items(messages.table_name(), requests)
                .send()
                .await
                .unwrap();
            requests = out
                .unprocessed_items
                .and_then(|mut m| m.remove(messages.table_name()))
                .unwrap_or_default();
        }
    }
    items.len()
}

async fn load_objects(files: &S3Files) -> Vec<S3Object> {
    let objects: Vec<S3Object> = read_fixture("s3_objects.json");
    for o in &objects {
        files
            .client()
            .put_object()
            .bucket(files.bucket())
            .key(&o.key)
            .content_type(&o.content_type)
            .body(unhex(&o.hex).into())
            .send()
            .await
            .unwrap();
    }
    objects
}

/// Every message of a conversation, following the backend's pages.
async fn all_messages(messages: &DynamoMessages, id: &ConversationId) -> Vec<Message> {
    let mut out = Vec::new();
    let mut range = MessageRange::all();
    loop {
        let page = messages.messages(id, &range).await.unwrap();
        out.extend(page.items);
        match page.next_cursor {
            Some(c) => range = range.continue_from(&c).unwrap(),
            None => return out,
        }
    }
}

#[cfg_attr(
    not(chatvault_aws_emulators),
    ignore = "needs the AWS emulators: AWS_ENDPOINT_URL_DYNAMODB and AWS_ENDPOINT_URL_S3 (or AWS_ENDPOINT_URL) were not set when the tests were built; run ./scripts/test.sh, or scripts/emulators.sh start && eval \"$(scripts/emulators.sh env)\" first"
)]
#[tokio::test]
async fn v0_1_items_read_back_exactly() {
    let messages = common::dynamo().await;
    let files = common::s3().await;
    let loaded = load_items(&messages).await;
    let objects = load_objects(&files).await;
    let expected: Expected = read_fixture("expected.json");
    assert_eq!(expected.conversations.len(), 5);
    assert_eq!(
        loaded,
        expected
            .conversations
            .iter()
            .map(|c| 1 + c.messages.len())
            .sum::<usize>(),
        "one item per conversation and per message"
    );

    // Every conversation, whole, and through the paged reads.
    for want in &expected.conversations {
        let id = ConversationId::parse(&want.id).unwrap();
        let head = messages
            .head(&id)
            .await
            .unwrap()
            .expect("fixture conversation");
        let stored = all_messages(&messages, &id).await;
        assert_eq!(&expected_conversation(&head, &stored), want);
        // 0.1 records have no usage: zero totals.
        assert_eq!(head.record.usage, chatvault_core::Usage::default());
        for m in &stored {
            assert_eq!(m.revision, 1);
            assert_eq!(m.status, chatvault_core::MessageStatus::Complete);
            assert_eq!(m.usage, None);
        }
        let tail = messages
            .messages(&id, &MessageRange::last(2))
            .await
            .unwrap();
        assert_eq!(tail.items, MessageRange::last(2).select(&stored).items);
        // One branch: no table, each message following the one before, each found by id
        // (before any write has given the 0.1 message items their id markers).
        assert_eq!(head.record.tree, None);
        assert_eq!(head.record.path_len(), head.record.message_count);
        for m in &stored {
            assert_eq!(m.parent, m.seq.checked_sub(1).filter(|&p| p > 0));
            assert_eq!(
                messages.message(&id, &m.id).await.unwrap().as_ref(),
                Some(m)
            );
        }
    }
    // The exact numbers, spelled out.
    let trip = &expected
        .conversations
        .iter()
        .find(|c| c.title.as_deref() == Some("Trip to Zürich 🇨🇭 — plans"))
        .unwrap();
    assert_eq!(trip.metadata["u64_max"].as_u64(), Some(u64::MAX));
    assert_eq!(trip.metadata["i64_min"].as_i64(), Some(i64::MIN));
    assert_eq!(trip.metadata["float"].as_f64(), Some(0.1));
    assert_eq!(
        trip.metadata["beyond_f64"].as_u64(),
        Some(9_007_199_254_740_993)
    );
    assert_eq!(
        trip.messages[1].metadata["beyond_f64"].as_u64(),
        Some(9_007_199_254_740_993)
    );
    assert_eq!(trip.messages[4].role, "critic");
    assert_eq!(trip.files.len(), 2);

    // Listings, archived included and not.
    for (user, ids) in &expected.listings {
        let user = UserId::parse(user).unwrap();
        let all = messages
            .list_conversations(
                Some(&user),
                &ListOptions::new()
                    .limit(100)
                    .unwrap()
                    .include_archived(true),
            )
            .await
            .unwrap();
        assert_eq!(
            &all.items
                .iter()
                .map(|s| s.id.to_string())
                .collect::<Vec<_>>(),
            ids,
            "{user}"
        );
        let live = messages
            .list_conversations(Some(&user), &ListOptions::new().limit(100).unwrap())
            .await
            .unwrap();
        let want: Vec<&String> = ids
            .iter()
            .filter(|id| {
                !expected
                    .conversations
                    .iter()
                    .any(|c| &&c.id == id && c.archived)
            })
            .collect();
        assert_eq!(
            live.items
                .iter()
                .map(|s| s.id.to_string())
                .collect::<Vec<_>>()
                .iter()
                .collect::<Vec<_>>(),
            want,
            "{user}"
        );
    }

    // The attachments' bytes, through the vault.
    let vault = ChatVault::new(messages.clone(), files.clone());
    let mut checked = 0;
    for want in &expected.conversations {
        let id = ConversationId::parse(&want.id).unwrap();
        let conversation = vault.get_conversation(&id).await.unwrap().unwrap();
        for f in &want.files {
            let bytes = conversation
                .file_content(&FileId::parse(&f.id).unwrap())
                .await
                .unwrap()
                .expect("bytes");
            assert_eq!(bytes.len() as u64, f.size);
            let object = objects.iter().find(|o| o.key == f.storage_key).unwrap();
            assert_eq!(hex(&bytes), object.hex);
            checked += 1;
        }
    }
    assert_eq!(checked, objects.len());

    // Old conversations take new writes: an append continues their sequence, and a 0.1
    // message can be updated (it is at revision 1).
    let long = expected
        .conversations
        .iter()
        .max_by_key(|c| c.messages.len())
        .unwrap();
    let long_id = ConversationId::parse(&long.id).unwrap();
    let appended = messages
        .append_messages(
            &long_id,
            vec![NewMessage::new(Role::User, "after the upgrade")],
        )
        .await
        .unwrap();
    assert_eq!(appended.messages[0].seq, long.message_count + 1);
    assert_eq!(appended.record.version, long.version + 1);
    let first = chatvault_core::MessageId::parse(&long.messages[0].id).unwrap();
    let updated = messages
        .update_message(
            &long_id,
            &first,
            1,
            &chatvault_core::MessageUpdate {
                parts: Some(vec![Part::text("edited after the upgrade")]),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(updated.message.revision, 2);
    let back = all_messages(&messages, &long_id).await;
    assert_eq!(back.len() as u64, long.message_count + 1);
    assert_eq!(back[0].content(), "edited after the upgrade");
    assert_eq!(back[0].revision, 2);
    assert_eq!(&expected_message(&back[1]), &long.messages[1]);
    // The first write of messages gave each 0.1 message item an id marker, so a 0.1
    // message id sent again is recognised: the same message is a replay, other content
    // AlreadyExists.
    let layout = common::layout(&messages, &long_id).await;
    assert_eq!(
        (layout.legacy as u64, layout.markers as u64, layout.tail),
        (long.message_count, long.message_count, 1),
        "{layout:?}"
    );
    let second = &back[1];
    let mut again = NewMessage::with_parts(second.role.clone(), second.parts.clone())
        .with_metadata(second.metadata.clone());
    again.id = second.id.clone();
    let replayed = messages
        .append_messages(&long_id, vec![again.clone()])
        .await
        .expect("a replay of a 0.1 message");
    assert_eq!(replayed.messages, vec![second.clone()]);
    again.parts = vec![Part::text("other content")];
    let err = messages
        .append_messages(&long_id, vec![again])
        .await
        .expect_err("other content under a 0.1 id");
    assert!(
        matches!(err, chatvault_core::Error::AlreadyExists { .. }),
        "{err:?}"
    );
    assert_eq!(
        all_messages(&messages, &long_id).await.len() as u64,
        long.message_count + 1,
        "nothing more stored"
    );
    // And they take branches: an edit of the second message is the active path's end, the
    // old line one switch away.
    let edit = NewMessage::new(Role::User, "second, edited").with_parent(Parent::Seq(1));
    let mut edited = messages
        .append_messages(&long_id, vec![edit])
        .await
        .unwrap()
        .messages;
    let edited = edited.remove(0);
    let conversation = vault.get_conversation(&long_id).await.unwrap().unwrap();
    let path = conversation.messages().await.unwrap();
    assert_eq!(
        path.iter().map(|m| m.seq).collect::<Vec<_>>(),
        vec![1, edited.seq]
    );
    assert_eq!(
        messages
            .message(&long_id, &second.id)
            .await
            .unwrap()
            .as_ref(),
        Some(second)
    );

    common::drop_table(&messages).await;
    common::drop_bucket(&files).await;
}
