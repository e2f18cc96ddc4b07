//! `DynamoMessages` on DynamoDB Local: long conversations, concurrent writers, exact
//! metadata, DynamoDB's size limits, listing order, the table helper, and failure modes.

mod common;

use common::read_all;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_sdk_dynamodb::types::AttributeValue;
use chatvault_aws::{DynamoMessages, MAX_APPEND_MESSAGES};
use chatvault_core::backend::MessagesBackendExt;
use chatvault_core::{
    ChatVault, ConversationId, ConversationPatch, ConversationRecord, Error, ListOptions,
    MessageRange, MessagesBackend, Metadata, NewMessage, Role,
};

fn exact_metadata() -> Metadata {
    let json = r#"{
        "float": 0.1,
        "tiny": 1e-300,
        "huge": 1.7976931348623157e308,
        "u64_max": 18446744073709551615,
        "i64_min": -9223372036854775808,
        "beyond_f64": 9007199254740993,
        "negative_zero": -0.0,
        "nested": {"list": [1, 2.5, "three", null, true, {"deep": [0.30000000000000004]}], "empty": {}},
        "unicode": "日本語 ✓ \u0000 nul"
    }"#;
    serde_json::from_str(json).expect("valid JSON")
}

async fn new_conversation(backend: &DynamoMessages, user: Option<&str>) -> ConversationRecord {
    let record = ConversationRecord::new(user.map(common::uid));
    backend.create(&record).await.expect("create");
    record
}

async fn item_count(backend: &DynamoMessages, id: &ConversationId) -> i32 {
    backend
        .client()
        .query()
        .table_name(backend.table_name())
        .key_condition_expression("pk = :pk")
        .expression_attribute_values(":pk", AttributeValue::S(id.to_string()))
        .select(aws_sdk_dynamodb::types::Select::Count)
        .consistent_read(true)
        .send()
        .await
        .expect("count query")
        .count()
}

#[cfg_attr(
    not(chatvault_aws_emulators),
    ignore = "needs the AWS emulators: AWS_ENDPOINT_URL_DYNAMODB and AWS_ENDPOINT_URL_S3 (or AWS_ENDPOINT_URL) were not set when the tests were built; run ./scripts/test.sh, or scripts/emulators.sh start && eval \"$(scripts/emulators.sh env)\" first"
)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_thousand_messages_over_two_megabytes_round_trip() {
    let (backend, requests) = common::dynamo_counted().await;
    let vault = ChatVault::from_arcs(Arc::new(backend.clone()), Arc::new(common::NoFiles));
    let mut conversation = vault
        .create_conversation(Some(&common::uid("user-long")))
        .await
        .expect("create");
    let mut sent = Vec::new();
    let mut total_bytes = 0;
    for batch in 0..(5_000 / 40) {
        let messages: Vec<NewMessage> = (0..40)
            .map(|i| {
                let k: usize = batch * 40 + i;
                let role = if k.is_multiple_of(2) {
                    Role::User
                } else {
                    Role::Assistant
                };
                let mut meta = Metadata::new();
                meta.insert("k".into(), k.into());
                NewMessage::new(role, format!("message {k} {}", "lorem ipsum ".repeat(38)))
                    .with_metadata(meta)
            })
            .collect();
        total_bytes += messages.iter().map(|m| m.content().len()).sum::<usize>();
        sent.extend(conversation.append(messages).await.expect("append"));
    }
    assert!(total_bytes > 2 * 1024 * 1024, "{total_bytes} bytes");
    assert_eq!(conversation.message_count(), 5_000);

    let resumed = vault
        .get_conversation(conversation.id())
        .await
        .expect("get")
        .expect("exists");
    // The copies of pending seals are not the load's requests.
    backend.finish_seals().await;
    requests.reset();
    let started = Instant::now();
    let got = resumed.messages().await.expect("messages");
    let elapsed = started.elapsed();
    let used = requests.get();
    assert_eq!(got.len(), 5_000);
    assert_eq!(got, sent, "all 5,000 messages back, in order, equal");
    // Pages of DynamoDB's 1 MB: the first is one Query (the conversation item comes with
    // it); each later one a Query plus, at the same time, a GetItem of the conversation
    // item (is it being deleted?).
    let stored_bytes: usize = got
        .iter()
        .map(|m| serde_json::to_vec(m).map_or(0, |v| v.len()))
        .sum();
    let pages = stored_bytes.div_ceil(1024 * 1024);
    assert!(
        used <= 2 * pages + 1,
        "loading 5,000 messages ({stored_bytes} bytes) took {used} requests (expected about {pages} pages)"
    );
    println!("5,000 messages ({total_bytes} bytes of content): {used} requests, {elapsed:?}");

    // The last messages of a long conversation: the conversation item's GetItem, whose
    // tail holds them when it holds 20 or more, and otherwise one Query for the rest.
    let in_tail = common::layout(&backend, conversation.id()).await.tail;
    requests.reset();
    let last = resumed.last_messages(20).await.expect("last 20");
    assert_eq!(last, sent[4_980..]);
    assert_eq!(
        requests.get(),
        if in_tail >= 20 { 1 } else { 2 },
        "{in_tail} in the tail"
    );
    let last = resumed.last_messages(60).await.expect("last 60");
    assert_eq!(last, sent[4_940..], "beyond the tail");

    // And an append costs the same as on a short conversation: one UpdateItem, or one
    // TransactWriteItems when it seals the tail (the backend knows the version it wrote
    // last).
    requests.reset();
    conversation
        .add_message(Role::User, "one more")
        .await
        .expect("append");
    assert_eq!(requests.get(), 1, "append = one request");
    common::drop_table(&backend).await;
}

