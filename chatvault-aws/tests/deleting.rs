//! `DynamoMessages::list_deleting` on DynamoDB Local (issue #24, the marked-conversation
//! window): conversations marked by `begin_delete` (or by a `delete` that did not
//! finish) are listed, exactly, after any crash; live and deleted ones never are; the
//! deletion markers stay out of both listing indexes and go with the conversation.
#![allow(clippy::unwrap_used)] // tests may unwrap
mod common;

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};

use aws_sdk_dynamodb::types::AttributeValue;
use chatvault_aws::DynamoMessages;
use chatvault_core::backend::MessagesBackendExt;
use chatvault_core::{
    ConversationId, ConversationRecord, FileAttachment, FileId, ListOptions, MessagesBackend,
    NewMessage, PageLimit, Role, keys,
};

type Item = HashMap<String, AttributeValue>;

/// The markers' partition, as the backend lays it out.
const DELETING_PK: &str = "#deleting";

fn limit(n: usize) -> PageLimit {
    PageLimit::new(n).unwrap()
}

fn ids<'a>(list: impl IntoIterator<Item = &'a ConversationId>) -> BTreeSet<String> {
    list.into_iter().map(ToString::to_string).collect()
}

async fn conversation(backend: &DynamoMessages, user: Option<&str>, id: &str) -> ConversationId {
    let mut record = ConversationRecord::new(user.map(common::uid));
    record.id = ConversationId::parse(id).unwrap();
    backend.create(&record).await.unwrap();
    backend
        .append_messages(&record.id, vec![NewMessage::new(Role::User, "hello")])
        .await
        .unwrap();
    record.id
}

async fn deleting(backend: &DynamoMessages, user: Option<&str>, n: usize) -> Vec<ConversationId> {
    let user = user.map(common::uid);
    backend
        .list_deleting(user.as_ref(), limit(n))
        .await
        .unwrap()
}

/// Every item of the markers' partition (a consistent `Query`).
async fn marker_items(backend: &DynamoMessages) -> Vec<Item> {
    backend
        .client()
        .query()
        .table_name(backend.table_name())
        .key_condition_expression("pk = :pk")
        .expression_attribute_values(":pk", AttributeValue::S(DELETING_PK.into()))
        .consistent_read(true)
        .send()
        .await
        .unwrap()
        .items
        .unwrap_or_default()
}

fn sk(item: &Item) -> String {
    match item.get("sk") {
        Some(AttributeValue::S(sk)) => sk.clone(),
        other => panic!("a marker without a sort key: {other:?}"),
    }
}

/// The sort key the backend gives the marker of `id` owned by `user`.
fn marker_sk(user: Option<&str>, id: &str) -> String {
    match user {
        Some(u) => format!("u#{:03}#{u}#{id}", u.len()),
        None => format!("n#{id}"),
    }
}

/// Writes a marker directly, as `begin_delete` does before its tombstone: what a crash
/// between the two leaves.
async fn put_marker(backend: &DynamoMessages, user: Option<&str>, id: &str, token: &str) {
    let mut put = backend
        .client()
        .put_item()
        .table_name(backend.table_name())
        .item("pk", AttributeValue::S(DELETING_PK.into()))
        .item("sk", AttributeValue::S(marker_sk(user, id)))
        .item("conversation", AttributeValue::S(id.into()))
        .item("token", AttributeValue::S(token.into()))
        .item(
            "written_at",
            AttributeValue::S("2026-12-07T00:00:00.000000Z".into()),
        );
    if let Some(u) = user {
        put = put.item("owner", AttributeValue::S(u.into()));
    }
    put.send().await.unwrap();
}

/// Every item of both listing indexes (scans of the GSIs, which hold few items here).
async fn index_items(backend: &DynamoMessages) -> Vec<Item> {
    let mut out = Vec::new();
    for index in ["by_user", "by_activity"] {
        let page = backend
            .client()
            .scan()
            .table_name(backend.table_name())
            .index_name(index)
            .send()
            .await
            .unwrap();
        out.extend(page.items.unwrap_or_default());
    }
    out
}

