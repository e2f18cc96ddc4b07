//! Lost answers, size limits and races, from a review of the AWS backends: writes whose
//! answer the SDK lost report what happened, a delete cannot be starved by appenders,
//! the conversation item's 400 KB and S3's 1,024-byte keys are typed errors.
#![allow(clippy::unwrap_used)] // tests may unwrap
mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::time::Duration;

use aws_config::retry::RetryConfig;
use bytes::Bytes;
use chatvault_aws::{DynamoMessages, S3Files, content_disposition};
use chatvault_core::backend::FilesBackendExt;
use chatvault_core::backend::MessagesBackendExt;
use chatvault_core::{
    ByteStream, ConversationId, ConversationRecord, Error, ErrorKind, FileAttachment, FileId,
    FilesBackend, ListOptions, MessageRange, MessagesBackend, Metadata, NewMessage, Role, keys,
};
use futures_util::StreamExt;

fn attachment(id: &str, filename: &str) -> FileAttachment {
    let id = FileId::parse(id).unwrap();
    let storage_key =
        keys::storage_key(None, &ConversationId::parse("c").unwrap(), &id, filename).unwrap();
    FileAttachment::new(
        id,
        filename,
        common::ct("text/plain"),
        1,
        "00",
        storage_key,
        chatvault_core::backend::now(),
    )
}

/// When the SDK gives up on an add_file whose transaction committed (every answer is
/// lost), the backend reads whether it committed and answers success: the caller (e.g.
/// ChatVault::attach_file, which deletes the bytes on an error) never sees an error for
/// an attachment that is recorded.
#[cfg_attr(
    not(chatvault_aws_emulators),
    ignore = "needs the AWS emulators: AWS_ENDPOINT_URL_DYNAMODB and AWS_ENDPOINT_URL_S3 (or AWS_ENDPOINT_URL) were not set when the tests were built; run ./scripts/test.sh, or scripts/emulators.sh start && eval \"$(scripts/emulators.sh env)\" first"
)]
#[tokio::test]
async fn add_file_whose_lost_answer_committed_reports_success() {
    let table = common::dynamo().await;
    let record = ConversationRecord::new(Some(common::uid("u")));
    table.create(&record).await.unwrap();
    let lost = common::LoseWriteAnswers::new(usize::MAX);
    let backend = common::with_lost_answers(&table, &lost, 1).await;
    let result = backend
        .add_file(&record.id, &attachment("f1", "a.txt"))
        .await;
    let files = common::files(&table, &record.id).await;
    common::drop_table(&table).await;
    assert!(
        lost.lost() > 0,
        "no answer was lost: the test proved nothing"
    );
    let answered = result.expect("the add_file committed: its lost answer is recovered");
    assert_eq!(answered.file_count, 1);
    assert_eq!(
        files.iter().filter(|f| f.id == "f1").count(),
        1,
        "recorded exactly once: {files:?}"
    );
}

#[cfg_attr(
    not(chatvault_aws_emulators),
    ignore = "needs the AWS emulators: AWS_ENDPOINT_URL_DYNAMODB and AWS_ENDPOINT_URL_S3 (or AWS_ENDPOINT_URL) were not set when the tests were built; run ./scripts/test.sh, or scripts/emulators.sh start && eval \"$(scripts/emulators.sh env)\" first"
)]
#[tokio::test]
async fn create_whose_lost_answer_committed_reports_success() {
    let table = common::dynamo().await;
    let record = ConversationRecord::new(Some(common::uid("u")));
    let lost = common::LoseWriteAnswers::new(usize::MAX);
    let backend = common::with_lost_answers(&table, &lost, 1).await;
    let result = backend.create(&record).await;
    let stored = table.head(&record.id).await.unwrap().map(|h| h.record);
    let again = table.create(&record).await;
    common::drop_table(&table).await;
    assert!(
        lost.lost() > 0,
        "no answer was lost: the test proved nothing"
    );
    result.expect("the create committed: its lost answer is recovered");
    assert_eq!(stored, Some(record.clone()), "stored as written");
    assert!(
        matches!(again, Err(Error::AlreadyExists { .. })),
        "a second create of the same id: {again:?}"
    );
}

