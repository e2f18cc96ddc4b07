//! Criterion benchmarks of branches on `SqliteMessages` (a temporary file) and
//! `PostgresMessages` (when `CHATVAULT_POSTGRES_URL` is set; a fresh schema, dropped
//! afterwards):
//!
//! 1. `path/<backend>/...`: loading a conversation's active path of 1,000 messages through
//!    the vault, in pages of 100 (`conversation.messages_page`, following `next_cursor`):
//!    - `linear`: a conversation of 1,000 messages in one line (one range read a page);
//!    - `tree-11-segments`: a tree of 10,009 messages in 100 branches: the active path's
//!      1,000 messages were written in 11 stretches (55, then 100 each, then 45) with the
//!      other branches between them, so each page crosses two segments (two range reads),
//!      and 99 edits at depths 10, 20, ..., 990 of the path, each followed by 90 messages
//!      on its own branch;
//!    - `tree-100-segments`: the same tree with the path written in 100 stretches (15, then
//!      10 each, then 5): each page crosses 11 segments (the worst case: the path crosses
//!      every branch).
//! 2. `edit/<backend>/at-N`: one edit (`branches().edit`: a lookup by id and one append) of
//!    message N = 10 and N = 9,990 of the 11-segment tree. After each timed edit the
//!    conversation is put back as it was (the new row deleted, the record's row restored,
//!    untimed), so every edit meets the same tree.
//!
//! After each group, paired rounds: every case once per round, in a rotating order, 40
//! rounds; printed as `paired ...` lines with each case's median and the median of its
//! per-round ratio to the first case (`linear`, `at-10`). On a shared, busy machine these
//! ratios are steadier than two criterion figures measured minutes apart.
//!
//! `cargo bench -p chatvault-sql --all-features --bench branches -- --warm-up-time 1
//! --measurement-time 3` runs it briefly.

#![allow(clippy::unwrap_used, missing_docs)] // a benchmark may unwrap: any failure is fatal

use std::sync::Arc;
use std::time::{Duration, Instant};

use chatvault_core::conformance::shapes::{self, TreeShape};
use chatvault_core::{
    ChatVault, Conversation, ConversationId, ConversationRecord, Message, MessageRange,
    MessagesBackend, NewMessage, Role,
};
use chatvault_memory::MemoryFiles;
use chatvault_sql::{PostgresMessages, SqliteMessages};
use criterion::{Criterion, criterion_group, criterion_main};
use sqlx::{AssertSqlSafe, Executor, PgPool, SqlitePool};
use tokio::runtime::Runtime;

/// The active path's length.
const PATH: u64 = 1_000;
/// Messages per page.
const PAGE: usize = 100;
/// Edits are at every `EDIT_EVERY`-th depth of the path (99 of them).
const EDIT_EVERY: u64 = 10;
/// Messages following each edit on its branch.
const FOLLOWERS: u64 = 90;