#[cfg_attr(
    not(chatvault_aws_emulators),
    ignore = "needs the AWS emulators: AWS_ENDPOINT_URL_DYNAMODB and AWS_ENDPOINT_URL_S3 (or AWS_ENDPOINT_URL) were not set when the tests were built; run ./scripts/test.sh, or scripts/emulators.sh start && eval \"$(scripts/emulators.sh env)\" first"
)]
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sixteen_writers_times_one_hundred_lose_nothing() {
    let backend = Arc::new(common::dynamo().await);
    let record = new_conversation(&backend, Some("user-race")).await;
    let conflicts = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    // Four backend values with their own caches, as four processes would have: writers
    // sharing one take turns in-process, the four contend through DynamoDB's conditions.
    let instances: Vec<Arc<DynamoMessages>> = (0..4)
        .map(|_| {
            Arc::new(DynamoMessages::from_client(
                backend.client().clone(),
                backend.table_name(),
            ))
        })
        .collect();
    let writers = (0..16).map(|w| {
        let backend = Arc::clone(&instances[w % 4]);
        let id = record.id.clone();
        let conflicts = Arc::clone(&conflicts);
        tokio::spawn(async move {
            let mut ids = Vec::new();
            for i in 0..100 {
                let m = NewMessage::new(Role::User, format!("writer {w} message {i}"));
                ids.push(m.id.clone());
                loop {
                    match backend.append_messages(&id, vec![m.clone()]).await {
                        Ok(a) => {
                            assert_eq!(a.messages.len(), 1);
                            break;
                        }
                        // Nothing was written: retrying is safe (and counted).
                        Err(Error::Conflict { .. }) => {
                            conflicts.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                        }
                        Err(e) => panic!("append failed: {e:?}"),
                    }
                }
            }
            ids
        })
    });
    let mut sent = Vec::new();
    for w in writers {
        sent.extend(w.await.expect("writer task"));
    }
    let stored = read_all(&backend, &record.id).await;
    assert_eq!(
        stored.iter().map(|m| m.seq).collect::<Vec<_>>(),
        (1..=1_600).collect::<Vec<u64>>(),
        "seq 1..=1,600 without gaps"
    );
    let mut count: HashMap<&str, usize> = HashMap::new();
    for m in &stored {
        *count.entry(m.id.as_str()).or_default() += 1;
    }
    assert_eq!(count.len(), 1_600);
    for id in &sent {
        assert_eq!(count.get(id.as_str()), Some(&1), "{id} stored exactly once");
    }
    for w in 0..16 {
        let prefix = format!("writer {w} message ");
        let order: Vec<usize> = stored
            .iter()
            .filter_map(|m| m.content().strip_prefix(&prefix)?.parse().ok())
            .collect();
        assert_eq!(order, (0..100).collect::<Vec<_>>(), "writer {w} in order");
    }
    let record = backend
        .head(&record.id)
        .await
        .expect("get_record")
        .map(|h| h.record)
        .expect("exists");
    assert_eq!(record.message_count, 1_600);
    assert_eq!(record.version, 1 + 1_600);
    // Every message once: sealed in a chunk with its id marker, or in the tail (whose
    // pending seal's copy, with its markers, may be written).
    for instance in &instances {
        instance.finish_seals().await;
    }
    let layout = common::layout(&backend, &record.id).await;
    assert_eq!(layout.chunked + layout.tail, 1_600, "{layout:?}");
    assert_eq!(layout.markers, layout.chunked + layout.copied, "{layout:?}");
    assert_eq!(
        (layout.legacy, layout.items),
        (0, 1 + layout.chunks + layout.copies + layout.markers)
    );
    println!(
        "1,600 appends from 16 writers; {} gave up with Conflict and were retried",
        conflicts.load(std::sync::atomic::Ordering::SeqCst)
    );
    common::drop_table(&backend).await;
}

#[cfg_attr(
    not(chatvault_aws_emulators),
    ignore = "needs the AWS emulators: AWS_ENDPOINT_URL_DYNAMODB and AWS_ENDPOINT_URL_S3 (or AWS_ENDPOINT_URL) were not set when the tests were built; run ./scripts/test.sh, or scripts/emulators.sh start && eval \"$(scripts/emulators.sh env)\" first"
)]
#[tokio::test]
async fn metadata_and_times_survive_exactly() {
    let backend = common::dynamo().await;
    let mut record = ConversationRecord::new(Some(common::uid("user-meta")));
    record.metadata = exact_metadata();
    backend.create(&record).await.expect("create");
    assert_eq!(
        backend
            .head(&record.id)
            .await
            .expect("get")
            .map(|h| h.record),
        Some(record.clone())
    );
    let meta = exact_metadata();
    assert_eq!(meta["u64_max"].as_u64(), Some(u64::MAX));
    assert_eq!(meta["i64_min"].as_i64(), Some(i64::MIN));

    let appended = backend
        .append_messages(
            &record.id,
            vec![NewMessage::new(Role::User, "numbers").with_metadata(exact_metadata())],
        )
        .await
        .expect("append");
    let got = read_all(&backend, &record.id).await;
    assert_eq!(got, appended.messages);
    assert_eq!(got[0].metadata, exact_metadata());
    assert_eq!(got[0].metadata["float"].as_f64(), Some(0.1));
    assert_eq!(got[0].metadata["tiny"].as_f64(), Some(1e-300));
    assert_eq!(got[0].metadata["u64_max"].as_u64(), Some(u64::MAX));
    assert_eq!(got[0].metadata["i64_min"].as_i64(), Some(i64::MIN));
    assert_eq!(
        got[0].metadata["beyond_f64"].as_u64(),
        Some(9_007_199_254_740_993)
    );

    // Stored as JSON text, not as DynamoDB numbers.
    let raw = common::conversation_item(&backend, &record.id).await;
    let Some(AttributeValue::S(text)) = raw.get("metadata") else {
        panic!(
            "metadata is not a string attribute: {:?}",
            raw.get("metadata")
        );
    };
    assert!(text.contains("18446744073709551615") && text.contains("1e-300"));
    // Times: RFC 3339 with exactly six fractional digits.
    let Some(AttributeValue::S(created)) = raw.get("created_at") else {
        panic!("created_at missing");
    };
    assert_eq!(
        created.len(),
        "2026-01-02T03:04:05.123456Z".len(),
        "{created}"
    );

    // Through update as well.
    let mut other = exact_metadata();
    other.insert("second".into(), serde_json::json!(-1.5e-7));
    let updated = backend
        .update(
            &record.id,
            &ConversationPatch {
                metadata: Some(other.clone()),
                ..Default::default()
            },
        )
        .await
        .expect("update");
    assert_eq!(updated.metadata, other);
    let whole = common::whole(&backend, &record.id).await.expect("exists");
    assert_eq!(whole.record.metadata, other);
    assert_eq!(whole.messages, appended.messages);
    common::drop_table(&backend).await;
}

