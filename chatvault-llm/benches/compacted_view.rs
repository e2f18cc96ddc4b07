//! The model's view of a compacted conversation (issue #25): `prepare_history` on
//! conversations of 100, 1,000, 10,000 and 100,000 messages, each compacted through all
//! but its newest 20 messages (then 2 more messages after the checkpoint), on
//! `MemoryMessages` and `LocalMessages` (a temporary directory). The view reads the
//! checkpoint and the tail only, so its cost should not grow with the conversation.
//!
//! Paired rounds: each round times one `prepare_history` of every size, in a rotating
//! order, 60 rounds; printed: each size's median, and the median of its per-round ratio to
//! the smallest size (what "flat" means: 1.00). For contrast, the same conversations read
//! whole (`checkpoints(false)`), 3 rounds, up to 10,000 messages.
//!
//! `cargo bench -p chatvault-llm --bench compacted_view`

#![allow(clippy::unwrap_used, missing_docs)] // a benchmark may unwrap: any failure is fatal

use std::sync::Arc;
use std::time::{Duration, Instant};

use chatvault_core::{ChatVault, Conversation, FilesBackend, MessagesBackend, NewMessage, Role};
use chatvault_llm::{FileMode, HistoryOptions, PrepareHistory};
use chatvault_local::{LocalFiles, LocalMessages};
use chatvault_memory::{MemoryFiles, MemoryMessages};

const SIZES: [usize; 4] = [100, 1_000, 10_000, 100_000];
/// Messages after the covered ones, before the checkpoint.
const KEPT: usize = 20;
/// Messages appended per call while building.
const BATCH: usize = 50;
const ROUNDS: usize = 60;

/// A conversation of `n` messages (a system prompt, then user / assistant turns), compacted
/// through all but the newest `KEPT`, then two more messages.
async fn compacted(vault: &ChatVault, n: usize) -> Conversation {
    let mut c = vault.create_conversation(None).await.unwrap();
    let mut batch = vec![NewMessage::new(
        Role::System,
        "You are a helpful assistant.",
    )];
    for i in 1..n {
        let role = if i % 2 == 1 {
            Role::User
        } else {
            Role::Assistant
        };
        batch.push(NewMessage::new(
            role,
            format!("message {i}: {}", "words ".repeat(20)),
        ));
        if batch.len() == BATCH {
            c.append(std::mem::take(&mut batch)).await.unwrap();
        }
    }
    if !batch.is_empty() {
        c.append(batch).await.unwrap();
    }
    let through = c.last_messages(KEPT + 1).await.unwrap()[0].id.clone();
    c.compact("A summary of everything so far.", &through, "bench")
        .await
        .unwrap();
    c.add_message(Role::User, "and now?").await.unwrap();
    c.add_message(Role::Assistant, "now this.").await.unwrap();
    c
}

async fn time(c: &Conversation, options: &HistoryOptions) -> Duration {
    let start = Instant::now();
    let history = c.prepare_history(options).await.unwrap();
    let took = start.elapsed();
    assert!(!history.is_empty());
    took
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

async fn run(name: &str, messages: Arc<dyn MessagesBackend>, files: Arc<dyn FilesBackend>) {
    let vault = ChatVault::from_arcs(messages, files);
    let mut conversations = Vec::new();
    for n in SIZES {
        let c = compacted(&vault, n).await;
        // The view holds the opening instruction, the checkpoint, KEPT + 2 messages.
        let view = c
            .prepare_history(&HistoryOptions::new(FileMode::Base64))
            .await
            .unwrap();
        assert_eq!(view.len(), KEPT + 4, "{n}");
        conversations.push(c);
    }
    let options = HistoryOptions::new(FileMode::Base64);
    let mut times: Vec<Vec<f64>> = vec![Vec::new(); SIZES.len()];
    let mut ratios: Vec<Vec<f64>> = vec![Vec::new(); SIZES.len()];
    for round in 0..ROUNDS {
        let mut this = vec![0.0; SIZES.len()];
        for k in 0..SIZES.len() {
            let i = (round + k) % SIZES.len();
            this[i] = time(&conversations[i], &options).await.as_secs_f64();
        }
        for i in 0..SIZES.len() {
            times[i].push(this[i]);
            ratios[i].push(this[i] / this[0]);
        }
    }
    for (i, n) in SIZES.iter().enumerate() {
        println!(
            "{name:<6} compacted view  {n:>7} messages  median {:>8.1} µs  ratio to {} {:.2}",
            median(times[i].clone()) * 1e6,
            SIZES[0],
            median(ratios[i].clone()),
        );
    }
    let whole = HistoryOptions::new(FileMode::Base64).checkpoints(false);
    for (i, n) in SIZES.iter().enumerate().take(3) {
        let mut t = Vec::new();
        for _ in 0..3 {
            t.push(time(&conversations[i], &whole).await.as_secs_f64());
        }
        println!(
            "{name:<6} whole history   {n:>7} messages  median {:>8.1} µs",
            median(t) * 1e6
        );
    }
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        run(
            "memory",
            Arc::new(MemoryMessages::new()),
            Arc::new(MemoryFiles::new()),
        )
        .await;
        let dir = tempfile::tempdir().unwrap();
        run(
            "local",
            Arc::new(LocalMessages::open(dir.path().join("messages")).unwrap()),
            Arc::new(LocalFiles::new(dir.path().join("files")).unwrap()),
        )
        .await;
    });
}