/// A conversation item grown near 400 KB by attachments: an append that sets the auto
/// title pushes it over; what comes back?
#[cfg_attr(
    not(chatvault_aws_emulators),
    ignore = "needs the AWS emulators: AWS_ENDPOINT_URL_DYNAMODB and AWS_ENDPOINT_URL_S3 (or AWS_ENDPOINT_URL) were not set when the tests were built; run ./scripts/test.sh, or scripts/emulators.sh start && eval \"$(scripts/emulators.sh env)\" first"
)]
#[tokio::test]
async fn append_that_would_overfill_the_conversation_item_is_too_large() {
    let table = common::dynamo().await;
    let record = ConversationRecord::new(Some(common::uid("u")));
    table.create(&record).await.unwrap();
    let mut i = 0;
    // Fill with attachments carrying big metadata until add_file refuses.
    let refused = loop {
        let mut f = attachment(&format!("f{i}"), "a.txt");
        f.metadata.insert(
            "pad".into(),
            serde_json::json!("x".repeat(if i < 38 { 10_000 } else { 100 })),
        );
        match table.add_file(&record.id, &f).await {
            Ok(_) => i += 1,
            Err(e) => break e,
        }
        assert!(i <= 2000, "2,000 attachments of 100+ bytes fit in 400 KB?");
    };
    assert!(
        matches!(refused, Error::TooLarge { size, limit, .. } if size > limit),
        "files: {i}, refused with {refused:?}"
    );
    // Top up to within a few bytes of 400 KB.
    let mut pad = 3000usize;
    while pad > 0 {
        let mut f = attachment(&format!("g{i}"), "a.txt");
        f.metadata
            .insert("pad".into(), serde_json::json!("x".repeat(pad)));
        match table.add_file(&record.id, &f).await {
            Ok(_) => i += 1,
            Err(Error::TooLarge { .. }) => pad = pad.saturating_sub(if pad > 100 { 50 } else { 5 }),
            Err(e) => panic!("{e:?}"),
        }
    }
    eprintln!("topped up: {i} files");
    let (mut lo, mut hi) = (0usize, 5000usize);
    while lo < hi {
        let mid = (lo + hi).div_ceil(2);
        let mut m = Metadata::new();
        m.insert("p".into(), serde_json::json!("x".repeat(mid)));
        let patch = chatvault_core::ConversationPatch {
            metadata: Some(m),
            ..Default::default()
        };
        match table.update(&record.id, &patch).await {
            Ok(_) => lo = mid,
            Err(Error::TooLarge { .. }) => hi = mid - 1,
            Err(e) => panic!("{e:?}"),
        }
    }
    let mut m = Metadata::new();
    m.insert("p".into(), serde_json::json!("x".repeat(lo)));
    table
        .update(
            &record.id,
            &chatvault_core::ConversationPatch {
                metadata: Some(m),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let before = common::whole(&table, &record.id).await.unwrap();
    // The item is within a byte of what update accepts: the append's auto-title (200+
    // bytes) cannot fit.
    let err = table
        .append_messages(
            &record.id,
            vec![NewMessage::new(Role::User, "😀".repeat(60))],
        )
        .await;
    let after = common::whole(&table, &record.id).await.unwrap();
    common::drop_table(&table).await;
    match err {
        Err(Error::TooLarge { size, limit, .. }) => {
            assert!(size > limit, "TooLarge with size {size} <= limit {limit}")
        }
        other => panic!("metadata pad {lo}: expected TooLarge, got {other:?}"),
    }
    assert_eq!(after, before, "nothing written");
}

/// Archived conversations interleaved, all-users listing across the 8 shards, every limit.
#[cfg_attr(
    not(chatvault_aws_emulators),
    ignore = "needs the AWS emulators: AWS_ENDPOINT_URL_DYNAMODB and AWS_ENDPOINT_URL_S3 (or AWS_ENDPOINT_URL) were not set when the tests were built; run ./scripts/test.sh, or scripts/emulators.sh start && eval \"$(scripts/emulators.sh env)\" first"
)]
#[tokio::test]
async fn listing_everyone_filters_archived_across_pages_and_shards() {
    let table = common::dynamo().await;
    let at = chatvault_core::backend::now();
    let mut expected = Vec::new();
    for i in 0..40u32 {
        let mut r = ConversationRecord::new(Some(common::uid(&format!("user#{}", i % 3))));
        r.id = ConversationId::parse(format!("c{i:02}")).unwrap();
        // many ties
        r.last_active = at + chrono::Duration::microseconds(i64::from(i / 4));
        r.archived = i % 3 != 0 || i < 8; // oldest ones all archived
        if !r.archived {
            expected.push((r.last_active, r.id.clone()));
        }
        table.create(&r).await.unwrap();
    }
    expected.sort_by(|a, b| b.cmp(a));
    let expected: Vec<ConversationId> = expected.into_iter().map(|(_, id)| id).collect();
    for limit in [1, 2, 3, 5, 13, 1000] {
        let mut options = ListOptions::new().limit(limit).unwrap();
        let mut got = Vec::new();
        let mut pages = 0;
        loop {
            let page = table.list_conversations(None, &options).await.unwrap();
            pages += 1;
            assert!(
                !page.items.is_empty() || page.next_cursor.is_none(),
                "empty page with a cursor"
            );
            got.extend(page.items.into_iter().map(|s| s.id));
            match page.next_cursor {
                Some(c) => options = options.cursor(&c).unwrap(),
                None => break,
            }
        }
        assert_eq!(got, expected, "limit {limit}, {pages} pages");
    }
    // per user with '#'
    let page = table
        .list_conversations(
            Some(&common::uid("user#0")),
            &ListOptions::new().limit(1000).unwrap(),
        )
        .await
        .unwrap();
    assert!(
        page.items
            .iter()
            .all(|s| s.user_id == Some(common::uid("user#0")) && !s.archived)
    );
    common::drop_table(&table).await;
}

/// messages() against the reference MessageRange::select for many windows.
#[cfg_attr(
    not(chatvault_aws_emulators),
    ignore = "needs the AWS emulators: AWS_ENDPOINT_URL_DYNAMODB and AWS_ENDPOINT_URL_S3 (or AWS_ENDPOINT_URL) were not set when the tests were built; run ./scripts/test.sh, or scripts/emulators.sh start && eval \"$(scripts/emulators.sh env)\" first"
)]
#[tokio::test]
async fn message_windows_match_the_reference_selection() {
    // Sealed inside the appends: 7, 45 and 45 messages make two chunk items (1-7, 8-52)
    // and a tail (53-97).
    let table = common::dynamo_sealing_inline().await;
    let record = ConversationRecord::new(None);
    table.create(&record).await.unwrap();
    for n in [7, 45, 45] {
        append_numbered(&table, &record.id, n).await;
    }
    let layout = common::layout(&table, &record.id).await;
    assert_eq!(
        (layout.chunks, layout.chunked, layout.tail),
        (2, 52, 45),
        "{layout:?}"
    );
    windows_match_the_reference(&table, &record.id, 97).await;
    common::drop_table(&table).await;

    // Sealed in the background: 52 messages sealed, 48 in the tail with their pending
    // seal's copy in place (which readers must not take for the tail).
    let table = common::dynamo().await;
    let record = ConversationRecord::new(None);
    table.create(&record).await.unwrap();
    for n in [7, 45] {
        append_numbered(&table, &record.id, n).await;
        table.finish_seals().await;
    }
    for n in [45, 3] {
        append_numbered(&table, &record.id, n).await;
    }
    table.finish_seals().await;
    let layout = common::layout(&table, &record.id).await;
    assert_eq!(
        (layout.chunked, layout.tail, layout.pending, layout.copied),
        (52, 48, 48, 48),
        "{layout:?}"
    );
    windows_match_the_reference(&table, &record.id, 100).await;
    common::drop_table(&table).await;
}

/// Appends messages "0" .. "n - 1" in one append.
async fn append_numbered(table: &DynamoMessages, id: &ConversationId, n: usize) {
    let batch: Vec<NewMessage> = (0..n)
        .map(|i| NewMessage::new(Role::User, format!("{i}")))
        .collect();
    table.append_messages(id, batch).await.unwrap();
}

/// `messages` of many windows of conversation `id` (`count` messages) is what
/// [`MessageRange::select`] takes from the whole conversation.
async fn windows_match_the_reference(table: &DynamoMessages, id: &ConversationId, count: usize) {
    let all = common::whole(table, id).await.unwrap().messages;
    assert_eq!(all.len(), count);
    assert!(all.iter().enumerate().all(|(i, m)| m.seq == i as u64 + 1));
    let mut ranges = Vec::new();
    for a in [
        0u64,
        1,
        3,
        6,
        7,
        8,
        51,
        52,
        53,
        96,
        97,
        98,
        100,
        101,
        u64::MAX - 1,
        u64::MAX,
    ] {
        ranges.push(MessageRange::after(a));
        for l in [0usize, 1, 2, 6, 7, 8, 45, 46, 48, 49, usize::MAX] {
            ranges.push(MessageRange::after(a).limit(l));
            ranges.push(MessageRange::before(a).limit(l));
            ranges.push(MessageRange::last(l));
        }
    }
    for r in ranges {
        let got = table.messages(id, &r).await.unwrap();
        let want = r.select(&all);
        assert_eq!(got, want, "{r:?}");
    }
}

fn chunked(total: usize, chunk: usize) -> ByteStream {
    let data: Vec<u8> = (0..total).map(|i| (i % 251) as u8).collect();
    let chunks: Vec<std::io::Result<Bytes>> = data
        .chunks(chunk.max(1))
        .map(|c| Ok(Bytes::copy_from_slice(c)))
        .collect();
    futures_util::stream::iter(chunks).boxed()
}

