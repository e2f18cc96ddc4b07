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
//! To regenerate the fixtures (only ever with the 0.1 code: they are the record of what
//! 0.1 wrote), start the emulators and run the ignored generator:
//!
//! ```text
//! scripts/emulators.sh start && eval "$(scripts/emulators.sh env)"
//! cargo test -p chatvault-aws --test compat_v0_1 -- --ignored generate_v0_1_fixtures
//! ```
#![allow(clippy::unwrap_used)] // tests may unwrap
mod common;

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;

use aws_sdk_dynamodb::types::{AttributeValue, PutRequest, WriteRequest};
use bytes::Bytes;
use chatvault_aws::{DynamoMessages, S3Files};
use chatvault_core::{
    ChatVault, ConversationSummary, FileAttachment, ListOptions, Message, MessageRange,
    MessagesBackend, Metadata, NewMessage, Role, StoredConversation,
};
use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

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
    ExpectedMessage {
        id: m.id.clone(),
        seq: m.seq,
        role: m.role.as_str().to_owned(),
        content: m.content.clone(),
        created_at: time(m.created_at),
        metadata: metadata(&m.metadata),
    }
}

fn expected_file(f: &FileAttachment) -> ExpectedFile {
    ExpectedFile {
        id: f.id.clone(),
        filename: f.filename.clone(),
        content_type: f.content_type.clone(),
        size: f.size,
        sha256: f.sha256.clone(),
        storage_key: f.storage_key.clone(),
        uploaded_at: time(f.uploaded_at),
        metadata: metadata(&f.metadata),
    }
}

fn expected_conversation(c: &StoredConversation) -> ExpectedConversation {
    let r = &c.record;
    ExpectedConversation {
        id: r.id.clone(),
        user_id: r.user_id.clone(),
        title: r.title.clone(),
        archived: r.archived,
        created_at: time(r.created_at),
        last_active: time(r.last_active),
        metadata: metadata(&r.metadata),
        message_count: r.message_count,
        file_count: r.file_count,
        version: r.version,
        messages: c.messages.iter().map(expected_message).collect(),
        files: c.files.iter().map(expected_file).collect(),
    }
}

/// An item in DynamoDB's low-level JSON form.
fn to_json(value: &AttributeValue) -> Value {
    match value {
        AttributeValue::S(s) => json!({ "S": s }),
        AttributeValue::N(n) => json!({ "N": n }),
        AttributeValue::Bool(b) => json!({ "BOOL": b }),
        AttributeValue::Null(b) => json!({ "NULL": b }),
        AttributeValue::L(l) => json!({ "L": l.iter().map(to_json).collect::<Vec<_>>() }),
        AttributeValue::M(m) => json!({
            "M": m.iter().map(|(k, v)| (k.clone(), to_json(v))).collect::<serde_json::Map<_, _>>()
        }),
        other => panic!("no JSON form for {other:?} in the fixtures"),
    }
}

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

fn item_to_json(item: &HashMap<String, AttributeValue>) -> Value {
    Value::Object(
        item.iter()
            .map(|(k, v)| (k.clone(), to_json(v)))
            .collect::<BTreeMap<_, _>>()
            .into_iter()
            .collect(),
    )
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

/// Metadata whose numbers JSON keeps exactly and DynamoDB numbers or f64 would not.
fn exact_metadata() -> Metadata {
    serde_json::from_str(
        r#"{
            "u64_max": 18446744073709551615,
            "i64_min": -9223372036854775808,
            "float": 0.1,
            "beyond_f64": 9007199254740993,
            "nested": {"list": [1, 2.5, "drei", null, true], "empty": {}},
            "unicode": "日本語 ✓ 🎉"
        }"#,
    )
    .unwrap()
}

async fn scan_all(messages: &DynamoMessages) -> Vec<HashMap<String, AttributeValue>> {
    let mut items = Vec::new();
    let mut start = None;
    loop {
        let page = messages
            .client()
            .scan()
            .table_name(messages.table_name())
            .consistent_read(true)
            .set_exclusive_start_key(start)
            .send()
            .await
            .unwrap();
        items.extend(page.items.unwrap_or_default());
        match page.last_evaluated_key {
            Some(key) => start = Some(key),
            None => return items,
        }
    }
}