#[cfg_attr(
    not(chatvault_aws_emulators),
    ignore = "needs the AWS emulators: AWS_ENDPOINT_URL_DYNAMODB and AWS_ENDPOINT_URL_S3 (or AWS_ENDPOINT_URL) were not set when the tests were built; run ./scripts/test.sh, or scripts/emulators.sh start && eval \"$(scripts/emulators.sh env)\" first"
)]
#[tokio::test]
async fn dynamodb_limits_are_typed_errors_and_write_nothing() {
    let backend = common::dynamo().await;
    let record = new_conversation(&backend, Some("user-big")).await;

    // One message over DynamoDB's 400 KB item limit.
    let big = NewMessage::new(Role::User, "x".repeat(410 * 1024));
    match backend.append_messages(&record.id, vec![big.clone()]).await {
        Err(Error::TooLarge { size, limit, .. }) => {
            assert!(size > limit && limit == 400 * 1024, "{size} / {limit}");
        }
        other => panic!("a 410 KiB message: expected TooLarge, got {other:?}"),
    }
    // More messages than one transaction holds.
    let many: Vec<NewMessage> = (0..=MAX_APPEND_MESSAGES)
        .map(|i| NewMessage::new(Role::User, format!("m{i}")))
        .collect();
    assert!(matches!(
        backend.append_messages(&record.id, many).await,
        Err(Error::TooLarge {
            size: 50,
            limit: 49,
            ..
        })
    ));
    // Fewer messages, but over the transaction's 4 MB.
    let heavy: Vec<NewMessage> = (0..12)
        .map(|_| NewMessage::new(Role::User, "y".repeat(380 * 1024)))
        .collect();
    assert!(matches!(
        backend.append_messages(&record.id, heavy).await,
        Err(Error::TooLarge { .. })
    ));
    // Nothing of it was written.
    let after = backend
        .head(&record.id)
        .await
        .expect("get")
        .map(|h| h.record)
        .expect("exists");
    assert_eq!(after, record);
    assert_eq!(item_count(&backend, &record.id).await, 1);

    // 49 messages in one append are fine, and atomic.
    let ok: Vec<NewMessage> = (0..MAX_APPEND_MESSAGES)
        .map(|i| NewMessage::new(Role::User, format!("m{i}")))
        .collect();
    let a = backend
        .append_messages(&record.id, ok)
        .await
        .expect("49 messages");
    assert_eq!(a.record.message_count, 49);
    // A message just under the item limit is fine too.
    backend
        .append_messages(
            &record.id,
            vec![NewMessage::new(Role::User, "z".repeat(390 * 1024))],
        )
        .await
        .expect("a 390 KiB message");

    // Metadata that would push the conversation item over 400 KB.
    let mut huge = Metadata::new();
    huge.insert("blob".into(), "b".repeat(420 * 1024).into());
    assert!(matches!(
        backend
            .update(
                &record.id,
                &ConversationPatch {
                    metadata: Some(huge),
                    ..Default::default()
                },
            )
            .await,
        Err(Error::TooLarge { .. })
    ));
    common::drop_table(&backend).await;
}

#[cfg_attr(
    not(chatvault_aws_emulators),
    ignore = "needs the AWS emulators: AWS_ENDPOINT_URL_DYNAMODB and AWS_ENDPOINT_URL_S3 (or AWS_ENDPOINT_URL) were not set when the tests were built; run ./scripts/test.sh, or scripts/emulators.sh start && eval \"$(scripts/emulators.sh env)\" first"
)]
#[tokio::test]
async fn pages_are_cut_at_one_megabyte_and_still_read_whole() {
    let backend = common::dynamo().await;
    let record = new_conversation(&backend, None).await;
    let mut sent = Vec::new();
    // Text that does not compress: chunk bodies are stored compressed.
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    let mut noise = |len: usize| -> String {
        (0..len)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                char::from(b'!' + (state % 90) as u8)
            })
            .collect()
    };
    for i in 0..30 {
        let m = NewMessage::new(Role::User, format!("{i}:{}", noise(100 * 1024)));
        sent.extend(
            backend
                .append_messages(&record.id, vec![m])
                .await
                .expect("append")
                .messages,
        );
    }
    let first = backend
        .messages(&record.id, &MessageRange::all())
        .await
        .expect("messages");
    assert!(
        !first.items.is_empty() && first.items.len() < 30,
        "a 3 MB range comes back in pages of at most 1 MB: {} items",
        first.items.len()
    );
    assert!(first.has_more());
    assert_eq!(read_all(&backend, &record.id).await, sent);
    // Backwards too.
    let vault = ChatVault::from_arcs(Arc::new(backend.clone()), Arc::new(common::NoFiles));
    let conversation = vault
        .get_conversation(&record.id)
        .await
        .expect("get")
        .expect("exists");
    assert_eq!(
        conversation.last_messages(25).await.expect("last"),
        sent[5..]
    );
    common::drop_table(&backend).await;
}

#[cfg_attr(
    not(chatvault_aws_emulators),
    ignore = "needs the AWS emulators: AWS_ENDPOINT_URL_DYNAMODB and AWS_ENDPOINT_URL_S3 (or AWS_ENDPOINT_URL) were not set when the tests were built; run ./scripts/test.sh, or scripts/emulators.sh start && eval \"$(scripts/emulators.sh env)\" first"
)]
#[tokio::test]
async fn listings_order_ties_by_id_and_page_through_them() {
    let backend = common::dynamo().await;
    let user = "user-ties";
    let at = chatvault_core::backend::now();
    // Same last_active for many ids of different lengths and characters.
    let ids = [
        "a", "b", "ab", "B", "a-1", "a.1", "a:1", "a@1", "zz", "Z", "0", "9", "a_1", "aa",
    ];
    for id in ids {
        let mut record = ConversationRecord::new(Some(common::uid(user)));
        record.id = ConversationId::parse(id).expect("id");
        record.created_at = at;
        record.last_active = at;
        backend.create(&record).await.expect("create");
    }
    let mut newer = ConversationRecord::new(Some(common::uid(user)));
    newer.id = ConversationId::parse("0-newest").expect("id");
    newer.last_active = at + chrono::Duration::microseconds(1);
    backend.create(&newer).await.expect("create");

    let mut expected: Vec<&str> = ids.to_vec();
    expected.sort_unstable_by(|a, b| b.cmp(a));
    expected.insert(0, "0-newest");
    let owner = common::uid(user);
    for user_id in [Some(&owner), None] {
        for limit in [1, 2, 3, 100] {
            let mut options = ListOptions::new().limit(limit).unwrap();
            let mut got = Vec::new();
            loop {
                let page = backend
                    .list_conversations(user_id, &options)
                    .await
                    .expect("list");
                assert!(page.items.len() <= limit);
                got.extend(page.items.into_iter().map(|s| s.id));
                match page.next_cursor {
                    Some(c) => options = options.cursor(&c).unwrap(),
                    None => break,
                }
            }
            assert_eq!(got, expected, "user {user_id:?}, limit {limit}");
        }
    }
    common::drop_table(&backend).await;
}

