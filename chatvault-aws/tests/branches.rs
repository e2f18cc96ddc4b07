//! Branches on DynamoDB Local, beyond the conformance suite's checks: the requests each
//! branch operation takes, the branch table as the conversation item stores it (and drops
//! once the conversation is one line again), edits of sealed messages, writers in other
//! processes, and a switch whose answer was lost.

mod common;

use aws_sdk_dynamodb::types::AttributeValue;
use chatvault_aws::DynamoMessages;
use chatvault_core::backend::MessagesBackendExt;
use chatvault_core::{
    ActiveLeaf, ChatVault, ConversationId, ConversationPatch, ConversationRecord, Message,
    MessageId, MessageRange, MessagesBackend, NewMessage, Parent, Role,
};

async fn new_conversation(backend: &DynamoMessages) -> ConversationRecord {
    let record = ConversationRecord::new(Some(common::uid("brancher")));
    backend.create(&record).await.expect("create");
    record
}

/// Appends `count` user messages, `batch` per append; returns them.
async fn line(backend: &DynamoMessages, id: &ConversationId, count: usize) -> Vec<Message> {
    let mut out = Vec::with_capacity(count);
    for start in (0..count).step_by(10) {
        let batch = (start..count.min(start + 10))
            .map(|i| NewMessage::new(Role::User, format!("m{}", i + 1)))
            .collect();
        out.extend(
            backend
                .append_messages(id, batch)
                .await
                .expect("append")
                .messages,
        );
    }
    out
}

async fn edit(backend: &DynamoMessages, id: &ConversationId, parent: u64, text: &str) -> Message {
    let m = NewMessage::new(Role::User, text).with_parent(Parent::Seq(parent));
    let mut out = backend.append_messages(id, vec![m]).await.expect("edit");
    out.messages.remove(0)
}

async fn set_active(
    backend: &DynamoMessages,
    id: &ConversationId,
    active: ActiveLeaf,
) -> ConversationRecord {
    let patch = ConversationPatch {
        active: Some(active),
        ..ConversationPatch::default()
    };
    backend.update(id, &patch).await.expect("update")
}

async fn head(backend: &DynamoMessages, id: &ConversationId) -> ConversationRecord {
    backend
        .head(id)
        .await
        .expect("head")
        .expect("exists")
        .record
}

/// Every stored message follows what the record's branch table says.
async fn assert_consistent(backend: &DynamoMessages, id: &ConversationId) -> Vec<Message> {
    let stored = common::whole(backend, id).await.expect("exists");
    let tree = stored.record.tree();
    assert_eq!(tree.message_count(), stored.record.message_count);
    assert_eq!(stored.messages.len() as u64, stored.record.message_count);
    for m in &stored.messages {
        assert_eq!(m.parent, tree.parent_of(m.seq), "seq {}", m.seq);
    }
    stored.messages
}

#[cfg_attr(
    not(chatvault_aws_emulators),
    ignore = "needs the AWS emulators: AWS_ENDPOINT_URL_DYNAMODB and AWS_ENDPOINT_URL_S3 (or AWS_ENDPOINT_URL) were not set when the tests were built; run ./scripts/test.sh, or scripts/emulators.sh start && eval \"$(scripts/emulators.sh env)\" first"
)]
#[tokio::test]
async fn branch_operations_take_their_requests() {
    let (backend, requests) = common::dynamo_counted().await;
    let record = new_conversation(&backend).await;
    let id = &record.id;
    let first = line(&backend, id, 4).await;

    requests.reset();
    let edited = edit(&backend, id, 2, "m3, edited").await;
    assert_eq!(requests.get(), 1, "an edit is an append: one PutItem");
    assert_eq!((edited.seq, edited.parent), (5, Some(2)));
    requests.reset();
    let switched = set_active(&backend, id, ActiveLeaf::Branch(3)).await;
    assert_eq!(
        requests.get(),
        2,
        "a switch: GetItem + one conditional write"
    );
    assert_eq!(switched.active_leaf(), Some(4));

    // By id: one read in the tail, or for an id no sealed message can have.
    requests.reset();
    let found = backend.message(id, &edited.id).await.expect("message");
    assert_eq!(found.as_ref(), Some(&edited));
    assert_eq!(requests.get(), 1, "a message of the tail: one GetItem");
    requests.reset();
    assert_eq!(
        backend
            .message(id, &MessageId::new())
            .await
            .expect("unknown"),
        None
    );
    assert_eq!(
        requests.get(),
        1,
        "an id after every sealed one: one GetItem"
    );

    // Sealed: through its id marker.
    line(&backend, id, 60).await;
    // The tail's pending seal copied, and dropped from the tail by the next append.
    backend.finish_seals().await;
    line(&backend, id, 1).await;
    requests.reset();
    let sealed = backend.message(id, &first[1].id).await.expect("sealed");
    assert_eq!(sealed.as_ref(), Some(&first[1]));
    assert_eq!(
        requests.get(),
        3,
        "GetItem, the marker's GetItem, one Query"
    );
    let missing = ConversationId::new();
    let err = backend
        .message(&missing, &first[1].id)
        .await
        .expect_err("no conversation");
    assert_eq!(err.kind(), chatvault_core::ErrorKind::NotFound, "{err:?}");
    common::drop_table(&backend).await;
}