/// Fails (before sending) the first `n` requests whose `x-amz-target` ends with
/// `target`: a process that dies before that request. `fired` counts them.
#[derive(Clone, Debug)]
struct Crash {
    target: &'static str,
    remaining: Arc<AtomicUsize>,
    fired: Arc<AtomicUsize>,
}

impl Crash {
    fn before(target: &'static str) -> Self {
        Crash {
            target,
            remaining: Arc::new(AtomicUsize::new(1)),
            fired: Arc::new(AtomicUsize::new(0)),
        }
    }

    fn fired(&self) -> usize {
        self.fired.load(SeqCst)
    }
}

impl aws_sdk_dynamodb::config::Intercept for Crash {
    fn name(&self) -> &'static str {
        "Crash"
    }

    fn read_before_transmit(
        &self,
        context: &aws_sdk_dynamodb::config::interceptors::BeforeTransmitInterceptorContextRef<'_>,
        _: &aws_sdk_dynamodb::config::RuntimeComponents,
        _: &mut aws_sdk_dynamodb::config::ConfigBag,
    ) -> Result<(), aws_sdk_dynamodb::error::BoxError> {
        let target = context.request().headers().get("x-amz-target");
        if target.is_some_and(|t| t.ends_with(self.target))
            && self
                .remaining
                .fetch_update(SeqCst, SeqCst, |n| n.checked_sub(1))
                .is_ok()
        {
            self.fired.fetch_add(1, SeqCst);
            return Err(format!("simulated crash before {}", self.target).into());
        }
        Ok(())
    }
}

/// A second backend on `backend`'s table, through a new client (what a restarted
/// process has), crashing as `crash` says.
async fn reopened(backend: &DynamoMessages, crash: Option<&Crash>) -> DynamoMessages {
    let mut config = aws_sdk_dynamodb::config::Builder::from(&common::sdk_config().await)
        .retry_config(aws_config::retry::RetryConfig::standard().with_max_attempts(1));
    if let Some(crash) = crash {
        config = config.interceptor(crash.clone());
    }
    DynamoMessages::from_client(
        aws_sdk_dynamodb::Client::from_conf(config.build()),
        backend.table_name(),
    )
}

#[cfg_attr(
    not(chatvault_aws_emulators),
    ignore = "needs the AWS emulators: AWS_ENDPOINT_URL_DYNAMODB and AWS_ENDPOINT_URL_S3 (or AWS_ENDPOINT_URL) were not set when the tests were built; run ./scripts/test.sh, or scripts/emulators.sh start && eval \"$(scripts/emulators.sh env)\" first"
)]
#[tokio::test]
async fn lists_exactly_the_marked_conversations_until_they_are_deleted() {
    let backend = common::dynamo().await;
    assert!(deleting(&backend, None, 1000).await.is_empty(), "fresh");
    assert!(deleting(&backend, Some("a"), 1000).await.is_empty());
    let a1 = conversation(&backend, Some("a"), "a1").await;
    let a2 = conversation(&backend, Some("a"), "a2").await;
    let b1 = conversation(&backend, Some("b"), "b1").await;
    assert!(deleting(&backend, None, 1000).await.is_empty(), "all live");
    assert!(backend.begin_delete(&a1).await.unwrap().is_some());
    assert!(backend.begin_delete(&b1).await.unwrap().is_some());

    assert_eq!(deleting(&backend, Some("a"), 1000).await, vec![a1.clone()]);
    assert_eq!(deleting(&backend, Some("b"), 10).await, vec![b1.clone()]);
    assert!(deleting(&backend, Some("c"), 10).await.is_empty());
    assert_eq!(ids(&deleting(&backend, None, 1000).await), ids([&a1, &b1]));
    let one = deleting(&backend, None, 1).await;
    assert_eq!(one.len(), 1);
    assert!(one[0] == a1 || one[0] == b1, "{one:?}");

    // The marked ones are in no listing; the markers are in neither index.
    for user in [Some(common::uid("a")), Some(common::uid("b")), None] {
        let page = backend
            .list_conversations(user.as_ref(), &ListOptions::new().include_archived(true))
            .await
            .unwrap();
        let listed = ids(page.items.iter().map(|s| &s.id));
        assert!(
            !listed.contains("a1") && !listed.contains("b1"),
            "{listed:?}"
        );
    }
    let all = backend
        .list_conversations(None, &ListOptions::new())
        .await
        .unwrap();
    assert_eq!(ids(all.items.iter().map(|s| &s.id)), ids([&a2]));
    let indexed = index_items(&backend).await;
    assert_eq!(indexed.len(), 2, "a2 in each index: {indexed:?}");
    assert!(
        indexed
            .iter()
            .all(|i| i.get("pk") == Some(&AttributeValue::S("a2".into()))),
        "{indexed:?}"
    );
    assert_eq!(marker_items(&backend).await.len(), 2, "one marker each");

    // `delete` takes them off the list, and their markers with them.
    assert!(backend.delete(&a1).await.unwrap());
    assert_eq!(deleting(&backend, None, 1000).await, vec![b1.clone()]);
    assert!(deleting(&backend, Some("a"), 1000).await.is_empty());
    assert!(backend.delete(&b1).await.unwrap());
    assert!(deleting(&backend, None, 1000).await.is_empty());
    assert!(marker_items(&backend).await.is_empty(), "markers left");
    // The live one was never listed, and is untouched.
    assert!(backend.head(&a2).await.unwrap().is_some());
    common::drop_table(&backend).await;
}