fn sort_key(item: &HashMap<String, AttributeValue>) -> (String, String) {
    let s = |name: &str| match item.get(name) {
        Some(AttributeValue::S(s)) => s.clone(),
        other => panic!("{name}: {other:?}"),
    };
    (s("pk"), s("sk"))
}

/// Writes representative data with the 0.1 code and records it as the fixtures. Run it
/// only with the 0.1 code (see the module docs).
#[tokio::test]
#[ignore = "writes tests/fixtures/v0.1 from the 0.1 code; run by hand (see the module docs)"]
async fn generate_v0_1_fixtures() {
    let messages = common::dynamo().await;
    let files = common::s3().await;
    let vault = ChatVault::new(messages.clone(), files.clone());

    // alice: a titled conversation with exact metadata, every role, attachments.
    let mut trip = vault.create_conversation(Some("alice")).await.unwrap();
    trip.rename("Trip to Zürich 🇨🇭 — plans").await.unwrap();
    trip.set_metadata(exact_metadata()).await.unwrap();
    trip.append(vec![
        NewMessage::new(Role::System, "You are a helpful travel assistant."),
        NewMessage::new(Role::User, "Wie komme ich vom Flughafen zum HB? 🚆")
            .with_metadata(exact_metadata()),
        NewMessage::new(
            Role::Assistant,
            "Take the S-Bahn (S2 or S16): about 10 min.\nSecond line.",
        ),
        NewMessage::new(Role::Tool, r#"{"timetable": [{"line": "S2", "in": 4}]}"#),
        NewMessage::new(Role::from("critic"), "Mention the IC trains too."),
    ])
    .await
    .unwrap();
    trip.attach_file(
        "résumé 2026.pdf",
        Bytes::from_static(b"%PDF-1.7 fixture"),
        "application/pdf",
    )
    .await
    .unwrap();
    trip.attach_file(
        "notes.txt",
        Bytes::from_static("grüße\n".as_bytes()),
        "text/plain; charset=utf-8",
    )
    .await
    .unwrap();
    trip.add_message(Role::User, "Danke!").await.unwrap();

    // alice: an archived, auto-titled conversation.
    let mut old = vault.create_conversation(Some("alice")).await.unwrap();
    old.add_message(
        Role::User,
        "  Ünïcode   first line\u{2028}second line of the question  ",
    )
    .await
    .unwrap();
    old.add_message(Role::Assistant, "👍🏽 noted").await.unwrap();
    old.archive().await.unwrap();

    // bob#2: a user id with '#', a long conversation (seq beyond two digits), and one
    // attachment record whose bytes are in S3.
    let mut long = vault.create_conversation(Some("bob#2")).await.unwrap();
    for batch in 0..3 {
        long.append(
            (0..40)
                .map(|i| {
                    let k = batch * 40 + i;
                    let role = if k % 2 == 0 {
                        Role::User
                    } else {
                        Role::Assistant
                    };
                    let mut meta = Metadata::new();
                    meta.insert("k".into(), json!(k));
                    NewMessage::new(role, format!("message {k}")).with_metadata(meta)
                })
                .collect(),
        )
        .await
        .unwrap();
    }
    long.attach_file("data.csv", Bytes::from_static(b"a,b\n1,2\n"), "text/csv")
        .await
        .unwrap();

    // bob#2: an empty conversation; no user: a conversation with one message.
    vault.create_conversation(Some("bob#2")).await.unwrap();
    let mut anonymous = vault.create_conversation(None).await.unwrap();
    anonymous.add_message(Role::User, "no owner").await.unwrap();

    // What 0.1 reads back, checked against what the writes returned.
    let mut expected = Expected {
        conversations: Vec::new(),
        listings: BTreeMap::new(),
    };
    let ids = [trip.id(), old.id(), long.id(), anonymous.id()];
    let mut all_ids: Vec<String> = Vec::new();
    for user in ["alice", "bob#2"] {
        let page = messages
            .list_conversations(
                Some(user),
                &ListOptions::new().limit(100).include_archived(true),
            )
            .await
            .unwrap();
        assert!(page.next_cursor.is_none());
        let listed: Vec<String> = page
            .items
            .into_iter()
            .map(|s: ConversationSummary| s.id)
            .collect();
        all_ids.extend(listed.iter().cloned());
        expected.listings.insert(user.to_owned(), listed);
    }
    all_ids.push(anonymous.id().to_owned());
    assert_eq!(all_ids.len(), 5);
    for id in &all_ids {
        let stored = messages.get(id).await.unwrap().unwrap();
        if let Some(handle) = [&trip, &old, &long, &anonymous]
            .into_iter()
            .find(|h| h.id() == id)
        {
            assert_eq!(&stored.record, handle.record());
            assert_eq!(stored.files, handle.files());
        }
        expected.conversations.push(expected_conversation(&stored));
    }
    assert!(ids.iter().all(|id| all_ids.iter().any(|a| a == id)));

    let mut items = scan_all(&messages).await;
    items.sort_by_key(sort_key);
    let items: Vec<Value> = items.iter().map(item_to_json).collect();

    let listed = files
        .client()
        .list_objects_v2()
        .bucket(files.bucket())
        .send()
        .await
        .unwrap();
    let mut objects = Vec::new();
    for object in listed.contents() {
        let key = object.key().unwrap().to_owned();
        let got = files
            .client()
            .get_object()
            .bucket(files.bucket())
            .key(&key)
            .send()
            .await
            .unwrap();
        let content_type = got.content_type().unwrap_or_default().to_owned();
        let body = got.body.collect().await.unwrap().into_bytes();
        objects.push(S3Object {
            key,
            content_type,
            hex: hex(&body),
        });
    }
    assert_eq!(objects.len(), 3);

    let dir = fixtures_dir();
    std::fs::create_dir_all(&dir).unwrap();
    let write = |name: &str, value: String| std::fs::write(dir.join(name), value + "\n").unwrap();
    write("items.json", serde_json::to_string_pretty(&items).unwrap());
    write(
        "s3_objects.json",
        serde_json::to_string_pretty(&objects).unwrap(),
    );
    write(
        "expected.json",
        serde_json::to_string_pretty(&expected).unwrap(),
    );
    common::drop_table(&messages).await;
    common::drop_bucket(&files).await;
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
        let stored = messages
            .get(&want.id)
            .await
            .unwrap()
            .expect("fixture conversation");
        assert_eq!(&expected_conversation(&stored), want);
        let record = messages.get_record(&want.id).await.unwrap().unwrap();
        assert_eq!(record, stored.record);
        let page = messages
            .messages(&want.id, &MessageRange::all())
            .await
            .unwrap();
        assert_eq!(page.items, stored.messages);
        assert!(page.next_cursor.is_none());
        let tail = messages
            .messages(&want.id, &MessageRange::last(2))
            .await
            .unwrap();
        assert_eq!(
            tail.items,
            MessageRange::last(2).select(&stored.messages).items
        );
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
        let all = messages
            .list_conversations(
                Some(user),
                &ListOptions::new().limit(100).include_archived(true),
            )
            .await
            .unwrap();
        assert_eq!(
            &all.items.iter().map(|s| s.id.clone()).collect::<Vec<_>>(),
            ids,
            "{user}"
        );
        let live = messages
            .list_conversations(Some(user), &ListOptions::new().limit(100))
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
            live.items.iter().map(|s| &s.id).collect::<Vec<_>>(),
            want,
            "{user}"
        );
    }

    // The attachments' bytes, through the vault.
    let vault = ChatVault::new(messages.clone(), files.clone());
    let mut checked = 0;
    for want in &expected.conversations {
        let conversation = vault.get_conversation(&want.id).await.unwrap().unwrap();
        for f in &want.files {
            let bytes = conversation
                .file_content(&f.id)
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

    // Old conversations take new writes: an append continues their sequence.
    let long = expected
        .conversations
        .iter()
        .max_by_key(|c| c.messages.len())
        .unwrap();
    let appended = messages
        .append_messages(
            &long.id,
            vec![NewMessage::new(Role::User, "after the upgrade")],
        )
        .await
        .unwrap();
    assert_eq!(appended.messages[0].seq, long.message_count + 1);
    assert_eq!(appended.record.version, long.version + 1);
    let back = messages.get(&long.id).await.unwrap().unwrap();
    assert_eq!(back.messages.len() as u64, long.message_count + 1);
    assert_eq!(&expected_message(&back.messages[0]), &long.messages[0]);

    common::drop_table(&messages).await;
    common::drop_bucket(&files).await;
}
