//! Criterion benchmarks of `RedisMessages` (needs a server: `CHATVAULT_REDIS_URL`, see
//! `scripts/redis.sh`; without it the bench says so and measures nothing):
//!
//! 1. `append/at/N`: one single-message append to a conversation that holds N = 10 and
//!    100,000 messages. A backend whose append does not grow with the conversation shows
//!    the same time for both.
//! 2. `writers16`: 16 concurrent writers (tasks of one process) appending 10 messages each
//!    to one conversation, `RedisMessages` against `LocalMessages` (on a temporary
//!    directory); reported as appends per second.
//! 3. `list/at/N`: the first page (20) of one owner's listing when the owner has N = 10
//!    and 100,000 conversations.
//!
//! `cargo bench -p chatvault-redis --bench redis -- --warm-up-time 1 --measurement-time 3`
//! runs it briefly. Each run writes under a fresh key prefix and deletes nothing: run it
//! against a throwaway server (`scripts/redis.sh` starts one).

#![allow(clippy::unwrap_used, missing_docs)] // a benchmark may unwrap: any failure is fatal

use std::sync::Arc;
use std::time::Duration;

use chatvault_core::backend::MessagesBackendExt;
use chatvault_core::{ConversationRecord, ListOptions, MessagesBackend, NewMessage, Role, UserId};
use chatvault_local::LocalMessages;
use chatvault_redis::RedisMessages;
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use futures_util::future::join_all;
use tokio::runtime::Runtime;

const WRITERS: usize = 16;
const APPENDS_PER_WRITER: usize = 10;

fn runtime() -> Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn server() -> Option<String> {
    let url = std::env::var("CHATVAULT_REDIS_URL")
        .ok()
        .filter(|u| !u.trim().is_empty());
    if url.is_none() {
        eprintln!("CHATVAULT_REDIS_URL is not set: nothing measured (scripts/redis.sh start)");
    }
    url
}

async fn backend(url: &str) -> RedisMessages {
    let prefix = format!("cvbench-{}", uuid::Uuid::now_v7().simple());
    RedisMessages::builder(url)
        .prefix(prefix)
        .build()
        .await
        .unwrap()
}

/// A conversation holding `n` messages, written in batches of 1,000.
async fn conversation_of(b: &dyn MessagesBackend, n: usize) -> ConversationRecord {
    let record = ConversationRecord::new(None);
    b.create(&record).await.unwrap();
    let mut left = n;
    while left > 0 {
        let batch = left.min(1000);
        let messages = (0..batch)
            .map(|i| NewMessage::new(Role::User, format!("message {i} of a long conversation")))
            .collect();
        b.append_messages(&record.id, messages).await.unwrap();
        left -= batch;
    }
    record
}

fn append(c: &mut Criterion) {
    let Some(url) = server() else { return };
    let rt = runtime();
    let b = rt.block_on(backend(&url));
    let mut group = c.benchmark_group("append");
    for n in [10usize, 100_000] {
        let record = rt.block_on(conversation_of(&b, n));
        group.bench_function(BenchmarkId::new("at", n), |bench| {
            bench.to_async(&rt).iter(|| async {
                b.append_messages(&record.id, vec![NewMessage::new(Role::User, "one more")])
                    .await
                    .unwrap()
            })
        });
    }
    group.finish();
}

/// 16 tasks appending to one conversation at once, each one message at a time.
async fn sixteen_writers(b: Arc<dyn MessagesBackend>, record: &ConversationRecord) {
    let tasks = (0..WRITERS).map(|w| {
        let b = Arc::clone(&b);
        let id = record.id.clone();
        tokio::spawn(async move {
            for i in 0..APPENDS_PER_WRITER {
                let m = NewMessage::new(Role::User, format!("writer {w}, message {i}"));
                b.append_messages(&id, vec![m]).await.unwrap();
            }
        })
    });
    for t in join_all(tasks).await {
        t.unwrap();
    }
}

fn writers16(c: &mut Criterion) {
    let Some(url) = server() else { return };
    let rt = runtime();
    let dir = tempfile::tempdir().unwrap();
    let backends: Vec<(&str, Arc<dyn MessagesBackend>)> = vec![
        ("redis", Arc::new(rt.block_on(backend(&url)))),
        ("local", Arc::new(LocalMessages::open(dir.path()).unwrap())),
    ];
    let mut group = c.benchmark_group("writers16");
    group.throughput(Throughput::Elements((WRITERS * APPENDS_PER_WRITER) as u64));
    for (name, b) in backends {
        let record = rt.block_on(conversation_of(b.as_ref(), 0));
        group.bench_function(name, |bench| {
            bench
                .to_async(&rt)
                .iter(|| sixteen_writers(Arc::clone(&b), &record))
        });
    }
    group.finish();
}

fn list(c: &mut Criterion) {
    let Some(url) = server() else { return };
    let rt = runtime();
    let b = rt.block_on(backend(&url));
    let mut group = c.benchmark_group("list");
    for n in [10usize, 100_000] {
        let owner = UserId::parse(format!("owner-{n}")).unwrap();
        rt.block_on(async {
            for chunk in (0..n).collect::<Vec<_>>().chunks(500) {
                join_all(chunk.iter().map(|_| {
                    let record = ConversationRecord::new(Some(owner.clone()));
                    let b = &b;
                    async move { b.create(&record).await.unwrap() }
                }))
                .await;
            }
        });
        let options = ListOptions::new().limit(20).unwrap();
        group.bench_function(BenchmarkId::new("at", n), |bench| {
            bench.to_async(&rt).iter(|| async {
                let page = b.list_conversations(Some(&owner), &options).await.unwrap();
                assert_eq!(page.items.len(), n.min(20));
                page
            })
        });
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    targets = append, writers16, list
}
criterion_main!(benches);
