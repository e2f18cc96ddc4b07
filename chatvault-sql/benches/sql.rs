//! Benchmarks of `chatvault-sql`, printed as plain figures
//! (`cargo bench -p chatvault-sql --all-features`):
//!
//! 1. The time of one append after 10, 1,000 and 100,000 existing messages, for
//!    `SqliteMessages` (a temporary file), `PostgresMessages` (when
//!    `CHATVAULT_POSTGRES_URL` is set; a fresh schema, dropped afterwards) and
//!    `MemoryMessages` as the reference and `LocalMessages` (a temporary directory) beside
//!    them: median, mean and p95 over 200 single-message
//!    appends, and the ratio of the largest median to the smallest. An append whose cost
//!    does not grow with the conversation has a ratio near 1. Conversations are filled
//!    through the backend in appends of 1,000 messages (one transaction each); 50 untimed
//!    appends warm each backend up first, and the timed appends go to the conversations
//!    in turn (10, 1,000, 100,000, 10, ...) so that a busy moment weighs on every size.
//!    Then the time of one search (first page of 20) over those messages, for a word in one
//!    message and for a word in all of them.
//! 2. The time to list one user's 1,000 conversations, 50 to a page (20 pages, following
//!    `next_cursor`), and one 1,000-item page.
//!
//! `CHATVAULT_BENCH_SIZES` (e.g. `10,1000,10000`) and `CHATVAULT_BENCH_APPENDS` (samples
//! per size) shrink the run; `CHATVAULT_BENCH_QUICK=1` is `10,1000,10000` with 50 samples.

#![allow(clippy::unwrap_used)] // a benchmark may unwrap: any failure is fatal anyway

use std::sync::Arc;
use std::time::{Duration, Instant};

use chatvault_core::backend::MessagesBackendExt;
use chatvault_core::{
    ConversationId, ConversationRecord, ListOptions, MessagesBackend, NewMessage, Role,
    SearchOptions, UserId,
};
use chatvault_local::LocalMessages;
use chatvault_memory::MemoryMessages;
use chatvault_sql::{PostgresMessages, SqliteMessages};
use sqlx::{AssertSqlSafe, Executor, PgPool};

fn env_list(name: &str) -> Option<Vec<u64>> {
    let v = std::env::var(name).ok()?;
    Some(v.split(',').map(|s| s.trim().parse().unwrap()).collect())
}

fn main() {
    let quick = std::env::var("CHATVAULT_BENCH_QUICK").is_ok_and(|v| v == "1");
    let sizes = env_list("CHATVAULT_BENCH_SIZES").unwrap_or_else(|| {
        if quick {
            vec![10, 1_000, 10_000]
        } else {
            vec![10, 1_000, 100_000]
        }
    });
    let appends = env_list("CHATVAULT_BENCH_APPENDS")
        .and_then(|v| v.first().copied())
        .unwrap_or(if quick { 50 } else { 200 }) as usize;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(run(&sizes, appends));
}