async fn small_s3(threshold: usize) -> S3Files {
    let base = common::s3().await;
    S3Files::builder(base.bucket())
        .sdk_config(&common::sdk_config().await)
        .multipart_threshold(threshold)
        .part_size(chatvault_aws::MIN_PART_SIZE)
        .build()
        .await
        .unwrap()
}

#[cfg_attr(
    not(chatvault_aws_emulators),
    ignore = "needs the AWS emulators: AWS_ENDPOINT_URL_DYNAMODB and AWS_ENDPOINT_URL_S3 (or AWS_ENDPOINT_URL) were not set when the tests were built; run ./scripts/test.sh, or scripts/emulators.sh start && eval \"$(scripts/emulators.sh env)\" first"
)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multipart_uploads_at_part_boundaries_round_trip() {
    const P: usize = chatvault_aws::MIN_PART_SIZE;
    let files = small_s3(P).await;
    for (total, chunk) in [
        (0, 1),
        (P, 1 << 20),
        (P + 1, 1 << 20),
        (2 * P, 4096),
        (2 * P + 1, 7919),
        (3 * P, 3 * P),
        (P + 1, 1),
    ] {
        let key = keys::storage_key(
            None,
            &ConversationId::parse("c").unwrap(),
            &FileId::new(),
            "x.bin",
        )
        .unwrap();
        let n = files
            .upload_stream(
                &key,
                chunked(total, chunk),
                &common::ct("application/octet-stream"),
            )
            .await
            .unwrap();
        assert_eq!(n, total as u64);
        let back = files.download(&key).await.unwrap().unwrap();
        assert_eq!(back.len(), total, "{total}/{chunk}");
        let expected: Vec<u8> = (0..total).map(|i| (i % 251) as u8).collect();
        assert!(back[..] == expected[..], "content {total}/{chunk}");
    }
    let zero = small_s3(0).await;
    let key = keys::storage_key(
        None,
        &ConversationId::parse("c").unwrap(),
        &FileId::parse("f0").unwrap(),
        "x.bin",
    )
    .unwrap();
    assert_eq!(
        zero.upload_stream(&key, chunked(0, 1), &common::ct("text/plain"))
            .await
            .unwrap(),
        0
    );
    assert_eq!(zero.download(&key).await.unwrap().unwrap().len(), 0);
    assert_eq!(
        zero.upload_stream(&key, chunked(1, 1), &common::ct("text/plain"))
            .await
            .unwrap(),
        1
    );
    assert_eq!(zero.download(&key).await.unwrap().unwrap().len(), 1);
    common::drop_bucket(&files).await;
}

#[cfg_attr(
    not(chatvault_aws_emulators),
    ignore = "needs the AWS emulators: AWS_ENDPOINT_URL_DYNAMODB and AWS_ENDPOINT_URL_S3 (or AWS_ENDPOINT_URL) were not set when the tests were built; run ./scripts/test.sh, or scripts/emulators.sh start && eval \"$(scripts/emulators.sh env)\" first"
)]
#[tokio::test]
async fn presigned_file_names_survive_and_directories_are_not_files() {
    let files = common::s3().await;
    let key = keys::storage_key(
        None,
        &ConversationId::parse("c").unwrap(),
        &FileId::parse("f1").unwrap(),
        "x.bin",
    )
    .unwrap();
    files
        .upload(&key, Bytes::from_static(b"hi"), &common::ct("text/plain"))
        .await
        .unwrap();
    let long = "😀".repeat(256);
    for name in [
        "a\"b\\c;d.txt",
        "semi;colon=1.pdf",
        "😀 emoji.png",
        "%41%.txt",
        long.as_str(),
        "a'b''c.txt",
    ] {
        let url = files
            .signed_url(&key, Duration::from_secs(60), Some(name))
            .await
            .unwrap();
        let resp = common::http_get(&url).await;
        assert_eq!(resp.status, 200, "{name:?} url len {}", url.len());
        assert_eq!(
            resp.header("content-disposition"),
            Some(content_disposition(name).as_str()),
            "{name:?}"
        );
    }
    // "directory" of an existing key
    let dir = common::skey(key.as_str().rsplit_once('/').unwrap().0);
    assert!(!files.exists(&dir).await.unwrap());
    assert!(files.download(&dir).await.unwrap().is_none());
    assert!(!files.delete(&dir).await.unwrap());
    common::drop_bucket(&files).await;
}

#[cfg_attr(
    not(chatvault_aws_emulators),
    ignore = "needs the AWS emulators: AWS_ENDPOINT_URL_DYNAMODB and AWS_ENDPOINT_URL_S3 (or AWS_ENDPOINT_URL) were not set when the tests were built; run ./scripts/test.sh, or scripts/emulators.sh start && eval \"$(scripts/emulators.sh env)\" first"
)]
#[tokio::test]
async fn object_key_over_the_s3_limit_under_a_prefix_is_too_large() {
    let base = common::s3().await;
    let files = S3Files::builder(base.bucket())
        .sdk_config(&common::sdk_config().await)
        .prefix("p".repeat(200))
        .build()
        .await
        .unwrap();
    let key = format!(
        "{}/{}/{}/{}",
        "a".repeat(250),
        "b".repeat(250),
        "c".repeat(250),
        "d".repeat(250)
    );
    let key = common::skey(&key);
    let r = files
        .upload(&key, Bytes::from_static(b"x"), &common::ct("text/plain"))
        .await;
    eprintln!(
        "upload with object key of {} bytes: {r:?}",
        files.object_key(&key).len()
    );
    let object_key_len = files.object_key(&key).len() as u64;
    assert!(object_key_len > 1024);
    match r {
        Err(Error::TooLarge { size, limit, .. }) => {
            assert_eq!(
                (size, limit),
                (object_key_len, chatvault_aws::MAX_OBJECT_KEY_LEN as u64)
            );
        }
        other => {
            panic!("an object key of {object_key_len} bytes: expected TooLarge, got {other:?}")
        }
    }
    // Every entry point refuses it before sending anything.
    assert!(matches!(
        files.exists(&key).await,
        Err(Error::TooLarge { .. })
    ));
    assert!(matches!(
        files.download(&key).await,
        Err(Error::TooLarge { .. })
    ));
    assert!(matches!(
        files.delete(&key).await,
        Err(Error::TooLarge { .. })
    ));
    assert!(matches!(
        files.signed_url(&key, Duration::from_secs(60), None).await,
        Err(Error::TooLarge { .. })
    ));
    assert!(matches!(
        files
            .upload_stream(&key, chunked(1, 1), &common::ct("text/plain"))
            .await,
        Err(Error::TooLarge { .. })
    ));
    common::drop_bucket(&base).await;
}