#[cfg_attr(
    not(chatvault_aws_emulators),
    ignore = "needs the AWS emulators: AWS_ENDPOINT_URL_DYNAMODB and AWS_ENDPOINT_URL_S3 (or AWS_ENDPOINT_URL) were not set when the tests were built; run ./scripts/test.sh, or scripts/emulators.sh start && eval \"$(scripts/emulators.sh env)\" first"
)]
#[tokio::test]
async fn delete_removes_every_item_and_marker() {
    let backend = common::dynamo().await;
    let record = new_conversation(&backend, Some("user-del")).await;
    for _ in 0..4 {
        let batch: Vec<NewMessage> = (0..45)
            .map(|i| NewMessage::new(Role::User, format!("{i}")))
            .collect();
        backend
            .append_messages(&record.id, batch)
            .await
            .expect("append");
    }
    backend.finish_seals().await;
    // 180 messages: sealed into chunks with a marker each, the rest in the tail (whose
    // pending seal's copy may be written, with its markers).
    let layout = common::layout(&backend, &record.id).await;
    assert_eq!(layout.chunked + layout.tail, 180, "{layout:?}");
    assert_eq!(layout.markers, layout.chunked + layout.copied, "{layout:?}");
    assert!(layout.chunks >= 1 && layout.tail <= 96, "{layout:?}");
    assert_eq!(
        layout.items,
        1 + layout.chunks + layout.copies + layout.markers
    );

    assert!(backend.delete(&record.id).await.expect("delete"));
    assert_eq!(
        item_count(&backend, &record.id).await,
        0,
        "no item left behind"
    );
    assert!(!backend.delete(&record.id).await.expect("delete again"));
    // The id can be used again, from scratch.
    let mut again = ConversationRecord::new(None);
    again.id = record.id.clone();
    backend.create(&again).await.expect("create again");
    let a = backend
        .append_messages(&again.id, vec![NewMessage::new(Role::User, "fresh")])
        .await
        .expect("append");
    assert_eq!(a.messages[0].seq, 1);
    common::drop_table(&backend).await;
}

#[cfg_attr(
    not(chatvault_aws_emulators),
    ignore = "needs the AWS emulators: AWS_ENDPOINT_URL_DYNAMODB and AWS_ENDPOINT_URL_S3 (or AWS_ENDPOINT_URL) were not set when the tests were built; run ./scripts/test.sh, or scripts/emulators.sh start && eval \"$(scripts/emulators.sh env)\" first"
)]
#[tokio::test]
async fn create_table_is_idempotent_and_refuses_a_foreign_table() {
    let backend = common::dynamo().await;
    // Twice more: no error.
    backend.create_table().await.expect("again");
    backend.create_table().await.expect("and again");

    // A table of another shape under the same name is refused, not used.
    let foreign =
        DynamoMessages::from_client(backend.client().clone(), common::unique_name("foreign"));
    backend
        .client()
        .create_table()
        .table_name(foreign.table_name())
        .billing_mode(aws_sdk_dynamodb::types::BillingMode::PayPerRequest)
        .attribute_definitions(
            aws_sdk_dynamodb::types::AttributeDefinition::builder()
                .attribute_name("id")
                .attribute_type(aws_sdk_dynamodb::types::ScalarAttributeType::S)
                .build()
                .expect("definition"),
        )
        .key_schema(
            aws_sdk_dynamodb::types::KeySchemaElement::builder()
                .attribute_name("id")
                .key_type(aws_sdk_dynamodb::types::KeyType::Hash)
                .build()
                .expect("key"),
        )
        .send()
        .await
        .expect("create a foreign table");
    match foreign.create_table().await {
        Err(Error::InvalidInput { field: "table", .. }) => {}
        other => panic!("a foreign table: expected InvalidInput, got {other:?}"),
    }
    common::drop_table(&foreign).await;

    // A missing table is a backend error, not "not found".
    let missing =
        DynamoMessages::from_client(backend.client().clone(), common::unique_name("nope"));
    match missing.head(&ConversationId::parse("c1").unwrap()).await {
        Err(Error::Backend {
            backend: "dynamodb",
            temporary: false,
            ..
        }) => {}
        other => panic!("a missing table: expected a permanent Backend error, got {other:?}"),
    }
    common::drop_table(&backend).await;
}

/// A backend whose every request fails fast: connect timeout 1 s, 2 attempts.
async fn unreachable(endpoint: &str) -> DynamoMessages {
    DynamoMessages::builder("chatvault-unreachable")
        .sdk_config(&common::sdk_config().await)
        .endpoint_url(endpoint)
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(Duration::from_secs(1))
                .operation_attempt_timeout(Duration::from_secs(2))
                .operation_timeout(Duration::from_secs(5))
                .build(),
        )
        .retry_config(RetryConfig::standard().with_max_attempts(2))
        .build()
        .await
        .expect("build")
}