#[cfg_attr(
    not(chatvault_aws_emulators),
    ignore = "needs the AWS emulators: AWS_ENDPOINT_URL_DYNAMODB and AWS_ENDPOINT_URL_S3 (or AWS_ENDPOINT_URL) were not set when the tests were built; run ./scripts/test.sh, or scripts/emulators.sh start && eval \"$(scripts/emulators.sh env)\" first"
)]
#[tokio::test]
async fn the_conversation_item_stores_the_table_only_while_there_are_branches() {
    let backend = common::dynamo().await;
    let record = new_conversation(&backend).await;
    let id = &record.id;
    line(&backend, id, 4).await;
    let item = common::conversation_item(&backend, id).await;
    assert!(
        !item.contains_key("tree"),
        "one line: no table, as before branches"
    );
    assert_eq!(
        item.get("message_count"),
        Some(&AttributeValue::N("4".into()))
    );

    // Rewound: the table (with its leaf) and the path's length, which listings show.
    let rewound = set_active(&backend, id, ActiveLeaf::At(2)).await;
    let item = common::conversation_item(&backend, id).await;
    let tree = serde_json::to_string(&rewound.tree).expect("json");
    assert_eq!(item.get("tree"), Some(&AttributeValue::S(tree)));
    assert_eq!(
        item.get("message_count"),
        Some(&AttributeValue::N("2".into()))
    );
    assert_eq!(head(&backend, id).await, rewound);
    let listed = backend
        .list_conversations(record.user_id.as_ref(), &chatvault_core::ListOptions::new())
        .await
        .expect("list");
    assert_eq!(
        listed.items[0].message_count, 2,
        "listings count the active path"
    );

    // Switched back to the end of the line: one line again, the attribute removed.
    let back = set_active(&backend, id, ActiveLeaf::Branch(2)).await;
    assert_eq!((back.tree.clone(), back.active_leaf()), (None, Some(4)));
    let item = common::conversation_item(&backend, id).await;
    assert!(!item.contains_key("tree"), "{item:?}");
    assert_eq!(
        item.get("message_count"),
        Some(&AttributeValue::N("4".into()))
    );
    assert_eq!(head(&backend, id).await, back);
    common::drop_table(&backend).await;
}

#[cfg_attr(
    not(chatvault_aws_emulators),
    ignore = "needs the AWS emulators: AWS_ENDPOINT_URL_DYNAMODB and AWS_ENDPOINT_URL_S3 (or AWS_ENDPOINT_URL) were not set when the tests were built; run ./scripts/test.sh, or scripts/emulators.sh start && eval \"$(scripts/emulators.sh env)\" first"
)]
#[tokio::test]
async fn sealed_messages_take_edits_and_branches_are_sealed_whole() {
    let backend = common::dynamo().await;
    let vault = ChatVault::new(backend.clone(), common::NoFiles);
    let record = new_conversation(&backend).await;
    let id = &record.id;
    let first = line(&backend, id, 120).await;
    // Seq 10 is sealed in a chunk; its new version joins the tail.
    let edited = edit(&backend, id, 9, "m10, edited").await;
    assert_eq!((edited.seq, edited.parent), (121, Some(9)));
    line(&backend, id, 3).await;
    let conversation = vault
        .get_conversation(id)
        .await
        .expect("get")
        .expect("exists");
    let path = conversation.messages().await.expect("the active path");
    let seqs: Vec<u64> = path.iter().map(|m| m.seq).collect();
    let want: Vec<u64> = (1..=9).chain(121..=124).collect();
    assert_eq!(seqs, want);
    let old = conversation
        .branch_page(120, &MessageRange::after(0).limit(200))
        .await
        .expect("the old branch");
    assert_eq!(old.items.len(), 120);
    assert_eq!(old.items[9].id, first[9].id);

    // An update of a sealed message on the other branch keeps its place in the tree.
    let update = chatvault_core::MessageUpdate {
        parts: Some(vec![chatvault_core::Part::text("m50, revised")]),
        ..Default::default()
    };
    let revised = backend
        .update_message(id, &first[49].id, 1, &update)
        .await
        .expect("update a sealed message")
        .message;
    assert_eq!((revised.seq, revised.parent), (50, Some(49)));

    // Enough appends to seal the tail holding the branch: the parents are sealed as they
    // were, and the table still agrees with every message.
    line(&backend, id, 60).await;
    let all = assert_consistent(&backend, id).await;
    assert_eq!(all[120].parent, Some(9));
    assert_eq!(all[121].parent, Some(121));
    let found = backend.message(id, &edited.id).await.expect("by id");
    assert_eq!(found, Some(edited));
    common::drop_table(&backend).await;
}