#[cfg_attr(
    not(chatvault_aws_emulators),
    ignore = "needs the AWS emulators: AWS_ENDPOINT_URL_DYNAMODB and AWS_ENDPOINT_URL_S3 (or AWS_ENDPOINT_URL) were not set when the tests were built; run ./scripts/test.sh, or scripts/emulators.sh start && eval \"$(scripts/emulators.sh env)\" first"
)]
#[tokio::test]
async fn owners_are_kept_apart_and_a_caller_loop_ends() {
    let backend = common::dynamo().await;
    // A user id may contain `#`: "a"'s listing must not take "a#1"'s, nor the other way.
    let mine = conversation(&backend, Some("a"), "c1").await;
    let theirs = conversation(&backend, Some("a#1"), "c2").await;
    let nobodys = conversation(&backend, None, "c3").await;
    let n = conversation(&backend, Some("n"), "c4").await;
    for id in [&mine, &theirs, &nobodys, &n] {
        assert!(backend.begin_delete(id).await.unwrap().is_some());
    }
    assert_eq!(
        deleting(&backend, Some("a"), 1000).await,
        vec![mine.clone()]
    );
    assert_eq!(
        deleting(&backend, Some("a#1"), 1000).await,
        vec![theirs.clone()]
    );
    assert_eq!(deleting(&backend, Some("n"), 1000).await, vec![n.clone()]);
    assert_eq!(
        ids(&deleting(&backend, None, 1000).await),
        ids([&mine, &theirs, &nobodys, &n])
    );

    // A caller that deletes what it gets, one at a time, until the answer is empty.
    let mut deleted = Vec::new();
    loop {
        let page = deleting(&backend, None, 1).await;
        let Some(id) = page.first() else { break };
        assert!(backend.delete(id).await.unwrap(), "{id}");
        deleted.push(id.clone());
        assert!(deleted.len() <= 4, "listed again: {deleted:?}");
    }
    assert_eq!(ids(&deleted), ids([&mine, &theirs, &nobodys, &n]));
    assert!(marker_items(&backend).await.is_empty());
    common::drop_table(&backend).await;
}