fn runtime() -> Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// A database's pool, for putting a conversation back after a timed edit.
enum Pool {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// The backends measured: name, backend, pool.
async fn backends() -> (Vec<(&'static str, Arc<dyn MessagesBackend>, Pool)>, Cleanup) {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("bench.db").display());
    let sqlite = SqliteMessages::connect(&url).await.unwrap();
    let pool = Pool::Sqlite(sqlite.pool().clone());
    let mut out: Vec<(&'static str, Arc<dyn MessagesBackend>, Pool)> =
        vec![("sqlite", Arc::new(sqlite), pool)];
    let mut schema = None;
    match std::env::var("CHATVAULT_POSTGRES_URL") {
        Ok(url) if !url.trim().is_empty() => {
            let name = format!(
                "cv_bench_{}",
                ConversationId::new().as_str().replace('-', "_")
            );
            let admin = PgPool::connect(&url).await.unwrap();
            admin
                .execute(AssertSqlSafe(format!("CREATE SCHEMA {name}")))
                .await
                .unwrap();
            let sep = if url.contains('?') { '&' } else { '?' };
            let pg =
                PostgresMessages::connect(&format!("{url}{sep}options=-c%20search_path%3D{name}"))
                    .await
                    .unwrap();
            let pool = Pool::Postgres(pg.pool().clone());
            out.push(("postgres", Arc::new(pg), pool));
            schema = Some((admin, name));
        }
        _ => eprintln!("CHATVAULT_POSTGRES_URL is not set: PostgreSQL not measured"),
    }
    (out, Cleanup { _dir: dir, schema })
}

/// What the run leaves behind: the SQLite file's directory and the PostgreSQL schema.
struct Cleanup {
    _dir: tempfile::TempDir,
    schema: Option<(PgPool, String)>,
}

impl Cleanup {
    async fn run(self) {
        if let Some((admin, schema)) = self.schema {
            admin
                .execute(AssertSqlSafe(format!("DROP SCHEMA {schema} CASCADE")))
                .await
                .unwrap();
        }
    }
}

/// A conversation of `n` messages in one line.
async fn linear(b: &dyn MessagesBackend, n: u64) -> ConversationId {
    shapes::linear(b, n, 100).await
}

/// The tree of the module docs ([`shapes::branched`]): the active path written in
/// stretches that end at the depths `first, first + every, ...` (and `PATH`), each followed
/// by the edits at depths it reached (an edit and its `FOLLOWERS` in one append); then the
/// path's end is made the active leaf. Checks that the path crosses `segments` segments.
async fn tree(b: &dyn MessagesBackend, first: u64, every: u64, segments: usize) -> ConversationId {
    let shape = TreeShape::new(PATH)
        .stretches(first, every)
        .edits(EDIT_EVERY, FOLLOWERS);
    let tree = shapes::branched(b, shape).await;
    assert_eq!(tree.record.tree().active_path().len(), segments);
    assert_eq!(tree.record.tree().runs.len(), segments + 99);
    tree.id
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

/// Puts the conversation's rows back as `record` holds them (deleting messages past its
/// count).
async fn restore(pool: &Pool, record: &ConversationRecord) {
    let tree = record
        .tree
        .as_ref()
        .map(|t| serde_json::to_string(t).unwrap());
    let count = record.message_count as i64;
    let version = record.version as i64;
    let id = record.id.as_str();
    const DELETE: &str = "DELETE FROM chatvault_messages WHERE conversation_id = $1 AND seq > $2";
    const UPDATE: &str = "UPDATE chatvault_conversations \
        SET message_count = $2, version = $3, tree = $4 WHERE id = $1";
    macro_rules! put_back {
        ($pool:expr) => {{
            let mut tx = $pool.begin().await.unwrap();
            sqlx::query(DELETE)
                .bind(id)
                .bind(count)
                .execute(&mut *tx)
                .await
                .unwrap();
            sqlx::query(UPDATE)
                .bind(id)
                .bind(count)
                .bind(version)
                .bind(tree.as_deref())
                .execute(&mut *tx)
                .await
                .unwrap();
            tx.commit().await.unwrap();
        }};
    }
    match pool {
        Pool::Sqlite(p) => put_back!(p),
        Pool::Postgres(p) => put_back!(p),
    }
}

/// One edit of `target` through the vault (a lookup by id and one append), timed; then
/// the conversation is put back as `before` (untimed).
async fn timed_edit(
    vault: &ChatVault,
    pool: &Pool,
    before: &ConversationRecord,
    target: &Message,
) -> Duration {
    let mut chat = vault.get_conversation(&before.id).await.unwrap().unwrap();
    let edit = NewMessage::new(Role::User, "an edit");
    let start = Instant::now();
    let stored = chat.branches().edit(&target.id, edit).await.unwrap();
    let took = start.elapsed();
    assert_eq!(stored.parent, target.parent);
    restore(pool, before).await;
    took
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// `ROUNDS` paired rounds: each round runs every case once, starting at a rotating one,
/// so that the machine's load (shared, busy) weighs on all alike. Prints each case's
/// median and the median of its per-round ratio to the first case.
async fn paired<F, Fut>(label: &str, cases: &[&str], mut run: F)
where
    F: FnMut(usize) -> Fut,
    Fut: std::future::Future<Output = Duration>,
{
    let mut times = vec![Vec::with_capacity(ROUNDS); cases.len()];
    for round in 0..ROUNDS {
        for k in 0..cases.len() {
            let case = (round + k) % cases.len();
            times[case].push(run(case).await.as_secs_f64());
        }
    }
    let base = &times[0];
    for (case, t) in cases.iter().zip(&times) {
        let ratios = t.iter().zip(base).map(|(x, y)| x / y).collect();
        println!(
            "paired {label}/{case}: median {:.3} ms, {:.2}x {} (median of {ROUNDS} paired rounds)",
            median(t.clone()) * 1e3,
            median(ratios),
            cases[0],
        );
    }
}

/// Paired rounds per case.
const ROUNDS: usize = 40;

fn branches(c: &mut Criterion) {
    let rt = runtime();
    let (backends, cleanup) = rt.block_on(backends());
    for (name, b, pool) in &backends {
        let vault = ChatVault::from_arcs(Arc::clone(b), Arc::new(MemoryFiles::new()));
        let shapes = rt.block_on(async {
            vec![
                ("linear", linear(b.as_ref(), PATH).await),
                ("tree-11-segments", tree(b.as_ref(), 55, 100, 11).await),
                ("tree-100-segments", tree(b.as_ref(), 15, 10, 100).await),
            ]
        });
        let chats: Vec<Conversation> = shapes
            .iter()
            .map(|(_, id)| rt.block_on(vault.get_conversation(id)).unwrap().unwrap())
            .collect();
        let mut group = c.benchmark_group(format!("path/{name}"));
        for ((shape, _), chat) in shapes.iter().zip(&chats) {
            assert_eq!(rt.block_on(load_path(chat)), PATH as usize);
            group.bench_function(*shape, |bench| bench.to_async(&rt).iter(|| load_path(chat)));
        }
        group.finish();
        let names: Vec<&str> = shapes.iter().map(|(shape, _)| *shape).collect();
        rt.block_on(paired(&format!("path/{name}"), &names, |case| {
            let chat = &chats[case];
            async move {
                let start = Instant::now();
                load_path(chat).await;
                start.elapsed()
            }
        }));

        let tree_id = &shapes[1].1;
        let before = rt.block_on(b.head(tree_id)).unwrap().unwrap().record;
        let targets: Vec<Message> = [10_u64, 9_990]
            .iter()
            .map(|&seq| {
                let range = MessageRange::after(seq - 1).limit(1);
                let target = rt
                    .block_on(b.messages(tree_id, &range))
                    .unwrap()
                    .items
                    .remove(0);
                assert_eq!(target.seq, seq);
                target
            })
            .collect();
        let mut group = c.benchmark_group(format!("edit/{name}"));
        for target in &targets {
            group.bench_function(format!("at-{}", target.seq), |bench| {
                bench.to_async(&rt).iter_custom(|iters| {
                    let (vault, before) = (&vault, &before);
                    async move {
                        let mut total = Duration::ZERO;
                        for _ in 0..iters {
                            total += timed_edit(vault, pool, before, target).await;
                        }
                        total
                    }
                })
            });
        }
        group.finish();
        rt.block_on(paired(
            &format!("edit/{name}"),
            &["at-10", "at-9990"],
            |case| timed_edit(&vault, pool, &before, &targets[case]),
        ));
    }
    rt.block_on(cleanup.run());
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