/// The same lost answer through ChatVault: attach_file fails, deletes the bytes, but the
/// attachment stays recorded => a conversation with an attachment whose bytes are gone.
#[cfg_attr(
    not(chatvault_aws_emulators),
    ignore = "needs the AWS emulators: AWS_ENDPOINT_URL_DYNAMODB and AWS_ENDPOINT_URL_S3 (or AWS_ENDPOINT_URL) were not set when the tests were built; run ./scripts/test.sh, or scripts/emulators.sh start && eval \"$(scripts/emulators.sh env)\" first"
)]
#[tokio::test]
async fn vault_attach_whose_lost_answer_committed_leaves_no_dangling_attachment() {
    let table = common::dynamo().await;
    let files = common::s3().await;
    let lost = common::LoseWriteAnswers::new(0);
    let backend = common::with_lost_answers(&table, &lost, 1).await;
    let vault = chatvault_core::ChatVault::new(backend, files.clone());
    let mut conv = vault
        .create_conversation(Some(&common::uid("u")))
        .await
        .unwrap();
    lost.remaining.store(1, SeqCst); // lose the answer of the next transaction: add_file's
    let result = conv
        .attach_file("a.txt", Bytes::from_static(b"hello"), "text/plain")
        .await;
    let again = vault.get_conversation(conv.id()).await.unwrap().unwrap();
    let recorded: Vec<_> = again.files().iter().map(|f| f.id.clone()).collect();
    let mut contents = Vec::new();
    for f in again.files() {
        contents.push(again.file_content(&f.id).await.unwrap());
    }
    common::drop_table(&table).await;
    common::drop_bucket(&files).await;
    assert_eq!(lost.lost(), 1, "the add_file's answer was lost");
    let file = result.expect("the attachment committed: attach_file succeeds");
    assert_eq!(recorded, vec![file.id.clone()]);
    assert_eq!(
        contents,
        vec![Some(Bytes::from_static(b"hello"))],
        "its bytes are there"
    );
}

/// A delete racing `appenders` tight-loop appenders: it succeeds, leaves no item under the
/// conversation's key, and every appender gets NotFound after it.
async fn delete_racing_appenders_leaves_nothing(appenders: usize) {
    let table = common::dynamo().await;
    for round in 0..5 {
        let record = ConversationRecord::new(None);
        table.create(&record).await.unwrap();
        for _ in 0..3 {
            let batch: Vec<NewMessage> = (0..40)
                .map(|i| NewMessage::new(Role::User, format!("{i}")))
                .collect();
            table.append_messages(&record.id, batch).await.unwrap();
        }
        let writers: Vec<_> = (0..appenders)
            .map(|_| {
                let t = table.clone();
                let id = record.id.clone();
                tokio::spawn(async move {
                    loop {
                        match t
                            .append_messages(&id, vec![NewMessage::new(Role::User, "x")])
                            .await
                        {
                            Ok(_) => {}
                            Err(e) if e.is_not_found() => return,
                            Err(e) => panic!("{e:?}"),
                        }
                    }
                })
            })
            .collect();
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(table.delete(&record.id).await.unwrap());
        for w in writers {
            w.await.unwrap();
        }
        // A seal's copy that lands after the delete removes itself.
        table.finish_seals().await;
        let left = table
            .client()
            .query()
            .table_name(table.table_name())
            .key_condition_expression("pk = :pk")
            .expression_attribute_values(
                ":pk",
                aws_sdk_dynamodb::types::AttributeValue::S(record.id.to_string()),
            )
            .consistent_read(true)
            .send()
            .await
            .unwrap()
            .count();
        assert_eq!(left, 0, "round {round}");
        let late = table
            .append_messages(&record.id, vec![NewMessage::new(Role::User, "late")])
            .await;
        assert!(
            matches!(late, Err(Error::NotFound { .. })),
            "append after delete: {late:?}"
        );
    }
    common::drop_table(&table).await;
}

#[cfg_attr(
    not(chatvault_aws_emulators),
    ignore = "needs the AWS emulators: AWS_ENDPOINT_URL_DYNAMODB and AWS_ENDPOINT_URL_S3 (or AWS_ENDPOINT_URL) were not set when the tests were built; run ./scripts/test.sh, or scripts/emulators.sh start && eval \"$(scripts/emulators.sh env)\" first"
)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_racing_one_tight_loop_appender_leaves_nothing() {
    delete_racing_appenders_leaves_nothing(1).await;
}

#[cfg_attr(
    not(chatvault_aws_emulators),
    ignore = "needs the AWS emulators: AWS_ENDPOINT_URL_DYNAMODB and AWS_ENDPOINT_URL_S3 (or AWS_ENDPOINT_URL) were not set when the tests were built; run ./scripts/test.sh, or scripts/emulators.sh start && eval \"$(scripts/emulators.sh env)\" first"
)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_racing_four_tight_loop_appenders_leaves_nothing() {
    delete_racing_appenders_leaves_nothing(4).await;
}

#[cfg_attr(
    not(chatvault_aws_emulators),
    ignore = "needs the AWS emulators: AWS_ENDPOINT_URL_DYNAMODB and AWS_ENDPOINT_URL_S3 (or AWS_ENDPOINT_URL) were not set when the tests were built; run ./scripts/test.sh, or scripts/emulators.sh start && eval \"$(scripts/emulators.sh env)\" first"
)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_tight_loop_appenders_all_succeed() {
    let table = common::dynamo().await;
    let record = ConversationRecord::new(None);
    table.create(&record).await.unwrap();
    let writers: Vec<_> = (0..4)
        .map(|w| {
            let t = table.clone();
            let id = record.id.clone();
            tokio::spawn(async move {
                for i in 0..150 {
                    if let Err(e) = t
                        .append_messages(&id, vec![NewMessage::new(Role::User, "x")])
                        .await
                    {
                        return Some(format!("writer {w} append {i}: {e:?}"));
                    }
                }
                None
            })
        })
        .collect();
    let mut errs = Vec::new();
    for w in writers {
        if let Some(e) = w.await.unwrap() {
            errs.push(e);
        }
    }
    common::drop_table(&table).await;
    assert!(errs.is_empty(), "{errs:#?}");
}

/// What [`Doctored`] does to the requests of one DynamoDB operation.
#[derive(Clone, Copy, Debug)]
enum Doctoring {
    /// The request never reaches DynamoDB (its body is emptied, so nothing is written)
    /// and is answered with this status and JSON body.
    Refuse(u16, &'static str),
    /// The request is carried out, its answer is lost (HTTP 500), and every later request
    /// of any operation fails with HTTP 500 too.
    LoseAnswerThenFailEverything,
}

/// An SDK interceptor doctoring the requests whose `X-Amz-Target` ends with `target`.
#[derive(Clone, Debug)]
struct Doctored {
    target: &'static str,
    doctoring: Doctoring,
    hit: Arc<AtomicBool>,
    blackout: Arc<AtomicBool>,
    /// Responses to requests of `target` it doctored.
    doctored: Arc<AtomicUsize>,
}

impl Doctored {
    fn new(target: &'static str, doctoring: Doctoring) -> Self {
        Doctored {
            target,
            doctoring,
            hit: Arc::new(AtomicBool::new(false)),
            blackout: Arc::new(AtomicBool::new(false)),
            doctored: Arc::new(AtomicUsize::new(0)),
        }
    }