#[cfg_attr(
    not(chatvault_aws_emulators),
    ignore = "needs the AWS emulators: AWS_ENDPOINT_URL_DYNAMODB and AWS_ENDPOINT_URL_S3 (or AWS_ENDPOINT_URL) were not set when the tests were built; run ./scripts/test.sh, or scripts/emulators.sh start && eval \"$(scripts/emulators.sh env)\" first"
)]
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn writers_in_other_processes_edit_and_switch_against_fresh_state() {
    let (backend, requests) = common::dynamo_counted().await;
    let other = DynamoMessages::from_client(backend.client().clone(), backend.table_name());
    let record = new_conversation(&backend).await;
    let id = record.id.clone();
    line(&backend, &id, 1).await;
    // Another process stores seq 2..4: this backend remembers one message.
    line(&other, &id, 3).await;
    requests.reset();
    let edited = edit(&backend, &id, 3, "follows what only the other saw").await;
    assert_eq!((edited.seq, edited.parent), (5, Some(3)));
    assert_eq!(
        requests.get(),
        2,
        "the parent is read for, not refused: GetItem + PutItem"
    );

    // Four processes edit seq 3 at once: every edit is kept, as a sibling.
    let edits = (0..4).map(|i| {
        let backend = DynamoMessages::from_client(backend.client().clone(), backend.table_name());
        let id = id.clone();
        tokio::spawn(async move { edit(&backend, &id, 2, &format!("racing {i}")).await })
    });
    let mut stored = Vec::new();
    for e in edits {
        stored.push(e.await.expect("joins"));
    }
    let now = head(&backend, &id).await;
    let siblings = now.tree().siblings(3);
    assert_eq!(siblings.len(), 5, "{siblings:?}");
    assert!(stored.iter().all(|m| siblings.contains(&m.seq)));
    assert!(stored.iter().any(|m| Some(m.seq) == now.active_leaf()));
    // A switch from a backend that has not seen the edits.
    let switched = set_active(&other, &id, ActiveLeaf::Branch(5)).await;
    assert_eq!(switched.active_leaf(), Some(5));
    let appended = backend
        .append_messages(
            &id,
            vec![NewMessage::new(Role::Assistant, "after the switch")],
        )
        .await
        .expect("append");
    assert_eq!(
        appended.messages[0].parent,
        Some(5),
        "continues the switched-to branch"
    );
    assert_consistent(&backend, &id).await;
    common::drop_table(&backend).await;
}

#[cfg_attr(
    not(chatvault_aws_emulators),
    ignore = "needs the AWS emulators: AWS_ENDPOINT_URL_DYNAMODB and AWS_ENDPOINT_URL_S3 (or AWS_ENDPOINT_URL) were not set when the tests were built; run ./scripts/test.sh, or scripts/emulators.sh start && eval \"$(scripts/emulators.sh env)\" first"
)]
#[tokio::test]
async fn a_switch_whose_answer_was_lost_reports_success() {
    let table = common::dynamo().await;
    let record = new_conversation(&table).await;
    line(&table, &record.id, 4).await;
    edit(&table, &record.id, 1, "m2, edited").await;
    let lost = common::LoseWriteAnswers::new(usize::MAX);
    let backend = common::with_lost_answers(&table, &lost, 1).await;
    let switched = set_active(&backend, &record.id, ActiveLeaf::Branch(2)).await;
    assert_eq!(lost.lost(), 1, "the switch's answer was lost");
    assert_eq!(switched.active_leaf(), Some(4));
    assert_eq!(switched, head(&table, &record.id).await);
    common::drop_table(&table).await;
}
