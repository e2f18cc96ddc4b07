//! Criterion benchmarks of branches on `DynamoMessages`, on DynamoDB Local (a fresh table,
//! deleted afterwards):
//!
//! 1. `path/dynamodb/...`: loading a conversation's active path of 1,000 messages through
//!    the vault, in pages of 100 (`conversation.messages_page`, following `next_cursor`):
//!    - `linear`: a conversation of 1,000 messages in one line (one range read a page);
//!    - `tree-11-segments`: a tree of 10,009 messages in 100 branches: the active path's
//!      1,000 messages were written in 11 stretches (55, then 100 each, then 45) with the
//!      other branches between them, so each page crosses two segments (two range reads),
//!      and 99 edits at depths 10, 20, ..., 990 of the path, each followed by 90 messages
//!      on its own branch (the shape of chatvault-sql's `branches` bench).
//! 2. `edit/dynamodb/at-N`: one edit (`branches().edit`: the message read by id, then one
//!    append) of message N = 10 and N = 9,900 (both sealed in chunks: found through their
//!    id markers) and N = 9,990 (in the conversation item's tail) of the tree.
//!    After each timed edit the conversation is put back as it was (the conversation item
//!    put back whole, untimed: the edit wrote nothing else), so every edit meets the same
//!    tree.
//!
//! Before measuring, it prints the requests each shape takes (counted by an SDK
//! interceptor), and the medians of path loads of both shapes taking turns (their ratio
//! is the figure to read on a shared machine, whose load moves between criterion's runs).
//!
//! ```text
//! scripts/emulators.sh start && eval "$(scripts/emulators.sh env)"
//! cargo bench -p chatvault-aws --bench branches -- --warm-up-time 1 --measurement-time 3
//! ```

#![allow(clippy::unwrap_used, missing_docs)] // a benchmark may unwrap: any failure is fatal

#[path = "../tests/common/mod.rs"]
mod common;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::types::AttributeValue;
use chatvault_aws::{DynamoMessages, MAX_APPEND_MESSAGES};
use chatvault_core::conformance::shapes::{self, TreeShape};
use chatvault_core::{
    ChatVault, Conversation, ConversationId, MessageRange, MessagesBackend, NewMessage, Role,
};
use criterion::{Criterion, criterion_group, criterion_main};
use tokio::runtime::Runtime;

/// The active path's length.
const PATH: u64 = 1_000;
/// Messages per page.
const PAGE: usize = 100;
/// Edits are at every `EDIT_EVERY`-th depth of the path (99 of them).
const EDIT_EVERY: u64 = 10;
/// Messages following each edit on its branch.
const FOLLOWERS: u64 = 90;
/// The most messages the conversation item's tail holds (the layout's bound).
const TAIL_MAX_MESSAGES: usize = 48;

type Item = HashMap<String, AttributeValue>;

fn runtime() -> Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// A conversation of `n` messages in one line.
async fn linear(b: &DynamoMessages, n: u64) -> ConversationId {
    shapes::linear(b, n, MAX_APPEND_MESSAGES).await
}

/// The tree of the module docs ([`shapes::branched`]): the active path written in
/// stretches that end at the depths `first, first + every, ...` (and `PATH`), each followed
/// by the edits at depths it reached (an edit and its `FOLLOWERS`); then the path's end is
/// made the active leaf. Checks that the path crosses `segments` segments and that the
/// tail has room for one more message (so a timed edit never seals).
async fn tree(b: &DynamoMessages, first: u64, every: u64, segments: usize) -> ConversationId {
    let shape = TreeShape::new(PATH)
        .stretches(first, every)
        .edits(EDIT_EVERY, FOLLOWERS)
        .batch(MAX_APPEND_MESSAGES);
    let tree = shapes::branched(b, shape).await;
    assert_eq!(tree.record.tree().active_path().len(), segments);
    assert_eq!(tree.record.tree().runs.len(), segments + 99);
    let tail = match common::conversation_item(b, &tree.id).await.get("tail") {
        Some(AttributeValue::L(entries)) => entries.len(),
        _ => 0,
    };
    assert!(
        tail < TAIL_MAX_MESSAGES,
        "the tail is full: an edit would seal"
    );
    tree.id
}

/// Puts the conversation item back as `item` was, at a version after `version` (so the
/// backend takes the item put back for the latest when it next reads it).
async fn restore(b: &DynamoMessages, item: &Item, version: u64) {
    let mut item = item.clone();
    item.insert(
        "version".into(),
        AttributeValue::N((version + 1).to_string()),
    );
    b.client()
        .put_item()
        .table_name(b.table_name())
        .set_item(Some(item))
        .send()
        .await
        .unwrap();
}