    /// How many responses to requests of `target` it has doctored so far.
    fn doctored(&self) -> usize {
        self.doctored.load(SeqCst)
    }

    /// A backend on `table`'s table whose client is doctored, without SDK retries.
    async fn backend(&self, table: &DynamoMessages, max_write_attempts: u32) -> DynamoMessages {
        let config = aws_sdk_dynamodb::config::Builder::from(&common::sdk_config().await)
            .interceptor(self.clone())
            .retry_config(RetryConfig::standard().with_max_attempts(1))
            .build();
        DynamoMessages::builder(table.table_name())
            .client(aws_sdk_dynamodb::Client::from_conf(config))
            .max_write_attempts(max_write_attempts)
            .build()
            .await
            .unwrap()
    }
}

impl aws_sdk_dynamodb::config::Intercept for Doctored {
    fn name(&self) -> &'static str {
        "Doctored"
    }

    fn modify_before_transmit(
        &self,
        context: &mut aws_sdk_dynamodb::config::interceptors::BeforeTransmitInterceptorContextMut<
            '_,
        >,
        _: &aws_sdk_dynamodb::config::RuntimeComponents,
        _: &mut aws_sdk_dynamodb::config::ConfigBag,
    ) -> Result<(), aws_sdk_dynamodb::error::BoxError> {
        let target = context.request().headers().get("x-amz-target");
        let hit = target.is_some_and(|t| t.ends_with(self.target));
        self.hit.store(hit, SeqCst);
        if hit && matches!(self.doctoring, Doctoring::Refuse(..)) {
            let request = context.request_mut();
            *request.body_mut() = String::from("{}").into();
            request.headers_mut().insert("content-length", "2");
        }
        Ok(())
    }

    fn modify_before_deserialization(
        &self,
        context: &mut aws_sdk_dynamodb::config::interceptors::BeforeDeserializationInterceptorContextMut<'_>,
        _: &aws_sdk_dynamodb::config::RuntimeComponents,
        _: &mut aws_sdk_dynamodb::config::ConfigBag,
    ) -> Result<(), aws_sdk_dynamodb::error::BoxError> {
        let response = context.response_mut();
        if self.hit.load(SeqCst) {
            self.doctored.fetch_add(1, SeqCst);
        }
        match self.doctoring {
            Doctoring::Refuse(status, body) if self.hit.load(SeqCst) => {
                *response.status_mut() = status.try_into()?;
                response.headers_mut().remove("x-amzn-errortype");
                *response.body_mut() = String::from(body).into();
            }
            Doctoring::LoseAnswerThenFailEverything
                if self.hit.load(SeqCst) || self.blackout.load(SeqCst) =>
            {
                self.blackout.store(true, SeqCst);
                *response.status_mut() = 500.try_into()?;
            }
            _ => {}
        }
        Ok(())
    }
}

/// A TransactionCanceledException whose reasons are `codes`.
fn cancelled(codes: &str) -> &'static str {
    let reasons: Vec<String> = codes
        .split(',')
        .map(|c| format!(r#"{{"Code":"{c}","Message":"{c} (doctored)"}}"#))
        .collect();
    Box::leak(
        format!(
            r#"{{"__type":"com.amazonaws.dynamodb.v20120810#TransactionCanceledException","Message":"Transaction cancelled, please refer cancellation reasons for specific reasons [{codes}]","CancellationReasons":[{}]}}"#,
            reasons.join(",")
        )
        .into_boxed_str(),
    )
}

fn title_patch(title: &str) -> chatvault_core::ConversationPatch {
    chatvault_core::ConversationPatch {
        title: Some(title.into()),
        ..Default::default()
    }
}

/// update and remove_file (the other users of the read-modify-write loop) recover a lost
/// answer too, and answer with the record as stored.
#[cfg_attr(
    not(chatvault_aws_emulators),
    ignore = "needs the AWS emulators: AWS_ENDPOINT_URL_DYNAMODB and AWS_ENDPOINT_URL_S3 (or AWS_ENDPOINT_URL) were not set when the tests were built; run ./scripts/test.sh, or scripts/emulators.sh start && eval \"$(scripts/emulators.sh env)\" first"
)]
#[tokio::test]
async fn update_and_remove_file_whose_lost_answer_committed_report_success() {
    let table = common::dynamo().await;
    let record = ConversationRecord::new(Some(common::uid("u")));
    table.create(&record).await.unwrap();
    table
        .add_file(&record.id, &attachment("f1", "a.txt"))
        .await
        .unwrap();
    let lost = common::LoseWriteAnswers::new(usize::MAX);
    let backend = common::with_lost_answers(&table, &lost, 1).await;

    let renamed = backend
        .update(&record.id, &title_patch("renamed"))
        .await
        .expect("the update committed; its lost answer is recovered");
    assert_eq!(lost.lost(), 1, "the update's answer was lost");
    assert_eq!(renamed.title.as_deref(), Some("renamed"));
    assert_eq!(
        renamed,
        table
            .head(&record.id)
            .await
            .unwrap()
            .map(|h| h.record)
            .unwrap()
    );

    let removed = backend
        .remove_file(&record.id, &FileId::parse("f1").unwrap())
        .await
        .expect("the removal committed; its lost answer is recovered")
        .expect("f1 was there");
    assert_eq!(lost.lost(), 2, "the removal's answer was lost");
    assert_eq!(removed.file_count, 0);
    assert_eq!(removed.version, renamed.version + 1);
    assert!(common::files(&table, &record.id).await.is_empty());
    common::drop_table(&table).await;
}