#[cfg_attr(
    not(chatvault_aws_emulators),
    ignore = "needs the AWS emulators: AWS_ENDPOINT_URL_DYNAMODB and AWS_ENDPOINT_URL_S3 (or AWS_ENDPOINT_URL) were not set when the tests were built; run ./scripts/test.sh, or scripts/emulators.sh start && eval \"$(scripts/emulators.sh env)\" first"
)]
#[tokio::test]
async fn a_marker_without_its_mark_lists_nothing_and_hides_no_later_mark() {
    let backend = common::dynamo().await;
    let id = conversation(&backend, Some("a"), "c1").await;
    // The marker `begin_delete` writes, then a crash before the tombstone.
    put_marker(&backend, Some("a"), "c1", "crashed").await;
    assert!(deleting(&backend, Some("a"), 1000).await.is_empty());
    assert!(deleting(&backend, None, 1000).await.is_empty());
    assert!(backend.head(&id).await.unwrap().is_some(), "still live");
    // Left in place (a begin_delete under way looks the same).
    assert_eq!(marker_items(&backend).await.len(), 1);

    // A later real mark is listed, under the same key as the marker written above (so
    // that marker is the one the backend writes).
    assert!(backend.begin_delete(&id).await.unwrap().is_some());
    assert_eq!(deleting(&backend, Some("a"), 1000).await, vec![id.clone()]);
    let markers = marker_items(&backend).await;
    assert_eq!(markers.len(), 1, "{markers:?}");
    assert_eq!(sk(&markers[0]), marker_sk(Some("a"), "c1"));
    assert_ne!(
        markers[0].get("token"),
        Some(&AttributeValue::S("crashed".into())),
        "begin_delete puts the marker again"
    );

    // The same crash, through the backend's own code: the tombstone's UpdateItem never
    // goes out.
    let other = conversation(&backend, None, "c2").await;
    let crash = Crash::before(".UpdateItem");
    let crashing = reopened(&backend, Some(&crash)).await;
    assert!(crashing.begin_delete(&other).await.is_err());
    assert_eq!(crash.fired(), 1, "the crash happened");
    assert!(backend.head(&other).await.unwrap().is_some(), "not marked");
    assert_eq!(
        marker_items(&backend).await.len(),
        2,
        "its marker is written"
    );
    assert_eq!(deleting(&backend, None, 1000).await, vec![id.clone()]);
    common::drop_table(&backend).await;
}

#[cfg_attr(
    not(chatvault_aws_emulators),
    ignore = "needs the AWS emulators: AWS_ENDPOINT_URL_DYNAMODB and AWS_ENDPOINT_URL_S3 (or AWS_ENDPOINT_URL) were not set when the tests were built; run ./scripts/test.sh, or scripts/emulators.sh start && eval \"$(scripts/emulators.sh env)\" first"
)]
#[tokio::test]
async fn stale_markers_are_skipped_and_removed() {
    let backend = common::dynamo().await;
    // Markers of conversations that are gone (sorting before the real one), and one
    // under another owner than the conversation's.
    for stale in ["a0", "a1", "a2"] {
        put_marker(&backend, Some("a"), stale, "stale").await;
    }
    let real = conversation(&backend, Some("a"), "z9").await;
    let owned_by_b = conversation(&backend, Some("b"), "b1").await;
    put_marker(&backend, Some("a"), "b1", "stale").await;
    assert!(backend.begin_delete(&real).await.unwrap().is_some());
    assert!(backend.begin_delete(&owned_by_b).await.unwrap().is_some());
    assert_eq!(marker_items(&backend).await.len(), 6);

    // One at a time: the listing pages past the stale markers.
    assert_eq!(deleting(&backend, Some("a"), 1).await, vec![real.clone()]);
    assert_eq!(
        deleting(&backend, Some("a"), 1000).await,
        vec![real.clone()]
    );
    assert_eq!(
        ids(&deleting(&backend, None, 1000).await),
        ids([&real, &owned_by_b])
    );
    let left: BTreeSet<String> = marker_items(&backend).await.iter().map(sk).collect();
    let expected: BTreeSet<String> = [marker_sk(Some("a"), "z9"), marker_sk(Some("b"), "b1")]
        .into_iter()
        .collect();
    assert_eq!(left, expected, "the stale markers are removed");
    common::drop_table(&backend).await;
}

