//! A table written by 0.2 (format 2: chunk bodies as JSON strings, no pending seal) read,
//! updated and appended to by this release. The 0.2 layout is this release's layout with
//! seals inside the appends, its format set back to 2 and its chunk bodies stored as
//! `messages` strings, which is what 0.2 wrote (docs/table.md).

mod common;

use aws_sdk_dynamodb::types::AttributeValue;
use chatvault_aws::DynamoMessages;
use chatvault_core::backend::MessagesBackendExt;
use chatvault_core::{ConversationRecord, MessageUpdate, MessagesBackend, NewMessage, Part, Role};
use common::read_all;

/// Rewrites conversation `id`'s items as 0.2 stored them.
async fn as_written_by_0_2(backend: &DynamoMessages, id: &chatvault_core::ConversationId) {
    let items = common::partition(backend, id).await;
    let mut chunks = 0;
    for mut item in items {
        let sk = match item.get("sk") {
            Some(AttributeValue::S(sk)) => sk.clone(),
            other => panic!("an item without a sort key: {other:?}"),
        };
        if sk == "#conversation" {
            assert!(!item.contains_key("pending"), "sealed inside the appends");
            item.insert("format".into(), AttributeValue::N("2".into()));
        } else if let Some(json) = common::chunk_json(&item) {
            item.remove("messages_lz4");
            item.insert("messages".into(), AttributeValue::S(json));
            chunks += 1;
        } else {
            continue;
        }
        backend
            .client()
            .put_item()
            .table_name(backend.table_name())
            .set_item(Some(item))
            .send()
            .await
            .expect("put");
    }
    assert!(chunks >= 2, "{chunks} chunks");
}

#[cfg_attr(
    not(chatvault_aws_emulators),
    ignore = "needs the AWS emulators: AWS_ENDPOINT_URL_DYNAMODB and AWS_ENDPOINT_URL_S3 (or AWS_ENDPOINT_URL) were not set when the tests were built; run ./scripts/test.sh, or scripts/emulators.sh start && eval \"$(scripts/emulators.sh env)\" first"
)]
#[tokio::test]
async fn a_conversation_of_format_2_reads_updates_and_grows() {
    let inline = common::dynamo_sealing_inline().await;
    let record = ConversationRecord::new(None);
    inline.create(&record).await.expect("create");
    let id = &record.id;
    for batch in 0..10 {
        let messages = (0..10)
            .map(|k| NewMessage::new(Role::User, format!("m{}", batch * 10 + k)))
            .collect();
        inline.append_messages(id, messages).await.expect("append");
    }
    let before = read_all(&inline, id).await;
    as_written_by_0_2(&inline, id).await;

    // A backend of this release that never saw it.
    let now = DynamoMessages::from_client(inline.client().clone(), inline.table_name());
    assert_eq!(read_all(&now, id).await, before);
    let sealed = &before[3];
    assert_eq!(
        now.message(id, &sealed.id).await.expect("by id").as_ref(),
        Some(sealed)
    );
    let edit = MessageUpdate {
        parts: Some(vec![Part::text("edited")]),
        ..MessageUpdate::default()
    };
    now.update_message(id, &sealed.id, 1, &edit)
        .await
        .expect("update in a chunk of 0.2");
    for k in 100..160 {
        now.append_messages(id, vec![NewMessage::new(Role::User, format!("m{k}"))])
            .await
            .expect("append");
    }
    now.finish_seals().await;
    let after = read_all(&now, id).await;
    assert_eq!(after.len(), 160);
    assert!(after.iter().enumerate().all(|(i, m)| m.seq == i as u64 + 1));
    for (k, m) in after.iter().enumerate() {
        let want = if k == 3 {
            "edited".to_owned()
        } else {
            format!("m{k}")
        };
        assert_eq!(m.content(), want, "seq {}", m.seq);
    }
    let item = common::conversation_item(&now, id).await;
    assert_eq!(item.get("format"), Some(&AttributeValue::N("3".into())));
    let layout = common::layout(&now, id).await;
    assert_eq!(layout.chunked + layout.tail, 160, "{layout:?}");
    common::drop_table(&now).await;
}