#[cfg_attr(
    not(chatvault_aws_emulators),
    ignore = "needs the AWS emulators: AWS_ENDPOINT_URL_DYNAMODB and AWS_ENDPOINT_URL_S3 (or AWS_ENDPOINT_URL) were not set when the tests were built; run ./scripts/test.sh, or scripts/emulators.sh start && eval \"$(scripts/emulators.sh env)\" first"
)]
#[tokio::test]
async fn unreachable_endpoint_fails_within_bounded_time() {
    common::require_endpoint("AWS_ENDPOINT_URL_DYNAMODB");
    // Nothing listens on port 1: connection refused.
    let backend = unreachable("http://127.0.0.1:1").await;
    let started = Instant::now();
    let err = backend
        .append_messages(
            &ConversationId::parse("c1").unwrap(),
            vec![NewMessage::new(Role::User, "hello?")],
        )
        .await
        .expect_err("no server");
    let elapsed = started.elapsed();
    assert!(elapsed < Duration::from_secs(10), "took {elapsed:?}");
    assert!(
        matches!(
            err,
            Error::Backend {
                backend: "dynamodb",
                temporary: true,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(std::error::Error::source(&err).is_some(), "source kept");
    assert!(backend.create_table().await.is_err());
    assert!(
        backend
            .list_conversations(Some(&common::uid("u")), &ListOptions::new())
            .await
            .is_err()
    );

    // A server that accepts connections and never answers: the operation timeout ends it.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let address = listener.local_addr().expect("address");
    let hold = tokio::spawn(async move {
        let mut open = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            open.push(socket);
        }
    });
    let backend = unreachable(&format!("http://{address}")).await;
    let started = Instant::now();
    let err = backend
        .head(&ConversationId::parse("c1").unwrap())
        .await
        .expect_err("no answer");
    let elapsed = started.elapsed();
    assert!(elapsed < Duration::from_secs(10), "took {elapsed:?}");
    assert!(err.is_temporary(), "{err:?}");
    hold.abort();
}

#[cfg_attr(
    not(chatvault_aws_emulators),
    ignore = "needs the AWS emulators: AWS_ENDPOINT_URL_DYNAMODB and AWS_ENDPOINT_URL_S3 (or AWS_ENDPOINT_URL) were not set when the tests were built; run ./scripts/test.sh, or scripts/emulators.sh start && eval \"$(scripts/emulators.sh env)\" first"
)]
#[tokio::test]
async fn writes_whose_answer_was_lost_are_applied_once() {
    let table = common::dynamo_sealing_inline().await;

    // The SDK retries a transaction whose answer it lost with the same idempotency token:
    // DynamoDB answers success without applying it again.
    let lost = common::LoseWriteAnswers::new(1);
    let backend = common::with_lost_answers(&table, &lost, 3).await;
    let record = ConversationRecord::new(Some(common::uid("user-lost")));
    backend
        .create(&record)
        .await
        .expect("a retried create is not AlreadyExists");
    assert_eq!(lost.lost(), 1, "the create's answer was lost");
    // An append to the tail is one conditional PutItem: the SDK's retry fails its
    // condition, and the backend finds its own messages in the tail that came back with
    // the failure.
    let lost = common::LoseWriteAnswers::puts(1);
    let backend = common::with_lost_answers(&table, &lost, 3).await;
    let a = backend
        .append_messages(&record.id, vec![NewMessage::new(Role::User, "once")])
        .await
        .expect("append");
    assert_eq!(lost.lost(), 1, "the append's answer was lost");
    assert_eq!(a.record.message_count, 1);
    let lost = common::LoseWriteAnswers::new(1);
    let renamed = common::with_lost_answers(&table, &lost, 3)
        .await
        .update(
            &record.id,
            &ConversationPatch {
                title: Some("renamed".into()),
                ..Default::default()
            },
        )
        .await
        .expect("a retried update");
    assert_eq!(lost.lost(), 1, "the update's answer was lost");
    assert_eq!(renamed.version, a.record.version + 1, "applied once");

    // Without SDK retries, the SDK reports a 500; the backend looks whether the append
    // committed before answering, so that the caller does not send it again.
    let lost = common::LoseWriteAnswers::puts(usize::MAX);
    let backend = common::with_lost_answers(&table, &lost, 1).await;
    let b = backend
        .append_messages(&record.id, vec![NewMessage::new(Role::User, "twice?")])
        .await
        .expect("the append committed; the lost answer is recovered");
    assert_eq!(lost.lost(), 1, "the append's answer was lost");
    assert_eq!(b.messages[0].seq, 2);

    let stored = read_all(&table, &record.id).await;
    assert_eq!(
        stored.iter().map(|m| m.content()).collect::<Vec<_>>(),
        ["once", "twice?"],
        "each message stored exactly once"
    );
    let now = table
        .head(&record.id)
        .await
        .expect("get")
        .map(|h| h.record)
        .expect("exists");
    assert_eq!(now.message_count, 2);
    assert_eq!(now.version, renamed.version + 1);
    assert_eq!(item_count(&table, &record.id).await, 1);

    // An update of a message in the tail is one UpdateItem: its SDK retry fails the
    // condition too, and the backend finds its update in the tail that came back.
    let edit = |text: &str| chatvault_core::MessageUpdate {
        parts: Some(vec![chatvault_core::Part::text(text)]),
        ..Default::default()
    };
    let lost = common::LoseWriteAnswers::updates(1);
    let updated = common::with_lost_answers(&table, &lost, 3)
        .await
        .update_message(&record.id, &b.messages[0].id, 1, &edit("edited"))
        .await
        .expect("a retried update is not a Conflict");
    assert_eq!((lost.lost(), updated.message.revision), (1, 2));
    let lost = common::LoseWriteAnswers::updates(usize::MAX);
    let again = common::with_lost_answers(&table, &lost, 1)
        .await
        .update_message(&record.id, &b.messages[0].id, 2, &edit("edited again"))
        .await
        .expect("the update committed; the lost answer is recovered");
    assert_eq!((lost.lost(), again.message.revision), (1, 3));
    let stored = read_all(&table, &record.id).await;
    assert_eq!(
        (stored[1].content(), stored[1].revision),
        ("edited again".into(), 3)
    );
    assert_eq!(
        table
            .head(&record.id)
            .await
            .expect("head")
            .map(|h| h.record.version),
        Some(now.version + 2),
        "each update applied once"
    );

    // The append that seals a full tail is a transaction: lost with SDK retries (the
    // token makes the retry a no-op), and lost for good (the backend finds the first
    // message, now sealed, through its id marker).
    table
        .append_messages(
            &record.id,
            (0..46)
                .map(|i| NewMessage::new(Role::User, format!("fill {i}")))
                .collect(),
        )
        .await
        .expect("fill the tail");
    assert_eq!(common::layout(&table, &record.id).await.tail, 48);
    let lost = common::LoseWriteAnswers::new(1);
    let sealing = common::with_lost_answers(&table, &lost, 3).await;
    let c = sealing
        .append_messages(&record.id, vec![NewMessage::new(Role::User, "seals")])
        .await
        .expect("a retried sealing append");
    assert_eq!((lost.lost(), c.messages[0].seq), (1, 49));
    let layout = common::layout(&table, &record.id).await;
    assert_eq!(
        (layout.chunks, layout.chunked, layout.markers, layout.tail),
        (1, 48, 48, 1),
        "the 48 messages of the tail sealed once, the new one the new tail"
    );
    table
        .append_messages(
            &record.id,
            (0..47)
                .map(|i| NewMessage::new(Role::User, format!("more {i}")))
                .collect(),
        )
        .await
        .expect("fill the tail again");
    let lost = common::LoseWriteAnswers::new(usize::MAX);
    let sealing = common::with_lost_answers(&table, &lost, 1).await;
    let sealed_first = NewMessage::new(Role::User, "sealed at once");
    let d = sealing
        .append_messages(&record.id, vec![sealed_first.clone()])
        .await
        .expect("the sealing append committed; the lost answer is recovered");
    assert_eq!((lost.lost(), d.messages[0].seq), (1, 97));
    // And a retry of it, from a backend that never saw the conversation, is a replay.
    let replayed = DynamoMessages::from_client(table.client().clone(), table.table_name())
        .append_messages(&record.id, vec![sealed_first])
        .await
        .expect("replay");
    assert_eq!(replayed.messages, d.messages);
    let all = read_all(&table, &record.id).await;
    assert_eq!(all.len(), 97);
    assert!(all.iter().enumerate().all(|(i, m)| m.seq == i as u64 + 1));
    common::drop_table(&table).await;
}