#[cfg_attr(
    not(chatvault_aws_emulators),
    ignore = "needs the AWS emulators: AWS_ENDPOINT_URL_DYNAMODB and AWS_ENDPOINT_URL_S3 (or AWS_ENDPOINT_URL) were not set when the tests were built; run ./scripts/test.sh, or scripts/emulators.sh start && eval \"$(scripts/emulators.sh env)\" first"
)]
#[tokio::test]
async fn a_mark_survives_a_crash_and_a_new_client_lists_it() {
    let backend = common::dynamo().await;
    // A crash after begin_delete: the process is gone, a new one lists the mark.
    let marked = conversation(&backend, Some("a"), "c1").await;
    assert!(backend.begin_delete(&marked).await.unwrap().is_some());
    let restarted = reopened(&backend, None).await;
    assert_eq!(
        deleting(&restarted, Some("a"), 1000).await,
        vec![marked.clone()]
    );

    // A crash inside delete, after the messages went and before the conversation item
    // did (its last request, the transaction, never goes out).
    let halfway = conversation(&backend, None, "c2").await;
    for i in 0..60 {
        backend
            .append_messages(&halfway, vec![NewMessage::new(Role::User, format!("{i}"))])
            .await
            .unwrap();
    }
    let crash = Crash::before(".TransactWriteItems");
    let crashing = reopened(&backend, Some(&crash)).await;
    assert!(crashing.delete(&halfway).await.is_err());
    assert_eq!(crash.fired(), 1, "the crash happened");
    let layout = common::layout(&backend, &halfway).await;
    assert_eq!(
        layout.items, 1,
        "only the conversation item is left: {layout:?}"
    );
    let restarted = reopened(&backend, None).await;
    assert_eq!(
        ids(&deleting(&restarted, None, 1000).await),
        ids([&marked, &halfway])
    );
    assert!(
        deleting(&restarted, Some("a"), 1000)
            .await
            .iter()
            .all(|id| id != &halfway)
    );
    // Finishing both empties the list.
    for id in deleting(&restarted, None, 1000).await {
        assert!(restarted.delete(&id).await.unwrap());
    }
    assert!(deleting(&restarted, None, 1000).await.is_empty());
    assert!(marker_items(&backend).await.is_empty());
    common::drop_table(&backend).await;
}

#[cfg_attr(
    not(chatvault_aws_emulators),
    ignore = "needs the AWS emulators: AWS_ENDPOINT_URL_DYNAMODB and AWS_ENDPOINT_URL_S3 (or AWS_ENDPOINT_URL) were not set when the tests were built; run ./scripts/test.sh, or scripts/emulators.sh start && eval \"$(scripts/emulators.sh env)\" first"
)]
#[tokio::test]
async fn a_lost_answer_of_the_last_write_still_takes_the_marker() {
    let backend = common::dynamo().await;
    let id = conversation(&backend, Some("a"), "c1").await;
    assert!(backend.begin_delete(&id).await.unwrap().is_some());
    // The final transaction commits but its answer is lost: delete still answers true,
    // and the marker is gone with the conversation.
    let lost = common::LoseWriteAnswers::new(1);
    let losing = common::with_lost_answers(&backend, &lost, 1).await;
    assert!(losing.delete(&id).await.unwrap());
    assert_eq!(lost.lost(), 1, "the answer was lost");
    assert!(marker_items(&backend).await.is_empty());
    assert!(deleting(&backend, None, 1000).await.is_empty());
    common::drop_table(&backend).await;
}

fn attachment(id: &str) -> FileAttachment {
    let file = FileId::parse(id).unwrap();
    let conversation = ConversationId::parse("c").unwrap();
    let storage_key = keys::storage_key(None, &conversation, &file, "f.txt").unwrap();
    FileAttachment::new(
        file,
        "f.txt",
        common::ct("text/plain"),
        1,
        "00",
        storage_key,
        chatvault_core::backend::now(),
    )
}

#[cfg_attr(
    not(chatvault_aws_emulators),
    ignore = "needs the AWS emulators: AWS_ENDPOINT_URL_DYNAMODB and AWS_ENDPOINT_URL_S3 (or AWS_ENDPOINT_URL) were not set when the tests were built; run ./scripts/test.sh, or scripts/emulators.sh start && eval \"$(scripts/emulators.sh env)\" first"
)]
#[tokio::test]
async fn begin_delete_and_delete_keep_their_answers() {
    let backend = common::dynamo().await;
    let missing = ConversationId::parse("missing").unwrap();
    assert!(backend.begin_delete(&missing).await.unwrap().is_none());
    assert!(!backend.delete(&missing).await.unwrap());
    assert!(
        marker_items(&backend).await.is_empty(),
        "no marker for none"
    );

    let id = conversation(&backend, Some("a"), "c1").await;
    backend.add_file(&id, &attachment("f1")).await.unwrap();
    let first = backend.begin_delete(&id).await.unwrap().unwrap();
    assert_eq!(first.len(), 1);
    let again = backend.begin_delete(&id).await.unwrap().unwrap();
    assert_eq!(again, first, "marking twice answers the same");
    assert_eq!(marker_items(&backend).await.len(), 1);
    assert_eq!(deleting(&backend, Some("a"), 1000).await, vec![id.clone()]);
    assert!(backend.delete(&id).await.unwrap());
    assert!(!backend.delete(&id).await.unwrap());
    assert!(backend.begin_delete(&id).await.unwrap().is_none());
    assert!(marker_items(&backend).await.is_empty());

    // The id used again, by another owner: a new life, listed under its new owner only.
    let reborn = conversation(&backend, Some("b"), "c1").await;
    assert!(deleting(&backend, None, 1000).await.is_empty());
    assert!(backend.begin_delete(&reborn).await.unwrap().is_some());
    assert!(deleting(&backend, Some("a"), 1000).await.is_empty());
    assert_eq!(deleting(&backend, Some("b"), 1000).await, vec![reborn]);
    common::drop_table(&backend).await;
}