/// Loads the active path in pages of `PAGE`; returns how many messages it read.
async fn load_path(chat: &Conversation) -> usize {
    let mut range = MessageRange::after(0).limit(PAGE);
    let mut n = 0;
    loop {
        let page = chat.messages_page(&range).await.unwrap();
        n += page.items.len();
        match page.next_cursor {
            Some(cursor) => range = range.continue_from(&cursor).unwrap(),
            None => return n,
        }
    }
}

/// Rounds of [`paired`].
const PAIRED_ROUNDS: usize = 31;

/// The path loads of `linear` and `tree` taking turns, `PAIRED_ROUNDS` each: their
/// medians and ratio, printed. On a shared machine the load changes between criterion's
/// groups; taking turns puts both under the same.
async fn paired(linear: &Conversation, tree: &Conversation) {
    let mut times = [Vec::new(), Vec::new()];
    for _ in 0..PAIRED_ROUNDS {
        for (k, chat) in [linear, tree].into_iter().enumerate() {
            let start = Instant::now();
            assert_eq!(load_path(chat).await, PATH as usize);
            times[k].push(start.elapsed());
        }
    }
    let [linear, tree] = times.map(|mut t| {
        t.sort();
        t[PAIRED_ROUNDS / 2]
    });
    eprintln!(
        "paired medians ({PAIRED_ROUNDS} rounds taking turns): linear {linear:?}, tree {tree:?}, tree/linear {:.2}",
        tree.as_secs_f64() / linear.as_secs_f64()
    );
}

fn branches(c: &mut Criterion) {
    if let Some(message) = common::missing_endpoint("AWS_ENDPOINT_URL_DYNAMODB") {
        eprintln!("branches bench: {message}");
        return;
    }
    let rt = runtime();
    let (b, requests) = rt.block_on(common::dynamo_counted());
    let started = Instant::now();
    let shapes = rt.block_on(async {
        vec![
            ("linear", linear(&b, PATH).await),
            ("tree-11-segments", tree(&b, 55, 100, 11).await),
        ]
    });
    eprintln!("built the conversations in {:?}", started.elapsed());
    let vault = ChatVault::new(b.clone(), common::NoFiles);
    let chats: Vec<Conversation> = shapes
        .iter()
        .map(|(_, id)| rt.block_on(vault.get_conversation(id)).unwrap().unwrap())
        .collect();
    rt.block_on(paired(&chats[0], &chats[1]));
    let mut group = c.benchmark_group("path/dynamodb");
    for ((shape, _), chat) in shapes.iter().zip(&chats) {
        requests.reset();
        assert_eq!(rt.block_on(load_path(chat)), PATH as usize);
        eprintln!("{shape}: {} requests a path load", requests.get());
        group.bench_function(*shape, |bench| bench.to_async(&rt).iter(|| load_path(chat)));
    }
    group.finish();

    let tree_id = &shapes[1].1;
    let item = rt.block_on(common::conversation_item(&b, tree_id));
    let mut group = c.benchmark_group("edit/dynamodb");
    for seq in [10_u64, 9_900, 9_990] {
        let target = rt
            .block_on(b.messages(tree_id, &MessageRange::after(seq - 1).limit(1)))
            .unwrap()
            .items
            .remove(0);
        assert_eq!(target.seq, seq);
        group.bench_function(format!("at-{seq}"), |bench| {
            bench.to_async(&rt).iter_custom(|iters| {
                let (vault, b, item, target) =
                    (vault.clone(), b.clone(), item.clone(), target.clone());
                let requests = requests.clone();
                async move {
                    let mut total = Duration::ZERO;
                    for _ in 0..iters {
                        let mut chat = vault.get_conversation(tree_id).await.unwrap().unwrap();
                        let edit = NewMessage::new(Role::User, "an edit");
                        requests.reset();
                        let start = Instant::now();
                        let stored = chat.branches().edit(&target.id, edit).await.unwrap();
                        total += start.elapsed();
                        if iters == 1 {
                            eprintln!("edit at {seq}: {} requests", requests.get());
                        }
                        assert_eq!(stored.parent, target.parent);
                        restore(&b, &item, chat.record().version).await;
                    }
                    total
                }
            })
        });
    }
    group.finish();
    rt.block_on(common::drop_table(&b));
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    targets = branches
}
criterion_main!(benches);