/// When the read that is to tell whether a write committed fails too, the error is
/// OutcomeUnknown (not temporary).
#[cfg_attr(
    not(chatvault_aws_emulators),
    ignore = "needs the AWS emulators: AWS_ENDPOINT_URL_DYNAMODB and AWS_ENDPOINT_URL_S3 (or AWS_ENDPOINT_URL) were not set when the tests were built; run ./scripts/test.sh, or scripts/emulators.sh start && eval \"$(scripts/emulators.sh env)\" first"
)]
#[tokio::test]
async fn writes_whose_commit_cannot_be_checked_say_the_outcome_is_unknown() {
    let table = common::dynamo().await;
    let record = ConversationRecord::new(Some(common::uid("u")));
    table.create(&record).await.unwrap();
    let unknown = |what: &str, doctored: &Doctored, result: Result<(), Error>| {
        assert!(
            doctored.doctored() > 0,
            "{what}: no answer was lost: the test proved nothing"
        );
        let err = result.expect_err(what);
        assert_eq!(err.kind(), ErrorKind::OutcomeUnknown, "{what}: {err:?}");
        // Not retryable blindly: the recovery is a retry with the same message ids.
        assert!(!err.is_temporary(), "{what}: {err:?}");
        assert!(err.to_string().contains("outcome of"), "{what}: {err}");
    };
    let doctored = || {
        Doctored::new(
            ".TransactWriteItems",
            Doctoring::LoseAnswerThenFailEverything,
        )
    };
    // An append to the tail is one conditional PutItem.
    let d = Doctored::new(".PutItem", Doctoring::LoseAnswerThenFailEverything);
    let backend = d.backend(&table, 5).await;
    unknown(
        "append",
        &d,
        backend
            .append_messages(&record.id, vec![NewMessage::new(Role::User, "hi")])
            .await
            .map(drop),
    );
    let d = doctored();
    let backend = d.backend(&table, 5).await;
    unknown(
        "add_file",
        &d,
        backend
            .add_file(&record.id, &attachment("f1", "a.txt"))
            .await
            .map(drop),
    );
    let d = doctored();
    let backend = d.backend(&table, 5).await;
    unknown(
        "update",
        &d,
        backend
            .update(&record.id, &title_patch("t"))
            .await
            .map(drop),
    );
    let d = doctored();
    let backend = d.backend(&table, 5).await;
    unknown(
        "create",
        &d,
        backend.create(&ConversationRecord::new(None)).await,
    );
    // Each of them did commit (the answer was lost after DynamoDB carried it out).
    let now = common::whole(&table, &record.id).await.unwrap();
    assert_eq!(now.messages.len(), 1);
    assert_eq!(now.files.len(), 1);
    assert_eq!(now.record.title.as_deref(), Some("t"));
    common::drop_table(&table).await;
}

/// A transaction DynamoDB cancels for throttling is a temporary error and writes nothing;
/// one cancelled for conflicts is retried, then a (temporary) Conflict.
#[cfg_attr(
    not(chatvault_aws_emulators),
    ignore = "needs the AWS emulators: AWS_ENDPOINT_URL_DYNAMODB and AWS_ENDPOINT_URL_S3 (or AWS_ENDPOINT_URL) were not set when the tests were built; run ./scripts/test.sh, or scripts/emulators.sh start && eval \"$(scripts/emulators.sh env)\" first"
)]
#[tokio::test]
async fn transactions_cancelled_for_throttling_or_conflicts_are_temporary() {
    let table = common::dynamo().await;
    let record = ConversationRecord::new(Some(common::uid("u")));
    table.create(&record).await.unwrap();
    let throttling = Doctored::new(
        ".TransactWriteItems",
        Doctoring::Refuse(400, cancelled("ThrottlingError,None")),
    );
    let throttled = throttling.backend(&table, 5).await;
    let temporary = |what: &str, result: Result<(), Error>| {
        let err = result.expect_err(what);
        assert!(err.is_temporary(), "{what}: {err:?}");
        assert!(
            !err.to_string().contains("outcome is unknown"),
            "{what}: {err}"
        );
    };
    temporary(
        "add_file",
        throttled
            .add_file(&record.id, &attachment("f1", "a.txt"))
            .await
            .map(drop),
    );
    temporary(
        "update",
        throttled
            .update(&record.id, &title_patch("t"))
            .await
            .map(drop),
    );
    let fresh = ConversationRecord::new(None);
    temporary("create", throttled.create(&fresh).await);
    assert_eq!(
        throttling.doctored(),
        3,
        "each of the 3 transactions was refused"
    );
    // An append to the tail is a PutItem: throttled, it is temporary too.
    let append_throttling = Doctored::new(
        ".PutItem",
        Doctoring::Refuse(
            400,
            r#"{"__type":"com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException","message":"doctored"}"#,
        ),
    );
    temporary(
        "append",
        append_throttling
            .backend(&table, 5)
            .await
            .append_messages(&record.id, vec![NewMessage::new(Role::User, "hi")])
            .await
            .map(drop),
    );
    assert_eq!(append_throttling.doctored(), 1, "the append was refused");
    let throughput = Doctored::new(
        ".TransactWriteItems",
        Doctoring::Refuse(400, cancelled("ProvisionedThroughputExceeded")),
    );
    let throughput_backend = throughput.backend(&table, 5).await;
    temporary(
        "create (throughput)",
        throughput_backend.create(&fresh).await,
    );
    assert_eq!(throughput.doctored(), 1);

    let conflicting = Doctored::new(
        ".TransactWriteItems",
        Doctoring::Refuse(400, cancelled("TransactionConflict,None")),
    );
    let conflicted = conflicting.backend(&table, 3).await;
    let err = conflicted
        .update(&record.id, &title_patch("t"))
        .await
        .expect_err("conflicts every time");
    assert!(
        matches!(err, Error::Conflict { .. }) && err.is_temporary(),
        "{err:?}"
    );
    assert_eq!(
        conflicting.doctored(),
        3,
        "each of the 3 attempts conflicted"
    );
    let err = conflicted.create(&fresh).await.expect_err("conflicts");
    assert!(err.is_temporary(), "{err:?}");
    assert_eq!(conflicting.doctored(), 4);
    // An append to the tail meets a transaction in flight on the conversation item
    // (DynamoDB, not DynamoDB Local): retried, then a temporary Conflict.
    let append_conflicting = Doctored::new(
        ".PutItem",
        Doctoring::Refuse(
            400,
            r#"{"__type":"com.amazonaws.dynamodb.v20120810#TransactionConflictException","message":"doctored"}"#,
        ),
    );
    let err = append_conflicting
        .backend(&table, 3)
        .await
        .append_messages(&record.id, vec![NewMessage::new(Role::User, "hi")])
        .await
        .expect_err("conflicts every time");
    assert!(
        matches!(err, Error::Conflict { .. }) && err.is_temporary(),
        "{err:?}"
    );
    assert_eq!(
        append_conflicting.doctored(),
        3,
        "each of the 3 attempts conflicted"
    );

    // None of it was written.
    assert_eq!(
        table.head(&record.id).await.unwrap().map(|h| h.record),
        Some(record.clone())
    );
    assert!(common::files(&table, &record.id).await.is_empty());
    assert_eq!(table.head(&fresh.id).await.unwrap().map(|h| h.record), None);
    common::drop_table(&table).await;
}