#[cfg_attr(
    not(chatvault_aws_emulators),
    ignore = "needs the AWS emulators: AWS_ENDPOINT_URL_DYNAMODB and AWS_ENDPOINT_URL_S3 (or AWS_ENDPOINT_URL) were not set when the tests were built; run ./scripts/test.sh, or scripts/emulators.sh start && eval \"$(scripts/emulators.sh env)\" first"
)]
#[tokio::test]
async fn appends_take_one_request_and_recover_from_what_they_remember_being_stale() {
    let (backend, requests) = common::dynamo_counted().await;
    // Another process (another backend on the same table, with a memory of its own).
    let other = DynamoMessages::from_client(backend.client().clone(), backend.table_name());
    let record = new_conversation(&backend, Some("user-seen")).await;

    // Steady state: one request per append, from the create on.
    requests.reset();
    for i in 0..5 {
        backend
            .append_messages(
                &record.id,
                vec![NewMessage::new(Role::User, format!("{i}"))],
            )
            .await
            .expect("append");
    }
    assert_eq!(requests.get(), 5, "5 appends, 5 requests");

    // Another writer moves the conversation on: the next append fails its condition,
    // gets the conversation back with the failure, and retries: two requests, no read.
    other
        .append_messages(&record.id, vec![NewMessage::new(Role::User, "other")])
        .await
        .expect("other append");
    requests.reset();
    let a = backend
        .append_messages(&record.id, vec![NewMessage::new(Role::User, "after other")])
        .await
        .expect("append after another writer");
    assert_eq!(requests.get(), 2, "a failed and a retried transaction");
    assert_eq!(a.messages[0].seq, 7);
    assert_eq!(a.record.message_count, 7);

    // A rename through the other backend, then an append here: the title survives.
    other
        .update(
            &record.id,
            &ConversationPatch {
                title: Some("renamed elsewhere".into()),
                ..Default::default()
            },
        )
        .await
        .expect("rename");
    let b = backend
        .append_messages(
            &record.id,
            vec![NewMessage::new(Role::User, "after rename")],
        )
        .await
        .expect("append after rename");
    assert_eq!(b.record.title.as_deref(), Some("renamed elsewhere"));

    // Deleted and created again under the same id, elsewhere, and brought to the same
    // version and count as remembered here: the creation time tells them apart.
    assert!(other.delete(&record.id).await.expect("delete"));
    let mut again = ConversationRecord::new(Some(common::uid("user-seen")));
    again.id = record.id.clone();
    other.create(&again).await.expect("create again");
    for i in 0..8 {
        other
            .append_messages(
                &again.id,
                vec![NewMessage::new(Role::User, format!("new {i}"))],
            )
            .await
            .expect("append to the new one");
    }
    other
        .update(
            &again.id,
            &ConversationPatch {
                title: Some("the new one".into()),
                ..Default::default()
            },
        )
        .await
        .expect("rename the new one");
    let remembered = b.record;
    let now = other
        .head(&again.id)
        .await
        .expect("get")
        .map(|h| h.record)
        .expect("exists");
    assert_eq!(
        (now.version, now.message_count),
        (remembered.version, remembered.message_count),
        "the new conversation is where the old one was remembered"
    );
    let c = backend
        .append_messages(
            &again.id,
            vec![NewMessage::new(Role::User, "into the new one")],
        )
        .await
        .expect("append to the recreated conversation");
    assert_eq!(c.messages[0].seq, 9);
    assert_eq!(c.record.created_at, again.created_at);
    assert_eq!(c.record.title.as_deref(), Some("the new one"));
    let all = read_all(&backend, &again.id).await;
    assert_eq!(all.len(), 9);
    assert_eq!(all[8].content(), "into the new one");
    // Nine messages: all in the conversation item's tail, nothing sealed.
    let layout = common::layout(&backend, &again.id).await;
    assert_eq!((layout.tail, layout.items), (9, 1), "{layout:?}");

    // Deleted here: the memory goes with it, and appends find it gone.
    assert!(backend.delete(&again.id).await.expect("delete"));
    let gone = backend
        .append_messages(&again.id, vec![NewMessage::new(Role::User, "late")])
        .await;
    assert!(matches!(gone, Err(Error::NotFound { .. })), "{gone:?}");
    // Deleted elsewhere: the stale memory's transaction fails, and the append finds it
    // gone too.
    let third = new_conversation(&backend, None).await;
    assert!(other.delete(&third.id).await.expect("delete elsewhere"));
    let gone = backend
        .append_messages(&third.id, vec![NewMessage::new(Role::User, "late")])
        .await;
    assert!(matches!(gone, Err(Error::NotFound { .. })), "{gone:?}");
    assert_eq!(item_count(&backend, &third.id).await, 0);

    // Without the memory, every append reads first.
    let reading = DynamoMessages::builder(backend.table_name())
        .client(backend.client().clone())
        .seen_cache_bytes(0)
        .build()
        .await
        .expect("build");
    let fourth = new_conversation(&reading, None).await;
    requests.reset();
    reading
        .append_messages(&fourth.id, vec![NewMessage::new(Role::User, "read first")])
        .await
        .expect("append");
    assert_eq!(requests.get(), 2, "GetItem + TransactWriteItems");
    common::drop_table(&backend).await;
}

#[cfg_attr(
    not(chatvault_aws_emulators),
    ignore = "needs the AWS emulators: AWS_ENDPOINT_URL_DYNAMODB and AWS_ENDPOINT_URL_S3 (or AWS_ENDPOINT_URL) were not set when the tests were built; run ./scripts/test.sh, or scripts/emulators.sh start && eval \"$(scripts/emulators.sh env)\" first"
)]
#[tokio::test]
async fn undecodable_items_are_corrupt_with_their_key() {
    let backend = common::dynamo_sealing_inline().await;
    let record = new_conversation(&backend, Some("user-corrupt")).await;
    backend
        .append_messages(&record.id, vec![NewMessage::new(Role::User, "fine")])
        .await
        .expect("append");
    // 48 more: the first message is sealed into a chunk item (key m#...1), these make
    // the tail.
    backend
        .append_messages(
            &record.id,
            (0..48)
                .map(|i| NewMessage::new(Role::User, format!("{i}")))
                .collect(),
        )
        .await
        .expect("append");
    let layout = common::layout(&backend, &record.id).await;
    assert_eq!((layout.chunked, layout.tail), (1, 48), "{layout:?}");
    let damage = |sk: &'static str, attribute: &'static str, value: &'static str| {
        backend
            .client()
            .update_item()
            .table_name(backend.table_name())
            .key("pk", AttributeValue::S(record.id.to_string()))
            .key("sk", AttributeValue::S(sk.to_owned()))
            .update_expression("SET #a = :v")
            .expression_attribute_names("#a", attribute)
            .expression_attribute_values(":v", AttributeValue::S(value.to_owned()))
            .send()
    };
    // A tail entry that is not a message.
    backend
        .client()
        .update_item()
        .table_name(backend.table_name())
        .key("pk", AttributeValue::S(record.id.to_string()))
        .key("sk", AttributeValue::S("#conversation".to_owned()))
        .update_expression("SET #t[3] = :v")
        .expression_attribute_names("#t", "tail")
        .expression_attribute_values(":v", AttributeValue::S("not json".to_owned()))
        .send()
        .await
        .expect("damage the tail");
    let err = backend
        .messages(&record.id, &MessageRange::last(5))
        .await
        .expect_err("undecodable tail");
    assert_eq!(err.kind(), chatvault_core::ErrorKind::Corrupt, "{err:?}");
    assert!(
        err.to_string().contains("#conversation") && err.to_string().contains("tail"),
        "says where and what: {err}"
    );
    damage("m#00000000000000000001", "messages", "not json")
        .await
        .expect("damage the chunk");
    let err = backend
        .messages(
            &record.id,
            &MessageRange::After {
                after: 0,
                limit: Some(1),
            },
        )
        .await
        .expect_err("undecodable chunk");
    assert_eq!(err.kind(), chatvault_core::ErrorKind::Corrupt, "{err:?}");
    assert!(
        err.to_string().contains("m#00000000000000000001") && err.to_string().contains("messages"),
        "says where and what: {err}"
    );
    damage("#conversation", "created_at", "yesterday")
        .await
        .expect("damage the conversation");
    let err = backend.head(&record.id).await.expect_err("undecodable");
    assert_eq!(err.kind(), chatvault_core::ErrorKind::Corrupt, "{err:?}");
    assert!(err.to_string().contains("yesterday"), "{err}");
    assert!(!err.is_temporary());
    common::drop_table(&backend).await;
}

