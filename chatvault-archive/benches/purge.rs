//! Purging expired conversations (`vault.forget().purge_expired`) on the local backend and
//! on SQLite (attachments in `LocalFiles` for both), against the in-memory backends as
//! the ceiling. Issue #24's target: at least 1,000 conversations/s on local and SQLite.
//!
//! `cargo bench -p chatvault-archive --bench purge`. First, one purge of `CONVERSATIONS`
//! (default 10,000) conversations per store, each of 4 messages and one 1 KiB attachment,
//! all expired (a policy of zero days after creation): the lines printed say
//! conversations/s. Then Criterion times purges of 1,000 such conversations (the store
//! is built again, untimed, for every sample). `BENCH_DIR=/dev/shm` puts the stores on a
//! tmpfs (no disk flushes); `CONCURRENCY=N` removes N conversations at a time (default:
//! `ForgetOptions`'s, 32).
#![allow(clippy::unwrap_used, missing_docs)] // a benchmark may unwrap

use std::time::{Duration, Instant};

use chatvault_core::{ChatVault, Expiry, ForgetOptions, NewMessage, Retention, Role, UserId};
use chatvault_local::{LocalFiles, LocalMessages};
use chatvault_memory::{MemoryFiles, MemoryMessages};
use chatvault_sql::SqliteMessages;
use chrono::TimeDelta;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

/// A fresh directory for a store: under `BENCH_DIR` when set, else the system's temporary
/// directory.
fn store_dir() -> tempfile::TempDir {
    match std::env::var_os("BENCH_DIR") {
        Some(dir) => tempfile::tempdir_in(dir).unwrap(),
        None => tempfile::tempdir().unwrap(),
    }
}

#[derive(Clone, Copy, Debug)]
enum Kind {
    Memory,
    Local,
    Sqlite,
}

/// A vault of `kind` holding `n` conversations (spread over 100 owners), each with 4
/// messages and one attachment, and the directory it lives in.
async fn stocked(kind: Kind, n: usize) -> (ChatVault, Option<tempfile::TempDir>) {
    let (vault, dir) = match kind {
        Kind::Memory => (
            ChatVault::new(MemoryMessages::new(), MemoryFiles::new()),
            None,
        ),
        Kind::Local => {
            let dir = store_dir();
            let vault = ChatVault::new(
                LocalMessages::open(dir.path().join("messages")).unwrap(),
                LocalFiles::new(dir.path().join("files")).unwrap(),
            );
            (vault, Some(dir))
        }
        Kind::Sqlite => {
            let dir = store_dir();
            let url = format!("sqlite://{}", dir.path().join("chat.db").display());
            let vault = ChatVault::new(
                SqliteMessages::connect(&url).await.unwrap(),
                LocalFiles::new(dir.path().join("files")).unwrap(),
            );
            (vault, Some(dir))
        }
    };
    let payload = vec![b'x'; 1024];
    for i in 0..n {
        let user: UserId = format!("user-{}", i % 100).parse().unwrap();
        let mut c = vault.create_conversation(Some(&user)).await.unwrap();
        let batch = (0..4)
            .map(|j| NewMessage::new(Role::User, format!("message {j} of conversation {i}")))
            .collect();
        c.append(batch).await.unwrap();
        c.attach_file("notes.txt", payload.clone(), "text/plain")
            .await
            .unwrap();
    }
    (vault, dir)
}

/// Purges everything `vault` holds (all expired) and checks it all went.
async fn purge(vault: &ChatVault, n: usize) -> Duration {
    let expiring = vault
        .clone()
        .with_retention(Retention::new(Expiry::AfterCreation(TimeDelta::zero())));
    let start = Instant::now();
    let report = expiring.forget().purge_expired(&options()).await.unwrap();
    let took = start.elapsed();
    assert_eq!(report.conversations.len(), n);
    assert_eq!(report.files as usize, n);
    took
}

/// The purge's options: `CONCURRENCY` removals at a time when set, else the default.
fn options() -> ForgetOptions {
    match std::env::var("CONCURRENCY")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        Some(n) => ForgetOptions::new().concurrency(n),
        None => ForgetOptions::new(),
    }
}

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let n = env("CONVERSATIONS", 10_000);
    for kind in [Kind::Memory, Kind::Local, Kind::Sqlite] {
        let took = rt.block_on(async {
            let (vault, _dir) = stocked(kind, n).await;
            purge(&vault, n).await
        });
        println!(
            "purge of {n} expired conversations, {kind:?}: {:.2} s, {:.0} conversations/s",
            took.as_secs_f64(),
            n as f64 / took.as_secs_f64()
        );
    }
    let per_sample = 1_000;
    let mut group = c.benchmark_group("purge_expired");
    group.sample_size(10);
    group.throughput(Throughput::Elements(per_sample as u64));
    for kind in [Kind::Memory, Kind::Local, Kind::Sqlite] {
        group.bench_function(format!("{kind:?}"), |b| {
            b.iter_custom(|iters| {
                rt.block_on(async {
                    let mut total = Duration::ZERO;
                    for _ in 0..iters {
                        let (vault, _dir) = stocked(kind, per_sample).await;
                        total += purge(&vault, per_sample).await;
                    }
                    total
                })
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