#[cfg_attr(
    not(chatvault_aws_emulators),
    ignore = "needs the AWS emulators: AWS_ENDPOINT_URL_DYNAMODB and AWS_ENDPOINT_URL_S3 (or AWS_ENDPOINT_URL) were not set when the tests were built; run ./scripts/test.sh, or scripts/emulators.sh start && eval \"$(scripts/emulators.sh env)\" first"
)]
#[tokio::test]
async fn a_mark_of_an_earlier_release_is_found_once_marked_again() {
    let backend = common::dynamo().await;
    let id = conversation(&backend, Some("a"), "c1").await;
    // An earlier release's mark: the tombstone without a marker.
    backend
        .client()
        .update_item()
        .table_name(backend.table_name())
        .key("pk", AttributeValue::S("c1".into()))
        .key("sk", AttributeValue::S("#conversation".into()))
        .update_expression("SET deleting = :t ADD version :one REMOVE activity")
        .expression_attribute_values(":t", AttributeValue::Bool(true))
        .expression_attribute_values(":one", AttributeValue::N("1".into()))
        .send()
        .await
        .unwrap();
    assert!(backend.head(&id).await.unwrap().is_none(), "marked");
    // Not found (documented): nothing scans for it.
    assert!(deleting(&backend, None, 1000).await.is_empty());
    // begin_delete again puts its marker.
    assert!(backend.begin_delete(&id).await.unwrap().is_some());
    assert_eq!(deleting(&backend, None, 1000).await, vec![id.clone()]);
    assert!(backend.delete(&id).await.unwrap());
    assert!(deleting(&backend, None, 1000).await.is_empty());
    common::drop_table(&backend).await;
}

#[cfg_attr(
    not(chatvault_aws_emulators),
    ignore = "needs the AWS emulators: AWS_ENDPOINT_URL_DYNAMODB and AWS_ENDPOINT_URL_S3 (or AWS_ENDPOINT_URL) were not set when the tests were built; run ./scripts/test.sh, or scripts/emulators.sh start && eval \"$(scripts/emulators.sh env)\" first"
)]
#[tokio::test]
async fn many_marks_are_checked_in_batches() {
    let backend = common::dynamo().await;
    // More than one BatchGetItem's 100 keys, and two markers (of two owners) for one id,
    // which a batch must not ask for twice.
    let mut marked = Vec::new();
    for i in 0..130 {
        let user = if i % 2 == 0 { "even" } else { "odd" };
        let id = conversation(&backend, Some(user), &format!("c{i:03}")).await;
        assert!(backend.begin_delete(&id).await.unwrap().is_some());
        marked.push(id);
    }
    put_marker(&backend, Some("odd"), "c000", "stale").await;
    assert_eq!(marker_items(&backend).await.len(), 131);
    assert_eq!(ids(&deleting(&backend, None, 1000).await), ids(&marked));
    let even = deleting(&backend, Some("even"), 1000).await;
    assert_eq!(ids(&even), ids(marked.iter().step_by(2)));
    let some = deleting(&backend, None, 120).await;
    assert_eq!(ids(&some).len(), 120, "120 distinct");
    assert_eq!(
        marker_items(&backend).await.len(),
        130,
        "the stale one went"
    );
    common::drop_table(&backend).await;
}