#[cfg_attr(
    not(chatvault_aws_emulators),
    ignore = "needs the AWS emulators: AWS_ENDPOINT_URL_DYNAMODB and AWS_ENDPOINT_URL_S3 (or AWS_ENDPOINT_URL) were not set when the tests were built; run ./scripts/test.sh, or scripts/emulators.sh start && eval \"$(scripts/emulators.sh env)\" first"
)]
#[tokio::test]
async fn sealed_messages_are_recognised_updated_and_split() {
    let backend = common::dynamo_sealing_inline().await;
    let record = new_conversation(&backend, None).await;
    // Ids that sort backwards: every append's ids sort before the sealed ones, so each
    // append looks its ids up through their markers.
    let sent: Vec<NewMessage> = (0..100)
        .map(|k| {
            let mut m = NewMessage::new(Role::User, format!("m{k}"));
            m.id = chatvault_core::MessageId::parse(format!("z{:04}", 9999 - k)).expect("id");
            m
        })
        .collect();
    for batch in sent.chunks(10) {
        backend
            .append_messages(&record.id, batch.to_vec())
            .await
            .expect("append");
    }
    let layout = common::layout(&backend, &record.id).await;
    assert!(layout.chunks >= 2, "{layout:?}");
    assert_eq!(layout.markers, layout.chunked);
    assert_eq!(layout.chunked + layout.tail, 100);

    // Each batch sent again is a replay, sealed or not, from a backend that never saw
    // the conversation too; other content under a sealed id is AlreadyExists.
    let fresh = DynamoMessages::from_client(backend.client().clone(), backend.table_name());
    for (b, batch) in sent.chunks(10).enumerate() {
        let replayed = fresh
            .append_messages(&record.id, batch.to_vec())
            .await
            .expect("replay");
        let seqs: Vec<u64> = replayed.messages.iter().map(|m| m.seq).collect();
        assert_eq!(
            seqs,
            (b as u64 * 10 + 1..=b as u64 * 10 + 10).collect::<Vec<_>>()
        );
    }
    let mut changed = sent[3].clone();
    changed.parts = vec![chatvault_core::Part::text("other")];
    let err = fresh
        .append_messages(&record.id, vec![changed])
        .await
        .expect_err("other content under a sealed id");
    assert!(matches!(err, Error::AlreadyExists { .. }), "{err:?}");

    // A sealed message is updated in its chunk; an update from its old revision
    // conflicts.
    let edit = |text: String| chatvault_core::MessageUpdate {
        parts: Some(vec![chatvault_core::Part::text(text)]),
        ..Default::default()
    };
    let updated = backend
        .update_message(&record.id, &sent[3].id, 1, &edit("edited".into()))
        .await
        .expect("update a sealed message");
    assert_eq!((updated.message.seq, updated.message.revision), (4, 2));
    let err = fresh
        .update_message(&record.id, &sent[3].id, 1, &edit("late".into()))
        .await
        .expect_err("revision moved on");
    assert!(matches!(err, Error::Conflict { .. }), "{err:?}");
    // Grown past what its chunk item holds: the chunk is split.
    let big = "x".repeat(300 * 1024);
    fresh
        .update_message(&record.id, &sent[3].id, 2, &edit(big.clone()))
        .await
        .expect("grow a sealed message");
    let split = common::layout(&backend, &record.id).await;
    assert!(split.chunks > layout.chunks, "{split:?} after {layout:?}");
    assert_eq!(split.chunked, layout.chunked);
    // A message of the tail grown past what the conversation item holds: the tail is
    // sealed first.
    let huge = "y".repeat(398 * 1024);
    backend
        .update_message(&record.id, &sent[99].id, 1, &edit(huge.clone()))
        .await
        .expect("grow a message of the tail");
    let sealed = common::layout(&backend, &record.id).await;
    assert_eq!((sealed.tail, sealed.markers), (0, 100), "{sealed:?}");

    let all = read_all(&backend, &record.id).await;
    assert_eq!(all.len(), 100);
    assert!(all.iter().enumerate().all(|(i, m)| m.seq == i as u64 + 1));
    assert_eq!((all[3].content(), all[3].revision), (big.clone(), 3));
    assert_eq!((all[99].content(), all[99].revision), (huge, 2));
    assert_eq!(all[4].content(), "m4");
    // And appends go on after it all.
    let more = backend
        .append_messages(&record.id, vec![NewMessage::new(Role::User, "after")])
        .await
        .expect("append");
    assert_eq!(more.messages[0].seq, 101);
    common::drop_table(&backend).await;
}