async fn run(sizes: &[u64], appends: usize) {
    let dir = tempfile::tempdir().unwrap();
    let sqlite_url = format!("sqlite://{}", dir.path().join("bench.db").display());
    let sqlite = SqliteMessages::connect(&sqlite_url).await.unwrap();
    let local = LocalMessages::open(dir.path().join("local")).unwrap();
    let mut backends: Vec<(&str, Arc<dyn MessagesBackend>)> = vec![
        ("memory", Arc::new(MemoryMessages::new())),
        ("local", Arc::new(local)),
        ("sqlite", Arc::new(sqlite)),
    ];
    let mut pg_schema = None;
    match std::env::var("CHATVAULT_POSTGRES_URL") {
        Ok(url) if !url.is_empty() => {
            let schema = format!(
                "cv_bench_{}",
                ConversationId::new().as_str().replace('-', "_")
            );
            let admin = PgPool::connect(&url).await.unwrap();
            admin
                .execute(AssertSqlSafe(format!("CREATE SCHEMA {schema}")))
                .await
                .unwrap();
            let sep = if url.contains('?') { '&' } else { '?' };
            let pg = PostgresMessages::connect(&format!(
                "{url}{sep}options=-c%20search_path%3D{schema}"
            ))
            .await
            .unwrap();
            backends.push(("postgres", Arc::new(pg)));
            pg_schema = Some((admin, schema));
        }
        _ => println!("*** PostgreSQL NOT BENCHMARKED: CHATVAULT_POSTGRES_URL is not set ***\n"),
    }

    println!("== append: {appends} single-message appends after N existing messages ==");
    println!(
        "{:<9} {:>9} {:>11} {:>11} {:>11} {:>12}",
        "backend", "N", "median", "mean", "p95", "fill"
    );
    for (name, backend) in &backends {
        // Warm up: connections opened, statements prepared, before anything is timed.
        let warm = ConversationRecord::new(None);
        backend.create(&warm).await.unwrap();
        for i in 0..50 {
            let m = NewMessage::new(Role::User, format!("warm-up {i}"));
            backend.append_messages(&warm.id, vec![m]).await.unwrap();
        }
        // Fill one conversation per size, then time appends to them in turn, so that
        // whatever else the machine does at a moment weighs on every size alike.
        let mut conversations = Vec::new();
        for &n in sizes {
            let record = ConversationRecord::new(Some(UserId::parse("bench-user").unwrap()));
            backend.create(&record).await.unwrap();
            let fill_start = Instant::now();
            let mut done = 0;
            while done < n {
                let batch = (n - done).min(1_000);
                let messages = (0..batch)
                    .map(|i| NewMessage::new(Role::User, format!("filler message {}", done + i)))
                    .collect();
                backend.append_messages(&record.id, messages).await.unwrap();
                done += batch;
            }
            conversations.push((record.id, fill_start.elapsed()));
        }
        let mut samples = vec![Vec::with_capacity(appends); sizes.len()];
        for i in 0..appends {
            for ((id, _), samples) in conversations.iter().zip(&mut samples) {
                let m = NewMessage::new(Role::Assistant, format!("timed append {i}"));
                let start = Instant::now();
                backend.append_messages(id, vec![m]).await.unwrap();
                samples.push(start.elapsed());
            }
        }
        let mut medians = Vec::new();
        for ((n, (_, fill)), samples) in sizes.iter().zip(&conversations).zip(&mut samples) {
            let (median, mean, p95) = stats(samples);
            medians.push(median);
            println!(
                "{name:<9} {n:>9} {:>11} {:>11} {:>11} {:>12}",
                fmt(median),
                fmt(mean),
                fmt(p95),
                fmt(*fill)
            );
        }
        let (lo, hi) = (medians[0], *medians.last().unwrap());
        println!(
            "{name:<9} ratio median(N={}) / median(N={}) = {:.2}",
            sizes.last().unwrap(),
            sizes[0],
            hi.as_secs_f64() / lo.as_secs_f64()
        );
        // Search the user who owns all those messages: a rare word (one hit) and a word in
        // every message (the best 20 of them all, ranked).
        let largest = sizes.last().unwrap() - 1;
        for (what, query) in [
            ("rare word", format!("{largest}")),
            ("word in every message", "filler".to_owned()),
        ] {
            let user = UserId::parse("bench-user").unwrap();
            let start = Instant::now();
            let hits = backend
                .search(&user, &query, &SearchOptions::new().limit(20).unwrap())
                .await;
            let took = start.elapsed();
            match hits {
                Ok(hits) => println!(
                    "{name:<9} search, {what} ({} hits on the first page): {}",
                    hits.items.len(),
                    fmt(took)
                ),
                Err(e) => println!("{name:<9} search, {what}: {e}"),
            }
        }
    }

    const CONVERSATIONS: usize = 1_000;
    println!("\n== list: one user's {CONVERSATIONS} conversations ==");
    println!(
        "{:<9} {:>16} {:>16} {:>12}",
        "backend", "50/page (20 pg)", "1000 in 1 page", "create all"
    );
    for (name, backend) in &backends {
        let user = UserId::parse(format!("lister-{}", ConversationId::new())).unwrap();
        let start = Instant::now();
        for _ in 0..CONVERSATIONS {
            backend
                .create(&ConversationRecord::new(Some(user.clone())))
                .await
                .unwrap();
        }
        let create = start.elapsed();
        let start = Instant::now();
        let mut options = ListOptions::new().limit(50).unwrap();
        let mut seen = 0;
        loop {
            let page = backend
                .list_conversations(Some(&user), &options)
                .await
                .unwrap();
            seen += page.items.len();
            match page.next_cursor {
                Some(cursor) => options = options.cursor(&cursor).unwrap(),
                None => break,
            }
        }
        let paged = start.elapsed();
        assert_eq!(seen, CONVERSATIONS);
        let start = Instant::now();
        let one = backend
            .list_conversations(Some(&user), &ListOptions::new().limit(1_000).unwrap())
            .await
            .unwrap();
        let single = start.elapsed();
        assert_eq!(one.items.len(), CONVERSATIONS);
        println!(
            "{name:<9} {:>16} {:>16} {:>12}",
            fmt(paged),
            fmt(single),
            fmt(create)
        );
    }

    if let Some((admin, schema)) = pg_schema {
        admin
            .execute(AssertSqlSafe(format!("DROP SCHEMA {schema} CASCADE")))
            .await
            .unwrap();
    }
}

/// (median, mean, p95) of the samples.
fn stats(samples: &mut [Duration]) -> (Duration, Duration, Duration) {
    samples.sort_unstable();
    let n = samples.len();
    let mean = samples.iter().sum::<Duration>() / n as u32;
    (samples[n / 2], mean, samples[(n * 95 / 100).min(n - 1)])
}

fn fmt(d: Duration) -> String {
    let us = d.as_secs_f64() * 1e6;
    if us < 1_000.0 {
        format!("{us:.0} µs")
    } else if us < 1_000_000.0 {
        format!("{:.2} ms", us / 1e3)
    } else {
        format!("{:.2} s", us / 1e6)
    }
}