/// A delete interrupted after its tombstone leaves the conversation marked (it reads as
/// gone and takes no writes; its id stays taken), and a second delete finishes it.
#[cfg_attr(
    not(chatvault_aws_emulators),
    ignore = "needs the AWS emulators: AWS_ENDPOINT_URL_DYNAMODB and AWS_ENDPOINT_URL_S3 (or AWS_ENDPOINT_URL) were not set when the tests were built; run ./scripts/test.sh, or scripts/emulators.sh start && eval \"$(scripts/emulators.sh env)\" first"
)]
#[tokio::test]
async fn interrupted_delete_leaves_the_conversation_marked_and_a_retry_finishes_it() {
    let table = common::dynamo_sealing_inline().await;
    let record = ConversationRecord::new(Some(common::uid("u")));
    table.create(&record).await.unwrap();
    // Two appends of 30: the second seals the first 30 into a chunk item with their id
    // markers, which the delete removes with BatchWriteItem.
    for _ in 0..2 {
        let batch: Vec<NewMessage> = (0..30)
            .map(|i| NewMessage::new(Role::User, format!("{i}")))
            .collect();
        table.append_messages(&record.id, batch).await.unwrap();
    }
    assert_eq!(common::layout(&table, &record.id).await.markers, 30);
    table
        .add_file(&record.id, &attachment("f1", "a.txt"))
        .await
        .unwrap();

    let interrupting = Doctored::new(".BatchWriteItem", Doctoring::Refuse(500, "{}"));
    let interrupted = interrupting.backend(&table, 5).await;
    let err = interrupted
        .delete(&record.id)
        .await
        .expect_err("interrupted");
    assert!(interrupting.doctored() > 0, "a BatchWriteItem was refused");
    assert!(err.is_temporary(), "{err:?}");

    // It stays marked: it reads as gone (no head, no messages, not listed), and writers
    // find it gone; begin_delete still returns its attachments, for a retried delete.
    assert_eq!(table.head(&record.id).await.unwrap(), None);
    let read = table.messages(&record.id, &MessageRange::all()).await;
    assert!(matches!(read, Err(Error::NotFound { .. })), "{read:?}");
    let listed = table
        .list_conversations(
            Some(&common::uid("u")),
            &ListOptions::new().include_archived(true),
        )
        .await
        .unwrap();
    assert!(listed.items.is_empty(), "{listed:?}");
    let files = table
        .begin_delete(&record.id)
        .await
        .unwrap()
        .expect("marked");
    assert_eq!(files.len(), 1);
    let append = table
        .append_messages(&record.id, vec![NewMessage::new(Role::User, "late")])
        .await;
    assert!(matches!(append, Err(Error::NotFound { .. })), "{append:?}");
    let update = table.update(&record.id, &title_patch("t")).await;
    assert!(matches!(update, Err(Error::NotFound { .. })), "{update:?}");
    let add = table.add_file(&record.id, &attachment("f2", "b.txt")).await;
    assert!(matches!(add, Err(Error::NotFound { .. })), "{add:?}");
    let again = table.create(&record).await;
    assert!(
        matches!(again, Err(Error::AlreadyExists { .. })),
        "{again:?}"
    );

    assert!(table.delete(&record.id).await.expect("the retry finishes"));
    let left = table
        .client()
        .query()
        .table_name(table.table_name())
        .key_condition_expression("pk = :pk")
        .expression_attribute_values(
            ":pk",
            aws_sdk_dynamodb::types::AttributeValue::S(record.id.to_string()),
        )
        .consistent_read(true)
        .send()
        .await
        .unwrap()
        .count();
    assert_eq!(left, 0);
    assert_eq!(common::whole(&table, &record.id).await, None);
    assert!(!table.delete(&record.id).await.unwrap());
    // The id can be used again, from scratch.
    table.create(&record).await.expect("create again");
    common::drop_table(&table).await;
}

/// A conversation item filled to 400 KB by its attachments can still be deleted (the
/// tombstone has room), and an append to it is TooLarge before anything is written.
#[cfg_attr(
    not(chatvault_aws_emulators),
    ignore = "needs the AWS emulators: AWS_ENDPOINT_URL_DYNAMODB and AWS_ENDPOINT_URL_S3 (or AWS_ENDPOINT_URL) were not set when the tests were built; run ./scripts/test.sh, or scripts/emulators.sh start && eval \"$(scripts/emulators.sh env)\" first"
)]
#[tokio::test]
async fn a_conversation_item_full_of_attachments_refuses_appends_and_deletes() {
    let table = common::dynamo().await;
    let record = ConversationRecord::new(Some(common::uid("u")));
    table.create(&record).await.unwrap();
    let mut i = 0;
    let mut pad = 20_000usize;
    // Fill with attachments until add_file refuses even a 1-byte pad.
    while pad > 0 {
        let mut f = attachment(&format!("f{i}"), "a.txt");
        f.metadata
            .insert("pad".into(), serde_json::json!("x".repeat(pad)));
        match table.add_file(&record.id, &f).await {
            Ok(_) => i += 1,
            Err(Error::TooLarge { size, limit, .. }) => {
                assert!(size > limit);
                pad /= 2;
            }
            Err(e) => panic!("{e:?}"),
        }
    }
    let before = common::whole(&table, &record.id).await.unwrap();
    let append = table
        .append_messages(
            &record.id,
            // Its auto-title (203 bytes) does not fit where a 1-byte pad did not.
            vec![NewMessage::new(Role::User, "😀".repeat(60))],
        )
        .await;
    match append {
        Err(Error::TooLarge { what, size, limit }) => {
            assert!(size > limit, "{size} / {limit}");
            assert!(
                what.contains(&format!("conversation {}", record.id)),
                "{what}"
            );
        }
        other => panic!("expected TooLarge, got {other:?}"),
    }
    assert_eq!(common::whole(&table, &record.id).await.unwrap(), before);
    assert!(
        table
            .delete(&record.id)
            .await
            .expect("a full conversation deletes")
    );
    assert_eq!(common::whole(&table, &record.id).await, None);
    common::drop_table(&table).await;
}

#[cfg_attr(
    not(chatvault_aws_emulators),
    ignore = "needs the AWS emulators: AWS_ENDPOINT_URL_DYNAMODB and AWS_ENDPOINT_URL_S3 (or AWS_ENDPOINT_URL) were not set when the tests were built; run ./scripts/test.sh, or scripts/emulators.sh start && eval \"$(scripts/emulators.sh env)\" first"
)]
#[tokio::test]
async fn signed_url_under_one_second_is_invalid_input() {
    let files = common::s3().await;
    let key = keys::storage_key(
        None,
        &ConversationId::parse("c").unwrap(),
        &FileId::parse("f1").unwrap(),
        "x.txt",
    )
    .unwrap();
    files
        .upload(&key, Bytes::from_static(b"hi"), &common::ct("text/plain"))
        .await
        .unwrap();
    for expires_in in [Duration::from_millis(1), Duration::from_millis(999)] {
        assert!(
            matches!(
                files.signed_url(&key, expires_in, None).await,
                Err(Error::InvalidInput {
                    field: "expires_in",
                    ..
                })
            ),
            "{expires_in:?}"
        );
    }
    let url = files
        .signed_url(&key, Duration::from_secs(1), None)
        .await
        .expect("stored");
    assert!(
        url.contains("X-Amz-Expires=1&") || url.ends_with("X-Amz-Expires=1"),
        "{url}"
    );
    common::drop_bucket(&files).await;
}