#[cfg_attr(
    not(chatvault_aws_emulators),
    ignore = "needs the AWS emulators: AWS_ENDPOINT_URL_DYNAMODB and AWS_ENDPOINT_URL_S3 (or AWS_ENDPOINT_URL) were not set when the tests were built; run ./scripts/test.sh, or scripts/emulators.sh start && eval \"$(scripts/emulators.sh env)\" first"
)]
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn writers_in_four_processes_seal_while_readers_read_whole_windows() {
    let table = common::dynamo().await;
    let record = new_conversation(&table, None).await;
    // Four backends with memories of their own: four processes, which contend through
    // DynamoDB's conditions only, and seal the tail in turn.
    let writers: Vec<_> = (0..4u64)
        .map(|w| {
            let backend = DynamoMessages::from_client(table.client().clone(), table.table_name());
            let id = record.id.clone();
            tokio::spawn(async move {
                let mut sent = Vec::new();
                for i in 0..40u64 {
                    let batch: Vec<NewMessage> = (0..1 + (i + w) % 3)
                        .map(|k| NewMessage::new(Role::User, format!("{w}/{i}/{k}")))
                        .collect();
                    // Conflict (starved by the others) is temporary and nothing was
                    // written: the retry, with the same ids, is what the docs prescribe.
                    let stored = loop {
                        match backend.append_messages(&id, batch.clone()).await {
                            Ok(appended) => break appended.messages,
                            Err(Error::Conflict { .. }) => continue,
                            Err(e) => panic!("writer {w}: {e:?}"),
                        }
                    };
                    sent.extend(stored.into_iter().map(|m| (m.id, m.seq)));
                }
                // Its pending seals' copies end before the layout is read.
                backend.finish_seals().await;
                sent
            })
        })
        .collect();
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let readers: Vec<_> = (0..2u64)
        .map(|r| {
            let backend = DynamoMessages::from_client(table.client().clone(), table.table_name());
            let id = record.id.clone();
            let done = Arc::clone(&done);
            tokio::spawn(async move {
                let mut reads = 0;
                while !done.load(std::sync::atomic::Ordering::SeqCst) || reads < 10 {
                    let range = match reads % 3 {
                        0 => MessageRange::last(30),
                        1 => MessageRange::after(reads % 50).limit(40),
                        _ => MessageRange::all(),
                    };
                    let page = backend.messages(&id, &range).await.expect("read");
                    let seqs: Vec<u64> = page.items.iter().map(|m| m.seq).collect();
                    assert!(
                        seqs.windows(2).all(|w| w[1] == w[0] + 1),
                        "reader {r}: a window with a gap or a repeat: {seqs:?}"
                    );
                    reads += 1;
                }
                reads
            })
        })
        .collect();
    let mut sent = Vec::new();
    for w in writers {
        sent.extend(w.await.expect("writer"));
    }
    done.store(true, std::sync::atomic::Ordering::SeqCst);
    for r in readers {
        assert!(r.await.expect("reader") >= 10);
    }
    let all = read_all(&table, &record.id).await;
    assert_eq!(all.len(), sent.len(), "every message once");
    let stored: HashMap<_, _> = all.iter().map(|m| (m.id.clone(), m.seq)).collect();
    for (id, seq) in &sent {
        assert_eq!(
            stored.get(id),
            Some(seq),
            "{id} at the seq its append answered"
        );
    }
    assert!(all.iter().enumerate().all(|(i, m)| m.seq == i as u64 + 1));
    let layout = common::layout(&table, &record.id).await;
    assert_eq!(layout.chunked + layout.tail, all.len(), "{layout:?}");
    assert_eq!(layout.markers, layout.chunked + layout.copied, "{layout:?}");
    assert!(layout.chunks >= 2, "the tail was sealed: {layout:?}");
    common::drop_table(&table).await;
}

#[cfg_attr(
    not(chatvault_aws_emulators),
    ignore = "needs the AWS emulators: AWS_ENDPOINT_URL_DYNAMODB and AWS_ENDPOINT_URL_S3 (or AWS_ENDPOINT_URL) were not set when the tests were built; run ./scripts/test.sh, or scripts/emulators.sh start && eval \"$(scripts/emulators.sh env)\" first"
)]
#[tokio::test]
async fn a_retry_into_a_conversation_created_again_elsewhere_is_stored_not_replayed() {
    let backend = common::dynamo().await;
    let other = DynamoMessages::from_client(backend.client().clone(), backend.table_name());
    let record = new_conversation(&backend, None).await;
    let first = NewMessage::new(Role::User, "first");
    backend
        .append_messages(&record.id, vec![first.clone()])
        .await
        .expect("append");
    // Deleted and created again elsewhere: this backend still remembers `first` in the
    // old conversation's tail.
    assert!(other.delete(&record.id).await.expect("delete"));
    let mut again = ConversationRecord::new(None);
    again.id = record.id.clone();
    other.create(&again).await.expect("create again");
    let retried = backend
        .append_messages(&record.id, vec![first.clone()])
        .await
        .expect("append to the new conversation");
    assert_eq!(retried.messages[0].seq, 1);
    assert_eq!(retried.record.created_at, again.created_at);
    assert_eq!(retried.record.message_count, 1);
    let stored = read_all(&other, &record.id).await;
    assert_eq!(
        stored.len(),
        1,
        "stored in the new conversation, not taken for a replay"
    );
    assert_eq!(stored[0].id, first.id);
    common::drop_table(&backend).await;
}

/// An owner-checked append (what the HTTP API sends) is one request too: the owner is
/// checked on the state the write is conditional on. A conversation deleted and created
/// again elsewhere for another owner is refused from its new state, never from what was
/// remembered.
#[cfg_attr(
    not(chatvault_aws_emulators),
    ignore = "needs the AWS emulators: AWS_ENDPOINT_URL_DYNAMODB and AWS_ENDPOINT_URL_S3 (or AWS_ENDPOINT_URL) were not set when the tests were built; run ./scripts/test.sh, or scripts/emulators.sh start && eval \"$(scripts/emulators.sh env)\" first"
)]
#[tokio::test]
async fn owner_checked_appends_take_one_request() {
    let (backend, requests) = common::dynamo_counted().await;
    let other = DynamoMessages::from_client(backend.client().clone(), backend.table_name());
    let (alice, bob) = (common::uid("owner-alice"), common::uid("owner-bob"));
    let record = new_conversation(&backend, Some("owner-alice")).await;
    requests.reset();
    for i in 0..5 {
        backend
            .append_messages_as(
                Some(&alice),
                &record.id,
                vec![NewMessage::new(Role::User, format!("{i}"))],
            )
            .await
            .expect("the owner's append");
    }
    assert_eq!(requests.get(), 5, "5 owner-checked appends, 5 requests");
    requests.reset();
    let refused = backend
        .append_messages_as(
            Some(&bob),
            &record.id,
            vec![NewMessage::new(Role::User, "x")],
        )
        .await
        .expect_err("someone else's conversation");
    assert_eq!(refused.kind(), chatvault_core::ErrorKind::NotFound);
    assert_eq!(
        requests.get(),
        1,
        "refused after reading the state it remembered"
    );

    // Deleted and created again for bob, elsewhere: alice's append is refused (its
    // condition fails and the new state says bob), bob's goes through.
    assert!(other.delete(&record.id).await.expect("delete"));
    let mut again = ConversationRecord::new(Some(bob.clone()));
    again.id = record.id.clone();
    other.create(&again).await.expect("create again");
    let refused = backend
        .append_messages_as(
            Some(&alice),
            &record.id,
            vec![NewMessage::new(Role::User, "y")],
        )
        .await
        .expect_err("no longer alice's");
    assert_eq!(refused.kind(), chatvault_core::ErrorKind::NotFound);
    let stored = backend
        .append_messages_as(
            Some(&bob),
            &record.id,
            vec![NewMessage::new(Role::User, "z")],
        )
        .await
        .expect("bob's append");
    assert_eq!(stored.messages[0].seq, 1);
    assert_eq!(
        stored.record.message_count, 1,
        "nothing of alice's refused appends"
    );
}