/// The longest prefix the builder takes leaves room for the longest storage key
/// `keys::storage_key` makes: it round-trips at exactly S3's 1,024 bytes. One byte more
/// of prefix is refused when building.
#[cfg_attr(
    not(chatvault_aws_emulators),
    ignore = "needs the AWS emulators: AWS_ENDPOINT_URL_DYNAMODB and AWS_ENDPOINT_URL_S3 (or AWS_ENDPOINT_URL) were not set when the tests were built; run ./scripts/test.sh, or scripts/emulators.sh start && eval \"$(scripts/emulators.sh env)\" first"
)]
#[tokio::test]
async fn the_longest_prefix_fits_the_longest_storage_key() {
    let base = common::s3().await;
    let sdk = common::sdk_config().await;
    let refused = S3Files::builder(base.bucket())
        .sdk_config(&sdk)
        .prefix("p".repeat(chatvault_aws::MAX_PREFIX_LEN + 1))
        .build()
        .await;
    assert!(
        matches!(
            refused,
            Err(Error::InvalidInput {
                field: "prefix",
                ..
            })
        ),
        "{refused:?}"
    );
    let prefix = format!(
        "{}/{}",
        "p".repeat(100),
        "q".repeat(chatvault_aws::MAX_PREFIX_LEN - 101)
    );
    let files = S3Files::builder(base.bucket())
        .sdk_config(&sdk)
        .prefix(prefix)
        .build()
        .await
        .unwrap();
    assert_eq!(files.prefix().len(), chatvault_aws::MAX_PREFIX_LEN + 1);
    // Escapes that end exactly where each segment is cut: every segment at its longest.
    let key = keys::storage_key(
        Some(&common::uid(&format!("ab{}", ":".repeat(200)))),
        &ConversationId::parse(format!("ab{}", ":".repeat(126))).unwrap(),
        &FileId::parse(format!("ab{}", "@".repeat(126))).unwrap(),
        &format!("a{}", ":".repeat(300)),
    )
    .unwrap();
    assert_eq!(
        files.object_key(&key).len(),
        chatvault_aws::MAX_OBJECT_KEY_LEN
    );
    files
        .upload(
            &key,
            Bytes::from_static(b"longest"),
            &common::ct("text/plain"),
        )
        .await
        .expect("the longest key fits");
    assert_eq!(
        files.download(&key).await.unwrap().as_deref(),
        Some(&b"longest"[..])
    );
    assert!(files.delete(&key).await.unwrap());
    common::drop_bucket(&base).await;
}

/// The documented recovery from `OutcomeUnknown`: retry the append with the same message
/// ids. The append had committed although its answer was lost: the retry (from another
/// process, or from the same backend) stores nothing new and returns the stored
/// messages; the same ids with other content, or a batch only partly stored, are
/// AlreadyExists.
#[cfg_attr(
    not(chatvault_aws_emulators),
    ignore = "needs the AWS emulators: AWS_ENDPOINT_URL_DYNAMODB and AWS_ENDPOINT_URL_S3 (or AWS_ENDPOINT_URL) were not set when the tests were built; run ./scripts/test.sh, or scripts/emulators.sh start && eval \"$(scripts/emulators.sh env)\" first"
)]
#[tokio::test]
async fn retrying_an_append_whose_outcome_is_unknown_stores_it_once() {
    let table = common::dynamo().await;
    let record = ConversationRecord::new(Some(common::uid("u")));
    table.create(&record).await.unwrap();
    // An append to the tail is one conditional PutItem.
    let losing = Doctored::new(".PutItem", Doctoring::LoseAnswerThenFailEverything);
    let lossy = losing.backend(&table, 5).await;
    let batch = vec![
        NewMessage::new(Role::User, "one"),
        NewMessage::new(Role::Assistant, "two"),
    ];
    let err = lossy
        .append_messages(&record.id, batch.clone())
        .await
        .expect_err("the answer was lost and cannot be checked");
    assert!(losing.doctored() > 0, "no answer was lost");
    assert_eq!(err.kind(), ErrorKind::OutcomeUnknown, "{err:?}");

    // Another process retries with the same ids.
    let other = DynamoMessages::from_client(table.client().clone(), table.table_name());
    let again = other
        .append_messages(&record.id, batch.clone())
        .await
        .expect("the retry answers with the stored messages");
    let ids = |ms: &[chatvault_core::Message]| ms.iter().map(|m| m.id.clone()).collect::<Vec<_>>();
    assert_eq!(
        ids(&again.messages),
        batch.iter().map(|m| m.id.clone()).collect::<Vec<_>>()
    );
    assert_eq!(
        again.messages.iter().map(|m| m.seq).collect::<Vec<_>>(),
        [1, 2]
    );
    assert_eq!(again.record.message_count, 2);
    // And this backend, whose memory of the conversation is stale, too.
    let third = table
        .append_messages(&record.id, batch.clone())
        .await
        .expect("a second retry");
    assert_eq!(third.messages, again.messages);
    let stored = common::whole(&table, &record.id).await.unwrap();
    assert_eq!(stored.messages, again.messages, "stored once");
    assert_eq!(stored.record.version, 2, "one append");

    // The same id with other content, and a batch only partly stored: AlreadyExists.
    let mut changed = batch[0].clone();
    changed.parts = vec![chatvault_core::Part::text("something else")];
    let err = table
        .append_messages(&record.id, vec![changed])
        .await
        .expect_err("other content");
    assert!(matches!(err, Error::AlreadyExists { .. }), "{err:?}");
    let mixed = vec![batch[0].clone(), NewMessage::new(Role::User, "new")];
    let err = table
        .append_messages(&record.id, mixed)
        .await
        .expect_err("partly stored");
    assert!(matches!(err, Error::AlreadyExists { .. }), "{err:?}");
    let after = common::whole(&table, &record.id).await.unwrap();
    assert_eq!(after.messages, stored.messages, "nothing more stored");
    assert_eq!(after.record, stored.record);
    common::drop_table(&table).await;
}

/// Credentials the service refuses are PermissionDenied, not a generic backend error
/// (DynamoDB Local refuses access keys that are not alphanumeric).
#[cfg_attr(
    not(chatvault_aws_emulators),
    ignore = "needs the AWS emulators: AWS_ENDPOINT_URL_DYNAMODB and AWS_ENDPOINT_URL_S3 (or AWS_ENDPOINT_URL) were not set when the tests were built; run ./scripts/test.sh, or scripts/emulators.sh start && eval \"$(scripts/emulators.sh env)\" first"
)]
#[tokio::test]
async fn refused_credentials_are_permission_denied() {
    let table = common::dynamo().await;
    let config = aws_sdk_dynamodb::config::Builder::from(&common::sdk_config().await)
        .credentials_provider(aws_sdk_dynamodb::config::Credentials::new(
            "not-a-valid-key!",
            "secret",
            None,
            None,
            "chatvault-tests",
        ))
        .build();
    let refused = DynamoMessages::from_client(
        aws_sdk_dynamodb::Client::from_conf(config),
        table.table_name(),
    );
    let err = refused
        .head(&ConversationId::new())
        .await
        .expect_err("refused");
    assert_eq!(err.kind(), ErrorKind::PermissionDenied, "{err:?}");
    assert!(!err.is_temporary());
    assert!(
        std::error::Error::source(&err).is_some(),
        "the SDK's error is kept"
    );
    common::drop_table(&table).await;
}
